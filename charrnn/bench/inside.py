"""The Inside tab's views timed against what they cannot go below: one forward and one backward pass of the same
models over the same text (issue 29 asks for each view within 3x of that)."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from charrnn.device import one_torch_thread
from charrnn.sampling.generate import generate
from charrnn.service import inside
from charrnn.service.library import ModelLibrary

# The views, each with the models it reads (the shipped cell comparison and the best LSTM), as the tab calls them
VIEWS: dict[str, tuple[list[str], Callable]] = {
    "surprise": (["rnn", "gru", "lstm"], lambda library, text, names: inside.surprise(library, text, names)),
    "neurons": (["lstm_best"], lambda library, text, names: inside.neurons(library, text, names[0])),
    "gradient flow": (["rnn", "gru", "lstm"], lambda library, text, names: inside.gradient_flow(library, text, names)),
    "gates": (["lstm"], lambda library, text, names: inside.gates(library, text, names[0])),
}


def sample_text(library: ModelLibrary, chars: int) -> str:
    """A text of `chars` characters the shipped models can read: lstm_best's own, from a fixed seed."""
    checkpoint = library.load("lstm_best").checkpoint
    return generate(checkpoint.model, checkpoint.tokenizer, "JULIET:\n", chars - len("JULIET:\n"), seed=0)


def forward_backward_seconds(library: ModelLibrary, text: str, names: list[str]) -> float:
    """One forward and one backward pass of each model over the whole text (one sequence), in seconds, on one
    torch thread as the views run (charrnn.device.one_torch_thread)."""
    start = time.perf_counter()
    for name in names:
        checkpoint = library.load(name).checkpoint
        ids = torch.as_tensor(checkpoint.tokenizer.encode(text)).reshape(1, -1)
        with one_torch_thread():
            logits, _, _ = checkpoint.model(ids[:, :-1])
            F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).backward()
        checkpoint.model.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def view_ratios(library: ModelLibrary, chars: int, repeats: int) -> list[dict]:
    """Per view: the median seconds of the view and of the baseline, measured alternately (`repeats` each, after
    one untimed call of each), and their ratio."""
    text = sample_text(library, chars)
    rows = []
    for view, (names, show) in VIEWS.items():
        show(library, text, names), forward_backward_seconds(library, text, names)  # loads, warms, compiles
        view_times, base_times = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            show(library, text, names)
            view_times.append(time.perf_counter() - start)
            base_times.append(forward_backward_seconds(library, text, names))
        view_s, base_s = statistics.median(view_times), statistics.median(base_times)
        rows.append({"view": view, "models": names, "view_s": round(view_s, 3),
                     "forward_backward_s": round(base_s, 3), "ratio": round(view_s / base_s, 2)})
    return rows
