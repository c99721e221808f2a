import numpy as np
import pytest

from charrnn.tokenizer import UNKNOWN_ID, CharTokenizer, tokenizer_from_dict, train_tokenizer

UNICODE_TEXT = "\ufeffHéllo wörld 🎉\tTab\r\nCRLF line\n\nΣίσυφος — 日本語  two  spaces \n"


def test_char_tokenizer_round_trips_any_unicode_exactly():
    tokenizer = CharTokenizer.train(UNICODE_TEXT)
    ids = tokenizer.encode(UNICODE_TEXT)
    assert len(ids) == len(UNICODE_TEXT)
    assert tokenizer.decode(ids.tolist()) == UNICODE_TEXT
    assert UNKNOWN_ID not in ids


def test_char_tokenizer_reserves_an_unknown_id_and_names_unknown_chars():
    tokenizer = CharTokenizer.train("abc")
    assert tokenizer.vocab_size == 4
    assert tokenizer.encode("abzc").tolist() == [1, 2, UNKNOWN_ID, 3]
    assert tokenizer.unknown_chars("abz🎉c") == sorted(["z", "🎉"])


def test_char_tokenizer_survives_serialisation():
    tokenizer = CharTokenizer.train(UNICODE_TEXT)
    again = tokenizer_from_dict(tokenizer.to_dict())
    assert np.array_equal(again.encode(UNICODE_TEXT), tokenizer.encode(UNICODE_TEXT))


@pytest.mark.parametrize("kind", ["sp-bpe", "sp-unigram"])
def test_sentencepiece_round_trips_exactly_including_unseen_characters(kind):
    corpus = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 40
              + UNICODE_TEXT)
    tokenizer = train_tokenizer(kind, corpus, vocab_size=400)
    assert 300 <= tokenizer.vocab_size <= 400
    unseen = "Zürich ∑ 漢字 \r\n\t tabs\tand  double  spaces\n"
    for text in (corpus, UNICODE_TEXT, unseen):
        assert tokenizer.decode(tokenizer.encode(text).tolist()) == text
    assert len(tokenizer.encode(corpus)) < 0.7 * len(corpus)  # subwords really merge characters
    again = tokenizer_from_dict(tokenizer.to_dict())
    assert again.encode(unseen).tolist() == tokenizer.encode(unseen).tolist()
