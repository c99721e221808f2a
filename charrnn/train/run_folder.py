"""The run folder: best/, last/ and metrics.jsonl; finding the checkpoint --resume continues from."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from charrnn.checkpoint.saving import CONFIG, tidy_checkpoint
from charrnn.errors import CharRNNError

if TYPE_CHECKING:
    from charrnn.train.recipe import Recipe

METRICS = "metrics.jsonl"
RECIPE = "recipe.json"  # what a --time-budget recipe chose for the run, why, and the command that repeats it


def find_resume_checkpoint(resume) -> Path:
    """The checkpoint `--resume RUN` continues from: RUN/last, else RUN/last.old (left by a crash between the
    two renames of a save), else RUN itself when it is a checkpoint folder (RUN/last given directly)."""
    path = Path(resume)
    candidates = [path / "last", path / "last.old", path]
    if path.name == "last":
        candidates.append(path.with_name("last.old"))
    for candidate in candidates:
        if (candidate / CONFIG).is_file():
            return candidate
    if not path.exists():
        raise CharRNNError(f"--resume {path}: no such run folder; check the path (a new run starts with "
                           f"--dataset ... --out {path})")
    if not path.is_dir():
        raise CharRNNError(f"--resume {path} is a file; give the run folder (the --out of the run)")
    start = first_start_record(path)
    if start is None:
        raise CharRNNError(f"--resume {path}: this folder holds no run (no last/ checkpoint, no {METRICS}); "
                           f"give the --out folder of a run")
    again = f": {start['command']}" if start.get("command") else " (the command that started it)"
    raise CharRNNError(f"{path} has no checkpoint yet: the run stopped before its first save (a run saves every "
                       f"--eval-interval steps). Start it again with the same command, without --resume{again}")


def first_start_record(run: Path) -> dict | None:
    """The record a run writes to its metrics.jsonl when it starts (None when there is none)."""
    try:
        lines = (run / METRICS).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a crash
            continue
        if isinstance(record, dict) and record.get("event") == "start":
            return record
    return None


def run_folder_of(checkpoint: Path) -> Path:
    return checkpoint.parent if checkpoint.name in ("last", "last.old") else checkpoint


def check_run_folder(out: Path) -> None:
    """Fail before any work when --out cannot become a run folder (it is made once the model is built)."""
    if out.exists() and not out.is_dir():
        raise CharRNNError(f"--out {out} is a file; give a folder for the run (it will hold best/, last/ and "
                           f"{METRICS})")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CharRNNError(f"--out {out} cannot be made: {existing} is a file; choose another folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CharRNNError(f"--out {out}: no permission to write in {existing}; choose a folder you can write to")


def open_run_folder(out: Path, resumed_from: Path | None = None) -> bool:
    """Make the run folder and tidy what a crash left in it. A run resumed into a new folder takes the old
    folder's best/ and metrics.jsonl with it. Returns whether the folder holds a best/ checkpoint."""
    metrics = out / METRICS
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in ("best", "last"):
            tidy_checkpoint(out / name)
        if resumed_from is not None:
            source = run_folder_of(resumed_from)
            if not (out / "best").exists() and (source / "best" / CONFIG).is_file():
                shutil.copytree(source / "best", out / "best")
            for name in (METRICS, RECIPE):
                if not (out / name).exists() and (source / name).is_file():
                    shutil.copyfile(source / name, out / name)
        with open(metrics, "a+b") as f:
            # A kill during a write leaves a line cut short: end it, so the next record starts a line.
            size = f.seek(0, os.SEEK_END)
            if size and (f.seek(size - 1), f.read(1))[1] != b"\n":
                f.write(b"\n")
    except OSError as err:
        raise CharRNNError(f"cannot write the run folder --out {out} ({err.strerror or err}); choose a "
                           f"folder you can write to") from None
    return (out / "best").is_dir()


def write_recipe(out: Path, recipe: Recipe, chosen: tuple[str, ...], command: str | None) -> None:
    record = {"chosen": recipe.settings(chosen), "flags": shlex.join(recipe.flags(chosen)),
              "reasons": recipe.reasons(chosen), "command": command, **recipe.to_dict()}
    (out / RECIPE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def append_metrics(out: Path, record: dict) -> None:
    with open(out / METRICS, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
