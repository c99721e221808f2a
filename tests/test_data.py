import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from charrnn.data import StreamBatcher, load_corpus, read_text_file, resolve_source
from charrnn.errors import CharRNNError
from tests.conftest import ROOT, SHARED_DATA, TINY_TEXT


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


def write_data_file(path, frame):
    """`frame` as a data file of the kind its suffix names, the way other tools write them."""
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif path.suffix == ".json":
        frame.to_json(path, orient="records", force_ascii=False)
    else:  # .arrow: the Arrow IPC stream format that datasets writes
        table = pa.Table.from_pandas(frame, preserve_index=False)
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl", ".json", ".arrow"])
def test_a_single_data_file_is_read_by_its_builder_not_as_raw_text(tmp_path, suffix):
    lines = [line for line in TINY_TEXT.split("\n") if line]  # commas and quotes: CSV must unquote them
    path = tmp_path / f"tiny{suffix}"
    write_data_file(path, pd.DataFrame({"id": range(len(lines)), "text": lines}))
    corpus = load_corpus(resolve_source(str(path)), val_fraction=0.1)
    text = "\n".join(lines)
    assert corpus.tokenizer.decode(corpus.train.tolist()) == text[:int(len(text) * 0.9)]  # the markup is gone
    assert corpus.tokenizer.decode(corpus.val.tolist()) == text[int(len(text) * 0.9):]
    assert corpus.description["val_split"] == "last 10% of train"


def test_several_data_files_of_one_kind_are_one_split_and_mixed_kinds_are_refused(tmp_path):
    a, b, c = tmp_path / "a.parquet", tmp_path / "b.parquet", tmp_path / "c.txt"
    write_data_file(a, pd.DataFrame({"text": ["one two"] * 20}))
    write_data_file(b, pd.DataFrame({"text": ["two one"] * 20}))
    c.write_text("three", encoding="utf-8")
    corpus = load_corpus(resolve_source([str(a), str(b)]), val_fraction=0.5)
    assert corpus.tokenizer.decode(corpus.val.tolist()) == "\n" + "\n".join(["two one"] * 20)  # b's rows follow a's
    with pytest.raises(CharRNNError, match="mix kinds of file"):
        resolve_source([str(a), str(c)])
    with pytest.raises(CharRNNError, match="has no column 'body'; its columns are: text"):
        load_corpus(resolve_source(str(a), text_column="body"))


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
    assert "pass a local path" in str(err.value)


HUB_PROBE = """
import json, time
from charrnn.data import load_corpus, resolve_source
from charrnn.errors import CharRNNError
start = time.perf_counter()
try:
    load_corpus(resolve_source("karpathy/tiny_shakespeare"))
    error = None
except CharRNNError as err:
    error = str(err)
print(json.dumps({"error": error, "seconds": time.perf_counter() - start}))
"""


def load_from_hub_in_a_fresh_process(**env) -> dict:
    """huggingface_hub reads HF_ENDPOINT, HF_HUB_OFFLINE and the proxy variables when it is imported."""
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "NO_PROXY": "", "no_proxy": "", **env}
    run = subprocess.run([sys.executable, "-c", HUB_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_hub_endpoint_that_refuses_connections_fails_fast_with_a_local_path_hint():
    port = free_port()  # nothing listens on it now
    result = load_from_hub_in_a_fresh_process(HF_ENDPOINT=f"http://127.0.0.1:{port}")
    assert result["seconds"] < 10
    assert f"127.0.0.1:{port}" in result["error"] and "pass a local path" in result["error"]


def test_the_hub_is_reached_through_the_https_proxy():
    requests = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(60)

    def refuse_tunnels():  # a proxy that cannot reach the Hub: it answers every CONNECT with 502
        while True:
            try:
                connection, _ = server.accept()
            except OSError:  # closed by the test
                return
            with connection:
                requests.append(connection.recv(4096).decode("latin-1").split("\r\n")[0])
                connection.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    threading.Thread(target=refuse_tunnels, daemon=True).start()
    proxy = f"http://127.0.0.1:{server.getsockname()[1]}"
    try:
        result = load_from_hub_in_a_fresh_process(HF_ENDPOINT="https://hub.invalid", HTTPS_PROXY=proxy,
                                                  https_proxy=proxy)
    finally:
        server.close()
    assert requests and requests[0].startswith("CONNECT hub.invalid:443")
    assert result["seconds"] < 10 and "pass a local path" in result["error"]


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
