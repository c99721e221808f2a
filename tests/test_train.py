import contextlib
import copy
import dataclasses
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from charrnn.checkpoint.saving import CONFIG, load_checkpoint, load_training_state
from charrnn.config import OPTION_RANGES, ModelConfig, TrainConfig
from charrnn.device import default_batch_size
from charrnn.errors import CharRNNError
from charrnn.evaluate import evaluate_text
from charrnn.model import CharRNN
from charrnn.cli.train import main
from charrnn.train import Trainer, learning_rate, train_step
from charrnn.cli.train import parse_args
from charrnn.train.metrics import LogWindow
from tests.conftest import ROOT, TINY_TEXT, tiny_train_args, without_batch_size


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
    # --eval-tokens (1M by default) is more than the validation text has: all of it is scored, as it always was
    everything = len(HELD_OUT) - 1
    assert [r["val_tokens_scored"] for r in evals] == [everything] * 3
    assert meta["metrics"]["val_tokens_scored"] == summary["val_tokens_scored"] == everything


HELD_OUT = TINY_TEXT[int(len(TINY_TEXT) * 0.9):]  # the validation text of the tiny corpus (--val-fraction 0.1)


def sample_nats(checkpoint_dir, tokens: int) -> float:
    """A checkpoint's loss on the first `tokens` validation tokens: the sample that an --eval-tokens under 1024
    makes (one window: windows are at least 512 tokens long where they can be)."""
    checkpoint = load_checkpoint(checkpoint_dir)
    return evaluate_text(checkpoint.model, checkpoint.tokenizer, HELD_OUT[:tokens + 1])["nats"]


def test_eval_tokens_scores_a_sample_and_the_run_records_it(text_file, tmp_path, capsys):
    run = tmp_path / "run"
    summary = main(tiny_train_args(text_file, run, "--max-steps", "20", "--eval-tokens", "64"))
    assert f"{len(HELD_OUT):,} validation tokens (64 of them scored at each evaluation" in capsys.readouterr().err
    start = metrics_records(run, "start")[0]
    assert start["val_tokens_scored"] == 64 and start["val_tokens"] == len(HELD_OUT)
    assert [r["val_tokens_scored"] for r in metrics_records(run, "eval")] == [64, 64]
    metrics = load_checkpoint(run / "best").metrics
    assert metrics["val_tokens_scored"] == summary["val_tokens_scored"] == metrics["val_chars"] == 64
    assert metrics["val_tokens"] == len(HELD_OUT)
    assert metrics["val_nats"] == pytest.approx(sample_nats(run / "best", 64), rel=1e-5)


def test_resume_with_another_eval_tokens_scores_best_again_on_the_new_sample(text_file, tmp_path, capsys):
    run = tmp_path / "run"
    main(tiny_train_args(text_file, run, "--precision", "fp32", "--max-steps", "20", "--steps-this-run", "10"))
    config = json.loads((run / "last" / CONFIG).read_text())
    del config["training"]["eval_tokens"]  # as a run saved before --eval-tokens: it keeps scoring everything
    (run / "last" / CONFIG).write_text(json.dumps(config))
    assert parse_args(["--resume", str(run)]).eval_tokens == 0
    shutil.copytree(run / "best", tmp_path / "best_at_10")
    rescored = sample_nats(tmp_path / "best_at_10", 64)
    assert rescored != pytest.approx(load_checkpoint(tmp_path / "best_at_10").metrics["val_nats"])  # other tokens
    capsys.readouterr()
    trainer = Trainer(parse_args(["--resume", str(run), "--eval-tokens", "64", "--no-progress"]))
    # The trainer scores its own load of best/ on the corpus's ids: the same sums as `rescored` up to rounding
    # (equal on some machines, 1e-6 apart on an Intel Xeon), where the other tokens scored ~5e-4 apart
    assert trainer.progress.best_val == pytest.approx(rescored, rel=1e-5)
    said = re.search(r"best/ scores (\S+) bpc on them", capsys.readouterr().err)
    assert said and float(said.group(1)) == pytest.approx(rescored / math.log(2), abs=1e-4)  # printed to 4 places
    trainer.run()
    evals = metrics_records(run, "eval")
    assert [(r["step"], r["val_tokens_scored"]) for r in evals] == [(10, len(HELD_OUT) - 1), (20, 64)]
    # the best of the resumed run is chosen among scores of the same 64 tokens
    assert load_training_state(run / "last")["best_val"] == pytest.approx(min(rescored, evals[-1]["val_nats"]),
                                                                          rel=1e-5)


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


# Bit for bit holds for runs that compute alike: one CPU thread in every run (a sum split over other threads
# rounds differently; --resume keeps the run's --threads), whatever OMP_NUM_THREADS the tests were started with.
RESUME_FLAGS = ["--dropout", "0.2", "--input-dropout", "0.1", "--weight-drop", "0.3", "--max-steps", "24",
                "--eval-interval", "8", "--threads", "1"]


@contextlib.contextmanager
def deterministic_algorithms():
    """torch's deterministic algorithms, for runs compared bit for bit (a no-op for most CPU kernels, which are
    deterministic for a given thread count; it also fills new tensors with NaN, so a read of memory no step
    wrote shows)."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


@pytest.fixture
def threads_restored():
    """--threads sets torch's thread count for the whole process: the tests after this one get theirs back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def straight_run(text_file, tmp_path_factory):
    """A run of 24 steps in one go, to compare resumed runs with."""
    before = torch.get_num_threads()
    out = tmp_path_factory.mktemp("straight") / "run"
    try:
        with deterministic_algorithms():
            main(tiny_train_args(text_file, out, *RESUME_FLAGS))
    finally:
        torch.set_num_threads(before)  # as threads_restored does for a test
    return out


def assert_same_tensors(expected: dict, actual: dict) -> None:
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name


def assert_same_run(expected, actual) -> None:
    """The same trained weights, the same moving average (in last/'s training state, and as best/ ships it)."""
    for name in ("last", "best"):
        assert_same_tensors(load_checkpoint(expected / name).model.state_dict(),
                            load_checkpoint(actual / name).model.state_dict())
    expected_ema, actual_ema = (load_training_state(run / "last")["ema"] for run in (expected, actual))
    assert_same_tensors(expected_ema, actual_ema)
    assert int(actual_ema["n_averaged"]) == 24


def test_resume_continues_bit_for_bit(text_file, tmp_path, straight_run, threads_restored):
    with deterministic_algorithms():
        main(tiny_train_args(text_file, tmp_path / "split", *RESUME_FLAGS, "--steps-this-run", "12"))
        assert load_checkpoint(tmp_path / "split" / "last").meta["metrics"]["steps"] == 12
        main(["--resume", str(tmp_path / "split"), "--no-progress"])
    assert_same_run(straight_run, tmp_path / "split")


def test_resume_falls_back_to_last_old_after_a_crash_between_the_two_renames(text_file, tmp_path, straight_run,
                                                                             threads_restored):
    run = tmp_path / "split"
    with deterministic_algorithms():
        main(tiny_train_args(text_file, run, *RESUME_FLAGS, "--steps-this-run", "12"))
        (run / "last").rename(run / "last.old")  # killed after `last -> last.old`, before `tmp -> last`
        (run / "last.tmp-k1ll3d").mkdir()
        with open(run / "metrics.jsonl", "a") as f:
            f.write('{"event": "train", "st')  # and in the middle of a metrics line
        main(["--resume", str(run), "--no-progress"])
    assert_same_run(straight_run, run)
    assert sorted(p.name for p in run.iterdir()) == ["best", "last", "metrics.jsonl"]
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert sum(1 for line in lines if not line.endswith("}")) == 1  # only the cut line; the next ones whole
    assert json.loads(lines[-1])["event"] == "final"


def test_resume_continues_the_loss_scalers_state(text_file, tmp_path, monkeypatch, threads_restored):
    # fp16's loss scaler needs a GPU; a CPU GradScaler that doubles its scale every 4 steps stands in for it. The
    # resumed half must go on from the scale the run paused at, not start again from the first one.
    from charrnn.train import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "loss_scaler",
                        lambda amp_dtype, device: torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=4))
    main(tiny_train_args(text_file, tmp_path / "straight", *RESUME_FLAGS))
    main(tiny_train_args(text_file, tmp_path / "split", *RESUME_FLAGS, "--steps-this-run", "12"))
    assert load_training_state(tmp_path / "split" / "last")["scaler"]["scale"] == 2.0**13  # doubled at 4, 8, 12
    main(["--resume", str(tmp_path / "split"), "--no-progress"])
    straight, split = (load_training_state(tmp_path / run / "last")["scaler"] for run in ("straight", "split"))
    assert split == straight and straight["scale"] == 2.0**16
    assert_same_run(tmp_path / "straight", tmp_path / "split")


def test_deterministic_switches_the_kernels_before_the_run_and_resume_keeps_it(text_file, tmp_path, monkeypatch,
                                                                                determinism_restored):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)  # restored afterwards, as it was
    run = tmp_path / "run"
    main(tiny_train_args(text_file, run, "--deterministic", "--max-steps", "4", "--eval-interval", "2"))
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert load_checkpoint(run / "last").meta["training"]["deterministic"] is True
    assert parse_args(["--resume", str(run)]).deterministic is True
    assert parse_args(["--resume", str(run), "--no-deterministic"]).deterministic is False  # how exactly may change
    assert parse_args(tiny_train_args(text_file, tmp_path / "other")).deterministic is False


def test_resuming_on_another_number_of_threads_says_it_is_no_longer_bit_for_bit(text_file, tmp_path, capsys,
                                                                                 threads_restored):
    run = tmp_path / "run"
    main(tiny_train_args(text_file, run, "--max-steps", "4", "--eval-interval", "2", "--threads", "1"))
    capsys.readouterr()
    main(["--resume", str(run), "--max-steps", "6", "--no-progress"])  # the run's own --threads 1
    assert "bit for bit" not in capsys.readouterr().err
    main(["--resume", str(run), "--max-steps", "8", "--no-progress", "--threads", "2"])
    assert ("note: this run's torch thread count was 1 and is 2 now, so it does not continue bit for bit as "
            "without the stop (--threads 1 keeps it exact)") in capsys.readouterr().err
    assert load_checkpoint(run / "last").metrics["steps"] == 8  # and it did continue


def test_a_time_budget_stops_the_run_and_evaluates(text_file, tmp_path):
    summary = main(tiny_train_args(text_file, tmp_path / "run", "--time-budget", "0.03", "--max-steps", "100000"))
    assert summary["stopped"] == "time_budget" and summary["wall_s"] < 30
    assert summary["val_bpc"] > 0


def assert_healthy(checkpoint_dir) -> None:
    """Finite weights, and a loss on the training text no worse than a few nats per character."""
    checkpoint = load_checkpoint(checkpoint_dir)
    assert all(torch.isfinite(p).all() for p in checkpoint.model.parameters())
    ids = torch.tensor([checkpoint.tokenizer.encode(TINY_TEXT[:200]).tolist()])
    with torch.no_grad():
        assert checkpoint.model(ids[:, :-1], None, ids[:, 1:])[2].item() < 5


def test_divergence_stops_with_a_message_and_saves_nothing_diverged(text_file, tmp_path, capsys):
    # The first update (lr 1e30) wrecks the weights; its own loss, measured before it, looks fine.
    with pytest.raises(SystemExit) as exit_info:
        main(tiny_train_args(text_file, tmp_path / "run", "--lr", "1e30", "--clip", "0", "--warmup-steps", "1",
                             "--eval-interval", "1"))
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    # A number far above a healthy loss, or, where the wrecked weights overflow, nan or inf named as such
    said = re.fullmatch(r"error: training diverged at step 1: validation loss (became nan|became inf|(\S+))\. "
                        r"No checkpoint was saved .*try a lower --lr \(now 1e\+30\).*", message)
    assert said, message
    assert said.group(2) is None or float(said.group(2)) > 100, message
    assert not (tmp_path / "run" / "last").exists() and not (tmp_path / "run" / "best").exists()


@pytest.mark.parametrize("loss", [math.nan, math.inf])
def test_a_validation_loss_that_is_not_a_number_is_named_as_such(text_file, tmp_path, capsys, monkeypatch, loss):
    monkeypatch.setattr("charrnn.train.trainer.evaluate_ids", lambda *args, **kwargs: {
        "nats": loss, "bpc": loss, "ppl": loss, "chars": 99, "tokens": 99})
    with pytest.raises(SystemExit):
        main(tiny_train_args(text_file, tmp_path / "run", "--max-steps", "5", "--eval-interval", "5"))
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith(f"error: training diverged at step 5: validation loss became {loss}. No checkpoint")


@pytest.mark.parametrize("ema_decay, average_hides_it", [("0.995", False), ("0", False), ("0.995", True)])
def test_a_catastrophic_update_just_before_a_save_is_not_saved(text_file, tmp_path, capsys, monkeypatch,
                                                                ema_decay, average_hides_it):
    # Steps 0-5 are sane and saved at step 5; the update of step 9 blows the weights up, and step 10 saves.
    sane = learning_rate
    monkeypatch.setattr("charrnn.train.trainer.learning_rate", lambda cfg, step, schedule: 1e30 if step == 9
                        else sane(cfg, step, schedule))
    if average_hides_it:  # late in a long run the moving average barely moves: its validation loss looks fine
        monkeypatch.setattr("charrnn.train.trainer.evaluate_ids", lambda *args, **kwargs: {
            "nats": 1.0, "bpc": 1.44, "ppl": 2.7, "chars": 99, "tokens": 99})
    with pytest.raises(SystemExit):
        main(tiny_train_args(text_file, tmp_path / "run", "--clip", "0", "--eval-interval", "5",
                             "--ema-decay", ema_decay))
    message = capsys.readouterr().err.strip().splitlines()[-1]
    what = "loss after the last update" if average_hides_it else "validation loss"
    assert message.startswith(f"error: training diverged at step 10: {what} ")
    assert f"The last good checkpoint is {tmp_path / 'run' / 'last'} (step 5)" in message
    assert load_checkpoint(tmp_path / "run" / "last").metrics["steps"] == 5
    assert_healthy(tmp_path / "run" / "last")
    if not average_hides_it:
        assert_healthy(tmp_path / "run" / "best")


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


def numeric_options() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)
            if type(f.default) in (int, float) or f.name in ("batch_size", "max_steps", "steps_this_run", "schedule_steps",
                                                             "threads", "time_budget")]


def bad_command_lines(tmp_path) -> list[list[str]]:
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    table = [
        ["--out", str(a_file)], ["--out", str(a_file / "run")], ["--out", "/proc/charrnn-run"],
        ["--hidden", "100000000"], ["--layers", "100000000"], ["--embedding", "100000000"], ["--params", "1e30"],
        ["--params", "1e400"], ["--params", "lots"], ["--hidden", "abc"], ["--cell", "transformer"],
        ["--warmup-steps", "-5"], ["--lr", "nan"], ["--lr", "inf"], ["--lr", "-0.001"], ["--time-budget", "inf"],
        ["--time-budget", "1e300"], ["--clip", "inf"], ["--weight-decay", "nan"], ["--min-lr-ratio", "2"],
        ["--threads", "100000"], ["--seed", "-1"], ["--seed", str(2**64)], ["--max-steps", "1.5"],
        ["--resume", str(tmp_path / "nowhere")], ["--resume", str(a_file)], ["--resume", str(tmp_path)],
    ]
    for name in numeric_options():  # every numeric option refuses a negative value, and NaN where it is a float
        flag = "--" + name.replace("_", "-")
        table += [[flag, "-1"], [flag, "nan"]]
    return table


def test_every_bad_command_line_gets_one_line_and_exit_code_2(text_file, tmp_path, capsys):
    assert set(numeric_options()) <= set(OPTION_RANGES)  # a new numeric option gets a range too
    for flags in bad_command_lines(tmp_path):
        if flags[0] == "--resume":
            argv = [*flags, "--no-progress"]
        else:
            argv = tiny_train_args(text_file, tmp_path / "run", *flags)
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert exit_info.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (flags, captured.err)
        assert captured.out == ""
    assert not (tmp_path / "run").exists()  # refused before anything was made


def test_model_config_refuses_values_of_the_wrong_kind_with_a_message():
    for bad in ({"dropout": float("nan")}, {"dropout": "0.1"}, {"hidden_size": True}, {"hidden_size": 8.0},
                {"tie_weights": "no"}, {"vocab_size": None}):
        with pytest.raises(CharRNNError):
            ModelConfig(**{"vocab_size": 9, **bad})


def test_a_missing_dataset_gets_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(tiny_train_args(tmp_path / "nothing.txt", tmp_path / "run"))
    assert "no such file or folder" in capsys.readouterr().err


def send_signals_at_step(monkeypatch, at_call: int, *signals) -> None:
    """Make the training step number `at_call` (1-based) send this process the given signals first."""
    calls = []
    real_step = train_step

    def step(*args, **kwargs):
        calls.append(1)
        if len(calls) == at_call:
            for sig in signals:
                os.kill(os.getpid(), sig)  # the handler runs at once, in this (the main) thread
        return real_step(*args, **kwargs)

    monkeypatch.setattr("charrnn.train.trainer.train_step", step)


def test_ctrl_c_says_at_once_that_it_saves_then_saves_and_exits_130(text_file, tmp_path, capsys, monkeypatch):
    handler = signal.getsignal(signal.SIGINT)
    send_signals_at_step(monkeypatch, 4, signal.SIGINT)
    with pytest.raises(SystemExit) as exit_info:
        main(tiny_train_args(text_file, tmp_path / "run", "--eval-interval", "1000"))
    assert exit_info.value.code == 130
    captured = capsys.readouterr()
    notice = "SIGINT: saving a checkpoint after this step, then stopping (press Ctrl-C again to quit at once"
    assert notice in captured.err
    assert captured.err.index(notice) < captured.err.index("interrupted (SIGINT): saved")
    assert last_json_line(captured.out)["stopped"] == "interrupted (SIGINT)"
    assert load_checkpoint(tmp_path / "run" / "last").metrics["steps"] == 4
    assert signal.getsignal(signal.SIGINT) is handler  # restored


def test_a_second_ctrl_c_quits_at_once_and_resume_then_says_how_to_start_again(text_file, tmp_path, capsys,
                                                                              monkeypatch):
    run = tmp_path / "run"
    args = tiny_train_args(text_file, run, "--eval-interval", "1000")
    send_signals_at_step(monkeypatch, 4, signal.SIGINT, signal.SIGINT)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    assert "stopped at once by SIGINT, without saving" in err and "Traceback" not in err
    assert not (run / "last").exists() and not list(run.glob("*.tmp-*"))

    with pytest.raises(SystemExit) as exit_info:  # killed before its first save: say so, and how to restart
        main(["--resume", str(run)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{run} has no checkpoint yet" in err and "without --resume" in err
    assert shlex.join(["python", "-m", "charrnn.train", *args]) in err

    with pytest.raises(SystemExit) as exit_info:  # a typo is told apart
        main(["--resume", str(tmp_path / "rnu")])
    assert exit_info.value.code == 2
    assert f"--resume {tmp_path / 'rnu'}: no such run folder" in capsys.readouterr().err


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
    assert process.returncode == 143, stderr
    assert "--resume" in stderr
    assert last_json_line(stdout)["stopped"] == "interrupted (SIGTERM)"
    assert load_checkpoint(out / "last").meta["metrics"]["steps"] > 0


def metrics_records(run, event: str) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def test_resume_with_max_steps_after_a_time_budget_run_trains_to_them(text_file, tmp_path, capsys):
    run = tmp_path / "run"
    first = main(tiny_train_args(text_file, run, "--time-budget", "0.01", "--max-steps", "100000"))
    assert first["stopped"] == "time_budget"
    capsys.readouterr()
    summary = main(["--resume", str(run), "--max-steps", str(first["steps"] + 5), "--no-progress"])
    assert summary["stopped"] == "max_steps" and summary["steps"] == first["steps"] + 5
    assert "replace the run's --time-budget 0.01" in capsys.readouterr().err


def test_resume_refuses_settings_it_cannot_change(text_file, tmp_path, capsys):
    run = tmp_path / "run"
    main(tiny_train_args(text_file, run, "--max-steps", "10"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["--resume", str(run), "--lr", "0.01", "--cell", "gru", "--max-steps", "20"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--lr (the run has 0.003, given 0.01)" in err and "--cell" in err and "cannot change" in err
    # the same values, and the flags that may change, are accepted
    summary = main(["--resume", str(run), "--lr", "0.003", "--dataset", str(text_file), "--max-steps", "12",
                    "--eval-interval", "3", "--no-progress"])
    assert summary["steps"] == 12


def test_resume_into_a_new_out_folder_keeps_the_best_checkpoint(text_file, tmp_path, monkeypatch):
    # Every evaluation scores the same, so the resumed part never beats the best of the first part.
    monkeypatch.setattr("charrnn.train.trainer.evaluate_ids", lambda *args, **kwargs: {
        "nats": 1.0, "bpc": 1.44, "ppl": 2.7, "chars": 99, "tokens": 99})
    main(tiny_train_args(text_file, tmp_path / "run", "--max-steps", "10"))
    summary = main(["--resume", str(tmp_path / "run"), "--out", str(tmp_path / "fork"), "--max-steps", "15",
                    "--no-progress"])
    assert summary["steps"] == 15 and summary["best_step"] == 10
    assert load_checkpoint(tmp_path / "fork" / "best").meta["metrics"]["total_steps"] == 15
    assert len(metrics_records(tmp_path / "fork", "start")) == 2  # the history came along
    assert load_checkpoint(tmp_path / "run" / "last").metrics["steps"] == 10  # the old run is untouched


def test_extending_a_run_does_not_move_the_learning_rate_back_up(text_file, tmp_path):
    run = tmp_path / "run"
    main(tiny_train_args(text_file, run, "--max-steps", "20", "--warmup-steps", "2", "--log-interval", "1"))
    main(["--resume", str(run), "--max-steps", "40", "--no-progress"])
    lrs = [r["lr"] for r in metrics_records(run, "train")]
    assert len(lrs) == 40
    assert all(later <= earlier for earlier, later in zip(lrs[2:], lrs[3:])), lrs  # after warmup, never up
    assert lrs[-1] == pytest.approx(3e-3 * 0.05, rel=0.01)  # and down to the floor at the new end


def test_a_time_budget_run_records_what_repeats_it_exactly(text_file, tmp_path):
    timed = main(tiny_train_args(text_file, tmp_path / "timed", "--time-budget", "0.02", "--max-steps", "100000",
                                 "--warmup-steps", "3", "--eval-interval", "7"))
    assert timed["stopped"] == "time_budget" and timed["schedule_steps"] >= 3
    assert load_checkpoint(tmp_path / "timed" / "last").metrics["schedule_steps"] == timed["schedule_steps"]
    main(tiny_train_args(text_file, tmp_path / "again", "--max-steps", timed["steps"], "--schedule-steps",
                         timed["schedule_steps"], "--warmup-steps", "3", "--eval-interval", "7"))
    assert_same_tensors(load_checkpoint(tmp_path / "timed" / "last").model.state_dict(),
                        load_checkpoint(tmp_path / "again" / "last").model.state_dict())


def test_training_steps_read_nothing_back_from_the_device(text_file, tmp_path, monkeypatch):
    # On a GPU every value read back (.item(), .tolist(), bool(), float()) makes the host wait until the GPU is
    # idle. The loop's steps keep loss and norm as tensors, and the loop reads them every --log-interval steps
    # and before each evaluation.
    def refuse(*args, **kwargs):
        raise AssertionError("a training step read a value back from its device")

    real_step, real_read, reads = Trainer._train_step, LogWindow.read, []

    def step(self, x, y):
        with monkeypatch.context() as inside:
            for name in ("item", "tolist", "__bool__", "__float__"):
                inside.setattr(torch.Tensor, name, refuse)
            real_step(self, x, y)

    def read(self):
        values = real_read(self)
        reads.append(len(values))
        return values

    monkeypatch.setattr(Trainer, "_train_step", step)
    monkeypatch.setattr(LogWindow, "read", read)
    main(tiny_train_args(text_file, tmp_path / "run", "--max-steps", "12", "--log-interval", "4",
                         "--eval-interval", "6"))
    assert [n for n in reads if n] == [4, 2, 2, 4]  # steps 1-4 (log), 5-6 (evaluation), 7-8 (log), 9-12
    records = metrics_records(tmp_path / "run", "train")
    assert [r["step"] for r in records] == [4, 8, 12] and all(math.isfinite(r["loss"]) for r in records)
    assert sum(load_checkpoint(tmp_path / "run" / "last").metrics["grad_norm"]["counts"]) == 12


@pytest.mark.parametrize("fused", [True, False])
def test_a_step_with_a_non_finite_gradient_makes_no_update(fused):
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=9, hidden_size=8, embedding_size=4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, fused=fused)
    x, y = torch.randint(9, (2, 5)), torch.randint(9, (2, 5))
    train_step(model, optimizer, x, y, None, None, clip=1.0)  # AdamW now has moments and a step count
    before = copy.deepcopy((model.state_dict(), optimizer.state_dict()))
    hook = model.head.bias.register_hook(lambda grad: grad * math.inf)
    loss, norm, _ = train_step(model, optimizer, x, y, None, None, clip=1.0)
    assert isinstance(loss, torch.Tensor) and torch.isfinite(loss) and not torch.isfinite(norm)
    assert_same_tensors(before[0], model.state_dict())
    for state, old in zip(optimizer.state_dict()["state"].values(), before[1]["state"].values()):
        assert_same_tensors(old, state)  # moments and step count too
    hook.remove()
    train_step(model, optimizer, x, y, None, None, clip=1.0)
    assert not torch.equal(before[0]["head.bias"], model.head.bias)


def test_a_non_finite_step_stops_the_run_at_the_next_read_and_names_the_step(text_file, tmp_path, capsys,
                                                                            monkeypatch):
    calls, real_step = [], train_step

    def step(*args, **kwargs):
        calls.append(1)
        loss, norm, hidden = real_step(*args, **kwargs)
        return (loss * math.nan if len(calls) == 7 else loss), norm, hidden

    monkeypatch.setattr("charrnn.train.trainer.train_step", step)
    with pytest.raises(SystemExit):
        main(tiny_train_args(text_file, tmp_path / "run", "--log-interval", "4", "--eval-interval", "5"))
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("error: training diverged at step 7: loss became nan, gradient norm "), message
    assert len(calls) == 8  # found when steps 5-8 were read
    assert load_checkpoint(tmp_path / "run" / "last").metrics["steps"] == 5


def test_the_default_batch_size_is_the_devices_and_the_run_records_it_for_resume(text_file, tmp_path, monkeypatch):
    assert default_batch_size(torch.device("cpu")) == 16 and default_batch_size(torch.device("cuda")) == 256
    args = without_batch_size(tiny_train_args(text_file, tmp_path / "run", "--max-steps", "4", "--eval-interval", "4"))
    with monkeypatch.context() as gpu:  # as on a GPU: another default than this CPU's
        gpu.setattr("charrnn.train.trainer.default_batch_size", lambda device: 8)
        main(args)
    assert load_checkpoint(tmp_path / "run" / "last").meta["training"]["batch_size"] == 8
    main(["--resume", str(tmp_path / "run"), "--max-steps", "6", "--no-progress"])  # here, the default is 16
    assert load_checkpoint(tmp_path / "run" / "last").meta["training"]["batch_size"] == 8
    assert load_training_state(tmp_path / "run" / "last")["hidden"][0].shape[1] == 8
