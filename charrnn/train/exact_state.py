"""What --resume restores besides the weights, so that a resumed run continues bit for bit: the optimizer, the
moving average, the loss scaler, the random state of every process (on its CPU and its GPU) and the hidden state of
every stream. The data position is the step itself (a batch is a pure function of it)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import torch

from charrnn.train.schedule import extended, planned_horizon, timed_horizon
from charrnn.train.state import Progress

if TYPE_CHECKING:
    from charrnn.train.trainer import Trainer

LIMITS = ("max_steps", "time_budget", "schedule_steps")  # when one changes on resume, the schedule is extended


def gather_state(trainer: Trainer) -> dict:
    """The training state, the same whatever the number of processes: the hidden states of all the
    streams (each process holds its share), and the random state of each process."""
    hidden = trainer.hidden
    hidden = list(hidden) if isinstance(hidden, tuple) else ([hidden] if hidden is not None else [])
    state = {"optimizer": trainer.optimizer.state_dict(), **trainer.progress.to_state(trainer._elapsed()),
             "cpu_rng": torch.get_rng_state(), "torch_threads": torch.get_num_threads(),
             "hidden": [trainer.dist.gather_rows(h, 1).cpu() for h in hidden]}  # (layers, B, H)
    if trainer.dist.world_size > 1:
        rng = torch.get_rng_state().to(trainer.dist.device)[None]
        state["rank_rngs"] = trainer.dist.gather_rows(rng, 0).cpu()  # (processes, RNG state bytes)
    if trainer.ema is not None:
        state["ema"] = trainer.ema.state_dict()
    if trainer.scaler is not None:
        state["scaler"] = trainer.scaler.state_dict()
    if trainer.device.type == "cuda":  # dropout's masks on the GPU (charrnn.model says why not cuDNN's own)
        state["cuda_rng"] = torch.cuda.get_rng_state(trainer.device)
        if trainer.dist.world_size > 1:
            rng = state["cuda_rng"].to(trainer.dist.device)[None]
            state["rank_cuda_rngs"] = trainer.dist.gather_rows(rng, 0).cpu()  # (processes, RNG state bytes)
    return state


def restore_state(trainer: Trainer, state: dict, stored: dict) -> None:
    """Continue where gather_state left off; new limits on resume extend the learning-rate schedule."""
    cfg = trainer.cfg
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.progress = Progress.from_state(state, trainer.progress.schedule)
    if any(stored.get(name) != getattr(cfg, name) for name in LIMITS):
        # New limits: decay from the rate reached so far, rather than jump back up the old curve.
        step = trainer.progress.step
        horizon = planned_horizon(cfg, trainer.max_steps)
        if horizon is None and step >= max(cfg.warmup_steps, 1):
            horizon = timed_horizon(step, trainer.progress.train_seconds, cfg.time_budget * 60, trainer.max_steps)
        trainer.progress.schedule = extended(cfg, step, state["optimizer"]["param_groups"][0]["lr"], horizon)
    if trainer.ema is not None and "ema" in state:  # runs saved before --ema-decay start a fresh average
        trainer.ema.load_state_dict(state["ema"])
    if trainer.scaler is not None and "scaler" in state:
        trainer.scaler.load_state_dict(state["scaler"])
    rank, processes = trainer.dist.rank, trainer.dist.world_size
    if processes > 1 and len(state.get("rank_rngs", [])) == processes:
        torch.set_rng_state(state["rank_rngs"][rank])
    elif rank == 0:
        torch.set_rng_state(state["cpu_rng"])
    else:  # resumed with more processes than saved: a fresh stream for the new ones
        torch.manual_seed(hash((cfg.seed, rank, trainer.progress.step)) % 2**63)
    if trainer.device.type == "cuda":
        if processes > 1 and len(state.get("rank_cuda_rngs", [])) == processes:
            torch.cuda.set_rng_state(state["rank_cuda_rngs"][rank], trainer.device)
        elif "cuda_rng" in state and rank == 0:
            torch.cuda.set_rng_state(state["cuda_rng"], trainer.device)
    threads = state.get("torch_threads")  # None in runs saved before it was kept
    if trainer.device.type == "cpu" and threads not in (None, torch.get_num_threads()) and trainer.dist.is_main:
        # A sum split over another number of threads rounds differently: the continuation is as good, but no
        # longer the same bits as the run would have had without the stop.
        print(f"note: this run's torch thread count was {threads} and is {torch.get_num_threads()} now, so it "
              f"does not continue bit for bit as without the stop (--threads {threads} keeps it exact)",
              file=sys.stderr)
    hidden = [h[:, trainer.rows].to(trainer.device) for h in state["hidden"]]  # this process's streams
    trainer.hidden = None if not hidden else (tuple(hidden) if len(hidden) == 2 else hidden[0])
