"""Sampling from a model: a prompt read, then text streamed one token at a time, for one sample or a batch.

The Python API is `stream(...)`, a generator that yields the new text of each sample after every step;
`generate(...)` wraps it for one sample. The `charrnn sample` command (charrnn.cli.sample), the web UI and the
model card's sample all use it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterator

from typing import TYPE_CHECKING

import numpy as np

from charrnn.sampling import kernels
from charrnn.errors import check
from charrnn.sampling.stepper import NumpyHidden, Stepper
from charrnn.tokenizer import UNKNOWN_ID, CharTokenizer, Tokenizer

if TYPE_CHECKING:  # torch is imported where a prompt is read by torch or a TorchStepper used (see stepper.py)
    from charrnn.model import CharRNN, Hidden
    from charrnn.sampling.torch_stepper import TorchStepper


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 0.8  # 0 = greedy (always the most likely next character)
    top_k: int = 0  # keep only the k most likely characters (0 = all)
    top_p: float = 1.0  # keep the smallest set of characters whose probabilities add up to p (1 = all)

    def __post_init__(self):
        check(math.isfinite(self.temperature) and self.temperature >= 0,
              f"temperature must be >= 0 and finite (0 = greedy), got {self.temperature}")
        check(self.top_k >= 0, f"top-k must be >= 0 (0 = no limit), got {self.top_k}")
        check(0 < self.top_p <= 1, f"top-p must be in (0, 1] (1 = no limit), got {self.top_p}")


def _kernel_settings(settings: SamplingSettings, banned: int | None) -> tuple[float, int, float, int]:
    # Fixed argument types, so the compiled kernels are specialised once (an int temperature would compile anew);
    # a top-k beyond int64 means, like any k >= the vocabulary, keep everything.
    return (float(settings.temperature), min(int(settings.top_k), 2**62), float(settings.top_p),
            -1 if banned is None else int(banned))


NON_FINITE = ("the model produced non-finite scores (NaN or infinity) for the next token: its weights are probably "
              "corrupt (a damaged checkpoint, or a training run that diverged); retrain it or restore a good copy")


def next_token_probabilities(logits: np.ndarray, settings: SamplingSettings, banned: int | None = None) -> np.ndarray:
    """(B, V) logits -> (B, V) probabilities after temperature, top-k and top-p (nucleus) filtering."""
    logits = np.asarray(logits, dtype=np.float32)
    probs = np.empty(logits.shape, np.float64)
    for row, out in zip(logits, probs):
        check(kernels.filtered_probabilities(row, *_kernel_settings(settings, banned), out), NON_FINITE)
    return probs


def row_settings(settings: SamplingSettings, banned: int | None, rows: int) -> tuple[np.ndarray, ...]:
    """The settings as kernels.sample_tokens takes them: one value per row."""
    return tuple(np.full(rows, value) for value in _kernel_settings(settings, banned))


def draw_tokens(logits: np.ndarray, settings: SamplingSettings, rng: np.random.Generator,
                banned: int | None = None, compiled: bool = True) -> np.ndarray:
    """One token per row of logits (B, V), drawn from next_token_probabilities with the generator's uniforms
    (`compiled` False: the draw's code run as Python, while the kernels are not compiled yet; see warm.py)."""
    tokens = np.empty(len(logits), np.int64)
    draw = kernels.sample_tokens if compiled else kernels.sample_tokens_uncompiled
    draw(logits, *row_settings(settings, banned, len(logits)), rng.random(len(logits)), tokens)
    check(tokens.min(initial=0) >= 0, NON_FINITE)
    return tokens


def encode_prompt(tokenizer: Tokenizer, prompt: str) -> tuple[np.ndarray, list[str]]:
    """Prompt ids and the characters the tokenizer does not know (an empty prompt starts from a newline)."""
    prompt = prompt if prompt else "\n"
    unknown = tokenizer.unknown_chars(prompt)
    ids = tokenizer.encode(prompt)
    if isinstance(tokenizer, CharTokenizer):
        ids = ids[ids != UNKNOWN_ID]  # unknown characters are skipped (and reported), not fed as <unk>
    if len(ids) == 0:
        ids = tokenizer.encode("\n")
        ids = ids[ids != UNKNOWN_ID] if isinstance(tokenizer, CharTokenizer) else ids
    if len(ids) == 0:  # a vocabulary without newline: start from its first character
        ids = np.array([1], dtype=np.int64)
    return ids.astype(np.int64), unknown


PROMPT_CHUNK = 4096  # prompt tokens per pass through the recurrent stack: memory stays flat however long the prompt
# A prompt of at most this many tokens is read by the Stepper, a compiled step per token, not by torch: for a short
# prompt one torch call costs more than stepping it (docs/benchmarks.md), and torch's OpenMP threads keep spinning
# on the other cores after each call, slowing every sampling thread.
STEPPED_PROMPT = 200


def prime(model: CharRNN, ids: np.ndarray, chunk: int = PROMPT_CHUNK) -> Hidden | None:
    """The hidden state (batch of one) after reading `ids`, or None for no ids.

    The prompt goes through the embedding and the recurrent stack `chunk` tokens at a time, carrying the
    hidden state, and never through the output layer: sampling needs the logits of the last position only,
    which the Stepper computes. Runs in eval mode (no dropout) and leaves the model in the mode it was in.
    """
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            hidden = None
            for start in range(0, len(ids), chunk):
                piece = torch.from_numpy(np.ascontiguousarray(ids[None, start:start + chunk])).to(device)  # (1, T)
                _, hidden = model.rnn(model.embedding(piece), hidden)  # (1, T, H) outputs dropped
            return hidden
    finally:
        model.train(was_training)


def read_prompt(model: CharRNN, stepper: Stepper | TorchStepper, ids: np.ndarray) -> NumpyHidden:
    """The state (S, 1, H) after reading `ids` from the zero state: stepped by the compiled Stepper when they are
    few (STEPPED_PROMPT), else read by torch's fused recurrent kernel in chunks (see `prime`)."""
    if len(ids) == 0:
        return stepper.zero_state(1)
    if (len(ids) <= STEPPED_PROMPT or model is None) and stepper.compiled:  # no model: a run without torch
        return stepper.read(ids)
    return stepper.to_numpy(prime(model, ids))


class Samples:
    """`num_samples` samples of one prompt and seed, between steps: the hidden state (NumPy, the Stepper's layout),
    the token each reads next, and the text so far. A step is the Stepper's; `advance` draws from its logits.

    Holding this between steps is what lets samples of several callers share a step (charrnn.sampling.engine): their
    hidden states are stacked and stepped at once, their tokens drawn in one call (each row with its caller's
    settings and uniforms: `uniforms`, `kernel_settings`), and each caller's tokens come back to `accept`.
    """

    def __init__(self, model: CharRNN, tokenizer: Tokenizer, stepper: Stepper, prompt: str = "", length: int = 500,
                 settings: SamplingSettings = SamplingSettings(), seed: int | None = None, num_samples: int = 1,
                 stop: str | None = None):
        check(length >= 0, f"length must be >= 0, got {length}")
        check(num_samples >= 1, f"number of samples must be >= 1, got {num_samples}")
        self.tokenizer, self.settings, self.stop = tokenizer, settings, stop
        self.compiled = stepper.draw_compiled  # not before the kernels are compiled (warm.py)
        self.rng = np.random.default_rng(seed)
        ids, _ = encode_prompt(tokenizer, prompt)
        self.hidden = np.repeat(read_prompt(model, stepper, ids[:-1]), num_samples, axis=1)
        self.tokens = np.full(num_samples, ids[-1])
        self.banned = UNKNOWN_ID if isinstance(tokenizer, CharTokenizer) else None
        self.kernel_settings = row_settings(settings, self.banned, num_samples)
        self.byte_level = not isinstance(tokenizer, CharTokenizer)
        self.remaining = length
        self.generated: list[list[int]] = [[] for _ in range(num_samples)]
        self.texts = [""] * num_samples
        self.done = [False] * num_samples

    @property
    def rows(self) -> int:
        return len(self.tokens)

    @property
    def finished(self) -> bool:
        return self.remaining <= 0 or all(self.done)

    def advance(self, logits: np.ndarray) -> list[str]:
        """Draw the next token of every sample from the step's logits (rows, V); returns each sample's new text
        ("" once a sample has stopped)."""
        return self.accept(draw_tokens(logits, self.settings, self.rng, self.banned, self.compiled))

    def uniforms(self) -> np.ndarray:
        """This step's uniforms for the draw, one per sample (what draw_tokens takes from the generator)."""
        return self.rng.random(self.rows)

    def accept(self, tokens: np.ndarray) -> list[str]:
        """Take the step's drawn tokens (rows,); returns each sample's new text ("" once a sample has stopped).
        A token -1 (scores that cannot be sampled) raises CharRNNError."""
        drawn = tokens.tolist()
        check(min(drawn) >= 0, NON_FINITE)
        self.tokens = tokens
        self.remaining -= 1
        pieces = []
        for i, token in enumerate(drawn):
            if self.done[i]:
                pieces.append("")
                continue
            self.generated[i].append(token)
            if self.byte_level:  # a subword may be part of a UTF-8 character: emit what decodes completely
                full = self.tokenizer.decode(self.generated[i])
                piece = "" if full.endswith("\ufffd") else full[len(self.texts[i]):]
            else:
                piece = self.tokenizer.decode([token])
            self.texts[i] += piece
            self.done[i] = bool(self.stop) and self.texts[i].endswith(self.stop)
            pieces.append(piece)
        return pieces


def stream(model: CharRNN, tokenizer: Tokenizer, prompt: str = "", length: int = 500,
           settings: SamplingSettings = SamplingSettings(), seed: int | None = None, num_samples: int = 1,
           stop: str | None = None, stepper: Stepper | TorchStepper | None = None) -> Iterator[list[str]]:
    """Yield, after every step, the new text of each of `num_samples` samples ("" once a sample stopped).

    The prompt is read once, stepped by the Stepper when it is short (STEPPED_PROMPT), else by the fused
    recurrent kernel in chunks (see `prime`), and its final state is shared by the samples; then each token is
    one Stepper step. The model's train/eval mode is left as it was.
    Stops after `length` tokens or, per sample, once its text ends with `stop` (which is kept).
    """
    stepper = stepper or Stepper(model, threads=os.cpu_count() or 1)  # many samples: every core steps some
    samples = Samples(model, tokenizer, stepper, prompt, length, settings, seed, num_samples, stop)
    while not samples.finished:
        logits, samples.hidden = stepper.step(samples.tokens, samples.hidden)
        yield samples.advance(logits)


def generate(model: CharRNN, tokenizer: Tokenizer, prompt: str = "", length: int = 500, temperature: float = 0.8,
             top_k: int = 0, top_p: float = 1.0, seed: int | None = None, stop: str | None = None) -> str:
    """One sample, the whole text (prompt not included)."""
    settings = SamplingSettings(temperature, top_k, top_p)
    return "".join(p[0] for p in stream(model, tokenizer, prompt, length, settings, seed, 1, stop))
