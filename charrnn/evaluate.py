"""Bits per character of a model on token ids or a text, scored a chunk at a time so memory does not grow
with the text; the `charrnn evaluate` command (charrnn.cli.evaluate) scores a split, a dataset or a file with it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, NamedTuple

import numpy as np
import torch

from charrnn.data import Corpus, Source
from charrnn.data.reading import CorpusText, cut_stream, split_chunks
from charrnn.errors import check
from charrnn.model import CharRNN
from charrnn.tokenizer import UNKNOWN_ID


STREAMS = 16  # windows of the text scored side by side, each from a zero hidden state
CHUNK = 512  # tokens of each window per forward pass; the hidden state carries over to the next


class Windows(NamedTuple):
    """Where evaluate_ids reads a text: windows of `length` positions starting at `starts`, scored side by side,
    and the few positions left over (`rest`, scored after them). Position i predicts token i + 1."""

    starts: list[int]
    length: int
    rest: range | None

    @property
    def tokens(self) -> int:
        """The number of tokens scored."""
        return len(self.starts) * self.length + len(self.rest or ())


def evaluation_windows(num_predictions: int, max_tokens: int | None = None, streams: int = STREAMS,
                       chunk: int = CHUNK) -> Windows:
    """The windows evaluate_ids scores in a text of num_predictions + 1 tokens.

    All of it (max_tokens 0, None, or at least num_predictions): `streams` equal windows back to back (fewer in
    a short text, so that each has at least `chunk` tokens) and the remainder. A sample of at most max_tokens:
    windows max_tokens // streams long (fewer and longer when max_tokens is small, by the same rule), each at the
    start of one of as many equal parts of the text: spread evenly over it, the same every time, and long enough
    for the hidden state to warm up.

        all of it:  |==========|==========|==========|==========|=|   (4 streams and the remainder)
        a sample:   |=====     |=====     |=====     |=====     |
    """
    budget = min(max_tokens or num_predictions, num_predictions)
    streams = max(1, min(streams, budget // max(chunk, 1) or 1))
    stride, length = num_predictions // streams, budget // streams
    scores_all = budget == num_predictions and streams * length < num_predictions
    rest = range(streams * length, num_predictions) if scores_all else None
    return Windows([i * stride for i in range(streams)], length, rest)


@torch.no_grad()
def evaluate_ids(model: CharRNN, ids: np.ndarray, num_chars: int | None = None, streams: int = STREAMS,
                 chunk: int = CHUNK, device: torch.device | str = "cpu", amp_dtype: torch.dtype | None = None,
                 shard: tuple[int, int] = (0, 1), total: Callable[[float], float] | None = None,
                 max_tokens: int | None = None, progress: bool = False) -> dict:
    """Mean negative log-likelihood of ids[1:] given the ids before them, per token and per character.

    The text is cut into `streams` contiguous windows scored in parallel (each starts from a zero hidden state),
    plus one for the remainder, so every token after the first is scored exactly once; with max_tokens, a fixed
    sample of windows spread over the text (evaluation_windows). The ids may be memory-mapped: they are read
    `chunk` tokens per window at a time, so memory does not grow with the text. `num_chars` is the number of
    characters ids[1:] stand for (default: one per token); a sample is counted as its share of them.
    Many processes share the work: shard=(rank, processes) scores the windows rank, rank + processes, ...
    (the last process takes the remainder), and `total` sums their log-likelihoods across processes.
    `progress` shows a progress bar on stderr when the work takes more than a second.
    """
    from tqdm.auto import tqdm

    ids = np.asarray(ids)  # no copy: a memory-mapped array stays on disk
    check(len(ids) >= 2, "the text to evaluate needs at least two tokens")
    device = torch.device(device)
    n = len(ids) - 1
    windows = evaluation_windows(n, max_tokens, streams, chunk)
    rank, processes = shard
    groups = [(windows.starts[rank::processes], windows.length)]
    if windows.rest and rank == processes - 1:
        groups.append(([windows.rest.start], len(windows.rest)))
    was_training = model.training
    model.eval()
    total_nll = 0.0
    with tqdm(total=sum(len(starts) * length for starts, length in groups), desc="scoring", unit="token",
              unit_scale=True, disable=not progress, delay=1, dynamic_ncols=True) as bar:
        for starts, length in groups:
            hidden = None
            for offset in range(0, length if starts else 0, chunk):
                width = min(chunk, length - offset)
                rows = np.stack([ids[start + offset:start + offset + width + 1] for start in starts])
                rows = torch.from_numpy(rows.astype(np.int64)).to(device)  # (windows, width + 1)
                x, y = rows[:, :-1], rows[:, 1:]
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    logits, hidden, _ = model(x, hidden)
                total_nll += torch.nn.functional.cross_entropy(
                    logits.float().flatten(0, 1), y.flatten(), reduction="sum").item()
                bar.update(y.numel())
    model.train(was_training)
    if total is not None:
        total_nll = total(total_nll)
    scored = windows.tokens
    chars = max((num_chars or n) * scored // n, 1)
    nats = total_nll / chars
    return {"nats": nats, "bpc": nats / math.log(2), "ppl": math.exp(nats) if nats < 700 else math.inf,
            "nats_per_token": total_nll / scored, "tokens": scored, "total_tokens": n, "chars": chars}


def evaluate_text(model: CharRNN, tokenizer, text: str, **kwargs) -> dict:
    """Bits per character of `text`; unknown characters are scored as the unknown token and listed."""
    ids = tokenizer.encode(text)
    result = evaluate_ids(model, ids, len(tokenizer.decode(ids[1:].tolist())), **kwargs)
    result["unknown_chars"] = tokenizer.unknown_chars(text)
    return result


def scored_part(source: Source, whole: bool, val_fraction: float) -> tuple[Source, float, str]:
    """The source and val_fraction to give load_corpus so that its `val` ids are the part of `source` to score,
    and that part's name. `whole`: all of source.split; else the part training held out, the validation split
    or the last `val_fraction` of the training text."""
    if not whole:
        text = CorpusText(source, val_fraction)
        if not text.has_val_split_text():
            return source, val_fraction, text.val_description
        source = dataclasses.replace(source, split=text.val_expression)
    # A split scored whole: all of it is held out (val_fraction 1), and no other split is read.
    return dataclasses.replace(source, val_split="none"), 1.0, source.split


def unknown_chars(source: Source, corpus: Corpus) -> list[str]:
    """The characters of the scored text (corpus.val) that its char tokenizer does not know. The ids only say
    that there are some, so then the text is read once more, a chunk at a time, to name them."""
    tokenizer, ids, step = corpus.tokenizer, corpus.val, 1 << 16
    if tokenizer.kind != "char" or not any((ids[i:i + step] == UNKNOWN_ID).any() for i in range(0, len(ids), step)):
        return []
    # One token per character: the scored text starts len(corpus.train) characters into the split.
    before, scored = cut_stream(split_chunks(source, source.split), len(corpus.train))
    for _ in before:
        pass
    found = set()
    for chunk in scored:
        found.update(tokenizer.unknown_chars(chunk))
    return sorted(found)


@torch.no_grad()
def continuation_bpc(model: CharRNN, tokenizer, context_ids: np.ndarray, text: str) -> float | None:
    """Bits per character of `text` read after `context_ids` (the prompt as the sampler fed it): how likely the
    model finds a continuation of that prompt, not the same text out of context. None for an empty text."""
    ids = tokenizer.encode(text)
    if len(ids) == 0 or not text:
        return None
    was_training = model.training
    model.eval()
    try:
        full = torch.from_numpy(np.concatenate([np.asarray(context_ids, dtype=np.int64), ids]))[None]  # (1, T)
        logits, _, _ = model(full[:, :-1])  # (1, T-1, V): position t predicts token t+1
        scored = logits[0, len(context_ids) - 1:].float()  # the predictions of the text's tokens
        nll = torch.nn.functional.cross_entropy(scored, full[0, len(context_ids):], reduction="sum").item()
    finally:
        model.train(was_training)
    return nll / math.log(2) / len(text)
