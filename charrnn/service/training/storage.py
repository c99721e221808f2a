"""What the host keeps of trained models, and for how long: jobs that produced nothing never make room by deleting
anyone's model, each owner's own oldest go before anyone else's, and the folder stays within its size on disk."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

from charrnn.service.training.jobs import Job
from charrnn.service.training.limits import TrainLimits

FULL = ("the space this host keeps for trained models is full; try again later, or train on your own machine "
        "(`charrnn train`)")


NOTHING_KEPT_SECONDS = 3600  # a job that made no model: its message stays this long, then it goes


def expired_jobs(jobs: list[Job], limits, now: float | None = None) -> list[Job]:
    """The finished jobs to delete (`limits`: a TrainLimits). Only jobs that hold a model count toward the
    numbers kept, so jobs that produced nothing never make room by deleting anyone's model: models older than
    the host keeps them, then each owner's own oldest beyond what one owner may keep, then the oldest beyond
    the host's total; a job without a model after an hour."""
    now = time.time() if now is None else now
    done = sorted((job for job in jobs if not job.active), key=lambda job: job.created)
    models = [job for job in done if (job.folder / "best").is_dir()]
    doomed = [job for job in done if job not in models and job.created < now - NOTHING_KEPT_SECONDS]
    doomed += [job for job in models if job.created < now - limits.keep_hours * 3600]
    by_owner: dict[str, list[Job]] = {}
    for job in models:
        if job not in doomed:
            by_owner.setdefault(job.owner, []).append(job)
    for theirs in by_owner.values():
        doomed += theirs[:max(len(theirs) - limits.kept_per_owner, 0)]
    kept = [job for job in models if job not in doomed]
    return doomed + kept[:max(len(kept) - limits.kept_models, 0)]


def disk_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def has_room(root: Path, limits: TrainLimits, new_bytes: int) -> bool:
    return disk_bytes(root) + new_bytes <= limits.disk_mb * 1_000_000


def delete_expired(jobs: list[Job], root: Path, limits: TrainLimits) -> list[Job]:
    """Delete the folders of the jobs the host no longer keeps, then empty owner folders; the jobs deleted."""
    doomed = expired_jobs(jobs, limits)
    for job in doomed:
        shutil.rmtree(job.folder, ignore_errors=True)
    for folder in root.glob("[!.]*/"):  # owner folders (not the app's own, such as .downloads)
        with contextlib.suppress(OSError):  # not empty
            folder.rmdir()
    return doomed
