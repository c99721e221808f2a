import time

import numpy as np
import pytest

from charrnn.data import StreamBatcher, load_corpus, read_text_file, resolve_source
from charrnn.errors import CharRNNError
from tests.conftest import SHARED_DATA, TINY_TEXT


def test_text_file_splits_off_a_contiguous_validation_tail(text_file):
    corpus = load_corpus(resolve_source(str(text_file)), val_fraction=0.1)
    train = corpus.tokenizer.decode(corpus.train.tolist())
    val = corpus.tokenizer.decode(corpus.val.tolist())
    assert train + val == TINY_TEXT
    assert len(val) == len(TINY_TEXT) - int(len(TINY_TEXT) * 0.9)


def test_several_text_files_are_joined(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("alpha " * 50, encoding="utf-8")
    b.write_text("beta " * 50, encoding="utf-8")
    corpus = load_corpus(resolve_source([str(a), str(b)]))
    text = corpus.tokenizer.decode(corpus.train.tolist()) + corpus.tokenizer.decode(corpus.val.tolist())
    assert text == "alpha " * 50 + "\n" + "beta " * 50


def test_parquet_folder_goes_through_load_dataset_with_its_own_validation_split(parquet_folder):
    corpus = load_corpus(resolve_source(str(parquet_folder)))
    lines = [line for line in TINY_TEXT.split("\n") if line]
    assert corpus.tokenizer.decode(corpus.train.tolist()) == "\n".join(lines)  # many rows joined by newlines
    assert corpus.tokenizer.decode(corpus.val.tolist()) == "\n".join(lines[:8])
    assert corpus.description["val_split"] == "validation"


@pytest.mark.skipif(not (SHARED_DATA / "tiny_shakespeare").is_dir(), reason="needs ../shared/data")
def test_one_row_splits_are_concatenated_exactly_like_the_benchmark_split():
    reference = (SHARED_DATA / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    corpus = load_corpus(resolve_source(str(SHARED_DATA / "tiny_shakespeare")))
    assert len(corpus.train) == 1_003_854 and len(corpus.val) == 111_540
    assert corpus.tokenizer.decode(corpus.val[:200].tolist()) == reference[1_003_854:1_004_054]
    assert corpus.tokenizer.decode(corpus.val[-50:].tolist()) == reference[-50:]


def test_the_encoded_corpus_is_cached_as_a_memory_map(text_file, private_data_dir):
    source = resolve_source(str(text_file))
    first = load_corpus(source, val_fraction=0.2)
    second = load_corpus(source, val_fraction=0.2)
    assert isinstance(second.train, np.memmap)
    assert np.array_equal(first.train, second.train)
    assert any((private_data_dir / "cache").iterdir())


def test_split_syntax_selects_rows(parquet_folder):
    corpus = load_corpus(resolve_source(str(parquet_folder), split="train[:10]", val_split="train[10:14]"))
    lines = [line for line in TINY_TEXT.split("\n") if line]
    assert corpus.tokenizer.decode(corpus.train.tolist()) == "\n".join(lines[:10])


def test_presets_expand_to_hub_ids():
    source = resolve_source("tiny_shakespeare")
    assert source.paths == ["karpathy/tiny_shakespeare"] and source.val_split == "validation+test"


def test_an_unreachable_hub_fails_fast_and_says_how_to_pass_a_local_path():
    start = time.perf_counter()
    with pytest.raises(CharRNNError) as err:
        load_corpus(resolve_source("karpathy/tiny_shakespeare"))
    assert time.perf_counter() - start < 10
    assert "local" in str(err.value)


@pytest.mark.parametrize("make, message", [
    (lambda d: str(d / "missing.txt"), "no such file"),
    (lambda d: (d / "empty.txt").write_text("") and None or str(d / "empty.txt"), "no text"),
    (lambda d: (d / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1")) and str(d / "latin1.txt"),
     "not UTF-8"),
])
def test_bad_text_sources_get_clear_messages(tmp_path, make, message):
    with pytest.raises(CharRNNError, match=message):
        load_corpus(resolve_source(make(tmp_path)))


def test_a_wrong_column_lists_the_columns(parquet_folder):
    with pytest.raises(CharRNNError, match="columns are: id, text"):
        load_corpus(resolve_source(str(parquet_folder), text_column="body"))


def test_a_wrong_split_names_the_problem(parquet_folder):
    with pytest.raises(CharRNNError, match="(?i)split"):
        load_corpus(resolve_source(str(parquet_folder), split="training"))


def test_text_shorter_than_one_batch_is_refused():
    with pytest.raises(CharRNNError, match="fewer than one batch"):
        StreamBatcher(np.arange(100), batch_size=8, seq_len=32)


def test_read_text_file_keeps_crlf_and_bom(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes("\ufeffone\r\ntwo\r\n".encode("utf-8"))
    assert read_text_file(path) == "\ufeffone\r\ntwo\r\n"


def test_batches_continue_each_stream_where_the_last_batch_ended():
    tokens = np.arange(10_000)
    batcher = StreamBatcher(tokens, batch_size=4, seq_len=10, seed=3)
    x0, y0, starts0 = batcher.batch(0)
    x1, _, starts1 = batcher.batch(1)
    assert starts0 and not starts1
    assert np.array_equal(y0.numpy(), x0.numpy() + 1)  # targets are the next tokens
    assert np.array_equal(x1[:, 0].numpy(), x0[:, -1].numpy() + 1)  # stream i goes on in row i
    x_next_epoch, _, starts = batcher.batch(batcher.steps_per_epoch)
    assert starts and x_next_epoch[0, 0].item() != x0[0, 0].item()  # epochs start at another offset
