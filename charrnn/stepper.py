"""One-token-at-a-time inference for sampling, as a few NumPy matrix-vector products.

Calling nn.LSTM for one time step costs ~3 ms on a CPU (oneDNN builds its primitive on every call), and
torch's own small-batch matmul is slow on AMD CPUs (MKL takes a generic path there); NumPy's OpenBLAS
matrix-vector product runs near the memory-bandwidth floor. The first layer's input projection is folded
into a (vocab, gates) lookup table, since its input is always one embedding row.
"""

from __future__ import annotations

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from charrnn.model import CharRNN, Hidden

# Hidden state here: a list of (B, H) float32 arrays per layer ([h..., c...] for LSTM).
NumpyHidden = list[np.ndarray]


_blas_limited = False


def _use_one_blas_thread() -> None:
    """A matrix-vector product is too small to share between cores: with more BLAS threads, several streams
    (or a training run) on the same CPU leave threads spinning at barriers and sampling drops to ~100
    chars/s. OpenBLAS's thread count is process-wide, so this is set once, for the process."""
    global _blas_limited
    if not _blas_limited:
        threadpool_limits(limits=1, user_api="blas")
        _blas_limited = True


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(0.5 * x) + 0.5  # exact identity, and faster than 1 / (1 + exp(-x))


def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """x (B, in) @ weight(out, in).T + bias. OpenBLAS's gemm is slow for a few rows, gemv is fast: loop."""
    if len(x) == 1:
        out = (weight @ x[0])[None]
    else:
        out = np.stack([weight @ row for row in x]) if len(x) <= 16 else x @ weight.T
    return out if bias is None else out + bias


class Stepper:
    """Advances a CharRNN by one token: step(tokens (B,), hidden) -> (logits (B, V), hidden).

    Weights are copied to float32 NumPy arrays once; the model is left untouched. to_numpy/to_torch
    convert hidden states from and to nn.RNN/GRU/LSTM's layout, so a prompt can go through the fused kernel.
    """

    def __init__(self, model: CharRNN):
        _use_one_blas_thread()
        config = model.config
        self.cell = config.cell
        self.num_layers = config.num_layers
        weights = {name: p.detach().float().numpy().copy() for name, p in model.rnn.named_parameters()}
        embedding = model.embedding.weight.detach().float().numpy()
        self.w_ih = [weights[f"weight_ih_l{k}"] for k in range(self.num_layers)]
        self.b_ih = [weights[f"bias_ih_l{k}"] for k in range(self.num_layers)]
        self.w_hh = [weights[f"weight_hh_l{k}"] for k in range(self.num_layers)]
        self.b_hh = [weights[f"bias_hh_l{k}"] for k in range(self.num_layers)]
        if self.cell != "gru":
            # LSTM and plain RNN add both biases, so fold b_hh into the input side once.
            self.b_ih = [b_ih + b_hh for b_ih, b_hh in zip(self.b_ih, self.b_hh)]
            self.b_hh = [None] * self.num_layers
        # Above layer 0, LSTM and RNN take [x, h] through one matrix: one matrix-vector product per layer.
        self.w_cat = [None] + [np.ascontiguousarray(np.concatenate([self.w_ih[k], self.w_hh[k]], axis=1))
                               for k in range(1, self.num_layers)] if self.cell != "gru" else None
        # Layer 0's input projection for every token at once: (V, E) @ (E, G) + b -> (V, G).
        self.input_table = embedding @ self.w_ih[0].T + self.b_ih[0]
        self.head_w = model.head.weight.detach().float().numpy().copy()
        self.head_b = model.head.bias.detach().float().numpy().copy()

    def to_numpy(self, hidden: Hidden) -> NumpyHidden:
        tensors = hidden if isinstance(hidden, tuple) else (hidden,)
        return [layer.detach().float().cpu().numpy().copy() for t in tensors for layer in t]

    def to_torch(self, hidden: NumpyHidden) -> Hidden:
        layers = self.num_layers
        h = torch.from_numpy(np.stack(hidden[:layers]))
        return (h, torch.from_numpy(np.stack(hidden[layers:]))) if self.cell == "lstm" else h

    def _all_gates(self, layer: int, x: np.ndarray, h: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """x W_ih^T + h W_hh^T + biases, for LSTM and plain RNN."""
        if layer == 0:
            return self.input_table[tokens] + _linear(h, self.w_hh[0])
        return _linear(np.concatenate([x, h], axis=1), self.w_cat[layer], self.b_ih[layer])

    def _input_gates(self, layer: int, x: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        if layer == 0:
            return self.input_table[tokens]  # (B, G)
        return _linear(x, self.w_ih[layer], self.b_ih[layer])  # (B, G)

    def step(self, tokens: np.ndarray, hidden: NumpyHidden) -> tuple[np.ndarray, NumpyHidden]:
        x = None
        layers = self.num_layers
        new_hidden = list(hidden)
        for layer in range(layers):
            h = hidden[layer]
            if self.cell == "lstm":
                gates = self._all_gates(layer, x, h, tokens)
                size = h.shape[1]
                sig = _sigmoid(gates)  # one pass over all four gates; the cell candidate g uses tanh below
                i, f, o = sig[:, :size], sig[:, size:2 * size], sig[:, 3 * size:]
                c = f * hidden[layers + layer] + i * np.tanh(gates[:, 2 * size:3 * size])
                x = o * np.tanh(c)
                new_hidden[layers + layer] = c
            elif self.cell == "gru":
                gi_r, gi_z, gi_n = np.split(self._input_gates(layer, x, tokens), 3, axis=1)
                gh_r, gh_z, gh_n = np.split(_linear(h, self.w_hh[layer], self.b_hh[layer]), 3, axis=1)
                r = _sigmoid(gi_r + gh_r)
                z = _sigmoid(gi_z + gh_z)
                n = np.tanh(gi_n + r * gh_n)
                x = n + z * (h - n)  # = (1 - z) * n + z * h
            else:
                pre = self._all_gates(layer, x, h, tokens)
                x = np.tanh(pre) if self.cell == "rnn_tanh" else np.maximum(pre, 0.0)
            new_hidden[layer] = x
        logits = _linear(x, self.head_w, self.head_b)  # (B, V)
        return logits, new_hidden
