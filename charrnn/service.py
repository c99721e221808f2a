"""What the web UI does, without the UI: find models, stream samples, compare cells, describe models.

Each UI action calls one function here; the functions take plain values, raise CharRNNError for bad input,
and never import gradio, so they are tested and reused directly.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd

from charrnn import hub
from charrnn.checkpoint import CONFIG, WEIGHTS, Checkpoint, find_checkpoints, load_checkpoint
from charrnn.errors import CharRNNError, check
from charrnn.evaluate import evaluate_text
from charrnn.sample import SamplingSettings, encode_prompt, stream
from charrnn.stepper import Stepper

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS_DIR = ROOT / "checkpoints"
SHIPPED_ORDER = ("lstm_best", "lstm", "gru", "rnn")  # listed first, in this order
COMPARE_DEFAULT = ("rnn", "gru", "lstm")
MAX_LENGTH = 5000  # characters per sample: keeps a public Space responsive
MAX_SAMPLES = 4
UPDATE_INTERVAL = 0.05  # seconds between streamed UI updates (each update resends the text so far)
CELL_NAMES = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN (tanh)", "rnn_relu": "RNN (ReLU)"}


@dataclass
class LoadedModel:
    checkpoint: Checkpoint
    stepper: Stepper


class ModelLibrary:
    """The checkpoint folders under a root, and Hub ids (by default those of CHARRNN_MODELS or the README's
    models:), loaded on first use and kept in memory."""

    def __init__(self, root: Path | str = CHECKPOINTS_DIR, hub_ids: list[str] | None = None):
        self.root = Path(root)
        self.hub_ids = hub.listed_models() if hub_ids is None else list(hub_ids)
        self._hub_paths: dict[str, Path] = {}  # resolved once: resolving asks the Hub
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
        return sorted(found, key=lambda n: (order.get(n, len(order)), n)) + self.hub_ids

    def path(self, name: str) -> Path:
        """The folder of a model, checked directly: this runs on every streamed update, so it must not
        scan every checkpoint (the scan only words the error)."""
        if name in self.hub_ids:
            if name not in self._hub_paths:
                self._hub_paths[name] = hub.resolve(name)
            return self._hub_paths[name]
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


def _round(value, digits=3):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(value, digits)


def model_summary(library: ModelLibrary, name: str) -> dict:
    info = library.info(name)
    model, metrics = info["model"], info.get("metrics", {})
    return {
        "model": name,
        "cell": CELL_NAMES.get(model["cell"], model["cell"]),
        "layers x hidden": f"{model['num_layers']} x {model['hidden_size']}",
        "parameters": info.get("num_params"),
        "val bpc": _round(metrics.get("val_bpc")),
        "val nats/char": _round(metrics.get("val_nats")),
        "training minutes": _round(metrics.get("train_seconds", 0) / 60, 1),
        "training chars/s": metrics.get("train_chars_per_s"),
        "steps": metrics.get("steps"),
    }


def model_card(library: ModelLibrary, name: str) -> str:
    """A short Markdown card: what the model is and how good it is."""
    s = model_summary(library, name)
    info = library.info(name)
    metrics = info.get("metrics", {})
    lines = [
        f"**{name}**: {s['cell']}, {s['layers x hidden']}, {s['parameters']:,} parameters, "
        f"dropout {info['model']['dropout']}",
        f"- validation: **{s['val bpc']} bits/char** ({s['val nats/char']} nats/char) on "
        f"{metrics.get('data', {}).get('val_split', 'its validation split')}",
        f"- trained {s['training minutes']} min, {s['steps']} steps, {s['training chars/s']} chars/s on "
        f"{metrics.get('hardware', 'unknown hardware')}",
    ]
    if info.get("command"):
        lines.append(f"- made by `{info['command']}`")
    return "\n".join(lines)


def _check_length(length: int) -> int:
    check(1 <= int(length) <= MAX_LENGTH, f"length must be between 1 and {MAX_LENGTH} characters, got {length}")
    return int(length)


def _seed(seed) -> int | None:
    return None if seed is None or int(seed) < 0 else int(seed)  # -1: a different text each time


def prompt_notes(tokenizer, prompt: str) -> str:
    """What happened to the prompt, in words (empty prompt, characters the model has never seen)."""
    notes = []
    if not prompt:
        notes.append("Empty prompt: starting from a newline.")
    _, unknown = encode_prompt(tokenizer, prompt)
    if unknown:
        shown = " ".join(repr(c) for c in unknown[:20])
        notes.append(f"The model has never seen {shown}: those prompt characters were skipped.")
    return " ".join(notes)


def generate_stream(library: ModelLibrary, name: str, prompt: str = "", length: int = 500, temperature: float = 0.8,
                    top_k: int = 0, top_p: float = 1.0, seed: int | None = 42,
                    num_samples: int = 1) -> Iterator[tuple[list[str], str]]:
    """Yield (texts so far, status line) every UPDATE_INTERVAL seconds and at the end. Texts include the prompt."""
    settings = SamplingSettings(float(temperature), int(top_k), float(top_p))
    length = _check_length(length)
    check(1 <= int(num_samples) <= MAX_SAMPLES, f"number of samples must be between 1 and {MAX_SAMPLES}")
    prompt = prompt or ""
    loaded = library.load(name)
    notes = prompt_notes(loaded.checkpoint.tokenizer, prompt)
    texts = [prompt] * int(num_samples)
    start = last = time.perf_counter()
    made = 0
    for pieces in stream(loaded.checkpoint.model, loaded.checkpoint.tokenizer, prompt, length, settings,
                         _seed(seed), int(num_samples), stepper=loaded.stepper):
        texts = [t + p for t, p in zip(texts, pieces)]
        made += 1
        now = time.perf_counter()
        if now - last >= UPDATE_INTERVAL:
            last = now
            yield texts, notes
    seconds = time.perf_counter() - start
    speed = f"{made * int(num_samples) / max(seconds, 1e-9):,.0f} chars/s"
    yield texts, " ".join(filter(None, [notes, f"{made} characters per sample in {seconds:.2f} s ({speed})."]))


def compare_stream(library: ModelLibrary, names: list[str], prompt: str = "", length: int = 400,
                   temperature: float = 0.8, seed: int | None = 42) -> Iterator[tuple[list[str], list[float]]]:
    """All models write from the same prompt, seed and temperature at the same time, one thread each.

    Yields (texts so far, chars/s of each stream, measured while all run together) every UPDATE_INTERVAL
    seconds and at the end. Closing the generator (the UI's stop button) stops the workers.
    """
    settings = SamplingSettings(float(temperature))
    length = _check_length(length)
    prompt = prompt or ""
    loaded = [library.load(n) for n in names]
    streams = [stream(m.checkpoint.model, m.checkpoint.tokenizer, prompt, length, settings, _seed(seed),
                      stepper=m.stepper) for m in loaded]
    pieces: list[list[str]] = [[] for _ in names]  # appended by the workers, read here
    seconds = [0.0] * len(names)
    cancelled = threading.Event()
    start = time.perf_counter()

    # Each worker runs its model freely (no lock-step): the compiled kernels release the GIL, so the models
    # run on separate cores, and a fast model is not held back by a slow one.
    def run(i: int) -> None:
        for step_pieces in streams[i]:
            if cancelled.is_set():
                return
            pieces[i].append(step_pieces[0])
            seconds[i] = time.perf_counter() - start

    def snapshot() -> tuple[list[str], list[float]]:
        return ([prompt + "".join(p) for p in pieces],
                [len(p) / max(s, 1e-9) for p, s in zip(pieces, seconds)])

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        workers = [pool.submit(run, i) for i in range(len(names))]
        try:
            while not all(w.done() for w in workers):
                wait(workers, timeout=UPDATE_INTERVAL)
                yield snapshot()
            for w in workers:
                w.result()  # a worker's error surfaces here
        finally:
            cancelled.set()
    yield snapshot()


def comparison_table(library: ModelLibrary, names: list[str], speeds: list[float] | None = None) -> pd.DataFrame:
    rows = []
    for i, name in enumerate(names):
        s = model_summary(library, name)
        rows.append({"model": name, "cell": s["cell"], "parameters": s["parameters"], "val bpc": s["val bpc"],
                     "training minutes": s["training minutes"], "steps": s["steps"],
                     "sampling chars/s": round(speeds[i]) if speeds else None})
    return pd.DataFrame(rows)


def validation_curves(library: ModelLibrary, names: list[str]) -> pd.DataFrame:
    """Long-format validation curves: one row per (model, evaluation)."""
    rows = []
    for name in names:
        for point in library.info(name).get("metrics", {}).get("curve", []):
            rows.append({"model": name, "step": point["step"], "minutes": round(point["elapsed_s"] / 60, 2),
                         "val bpc": round(point["val_bpc"], 4)})
    return pd.DataFrame(rows, columns=["model", "step", "minutes", "val bpc"])


def cross_scores(library: ModelLibrary, names: list[str], prompt: str, texts: list[str]) -> pd.DataFrame:
    """Bits per character of each model's generated text (prompt excluded) under every model."""
    rows = []
    for writer, text in zip(names, texts):
        continuation = text[len(prompt):] if text.startswith(prompt) else text
        row = {"text written by": writer}
        for scorer in names:
            loaded = library.load(scorer)
            row[f"bpc under {scorer}"] = (
                round(evaluate_text(loaded.checkpoint.model, loaded.checkpoint.tokenizer, continuation)["bpc"], 3)
                if len(continuation) >= 2 else None)
        rows.append(row)
    return pd.DataFrame(rows)
