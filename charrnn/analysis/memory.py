"""A memory test: an exercise routine interrupted by rainy days.

Someone runs (r), bikes (b) and swims (s), in that order, day after day. On rainy days they sleep (z). When
the sun returns they resume where they left off: after "...r b z z z z" comes "s". Predicting that day needs
memory of the last activity before the rain, across a gap of any length, with nothing in between to help:
exactly what vanishing gradients make hard for a plain RNN and what gates make easy for LSTM and GRU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch

from charrnn.cells import TEACHING_TRIO, cell_info
from charrnn.config import ModelConfig
from charrnn.model import CharRNN
from charrnn.tokenizer import CharTokenizer

ROUTINE = "rbs"  # run, bike, swim, repeat
SLEEP = "z"  # a rainy day
TOKENIZER = CharTokenizer(ROUTINE + SLEEP)
CELLS = TEACHING_TRIO
GAPS = (1, 2, 4, 8, 12, 16, 20, 25, 30, 40, 50, 60)  # rainy-spell lengths the test probes


def make_days(rng: np.random.Generator, days: int, max_gap: int, rain_chance: float = 0.15) -> str:
    """A diary of `days` characters: the routine in order, interrupted by rainy spells of 1..max_gap days."""
    out, position = [], int(rng.integers(len(ROUTINE)))
    while len(out) < days:
        if out and out[-1] != SLEEP and rng.random() < rain_chance:
            out.extend(SLEEP * int(rng.integers(1, max_gap + 1)))
        else:
            out.append(ROUTINE[position % len(ROUTINE)])
            position += 1
    return "".join(out[:days])


def make_probe(rng: np.random.Generator, gap: int, lead: int = 6) -> tuple[str, str]:
    """A diary ending in exactly `gap` rainy days, and the activity that must come next."""
    start = int(rng.integers(len(ROUTINE)))
    routine = "".join(ROUTINE[(start + i) % len(ROUTINE)] for i in range(lead))
    return routine + SLEEP * gap, ROUTINE[(start + lead) % len(ROUTINE)]


def _ids(text: str) -> torch.Tensor:
    return torch.from_numpy(TOKENIZER.encode(text))


@torch.no_grad()
def accuracy_after_gap(model: CharRNN, gaps, probes: int = 200, seed: int = 0) -> dict[int, float]:
    """For each gap length, the share of probes where the model's likeliest activity after the rain is right."""
    rng = np.random.default_rng(seed)
    model.eval()
    activity_ids = torch.from_numpy(TOKENIZER.encode(ROUTINE))
    result = {}
    for gap in gaps:
        texts, answers = zip(*(make_probe(rng, gap) for _ in range(probes)))
        batch = torch.stack([_ids(t) for t in texts])
        logits, _, _ = model(batch)
        choice = activity_ids[logits[:, -1, activity_ids].argmax(dim=-1)]
        result[int(gap)] = float((choice == _ids("".join(answers))).float().mean())
    return result


@dataclass
class MemorySettings:
    hidden_size: int = 24
    steps: int = 400
    batch_size: int = 32
    days: int = 160  # length of each training diary (the whole diary is one BPTT window)
    max_gap: int = 30  # longest rainy spell seen in training
    lr: float = 1e-2
    seed: int = 0


def train_memory_model(cell: str, settings: MemorySettings = MemorySettings(),
                       progress: Callable[[int, float], None] | None = None) -> CharRNN:
    """Train a tiny model on random diaries (seconds on a CPU). progress(step, loss) is called every 20 steps."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    model = CharRNN(ModelConfig(vocab_size=TOKENIZER.vocab_size, cell=cell, embedding_size=8,
                                hidden_size=settings.hidden_size, num_layers=1))
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    model.train()
    for step in range(settings.steps):
        batch = torch.stack([_ids(make_days(rng, settings.days + 1, settings.max_gap))
                             for _ in range(settings.batch_size)])
        _, _, loss = model(batch[:, :-1], targets=batch[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if progress and (step + 1) % 20 == 0:
            progress(step + 1, loss.item())
    return model.eval()


def cell_name(cell: str) -> str:
    """The name the rest of the app gives a cell's model: the plain RNN is `rnn`, as in checkpoints/rnn."""
    return cell_info(cell).short_name


def train_models(settings: MemorySettings = MemorySettings(),
                 progress: Callable[[float, str], None] | None = None) -> dict[str, CharRNN]:
    """Train the tiny RNN, GRU and LSTM on the rainy-days task, keyed rnn, gru, lstm; progress(fraction,
    message) as they go."""
    models = {}
    for i, cell in enumerate(CELLS):
        def report(step, loss, i=i, cell=cell):
            if progress:
                progress((i + step / settings.steps) / len(CELLS),
                         f"{cell_info(cell).label}, step {step} of {settings.steps}")
        models[cell_name(cell)] = train_memory_model(cell, settings, report)
    return models


def accuracy_table(models: dict[str, CharRNN], gaps, probes: int = 200, seed: int = 0) -> pd.DataFrame:
    """Long format for a line plot: model, gap, accuracy."""
    rows = []
    for name, model in models.items():
        for gap, accuracy in accuracy_after_gap(model, gaps, probes, seed).items():
            rows.append({"model": name, "gap (rainy days)": gap, "accuracy": accuracy})
    return pd.DataFrame(rows, columns=["model", "gap (rainy days)", "accuracy"])
