import numpy as np
import pytest

from charrnn.sampling import tiles


@pytest.mark.parametrize("precision", ["float32", "half"])
@pytest.mark.parametrize("batch, rows, cols", [(1, 7, 20), (4, 8, 64), (11, 70, 100), (6, 9, 33), (3, 5, 3)])
def test_matmul_add_is_the_product_of_the_weights_as_stored(batch, rows, cols, precision):
    """Against float64 products of the same (half-rounded) weights: only the float32 sums differ; the tiles' edges
    (rows and batch not multiples of the tile, columns not of the vector width) are covered."""
    rng = np.random.default_rng(batch)
    weight = rng.standard_normal((rows, cols)).astype(np.float32)
    x = rng.standard_normal((batch, cols)).astype(np.float32)
    start = rng.standard_normal((batch, rows)).astype(np.float32)
    stored = weight if precision == "float32" else tiles.to_half_bits(weight)
    out = start.copy()
    tiles.matmul_add(stored, x, out)
    exact = weight.astype(np.float16) if precision == "half" else weight
    want = start + x.astype(np.float64) @ exact.astype(np.float64).T
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6 * np.abs(x).sum(1).max())


def test_a_column_of_nan_or_inf_reaches_the_outputs_and_the_other_rows_stay_numbers():
    weight = np.ones((5, 37), np.float32)
    x = np.zeros((3, 37), np.float32)
    x[1, 3] = np.nan
    x[2, 36] = np.inf  # in the columns left over after the vector chunks
    out = np.zeros((3, 5), np.float32)
    tiles.matmul_add(weight, x, out)
    assert (out[0] == 0).all() and np.isnan(out[1]).all() and (out[2] == np.inf).all()


def test_shapes_that_do_not_match_are_refused_instead_of_read_past_the_arrays():
    with pytest.raises(ValueError, match="shapes differ"):
        tiles.matmul_add(np.zeros((4, 20), np.float32), np.zeros((2, 16), np.float32), np.zeros((2, 4), np.float32))
