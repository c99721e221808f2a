"""How fast the trainer's own step runs here for a model of a given size: what the recipe (recipe.py) sizes a
--time-budget run from. A few steps of each shape, at the run's batch, sequence length and precision, with the
moving average, on random characters: speed does not depend on the text."""

from __future__ import annotations

import dataclasses
import math
import statistics
import time

import torch

from charrnn.config import ModelConfig, TrainConfig
from charrnn.errors import CharRNNError
from charrnn.train.build import build_model, check_fits, make_optimizer
from charrnn.train.recipe import LAYERS, MAX_HIDDEN, MIN_HIDDEN, Recipe, largest, sized
from charrnn.train.step import MovingAverage, to_device, train_step

WARMUP_STEPS = 2  # oneDNN, cuDNN and the allocator prepare on the first steps of a shape


def probe_seconds(budget_seconds: float) -> float:
    """Time for the measured steps of one shape: enough to average out a noisy machine's jitter, a small part of
    the budget."""
    return min(2.0, max(0.1, budget_seconds / 300))


def step_speed(cfg: TrainConfig, hidden: int, vocab_size: int, device: torch.device, amp_dtype, rows: int,
               seconds: float) -> float:
    """Training characters per second (the whole batch, all processes) of a LAYERS x `hidden` model here."""
    model = build_model(dataclasses.replace(cfg, layers=LAYERS, hidden=hidden, params=None), vocab_size, device)
    model.to(device).train()
    optimizer = make_optimizer(model, cfg)
    average = MovingAverage(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    x = torch.randint(vocab_size, (rows, cfg.seq_len))
    state = {"hidden": None, "loss": None}

    def step():
        state["loss"], _, state["hidden"] = train_step(model, optimizer, to_device(x, device), to_device(x, device),
                                                       state["hidden"], amp_dtype, cfg.clip, scaler=scaler)
        if average is not None:
            average.update_parameters(model)

    for _ in range(WARMUP_STEPS):
        step()
    state["loss"].item()  # the device has finished the warm-up steps
    # Timed in chunks, each ended by a read that waits for the device (a GPU runs behind the host), and the
    # median chunk taken: a machine shared with other work slows some chunks down many times over, and the run's
    # own speed is the one it has when it gets the machine.
    per_chunk = 1 if device.type == "cpu" else 8
    chunks, start = [], time.perf_counter()
    while len(chunks) < 3 or time.perf_counter() - start < seconds:
        chunk_start = time.perf_counter()
        for _ in range(per_chunk):
            step()
        state["loss"].item()
        chunks.append(time.perf_counter() - chunk_start)
    return per_chunk * cfg.batch_size * cfg.seq_len / statistics.median(chunks)


def largest_fitting(cfg: TrainConfig, vocab_size: int, device: torch.device) -> int:
    """The largest hidden size whose training fits in the device's memory (build.check_fits), up to MAX_HIDDEN."""
    def fitting(hidden: float) -> bool:
        config = ModelConfig(vocab_size=vocab_size, cell=cfg.cell, embedding_size=cfg.embedding,
                             hidden_size=int(hidden), num_layers=LAYERS)
        try:
            check_fits(config, cfg.batch_size, cfg.seq_len, device)
        except CharRNNError:
            return False
        return True

    return int(largest(fitting, MIN_HIDDEN, MAX_HIDDEN))


def measured_recipe(cfg: TrainConfig, corpus_chars: int, vocab_size: int, device: torch.device, amp_dtype,
                    rows: int) -> Recipe:
    """The recipe for this run, from the speeds of its step measured here. The measuring draws no random number
    from the run's generators, so the run trains as one given the chosen settings would."""
    budget = cfg.time_budget * 60
    max_chars = cfg.max_steps * cfg.batch_size * cfg.seq_len if cfg.max_steps else math.inf
    seconds = probe_seconds(budget)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return sized(budget, corpus_chars,
                     lambda hidden: step_speed(cfg, hidden, vocab_size, device, amp_dtype, rows, seconds),
                     cfg.cell, vocab_size, cfg.embedding, max_chars, largest_fitting(cfg, vocab_size, device))
