"""The app under test: `python app.py` started on 127.0.0.1 in a child process, its memory and its log."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
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

    def __init__(self, log: Path, env: dict[str, str] | None = None, start_timeout: float = 180):
        app = SOURCE_TREE / "app.py"
        if not app.is_file():
            raise CharRNNError(f"the stress command runs the app from a checkout of the repository; {app} is missing")
        self.port = _free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log = log
        environment = {**os.environ, "GRADIO_SERVER_NAME": HOST, "GRADIO_SERVER_PORT": str(self.port),
                       "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", **(env or {})}
        self._log_file = open(log, "w", encoding="utf-8")
        self.process = subprocess.Popen([sys.executable, str(app)], cwd=SOURCE_TREE, env=environment,
                                        stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True)
        self.started_seconds = self._wait_until_ready(start_timeout)

    def _wait_until_ready(self, timeout: float) -> float:
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if self.process.poll() is not None:
                raise CharRNNError(f"the app exited with code {self.process.returncode} during start-up; see {self.log}")
            try:
                if httpx.get(f"{self.url}/config", timeout=2).status_code == 200 and READY_MARK in self.log_text():
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
