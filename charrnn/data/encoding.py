"""Token ids from a corpus read in chunks, written to .npy files piece by piece: the whole text is never in
memory, so a corpus of many GB encodes in a few tens of MB, with the same ids as encoding it in one piece.

Two passes over the training text:
  1. a census: how many characters, and where each character first appears. That gives the validation cut
     (when there is no validation split) and the character vocabulary of the text before it: a character
     first seen after the cut is not in the vocabulary, exactly as when the text was cut first. A sentencepiece
     tokenizer is trained on the first SP_SAMPLE_CHARS characters instead, and needs the census only for the cut.
  2. the encoding, chunk by chunk, into train.npy and val.npy (the validation split is read only here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from charrnn.data.reading import CHUNK_SIZE, CorpusText, cut_stream
from charrnn.errors import check
from charrnn.tokenizer import UNKNOWN_ID, CharTokenizer, Tokenizer, train_tokenizer

# sentencepiece trains on at most this many characters from the start of the training text: enough to learn
# the pieces of a language, and it keeps the trainer's memory (several times its input) near a GB at most.
SP_SAMPLE_CHARS = 10_000_000
UNICODE_SIZE = 0x110000  # code points
ASCII_BYTES, HIGH_BYTES = bytes(range(128)), bytes(range(128, 256))  # UTF-8: ASCII characters, the rest


def codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)


class CharCensus:
    """How many characters a stream of chunks holds and where each distinct character first appears."""

    def __init__(self):
        self.chars = 0
        self.first_seen: dict[int, int] = {}  # code point -> position of its first occurrence
        self._seen = np.zeros(UNICODE_SIZE, dtype=bool)
        self._known_ascii_and_high = HIGH_BYTES
        self._known_non_ascii: set[str] = set()

    def add(self, text: str) -> None:
        if self._has_new_characters(text):
            self._note_new_characters(text)
        self.chars += len(text)

    def _has_new_characters(self, text: str) -> bool:
        """Most chunks hold no new character. Checked on the UTF-8 bytes, where bytes.translate, which deletes
        bytes at GB/s, leaves only unseen ASCII characters, or only the (rare) non-ASCII ones."""
        data = text.encode("utf-8", errors="surrogatepass")
        if data.translate(None, self._known_ascii_and_high):
            return True
        if len(data) == len(text):  # all ASCII
            return False
        return not set(data.translate(None, ASCII_BYTES).decode("utf-8", "surrogatepass")) <= self._known_non_ascii

    def _note_new_characters(self, text: str) -> None:
        points = codepoints(text)
        where = np.flatnonzero(~self._seen[points])
        new, first = np.unique(points[where], return_index=True)  # first: each one's first index in `where`
        self._seen[new] = True
        self.first_seen.update(zip(new.tolist(), (self.chars + where[first]).tolist()))
        self._known_ascii_and_high = bytes(np.flatnonzero(self._seen[:128]).tolist()) + HIGH_BYTES
        self._known_non_ascii.update(chr(point) for point in new.tolist() if point >= 128)

    def vocabulary(self, end: int) -> str:
        """The characters of the first `end` characters of the stream."""
        return "".join(chr(point) for point, position in self.first_seen.items() if position < end)


class CharEncoder:
    """Char ids of text, fast: a table indexed by code point. ASCII text, most text, goes through
    bytes.translate with a 256-byte table instead, a few times faster (ASCII characters sort first in the
    vocabulary, so their ids fit in a byte)."""

    def __init__(self, tokenizer: CharTokenizer, dtype: np.dtype):
        points = np.array([ord(c) for c in tokenizer.chars], dtype=np.int64)
        self.table = np.full(UNICODE_SIZE, UNKNOWN_ID, dtype=dtype)
        self.table[points] = np.arange(1, len(points) + 1)
        self.ascii_table = self.table[:128].astype(np.uint8).tobytes() + bytes(128)

    def __call__(self, text: str) -> np.ndarray:
        if text.isascii():
            return np.frombuffer(text.encode("ascii").translate(self.ascii_table), dtype=np.uint8)
        return self.table.take(codepoints(text), mode="clip")  # no index checks: faster than table[...]


def newline_aligned(chunks: Iterator[str], longest: int = 8 * CHUNK_SIZE) -> Iterator[str]:
    """The same text in chunks that end after a newline. sentencepiece keeps "\\n" as a piece of its own and
    never merges across it, so such chunks encode exactly as the whole text does. A line longer than `longest`
    characters is cut where it is (the one place where ids could differ from encoding it whole)."""
    carry = ""
    for chunk in chunks:
        text = carry + chunk
        end = text.rfind("\n") + 1
        if end == 0 and len(text) >= longest:
            end = len(text)
        if end:
            yield text[:end]
        carry = text[end:]
    if carry:
        yield carry


class TokenFile:
    """A 1-D .npy file of token ids written piece by piece, opened later with np.load(mmap_mode="r").

    Plain appends, not a writable memory map: pages written through a map stay in the process's resident memory
    until the kernel writes them back, so a 4 GB cache would show as 4 GB of RSS. The header is written first
    with length 0 and rewritten at the end: numpy pads it so that any length fits in the same bytes."""

    def __init__(self, path: Path, dtype: np.dtype):
        self.dtype, self.tokens = np.dtype(dtype), 0
        self.file = open(path, "wb")
        self._write_header()
        self.header_bytes = self.file.tell()

    def append(self, ids: np.ndarray) -> None:
        self.file.write(np.ascontiguousarray(ids, dtype=self.dtype).data)
        self.tokens += len(ids)

    def _write_header(self) -> None:
        np.lib.format.write_array_header_1_0(self.file, {
            "descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (self.tokens,)})

    def __enter__(self) -> "TokenFile":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.file.seek(0)
            self._write_header()
            assert self.file.tell() == self.header_bytes, "the .npy header changed size"
        self.file.close()


def write_tokens(path: Path, chunks: Iterator[str], encode: Callable[[str], np.ndarray], dtype) -> tuple[int, int]:
    """Encode a stream of chunks into an .npy file; returns (tokens, characters)."""
    chars = 0
    with TokenFile(path, dtype) as out:
        for chunk in chunks:
            out.append(encode(chunk))
            chars += len(chunk)
    return out.tokens, chars


def progress_bar(description: str, total: int | None, enabled: bool):
    """Bytes of the source read per second, on stderr, once the work has taken more than a second."""
    from tqdm.auto import tqdm

    return tqdm(desc=description, total=total, unit="B", unit_scale=True, disable=not enabled, delay=1,
                dynamic_ncols=True)


def take_census(text: CorpusText, progress: bool) -> CharCensus:
    census = CharCensus()
    with progress_bar("reading the text", text.size_bytes(), progress) as bar:
        for chunk in text.train_chunks(bar.update):
            census.add(chunk)
    return census


def sentencepiece_sample(chunks: Iterator[str], size: int) -> str:
    """The first `size` characters of a stream of chunks."""
    parts, taken = [], 0
    for chunk in chunks:
        if taken >= size:
            break
        parts.append(chunk[:size - taken])
        taken += len(parts[-1])
    return "".join(parts)


def make_tokenizer(text: CorpusText, kind: str, vocab_size: int, census: CharCensus | None,
                   train_end: int | None) -> Tokenizer:
    """A tokenizer trained on the training text, which ends at `train_end` (None: the whole training split)."""
    if kind == "char":
        return train_tokenizer(kind, census.vocabulary(census.chars if train_end is None else train_end))
    size = SP_SAMPLE_CHARS if train_end is None else min(train_end, SP_SAMPLE_CHARS)
    sample = sentencepiece_sample(text.train_chunks(), size)
    check(len(sample) > 0 or train_end is not None, text.empty_message)  # a cut at 0: train_tokenizer says so
    return train_tokenizer(kind, sample, vocab_size)


def encode_corpus(text: CorpusText, folder: Path, tokenizer_kind: str = "char", vocab_size: int = 512,
                  tokenizer: Tokenizer | None = None, progress: bool = False) -> tuple[Tokenizer, int]:
    """Write folder/train.npy and folder/val.npy. Returns the tokenizer (trained here unless one is given)
    and the number of validation characters that are predicted (all but the first token's)."""
    has_val_split = text.has_val_split_text()
    census = None
    if not has_val_split or (tokenizer is None and tokenizer_kind == "char"):
        census = take_census(text, progress)
        check(census.chars > 0, text.empty_message)
    cut = None if has_val_split else text.cut(census.chars)
    tokenizer = tokenizer or make_tokenizer(text, tokenizer_kind, vocab_size, census, cut)
    dtype = np.min_scalar_type(tokenizer.vocab_size - 1)  # the smallest unsigned type that holds every id
    if isinstance(tokenizer, CharTokenizer):
        encode, aligned = CharEncoder(tokenizer, dtype), (lambda chunks: chunks)
    else:
        encode, aligned = tokenizer.encode, newline_aligned
    with progress_bar("encoding", text.size_bytes(), progress) as bar:
        if cut is None:
            train, val = text.train_chunks(bar.update), text.val_split_chunks(bar.update)
        else:
            train, val = cut_stream(text.train_chunks(bar.update), cut)
        _, train_chars = write_tokens(folder / "train.npy", aligned(train), encode, dtype)
        check(train_chars > 0 or cut is not None, text.empty_message)
        val_tokens, val_chars = write_tokens(folder / "val.npy", aligned(val), encode, dtype)
    if val_tokens == 0:
        return tokenizer, 0
    first = np.load(folder / "val.npy", mmap_mode="r")[:1].tolist()
    return tokenizer, val_chars - len(tokenizer.decode(first))
