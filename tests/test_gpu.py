"""The CUDA path: training in bf16 and fp16 (with its loss scaler), steps that never wait for the GPU, the GPU's
default batch size, resume, sampling, DDP over NCCL with one process, and the GPU benchmark. Skipped without a
CUDA GPU (CI has none)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from charrnn.cli import bench
from charrnn.checkpoint.saving import load_checkpoint
from charrnn.sampling.generate import generate
from charrnn.cli.train import main
from charrnn.train import Trainer
from tests.conftest import ROOT, TINY_TEXT, tiny_train_args, without_batch_size

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_training_on_the_gpu_learns(text_file, tmp_path, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    summary = main(tiny_train_args(text_file, tmp_path / "run", "--device", "cuda", "--precision", precision,
                                   "--max-steps", "60", "--lr", "1e-2"))
    curve = load_checkpoint(tmp_path / "run" / "best").metrics["curve"]
    assert curve[-1]["val_nats"] < curve[0]["val_nats"] - 0.3
    assert load_checkpoint(tmp_path / "run" / "last").metrics["device"] == "cuda"
    assert summary["val_bpc"] > 0


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_training_steps_never_wait_for_the_gpu(text_file, tmp_path, monkeypatch, precision):
    # Any synchronising call (.item(), a blocking copy, a stream synchronize) inside a step raises.
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    real_step, calls = Trainer._train_step, []

    def step(self, x, y):
        calls.append(1)
        if len(calls) <= 3:  # warm-up: cuDNN, the allocators and AdamW's state are set up in the first steps
            return real_step(self, x, y)
        torch.cuda.set_sync_debug_mode("error")
        try:
            return real_step(self, x, y)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    monkeypatch.setattr(Trainer, "_train_step", step)
    main(tiny_train_args(text_file, tmp_path / "run", "--device", "cuda", "--precision", precision, "--max-steps", "12",
                         "--weight-drop", "0.2"))
    assert len(calls) == 12


def test_a_gpu_run_takes_256_streams_per_step_by_default(tmp_path):
    text = tmp_path / "longer.txt"
    text.write_text(TINY_TEXT * 5)  # 256 streams of 16 characters
    main(without_batch_size(tiny_train_args(text, tmp_path / "run", "--device", "cuda", "--max-steps", "4",
                                            "--eval-interval", "4")))
    assert load_checkpoint(tmp_path / "run" / "last").meta["training"]["batch_size"] == 256


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_resume_on_the_gpu_matches_an_uninterrupted_run(text_file, tmp_path, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    flags = ["--device", "cuda", "--precision", precision, "--max-steps", "24", "--eval-interval", "8"]
    main(tiny_train_args(text_file, tmp_path / "straight", *flags))
    main(tiny_train_args(text_file, tmp_path / "split", *flags, "--steps-this-run", "12"))
    main(["--resume", str(tmp_path / "split"), "--no-progress"])
    straight = load_checkpoint(tmp_path / "straight" / "last").model.state_dict()
    split = load_checkpoint(tmp_path / "split" / "last").model.state_dict()
    for name in straight:  # cuDNN's kernels may round differently from run to run
        torch.testing.assert_close(split[name], straight[name], rtol=1e-3, atol=1e-4)


def test_sampling_on_the_gpu(text_file, tmp_path):
    main(tiny_train_args(text_file, tmp_path / "run", "--device", "cuda", "--max-steps", "10"))
    checkpoint = load_checkpoint(tmp_path / "run" / "best", "cuda")
    text = generate(checkpoint.model, checkpoint.tokenizer, "First", length=50, seed=1)
    assert text and text == generate(checkpoint.model, checkpoint.tokenizer, "First", length=50, seed=1)


def test_ddp_with_one_process_on_nccl(text_file, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
           "CHARRNN_DIST_INIT": f"file://{tmp_path / 'rendezvous'}"}
    result = subprocess.run([sys.executable, "-m", "charrnn.train",
                             *tiny_train_args(text_file, out, "--device", "cuda", "--max-steps", "12")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["steps"] == 12
    assert load_checkpoint(out / "last").metrics["world_size"] == 1


def test_the_gpu_bench_prints_training_and_sampling_with_peak_memory(monkeypatch, capsys):
    monkeypatch.setattr(bench, "GPU_SHAPES", bench.TINY_SHAPES)  # the code path, in seconds
    results = bench.main(["--device", "cuda", "--quick"])
    printed = capsys.readouterr().out
    assert results["device"] == "cuda" and torch.cuda.get_device_name() in printed
    assert len(results["training"]) == len(bench.TINY_SHAPES) and "peak GPU GiB, charrnn / plain" in printed
    assert all(row["charrnn_peak_bytes"] > 0 and row["charrnn_chars_s"] > 0 for row in results["training"])
    assert [row["samples"] for row in results["sampling"]] == [1, 64, 1, 64]
