import json

import numpy as np
import pytest

from charrnn.checkpoint import load_checkpoint
from charrnn.errors import CharRNNError
from charrnn.sample import (SamplingSettings, draw_tokens, encode_prompt, generate, main, next_token_probabilities,
                            stream)


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint):
    checkpoint = load_checkpoint(tiny_checkpoint)
    return checkpoint.model, checkpoint.tokenizer


def test_the_same_seed_gives_the_same_text_and_another_seed_another(tiny):
    model, tokenizer = tiny
    first = generate(model, tokenizer, "All:", 80, temperature=1.0, seed=7)
    assert len(first) == 80
    assert generate(model, tokenizer, "All:", 80, temperature=1.0, seed=7) == first
    assert generate(model, tokenizer, "All:", 80, temperature=1.0, seed=8) != first


def test_greedy_top_k_1_and_a_tiny_top_p_agree(tiny):
    model, tokenizer = tiny
    greedy = generate(model, tokenizer, "First", 40, temperature=0)
    assert generate(model, tokenizer, "First", 40, temperature=1.0, top_k=1, seed=3) == greedy
    assert generate(model, tokenizer, "First", 40, temperature=1.0, top_p=1e-6, seed=4) == greedy


def test_filters_keep_the_right_tokens():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    top2 = next_token_probabilities(logits, SamplingSettings(temperature=1.0, top_k=2))
    np.testing.assert_allclose(top2, [[0.625, 0.375, 0, 0]])
    nucleus = next_token_probabilities(logits, SamplingSettings(temperature=1.0, top_p=0.75))
    np.testing.assert_allclose(nucleus, [[0.625, 0.375, 0, 0]])  # 0.5 + 0.3 is the smallest set reaching 0.75
    hot = next_token_probabilities(logits, SamplingSettings(temperature=2.0))
    assert hot[0, 3] > 0.05  # higher temperature flattens the distribution


@pytest.mark.parametrize("settings", [SamplingSettings(temperature=1.0), SamplingSettings(temperature=0.7, top_k=3),
                                      SamplingSettings(temperature=1.3, top_p=0.8)])
def test_draws_follow_the_filtered_probabilities(settings):
    logits = np.log(np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04], dtype=np.float32))
    expected = next_token_probabilities(logits[None], settings, banned=1)[0]
    rows = 40_000
    tokens = draw_tokens(np.tile(logits, (rows, 1)), settings, np.random.default_rng(0), banned=1)
    frequencies = np.bincount(tokens, minlength=len(logits)) / rows
    assert frequencies[1] == 0 and np.all(frequencies[expected == 0] == 0)
    np.testing.assert_allclose(frequencies, expected, atol=0.01)


def test_the_unknown_token_is_never_sampled(tiny):
    model, tokenizer = tiny
    text = generate(model, tokenizer, "", 300, temperature=3.0, seed=0)
    assert "\ufffd" not in text and set(text) <= set(tokenizer.chars)


def test_stream_yields_one_character_per_step_and_stops_at_the_stop_string(tiny):
    model, tokenizer = tiny
    pieces = list(stream(model, tokenizer, "All:", 200, SamplingSettings(temperature=0.5), seed=1, stop="\n"))
    text = "".join(p[0] for p in pieces)
    assert all(len(p[0]) == 1 for p in pieces)
    assert text.endswith("\n") and text.count("\n") == 1


def test_batched_samples_differ(tiny):
    model, tokenizer = tiny
    texts = ["", "", ""]
    for pieces in stream(model, tokenizer, "All", 60, SamplingSettings(temperature=1.0), seed=5, num_samples=3):
        texts = [t + p for t, p in zip(texts, pieces)]
    assert all(len(t) == 60 for t in texts) and len(set(texts)) == 3


def test_unknown_prompt_characters_are_reported_not_fatal(tiny):
    model, tokenizer = tiny
    ids, unknown = encode_prompt(tokenizer, "All: 🎉 ψ")
    assert unknown == sorted(["🎉", "ψ"]) and len(ids) > 0
    assert len(generate(model, tokenizer, "🎉", 10, seed=0)) == 10  # nothing known: starts from a newline


@pytest.mark.parametrize("settings, message", [
    (dict(temperature=-0.1), "temperature must be >= 0"),
    (dict(top_p=0.0), "top-p must be in"),
    (dict(top_p=1.5), "top-p must be in"),
    (dict(top_k=-1), "top-k must be >= 0"),
])
def test_bad_sampling_settings_are_refused(settings, message):
    with pytest.raises(CharRNNError, match=message):
        SamplingSettings(**settings)


def test_sample_cli_streams_text_and_ends_with_a_json_line(tiny_checkpoint, capsys):
    main(["--checkpoint", str(tiny_checkpoint), "--prompt", "All:", "--length", "50", "--seed", "3"])
    out = capsys.readouterr().out.splitlines()
    figures = json.loads(out[-1])
    assert out[0].startswith("All:") and figures["chars"] == 50 and figures["chars_per_s"] > 0


def test_sample_cli_rejects_a_bad_temperature_with_a_message(tiny_checkpoint, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--checkpoint", str(tiny_checkpoint), "--temperature", "-1"])
    assert exit_info.value.code == 2 and "temperature" in capsys.readouterr().err
