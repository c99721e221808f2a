"""The memory test's live retraining: one at a time per server, owned by the visitor who started it.

The three tiny models train in a thread of their own, not in the request that asked: requests only watch it. So
a visitor who reloads the page finds their retraining still running (their session key owns it) and watches it
again to the end, while a retraining that no page has watched for `grace_seconds` (its tab was closed, its
event cancelled) stops at its next report. Another visitor is refused while one runs, with the shipped models'
plot: a retraining takes a core for up to its time budget.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from charrnn.service import inside
from charrnn.service.inputs import LIMITS

GRACE_SECONDS = 20.0  # a reloaded page watches again within seconds; a closed one never does
POLL_SECONDS = 0.5  # how often a watching page is told the progress


class _Stopped(Exception):
    pass


class RetrainJob:
    """One retraining of the three tiny models, in its own thread, with its progress and its outcome."""

    def __init__(self, owner: str | None, budget: float, grace: float, train: Callable[[Callable], dict],
                 page: str | None = None):
        self.owner, self.budget, self.grace, self._train = owner, budget, grace, train
        self.started = time.monotonic()
        self.ended: float | None = None
        self.fraction, self.step = 0.0, "starting"
        self.models: dict | None = None  # the trained models, once it has finished
        self.stopped: str | None = None  # why it stopped before the end
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._watchers, self._unwatched_since = 0, self.started
        # the latest watcher of each page (Gradio's session of one open page): a page shows one at a time. The
        # starting page is in from the start, so that its own reload check never takes it for a reloaded one.
        self._pages: dict[str | None, object] = {page: None}
        threading.Thread(target=self._run, name="memory-retraining", daemon=True).start()

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def _run(self) -> None:
        from charrnn.device import one_torch_thread

        try:
            with one_torch_thread():  # the steps of tiny models: see there
                self.models = self._train(self._report)
        except _Stopped as stop:
            self.stopped = str(stop)
        except Exception as err:  # noqa: BLE001 - ours, not the visitor's: logged, and said so on the page
            traceback.print_exception(err, file=sys.stderr)
            self.stopped = f"an internal error ({type(err).__name__}) stopped it"
        finally:
            self.ended = time.monotonic()
            self.done.set()

    def _report(self, fraction: float, step: str) -> None:
        self.fraction, self.step = fraction, step
        now = time.monotonic()
        with self._lock:
            left = not self._watchers and now - self._unwatched_since > self.grace
        if left:
            raise _Stopped("its page was closed")
        if now - self.started > self.budget:
            raise _Stopped(f"it ran past its {self.budget:g} s budget on this busy server")

    def watched_by(self, page: str | None) -> bool:
        with self._lock:
            return page in self._pages

    @contextmanager
    def watched(self, page: str | None):
        """While this lasts, `page` watches the job: a job no page watches stops after its grace. Yields a
        function that says whether this is still the page's latest watcher (a click on Run after a reload takes
        over from the watching that the reload began)."""
        token = object()
        with self._lock:
            self._watchers += 1
            self._pages[page] = token
        try:
            yield lambda: self._pages.get(page) is token
        finally:
            with self._lock:
                self._watchers -= 1
                if not self._watchers:
                    self._unwatched_since = time.monotonic()
                if self._pages.get(page) is token:
                    del self._pages[page]


def _train_models(progress: Callable) -> dict:
    from charrnn.analysis import memory

    return memory.train_models(progress=progress)


class Busy(Exception):
    """Another visitor's retraining runs."""

    def __init__(self, job: RetrainJob):
        super().__init__("another visitor is retraining")
        self.job = job


class MemoryRetraining:
    """The server's retraining: at most one at a time, its owner's to watch again."""

    def __init__(self, budget_seconds: float | None = None, grace_seconds: float = GRACE_SECONDS,
                 train: Callable[[Callable], dict] | None = None):
        """train(progress) -> models: the three trained, calling progress(fraction, message) as it goes (by
        default charrnn.analysis.memory.train_models, as the shipped models were trained)."""
        self.budget, self.grace = LIMITS.retrain_seconds if budget_seconds is None else budget_seconds, grace_seconds
        self.train = train or _train_models
        self._lock = threading.Lock()
        self.job: RetrainJob | None = None  # the latest

    def running(self) -> RetrainJob | None:
        job = self.job
        return job if job is not None and not job.done.is_set() else None

    def start(self, owner: str | None, page: str | None = None) -> tuple[RetrainJob, bool]:
        """(the job owner watches, whether it was already running): a new one, or theirs still running. Raises
        Busy with another visitor's."""
        with self._lock:
            job = self.running()
            if job is not None:
                if owner is None or job.owner != owner:
                    raise Busy(job)
                return job, True
            self.job = RetrainJob(owner, self.budget, self.grace, self.train, page)
            return self.job, False


@dataclass(frozen=True)
class Update:
    """What the page shows of a retraining: a line, the progress (None: no bar), and a chart once there is one
    (the retrained models', or the shipped models' when it was refused or stopped)."""

    message: str
    fraction: float | None = None
    chart: dict | None = None


def retrain(retraining: MemoryRetraining, owner: str | None, page: str | None = None) -> Iterator[Update]:
    """Start a retraining (or watch the owner's, still running) and report it to the end, on `page` (any id of
    the open page: Gradio's session)."""
    try:
        job, resumed = retraining.start(owner, page)
    except Busy as busy:
        left = max(retraining.budget - busy.job.seconds, 0)
        yield Update(f"Another visitor is retraining the models right now ({busy.job.fraction:.0%} done; it ends "
                     f"within {left:.0f} s). Try again then; meanwhile, the shipped models:",
                     chart=inside.memory_view())
        return
    yield from _watch(job, "Your retraining is still running" if resumed else "Retraining the three tiny models",
                      page)


def follow(retraining: MemoryRetraining, owner: str | None, page: str | None = None) -> Iterator[Update]:
    """The owner's retraining, if one runs and `page` does not watch it yet (a reloaded page): reported to the
    end. Nothing otherwise."""
    job = retraining.running()
    if owner is not None and job is not None and job.owner == owner and not job.watched_by(page):
        yield from _watch(job, "Your retraining is still running", page)


def _watch(job: RetrainJob, doing: str, page: str | None) -> Iterator[Update]:
    with job.watched(page) as latest:
        while True:
            yield Update(_progress_line(job, doing), job.fraction)
            if job.done.wait(POLL_SECONDS):
                break
            if not latest():  # the page watches it anew: that watching reports it
                return
    if job.models is not None:
        yield Update(f"Retrained now, in {job.seconds:.0f} s: the plot shows the three new models.", 1.0,
                     inside.memory_chart(job.models, retrained=True))
    else:
        yield Update(f"The retraining stopped after {job.seconds:.0f} s: {job.stopped}. The shipped models are "
                     "unchanged; their plot:", chart=inside.memory_view())


def _progress_line(job: RetrainJob, doing: str) -> str:
    seconds = job.seconds
    left = f", about {seconds / job.fraction * (1 - job.fraction):.0f} s left" if job.fraction >= 0.1 else ""
    return (f"{doing}: {job.fraction:.0%} done ({job.step}), {seconds:.0f} s so far{left}. It stops if it runs "
            f"past {job.budget:g} s.")
