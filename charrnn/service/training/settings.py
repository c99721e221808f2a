"""What a person chooses for a training job in the Train tab, checked value by value.

The settings are a subset of `charrnn train`'s (TrainConfig): their defaults are TrainConfig's, and each job's
settings are checked by TrainConfig.validate() too. Where the app differs, it says why (APP_DEFAULTS and the
host's upper bounds below).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from charrnn.cells import CELLS
from charrnn.config import CPU_BATCH_SIZE, TOKENIZERS, TrainConfig, default_of, parse_count
from charrnn.errors import check
from charrnn.service import inputs
from charrnn.service.training.limits import TrainLimits

SIZE_PRESETS = {"tiny": 200_000, "small": 800_000, "medium": 3_000_000}  # parameters
# The size `charrnn train --time-budget` chooses for the minutes and this host (charrnn/train/recipe.py): the job
# gives the trainer neither a size nor a dropout, and the recipe chooses both.
AUTO_SIZE = "auto"
SIZES = (AUTO_SIZE, *SIZE_PRESETS, "custom")
# Where the app's defaults differ from `charrnn train`'s: a person's text is usually far smaller than a corpus,
# and a model of a small text overfits within minutes, so the tab starts with more dropout.
APP_DEFAULTS = {"dropout": 0.2}
# Upper bounds a public host puts on one visitor's job (memory and time), tighter than what TrainConfig accepts;
# the lower bounds are TrainConfig's own.
HOST_MAX = {"dropout": 0.9, "lr": 0.1, "batch_size": 512, "seq_len": 1024}
MIN_LR = 1e-5  # below this a few minutes of training change nothing: the tab refuses it rather than waste a job


@dataclass(frozen=True)
class JobSettings:
    """What a person chooses for a job. `params` is used with size "custom", `dropout` with any size but "auto"."""

    name: str = "my-model"
    cell: str = default_of(TrainConfig, "cell")
    size: str = "small"
    params: str | None = None
    minutes: float = 3
    dropout: float = APP_DEFAULTS["dropout"]
    lr: float = default_of(TrainConfig, "lr")
    batch_size: int = CPU_BATCH_SIZE  # TrainConfig's default on a CPU (its own default, None, means "by device")
    seq_len: int = default_of(TrainConfig, "seq_len")
    tokenizer: str = default_of(TrainConfig, "tokenizer")

    def checked(self, limits: TrainLimits) -> "JobSettings":
        """The same settings with every value checked (values arrive raw from the page or the API)."""
        name = inputs.text(self.name, "the model name", 40, allow_empty=False).strip()
        check(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.-]*", name) is not None and ".." not in name,
              f"the model name {name!r} may hold only letters, digits, spaces, '_', '-' and '.' (no '/' or '..'), "
              "and must start with a letter or digit")
        size = inputs.choice(self.size, "the size", SIZES)
        params = None
        if size == "custom":
            params = inputs.text(self.params, "the parameter count", 20, allow_empty=False)
            count = parse_count(params)
            check(10_000 <= count <= 50_000_000, f"the parameter count must be between 10k and 50M, got {params}")
        settings = JobSettings(
            name=name,
            cell=inputs.choice(self.cell, "the cell", CELLS),
            size=size, params=params,
            minutes=inputs.number(self.minutes, "the minutes of training", 0.1, limits.max_minutes),
            dropout=inputs.number(self.dropout, "the dropout", 0, HOST_MAX["dropout"]),
            lr=inputs.number(self.lr, "the learning rate", MIN_LR, HOST_MAX["lr"]),
            batch_size=inputs.integer(self.batch_size, "the batch size", 1, HOST_MAX["batch_size"]),
            seq_len=inputs.integer(self.seq_len, "the sequence length", 2, HOST_MAX["seq_len"]),
            tokenizer=inputs.choice(self.tokenizer, "the tokenizer", TOKENIZERS))
        settings.train_config(["text.txt"]).validate()  # the trainer's own checks, so the two never disagree
        return settings

    def train_config(self, dataset: list[str], **run) -> TrainConfig:
        """The `charrnn train` settings of a job on `dataset`, with `run`'s other TrainConfig fields."""
        params = None if self.param_budget is None else str(self.param_budget)
        return TrainConfig(dataset=dataset, cell=self.cell, params=params, dropout=self.dropout,
                           lr=self.lr, batch_size=self.batch_size, seq_len=self.seq_len, tokenizer=self.tokenizer,
                           **run)

    @property
    def param_budget(self) -> int | None:
        """The parameters of the chosen size (None with "auto": the trainer's recipe chooses)."""
        if self.size == AUTO_SIZE:
            return None
        return parse_count(self.params) if self.size == "custom" else SIZE_PRESETS[self.size]

    @property
    def left_to_recipe(self) -> tuple[str, ...]:
        """The TrainConfig fields a job of this size leaves out of its command line, for the recipe to choose."""
        return ("params", "dropout") if self.size == AUTO_SIZE else ()
