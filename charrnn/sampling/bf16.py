"""bfloat16 matrix products for the sampling kernels, on CPUs with AVX512-BF16 (AMD Zen 4 and later, Intel Cooper
Lake, Sapphire Rapids and later).

One `vdpbf16ps` instruction multiplies 32 pairs of bfloat16 values and adds them, two by two, into 16 float32
sums: twice the products of a float32 FMA, and the weights need no conversion (the half-precision path widens
every weight to float32 before its FMA). docs/benchmarks.md gives what it gains (`charrnn bench visitors` times
both precisions).

The price is in the inputs: each row's activations are rounded to bfloat16 (8 bits of mantissa) before the
product, as torch's bf16 autocast does in training (which is how the shipped models were trained); the products
and sums stay float32. docs/benchmarks.md gives what it does to the shipped models' bits per character.

Every output element goes through the same instructions wherever it sits in a tile: a chain of `vdpbf16ps` over
the 32-wide column chunks, then a fixed halving sum of the 16 lanes. So a row's result does not depend on the
batch it is stepped in (tests/test_batching.py checks this exactly). Matrices are bfloat16 bit patterns in int16
arrays (int16, where half-precision matrices are uint16, so the kernels can tell them apart), their columns
padded with zeros to a multiple of 32.

numba caches compiled kernels per source file: kernels.stack_step's cached code holds this module's code, and is
recompiled only when kernels.py changes. After editing this file, delete charrnn/__pycache__/*.nb* as well.
"""

from __future__ import annotations

import llvmlite.binding
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils, codegen, config
from numba.extending import intrinsic

LANES = 32  # bfloat16 values per 512-bit register: the column chunk, and what matrix columns are padded to


def _numba_targets_bf16() -> bool:
    """Whether the code numba compiles here may use AVX512-BF16: numba's own view of the CPU (NUMBA_CPU_NAME,
    NUMBA_CPU_FEATURES and NUMBA_ENABLE_AVX change it), and an LLVM whose intrinsic takes bfloat vectors (16+).
    An instruction the target lacks would stop the process in LLVM, not raise."""
    if config.CPU_NAME not in (None, "host") or llvmlite.binding.llvm_version_info < (16,):
        return False
    try:
        features = config.CPU_FEATURES or codegen.get_host_cpu_features()
    except RuntimeError:  # a host LLVM cannot query
        return False
    return "+avx512bf16" in features.split(",")


SUPPORTED = _numba_targets_bf16()

# Set explicitly: numba would otherwise give these functions the fast-math flags of the kernel that first calls
# them, and reassociation could reorder the lanes' sum differently in different tiles.
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


def _lane_sum(builder, vector):
    """The 16 lanes' sum, halving: lanes 0-7 + 8-15, then 0-3 + 4-7, ...; the same order for every element."""
    width = vector.type.count
    while width > 1:
        half = width // 2
        low, high = (builder.shuffle_vector(vector, vector, ir.Constant(ir.VectorType(ir.IntType(32), half),
                                                                         list(range(start, start + half))))
                     for start in (0, half))
        vector = builder.fadd(low, high)
        width = half
    return builder.extract_element(vector, ir.Constant(ir.IntType(32), 0))


def _tile(out_rows: int, batch_rows: int):
    """A compiled tile: out[b:b+batch_rows, i:i+out_rows] += x[b:...] @ weight[i:...].T, weight (rows, cols) and
    x (B, cols) bfloat16 bits with cols a multiple of 32. Each of the out_rows x batch_rows sums keeps its own
    16-lane accumulator, so a tile of any shape gives every element the same instructions."""

    @intrinsic
    def tile(typingctx, weight, x, out, i, b):
        if not all(isinstance(a, types.Array) and a.layout == "C" for a in (weight, x, out)):
            return None  # rows are read as contiguous vectors

        def build(context, builder, signature, args):
            weight_type, x_type, out_type = signature.args[:3]
            weight_array, x_array, out_array = (context.make_array(t)(context, builder, a)
                                                for t, a in zip(signature.args[:3], args[:3]))
            intp = context.get_value_type(types.intp)

            def at(offset, index):
                return builder.add(index, ir.Constant(intp, offset))

            def pointer(array_type, array, row, col):
                return cgutils.get_item_pointer(context, builder, array_type, array, [row, col])

            zero = ir.Constant(intp, 0)
            weight_rows = [pointer(weight_type, weight_array, at(r, args[3]), zero) for r in range(out_rows)]
            x_rows = [pointer(x_type, x_array, at(c, args[4]), zero) for c in range(batch_rows)]
            sums = [[cgutils.alloca_once_value(builder, ir.Constant(_FLOATS, [0.0] * 16)) for _ in range(batch_rows)]
                    for _ in range(out_rows)]
            dot_type = ir.FunctionType(_FLOATS, [_FLOATS, _BFLOATS, _BFLOATS])
            dot = cgutils.get_or_insert_function(builder.module, dot_type, "llvm.x86.avx512bf16.dpbf16ps.512")
            chunks = builder.udiv(builder.extract_value(weight_array.shape, 1), ir.Constant(intp, LANES))
            with cgutils.for_range(builder, chunks) as loop:
                offset = builder.mul(loop.index, ir.Constant(intp, LANES))

                def load(row_pointer):
                    return builder.load(builder.bitcast(builder.gep(row_pointer, [offset]), _BFLOATS.as_pointer()),
                                        align=2)

                weights = [load(p) for p in weight_rows]
                inputs = [load(p) for p in x_rows]
                for r in range(out_rows):
                    for c in range(batch_rows):
                        total = builder.call(dot, [builder.load(sums[r][c]), weights[r], inputs[c]])
                        builder.store(total, sums[r][c])
            for r in range(out_rows):
                for c in range(batch_rows):
                    target = pointer(out_type, out_array, at(c, args[4]), at(r, args[3]))
                    builder.store(builder.fadd(builder.load(target), _lane_sum(builder, builder.load(sums[r][c]))),
                                  target)
            return context.get_dummy_value()

        return types.void(weight, x, out, i, b), build

    return tile


# Tiles of 4 x 4 (16 sums in registers, 8 loads per 16 products) and their edges.
_tile_4x4, _tile_4x1, _tile_1x4, _tile_1x1 = _tile(4, 4), _tile(4, 1), _tile(1, 4), _tile(1, 1)


@njit(**_JIT)
def matmul_add(weight, x, out):
    """out (B, rows) += x (B, cols) @ weight.T, weight (rows, padded cols) bfloat16 bits, x float32."""
    if weight.shape[1] % LANES != 0 or x.shape[1] > weight.shape[1]:
        raise ValueError("bf16.matmul_add: the weight's columns must be padded to a multiple of 32 (to_bf16_bits)")
    batch, rows = x.shape[0], weight.shape[0]
    rounded = np.empty((batch, weight.shape[1]), np.int16)
    _round_rows(x, rounded)
    row_blocks, batch_blocks = rows - rows % 4, batch - batch % 4
    # Weight rows outside, batch rows inside: a block of weight rows is read from memory once per call and
    # reused from L1 for every batch row (the batch's rounded rows stay in L1/L2).
    for i in range(0, row_blocks, 4):
        for b in range(0, batch_blocks, 4):
            _tile_4x4(weight, rounded, out, i, b)
        for b in range(batch_blocks, batch):
            _tile_4x1(weight, rounded, out, i, b)
    for i in range(row_blocks, rows):
        for b in range(0, batch_blocks, 4):
            _tile_1x4(weight, rounded, out, i, b)
        for b in range(batch_blocks, batch):
            _tile_1x1(weight, rounded, out, i, b)
