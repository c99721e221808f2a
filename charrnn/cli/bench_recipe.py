"""`charrnn bench recipe`: the model a --time-budget run now chooses for this machine and budget, against the fixed
2 x 512 of before, on the same text, one after the other.

    charrnn bench recipe --dataset tiny_shakespeare --time-budget 10      # 2 x 10 minutes and the loading
    charrnn bench recipe --dataset my.txt --time-budget 1 --batch-size 8  # other flags go to both runs

Trains `charrnn train --dataset ... --time-budget M --layers 2 --hidden 512` (the size given: no recipe, the
settings every run had before) and then `charrnn train --dataset ... --time-budget M` (the recipe: it times a few
steps, then chooses the size and the dropout), each in a process of its own with all the machine's threads, and
prints one table: the model, its dropout, the steps and training characters per second, and the validation loss of
each run's best/ on the same held-out text. Ends with one JSON line of both runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from charrnn.bench.recipe import HEADERS, RUNS, row, train
from charrnn.bench.tables import print_header, print_row
from charrnn.config import MAX_TIME_BUDGET
from charrnn.errors import ArgumentParser, check, cli_errors
from charrnn.train.recipe import SIZE_FIELDS


@cli_errors
def main(argv=None) -> dict:
    parser = ArgumentParser(prog="charrnn bench recipe", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", nargs="+", required=True, help="the training text (as charrnn train takes it)")
    parser.add_argument("--time-budget", type=float, default=10.0, help="minutes of training of each run")
    parser.add_argument("--keep", default=None, help="keep the two run folders in this folder (default: deleted)")
    args, extra = parser.parse_known_args(argv)
    check(0 < args.time_budget <= MAX_TIME_BUDGET, f"--time-budget must be positive, got {args.time_budget}")
    sizes = [flag for flag in extra if flag.split("=")[0] in {"--" + name.replace("_", "-") for name in SIZE_FIELDS}]
    check(not sizes, f"{', '.join(sizes)} would size the recipe's run too; leave the size to the recipe")
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="charrnn-bench-recipe-"))
    try:
        results = []
        for name in RUNS:
            print(f"{name}: training for {args.time_budget:g} minutes ...", flush=True)
            results.append(train(name, args.dataset, args.time_budget, extra, folder / name.replace(" ", "-")))
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{args.time_budget:g} minutes each on {' '.join(args.dataset)}:")
    print_header(HEADERS)
    for result in results:
        print_row(row(result))
    figures = {"time_budget": args.time_budget, "dataset": args.dataset, "runs": results}
    print(json.dumps(figures))
    return figures
