"""One-token-at-a-time inference for sampling, with compiled cell kernels (charrnn.sampling.kernels).

Calling nn.LSTM for one time step costs ~3 ms on a CPU (oneDNN builds its primitive on every call), and a step
written as NumPy calls spends as long in the calls as in the arithmetic. Here a whole step is one compiled call.
The first layer's input projection is folded into a (vocab, gates) lookup table, since its input is always one
embedding row. The other matrices are kept in bfloat16 where the CPU has a bfloat16 dot product (charrnn.sampling.bf16),
else in half precision: a step reads every weight once, and half the bytes is ~1.4x the speed. Shipped
checkpoints store bfloat16, which float16 holds exactly (it has more mantissa bits) down to ~6e-5 in magnitude;
weights trained in float32 move by at most 1 part in 2,048 in float16, 1 in 256 in bfloat16.

No torch is imported here: a Stepper is built from a model or from a checkpoint's arrays (Stepper.from_arrays,
charrnn.checkpoint.arrays), so a short `charrnn sample` runs without torch; converting a hidden state to torch's
layout imports it.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from charrnn.config import ModelConfig
from charrnn.sampling import bf16, kernels, tiles

if TYPE_CHECKING:
    import torch

    from charrnn.model import CharRNN, Hidden

# Hidden state here: one (S, B, H) float32 array, each layer's h and then (LSTM) each layer's c: nn.LSTM's
# (h, c) stacked, or nn.RNN/GRU's h.
NumpyHidden = np.ndarray


HALF_MAX = 65504.0  # largest finite float16


def _f32(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().float().cpu().numpy())


PRECISIONS = ("auto", "bf16", "half", "float32")  # of the matrices the stepper keeps; see Stepper
SPLIT_ROWS = 8  # a step of at least this many rows is shared between threads, when the Stepper has more than one
_pool: ThreadPoolExecutor | None = None  # the threads that share such steps, one per core, made on first use


def _shared(rows: int, threads: int) -> list[tuple[int, int]]:
    """(start, end) of each thread's rows: whole tiles of the kernels' batch rows each, as even as they go."""
    tiles_count = -(-rows // tiles.TILE_BATCH)
    bounds = [round(i * tiles_count / threads) * tiles.TILE_BATCH for i in range(threads + 1)]
    return [(start, min(end, rows)) for start, end in zip(bounds, bounds[1:]) if start < min(end, rows)]


def kernel_choice() -> str:
    """The sampling kernels this CPU gets, in words (`charrnn bench` prints it): the vector instructions numba
    compiles for, the tile shape of the matrix products, and the precision "auto" picks for the matrices."""
    features = tiles.target_features()
    isa = "AVX-512" if tiles.WIDE else "AVX2" if "avx2" in features else "NEON" if "neon" in features else "generic"
    precision = "bfloat16 (AVX512-BF16)" if bf16.SUPPORTED else "half precision widened to float32"
    return (f"{isa}: products in tiles of 4 weight rows x {tiles.TILE_BATCH} batch rows of {tiles.LANES}-float "
            f"vectors; matrices in {precision}")


class StateLayout:
    """The hidden-state layout every stepper shares: (S, B, H), each layer's h and then (LSTM) each layer's c.
    Needs `cell`, `num_layers` and `hidden_size`; `compiled` says whether the step runs on the compiled kernels,
    `draw_compiled` whether the tokens are drawn by the compiled draw (kernels.sample_tokens)."""

    cell: str
    num_layers: int
    hidden_size: int
    compiled = True
    draw_compiled = True

    @property
    def state_size(self) -> int:
        """S of the (S, B, H) hidden state."""
        return 2 * self.num_layers if self.cell == "lstm" else self.num_layers

    def zero_state(self, rows: int) -> NumpyHidden:
        return np.zeros((self.state_size, rows, self.hidden_size), np.float32)

    def to_numpy(self, hidden: Hidden) -> NumpyHidden:
        tensors = hidden if isinstance(hidden, tuple) else (hidden,)
        return np.ascontiguousarray(np.concatenate([_f32(t) for t in tensors]))

    def to_torch(self, hidden: NumpyHidden | torch.Tensor) -> Hidden:
        """nn.RNN/GRU/LSTM's layout of a state (S, B, H): an array becomes CPU tensors, a tensor stays where it is."""
        import torch

        if not isinstance(hidden, torch.Tensor):
            hidden = torch.from_numpy(np.ascontiguousarray(hidden))
        layers = self.num_layers
        return (hidden[:layers], hidden[layers:]) if self.cell == "lstm" else hidden


class Stepper(StateLayout):
    """Advances a CharRNN by one token: step(tokens (B,), hidden (S, B, H)) -> (logits (B, V), hidden).

    Weights are copied to NumPy arrays once; the model is left untouched. `precision` is that of the matrices:
    "bf16" (bfloat16, where the CPU has AVX512-BF16: its dot-product instruction does twice the work of a float32
    FMA, and the activations going into each product are rounded to bfloat16), "half" (float16, widened to float32
    in registers; used only when every value fits), "float32", or "auto": the first of those this machine and
    these weights allow. to_numpy/to_torch convert hidden states from and to nn.RNN/GRU/LSTM's layout, so a
    prompt can go through the fused kernel. `threads`: how many threads may share a big batch's step (see `step`);
    1 where the caller runs its own threads (the batching engine has one worker per core).
    """

    def __init__(self, model: CharRNN, precision: str = "auto", threads: int = 1):
        self.threads = threads
        self._build(model.config, {name: _f32(t) for name, t in model.state_dict().items()}, precision)

    @classmethod
    def from_arrays(cls, config: ModelConfig, arrays: dict[str, np.ndarray], precision: str = "auto",
                    threads: int = 1) -> Stepper:
        """A Stepper of the model whose state_dict, as float32 arrays, is `arrays` (charrnn.checkpoint.arrays)."""
        stepper = cls.__new__(cls)
        stepper.threads = threads
        stepper._build(config, arrays, precision)
        return stepper

    def _build(self, config: ModelConfig, arrays: dict[str, np.ndarray], precision: str) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if precision == "bf16" and not bf16.SUPPORTED:
            raise ValueError("bf16 sampling needs a CPU with AVX512-BF16; use precision 'half' or 'auto'")
        self.cell = config.cell
        self.num_layers, self.hidden_size = config.num_layers, config.hidden_size
        weights = {name.removeprefix("rnn."): values for name, values in arrays.items() if name.startswith("rnn.")}
        layers = range(self.num_layers)
        b_ih = np.stack([weights[f"bias_ih_l{k}"] for k in layers])
        b_hh = np.stack([weights[f"bias_hh_l{k}"] for k in layers])
        if self.cell == "gru":
            self.b_in = b_ih
            self.b_hh = b_hh  # the GRU's reset gate scales W_hn h + b_hn, so b_hh stays on the hidden side
        else:
            self.b_in = b_ih + b_hh  # LSTM and RNN just add both biases
            self.b_hh = self.b_in  # unused by their kernels; one array type for every cell
        # Layer 0's input projection for every token at once: (V, E) @ (E, G) + b -> (V, G).
        self.input_table = np.ascontiguousarray(arrays["embedding.weight"] @ weights["weight_ih_l0"].T
                                                + self.b_in[0])
        hidden_size, gates = config.hidden_size, self.b_in.shape[1]
        # The upper layers' input matrices, stacked; layer 0 has none (its input came from the table).
        w_ih = [weights[f"weight_ih_l{k}"] for k in layers][1:]
        self.w_ih = np.stack(w_ih) if w_ih else np.zeros((0, gates, hidden_size), np.float32)
        self.w_hh = np.stack([weights[f"weight_hh_l{k}"] for k in layers])
        self.head_w = np.ascontiguousarray(arrays["head.weight"], np.float32)
        self.head_b = np.ascontiguousarray(arrays["head.bias"], np.float32)
        matrices = [self.w_ih, self.w_hh, self.head_w]
        fits_half = all(np.abs(m).max(initial=0.0) < HALF_MAX for m in matrices)
        if precision == "auto":
            precision = "bf16" if bf16.SUPPORTED else "half" if fits_half else "float32"
        elif precision == "half" and not fits_half:
            precision = "float32"
        self.precision = precision
        to_bits = {"bf16": bf16.to_bf16_bits, "half": tiles.to_half_bits}.get(precision)
        if to_bits:
            self.w_ih, self.w_hh, self.head_w = (to_bits(m) for m in matrices)
        self._no_rows = np.zeros((0, self.w_hh.shape[-1]), self.w_hh.dtype)

    def read(self, ids: np.ndarray) -> NumpyHidden:
        """The hidden state (S, 1, H) after reading `ids` from the zero state, one step per token."""
        hidden = self.zero_state(1)
        for token in np.asarray(ids, dtype=np.int64).reshape(-1, 1):
            _, hidden = self.step(token, hidden)
        return hidden

    def step(self, tokens: np.ndarray, hidden: NumpyHidden) -> tuple[np.ndarray, NumpyHidden]:
        """One compiled call for the whole step, or, for a batch of at least SPLIT_ROWS rows and `threads` > 1,
        one per thread on its share of the rows at once (the kernels release the GIL, and a row's result does not
        depend on the rows beside it: the same bits either way). New arrays are returned; the state passed in is
        left as it was (it may be a view, e.g. some rows of a larger batch)."""
        tokens = np.ascontiguousarray(tokens, dtype=np.int64)
        threads = min(self.threads, os.cpu_count() or 1)
        if threads < 2 or len(tokens) < SPLIT_ROWS:
            return self._step(tokens, np.ascontiguousarray(hidden, dtype=np.float32))
        global _pool
        if _pool is None:
            _pool = ThreadPoolExecutor(os.cpu_count(), thread_name_prefix="charrnn-step")
        shares = _shared(len(tokens), threads)
        parts = list(_pool.map(lambda rows: self._step(tokens[rows[0]:rows[1]], np.ascontiguousarray(
            hidden[:, rows[0]:rows[1]], dtype=np.float32)), shares))
        return np.concatenate([logits for logits, _ in parts]), np.concatenate([state for _, state in parts], axis=1)

    def _step(self, tokens: np.ndarray, state: NumpyHidden) -> tuple[np.ndarray, NumpyHidden]:
        new_state = np.empty_like(state)
        logits = np.empty((len(tokens), len(self.head_b)), np.float32)
        kernels.stack_step(kernels.CELL_CODES[self.cell], tokens, self.input_table, self._no_rows, self.w_ih,
                           self.w_hh, self.b_in, self.b_hh, self.head_w, self.head_b, state, new_state, logits)
        return logits, new_state
