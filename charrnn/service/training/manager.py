"""Training jobs for the app's Train tab, without the UI: a person's text in, a model they can use out.

    manager = TrainingManager(library)
    text = manager.gather(pasted="...", files=[...], dataset=None)   # checked, with a preview (text.preview)
    job = manager.submit(owner, text, JobSettings(name="novel", minutes=3))
    manager.progress(owner, job.id)   # curve, latest sample, chars/s, steps, time left (read from metrics.jsonl)
    manager.stop(owner, job.id); manager.resume(owner, job.id, minutes=2)

The manager keeps the queue and who owns which job; the text intake (intake.py), the jobs on disk (jobs.py),
the trainer process (runner.py), the progress (progress.py) and the speed table (speed.py) each have their own
module. A finished or stopped job's best/ is added to the ModelLibrary under the name `trained/<name>-<id>`,
listed only to the session (owner) that trained it unless the host shares trained models. Every limit comes
from the environment (TrainLimits.from_env), with defaults safe for a public Space.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

import pandas as pd

from charrnn.errors import CharRNNError, check
from charrnn.service import inputs
from charrnn.service.library import ModelLibrary
from charrnn.service.training import intake, runner
from charrnn.service.training.downloads import Downloads, downloads_folder
from charrnn.service.training.intake import TrainingText, describe_text
from charrnn.service.sessions import SessionKeys
from charrnn.service.training.jobs import Job, checked_owner, load_jobs
from charrnn.service.training.storage import FULL, delete_expired, has_room
from charrnn.service.training.limits import TrainLimits, user_models_dir
from charrnn.service.training.progress import job_progress
from charrnn.service.training.runner import signal_pid_file
from charrnn.service.training.settings import JobSettings
from charrnn.service.training.sharing import push_job
from charrnn.service.training.speed import SpeedTable, size_table


class TrainingManager:
    """Training jobs on this host: a queue of at most `limits.jobs` running trainers, each a child process."""

    def __init__(self, library: ModelLibrary, root: Path | str | None = None, limits: TrainLimits | None = None,
                 python: str = sys.executable, nice: int = 10, threads: int | None = None, eval_seconds: float = 5,
                 sessions: SessionKeys | None = None):
        """`sessions`: the host's signed session keys (the app's); without, any key of 8 or more characters is
        taken as it is (scripts and tests)."""
        self.library, self.sessions = library, sessions
        self.root = Path(root) if root is not None else user_models_dir()
        self.limits = limits or TrainLimits.from_env()
        self.python, self.nice, self.eval_seconds = python, nice, eval_seconds
        # On a CPU the trainer takes half the cores, so sampling for other visitors keeps the rest.
        self.threads = threads or max(1, (os.cpu_count() or 2) // 2)
        self.jobs: dict[str, Job] = {}
        self.queue: list[str] = []  # ids of queued jobs, first = next
        self._lock = threading.RLock()
        self.speeds = SpeedTable(self.threads)
        self.downloads = Downloads(folder=downloads_folder(self.root))
        library.share_trained = self.limits.share
        for job in load_jobs(self.root, lambda folder: runner.stop_recorded_trainer(folder / runner.PID_FILE)):
            self.jobs[job.id] = job
            if (job.folder / "best").is_dir():
                self.library.add(job.model_name, job.folder / "best", owner=job.owner)
        self.queue = [job.id for job in sorted(self.jobs.values(), key=lambda job: job.created)
                      if job.state == "queued"]
        self.clean_up()
        self._pump()

    def gather(self, pasted=None, files=None, dataset=None, dataset_config=None, text_column=None,
               allowed_upload_dirs: list[Path] | None = None, batch_size: int = 16, seq_len: int = 64
               ) -> TrainingText:
        """The text of a job, checked, with its preview (see intake.gather)."""
        return intake.gather(self.limits, pasted, files, dataset, dataset_config, text_column, allowed_upload_dirs,
                             batch_size, seq_len)

    def size_table(self, cell: str = "lstm", vocab_size: int = 80, measure: bool = True) -> pd.DataFrame:
        return size_table(self.speeds, cell, vocab_size, measure)

    def progress(self, owner: str, job_id: str) -> dict:
        """What the tab shows while a job trains (see progress.job_progress)."""
        job = self.job(owner, job_id)
        return job_progress(job, self.position(job), job.model_name in self.library.extra)

    def run_trainer(self, job: Job) -> int:
        """Start the job's trainer and wait for its end; its exit code."""
        command = runner.trainer_command(job, self.python, self.threads, self.eval_seconds)
        return runner.run_trainer(job, command, self.threads, self.nice, self._lock)

    def owner(self, key) -> str:
        """The owner a session key stands for (its hash), once the key is checked."""
        if self.sessions is not None:
            self.sessions.check(key)
        return checked_owner(key)

    def viewer(self, key) -> str | None:
        """The owner a page's key stands for, or None for no key or a bad one (such a visitor sees only the
        public models)."""
        try:
            return self.owner(key)
        except CharRNNError:
            return None

    def submit(self, owner: str, text: TrainingText, settings: JobSettings) -> Job:
        owner = self.owner(owner)
        settings = settings.checked(self.limits)
        if settings.batch_size * settings.seq_len + settings.seq_len + 1 > text.preview["training characters"]:
            describe_text(text.text, settings.batch_size, settings.seq_len)  # raises with the message
        with self._lock:
            busy = next((job for job in self.jobs.values() if job.owner == owner and job.active), None)
            if busy is not None:
                raise CharRNNError(f"your model {busy.settings.name!r} is still training or queued; stop it first")
            check(len(self.queue) < self.limits.queued, f"{len(self.queue)} jobs are waiting to train on this host, "
                  "as many as it queues; try again in a few minutes")
            if not has_room(self.root, self.limits, len(text.text.encode("utf-8"))):
                self.clean_up()
                check(has_room(self.root, self.limits, len(text.text.encode("utf-8"))), FULL)
            job_id = uuid.uuid4().hex
            folder = self.root / owner / f"{settings.name.replace(' ', '-')}-{job_id[:6]}"
            folder.mkdir(parents=True)
            (folder / "text.txt").write_text(text.text, encoding="utf-8", newline="")
            job = Job(job_id, owner, settings, folder, budget_minutes=settings.minutes,
                      val_fraction=text.val_fraction, data_name=text.name, dataset=text.dataset,
                      message=f"{settings.cell}, {settings.size}, {settings.minutes:g} minutes on {text.name}")
            self.jobs[job_id] = job
            self.queue.append(job_id)
            job.save()
            self._pump()
            return job

    def resume(self, owner: str, job_id: str, minutes: float) -> Job:
        """Train a stopped or finished job for `minutes` more (it continues from its last/ checkpoint)."""
        job = self.job(owner, job_id)
        with self._lock:
            job.requeue(inputs.number(minutes, "the minutes of training", 0.1, self.limits.max_minutes),
                        self.limits.max_minutes)
            self.queue.append(job.id)
            self._pump()
            return job

    def stop(self, owner: str, job_id: str) -> Job:
        """Stop a job: a queued one leaves the queue; a running trainer saves its weights and exits."""
        job = self.job(owner, job_id)
        with self._lock:
            if job.state == "queued":
                self.queue.remove(job.id)
                job.end(130, "")  # as a trainer stopped by a signal: a job with no model keeps nothing
            elif job.state == "running":
                job.stop_requested = True
                job.state = "stopping"
                # The trainer saves last/ and best/, then exits (before its loop, it just exits). Without a
                # process here it is being started (and is stopped once it is), or runs in a ZeroGPU worker.
                if job.process is not None:
                    job.process.send_signal(signal.SIGTERM)
                else:
                    signal_pid_file(job.folder / "trainer.pid")
        return job

    def job(self, owner: str, job_id: str) -> Job:
        owner = self.owner(owner)
        job = self.jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None or (job.owner != owner and not self.limits.share):
            raise CharRNNError("no such training job in this session")
        return job

    def latest(self, owner: str) -> Job | None:
        """The session's most recent job (to show again after a page reload)."""
        owner = self.owner(owner)
        mine = [job for job in self.jobs.values() if job.owner == owner]
        return max(mine, key=lambda job: job.created) if mine else None

    def position(self, job: Job) -> int | None:
        """1 for the next job to start, None when not queued."""
        with self._lock:
            return self.queue.index(job.id) + 1 if job.id in self.queue else None

    def model_names(self, key: str | None) -> list[str]:
        """Trained models this session may pick (all of them when the host shares them), newest first."""
        owner = self.viewer(key)
        with self._lock:
            jobs = [job for job in self.jobs.values()
                    if job.model_name in self.library.extra and (self.limits.share or (owner and job.owner == owner))]
        return [job.model_name for job in sorted(jobs, key=lambda job: -job.created)]

    def wait(self, owner: str, job_id: str, timeout: float = 60) -> Job:
        """Block until the job is no longer queued or running (for scripts and tests)."""
        job = self.job(owner, job_id)
        deadline = time.monotonic() + timeout
        while job.active and time.monotonic() < deadline:
            time.sleep(0.1)
        return job

    # -- downloads and the Hub ----------------------------------------------------------------------------
    def zip(self, owner: str, job_id: str) -> Path:
        """A zip of the job's best/ checkpoint (model.safetensors and config.json), for a few minutes (see
        downloads.py)."""
        job = self.job(owner, job_id)
        check((job.folder / "best").is_dir(), "this job has no model yet: wait for its first evaluation")
        return self.downloads.zip(job.id, job.model_name.split("/")[1], job.folder / "best")

    def push(self, owner: str, job_id: str, repo_id, token=None, oauth_token=None) -> str:
        """Push the job's model to the Hub as `repo_id` with a model card (see sharing.push_job)."""
        return push_job(self.job(owner, job_id), self.limits, repo_id, token, oauth_token)

    def _pump(self) -> None:
        """Start queued jobs while fewer than `limits.jobs` run."""
        with self._lock:
            while self.queue and sum(job.state in ("running", "stopping") for job in self.jobs.values()) < self.limits.jobs:
                job = self.jobs[self.queue.pop(0)]
                job.state, job.started = "running", time.time()
                job.save()
                threading.Thread(target=self._run, args=(job,), daemon=True, name=f"train-{job.id[:6]}").start()

    def _run(self, job: Job) -> None:
        try:
            returncode, error = runner.train(self.run_trainer, job), ""
        except Exception as err:  # noqa: BLE001 - whatever happens, the job ends with a message
            returncode, error = -1, f"training could not start ({type(err).__name__}: {err})"
        with self._lock:
            job.process = None
            if returncode not in (0, -1):
                error = runner.error_message(job.folder / "log.txt", returncode)
            job.end(returncode, error)
            if (job.folder / "best").is_dir():
                self.library.add(job.model_name, job.folder / "best", owner=job.owner)
            self._pump()
        self.clean_up()

    def clean_up(self) -> None:
        """Delete what the host no longer keeps (see storage.delete_expired)."""
        with self._lock:
            for job in delete_expired(list(self.jobs.values()), self.root, self.limits):
                self.library.remove(job.model_name)
                del self.jobs[job.id]
                self.downloads.remove(job.id)
