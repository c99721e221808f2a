"""Streaming samples: one model's text as it is written, and several models writing at once (one thread each)."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Iterator

import pandas as pd

from charrnn.checkpoint.saving import Checkpoint
from charrnn.errors import check
from charrnn.evaluate import continuation_bpc
from charrnn.sampling.beam import BeamSearch
from charrnn.sampling.generate import SamplingSettings, encode_prompt
from charrnn.service import inputs
from charrnn.service.inputs import LIMITS
from charrnn.service.library import ModelLibrary

MAX_LENGTH = LIMITS.sample_chars  # characters per sample: keeps a public Space responsive
MAX_SAMPLES = LIMITS.samples
MAX_BEAM = LIMITS.beam_width
MAX_COMPARED = 3  # models writing at once in Compare: the page's three columns
# Seconds between streamed updates: ten a second reads as smooth typing. Each update costs the server's one
# event loop a diff of every output and a message (a few ms of Python on a small CPU), and the loop holds the
# GIL the sampling threads need between kernel calls; so the updates of all streams together are capped, and
# with many visitors at once each stream updates less often (20 streams: twice a second).
UPDATE_INTERVAL = 0.1
MAX_UPDATES_PER_SECOND = 40


class _LiveStreams:
    """How many Generate and Compare streams are running in this process."""

    def __init__(self):
        self.count = 0
        self._lock = threading.Lock()

    def __enter__(self):
        with self._lock:
            self.count += 1

    def __exit__(self, *exc):
        with self._lock:
            self.count -= 1

    def update_interval(self) -> float:
        return max(UPDATE_INTERVAL, self.count / MAX_UPDATES_PER_SECOND)


LIVE_STREAMS = _LiveStreams()


def _length(length) -> int:
    return inputs.integer(length, "the length", 1, MAX_LENGTH)


def _prompt(prompt) -> str:
    return inputs.text(prompt, "the prompt", LIMITS.prompt_chars)


def _settings(temperature, top_k=0, top_p=1.0) -> SamplingSettings:
    return SamplingSettings(inputs.number(temperature, "the temperature", 0, 10),
                            inputs.integer(top_k, "top-k", 0, 1_000_000, default=0),
                            inputs.number(1.0 if top_p is None else top_p, "top-p", 0.001, 1))


def _seed(seed) -> int:
    """-1 (or None): a different text each time. The seed is drawn here, not inside the sampler, so the status
    line can say which one was used and a good sample can be made again."""
    seed = inputs.seed(seed)
    return random.randrange(2**31) if seed is None else seed


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
                    top_k: int = 0, top_p: float = 1.0, seed: int | None = 42, num_samples: int = 1,
                    beam_width: int = 0) -> Iterator[tuple[list[str], str]]:
    """Yield (texts so far, status line) every update interval (0.1 s, longer when many stream) and at the end.
    Texts include the prompt. A beam width above 1 searches for the likeliest texts instead of sampling
    (see beam_stream)."""
    settings = _settings(temperature, top_k, top_p)
    length, prompt, seed = _length(length), _prompt(prompt), _seed(seed)
    num_samples = inputs.integer(num_samples, "the number of samples", 1, MAX_SAMPLES, default=1)
    beam_width = inputs.integer(beam_width, "the beam width", 0, MAX_BEAM, default=0)
    loaded = library.load(inputs.model_name(name))
    notes = prompt_notes(loaded.tokenizer, prompt)
    if beam_width > 1:
        yield from beam_stream(loaded.checkpoint, prompt, length, beam_width, num_samples, notes)
        return
    texts = [prompt] * int(num_samples)
    notes_and_seed = " ".join(filter(None, [notes, f"Seed {seed}."]))
    start = last = time.perf_counter()
    made = 0
    with LIVE_STREAMS:
        for pieces in loaded.engine.stream(prompt, length, settings, seed, num_samples, every=UPDATE_INTERVAL):
            texts = [t + p for t, p in zip(texts, pieces)]
            made += 1
            now = time.perf_counter()
            if now - last >= LIVE_STREAMS.update_interval():
                last = now
                yield texts, notes_and_seed
    seconds = time.perf_counter() - start
    unit = "characters" if loaded.tokenizer.kind == "char" else "tokens"
    speed = f"{made * num_samples / max(seconds, 1e-9):,.0f} {unit}/s"
    yield texts, " ".join(filter(None, [notes, f"{made} {unit} per sample in {seconds:.2f} s ({speed}), "
                                               f"seed {seed}."]))


def beam_stream(checkpoint: Checkpoint, prompt: str, length: int, beam_width: int, shown: int = 1,
                notes: str = "") -> Iterator[tuple[list[str], str]]:
    """Beam search (charrnn.sampling.beam, its default length penalty and repetition guard): yield the best `shown`
    beams so far (prompt included) every update interval, and at the end with a status line of their
    log-probabilities. It runs here, on the request's thread, not in the sampling engine: its beams are rows of one
    model's step that are picked again after every token, which the engine's batches of independent rows are not."""
    search = BeamSearch(checkpoint.model, checkpoint.tokenizer, prompt, length, beam_width)
    start = last = time.perf_counter()
    with LIVE_STREAMS:
        for _ in search.run():
            now = time.perf_counter()
            if now - last >= LIVE_STREAMS.update_interval():
                last = now
                yield [prompt + beam.text for beam in search.ranked()[:shown]], notes
    seconds = time.perf_counter() - start
    beams = search.ranked()[:shown]
    unit = "characters" if checkpoint.tokenizer.kind == "char" else "tokens"
    scores = ", ".join(f"{beam.log_prob:.1f} ({beam.bits_per_char:.3f} bits/char)" for beam in beams)
    status = (f"Beam search, width {beam_width}: {search.steps} {unit} in {seconds:.2f} s "
              f"({search.steps * beam_width / max(seconds, 1e-9):,.0f} {unit}/s over all beams); "
              f"log-probability of the text{'s' if len(beams) > 1 else ''} shown: {scores}.")
    yield [prompt + beam.text for beam in beams], " ".join(filter(None, [notes, status]))


def compare_stream(library: ModelLibrary, names: list[str], prompt: str = "", length: int = 400,
                   temperature: float = 0.8, seed: int | None = 42) -> Iterator[tuple[list[str], list[float]]]:
    """All models write from the same prompt, seed and temperature at the same time, one thread each.

    Yields (texts so far, chars/s of each stream, measured while all run together) every update interval and
    at the end. Closing the generator (the UI's stop button) stops the workers.
    """
    settings = _settings(temperature)
    length, prompt, seed = _length(length), _prompt(prompt), inputs.seed(seed)
    check(isinstance(names, (list, tuple)) and 1 <= len(names) <= MAX_COMPARED,
          f"compare one to {MAX_COMPARED} models (a list of names), got {names!r:.60}")
    loaded = [library.load(inputs.model_name(n, f"model {i + 1}")) for i, n in enumerate(names)]
    streams = [m.engine.stream(prompt, length, settings, seed, every=UPDATE_INTERVAL) for m in loaded]
    pieces: list[list[str]] = [[] for _ in names]  # appended by the workers, read here
    seconds = [0.0] * len(names)
    cancelled = threading.Event()
    start = time.perf_counter()

    # Each worker reads its model's stream freely (no lock-step): each model's engine steps on its own threads
    # (the compiled kernels release the GIL), so the models run on separate cores, and a fast model is not held
    # back by a slow one.
    def run(i: int) -> None:
        for step_pieces in streams[i]:
            if cancelled.is_set():
                return
            pieces[i].append(step_pieces[0])
            seconds[i] = time.perf_counter() - start

    def snapshot() -> tuple[list[str], list[float]]:
        return ([prompt + "".join(p) for p in pieces],
                [len(p) / max(s, 1e-9) for p, s in zip(pieces, seconds)])

    try:
        with LIVE_STREAMS, ThreadPoolExecutor(max_workers=len(names)) as pool:
            workers = [pool.submit(run, i) for i in range(len(names))]
            try:
                while not all(w.done() for w in workers):
                    wait(workers, timeout=LIVE_STREAMS.update_interval())
                    yield snapshot()
                for w in workers:
                    w.result()  # a worker's error surfaces here
            finally:
                cancelled.set()
    finally:
        for s in streams:
            s.close()  # takes each model's samples out of its engine's batch
    yield snapshot()


def cross_scores(library: ModelLibrary, names: list[str], prompt: str, texts: list[str]) -> pd.DataFrame:
    """Bits per character of each model's generated text under every model, each read after the prompt as the
    writer was (the prompt itself is not scored)."""
    rows = []
    for writer, text in zip(names, texts):
        continuation = text[len(prompt):] if text.startswith(prompt) else text
        row = {"text written by": writer}  # the columns of score_columns(names)
        for scorer in names:
            checkpoint = library.load(scorer).checkpoint
            context, _ = encode_prompt(checkpoint.tokenizer, prompt)
            bpc = continuation_bpc(checkpoint.model, checkpoint.tokenizer, context, continuation)
            row[f"bits per character under {scorer}"] = None if bpc is None else round(bpc, 3)
        rows.append(row)
    return pd.DataFrame(rows)
