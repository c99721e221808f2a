"""Train a CharRNN with stateful truncated BPTT.

    charrnn train --dataset tiny_shakespeare --time-budget 10
    charrnn train --dataset my_novel.txt --cell gru --params 3M --out runs/gru
    charrnn train --resume runs/gru --max-steps 20000     (or a run pushed with --training-state: user/name)

A run folder holds best/ (lowest validation loss), last/ (with optimizer and RNG state for --resume)
and metrics.jsonl (one JSON object per log line or evaluation).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shlex
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

from charrnn.checkpoint import load_checkpoint, load_training_state, save_checkpoint
from charrnn.config import ModelConfig, TrainConfig, add_dataclass_arguments, parse_count
from charrnn.data import Corpus, StreamBatcher, load_corpus, resolve_source
from charrnn.device import autocast, autocast_dtype, pick_device
from charrnn.errors import CharRNNError, cli_errors
from charrnn.evaluate import evaluate_ids
from charrnn.hub import resume_location
from charrnn.model import CharRNN, hidden_size_for_params

DEFAULT_MAX_STEPS = 5000
GRAD_NORM_BINS = np.logspace(-3, 3, 31)  # histogram edges for pre-clipping gradient norms
# Flags that may change when resuming; everything else comes from the run being resumed.
RESUME_OVERRIDES = ("max_steps", "time_budget", "steps_this_run", "eval_interval", "patience", "log_interval",
                    "progress", "threads", "device", "out")


def repackage_hidden(hidden):
    """Cut the graph at the batch boundary (truncated BPTT) but keep the values: the next batch continues
    the same text streams, so it starts from where this one ended."""
    if hidden is None:
        return None
    if isinstance(hidden, tuple):
        return tuple(h.detach().float() for h in hidden)
    return hidden.detach().float()


def learning_rate(cfg: TrainConfig, step: int, progress: float) -> float:
    """Linear warmup, then cosine decay from --lr to --lr * --min-lr-ratio as progress goes 0 -> 1."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


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


def hardware_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model_name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model_name}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def build_model(cfg: TrainConfig, vocab_size: int) -> CharRNN:
    hidden = cfg.hidden
    if cfg.params:
        hidden = hidden_size_for_params(parse_count(cfg.params), cfg.cell, vocab_size, cfg.embedding, cfg.layers)
    return CharRNN(ModelConfig(vocab_size=vocab_size, cell=cfg.cell, embedding_size=cfg.embedding,
                               hidden_size=hidden, num_layers=cfg.layers, dropout=cfg.dropout,
                               input_dropout=cfg.input_dropout, weight_drop=cfg.weight_drop,
                               tie_weights=cfg.tie_weights))


def make_optimizer(model: CharRNN, cfg: TrainConfig) -> torch.optim.AdamW:
    # Decay weight matrices only; biases and embeddings are left alone (as nanoGPT does).
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not n.startswith("embedding")]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or n.startswith("embedding")]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel updates all parameters in one pass (1.8 ms a step for 2 x 512 on this CPU, 5.2 unfused).
    fused = next(model.parameters()).device.type in ("cpu", "cuda")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99), fused=fused)


def train_step(model: CharRNN, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, hidden,
               amp_dtype: torch.dtype | None, clip: float):
    """One step of truncated BPTT: forward from the carried hidden state, backward, clip, update.

    Returns (loss, pre-clipping gradient norm, hidden state for the next batch). The update is skipped when
    the loss or the gradient is not finite, so the weights stay the last good ones.
    """
    with autocast(x.device, amp_dtype):
        _, hidden, loss = model(x, hidden, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip > 0 else math.inf).item()
    loss_value = loss.item()
    if math.isfinite(loss_value) and math.isfinite(norm):
        optimizer.step()
    return loss_value, norm, repackage_hidden(hidden)


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint at the end of the current step and exits."""

    def __init__(self):
        self.signal_name = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. called from a UI worker): no handlers
                pass
        return self

    def _handle(self, signum, frame):
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Trainer:
    """Owns one training run: model, optimizer, data position, metrics, checkpoints."""

    def __init__(self, cfg: TrainConfig, command: str | None = None):
        cfg.validate()
        self.cfg = cfg
        self.command = command
        self.out = Path(cfg.out)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = pick_device(cfg.device)
        self.amp_dtype = autocast_dtype(cfg.precision, self.device)
        resume_state = None
        resume_checkpoint = None
        if cfg.resume:
            resume_dir = Path(cfg.resume)
            resume_dir = resume_dir / "last" if (resume_dir / "last").is_dir() else resume_dir
            resume_checkpoint = load_checkpoint(resume_dir, self.device)
            resume_state = load_training_state(resume_dir)
        torch.manual_seed(cfg.seed)
        source = resolve_source(cfg.dataset, cfg.dataset_config, cfg.split, cfg.val_split, cfg.text_column)
        self.corpus: Corpus = load_corpus(
            source, cfg.tokenizer, cfg.vocab_size, cfg.val_fraction,
            tokenizer=resume_checkpoint.tokenizer if resume_checkpoint else None)
        if len(self.corpus.val) < 2:
            raise CharRNNError("the validation text is empty; give more text or a larger --val-fraction")
        self.batcher = StreamBatcher(self.corpus.train, cfg.batch_size, cfg.seq_len, cfg.seed)
        self.model = resume_checkpoint.model if resume_checkpoint else build_model(cfg, self.corpus.tokenizer.vocab_size)
        self.model.to(self.device).train()
        self.optimizer = make_optimizer(self.model, cfg)
        # The weights that are evaluated and saved as best/: a moving average of the recent steps when
        # --ema-decay > 0. Small, noisy steps make single weights jump around; their average scores better.
        self.ema = (AveragedModel(self.model, multi_avg_fn=moving_average(cfg.ema_decay))
                    if cfg.ema_decay > 0 else None)
        self.max_steps = cfg.max_steps or (None if cfg.time_budget else DEFAULT_MAX_STEPS)
        # Progress state: everything --resume needs beyond the weights.
        self.step = 0
        self.train_seconds = 0.0  # wall time spent in earlier invocations of this run
        self.hidden = None
        self.best_val = math.inf
        self.evals_since_best = 0
        self.curve: list[dict] = []
        self.grad_hist = np.zeros(len(GRAD_NORM_BINS) + 1, dtype=np.int64)
        self.clipped_steps = 0
        self.chars_seen = 0
        self.step_seconds = 0.0  # time inside training steps only: the honest chars/s
        if resume_state is not None:
            self._load_state(resume_state)

    # -- state for exact resume -------------------------------------------------------------------------
    def _state(self) -> dict:
        hidden = self.hidden
        state = {
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "train_seconds": self.train_seconds + self._elapsed(),
            "best_val": self.best_val,
            "evals_since_best": self.evals_since_best,
            "grad_hist": torch.from_numpy(self.grad_hist.copy()),
            "clipped_steps": self.clipped_steps,
            "chars_seen": self.chars_seen,
            "step_seconds": self.step_seconds,
            "cpu_rng": torch.get_rng_state(),
            "hidden": list(hidden) if isinstance(hidden, tuple) else ([hidden] if hidden is not None else []),
            "curve": json.dumps(self.curve),
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def _load_state(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = state["step"]
        self.train_seconds = state["train_seconds"]
        self.best_val = state["best_val"]
        self.evals_since_best = state["evals_since_best"]
        self.grad_hist = state["grad_hist"].numpy().copy()
        self.clipped_steps = state["clipped_steps"]
        self.chars_seen = state["chars_seen"]
        self.step_seconds = state["step_seconds"]
        self.curve = json.loads(state["curve"])
        if self.ema is not None and "ema" in state:  # runs saved before --ema-decay start a fresh average
            self.ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["cpu_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        hidden = [h.to(self.device) for h in state["hidden"]]
        self.hidden = None if not hidden else (tuple(hidden) if len(hidden) == 2 else hidden[0])

    # -- bookkeeping ------------------------------------------------------------------------------------
    def _elapsed(self) -> float:
        return time.perf_counter() - self._start

    def total_seconds(self) -> float:
        return self.train_seconds + self._elapsed()

    def progress(self) -> float:
        """Fraction of the training budget used: drives the learning-rate schedule."""
        fractions = []
        if self.max_steps:
            fractions.append(self.step / self.max_steps)
        if self.cfg.time_budget:
            fractions.append(self.total_seconds() / (self.cfg.time_budget * 60))
        return max(fractions)

    def _log(self, record: dict) -> None:
        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def _meta(self, final: dict | None = None) -> dict:
        counts = self.grad_hist
        metrics = {
            "best_val_nats": self.best_val,
            "best_val_bpc": self.best_val / math.log(2),
            "steps": self.step,
            "train_seconds": round(self.total_seconds(), 1),
            "train_chars_per_s": round(self.chars_seen / max(self.step_seconds, 1e-9)),
            "curve": self.curve,
            "grad_norm": {
                "edges": GRAD_NORM_BINS.tolist(), "counts": counts.tolist(), "clip": self.cfg.clip,
                "clipped_fraction": self.clipped_steps / max(self.step, 1),
            },
            "hardware": hardware_description(self.device),
            "precision": str(self.amp_dtype or "fp32").replace("torch.", ""),
            "data": self.corpus.description,
        }
        if final:
            metrics.update(final)
        return {"training": dataclasses.asdict(self.cfg), "metrics": metrics, "command": self.command}

    @property
    def eval_model(self) -> CharRNN:
        return self.ema.module if self.ema is not None else self.model

    def evaluate(self) -> dict:
        result = evaluate_ids(self.eval_model, self.corpus.val, self.corpus.val_chars, device=self.device,
                              amp_dtype=self.amp_dtype)
        record = {"step": self.step, "elapsed_s": round(self.total_seconds(), 2), "val_nats": result["nats"],
                  "val_bpc": result["bpc"], "val_ppl": result["ppl"]}
        self.curve.append(record)
        self._log({"event": "eval", **record})
        if result["nats"] < self.best_val:
            self.best_val = result["nats"]
            self.evals_since_best = 0
            save_checkpoint(self.out / "best", self.eval_model, self.corpus.tokenizer, self.cfg.save_dtype,
                            **self._meta())
        else:
            self.evals_since_best += 1
        return record

    def save_last(self) -> None:
        # The trained (not averaged) weights, in float32 whatever --save-dtype says: resuming must continue
        # bit for bit. The average travels in the training state.
        save_checkpoint(self.out / "last", self.model, self.corpus.tokenizer, "float32",
                        training_state=self._state(), **self._meta())

    # -- the loop ---------------------------------------------------------------------------------------
    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.cfg, self.step, self.progress())
        loss_value, norm, self.hidden = train_step(self.model, self.optimizer, x.to(self.device), y.to(self.device),
                                                   self.hidden, self.amp_dtype, self.cfg.clip)
        # A healthy run starts near ln(V) (uniform guessing) and goes down; far above it, it has exploded.
        exploded = loss_value > 5 * math.log(self.model.config.vocab_size) + 5
        if exploded or not math.isfinite(loss_value) or not math.isfinite(norm):
            raise CharRNNError(
                f"training diverged at step {self.step}: loss {loss_value}, gradient norm {norm}. "
                f"The last good checkpoint is {self.out / 'last'}; try a lower --lr (now {self.cfg.lr}) "
                f"or a tighter --clip (now {self.cfg.clip})")
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.grad_hist[np.searchsorted(GRAD_NORM_BINS, norm)] += 1
        self.clipped_steps += self.cfg.clip > 0 and norm > self.cfg.clip
        return loss_value, norm

    def _should_stop(self, steps_this_run: int) -> str | None:
        if self.max_steps and self.step >= self.max_steps:
            return "max_steps"
        if self.cfg.time_budget and self.total_seconds() >= self.cfg.time_budget * 60:
            return "time_budget"
        if self.cfg.steps_this_run and steps_this_run >= self.cfg.steps_this_run:
            return "paused"
        if self.cfg.patience and self.evals_since_best >= self.cfg.patience:
            return "early_stop"
        return None

    def run(self) -> dict:
        from tqdm.auto import tqdm

        self.out.mkdir(parents=True, exist_ok=True)
        self._start = time.perf_counter()
        cfg = self.cfg
        by_time = self.max_steps is None
        bar = tqdm(total=int(cfg.time_budget * 60) if by_time else self.max_steps, initial=self.step,
                   unit="s" if by_time else "step", disable=not cfg.progress, dynamic_ncols=True,
                   desc=f"{self.model.config.cell} {self.model.num_params() / 1e6:.2f}M")
        self._log({"event": "start", "step": self.step, "num_params": self.model.num_params(),
                   "config": dataclasses.asdict(cfg), "train_tokens": len(self.corpus.train),
                   "val_tokens": len(self.corpus.val)})
        window_loss, window_norm, window_start, window_steps = 0.0, [], time.perf_counter(), 0
        steps_this_run, reason = 0, None
        with StopRequest() as stop:
            while True:
                reason = self._should_stop(steps_this_run)
                if reason:
                    break
                if stop.signal_name:
                    reason = f"interrupted ({stop.signal_name})"
                    break
                step_start = time.perf_counter()
                x, y, starts_epoch = self.batcher.batch(self.step)
                if starts_epoch:
                    self.hidden = None  # a new epoch starts the streams at new places
                loss, norm = self._train_step(x, y)
                self.step_seconds += time.perf_counter() - step_start
                self.step += 1
                steps_this_run += 1
                self.chars_seen += x.numel()
                window_loss += loss
                window_norm.append(norm)
                window_steps += 1
                if self.step % cfg.log_interval == 0:
                    seconds = time.perf_counter() - window_start
                    chars_per_s = window_steps * x.numel() / seconds
                    record = {"event": "train", "step": self.step, "elapsed_s": round(self.total_seconds(), 2),
                              "loss": window_loss / window_steps, "lr": self.optimizer.param_groups[0]["lr"],
                              "grad_norm": float(np.mean(window_norm)), "grad_norm_max": float(max(window_norm)),
                              "chars_per_s": round(chars_per_s)}
                    self._log(record)
                    bar.set_postfix(loss=f"{record['loss']:.3f}", bpc=f"{record['loss'] / math.log(2):.3f}",
                                    val=f"{self.best_val / math.log(2):.3f}", chars_s=f"{chars_per_s:.0f}")
                    window_loss, window_norm, window_start, window_steps = 0.0, [], time.perf_counter(), 0
                if self.step % cfg.eval_interval == 0:
                    self.evaluate()
                    self.save_last()
                    window_start = time.perf_counter()  # evaluation time is not training speed
                bar.n = int(self.total_seconds()) if by_time else self.step
                bar.refresh() if self.step % 10 == 0 else None
        bar.close()
        if not self.curve or self.curve[-1]["step"] != self.step:
            self.evaluate()
        self.save_last()
        return self._finish(reason)

    def _finish(self, reason: str) -> dict:
        best = load_checkpoint(self.out / "best", self.device)  # the weights as stored (maybe bfloat16)
        final = evaluate_ids(best.model, self.corpus.val, self.corpus.val_chars, device=self.device)
        final_metrics = {"val_nats": final["nats"], "val_bpc": final["bpc"], "val_ppl": final["ppl"],
                         "val_chars": final["chars"], "best_step": best.metrics.get("steps"),
                         "stored_dtype": self.cfg.save_dtype}
        meta = self._meta(final_metrics)
        meta["metrics"]["steps"] = best.metrics.get("steps")  # the best checkpoint's own step count
        meta["metrics"]["total_steps"] = self.step
        save_checkpoint(self.out / "best", best.model, best.tokenizer, self.cfg.save_dtype, **meta)
        summary = {"val_nats": round(final["nats"], 4), "val_bpc": round(final["bpc"], 4),
                   "steps": self.step, "best_step": best.metrics.get("steps"),
                   "chars_per_s": meta["metrics"]["train_chars_per_s"],
                   "wall_s": round(self.total_seconds(), 1), "stopped": reason,
                   "params": self.model.num_params(), "checkpoint": str(self.out / "best")}
        self._log({"event": "final", **summary})
        return summary


def parse_args(argv=None) -> TrainConfig:
    parser = argparse.ArgumentParser(prog="charrnn train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_arguments(parser, TrainConfig)
    args = parser.parse_args(argv)
    cfg = TrainConfig(**vars(args))
    if cfg.resume:
        # Continue the stored run; only flags given on this command line and allowed to change override it.
        explicit = argparse.ArgumentParser(argument_default=argparse.SUPPRESS, add_help=False)
        add_dataclass_arguments(explicit, TrainConfig)
        for action in explicit._actions:
            action.default = argparse.SUPPRESS
        given = vars(explicit.parse_known_args(argv)[0])
        resume_dir, out = resume_location(cfg.resume, cfg.revision)  # a pushed run's Hub id downloads it
        stored = load_checkpoint(resume_dir).meta.get("training")
        if not stored:
            raise CharRNNError(f"{resume_dir} has no training config to resume from")
        stored = {k: v for k, v in stored.items() if k in {f.name for f in dataclasses.fields(TrainConfig)}}
        stored["out"] = str(out)
        for name in RESUME_OVERRIDES:
            if name in given:
                stored[name] = given[name]
        stored["resume"] = str(resume_dir)
        cfg = TrainConfig(**stored)
    return cfg


@cli_errors
def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    cfg = parse_args(argv)
    trainer = Trainer(cfg, command=shlex.join(["python", "-m", "charrnn.train", *argv]))
    print(f"{trainer.model.config.cell}: {trainer.model.num_params():,} parameters "
          f"(hidden {trainer.model.config.hidden_size}), {len(trainer.corpus.train):,} training tokens, "
          f"{len(trainer.corpus.val):,} validation tokens, device {trainer.device}, "
          f"precision {str(trainer.amp_dtype or 'fp32').replace('torch.', '')}", file=sys.stderr)
    summary = trainer.run()
    if summary["stopped"].startswith("interrupted"):
        print(f"{summary['stopped']}: saved {cfg.out}/last; continue with --resume {cfg.out}", file=sys.stderr)
    print(json.dumps(summary))
    if summary["stopped"].startswith("interrupted"):
        sys.exit(130)
    return summary


if __name__ == "__main__":
    main()
