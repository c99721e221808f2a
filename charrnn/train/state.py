"""How far a run has come: everything --resume needs beyond the weights, the optimizer and the random state."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from charrnn.train.schedule import Schedule

GRAD_NORM_BINS = np.logspace(-3, 3, 31)  # histogram edges for pre-clipping gradient norms


@dataclass
class Progress:
    schedule: Schedule
    step: int = 0
    train_seconds: float = 0.0  # wall time of the earlier invocations of this run
    best_val: float = math.inf
    evals_since_best: int = 0
    curve: list[dict] = field(default_factory=list)  # one record per evaluation
    grad_hist: np.ndarray = field(default_factory=lambda: np.zeros(len(GRAD_NORM_BINS) + 1, dtype=np.int64))
    clipped_steps: int = 0
    chars_seen: int = 0
    step_seconds: float = 0.0  # time inside training steps only: the honest chars/s

    def count_norm(self, norm: float, clip: float) -> None:
        self.grad_hist[np.searchsorted(GRAD_NORM_BINS, norm)] += 1
        self.clipped_steps += clip > 0 and norm > clip

    def to_state(self, elapsed: float) -> dict:
        """The entries of training_state.pt (torch.load(weights_only=True) reads them: tensors and plain values)."""
        return {"step": self.step, "train_seconds": self.train_seconds + elapsed, "best_val": self.best_val,
                "evals_since_best": self.evals_since_best, "grad_hist": torch.from_numpy(self.grad_hist.copy()),
                "clipped_steps": self.clipped_steps, "chars_seen": self.chars_seen,
                "step_seconds": self.step_seconds, "curve": json.dumps(self.curve),
                "schedule": json.dumps(self.schedule.to_dict())}

    @classmethod
    def from_state(cls, state: dict, schedule: Schedule) -> Progress:
        """`schedule` is for runs saved before the schedule was stored."""
        if "schedule" in state:
            schedule = Schedule(**json.loads(state["schedule"]))
        return cls(schedule=schedule, step=state["step"], train_seconds=state["train_seconds"],
                   best_val=state["best_val"], evals_since_best=state["evals_since_best"],
                   curve=json.loads(state["curve"]), grad_hist=state["grad_hist"].numpy().copy(),
                   clipped_steps=state["clipped_steps"], chars_seen=state["chars_seen"],
                   step_seconds=state["step_seconds"])
