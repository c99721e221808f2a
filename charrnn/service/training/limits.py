"""What training may ask of the host, from the environment, with defaults safe for a public Space; and where
trained models live."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from charrnn.paths import data_dir
from charrnn.service.inputs import LIMITS, env_int


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class TrainLimits:
    """What training may ask of the host: from the environment, with defaults safe for a public Space."""

    jobs: int = 1  # jobs training at once; later ones wait in a queue (CHARRNN_TRAIN_JOBS)
    max_minutes: int = 10  # per job, resumes included (CHARRNN_TRAIN_MAX_MINUTES)
    upload_mb: int = LIMITS.upload_mb  # per uploaded file (CHARRNN_MAX_UPLOAD_MB, also Gradio's max_file_size)
    max_chars: int = 20_000_000  # characters of training text (CHARRNN_TRAIN_MAX_CHARS)
    kept_models: int = 50  # trained models kept on the host; the oldest go first (CHARRNN_TRAIN_KEEP)
    kept_per_owner: int = 5  # trained models kept per session; its own oldest go first (CHARRNN_TRAIN_KEEP_EACH)
    queued: int = 20  # jobs waiting to start, all sessions together (CHARRNN_TRAIN_QUEUE)
    disk_mb: int = 5_000  # trained models, their texts and logs on disk, all together (CHARRNN_TRAIN_DISK_MB)
    keep_hours: int = 7 * 24  # trained models older than this are deleted (CHARRNN_TRAIN_KEEP_HOURS)
    local_paths: bool = False  # may a dataset name be a folder on this host? (CHARRNN_TRAIN_LOCAL_PATHS=1)
    share: bool = False  # trained models listed to every visitor (CHARRNN_SHARE_TRAINED=1)
    # May a push without the visitor's own token use the host's login (HF_TOKEN, `hf auth login`)? On a public
    # Space that would let any visitor write to the owner's repos (CHARRNN_TRAIN_HOST_TOKEN=1)
    host_token: bool = False

    @classmethod
    def from_env(cls) -> "TrainLimits":
        return cls(jobs=env_int("CHARRNN_TRAIN_JOBS", cls.jobs),
                   max_minutes=env_int("CHARRNN_TRAIN_MAX_MINUTES", cls.max_minutes),
                   upload_mb=env_int("CHARRNN_MAX_UPLOAD_MB", cls.upload_mb),
                   max_chars=env_int("CHARRNN_TRAIN_MAX_CHARS", cls.max_chars),
                   kept_models=env_int("CHARRNN_TRAIN_KEEP", cls.kept_models),
                   kept_per_owner=env_int("CHARRNN_TRAIN_KEEP_EACH", cls.kept_per_owner),
                   queued=env_int("CHARRNN_TRAIN_QUEUE", cls.queued),
                   disk_mb=env_int("CHARRNN_TRAIN_DISK_MB", cls.disk_mb),
                   keep_hours=env_int("CHARRNN_TRAIN_KEEP_HOURS", cls.keep_hours),
                   local_paths=_env_flag("CHARRNN_TRAIN_LOCAL_PATHS"),
                   share=_env_flag("CHARRNN_SHARE_TRAINED"),
                   host_token=_env_flag("CHARRNN_TRAIN_HOST_TOKEN"))


def user_models_dir() -> Path:
    """Where trained models live: CHARRNN_USER_MODELS, else user-models/ in the data folder."""
    return Path(os.environ.get("CHARRNN_USER_MODELS") or data_dir() / "user-models")
