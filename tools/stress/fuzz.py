"""Fuzz every event handler of the running app with valid, odd and hostile values, and classify each answer.

Each call keeps most inputs at their defaults and replaces one or two by a value from the pool of its
component type (or any type), so the handler's own checks are reached, not only the first one.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter, defaultdict

import httpx

from tools.stress.client import HANG, UNEXPECTED, Endpoint, call, endpoints
from tools.stress.server import AppServer

MEGABYTE_PROMPT = "ROMEO:\n" + "O Romeo, wherefore art thou? " * 36_000  # ~1 MB
TEN_MEGABYTE_PROMPT = MEGABYTE_PROMPT * 10

ANY = [None, [], ["lstm"], {"a": 1}, True, False, 0, -1, math.nan, math.inf, -math.inf, 1e308, 2 ** 70, "",
       "abc", "\ud800", "\x00\x01\x02", "../../../../etc/passwd", "/etc/passwd", "ROMEO:", "🙂" * 5]
BY_TYPE = {
    "textbox": ["", " ", "\n", "ROMEO:\n", "Ωμέγα ☃ 漢字 🙂", "a\ud800b", "\udfff", "\x00" * 50, "x" * 10_000,
                "x" * 10_001, "JULIET:\n" * 2_000, 12345, None, ["a"], {"text": "a"}],
    "slider": [-1, 0, 0.5, 1, 2, 5, 1e9, -1e9, math.nan, math.inf, -math.inf, "5", "abc", None, True, [], 2 ** 64],
    "number": [-1, 0, 1, 7, 1.5, -2 ** 63, 2 ** 63, 1e308, math.nan, math.inf, "42", "x", None, False, [1]],
    "checkbox": [True, False, "false", "true", 0, 1, None, [], "yes", math.nan],
    "dropdown": ["lstm", "rnn", "gru", "lstm_best", "memory/lstm", "nonexistent", "../checkpoints/lstm", "/etc",
                 "lstm\x00", "", None, ["lstm"], 3, {"value": "lstm"}],
    "radio": ["hidden", "cell", "HIDDEN", "", None, 1, ["cell"]],
}


def _values(component: dict, rng: random.Random):
    pool = BY_TYPE.get(component["type"], [])
    choices = [c[1] if isinstance(c, (list, tuple)) else c for c in component["props"].get("choices") or []]
    return rng.choice(pool + choices + ANY)


def _default(component: dict):
    return component["props"].get("value")


def fuzz_inputs(endpoint: Endpoint, rng: random.Random) -> list:
    data = [_default(c) for c in endpoint.inputs]
    roll = rng.random()
    if roll < 0.04:
        return data[:-1]  # one value too few
    if roll < 0.08:
        return data + ["extra"]  # one too many
    for _ in range(rng.choice((1, 1, 2))):
        if data:
            i = rng.randrange(len(data))
            data[i] = _values(endpoint.inputs[i], rng)
    return data


def huge_prompt_calls(points: list[Endpoint]) -> list[tuple[Endpoint, list]]:
    """The 1 MB and 10 MB texts, once into each text input of every endpoint."""
    calls = []
    for endpoint in points:
        for i, component in enumerate(endpoint.inputs):
            if component["type"] == "textbox":
                for text in (MEGABYTE_PROMPT, TEN_MEGABYTE_PROMPT):
                    data = [_default(c) for c in endpoint.inputs]
                    data[i] = text
                    calls.append((endpoint, data))
    return calls


def upload(base: str, megabytes: int) -> str:
    """What the upload route does with a file of `megabytes` MB: refused (a 4xx answer) or accepted."""
    body = b"x" * (megabytes * 1024 * 1024)
    try:
        answer = httpx.post(f"{base}/gradio_api/upload", files={"files": ("big.txt", body, "text/plain")},
                            timeout=120)
    except httpx.HTTPError as err:
        return f"connection ended ({type(err).__name__})"
    return f"{'refused' if 400 <= answer.status_code < 500 else 'accepted'} (HTTP {answer.status_code})"


def run(server: AppServer, calls: int = 1000, seed: int = 0, hang_seconds: float = 30.0,
        time_limit: float = 900.0, upload_mb: int = 100) -> dict:
    rng = random.Random(seed)
    points = endpoints(server.url)
    before = server.memory_mb()["now"]
    counts: Counter = Counter()
    per_endpoint: dict[str, Counter] = defaultdict(Counter)
    examples: dict[str, list] = defaultdict(list)
    most_bytes = 0
    start = time.perf_counter()
    planned = huge_prompt_calls(points)
    planned += [(e, fuzz_inputs(e, rng)) for e in (rng.choice(points) for _ in range(max(calls - len(planned), 0)))]
    with httpx.Client() as client:
        for endpoint, data in planned:
            if time.perf_counter() - start > time_limit or not server.alive():
                break
            logged = server.tracebacks()
            outcome = call(client, server.url, endpoint.fn_index, data, timeout=hang_seconds)
            kind = outcome.kind
            if kind != HANG and server.tracebacks() > logged:
                kind = UNEXPECTED  # answered, but the server hit an exception it did not expect
            counts[kind] += 1
            per_endpoint[endpoint.name][kind] += 1
            most_bytes = max(most_bytes, outcome.bytes_received)
            if kind in (UNEXPECTED, HANG) and len(examples[endpoint.name]) < 3:
                examples[endpoint.name].append({"inputs": [repr(v)[:60] for v in data], "error": outcome.message})
    memory = server.memory_mb()
    return {
        "calls": sum(counts.values()),
        "endpoints": sorted(per_endpoint),
        "outcomes": dict(counts),
        "per_endpoint": {name: dict(c) for name, c in sorted(per_endpoint.items())},
        "largest_response_mb": round(most_bytes / 1e6, 2),
        "memory_mb": {"before": before, "after": memory["now"], "peak": memory["peak"],
                      "after_over_before": round(memory["now"] / before, 2)},
        f"upload_of_{upload_mb}_mb": upload(server.url, upload_mb),
        "server_alive": server.alive(),
        "seconds": round(time.perf_counter() - start, 1),
        "examples_of_failures": dict(examples),
    }
