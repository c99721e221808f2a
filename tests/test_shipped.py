"""The shipped checkpoints: each loads, its card shows its metrics, and its validation figure reproduces."""

import math

import pytest

from charrnn import service
from charrnn.checkpoint.saving import WEIGHTS, load_checkpoint
from charrnn.data import load_corpus, resolve_source
from charrnn.evaluate import evaluate_ids
from tests.conftest import ROOT, SHARED_DATA

SHIPPED = [name for name in service.SHIPPED_ORDER if (ROOT / "checkpoints" / name / WEIGHTS).is_file()]


def test_the_comparison_trio_is_shipped_with_matched_budgets():
    assert {"rnn", "gru", "lstm"} <= set(SHIPPED)
    sizes = [load_checkpoint(ROOT / "checkpoints" / n).model.num_params() for n in ("rnn", "gru", "lstm")]
    assert max(sizes) / min(sizes) < 1.10
    minutes = [load_checkpoint(ROOT / "checkpoints" / n).meta["training"]["time_budget"] for n in ("rnn", "gru", "lstm")]
    assert len(set(minutes)) == 1


def test_the_best_lstm_is_better_than_every_model_of_the_comparison():
    assert "lstm_best" in SHIPPED
    best = load_checkpoint(ROOT / "checkpoints" / "lstm_best")
    assert best.model.config.cell == "lstm" and best.meta["training"]["time_budget"] <= 60
    for name in ("rnn", "gru", "lstm"):
        assert best.metrics["val_nats"] < load_checkpoint(ROOT / "checkpoints" / name).metrics["val_nats"]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_file_is_small_enough_for_a_space_without_lfs(name):
    for path in (ROOT / "checkpoints" / name).iterdir():
        assert path.stat().st_size < 10 * 2**20, path


@pytest.mark.parametrize("name", SHIPPED)
def test_the_card_reports_the_checkpoint_metrics(name):
    library = service.ModelLibrary()
    metrics = load_checkpoint(ROOT / "checkpoints" / name).metrics
    card = service.model_card(library, name)
    assert f"{metrics['val_bpc']:.3f}"[:4] in card and "parameters" in card and "python -m charrnn.train" in card
    assert metrics["curve"] and metrics["hardware"] and metrics["train_chars_per_s"] > 0


@pytest.mark.skipif(not (SHARED_DATA / "tiny_shakespeare").is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize("name", SHIPPED)
def test_the_validation_figure_reproduces_on_the_weights_as_stored(name):
    checkpoint = load_checkpoint(ROOT / "checkpoints" / name)
    corpus = load_corpus(resolve_source(str(SHARED_DATA / "tiny_shakespeare")), tokenizer=checkpoint.tokenizer)
    # The benchmark split: the last 10% of Tiny Shakespeare (validation + test), 111,540 characters.
    assert len(corpus.val) == 111_540
    result = evaluate_ids(checkpoint.model, corpus.val, corpus.val_chars)
    assert result["bpc"] == pytest.approx(checkpoint.metrics["val_bpc"], abs=2e-3)
    assert math.isclose(result["nats"] / math.log(2), result["bpc"])
