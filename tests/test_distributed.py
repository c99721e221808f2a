"""Many processes with DistributedDataParallel on CPU (gloo): each test starts the real command in 2 processes
that meet through a file in tmp_path (as torchrun's workers would, without a port to fight over)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from charrnn.checkpoint.saving import load_checkpoint, load_training_state
from charrnn.evaluate import evaluate_ids
from charrnn.cli.train import main
from tests.conftest import ROOT, TINY_TEXT, tiny_train_args

# Dropout 0: the processes then take exactly the steps of one process with all the streams.
FLAGS = ["--dropout", "0", "--precision", "fp32", "--max-steps", "12", "--eval-interval", "4", "--threads", "1"]


def launch(args: list[str], tmp_path, processes: int = 2) -> list[subprocess.Popen]:
    """`python -m charrnn.train ARGS` in `processes` processes of one group, as torchrun starts them."""
    rendezvous = tmp_path / f"rendezvous-{time.monotonic_ns()}"
    started = []
    for rank in range(processes):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "RANK": str(rank), "LOCAL_RANK": str(rank),
               "WORLD_SIZE": str(processes), "CHARRNN_DIST_INIT": f"file://{rendezvous}"}
        started.append(subprocess.Popen([sys.executable, "-m", "charrnn.train", *args], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        start_new_session=rank == 0))
    return started


def finish(processes: list[subprocess.Popen], timeout: float = 120) -> list[tuple[int, str, str]]:
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=timeout)
        results.append((process.returncode, stdout, stderr))
    return results


def assert_close_weights(expected, actual) -> None:
    expected, actual = expected.model.state_dict(), actual.model.state_dict()
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("max_tokens", [None, 1000])  # all of it, or a sample (15 windows of 66 tokens)
def test_validation_shared_out_scores_every_token_once(tiny_checkpoint, max_tokens):
    checkpoint = load_checkpoint(tiny_checkpoint)
    ids = checkpoint.tokenizer.encode(TINY_TEXT[:-5])  # 16 pieces and a remainder
    whole = evaluate_ids(checkpoint.model, ids, chunk=64, max_tokens=max_tokens)
    for processes in (2, 3):
        shares = [evaluate_ids(checkpoint.model, ids, chunk=64, shard=(rank, processes), max_tokens=max_tokens)
                  for rank in range(processes)]
        assert sum(share["nats"] for share in shares) == pytest.approx(whole["nats"], rel=1e-6)
        assert min(share["nats"] for share in shares) > 0
        assert all(share["tokens"] == whole["tokens"] for share in shares)  # each reports the whole evaluation


@pytest.fixture(scope="module")
def one_process_run(text_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "run"
    main(tiny_train_args(text_file, out, *FLAGS))
    return out


def test_two_processes_take_the_steps_of_one(text_file, tmp_path, one_process_run):
    out = tmp_path / "run"
    (code0, stdout, stderr), (code1, stdout1, _) = finish(launch(tiny_train_args(text_file, out, *FLAGS), tmp_path))
    assert code0 == 0 and code1 == 0, stderr
    assert stdout1 == "" and json.loads(stdout.splitlines()[-1])["steps"] == 12  # only the first one reports
    assert_close_weights(load_checkpoint(one_process_run / "last"), load_checkpoint(out / "last"))
    last = load_checkpoint(out / "last")
    assert last.metrics["world_size"] == 2 and last.metrics["device"] == "cpu" and last.metrics["precision"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["event"] for r in records].count("start") == 1  # one writer
    expected = [json.loads(line) for line in (one_process_run / "metrics.jsonl").read_text().splitlines()]
    val = [r["val_nats"] for r in records if r["event"] == "eval"]
    assert val == pytest.approx([r["val_nats"] for r in expected if r["event"] == "eval"], rel=1e-4)
    state = load_training_state(out / "last")
    assert state["hidden"][0].shape[1] == 4 and len(state["rank_rngs"]) == 2  # all the streams, every process


@pytest.mark.slow
def test_a_run_of_two_processes_resumes_in_one(text_file, tmp_path, one_process_run):
    out = tmp_path / "run"
    results = finish(launch(tiny_train_args(text_file, out, *FLAGS, "--steps-this-run", "6"), tmp_path))
    assert all(code == 0 for code, _, _ in results), results[0][2]
    main(["--resume", str(out), "--no-progress"])
    assert_close_weights(load_checkpoint(one_process_run / "last"), load_checkpoint(out / "last"))
    assert load_checkpoint(out / "last").metrics["world_size"] == 1


@pytest.mark.slow
def test_sigterm_to_the_group_leaves_a_resumable_checkpoint(text_file, tmp_path):
    out = tmp_path / "run"
    processes = launch(tiny_train_args(text_file, out, "--max-steps", "1000000", "--eval-interval", "1000000"),
                       tmp_path)
    deadline = time.time() + 90
    while time.time() < deadline and not any(
            json.loads(line).get("event") == "train"  # both processes are in the loop (the steps are in step)
            for line in ((out / "metrics.jsonl").read_text() if (out / "metrics.jsonl").exists() else "").splitlines()
            if line.endswith("}")):  # a line being written is not read
        time.sleep(0.2)
    for process in processes:  # as torchrun passes a SIGTERM on to its workers
        process.send_signal(signal.SIGTERM)
    results = finish(processes)
    assert [code for code, _, _ in results] == [143, 143], results[0][2]
    steps = load_checkpoint(out / "last").metrics["steps"]
    assert steps > 0
    summary = main(["--resume", str(out), "--max-steps", str(steps + 2), "--no-progress"])
    assert summary["steps"] == steps + 2
