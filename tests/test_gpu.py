"""The CUDA path: training in bf16 and fp16 (with its loss scaler), steps that never wait for the GPU, the GPU's
default batch size, resume (bit for bit with --deterministic; without it, no further from an uninterrupted run than
two uninterrupted runs are from each other), dropout masks that follow torch's random state, sampling (many samples
step on the GPU), DDP over NCCL with one process, and the GPU benchmark. Skipped without a CUDA GPU (CI has none);
`python -m tools.gpu_check` runs them on a GPU machine with its other checks."""

import copy
import json
import os
import subprocess
import sys

# cuBLAS reads its workspace setting when it starts, and the --deterministic runs here need it set by then: before
# this process's first CUDA work, whichever test comes first (a `charrnn train --deterministic` process sets it
# itself).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from charrnn.cli import bench  # noqa: E402
from charrnn.cli.sample import main as sample  # noqa: E402
from charrnn.checkpoint.saving import load_checkpoint  # noqa: E402
from charrnn.config import ModelConfig  # noqa: E402
from charrnn.device import CUDA_SAMPLING_ROWS  # noqa: E402
from charrnn.model import CharRNN  # noqa: E402
from charrnn.sampling.generate import generate  # noqa: E402
from charrnn.sampling.stepper import Stepper  # noqa: E402
from charrnn.sampling.torch_stepper import TorchStepper  # noqa: E402
from charrnn.cli.train import main  # noqa: E402
from charrnn.train import Trainer  # noqa: E402
from tests.conftest import ROOT, TINY_TEXT, tiny_train_args, without_batch_size  # noqa: E402
from tools.gpu_check.resume import resume_differences  # noqa: E402

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


# Every random draw a step makes (dropout between the layers, on the embeddings and the output, weight drop),
# and a run paused at step 12 of 24 (tools.gpu_check.resume).
RESUME_FLAGS = ["--hidden", "32", "--embedding", "16", "--layers", "2", "--batch-size", "4", "--seq-len", "16",
                "--dropout", "0.2", "--input-dropout", "0.1", "--weight-drop", "0.3", "--device", "cuda"]


def skip_without(precision: str) -> None:
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_deterministic_gpu_run_resumes_bit_for_bit(text_file, tmp_path, precision, determinism_restored):
    skip_without(precision)
    figures = resume_differences(main, text_file, tmp_path, [*RESUME_FLAGS, "--precision", precision,
                                                             "--deterministic"])
    assert figures == {"between_straight_runs": 0.0, "resumed": 0.0}


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_resumed_gpu_run_is_no_further_from_an_uninterrupted_one_than_two_uninterrupted_runs(text_file, tmp_path,
                                                                                            precision):
    # Without --deterministic, cuDNN's kernels may sum in another order from run to run: a resumed run may differ by
    # as much, no more. (A random state or a loss scale lost on resume differed by 11%: issue 28.)
    skip_without(precision)
    figures = resume_differences(main, text_file, tmp_path, [*RESUME_FLAGS, "--precision", precision])
    assert figures["resumed"] <= 2 * figures["between_straight_runs"] + 1e-6, figures


def test_dropout_between_layers_on_the_gpu_follows_torchs_random_state():
    # What --resume restores (torch.cuda.get_rng_state) decides the masks: cuDNN's own dropout between layers would
    # draw from a state of its own (charrnn.model.LAYER_BY_LAYER_DEVICES), set up anew after the state was set.
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=20, embedding_size=16, hidden_size=32, num_layers=3, dropout=0.5))
    model = model.cuda().train()
    idx = torch.randint(0, 20, (4, 30), device="cuda")
    model(idx)  # any random state of cuDNN's would be set up here, and move on with each call
    state = torch.cuda.get_rng_state()
    first = model(idx)[0]
    torch.cuda.set_rng_state(state)
    assert torch.equal(model(idx)[0], first)
    with torch.no_grad():
        assert not torch.equal(model.eval()(idx)[0], first)  # dropout was on


def test_sampling_on_the_gpu(text_file, tmp_path):
    main(tiny_train_args(text_file, tmp_path / "run", "--device", "cuda", "--max-steps", "10"))
    checkpoint = load_checkpoint(tmp_path / "run" / "best", "cuda")
    text = generate(checkpoint.model, checkpoint.tokenizer, "First", length=50, seed=1)
    assert text and text == generate(checkpoint.model, checkpoint.tokenizer, "First", length=50, seed=1)


def test_many_samples_step_on_the_gpu_as_they_do_on_the_cpu(text_file, tmp_path, capsys):
    main(tiny_train_args(text_file, tmp_path / "run", "--device", "cuda", "--max-steps", "10"))
    model = load_checkpoint(tmp_path / "run" / "best").model
    cpu, gpu = Stepper(model, "float32"), TorchStepper(copy.deepcopy(model).cuda(), draw_compiled=True)
    tokens, hidden = np.arange(8) % model.config.vocab_size, cpu.zero_state(8)
    (cpu_logits, cpu_hidden), (gpu_logits, gpu_hidden) = cpu.step(tokens, hidden), gpu.step(tokens, hidden)
    assert isinstance(gpu_hidden, torch.Tensor) and gpu_hidden.is_cuda  # the state stays on the GPU between steps
    np.testing.assert_allclose(gpu_logits, cpu_logits, rtol=1e-2, atol=1e-2)  # cuDNN may round through TF32
    np.testing.assert_allclose(gpu_hidden.cpu().numpy(), cpu_hidden, rtol=1e-2, atol=1e-2)
    for rows, where in ((CUDA_SAMPLING_ROWS, "cuda"), (1, "cpu")):
        sample(["--checkpoint", str(tmp_path / "run" / "best"), "--num-samples", str(rows), "--length", "30",
                "--seed", "1"])
        assert json.loads(capsys.readouterr().out.splitlines()[-1])["device"] == where


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
    assert [row["samples"] for row in results["sampling"]] == [1, 64, 1, 64, 1, 64]
    assert "charrnn streaming sampler (steps on cuda)" in printed  # beside the CPU's steps
