"""What a run reports: the training log lines of metrics.jsonl and the metrics stored with each checkpoint."""

from __future__ import annotations

import math
import time

import numpy as np

from charrnn.train.state import GRAD_NORM_BINS, Progress


class LogWindow:
    """Loss and gradient norms of the steps since the last log line, and how fast they went."""

    def __init__(self):
        self.restart()

    def restart(self) -> None:
        """Also called after an evaluation: evaluation time is not training speed."""
        self.losses, self.norms, self.chars, self.start = [], [], 0, time.perf_counter()

    def add(self, loss: float, norm: float, chars: int) -> None:
        self.losses.append(loss)
        self.norms.append(norm)
        self.chars += chars

    def record(self, step: int, elapsed: float, lr: float) -> dict:
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
