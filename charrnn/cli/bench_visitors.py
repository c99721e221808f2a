"""Many visitors sampling one model at once: the batching engine beside one sampling loop per visitor.

    charrnn bench visitors --checkpoint checkpoints/lstm_best --visitors 20 --chars 600

Each visitor is a thread that samples `--chars` characters from its own seed, as the app's Generate does. The
ways are timed in alternation, so the machine's noise hits them alike:
- loops: each visitor runs its own `sample.stream` loop (how the app sampled before charrnn.sampling.engine);
- engine: every visitor's samples advance in one step of the model's SamplingEngine;
- engine-half: the same with half-precision matrices, where the default precision is bf16.
Each is timed alone and beside a thread that runs Python without pause, as the server's event loop does while
it streams to many clients: a step that gives up the GIL has to wait to get it back. Prints a table and, last,
one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json

from charrnn.bench.visitors import measure
from charrnn.errors import ArgumentParser, cli_errors
from charrnn.hub.resolve import load


@cli_errors
def main(argv=None) -> dict:
    parser = ArgumentParser(prog="charrnn bench visitors", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="checkpoints/lstm_best", help="checkpoint folder or Hub id")
    parser.add_argument("--visitors", type=int, default=20, help="visitors sampling at once (default: 20)")
    parser.add_argument("--chars", type=int, default=600, help="characters each visitor samples (default: 600)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are printed")
    args = parser.parse_args(argv)
    if not (1 <= args.visitors <= 256 and 1 <= args.chars <= 100_000 and 1 <= args.rounds <= 20):
        parser.error("--visitors must be in [1, 256], --chars in [1, 100000] and --rounds in [1, 20]")
    figures = measure(load(args.checkpoint), args.visitors, args.chars, args.rounds)
    speeds = figures["chars_per_s"]
    half = "engine-half alone" in speeds
    print(f"{args.visitors} visitors x {args.chars} characters, {args.checkpoint}, medians of {args.rounds} rounds "
          f"(engine: up to {figures['peak_rows']} rows a step, {figures['threads']} threads; matrices in "
          f"{figures['precision']})")
    print(f"{'':24}{'loops':>10}{'engine':>10}{'engine/loops':>14}"
          + (f"{'engine-half':>13}{'engine/half':>13}" if half else ""))
    for mode, label in (("alone", "alone"), ("busy", "beside busy Python")):
        loops, engine = speeds[f"loops {mode}"], speeds[f"engine {mode}"]
        line = f"{label:24}{loops:>10,}{engine:>10,}{figures['engine_over_loops'][mode]:>14.2f}"
        if half:
            line += f"{speeds[f'engine-half {mode}']:>13,}{engine / speeds[f'engine-half {mode}']:>13.2f}"
        print(line)
    print(json.dumps(figures))
    return figures
