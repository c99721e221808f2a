"""Reading a source's text: text files exactly as UTF-8, datasets through `datasets`, the validation part."""

from __future__ import annotations

from pathlib import Path

from charrnn.data.sources import Source
from charrnn.errors import CharRNNError, check
from charrnn.paths import data_dir


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
