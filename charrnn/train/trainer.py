"""The Trainer: one training run set up (new or resumed) with its model, optimizer, data and run folder, and what
it does at each step and each evaluation. The loop that drives it is loop.py; its exact-resume state
exact_state.py; divergence checks divergence.py."""

from __future__ import annotations

import dataclasses
import math
import shlex
import sys
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from charrnn.checkpoint.saving import load_checkpoint, load_training_state, save_checkpoint
from charrnn.config import TrainConfig
from charrnn.data import Corpus, StreamBatcher, load_corpus, resolve_source
from charrnn.device import autocast_dtype, default_batch_size, loss_scaler, pick_device, use_deterministic_algorithms
from charrnn.errors import CharRNNError
from charrnn.evaluate import Windows, evaluate_ids, evaluation_windows
from charrnn.model import CharRNN
from charrnn.sampling.generate import generate
from charrnn.train.build import build_model, hardware_description, make_optimizer
from charrnn.train import loop
from charrnn.train.distributed import setup
from charrnn.train.divergence import diverged, exploded, figure, loss_after_update, read_steps
from charrnn.train.exact_state import gather_state, restore_state
from charrnn.train.metrics import LogWindow, run_metrics
from charrnn.train.probe import measured_recipe
from charrnn.train.run_folder import (append_metrics, check_run_folder, find_resume_checkpoint, open_run_folder,
                                     write_recipe)
from charrnn.train.schedule import Schedule, learning_rate, planned_horizon, timed_horizon
from charrnn.train.state import Progress
from charrnn.train.step import MovingAverage, to_device, train_step

DEFAULT_MAX_STEPS = 5000


class Trainer:
    """Owns one training run: model, optimizer, data position, metrics, checkpoints."""

    def __init__(self, cfg: TrainConfig, command: str | None = None, recipe_fields: tuple[str, ...] = ()):
        """`recipe_fields`: the settings a recipe chooses for this run's budget and device (recipe.recipe_fields
        says which: those the person left to it)."""
        cfg.validate()
        self.cfg = cfg
        self.command = command
        self.out = Path(cfg.out)
        check_run_folder(self.out)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if cfg.deterministic:  # before the first CUDA work
            use_deterministic_algorithms()
        # In a run of many processes (torchrun), this one's rank, its device and its share of the streams.
        self.dist, self.device = setup(pick_device(cfg.device))
        if cfg.batch_size is None:  # the device's default, stored with the run's settings: --resume keeps it
            cfg = self.cfg = dataclasses.replace(cfg, batch_size=default_batch_size(self.device))
        self.rows = self.dist.rows(cfg.batch_size)
        self.amp_dtype = autocast_dtype(cfg.precision, self.device)
        self.scaler = loss_scaler(self.amp_dtype, self.device)  # fp16 (GPUs without bf16) only
        if self.device.type == "cuda" and not cfg.deterministic:
            torch.backends.cudnn.benchmark = True  # the batch shape never changes: let cuDNN pick its kernels
        resume_dir = find_resume_checkpoint(cfg.resume) if cfg.resume else None
        resumed = load_checkpoint(resume_dir, self.device) if resume_dir else None
        torch.manual_seed(cfg.seed)
        source = resolve_source(cfg.dataset, cfg.dataset_config, cfg.split, cfg.val_split, cfg.text_column)
        with self.dist.main_first():  # one process encodes the corpus into the cache, the others read it
            self.corpus: Corpus = load_corpus(source, cfg.tokenizer, cfg.vocab_size, cfg.val_fraction,
                                              tokenizer=resumed.tokenizer if resumed else None,
                                              progress=cfg.progress and self.dist.is_main)
        if len(self.corpus.val) < 2:
            raise CharRNNError("the validation text is empty; give more text or a larger --val-fraction")
        # The checkpoints (pushed to the Hub as they are) name the text as the person did, never by the resolved
        # paths the corpus cache records: an app job's text is a file in a folder of the server.
        named = cfg.data_name or (source.name if source.on_hub else " ".join(cfg.dataset))
        self.data = {**self.corpus.description, "source": named}
        self.recipe = None
        if recipe_fields and not resumed:  # a resumed run keeps the settings it was given or chosen
            self.recipe = self.dist.from_main(measured_recipe(
                cfg, len(self.corpus.train), self.corpus.tokenizer.vocab_size, self.device, self.amp_dtype,
                self.rows.stop - self.rows.start))
            cfg = self.cfg = dataclasses.replace(cfg, **self.recipe.settings(recipe_fields))
            self.command = command and f"{command} {shlex.join(self.recipe.flags(recipe_fields))}"  # repeats the choice
        self.batcher = StreamBatcher(self.corpus.train, cfg.batch_size, cfg.seq_len, cfg.seed)
        self.model = resumed.model if resumed else build_model(cfg, self.corpus.tokenizer.vocab_size, self.device)
        self.model.to(self.device).train()
        # What takes the training steps: DDP averages the gradients of all processes in the backward pass.
        self.stepper = (DistributedDataParallel(self.model, device_ids=[self.device] if self.device.type == "cuda"
                                                else None) if self.dist.active else self.model)
        if self.dist.rank:  # the same weights everywhere, but each process its own dropout masks
            torch.manual_seed(cfg.seed + self.dist.rank)
        self.optimizer = make_optimizer(self.model, cfg)
        # The weights that are evaluated and saved as best/: a moving average of the recent steps when
        # --ema-decay > 0. Small, noisy steps make single weights jump around; their average scores better.
        self.ema = MovingAverage(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.max_steps = cfg.max_steps or (None if cfg.time_budget else DEFAULT_MAX_STEPS)
        self.progress = Progress(Schedule(planned_horizon(cfg, self.max_steps)))
        self.progress.train_seconds = self.recipe.probe_seconds if self.recipe else 0.0  # measuring is in the budget
        self.hidden = None
        self.saved_step = None  # the step of the checkpoint in last/, once there is one
        self.last_batch = None  # the latest training batch, to check an update before its weights are saved
        self.stop_signal = None
        self.window = LogWindow()  # the figures of the latest steps, read every --log-interval steps
        self._start = time.perf_counter()
        if resumed:
            restore_state(self, load_training_state(resume_dir), resumed.meta.get("training") or {})
            self.saved_step = self.progress.step
        self.dist.barrier()  # every process has read the checkpoint before the main one tidies the folder
        has_best = self.dist.from_main(open_run_folder(self.out, resume_dir) if self.dist.is_main else None)
        if self.recipe is not None and self.dist.is_main:
            write_recipe(self.out, self.recipe, recipe_fields, self.command)
        if not has_best and resumed:
            # Resumed into a folder without best/ (a run downloaded from the Hub ships only last/): the next
            # evaluation writes one, whatever the score the old run reached.
            self.progress.best_val = math.inf
        elif resumed:
            stored = (resumed.meta.get("training") or {}).get("eval_tokens", 0)  # 0: all, as runs from before it
            if self.eval_windows(stored) != self.eval_windows():
                self._rescore_best()

    # -- bookkeeping ------------------------------------------------------------------------------------
    def _elapsed(self) -> float:
        return time.perf_counter() - self._start

    def total_seconds(self) -> float:
        return self.progress.train_seconds + self._elapsed()

    def _log(self, record: dict) -> None:
        if self.dist.is_main:
            append_metrics(self.out, record)

    def _meta(self, final: dict | None = None) -> dict:
        how = {"hardware": hardware_description(self.device), "device": self.device.type,
               "precision": str(self.amp_dtype or "fp32").replace("torch.", ""),
               "world_size": self.dist.world_size}
        metrics = run_metrics(self.progress, self.total_seconds(), self.cfg.clip, how, self.data)
        metrics.update(final or {})
        return {"training": dataclasses.asdict(self.cfg), "metrics": metrics, "command": self.command}

    @property
    def eval_model(self) -> CharRNN:
        return self.ema.module if self.ema is not None else self.model

    # -- evaluation and checkpoints ---------------------------------------------------------------------
    def evaluate(self) -> dict:
        p = self.progress
        result = self._validate(self.eval_model, self.amp_dtype)
        if exploded(result["nats"], self.model.config.vocab_size):
            raise diverged(self, figure("validation loss", result["nats"]))
        record = {"step": p.step, "elapsed_s": round(self.total_seconds(), 2), "val_nats": result["nats"],
                  "val_bpc": result["bpc"], "val_ppl": result["ppl"], "val_tokens_scored": result["tokens"]}
        p.curve.append(record)
        sample = {"sample": self.sample(self.cfg.sample_chars)} if self.cfg.sample_chars and self.dist.is_main else {}
        self._log({"event": "eval", **record, **sample})
        if result["nats"] < p.best_val:
            p.best_val = result["nats"]
            p.evals_since_best = 0
            if self.dist.is_main:
                save_checkpoint(self.out / "best", self.eval_model, self.corpus.tokenizer, self.cfg.save_dtype,
                                **self._meta())
        else:
            p.evals_since_best += 1
        return record

    def _validate(self, model: CharRNN, amp_dtype) -> dict:
        """The validation loss on --eval-tokens of the validation text, each process scoring its share of them."""
        return evaluate_ids(model, self.corpus.val, self.corpus.val_chars, device=self.device, amp_dtype=amp_dtype,
                            shard=(self.dist.rank, self.dist.world_size), total=lambda nll: self.dist.sum([nll])[0],
                            max_tokens=self.cfg.eval_tokens)

    def eval_windows(self, eval_tokens: int | None = None) -> Windows:
        """Where each evaluation reads the validation text (by default, with this run's --eval-tokens)."""
        eval_tokens = self.cfg.eval_tokens if eval_tokens is None else eval_tokens
        return evaluation_windows(len(self.corpus.val) - 1, eval_tokens)

    def _rescore_best(self) -> None:
        """Resumed with another --eval-tokens: best/ was chosen on other validation tokens. Score it on these, so
        that the next evaluations compare like with like (otherwise a harder sample would never beat it, and
        --patience would stop the run)."""
        best = load_checkpoint(self.out / "best", self.device)
        self.progress.best_val = self._validate(best.model, self.amp_dtype)["nats"]
        if self.dist.is_main:
            print(f"note: evaluations now score {self.eval_windows().tokens:,} validation tokens (--eval-tokens); "
                  f"best/ scores {self.progress.best_val / math.log(2):.4f} bpc on them", file=sys.stderr)

    def save_last(self) -> None:
        # The trained (not averaged) weights, in float32 whatever --save-dtype says: resuming must continue
        # bit for bit. The average travels in the training state.
        if self.last_batch is not None:
            loss = loss_after_update(self)
            if exploded(loss, self.model.config.vocab_size):
                raise diverged(self, figure("loss after the last update", loss))
        state = gather_state(self)  # every process takes part in gathering it
        if self.dist.is_main:
            save_checkpoint(self.out / "last", self.model, self.corpus.tokenizer, "float32",
                            training_state=state, **self._meta())
        self.saved_step = self.progress.step

    # -- the loop ---------------------------------------------------------------------------------------
    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One step on the whole batch (x, y): this process's streams of it. Nothing here waits for the device."""
        p = self.progress
        if p.schedule.horizon is None and p.step >= max(self.cfg.warmup_steps, 1):
            # A time budget: fix the schedule's length from the speed of the warmup steps, once, so that the
            # learning rate depends on the step alone and the run can be repeated. Reading their figures first
            # makes the clock include the device's work on them.
            read_steps(self)
            before = self.recipe.probe_seconds if self.recipe else 0.0  # the time spent before the first step
            p.schedule.horizon = self.dist.from_main(timed_horizon(p.step, self.total_seconds() - before,
                                                                   self.cfg.time_budget * 60 - before, self.max_steps))
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.cfg, p.step, p.schedule)
        chars = x.numel()  # the whole batch, all processes together
        x, y = to_device(x[self.rows], self.device), to_device(y[self.rows], self.device)  # this process's streams
        loss, norm, self.hidden = train_step(self.stepper, self.optimizer, x, y, self.hidden, self.amp_dtype,
                                             self.cfg.clip, mean=self.dist.mean if self.dist.active else None,
                                             scaler=self.scaler)
        self.last_batch = (x, y)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.window.add(loss, norm, chars)

    def sample(self, length: int) -> str:
        """What the evaluated weights write after a newline (the same seed each time, so samples compare)."""
        model = self.eval_model
        was_training = model.training
        text = generate(model, self.corpus.tokenizer, "\n", length, temperature=0.8, seed=0)
        model.train(was_training)
        return text

    def run(self) -> dict:
        return loop.run(self)
