"""Files a hostile visitor uploads to the Train tab: small files that hold more text than the host accepts.

Used by the stress command's Train round (train_tab.py) and its tests.
"""

from __future__ import annotations

from pathlib import Path

SENTENCE = "All work and no play makes Jack a dull boy. "


def parquet_bomb(path: Path, rows: int = 100_000, row_chars: int = 4_000) -> Path:
    """`rows` copies of one `row_chars`-character string: one dictionary entry, zstd-compressed. Written from
    a dictionary array, so making it costs one row; stored without Arrow's schema, so it reads back as plain
    strings, as a file from any other tool would."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = (SENTENCE * (row_chars // len(SENTENCE) + 1))[:row_chars]
    column = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int32)), pa.array([row]))
    pq.write_table(pa.table({"text": column}), path, compression="zstd", store_schema=False)
    return path


def csv_bomb(path: Path, chars: int) -> Path:
    """A one-column csv of about `chars` characters of one repeated line."""
    line = SENTENCE.strip() + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write("text\n")
        f.writelines([line] * (chars // len(line) + 1))
    return path
