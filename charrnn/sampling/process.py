"""Sampling in a process of its own, so that the web server's event loop and the sampling never wait on one GIL.

In one process, Gradio's event loop (a few ms of Python per streamed update and per call) and the sampling
engines' threads (charrnn.sampling.engine: a compiled step without the GIL, then Python to draw each caller's next
token) take turns at one GIL, and a step that ends while the loop runs waits for it. With the engines in a child
process the two share only the cores, which the operating system divides finely. docs/benchmarks.md gives what
this does to 20 clients on the project's 2-core machine (`python -m tools.stress`).

The child holds one SamplingEngine per checkpoint folder (loaded again when its weights change) and runs each
call on a thread of its own, which reads the prompt and sends the call's steps through a pipe as they are made,
several at a time. `RemoteEngine.stream` has the meaning and the results of `SamplingEngine.stream`: a seed gives
the same text either way. If the child dies, its calls end with a message and the next call starts a new child.

Messages are JSON (no pickle): parent -> child ["start", id, {call}] and ["cancel", id, null]; child -> parent
["steps", id, [[piece per sample] per step]] and ["end", id, null or [user_error, message]].
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from collections import OrderedDict, deque
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from charrnn.errors import CharRNNError
from charrnn.paths import IMPORT_ROOT

if TYPE_CHECKING:
    from charrnn.sampling.engine import SamplingEngine
    from charrnn.sampling.generate import SamplingSettings

# The app samples in a child process unless CHARRNN_SAMPLING_PROCESS=0; not on Windows, which cannot hand a
# child the pipe's file descriptors (pass_fds).
ENABLED = os.name == "posix" and os.environ.get("CHARRNN_SAMPLING_PROCESS", "1") != "0"
MAX_ENGINES = 16  # models the child keeps loaded; the least recently used beyond this are dropped


class SamplerStopped(CharRNNError):
    """The sampling process died (killed, out of memory) while a call ran: the server's trouble, not the
    visitor's, but what they can do is the same: try again."""


class _Call:
    """One call's steps as they arrive from the child."""

    def __init__(self, child: subprocess.Popen):
        self.child = child
        self.steps: deque[list[str]] = deque()
        self.ready = threading.Event()
        self.over = False
        self.error: Exception | None = None

    def end(self, error: Exception | None) -> None:
        self.error = error
        self.over = True
        self.ready.set()


class SamplerProcess:
    """The child process that samples, started on first use and again after it dies, and the calls in it."""

    def __init__(self, while_compiling: bool = False):
        """`while_compiling`: the kernels are being compiled in another process (a fresh install, warm.py); the
        child's engines sample with torch until they are ready (engine.py)."""
        self.while_compiling = while_compiling
        # Held to start the child, write to it, and register a call: so a call is never registered with a dead
        # child after its reader has ended that child's calls. Re-entrant: a stream closed by the garbage
        # collector runs its cleanup on whatever thread happens to hold it.
        self._lock = threading.RLock()
        self._closed = False
        self._child: subprocess.Popen | None = None
        self._to_child: Connection | None = None
        self._calls: dict[int, _Call] = {}
        self._ids = itertools.count()

    def engine(self, path: Path | str) -> RemoteEngine:
        return RemoteEngine(self, Path(path).resolve())

    def start(self) -> None:
        """Start the child now (it is otherwise started by the first call)."""
        with self._lock:
            self._ensure_child()

    def close(self) -> None:
        """Stop the child for good; its calls end with a message."""
        with self._lock:
            self._closed = True
            child, self._child = self._child, None
            if self._to_child is not None:
                self._to_child.close()  # the child ends when its end of the pipe closes
                self._to_child = None
        if child is not None:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    @property
    def pid(self) -> int | None:
        return None if self._child is None else self._child.pid

    def _ensure_child(self) -> subprocess.Popen:
        if self._closed:
            raise CharRNNError("the server is shutting down; try again in a moment")
        if self._child is not None and self._child.poll() is None:
            return self._child
        if self._to_child is not None:
            self._to_child.close()  # the dead child's
            self._to_child = None
        to_child_read, to_child_write = os.pipe()
        from_child_read, from_child_write = os.pipe()
        try:
            # A session of its own: Ctrl-C in the terminal goes to the server, and the child ends when the
            # server's end of the pipe closes.
            child = subprocess.Popen([sys.executable, "-m", "charrnn.sampling.process", str(to_child_read),
                                      str(from_child_write), str(int(self.while_compiling))], pass_fds=(to_child_read, from_child_write),
                                     cwd=IMPORT_ROOT, stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as err:
            for fd in (to_child_write, from_child_read):
                os.close(fd)
            raise SamplerStopped(f"the sampling process could not be started ({err})") from None
        finally:
            os.close(to_child_read)
            os.close(from_child_write)
        self._child, self._to_child = child, Connection(to_child_write, readable=False)
        threading.Thread(target=self._read, args=(child, Connection(from_child_read, writable=False)),
                         name="charrnn-sampler-reader", daemon=True).start()
        return child

    def _write(self, message: list) -> None:
        """Send to the child; the caller holds the lock."""
        try:
            self._to_child.send_bytes(json.dumps(message).encode())
        except OSError:  # the child has died: its reader ends its calls
            pass

    def _read(self, child: subprocess.Popen, connection: Connection) -> None:
        """Hand each message of the child to its call; once the child is gone, end the calls it had."""
        try:
            while True:
                kind, call_id, payload = json.loads(connection.recv_bytes())
                call = self._calls.get(call_id)
                if call is None:  # cancelled
                    continue
                if kind == "steps":
                    call.steps.extend(payload)
                    call.ready.set()
                else:
                    call.end(None if payload is None else
                             CharRNNError(payload[1]) if payload[0] else RuntimeError(payload[1]))
        except (EOFError, OSError):  # the child is gone
            pass
        except Exception:  # noqa: BLE001 - a message it cannot have sent: stop it rather than wait on it forever
            traceback.print_exc()
        finally:
            connection.close()
        try:
            code = child.wait(timeout=10)
        except subprocess.TimeoutExpired:  # it closed the pipe but did not exit
            child.kill()
            code = child.wait()
        with self._lock:  # a call registered from now on goes to a new child
            if self._child is child:
                self._child = None
                self._to_child.close()
                self._to_child = None
            ended = [call for call in self._calls.values() if call.child is child and not call.over]
        if ended or not self._closed:
            print(f"charrnn: the sampling process exited with code {code}; {len(ended)} calls ended",
                  file=sys.stderr, flush=True)
        for call in ended:
            call.end(_stopped(code))

    def stream(self, path: Path, prompt: str, length: int, settings: SamplingSettings, seed: int | None,
               num_samples: int, stop: str | None, every: float) -> Iterator[list[str]]:
        """SamplingEngine.stream of the checkpoint folder `path`, run in the child."""
        call_id = next(self._ids)
        request = {"path": str(path), "prompt": prompt, "length": length, "temperature": settings.temperature,
                   "top_k": settings.top_k, "top_p": settings.top_p, "seed": seed, "num_samples": num_samples,
                   "stop": stop, "every": every}
        with self._lock:
            call = self._calls[call_id] = _Call(self._ensure_child())
            self._write(["start", call_id, request])
        try:
            while True:
                if not call.ready.wait(timeout=1.0) and call.child.poll() is not None and not call.over:
                    # Its reader normally ends the call; this is for a pipe some other process keeps open
                    # (a process forked from the server while the child started).
                    time.sleep(1.0)
                    if not call.over:
                        call.end(_stopped(call.child.returncode))
                call.ready.clear()
                while call.steps:
                    yield call.steps.popleft()
                if call.over:
                    while call.steps:
                        yield call.steps.popleft()
                    if call.error is not None:
                        raise call.error
                    return
        finally:
            with self._lock:
                self._calls.pop(call_id, None)
                if not call.over and self._child is call.child:
                    self._write(["cancel", call_id, None])


def _stopped(code: int | None) -> SamplerStopped:
    return SamplerStopped(f"the sampling process stopped (exit code {code}) before this text was done; try again "
                          "(a new one starts with the next call)")


class RemoteEngine:
    """A SamplingEngine of one checkpoint folder, run in the SamplerProcess."""

    def __init__(self, sampler: SamplerProcess, path: Path):
        self.sampler, self.path = sampler, path

    def stream(self, prompt: str = "", length: int = 500, settings: SamplingSettings | None = None,
               seed: int | None = None, num_samples: int = 1, stop: str | None = None,
               every: float = 0.0) -> Iterator[list[str]]:
        """As SamplingEngine.stream."""
        if settings is None:
            from charrnn.sampling.generate import SamplingSettings
            settings = SamplingSettings()
        return self.sampler.stream(self.path, prompt, length, settings, seed, num_samples, stop, every)


# The child's side.

class _Engines:
    """One SamplingEngine per checkpoint folder, loaded on first use and again when the weights change."""

    def __init__(self, while_compiling: bool = False):
        self.while_compiling = while_compiling
        self._engines: OrderedDict[str, tuple[float, SamplingEngine]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str) -> SamplingEngine:
        from charrnn.checkpoint.folder import WEIGHTS

        name = Path(path).name
        try:
            stamp = (Path(path) / WEIGHTS).stat().st_mtime
        except OSError:
            raise CharRNNError(f"the model {name} has been deleted from this host") from None
        with self._lock:
            cached = self._engines.get(path)
            if cached is None or cached[0] != stamp:
                try:
                    engine = self._load(path)
                except CharRNNError:
                    raise
                except Exception as err:  # noqa: BLE001 - as ModelLibrary.load: a damaged folder is a message
                    raise CharRNNError(f"the checkpoint {name} could not be loaded ({type(err).__name__}: {err})"
                                       ) from None
                cached = self._engines[path] = (stamp, engine)
            self._engines.move_to_end(path)
            while len(self._engines) > MAX_ENGINES:
                self._engines.popitem(last=False)  # calls running on it keep their own reference
            return cached[1]


    def _load(self, path: str) -> SamplingEngine:
        """An engine of the folder's model. With the kernels compiled, from the checkpoint's arrays: no torch in
        this process at all (its import and ~200 MB of memory), and a prompt is stepped rather than read by torch.
        While they compile elsewhere (a fresh install), from the torch model, which steps until they are ready."""
        from charrnn.sampling.engine import SamplingEngine

        if self.while_compiling:
            from charrnn.checkpoint.saving import load_checkpoint

            checkpoint = load_checkpoint(path)
            return SamplingEngine(checkpoint.model, checkpoint.tokenizer, while_compiling=True)
        from charrnn.checkpoint.arrays import load_arrays
        from charrnn.sampling.stepper import Stepper

        arrays = load_arrays(path)
        return SamplingEngine(None, arrays.tokenizer, Stepper.from_arrays(arrays.model_config, arrays.arrays))


def _run_call(engines: _Engines, send, call_id: int, request: dict, cancelled: threading.Event) -> None:
    from charrnn.sampling.generate import SamplingSettings

    error = None
    try:
        engine = engines.get(request["path"])
        settings = SamplingSettings(request["temperature"], request["top_k"], request["top_p"])
        batches = engine.batches(request["prompt"], request["length"], settings, request["seed"],
                                 request["num_samples"], request["stop"], request["every"])
        try:
            for steps in batches:
                if cancelled.is_set():
                    return
                send(["steps", call_id, steps])
        finally:
            batches.close()  # out of the engine's batch
    except CharRNNError as err:
        error = [True, str(err)]
    except Exception as err:  # noqa: BLE001 - the parent says it failed; the traceback goes to the log
        traceback.print_exc()
        error = [False, f"sampling failed ({type(err).__name__}: {err})"]
    send(["end", call_id, error])


def _import_for_calls(while_compiling: bool) -> None:
    import charrnn.checkpoint.arrays  # noqa: F401
    import charrnn.sampling.engine  # noqa: F401 - numba, and the kernels' module

    if while_compiling:
        import charrnn.checkpoint.saving  # noqa: F401 - torch, for the models that step until the kernels are ready


def serve(from_parent: Connection, to_parent: Connection, while_compiling: bool = False) -> None:
    """Start and cancel calls as the parent asks, until its end of the pipe closes."""
    # What every call needs is imported at once, while the parent builds its page, not on the first call.
    threading.Thread(target=_import_for_calls, args=(while_compiling,), name="charrnn-imports", daemon=True).start()
    engines = _Engines(while_compiling)
    cancelled: dict[int, threading.Event] = {}
    send_lock = threading.Lock()

    def send(message: list) -> None:
        data = json.dumps(message).encode()
        with send_lock:
            try:
                to_parent.send_bytes(data)
            except OSError:  # the parent is gone; the main loop ends at its next read
                pass

    def run(call_id: int, request: dict) -> None:
        try:
            _run_call(engines, send, call_id, request, cancelled[call_id])
        finally:
            cancelled.pop(call_id, None)

    while True:
        try:
            kind, call_id, request = json.loads(from_parent.recv_bytes())
        except (EOFError, OSError):
            return
        if kind == "start":
            cancelled[call_id] = threading.Event()
            threading.Thread(target=run, args=(call_id, request), name=f"charrnn-call-{call_id}",
                             daemon=True).start()
        elif kind == "cancel" and call_id in cancelled:
            cancelled[call_id].set()


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False),
          while_compiling=sys.argv[3:] == ["1"])
