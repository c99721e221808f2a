"""A training job's text in: pasted text, uploaded files and a named dataset, read, checked and previewed."""

from __future__ import annotations

import contextlib
import math
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from charrnn.errors import CharRNNError, check
from charrnn.service import inputs
from charrnn.service.inputs import LIMITS
from charrnn.service.training.limits import TrainLimits
from charrnn.service.training.settings import SIZE_PRESETS

TEXT_FILES = (".txt", ".md")
TABLE_FILES = (".csv", ".jsonl", ".parquet")
MAX_VAL_CHARS = 100_000  # a longer validation text makes each evaluation slow; the share shrinks instead


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


def _file_label(name: str) -> str:
    """An uploaded file's name as the preview and the model card show it: no folder, printable, without the
    characters that would end a Markdown table cell or code span, at most 80 characters."""
    return "".join(ch if ch.isprintable() and ch not in "|`<>" else "_" for ch in Path(name).name)[:80] or "a file"


def read_upload(path: str | Path, name: str | None = None, max_mb: int = LIMITS.upload_mb,
                limit: int = TrainLimits.max_chars) -> tuple[str, bool]:
    """At most `limit` characters of one uploaded file's text, and whether it was cut: .txt/.md as UTF-8, the text
    column of .csv/.jsonl/.parquet. Reading stops at the limit (read_at_most), so a file costs what is kept of it,
    not what it unpacks to: a parquet file of kilobytes can hold hundreds of millions of characters."""
    path = Path(path)
    name = name or path.name
    suffix = Path(name).suffix.lower()
    check(suffix in TEXT_FILES + TABLE_FILES,
          f"{name}: only {', '.join(TEXT_FILES + TABLE_FILES)} files are read; save your text as .txt")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(65536)
    except OSError:
        raise CharRNNError(f"{name} could not be read: the upload is gone; upload it again") from None
    check(size <= max_mb * 1_000_000, f"{name} is {size / 1e6:.1f} MB; files of at most {max_mb} MB are accepted")
    check(not head.startswith(b"%PDF"), f"{name} is a PDF, not text: copy its text into a .txt file and upload that")
    from charrnn.data import reading, tables  # torch: not needed to build the page

    if suffix in TABLE_FILES:
        return read_at_most(tables.table_chunks(path, suffix[1:], name), limit)
    check(b"\x00" not in head, f"{name} looks like a binary file (it holds NUL bytes), not text")
    try:
        return read_at_most(reading.text_file_chunks(path), limit)
    except reading.NotUTF8 as err:
        raise CharRNNError(f"{name} is not UTF-8 text (byte {err.byte}: {err.reason}); save it as UTF-8 and "
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


def min_text_chars(batch_size: int = 16, seq_len: int = 64) -> int:
    """The shortest text that trains: one batch of `batch_size` x `seq_len` characters (plus the next one to
    predict) after a tenth is held out for validation. The tab states it before anyone tries."""
    return math.ceil((batch_size * seq_len + seq_len + 1) / 0.9)


def describe_text(text: str, batch_size: int = 16, seq_len: int = 64) -> dict:
    """What the tab shows before training: characters, distinct characters, the validation share, unusual
    characters and a suggested size; raises when the text cannot make one batch."""
    chars = len(text)
    val_fraction = min(0.1, MAX_VAL_CHARS / max(chars, 1))
    val_chars = int(chars * val_fraction)
    train_chars = chars - val_chars
    needed = batch_size * seq_len + seq_len + 1
    check(train_chars >= needed,
          f"the text is {chars:,} characters long; training needs at least {min_text_chars(batch_size, seq_len):,} "
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
        f"- suggested size: **{preview['suggested size']}** ({SIZE_PRESETS[preview['suggested size']] / 1e6:.1f}M "
        f"parameters; this much text suits about {preview['suggested parameters'] / 1e6:.1f}M: a bigger model "
        "overfits, watch the validation curve)",
        *(f"- {note}" for note in preview.get("notes", ())),
    ])


# -- text in ------------------------------------------------------------------------------------------
def gather(limits: TrainLimits, pasted=None, files=None, dataset=None, dataset_config=None, text_column=None,
           allowed_upload_dirs: list[Path] | None = None, batch_size: int = 16, seq_len: int = 64
           ) -> TrainingText:
    """The text of a job from pasted text, uploaded files (paths, or (path, name) pairs) and/or a dataset
    name, checked, with its preview. `allowed_upload_dirs`: where uploaded files may be (the app's upload
    folder); a path elsewhere is refused unless the host allows local paths.

    Pasted text longer than the host accepts is refused (it is already in memory); a file or a dataset that
    would make the text longer is cut, and read only up to the cut, and the preview says so."""
    parts, sources, notes = [], [], []

    def add(text: str, source: str, cut: bool) -> None:
        parts.append(text)
        sources.append(f"{source} (its first {len(text):,} characters)" if cut else source)
        if cut:
            notes.append(f"the text may be at most {limits.max_chars:,} characters on this host, so only the "
                         f"first {len(text):,} characters of {source} are used (up to the end of a line)")

    def room(what: str) -> int:
        """Characters left for `what` (+ 1: the newline joining the parts)."""
        left = limits.max_chars - sum(len(part) + 1 for part in parts)
        check(left > 0, f"the pasted text and files already hold the {limits.max_chars:,} characters this host "
                        f"accepts; leave out {what}, or some of the text")
        return left

    pasted = inputs.text(pasted, "the pasted text", limits.max_chars)
    if pasted.strip():
        add(pasted, f"pasted text ({len(pasted):,} characters)", False)
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
            label = _file_label(name or path.name)
            kept, cut = read_upload(path, name, limits.upload_mb, room(label))
            add(kept, label, cut)
    dataset = inputs.text(dataset, "the dataset name", 300).strip()
    if dataset:
        kept, cut = _dataset_text(limits, dataset, dataset_config or None, text_column or None, room("the dataset"))
        add(kept, dataset, cut)
    check(bool(parts), "give some text: paste it, upload files, or name a dataset")
    text = "\n".join(parts)
    check(bool(text.strip()), "the text is empty (only spaces and newlines); give some text")
    check(len(text) <= limits.max_chars,
          f"the text is {len(text):,} characters; at most {limits.max_chars:,} are accepted on this host")
    preview = describe_text(text, batch_size, seq_len)
    preview["notes"] = notes
    return TrainingText(text, sources, preview["validation share"], preview, dataset or None)


def _dataset_text(limits: TrainLimits, name: str, config: str | None, column: str | None, room: int) -> tuple[str, bool]:
    """The training split of a named dataset, at most `room` characters of it, and whether it was cut.

    A dataset longer than the host accepts is cut, not refused: the tab has no split box, so a refusal would
    leave no way to train on a big preset (tinystories, wikitext103) or Hub dataset here, and the first
    millions of characters of a corpus are a fair sample of its text. The text is read in chunks and reading
    stops at the cap, so a corpus of gigabytes costs only the characters kept; the preview says what was cut.
    """
    from charrnn.data import reading, resolve_source  # torch: not needed to build the page
    from charrnn.data.sources import exists

    looks_local = name.startswith(("/", ".", "~")) or exists(name) or "\\" in name
    if looks_local and not limits.local_paths:
        raise CharRNNError(f"{name!r} is a path on the server, and this host does not read its own folders "
                           "(CHARRNN_TRAIN_LOCAL_PATHS=1 allows it); upload the files instead")

    try:
        source = resolve_source(name, config, text_column=column)
        return read_at_most(reading.split_chunks(source, source.split), room)
    except CharRNNError as err:
        raise CharRNNError(f"the dataset {name!r} could not be loaded: {err}") from None
    except Exception as err:  # noqa: BLE001 - datasets raises many kinds
        raise CharRNNError(f"the dataset {name!r} could not be loaded ({type(err).__name__}: {err})") from None