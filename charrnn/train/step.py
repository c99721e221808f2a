"""One training step of truncated BPTT, and the moving average of the weights."""

from __future__ import annotations

import math
from typing import Callable

import torch

from charrnn.device import autocast
from charrnn.model import CharRNN


def repackage_hidden(hidden):
    """Cut the graph at the batch boundary (truncated BPTT) but keep the values: the next batch continues
    the same text streams, so it starts from where this one ended."""
    if hidden is None:
        return None
    if isinstance(hidden, tuple):
        return tuple(h.detach().float() for h in hidden)
    return hidden.detach().float()


def train_step(model: CharRNN, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, hidden,
               amp_dtype: torch.dtype | None, clip: float, mean: Callable[[float], float] | None = None,
               scaler: torch.amp.GradScaler | None = None):
    """One step of truncated BPTT: forward from the carried hidden state, backward, clip, update.

    Returns (loss, pre-clipping gradient norm, hidden state for the next batch). The update is skipped when
    the loss or the gradient is not finite, so the weights stay the last good ones. `mean` averages the loss
    over the processes of a distributed run, so that they all take the same decision. `scaler` (fp16) scales
    the loss so that small gradients do not underflow; an infinite norm then means the scale was too high, and
    the scaler skips the update and lowers it.
    """
    with autocast(x.device, amp_dtype):
        _, hidden, loss = model(x, hidden, y)
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
    else:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # clip the true gradients
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip > 0 else math.inf).item()
    loss_value = loss.item() if mean is None else mean(loss.item())
    if scaler is not None:
        if math.isfinite(loss_value):
            scaler.step(optimizer)
        scaler.update()
    elif math.isfinite(loss_value) and math.isfinite(norm):
        optimizer.step()
    return loss_value, norm, repackage_hidden(hidden)


def moving_average(decay: float):
    """An AveragedModel update: exponential moving average whose decay warms up as (1 + n) / (10 + n) towards
    `decay` (as TensorFlow's ExponentialMovingAverage does), so a short run is not averaged with its start."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = int(num_averaged)
        weight = 1 - min(decay, (1 + n) / (10 + n))
        for avg, cur in zip(averaged, current):
            avg.lerp_(cur, weight)

    return update
