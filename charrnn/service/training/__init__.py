"""The Train tab's jobs, without the UI: text in, a trainer process per job, a model the person can use out.

    limits.py     what training may ask of the host (TrainLimits, from the environment); where models live
    settings.py   what a person chooses for a job (JobSettings), checked
    intake.py     pasted text, uploads and datasets read, checked and previewed (TrainingText)
    jobs.py       a job and its state on disk
    runner.py     the trainer as a child process (and the ZeroGPU function that runs it)
    progress.py   the live curves and sample, from the run's metrics.jsonl
    speed.py      how fast each size trains here
    downloads.py  zips of trained models to download, kept for minutes
    manager.py    TrainingManager: the queue, who owns what, stop, resume, download, push
"""

from charrnn.service.training.intake import (TrainingText, describe_text, min_text_chars, preview_markdown, read_upload,
                                             suggested_size)
from charrnn.service.training.jobs import Job
from charrnn.service.training.limits import TrainLimits, user_models_dir
from charrnn.service.training.manager import TrainingManager
from charrnn.service.training.settings import SIZE_PRESETS, SIZES, JobSettings

__all__ = ["SIZE_PRESETS", "SIZES", "Job", "JobSettings", "TrainLimits", "TrainingManager", "TrainingText",
           "describe_text", "min_text_chars", "preview_markdown", "read_upload", "suggested_size", "user_models_dir"]
