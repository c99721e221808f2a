"""The training loop: steps until a limit, a signal or --patience stops the run, with the figures read, logged
and checked every --log-interval steps, an evaluation and a save of last/ at each --eval-interval (or
--eval-seconds), and the finish: best/ scored as stored and the run's summary."""

from __future__ import annotations

import dataclasses
import math
import signal
import time
from typing import TYPE_CHECKING

from charrnn.checkpoint.saving import load_checkpoint, save_checkpoint
from charrnn.train.divergence import read_steps
from charrnn.train.signals import StopRequest

if TYPE_CHECKING:
    from charrnn.train.trainer import Trainer

READ_EVERY = 500  # steps whose figures may wait unread on the device, whatever --log-interval (each holds memory)


def run(trainer: Trainer) -> dict:
    """Train until a limit, a signal or --patience stops the run; then evaluate, save and summarise it."""
    from tqdm.auto import tqdm

    trainer._start = time.perf_counter()
    cfg, p = trainer.cfg, trainer.progress
    by_time = trainer.max_steps is None
    bar = tqdm(total=int(cfg.time_budget * 60) if by_time else trainer.max_steps, initial=p.step,
               unit="s" if by_time else "step", disable=not (cfg.progress and trainer.dist.is_main),
               dynamic_ncols=True,
               desc=f"{trainer.model.config.cell} {trainer.model.num_params() / 1e6:.2f}M")
    trainer._log({"event": "start", "step": p.step, "num_params": trainer.model.num_params(),
               "config": dataclasses.asdict(cfg), "train_tokens": len(trainer.corpus.train),
               "val_tokens": len(trainer.corpus.val), "val_tokens_scored": trainer.eval_windows().tokens,
               "command": trainer.command, "world_size": trainer.dist.world_size})
    steps_this_run, last_eval = 0, time.perf_counter()
    trainer.window.restart()
    with StopRequest(announce=trainer.dist.is_main) as stop:
        while not (reason := stop_reason(trainer, steps_this_run, stop)):
            step_start = time.perf_counter()
            x, y, starts_epoch = trainer.batcher.batch(p.step)
            if starts_epoch:
                trainer.hidden = None  # a new epoch starts the streams at new places
            trainer._train_step(x, y)
            p.step += 1
            p.chars_seen += x.numel()  # the whole batch, all processes together
            steps_this_run += 1
            # By time only in one process: processes that each decided alone would validate out of step.
            due = cfg.eval_seconds and trainer.dist.world_size == 1 and time.perf_counter() - last_eval >= cfg.eval_seconds
            evaluating = p.step % cfg.eval_interval == 0 or due
            if p.step % cfg.log_interval == 0 or p.step % READ_EVERY == 0 or evaluating:
                read_steps(trainer)  # the device finishing the steps: counted as training time
            p.step_seconds += time.perf_counter() - step_start
            if p.step % cfg.log_interval == 0:
                record = trainer.window.record(p.step, trainer.total_seconds(), trainer.optimizer.param_groups[0]["lr"])
                trainer._log(record)
                bar.set_postfix(loss=f"{record['loss']:.3f}", bpc=f"{record['loss'] / math.log(2):.3f}",
                                val=f"{p.best_val / math.log(2):.3f}", chars_s=f"{record['chars_per_s']}")
            if evaluating:
                last_eval = time.perf_counter()
                trainer.evaluate()
                trainer.save_last()
                trainer.window.restart()
            bar.n = int(trainer.total_seconds()) if by_time else p.step
            bar.refresh() if p.step % 10 == 0 else None
        bar.close()
        read_start = time.perf_counter()
        read_steps(trainer)  # the last steps, checked before they are saved
        p.step_seconds += time.perf_counter() - read_start
        # Still under the handlers: a signal now lets the final save finish, a second one quits at once.
        if not p.curve or p.curve[-1]["step"] != p.step:
            trainer.evaluate()
        trainer.save_last()
    return finish(trainer, reason)


def stop_reason(trainer: Trainer, steps_this_run: int, stop: StopRequest) -> str | None:
    p, cfg = trainer.progress, trainer.cfg
    # The clock and the signals are each process's own: agree on them, so that all stop at the same step.
    # Agreeing is an exchange between the processes that waits for their devices, so a run of many
    # processes agrees where the loop waits for the device anyway: after a read, every --log-interval steps.
    time_is_up = bool(cfg.time_budget) and trainer.total_seconds() >= cfg.time_budget * 60
    out_of_time, signum = 0, 0
    if trainer.dist.world_size == 1 or p.step % cfg.log_interval == 0:
        out_of_time, signum = trainer.dist.any([int(time_is_up), stop.signum or 0])
    if trainer.max_steps and p.step >= trainer.max_steps:
        return "max_steps"
    if out_of_time:
        return "time_budget"
    if cfg.steps_this_run and steps_this_run >= cfg.steps_this_run:
        return "paused"
    if cfg.patience and p.evals_since_best >= cfg.patience:
        return "early_stop"
    if signum:
        trainer.stop_signal = signal.Signals(signum)
        return f"interrupted ({trainer.stop_signal.name})"
    return None


def finish(trainer: Trainer, reason: str) -> dict:
    """best/ scored once more as stored (maybe in bfloat16), its metrics saved with it, and the run's summary."""
    trainer.dist.barrier()  # the main process has written best/
    best = load_checkpoint(trainer.out / "best", trainer.device)  # the weights as stored (maybe bfloat16)
    final = trainer._validate(best.model, None)
    final_metrics = {"val_nats": final["nats"], "val_bpc": final["bpc"], "val_ppl": final["ppl"],
                     "val_chars": final["chars"], "val_tokens_scored": final["tokens"],
                     "val_tokens": len(trainer.corpus.val), "best_step": best.metrics.get("steps"),
                     "stored_dtype": trainer.cfg.save_dtype}
    meta = trainer._meta(final_metrics)
    meta["metrics"]["steps"] = best.metrics.get("steps")  # the best checkpoint's own step count
    meta["metrics"]["total_steps"] = trainer.progress.step
    if trainer.dist.is_main:
        save_checkpoint(trainer.out / "best", best.model, best.tokenizer, trainer.cfg.save_dtype, **meta)
    summary = {"val_nats": round(final["nats"], 4), "val_bpc": round(final["bpc"], 4),
               "val_tokens_scored": final["tokens"],
               "steps": trainer.progress.step, "best_step": best.metrics.get("steps"),
               "chars_per_s": meta["metrics"]["train_chars_per_s"],
               "wall_s": round(trainer.total_seconds(), 1), "stopped": reason,
               "schedule_steps": trainer.progress.schedule.horizon,
               "params": trainer.model.num_params(), "checkpoint": str(trainer.out / "best")}
    trainer._log({"event": "final", **summary})
    return summary
