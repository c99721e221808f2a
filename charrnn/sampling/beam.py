"""Beam search: the continuations of a prompt the model finds most likely, rather than samples of it.

Sampling draws each token at random. Beam search keeps the `beam_width` most probable texts so far at every
step, extends each by every token, and keeps the most probable of those; once the width covers every text of a
length (vocabulary ** length), it finds the most probable continuations exactly. Two additions make it useful:

- A repetition guard. The classic failure of beam search is a beam that loops ("the state of the state of the
  ..."): a phrase the model has just read is the likeliest thing to come next. As Hugging Face's
  `no_repeat_ngram_size`, a beam may not write an n-gram of `no_repeat_ngram` tokens that its text (prompt
  included) already holds. For a character model n counts characters, which repeat far more often than words,
  so it is longer than the word n-grams of translation: a name or a short phrase may come back, a line may not.
- Length normalisation, GNMT's (Wu et al. 2016): beams are ranked by log P / ((5 + length) / 6) ** alpha, the
  length counted in generated tokens. Without `stop` every beam has `length` tokens and the ranking is that of
  the total log-probability; with `stop`, a beam that ends early would otherwise win for having fewer (negative)
  terms in its sum. alpha = 0 ranks by total log-probability.

All beams step together on the Stepper (one compiled call per token), with float32 weights by default so that a
beam's log-probability is the model's own; the prompt is read once and its state shared by the beams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np
from numba import njit

from charrnn.errors import check
from charrnn.sampling.generate import NON_FINITE, encode_prompt, read_prompt
from charrnn.sampling.stepper import Stepper
from charrnn.tokenizer import UNKNOWN_ID, CharTokenizer, Tokenizer

if TYPE_CHECKING:
    from charrnn.model import CharRNN

LENGTH_PENALTY = 0.6  # GNMT's alpha; it matters only when beams end at different lengths (a stop string)
# Characters, not words: long enough that a name, a stage direction or a common phrase may come back, short
# enough that a line the beam has already written cannot come back whole (the choice: docs/benchmarks.md).
NO_REPEAT_NGRAM = 16


@dataclass(frozen=True)
class Beam:
    text: str  # the continuation, prompt not included
    log_prob: float  # natural log of the continuation's probability given the prompt, under the model
    score: float  # log_prob after length normalisation: what beams are ranked by
    ids: tuple[int, ...]  # the continuation's tokens

    @property
    def bits_per_char(self) -> float:
        """-log2 of the probability per character of the text (0 for no text)."""
        return -self.log_prob / math.log(2) / len(self.text) if self.text else 0.0


def length_normalised(log_prob: float, length: int, alpha: float) -> float:
    """GNMT's score: log_prob / ((5 + length) / 6) ** alpha."""
    return log_prob / ((5 + length) / 6) ** alpha


@njit(cache=True, nogil=True)
def repeated_ngram_tokens(context, generated, size, banned):
    """Mark in banned (B, V) the tokens that would make row b's text (context (P,), then generated (B, T)) end
    with an n-gram of `size` tokens it already holds: every token that followed an earlier occurrence of the
    text's last size - 1 tokens."""
    rows, steps = generated.shape
    total = len(context) + steps
    prefix = size - 1
    suffix = total - prefix  # where the text's last size - 1 tokens start
    text = np.empty(total, np.int64)  # one row's text at a time, so the scan is one tight loop over one array
    text[:len(context)] = context
    for row in range(rows):
        text[len(context):] = generated[row]
        for start in range(total - size + 1):  # an earlier (size - 1)-gram with a token after it
            j = 0
            while j < prefix and text[start + j] == text[suffix + j]:
                j += 1
            if j == prefix:
                banned[row, text[start + prefix]] = True


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _best_first(totals: np.ndarray, first: int) -> Iterator[int]:
    """Flat indices of the finite entries of totals, highest first. The `first` best are sorted at once, the
    rest only if asked for: a step needs more than 2 x beam_width candidates only when many beams end at once."""
    flat = totals.ravel()
    finite = np.flatnonzero(np.isfinite(flat))
    key = -flat[finite]
    if len(finite) > first:
        split = np.argpartition(key, first - 1)
        parts = (split[:first], split[first:])
    else:
        parts = (np.arange(len(finite)),)
    for part in parts:
        yield from finite[part[np.argsort(key[part], kind="stable")]].tolist()


class BeamSearch:
    """The beams between steps: their states (S, n, H), generated tokens (n, T), log-probabilities and texts, and
    the beams that have ended (wrote `stop`, or were left no token by the guard), best first. `step` advances
    every live beam by one token; `ranked` is the best `beam_width` of all so far."""

    def __init__(self, model: CharRNN, tokenizer: Tokenizer, prompt: str = "", length: int = 200,
                 beam_width: int = 4, length_penalty: float = LENGTH_PENALTY, no_repeat_ngram: int = NO_REPEAT_NGRAM,
                 stop: str | None = None, stepper: Stepper | None = None):
        check(length >= 0, f"length must be >= 0, got {length}")
        check(beam_width >= 1, f"the beam width must be >= 1, got {beam_width}")
        check(no_repeat_ngram >= 0, f"the repetition guard's n-gram size must be >= 0 (0 = off), "
                                    f"got {no_repeat_ngram}")
        check(math.isfinite(length_penalty), f"the length penalty must be a finite number, got {length_penalty}")
        self.tokenizer, self.length, self.width = tokenizer, length, beam_width
        self.alpha, self.ngram, self.stop = length_penalty, no_repeat_ngram, stop
        self.stepper = stepper or Stepper(model, precision="float32")
        self.context, _ = encode_prompt(tokenizer, prompt)
        self.char_level = isinstance(tokenizer, CharTokenizer)
        self.hidden = read_prompt(model, self.stepper, self.context[:-1])  # (S, 1, H): one beam to start from
        self.tokens = self.context[-1:]  # each beam's next input
        self.generated = np.zeros((1, 0), np.int64)  # (n, T)
        self.log_probs = np.zeros(1)
        self.texts = [""]
        self.ended: list[Beam] = []
        self.steps = 0

    @property
    def finished(self) -> bool:
        if self.steps >= self.length or len(self.texts) == 0:
            return True
        if len(self.ended) < self.width:
            return False
        # A live beam's log-probability only falls; its score is at best that over the largest normaliser it
        # could reach, so once no live beam can pass the worst ended beam kept, the search is over.
        normaliser = max(((5 + self.steps + 1) / 6) ** self.alpha, ((5 + self.length) / 6) ** self.alpha)
        return self.log_probs.max() / normaliser < self.ended[-1].score

    def _beam(self, row: int, log_prob: float, text: str, token: int | None = None) -> Beam:
        ids = tuple(self.generated[row].tolist()) + (() if token is None else (token,))
        return Beam(text, float(log_prob), length_normalised(float(log_prob), len(ids), self.alpha), ids)

    def _end(self, beam: Beam) -> None:
        self.ended.append(beam)
        self.ended.sort(key=lambda b: -b.score)
        del self.ended[self.width:]

    def _text(self, row: int, token: int) -> str:
        if self.char_level:
            return self.texts[row] + self.tokenizer.decode([token])
        return self.tokenizer.decode([*self.generated[row].tolist(), token])  # a subword may be part of a character

    def _scores(self, logits: np.ndarray) -> np.ndarray:
        """(n, V) totals of every beam extended by every token; -inf where a token may not follow."""
        check(bool(np.isfinite(logits).all()), NON_FINITE)
        totals = self.log_probs[:, None] + _log_softmax(logits)
        if self.char_level:
            totals[:, UNKNOWN_ID] = -np.inf  # never write <unk>
        if self.ngram:
            banned = np.zeros(totals.shape, np.bool_)
            repeated_ngram_tokens(self.context, self.generated, self.ngram, banned)
            totals[banned] = -np.inf
        return totals

    def step(self) -> None:
        logits, hidden = self.stepper.step(self.tokens, self.hidden)
        totals = self._scores(logits)
        for row in np.flatnonzero(~np.isfinite(totals).any(axis=1)):  # the guard left it nothing to write
            self._end(self._beam(row, self.log_probs[row], self.texts[row]))
        vocab = totals.shape[1]
        rows, tokens, texts = [], [], []
        for flat in _best_first(totals, 2 * self.width):
            row, token = divmod(flat, vocab)
            text = self._text(row, token)
            if self.stop and text.endswith(self.stop):
                self._end(self._beam(row, totals[row, token], text, token))
                continue
            rows.append(row)
            tokens.append(token)
            texts.append(text)
            if len(rows) == self.width:
                break
        self.hidden = hidden[:, rows]
        self.tokens = np.array(tokens, np.int64)
        self.generated = np.concatenate([self.generated[rows], self.tokens[:, None]], axis=1)
        self.log_probs = totals[rows, tokens]
        self.texts = texts
        self.steps += 1

    def run(self) -> Iterator[BeamSearch]:
        """Step until the search is over, yielding the search after each step (its `ranked()` beams are the best
        so far)."""
        while not self.finished:
            self.step()
            yield self

    def ranked(self) -> list[Beam]:
        """The best `beam_width` beams so far, ended or live, best first."""
        live = [self._beam(row, log_prob, text)
                for row, (log_prob, text) in enumerate(zip(self.log_probs, self.texts))]
        return sorted(self.ended + live, key=lambda b: -b.score)[:self.width]


def beam_search(model: CharRNN, tokenizer: Tokenizer, prompt: str = "", length: int = 200, beam_width: int = 4,
                length_penalty: float = LENGTH_PENALTY, no_repeat_ngram: int = NO_REPEAT_NGRAM,
                stop: str | None = None, stepper: Stepper | None = None) -> list[Beam]:
    """The `beam_width` best continuations of `prompt`, best first, each `length` tokens long (shorter if it
    ended with `stop`, which is kept, or if the guard left it nothing to write).

    length_penalty: GNMT's alpha (0 = rank by total log-probability). no_repeat_ngram: no beam may repeat an
    n-gram of this many tokens already in its text, prompt included (0 = no guard). stepper: the model's Stepper
    (default: one with float32 weights, so log-probabilities are the model's own).
    """
    search = BeamSearch(model, tokenizer, prompt, length, beam_width, length_penalty, no_repeat_ngram, stop, stepper)
    for _ in search.run():
        pass
    return search.ranked()
