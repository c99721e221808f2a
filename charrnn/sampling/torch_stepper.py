"""A step of the model in torch, for the runs before the compiled kernels exist (see warm.py): the Stepper's
interface and hidden-state layout, and a token draw that runs the compiled draw's own code as Python."""

from __future__ import annotations

import numpy as np
import torch

from charrnn.model import CharRNN
from charrnn.sampling import kernels
from charrnn.sampling.stepper import NumpyHidden


class TorchStepper:
    """step(tokens (B,), hidden (S, B, H)) -> (logits (B, V), hidden), as Stepper, with the model's own layers."""

    compiled = False

    def __init__(self, model: CharRNN):
        self.model = model
        self.cell, self.num_layers = model.config.cell, model.config.num_layers
        self.hidden_size = model.config.hidden_size

    @property
    def state_size(self) -> int:
        return 2 * self.num_layers if self.cell == "lstm" else self.num_layers

    def to_numpy(self, hidden) -> NumpyHidden:
        tensors = hidden if isinstance(hidden, tuple) else (hidden,)
        return np.ascontiguousarray(np.concatenate([t.detach().float().numpy() for t in tensors]))

    def to_torch(self, hidden: NumpyHidden):
        h = torch.from_numpy(np.ascontiguousarray(hidden[:self.num_layers]))
        c = torch.from_numpy(np.ascontiguousarray(hidden[self.num_layers:]))
        return (h, c) if self.cell == "lstm" else h

    @torch.no_grad()
    def read(self, ids: np.ndarray) -> NumpyHidden:
        """The hidden state (S, 1, H) after reading `ids` from the zero state."""
        ids = np.asarray(ids, dtype=np.int64).reshape(1, -1)
        if ids.shape[1] == 0:
            return np.zeros((self.state_size, 1, self.hidden_size), np.float32)
        was_training = self.model.training
        self.model.eval()
        try:
            _, hidden, _ = self.model(torch.from_numpy(ids), None)
        finally:
            self.model.train(was_training)
        return self.to_numpy(hidden)

    @torch.no_grad()
    def step(self, tokens: np.ndarray, hidden: NumpyHidden) -> tuple[np.ndarray, NumpyHidden]:
        was_training, threads = self.model.training, torch.get_num_threads()
        self.model.eval()
        # One thread: a step's products are too small to share, and the compiling process has another core (with
        # more threads than free cores, torch's threads spin waiting for each other at every step).
        torch.set_num_threads(1)
        try:
            tokens = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64)).reshape(-1, 1)
            logits, new_hidden, _ = self.model(tokens, self.to_torch(hidden))
        finally:
            self.model.train(was_training)
            torch.set_num_threads(threads)
        return np.ascontiguousarray(logits[:, -1].float().numpy()), self.to_numpy(new_hidden)


def sample_tokens_uncompiled(logits, temperature, top_k, top_p, banned, uniforms, tokens) -> None:
    """kernels.sample_tokens, with the same arguments, run as Python (the draw's code is plain NumPy and math)."""
    probs = np.empty(logits.shape[1], np.float64)
    for b in range(logits.shape[0]):
        if not kernels.filtered_probabilities.py_func(logits[b], temperature[b], top_k[b], top_p[b], banned[b],
                                                      probs):
            tokens[b] = -1
            continue
        cumulative = np.cumsum(probs)  # summed in order, as the kernel sums
        target = uniforms[b] * cumulative[-1]
        kept = np.flatnonzero(probs > 0)
        above = kept[cumulative[kept] > target]  # the first token whose running sum passes the target
        token = int(above[0]) if len(above) else int(kept[-1])
        tokens[b] = token
