"""The first run on a machine: sampling with torch while the kernels compile in a process of their own."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from charrnn.checkpoint.saving import load_checkpoint
from charrnn.sampling import kernels
from charrnn.sampling.generate import SamplingSettings, read_prompt, row_settings, stream
from charrnn.sampling.stepper import Stepper
from charrnn.sampling.torch_stepper import TorchStepper, sample_tokens_uncompiled
from tests.conftest import ROOT


@pytest.mark.parametrize("temperature, top_k, top_p, banned", [(0.8, 0, 1.0, -1), (1.3, 5, 1.0, 0), (0.7, 0, 0.6, 2),
                                                               (0.0, 0, 1.0, -1), (1.0, 3, 0.9, 1)])
def test_the_python_draw_draws_what_the_compiled_draw_draws(temperature, top_k, top_p, banned):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(64, 30)).astype(np.float32) * 3
    logits[:, 7] = logits[:, 8]  # ties, as top-k and top-p keep them
    settings = row_settings(SamplingSettings(temperature, top_k, top_p), None if banned < 0 else banned, 64)
    uniforms = rng.random(64)
    compiled, python = np.empty(64, np.int64), np.empty(64, np.int64)
    kernels.sample_tokens(logits, *settings, uniforms, compiled)
    sample_tokens_uncompiled(logits, *settings, uniforms, python)
    assert np.array_equal(compiled, python)


def test_the_torch_stepper_steps_as_the_compiled_one_within_rounding(tiny_checkpoint):
    model = load_checkpoint(tiny_checkpoint).model
    compiled, torch_stepper = Stepper(model, "float32"), TorchStepper(model)
    hidden = read_prompt(model, torch_stepper, np.array([1, 2, 3]))  # torch reads it, the Stepper steps it
    assert np.allclose(hidden, compiled.read(np.array([1, 2, 3])), atol=1e-5)
    hidden = np.repeat(hidden, 3, axis=1)
    (ours, ours_hidden), (theirs, their_hidden) = (s.step(np.array([4, 5, 6]), hidden) for s in (torch_stepper,
                                                                                                 compiled))
    assert np.allclose(ours, theirs, atol=1e-4) and np.allclose(ours_hidden, their_hidden, atol=1e-5)
    text = "".join(p[0] for p in stream(model, load_checkpoint(tiny_checkpoint).tokenizer, "All:", 40,
                                        SamplingSettings(0.8), seed=3, stepper=torch_stepper))
    assert len(text) == 40


def test_a_first_sample_on_a_machine_answers_with_torch_and_compiles_the_kernels_for_the_next(tiny_checkpoint,
                                                                                               tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    command = [sys.executable, "-m", "charrnn", "sample", "--checkpoint", str(tiny_checkpoint), "--length", "30",
               "--seed", "1"]
    first = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "compiled for this machine in the background" in first.stderr and len(first.stdout) > 30
    deadline = time.monotonic() + 240  # the compiling process, on a loaded machine
    while not list((tmp_path / "numba").rglob("*stack_step*.nbi")) and time.monotonic() < deadline:
        time.sleep(1)
    lock = tmp_path / "charrnn-compiling-kernels.lock"
    while lock.exists() and time.monotonic() < deadline:  # the lock goes when the process ends
        try:
            import fcntl
            with open(lock) as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            time.sleep(1)
    second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0 and "background" not in second.stderr, second.stderr


def test_an_engine_built_while_the_kernels_compile_samples_with_torch_then_moves_to_them(tiny_checkpoint,
                                                                                         monkeypatch):
    from charrnn.sampling import engine as engine_module, warm

    checkpoint = load_checkpoint(tiny_checkpoint)
    ready = {"now": False}
    monkeypatch.setattr(warm, "kernels_ready", lambda: ready["now"])
    monkeypatch.setattr(engine_module, "READY_CHECK_SECONDS", 0.0)
    engine = engine_module.SamplingEngine(checkpoint.model, checkpoint.tokenizer, threads=1, while_compiling=True)
    assert not engine.stepper.compiled
    steps = engine.stream("All:", 60, SamplingSettings(0.8), seed=5, num_samples=2)
    first = [next(steps) for _ in range(20)]
    ready["now"] = True  # the compiling process is done: the running texts go on with the compiled kernels
    rest = list(steps)
    assert engine.stepper.compiled and isinstance(engine.stepper, Stepper)
    texts = ["".join(step[i] for step in first + rest) for i in range(2)]
    assert [len(t) for t in texts] == [60, 60] and texts[0] != texts[1]
    # and a text is drawn from the same probabilities: at temperature 0 it is the compiled kernels' own text
    greedy = "".join(p[0] for p in stream(checkpoint.model, checkpoint.tokenizer, "All:", 30, SamplingSettings(0.0),
                                          seed=1, stepper=Stepper(checkpoint.model, "float32")))
    ready["now"] = False
    cold = engine_module.SamplingEngine(checkpoint.model, checkpoint.tokenizer, threads=1, while_compiling=True)
    assert "".join(p[0] for p in cold.stream("All:", 30, SamplingSettings(0.0), seed=1)) == greedy


def test_an_engine_not_told_the_kernels_compile_uses_them_whatever_the_cache(tiny_checkpoint, monkeypatch):
    from charrnn.sampling import engine as engine_module, warm

    checkpoint = load_checkpoint(tiny_checkpoint)
    monkeypatch.setattr(warm, "kernels_ready", lambda: False)
    assert engine_module.SamplingEngine(checkpoint.model, checkpoint.tokenizer).stepper.compiled


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_a_stepper_from_the_checkpoints_arrays_is_the_models_own(tiny_checkpoint, tmp_path, dtype):
    from charrnn.checkpoint.arrays import load_arrays
    from charrnn.checkpoint.saving import save_checkpoint

    checkpoint = load_checkpoint(tiny_checkpoint)
    folder = save_checkpoint(tmp_path / dtype, checkpoint.model, checkpoint.tokenizer, dtype=dtype)
    model, arrays = load_checkpoint(folder).model, load_arrays(folder)
    assert arrays.model_config == model.config and arrays.tokenizer.to_dict() == checkpoint.tokenizer.to_dict()
    for name, tensor in model.state_dict().items():
        assert np.array_equal(arrays.arrays[name], tensor.numpy()), name
    ours, theirs = Stepper.from_arrays(arrays.model_config, arrays.arrays), Stepper(model)
    hidden = np.repeat(ours.read(np.array([1, 2, 3])), 2, axis=1)
    (a, a_hidden), (b, b_hidden) = (s.step(np.array([4, 5]), hidden) for s in (ours, theirs))
    assert np.array_equal(a, b) and np.array_equal(a_hidden, b_hidden)


def test_charrnn_sample_with_the_kernels_compiled_runs_without_torch(tiny_checkpoint):
    code = ("import sys, json; from charrnn.sampling import warm; warm.kernels_cached = lambda: True; "
            "from charrnn.cli.sample import main; main(sys.argv[1:]); print(json.dumps('torch' in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, "--checkpoint", str(tiny_checkpoint), "--length", "40",
                           "--seed", "3", "--prompt", "All:"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "false"
    checkpoint = load_checkpoint(tiny_checkpoint)
    expected = "".join(p[0] for p in stream(checkpoint.model, checkpoint.tokenizer, "All:", 40, SamplingSettings(),
                                            seed=3, stepper=Stepper(checkpoint.model)))
    assert done.stdout.startswith("All:" + expected)
