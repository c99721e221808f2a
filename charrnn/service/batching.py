"""Many visitors sampling from the same model at once share each step: their rows go through one batched
kernel call, which reads the weights once for all of them.

A step at batch 1 is bound by reading the weights (a few MB) from the CPU's cache, not by arithmetic, so
stepping 8 streams together costs little more than stepping one. CombiningStepper has Stepper's step()
and needs no thread of its own ("flat combining"): a caller that finds no step running takes every row that
is waiting, runs them as one batch, and hands each caller its rows back; callers that arrive meanwhile wait
for the next batch, which one of them runs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from charrnn.stepper import NumpyHidden, Stepper


@dataclass
class _Request:
    tokens: np.ndarray  # (B,)
    hidden: NumpyHidden  # per state, (B, H)
    result: tuple[np.ndarray, NumpyHidden] | None = None
    error: BaseException | None = None
    done: bool = False


class CombiningStepper:
    """A Stepper shared by threads: concurrent step() calls are batched into one (see the module doc)."""

    def __init__(self, stepper: Stepper, max_rows: int = 32):
        self.stepper = stepper
        self.max_rows = max_rows  # more rows than this wait for the next batch: bounds one step's latency
        self._waiting: list[_Request] = []
        self._running = False
        self._changed = threading.Condition()
        self.batches = 0  # counters for tests and the benchmark
        self.rows = 0

    def __getattr__(self, name):  # to_numpy, to_torch, cell, ... come from the wrapped Stepper
        return getattr(self.stepper, name)

    def step(self, tokens: np.ndarray, hidden: NumpyHidden) -> tuple[np.ndarray, NumpyHidden]:
        request = _Request(np.asarray(tokens), hidden)
        with self._changed:
            self._waiting.append(request)
            while not request.done and self._running:
                self._changed.wait()
            if request.done:
                return self._result(request)
            self._running = True  # this caller runs the next batch, its own request among it
            batch, taken = [], 0
            while self._waiting and (not batch or taken + len(self._waiting[0].tokens) <= self.max_rows):
                batch.append(self._waiting.pop(0))
                taken += len(batch[-1].tokens)
        try:
            self._run(batch)
        finally:
            with self._changed:
                self._running = False
                self._changed.notify_all()
        if not request.done:  # cannot happen: the runner's own request is always in its batch
            raise RuntimeError("combining stepper lost a request")
        return self._result(request)

    @staticmethod
    def _result(request: _Request):
        if request.error is not None:
            raise request.error
        return request.result

    def _run(self, batch: list[_Request]) -> None:
        try:
            if len(batch) == 1:
                results = [self.stepper.step(batch[0].tokens, batch[0].hidden)]
            else:
                tokens = np.concatenate([r.tokens for r in batch])
                hidden = [np.concatenate(states) for states in zip(*(r.hidden for r in batch))]
                logits, new_hidden = self.stepper.step(tokens, hidden)
                bounds = np.cumsum([len(r.tokens) for r in batch])[:-1]
                parts = [np.split(state, bounds) for state in new_hidden]
                results = [(rows, [part[i] for part in parts]) for i, rows in enumerate(np.split(logits, bounds))]
            for request, result in zip(batch, results):
                request.result = result
        except BaseException as err:  # every caller of the batch gets the error, none waits forever
            for request in batch:
                request.error = err
        self.batches += 1
        self.rows += sum(len(r.tokens) for r in batch)
        for request in batch:
            request.done = True
