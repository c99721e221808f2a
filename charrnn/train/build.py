"""What a run is made of before its first step: the model (checked to fit in memory) and its optimizer."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from charrnn.cells import cell_info
from charrnn.config import ModelConfig, TrainConfig, count_params, hidden_size_for_params, parse_count
from charrnn.errors import CharRNNError
from charrnn.model import CharRNN

BYTES_PER_PARAM = 20  # float32 weights, gradients, AdamW's two moments and the moving average


def hardware_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model_name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model_name}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def memory_of(device: torch.device) -> int | None:
    """Total memory of the device in bytes (None when unknown)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(config: ModelConfig, batch_size: int, seq_len: int, device: torch.device) -> None:
    """Refuse, before allocating anything, a model whose training cannot fit in the device's memory."""
    params = count_params(config.cell, config.hidden_size, config.vocab_size, config.embedding_size,
                          config.num_layers, config.tie_weights)
    # Kept for backward, per character of the batch: each layer's gates, cell and output, the embedding, and
    # the logits with their softmax and gradient.
    per_char = config.num_layers * (cell_info(config.cell).weight_blocks + 2) * config.hidden_size + config.embedding_size
    needed = params * BYTES_PER_PARAM + batch_size * seq_len * (per_char + 3 * config.vocab_size) * 4
    available = memory_of(device)
    if available is not None and needed > available:
        raise CharRNNError(
            f"a {config.num_layers:,}-layer {config.cell} with hidden size {config.hidden_size:,} and embedding size "
            f"{config.embedding_size:,} has {params:,} parameters and needs about {needed / 2**30:,.1f} GiB to "
            f"train, more than the {available / 2**30:,.1f} GiB of this {device.type} device: lower --hidden, "
            f"--layers or --embedding (or --batch-size and --seq-len), or give a parameter budget such as "
            f"--params 3M")


def build_model(cfg: TrainConfig, vocab_size: int, device: torch.device) -> CharRNN:
    hidden = cfg.hidden
    if cfg.params:
        hidden = hidden_size_for_params(parse_count(cfg.params), cfg.cell, vocab_size, cfg.embedding, cfg.layers)
    config = ModelConfig(vocab_size=vocab_size, cell=cfg.cell, embedding_size=cfg.embedding, hidden_size=hidden,
                         num_layers=cfg.layers, dropout=cfg.dropout, input_dropout=cfg.input_dropout,
                         weight_drop=cfg.weight_drop, tie_weights=cfg.tie_weights)
    check_fits(config, cfg.batch_size, cfg.seq_len, device)
    return CharRNN(config)


def make_optimizer(model: CharRNN, cfg: TrainConfig) -> torch.optim.AdamW:
    # Decay weight matrices only; biases and embeddings are left alone (as nanoGPT does).
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not n.startswith("embedding")]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or n.startswith("embedding")]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel updates all parameters in one pass, several times faster than one kernel per parameter.
    fused = next(model.parameters()).device.type in ("cpu", "cuda")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99), fused=fused)
