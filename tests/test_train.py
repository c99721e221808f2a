import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from charrnn.checkpoint import load_checkpoint
from charrnn.train import main
from tests.conftest import ROOT, tiny_train_args


def last_json_line(captured: str) -> dict:
    return json.loads(captured.strip().splitlines()[-1])


def test_train_cli_on_a_text_file_writes_checkpoints_metrics_and_a_json_summary(text_file, tmp_path, capsys):
    summary = main(tiny_train_args(text_file, tmp_path / "run", "--warmup-steps", "5"))
    printed = last_json_line(capsys.readouterr().out)
    assert printed == summary
    vocab_size = load_checkpoint(tmp_path / "run" / "best").tokenizer.vocab_size
    assert summary["steps"] == 30 and summary["val_bpc"] < math.log2(vocab_size)  # better than uniform guessing
    for name in ("best", "last"):
        assert (tmp_path / "run" / name / "model.safetensors").is_file()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["event"] == "eval"]
    assert [r["step"] for r in evals] == [10, 20, 30]
    assert all({"loss", "grad_norm", "chars_per_s", "lr"} <= r.keys() for r in records if r["event"] == "train")
    meta = load_checkpoint(tmp_path / "run" / "best").meta
    assert meta["command"].startswith("python -m charrnn.train --dataset")
    assert meta["metrics"]["val_bpc"] == pytest.approx(summary["val_bpc"], abs=1e-4)
    assert sum(meta["metrics"]["grad_norm"]["counts"]) == 30


def test_training_lowers_the_validation_loss(text_file, tmp_path):
    main(tiny_train_args(text_file, tmp_path / "run", "--max-steps", "60", "--lr", "1e-2"))
    curve = load_checkpoint(tmp_path / "run" / "best").metrics["curve"]
    assert curve[-1]["val_nats"] < curve[0]["val_nats"] - 0.3


def test_train_cli_on_a_parquet_dataset_folder_with_a_subword_tokenizer(parquet_folder, tmp_path):
    summary = main(tiny_train_args(parquet_folder, tmp_path / "run", "--tokenizer", "sp-bpe", "--vocab-size",
                                   "300", "--cell", "gru", "--max-steps", "10", "--seq-len", "8"))
    checkpoint = load_checkpoint(tmp_path / "run" / "best")
    assert checkpoint.tokenizer.kind == "sp-bpe" and checkpoint.model.config.cell == "gru"
    assert summary["val_bpc"] > 0


def test_params_flag_picks_the_hidden_size(text_file, tmp_path):
    main(tiny_train_args(text_file, tmp_path / "run", "--params", "20k", "--cell", "rnn_tanh", "--max-steps", "2"))
    params = load_checkpoint(tmp_path / "run" / "best").model.num_params()
    assert abs(params - 20_000) / 20_000 < 0.05


def test_resume_continues_bit_for_bit(text_file, tmp_path):
    common = ["--dropout", "0.2", "--input-dropout", "0.1", "--weight-drop", "0.3", "--max-steps", "24",
              "--eval-interval", "8"]
    main(tiny_train_args(text_file, tmp_path / "straight", *common))
    main(tiny_train_args(text_file, tmp_path / "split", *common, "--steps-this-run", "12"))
    assert load_checkpoint(tmp_path / "split" / "last").meta["metrics"]["steps"] == 12
    main(["--resume", str(tmp_path / "split"), "--no-progress"])
    straight = load_checkpoint(tmp_path / "straight" / "last").model.state_dict()
    resumed = load_checkpoint(tmp_path / "split" / "last").model.state_dict()
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name


def test_a_time_budget_stops_the_run_and_evaluates(text_file, tmp_path):
    summary = main(tiny_train_args(text_file, tmp_path / "run", "--time-budget", "0.03", "--max-steps", "100000"))
    assert summary["stopped"] == "time_budget" and summary["wall_s"] < 30
    assert summary["val_bpc"] > 0


def test_divergence_stops_with_a_message_and_keeps_the_last_good_checkpoint(text_file, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(tiny_train_args(text_file, tmp_path / "run", "--lr", "1e30", "--clip", "0", "--warmup-steps", "1",
                             "--eval-interval", "1"))
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "diverged" in message and "--lr" in message
    assert load_checkpoint(tmp_path / "run" / "last").model is not None


@pytest.mark.parametrize("flags, message", [
    (["--cell", "transformer"], "invalid choice"),
    (["--hidden", "0"], "--hidden must be positive"),
    (["--layers", "-2"], "--layers must be positive"),
    (["--batch-size", "0"], "--batch-size must be positive"),
    (["--dropout", "1.5"], "--dropout must be in"),
    (["--weight-drop", "-0.1"], "--weight-drop must be in"),
    (["--input-dropout", "1"], "--input-dropout must be in"),
    (["--ema-decay", "1"], "--ema-decay must be in"),
    (["--params", "lots"], "cannot read 'lots'"),
    (["--batch-size", "64", "--seq-len", "512"], "fewer than one batch"),
])
def test_bad_training_options_get_a_message_not_a_traceback(text_file, tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        main(tiny_train_args(text_file, tmp_path / "run", *flags))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_missing_dataset_gets_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(tiny_train_args(tmp_path / "nothing.txt", tmp_path / "run"))
    assert "no such file or folder" in capsys.readouterr().err


def test_sigterm_saves_a_resumable_checkpoint(text_file, tmp_path):
    out = tmp_path / "run"
    args = tiny_train_args(text_file, out, "--max-steps", "1000000", "--eval-interval", "1000000")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "charrnn.train", *args], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "metrics.jsonl").exists():
        time.sleep(0.2)
    time.sleep(1.0)  # let it take some steps
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "--resume" in stderr
    assert last_json_line(stdout)["stopped"] == "interrupted (SIGTERM)"
    assert load_checkpoint(out / "last").meta["metrics"]["steps"] > 0
