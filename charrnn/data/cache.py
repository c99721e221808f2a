"""The encoded-corpus cache: token ids stored once per source and tokenizer, then opened as memory maps.

An entry is data_dir()/cache/<key>/ with train.npy, val.npy and meta.json. The key hashes the source as named
and the tokenizer; meta.json records the source's fingerprint (sizes and modification times of local files, the
commit of a Hub dataset). Finding and checking an entry reads none of the text, so a second run opens a corpus
of any size in milliseconds; an entry whose source has changed is encoded again and replaced (not kept beside the
new one: entries can be GBs). Offline, a Hub dataset's fingerprint cannot be had: its entry is used as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charrnn.data.encoding import SP_SAMPLE_CHARS, encode_corpus
from charrnn.data.reading import CorpusText
from charrnn.data.sources import Source
from charrnn.errors import CharRNNError
from charrnn.paths import data_dir
from charrnn.tokenizer import Tokenizer, tokenizer_from_dict

CACHE_VERSION = 2  # 2: encoded in chunks; ids in the smallest unsigned type; the fingerprint in meta.json
OWNER_FILE = "building"  # in a temporary folder: which process on which host is filling it


@dataclass
class Corpus:
    """Train and validation token ids (possibly memory-mapped), with the tokenizer that made them."""

    train: np.ndarray
    val: np.ndarray
    tokenizer: Tokenizer
    val_chars: int  # characters predicted in validation (for bits per character)
    description: dict = field(default_factory=dict)


def load_corpus(source: Source, tokenizer_kind: str = "char", vocab_size: int = 512, val_fraction: float = 0.1,
                tokenizer: Tokenizer | None = None, use_cache: bool = True, progress: bool = False) -> Corpus:
    """Load, tokenize and cache a source. Pass `tokenizer` to reuse one (when resuming or evaluating).
    The text is streamed through in chunks (charrnn.data.encoding), so a corpus may be larger than memory;
    `progress` shows a progress bar on stderr while it is encoded."""
    tokenizer_key = tokenizer.to_dict() if tokenizer is not None else {"kind": tokenizer_kind, "vocab": vocab_size}
    key_data = json.dumps([CACHE_VERSION, source.__dict__, val_fraction, tokenizer_key, SP_SAMPLE_CHARS],
                          sort_keys=True, default=str)
    cache = data_dir() / "cache" / hashlib.sha256(key_data.encode()).hexdigest()[:20]
    meta = _read_meta(cache) if use_cache else None
    text = _corpus_text(source, val_fraction, meta)
    if meta is not None and (text is None or meta["fingerprint"] == text.fingerprint):
        return _corpus(cache, meta, tokenizer, mmap_mode="r")

    def encode(folder: Path) -> dict:
        made, val_chars = encode_corpus(text, folder, tokenizer_kind, vocab_size, tokenizer, progress)
        return {"tokenizer": made.to_dict(), "val_chars": val_chars, "fingerprint": text.fingerprint,
                "source": source.name, "split": source.split, "val_split": text.val_description}

    if not use_cache:
        with tempfile.TemporaryDirectory(prefix="charrnn-corpus-") as folder:
            return _corpus(Path(folder), encode(Path(folder)), tokenizer, mmap_mode=None)
    _build(cache, encode)
    return _corpus(cache, _read_meta(cache), tokenizer, mmap_mode="r")


def _read_meta(cache: Path) -> dict | None:
    try:
        return json.loads((cache / "meta.json").read_text())
    except FileNotFoundError:
        return None


def _corpus_text(source: Source, val_fraction: float, meta: dict | None) -> CorpusText | None:
    """The source's text, ready to be read; None when a Hub dataset cannot be reached but was encoded before."""
    try:
        return CorpusText(source, val_fraction)
    except CharRNNError as err:
        if meta is None or not source.on_hub:
            raise
        print(f"note: {err}\nnote: using the copy of {source.name} encoded before", file=sys.stderr)
        return None


def _corpus(folder: Path, meta: dict, tokenizer: Tokenizer | None, mmap_mode: str | None) -> Corpus:
    return Corpus(
        train=np.load(folder / "train.npy", mmap_mode=mmap_mode),
        val=np.load(folder / "val.npy", mmap_mode=mmap_mode),
        tokenizer=tokenizer or tokenizer_from_dict(meta["tokenizer"]),
        val_chars=meta["val_chars"],
        description={name: meta[name] for name in ("source", "split", "val_split")},
    )


def _build(cache: Path, encode) -> None:
    """Fill a temporary folder beside the entry, then move it into place: a reader sees a whole entry or none.
    A build that fails takes its folder with it; one killed outright leaves it, for the next build to remove."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(cache.parent)
    tmp = Path(tempfile.mkdtemp(dir=cache.parent, prefix=cache.name + ".tmp-"))
    try:
        (tmp / OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}")
        meta = encode(tmp)
        (tmp / OWNER_FILE).unlink()
        (tmp / "meta.json").write_text(json.dumps(meta))
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):  # reading errors are CharRNNErrors already: this one is writing
            raise CharRNNError(f"cannot write the encoded text to {cache.parent} ({err.strerror}); free some "
                               "space there, or set CHARRNN_DATA_DIR to a folder with more") from None
        raise
    _move_into_place(tmp, cache)


def _move_into_place(tmp: Path, cache: Path) -> None:
    """Rename `tmp` to `cache` (atomic), replacing an entry made from an earlier version of the source."""
    stale = cache.with_name(f"{cache.name}.stale-{os.getpid()}-{time.time_ns()}")
    try:
        if cache.exists():
            cache.rename(stale)  # processes that opened it keep their memory maps
        tmp.rename(cache)
    except OSError:  # another process moved its own build in first
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(stale, ignore_errors=True)


def _remove_abandoned_builds(folder: Path) -> None:
    """Temporary folders of builds whose process is gone (killed while encoding: they may hold GBs)."""
    for owner in folder.glob(f"*.tmp-*/{OWNER_FILE}"):
        try:
            host, pid = owner.read_text().split()
        except (OSError, ValueError):
            continue
        if host == socket.gethostname() and not _process_exists(int(pid)):
            shutil.rmtree(owner.parent, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's
        return True
    return True
