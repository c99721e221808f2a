"""`charrnn bench inside`: each view of the Inside tab timed against one forward and backward pass of the same
models over the same text, on the shipped checkpoints.

    charrnn bench inside                        # 2,000 characters, 3 alternating repeats (about a minute)
    charrnn bench inside --chars 500 --repeats 1

The text is lstm_best's own (a fixed seed), so the benchmark needs nothing but the shipped models. Each view runs
as the tab runs it, through the app's model library; the baseline is the least any view of a recurrent model's
gradients or states must do. Prints a table and one JSON line; a ratio above the target is marked.
"""

from __future__ import annotations

import argparse
import json

import torch

from charrnn.bench.inside import VIEWS, view_ratios
from charrnn.errors import check, cli_errors
from charrnn.paths import CHECKPOINTS_DIR
from charrnn.service.library import ModelLibrary

TARGET_RATIO = 3.0  # issue 29: each view within 3x of one forward and backward pass


@cli_errors
def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="charrnn bench inside", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=2000, help="length of the text looked at (default: 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of each, alternating (default: 3)")
    args = parser.parse_args(argv)
    check(100 <= args.chars <= 5000, f"--chars must be in [100, 5000], got {args.chars}")
    check(1 <= args.repeats <= 20, f"--repeats must be in [1, 20], got {args.repeats}")
    library = ModelLibrary(CHECKPOINTS_DIR, hub_ids=[])
    needed = sorted({name for names, _ in VIEWS.values() for name in names} | {"lstm_best"})
    missing = [name for name in needed if not (CHECKPOINTS_DIR / name).is_dir()]
    check(not missing, f"the shipped models {', '.join(missing)} are missing from {CHECKPOINTS_DIR}")
    print(f"{args.chars:,} characters, torch threads {torch.get_num_threads()}, median of {args.repeats}")
    print(f"{'view':<15} {'models':<16} {'view s':>8} {'fwd+bwd s':>10} {'ratio':>6}   within {TARGET_RATIO:g}x")
    rows = view_ratios(library, args.chars, args.repeats)
    for row in rows:
        row["within_target"] = row["ratio"] <= TARGET_RATIO
        print(f"{row['view']:<15} {','.join(row['models']):<16} {row['view_s']:>8.3f} {row['forward_backward_s']:>10.3f} "
              f"{row['ratio']:>6.2f}   {'yes' if row['within_target'] else 'NO'}", flush=True)
    print(json.dumps({"chars": args.chars, "target_ratio": TARGET_RATIO, "views": rows}))
    return rows
