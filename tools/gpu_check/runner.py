"""Running the check's parts: each in a process of its own, under its own time limit and the whole check's deadline,
with everything it prints passed through to this process's output and to the log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from charrnn.paths import IMPORT_ROOT


@dataclass
class Result:
    """One part's outcome, for the summary table and the JSON."""

    part: str
    status: str  # ok, failed, timed out, skipped
    seconds: float = 0.0
    summary: str = ""  # one line for the table
    details: dict = field(default_factory=dict)  # every figure, for the JSON
    tables: list[str] = field(default_factory=list)  # markdown tables to repeat at the end

    def as_dict(self) -> dict:
        return {"part": self.part, "status": self.status, "seconds": round(self.seconds, 1), "summary": self.summary,
                "details": self.details}


class Deadline:
    """The whole check's clock: a part gets its own limit or what is left, whichever is less."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def limit(self, part_seconds: float, reserve: float = 5.0) -> float:
        """Seconds a part may run: its own limit, within what is left less `reserve` for the summary."""
        return max(0.0, min(part_seconds, self.left() - reserve))


@dataclass
class Finished:
    returncode: int | None  # None: stopped at its time limit
    output: str
    seconds: float


def run_command(command: list[str], limit: float, log: TextIO, env: dict | None = None) -> Finished:
    """Run `command` from the repository's root for at most `limit` seconds, its output (stdout and stderr) copied
    to ours and to `log` line by line as it comes. At the limit its whole process group is killed."""
    start = time.monotonic()
    environment = {**os.environ, "PYTHONUNBUFFERED": "1",
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(IMPORT_ROOT), os.environ.get("PYTHONPATH")])),
                   **(env or {})}
    process = subprocess.Popen(command, cwd=IMPORT_ROOT, env=environment, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                               start_new_session=True)
    lines: list[str] = []

    def copy() -> None:
        for line in process.stdout:
            lines.append(line)
            sys.stdout.write(line)
            sys.stdout.flush()
            log.write(line)

    reader = threading.Thread(target=copy, daemon=True)
    reader.start()
    try:
        returncode = process.wait(timeout=max(limit, 0.1))
    except subprocess.TimeoutExpired:
        returncode = None
        os.killpg(process.pid, signal.SIGKILL)  # its children too (a pytest's, a DDP test's)
        process.wait()
    reader.join(timeout=5)
    log.flush()
    return Finished(returncode, "".join(lines), time.monotonic() - start)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def last_json_line(output: str) -> str | None:
    """The last line of `output` that looks like a JSON object (the commands end with one)."""
    for line in reversed(output.splitlines()):
        if line.startswith("{") and line.rstrip().endswith("}"):
            return line
    return None


def staged_text(root: Path = IMPORT_ROOT) -> Path:
    """Where --stage puts Tiny Shakespeare: a git-ignored folder of the checkout, which the device call carries."""
    return root / "data" / "gpu-check" / "tinyshakespeare.txt"
