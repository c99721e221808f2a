"""Training jobs and their state on disk: one folder per job (job.json, text.txt, the run's best/ and last/),
under a folder per owner named by a hash of the owner's session key."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from charrnn.errors import check
from charrnn.service.training.settings import JobSettings

STATES = ("queued", "running", "stopping", "stopped", "finished", "failed")


def owner_dir(owner: str) -> str:
    """A folder name for a session key: its hash, so the key itself never reaches the disk."""
    return hashlib.sha256(owner.encode("utf-8")).hexdigest()[:16]


def checked_owner(value) -> str:
    """The owner a session key stands for: the key's hash (jobs, folders and models are stored by it)."""
    check(isinstance(value, str) and 8 <= len(value) <= 200, "this page has no session key; reload the page")
    return owner_dir(value)


@dataclass
class Job:
    id: str
    owner: str
    settings: JobSettings
    folder: Path
    created: float = field(default_factory=time.time)
    state: str = "queued"
    message: str = ""
    budget_minutes: float = 0.0  # total training minutes of the run, earlier invocations included
    process: subprocess.Popen | None = field(default=None, repr=False)
    stop_requested: bool = False
    started: float | None = None  # wall clock when the current invocation started
    metrics: list = field(default_factory=list, repr=False)  # parsed metrics.jsonl records
    metrics_offset: int = 0
    val_fraction: float = 0.1
    data_name: str = ""  # what the model card calls the text (TrainingText.name)
    dataset: str | None = None  # the dataset named, if any

    @property
    def model_name(self) -> str:
        return f"trained/{self.settings.name.replace(' ', '-')}-{self.id[:6]}"

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running", "stopping")

    def end(self, returncode: int, error: str) -> None:
        """The state and message of a job whose trainer exited with `returncode` (-1: it could not start;
        `error`: what went wrong), saved. A job that made no model keeps no text: there is nothing to resume."""
        has_model = (self.folder / "best").is_dir()
        if returncode == 0 and not self.stop_requested:
            self.state, self.message = "finished", "finished"
        elif self.stop_requested or returncode == 130:
            self.state = "stopped" if has_model else "failed"
            self.message = "stopped; Resume continues it" if has_model else "stopped before its first evaluation"
        else:
            self.state, self.message = "failed", error
            if has_model:
                self.message += " (the best weights so far are kept)"
        if not has_model:
            (self.folder / "text.txt").unlink(missing_ok=True)
        self.save()

    def requeue(self, minutes: float, max_minutes: float) -> None:
        """Queue a stopped or finished job for `minutes` more training (it continues from its last/ checkpoint),
        within the host's `max_minutes` per model."""
        check(self.state in ("stopped", "finished"), f"the model {self.settings.name!r} is {self.state}; only a "
              "stopped or finished one can be resumed")
        check((self.folder / "last").is_dir(), "this job stopped before its first checkpoint; train it again")
        done = trained_minutes(self)
        check(done + minutes <= max_minutes + 1e-9, f"{self.settings.name!r} has trained {done:.1f} minutes; this "
              f"host allows {max_minutes} per model, so at most {max(max_minutes - done, 0):.1f} more")
        self.budget_minutes = done + minutes
        self.state, self.stop_requested = "queued", False
        self.message = f"resuming for {minutes:g} more minutes"
        self.save()

    def save(self) -> None:
        record = {"id": self.id, "owner": self.owner, "settings": asdict(self.settings),
                  "created": self.created, "state": self.state, "message": self.message,
                  "budget_minutes": self.budget_minutes, "data_name": self.data_name, "dataset": self.dataset}
        (self.folder / "job.json").write_text(json.dumps(record), encoding="utf-8")


# -- what is kept -------------------------------------------------------------------------------------
def load_jobs(root: Path, stop_trainer: Callable[[Path], bool]) -> list[Job]:
    """Jobs of earlier runs of the app, as they were: a queued job waits again; a job cut off by a restart is
    stopped (`stop_trainer` stops its trainer if it still runs, before anything in its folder is touched) and can
    be resumed. What is on disk is updated to agree."""
    jobs = []
    for record_file in sorted(root.glob("*/*/job.json")):
        try:
            record = json.loads(record_file.read_text(encoding="utf-8"))
            job = Job(record["id"], record["owner"], JobSettings(**record["settings"]), record_file.parent,
                      created=record["created"], state=record["state"], message=record["message"],
                      budget_minutes=record["budget_minutes"], data_name=record.get("data_name", ""),
                      dataset=record.get("dataset"))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if job.state in ("running", "stopping"):
            stop_trainer(job.folder)
            has_model = (job.folder / "best").is_dir()
            job.state = "stopped" if has_model else "failed"
            job.message = ("stopped when the app restarted; Resume continues it" if has_model
                           else "stopped by a restart of the app before its first evaluation")
            if not has_model:  # as in Job.end: nothing to resume, so the text goes
                (job.folder / "text.txt").unlink(missing_ok=True)
            job.save()
        jobs.append(job)
    return jobs

def trained_minutes(job: Job) -> float:
    try:
        metrics = json.loads((job.folder / "last" / "config.json").read_text()).get("metrics", {})
        return metrics.get("train_seconds", 0) / 60
    except (OSError, ValueError):
        return job.budget_minutes
