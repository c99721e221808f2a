import numpy as np
from numba import njit

from charrnn.sampling import kernels


@njit
def _apply(function, values, out):
    for i in range(values.shape[0]):
        out[i] = function(values[i])


def evaluate(function, values: np.ndarray) -> np.ndarray:
    out = np.empty_like(values)
    _apply(function, values, out)
    return out


VALUES = np.concatenate([np.linspace(-100, 100, 200_001), np.linspace(-1e-3, 1e-3, 2_001), np.geomspace(1e-30, 1, 50),
                         [0.0, -0.0, np.inf, -np.inf, 88.7, -87.5]]).astype(np.float32)


def test_the_vectorizable_exp_is_within_3e_7_of_exp_over_float32s_range():
    values = np.linspace(-87, 88, 100_001).astype(np.float32)
    exact = np.exp(values.astype(np.float64))
    assert np.max(np.abs(evaluate(kernels._exp, values) - exact) / exact) < 3e-7


def test_sigmoid_and_tanh_are_within_1e_7_of_the_exact_values_with_the_right_limits_and_signs():
    exact64 = VALUES.astype(np.float64)
    for function, exact in ((kernels._tanh, np.tanh(exact64)), (kernels._sigmoid, 1 / (1 + np.exp(-exact64)))):
        got = evaluate(function, VALUES)
        assert np.max(np.abs(got - exact)) < 1e-7, function
        never_the_wrong_sign = (got >= 0) if function is kernels._sigmoid else (np.sign(got) * np.sign(VALUES) >= 0)
        assert never_the_wrong_sign.all()
    assert evaluate(kernels._tanh, np.array([np.inf, -np.inf], np.float32)).tolist() == [1.0, -1.0]
    high, low = evaluate(kernels._sigmoid, np.array([np.inf, -np.inf], np.float32))
    assert high == 1.0 and 0 <= low < 1e-38  # exp's argument is clamped to float32's range


def test_nan_stays_nan_so_a_broken_model_is_still_caught_at_the_draw():
    nan = np.array([np.nan], np.float32)
    for function in (kernels._exp, kernels._sigmoid, kernels._tanh):
        assert np.isnan(evaluate(function, nan)).all(), function


def test_an_edit_to_any_kernel_source_file_makes_the_cached_kernels_stale(tmp_path, monkeypatch):
    """kernels.py's functions inline tiles.py's and bf16.py's code: numba's cache stamps them with all three."""
    from charrnn.sampling import jit_cache, kernels

    assert jit_cache.install()
    locator = kernels.stack_step._cache._impl.locator
    assert type(locator).__name__.startswith("KernelSources")
    before = locator.get_source_stamp()
    copies = tmp_path / "sampling"
    copies.mkdir()
    for name in jit_cache.KERNEL_SOURCES:
        (copies / name).write_bytes((jit_cache.HERE / name).read_bytes())
    monkeypatch.setattr(jit_cache, "HERE", copies)
    assert locator.get_source_stamp() == before
    with open(copies / "tiles.py", "a") as f:
        f.write("\n# an edit\n")
    assert locator.get_source_stamp() != before
