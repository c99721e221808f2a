import numpy as np
import pytest
import torch

from charrnn.sampling import bf16

needs_bf16 = pytest.mark.skipif(not bf16.SUPPORTED, reason="this CPU has no AVX512-BF16")


def as_float(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (int16) -> float64, independently of the module: through torch."""
    return torch.from_numpy(np.ascontiguousarray(bits)).view(torch.bfloat16).double().numpy()


def test_rounding_to_bfloat16_matches_torch_pads_with_zeros_and_keeps_nan_and_inf():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.standard_normal(90).astype(np.float32) * 10.0 ** rng.integers(-30, 30, 90),
                             [np.inf, -np.inf, 0.0, -0.0, 3.3895314e38, 1e-40]]).astype(np.float32)
    values = values.reshape(2, 48)
    bits = bf16.to_bf16_bits(values)
    assert bits.shape == (2, 64) and bits.dtype == np.int16
    want = torch.from_numpy(values).bfloat16().view(torch.int16).numpy()
    assert np.array_equal(bits[:, :48], want)
    assert not bits[:, 48:].any()
    nan_bits = bf16.to_bf16_bits(np.array([[np.nan, -np.nan, np.float32(np.uint32(0x7FFFFFFF).view(np.float32))]]))
    assert np.isnan(as_float(nan_bits[:, :3])).all()


def test_rounding_a_step_s_inputs_overwrites_the_padding_and_keeps_inf():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((5, 70)) * 100).astype(np.float32)
    x[0, :2] = [np.inf, -np.inf]
    out = np.full((5, 96), 7, np.int16)  # scratch is reused: the padding must be overwritten with zeros
    bf16._round_rows(x, out)
    assert np.array_equal(out[:, :70], torch.from_numpy(x).bfloat16().view(torch.int16).numpy())
    assert not out[:, 70:].any()


def test_without_the_instruction_auto_takes_half_precision_and_bf16_is_refused(monkeypatch):
    from charrnn.config import ModelConfig
    from charrnn.model import CharRNN
    from charrnn.sampling.stepper import Stepper

    monkeypatch.setattr(bf16, "SUPPORTED", False)
    model = CharRNN(ModelConfig(vocab_size=10, hidden_size=8, embedding_size=4, num_layers=2))
    assert Stepper(model).precision == "half"
    with pytest.raises(ValueError, match="AVX512-BF16"):
        Stepper(model, "bf16")


@needs_bf16
def test_matmul_add_refuses_weights_whose_columns_are_not_padded():
    with pytest.raises(ValueError, match="multiple of 32"):
        bf16.matmul_add(np.zeros((4, 20), np.int16), np.zeros((1, 20), np.float32), np.zeros((1, 4), np.float32))


@needs_bf16
@pytest.mark.parametrize("batch, rows, cols", [(1, 7, 20), (4, 8, 64), (11, 70, 100), (6, 9, 33)])
def test_matmul_add_is_the_product_of_the_rounded_operands(batch, rows, cols):
    """Against float64 products of the same bfloat16 values (through torch's own conversion): only the float32
    sums differ; the tiles' edges (rows and batch not multiples of 4, columns not of 32) are covered."""
    rng = np.random.default_rng(batch)
    weight = rng.standard_normal((rows, cols)).astype(np.float32)
    x = rng.standard_normal((batch, cols)).astype(np.float32)
    start = rng.standard_normal((batch, rows)).astype(np.float32)
    out = start.copy()
    bf16.matmul_add(bf16.to_bf16_bits(weight), x, out)
    rounded_w = torch.from_numpy(weight).bfloat16().double().numpy()
    rounded_x = torch.from_numpy(x).bfloat16().double().numpy()
    want = start + rounded_x @ rounded_w.T
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5 * np.abs(rounded_x).sum(1).max())
    # and it is not merely close to the float32 product: the rounding of x shows
    assert not np.allclose(out, start + x.astype(np.float64) @ rounded_w.T, rtol=1e-7, atol=0)


@needs_bf16
def test_a_nan_input_gives_nan_outputs_not_numbers():
    weight = bf16.to_bf16_bits(np.ones((4, 32), np.float32))
    x = np.zeros((2, 32), np.float32)
    x[1, 5] = np.nan
    out = np.zeros((2, 4), np.float32)
    bf16.matmul_add(weight, x, out)
    assert not np.isnan(out[0]).any() and np.isnan(out[1]).all()
