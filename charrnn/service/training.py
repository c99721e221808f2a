"""Training jobs for the app's Train tab, without the UI: a person's text in, a model they can use out.

    manager = TrainingManager(library)
    text = manager.gather(pasted="...", files=[...], dataset=None)   # checked, with a preview (text.preview)
    job = manager.submit(owner, text, JobSettings(name="novel", minutes=3))
    manager.progress(owner, job.id)   # curve, latest sample, chars/s, steps, time left (read from metrics.jsonl)
    manager.stop(owner, job.id); manager.resume(owner, job.id, minutes=2)

A job runs the project's own trainer, `python -m charrnn.train`, as a child process at a lower CPU priority: a
crash, an out-of-memory kill or a diverging run ends that process, never the server, and the page stays quick.
Stop sends SIGTERM, on which the trainer saves last/ and best/ and exits; Resume runs it again with --resume.
Progress is what the trainer writes to the run folder's metrics.jsonl (with --sample-chars, a sample at each
evaluation). A finished or stopped job's best/ is added to the ModelLibrary under the name `trained/<name>-<id>`,
listed only to the session (owner) that trained it unless the host shares trained models.

Every limit comes from the environment (TrainLimits.from_env), with defaults safe for a public Space.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from charrnn.config import (CELLS, TOKENIZERS, ModelConfig, TrainConfig, count_params, format_count,
                            hidden_size_for_params, parse_count)
from charrnn.errors import CharRNNError, check

from charrnn.paths import PACKAGE_DIR, data_dir
from charrnn.service import inputs
from charrnn.service.inputs import LIMITS, env_int
from charrnn.service.library import ModelLibrary

try:  # Hugging Face ZeroGPU: a GPU is attached only inside functions decorated with spaces.GPU
    import spaces
except ImportError:  # anywhere else the decorator does nothing
    spaces = None

ZERO_GPU = spaces is not None and os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")  # a GPU to use
TEXT_FILES = (".txt", ".md")
TABLE_FILES = (".csv", ".jsonl", ".parquet")
SIZE_PRESETS = {"tiny": 200_000, "small": 800_000, "medium": 3_000_000}  # parameters
SAMPLE_CHARS = 200  # written by the trainer at each evaluation
MAX_VAL_CHARS = 100_000  # a longer validation text makes each evaluation slow; the share shrinks instead
STATES = ("queued", "running", "stopping", "stopped", "finished", "failed")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class TrainLimits:
    """What training may ask of the host: from the environment, with defaults safe for a public Space."""

    jobs: int = 1  # jobs training at once; later ones wait in a queue (CHARRNN_TRAIN_JOBS)
    max_minutes: int = 10  # per job, resumes included (CHARRNN_TRAIN_MAX_MINUTES)
    upload_mb: int = LIMITS.upload_mb  # per uploaded file (CHARRNN_MAX_UPLOAD_MB, also Gradio's max_file_size)
    max_chars: int = 20_000_000  # characters of training text (CHARRNN_TRAIN_MAX_CHARS)
    kept_models: int = 50  # trained models kept on the host; the oldest go first (CHARRNN_TRAIN_KEEP)
    keep_hours: int = 7 * 24  # trained models older than this are deleted (CHARRNN_TRAIN_KEEP_HOURS)
    local_paths: bool = False  # may a dataset name be a folder on this host? (CHARRNN_TRAIN_LOCAL_PATHS=1)
    share: bool = False  # trained models listed to every visitor (CHARRNN_SHARE_TRAINED=1)
    # May a push without the visitor's own token use the host's login (HF_TOKEN, `hf auth login`)? On a public
    # Space that would let any visitor write to the owner's repos (CHARRNN_TRAIN_HOST_TOKEN=1)
    host_token: bool = False

    @classmethod
    def from_env(cls) -> "TrainLimits":
        return cls(jobs=env_int("CHARRNN_TRAIN_JOBS", cls.jobs),
                   max_minutes=env_int("CHARRNN_TRAIN_MAX_MINUTES", cls.max_minutes),
                   upload_mb=env_int("CHARRNN_MAX_UPLOAD_MB", cls.upload_mb),
                   max_chars=env_int("CHARRNN_TRAIN_MAX_CHARS", cls.max_chars),
                   kept_models=env_int("CHARRNN_TRAIN_KEEP", cls.kept_models),
                   keep_hours=env_int("CHARRNN_TRAIN_KEEP_HOURS", cls.keep_hours),
                   local_paths=_env_flag("CHARRNN_TRAIN_LOCAL_PATHS"),
                   share=_env_flag("CHARRNN_SHARE_TRAINED"),
                   host_token=_env_flag("CHARRNN_TRAIN_HOST_TOKEN"))


def user_models_dir() -> Path:
    """Where trained models live: CHARRNN_USER_MODELS, else user-models/ in the data folder."""
    return Path(os.environ.get("CHARRNN_USER_MODELS") or data_dir() / "user-models")


# ---------------------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class JobSettings:
    """What a person chooses for a job. `params` is used with size "custom"."""

    name: str = "my-model"
    cell: str = "lstm"
    size: str = "small"
    params: str | None = None
    minutes: float = 3
    dropout: float = 0.2
    lr: float = 3e-3
    batch_size: int = 16
    seq_len: int = 64
    tokenizer: str = "char"

    def checked(self, limits: TrainLimits) -> "JobSettings":
        """The same settings with every value checked (values arrive raw from the page or the API)."""
        name = inputs.text(self.name, "the model name", 40, allow_empty=False).strip()
        check(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.-]*", name) is not None and ".." not in name,
              f"the model name {name!r} may hold only letters, digits, spaces, '_', '-' and '.' (no '/' or '..'), "
              "and must start with a letter or digit")
        size = inputs.choice(self.size, "the size", (*SIZE_PRESETS, "custom"))
        params = None
        if size == "custom":
            params = inputs.text(self.params, "the parameter count", 20, allow_empty=False)
            count = parse_count(params)
            check(10_000 <= count <= 50_000_000, f"the parameter count must be between 10k and 50M, got {params}")
        return JobSettings(
            name=name,
            cell=inputs.choice(self.cell, "the cell", CELLS),
            size=size, params=params,
            minutes=inputs.number(self.minutes, "the minutes of training", 0.1, limits.max_minutes),
            dropout=inputs.number(self.dropout, "the dropout", 0, 0.9),
            lr=inputs.number(self.lr, "the learning rate", 1e-5, 0.1),
            batch_size=inputs.integer(self.batch_size, "the batch size", 1, 512),
            seq_len=inputs.integer(self.seq_len, "the sequence length", 2, 1024),
            tokenizer=inputs.choice(self.tokenizer, "the tokenizer", TOKENIZERS))

    @property
    def param_budget(self) -> int:
        return parse_count(self.params) if self.size == "custom" else SIZE_PRESETS[self.size]


# ---------------------------------------------------------------------------------------------------------
# Text in


@dataclass
class TrainingText:
    """The text a job trains on, where it came from, and what the tab shows about it before training."""

    text: str
    sources: list[str]  # as a person names them: "pasted text (N characters)", file names, the dataset's name
    val_fraction: float = 0.1
    preview: dict = field(default_factory=dict)
    dataset: str | None = None  # the dataset named, if any (for the Hub card's metadata)

    @property
    def name(self) -> str:
        """What the model card calls the text: its sources (the first five of many, and how many more)."""
        if len(self.sources) <= 6:
            return ", ".join(self.sources)
        return f"{', '.join(self.sources[:5])} and {len(self.sources) - 5} more"


def _read_table(path: Path, suffix: str, where: str) -> str:
    """The text column of a .csv, .jsonl or .parquet file, one row per line."""
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path)
        elif suffix == ".jsonl":
            frame = pd.read_json(path, lines=True)
        else:
            frame = pd.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - pandas and pyarrow raise many types for a damaged file
        raise CharRNNError(f"{where} could not be read as {suffix[1:]} ({type(err).__name__}: {err})") from None
    strings = [c for c in frame.columns if frame[c].map(lambda value: isinstance(value, str)).any()]
    column = "text" if "text" in strings else (strings[0] if len(strings) == 1 else None)
    check(column is not None, f"{where} has no single text column (its columns: {', '.join(map(str, frame.columns))});"
                              " name the text column 'text'")
    return "\n".join(value for value in frame[column] if isinstance(value, str))


def _file_label(name: str) -> str:
    """An uploaded file's name as the preview and the model card show it: no folder, printable, without the
    characters that would end a Markdown table cell or code span, at most 80 characters."""
    return "".join(ch if ch.isprintable() and ch not in "|`<>" else "_" for ch in Path(name).name)[:80] or "a file"


def read_upload(path: str | Path, name: str | None = None, max_mb: int = LIMITS.upload_mb) -> str:
    """The text of one uploaded file: .txt/.md as UTF-8, the text column of .csv/.jsonl/.parquet."""
    path = Path(path)
    name = name or path.name
    suffix = Path(name).suffix.lower()
    check(suffix in TEXT_FILES + TABLE_FILES,
          f"{name}: only {', '.join(TEXT_FILES + TABLE_FILES)} files are read; save your text as .txt")
    try:
        size = path.stat().st_size
    except OSError:
        raise CharRNNError(f"{name} could not be read: the upload is gone; upload it again") from None
    check(size <= max_mb * 1_000_000, f"{name} is {size / 1e6:.1f} MB; files of at most {max_mb} MB are accepted")
    with open(path, "rb") as f:
        head = f.read(1024)
    check(not head.startswith(b"%PDF"), f"{name} is a PDF, not text: copy its text into a .txt file and upload that")
    if suffix in TABLE_FILES:
        return _read_table(path, suffix, name)
    data = path.read_bytes()
    check(b"\x00" not in data[:65536], f"{name} looks like a binary file (it holds NUL bytes), not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CharRNNError(f"{name} is not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8 and "
                           "upload it again") from None


def _unusual(text: str, counts: dict[str, int]) -> list[str]:
    """Characters a person may not mean to train on: control, format, private-use and unassigned characters,
    and characters seen fewer than three times (the model cannot learn them)."""
    odd = [ch for ch, n in counts.items()
           if (unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cn", "Cs") and ch not in "\n\t") or n < 3]
    return sorted(odd, key=lambda ch: counts[ch])


def suggested_size(chars: int) -> tuple[str, int]:
    """The README's rule of thumb made concrete: about 3 parameters per character of text (Tiny Shakespeare's
    1M characters support 3-5M parameters); past that, overfitting and not compute is the limit. Returns the
    largest preset within the suggestion (at least tiny) and the suggested parameter count."""
    suggestion = int(min(max(3 * chars, 50_000), 20_000_000))
    fitting = [name for name, params in SIZE_PRESETS.items() if params <= suggestion]
    return (fitting[-1] if fitting else "tiny"), suggestion


def describe_text(text: str, batch_size: int = 16, seq_len: int = 64) -> dict:
    """What the tab shows before training: characters, distinct characters, the validation share, unusual
    characters and a suggested size; raises when the text cannot make one batch."""
    chars = len(text)
    val_fraction = min(0.1, MAX_VAL_CHARS / max(chars, 1))
    val_chars = int(chars * val_fraction)
    train_chars = chars - val_chars
    needed = batch_size * seq_len + seq_len + 1
    check(train_chars >= needed,
          f"the text is {chars:,} characters long; training needs at least {math.ceil(needed / 0.9):,} "
          f"(one batch of {batch_size} x {seq_len} characters, plus a tenth for validation). Give more text, or a "
          "smaller batch or sequence length under Advanced")
    counts: dict[str, int] = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    preset, suggestion = suggested_size(chars)
    return {"characters": chars, "distinct characters": len(counts), "training characters": train_chars,
            "validation characters": val_chars, "validation share": val_fraction,
            "unusual characters": _unusual(text, counts)[:30], "suggested size": preset,
            "suggested parameters": suggestion}


def read_at_most(chunks, limit: int) -> tuple[str, bool]:
    """The text of a chunk stream up to `limit` characters, and whether there was more. Reading stops at the
    first chunk past the limit; a cut text ends at its last line break when that keeps at least half of it, so
    no row or line is cut in half."""
    parts, total = [], 0
    with contextlib.closing(chunks):  # closes the files or dataset stream left half read
        for chunk in chunks:
            if total + len(chunk) > limit:
                parts.append(chunk[:limit - total])
                text = "".join(parts)
                line_end = text.rfind("\n")
                return (text[:line_end] if line_end >= limit // 2 else text), True
            parts.append(chunk)
            total += len(chunk)
    return "".join(parts), False


def preview_markdown(preview: dict, sources: list[str]) -> str:
    unusual = preview["unusual characters"]
    shown = " ".join(repr(ch)[1:-1] if not ch.isprintable() else ch for ch in unusual)
    return "\n".join([
        f"**{preview['characters']:,} characters**, {preview['distinct characters']} distinct, from "
        f"{', '.join(sources)}.",
        f"- validation: the last {preview['validation share']:.1%} ({preview['validation characters']:,} characters)"
        f"; training: {preview['training characters']:,} characters",
        f"- unusual characters: {shown or 'none'}" + (" (control, private-use or seen fewer than 3 times)"
                                                        if unusual else ""),
        f"- suggested size: **{preview['suggested size']}** (about {preview['suggested parameters'] / 1e6:.1f}M "
        "parameters suit this much text; a bigger model overfits, watch the validation curve)",
        *(f"- {note}" for note in preview.get("notes", ())),
    ])


# ---------------------------------------------------------------------------------------------------------
# Jobs


def _owner_dir(owner: str) -> str:
    """A folder name for a session key: its hash, so the key itself never reaches the disk."""
    return hashlib.sha256(owner.encode("utf-8")).hexdigest()[:16]


@dataclass
class Job:
    id: str
    owner: str
    settings: JobSettings
    folder: Path
    created: float = field(default_factory=time.time)
    state: str = "queued"
    message: str = ""
    budget_minutes: float = 0.0  # total training minutes of the run, earlier invocations included
    process: subprocess.Popen | None = field(default=None, repr=False)
    stop_requested: bool = False
    started: float | None = None  # wall clock when the current invocation started
    metrics: list = field(default_factory=list, repr=False)  # parsed metrics.jsonl records
    metrics_offset: int = 0
    val_fraction: float = 0.1
    data_name: str = ""  # what the model card calls the text (TrainingText.name)
    dataset: str | None = None  # the dataset named, if any
    owner_key_hash: str = ""  # for a job found on disk at start: whose it is, until that session comes back

    @property
    def model_name(self) -> str:
        return f"trained/{self.settings.name.replace(' ', '-')}-{self.id[:6]}"

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running", "stopping")

    def save(self) -> None:
        record = {"id": self.id, "owner": _owner_dir(self.owner), "settings": asdict(self.settings),
                  "created": self.created, "state": self.state, "message": self.message,
                  "budget_minutes": self.budget_minutes, "data_name": self.data_name, "dataset": self.dataset}
        (self.folder / "job.json").write_text(json.dumps(record), encoding="utf-8")


def _error_message(log: Path, returncode: int) -> str:
    """The trainer's own message (its `error: ...` line) or what the exit code says."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: "):]
    if returncode in (-signal.SIGKILL, 137):
        return "the training process was killed (out of memory?); try a smaller model or batch"
    last = next((line for line in reversed(lines) if line.strip()), "")
    return f"training failed (exit code {returncode}): {last[-300:]}" if last else f"training failed ({returncode})"


def _gpu_seconds(manager: "TrainingManager", job: Job) -> int:
    return int(job.budget_minutes * 60) + 120


def _train(manager: "TrainingManager", job: Job) -> int:
    """Run the job's trainer to its end; its exit code. On ZeroGPU this is the app's spaces.GPU function: it
    runs in a forked worker that holds a GPU for the job's minutes (so Stop finds the trainer by its pid file)."""
    return manager._train_process(job)


if spaces is not None:  # decorated at import, as ZeroGPU wants; with a duration from the job's minutes
    _train = spaces.GPU(duration=_gpu_seconds)(_train)


class TrainingManager:
    """Training jobs on this host: a queue of at most `limits.jobs` running trainers, each a child process."""

    def __init__(self, library: ModelLibrary, root: Path | str | None = None, limits: TrainLimits | None = None,
                 python: str = sys.executable, nice: int = 10, threads: int | None = None, eval_seconds: float = 5):
        self.library = library
        self.root = Path(root) if root is not None else user_models_dir()
        self.limits = limits or TrainLimits.from_env()
        self.python, self.nice, self.eval_seconds = python, nice, eval_seconds
        # On a CPU the trainer takes half the cores, so sampling for other visitors keeps the rest.
        self.threads = threads or max(1, (os.cpu_count() or 2) // 2)
        self.jobs: dict[str, Job] = {}
        self.queue: list[str] = []  # ids of queued jobs, first = next
        self._lock = threading.RLock()
        self._speeds: dict[tuple[str, str], float] = {}  # (cell, size) -> training chars/s here
        self._speed_lock = threading.Lock()
        self._load_existing()
        self.clean_up()

    # -- text in ------------------------------------------------------------------------------------------
    def gather(self, pasted=None, files=None, dataset=None, dataset_config=None, text_column=None,
               allowed_upload_dirs: list[Path] | None = None, batch_size: int = 16, seq_len: int = 64
               ) -> TrainingText:
        """The text of a job from pasted text, uploaded files (paths, or (path, name) pairs) and/or a dataset
        name, checked, with its preview. `allowed_upload_dirs`: where uploaded files may be (the app's upload
        folder); a path elsewhere is refused unless the host allows local paths."""
        limits = self.limits
        parts, sources = [], []
        pasted = inputs.text(pasted, "the pasted text", limits.max_chars)
        if pasted.strip():
            parts.append(pasted)
            sources.append(f"pasted text ({len(pasted):,} characters)")
        if files:
            check(isinstance(files, (list, tuple)), "the files must be a list of uploaded files")
            check(len(files) <= 100, f"at most 100 files at once, got {len(files)}")
            for item in files:
                path, name = item if isinstance(item, (list, tuple)) else (item, None)
                path = Path(path)
                if not limits.local_paths and allowed_upload_dirs is not None:
                    resolved = path.resolve()
                    check(any(resolved.is_relative_to(Path(d).resolve()) for d in allowed_upload_dirs),
                          f"{name or path.name} is not an uploaded file")
                parts.append(read_upload(path, name, limits.upload_mb))
                sources.append(_file_label(name or path.name))
        dataset = inputs.text(dataset, "the dataset name", 300).strip()
        notes = []
        if dataset:
            room = limits.max_chars - sum(len(part) + 1 for part in parts)  # + 1: the newline joining the parts
            check(room > 0, f"the pasted text and files already hold the {limits.max_chars:,} characters this host "
                            "accepts; leave out the dataset, or some of the text")
            kept, cut = self._dataset_text(dataset, dataset_config or None, text_column or None, room)
            parts.append(kept)
            sources.append(f"{dataset} (its first {len(kept):,} characters)" if cut else dataset)
            if cut:
                notes.append(f"the text may be at most {limits.max_chars:,} characters on this host, so only the "
                             f"first {len(kept):,} characters of {dataset} are used (up to the end of a line)")
        check(bool(parts), "give some text: paste it, upload files, or name a dataset")
        text = "\n".join(parts)
        check(bool(text.strip()), "the text is empty (only spaces and newlines); give some text")
        check(len(text) <= limits.max_chars,
              f"the text is {len(text):,} characters; at most {limits.max_chars:,} are accepted on this host")
        preview = describe_text(text, batch_size, seq_len)
        preview["notes"] = notes
        return TrainingText(text, sources, preview["validation share"], preview, dataset or None)

    def _dataset_text(self, name: str, config: str | None, column: str | None, room: int) -> tuple[str, bool]:
        """The training split of a named dataset, at most `room` characters of it, and whether it was cut.

        A dataset longer than the host accepts is cut, not refused: the tab has no split box, so a refusal would
        leave no way to train on a big preset (tinystories, wikitext103) or Hub dataset here, and the first
        millions of characters of a corpus are a fair sample of its text. The text is read in chunks and reading
        stops at the cap, so a corpus of gigabytes costs only the characters kept; the preview says what was cut.
        """
        looks_local = name.startswith(("/", ".", "~")) or Path(name).exists() or "\\" in name
        if looks_local and not self.limits.local_paths:
            raise CharRNNError(f"{name!r} is a path on the server, and this host does not read its own folders "
                               "(CHARRNN_TRAIN_LOCAL_PATHS=1 allows it); upload the files instead")
        from charrnn.data import reading, resolve_source  # torch: not needed to build the page

        try:
            source = resolve_source(name, config, text_column=column)
            return read_at_most(reading.split_chunks(source, source.split), room)
        except CharRNNError as err:
            raise CharRNNError(f"the dataset {name!r} could not be loaded: {err}") from None
        except Exception as err:  # noqa: BLE001 - datasets raises many kinds
            raise CharRNNError(f"the dataset {name!r} could not be loaded ({type(err).__name__}: {err})") from None

    # -- sizes ----------------------------------------------------------------------------------------------
    def size_table(self, cell: str = "lstm", vocab_size: int = 80, measure: bool = True) -> pd.DataFrame:
        """The size presets for a cell, as the tab shows them: layers x hidden, parameters ("3.3M") and training
        characters per second measured on this host ("12,300", three figures; a few steps of the real training
        step, once per cell and size; "" before it is measured)."""
        rows = []
        for size, budget in SIZE_PRESETS.items():
            hidden = hidden_size_for_params(budget, cell, vocab_size, 64, 2)
            speed = self.measured_speed(cell, size) if measure else self._speeds.get((cell, size))
            rows.append({"size": size, "layers x hidden": f"2 x {hidden}",
                         "parameters": format_count(count_params(cell, hidden, vocab_size, 64, 2)),
                         "training chars/s here": f"{round(speed, 2 - int(math.log10(speed))):,.0f}" if speed else ""})
        return pd.DataFrame(rows, columns=["size", "layers x hidden", "parameters", "training chars/s here"])

    def measured_speed(self, cell: str, size: str) -> float:
        """Training characters per second of a size preset here (for an 80-character vocabulary, batch 16 x 64),
        measured once; its own lock, so measuring never holds up the jobs."""
        with self._speed_lock:
            if (cell, size) not in self._speeds:
                hidden = hidden_size_for_params(SIZE_PRESETS[size], cell, 80, 64, 2)
                self._speeds[cell, size] = _measure_speed(cell, hidden, 80, 16, 64, threads=self.threads)
            return self._speeds[cell, size]

    # -- jobs ---------------------------------------------------------------------------------------------
    def submit(self, owner: str, text: TrainingText, settings: JobSettings) -> Job:
        owner = _owner(owner)
        settings = settings.checked(self.limits)
        if settings.batch_size * settings.seq_len + settings.seq_len + 1 > text.preview["training characters"]:
            describe_text(text.text, settings.batch_size, settings.seq_len)  # raises with the message
        with self._lock:
            busy = next((job for job in self.jobs.values() if job.owner == owner and job.active), None)
            if busy is not None:
                raise CharRNNError(f"your model {busy.settings.name!r} is still training or queued; stop it first")
            job_id = uuid.uuid4().hex
            folder = self.root / _owner_dir(owner) / f"{settings.name.replace(' ', '-')}-{job_id[:6]}"
            folder.mkdir(parents=True)
            (folder / "text.txt").write_text(text.text, encoding="utf-8", newline="")
            job = Job(job_id, owner, settings, folder, budget_minutes=settings.minutes,
                      val_fraction=text.val_fraction, data_name=text.name, dataset=text.dataset,
                      message=f"{settings.cell}, {settings.size}, {settings.minutes:g} minutes on {text.name}")
            self.jobs[job_id] = job
            self.queue.append(job_id)
            job.save()
            self._pump()
            return job

    def resume(self, owner: str, job_id: str, minutes: float) -> Job:
        """Train a stopped or finished job for `minutes` more (it continues from its last/ checkpoint)."""
        job = self.job(owner, job_id)
        with self._lock:
            check(job.state in ("stopped", "finished"), f"the model {job.settings.name!r} is {job.state}; only a "
                  "stopped or finished one can be resumed")
            check((job.folder / "last").is_dir(), "this job stopped before its first checkpoint; train it again")
            minutes = inputs.number(minutes, "the minutes of training", 0.1, self.limits.max_minutes)
            done = self._trained_minutes(job)
            check(done + minutes <= self.limits.max_minutes + 1e-9,
                  f"{job.settings.name!r} has trained {done:.1f} minutes; this host allows "
                  f"{self.limits.max_minutes} per model, so at most {max(self.limits.max_minutes - done, 0):.1f} more")
            job.budget_minutes = done + minutes
            job.state, job.stop_requested = "queued", False
            job.message = f"resuming for {minutes:g} more minutes"
            self.queue.append(job.id)
            job.save()
            self._pump()
            return job

    def stop(self, owner: str, job_id: str) -> Job:
        """Stop a job: a queued one leaves the queue; a running trainer saves its weights and exits."""
        job = self.job(owner, job_id)
        with self._lock:
            if job.state == "queued":
                self.queue.remove(job.id)
                job.state = "stopped" if (job.folder / "best").is_dir() else "failed"
                job.message = "stopped before it started" if job.state == "failed" else "stopped"
                job.save()
            elif job.state == "running":
                job.stop_requested = True
                job.state = "stopping"
                # The trainer saves last/ and best/, then exits (before its loop, it just exits). Without a
                # process here it is being started (and is stopped once it is), or runs in a ZeroGPU worker.
                if job.process is not None:
                    job.process.send_signal(signal.SIGTERM)
                else:
                    _signal_pid_file(job.folder / "trainer.pid")
        return job

    def job(self, owner: str, job_id: str) -> Job:
        owner = _owner(owner)
        job = self.jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None or (job.owner != owner and not self.limits.share):
            raise CharRNNError("no such training job in this session")
        return job

    def latest(self, owner: str) -> Job | None:
        """The session's most recent job (to show again after a page reload)."""
        owner = _owner(owner)
        mine = [job for job in self.jobs.values() if job.owner == owner]
        return max(mine, key=lambda job: job.created) if mine else None

    def position(self, job: Job) -> int | None:
        """1 for the next job to start, None when not queued."""
        with self._lock:
            return self.queue.index(job.id) + 1 if job.id in self.queue else None

    def model_names(self, owner: str | None) -> list[str]:
        """Trained models this session may pick (all of them when the host shares them), newest first."""
        with self._lock:
            jobs = [job for job in self.jobs.values()
                    if job.model_name in self.library.extra and (self.limits.share or job.owner == owner)]
        return [job.model_name for job in sorted(jobs, key=lambda job: -job.created)]

    def wait(self, owner: str, job_id: str, timeout: float = 60) -> Job:
        """Block until the job is no longer queued or running (for scripts and tests)."""
        job = self.job(owner, job_id)
        deadline = time.monotonic() + timeout
        while job.active and time.monotonic() < deadline:
            time.sleep(0.1)
        return job

    # -- progress -----------------------------------------------------------------------------------------
    def progress(self, owner: str, job_id: str) -> dict:
        """What the tab shows while a job trains: state, message, queue position, the curves (a long table of
        minutes against bits/char, training and validation), the latest sample, chars/s, steps, time left and
        the fraction done."""
        job = self.job(owner, job_id)
        records = self._read_metrics(job)
        rows, sample, speed, steps, elapsed, val_bpc = [], "", None, 0, 0.0, None
        per_char = job.settings.tokenizer == "char"
        for record in records:
            event = record.get("event")
            if event == "train":
                rows.append({"minutes": round(record["elapsed_s"] / 60, 3),
                             "bits/char": round(record["loss"] / math.log(2), 4),
                             "curve": "training" if per_char else "training (bits/token)"})
                speed, steps, elapsed = record.get("chars_per_s"), record["step"], record["elapsed_s"]
            elif event == "eval":
                rows.append({"minutes": round(record["elapsed_s"] / 60, 3), "bits/char": round(record["val_bpc"], 4),
                             "curve": "validation"})
                sample = record.get("sample", sample)
                steps, elapsed, val_bpc = max(steps, record["step"]), max(elapsed, record["elapsed_s"]), record["val_bpc"]
        budget = job.budget_minutes * 60
        return {"state": job.state, "message": job.message, "position": self.position(job),
                "curve": pd.DataFrame(rows, columns=["minutes", "bits/char", "curve"]),
                "sample": sample, "chars_per_s": speed, "steps": steps, "elapsed_s": elapsed, "val_bpc": val_bpc,
                "seconds_left": max(budget - elapsed, 0.0) if job.active else 0.0,
                "fraction": 1.0 if job.state == "finished" else min(elapsed / budget, 1.0) if budget else 0.0,
                "model": job.model_name if job.model_name in self.library.extra else None}

    def _read_metrics(self, job: Job) -> list[dict]:
        """metrics.jsonl's records, reading only what was appended since the last call."""
        path = job.folder / "metrics.jsonl"
        try:
            with open(path, "rb") as f:
                f.seek(job.metrics_offset)
                data = f.read()
        except OSError:
            return job.metrics
        complete = data[:data.rfind(b"\n") + 1]  # a line being written is read next time
        job.metrics_offset += len(complete)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            try:
                job.metrics.append(json.loads(line))
            except ValueError:
                continue
        return job.metrics

    # -- downloads and the Hub ----------------------------------------------------------------------------
    def zip(self, owner: str, job_id: str) -> Path:
        """A zip of the job's best/ checkpoint (model.safetensors and config.json), in a temporary folder."""
        job = self.job(owner, job_id)
        check((job.folder / "best").is_dir(), "this job has no model yet: wait for its first evaluation")
        out = Path(tempfile.mkdtemp(prefix="charrnn-model-")) / job.model_name.split("/")[1]
        return Path(shutil.make_archive(str(out), "zip", job.folder / "best"))

    def push(self, owner: str, job_id: str, repo_id, token=None, oauth_token=None) -> str:
        """Push the job's model to the Hub as `repo_id` (user/name) with a model card; returns the commit URL.

        The token is the visitor's: `token` as typed, else `oauth_token`, that of the visitor signed in with
        Hugging Face (a gr.OAuthToken, or anything with a `.token`). The host's own login is used only where the
        host allows it (TrainLimits.host_token)."""
        from charrnn.card import hub_datasets
        from charrnn.hub import HUB_ID, push_to_hub

        job = self.job(owner, job_id)
        repo_id = inputs.text(repo_id, "the Hub repository", 200, allow_empty=False).strip()
        check(HUB_ID.fullmatch(repo_id) is not None, f"{repo_id!r} is not a Hub repository: write user/name")
        check((job.folder / "best").is_dir(), "this job has no model yet: wait for its first evaluation")
        signed_in = getattr(oauth_token, "token", None)
        token = inputs.text(token, "the token", 500).strip() or (signed_in if isinstance(signed_in, str) else "")
        check(bool(token) or self.limits.host_token,
              "pushing to the Hub needs your Hugging Face token with write access: sign in with Hugging Face where "
              "the page offers it, or paste a token from https://huggingface.co/settings/tokens")
        # The card's Hub metadata names the dataset the text came from (the checkpoint's --dataset is text.txt).
        datasets = hub_datasets({"dataset": [job.dataset]}) if job.dataset else []
        return push_to_hub(job.folder, repo_id, token=token or None, datasets=datasets)

    # -- running ------------------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Start queued jobs while fewer than `limits.jobs` run."""
        with self._lock:
            while self.queue and sum(job.state in ("running", "stopping") for job in self.jobs.values()) < self.limits.jobs:
                job = self.jobs[self.queue.pop(0)]
                job.state, job.started = "running", time.time()
                job.save()
                threading.Thread(target=self._run, args=(job,), daemon=True, name=f"train-{job.id[:6]}").start()

    def _command(self, job: Job) -> list[str]:
        """The trainer's command line. It runs in the job's folder with paths relative to it, so the command and
        the config it stores in the checkpoint (shown on the model cards, pushed to the Hub) hold no server path;
        --data-name gives the cards the text's name as the person gave it."""
        s = job.settings
        gpu = ZERO_GPU or _has_cuda()
        # A training point every few steps, and a validation point (with a sample) every ~5% of the run,
        # between every `eval_seconds` and every 30 seconds: a live curve on a slow CPU and on a fast GPU.
        eval_seconds = min(max(job.budget_minutes * 60 / 20, self.eval_seconds), 30)
        common = ["--time-budget", f"{job.budget_minutes:g}", "--eval-seconds", f"{eval_seconds:g}",
                  "--eval-interval", "1000000000", "--log-interval", "25" if gpu else "5",
                  "--sample-chars", str(SAMPLE_CHARS), "--no-progress", "--out", "."]
        common += ["--device", "cuda"] if gpu else ["--device", "cpu", "--threads", str(self.threads)]
        if (job.folder / "last").is_dir():
            return [self.python, "-m", "charrnn.train", "--resume", ".", *common]
        named = ["--data-name", job.data_name] if job.data_name else []
        return [self.python, "-m", "charrnn.train", "--dataset", "text.txt", *named,
                "--val-fraction", f"{job.val_fraction:.6f}", "--cell", s.cell, "--params", str(s.param_budget),
                "--dropout", f"{s.dropout:g}", "--lr", f"{s.lr:g}", "--batch-size", str(s.batch_size),
                "--seq-len", str(s.seq_len), "--tokenizer", s.tokenizer, *common]

    def _run(self, job: Job) -> None:
        try:
            returncode = _train(self, job)
        except Exception as err:  # noqa: BLE001 - whatever happens, the job ends with a message
            returncode, job.message = -1, f"training could not start ({type(err).__name__}: {err})"
        with self._lock:
            job.process = None
            has_model = (job.folder / "best").is_dir()
            if returncode == 0 and not job.stop_requested:
                job.state, job.message = "finished", "finished"
            elif job.stop_requested or returncode == 130:
                job.state = "stopped" if has_model else "failed"
                job.message = "stopped; Resume continues it" if has_model else "stopped before its first evaluation"
            else:
                job.state = "failed"
                if returncode != -1:
                    job.message = _error_message(job.folder / "log.txt", returncode)
                if has_model:
                    job.message += " (the best weights so far are kept)"
            if has_model:
                self.library.add(job.model_name, job.folder / "best")
            job.save()
            self._pump()
        self.clean_up()

    def _train_process(self, job: Job) -> int:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_DIR.parent),
                                                                         os.environ.get("PYTHONPATH")])),
                   OMP_NUM_THREADS=str(self.threads), PYTHONUNBUFFERED="1")
        # A lower CPU priority: the page and other visitors' sampling come first.
        nice = ["nice", "-n", str(self.nice)] if self.nice and shutil.which("nice") else []
        with open(job.folder / "log.txt", "ab") as log, self._lock:
            # In the job's folder (see _command); in a session of its own: a Ctrl-C in the server's terminal is
            # for the server, not the trainer.
            job.process = subprocess.Popen(
                [*nice, *self._command(job)], stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env,
                cwd=job.folder, start_new_session=True)
            (job.folder / "trainer.pid").write_text(str(job.process.pid))
            if job.stop_requested:  # Stop arrived while it was starting
                job.process.send_signal(signal.SIGTERM)
        try:
            return _wait(job.process, job.budget_minutes * 60)
        finally:
            (job.folder / "trainer.pid").unlink(missing_ok=True)

    @staticmethod
    def _trained_minutes(job: Job) -> float:
        try:
            metrics = json.loads((job.folder / "last" / "config.json").read_text()).get("metrics", {})
            return metrics.get("train_seconds", 0) / 60
        except (OSError, ValueError):
            return job.budget_minutes

    # -- what is kept -------------------------------------------------------------------------------------
    def _load_existing(self) -> None:
        """Jobs of earlier runs of the app: their models are listed again (a job cut off by a restart is
        marked stopped, and can be resumed)."""
        for record_file in sorted(self.root.glob("*/*/job.json")):
            try:
                record = json.loads(record_file.read_text(encoding="utf-8"))
                job = Job(record["id"], "", JobSettings(**record["settings"]), record_file.parent,
                          created=record["created"], state=record["state"], message=record["message"],
                          budget_minutes=record["budget_minutes"], data_name=record.get("data_name", ""),
                          dataset=record.get("dataset"))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            job.owner_key_hash = record["owner"]
            if job.state in ("queued", "running", "stopping"):
                job.state, job.message = "stopped", "stopped when the app restarted; Resume continues it"
            self.jobs[job.id] = job
            if (job.folder / "best").is_dir():
                self.library.add(job.model_name, job.folder / "best")

    def claim(self, owner: str) -> None:
        """Give a returning session its jobs from an earlier run of the app (stored by the key's hash)."""
        owner = _owner(owner)
        with self._lock:
            for job in self.jobs.values():
                if not job.owner and job.owner_key_hash == _owner_dir(owner):
                    job.owner = owner

    def clean_up(self) -> None:
        """Delete trained models older than the host keeps them, then the oldest beyond the number it keeps."""
        with self._lock:
            done = sorted((job for job in self.jobs.values() if not job.active), key=lambda job: job.created)
            too_old = time.time() - self.limits.keep_hours * 3600
            doomed = [job for job in done if job.created < too_old]
            kept = [job for job in done if job.created >= too_old]
            doomed += kept[:max(len(kept) - self.limits.kept_models, 0)]
            for job in doomed:
                self.library.remove(job.model_name)
                del self.jobs[job.id]
                shutil.rmtree(job.folder, ignore_errors=True)


def _wait(process: subprocess.Popen, budget_seconds: float) -> int:
    """The trainer stops itself at its time budget; loading and the last evaluation get 2 more minutes, then it
    is asked to stop, and 15 s later killed."""
    try:
        return process.wait(timeout=budget_seconds + 120)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()


def _signal_pid_file(pid_file: Path) -> None:
    try:
        os.kill(int(pid_file.read_text()), signal.SIGTERM)
    except (OSError, ValueError):  # not started yet, or already gone
        pass


def _owner(value) -> str:
    check(isinstance(value, str) and 8 <= len(value) <= 200, "this page has no session key; reload the page")
    return value


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        return False


def _measure_speed(cell: str, hidden: int, vocab_size: int, batch_size: int, seq_len: int, threads: int,
                   seconds: float = 1.0) -> float:
    """Training characters per second of the trainer's own step for this size, on this host's CPU."""
    import torch

    from charrnn.model import CharRNN
    from charrnn.train.build import make_optimizer
    from charrnn.train.step import train_step

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = CharRNN(ModelConfig(vocab_size=vocab_size, cell=cell, embedding_size=64, hidden_size=hidden))
        optimizer = make_optimizer(model, TrainConfig())
        x = torch.randint(vocab_size, (batch_size, seq_len))
        hidden_state = None
        _, _, hidden_state = train_step(model, optimizer, x, x, hidden_state, None, 1.0)  # warm-up
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or steps < 2:
            _, _, hidden_state = train_step(model, optimizer, x, x, hidden_state, None, 1.0)
            steps += 1
        return steps * batch_size * seq_len / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
