"""Training jobs and their state on disk: one folder per job (job.json, text.txt, the run's best/ and last/),
under a folder per owner named by a hash of the owner's session key."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from charrnn.errors import check
from charrnn.service.training.settings import JobSettings

STATES = ("queued", "running", "stopping", "stopped", "finished", "failed")


def owner_dir(owner: str) -> str:
    """A folder name for a session key: its hash, so the key itself never reaches the disk."""
    return hashlib.sha256(owner.encode("utf-8")).hexdigest()[:16]


def checked_owner(value) -> str:
    check(isinstance(value, str) and 8 <= len(value) <= 200, "this page has no session key; reload the page")
    return value


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
    owner_key_hash: str = ""  # for a job found on disk at start: whose it is, until that session comes back

    @property
    def model_name(self) -> str:
        return f"trained/{self.settings.name.replace(' ', '-')}-{self.id[:6]}"

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running", "stopping")

    def save(self) -> None:
        record = {"id": self.id, "owner": owner_dir(self.owner), "settings": asdict(self.settings),
                  "created": self.created, "state": self.state, "message": self.message,
                  "budget_minutes": self.budget_minutes, "data_name": self.data_name, "dataset": self.dataset}
        (self.folder / "job.json").write_text(json.dumps(record), encoding="utf-8")


# -- what is kept -------------------------------------------------------------------------------------
def load_jobs(root: Path) -> list[Job]:
    """Jobs of earlier runs of the app: their models are listed again (a job cut off by a restart is
    marked stopped, and can be resumed)."""
    jobs = []
    for record_file in sorted(root.glob("*/*/job.json")):
        try:
            record = json.loads(record_file.read_text(encoding="utf-8"))
            job = Job(record["id"], "", JobSettings(**record["settings"]), record_file.parent,
                      created=record["created"], state=record["state"], message=record["message"],
                      budget_minutes=record["budget_minutes"], data_name=record.get("data_name", ""),
                      dataset=record.get("dataset"))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        job.owner_key_hash = record["owner"]
        if job.state in ("queued", "running", "stopping"):
            job.state, job.message = "stopped", "stopped when the app restarted; Resume continues it"
        jobs.append(job)
    return jobs

def trained_minutes(job: Job) -> float:
    try:
        metrics = json.loads((job.folder / "last" / "config.json").read_text()).get("metrics", {})
        return metrics.get("train_seconds", 0) / 60
    except (OSError, ValueError):
        return job.budget_minutes

def expired_jobs(jobs: list[Job], limits) -> list[Job]:
    """The finished jobs to delete: those older than the host keeps them, then the oldest beyond the number it
    keeps (`limits`: a TrainLimits)."""
    done = sorted((job for job in jobs if not job.active), key=lambda job: job.created)
    too_old = time.time() - limits.keep_hours * 3600
    doomed = [job for job in done if job.created < too_old]
    kept = [job for job in done if job.created >= too_old]
    return doomed + kept[:max(len(kept) - limits.kept_models, 0)]
