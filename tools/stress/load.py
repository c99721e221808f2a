"""Many clients at once: each loops on the app's endpoints for a fixed time, as fast as it is answered."""

from __future__ import annotations

import random
import statistics
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import httpx

from tools.stress.client import ANSWERED, endpoints, call
from tools.stress.server import AppServer

PROMPTS = ("ROMEO:\n", "JULIET:\nO ", "KING RICHARD II:\n", "First Citizen:\n", "\n", "To be, or not")


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def engine_alone(folder: Path, clients: int, length: int, seed: int = 0, rounds: int = 3) -> float:
    """Characters per second that the sampling engine alone writes for `clients` visitors of `length` characters
    of the model in `folder` at once (the load test's prompts, streamed as the app streams them), in this process:
    what the app would serve with no serving cost. The median of `rounds`, after a warm-up."""
    from charrnn.bench.visitors import SETTINGS, visitors_speed
    from charrnn.checkpoint.saving import load_checkpoint
    from charrnn.sampling.engine import SamplingEngine

    checkpoint = load_checkpoint(folder)
    engine = SamplingEngine(checkpoint.model, checkpoint.tokenizer)

    def sample(number: int):
        return engine.stream(PROMPTS[number % len(PROMPTS)], length, SETTINGS, seed * 1000 + number, every=0.1)

    visitors_speed(2, 50, lambda number: engine.stream("ROMEO:\n", 50, SETTINGS, number))
    return statistics.median(visitors_speed(clients, length, sample) for _ in range(rounds))


def run(server: AppServer, clients: int = 20, seconds: float = 60.0, length: int = 600, compare_clients: int = 0,
        seed: int = 0, session_per_call: bool = False) -> dict:
    """`clients` threads call /generate (length characters each); `compare_clients` of them call /compare.

    Each client keeps one session for all its calls, as a browser tab or a gradio_client Client does; with
    `session_per_call` it starts a new one for every call (Gradio then builds a session state each time)."""
    by_name = {e.name: e for e in endpoints(server.url)}
    generate, compare = by_name["generate"], by_name["compare"]
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, list[str]] = defaultdict(list)
    generated = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client_loop(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        endpoint = compare if number < compare_clients else generate
        session = None if session_per_call else uuid.uuid4().hex
        with httpx.Client() as client:
            while time.perf_counter() < deadline:
                prompt = rng.choice(PROMPTS)
                data = [component["props"].get("value") for component in endpoint.inputs]
                data[0] = prompt
                names = [c["props"].get("label") for c in endpoint.inputs]
                data[names.index("Length (characters)" if endpoint is generate else "Length")] = length
                data[names.index("Seed (-1 = random)" if endpoint is generate else "Seed")] = rng.randrange(10 ** 6)
                outcome = call(client, server.url, endpoint.fn_index, data, timeout=120, session=session)
                texts = [o for o in outcome.outputs if isinstance(o, str) and o.startswith(prompt)]
                with lock:
                    if outcome.kind == ANSWERED:
                        latencies[endpoint.name].append(outcome.seconds)
                        generated[0] += sum(len(t) - len(prompt) for t in texts[: 1 if endpoint is generate else 3])
                    else:
                        errors[endpoint.name].append(f"{outcome.kind}: {outcome.message}")

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    return {
        "clients": clients, "sessions": "one per call" if session_per_call else "one per client", "seconds": round(wall, 1), "length": length,
        "calls": {name: len(v) for name, v in latencies.items()},
        "errors": {name: len(v) for name, v in errors.items()},
        "error_examples": {name: v[:3] for name, v in errors.items()},
        "latency_s": {name: {"p50": _percentile(v, 0.5), "p95": _percentile(v, 0.95),
                             "mean": round(statistics.fmean(v), 2)} for name, v in latencies.items()},
        "generated_chars_per_s": round(generated[0] / wall),
        "memory_mb": server.memory_mb(),
    }


def serving_share(figures: dict, folder: Path, clients: int, length: int, seed: int = 0) -> None:
    """Add to the load test's figures what the engine alone writes for as many visitors (engine_alone, measured
    after the app has stopped) and the share of it the app served: issue 29 asks for >= 0.8."""
    alone = engine_alone(folder, clients, length, seed)
    figures["serving"] = {"engine_alone_chars_per_s": round(alone),
                          "served_chars_per_s": figures["generated_chars_per_s"],
                          "served_over_engine_alone": round(figures["generated_chars_per_s"] / alone, 2),
                          "generate_p95_s": (figures["latency_s"].get("generate") or {}).get("p95")}
