"""Write-together suggestions on tiny models: their probabilities are the model's own, words end at a boundary,
and the cached state gives the same answers as reading the text anew."""

import numpy as np
import pytest
import torch

from charrnn.model import CharRNN
from charrnn.sampling.generate import encode_prompt
from charrnn.sampling.suggest import Suggester, is_boundary, suggestions
from charrnn.tokenizer import UNKNOWN_ID, CharTokenizer

from tests.conftest import sharp_random_model

TOKENIZER = CharTokenizer("ab .\n")


def tiny_model(cell: str = "lstm", seed: int = 0) -> CharRNN:
    return sharp_random_model(TOKENIZER.vocab_size, cell, seed, scale=2)


@torch.no_grad()
def model_probs(model, text: str, temperature: float = 1.0) -> np.ndarray:
    """The next-character distribution by the model's own forward pass in torch."""
    ids, _ = encode_prompt(TOKENIZER, text)
    logits, _, _ = model(torch.from_numpy(ids)[None])
    logits = logits[0, -1].double() / temperature
    probs = torch.softmax(logits, -1).numpy()
    probs[UNKNOWN_ID] = 0  # never suggested, though its share stays out of the others'
    return probs


def word_prob(model, text: str, word: str, temperature: float = 1.0) -> float:
    prob = 1.0
    for i, char in enumerate(word):
        prob *= model_probs(model, text + word[:i], temperature)[TOKENIZER.encode(char)[0]]
    return prob


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_character_probabilities_are_the_models_softmax(cell, temperature):
    model = tiny_model(cell)
    found = suggestions(model, TOKENIZER, "ab a", n=3, temperature=temperature)
    probs = model_probs(model, "ab a", temperature)
    assert len(found.chars) == 3
    expected = sorted(((p, TOKENIZER.decode([i])) for i, p in enumerate(probs) if i != UNKNOWN_ID), reverse=True)[:3]
    assert [s.text for s in found.chars] == [text for _, text in expected]
    np.testing.assert_allclose([s.probability for s in found.chars], [p for p, _ in expected], rtol=1e-5)


def test_words_end_at_a_boundary_with_the_product_of_their_steps():
    model = tiny_model()
    found = suggestions(model, TOKENIZER, "ab", n=4, max_chars=8)
    assert 1 <= len(found.words) <= 4
    probs = [s.probability for s in found.words]
    assert probs == sorted(probs, reverse=True)
    for word in found.words:
        assert is_boundary(word.text[-1])
        inner = word.text.lstrip(" .\n")[:-1]
        assert inner and not any(is_boundary(c) for c in inner)  # one word, ended by its first boundary
        assert word.probability == pytest.approx(word_prob(model, "ab", word.text), rel=1e-4)


def test_n_is_respected_and_an_empty_text_works():
    model = tiny_model("gru")
    for n in (1, 2, 5):
        found = suggestions(model, TOKENIZER, "", n=n)
        assert len(found.chars) == n and len(found.words) <= n
    assert found.best is not None


def test_the_cached_state_gives_what_reading_anew_gives():
    model = tiny_model()
    kept = Suggester(model, TOKENIZER)
    for text in ["a", "ab", "ab b", "ab ba.", "b", "b a"]:  # growing, then a different text
        cached, fresh = kept.suggest(text, n=3), Suggester(model, TOKENIZER).suggest(text, n=3)
        assert [s.text for s in cached.chars + cached.words] == [s.text for s in fresh.chars + fresh.words]
        np.testing.assert_allclose([s.probability for s in cached.chars], [s.probability for s in fresh.chars],
                                   rtol=1e-5)


def test_the_write_command_takes_numbers_undoes_and_adds_typed_text(tmp_path):
    import io

    from charrnn.checkpoint.saving import save_checkpoint
    from charrnn.cli.write import main

    model = tiny_model()
    save_checkpoint(tmp_path / "tiny", model, TOKENIZER)
    first = Suggester(model, TOKENIZER).suggest("ab", n=2)
    taken = len(first.words) + 1  # the first character, numbered after the words
    stdin = io.StringIO(f"{taken}\n1\nu\nba\\n\n\n")  # take, take, undo the second, type "ba" and a newline, stop
    out = io.StringIO()
    text = main(["--checkpoint", str(tmp_path / "tiny"), "--text", "ab", "--suggestions", "2"], stdin, out)
    assert text == "ab" + first.chars[0].text + "ba\n"
    shown = out.getvalue()
    assert f"[{taken}] " in shown and "%" in shown
    assert shown.rstrip().endswith("ab" + first.chars[0].text + "ba")
