"""Surprisal: how unexpected each character was to the model, -log2 p(char | everything before it)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from charrnn.model import CharRNN
from charrnn.tokenizer import CharTokenizer


@dataclass
class Surprise:
    chars: list[str]  # the scored characters of the text
    bits: np.ndarray  # (T,) surprisal of each, in bits
    top: list[list[tuple[str, float]]]  # per position: the 5 likeliest characters the model expected there
    unknown: list[str]  # characters the model has never seen (scored as its unknown token)

    @property
    def bpc(self) -> float:
        return float(self.bits.mean()) if len(self.bits) else float("nan")


@torch.no_grad()
def surprise(model: CharRNN, tokenizer: CharTokenizer, text: str, top_n: int = 5) -> Surprise:
    """Score every character of `text` after a newline (the model's usual start of a passage).

    The surprisals add up to the text's negative log-likelihood in bits: their mean is the bits per character.
    """
    if not isinstance(tokenizer, CharTokenizer):
        raise ValueError("the surprise view works on character models")
    ids = tokenizer.encode("\n" + text)
    model.eval()
    logits, _, _ = model(torch.from_numpy(ids[None, :-1]))  # (1, T, V)
    log_probs = torch.log_softmax(logits[0].float(), dim=-1)  # (T, V)
    targets = torch.from_numpy(ids[1:])
    bits = (-log_probs.gather(1, targets[:, None])[:, 0] / math.log(2)).numpy()
    probs, candidates = log_probs.exp().topk(top_n, dim=-1)
    top = [[(tokenizer.decode([int(c)]), float(p)) for c, p in zip(row_c, row_p)]
           for row_c, row_p in zip(candidates, probs)]
    return Surprise(list(text), bits, top, tokenizer.unknown_chars(text))
