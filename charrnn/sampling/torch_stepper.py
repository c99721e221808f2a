"""A step of the model in torch, with the Stepper's interface and hidden-state layout: on the CPU for the runs before
the compiled kernels exist (see warm.py), with a token draw that runs the compiled draw's own code as Python; and on a
GPU, where many samples at once step faster than on the CPU (charrnn.device.sampling_device)."""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import torch

from charrnn.device import one_torch_thread
from charrnn.model import CharRNN
from charrnn.sampling.kernels import sample_tokens_uncompiled  # noqa: F401 (re-exported)
from charrnn.sampling.stepper import NumpyHidden, StateLayout


class TorchStepper(StateLayout):
    """step(tokens (B,), hidden (S, B, H)) -> (logits (B, V), hidden), as Stepper, with the model's own layers on the
    model's device. A prompt is read by torch in one pass (generate.read_prompt), so there is no step-by-step `read`
    here. On a GPU the hidden state it returns is a tensor that stays there, and `step` takes it back as it is: only
    the logits come to the host, for the draw. `draw_compiled`: draw with the compiled kernel (once it is cached)."""

    compiled = False
    # oneDNN's switch is the process's, and so is the model's train/eval mode: the engine's workers take turns
    _threads_lock = threading.Lock()

    def __init__(self, model: CharRNN, draw_compiled: bool = False):
        self.model = model
        self.device = next(model.parameters()).device
        self.draw_compiled = draw_compiled
        self.cell, self.num_layers = model.config.cell, model.config.num_layers
        self.hidden_size = model.config.hidden_size

    @torch.no_grad()
    def step(self, tokens: np.ndarray, hidden: NumpyHidden | torch.Tensor) -> tuple[np.ndarray,
                                                                                   NumpyHidden | torch.Tensor]:
        with self._threads_lock:
            return self._step(tokens, hidden)

    def _step(self, tokens: np.ndarray, hidden: NumpyHidden | torch.Tensor) -> tuple[np.ndarray,
                                                                                    NumpyHidden | torch.Tensor]:
        was_training, onednn = self.model.training, torch.backends.mkldnn.enabled
        on_cpu = self.device.type == "cpu"
        self.model.eval()
        # On the CPU, one thread: a step's products are too small to share, and the compiling process has another
        # core. And no oneDNN: its recurrent layers prepare the weights at every call, which costs a one-token step
        # several times its arithmetic (docs/benchmarks.md).
        with one_torch_thread() if on_cpu else contextlib.nullcontext():
            torch.backends.mkldnn.enabled = onednn and not on_cpu
            try:
                tokens = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64)).reshape(-1, 1).to(self.device)
                if not isinstance(hidden, torch.Tensor):
                    hidden = torch.from_numpy(np.ascontiguousarray(hidden, dtype=np.float32)).to(self.device)
                logits, new_hidden, _ = self.model(tokens, self.to_torch(hidden))  # (B, 1, V)
            finally:
                self.model.train(was_training)
                torch.backends.mkldnn.enabled = onednn
        logits = np.ascontiguousarray(logits[:, -1].float().cpu().numpy())  # a GPU's one wait per step
        if on_cpu:
            return logits, self.to_numpy(new_hidden)
        return logits, torch.cat(new_hidden) if isinstance(new_hidden, tuple) else new_hidden  # (S, B, H)
