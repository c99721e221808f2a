"""The text column of one data file a person uploads (.csv, .jsonl, .parquet), read a batch of rows at a time.

A small file can hold a huge text: a parquet file's rows are compressed, and may all repeat one value from a
dictionary, so a file of kilobytes can unpack to hundreds of millions of characters. The file is therefore never
read whole: parquet by record batches of a few rows of the text column only, csv and jsonl by chunks of rows, each
turned into text by reading.rows_text. A reader that stops at a limit has held what it kept and one batch.

The text column: the one named "text" among the columns of strings, else the only column of strings (for csv and
jsonl, as the first rows show them). Errors name the file as the caller names it (`where`), never by its path on
the server.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from charrnn.data.reading import rows_text
from charrnn.errors import CharRNNError, check

# Parquet rows unpacked at a time: a batch costs its rows times its longest row, and a compressed row can be long.
PARQUET_ROWS = 64
# csv and jsonl rows parsed at a time: a chunk is at most the file's bytes, which the upload size caps.
TEXT_ROWS = 1000


def table_chunks(path: str | Path, kind: str, where: str) -> Iterator[str]:
    """The rows of the file's text column, one per line, in chunks. `kind`: csv, jsonl or parquet."""
    try:
        with open(path, "rb") as f:  # opened here, so that no reader's message holds the path
            yield from rows_text(READERS[kind](f, where), "\n")
    except CharRNNError:
        raise
    except Exception as err:  # noqa: BLE001 - pandas and pyarrow raise many types for a damaged file
        message = str(err).replace(str(path), where)
        raise CharRNNError(f"{where} could not be read as {kind} ({type(err).__name__}: {message})") from None


def _text_column(columns: list, strings: list, where: str) -> str:
    check("text" in strings or len(strings) == 1,
          f"{where} has no single text column (its columns: {', '.join(map(str, columns))}); name the text column "
          "'text'")
    return "text" if "text" in strings else strings[0]


def _parquet_rows(f, where: str):
    def is_text(kind) -> bool:
        if pa.types.is_dictionary(kind):  # a pandas category column
            kind = kind.value_type
        return pa.types.is_string(kind) or pa.types.is_large_string(kind)

    table = pq.ParquetFile(f)
    schema = table.schema_arrow
    column = _text_column(schema.names, [field.name for field in schema if is_text(field.type)], where)
    for batch in table.iter_batches(batch_size=PARQUET_ROWS, columns=[column]):
        yield batch.column(0)


def _strings(values) -> pa.Array:
    """Values as Arrow strings: what is not a string (a number, a missing value) is null."""
    return pa.array([value if isinstance(value, str) else None for value in values], pa.string())


def _csv_rows(f, where: str):
    # The column is picked by the types pandas infers for the first rows; then only it is read, as strings.
    first = pd.read_csv(f, nrows=TEXT_ROWS)
    strings = [c for c in first.columns if first[c].map(lambda value: isinstance(value, str)).any()]
    column = _text_column(list(first.columns), strings, where)
    f.seek(0)
    for chunk in pd.read_csv(f, usecols=[column], dtype=str, chunksize=TEXT_ROWS):
        yield _strings(chunk[column])


def _jsonl_rows(f, where: str):
    """One JSON object per line (blank lines skipped), TEXT_ROWS lines at a time."""
    column, records = None, []
    for number, line in enumerate(io.TextIOWrapper(f, encoding="utf-8"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise CharRNNError(f"{where} could not be read as jsonl (line {number}: {err.msg})") from None
        check(isinstance(record, dict), f"{where}: line {number} is not a JSON object ({{\"text\": \"...\"}})")
        records.append(record)
        if len(records) == TEXT_ROWS:
            column = column or _record_column(records, where)
            yield _strings(record.get(column) for record in records)
            records = []
    if records:
        column = column or _record_column(records, where)
        yield _strings(record.get(column) for record in records)


def _record_column(records: list[dict], where: str) -> str:
    """The text column of JSON records, as the first of them show it."""
    columns = list(dict.fromkeys(key for record in records for key in record))
    strings = [key for key in columns if any(isinstance(record.get(key), str) for record in records)]
    return _text_column(columns, strings, where)


READERS = {"csv": _csv_rows, "jsonl": _jsonl_rows, "parquet": _parquet_rows}  # batches of the text column
