"""Continuous batching: the samples of every caller of one model advance together, one Stepper step for all.

Twenty visitors generating from the same model as twenty separate loops each read every weight at every step and
each give up and retake the GIL at every step. Workers that stack their callers' hidden states read each weight
once per step for all of them, in tiles of rows (charrnn.sampling.tiles), draw the next tokens of all rows in one
call (each row with its caller's settings and random numbers), and take the GIL once per step for all
(`charrnn bench visitors` measures it against one loop per visitor; docs/benchmarks.md has the figures). This is
what LLM servers call continuous batching: a caller joins a running batch at the next step and leaves it when its
text is done, without waiting for the others.

A caller's text does not depend on who else is in the batch: its prompt is read on its own thread (as
`sample.stream` does), it draws from its own random generator, and the kernels give each row the same result
whatever the batch (tested). So a seed gives the same text alone or under load.

On a fresh install the app starts compiling the kernels in a process of its own (warm.py) and builds its engines
with `while_compiling`: until the compiled kernels are ready they step with torch and draw with the draw's own code
run as Python (torch_stepper.py), so the first visitor does not wait for the compiler. The hidden-state layout is
the same, so a running text moves to the compiled kernels at its next step. Until then the promise above is the
weaker one of torch_stepper.py: the same probabilities, not always the same bits.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Iterator

import numpy as np

from charrnn.sampling import kernels, warm
from charrnn.errors import CharRNNError
from charrnn.sampling.generate import Samples, SamplingSettings
from charrnn.sampling.stepper import Stepper
from charrnn.tokenizer import Tokenizer

if TYPE_CHECKING:
    from charrnn.model import CharRNN
    from charrnn.sampling.torch_stepper import TorchStepper

MAX_ROWS = 64  # rows stepped at once by all workers; callers beyond wait for room (a bigger one runs alone)
IDLE_SECONDS = 30.0  # a worker ends after this long without work, and starts again on demand
READY_CHECK_SECONDS = 0.5  # while the kernels compile elsewhere, how often an engine looks whether they are ready


class _Caller:
    """One caller's samples in the batch, and the steps made for it that it has not yet taken."""

    def __init__(self, samples: Samples):
        self.samples = samples
        self.steps: deque[list[str]] = deque()
        self.ready = threading.Event()  # set at every step
        self.over = threading.Event()  # set once finished or failed
        self.error: BaseException | None = None
        self.finished = False
        self.cancelled = False

    def put(self, pieces: list[str]) -> None:
        self.steps.append(pieces)
        self.finished = self.samples.finished
        self.ready.set()
        if self.finished:
            self.over.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.finished = True
        self.ready.set()
        self.over.set()


class _Batch:
    """One worker's callers stacked: the tokens, hidden state and draw settings a step reads, kept from step to
    step and built again only when a caller joins or leaves."""

    def __init__(self, callers: list[_Caller]):
        self.callers = callers
        samples = [caller.samples for caller in callers]
        ends = np.cumsum([s.rows for s in samples]).tolist()
        self.bounds = list(zip([0] + ends[:-1], ends))
        self.tokens = np.concatenate([s.tokens for s in samples])
        self.hidden = np.concatenate([s.hidden for s in samples], axis=1)  # (S, rows, H)
        self.settings = tuple(np.concatenate(column) for column in zip(*(s.kernel_settings for s in samples)))

    @property
    def rows(self) -> int:
        return len(self.tokens)

    def release(self) -> None:
        """Give each caller its rows of the state back, before the batch is built again."""
        for caller, (start, end) in zip(self.callers, self.bounds):
            caller.samples.hidden = self.hidden[:, start:end]


class SamplingEngine:
    """Samples from one model for any number of threads at once, stepping their samples together.

    `stream` has the meaning and the results of `sample.stream`. The callers are shared among `threads`
    workers (default: one per core), each stepping its own batch in one compiled call per step, so the cores
    work at once with no hand-off between threads inside a step. A worker starts on demand and ends after
    IDLE_SECONDS without work. `while_compiling`: step with torch until the compiled kernels are ready (see the
    module's docstring) rather than compile them on the first call. `model` may be None where `stepper` is given
    (a Stepper built from a checkpoint's arrays, without torch): prompts are then stepped, not read by torch.
    """

    def __init__(self, model: CharRNN | None, tokenizer: Tokenizer, stepper: Stepper | None = None,
                 max_rows: int = MAX_ROWS, threads: int | None = None, while_compiling: bool = False):
        self.model, self.tokenizer = model, tokenizer
        self._compiled = stepper or (None if while_compiling and not warm.kernels_ready() else Stepper(model))
        self._uncompiled = None
        if self._compiled is None:
            from charrnn.sampling.torch_stepper import TorchStepper

            self._uncompiled = TorchStepper(model)
        self._switch = threading.Lock()
        self._next_check = time.monotonic() + READY_CHECK_SECONDS
        self.threads = max(1, threads or os.cpu_count() or 1)
        self.rows_per_worker = max(1, max_rows // self.threads)
        self._waiting: deque[_Caller] = deque()
        self._cond = threading.Condition()
        self._workers: list[threading.Thread | None] = [None] * self.threads
        self._rows = [0] * self.threads  # rows each worker steps now
        self.peak_rows = 0  # the most rows stepped at once by one worker so far

    @property
    def stepper(self) -> Stepper | TorchStepper:
        """The compiled Stepper, or while the kernels compile elsewhere (`while_compiling`) a TorchStepper."""
        if self._compiled is None and time.monotonic() >= self._next_check:
            with self._switch:
                if self._compiled is None and warm.kernels_ready():
                    self._compiled = Stepper(self.model)  # loads the cached kernels: no compiling here
                self._next_check = time.monotonic() + READY_CHECK_SECONDS
        return self._compiled or self._uncompiled

    @property
    def active_rows(self) -> int:
        return sum(self._rows)

    def stream(self, prompt: str = "", length: int = 500, settings: SamplingSettings = SamplingSettings(),
               seed: int | None = None, num_samples: int = 1, stop: str | None = None,
               every: float = 0.0) -> Iterator[list[str]]:
        """Yield, for every step, the new text of each sample, as `sample.stream` does. Closing the generator
        takes the caller out of the batch at the next step.

        With `every` > 0 the caller wakes at most that often and takes the steps made since in one go: a page
        that shows the text ten times a second need not wake a thread at every step, and twenty threads that
        did would keep the GIL from the engine between its kernel calls."""
        for steps in self.batches(prompt, length, settings, seed, num_samples, stop, every):
            yield from steps

    def batches(self, prompt: str = "", length: int = 500, settings: SamplingSettings = SamplingSettings(),
                seed: int | None = None, num_samples: int = 1, stop: str | None = None,
                every: float = 0.0) -> Iterator[list[list[str]]]:
        """`stream`'s steps, grouped: each item holds the steps made since the caller last woke (one step
        each with `every` = 0)."""
        samples = Samples(self.model, self.tokenizer, self.stepper, prompt, length, settings, seed, num_samples,
                          stop)  # the prompt is read here, on the caller's thread, while the batch goes on
        if samples.finished:
            return
        caller = _Caller(samples)
        self._submit(caller)
        try:
            while True:
                if every > 0:
                    caller.over.wait(timeout=every)
                else:
                    caller.ready.wait(timeout=1.0)
                    caller.ready.clear()
                steps = []
                while caller.steps:
                    steps.append(caller.steps.popleft())
                if steps:
                    yield steps
                if caller.error is not None:
                    raise caller.error
                if caller.finished and not caller.steps:
                    return
                self._ensure_running()  # a worker may have ended idle between our submit and now
        finally:
            caller.cancelled = True

    def _submit(self, caller: _Caller) -> None:
        with self._cond:
            self._waiting.append(caller)
            self._cond.notify_all()
        self._ensure_running()

    def _ensure_running(self) -> None:
        with self._cond:
            for index, worker in enumerate(self._workers):
                if worker is None or not worker.is_alive():
                    worker = threading.Thread(target=self._run, args=(index,), name=f"charrnn-sampling-{index}",
                                              daemon=True)
                    self._workers[index] = worker
                    worker.start()

    def _take_waiting(self, index: int, active: list[_Caller]) -> None:
        """Move waiting callers into this worker's batch while it is the least loaded worker and has room."""
        rows = sum(c.samples.rows for c in active)
        while self._waiting and (not active or rows + self._waiting[0].samples.rows <= self.rows_per_worker):
            if active and rows > min(self._rows):
                return  # a worker with fewer rows takes it
            caller = self._waiting.popleft()
            active.append(caller)
            rows += caller.samples.rows
            self._rows[index] = rows

    def _run(self, index: int) -> None:
        active: list[_Caller] = []
        batch: _Batch | None = None
        while True:
            with self._cond:
                if not active and not self._waiting:
                    self._rows[index] = 0
                    self._cond.wait(timeout=IDLE_SECONDS)
                    if not self._waiting:
                        self._workers[index] = None  # a later submit starts a new worker
                        return
                self._take_waiting(index, active)
            active = [c for c in active if not c.cancelled]
            self._rows[index] = sum(c.samples.rows for c in active)
            if batch is None or active != batch.callers:
                try:
                    if batch is not None:
                        batch.release()
                    batch = _Batch(active) if active else None
                except Exception as error:  # noqa: BLE001 - e.g. out of memory: they hear of it; the worker goes on
                    for caller in active:
                        caller.fail(error)
                    active, batch = [], None
            if batch is not None:
                active = self._step(batch)

    def _step(self, batch: _Batch) -> list[_Caller]:
        """One step for every caller of the batch: the stack steps once and the tokens of all rows are drawn in
        one call; returns the callers still going."""
        try:
            self.peak_rows = max(self.peak_rows, batch.rows)
            stepper = self.stepper
            logits, batch.hidden = stepper.step(batch.tokens, batch.hidden)
            uniforms = np.concatenate([c.samples.uniforms() for c in batch.callers])
            batch.tokens = np.empty(batch.rows, np.int64)
            draw = kernels.sample_tokens if stepper.compiled else kernels.sample_tokens_uncompiled
            draw(logits, *batch.settings, uniforms, batch.tokens)
        except Exception as error:  # noqa: BLE001 - every caller hears of it; the engine goes on
            for caller in batch.callers:
                caller.fail(error)
            return []
        going = []
        for caller, (start, end) in zip(batch.callers, batch.bounds):
            try:
                caller.put(caller.samples.accept(batch.tokens[start:end]))
            except (CharRNNError, ValueError) as error:  # e.g. NaN scores: this caller's, not the others'
                caller.fail(error)
            if not caller.finished:
                going.append(caller)
        return going
