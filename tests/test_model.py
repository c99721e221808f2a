import numpy as np
import pytest
import torch

from charrnn.sampling import bf16
from charrnn.config import CELLS, ModelConfig
from charrnn.errors import CharRNNError
from charrnn.config import count_params, hidden_size_for_params
from charrnn.model import CharRNN
from charrnn.sampling.stepper import Stepper

B, T, E, H, V, L = 2, 5, 4, 6, 7, 3  # tiny shapes


def naive_forward(model: CharRNN, idx: torch.Tensor, weights: dict | None = None) -> torch.Tensor:
    """The textbook equations, one time step and one layer at a time, from the module's own weights (or the
    given ones)."""
    cell = model.config.cell
    p = weights or dict(model.rnn.named_parameters())
    h = [torch.zeros(idx.shape[0], H) for _ in range(L)]
    c = [torch.zeros(idx.shape[0], H) for _ in range(L)]
    outputs = []
    for t in range(idx.shape[1]):
        x = model.embedding(idx[:, t])
        for k in range(L):
            gi = x @ p[f"weight_ih_l{k}"].T + p[f"bias_ih_l{k}"]
            gh = h[k] @ p[f"weight_hh_l{k}"].T + p[f"bias_hh_l{k}"]
            if cell == "lstm":
                i, f, g, o = (gi + gh).chunk(4, dim=1)
                c[k] = torch.sigmoid(f) * c[k] + torch.sigmoid(i) * torch.tanh(g)
                h[k] = torch.sigmoid(o) * torch.tanh(c[k])
            elif cell == "gru":
                ir, iz, in_ = gi.chunk(3, dim=1)
                hr, hz, hn = gh.chunk(3, dim=1)
                r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
                n = torch.tanh(in_ + r * hn)
                h[k] = (1 - z) * n + z * h[k]
            else:
                h[k] = torch.tanh(gi + gh) if cell == "rnn_tanh" else torch.relu(gi + gh)
            x = h[k]
        outputs.append(model.head(x))
    return torch.stack(outputs, dim=1)


def tiny_model(cell: str) -> CharRNN:
    torch.manual_seed(0)
    return CharRNN(ModelConfig(vocab_size=V, cell=cell, embedding_size=E, hidden_size=H, num_layers=L)).eval()


@pytest.mark.parametrize("cell", CELLS)
def test_fused_forward_matches_the_naive_step_by_step_loop(cell):
    model = tiny_model(cell)
    idx = torch.randint(0, V, (B, T))
    with torch.no_grad():
        logits, _, _ = model(idx)
        expected = naive_forward(model, idx)
    assert logits.shape == (B, T, V)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_weight_drop_masks_the_recurrent_matrices_while_training_only():
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=V, cell="lstm", embedding_size=E, hidden_size=H, num_layers=L,
                                weight_drop=0.5))
    idx = torch.randint(0, V, (B, T))
    torch.manual_seed(1)
    logits, _, _ = model.train()(idx)
    # The same masks, drawn in the same order, applied by hand to W_hh only.
    torch.manual_seed(1)
    dropped = {name: torch.nn.functional.dropout(param, 0.5) if name.startswith("weight_hh") else param
               for name, param in model.rnn.named_parameters()}
    assert (dropped["weight_hh_l0"] == 0).float().mean() > 0.3
    torch.testing.assert_close(logits, naive_forward(model, idx, dropped), atol=1e-5, rtol=1e-4)
    logits.sum().backward()
    assert model.rnn.weight_hh_l0.grad.abs().sum() > 0
    with torch.no_grad():  # evaluation uses the full matrices
        torch.testing.assert_close(model.eval()(idx)[0], naive_forward(model, idx), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("weight_drop", [0.0, 0.3])
def test_the_stack_run_layer_by_layer_is_the_fused_stack_dropout_masks_and_gradients_included(cell, weight_drop,
                                                                                                monkeypatch):
    # On a GPU a training step runs the stack a layer at a time, so that torch (not cuDNN) draws the masks between
    # the layers. Forced here on the CPU, it must compute what nn.RNN/GRU/LSTM's own stack computes, bit for bit,
    # from the same random stream: the same masks in the same places, the same carried state, the same gradients.
    from charrnn import model as model_module

    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=V, cell=cell, embedding_size=E, hidden_size=H, num_layers=L, dropout=0.5,
                                input_dropout=0.2, weight_drop=weight_drop)).train()
    idx, targets = torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T))
    hidden = model.init_hidden(B)
    runs = []
    for devices in ((), ("cpu",)):  # fused, then layer by layer
        monkeypatch.setattr(model_module, "LAYER_BY_LAYER_DEVICES", devices)
        model.zero_grad()
        torch.manual_seed(1)
        logits, new_hidden, loss = model(idx, hidden, targets)
        loss.backward()
        runs.append((logits, new_hidden, {n: p.grad.clone() for n, p in model.named_parameters()}))
    (fused, fused_hidden, fused_grads), (by_layer, by_layer_hidden, by_layer_grads) = runs
    assert torch.equal(fused, by_layer)
    for a, b in zip(*(h if isinstance(h, tuple) else (h,) for h in (fused_hidden, by_layer_hidden))):
        assert torch.equal(a, b)
    assert all(torch.equal(fused_grads[name], by_layer_grads[name]) for name in fused_grads)
    torch.manual_seed(2)
    assert not torch.equal(model(idx, hidden)[0], by_layer)  # other masks from another seed: dropout is on


def round_matrices_to(model: CharRNN, dtype: torch.dtype) -> None:
    """Make every matrix the stepper keeps in `dtype` exactly representable in it."""
    with torch.no_grad():
        for name, param in [*model.rnn.named_parameters(), ("head.weight", model.head.weight)]:
            if "weight" in name:
                param.copy_(param.to(dtype).float())


PRECISIONS = ["float32", "half", pytest.param("bf16", marks=pytest.mark.skipif(
    not bf16.SUPPORTED, reason="this CPU has no AVX512-BF16"))]
# bf16 also rounds the activations going into each product to 8 bits of mantissa (relative error <= 2^-8),
# hence its tolerance; the others only reorder float32 sums.
TOLERANCE = {"float32": 1e-5, "half": 1e-5, "bf16": 2e-2}


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("cell", CELLS)
def test_fast_sampling_step_matches_the_torch_module(cell, precision):
    model = tiny_model(cell)
    if precision != "float32":
        round_matrices_to(model, torch.float16 if precision == "half" else torch.bfloat16)
    idx = torch.randint(0, V, (B, T))
    with torch.no_grad():
        logits, final_hidden, _ = model(idx)
    stepper = Stepper(model, precision)
    assert stepper.precision == precision
    hidden = stepper.to_numpy(model.init_hidden(B))
    tolerance = TOLERANCE[precision]
    for t in range(T):
        step_logits, hidden = stepper.step(idx[:, t].numpy(), hidden)
        np.testing.assert_allclose(step_logits, logits[:, t].numpy(), rtol=tolerance, atol=tolerance)
    back = stepper.to_torch(hidden)
    for got, want in zip(back if isinstance(back, tuple) else (back,),
                         final_hidden if isinstance(final_hidden, tuple) else (final_hidden,)):
        torch.testing.assert_close(got, want, rtol=tolerance, atol=tolerance)


def test_half_precision_stepper_stays_close_to_float32_weights_and_refuses_out_of_range_ones():
    model = tiny_model("lstm")
    idx = torch.randint(0, V, (1, 20))
    with torch.no_grad():
        logits = model(idx)[0][0].numpy()
    stepper = Stepper(model, "half")
    hidden = stepper.to_numpy(model.init_hidden(1))
    for t in range(idx.shape[1]):
        step_logits, hidden = stepper.step(idx[:, t].numpy(), hidden)
        np.testing.assert_allclose(step_logits[0], logits[t], atol=2e-3)
    with torch.no_grad():
        model.rnn.weight_hh_l0[0, 0] = 1e5  # beyond float16's range: the stepper keeps float32
    assert Stepper(model, "half").precision == "float32"


@pytest.mark.parametrize("cell", CELLS)
def test_parameter_count_formula_and_budget_helper(cell):
    model = CharRNN(ModelConfig(vocab_size=65, cell=cell, embedding_size=32, hidden_size=100, num_layers=2))
    assert count_params(cell, 100, 65, 32, 2) == model.num_params()
    hidden = hidden_size_for_params(1_000_000, cell, 65, 32, 2)
    assert abs(count_params(cell, hidden, 65, 32, 2) - 1_000_000) / 1_000_000 < 0.01


def test_matched_budgets_give_cells_within_one_percent_of_each_other():
    sizes = [count_params(c, hidden_size_for_params(3_300_000, c, 66, 64, 2), 66, 64, 2) for c in CELLS]
    assert max(sizes) / min(sizes) < 1.01


def test_lstm_forget_gate_bias_starts_at_one():
    model = CharRNN(ModelConfig(vocab_size=V, cell="lstm", embedding_size=E, hidden_size=H, num_layers=2))
    for k in range(2):
        total = getattr(model.rnn, f"bias_ih_l{k}") + getattr(model.rnn, f"bias_hh_l{k}")
        assert torch.all(total[H:2 * H] == 1.0) and torch.all(total[:H] == 0.0)


def test_input_dropout_drops_embedding_entries_while_training_only():
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=V, cell="lstm", embedding_size=64, hidden_size=H, num_layers=L,
                                input_dropout=0.5))
    seen = []
    model.rnn.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    idx = torch.randint(0, V, (B, 50))
    embedded = model.embedding(idx).detach()
    model.train()(idx)
    dropped = seen[-1] == 0
    assert 0.4 < dropped.float().mean() < 0.6
    # Kept entries are scaled by 1 / (1 - p) so the expected input is unchanged.
    torch.testing.assert_close(seen[-1][~dropped], embedded[~dropped] * 2)
    with torch.no_grad():
        model.eval()(idx)
    torch.testing.assert_close(seen[-1], embedded)


def test_weight_tying_shares_the_matrix():
    model = CharRNN(ModelConfig(vocab_size=V, embedding_size=H, hidden_size=H, tie_weights=True))
    assert model.head.weight is model.embedding.weight
    assert model.num_params() == count_params("lstm", H, V, H, 2, tie_weights=True)


@pytest.mark.parametrize("bad", [
    dict(cell="transformer"), dict(hidden_size=0), dict(num_layers=-1), dict(embedding_size=0),
    dict(dropout=1.0), dict(input_dropout=1.0), dict(weight_drop=1.0), dict(tie_weights=True),
])
def test_bad_model_configs_get_a_clear_message(bad):
    with pytest.raises(CharRNNError) as err:
        ModelConfig(vocab_size=V, **bad)
    if "cell" in bad:
        assert "rnn_tanh, rnn_relu, gru, lstm" in str(err.value)


def test_a_model_learns_a_periodic_sequence_to_near_zero_loss():
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=6, cell="lstm", embedding_size=8, hidden_size=32, num_layers=1))
    pattern = torch.tensor([1, 2, 3, 4, 5, 3, 2])  # period 7: the next token needs more than the current one
    data = pattern.repeat(40)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        starts = torch.randint(0, len(data) - 33, (8,))
        batch = torch.stack([data[s:s + 33] for s in starts])
        _, _, loss = model(batch[:, :-1], targets=batch[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        _, _, loss = model(data[None, :-1], targets=data[None, 1:])
    assert loss.item() < 0.05


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers, tied", [(1, False), (3, False), (2, True)])
def test_parameter_shapes_are_those_of_the_built_model(cell, layers, tied):
    from charrnn.model import parameter_shapes

    config = ModelConfig(vocab_size=11, cell=cell, embedding_size=8 if tied else 6, hidden_size=8,
                         num_layers=layers, tie_weights=tied)
    built = {name: tuple(t.shape) for name, t in CharRNN(config).state_dict().items()}
    assert parameter_shapes(config) == built


@pytest.mark.parametrize("rows", [7, 8, 9, 16, 33])
def test_a_big_batch_shared_between_threads_steps_to_the_same_bits(rows):
    from charrnn.sampling import stepper as stepper_module

    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=20, cell="lstm", hidden_size=48, embedding_size=8, num_layers=2))
    alone, shared = Stepper(model), Stepper(model, threads=3)
    rng = np.random.default_rng(rows)
    tokens = rng.integers(0, 20, rows)
    hidden = rng.normal(size=(alone.state_size, rows, 48)).astype(np.float32)
    (logits, after), (shared_logits, shared_after) = alone.step(tokens, hidden), shared.step(tokens, hidden[:, :])
    assert np.array_equal(logits, shared_logits) and np.array_equal(after, shared_after)
    if rows >= stepper_module.SPLIT_ROWS and (__import__("os").cpu_count() or 1) > 1:
        assert stepper_module._pool is not None  # the shared path ran
    shares = stepper_module._shared(rows, 3)
    assert shares[0][0] == 0 and shares[-1][1] == rows and all(a[1] == b[0] for a, b in zip(shares, shares[1:]))
