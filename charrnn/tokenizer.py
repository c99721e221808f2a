"""Tokenizers: exact characters, or sentencepiece subwords. Both serialise into the checkpoint's config."""

from __future__ import annotations

import base64
import io
from typing import Iterable, Protocol

import numpy as np

from charrnn.errors import CharRNNError

UNKNOWN_ID = 0  # reserved in the char tokenizer: text with unseen characters can still be scored and prompted


class Tokenizer(Protocol):
    vocab_size: int

    def encode(self, text: str) -> np.ndarray: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def unknown_chars(self, text: str) -> list[str]: ...

    def to_dict(self) -> dict: ...


class CharTokenizer:
    """One id per Unicode code point seen in the training text; id 0 stands for any other character."""

    kind = "char"

    def __init__(self, chars: str):
        self.chars = "".join(sorted(set(chars)))
        self.vocab_size = len(self.chars) + 1
        # Sorted code points let encode() map a whole text with one vectorised searchsorted.
        self._codepoints = np.array([ord(c) for c in self.chars], dtype=np.uint32)

    @classmethod
    def train(cls, text: str) -> "CharTokenizer":
        if not text:
            raise CharRNNError("cannot build a vocabulary from empty text")
        return cls(text)

    def encode(self, text: str) -> np.ndarray:
        codepoints = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)
        if len(self._codepoints) == 0:
            return np.zeros(len(codepoints), dtype=np.int64)
        positions = np.searchsorted(self._codepoints, codepoints)
        positions = np.minimum(positions, len(self._codepoints) - 1)
        known = self._codepoints[positions] == codepoints
        return np.where(known, positions + 1, UNKNOWN_ID).astype(np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[i - 1] if i > 0 else "\ufffd" for i in ids)

    def unknown_chars(self, text: str) -> list[str]:
        return sorted(set(text) - set(self.chars))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "chars": self.chars}


class SentencePieceTokenizer:
    """Subword tokenizer (BPE or unigram) with an exact round trip: identity normalisation, byte fallback
    for unseen characters, and newline, tab and carriage return kept as symbols."""

    def __init__(self, model_proto: bytes, kind: str):
        import sentencepiece as spm

        self.kind = kind
        self.model_proto = model_proto
        self.processor = spm.SentencePieceProcessor(model_proto=model_proto)
        self.vocab_size = self.processor.get_piece_size()

    @classmethod
    def train(cls, text: str, vocab_size: int, kind: str = "sp-bpe") -> "SentencePieceTokenizer":
        import sentencepiece as spm

        if not text:
            raise CharRNNError("cannot train a tokenizer on empty text")
        model = io.BytesIO()
        lines = [line for line in text.split("\n") if line]
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines),
                model_writer=model,
                vocab_size=vocab_size,
                model_type=kind.removeprefix("sp-"),
                normalization_rule_name="identity",
                remove_extra_whitespaces=False,
                add_dummy_prefix=False,
                split_digits=True,
                byte_fallback=True,
                character_coverage=1.0,
                hard_vocab_limit=False,  # a small text may not support the full size: take what it gives
                user_defined_symbols=["\n", "\t", "\r"],
                unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
                num_threads=2,
                minloglevel=2,
            )
        except RuntimeError as err:
            hint = ("byte fallback needs 256 byte pieces plus one per distinct character: use a larger "
                    "--vocab-size" if "smaller than required" in str(err) else "try another --vocab-size")
            raise CharRNNError(f"sentencepiece could not train a {vocab_size}-piece vocabulary on this text "
                               f"({str(err).splitlines()[0][:200]}); {hint}") from None
        return cls(model.getvalue(), kind)

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.processor.encode(text), dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        return self.processor.decode([int(i) for i in ids])

    def unknown_chars(self, text: str) -> list[str]:
        return []  # byte fallback encodes every character

    def to_dict(self) -> dict:
        return {"kind": self.kind, "model": base64.b64encode(self.model_proto).decode("ascii")}


def train_tokenizer(kind: str, text: str, vocab_size: int = 512) -> Tokenizer:
    if kind == "char":
        return CharTokenizer.train(text)
    if kind in ("sp-bpe", "sp-unigram"):
        return SentencePieceTokenizer.train(text, vocab_size, kind)
    raise CharRNNError(f"unknown tokenizer {kind!r}: choose char, sp-bpe or sp-unigram")


def tokenizer_from_dict(data: dict) -> Tokenizer:
    kind = data.get("kind")
    if kind == "char":
        return CharTokenizer(data["chars"])
    if kind in ("sp-bpe", "sp-unigram"):
        return SentencePieceTokenizer(base64.b64decode(data["model"]), kind)
    raise CharRNNError(f"unknown tokenizer kind {kind!r} in checkpoint")
