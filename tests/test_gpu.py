"""The CUDA path: training in bf16 and fp16 (with its loss scaler), resume, sampling, and DDP over NCCL with one
process. Skipped without a CUDA GPU (CI has none)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from charrnn.checkpoint import load_checkpoint
from charrnn.sample import generate
from charrnn.train import main
from tests.conftest import ROOT, tiny_train_args

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


def test_resume_on_the_gpu_matches_an_uninterrupted_run(text_file, tmp_path):
    flags = ["--device", "cuda", "--precision", "fp16", "--max-steps", "24", "--eval-interval", "8"]
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
