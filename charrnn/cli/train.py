"""Train a CharRNN with stateful truncated BPTT.

    charrnn train --dataset tiny_shakespeare --time-budget 10     (the model sized to the budget here: below)
    charrnn train --dataset my_novel.txt --cell gru --params 3M --out runs/gru
    charrnn train --resume runs/gru --max-steps 20000     (or a run pushed with --training-state: user/name)

A run folder holds best/ (lowest validation loss), last/ (with optimizer and RNG state for --resume)
and metrics.jsonl (one JSON object per log line or evaluation). Saves are atomic, so a crash at any moment
leaves a run that --resume continues. Ctrl-C (or SIGTERM) saves last/ and exits with 130 (143); a second
Ctrl-C quits at once, without saving.

--time-budget without --layers, --hidden or --params: the run first times a few training steps of some sizes
here (a few seconds, counted in the budget), predicts how many characters the budget will read, and chooses the
model's size (bigger for more characters, smaller on a slow machine), --dropout and --input-dropout (more for more
epochs) from that against the size of the text. It prints the choice and why, and stores them in the run folder
(recipe.json; the stored command repeats them as flags). Flags given always win: --dropout 0.2 keeps 0.2 and
lets the recipe choose the rest; a size flag turns the recipe off (--layers 2 --hidden 512: the fixed default).

--resume continues a run with its own settings. Only how long it runs and how it reports (--max-steps,
--time-budget, --schedule-steps, --steps-this-run, --eval-interval, --eval-tokens, --patience, --log-interval,
--progress), where and how exactly (--device, --precision, --threads, --deterministic) and --out may change; other
flags must match the run's.
Limits given on resume replace the stored ones (--max-steps 20000 after a --time-budget run trains to step 20000),
and the learning rate then decays from where it was to its floor at the new end. Another --eval-tokens scores
best/ again on the new sample, so that later evaluations compare with it fairly.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys

from charrnn.config import TrainConfig, add_dataclass_arguments
from charrnn.errors import ArgumentParser, cli_errors
from charrnn.train import distributed
from charrnn.train.trainer import Trainer
from charrnn.train.recipe import recipe_fields
from charrnn.train.resume import given_flags, resumed_config

def parse_args(argv=None) -> TrainConfig:
    parser = ArgumentParser(prog="charrnn train", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_arguments(parser, TrainConfig)
    cfg = TrainConfig(**vars(parser.parse_args(argv)))
    return resumed_config(cfg, argv) if cfg.resume else cfg


def print_recipe(trainer: Trainer, chosen: tuple[str, ...]) -> None:
    recipe = trainer.recipe
    left = [f"--{name.replace('_', '-')}" for name in chosen]
    print(f"recipe for {recipe.budget_seconds / 60:g} minutes on this {trainer.device.type} (give {', '.join(left)} "
          f"or --params to choose yourself):", file=sys.stderr)
    for line in recipe.reasons(chosen):
        print(f"  {line}", file=sys.stderr)
    print(f"  the same model without measuring: {shlex.join(recipe.flags(chosen))} (in {trainer.out}/recipe.json)",
          file=sys.stderr)


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
    chosen = recipe_fields(cfg, given_flags(argv))
    try:
        trainer = Trainer(cfg, command=shlex.join(["python", "-m", "charrnn.train", *argv]), recipe_fields=chosen)
        main_process = trainer.dist.is_main  # in a run of many processes, only the first one reports
        if main_process and trainer.recipe is not None:
            print_recipe(trainer, chosen)
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
