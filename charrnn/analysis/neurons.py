"""Single units of the hidden (or LSTM cell) state over a text, and the units that track something nameable.

Karpathy, Johnson and Fei-Fei (2015), "Visualizing and Understanding Recurrent Networks", found cells that
count line position, open quotes and brackets. Here each unit is scored by how well its activation follows
such a feature of the text (absolute Pearson correlation), so the best ones can be listed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import re
from dataclasses import dataclass

import numpy as np

if TYPE_CHECKING:
    from charrnn.analysis.trace import Trace


def _position_in_line(text: str) -> np.ndarray:
    out, column = np.zeros(len(text)), 0
    for i, ch in enumerate(text):
        out[i] = column
        column = 0 if ch == "\n" else column + 1
    return out


def _inside(text: str, opening: str, closing: str) -> np.ndarray:
    out, depth = np.zeros(len(text)), 0
    for i, ch in enumerate(text):
        if ch == closing and depth > 0:
            depth -= 1
        out[i] = depth > 0
        if ch == opening:
            depth += 1
    return out


def _speaker_name(text: str) -> np.ndarray:
    """1 on the characters of a line that names a speaker (Tiny Shakespeare's 'ROMEO:' lines)."""
    out = np.zeros(len(text))
    for match in re.finditer(r"(?m)^[A-Z][A-Za-z .']*:$", text):
        out[match.start():match.end()] = 1
    return out


def _inside_word(text: str) -> np.ndarray:
    return np.array([ch.isalpha() for ch in text], dtype=float)


def _end_of_sentence(text: str) -> np.ndarray:
    """Characters since the last sentence end (. ! ?), capped: a 'how long is this sentence' counter."""
    out, count = np.zeros(len(text)), 0
    for i, ch in enumerate(text):
        count = 0 if ch in ".!?" else min(count + 1, 200)
        out[i] = count
    return out


def _inside_quotes(text: str) -> np.ndarray:
    out, inside = np.zeros(len(text)), False
    for i, ch in enumerate(text):
        if ch == '"':
            inside = not inside
        out[i] = inside
    return out


FEATURES = {
    "position in line": _position_in_line,
    "inside a speaker name": _speaker_name,
    "inside quotes": _inside_quotes,
    "inside brackets": lambda text: _inside(text, "(", ")"),
    "inside a word": _inside_word,
    "length of sentence so far": _end_of_sentence,
}


def activations(trace: Trace, layer: int, unit: int, state: str = "hidden") -> np.ndarray:
    """(T,) activation of one unit: state 'hidden' (h_t) or 'cell' (the LSTM's c_t)."""
    source = trace.cell if state == "cell" else trace.hidden
    if state == "cell" and not trace.cell:
        raise ValueError("only LSTMs have a cell state; choose state='hidden'")
    return source[layer][:, unit].numpy()


@dataclass
class UnitScore:
    feature: str
    layer: int
    state: str
    unit: int
    correlation: float  # signed Pearson correlation between the unit and the feature


def interpretable_units(trace: Trace, text: str, per_feature: int = 3,
                        only: tuple[int, str] | None = None) -> list[UnitScore]:
    """For each feature of the text, the units whose activation follows it best (|correlation|);
    only=(layer, state) looks at that layer's hidden or cell state alone."""
    states = [("hidden", trace.hidden)] + ([("cell", trace.cell)] if trace.cell else [])
    results = []
    for feature, compute in FEATURES.items():
        signal = compute(text)
        if signal.std() == 0:
            continue  # the text has none of this feature (e.g. no quotes): nothing to correlate with
        z_signal = (signal - signal.mean()) / signal.std()
        candidates = []
        for state, per_layer in states:
            for layer, values in enumerate(per_layer):
                if only is not None and (layer, state) != tuple(only):
                    continue
                acts = values.numpy().astype(np.float64)  # (T, H)
                std = acts.std(axis=0)
                z_acts = (acts - acts.mean(axis=0)) / np.where(std > 1e-8, std, np.inf)
                corr = z_signal @ z_acts / len(signal)  # (H,)
                for unit in np.argsort(-np.abs(corr))[:per_feature]:
                    candidates.append(UnitScore(feature, layer, state, int(unit), float(corr[unit])))
        candidates.sort(key=lambda s: -abs(s.correlation))
        results.extend(candidates[:per_feature])
    return sorted(results, key=lambda s: -abs(s.correlation))
