"""The encoded-corpus cache: token ids stored once per source and tokenizer, then opened as memory maps."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charrnn.data.reading import _LazyTexts
from charrnn.data.sources import Source
from charrnn.paths import data_dir
from charrnn.tokenizer import Tokenizer, tokenizer_from_dict, train_tokenizer

CACHE_VERSION = 1


@dataclass
class Corpus:
    """Train and validation token ids (possibly memory-mapped), with the tokenizer that made them."""

    train: np.ndarray
    val: np.ndarray
    tokenizer: Tokenizer
    val_chars: int  # characters predicted in validation (for bits per character)
    description: dict = field(default_factory=dict)


def load_corpus(source: Source, tokenizer_kind: str = "char", vocab_size: int = 512, val_fraction: float = 0.1,
                tokenizer: Tokenizer | None = None, use_cache: bool = True) -> Corpus:
    """Load, tokenize and cache a source. Pass `tokenizer` to reuse one (when resuming or evaluating)."""
    lazy = _LazyTexts(source, val_fraction)
    tokenizer_key = tokenizer.to_dict() if tokenizer is not None else {"kind": tokenizer_kind, "vocab": vocab_size}
    key_data = json.dumps([CACHE_VERSION, source.__dict__, val_fraction, lazy.fingerprint_parts, tokenizer_key],
                          sort_keys=True, default=str)
    key = hashlib.sha256(key_data.encode()).hexdigest()[:20]
    cache = data_dir() / "cache" / key
    description = {"source": source.name, "split": source.split, "val_split": lazy.val_description}
    if use_cache and (cache / "meta.json").exists():
        meta = json.loads((cache / "meta.json").read_text())
        return Corpus(
            train=np.load(cache / "train.npy", mmap_mode="r"),
            val=np.load(cache / "val.npy", mmap_mode="r"),
            tokenizer=tokenizer or tokenizer_from_dict(meta["tokenizer"]),
            val_chars=meta["val_chars"],
            description=description,
        )
    train_text, val_text = lazy.texts()
    tokenizer = tokenizer or train_tokenizer(tokenizer_kind, train_text, vocab_size)
    dtype = np.uint16 if tokenizer.vocab_size < 2**16 else np.int32
    train_ids = tokenizer.encode(train_text).astype(dtype)
    val_ids = tokenizer.encode(val_text).astype(dtype)
    val_chars = len(tokenizer.decode(val_ids[1:].tolist())) if len(val_ids) > 1 else 0
    if use_cache:
        _write_cache(cache, train_ids, val_ids, {"tokenizer": tokenizer.to_dict(), "val_chars": val_chars,
                                                 **description})
    return Corpus(train_ids, val_ids, tokenizer, val_chars, description)


def _write_cache(cache: Path, train_ids: np.ndarray, val_ids: np.ndarray, meta: dict) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache.parent, prefix=cache.name + ".tmp-"))
    np.save(tmp / "train.npy", train_ids)
    np.save(tmp / "val.npy", val_ids)
    (tmp / "meta.json").write_text(json.dumps(meta))
    try:
        tmp.rename(cache)  # atomic: a reader sees the whole cache entry or none
    except OSError:  # another process wrote it first
        shutil.rmtree(tmp, ignore_errors=True)
