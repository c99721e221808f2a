"""What `--resume` continues: the stored run's settings, with only the flags that may change on resume taken
from the command line (how long, how it reports, where it runs); any other flag that differs is refused."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from charrnn.checkpoint.saving import load_checkpoint
from charrnn.config import TrainConfig, add_dataclass_arguments
from charrnn.errors import CharRNNError
from charrnn.hub.resolve import is_hub_id, resume_location
from charrnn.train.run_folder import find_resume_checkpoint, run_folder_of

# Flags that may change when resuming; everything else comes from the run being resumed.
RESUME_OVERRIDES = ("max_steps", "time_budget", "schedule_steps", "steps_this_run", "eval_interval", "eval_tokens",
                    "patience", "log_interval", "eval_seconds", "sample_chars", "progress", "threads", "device",
                    "precision", "deterministic", "out")
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
