"""The Trainer: set up a run (new or resumed), take steps, evaluate and save, and finish."""

from __future__ import annotations

import dataclasses
import math
import signal
import sys
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from charrnn.checkpoint.saving import load_checkpoint, load_training_state, save_checkpoint
from charrnn.config import TrainConfig
from charrnn.data import Corpus, StreamBatcher, load_corpus, resolve_source
from charrnn.device import autocast, autocast_dtype, default_batch_size, pick_device
from charrnn.errors import CharRNNError
from charrnn.evaluate import Windows, evaluate_ids, evaluation_windows
from charrnn.model import CharRNN
from charrnn.sampling.generate import generate
from charrnn.train.build import build_model, hardware_description, make_optimizer
from charrnn.train.distributed import setup
from charrnn.train.metrics import LogWindow, run_metrics
from charrnn.train.run_folder import append_metrics, check_run_folder, find_resume_checkpoint, open_run_folder
from charrnn.train.schedule import Schedule, extended, learning_rate, planned_horizon, timed_horizon
from charrnn.train.signals import StopRequest
from charrnn.train.state import Progress
from charrnn.train.step import MovingAverage, to_device, train_step

DEFAULT_MAX_STEPS = 5000
LIMITS = ("max_steps", "time_budget", "schedule_steps")  # when one changes on resume, the schedule is extended
READ_EVERY = 500  # steps whose figures may wait unread on the device, whatever --log-interval (each holds memory)


def _figure(name: str, value: float) -> str:
    """A figure in a divergence message: "validation loss 3.2e+05", or "validation loss became nan" (or inf),
    which a bare "loss nan" would not say as plainly."""
    return f"{name} {value:.4g}" if math.isfinite(value) else f"{name} became {value}"


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
        # In a run of many processes (torchrun), this one's rank, its device and its share of the streams.
        self.dist, self.device = setup(pick_device(cfg.device))
        if cfg.batch_size is None:  # the device's default, stored with the run's settings: --resume keeps it
            cfg = self.cfg = dataclasses.replace(cfg, batch_size=default_batch_size(self.device))
        self.rows = self.dist.rows(cfg.batch_size)
        self.amp_dtype = autocast_dtype(cfg.precision, self.device)
        # fp16 (GPUs without bf16) needs its loss scaled; bf16 and fp32 do not.
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        if self.device.type == "cuda":
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
        self.hidden = None
        self.saved_step = None  # the step of the checkpoint in last/, once there is one
        self.last_batch = None  # the latest training batch, to check an update before its weights are saved
        self.stop_signal = None
        self.window = LogWindow()  # the figures of the latest steps, read every --log-interval steps
        self._start = time.perf_counter()
        if resumed:
            self._restore(load_training_state(resume_dir), resumed.meta.get("training") or {})
            self.saved_step = self.progress.step
        self.dist.barrier()  # every process has read the checkpoint before the main one tidies the folder
        has_best = self.dist.from_main(open_run_folder(self.out, resume_dir) if self.dist.is_main else None)
        if not has_best and resumed:
            # Resumed into a folder without best/ (a run downloaded from the Hub ships only last/): the next
            # evaluation writes one, whatever the score the old run reached.
            self.progress.best_val = math.inf
        elif resumed:
            stored = (resumed.meta.get("training") or {}).get("eval_tokens", 0)  # 0: all, as runs from before it
            if self.eval_windows(stored) != self.eval_windows():
                self._rescore_best()

    # -- state for exact resume -------------------------------------------------------------------------
    def _state(self) -> dict:
        """The training state, the same whatever the number of processes: the hidden states of all the
        streams (each process holds its share), and the random state of each process."""
        hidden = self.hidden
        hidden = list(hidden) if isinstance(hidden, tuple) else ([hidden] if hidden is not None else [])
        state = {"optimizer": self.optimizer.state_dict(), **self.progress.to_state(self._elapsed()),
                 "cpu_rng": torch.get_rng_state(), "torch_threads": torch.get_num_threads(),
                 "hidden": [self.dist.gather_rows(h, 1).cpu() for h in hidden]}  # (layers, B, H)
        if self.dist.world_size > 1:
            rng = torch.get_rng_state().to(self.dist.device)[None]
            state["rank_rngs"] = self.dist.gather_rows(rng, 0).cpu()  # (processes, RNG state bytes)
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def _restore(self, state: dict, stored: dict) -> None:
        cfg = self.cfg
        self.optimizer.load_state_dict(state["optimizer"])
        self.progress = Progress.from_state(state, self.progress.schedule)
        if any(stored.get(name) != getattr(cfg, name) for name in LIMITS):
            # New limits: decay from the rate reached so far, rather than jump back up the old curve.
            step = self.progress.step
            horizon = planned_horizon(cfg, self.max_steps)
            if horizon is None and step >= max(cfg.warmup_steps, 1):
                horizon = timed_horizon(step, self.progress.train_seconds, cfg.time_budget * 60, self.max_steps)
            self.progress.schedule = extended(cfg, step, state["optimizer"]["param_groups"][0]["lr"], horizon)
        if self.ema is not None and "ema" in state:  # runs saved before --ema-decay start a fresh average
            self.ema.load_state_dict(state["ema"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        rank, processes = self.dist.rank, self.dist.world_size
        if processes > 1 and len(state.get("rank_rngs", [])) == processes:
            torch.set_rng_state(state["rank_rngs"][rank])
        elif rank == 0:
            torch.set_rng_state(state["cpu_rng"])
        else:  # resumed with more processes than saved: a fresh stream for the new ones
            torch.manual_seed(hash((cfg.seed, rank, self.progress.step)) % 2**63)
        if "cuda_rng" in state and self.device.type == "cuda" and rank == 0:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        threads = state.get("torch_threads")  # None in runs saved before it was kept
        if self.device.type == "cpu" and threads not in (None, torch.get_num_threads()) and self.dist.is_main:
            # A sum split over another number of threads rounds differently: the continuation is as good, but no
            # longer the same bits as the run would have had without the stop.
            print(f"note: this run's torch thread count was {threads} and is {torch.get_num_threads()} now, so it "
                  f"does not continue bit for bit as without the stop (--threads {threads} keeps it exact)",
                  file=sys.stderr)
        hidden = [h[:, self.rows].to(self.device) for h in state["hidden"]]  # this process's streams
        self.hidden = None if not hidden else (tuple(hidden) if len(hidden) == 2 else hidden[0])

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
        if self.exploded(result["nats"]):
            raise self.diverged(_figure("validation loss", result["nats"]))
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
            loss = self.loss_after_update()
            if self.exploded(loss):
                raise self.diverged(_figure("loss after the last update", loss))
        state = self._state()  # every process takes part in gathering it
        if self.dist.is_main:
            save_checkpoint(self.out / "last", self.model, self.corpus.tokenizer, "float32",
                            training_state=state, **self._meta())
        self.saved_step = self.progress.step

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
                return self.dist.mean(self.model(x, None, y)[2].float()).item()
        finally:
            self.model.train()

    def diverged(self, what: str, step: int | None = None) -> CharRNNError:
        """The error that stops a run that diverged at `step` (default: the latest)."""
        if self.saved_step is None:
            saved = f"No checkpoint was saved (a run saves every {self.cfg.eval_interval} steps)"
        else:
            saved = f"The last good checkpoint is {self.out / 'last'} (step {self.saved_step})"
        step = self.progress.step if step is None else step
        return CharRNNError(f"training diverged at step {step}: {what}. {saved}; try a lower --lr "
                            f"(now {self.cfg.lr}) or a tighter --clip (now {self.cfg.clip})")

    # -- the loop ---------------------------------------------------------------------------------------
    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One step on the whole batch (x, y): this process's streams of it. Nothing here waits for the device."""
        p = self.progress
        if p.schedule.horizon is None and p.step >= max(self.cfg.warmup_steps, 1):
            # A time budget: fix the schedule's length from the speed of the warmup steps, once, so that the
            # learning rate depends on the step alone and the run can be repeated. Reading their figures first
            # makes the clock include the device's work on them.
            self._read_steps()
            p.schedule.horizon = self.dist.from_main(timed_horizon(p.step, self.total_seconds(),
                                                                   self.cfg.time_budget * 60, self.max_steps))
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

    def _read_steps(self) -> None:
        """Read the losses and gradient norms of the steps since the last read (the host waits for the device to
        finish them), stop a run that diverged, and count the norms. Called every --log-interval steps (and
        READ_EVERY), and before every evaluation and save, so that nothing diverged is ever saved.

        A step whose loss or gradient was not finite made no update (see train_step), and the steps after it ran
        on until this read: the run stops here, naming the first such step."""
        p = self.progress
        steps = self.window.read()
        for step, (loss, norm) in enumerate(steps, p.step - len(steps) + 1):
            # With a loss scaler an infinite gradient is a scale set too high (the scaler skipped the update).
            if self.exploded(loss) or not (math.isfinite(norm) or self.scaler is not None):
                raise self.diverged(f"{_figure('loss', loss)}, {_figure('gradient norm', norm)}", step)
            if math.isfinite(norm):  # an fp16 step the scaler skipped has none
                p.count_norm(norm, self.cfg.clip)

    def _stop_reason(self, steps_this_run: int, stop: StopRequest) -> str | None:
        p, cfg = self.progress, self.cfg
        # The clock and the signals are each process's own: agree on them, so that all stop at the same step.
        # Agreeing is an exchange between the processes that waits for their devices, so a run of many
        # processes agrees where the loop waits for the device anyway: after a read, every --log-interval steps.
        time_is_up = bool(cfg.time_budget) and self.total_seconds() >= cfg.time_budget * 60
        out_of_time, signum = 0, 0
        if self.dist.world_size == 1 or p.step % cfg.log_interval == 0:
            out_of_time, signum = self.dist.any([int(time_is_up), stop.signum or 0])
        if self.max_steps and p.step >= self.max_steps:
            return "max_steps"
        if out_of_time:
            return "time_budget"
        if cfg.steps_this_run and steps_this_run >= cfg.steps_this_run:
            return "paused"
        if cfg.patience and p.evals_since_best >= cfg.patience:
            return "early_stop"
        if signum:
            self.stop_signal = signal.Signals(signum)
            return f"interrupted ({self.stop_signal.name})"
        return None

    def sample(self, length: int) -> str:
        """What the evaluated weights write after a newline (the same seed each time, so samples compare)."""
        model = self.eval_model
        was_training = model.training
        text = generate(model, self.corpus.tokenizer, "\n", length, temperature=0.8, seed=0)
        model.train(was_training)
        return text

    def run(self) -> dict:
        from tqdm.auto import tqdm

        self._start = time.perf_counter()
        cfg, p = self.cfg, self.progress
        by_time = self.max_steps is None
        bar = tqdm(total=int(cfg.time_budget * 60) if by_time else self.max_steps, initial=p.step,
                   unit="s" if by_time else "step", disable=not (cfg.progress and self.dist.is_main),
                   dynamic_ncols=True,
                   desc=f"{self.model.config.cell} {self.model.num_params() / 1e6:.2f}M")
        self._log({"event": "start", "step": p.step, "num_params": self.model.num_params(),
                   "config": dataclasses.asdict(cfg), "train_tokens": len(self.corpus.train),
                   "val_tokens": len(self.corpus.val), "val_tokens_scored": self.eval_windows().tokens,
                   "command": self.command, "world_size": self.dist.world_size})
        steps_this_run, last_eval = 0, time.perf_counter()
        self.window.restart()
        with StopRequest(announce=self.dist.is_main) as stop:
            while not (reason := self._stop_reason(steps_this_run, stop)):
                step_start = time.perf_counter()
                x, y, starts_epoch = self.batcher.batch(p.step)
                if starts_epoch:
                    self.hidden = None  # a new epoch starts the streams at new places
                self._train_step(x, y)
                p.step += 1
                p.chars_seen += x.numel()  # the whole batch, all processes together
                steps_this_run += 1
                # By time only in one process: processes that each decided alone would validate out of step.
                due = cfg.eval_seconds and self.dist.world_size == 1 and time.perf_counter() - last_eval >= cfg.eval_seconds
                evaluating = p.step % cfg.eval_interval == 0 or due
                if p.step % cfg.log_interval == 0 or p.step % READ_EVERY == 0 or evaluating:
                    self._read_steps()  # the device finishing the steps: counted as training time
                p.step_seconds += time.perf_counter() - step_start
                if p.step % cfg.log_interval == 0:
                    record = self.window.record(p.step, self.total_seconds(), self.optimizer.param_groups[0]["lr"])
                    self._log(record)
                    bar.set_postfix(loss=f"{record['loss']:.3f}", bpc=f"{record['loss'] / math.log(2):.3f}",
                                    val=f"{p.best_val / math.log(2):.3f}", chars_s=f"{record['chars_per_s']}")
                if evaluating:
                    last_eval = time.perf_counter()
                    self.evaluate()
                    self.save_last()
                    self.window.restart()
                bar.n = int(self.total_seconds()) if by_time else p.step
                bar.refresh() if p.step % 10 == 0 else None
            bar.close()
            read_start = time.perf_counter()
            self._read_steps()  # the last steps, checked before they are saved
            p.step_seconds += time.perf_counter() - read_start
            # Still under the handlers: a signal now lets the final save finish, a second one quits at once.
            if not p.curve or p.curve[-1]["step"] != p.step:
                self.evaluate()
            self.save_last()
        return self._finish(reason)

    def _finish(self, reason: str) -> dict:
        self.dist.barrier()  # the main process has written best/
        best = load_checkpoint(self.out / "best", self.device)  # the weights as stored (maybe bfloat16)
        final = self._validate(best.model, None)
        final_metrics = {"val_nats": final["nats"], "val_bpc": final["bpc"], "val_ppl": final["ppl"],
                         "val_chars": final["chars"], "val_tokens_scored": final["tokens"],
                         "val_tokens": len(self.corpus.val), "best_step": best.metrics.get("steps"),
                         "stored_dtype": self.cfg.save_dtype}
        meta = self._meta(final_metrics)
        meta["metrics"]["steps"] = best.metrics.get("steps")  # the best checkpoint's own step count
        meta["metrics"]["total_steps"] = self.progress.step
        if self.dist.is_main:
            save_checkpoint(self.out / "best", best.model, best.tokenizer, self.cfg.save_dtype, **meta)
        summary = {"val_nats": round(final["nats"], 4), "val_bpc": round(final["bpc"], 4),
                   "val_tokens_scored": final["tokens"],
                   "steps": self.progress.step, "best_step": best.metrics.get("steps"),
                   "chars_per_s": meta["metrics"]["train_chars_per_s"],
                   "wall_s": round(self.total_seconds(), 1), "stopped": reason,
                   "schedule_steps": self.progress.schedule.horizon,
                   "params": self.model.num_params(), "checkpoint": str(self.out / "best")}
        self._log({"event": "final", **summary})
        return summary
