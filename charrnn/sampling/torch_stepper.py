"""A step of the model in torch, for the runs before the compiled kernels exist (see warm.py): the Stepper's
interface and hidden-state layout, and a token draw that runs the compiled draw's own code as Python."""

from __future__ import annotations

import threading

import numpy as np
import torch

from charrnn.model import CharRNN
from charrnn.sampling.kernels import sample_tokens_uncompiled  # noqa: F401 (re-exported)
from charrnn.sampling.stepper import NumpyHidden, StateLayout


class TorchStepper(StateLayout):
    """step(tokens (B,), hidden (S, B, H)) -> (logits (B, V), hidden), as Stepper, with the model's own layers. A
    prompt is read by torch in one pass (generate.read_prompt), so there is no step-by-step `read` here."""

    compiled = False
    _threads_lock = threading.Lock()  # torch's thread count is the process's: the engine's workers take turns

    def __init__(self, model: CharRNN):
        self.model = model
        self.cell, self.num_layers = model.config.cell, model.config.num_layers
        self.hidden_size = model.config.hidden_size

    @torch.no_grad()
    def step(self, tokens: np.ndarray, hidden: NumpyHidden) -> tuple[np.ndarray, NumpyHidden]:
        with self._threads_lock:
            return self._step(tokens, hidden)

    def _step(self, tokens: np.ndarray, hidden: NumpyHidden) -> tuple[np.ndarray, NumpyHidden]:
        was_training, threads = self.model.training, torch.get_num_threads()
        onednn = torch.backends.mkldnn.enabled
        self.model.eval()
        # One thread: a step's products are too small to share, and the compiling process has another core (with
        # more threads than free cores, torch's threads spin waiting for each other at every step). Without
        # oneDNN: its recurrent layers prepare the weights at every call, which costs a one-token step several
        # times its arithmetic (docs/benchmarks.md).
        torch.set_num_threads(1)
        torch.backends.mkldnn.enabled = False
        try:
            tokens = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64)).reshape(-1, 1)
            logits, new_hidden, _ = self.model(tokens, self.to_torch(hidden))
        finally:
            self.model.train(was_training)
            torch.set_num_threads(threads)
            torch.backends.mkldnn.enabled = onednn
        return np.ascontiguousarray(logits[:, -1].float().numpy()), self.to_numpy(new_hidden)
