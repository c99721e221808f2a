"""The learning rate: linear warmup, then a cosine decay to --lr * --min-lr-ratio.

The decay is a function of the step number only, so a run can be repeated exactly. Its length (`horizon`, the
step at which the rate reaches its floor) is --schedule-steps, else --max-steps; a --time-budget run times its
warmup steps and fixes the horizon from that speed once (recorded as schedule_steps: `--max-steps STEPS
--schedule-steps H` repeats it). A resumed run whose limits change does not jump back up: it starts a new
segment that decays from the rate it had reached to the floor at the new horizon.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from charrnn.config import TrainConfig


@dataclass
class Schedule:
    horizon: int | None  # None until a time-budget run has timed its warmup: the rate stays at its start
    start_step: int = 0
    start_lr: float | None = None  # None: the peak --lr

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def planned_horizon(cfg: TrainConfig, max_steps: int | None) -> int | None:
    """The horizon known before any step: --schedule-steps, else the step limit (None: set by timing)."""
    return cfg.schedule_steps or (max_steps if not cfg.time_budget else None)


def timed_horizon(step: int, seconds: float, budget_seconds: float, max_steps: int | None) -> int:
    """The step at which a time budget runs out, at the speed of the first `step` steps."""
    horizon = max(step + 1, round(step * budget_seconds / max(seconds, 1e-9)))
    return min(horizon, max_steps) if max_steps else horizon


def extended(cfg: TrainConfig, step: int, last_lr: float, horizon: int | None) -> Schedule:
    """The schedule of a resumed run whose limits changed: from the rate reached so far down to the floor at
    the new horizon (a run still warming up just gets the new horizon)."""
    if step < cfg.warmup_steps:
        return Schedule(horizon)
    return Schedule(horizon, start_step=step, start_lr=last_lr)


def learning_rate(cfg: TrainConfig, step: int, schedule: Schedule) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    floor = cfg.lr * cfg.min_lr_ratio
    start = cfg.lr if schedule.start_lr is None else schedule.start_lr
    if schedule.horizon is None:
        progress = 0.0
    elif step >= schedule.horizon:
        progress = 1.0
    else:
        progress = (step - schedule.start_step) / (schedule.horizon - schedule.start_step)
    return floor + (start - floor) * 0.5 * (1 + math.cos(math.pi * progress))
