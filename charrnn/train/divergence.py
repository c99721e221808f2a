"""A run that diverges stops with a message and never saves diverged weights: losses and gradient norms are
checked when they are read from the device, and the last update before a save is checked too."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from charrnn.device import autocast
from charrnn.errors import CharRNNError

if TYPE_CHECKING:
    from charrnn.train.trainer import Trainer


def figure(name: str, value: float) -> str:
    """A figure in a divergence message: "validation loss 3.2e+05", or "validation loss became nan" (or inf),
    which a bare "loss nan" would not say as plainly."""
    return f"{name} {value:.4g}" if math.isfinite(value) else f"{name} became {value}"


def exploded(loss: float, vocab_size: int) -> bool:
    # A healthy run starts near ln(V) (uniform guessing) and goes down; far above it, it has exploded.
    return not math.isfinite(loss) or loss > 5 * math.log(vocab_size) + 5


@torch.no_grad()
def loss_after_update(trainer: Trainer) -> float:
    """The loss of the current weights on the latest batch. A step's own loss is measured before its
    update, so without this a catastrophic last update would be saved as last/."""
    x, y = trainer.last_batch
    trainer.model.eval()  # no dropout: the random stream stays the same as a run that does not check
    try:
        with autocast(trainer.device, trainer.amp_dtype):
            return trainer.dist.mean(trainer.model(x, None, y)[2].float()).item()
    finally:
        trainer.model.train()


def diverged(trainer: Trainer, what: str, step: int | None = None) -> CharRNNError:
    """The error that stops a run that diverged at `step` (default: the latest)."""
    if trainer.saved_step is None:
        saved = f"No checkpoint was saved (a run saves every {trainer.cfg.eval_interval} steps)"
    else:
        saved = f"The last good checkpoint is {trainer.out / 'last'} (step {trainer.saved_step})"
    step = trainer.progress.step if step is None else step
    return CharRNNError(f"training diverged at step {step}: {what}. {saved}; try a lower --lr "
                        f"(now {trainer.cfg.lr}) or a tighter --clip (now {trainer.cfg.clip})")


def read_steps(trainer: Trainer) -> None:
    """Read the losses and gradient norms of the steps since the last read (the host waits for the device to
    finish them), stop a run that diverged, and count the norms. Called every --log-interval steps (and
    READ_EVERY), and before every evaluation and save, so that nothing diverged is ever saved.

    A step whose loss or gradient was not finite made no update (see train_step), and the steps after it ran
    on until this read: the run stops here, naming the first such step."""
    p = trainer.progress
    steps = trainer.window.read()
    for step, (loss, norm) in enumerate(steps, p.step - len(steps) + 1):
        # With a loss scaler an infinite gradient is a scale set too high (the scaler skipped the update).
        if exploded(loss, trainer.model.config.vocab_size) or not (math.isfinite(norm) or trainer.scaler is not None):
            raise diverged(trainer, f"{figure('loss', loss)}, {figure('gradient norm', norm)}", step)
        if math.isfinite(norm):  # an fp16 step the scaler skipped has none
            p.count_norm(norm, trainer.cfg.clip)
