"""Sampling speed: charrnn's streaming sampler beside a naive loop that calls the model once per character."""

from __future__ import annotations

import time

import torch

from charrnn import service
from charrnn.bench.timing import synchronize
from charrnn.model import CharRNN
from charrnn.sampling.generate import SamplingSettings, stream
from charrnn.sampling.torch_stepper import TorchStepper
from charrnn.tokenizer import Tokenizer


def charrnn_sampling(model: CharRNN, tokenizer: Tokenizer, chars: int, samples: int = 1,
                     stepper: TorchStepper | None = None) -> float:
    """Characters per second, all samples together. The prompt goes through the model on its device; the steps
    run on the CPU's compiled kernels (charrnn.sampling.stepper), whatever the device, or on `stepper` (a
    TorchStepper on the model's GPU, as `charrnn sample` runs many samples there)."""
    settings = SamplingSettings(temperature=0.8)
    for _ in stream(model, tokenizer, "ROMEO:", 200, settings, seed=0, num_samples=samples, stepper=stepper):
        pass  # warm-up
    start = time.perf_counter()
    for _ in stream(model, tokenizer, "ROMEO:", chars, settings, seed=0, num_samples=samples, stepper=stepper):
        pass
    return chars * samples / (time.perf_counter() - start)


@torch.no_grad()
def naive_sampling(model: CharRNN, chars: int, samples: int = 1) -> float:
    """Call the fused nn.LSTM module on the model's device once per character, as most char-rnn ports do, and
    read each character back (a streaming sampler shows it as it is written). Characters per second, all
    samples together."""
    model.eval()
    device = next(model.parameters()).device
    tokens, hidden = torch.ones(samples, 1, dtype=torch.long, device=device), None
    generator = torch.Generator(device).manual_seed(0)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(chars):
        logits, hidden, _ = model(tokens, hidden)
        probs = torch.softmax(logits[:, -1] / 0.8, dim=-1)  # (samples, V)
        tokens = torch.multinomial(probs, 1, generator=generator)  # (samples, 1)
        tokens.tolist()
    return chars * samples / (time.perf_counter() - start)


def shipped_sampling(library: service.ModelLibrary, names: list[str], chars: int) -> dict:
    """Batch-1 chars/s of each shipped checkpoint, through the app's model library."""
    speeds = {}
    for name in names:
        loaded = library.load(name)
        speeds[name] = round(charrnn_sampling(loaded.checkpoint.model, loaded.checkpoint.tokenizer, chars))
    return speeds


def compare_streams(library: service.ModelLibrary, available: list[str], chars: int) -> dict | None:
    """The app's Compare tab, as it runs there: the shipped RNN, GRU and LSTM writing at the same time."""
    names = list(service.COMPARE_DEFAULT)
    if not set(names) <= set(available):
        return None
    for _ in service.compare_stream(library, names, "ROMEO:", 100):  # load and warm up
        pass
    for _, speeds in service.compare_stream(library, names, "ROMEO:", chars):
        pass
    return {name: round(speed) for name, speed in zip(names, speeds)}
