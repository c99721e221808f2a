"""Encoding in chunks: the same ids, vocabulary and validation cut as encoding the whole text at once, a cache
that follows its source, and memory that does not grow with the corpus."""

import os
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from charrnn.data import held_out_text, load_corpus, read_text_file, resolve_source
from charrnn.data import cache as cache_module
from charrnn.data import reading
from charrnn.data.encoding import newline_aligned
from charrnn.errors import CharRNNError
from charrnn.tokenizer import CharTokenizer, SentencePieceTokenizer

# Multi-byte characters everywhere (2, 3 and 4 bytes in UTF-8), CRLF, a BOM, and a character ("Ω") that
# appears only in the validation tail, so it must stay out of the vocabulary.
LINES = [f"{i} caf\u00e9 \u65e5\u672c \U0001f642 to be, or not\r" for i in range(60)]
TAIL = "\nthe end \u03a9\u03a9"


def one_shot(text: str, val_fraction: float = 0.1, val_text: str | None = None):
    """What encoding the whole text at once gives (the code before streaming): (chars, train ids, val ids,
    val_chars)."""
    if val_text is None:
        cut = int(len(text) * (1 - val_fraction))
        text, val_text = text[:cut], text[cut:]
    tokenizer = CharTokenizer.train(text)
    val = tokenizer.encode(val_text)
    return tokenizer.chars, tokenizer.encode(text), val, len(tokenizer.decode(val[1:].tolist()))


def assert_same_as_one_shot(corpus, expected):
    chars, train, val, val_chars = expected
    assert corpus.tokenizer.chars == chars
    assert np.array_equal(np.asarray(corpus.train), train)
    assert np.array_equal(np.asarray(corpus.val), val)
    assert corpus.val_chars == val_chars


@pytest.fixture
def tiny_chunks(monkeypatch):
    """Chunks of 7 bytes (text files) or characters (rows), rows read 3 at a time: boundaries fall inside
    multi-byte characters, inside rows and between them."""
    monkeypatch.setattr(reading, "CHUNK_SIZE", 7)
    monkeypatch.setattr(reading, "BATCH_ROWS", 3)


def test_text_files_encode_in_chunks_exactly_as_whole(tmp_path, tiny_chunks):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(("\ufeff" + "\n".join(LINES[:30])).encode("utf-8"))
    b.write_bytes(("\n".join(LINES[30:]) + TAIL).encode("utf-8"))
    text = read_text_file(a) + "\n" + read_text_file(b)
    assert text == a.read_bytes().decode("utf-8") + "\n" + b.read_bytes().decode("utf-8")  # blocks decode exactly
    corpus = load_corpus(resolve_source([str(a), str(b)]), val_fraction=0.1)
    assert_same_as_one_shot(corpus, one_shot(text))
    assert "\u03a9" not in corpus.tokenizer.chars and "\ufeff" in corpus.tokenizer.chars
    assert held_out_text(resolve_source([str(a), str(b)]), 0.1)[0] == text[int(len(text) * 0.9):]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_data_file_encodes_in_chunks_exactly_as_whole(tmp_path, tiny_chunks, suffix):
    rows = LINES + [None, "", TAIL]
    path = tmp_path / f"rows{suffix}"
    frame = pd.DataFrame({"id": range(len(rows)), "text": rows})
    frame.to_parquet(path) if suffix == ".parquet" else frame.to_json(path, orient="records", lines=True,
                                                                        force_ascii=False)
    corpus = load_corpus(resolve_source(str(path)), val_fraction=0.2)
    assert_same_as_one_shot(corpus, one_shot("\n".join(r for r in rows if r is not None), 0.2))


def write_split(folder, split, rows):
    pd.DataFrame({"text": rows}).to_parquet(folder / "data" / f"{split}-00000-of-00001.parquet")


@pytest.mark.parametrize("rows_per_split", ["many", "one"])
def test_a_dataset_folder_encodes_in_chunks_exactly_as_whole(tmp_path, tiny_chunks, rows_per_split):
    folder = tmp_path / "dataset"
    (folder / "data").mkdir(parents=True)
    train, validation, test = LINES[:40], LINES[40:50], LINES[50:] + [TAIL]
    if rows_per_split == "one":  # a whole corpus per split, like Tiny Shakespeare: the parts join as they are
        train, validation, test = ["".join(train)], ["".join(validation)], ["".join(test)]
        val_text = validation[0] + test[0]
    else:  # a line per row: rows and parts join with newlines
        val_text = "\n".join(validation) + "\n" + "\n".join(test)
    for split, rows in (("train", train), ("validation", validation), ("test", test)):
        write_split(folder, split, rows)
    corpus = load_corpus(resolve_source(str(folder)))
    assert corpus.description["val_split"] == "validation+test"
    assert_same_as_one_shot(corpus, one_shot("\n".join(train), val_text=val_text))
    assert held_out_text(resolve_source(str(folder)))[0] == val_text


@pytest.mark.parametrize("kind", ["sp-bpe", "sp-unigram"])
def test_sentencepiece_encodes_in_chunks_exactly_as_whole(tmp_path, tiny_chunks, kind):
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(LINES * 3) + TAIL, encoding="utf-8", newline="")
    text = read_text_file(path)
    cut = int(len(text) * 0.9)
    corpus = load_corpus(resolve_source(str(path)), kind, vocab_size=300)
    whole = SentencePieceTokenizer.train(text[:cut], 300, kind)  # the tokenizer trained on the whole train text
    assert corpus.tokenizer.to_dict() == whole.to_dict()
    assert np.array_equal(np.asarray(corpus.train), whole.encode(text[:cut]))
    assert np.array_equal(np.asarray(corpus.val), whole.encode(text[cut:]))
    assert corpus.val_chars == len(whole.decode(whole.encode(text[cut:])[1:]))


def test_newline_aligned_chunks_end_after_a_newline_unless_a_line_is_too_long():
    chunks = ["ab\ncd", "ef\ng", "hijklmnop", "q\n"]
    assert list(newline_aligned(iter(chunks), longest=100)) == ["ab\n", "cdef\n", "ghijklmnopq\n"]
    assert "".join(newline_aligned(iter(chunks), longest=4)) == "".join(chunks)


@pytest.mark.parametrize("data", [
    "caf\u00e9 \u65e5\u672c ".encode("utf-8") + b"\xff rest",  # a byte that starts no character
    "caf\u00e9 \u65e5\u672c".encode("utf-8")[:-1],  # the file ends inside a character
])
def test_invalid_utf8_is_reported_at_its_byte_in_the_file(tmp_path, tiny_chunks, data):
    path = tmp_path / "broken.txt"
    path.write_bytes(data)
    with pytest.raises(UnicodeDecodeError) as whole:
        data.decode("utf-8")
    with pytest.raises(CharRNNError, match=rf"not UTF-8 text \(byte {whole.value.start}: {whole.value.reason}\)"):
        load_corpus(resolve_source(str(path)))


def cache_entries(data_dir):
    return {p.name for p in (data_dir / "cache").iterdir()} if (data_dir / "cache").exists() else set()


def test_the_cache_entry_is_replaced_when_the_file_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "text.txt"
    path.write_text("abcdefghij" * 20, encoding="utf-8")
    first = load_corpus(resolve_source(str(path)))
    path.write_text("klmnopqrst" * 20, encoding="utf-8")  # the same size
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    second = load_corpus(resolve_source(str(path)))
    assert set(second.tokenizer.chars) == set("klmnopqrst") and first.tokenizer.chars == "abcdefghij"
    assert len(cache_entries(tmp_path / "data")) == 1  # not one per version: entries can be GBs


def test_a_hub_dataset_encoded_before_is_used_when_the_hub_cannot_be_reached(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CHARRNN_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "text.txt"
    path.write_text("abcdefghij" * 20, encoding="utf-8")
    hub = resolve_source("someone/novels")
    assert hub.on_hub
    with monkeypatch.context() as patch:  # stands in for the Hub: the text comes from a local file
        patch.setattr(cache_module, "CorpusText", lambda source, fraction: reading.CorpusText(
            resolve_source(str(path)), fraction))
        online = load_corpus(hub)

    def unreachable(source, fraction):
        raise CharRNNError("cannot load 'someone/novels' from the Hugging Face Hub")

    monkeypatch.setattr(cache_module, "CorpusText", unreachable)
    offline = load_corpus(hub)
    assert np.array_equal(online.train, offline.train) and offline.description == online.description
    assert "using the copy of someone/novels encoded before" in capsys.readouterr().err
    with pytest.raises(CharRNNError, match="Hugging Face Hub"):  # nothing encoded before: the error stands
        load_corpus(resolve_source("someone/other"))


def test_a_second_load_reads_nothing_of_the_source(tmp_path, monkeypatch, parquet_folder):
    monkeypatch.setenv("CHARRNN_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "text.txt"
    path.write_text("abcdefghij" * 20, encoding="utf-8")
    first = [load_corpus(resolve_source(str(path))), load_corpus(resolve_source(str(parquet_folder)))]

    def no_reading(*args, **kwargs):
        raise AssertionError("the source was read")

    monkeypatch.setattr(reading, "text_file_chunks", no_reading)
    monkeypatch.setattr(reading, "column_batches", no_reading)
    second = [load_corpus(resolve_source(str(path))), load_corpus(resolve_source(str(parquet_folder)))]
    for a, b in zip(first, second):
        assert isinstance(b.train, np.memmap) and np.array_equal(a.train, b.train) and a.val_chars == b.val_chars


def peak_memory_while_encoding(path) -> int:
    tracemalloc.start()
    try:
        load_corpus(resolve_source(str(path)))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_while_encoding_does_not_grow_with_the_corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(reading, "CHUNK_SIZE", 1 << 16)
    line = "First Citizen: Before we proceed any further, hear me speak.\n"
    peaks = []
    for lines in (20_000, 200_000):  # 1.2 and 12 MB, a non-ASCII line now and then
        path = tmp_path / f"{lines}.txt"
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(line if i % 1000 else "caf\u00e9 \u65e5\u672c \U0001f642\n" for i in range(lines))
        peaks.append(peak_memory_while_encoding(path))
    size = path.stat().st_size
    # A few MB of lookup tables (one byte per Unicode code point) and chunks: the same for any corpus.
    assert peaks[1] < 1.1 * peaks[0] and peaks[1] < size / 3, f"peaks {peaks} while encoding {size} bytes"


def test_a_build_killed_midway_is_cleaned_up_by_the_next(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_DATA_DIR", str(tmp_path / "data"))
    abandoned = tmp_path / "data" / "cache" / "0123.tmp-xyz"
    abandoned.mkdir(parents=True)
    (abandoned / "train.npy").write_bytes(b"half")
    (abandoned / cache_module.OWNER_FILE).write_text(f"{cache_module.socket.gethostname()} 999999999")
    path = tmp_path / "text.txt"
    path.write_text("abcdefghij" * 20, encoding="utf-8")
    load_corpus(resolve_source(str(path)))
    assert not abandoned.exists() and len(cache_entries(tmp_path / "data")) == 1
