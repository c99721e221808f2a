"""Where a corpus comes from: presets, text files, data files, dataset folders and Hub ids, as a Source."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from charrnn.errors import CharRNNError, check
from charrnn.paths import PRESETS_FILE


def load_presets() -> dict:
    return json.loads(PRESETS_FILE.read_text(encoding="utf-8"))


@dataclass
class Source:
    """Where the text comes from and how to read it."""

    paths: list[str]
    config: str | None = None
    split: str = "train"
    val_split: str = "auto"
    text_column: str | None = None
    separator: str = "\n"
    is_text_files: bool = False
    builder: str | None = None  # for data files: the datasets builder that reads them (parquet, csv, json, arrow)

    @property
    def name(self) -> str:
        return " ".join(self.paths) + (f" ({self.config})" if self.config else "")

    @property
    def on_hub(self) -> bool:
        return not self.is_text_files and self.builder is None and not exists(self.paths[0])


DATA_FILE_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json", ".arrow": "arrow"}
TEXT_SUFFIXES = (".txt", ".text", ".md", *DATA_FILE_BUILDERS)


def exists(path: str) -> bool:
    """Whether a file or folder is there; False for a name no file can have (too long for the file system, a NUL
    byte), which Path.exists raises for: a dataset name is tried as a path before it is taken for a Hub id."""
    try:
        return Path(path).exists()
    except (OSError, ValueError):
        return False


def _looks_like_hub_id(name: str) -> bool:
    """'owner/name' or 'name' of at most 96 characters (the Hub's limit), not a path with a file extension."""
    return (len(name) <= 96 and bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?", name))
            and not name.endswith(TEXT_SUFFIXES))


def resolve_source(dataset: str | list[str], config: str | None = None, split: str = "train",
                   val_split: str = "auto", text_column: str | None = None) -> Source:
    """Turn the --dataset argument(s) into a Source, expanding presets and checking local paths."""
    paths = [dataset] if isinstance(dataset, str) else list(dataset)
    check(len(paths) > 0 and all(paths), "--dataset is empty: give a Hub id, preset, dataset folder or text file")
    presets = load_presets()
    existing = [exists(p) for p in paths]
    if len(paths) == 1 and paths[0] in presets and not existing[0]:
        preset = presets[paths[0]]
        return Source(
            paths=[preset["path"]],
            config=config or preset.get("config"),
            split=split if split != "train" else preset.get("split", "train"),
            val_split=val_split if val_split != "auto" else preset.get("val_split", "auto"),
            text_column=text_column or preset.get("text_column"),
            separator=preset.get("separator", "\n"),
        )
    if all(existing) and all(Path(p).is_file() for p in paths):
        resolved = [str(Path(p).resolve()) for p in paths]
        builders = {DATA_FILE_BUILDERS.get(Path(p).suffix.lower()) for p in paths}
        if builders == {None}:
            return Source(paths=resolved, is_text_files=True)
        check(len(builders) == 1, f"{', '.join(paths)} mix kinds of file: give text files, or data files of one "
                                  f"kind ({', '.join(DATA_FILE_BUILDERS)})")
        return Source(paths=resolved, split=split, val_split=val_split, text_column=text_column,
                      builder=builders.pop())
    if len(paths) == 1 and existing[0] and Path(paths[0]).is_dir():
        return Source(paths=[str(Path(paths[0]).resolve())], config=config, split=split, val_split=val_split,
                      text_column=text_column)
    missing = [p for p, e in zip(paths, existing) if not e]
    if len(paths) > 1:
        raise CharRNNError(f"no such file or folder: {', '.join(missing)}")
    if not _looks_like_hub_id(paths[0]):
        raise CharRNNError(f"no such file or folder, preset or Hub id (user/name, at most 96 characters): {paths[0]}")
    return Source(paths=paths, config=config, split=split, val_split=val_split, text_column=text_column)


def file_fingerprint(path: str | Path) -> str:
    """What changes when a file does, read without opening it: path, size and modification time."""
    stat = Path(path).stat()
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
