"""Streaming samples: one model's text as it is written, and several models writing at once (one thread each)."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Iterator

from charrnn.errors import check
from charrnn.sample import SamplingSettings, encode_prompt, stream
from charrnn.service.library import ModelLibrary

MAX_LENGTH = 5000  # characters per sample: keeps a public Space responsive
MAX_SAMPLES = 4
UPDATE_INTERVAL = 0.05  # seconds between streamed UI updates (each update resends the text so far)


def _check_length(length: int) -> int:
    check(1 <= int(length) <= MAX_LENGTH, f"length must be between 1 and {MAX_LENGTH} characters, got {length}")
    return int(length)


def _seed(seed) -> int:
    """-1 (or None): a different text each time. The seed is drawn here, not inside the sampler, so the status
    line can say which one was used and a good sample can be made again."""
    return random.randrange(2**31) if seed is None or int(seed) < 0 else int(seed)


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
    """Yield (texts so far, status line) every UPDATE_INTERVAL seconds and at the end. Texts include the prompt;
    the last status line says how fast it went and which seed was used."""
    settings = SamplingSettings(float(temperature), int(top_k), float(top_p))
    length = _check_length(length)
    check(1 <= int(num_samples) <= MAX_SAMPLES, f"number of samples must be between 1 and {MAX_SAMPLES}")
    prompt = prompt or ""
    loaded = library.load(name)
    notes = prompt_notes(loaded.checkpoint.tokenizer, prompt)
    texts = [prompt] * int(num_samples)
    seed = _seed(seed)
    notes_and_seed = " ".join(filter(None, [notes, f"Seed {seed}."]))
    start = last = time.perf_counter()
    made = 0
    for pieces in stream(loaded.checkpoint.model, loaded.checkpoint.tokenizer, prompt, length, settings,
                         seed, int(num_samples), stepper=loaded.stepper):
        texts = [t + p for t, p in zip(texts, pieces)]
        made += 1
        now = time.perf_counter()
        if now - last >= UPDATE_INTERVAL:
            last = now
            yield texts, notes_and_seed
    seconds = time.perf_counter() - start
    speed = f"{made * int(num_samples) / max(seconds, 1e-9):,.0f} chars/s"
    yield texts, " ".join(filter(None, [notes, f"{made} characters per sample in {seconds:.2f} s ({speed}), "
                                               f"seed {seed}."]))


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
