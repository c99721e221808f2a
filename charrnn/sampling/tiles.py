"""Matrix products in a fixed summation order for the sampling kernels: out (B, rows) += x (B, cols) @ weight.T,
written as LLVM IR in tiles of weight rows x batch rows.

Why not a loop that numba vectorizes: a dot product vectorizes only if its sum may be reassociated, and then
LLVM's cost model chooses, loop by loop, how many vector sums the product is split into. A loop over four batch
rows at once and a loop over one row can be split differently (on CPUs with AVX2 but no AVX-512 they were), so
a row's result depended on the batch it was stepped in, and a seed gave other text alone than beside other
visitors. Here every output element goes through the same
instructions wherever it sits in a tile and whatever the tile's shape: one vector of sums over the column
chunks, a fixed halving sum of its lanes, then the leftover columns one at a time. None of these instructions
may be reassociated (the functions that hold them are compiled without fast-math), so LLVM keeps that order on
every CPU; tests/test_batching.py checks it exactly, also in a process that targets an AVX2-only CPU.

The tiles keep every sum of a tile in registers and read each weight chunk once for all of the tile's batch
rows: 4 x 4 tiles of 16-float vectors where numba targets AVX-512 (32 vector registers), 4 x 2 tiles of
8-float vectors elsewhere (16). Float32 weights and half-precision weights (float16 bit patterns in uint16
arrays, widened to float32 in registers) use `matmul_add` here; bfloat16 weights use bf16.py's product on the
same tiles.

numba's cache of the compiled kernels is stamped with all of their source files (jit_cache.py), so an edit here
recompiles kernels.py's functions that inline this code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils, codegen, config
from numba.extending import intrinsic

from charrnn.sampling import jit_cache  # noqa: F401 - first: the kernels below are cached through it


def target_features() -> set[str]:
    """The CPU features numba compiles for: the host's, unless NUMBA_CPU_FEATURES names others."""
    try:
        features = config.CPU_FEATURES if config.CPU_FEATURES is not None else codegen.get_host_cpu_features()
    except RuntimeError:  # a host LLVM cannot query
        return set()
    return {feature[1:] for feature in features.split(",") if feature.startswith("+")}


@dataclass(frozen=True)
class Product:
    """What a tile multiplies with: `load(builder, pointer, dtype, count)` reads `count` consecutive elements of
    an array of numba dtype `dtype` (count None: one scalar) as the operand `multiply_add` takes;
    `multiply_add(builder, sums, weights, inputs)` adds the products of one chunk of `columns` columns into a
    vector of `lanes` float32 sums, or of one column into a float32 when `columns_one_by_one` (else the columns
    must be a multiple of `columns`). `weights` and `inputs` are the dtypes it reads (numba types)."""

    columns: int
    lanes: int
    load: Callable
    multiply_add: Callable
    columns_one_by_one: bool
    weights: tuple
    inputs: tuple


def lane_sum(builder, vector):
    """The lanes' sum, halving: lanes 0-7 + 8-15, then 0-3 + 4-7, ...; the same order for every element."""
    width = vector.type.count
    while width > 1:
        half = width // 2
        low, high = (builder.shuffle_vector(vector, vector, ir.Constant(ir.VectorType(ir.IntType(32), half),
                                                                         list(range(start, start + half))))
                     for start in (0, half))
        vector = builder.fadd(low, high)
        width = half
    return builder.extract_element(vector, ir.Constant(ir.IntType(32), 0))


def matmul(product: Product, tile_rows: int, tile_batch: int):
    """A compiled out (B, rows) += x (B, cols) @ weight.T for C-contiguous 2-D arrays, in tiles of tile_rows
    weight rows x tile_batch batch rows and their edges (tiles of one weight row or one batch row). Weight rows
    are the outer loop: a tile's weight rows are read from memory once per call and reused from L1 for every
    batch row. Call it only from functions compiled without fast-math (numba would add its flags to these
    instructions, and reassociation could reorder the sums differently in different tiles)."""

    @intrinsic
    def tiled_matmul_add(typingctx, weight, x, out):
        if not (all(isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C" for a in (weight, x, out))
                and weight.dtype in product.weights and x.dtype in product.inputs and out.dtype == types.float32):
            return None  # rows are read as contiguous vectors of the product's types

        def build(context, builder, signature, args):
            weight_type, x_type, out_type = signature.args
            weight_array, x_array, out_array = (context.make_array(t)(context, builder, a)
                                                for t, a in zip(signature.args, args, strict=True))
            intp = context.get_value_type(types.intp)
            rows, cols = cgutils.unpack_tuple(builder, weight_array.shape, 2)
            batch = builder.extract_value(x_array.shape, 0)

            def constant(value):
                return ir.Constant(intp, value)

            def row_pointer(array_type, array, row):
                return cgutils.get_item_pointer(context, builder, array_type, array, [row, constant(0)])

            def blocked(count, size):
                return builder.sub(count, builder.urem(count, constant(size)))

            chunks = builder.udiv(cols, constant(product.columns))
            chunked_cols = builder.mul(chunks, constant(product.columns))
            zeros = ir.Constant(ir.VectorType(ir.FloatType(), product.lanes), [0.0] * product.lanes)

            def tile(shape_rows, shape_batch, i, b):
                weight_rows = [row_pointer(weight_type, weight_array, builder.add(i, constant(r)))
                               for r in range(shape_rows)]
                x_rows = [row_pointer(x_type, x_array, builder.add(b, constant(c))) for c in range(shape_batch)]
                sums = [[cgutils.alloca_once_value(builder, zeros) for _ in x_rows] for _ in weight_rows]

                def operands(column, count):
                    return ([product.load(builder, builder.gep(p, [column]), weight_type.dtype, count)
                             for p in weight_rows],
                            [product.load(builder, builder.gep(p, [column]), x_type.dtype, count) for p in x_rows])

                with cgutils.for_range(builder, chunks) as loop:
                    weights, inputs = operands(builder.mul(loop.index, constant(product.columns)), product.columns)
                    for r, w in enumerate(weights):
                        for c, v in enumerate(inputs):
                            builder.store(product.multiply_add(builder, builder.load(sums[r][c]), w, v), sums[r][c])
                totals = [[cgutils.alloca_once_value(builder, lane_sum(builder, builder.load(s))) for s in row]
                          for row in sums]
                if product.columns_one_by_one:
                    with cgutils.for_range_slice(builder, chunked_cols, cols, constant(1)) as (column, _):
                        weights, inputs = operands(column, None)
                        for r, w in enumerate(weights):
                            for c, v in enumerate(inputs):
                                total = totals[r][c]
                                builder.store(product.multiply_add(builder, builder.load(total), w, v), total)
                for r in range(shape_rows):
                    for c in range(shape_batch):
                        target = cgutils.get_item_pointer(context, builder, out_type, out_array,
                                                          [builder.add(b, constant(c)), builder.add(i, constant(r))])
                        builder.store(builder.fadd(builder.load(target), builder.load(totals[r][c])), target)

            row_blocks, batch_blocks = blocked(rows, tile_rows), blocked(batch, tile_batch)
            for row_start, row_stop, shape_rows in ((constant(0), row_blocks, tile_rows), (row_blocks, rows, 1)):
                for batch_start, batch_stop, shape_batch in ((constant(0), batch_blocks, tile_batch),
                                                             (batch_blocks, batch, 1)):
                    with (cgutils.for_range_slice(builder, row_start, row_stop, constant(shape_rows)) as (i, _),
                          cgutils.for_range_slice(builder, batch_start, batch_stop, constant(shape_batch)) as (b, _)):
                        tile(shape_rows, shape_batch, i, b)
            return context.get_dummy_value()

        return types.void(weight, x, out), build

    return tiled_matmul_add


WIDE = "avx512f" in target_features()  # 32 registers of 16 floats
LANES, TILE_BATCH = (16, 4) if WIDE else (8, 2)


def to_half_bits(array: np.ndarray) -> np.ndarray:
    """float32 -> float16 bit patterns (uint16), the form matmul_add takes half-precision matrices in."""
    return np.ascontiguousarray(array.astype(np.float16).view(np.uint16))


def _widened_load(builder, pointer, dtype, count):
    """float32 elements as they are; half bit patterns (uint16) widened to float32 (vcvtph2ps on x86)."""
    def shaped(element):
        return element if count is None else ir.VectorType(element, count)

    half = dtype == types.uint16
    stored = shaped(ir.IntType(16) if half else ir.FloatType())
    value = builder.load(builder.bitcast(pointer, stored.as_pointer()), align=2 if half else 4)
    return builder.fpext(builder.bitcast(value, shaped(ir.HalfType())), shaped(ir.FloatType())) if half else value


def _fused_multiply_add(builder, sums, weights, inputs):
    """sums + weights * inputs, fused into one rounding where the CPU has FMA (llvm.fmuladd: the same choice for
    every element)."""
    kind = sums.type
    suffix = f"v{kind.count}f32" if isinstance(kind, ir.VectorType) else "f32"
    function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(kind, [kind, kind, kind]),
                                              f"llvm.fmuladd.{suffix}")
    return builder.call(function, [weights, inputs, sums])


_WIDENED = Product(columns=LANES, lanes=LANES, load=_widened_load, multiply_add=_fused_multiply_add,
                   columns_one_by_one=True, weights=(types.float32, types.uint16), inputs=(types.float32,))
_widened_tiles = matmul(_WIDENED, 4, TILE_BATCH)


@njit(nogil=True, cache=True, boundscheck=False, fastmath=False)
def matmul_add(weight, x, out):
    """out (B, rows) += x (B, cols) @ weight.T, weight (rows, cols) float32 or half bits (uint16), x float32."""
    if x.shape[1] != weight.shape[1] or out.shape[0] != x.shape[0] or out.shape[1] != weight.shape[0]:
        raise ValueError("tiles.matmul_add: out (B, rows) += x (B, cols) @ weight (rows, cols).T: shapes differ")
    _widened_tiles(weight, x, out)
