"""The model registry: the checkpoint folders under a root, loaded on first use and kept in memory."""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from charrnn.checkpoint import CONFIG, WEIGHTS, Checkpoint, find_checkpoints, load_checkpoint
from charrnn.errors import CharRNNError
from charrnn.sample import stream
from charrnn.stepper import Stepper

ROOT = Path(__file__).resolve().parent.parent.parent
CHECKPOINTS_DIR = ROOT / "checkpoints"
SHIPPED_ORDER = ("lstm_best", "lstm", "gru", "rnn")  # listed first, in this order


@dataclass
class LoadedModel:
    checkpoint: Checkpoint
    stepper: Stepper


class ModelLibrary:
    """The checkpoint folders under a root, loaded on first use and kept in memory."""

    def __init__(self, root: Path | str = CHECKPOINTS_DIR):
        self.root = Path(root)
        self._loaded: dict[str, tuple[float, LoadedModel]] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Text models: shipped ones first, then any other checkpoint folder under the root."""
        found = []
        for path in find_checkpoints(self.root):
            config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
            if config.get("task") is None:  # task models (the memory test) are not text generators
                found.append(path.relative_to(self.root).as_posix())
        order = {name: i for i, name in enumerate(SHIPPED_ORDER)}
        return sorted(found, key=lambda n: (order.get(n, len(order)), n))

    def path(self, name: str) -> Path:
        """The folder of a model, checked directly: this runs on every streamed update, so it must not
        scan every checkpoint (the scan only words the error)."""
        path = (self.root / name).resolve()
        inside = path.is_relative_to(self.root.resolve())
        if not (inside and (path / CONFIG).is_file() and (path / WEIGHTS).is_file()):
            names = self.names()
            raise CharRNNError(f"no model named {name!r} under {self.root}; available: {', '.join(names) or 'none'}")
        return path

    def info(self, name: str) -> dict:
        """config.json of a model, without loading its weights."""
        return json.loads((self.path(name) / CONFIG).read_text(encoding="utf-8"))

    def load(self, name: str) -> LoadedModel:
        path = self.path(name)
        stamp = (path / WEIGHTS).stat().st_mtime
        with self._lock:  # a retrained folder is reloaded; otherwise each model loads once
            cached = self._loaded.get(name)
            if cached is None or cached[0] != stamp:
                checkpoint = load_checkpoint(path)
                cached = (stamp, LoadedModel(checkpoint, Stepper(checkpoint.model)))
                self._loaded[name] = cached
            return cached[1]


def warm_up(library: ModelLibrary) -> None:
    """Load the models and run each for a few characters, so the first click is fast: a fresh install compiles
    the sampling kernels here (~9 s once; numba caches them on disk for later starts)."""
    for name in library.names():
        try:
            loaded = library.load(name)
        except CharRNNError as error:  # a broken folder is reported when picked; it must not stop the app
            print(f"warning: {error}", file=sys.stderr)
            continue
        for _ in stream(loaded.checkpoint.model, loaded.checkpoint.tokenizer, "A", 2, stepper=loaded.stepper):
            pass
