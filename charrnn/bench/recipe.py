"""The time-budget recipe (charrnn/train/recipe.py) against the fixed model a run had before it, trained one after
the other on the same text and machine: the measurement behind `charrnn bench recipe` (charrnn/cli/bench_recipe.py).

Each run is `python -m charrnn.train` in a process of its own, with all the machine's threads, so that neither
inherits the other's memory or warm caches; its summary (the last line it prints) and its best/ checkpoint's
settings make its row.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from charrnn.checkpoint.saving import load_checkpoint
from charrnn.config import TrainConfig, default_of
from charrnn.errors import check
from charrnn.paths import IMPORT_ROOT

# The size every run had before the recipe, TrainConfig's defaults: given as flags, so no recipe is made.
LAYERS, HIDDEN = default_of(TrainConfig, "layers"), default_of(TrainConfig, "hidden")
RUNS = {f"fixed {LAYERS} x {HIDDEN}": ["--layers", str(LAYERS), "--hidden", str(HIDDEN)], "recipe": []}
HEADERS = ["run", "model", "parameters", "dropout / input dropout", "steps", "chars/s", "best step",
           "val nats/char", "val bpc"]


def train(name: str, dataset: list[str], minutes: float, extra: list[str], out: Path) -> dict:
    """One run of `python -m charrnn.train` for `minutes`; its messages go to this process's stderr as they come."""
    command = [sys.executable, "-m", "charrnn.train", "--dataset", *dataset, "--time-budget", repr(minutes),
               "--no-progress", "--out", str(out), *RUNS[name], *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(IMPORT_ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=False)
    check(done.returncode == 0, f"the {name} run failed (exit status {done.returncode}); its messages are above")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    training = load_checkpoint(out / "best").meta["training"]
    return {"run": name, "model": f"{training['layers']} x {training['hidden']}", "params": summary["params"],
            "dropout": training["dropout"], "input_dropout": training["input_dropout"], "steps": summary["steps"],
            "chars_per_s": summary["chars_per_s"], "best_step": summary["best_step"],
            "val_nats": summary["val_nats"], "val_bpc": summary["val_bpc"], "command": shlex.join(command)}


def row(result: dict) -> list:
    return [result["run"], result["model"], result["params"], f"{result['dropout']} / {result['input_dropout']}",
            result["steps"], result["chars_per_s"], result["best_step"], f"{result['val_nats']:.4f}",
            f"{result['val_bpc']:.4f}"]
