"""bfloat16 matrix products for the sampling kernels, on CPUs with AVX512-BF16 (AMD Zen 4 and later, Intel Cooper
Lake, Sapphire Rapids and later).

One `vdpbf16ps` instruction multiplies 32 pairs of bfloat16 values and adds them, two by two, into 16 float32
sums: twice the products of a float32 FMA, and the weights need no conversion (the half-precision path widens
every weight to float32 before its FMA). docs/benchmarks.md gives what it gains (`charrnn bench visitors` times
both precisions).

The price is in the inputs: each row's activations are rounded to bfloat16 (8 bits of mantissa) before the
product, as torch's bf16 autocast does in training (which is how the shipped models were trained); the products
and sums stay float32. docs/benchmarks.md gives what it does to the shipped models' bits per character.

The product runs on charrnn.sampling.tiles' tiles: every output element goes through the same instructions wherever
it sits in a tile, a chain of `vdpbf16ps` over the 32-wide column chunks, then a fixed halving sum of the 16
lanes. So a row's result does not depend on the batch it is stepped in (tests/test_batching.py checks this
exactly). Matrices are bfloat16 bit patterns in int16
arrays (int16, where half-precision matrices are uint16, so the kernels can tell them apart), their columns
padded with zeros to a multiple of 32.

numba's cache of the compiled kernels is stamped with all of their source files (jit_cache.py), so an edit here
recompiles kernels.py's functions that inline this code.
"""

from __future__ import annotations

import llvmlite.binding
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils, config

from charrnn.sampling import jit_cache  # noqa: F401 - first: the kernels below are cached through it
from charrnn.sampling import tiles

LANES = 32  # bfloat16 values per 512-bit register: the column chunk, and what matrix columns are padded to


def _numba_targets_bf16() -> bool:
    """Whether the code numba compiles here may use AVX512-BF16: numba's own view of the CPU (NUMBA_CPU_NAME,
    NUMBA_CPU_FEATURES and NUMBA_ENABLE_AVX change it), and an LLVM whose intrinsic takes bfloat vectors (16+).
    An instruction the target lacks would stop the process in LLVM, not raise."""
    if config.CPU_NAME not in (None, "host") or llvmlite.binding.llvm_version_info < (16,):
        return False
    return "avx512bf16" in tiles.target_features()


SUPPORTED = _numba_targets_bf16()

# Set explicitly: numba would otherwise give these functions the fast-math flags of the kernel that first calls
# them, and reassociation could reorder the lanes' sum differently in different tiles (see tiles.matmul).
_JIT = dict(nogil=True, cache=True, boundscheck=False, fastmath=False, error_model="python")


class _BFloatType(ir.types._BaseFloatType):
    """LLVM's `bfloat`, which llvmlite does not name (the dot-product intrinsic takes vectors of it)."""

    null = "0.0"
    intrinsic_name = "bf16"

    def __str__(self):
        return "bfloat"


_BFloatType._create_instance()
_FLOATS = ir.VectorType(ir.FloatType(), 16)
_BFLOATS = ir.VectorType(_BFloatType(), LANES)


def to_bf16_bits(array: np.ndarray) -> np.ndarray:
    """float32 (..., cols) -> bfloat16 bit patterns (..., cols padded to a multiple of 32) as int16, rounded to
    nearest even; the padding is zeros."""
    array = np.ascontiguousarray(array, np.float32)
    cols = array.shape[-1]
    rows = array.reshape(-1, cols)
    bits = np.empty((rows.shape[0], cols + (-cols % LANES)), np.int16)
    _round_rows(rows, bits)
    return bits.reshape(*array.shape[:-1], bits.shape[1])


@njit(**_JIT)
def _round_rows(x, out):
    """x (B, cols) float32 -> out (B, >= cols) bfloat16 bits, rounded to nearest even, zeros after col `cols`."""
    bits = x.view(np.uint32)
    for b in range(x.shape[0]):
        for j in range(x.shape[1]):
            u = bits[b, j]
            if (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000):  # NaN: rounding could carry it into inf
                out[b, j] = np.int16(np.uint16((u >> np.uint32(16)) | np.uint32(0x40)))  # a quiet NaN
            else:
                carry = np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))
                out[b, j] = np.int16(np.uint16((u + carry) >> np.uint32(16)))
        for j in range(x.shape[1], out.shape[1]):
            out[b, j] = 0


def _load(builder, pointer, dtype, count):
    """32 bfloat16 values (a matrix's or the rounded inputs' int16 bits), as the dot-product instruction takes them."""
    return builder.load(builder.bitcast(pointer, _BFLOATS.as_pointer()), align=2)


def _dot(builder, sums, weights, inputs):
    """sums (16 floats) + the products of 32 pairs, two by two: one vdpbf16ps."""
    dot_type = ir.FunctionType(_FLOATS, [_FLOATS, _BFLOATS, _BFLOATS])
    dot = cgutils.get_or_insert_function(builder.module, dot_type, "llvm.x86.avx512bf16.dpbf16ps.512")
    return builder.call(dot, [sums, weights, inputs])


# Tiles of 4 x 4 (16 sums in registers, 8 loads per 16 products) and their edges.
_tiles = tiles.matmul(tiles.Product(columns=LANES, lanes=16, load=_load, multiply_add=_dot, columns_one_by_one=False,
                                    weights=(types.int16,), inputs=(types.int16,)), 4, 4)


@njit(**_JIT)
def matmul_add(weight, x, out):
    """out (B, rows) += x (B, cols) @ weight.T, weight (rows, padded cols) bfloat16 bits, x float32."""
    if weight.shape[1] % LANES != 0 or x.shape[1] > weight.shape[1]:
        raise ValueError("bf16.matmul_add: the weight's columns must be padded to a multiple of 32 (to_bf16_bits)")
    rounded = np.empty((x.shape[0], weight.shape[1]), np.int16)
    _round_rows(x, rounded)
    _tiles(weight, rounded, out)
