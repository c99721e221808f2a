"""Beam search against brute force on tiny models, its repetition guard, the command and the Generate endpoint."""

import itertools
import json

import numpy as np
import pytest
import torch
from gradio_client import Client

from charrnn.checkpoint.saving import load_checkpoint
from charrnn.cli.sample import main
from charrnn.config import ModelConfig
from charrnn.model import CharRNN
from charrnn.sampling.beam import beam_search, length_normalised, repeated_ngram_tokens
from charrnn.sampling.generate import encode_prompt
from charrnn.tokenizer import CharTokenizer, train_tokenizer

from tests.conftest import sharp_random_model

TOKENIZER = CharTokenizer("abcd")  # 4 characters and <unk>, which is never written


def tiny_model(cell: str, seed: int = 0) -> CharRNN:
    return sharp_random_model(TOKENIZER.vocab_size, cell, seed, scale=3)


@torch.no_grad()
def model_log_prob(model, prompt: str, text: str) -> float:
    """log P(text | prompt) by the model's own forward pass in torch: the reference the beams are checked against."""
    context, _ = encode_prompt(TOKENIZER, prompt)
    ids = TOKENIZER.encode(text)
    logits, _, _ = model(torch.from_numpy(np.concatenate([context, ids]))[None])
    log_probs = torch.log_softmax(logits[0].double(), dim=-1)
    return sum(log_probs[len(context) - 1 + i, token].item() for i, token in enumerate(ids))


def exhaustive(model, prompt: str, length: int) -> list[tuple[float, str]]:
    """Every text of `length` characters with its log-probability, likeliest first."""
    texts = ("".join(chars) for chars in itertools.product(TOKENIZER.chars, repeat=length))
    return sorted(((model_log_prob(model, prompt, text), text) for text in texts), reverse=True)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_a_wide_enough_beam_finds_the_exhaustive_ranking(cell):
    model, length = tiny_model(cell), 4
    truth = exhaustive(model, "ab", length)
    width = 4 ** (length - 1)  # every text of length - 1 is kept, so every text of length is scored
    beams = beam_search(model, TOKENIZER, "ab", length, width, length_penalty=0, no_repeat_ngram=0)
    assert len(beams) == width
    gaps = np.diff([log_prob for log_prob, _ in truth[:width + 1]])
    assert gaps.max() < -1e-6  # no ties: the order is the model's, not rounding's
    assert [beam.text for beam in beams] == [text for _, text in truth[:width]]
    np.testing.assert_allclose([beam.log_prob for beam in beams], [lp for lp, _ in truth[:width]], rtol=1e-6)


def test_a_narrow_beam_is_never_better_than_the_exhaustive_best_and_a_full_one_finds_it():
    model, length = tiny_model("lstm", seed=3), 5
    best = exhaustive(model, "d", length)[0][0]
    found = [beam_search(model, TOKENIZER, "d", length, width, length_penalty=0, no_repeat_ngram=0)[0].log_prob
             for width in (1, 2, 8, 4 ** 4)]
    assert all(log_prob <= best + 1e-5 for log_prob in found)  # float32 steps against float64 sums
    assert found[-1] == pytest.approx(best, abs=1e-5) and found[0] < best - 1e-3  # greedy missed it


def test_scores_are_the_models_own_log_probabilities_normalised_as_gnmt():
    model = tiny_model("gru", seed=1)
    beams = beam_search(model, TOKENIZER, "cab", 12, 5, length_penalty=0.6, no_repeat_ngram=4)
    assert len(beams) == 5 and len({beam.text for beam in beams}) == 5
    for beam in beams:
        assert beam.log_prob == pytest.approx(model_log_prob(model, "cab", beam.text), abs=1e-5)
        assert beam.score == pytest.approx(beam.log_prob / ((5 + 12) / 6) ** 0.6)
        assert TOKENIZER.decode(beam.ids) == beam.text
    assert [beam.score for beam in beams] == sorted((beam.score for beam in beams), reverse=True)


def test_a_long_prompt_read_by_the_fused_kernel_gives_the_same_scores():
    model = tiny_model("lstm", seed=5)
    prompt = "abcdabdcbadc" * 30  # longer than STEPPED_PROMPT: read by torch's LSTM, not stepped
    for beam in beam_search(model, TOKENIZER, prompt, 6, 3, no_repeat_ngram=0):
        assert beam.log_prob == pytest.approx(model_log_prob(model, prompt, beam.text), abs=1e-5)


def test_subword_beams_are_decoded_from_their_tokens(text_file):
    tokenizer = train_tokenizer("sp-bpe", text_file.read_text(encoding="utf-8"), vocab_size=320)
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=tokenizer.vocab_size, cell="gru", embedding_size=4, hidden_size=8,
                                num_layers=1)).eval()
    beams = beam_search(model, tokenizer, "All:", 8, 4)
    assert len(beams) == 4 and all(len(beam.ids) == 8 for beam in beams)
    assert [beam.text for beam in beams] == [tokenizer.decode(beam.ids) for beam in beams]


def repeated_ngrams(text: str, size: int) -> set[str]:
    grams = [text[i:i + size] for i in range(len(text) - size + 1)]
    return {gram for gram in grams if grams.count(gram) > 1}


def test_the_repetition_guard_removes_the_repeats_of_a_beam_that_loops():
    model = tiny_model("lstm", seed=2)
    looping = beam_search(model, TOKENIZER, "a", 40, 3, no_repeat_ngram=0)[0].text
    assert repeated_ngrams("a" + looping, 3)  # unguarded, the likeliest text goes round in a loop
    for beam in beam_search(model, TOKENIZER, "a", 40, 3, no_repeat_ngram=3):
        assert not repeated_ngrams("a" + beam.text, 3)  # the prompt counts too
        assert beam.log_prob == pytest.approx(model_log_prob(model, "a", beam.text), abs=1e-5)


def test_the_guard_kernel_marks_what_a_plain_scan_of_the_text_finds():
    rng = np.random.default_rng(0)
    for size in (1, 2, 3, 5):
        context = rng.integers(0, 3, 7)
        generated = rng.integers(0, 3, (4, 9))
        banned = np.zeros((4, 3), bool)
        repeated_ngram_tokens(context, generated, size, banned)
        for row in range(4):
            text = [*context.tolist(), *generated[row].tolist()]
            expected = {token for token in range(3)
                        if any(text[i:i + size] == text[len(text) - size + 1:] + [token]
                               for i in range(len(text) - size + 1))}
            assert set(np.flatnonzero(banned[row]).tolist()) == expected, (size, row)


def test_stop_ends_beams_early_and_the_length_penalty_ranks_them():
    model = tiny_model("lstm", seed=4)
    for alpha in (0.0, 1.0):
        beams = beam_search(model, TOKENIZER, "b", 10, 4, length_penalty=alpha, no_repeat_ngram=0, stop="c")
        for beam in beams:
            ended = beam.text.endswith("c") and beam.text.count("c") == 1
            assert ended or len(beam.text) == 10 and "c" not in beam.text
            assert beam.score == pytest.approx(length_normalised(beam.log_prob, len(beam.text), alpha))
        assert [beam.score for beam in beams] == sorted((beam.score for beam in beams), reverse=True)
    assert any(len(beam.text) < 10 for beam in beams)


def test_the_sample_command_prints_every_beam_best_first(tiny_checkpoint, capsys):
    result = main(["--checkpoint", str(tiny_checkpoint), "--prompt", "All:", "--length", "30", "--beam", "3"])
    out = capsys.readouterr().out
    assert out.count("--- beam ") == 3 and out.count("\nAll:") == 3
    assert json.loads(out.strip().splitlines()[-1]) == result
    assert result["log_probs"] == sorted(result["log_probs"], reverse=True) and result["chars"] == 30
    checkpoint = load_checkpoint(tiny_checkpoint)
    best = beam_search(checkpoint.model, checkpoint.tokenizer, "All:", 30, 3)[0]
    assert f"log-probability {best.log_prob:.2f}" in out and f"All:{best.text}\n" in out


@pytest.mark.parametrize("argv, message", [
    (["--beam", "-1"], "--beam must be a beam width in [2, 10,000], or 0 or 1 to sample; got -1"),
    (["--beam", "3", "--num-samples", "2"], "leave out --num-samples"),
    (["--beam", "3", "--no-repeat-ngram", "-2"], "--no-repeat-ngram must be >= 0"),
    (["--beam", "two"], "argument --beam: invalid int value: 'two'"),
])
def test_a_bad_beam_option_gets_a_clear_message(tiny_checkpoint, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(["--checkpoint", str(tiny_checkpoint), *argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and "Traceback" not in err


def test_the_generate_endpoint_searches_with_a_beam_width(app_url, tiny_library):
    client = Client(app_url, verbose=False)
    text, status = client.predict("All:", "lstm", 0.8, 0, 1.0, 40, 1, 2, 3, api_name="/generate")
    checkpoint = load_checkpoint(tiny_library / "lstm")
    beams = beam_search(checkpoint.model, checkpoint.tokenizer, "All:", 40, 3)
    assert text == f"--- beam 1 ---\nAll:{beams[0].text}\n\n--- beam 2 ---\nAll:{beams[1].text}"
    assert "Beam search, width 3" in status and f"{beams[0].log_prob:.1f}" in status
    sampled, sampled_status = client.predict("All:", "lstm", 0.8, 0, 1.0, 40, 1, 1, 1, api_name="/generate")
    assert len(sampled) == len("All:") + 40 and "seed 1" in sampled_status  # width 1 samples as before
