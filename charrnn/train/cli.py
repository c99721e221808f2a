"""Train a CharRNN with stateful truncated BPTT.

    charrnn train --dataset tiny_shakespeare --time-budget 10
    charrnn train --dataset my_novel.txt --cell gru --params 3M --out runs/gru
    charrnn train --resume runs/gru --max-steps 20000     (or a run pushed with --training-state: user/name)

A run folder holds best/ (lowest validation loss), last/ (with optimizer and RNG state for --resume)
and metrics.jsonl (one JSON object per log line or evaluation). Saves are atomic, so a crash at any moment
leaves a run that --resume continues. Ctrl-C (or SIGTERM) saves last/ and exits with 130 (143); a second
Ctrl-C quits at once, without saving.

--resume continues a run with its own settings. Only how long it runs and how it reports (--max-steps,
--time-budget, --schedule-steps, --steps-this-run, --eval-interval, --eval-tokens, --patience, --log-interval,
--progress), where (--device, --precision, --threads) and --out may change; other flags must match the run's.
Limits given on resume replace the stored ones (--max-steps 20000 after a --time-budget run trains to step 20000),
and the learning rate then decays from where it was to its floor at the new end. Another --eval-tokens scores
best/ again on the new sample, so that later evaluations compare with it fairly.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import signal
import sys
from pathlib import Path

from charrnn.checkpoint import load_checkpoint
from charrnn.config import TrainConfig, add_dataclass_arguments
from charrnn.errors import ArgumentParser, CharRNNError, cli_errors
from charrnn.hub import is_hub_id, resume_location
from charrnn.train import distributed
from charrnn.train.loop import Trainer
from charrnn.train.run_folder import find_resume_checkpoint, run_folder_of

# Flags that may change when resuming; everything else comes from the run being resumed.
RESUME_OVERRIDES = ("max_steps", "time_budget", "schedule_steps", "steps_this_run", "eval_interval", "eval_tokens",
                    "patience", "log_interval", "eval_seconds", "sample_chars", "progress", "threads", "device",
                    "precision", "out")
STOP_LIMITS = ("max_steps", "time_budget", "schedule_steps")  # given on resume, they replace all stored ones


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def given_flags(argv) -> dict:
    """The options written on the command line (not their defaults)."""
    explicit = argparse.ArgumentParser(argument_default=argparse.SUPPRESS, add_help=False)
    add_dataclass_arguments(explicit, TrainConfig)
    for action in explicit._actions:
        action.default = argparse.SUPPRESS
    return vars(explicit.parse_known_args(argv)[0])


def same_setting(name: str, given, stored) -> bool:
    if given == stored:
        return True
    if name == "dataset" and isinstance(given, list) and isinstance(stored, list):  # the same files, spelled apart
        return [str(Path(p).resolve()) for p in given] == [str(Path(p).resolve()) for p in stored]
    return False


def resumed_config(cfg: TrainConfig, argv) -> TrainConfig:
    """The stored run's config, with the flags this command line may change."""
    given = {k: v for k, v in given_flags(argv).items() if k not in ("resume", "revision")}
    if is_hub_id(cfg.resume):
        resume_dir, out = resume_location(cfg.resume, cfg.revision)  # a pushed run's Hub id downloads it
    else:
        resume_dir = find_resume_checkpoint(cfg.resume)
        out = run_folder_of(resume_dir)
    stored = load_checkpoint(resume_dir).meta.get("training")
    if not isinstance(stored, dict):
        raise CharRNNError(f"{resume_dir} has no training config to resume from")
    stored = {k: v for k, v in stored.items() if k in {f.name for f in dataclasses.fields(TrainConfig)}}
    stored.setdefault("eval_tokens", 0)  # runs saved before --eval-tokens scored all of the validation text
    fixed = [f"{flag(name)} (the run has {stored.get(name)!r}, given {value!r})" for name, value in given.items()
             if name not in RESUME_OVERRIDES and not same_setting(name, value, stored.get(name))]
    if fixed:
        raise CharRNNError(f"--resume continues {out} with its own settings, so {', '.join(fixed)} cannot change; "
                           f"leave {'it' if len(fixed) == 1 else 'them'} out, or start a new run (without --resume, "
                           f"another --out) to try other settings")
    if any(name in given for name in STOP_LIMITS):
        dropped = [f"{flag(name)} {stored[name]}" for name in STOP_LIMITS
                   if name not in given and stored.get(name) is not None]
        if dropped and os.environ.get("RANK", "0") == "0":
            print(f"note: the limits given replace the run's {', '.join(dropped)}", file=sys.stderr)
        for name in STOP_LIMITS:
            stored[name] = given.get(name)
    stored["out"] = str(out)
    stored.update({name: value for name, value in given.items() if name in RESUME_OVERRIDES})
    stored["resume"] = str(resume_dir)
    return TrainConfig(**stored)


def parse_args(argv=None) -> TrainConfig:
    parser = ArgumentParser(prog="charrnn train", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_arguments(parser, TrainConfig)
    cfg = TrainConfig(**vars(parser.parse_args(argv)))
    return resumed_config(cfg, argv) if cfg.resume else cfg


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
    try:
        trainer = Trainer(cfg, command=shlex.join(["python", "-m", "charrnn.train", *argv]))
        main_process = trainer.dist.is_main  # in a run of many processes, only the first one reports
        if main_process:
            processes = f", {trainer.dist.world_size} processes" if trainer.dist.world_size > 1 else ""
            scored = trainer.eval_windows().tokens
            sample = (f" ({scored:,} of them scored at each evaluation: --eval-tokens)"
                      if scored < len(trainer.corpus.val) - 1 else "")
            print(f"{trainer.model.config.cell}: {trainer.model.num_params():,} parameters "
                  f"(hidden {trainer.model.config.hidden_size}), {len(trainer.corpus.train):,} training tokens, "
                  f"{len(trainer.corpus.val):,} validation tokens{sample}, "
                  f"device {trainer.device}{processes}, "
                  f"batch {trainer.cfg.batch_size} x {trainer.cfg.seq_len}, "
                  f"precision {str(trainer.amp_dtype or 'fp32').replace('torch.', '')}", file=sys.stderr)
        summary = trainer.run()
    finally:
        distributed.teardown()
    if main_process and summary["stopped"].startswith("interrupted"):
        print(f"{summary['stopped']}: saved {cfg.out}/last; continue with --resume {cfg.out}", file=sys.stderr)
    if main_process:
        print(json.dumps(summary))
    if trainer.stop_signal:
        sys.exit(128 + trainer.stop_signal)
    return summary


if __name__ == "__main__":
    main()
