"""One training step of truncated BPTT, and the moving average of the weights.

Nothing here reads a value back from the device. A GPU runs the work queued for it while the host queues the
next step; reading one number (`loss.item()`) makes the host wait until the GPU has finished everything queued
before it, and the GPU then idles while the host queues the next step. So a step keeps its loss and gradient
norm as tensors on the device, decides on the device whether to update, and the loop reads the figures of many
steps at once (charrnn.train.metrics.LogWindow).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch.optim.swa_utils import AveragedModel

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


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch of token ids on the training device. To a GPU it is copied from pinned (page-locked) memory
    without waiting, so the copy overlaps the GPU's work on the previous step."""
    if device.type == "cuda":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


def train_step(model: CharRNN, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, hidden,
               amp_dtype: torch.dtype | None, clip: float,
               mean: Callable[[torch.Tensor], torch.Tensor] | None = None,
               scaler: torch.amp.GradScaler | None = None):
    """One step of truncated BPTT: forward from the carried hidden state, backward, clip, update.

    Returns (loss, pre-clipping gradient norm, hidden state for the next batch); loss and norm are 0-d float32
    tensors on the model's device, not read by the host (see the module's docstring).

    A step whose loss or gradient is not finite makes no update: weights, AdamW's moments and its step count
    stay as they were. `mean` averages the loss over the processes of a distributed run (on the device), so
    that all of them decide alike; their gradients are the same, averaged by DDP. `scaler` (fp16) scales the
    loss so that small gradients do not underflow; a non-finite gradient then means the scale was too high,
    and the scaler skips the update and lowers it (a non-finite loss has non-finite gradients).
    """
    with autocast(x.device, amp_dtype):
        _, hidden, loss = model(x, hidden, y)
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
    else:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # clip the true gradients
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip > 0 else math.inf)
    loss = loss.detach().float() if mean is None else mean(loss.detach().float())
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        step_unless(optimizer, ~(torch.isfinite(loss) & torch.isfinite(norm)))
    return loss, norm.float(), repackage_hidden(hidden)


def step_unless(optimizer: torch.optim.Optimizer, skip: torch.Tensor) -> None:
    """optimizer.step(), unless the 0-d bool tensor `skip` is true.

    The fused optimizers (make_optimizer's AdamW) decide on the device: their kernels skip the update when
    given a nonzero `found_inf`, the flag GradScaler hands them as the attributes `found_inf` and `grad_scale`
    around its own `optimizer.step()`. Other optimizers cannot skip on the device, so the flag is read (a wait).
    """
    if getattr(optimizer, "_step_supports_amp_scaling", False):
        optimizer.found_inf, optimizer.grad_scale = skip.float(), None
        try:
            optimizer.step()
        finally:
            del optimizer.found_inf, optimizer.grad_scale
    elif not skip.item():
        optimizer.step()


class MovingAverage(AveragedModel):
    """An exponential moving average of the weights whose decay warms up as (1 + n) / (10 + n) towards `decay`
    (as TensorFlow's ExponentialMovingAverage does), so a short run is not averaged with its start.

    AveragedModel's container and state_dict (`module.*`, `n_averaged`), with an update of its own:
    AveragedModel's copies the count to the weights' device and reads it back there at every step, which
    makes the host wait for a GPU. Here the count stays on the CPU. (CharRNN has no buffers to copy.)
    """

    def __init__(self, model: CharRNN, decay: float):
        super().__init__(model)
        self.decay = decay

    @torch.no_grad()
    def update_parameters(self, model: CharRNN) -> None:
        n = int(self.n_averaged)  # a CPU tensor: no wait
        weight = 1 - min(self.decay, (1 + n) / (10 + n))
        for averaged, current in zip(self.module.parameters(), model.parameters()):
            if n == 0:
                averaged.copy_(current)
            else:
                averaged.lerp_(current, weight)
        self.n_averaged += 1
