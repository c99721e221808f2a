"""The app under test: `python app.py` started on 127.0.0.1 in a child process, its memory and its log."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from charrnn.errors import CharRNNError
from charrnn.paths import SOURCE_TREE

HOST = "127.0.0.1"  # the stress command never sends traffic anywhere else
READY_MARK = "models ready"  # what app.py prints once its models are loaded and warmed up


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _process_tree(pid: int) -> list[int]:
    """A process, its children (the app's sampling process), and theirs."""
    found, queue = [], [pid]
    while queue:
        pid = queue.pop()
        found.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            try:
                queue.extend(int(child) for child in task.read_text().split())
            except OSError:  # the task ended
                pass
    return found


def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory of a process and its descendants together now, and the sum of their peaks (VmHWM), in MB."""
    total = {"VmRSS": 0, "VmHWM": 0}
    for process in _process_tree(pid):
        try:
            status = Path(f"/proc/{process}/status").read_text()
        except OSError:  # it ended
            continue
        for key in total:
            total[key] += int(re.search(rf"^{key}:\s+(\d+) kB", status, flags=re.M).group(1)) / 1024
    return {"now": round(total["VmRSS"], 1), "peak": round(total["VmHWM"], 1)}


class AppServer:
    """Start the app, wait until its page and its models are ready, and stop it at the end."""

    def __init__(self, log: Path, env: dict[str, str] | None = None, start_timeout: float = 180,
                 app: Path | None = None, wait_for_models: bool = True):
        """`app`: another copy's app.py (default: this checkout's); `wait_for_models`: ready once the models are
        loaded (the stress's start), else once the page answers (a visitor's start)."""
        app = app or SOURCE_TREE / "app.py"
        self.wait_for_models = wait_for_models
        if not app.is_file():
            raise CharRNNError(f"the stress command runs the app from a checkout of the repository; {app} is missing")
        self.port = _free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log = log
        environment = {**os.environ, "GRADIO_SERVER_NAME": HOST, "GRADIO_SERVER_PORT": str(self.port),
                       "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", **(env or {})}
        self._log_file = open(log, "w", encoding="utf-8")
        self.process = subprocess.Popen([sys.executable, str(app)], cwd=app.parent, env=environment,
                                        stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self.started_seconds = self._wait_until_ready(start_timeout)
        except BaseException:
            self.stop()  # an app that did not come up is not left running
            raise

    def _wait_until_ready(self, timeout: float) -> float:
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if self.process.poll() is not None:
                raise CharRNNError(f"the app exited with code {self.process.returncode} during start-up; see {self.log}")
            try:
                if httpx.get(f"{self.url}/config", timeout=2).status_code == 200 and (
                        READY_MARK in self.log_text() or not self.wait_for_models):
                    return time.perf_counter() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise CharRNNError(f"the app did not come up within {timeout:.0f} s; see {self.log}")

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def tracebacks(self) -> int:
        return len(re.findall(r"^Traceback \(most recent call last\)", self.log_text(), flags=re.M))

    def memory_mb(self) -> dict[str, float]:
        """Resident memory of the app's processes together now, and the sum of their peaks since start (VmHWM),
        in MB."""
        return memory_mb(self.process.pid)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the app's processes (the server and its sampling process) at once, as a crash does: nothing of
        the app cleans up. A trainer runs in a session of its own, outside this group, and runs on."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._log_file.close()

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log_file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class MemoryWatch:
    """The app's resident memory (all its processes) sampled in a thread while a call runs; `growth_mb`: the
    highest sample over the figure before the call."""

    def __init__(self, server: AppServer, interval: float = 0.05):
        self.server, self.interval = server, interval
        self.before = self.highest = server.memory_mb()["now"]
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(self.interval):
            self.highest = max(self.highest, self.server.memory_mb()["now"])

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self.highest = max(self.highest, self.server.memory_mb()["now"])

    @property
    def growth_mb(self) -> float:
        return round(self.highest - self.before, 1)
