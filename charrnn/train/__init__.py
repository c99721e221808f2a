"""Training: the Trainer behind `python -m charrnn.train` / `charrnn train` (the command: charrnn.cli.train).

    resume.py     what --resume continues, and which flags may change
    loop.py       the Trainer: set-up, steps, evaluation and checkpoints, the finish
    state.py      how far a run has come (what --resume restores besides weights and optimizer)
    schedule.py   the learning rate
    step.py       one step of truncated BPTT, the moving average of the weights
    build.py      the model and its optimizer
    metrics.py    log lines and the metrics stored with checkpoints
    run_folder.py best/, last/, metrics.jsonl; the checkpoint --resume continues from
    signals.py    Ctrl-C and SIGTERM
"""

from charrnn.train.build import build_model, make_optimizer
from charrnn.train.loop import Trainer
from charrnn.train.run_folder import find_resume_checkpoint
from charrnn.train.schedule import learning_rate
from charrnn.train.step import repackage_hidden, train_step

__all__ = ["Trainer", "build_model", "find_resume_checkpoint", "learning_rate", "make_optimizer",
           "repackage_hidden", "train_step"]
