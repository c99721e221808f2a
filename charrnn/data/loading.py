"""The `datasets` side of reading: a builder for data files, a dataset folder or a Hub id, its splits opened as
streams of rows, their text column, and a fingerprint that changes when the data does.

Splits are streamed (`as_streaming_dataset`, what `load_dataset(..., streaming=True)` returns): rows are read
from the files as they are iterated, with no copy into Arrow files first. Only a split expression that slices
rows (`train[:10%]`) needs the prepared Arrow copy, as streams cannot slice.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from charrnn.data.sources import Source, file_fingerprint
from charrnn.errors import CharRNNError, check
from charrnn.paths import data_dir

BATCH_ROWS = 1000  # dataset rows read at a time
LOCAL_PATH_HINT = ("pass a local path instead: a folder of .txt or .parquet files (or arrow/json/csv), or text or "
                   "data files (e.g. --dataset my_novel.txt)")


def _check_hub_reachable(repo_id: str) -> None:
    """Fail in seconds when the Hub cannot be reached (charrnn.hub.reach.check_reachable). Offline mode
    (HF_HUB_OFFLINE, HF_DATASETS_OFFLINE) skips the check: datasets then answers at once from its cache, or
    fails, and dataset_errors words the error."""
    import datasets
    from huggingface_hub import constants

    from charrnn.hub.reach import check_reachable

    if constants.is_offline_mode() or datasets.config.HF_HUB_OFFLINE:
        return
    check_reachable(f"load {repo_id!r}", f"{LOCAL_PATH_HINT}, or set HF_HUB_OFFLINE=1 to use a copy already in "
                    "your cache", repo_id, repo_type="dataset")


@contextlib.contextmanager
def dataset_errors(source: Source):
    """datasets' many exception types, raised when a dataset is opened or while its rows stream, as one message."""
    name = source.name if source.builder else repr(source.paths[0])
    try:
        yield
    except CharRNNError:
        raise
    except ConnectionError as err:
        raise CharRNNError(f"cannot load {name} from the Hugging Face Hub ({err}); {LOCAL_PATH_HINT}") from None
    except ValueError as err:
        if "split" in str(err).lower():
            raise CharRNNError(f"{source.name}: {err}") from None
        raise CharRNNError(f"cannot load dataset {name}: {err}") from None
    except Exception as err:  # DatasetNotFoundError, EmptyDatasetError, ArrowInvalid, ...
        raise CharRNNError(f"cannot load dataset {name}: {type(err).__name__}: {err}") from None


def dataset_builder(source: Source):
    """The datasets builder of a dataset folder, Hub id or data files: it knows the splits and their files,
    and reads nothing yet."""
    import datasets

    path = source.paths[0]
    if source.on_hub:
        _check_hub_reachable(path)
    cache_dir = str(data_dir() / "downloads")
    with dataset_errors(source):
        if source.builder:
            builder = datasets.load_dataset_builder(source.builder, data_files=source.paths, cache_dir=cache_dir)
        else:
            builder = datasets.load_dataset_builder(path, source.config, cache_dir=cache_dir)
    if builder.name == "csv":  # read 10,000 rows at a time, and a row of a compressed file can be long
        builder.config.chunksize = min(builder.config.chunksize, BATCH_ROWS)  # read only when rows are
    return builder


def split_names(builder) -> list[str]:
    """The splits a builder offers, from its file listing (or the dataset card), without reading rows."""
    return list(builder.config.data_files or builder.info.splits or {})


@dataclass
class ParquetSplit:
    """A split of parquet files, read by pyarrow a few rows at a time (ParquetFile.iter_batches) instead of by
    datasets' parquet reader, which unpacks a whole row group at once (it scans with pyarrow.dataset): a row group
    of a small compressed file can unpack to gigabytes, and reading that stops after a few million characters
    would still have unpacked all of it. The files are datasets' listing of the split (local paths, or hf:// URLs
    that fsspec opens)."""

    files: list[str]
    features: object  # datasets.Features: from the dataset card, else the first file's schema


@contextlib.contextmanager
def _parquet_file(file: str):
    import fsspec
    import pyarrow.parquet as pq

    with fsspec.open(file, "rb") as f:
        yield pq.ParquetFile(f)


def open_split(builder, source: Source, name: str):
    """One split (a name, no `+`) as an iterable of rows: streamed (parquet files as a ParquetSplit), or, for a
    slice like `train[:10%]`, the prepared Arrow copy."""
    import datasets

    with dataset_errors(source):
        if "[" in name:
            builder.download_and_prepare()
            return builder.as_dataset(split=name)
        files = (builder.config.data_files or {}).get(name)
        if builder.name == "parquet" and files:
            features = builder.info.features
            if not features:
                with _parquet_file(files[0]) as table:
                    features = datasets.Features.from_arrow_schema(table.schema_arrow)
            return ParquetSplit(list(files), features)
        return builder.as_streaming_dataset(split=name)


def text_column(dataset, wanted: str | None, where: str) -> str:
    """The column that holds the text: `wanted`, else the only string column, else one named "text"."""
    features = dataset.features or _features_of_first_rows(dataset)
    columns = list(features)
    if wanted is not None:
        check(wanted in columns, f"{where} has no column {wanted!r}; its columns are: {', '.join(columns)} "
                                 "(choose one with --text-column)")
        return wanted
    strings = [name for name, feature in features.items()
               if getattr(feature, "dtype", None) in ("string", "large_string")]
    if len(strings) == 1:
        return strings[0]
    if "text" in columns:
        return "text"
    raise CharRNNError(f"{where} has no single text column; its columns are: {', '.join(columns)} "
                       "(choose one with --text-column)")


def _features_of_first_rows(dataset):
    """Column types of a stream whose files do not declare them (csv, json): what the first rows hold."""
    import datasets

    for table in dataset.with_format("arrow").iter(batch_size=1):
        return datasets.Features.from_arrow_schema(table.schema)
    return datasets.Features()


def column_batches(dataset, column: str, rows: int):
    """The text column in Arrow batches of `rows` rows, read as they are needed."""
    if isinstance(dataset, ParquetSplit):
        for file in dataset.files:
            with _parquet_file(file) as table:
                for batch in table.iter_batches(batch_size=rows, columns=[column]):
                    yield batch.column(0)
        return
    for table in dataset.select_columns([column]).with_format("arrow").iter(batch_size=rows):
        yield table.column(column)


def has_one_row(dataset) -> bool:
    """Whether a split holds exactly one row (a whole corpus in one string), reading at most two rows."""
    import datasets

    if isinstance(dataset, datasets.Dataset):
        return len(dataset) == 1
    if isinstance(dataset, ParquetSplit):  # the files' footers: stop once two rows are counted
        rows = 0
        for file in dataset.files:
            with _parquet_file(file) as table:
                rows += table.metadata.num_rows
            if rows > 1:
                break
        return rows == 1
    return sum(table.num_rows for table in dataset.take(2).with_format("arrow").iter(batch_size=2)) == 1


def builder_fingerprint(builder) -> list[str]:
    """What identifies the data without reading it: each local file's path, size and modification time; for
    files on the Hub, their URLs, which hold the commit they are read at, and the builder's hash (the commit
    again, or, offline, the hash of the copy in the datasets cache). Assumed: a Hub commit's files never change."""
    files = sorted({str(f) for split_files in (builder.config.data_files or {}).values() for f in split_files})
    parts = [file_fingerprint(f) if Path(f).is_file() else f for f in files]
    if not files or not all(Path(f).is_file() for f in files):
        parts.append(str(builder.hash))
    return parts
