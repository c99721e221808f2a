"""The trainer of a job as a child process: its command line, its start at a lower priority, its end (exit
code, or the budget's end), and the error message it left; on ZeroGPU, the spaces.GPU function that runs it.

A job runs the project's own trainer, `python -m charrnn.train`, so a crash, an out-of-memory kill or a
diverging run ends that process, never the server. Stop sends SIGTERM, on which the trainer saves last/ and
best/ and exits; Resume runs it again with --resume.
"""

from __future__ import annotations

import contextlib
import os
import time
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Callable

from charrnn.config import TrainConfig, to_argv
from charrnn.paths import IMPORT_ROOT
from charrnn.service.training.jobs import Job

try:  # Hugging Face ZeroGPU: a GPU is attached only inside functions decorated with spaces.GPU
    import spaces
except ImportError:  # anywhere else the decorator does nothing
    spaces = None

ZERO_GPU = spaces is not None and os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")  # a GPU to use
SAMPLE_CHARS = 200  # written by the trainer at each evaluation
PID_FILE = "trainer.pid"  # the running trainer's pid and start time, in the job's folder


def error_message(log: Path, returncode: int) -> str:
    """The trainer's own message (its `error: ...` line) or what the exit code says."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: "):]
    if returncode in (-signal.SIGKILL, 137):
        return "the training process was killed (out of memory?); try a smaller model or batch"
    last = next((line for line in reversed(lines) if line.strip()), "")
    return f"training failed (exit code {returncode}): {last[-300:]}" if last else f"training failed ({returncode})"


def _gpu_seconds(run_trainer: Callable[[Job], int], job: Job) -> int:
    return int(job.budget_minutes * 60) + 120


def _train(run_trainer: Callable[[Job], int], job: Job) -> int:
    """Run the job's trainer to its end; its exit code. On ZeroGPU this is the app's spaces.GPU function: it
    runs in a forked worker that holds a GPU for the job's minutes (so Stop finds the trainer by its pid file)."""
    return run_trainer(job)


if spaces is not None:  # decorated at import, as ZeroGPU wants; with a duration from the job's minutes
    _train = spaces.GPU(duration=_gpu_seconds)(_train)


def train(run_trainer: Callable[[Job], int], job: Job) -> int:
    """Run the job's trainer to its end (through the spaces.GPU function on ZeroGPU); its exit code."""
    return _train(run_trainer, job)


# The TrainConfig fields a job's command line sets: what the person chose, then how the run reports and where
# it runs (only the latter on --resume, which keeps the run's own settings).
JOB_FIELDS = ("dataset", "data_name", "val_fraction", "cell", "params", "dropout", "lr", "batch_size", "seq_len",
              "tokenizer")
RUN_FIELDS = ("time_budget", "eval_seconds", "eval_interval", "log_interval", "sample_chars", "progress", "out",
              "device", "threads")


def trainer_config(job: Job, threads: int, min_eval_seconds: float) -> TrainConfig:
    """The job as `charrnn train` settings. It runs in the job's folder with paths relative to it, so the
    command and the config it stores in the checkpoint (shown on the model cards, pushed to the Hub) hold no
    server path; data_name gives the cards the text's name as the person gave it."""
    gpu = ZERO_GPU or _has_cuda()
    # A training point every few steps, and a validation point (with a sample) every ~5% of the run,
    # between every `min_eval_seconds` and every 30 seconds: a live curve on a slow CPU and on a fast GPU.
    eval_seconds = min(max(job.budget_minutes * 60 / 20, min_eval_seconds), 30)
    return job.settings.train_config(
        ["text.txt"], data_name=job.data_name or None, val_fraction=round(job.val_fraction, 6),
        time_budget=job.budget_minutes, eval_seconds=eval_seconds, eval_interval=1_000_000_000,
        log_interval=25 if gpu else 5, sample_chars=SAMPLE_CHARS, progress=False, out=".",
        device="cuda" if gpu else "cpu", threads=None if gpu else threads)


def trainer_command(job: Job, python: str, threads: int, min_eval_seconds: float) -> list[str]:
    """The trainer's command line: `python -m charrnn.train` with the job's settings, or --resume."""
    config = trainer_config(job, threads, min_eval_seconds)
    if (job.folder / "last").is_dir():
        return [python, "-m", "charrnn.train", "--resume", ".", *to_argv(config, RUN_FIELDS)]
    chosen = [name for name in JOB_FIELDS if name not in job.settings.left_to_recipe]
    return [python, "-m", "charrnn.train", *to_argv(config, (*chosen, *RUN_FIELDS))]


def run_trainer(job: Job, command: list[str], threads: int, nice: int, lock) -> int:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(IMPORT_ROOT),
                                                                     os.environ.get("PYTHONPATH")])),
               OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    # A lower CPU priority: the page and other visitors' sampling come first.
    nice = ["nice", "-n", str(nice)] if nice and shutil.which("nice") else []
    with open(job.folder / "log.txt", "ab") as log, lock:
        # In the job's folder (see _command); in a session of its own: a Ctrl-C in the server's terminal is
        # for the server, not the trainer.
        job.process = subprocess.Popen(
            [*nice, *command], stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env,
            cwd=job.folder, start_new_session=True)
        write_pid_file(job.folder / PID_FILE, job.process.pid)
        if job.stop_requested:  # Stop arrived while it was starting
            job.process.send_signal(signal.SIGTERM)
    try:
        return _wait(job.process, job.budget_minutes * 60)
    finally:
        (job.folder / PID_FILE).unlink(missing_ok=True)


def _wait(process: subprocess.Popen, budget_seconds: float) -> int:
    """The trainer stops itself at its time budget; loading and the last evaluation get 2 more minutes, then it
    is asked to stop, and 15 s later killed."""
    try:
        return process.wait(timeout=budget_seconds + 120)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()


def process_start_time(pid: int) -> int | None:
    """When a process started, in clock ticks since boot (Linux's /proc), or None where that cannot be read: with
    the pid it names one process, where a pid alone may since have been given to another."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # the name before ")" may hold spaces
        return None if fields[0] in ("Z", "X") else int(fields[19])  # field 22; an exited process counts as gone
    except (OSError, ValueError, IndexError):
        return None


def write_pid_file(pid_file: Path, pid: int) -> None:
    pid_file.write_text(f"{pid} {process_start_time(pid) or 0}")


def recorded_trainer(pid_file: Path) -> int | None:
    """The pid of the trainer a pid file names, if that very process still runs (same pid, same start time)."""
    try:
        pid, started = map(int, pid_file.read_text().split())
    except (OSError, ValueError):
        return None
    return pid if started and process_start_time(pid) == started else None


def signal_pid_file(pid_file: Path, signum: int = signal.SIGTERM) -> None:
    pid = recorded_trainer(pid_file)
    if pid is not None:
        with contextlib.suppress(OSError):  # gone in between
            os.kill(pid, signum)


def stop_recorded_trainer(pid_file: Path, grace_seconds: float = 20) -> bool:
    """Stop the trainer a pid file names, if it still runs (an app restarted while a job trained): SIGTERM, on
    which it saves and exits, then SIGKILL after `grace_seconds`. Whether one was running."""
    pid = recorded_trainer(pid_file)
    if pid is None:
        return False
    signal_pid_file(pid_file)
    deadline = time.monotonic() + grace_seconds
    while recorded_trainer(pid_file) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    signal_pid_file(pid_file, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return True


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        return False
