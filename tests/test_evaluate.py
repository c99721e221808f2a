import json
import math
import tracemalloc

import numpy as np
import pytest
import torch

from charrnn.checkpoint.saving import load_checkpoint, save_checkpoint
from charrnn.config import ModelConfig
from charrnn.data import held_out_text, reading, resolve_source
from charrnn.cli.evaluate import main
from charrnn.evaluate import evaluate_ids, evaluate_text, evaluation_windows
from charrnn.model import CharRNN
from charrnn.tokenizer import CharTokenizer
from tests.conftest import TINY_TEXT


def test_evaluation_equals_the_plain_cross_entropy_of_one_pass(tiny_checkpoint):
    checkpoint = load_checkpoint(tiny_checkpoint)
    text = "First Citizen:\nSpeak, speak.\n" * 30
    ids = checkpoint.tokenizer.encode(text)
    with torch.no_grad():
        x = torch.from_numpy(ids[None, :-1])
        _, _, loss = checkpoint.model(x, targets=torch.from_numpy(ids[None, 1:]))
    result = evaluate_ids(checkpoint.model, ids, streams=1, chunk=50)  # chunks carry the hidden state
    assert result["nats"] == pytest.approx(loss.item(), rel=1e-5)
    assert result["bpc"] == pytest.approx(loss.item() / math.log(2), rel=1e-5)
    assert result["chars"] == len(text) - 1


@pytest.mark.parametrize("streams, chunk", [(1, 1000), (7, 16), (16, 5), (3, 1)])
def test_streams_score_every_token_exactly_once(streams, chunk):
    # With zero recurrent and input weights, a plain RNN's hidden state is tanh(bias) at every step whatever
    # came before: the model predicts the same distribution everywhere, so the exact score is the cross-entropy
    # of the target counts, however the text is cut into streams and chunks. A token scored twice or skipped
    # (including the first, which has no prediction) changes it.
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=6, embedding_size=3, hidden_size=4, num_layers=2, cell="rnn_tanh"))
    with torch.no_grad():
        for name, param in model.rnn.named_parameters():
            if name.startswith("weight"):
                param.zero_()
            else:
                param.normal_()
        model.head.bias.normal_()
        hidden = torch.tanh(model.rnn.bias_ih_l1 + model.rnn.bias_hh_l1)  # the top layer's, as its inputs are ignored
        log_probs = torch.log_softmax(model.head(hidden).double(), dim=0)
    ids = np.random.default_rng(1).choice(6, size=503, p=[0.4, 0.3, 0.1, 0.1, 0.05, 0.05])
    expected = -log_probs[torch.from_numpy(ids[1:])].sum().item()
    result = evaluate_ids(model, ids, streams=streams, chunk=chunk)
    assert result["nats_per_token"] * result["tokens"] == pytest.approx(expected, rel=1e-6)
    assert result["tokens"] == len(ids) - 1


def one_shot_nats_per_token(model, ids, streams, chunk, shard=(0, 1)) -> float:
    """Validation as it was before it read the ids in chunks: the whole text copied into int64 first."""
    ids = torch.from_numpy(np.asarray(ids, dtype=np.int64))
    n = len(ids) - 1
    streams = max(1, min(streams, n // chunk or 1))
    length = n // streams
    rank, processes = shard
    pieces = [(ids[:streams * length + 1], streams, length, slice(rank, None, processes))]
    if n > streams * length:
        pieces.append((ids[streams * length:], 1, n - streams * length, slice(0, int(rank == processes - 1))))
    nll = 0.0
    with torch.no_grad():
        for piece, rows, row_len, mine in pieces:
            x_all = piece[:-1][:rows * row_len].reshape(rows, row_len)[mine]
            y_all = piece[1:][:rows * row_len].reshape(rows, row_len)[mine]
            hidden = None
            for start in range(0, row_len if len(x_all) else 0, chunk):
                logits, hidden, _ = model(x_all[:, start:start + chunk], hidden)
                nll += torch.nn.functional.cross_entropy(logits.flatten(0, 1), y_all[:, start:start + chunk].flatten(),
                                                         reduction="sum").item()
    return nll / n


def tiny_model(cell: str = "lstm") -> CharRNN:
    torch.manual_seed(0)
    return CharRNN(ModelConfig(vocab_size=7, embedding_size=3, hidden_size=8, num_layers=2, cell=cell)).eval()


def memmapped_ids(path, size: int) -> np.ndarray:
    """Random ids 0-6 in a memory-mapped .npy file of uint8, as the token cache stores them."""
    ids = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(size,))
    ids[:] = np.random.default_rng(0).integers(0, 7, size)
    ids.flush()
    return np.load(path, mmap_mode="r")


@pytest.mark.parametrize("streams, chunk", [(16, 512), (7, 16), (16, 5), (3, 4), (1, 3000)])
def test_reading_the_ids_in_chunks_gives_the_one_shot_result(tmp_path, streams, chunk):
    model, ids = tiny_model(), memmapped_ids(tmp_path / "val.npy", 2003)
    for shard in ((0, 1), (0, 2), (1, 2), (2, 3)):
        result = evaluate_ids(model, ids, streams=streams, chunk=chunk, shard=shard)
        assert result["nats"] == one_shot_nats_per_token(model, ids, streams, chunk, shard)  # bit for bit
        assert result["tokens"] == result["total_tokens"] == result["chars"] == 2002


def test_memory_does_not_grow_with_the_text(tmp_path):
    ids = memmapped_ids(tmp_path / "val.npy", 250_001)  # 2 MB as int64
    model = CharRNN(ModelConfig(vocab_size=7, embedding_size=2, hidden_size=2, num_layers=1, cell="rnn_tanh"))
    tracemalloc.start()
    try:
        result = evaluate_ids(model, ids)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result["tokens"] == 250_000
    assert peak < 1_000_000, peak  # a chunk of each window at a time, never the whole text


def test_the_sample_is_fixed_and_spread_evenly_over_the_text():
    sample = evaluation_windows(10_000, 1000, streams=4, chunk=100)
    assert sample.starts == [0, 2500, 5000, 7500] and sample.length == 250 and sample.rest is None
    assert sample.tokens == 1000 and evaluation_windows(10_000, 1000, streams=4, chunk=100) == sample
    assert evaluation_windows(10_003, 1000, streams=3, chunk=100).starts == [0, 3334, 6668]  # 333 tokens each
    # a small sample keeps its windows `chunk` long, so that the hidden state warms up: fewer of them
    assert evaluation_windows(10_000, 250, streams=4, chunk=100) == ([0, 5000], 125, None)
    assert evaluation_windows(10_000, 50, streams=4, chunk=100) == ([0], 50, None)
    everything = evaluation_windows(10_003, None, streams=4, chunk=100)
    assert everything == ([0, 2500, 5000, 7500], 2500, range(10_000, 10_003)) and everything.tokens == 10_003
    for limit in (0, 10_003, 10**9):  # no limit, or one the text does not reach: all of it
        assert evaluation_windows(10_003, limit, streams=4, chunk=100) == everything


def test_a_sample_scores_its_windows_each_from_a_zero_hidden_state(tmp_path):
    model, ids = tiny_model("gru"), memmapped_ids(tmp_path / "val.npy", 5001)
    sample = evaluate_ids(model, ids, streams=4, chunk=100, max_tokens=1000)
    windows = [evaluate_ids(model, ids[start:start + 251], streams=1, chunk=100) for start in (0, 1250, 2500, 3750)]
    assert sample["tokens"] == 1000 and sample["total_tokens"] == 5000 and sample["chars"] == 1000
    assert sample["nats"] == pytest.approx(sum(w["nats"] for w in windows) / 4, rel=1e-6)
    # counted as its share of the characters the whole text stands for (subword tokens stand for several)
    assert evaluate_ids(model, ids, 15_000, streams=4, chunk=100, max_tokens=1000)["chars"] == 3000
    assert evaluate_ids(model, ids, max_tokens=5000) == evaluate_ids(model, ids)  # a limit above the text: all


def test_unknown_characters_are_scored_and_listed(tiny_checkpoint):
    checkpoint = load_checkpoint(tiny_checkpoint)
    result = evaluate_text(checkpoint.model, checkpoint.tokenizer, "All: 🎉 speak")
    assert result["unknown_chars"] == ["🎉"] and math.isfinite(result["nats"])


def cross_entropy_nats_per_char(checkpoint, text: str) -> float:
    """Cross-entropy of `text` under the model, in nats per predicted character: one pass, computed by hand."""
    ids = torch.from_numpy(checkpoint.tokenizer.encode(text))
    with torch.no_grad():
        logits, _, _ = checkpoint.model(ids[None, :-1])
        log_probs = torch.log_softmax(logits[0].double(), dim=-1)
    return -log_probs.gather(1, ids[1:, None]).sum().item() / (len(text) - 1)


def test_evaluate_cli_scores_the_tail_training_held_out_unless_told_to_score_all(tiny_checkpoint, text_file, capsys):
    held_out = TINY_TEXT[int(len(TINY_TEXT) * 0.9):]  # the tiny checkpoint trained with --val-fraction 0.1
    checkpoint = load_checkpoint(tiny_checkpoint)
    main(["--checkpoint", str(tiny_checkpoint), "--dataset", str(text_file)])
    on_tail = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert on_tail["chars"] == len(held_out) - 1 and "last 10%" in on_tail["part"] and "held out" in on_tail["part"]
    assert on_tail["nats"] == pytest.approx(cross_entropy_nats_per_char(checkpoint, held_out), rel=1e-5)
    assert on_tail["bpc"] == pytest.approx(on_tail["nats"] / math.log(2))
    main(["--checkpoint", str(tiny_checkpoint), "--dataset", str(text_file), "--all"])
    on_all = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert on_all["chars"] == len(TINY_TEXT) - 1 and on_all["part"] == "all of train"
    main(["--checkpoint", str(tiny_checkpoint), "--dataset", str(text_file), "--val-fraction", "0.5"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["chars"] == len(TINY_TEXT) - int(
        len(TINY_TEXT) * 0.5) - 1


def test_evaluate_cli_gives_what_scoring_the_text_in_memory_gives(tiny_checkpoint, tmp_path):
    # Characters the model does not know: "Ω" in the part it trained on, "🎉" in the held-out tail.
    text = "Ω" + TINY_TEXT + "All: 🎉 speak\n"
    path = tmp_path / "more.txt"
    path.write_text(text, encoding="utf-8")
    checkpoint = load_checkpoint(tiny_checkpoint)
    held_out = held_out_text(resolve_source(str(path)))[0]
    for flags, scored, unknown in (([], held_out, ["🎉"]), (["--all"], text, ["Ω", "🎉"])):
        result = main(["--checkpoint", str(tiny_checkpoint), "--dataset", str(path), *flags])
        expected = evaluate_text(checkpoint.model, checkpoint.tokenizer, scored)
        # The command scores its own load of the checkpoint on the ids it reads back from the encoded cache: the
        # same tokens and counts, and the same sums up to rounding (equal on some machines, 1e-6 apart on an
        # Intel Xeon)
        scores = {k for k, v in expected.items() if isinstance(v, float)}  # nats, bpc, ...
        assert {k: result[k] for k in expected.keys() - scores} == {k: expected[k] for k in expected.keys() - scores}
        assert {k: result[k] for k in scores} == pytest.approx({k: expected[k] for k in scores}, rel=1e-5)
        assert expected["unknown_chars"] == unknown


def test_evaluate_cli_memory_does_not_grow_with_the_text(tmp_path, monkeypatch):
    chars = np.frombuffer(b"abc de\n", dtype=np.uint8)
    torch.manual_seed(0)
    tokenizer = CharTokenizer(chars.tobytes().decode())
    model = CharRNN(ModelConfig(vocab_size=tokenizer.vocab_size, embedding_size=2, hidden_size=2, num_layers=1,
                                cell="rnn_tanh"))
    save_checkpoint(tmp_path / "model", model, tokenizer)
    monkeypatch.setattr(reading, "CHUNK_SIZE", 1 << 16)

    def peak(size: int) -> int:
        """Traced peak bytes of scoring the held-out half of a text of `size` characters."""
        path = tmp_path / f"{size}.txt"
        path.write_bytes(np.random.default_rng(0).choice(chars, size).tobytes())
        argv = ["--checkpoint", str(tmp_path / "model"), "--dataset", str(path), "--val-fraction", "0.5"]
        tracemalloc.start()
        try:
            assert main(argv)["tokens"] == size // 2 - 1
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(100_000)  # imports the modules a first run needs
    small, large = peak(500_000), peak(3_000_000)
    # Held in memory, 1.25M more characters held out would take 1.25 MB as text and 10 MB as int64 ids.
    assert large - small < 250_000, (small, large)


def test_evaluate_cli_scores_a_sample_with_eval_tokens(tiny_checkpoint, text_file, capsys):
    held_out = TINY_TEXT[int(len(TINY_TEXT) * 0.9):]
    checkpoint = load_checkpoint(tiny_checkpoint)
    main(["--checkpoint", str(tiny_checkpoint), "--dataset", str(text_file), "--eval-tokens", "100"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["tokens"] == result["chars"] == 100 and result["total_tokens"] == len(held_out) - 1
    # 100 tokens make one window (each is at least 512 long where it can be): the head of the held-out text
    assert result["nats"] == pytest.approx(cross_entropy_nats_per_char(checkpoint, held_out[:101]), rel=1e-5)


def test_evaluate_cli_on_a_dataset_folder_scores_its_validation_split(tiny_checkpoint, parquet_folder, capsys):
    main(["--checkpoint", str(tiny_checkpoint), "--dataset", str(parquet_folder)])
    held_out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    main(["--checkpoint", str(tiny_checkpoint), "--dataset", str(parquet_folder), "--split", "validation"])
    on_split = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert held_out["part"].startswith("validation (held out") and on_split["part"] == "all of validation"
    assert held_out["nats"] == on_split["nats"] and held_out["bpc"] > 0


@pytest.mark.parametrize("argv, message", [
    ([], "give one of --dataset"),
    (["--text", "ab", "--dataset", "x.txt"], "give one of --dataset"),
    (["--text", "a"], "at least two tokens"),
    (["--text", "caf\udce9"], "--text is not valid text"),
    (["--dataset", "no/such/file.txt"], "no such file"),
    (["--dataset", "TEXT_FILE", "--split", "validation"], "--split applies to datasets"),
    (["--dataset", "TEXT_FILE", "--val-fraction", "1.5"], "--val-fraction must be in (0, 1)"),
    (["--dataset", "TEXT_FILE", "--val-fraction", "nan"], "--val-fraction must be in (0, 1)"),
    (["--text", "hello", "--precision", "fp8"], "unknown precision"),
    (["--text", "hello", "--device", "tpu"], "unknown device"),
    (["--text", "hello", "--all", "--bogus"], "unrecognized arguments"),
    (["--text", "hello", "--eval-tokens", "-1"], "--eval-tokens must be >= 0"),
])
def test_bad_evaluate_command_lines_get_one_line_and_exit_code_2(tiny_checkpoint, text_file, capsys, argv, message):
    argv = ["--checkpoint", str(tiny_checkpoint), *[str(text_file) if a == "TEXT_FILE" else a for a in argv]]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_evaluate_cli_names_a_missing_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(tmp_path / "none"), "--text", "hello"])
    assert "does not exist" in capsys.readouterr().err
