"""A source's text, read in chunks of bounded size: text files decoded block by block, dataset rows joined batch
by batch. Nothing here holds a whole corpus, except the functions that return one string on purpose
(`read_text_file`, `held_out_text`).

Rows become one text as they always have: the rows of a split join with the source's separator (rows that are
None are skipped), and so do the parts of a split expression (`validation+test`), unless every part is a single
row (a whole corpus per split, like Tiny Shakespeare): those join as they are. Text files join with a newline.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Callable, Iterable, Iterator

from charrnn.data.loading import (BATCH_ROWS, builder_fingerprint, column_batches, dataset_builder, dataset_errors,
                                  has_one_row, open_split, split_names, text_column)
from charrnn.data.sources import Source, file_fingerprint
from charrnn.errors import CharRNNError, check

CHUNK_SIZE = 1 << 21  # bytes of a text file, or of rows, handled at a time

Progress = Callable[[int], object]  # told how many bytes of the source have just been read


def read_text_file(path: str | Path) -> str:
    """The file's exact text: UTF-8 (a BOM is kept as a character), newlines untranslated."""
    return "".join(text_file_chunks(path))


def text_file_chunks(path: str | Path, progress: Progress | None = None) -> Iterator[str]:
    """The file's exact text in chunks: CHUNK_SIZE bytes are read at a time and decoded incrementally, so a
    character whose bytes straddle two reads comes out whole."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes of the file before this block
    try:
        with open(path, "rb") as f:
            while True:
                block = f.read(CHUNK_SIZE)
                pending = len(decoder.getstate()[0])  # the start of a character, kept from the last block
                try:
                    text = decoder.decode(block, final=not block)
                except UnicodeDecodeError as err:
                    raise _not_utf8(path, offset - pending + err.start, err.reason) from None
                offset += len(block)
                if progress:
                    progress(len(block))
                if text:
                    yield text
                if not block:
                    return
    except OSError as err:
        raise CharRNNError(f"cannot read {path}: {err.strerror}") from None


class NotUTF8(CharRNNError):
    """A text file whose bytes are not UTF-8: where (`byte`) and why (`reason`), for a caller to word its own."""

    def __init__(self, message: str, byte: int, reason: str):
        super().__init__(message)
        self.byte, self.reason = byte, reason


def _not_utf8(path, byte: int, reason: str) -> NotUTF8:
    return NotUTF8(f"{path} is not UTF-8 text (byte {byte}: {reason}); convert it first, "
                   f"e.g. iconv -f latin1 -t utf-8 {path} > {Path(path).stem}.utf8.txt", byte, reason)


def rows_chunks(dataset, column: str, separator: str, progress: Progress | None = None) -> Iterator[str]:
    """The rows of one split joined with `separator`, BATCH_ROWS rows read at a time (see rows_text)."""
    import pyarrow.compute as pc

    def batches():
        for batch in column_batches(dataset, column, BATCH_ROWS):
            if progress:
                progress(pc.sum(pc.binary_length(batch)).as_py() or 0)
            yield batch

    return rows_text(batches(), separator)


def rows_text(batches: Iterable, separator: str) -> Iterator[str]:
    """Batches of rows (Arrow string arrays, chunked or not) as one text: the rows joined with `separator`, rows
    that are null skipped, in chunks of at most about CHUNK_SIZE bytes of text.

    A batch becomes Python strings a slice at a time, and a row longer than a chunk is decoded a chunk at a
    time, so however many rows a batch holds and however long one row is, a reader that stops early has made
    only what it kept. A compressed file can hold rows of any length (one value repeated from a dictionary)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    started = False
    for batch in batches:
        for array in batch.chunks if isinstance(batch, pa.ChunkedArray) else [batch]:
            if pa.types.is_dictionary(array.type):
                array = array.dictionary_decode()
            array = array.drop_null()
            ends = np.cumsum(pc.binary_length(array).to_numpy(zero_copy_only=False))  # bytes up to each row's end
            start = 0
            while start < len(array):
                before = ends[start - 1] if start else 0
                stop = int(np.searchsorted(ends, before + CHUNK_SIZE, side="right"))  # rows that fit in a chunk
                if started:
                    yield separator
                started = True
                if stop > start:
                    yield separator.join(array.slice(start, stop - start).to_pylist())
                    start = stop
                else:
                    yield from _decoded(array[start].as_buffer())
                    start += 1


def _decoded(data) -> Iterator[str]:
    """One long row's UTF-8 bytes (an Arrow buffer, not copied) as text, CHUNK_SIZE bytes at a time."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for start in range(0, len(view), CHUNK_SIZE):
        text = decoder.decode(view[start:start + CHUNK_SIZE], final=start + CHUNK_SIZE >= len(view))
        if text:
            yield text


def split_chunks(source: Source, split: str, builder=None, progress: Progress | None = None) -> Iterator[str]:
    """The text of one split expression of a source (for text files: the whole files), in chunks."""
    if source.is_text_files:
        for i, path in enumerate(source.paths):
            if i:
                yield "\n"
            yield from text_file_chunks(path, progress)
        return
    builder = builder or dataset_builder(source)
    with dataset_errors(source):
        parts = [open_split(builder, source, name.strip()) for name in split.split("+")]
        columns = [text_column(part, source.text_column, source.name) for part in parts]
        joiner = "" if len(parts) > 1 and all(has_one_row(part) for part in parts) else source.separator
        for i, (part, column) in enumerate(zip(parts, columns)):
            if i:
                yield joiner
            yield from rows_chunks(part, column, source.separator, progress)


def cut_stream(chunks: Iterator[str], cut: int) -> tuple[Iterator[str], Iterator[str]]:
    """The first `cut` characters of a chunk stream and the rest, as two iterators over one pass: read the
    first to its end before the second."""
    chunks = iter(chunks)
    rest: list[str] = []

    def head():
        position = 0
        for chunk in chunks:
            if position + len(chunk) >= cut:
                yield chunk[:cut - position]
                rest.append(chunk[cut - position:])
                return
            position += len(chunk)
            yield chunk

    def tail():
        yield from rest
        yield from chunks

    return head(), tail()


class CorpusText:
    """The training and validation text of a source, to be read as often as needed, in chunks. Validation is
    the dataset's validation(+test) split (or --val-split), else the last `val_fraction` of the training text.
    Making one reads no text: it finds the files or the dataset's splits, and what identifies them."""

    def __init__(self, source: Source, val_fraction: float):
        self.source, self.val_fraction = source, val_fraction
        self.builder = None
        self.val_expression = None
        if source.is_text_files:
            self.fingerprint = [file_fingerprint(p) for p in source.paths]
            return
        self.builder = dataset_builder(source)
        self.fingerprint = builder_fingerprint(self.builder)
        if source.val_split == "auto":
            names = split_names(self.builder)
            if "validation" in names:
                self.val_expression = "validation+test" if "test" in names else "validation"
        elif source.val_split not in ("none", ""):
            self.val_expression = source.val_split

    @property
    def val_description(self) -> str:
        return self.val_expression or f"last {self.val_fraction:.0%} of {self.source.split}"

    @property
    def empty_message(self) -> str:
        return f"{self.source.name} has no text in split {self.source.split!r}"

    def size_bytes(self) -> int | None:
        """How many bytes the training text is read from, when that is known before reading (text files)."""
        return sum(Path(p).stat().st_size for p in self.source.paths) if self.source.is_text_files else None

    def train_chunks(self, progress: Progress | None = None) -> Iterator[str]:
        """The whole training split, validation tail included when there is no validation split."""
        return split_chunks(self.source, self.source.split, self.builder, progress)

    def val_split_chunks(self, progress: Progress | None = None) -> Iterator[str]:
        if not self.val_expression:
            return iter(())
        return split_chunks(self.source, self.val_expression, self.builder, progress)

    def has_val_split_text(self) -> bool:
        """Whether validation is a split with text in it (else it is the training text's tail)."""
        return any(self.val_split_chunks())

    def cut(self, train_chars: int) -> int:
        """Where the training text ends and its validation tail starts, when there is no validation split."""
        return int(train_chars * (1 - self.val_fraction))


def held_out_text(source: Source, val_fraction: float = 0.1) -> tuple[str, str]:
    """The text that training on `source` holds out for validation, and which part that is: the dataset's
    validation(+test) split, or the last `val_fraction` of the training text (cut as load_corpus cuts it).
    Only that part is held in memory; the training text before the cut is streamed past."""
    text = CorpusText(source, val_fraction)
    if text.has_val_split_text():
        return "".join(text.val_split_chunks()), text.val_description
    total = sum(map(len, text.train_chunks()))
    check(total > 0, text.empty_message)
    head, tail = cut_stream(text.train_chunks(), text.cut(total))
    for _ in head:
        pass
    return "".join(tail), text.val_description
