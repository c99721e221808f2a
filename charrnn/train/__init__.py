"""Training: the Trainer behind `python -m charrnn.train` / `charrnn train` (the command: charrnn.cli.train).

    resume.py     what --resume continues, and which flags may change
    trainer.py    the Trainer: a run set up (new or resumed), one step, an evaluation, a save of last/
    recipe.py     the model size and dropout a --time-budget run chooses for its budget, text and device
    probe.py      the speeds it chooses from: a few timed steps of each candidate size
    loop.py       the loop that drives it, and the finish
    exact_state.py what --resume restores besides the weights, bit for bit
    divergence.py  a diverging run stopped with a message, nothing diverged saved
    state.py      how far a run has come (what --resume restores besides weights and optimizer)
    schedule.py   the learning rate
    step.py       one step of truncated BPTT, the moving average of the weights
    build.py      the model and its optimizer
    metrics.py    log lines and the metrics stored with checkpoints
    run_folder.py best/, last/, metrics.jsonl; the checkpoint --resume continues from
    signals.py    Ctrl-C and SIGTERM
"""

from charrnn.train.build import build_model, make_optimizer
from charrnn.train.trainer import Trainer
from charrnn.train.run_folder import find_resume_checkpoint
from charrnn.train.schedule import learning_rate
from charrnn.train.step import repackage_hidden, train_step

__all__ = ["Trainer", "build_model", "find_resume_checkpoint", "learning_rate", "make_optimizer",
           "repackage_hidden", "train_step"]
