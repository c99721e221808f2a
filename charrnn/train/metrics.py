"""What a run reports: the training log lines of metrics.jsonl and the metrics stored with each checkpoint."""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from charrnn.train.state import GRAD_NORM_BINS, Progress


class LogWindow:
    """Loss and gradient norms of the steps since the last log line, and how fast they went.

    Steps add their loss and norm as tensors on their device; `read` fetches those not read yet in one transfer,
    the only time the training loop waits for a GPU (charrnn.train.step says why that matters)."""

    def __init__(self):
        self.pending: list[torch.Tensor] = []  # loss, norm, loss, norm... of the steps not read yet
        self.restart()

    def restart(self) -> None:
        """Also called after an evaluation: evaluation time is not training speed."""
        self.losses, self.norms, self.chars, self.start = [], [], 0, time.perf_counter()

    def add(self, loss: torch.Tensor, norm: torch.Tensor, chars: int) -> None:
        self.pending += [loss, norm]
        self.chars += chars

    def read(self) -> list[tuple[float, float]]:
        """(loss, norm) of each step added since the last read, oldest first."""
        if not self.pending:
            return []
        values = torch.stack(self.pending).tolist()
        self.pending = []
        steps = list(zip(values[::2], values[1::2]))
        self.losses += values[::2]
        self.norms += values[1::2]
        return steps

    def record(self, step: int, elapsed: float, lr: float) -> dict:
        """The log line of the steps read since the last one (read them first)."""
        seconds = time.perf_counter() - self.start
        record = {"event": "train", "step": step, "elapsed_s": round(elapsed, 2),
                  "loss": sum(self.losses) / len(self.losses), "lr": lr,
                  "grad_norm": float(np.mean(self.norms)), "grad_norm_max": float(max(self.norms)),
                  "chars_per_s": round(self.chars / seconds)}
        self.restart()
        return record


def run_metrics(progress: Progress, total_seconds: float, clip: float, how: dict, data: dict) -> dict:
    """The metrics stored in a checkpoint's config.json. `how` says how the run ran (hardware, precision...)."""
    return {
        "best_val_nats": progress.best_val,
        "best_val_bpc": progress.best_val / math.log(2),
        "steps": progress.step,
        "train_seconds": round(total_seconds, 1),
        "train_chars_per_s": round(progress.chars_seen / max(progress.step_seconds, 1e-9)),
        "schedule_steps": progress.schedule.horizon,
        "curve": progress.curve,
        "grad_norm": {
            "edges": GRAD_NORM_BINS.tolist(), "counts": progress.grad_hist.tolist(), "clip": clip,
            "clipped_fraction": progress.clipped_steps / max(progress.step, 1),
        },
        **how,
        "data": data,
    }
