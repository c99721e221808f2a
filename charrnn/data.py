"""Text in, token ids out: dataset presets, loading through `datasets`, the encoded-corpus cache, batching.

Sources, in the order they are tried:
  - a preset name from charrnn/presets.json (tiny_shakespeare, wikitext2, ...),
  - one or more text files (read exactly as UTF-8; the last --val-fraction becomes validation),
  - one or more data files of one kind (.parquet, .csv, .json/.jsonl, .arrow), read by datasets' builder for
    that kind, the text taken from their text column (the last --val-fraction becomes validation),
  - a local dataset folder (parquet/arrow/json/csv/txt) or a Hub id, both through datasets.load_dataset.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from charrnn.errors import CharRNNError, check
from charrnn.paths import PRESETS_FILE, data_dir
from charrnn.tokenizer import Tokenizer, tokenizer_from_dict, train_tokenizer

CACHE_VERSION = 1


def load_presets() -> dict:
    return json.loads(PRESETS_FILE.read_text(encoding="utf-8"))


@dataclass
class Source:
    """Where the text comes from and how to read it."""

    paths: list[str]
    config: str | None = None
    split: str = "train"
    val_split: str = "auto"
    text_column: str | None = None
    separator: str = "\n"
    is_text_files: bool = False
    builder: str | None = None  # for data files: the datasets builder that reads them (parquet, csv, json, arrow)

    @property
    def name(self) -> str:
        return " ".join(self.paths) + (f" ({self.config})" if self.config else "")


DATA_FILE_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json", ".arrow": "arrow"}
TEXT_SUFFIXES = (".txt", ".text", ".md", *DATA_FILE_BUILDERS)


def _looks_like_hub_id(name: str) -> bool:
    """'owner/name' or 'name', not a path with a file extension."""
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?", name)) and not name.endswith(TEXT_SUFFIXES)


def resolve_source(dataset: str | list[str], config: str | None = None, split: str = "train",
                   val_split: str = "auto", text_column: str | None = None) -> Source:
    """Turn the --dataset argument(s) into a Source, expanding presets and checking local paths."""
    paths = [dataset] if isinstance(dataset, str) else list(dataset)
    check(len(paths) > 0 and all(paths), "--dataset is empty: give a Hub id, preset, dataset folder or text file")
    presets = load_presets()
    if len(paths) == 1 and paths[0] in presets and not Path(paths[0]).exists():
        preset = presets[paths[0]]
        return Source(
            paths=[preset["path"]],
            config=config or preset.get("config"),
            split=split if split != "train" else preset.get("split", "train"),
            val_split=val_split if val_split != "auto" else preset.get("val_split", "auto"),
            text_column=text_column or preset.get("text_column"),
            separator=preset.get("separator", "\n"),
        )
    existing = [Path(p).exists() for p in paths]
    if all(existing) and all(Path(p).is_file() for p in paths):
        resolved = [str(Path(p).resolve()) for p in paths]
        builders = {DATA_FILE_BUILDERS.get(Path(p).suffix.lower()) for p in paths}
        if builders == {None}:
            return Source(paths=resolved, is_text_files=True)
        check(len(builders) == 1, f"{', '.join(paths)} mix kinds of file: give text files, or data files of one "
                                  f"kind ({', '.join(DATA_FILE_BUILDERS)})")
        return Source(paths=resolved, split=split, val_split=val_split, text_column=text_column,
                      builder=builders.pop())
    if len(paths) == 1 and Path(paths[0]).is_dir():
        return Source(paths=[str(Path(paths[0]).resolve())], config=config, split=split, val_split=val_split,
                      text_column=text_column)
    missing = [p for p, e in zip(paths, existing) if not e]
    if len(paths) > 1 or not _looks_like_hub_id(paths[0]):
        raise CharRNNError(f"no such file or folder: {', '.join(missing)}")
    return Source(paths=paths, config=config, split=split, val_split=val_split, text_column=text_column)


# ---------------------------------------------------------------------------------------------------------
# Reading text


def read_text_file(path: str | Path) -> str:
    """The file's exact text: UTF-8 (a BOM is kept as a character), newlines untranslated."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except UnicodeDecodeError as err:
        raise CharRNNError(
            f"{path} is not UTF-8 text (byte {err.start}: {err.reason}); convert it first, "
            f"e.g. iconv -f latin1 -t utf-8 {path} > {Path(path).stem}.utf8.txt"
        ) from None
    except OSError as err:
        raise CharRNNError(f"cannot read {path}: {err.strerror}") from None


LOCAL_PATH_HINT = ("pass a local path instead: a folder of .txt or .parquet files (or arrow/json/csv), or text or "
                   "data files (e.g. --dataset my_novel.txt)")


def _check_hub_reachable(repo_id: str) -> None:
    """Fail in seconds when the Hub cannot be reached (charrnn.hub.check_reachable). Offline mode
    (HF_HUB_OFFLINE, HF_DATASETS_OFFLINE) skips the check: datasets then answers at once from its cache, or
    fails, and _load_dataset words the error."""
    import datasets
    from huggingface_hub import constants

    from charrnn.hub import check_reachable

    if constants.is_offline_mode() or datasets.config.HF_HUB_OFFLINE:
        return
    check_reachable(f"load {repo_id!r}", f"{LOCAL_PATH_HINT}, or set HF_HUB_OFFLINE=1 to use a copy already in "
                    "your cache", repo_id, repo_type="dataset")


def _load_dataset(source: Source, split: str | None):
    """One split (or, with split None, every split) of a dataset folder, Hub id or data files."""
    import datasets

    path = source.paths[0]
    if source.builder is None and not Path(path).exists():
        _check_hub_reachable(path)
    name = source.name if source.builder else repr(path)
    try:
        if source.builder:
            return datasets.load_dataset(source.builder, data_files=source.paths, split=split,
                                         cache_dir=str(data_dir() / "downloads"))
        return datasets.load_dataset(path, source.config, split=split, cache_dir=str(data_dir() / "downloads"))
    except ConnectionError as err:
        raise CharRNNError(f"cannot load {name} from the Hugging Face Hub ({err}); {LOCAL_PATH_HINT}") from None
    except ValueError as err:
        if "split" in str(err).lower():
            raise CharRNNError(f"{source.name}: {err}") from None
        raise CharRNNError(f"cannot load dataset {name}: {err}") from None
    except Exception as err:  # datasets raises many types (DatasetNotFoundError, EmptyDatasetError, ...)
        raise CharRNNError(f"cannot load dataset {name}: {type(err).__name__}: {err}") from None


def _text_column(dataset, wanted: str | None, where: str) -> str:
    columns = list(dataset.column_names)
    if wanted is not None:
        check(wanted in columns, f"{where} has no column {wanted!r}; its columns are: {', '.join(columns)} "
                                 "(choose one with --text-column)")
        return wanted
    strings = [name for name, feature in dataset.features.items()
               if getattr(feature, "dtype", None) in ("string", "large_string")]
    if len(strings) == 1:
        return strings[0]
    if "text" in columns:
        return "text"
    raise CharRNNError(f"{where} has no single text column; its columns are: {', '.join(columns)} "
                       "(choose one with --text-column)")


def _split_parts(source: Source, expression: str) -> list:
    """Each `+`-separated part of a split expression, as a loaded Dataset."""
    return [_load_dataset(source, part.strip()) for part in expression.split("+")]


def _join_parts(parts: list, source: Source) -> str:
    """One text from loaded parts: one-row parts (a whole corpus per split) join as they are; many-row
    parts (a line or story per row) join with the source's separator."""
    texts = []
    for part in parts:
        column = _text_column(part, source.text_column, source.name)
        rows = [row for row in part[column] if row is not None]
        texts.append(rows[0] if len(rows) == 1 else source.separator.join(rows))
    all_single = all(len(part) == 1 for part in parts)
    return ("" if all_single else source.separator).join(texts)


def load_split_text(source: Source, split: str) -> str:
    """The text of one split expression of a source (for text files: the whole files)."""
    if source.is_text_files:
        return "\n".join(read_text_file(p) for p in source.paths)
    return _join_parts(_split_parts(source, split), source)


def _available_splits(source: Source) -> list[str]:
    import datasets

    if source.builder:
        return ["train"]  # data files given one by one are all one split
    try:
        return list(datasets.get_dataset_split_names(source.paths[0], source.config))
    except Exception:
        return list(_load_dataset(source, None).keys())


@dataclass
class Corpus:
    """Train and validation token ids (possibly memory-mapped), with the tokenizer that made them."""

    train: np.ndarray
    val: np.ndarray
    tokenizer: Tokenizer
    val_chars: int  # characters predicted in validation (for bits per character)
    description: dict = field(default_factory=dict)


class _LazyTexts:
    """Loads the train and validation texts only when the cache misses."""

    def __init__(self, source: Source, val_fraction: float):
        self.source, self.val_fraction = source, val_fraction
        self.fingerprint_parts: list[str] = []
        self._train_parts = self._val_parts = None
        self.val_expression = None
        if source.is_text_files:
            for p in source.paths:
                stat = Path(p).stat()
                self.fingerprint_parts.append(f"{p}:{stat.st_size}:{stat.st_mtime_ns}")
            return
        self._train_parts = _split_parts(source, source.split)
        if source.val_split == "auto":
            names = _available_splits(source)
            if "validation" in names:
                self.val_expression = "validation+test" if "test" in names else "validation"
        elif source.val_split not in ("none", ""):
            self.val_expression = source.val_split
        if self.val_expression:
            self._val_parts = _split_parts(source, self.val_expression)
        for part in (self._train_parts or []) + (self._val_parts or []):
            self.fingerprint_parts.append(part._fingerprint)

    @property
    def val_description(self) -> str:
        return self.val_expression or f"last {self.val_fraction:.0%} of {self.source.split}"

    def texts(self) -> tuple[str, str]:
        if self.source.is_text_files:
            text = "\n".join(read_text_file(p) for p in self.source.paths)
            val = ""
        else:
            text = _join_parts(self._train_parts, self.source)
            val = _join_parts(self._val_parts, self.source) if self._val_parts else ""
        check(len(text) > 0, f"{self.source.name} has no text in split {self.source.split!r}")
        if not val:  # no validation split: hold out a contiguous tail
            cut = int(len(text) * (1 - self.val_fraction))
            text, val = text[:cut], text[cut:]
        return text, val


def held_out_text(source: Source, val_fraction: float = 0.1) -> tuple[str, str]:
    """The text that training on `source` holds out for validation, and which part that is: the dataset's
    validation(+test) split, or the last `val_fraction` of the training text (cut as load_corpus cuts it)."""
    lazy = _LazyTexts(source, val_fraction)
    return lazy.texts()[1], lazy.val_description


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


# ---------------------------------------------------------------------------------------------------------
# Batching for truncated backpropagation through time


class StreamBatcher:
    """Cuts the token array into `batch_size` contiguous streams and walks down them `seq_len` at a time,
    so the hidden state at the end of one batch is the right start for the next (stateful TBPTT):

        tokens:  a b c d e f g h i j k l m n o p q r s t u v w x ...
        stream 0: a b c d e f | g h i j k l | ...      step 0 takes columns 0-5 of every stream,
        stream 1: m n o p q r | s t u v w x | ...      step 1 columns 6-11, and so on.

    Each epoch starts at a different offset (from the seed), so chunk boundaries move between epochs.
    Batch `step` is a pure function of `step`: resuming needs only the step number.
    """

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, seed: int = 0):
        self.tokens, self.batch_size, self.seq_len, self.seed = tokens, batch_size, seq_len, seed
        usable = len(tokens) - 1 - seq_len  # room for targets and the largest epoch offset
        self.steps_per_epoch = max(usable // batch_size, 0) // seq_len
        check(self.steps_per_epoch >= 1,
              f"the training text has {len(tokens)} tokens, fewer than one batch needs "
              f"({batch_size} streams x {seq_len} + {seq_len + 1}); use a smaller --batch-size or --seq-len, "
              "or more text")
        self.stream_len = self.steps_per_epoch * seq_len

    def epoch_offset(self, epoch: int) -> int:
        return 0 if epoch == 0 else int(np.random.default_rng([self.seed, epoch]).integers(self.seq_len))

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(inputs (B, T), targets (B, T), starts_epoch): at an epoch start the hidden state must be reset."""
        epoch, position = divmod(step, self.steps_per_epoch)
        starts = self.epoch_offset(epoch) + np.arange(self.batch_size) * self.stream_len + position * self.seq_len
        chunk = np.asarray(self.tokens[starts[:, None] + np.arange(self.seq_len + 1)], dtype=np.int64)  # (B, T+1)
        x, y = torch.from_numpy(chunk[:, :-1].copy()), torch.from_numpy(chunk[:, 1:].copy())
        return x, y, position == 0
