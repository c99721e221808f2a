"""Suggestions for writing together with a model: the likeliest next characters at the cursor, and the likeliest
whole words or phrases, each with its probability under the model.

A word is found by a short beam search over the model's own probabilities: every kept candidate is extended by
every token, one Stepper call per character for all candidates at once, and a candidate ends once it has written
a boundary (a space, a newline or punctuation) after at least one other character. Its probability is the product
of its steps', boundary included: the chance that the model writes exactly that word and then moves on. Leading
boundaries are part of a phrase (after "ROMEO" the likeliest phrase may be ":\\nI "), so a phrase always adds a
word. Candidates still open after `max_chars` are dropped: an unfinished word is no suggestion.

`Suggester` keeps the model's state after the text it last read, so that the next call on a longer text (a
keystroke, a suggestion taken) steps only the new tokens; that is what keeps suggestions live while typing.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from charrnn.errors import check
from charrnn.model import CharRNN
from charrnn.sampling.generate import NON_FINITE, encode_prompt, read_prompt
from charrnn.sampling.stepper import Stepper
from charrnn.tokenizer import UNKNOWN_ID, CharTokenizer, Tokenizer

MAX_CHARS = 12  # the longest word or phrase searched for, in tokens: past a long word, rarely one more
BEAM_FACTOR = 3  # candidates kept per suggestion asked for: room for those that end up dropped or merged


@dataclass(frozen=True)
class Suggestion:
    text: str
    probability: float  # of writing exactly `text` next, under the model at the suggestions' temperature


@dataclass(frozen=True)
class Suggestions:
    chars: list[Suggestion]  # single tokens (characters for a character model), likeliest first
    words: list[Suggestion]  # words or phrases ending at a boundary, likeliest first

    @property
    def best(self) -> Suggestion | None:
        """The likeliest word, else the likeliest character."""
        return (self.words or self.chars or [None])[0]


def is_boundary(char: str) -> bool:
    return not (char.isalnum() or char in "'-")  # "o'er" and "well-a-day" are one word


def _log_softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class Suggester:
    """One model's suggestions, with the state after the last text read kept for the next call.

    Calls may come from several threads (one visitor's keystrokes overlap); a lock keeps the cached state whole.
    """

    def __init__(self, model: CharRNN, tokenizer: Tokenizer, stepper: Stepper | None = None):
        # float32 weights, so that a suggestion's probability is the model's own
        self.model, self.tokenizer = model, tokenizer
        self.stepper = stepper or Stepper(model, precision="float32")
        self.char_level = isinstance(tokenizer, CharTokenizer)
        self._pieces = ([tokenizer.decode([i]) for i in range(model.config.vocab_size)] if self.char_level
                        else None)
        self._ids = np.zeros(0, np.int64)  # the tokens read so far
        self._hidden = None  # (S, 1, H) after them
        self._logits = None  # (V,) for the token after them
        self._lock = threading.Lock()

    def read(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(logits (V,), state (S, 1, H)) after `text`, stepping only what follows the text read last time."""
        ids, _ = encode_prompt(self.tokenizer, text)
        with self._lock:
            known = len(self._ids)
            if not (self._hidden is not None and known <= len(ids) and np.array_equal(ids[:known], self._ids)):
                known = len(ids) - 1  # a different text: read it anew (the last token is stepped below)
                self._hidden = read_prompt(self.model, self.stepper, ids[:known])
            for token in ids[known:]:
                logits, self._hidden = self.stepper.step(np.array([token]), self._hidden)
                self._logits = logits[0]
            self._ids = ids
            return self._logits, self._hidden

    def _text(self, ids: list[int]) -> str:
        if self.char_level:
            return "".join(self._pieces[i] for i in ids)
        return self.tokenizer.decode(ids)  # a subword may be part of a character: decode the whole

    def suggest(self, text: str, n: int = 5, temperature: float = 1.0, max_chars: int = MAX_CHARS) -> Suggestions:
        """The `n` likeliest next tokens and the `n` likeliest words or phrases after `text` (an empty text: the
        start of a line), at `temperature` (1 = the model's own probabilities)."""
        check(n >= 1, f"the number of suggestions must be >= 1, got {n}")
        check(math.isfinite(temperature) and temperature > 0, f"temperature must be > 0, got {temperature}")
        check(max_chars >= 1, f"a word may be at most max_chars >= 1 tokens long, got {max_chars}")
        logits, hidden = self.read(text)
        check(bool(np.isfinite(logits).all()), NON_FINITE)
        log_probs = _log_softmax(logits, temperature)
        if self.char_level:
            log_probs[UNKNOWN_ID] = -np.inf  # never suggest <unk>
        order = np.argsort(-log_probs, kind="stable")[:n]
        chars = [Suggestion(self._text([int(i)]), float(np.exp(log_probs[i])))
                 for i in order if np.isfinite(log_probs[i])]
        return Suggestions(chars, self._words(log_probs, hidden, n, temperature, max_chars))

    def _words(self, first: np.ndarray, hidden: np.ndarray, n: int, temperature: float,
               max_chars: int) -> list[Suggestion]:
        width = BEAM_FACTOR * n
        ended: dict[str, float] = {}  # text -> log-probability (subword paths to one text are merged by sum)
        paths: list[list[int]] = [[]]
        totals = first[None, :]  # (beams, V): every candidate's log-probability extended by every token
        for step in range(max_chars):
            vocab = totals.shape[1]
            flat = np.argsort(-totals, axis=None, kind="stable")
            keep_rows, keep_tokens = [], []
            for index in flat[:width + width]:
                row, token = divmod(int(index), vocab)
                log_prob = totals[row, token]
                if not np.isfinite(log_prob):
                    break
                path = paths[row] + [token]
                text = self._text(path)
                if self._ends(text):
                    ended[text] = np.logaddexp(ended.get(text, -np.inf), log_prob)
                elif len(keep_rows) < width:
                    keep_rows.append(row)
                    keep_tokens.append(token)
            worst_kept = sorted(ended.values(), reverse=True)[n - 1] if len(ended) >= n else -np.inf
            if not keep_rows or step + 1 == max_chars or totals[keep_rows, keep_tokens].max() < worst_kept:
                break  # a candidate's probability only falls: none still open can pass the n-th word found
            paths = [paths[row] + [token] for row, token in zip(keep_rows, keep_tokens)]
            logits, hidden = self.stepper.step(np.array(keep_tokens, np.int64), hidden[:, keep_rows])
            check(bool(np.isfinite(logits).all()), NON_FINITE)
            step_log_probs = _log_softmax(logits, temperature)
            if self.char_level:
                step_log_probs[:, UNKNOWN_ID] = -np.inf
            totals = totals[keep_rows, keep_tokens][:, None] + step_log_probs
        best = sorted(ended.items(), key=lambda item: -item[1])[:n]
        return [Suggestion(text, float(np.exp(log_prob))) for text, log_prob in best]

    @staticmethod
    def _ends(text: str) -> bool:
        """Whether `text` has written a boundary after a word character: it is a whole word (or phrase)."""
        started = False
        for char in text:
            if not is_boundary(char):
                started = True
            elif started:
                return True
        return False


def suggestions(model: CharRNN, tokenizer: Tokenizer, text: str, n: int = 5, temperature: float = 1.0,
                max_chars: int = MAX_CHARS) -> Suggestions:
    """The `n` likeliest next characters and words or phrases after `text`, each with its probability, likeliest
    first. For many calls on a growing text, keep a `Suggester`: it steps only the new characters."""
    return Suggester(model, tokenizer).suggest(text, n, temperature, max_chars)
