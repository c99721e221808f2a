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
import shutil
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
from charrnn.service.training.downloads import Downloads
from charrnn.service.training.intake import TrainingText, describe_text
from charrnn.service.training.jobs import Job, checked_owner, load_jobs, owner_dir, trained_minutes
from charrnn.service.training.limits import TrainLimits, user_models_dir
from charrnn.service.training.progress import job_progress
from charrnn.service.training.runner import signal_pid_file
from charrnn.service.training.settings import JobSettings
from charrnn.service.training.speed import SpeedTable, size_table


class TrainingManager:
    """Training jobs on this host: a queue of at most `limits.jobs` running trainers, each a child process."""

    def __init__(self, library: ModelLibrary, root: Path | str | None = None, limits: TrainLimits | None = None,
                 python: str = sys.executable, nice: int = 10, threads: int | None = None, eval_seconds: float = 5):
        self.library = library
        self.root = Path(root) if root is not None else user_models_dir()
        self.limits = limits or TrainLimits.from_env()
        self.python, self.nice, self.eval_seconds = python, nice, eval_seconds
        # On a CPU the trainer takes half the cores, so sampling for other visitors keeps the rest.
        self.threads = threads or max(1, (os.cpu_count() or 2) // 2)
        self.jobs: dict[str, Job] = {}
        self.queue: list[str] = []  # ids of queued jobs, first = next
        self._lock = threading.RLock()
        self.speeds = SpeedTable(self.threads)
        self.downloads = Downloads()
        for job in load_jobs(self.root):
            self.jobs[job.id] = job
            if (job.folder / "best").is_dir():
                self.library.add(job.model_name, job.folder / "best")
        self.clean_up()

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

    # -- jobs ---------------------------------------------------------------------------------------------
    def submit(self, owner: str, text: TrainingText, settings: JobSettings) -> Job:
        owner = checked_owner(owner)
        settings = settings.checked(self.limits)
        if settings.batch_size * settings.seq_len + settings.seq_len + 1 > text.preview["training characters"]:
            describe_text(text.text, settings.batch_size, settings.seq_len)  # raises with the message
        with self._lock:
            busy = next((job for job in self.jobs.values() if job.owner == owner and job.active), None)
            if busy is not None:
                raise CharRNNError(f"your model {busy.settings.name!r} is still training or queued; stop it first")
            job_id = uuid.uuid4().hex
            folder = self.root / owner_dir(owner) / f"{settings.name.replace(' ', '-')}-{job_id[:6]}"
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
            check(job.state in ("stopped", "finished"), f"the model {job.settings.name!r} is {job.state}; only a "
                  "stopped or finished one can be resumed")
            check((job.folder / "last").is_dir(), "this job stopped before its first checkpoint; train it again")
            minutes = inputs.number(minutes, "the minutes of training", 0.1, self.limits.max_minutes)
            done = trained_minutes(job)
            check(done + minutes <= self.limits.max_minutes + 1e-9,
                  f"{job.settings.name!r} has trained {done:.1f} minutes; this host allows "
                  f"{self.limits.max_minutes} per model, so at most {max(self.limits.max_minutes - done, 0):.1f} more")
            job.budget_minutes = done + minutes
            job.state, job.stop_requested = "queued", False
            job.message = f"resuming for {minutes:g} more minutes"
            self.queue.append(job.id)
            job.save()
            self._pump()
            return job

    def stop(self, owner: str, job_id: str) -> Job:
        """Stop a job: a queued one leaves the queue; a running trainer saves its weights and exits."""
        job = self.job(owner, job_id)
        with self._lock:
            if job.state == "queued":
                self.queue.remove(job.id)
                job.state = "stopped" if (job.folder / "best").is_dir() else "failed"
                job.message = "stopped before it started" if job.state == "failed" else "stopped"
                job.save()
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
        owner = checked_owner(owner)
        job = self.jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None or (job.owner != owner and not self.limits.share):
            raise CharRNNError("no such training job in this session")
        return job

    def latest(self, owner: str) -> Job | None:
        """The session's most recent job (to show again after a page reload)."""
        owner = checked_owner(owner)
        mine = [job for job in self.jobs.values() if job.owner == owner]
        return max(mine, key=lambda job: job.created) if mine else None

    def position(self, job: Job) -> int | None:
        """1 for the next job to start, None when not queued."""
        with self._lock:
            return self.queue.index(job.id) + 1 if job.id in self.queue else None

    def model_names(self, owner: str | None) -> list[str]:
        """Trained models this session may pick (all of them when the host shares them), newest first."""
        with self._lock:
            jobs = [job for job in self.jobs.values()
                    if job.model_name in self.library.extra and (self.limits.share or job.owner == owner)]
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
        """Push the job's model to the Hub as `repo_id` (user/name) with a model card; returns the commit URL.

        The token is the visitor's: `token` as typed, else `oauth_token`, that of the visitor signed in with
        Hugging Face (a gr.OAuthToken, or anything with a `.token`). The host's own login is used only where the
        host allows it (TrainLimits.host_token)."""
        from charrnn.hub.card import hub_datasets
        from charrnn.hub.push import push_to_hub
        from charrnn.hub.resolve import HUB_ID

        job = self.job(owner, job_id)
        repo_id = inputs.text(repo_id, "the Hub repository", 200, allow_empty=False).strip()
        check(HUB_ID.fullmatch(repo_id) is not None, f"{repo_id!r} is not a Hub repository: write user/name")
        check((job.folder / "best").is_dir(), "this job has no model yet: wait for its first evaluation")
        signed_in = getattr(oauth_token, "token", None)
        token = inputs.text(token, "the token", 500).strip() or (signed_in if isinstance(signed_in, str) else "")
        check(bool(token) or self.limits.host_token,
              "pushing to the Hub needs your Hugging Face token with write access: sign in with Hugging Face where "
              "the page offers it, or paste a token from https://huggingface.co/settings/tokens")
        # The card's Hub metadata names the dataset the text came from (the checkpoint's --dataset is text.txt).
        datasets = hub_datasets({"dataset": [job.dataset]}) if job.dataset else []
        return push_to_hub(job.folder, repo_id, token=token or None, datasets=datasets)

    # -- running ------------------------------------------------------------------------------------------
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
            returncode = runner.train(self, job)
        except Exception as err:  # noqa: BLE001 - whatever happens, the job ends with a message
            returncode, job.message = -1, f"training could not start ({type(err).__name__}: {err})"
        with self._lock:
            job.process = None
            has_model = (job.folder / "best").is_dir()
            if returncode == 0 and not job.stop_requested:
                job.state, job.message = "finished", "finished"
            elif job.stop_requested or returncode == 130:
                job.state = "stopped" if has_model else "failed"
                job.message = "stopped; Resume continues it" if has_model else "stopped before its first evaluation"
            else:
                job.state = "failed"
                if returncode != -1:
                    job.message = runner.error_message(job.folder / "log.txt", returncode)
                if has_model:
                    job.message += " (the best weights so far are kept)"
            if has_model:
                self.library.add(job.model_name, job.folder / "best")
            job.save()
            self._pump()
        self.clean_up()

    def claim(self, owner: str) -> None:
        """Give a returning session its jobs from an earlier run of the app (stored by the key's hash)."""
        owner = checked_owner(owner)
        with self._lock:
            for job in self.jobs.values():
                if not job.owner and job.owner_key_hash == owner_dir(owner):
                    job.owner = owner

    def clean_up(self) -> None:
        """Delete trained models older than the host keeps them, then the oldest beyond the number it keeps."""
        with self._lock:
            done = sorted((job for job in self.jobs.values() if not job.active), key=lambda job: job.created)
            too_old = time.time() - self.limits.keep_hours * 3600
            doomed = [job for job in done if job.created < too_old]
            kept = [job for job in done if job.created >= too_old]
            doomed += kept[:max(len(kept) - self.limits.kept_models, 0)]
            for job in doomed:
                self.library.remove(job.model_name)
                del self.jobs[job.id]
                shutil.rmtree(job.folder, ignore_errors=True)
                self.downloads.remove(job.id)
