"""One-token-at-a-time inference for sampling, with compiled cell kernels (charrnn.kernels).

Calling nn.LSTM for one time step costs ~3 ms on a CPU (oneDNN builds its primitive on every call), and a step
written as NumPy calls spends as long in the calls as in the arithmetic. Here each layer is one compiled call.
The first layer's input projection is folded into a (vocab, gates) lookup table, since its input is always one
embedding row. The other matrices are kept in half precision by default: a step reads every weight once, and
half the bytes is ~1.4x the speed. Shipped checkpoints store bfloat16, which float16 holds exactly (it has more
mantissa bits) down to ~6e-5 in magnitude; weights trained in float32 move by at most 1 part in 2,048.
"""

from __future__ import annotations

import numpy as np
import torch

from charrnn import kernels
from charrnn.model import CharRNN, Hidden

# Hidden state here: a list of (B, H) float32 arrays per layer ([h..., c...] for LSTM).
NumpyHidden = list[np.ndarray]


HALF_MAX = 65504.0  # largest finite float16


def _f32(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().float().cpu().numpy())


class Stepper:
    """Advances a CharRNN by one token: step(tokens (B,), hidden) -> (logits (B, V), hidden).

    Weights are copied to NumPy arrays once (matrices as float16 when `half` and every value fits, else
    float32); the model is left untouched. to_numpy/to_torch convert hidden states from and to
    nn.RNN/GRU/LSTM's layout, so a prompt can go through the fused kernel.
    """

    def __init__(self, model: CharRNN, half: bool = True):
        config = model.config
        self.cell = config.cell
        self.num_layers = config.num_layers
        weights = {name: _f32(p) for name, p in model.rnn.named_parameters()}
        layers = range(self.num_layers)
        self.w_ih = [weights[f"weight_ih_l{k}"] for k in layers]
        self.w_hh = [weights[f"weight_hh_l{k}"] for k in layers]
        b_ih = [weights[f"bias_ih_l{k}"] for k in layers]
        b_hh = [weights[f"bias_hh_l{k}"] for k in layers]
        if self.cell == "gru":
            self.b_hh = b_hh  # the GRU's reset gate scales W_hn h + b_hn, so b_hh stays on the hidden side
            self.b_in = b_ih
        else:
            self.b_in = [a + b for a, b in zip(b_ih, b_hh)]  # LSTM and RNN just add both biases
        # Layer 0's input projection for every token at once: (V, E) @ (E, G) + b -> (V, G).
        self.input_table = np.ascontiguousarray(_f32(model.embedding.weight) @ self.w_ih[0].T + self.b_in[0])
        self.w_ih[0] = np.zeros((0, self.w_ih[0].shape[1]), np.float32)  # the table already did layer 0's input
        self.head_w = _f32(model.head.weight)
        self.head_b = _f32(model.head.bias)
        matrices = [*self.w_ih, *self.w_hh, self.head_w]
        self.half = half and all(np.abs(m).max(initial=0.0) < HALF_MAX for m in matrices)
        if self.half:
            self.w_ih = [kernels.to_half_bits(w) for w in self.w_ih]
            self.w_hh = [kernels.to_half_bits(w) for w in self.w_hh]
            self.head_w = kernels.to_half_bits(self.head_w)
        self._bias_rows: dict[tuple[int, int], np.ndarray] = {}

    def to_numpy(self, hidden: Hidden) -> NumpyHidden:
        tensors = hidden if isinstance(hidden, tuple) else (hidden,)
        return [_f32(layer).copy() for t in tensors for layer in t]

    def to_torch(self, hidden: NumpyHidden) -> Hidden:
        layers = self.num_layers
        h = torch.from_numpy(np.stack(hidden[:layers]))
        return (h, torch.from_numpy(np.stack(hidden[layers:]))) if self.cell == "lstm" else h

    def _input_gates(self, layer: int, tokens: np.ndarray) -> np.ndarray:
        """(B, G): layer 0's looked-up input projection, or an upper layer's input bias repeated per row."""
        if layer == 0:
            return self.input_table[tokens]
        key = (layer, len(tokens))
        if key not in self._bias_rows:
            self._bias_rows[key] = np.ascontiguousarray(np.tile(self.b_in[layer], (len(tokens), 1)))
        return self._bias_rows[key]

    def step(self, tokens: np.ndarray, hidden: NumpyHidden) -> tuple[np.ndarray, NumpyHidden]:
        """New arrays are returned; the hidden state passed in is left as it was."""
        layers = self.num_layers
        batch = len(tokens)
        new_hidden = [np.empty_like(state) for state in hidden]
        x = hidden[0]  # layer 0 ignores x: its input came from the table
        for layer in range(layers):
            h, h_out = hidden[layer], new_hidden[layer]
            input_gates = self._input_gates(layer, tokens)
            width = input_gates.shape[1]
            if self.cell == "lstm":
                kernels.lstm_layer(input_gates, x, self.w_ih[layer], self.w_hh[layer], h, hidden[layers + layer],
                                   h_out, new_hidden[layers + layer], np.empty((batch, width), np.float32))
            elif self.cell == "gru":
                kernels.gru_layer(input_gates, x, self.w_ih[layer], self.w_hh[layer], self.b_hh[layer], h, h_out,
                                  np.empty((batch, width), np.float32), np.empty((batch, width), np.float32))
            else:
                kernels.rnn_layer(input_gates, x, self.w_ih[layer], self.w_hh[layer], h, h_out,
                                  np.empty((batch, width), np.float32), self.cell == "rnn_relu")
            x = h_out
        logits = np.empty((batch, len(self.head_b)), np.float32)
        kernels.linear(x, self.head_w, self.head_b, logits)
        return logits, new_hidden
