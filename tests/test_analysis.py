import math
import subprocess
import sys
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from charrnn.analysis import memory
from charrnn.analysis.gates import gate_means
from charrnn.analysis.gradients import state_gradient_norms
from charrnn.analysis.neurons import FEATURES, interpretable_units
from charrnn.analysis.surprise import surprise
from charrnn.analysis.trace import trace
from charrnn.checkpoint.saving import load_checkpoint
from charrnn.config import CELLS, ModelConfig
from charrnn.evaluate import evaluate_ids
from charrnn.model import CharRNN
from tests.conftest import ROOT

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"


def test_surprisal_adds_up_to_the_models_negative_log_likelihood(tiny_checkpoint):
    checkpoint = load_checkpoint(tiny_checkpoint)
    result = surprise(checkpoint.model, checkpoint.tokenizer, TEXT)
    nll = evaluate_ids(checkpoint.model, checkpoint.tokenizer.encode("\n" + TEXT), streams=1)
    assert len(result.bits) == len(TEXT)
    assert result.bits.sum() * math.log(2) == pytest.approx(nll["nats"] * nll["tokens"], rel=1e-5)
    assert all(len(top) == 5 and top[0][1] >= top[-1][1] for top in result.top)


@pytest.mark.parametrize("cell", CELLS)
def test_the_trace_replays_the_fused_model_exactly(cell):
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=9, cell=cell, embedding_size=4, hidden_size=6, num_layers=2)).eval()
    ids = np.random.default_rng(0).integers(0, 9, 40)
    recorded = trace(model, ids)
    with torch.no_grad():
        logits, _, _ = model(torch.from_numpy(ids)[None])
    torch.testing.assert_close(recorded.logits, logits[0], rtol=1e-5, atol=1e-5)
    assert len(recorded.hidden) == 2 and recorded.hidden[0].shape == (40, 6)
    assert bool(recorded.cell) == (cell == "lstm")


@pytest.mark.parametrize("cell", CELLS)
def test_gradient_flow_matches_autograd_through_the_fused_module(cell):
    """Independent check: start nn.LSTM/GRU/RNN from the state k steps back and differentiate the loss."""
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=7, cell=cell, embedding_size=4, hidden_size=5, num_layers=2)).eval()
    ids = np.random.default_rng(1).integers(0, 7, 30)
    norms = state_gradient_norms(model, ids, max_distance=10)
    inputs, target = torch.from_numpy(ids[:-1]), torch.tensor(ids[-1])
    for k in range(11):
        with torch.no_grad():
            _, state, _ = model(inputs[None, :len(inputs) - k])
        state = tuple(s.clone().requires_grad_() for s in (state if isinstance(state, tuple) else (state,)))
        fused_state = state if cell == "lstm" else state[0]
        if k:
            logits = model(inputs[None, len(inputs) - k:], fused_state)[0][0, -1]
        else:
            logits = model.head(state[0][-1, 0])
        grads = torch.autograd.grad(F.cross_entropy(logits[None], target[None]), state, allow_unused=True)
        expected = math.sqrt(sum(float((g ** 2).sum()) for g in grads if g is not None))
        assert norms[k] == pytest.approx(expected, rel=1e-4, abs=1e-9)


def test_gates_and_units_are_summarised(tiny_checkpoint):
    checkpoint = load_checkpoint(tiny_checkpoint)
    text = TEXT * 3
    recorded = trace(checkpoint.model, checkpoint.tokenizer.encode(text))
    means = gate_means(recorded, "lstm")
    assert set(means["gate"]) == {"input", "forget", "output"} and means["mean"].between(0, 1).all()
    units = interpretable_units(recorded, text)
    assert units and all(-1 <= u.correlation <= 1 for u in units)
    assert [abs(u.correlation) for u in units] == sorted((abs(u.correlation) for u in units), reverse=True)
    assert set(u.feature for u in units) <= set(FEATURES)


def test_the_memory_task_has_the_stated_structure():
    rng = np.random.default_rng(0)
    diary = memory.make_days(rng, 2000, max_gap=12)
    assert set(diary) == set("rbsz")
    activities = diary.replace("z", "")
    assert all(activities[i:i + 3] in ("rbs", "bsr", "srb") for i in range(len(activities) - 2))  # the cycle resumes
    spells = [len(s) for s in re.findall("z+", diary)]
    assert spells and max(spells) <= 12
    text, answer = memory.make_probe(rng, gap=7)
    assert text.endswith("z" * 7) and text[-8] != "z"
    assert answer == "rbs"["rbs".index(text[-8]) - 2]  # the activity after the last one before the rain


@pytest.mark.slow
def test_a_trained_lstm_remembers_across_a_long_gap_where_a_plain_rnn_does_not():
    settings = memory.MemorySettings(steps=300, seed=0)
    lstm = memory.train_memory_model("lstm", settings)
    rnn = memory.train_memory_model("rnn_tanh", settings)
    lstm_acc = memory.accuracy_after_gap(lstm, [25])[25]
    rnn_acc = memory.accuracy_after_gap(rnn, [25])[25]
    assert lstm_acc > 0.9 and lstm_acc > rnn_acc + 0.2


def test_the_analysis_package_is_pure_computation_without_the_service_or_the_ui():
    code = ("import pkgutil, importlib, sys, charrnn.analysis as a\n"
            "for m in pkgutil.iter_modules(a.__path__): importlib.import_module('charrnn.analysis.' + m.name)\n"
            "print(sorted(n for n in sys.modules if n.startswith('charrnn.service') or n.startswith('gradio')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_an_underflowed_gradient_norm_is_not_drawn_as_a_value():
    from charrnn.analysis.gradients import first_underflow, gradient_flow_table

    curve = np.array([1.0, 1e-3, 1e-40, 0.0, 0.0])
    table = gradient_flow_table({"rnn": curve})
    assert table["log10 norm"].iloc[2] == pytest.approx(-40, abs=0.01)  # tiny but measured
    assert table["log10 norm"].iloc[3:].isna().all()  # below float32: no value, the line stops
    assert first_underflow(curve) == 3 and first_underflow(curve[:3]) is None


def test_the_gradient_norm_histogram_spans_only_the_bins_with_steps():
    from charrnn.analysis.gradients import grad_norm_histogram

    metrics = {"grad_norm": {"edges": [0.1, 1.0, 10.0, 100.0], "counts": [0, 6, 0, 2, 0]}}
    table = grad_norm_histogram(metrics)
    assert table["norm to"].tolist() == [1.0, 10.0, 100.0]  # the empty bin between them stays, the outer ones go
    assert table["share"].sum() == pytest.approx(1.0)
