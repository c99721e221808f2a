"""The recipe of a --time-budget run whose model size is not given: its size and dropout chosen from the characters
the budget will let it read, against the size of its text, the way scaling studies size a model to its compute.

In a fixed time a bigger model learns more from each character but reads fewer of them; the best size is the one
whose parameters the budget's characters can train, a fixed number of characters per parameter (Hoffmann et al.
2022, "Training compute-optimal large language models"). A text read many times teaches less at each reading: its
repeats are worth less and less, all of them together at most about R = 15 readings of new text (Muennighoff et al.
2023, "Scaling data-constrained language models"), so a budget far beyond the text stops buying size. A model that
reads its text many times memorises it unless regularised, the more so the more parameters it has per character
of text: the dropout grows with that pressure. The rule, for a text of N training characters:

    chars(P)   = the budget's seconds x the characters per second of a P-parameter model here (measured), at most
                 what --max-steps allows
    useful(P)  = N x u(chars(P) / N), where u(e) = e up to one epoch, then 1 + R (1 - exp(-(e - 1) / R))
    size       = the largest P with useful(P) >= CHARS_PER_PARAM x P: 2 layers, the hidden size rounded down to a
                 multiple of 32, between 64 and 2048 (and what fits in memory)
    pressure   = chars(P) / N x P / N: epochs times parameters per character of text
    dropout, input dropout: log-linear in the pressure between the anchors below, rounded to 0.05

A longer budget or a faster device reads more characters at every size, so the size, the pressure and with them
the dropout never go down (the pressure is taken at the exact crossing, before the hidden size is rounded).
The learning-rate schedule stays what a time budget gets anyway: warmup, then a cosine decay timed to end with the
budget, with best/ kept at the lowest validation loss (so the many-epoch end of a run costs nothing).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import pairwise

from charrnn.config import count_params, format_count, to_argv

CHARS_PER_PARAM = 3.5  # characters the budget must give each parameter (calibration: docs/benchmarks.md, "Recipe")
REPEATS_WORTH = 15.0  # R: how many readings of new text all the repeats of a text are worth at most
LAYERS = 2
MIN_HIDDEN, MAX_HIDDEN, HIDDEN_STEP = 64, 2048, 32
# (pressure, value) anchors, from runs on Tiny Shakespeare (docs/benchmarks.md, "Recipe"): 2 x 512 for 10 quiet CPU
# minutes (pressure ~29) with dropout 0.1, and 2 x 448 (~35) with 0.15 and no input dropout, were both still
# improving at their ends (less would not have been better); lstm_best, 2 x 600 for 58 minutes (~126), did best
# with 0.5 and input dropout 0.2; a GPU's 300 epochs of 2 x 512 (~1000) with 0.5 and 0.2 too.
DROPOUT_ANCHORS = ((5.0, 0.0), (29.0, 0.1), (126.0, 0.5))
INPUT_DROPOUT_ANCHORS = ((40.0, 0.0), (126.0, 0.2))
# What the recipe chooses, each unless the person gave it; a size flag (--layers, --hidden, --params) given means
# the person chose the model, and no recipe is made.
RECIPE_FIELDS = ("layers", "hidden", "dropout", "input_dropout")
SIZE_FIELDS = ("layers", "hidden", "params", "tie_weights")  # tied weights make the hidden size the embedding's
REFERENCE_HIDDEN = 512  # the first shape measured: the size of a run without a recipe...
SHORT_BUDGET, SHORT_REFERENCE = 60.0, 128  # ...or, under a minute, a small one: 2 x 512's first steps cost seconds
MAX_PROBES = 4
NEAR = 0.15  # a choice within 15% of a measured hidden size is close enough: its speed is known well


def recipe_fields(cfg, given) -> tuple[str, ...]:
    """What the recipe chooses for a run whose command line gave the flags `given` (TrainConfig field names):
    nothing without a time budget, on --resume (the run keeps its own) or when the person chose the size; else
    each of RECIPE_FIELDS they did not give."""
    if not cfg.time_budget or cfg.resume or set(given) & set(SIZE_FIELDS):
        return ()
    return tuple(name for name in RECIPE_FIELDS if name not in given)


def useful_epochs(epochs: float) -> float:
    """What `epochs` readings of a text are worth in readings of new text (Muennighoff et al.'s decay)."""
    if epochs <= 1:
        return epochs
    return 1 + REPEATS_WORTH * (1 - math.exp(-(epochs - 1) / REPEATS_WORTH))


def log_interpolate(x: float, anchors) -> float:
    """The anchors' value at x, linear in log x between them, flat beyond the first and the last."""
    if x <= anchors[0][0]:
        return anchors[0][1]
    for (x0, y0), (x1, y1) in pairwise(anchors):
        if x <= x1:
            return y0 + (y1 - y0) * math.log(x / x0) / math.log(x1 / x0)
    return anchors[-1][1]


def rounded_rate(value: float) -> float:
    return round(round(value * 20) / 20, 2)


class SpeedModel:
    """Seconds per training character of a model with P parameters, from a few measured shapes: linear in P between
    them, and proportional to P outside them (the arithmetic grows with the parameters; a first guess, which the
    sizing then measures). Never faster for a bigger model, whatever the noise of the measurements."""

    def __init__(self, speeds: dict[int, float]):
        """`speeds`: characters per second measured at each parameter count."""
        points = sorted((params, 1 / chars_per_s) for params, chars_per_s in speeds.items())
        self.params = [p for p, _ in points]
        self.seconds, slowest = [], 0.0
        for _, seconds in points:
            slowest = max(slowest, seconds)
            self.seconds.append(slowest)

    def seconds_per_char(self, params: float) -> float:
        ps, ts = self.params, self.seconds
        if params <= ps[0]:
            return ts[0] * params / ps[0]
        if params >= ps[-1]:
            return ts[-1] * params / ps[-1]
        i = bisect.bisect_right(ps, params)
        return ts[i - 1] + (ts[i] - ts[i - 1]) * (params - ps[i - 1]) / (ps[i] - ps[i - 1])


@dataclass(frozen=True)
class Recipe:
    """The chosen settings and what they were chosen from."""

    layers: int
    hidden: int
    dropout: float
    input_dropout: float
    params: int
    chars: int  # the characters the budget will train the chosen model on (predicted)
    epochs: float
    pressure: float
    corpus_chars: int
    budget_seconds: float
    speeds: dict[int, float] = field(default_factory=dict)  # characters per second measured, by hidden size
    probe_seconds: float = 0.0  # spent measuring them

    def settings(self, fields=RECIPE_FIELDS) -> dict:
        return {name: getattr(self, name) for name in fields}

    def flags(self, fields=RECIPE_FIELDS) -> list[str]:
        """The flags that give these settings: a run with them (and no recipe) trains the same model."""
        return to_argv(self, fields)

    def reasons(self, chosen=RECIPE_FIELDS) -> list[str]:
        """Why, in words, for the fields the recipe chose (the others were given)."""
        measured = ", ".join(f"{LAYERS} x {h}: {s:,.0f}" for h, s in sorted(self.speeds.items()))
        lines = [f"training chars/s measured here ({self.probe_seconds:.1f} s): {measured}"]
        if "hidden" in chosen:
            lines.append(f"size {self.layers} x {self.hidden} ({format_count(self.params)} parameters): the budget "
                         f"reads ~{format_count(self.chars)} characters with it, {self.epochs:.1f} epochs of the "
                         f"{format_count(self.corpus_chars)}-character text, enough to train ~{CHARS_PER_PARAM:g} "
                         f"characters per parameter (repeats counted at their worth)")
        regularised = [f"{name.replace('_', ' ')} {getattr(self, name)}" for name in ("dropout", "input_dropout")
                       if name in chosen]
        if regularised:
            lines.append(f"{', '.join(regularised)}: for {self.epochs:.1f} epochs with "
                         f"{self.params / self.corpus_chars:.2f} parameters per character of text "
                         f"(pressure {self.pressure:.0f}; more epochs or parameters, more dropout)")
        return lines

    def to_dict(self) -> dict:
        return {**asdict(self), "speeds": {str(h): round(s) for h, s in self.speeds.items()}}


def params_of(hidden: float, cell: str, vocab_size: int, embedding: int) -> float:
    return count_params(cell, hidden, vocab_size, embedding, LAYERS)


def choose(budget_seconds: float, corpus_chars: int, speed: SpeedModel, cell: str, vocab_size: int, embedding: int,
           max_chars: float = math.inf, max_hidden: int = MAX_HIDDEN) -> Recipe:
    """The rule (the module's docstring), for a speed model of this device."""
    corpus_chars = max(corpus_chars, 1)
    def chars(hidden: float) -> float:
        return min(budget_seconds / speed.seconds_per_char(params_of(hidden, cell, vocab_size, embedding)), max_chars)

    def trainable(hidden: float) -> bool:
        useful = corpus_chars * useful_epochs(chars(hidden) / corpus_chars)
        return useful >= CHARS_PER_PARAM * params_of(hidden, cell, vocab_size, embedding)

    crossing = largest(trainable, MIN_HIDDEN, max(max_hidden, MIN_HIDDEN))
    pressure = chars(crossing) * params_of(crossing, cell, vocab_size, embedding) / corpus_chars**2
    hidden = max(MIN_HIDDEN, int(crossing) // HIDDEN_STEP * HIDDEN_STEP)
    params = round(params_of(hidden, cell, vocab_size, embedding))
    return Recipe(layers=LAYERS, hidden=hidden, params=params,
                  dropout=rounded_rate(log_interpolate(pressure, DROPOUT_ANCHORS)),
                  input_dropout=rounded_rate(log_interpolate(pressure, INPUT_DROPOUT_ANCHORS)),
                  chars=round(chars(hidden)), epochs=round(chars(hidden) / corpus_chars, 2),
                  pressure=round(pressure, 2), corpus_chars=corpus_chars, budget_seconds=budget_seconds)


def largest(holds: Callable[[float], bool], low: float, high: float) -> float:
    """The largest x in [low, high] where `holds`, for a condition that holds up to a point and not beyond (low
    when it never holds)."""
    if holds(high):
        return high
    if not holds(low):
        return low
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if holds(middle) else (low, middle)
    return low


def sized(budget_seconds: float, corpus_chars: int, measure: Callable[[int], float], cell: str, vocab_size: int,
          embedding: int, max_chars: float = math.inf, max_hidden: int = MAX_HIDDEN) -> Recipe:
    """The recipe from speeds measured by `measure(hidden)` (characters per second): the default size first, then
    each choice in turn, until a choice lies within NEAR of a measured size. The time spent measuring is taken
    from the budget."""
    start, speeds = time.perf_counter(), {}
    hidden = min(REFERENCE_HIDDEN if budget_seconds >= SHORT_BUDGET else SHORT_REFERENCE, max_hidden)
    for _ in range(MAX_PROBES):
        speeds[hidden] = measure(hidden)
        model = SpeedModel({params_of(h, cell, vocab_size, embedding): s for h, s in speeds.items()})
        left = max(budget_seconds - (time.perf_counter() - start), 1e-3)
        recipe = choose(left, corpus_chars, model, cell, vocab_size, embedding, max_chars, max_hidden)
        if any(abs(recipe.hidden - h) <= NEAR * h for h in speeds):
            break
        hidden = recipe.hidden
    return dataclasses.replace(recipe, speeds=speeds, probe_seconds=round(time.perf_counter() - start, 2),
                               budget_seconds=budget_seconds)
