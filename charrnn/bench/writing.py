"""Write together: how long a visitor waits for suggestions after a keystroke, and after taking a suggestion.

The measurement behind `charrnn bench write` (charrnn/cli/bench_write.py), which describes what it does.
"""

from __future__ import annotations

import statistics
import time

from charrnn.sampling.suggest import Suggester

START = "ROMEO:\nIs the day so young?\n\nJULIET:\n"  # the text the session starts from, read once before timing
TYPED = "It is not yet near day: it was the nightingale, and not the lark, that pierced the fearful hollow of thine ear"


def _ms(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {"median_ms": round(1000 * statistics.median(ordered), 1),
            "p95_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
            "max_ms": round(1000 * ordered[-1], 1)}


def write_latency(checkpoint, n: int = 5, temperature: float = 1.0, typed: str = TYPED, turns: int = 30) -> dict:
    """Seconds from a keystroke to its suggestions, over `typed` one character at a time, as the page asks for them
    (one Suggester kept for the session); then `turns` suggestions taken in a row (the best each time)."""
    suggester = Suggester(checkpoint.model, checkpoint.tokenizer)
    start = time.perf_counter()
    suggester.suggest(START, n, temperature)
    first = time.perf_counter() - start
    keystrokes, text = [], START
    for char in typed:
        text += char
        start = time.perf_counter()
        suggester.suggest(text, n, temperature)
        keystrokes.append(time.perf_counter() - start)
    taken = []
    for _ in range(turns):
        best = suggester.suggest(text, n, temperature).best
        text += best.text if best else " "
        start = time.perf_counter()
        suggester.suggest(text, n, temperature)
        taken.append(time.perf_counter() - start)
    return {"first_ms": round(1000 * first, 1), "keystroke": _ms(keystrokes), "taken": _ms(taken)}
