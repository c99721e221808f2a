"""Train a CharRNN with stateful truncated BPTT.

    charrnn train --dataset tiny_shakespeare --time-budget 10
    charrnn train --dataset my_novel.txt --cell gru --params 3M --out runs/gru
    charrnn train --resume runs/gru --max-steps 20000     (or a run pushed with --training-state: user/name)

A run folder holds best/ (lowest validation loss), last/ (with optimizer and RNG state for --resume)
and metrics.jsonl (one JSON object per log line or evaluation). Saves are atomic, so a crash at any moment
leaves a run that --resume continues. Ctrl-C (or SIGTERM) saves last/ and exits with 130 (143); a second
Ctrl-C quits at once, without saving.
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

from charrnn.checkpoint import CONFIG, load_checkpoint, load_training_state, save_checkpoint, tidy_checkpoint
from charrnn.config import ModelConfig, TrainConfig, add_dataclass_arguments, parse_count
from charrnn.data import Corpus, StreamBatcher, load_corpus, resolve_source
from charrnn.device import autocast, autocast_dtype, pick_device
from charrnn.errors import ArgumentParser, CharRNNError, cli_errors
from charrnn.evaluate import evaluate_ids
from charrnn.hub import is_hub_id, resume_location
from charrnn.model import GATES, CharRNN, count_params, hidden_size_for_params

DEFAULT_MAX_STEPS = 5000
GRAD_NORM_BINS = np.logspace(-3, 3, 31)  # histogram edges for pre-clipping gradient norms
# Flags that may change when resuming; everything else comes from the run being resumed.
RESUME_OVERRIDES = ("max_steps", "time_budget", "steps_this_run", "eval_interval", "patience", "log_interval",
                    "progress", "threads", "device", "out")
BYTES_PER_PARAM = 20  # float32 weights, gradients, AdamW's two moments and the moving average


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


def memory_of(device: torch.device) -> int | None:
    """Total memory of the device in bytes (None when unknown)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(config: ModelConfig, batch_size: int, seq_len: int, device: torch.device) -> None:
    """Refuse, before allocating anything, a model whose training cannot fit in the device's memory."""
    params = count_params(config.cell, config.hidden_size, config.vocab_size, config.embedding_size,
                          config.num_layers, config.tie_weights)
    # Kept for backward, per character of the batch: each layer's gates, cell and output, the embedding, and
    # the logits with their softmax and gradient.
    per_char = config.num_layers * (GATES[config.cell] + 2) * config.hidden_size + config.embedding_size
    needed = params * BYTES_PER_PARAM + batch_size * seq_len * (per_char + 3 * config.vocab_size) * 4
    available = memory_of(device)
    if available is not None and needed > available:
        raise CharRNNError(
            f"a {config.num_layers:,}-layer {config.cell} with hidden size {config.hidden_size:,} and embedding size "
            f"{config.embedding_size:,} has {params:,} parameters and needs about {needed / 2**30:,.1f} GiB to "
            f"train, more than the {available / 2**30:,.1f} GiB of this {device.type} device: lower --hidden, "
            f"--layers or --embedding (or --batch-size and --seq-len), or give a parameter budget such as "
            f"--params 3M")


def build_model(cfg: TrainConfig, vocab_size: int, device: torch.device) -> CharRNN:
    hidden = cfg.hidden
    if cfg.params:
        hidden = hidden_size_for_params(parse_count(cfg.params), cfg.cell, vocab_size, cfg.embedding, cfg.layers)
    config = ModelConfig(vocab_size=vocab_size, cell=cfg.cell, embedding_size=cfg.embedding, hidden_size=hidden,
                         num_layers=cfg.layers, dropout=cfg.dropout, input_dropout=cfg.input_dropout,
                         weight_drop=cfg.weight_drop, tie_weights=cfg.tie_weights)
    check_fits(config, cfg.batch_size, cfg.seq_len, device)
    return CharRNN(config)


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


class QuitNow(KeyboardInterrupt):
    """A second Ctrl-C (or SIGTERM) while the first one's save is pending: stop at once, without saving.
    Checkpoints stay intact: a save cut short leaves the previous one in place."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint at the end of the current step and exits.
    A second signal raises QuitNow."""

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
        if self.signal_name:
            raise QuitNow(signum)
        self.signal_name = signal.Signals(signum).name
        print(f"\n{self.signal_name}: saving a checkpoint after this step, then stopping "
              "(press Ctrl-C again to quit at once; the checkpoints stay intact)", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def find_resume_checkpoint(resume) -> Path:
    """The checkpoint `--resume RUN` continues from: RUN/last, else RUN/last.old (left by a crash between the
    two renames of a save), else RUN itself when it is a checkpoint folder (RUN/last given directly)."""
    path = Path(resume)
    candidates = [path / "last", path / "last.old", path]
    if path.name == "last":
        candidates.append(path.with_name("last.old"))
    for candidate in candidates:
        if (candidate / CONFIG).is_file():
            return candidate
    if not path.exists():
        raise CharRNNError(f"--resume {path}: no such run folder; check the path (a new run starts with "
                           f"--dataset ... --out {path})")
    if not path.is_dir():
        raise CharRNNError(f"--resume {path} is a file; give the run folder (the --out of the run)")
    start = first_start_record(path)
    if start is None:
        raise CharRNNError(f"--resume {path}: this folder holds no run (no last/ checkpoint, no metrics.jsonl); "
                           f"give the --out folder of a run")
    again = f": {start['command']}" if start.get("command") else " (the command that started it)"
    raise CharRNNError(f"{path} has no checkpoint yet: the run stopped before its first save (a run saves every "
                       f"--eval-interval steps). Start it again with the same command, without --resume{again}")


def first_start_record(run: Path) -> dict | None:
    """The record a run writes to its metrics.jsonl when it starts (None when there is none)."""
    try:
        lines = (run / "metrics.jsonl").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a crash
            continue
        if isinstance(record, dict) and record.get("event") == "start":
            return record
    return None


def check_run_folder(out: Path) -> None:
    """Fail before any work when --out cannot become a run folder (it is made once the model is built)."""
    if out.exists() and not out.is_dir():
        raise CharRNNError(f"--out {out} is a file; give a folder for the run (it will hold best/, last/ and "
                           f"metrics.jsonl)")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CharRNNError(f"--out {out} cannot be made: {existing} is a file; choose another folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CharRNNError(f"--out {out}: no permission to write in {existing}; choose a folder you can write to")


def run_folder_of(checkpoint: Path) -> Path:
    return checkpoint.parent if checkpoint.name in ("last", "last.old") else checkpoint


class Trainer:
    """Owns one training run: model, optimizer, data position, metrics, checkpoints."""

    def __init__(self, cfg: TrainConfig, command: str | None = None):
        cfg.validate()
        self.cfg = cfg
        self.command = command
        self.out = Path(cfg.out)
        check_run_folder(self.out)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = pick_device(cfg.device)
        self.amp_dtype = autocast_dtype(cfg.precision, self.device)
        resume_state = None
        resume_checkpoint = None
        if cfg.resume:
            resume_dir = find_resume_checkpoint(cfg.resume)
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
        self.model = (resume_checkpoint.model if resume_checkpoint
                      else build_model(cfg, self.corpus.tokenizer.vocab_size, self.device))
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
        self.saved_step = None  # the step of the checkpoint in last/, once there is one
        self.last_batch = None  # the latest training batch, to check an update before its weights are saved
        self.stop_signal = None
        if resume_state is not None:
            self._load_state(resume_state)
            self.saved_step = self.step
        self._open_run_folder()

    def _open_run_folder(self) -> None:
        """Make the run folder and tidy what a crash left in it."""
        metrics = self.out / "metrics.jsonl"
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(metrics, "a+b") as f:
                # A kill during a write leaves a line cut short: end it, so the next record starts a line.
                size = f.seek(0, os.SEEK_END)
                if size and (f.seek(size - 1), f.read(1))[1] != b"\n":
                    f.write(b"\n")
            for name in ("best", "last"):
                tidy_checkpoint(self.out / name)
        except OSError as err:
            raise CharRNNError(f"cannot write the run folder --out {self.out} ({err.strerror or err}); choose a "
                               f"folder you can write to") from None

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
        if self.exploded(result["nats"]):
            raise self.diverged(f"validation loss {result['nats']:.4g}")
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
        if self.last_batch is not None:
            loss = self.loss_after_update()
            if self.exploded(loss):
                raise self.diverged(f"loss after the last update {loss:.4g}")
        save_checkpoint(self.out / "last", self.model, self.corpus.tokenizer, "float32",
                        training_state=self._state(), **self._meta())
        self.saved_step = self.step

    # -- divergence -------------------------------------------------------------------------------------
    def exploded(self, loss: float) -> bool:
        # A healthy run starts near ln(V) (uniform guessing) and goes down; far above it, it has exploded.
        return not math.isfinite(loss) or loss > 5 * math.log(self.model.config.vocab_size) + 5

    @torch.no_grad()
    def loss_after_update(self) -> float:
        """The loss of the current weights on the latest batch. A step's own loss is measured before its
        update, so without this a catastrophic last update would be saved as last/."""
        x, y = self.last_batch
        self.model.eval()  # no dropout: the random stream stays the same as a run that does not check
        try:
            with autocast(self.device, self.amp_dtype):
                return self.model(x, None, y)[2].item()
        finally:
            self.model.train()

    def diverged(self, what: str) -> CharRNNError:
        if self.saved_step is None:
            saved = f"No checkpoint was saved (a run saves every {self.cfg.eval_interval} steps)"
        else:
            saved = f"The last good checkpoint is {self.out / 'last'} (step {self.saved_step})"
        return CharRNNError(f"training diverged at step {self.step}: {what}. {saved}; try a lower --lr "
                            f"(now {self.cfg.lr}) or a tighter --clip (now {self.cfg.clip})")

    # -- the loop ---------------------------------------------------------------------------------------
    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.cfg, self.step, self.progress())
        x, y = x.to(self.device), y.to(self.device)
        loss_value, norm, self.hidden = train_step(self.model, self.optimizer, x, y, self.hidden, self.amp_dtype,
                                                   self.cfg.clip)
        if self.exploded(loss_value) or not math.isfinite(norm):
            raise self.diverged(f"loss {loss_value:.4g}, gradient norm {norm:.4g}")
        self.last_batch = (x, y)
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

        self._start = time.perf_counter()
        cfg = self.cfg
        by_time = self.max_steps is None
        bar = tqdm(total=int(cfg.time_budget * 60) if by_time else self.max_steps, initial=self.step,
                   unit="s" if by_time else "step", disable=not cfg.progress, dynamic_ncols=True,
                   desc=f"{self.model.config.cell} {self.model.num_params() / 1e6:.2f}M")
        self._log({"event": "start", "step": self.step, "num_params": self.model.num_params(),
                   "config": dataclasses.asdict(cfg), "train_tokens": len(self.corpus.train),
                   "val_tokens": len(self.corpus.val), "command": self.command})
        window_loss, window_norm, window_start, window_steps = 0.0, [], time.perf_counter(), 0
        steps_this_run, reason = 0, None
        with StopRequest() as stop:
            while True:
                reason = self._should_stop(steps_this_run)
                if reason:
                    break
                if stop.signal_name:
                    reason = f"interrupted ({stop.signal_name})"
                    self.stop_signal = signal.Signals[stop.signal_name]
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
            # Still under the handlers: a signal now lets the final save finish, a second one quits at once.
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
    parser = ArgumentParser(prog="charrnn train", description=__doc__,
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
        if is_hub_id(cfg.resume):
            resume_dir, out = resume_location(cfg.resume, cfg.revision)  # a pushed run's Hub id downloads it
        else:
            resume_dir = find_resume_checkpoint(cfg.resume)
            out = run_folder_of(resume_dir)
        stored = load_checkpoint(resume_dir).meta.get("training")
        if not isinstance(stored, dict):
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
    try:
        return train(argv)
    except KeyboardInterrupt as err:  # Ctrl-C before training started, or QuitNow: a second signal
        signum = getattr(err, "signum", signal.SIGINT)
        print(f"\nstopped at once by {signal.Signals(signum).name}, without saving; the checkpoints in the run "
              f"folder are intact (--resume continues from the last one)", file=sys.stderr)
        sys.exit(128 + signum)  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


def train(argv: list[str]) -> dict:
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
    if trainer.stop_signal:
        sys.exit(128 + trainer.stop_signal)
    return summary


if __name__ == "__main__":
    main()
