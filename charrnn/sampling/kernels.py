"""Compiled single-step cell kernels for sampling (numba).

One token at a time, a 2 x 512 LSTM step is three matrix-vector products and a dozen element-wise operations
on 2,048-wide vectors. Done as separate NumPy calls, the calls themselves cost as much as the arithmetic (~1-3
us each); compiled, each layer is one call that reads its weights once, fuses the gate arithmetic, and
releases the GIL, so streams of several models (the Compare tab) run on separate cores at once.

A step reads every weight once, so at batch 1 its speed is set by how many bytes the weights take: matrices may
be given as IEEE half precision (float16 bit patterns in uint16 arrays, since numba has no float16 type), which
halves the bytes and converts to float32 in registers (charrnn.sampling.tiles), or, on CPUs with AVX512-BF16, as
bfloat16 (int16 arrays; charrnn.sampling.bf16), whose dot-product instruction does twice the work of a float32
FMA. Both products sum each row in an order that does not depend on the batch, on every CPU. Vectors, biases and
all other arithmetic are float32. Arrays are C-contiguous; weights keep PyTorch's layout (out_features,
in_features) and gate order (LSTM: i, f, g, o; GRU: r, z, n). Each kernel works on a batch of rows, writing into
`out` arrays.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from charrnn.sampling import jit_cache  # noqa: F401 - first: the kernels below are cached through it
from charrnn.cells import CELL_TABLE
from charrnn.sampling import bf16, tiles

# The cell kernels use fast-math without `nnan`/`ninf` (so not fastmath=True, LLVM's `fast`, which includes
# them): the flags let LLVM vectorize and fuse the gate arithmetic (the matrix products are compiled without
# them, so that their sums keep one order: charrnn.sampling.tiles), but a sigmoid's exp can overflow to inf, and
# with those two flags LLVM may assume no value is ever infinite or NaN. The draw masks with -inf and must notice NaN
# scores, and is cheap next to a step, so it uses exact IEEE arithmetic (an approximate reciprocal would also
# turn 0 / a tiny temperature into 0 * inf = NaN).
# error_model "numpy": a division by zero gives inf or NaN instead of raising, so numba adds no check and branch
# to every division, which kept the gate loops from being vectorized.
_JIT = dict(nogil=True, fastmath={"reassoc", "contract", "nsz", "arcp", "afn"}, cache=True, boundscheck=False,
            error_model="numpy")
# The draw keeps the GIL: it takes microseconds, and a thread that gives the GIL up must wait to get it back
# (up to the 5 ms switch interval while the server's event loop runs Python); with twenty callers drawing at
# every step, those waits cost more than the draws.
_EXACT = dict(nogil=False, cache=True, boundscheck=False)


def _matmul_add(weight, x, out):
    """out (B, out) += x (B, in) @ weight.T: the bfloat16 product (charrnn.sampling.bf16) for int16 weights, else
    the float32 and half-precision one (charrnn.sampling.tiles). Both sum in an order that does not depend on the
    batch. Compiled kernels only (see the overload below)."""
    raise NotImplementedError("_matmul_add is only callable from compiled kernels")


@overload(_matmul_add)
def _matmul_add_overload(weight, x, out):
    if weight.dtype == types.int16:
        return lambda weight, x, out: bf16.matmul_add(weight, x, out)
    return lambda weight, x, out: tiles.matmul_add(weight, x, out)


# The gates' sigmoid and tanh, written as arithmetic so that the gate loops vectorize: libm's expf and tanhf are
# calls that cannot (numba has no vector math library here), and as calls they took longer than the
# step's matrix products (an LSTM step: five per hidden unit). exp is 2^n * e^r with |r| <= ln(2)/2, by a
# degree-7 Taylor polynomial: relative error < 3e-7 over float32's range; tanh and sigmoid built on it are
# within 1e-7 of the exact values (tests/test_kernels.py). NaN stays NaN.

@intrinsic
def _float_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the int32 `bits`."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


_LOG2E = np.float32(1.4426950408889634)
_LN2_HIGH, _LN2_LOW = np.float32(0.693359375), np.float32(-2.12194440e-4)  # ln 2 in two parts: n * high is exact


@njit(**_JIT)
def _exp(x):
    clamped = np.minimum(np.maximum(x, np.float32(-87.0)), np.float32(88.0))  # np.: NaN passes through
    n = np.floor(clamped * _LOG2E + np.float32(0.5))
    r = clamped - n * _LN2_HIGH - n * _LN2_LOW
    taylor = np.float32(1.0 / 5040)
    for coefficient in (1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1.0, 1.0):
        taylor = taylor * r + np.float32(coefficient)
    return taylor * _float_from_bits((np.int32(n) + np.int32(127)) << np.int32(23))


@njit(**_JIT)
def _sigmoid(x):
    return np.float32(1.0) / (np.float32(1.0) + _exp(-x))


@njit(**_JIT)
def _tanh(x):
    small = _exp(np.float32(-2.0) * abs(x))  # tanh |x| = (1 - e^-2|x|) / (1 + e^-2|x|), never overflows
    return math.copysign((np.float32(1.0) - small) / (np.float32(1.0) + small), x)


@njit(**_JIT)
def linear(x, weight, bias, out):
    """out (B, out) = x (B, in) @ weight.T + bias."""
    for b in range(x.shape[0]):
        out[b, :] = bias
    _matmul_add(weight, x, out)


@njit(**_JIT)
def _input_side(input_gates, w_ih, x, out):
    """out = input_gates + x @ w_ih.T (all (B, G)); layer 0 passes a w_ih with no rows (its input came from
    the table)."""
    out[:, :] = input_gates
    if w_ih.shape[0] > 0:
        _matmul_add(w_ih, x, out)


@njit(**_JIT)
def lstm_layer(input_gates, x, w_ih, w_hh, h, c, h_out, c_out, gates):
    """One LSTM step for B rows. input_gates (B, 4H) holds the bias (and, for layer 0, the input projection
    looked up from a table); x (B, in) is multiplied by w_ih only when w_ih has rows (upper layers); gates is
    (B, 4H) scratch."""
    size = h.shape[1]
    _input_side(input_gates, w_ih, x, gates)
    _matmul_add(w_hh, h, gates)
    for b in range(h.shape[0]):
        for k in range(size):
            i = _sigmoid(gates[b, k])
            f = _sigmoid(gates[b, size + k])
            g = _tanh(gates[b, 2 * size + k])
            o = _sigmoid(gates[b, 3 * size + k])
            cell = f * c[b, k] + i * g
            c_out[b, k] = cell
            h_out[b, k] = o * _tanh(cell)


@njit(**_JIT)
def gru_layer(input_gates, x, w_ih, w_hh, b_hh, h, h_out, gates_i, gates_h):
    """One GRU step for B rows (PyTorch's formulation: the reset gate scales W_hn h + b_hn); gates_i and
    gates_h are (B, 3H) scratch."""
    size = h.shape[1]
    _input_side(input_gates, w_ih, x, gates_i)
    for b in range(h.shape[0]):
        gates_h[b, :] = b_hh
    _matmul_add(w_hh, h, gates_h)
    for b in range(h.shape[0]):
        for k in range(size):
            r = _sigmoid(gates_i[b, k] + gates_h[b, k])
            z = _sigmoid(gates_i[b, size + k] + gates_h[b, size + k])
            n = _tanh(gates_i[b, 2 * size + k] + r * gates_h[b, 2 * size + k])
            h_out[b, k] = n + z * (h[b, k] - n)


@njit(**_JIT)
def rnn_layer(input_gates, x, w_ih, w_hh, h, h_out, pre, relu):
    """One plain RNN step for B rows: tanh (or ReLU) of W_ih x + W_hh h + b; pre is (B, H) scratch."""
    size = h.shape[1]
    _input_side(input_gates, w_ih, x, pre)
    _matmul_add(w_hh, h, pre)
    for b in range(h.shape[0]):
        for k in range(size):
            h_out[b, k] = max(pre[b, k], np.float32(0.0)) if relu else _tanh(pre[b, k])


# Whole steps: every layer and the output layer in one call. A compiled call releases the GIL and must wait to
# get it back afterwards, up to the 5 ms switch interval while another thread (the server's event loop) runs
# Python; one call per step instead of one per layer cut those waits to one. The state is (S, B, H): each
# layer's h, then (LSTM) each layer's c. Layer 0's input projection and bias come from `table` (V, G); the
# upper layers' input matrices are stacked in w_ih (L-1, G, H) and their biases in b_in (L, G); `no_rows` is a
# (0, width) matrix that stands for layer 0's input matrix (see _input_side).


@njit(**_JIT)
def _layer_inputs(layer, tokens, table, b_in, out):
    for b in range(tokens.shape[0]):
        if layer == 0:
            out[b, :] = table[tokens[b]]
        else:
            out[b, :] = b_in[layer]


CELL_CODES = {name: cell.kernel_code for name, cell in CELL_TABLE.items()}  # `cell` of stack_step, by config name


@njit(**_JIT)
def stack_step(cell, tokens, table, no_rows, w_ih, w_hh, b_in, b_hh, head_w, head_b, state, new_state, logits):
    """One step of the whole stack and the output layer for B rows; `cell` is a CELL_CODES value. b_hh is the
    GRU's hidden-side bias (L, G); the other cells ignore it."""
    layers = w_hh.shape[0]
    inputs = np.empty((tokens.shape[0], w_hh.shape[1]), np.float32)
    scratch = np.empty_like(inputs)
    scratch_h = np.empty_like(inputs)  # the GRU's hidden-side gates
    for layer in range(layers):
        _layer_inputs(layer, tokens, table, b_in, inputs)
        x = state[0] if layer == 0 else new_state[layer - 1]  # layer 0 ignores x (no_rows has no rows)
        w_in = no_rows if layer == 0 else w_ih[layer - 1]
        if cell == 0:
            lstm_layer(inputs, x, w_in, w_hh[layer], state[layer], state[layers + layer], new_state[layer],
                       new_state[layers + layer], scratch)
        elif cell == 1:
            gru_layer(inputs, x, w_in, w_hh[layer], b_hh[layer], state[layer], new_state[layer], scratch, scratch_h)
        else:
            rnn_layer(inputs, x, w_in, w_hh[layer], state[layer], new_state[layer], scratch, cell == 3)
    linear(new_state[layers - 1], head_w, head_b, logits)


@njit(**_EXACT)
def filtered_probabilities(logits, temperature, top_k, top_p, banned, probs):
    """probs (V,) float64 = softmax(logits / temperature) after top-k and top-p (nucleus) filtering.

    temperature 0 puts all mass on the most likely token; `banned` (>= 0) gets none; top_k 0 and top_p 1 keep
    everything. Top-k keeps ties with the k-th value; top-p keeps a token when the mass of the tokens more
    likely than it is still below p, so the most likely token, and every token tied with a kept one, is kept.
    Returns False (probs all 0) when the logits cannot be sampled: a NaN or +inf, or no token above -inf.
    """
    size = logits.shape[0]
    z = np.empty(size, np.float64)
    for v in range(size):
        z[v] = logits[v]
        if math.isnan(z[v]) or z[v] == np.inf:
            probs[:] = 0.0
            return False
    if banned >= 0:
        z[banned] = -np.inf
    probs[:] = 0.0
    best = np.argmax(z)
    peak = z[best]
    if peak == -np.inf:
        return False
    if temperature == 0:
        probs[best] = 1.0
        return True
    if 0 < top_k < size:
        kth = np.sort(z)[size - top_k]
        for v in range(size):
            if z[v] < kth:
                z[v] = -np.inf
    total = 0.0
    for v in range(size):
        probs[v] = math.exp((z[v] - peak) / temperature)  # subtract first: z / a tiny temperature would overflow
        total += probs[v]
    probs /= total
    if top_p < 1:
        order = np.argsort(-probs)
        before = 0.0  # mass of the tokens more likely than the current group of equal probabilities
        kept = 0.0
        i = 0
        while i < size and probs[order[i]] > 0:
            mass = probs[order[i]]
            end = i
            group = 0.0
            while end < size and probs[order[end]] == mass:
                group += mass
                end += 1
            if before < top_p:
                kept += group
            else:
                for j in range(i, end):
                    probs[order[j]] = 0.0
            before += group
            i = end
        probs /= kept
    return True


@njit(**_EXACT)
def sample_tokens(logits, temperature, top_k, top_p, banned, uniforms, tokens):
    """One token per row of logits (B, V), by inverse-CDF sampling with the given uniforms (B,) in [0, 1), each
    row with its own settings (temperature, top_k, top_p and banned are (B,) arrays): the rows of several
    callers are drawn in one call. A row whose logits cannot be sampled (see filtered_probabilities) gets
    token -1."""
    size = logits.shape[1]
    probs = np.empty(size, np.float64)
    for b in range(logits.shape[0]):
        if not filtered_probabilities(logits[b], temperature[b], top_k[b], top_p[b], banned[b], probs):
            tokens[b] = -1
            continue
        tokens[b] = inverse_cdf(probs, uniforms[b])


@njit(**_EXACT)
def inverse_cdf(probs, uniform):
    """The token whose running sum of probabilities first passes uniform x their total."""
    target = uniform * probs.sum()
    cumulative = 0.0
    token = -1
    for v in range(probs.shape[0]):
        if probs[v] > 0:
            token = v  # the last token with mass, should rounding leave target at the very top
            cumulative += probs[v]
            if cumulative > target:
                break
    return token


def sample_tokens_uncompiled(logits, temperature, top_k, top_p, banned, uniforms, tokens) -> None:
    """kernels.sample_tokens, with the same arguments, its compiled parts run as Python (their code is plain NumPy
    and math): the same filtering and the same inverse-CDF draw."""
    probs = np.empty(logits.shape[1], np.float64)
    for b in range(logits.shape[0]):
        sampleable = filtered_probabilities.py_func(logits[b], temperature[b], top_k[b], top_p[b],
                                                            banned[b], probs)
        tokens[b] = inverse_cdf.py_func(probs, uniforms[b]) if sampleable else -1
