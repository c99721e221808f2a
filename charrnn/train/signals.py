"""Ctrl-C and SIGTERM during training: the first one asks the loop to save and stop, a second one quits."""

from __future__ import annotations

import signal
import sys


class QuitNow(KeyboardInterrupt):
    """A second Ctrl-C (or SIGTERM) while the first one's save is pending: stop at once, without saving.
    Checkpoints stay intact: a save cut short leaves the previous one in place."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint at the end of the current step and exits.
    A second signal raises QuitNow."""

    def __init__(self, announce: bool = True):
        self.signum: int | None = None
        self.announce = announce  # in a run of many processes, only the first says it
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. called from a UI worker): no handlers
                pass
        return self

    def _handle(self, signum, frame):
        if self.signum:
            raise QuitNow(signum)
        self.signum = signum
        if self.announce:
            print(f"\n{signal.Signals(signum).name}: saving a checkpoint after this step, then stopping "
                  "(press Ctrl-C again to quit at once; the checkpoints stay intact)", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
