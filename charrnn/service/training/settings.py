"""What a person chooses for a training job in the Train tab, checked value by value."""

from __future__ import annotations

import re
from dataclasses import dataclass

from charrnn.config import CELLS, TOKENIZERS, parse_count
from charrnn.errors import check
from charrnn.service import inputs
from charrnn.service.training.limits import TrainLimits

SIZE_PRESETS = {"tiny": 200_000, "small": 800_000, "medium": 3_000_000}  # parameters


@dataclass(frozen=True)
class JobSettings:
    """What a person chooses for a job. `params` is used with size "custom"."""

    name: str = "my-model"
    cell: str = "lstm"
    size: str = "small"
    params: str | None = None
    minutes: float = 3
    dropout: float = 0.2
    lr: float = 3e-3
    batch_size: int = 16
    seq_len: int = 64
    tokenizer: str = "char"

    def checked(self, limits: TrainLimits) -> "JobSettings":
        """The same settings with every value checked (values arrive raw from the page or the API)."""
        name = inputs.text(self.name, "the model name", 40, allow_empty=False).strip()
        check(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.-]*", name) is not None and ".." not in name,
              f"the model name {name!r} may hold only letters, digits, spaces, '_', '-' and '.' (no '/' or '..'), "
              "and must start with a letter or digit")
        size = inputs.choice(self.size, "the size", (*SIZE_PRESETS, "custom"))
        params = None
        if size == "custom":
            params = inputs.text(self.params, "the parameter count", 20, allow_empty=False)
            count = parse_count(params)
            check(10_000 <= count <= 50_000_000, f"the parameter count must be between 10k and 50M, got {params}")
        return JobSettings(
            name=name,
            cell=inputs.choice(self.cell, "the cell", CELLS),
            size=size, params=params,
            minutes=inputs.number(self.minutes, "the minutes of training", 0.1, limits.max_minutes),
            dropout=inputs.number(self.dropout, "the dropout", 0, 0.9),
            lr=inputs.number(self.lr, "the learning rate", 1e-5, 0.1),
            batch_size=inputs.integer(self.batch_size, "the batch size", 1, 512),
            seq_len=inputs.integer(self.seq_len, "the sequence length", 2, 1024),
            tokenizer=inputs.choice(self.tokenizer, "the tokenizer", TOKENIZERS))

    @property
    def param_budget(self) -> int:
        return parse_count(self.params) if self.size == "custom" else SIZE_PRESETS[self.size]
