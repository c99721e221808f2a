"""Many visitors sampling one model at once: the batching engine beside one sampling loop per visitor.

The measurement behind `charrnn bench visitors` (charrnn/cli/bench_visitors.py), which describes what it does.
"""

from __future__ import annotations

import statistics
import threading
import time

from charrnn.sampling.engine import SamplingEngine
from charrnn.sampling.generate import SamplingSettings, stream
from charrnn.sampling.stepper import Stepper

SETTINGS = SamplingSettings(temperature=0.8)


class BusyPython:
    """A thread that runs Python without pause, holding the GIL whenever it can."""

    def __enter__(self):
        self._stop = False
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        total = 0
        while not self._stop:
            for i in range(1000):
                total += i

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()


def visitors_speed(visitors: int, chars: int, sample) -> float:
    """Characters per second of all visitors together; sample(seed) yields one list of pieces per step."""
    barrier = threading.Barrier(visitors + 1)

    def visit(seed):
        barrier.wait()
        for _ in sample(seed):
            pass

    threads = [threading.Thread(target=visit, args=(seed,)) for seed in range(visitors)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return visitors * chars / (time.perf_counter() - start)


def measure(checkpoint, visitors: int, chars: int, rounds: int) -> dict:
    model, tokenizer = checkpoint.model, checkpoint.tokenizer
    stepper = Stepper(model)
    engine = SamplingEngine(model, tokenizer, stepper)
    ways = {
        "loops": lambda seed: stream(model, tokenizer, "ROMEO:\n", chars, SETTINGS, seed, stepper=stepper),
        "engine": lambda seed: engine.stream("ROMEO:\n", chars, SETTINGS, seed, every=0.1),
    }
    if stepper.precision == "bf16":  # what bfloat16 gains over half-precision matrices
        half_engine = SamplingEngine(model, tokenizer, Stepper(model, "half"))
        ways["engine-half"] = lambda seed: half_engine.stream("ROMEO:\n", chars, SETTINGS, seed, every=0.1)
        visitors_speed(2, 50, ways["engine-half"])  # compiles its kernels
    visitors_speed(2, 50, ways["loops"])  # compiles the kernels
    speeds: dict[str, list[float]] = {f"{way} {mode}": [] for mode in ("alone", "busy") for way in ways}
    for _ in range(rounds):
        for mode in ("alone", "busy"):
            for way, sample in ways.items():
                if mode == "busy":
                    with BusyPython():
                        speeds[f"{way} {mode}"].append(visitors_speed(visitors, chars, sample))
                else:
                    speeds[f"{way} {mode}"].append(visitors_speed(visitors, chars, sample))
    medians = {name: round(statistics.median(values)) for name, values in speeds.items()}
    return {"visitors": visitors, "chars": chars, "rounds": rounds, "peak_rows": engine.peak_rows,
            "threads": engine.threads, "precision": stepper.precision, "chars_per_s": medians,
            "all_runs": {name: [round(v) for v in values] for name, values in speeds.items()},
            "engine_over_loops": {mode: round(medians[f"engine {mode}"] / medians[f"loops {mode}"], 2)
                                  for mode in ("alone", "busy")}}
