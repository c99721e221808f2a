"""How fast each size preset trains on this host, measured once with the trainer's own step: the Train tab's
size table shows it beside the parameter counts."""

from __future__ import annotations

import math
import threading
import time

import pandas as pd

from charrnn.config import ModelConfig, TrainConfig, count_params, format_count, hidden_size_for_params
from charrnn.service.training.settings import SIZE_PRESETS


class SpeedTable:
    """Training characters per second of each (cell, size preset) here, measured on first use; its own lock,
    so measuring never holds up the jobs."""

    def __init__(self, threads: int):
        self.threads = threads
        self._speeds: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def known(self, cell: str, size: str) -> float | None:
        return self._speeds.get((cell, size))

    def measured(self, cell: str, size: str) -> float:
        """For an 80-character vocabulary, batch 16 x 64."""
        with self._lock:
            if (cell, size) not in self._speeds:
                hidden = hidden_size_for_params(SIZE_PRESETS[size], cell, 80, 64, 2)
                self._speeds[cell, size] = measure_speed(cell, hidden, 80, 16, 64, threads=self.threads)
            return self._speeds[cell, size]


# -- sizes ----------------------------------------------------------------------------------------------
def size_table(speeds: "SpeedTable", cell: str = "lstm", vocab_size: int = 80, measure: bool = True) -> pd.DataFrame:
    """The size presets for a cell, as the tab shows them: layers x hidden, parameters ("3.3M") and training
    characters per second measured on this host ("12,300", three figures; a few steps of the real training
    step, once per cell and size; "" before it is measured)."""
    rows = []
    for size, budget in SIZE_PRESETS.items():
        hidden = hidden_size_for_params(budget, cell, vocab_size, 64, 2)
        speed = speeds.measured(cell, size) if measure else speeds.known(cell, size)
        rows.append({"size": size, "layers x hidden": f"2 x {hidden}",
                     "parameters": format_count(count_params(cell, hidden, vocab_size, 64, 2)),
                     "training chars/s here": f"{round(speed, 2 - int(math.log10(speed))):,.0f}" if speed else ""})
    return pd.DataFrame(rows, columns=["size", "layers x hidden", "parameters", "training chars/s here"])

def measure_speed(cell: str, hidden: int, vocab_size: int, batch_size: int, seq_len: int, threads: int,
                   seconds: float = 1.0) -> float:
    """Training characters per second of the trainer's own step for this size, on this host's CPU."""
    import torch

    from charrnn.model import CharRNN
    from charrnn.train.build import make_optimizer
    from charrnn.train.step import train_step

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = CharRNN(ModelConfig(vocab_size=vocab_size, cell=cell, embedding_size=64, hidden_size=hidden))
        optimizer = make_optimizer(model, TrainConfig())
        x = torch.randint(vocab_size, (batch_size, seq_len))
        hidden_state = None
        _, _, hidden_state = train_step(model, optimizer, x, x, hidden_state, None, 1.0)  # warm-up
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or steps < 2:
            _, _, hidden_state = train_step(model, optimizer, x, x, hidden_state, None, 1.0)
            steps += 1
        return steps * batch_size * seq_len / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
