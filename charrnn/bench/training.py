"""Training speed: charrnn's step beside the plain loop a tutorial writes, at the same shapes and precision."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from charrnn.bench.timing import Timing, timed
from charrnn.config import ModelConfig, TrainConfig
from charrnn.device import autocast, loss_scaler
from charrnn.model import CharRNN
from charrnn.train import make_optimizer, train_step
from charrnn.train.step import MovingAverage, to_device

VOCAB = 66  # Tiny Shakespeare's 65 characters + the unknown id


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    batch: int
    seq_len: int

    @property
    def model(self) -> str:
        return f"{self.layers}x{self.hidden}"

    @property
    def chars(self) -> int:
        """Characters trained on per step."""
        return self.batch * self.seq_len


def charrnn_model(shape: Shape) -> CharRNN:
    """A model of `shape` with the training defaults for everything else."""
    cfg = TrainConfig()
    return CharRNN(ModelConfig(vocab_size=VOCAB, cell=cfg.cell, embedding_size=cfg.embedding,
                               hidden_size=shape.hidden, num_layers=shape.layers, dropout=cfg.dropout))


def charrnn_training(shape: Shape, amp_dtype: torch.dtype | None, device: torch.device, repeats: int) -> Timing:
    """A step as `charrnn train` takes it: the batch from the CPU to the device, forward from the carried hidden
    state, backward, clip, fused AdamW, the moving average of the weights."""
    cfg = TrainConfig()
    torch.manual_seed(0)
    model = charrnn_model(shape).to(device).train()
    optimizer = make_optimizer(model, cfg)
    average = MovingAverage(model, cfg.ema_decay)
    scaler = loss_scaler(amp_dtype, device)
    x, y = torch.randint(0, VOCAB, (shape.batch, shape.seq_len)), torch.randint(0, VOCAB, (shape.batch, shape.seq_len))
    state = {"hidden": None}

    def step():
        _, _, state["hidden"] = train_step(model, optimizer, to_device(x, device), to_device(y, device),
                                           state["hidden"], amp_dtype, cfg.clip, scaler=scaler)
        average.update_parameters(model)

    return timed(step, repeats, device)


def plain_training(shape: Shape, amp_dtype: torch.dtype | None, device: torch.device, repeats: int) -> Timing:
    """The loop a tutorial writes: nn.Embedding, nn.LSTM, nn.Linear, Adam, the batch already on the device,
    autocast at the same precision (and a loss scaler for fp16)."""
    cfg = TrainConfig()
    torch.manual_seed(0)
    embedding = nn.Embedding(VOCAB, cfg.embedding).to(device)
    lstm = nn.LSTM(cfg.embedding, shape.hidden, shape.layers, batch_first=True).to(device)
    head = nn.Linear(shape.hidden, VOCAB).to(device)
    params = [*embedding.parameters(), *lstm.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    scaler = loss_scaler(amp_dtype, device)
    x = torch.randint(0, VOCAB, (shape.batch, shape.seq_len), device=device)
    y = torch.randint(0, VOCAB, (shape.batch, shape.seq_len), device=device)

    def step():
        with autocast(device, amp_dtype):
            out, _ = lstm(embedding(x))
            loss = nn.functional.cross_entropy(head(out).float().flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        if scaler is None:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.clip)
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, cfg.clip)
            scaler.step(optimizer)
            scaler.update()

    return timed(step, repeats, device)
