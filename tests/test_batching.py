import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from charrnn.sampling import engine as batching
from charrnn.sampling import bf16
from charrnn.sampling.engine import SamplingEngine
from charrnn.checkpoint.saving import load_checkpoint
from charrnn.config import ModelConfig
from charrnn.model import CharRNN
from charrnn.sampling.generate import SamplingSettings, stream
from charrnn.sampling.stepper import Stepper

CELLS = ["lstm", "gru", "rnn_tanh"]


def random_model(cell: str) -> CharRNN:
    torch.manual_seed(1)
    # 100 and 70 wide: not multiples of the vector width, so the kernels' remainder loops run too
    return CharRNN(ModelConfig(vocab_size=30, cell=cell, embedding_size=16, hidden_size=100, num_layers=2)).eval()


@pytest.mark.parametrize("precision", ["float32", "half", pytest.param("bf16", marks=pytest.mark.skipif(
    not bf16.SUPPORTED, reason="this CPU has no AVX512-BF16"))])
@pytest.mark.parametrize("cell", CELLS)
def test_a_rows_step_is_bit_identical_whatever_batch_it_is_stepped_in(cell, precision):
    stepper = Stepper(random_model(cell), precision)
    rng = np.random.default_rng(0)
    batch = 11  # two blocks of four and three rows one at a time
    tokens = rng.integers(0, 30, batch)
    hidden = rng.standard_normal((stepper.state_size, batch, 100)).astype(np.float32)
    logits, new_hidden = stepper.step(tokens, hidden)
    for size in (1, 2, 3, 4, 5, 8):  # every row, stepped in batches of other sizes at other positions
        for start in range(0, batch, size):
            rows = slice(start, min(start + size, batch))
            part_logits, part_hidden = stepper.step(tokens[rows], hidden[:, rows])
            assert np.array_equal(part_logits, logits[rows]), (size, start)
            assert np.array_equal(part_hidden, new_hidden[:, rows])


# An AVX2-only x86 CPU as numba compiles for it (NUMBA_CPU_NAME alone keeps the host's features, AVX-512 included)
AVX2_ONLY = {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "+avx2,+fma,+f16c,-avx512f"}


@pytest.mark.slow
@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="emulates an x86 CPU")
def test_a_rows_step_is_bit_identical_whatever_batch_also_on_a_cpu_with_avx2_but_no_avx512(tmp_path):
    """The test above, in a process whose kernels are compiled for an AVX2-only CPU, so that a machine with
    AVX-512 checks that path too: LLVM once split the dot products differently by batch there, and only there.
    A cache folder of its own, or kernels compiled for this CPU would be loaded instead."""
    test = f"{Path(__file__).resolve()}::test_a_rows_step_is_bit_identical_whatever_batch_it_is_stepped_in"
    env = {**os.environ, **AVX2_ONLY, "NUMBA_CACHE_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
                         cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"{2 * len(CELLS)} passed" in run.stdout  # float32 and half for every cell; bf16 needs AVX-512


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint):
    checkpoint = load_checkpoint(tiny_checkpoint)
    return checkpoint.model, checkpoint.tokenizer


# (prompt, length, settings, seed, samples, stop): callers that differ in every way a request can
REQUESTS = [
    ("All:", 300, SamplingSettings(1.0), 1, 1, None),
    ("First Citizen", 250, SamplingSettings(0.7, top_k=5), 2, 3, None),
    ("", 400, SamplingSettings(1.2, top_p=0.9), 3, 1, None),
    ("You", 350, SamplingSettings(0.0), 4, 2, None),
    ("We are", 300, SamplingSettings(1.0), 5, 2, "\n"),
    ("Speak", 120, SamplingSettings(0.9), 6, 1, None),
]


def run_concurrently(engine: SamplingEngine, requests, threads_per_request: int = 1) -> list[list[str]]:
    results = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def call(i):
        prompt, length, settings, seed, samples, stop = requests[i]
        barrier.wait()
        texts = [""] * samples
        for pieces in engine.stream(prompt, length, settings, seed, samples, stop):
            texts = [t + p for t, p in zip(texts, pieces)]
        results[i] = texts

    workers = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    return results


def alone(model, tokenizer, request) -> list[str]:
    prompt, length, settings, seed, samples, stop = request
    texts = [""] * samples
    for pieces in stream(model, tokenizer, prompt, length, settings, seed, samples, stop):
        texts = [t + p for t, p in zip(texts, pieces)]
    return texts


@pytest.mark.parametrize("threads", [1, 2])
def test_callers_batched_together_get_exactly_the_text_each_gets_alone(tiny, threads):
    model, tokenizer = tiny
    engine = SamplingEngine(model, tokenizer, threads=threads)
    batched = run_concurrently(engine, REQUESTS)
    # they did share steps: one request alone has at most 3 rows; two workers share the 10 rows out
    assert engine.peak_rows > (3 if threads == 1 else 1)
    for request, texts in zip(REQUESTS, batched):
        assert texts == alone(model, tokenizer, request)
    assert batched[4][0].endswith("\n") or len(batched[4][0]) == 300  # the stop string ended that one


def test_a_caller_that_leaves_early_is_dropped_and_the_others_are_unaffected(tiny):
    model, tokenizer = tiny
    engine = SamplingEngine(model, tokenizer)
    leaver = engine.stream("All:", 10**6, SamplingSettings(1.0), 9)  # minutes of steps if never dropped
    next(leaver)  # in the batch now
    stayers = run_concurrently(engine, REQUESTS[:2])
    leaver.close()
    deadline = time.monotonic() + 10
    while engine.active_rows and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.active_rows == 0
    for request, texts in zip(REQUESTS[:2], stayers):
        assert texts == alone(model, tokenizer, request)


def test_the_engine_thread_ends_when_idle_and_starts_again_on_demand(tiny, monkeypatch):
    model, tokenizer = tiny
    monkeypatch.setattr(batching, "IDLE_SECONDS", 0.05)
    engine = SamplingEngine(model, tokenizer)
    first = "".join(p[0] for p in engine.stream("All:", 50, SamplingSettings(1.0), 3))
    deadline = time.monotonic() + 10
    while any(engine._workers) and time.monotonic() < deadline:  # noqa: SLF001
        time.sleep(0.01)
    assert not any(engine._workers)  # noqa: SLF001 - no thread left behind by an idle model
    again = "".join(p[0] for p in engine.stream("All:", 50, SamplingSettings(1.0), 3))
    assert again == first and len(first) == 50


def test_more_callers_than_rows_wait_for_room_and_all_finish(tiny):
    model, tokenizer = tiny
    engine = SamplingEngine(model, tokenizer, max_rows=3)
    results = run_concurrently(engine, REQUESTS)
    assert engine.peak_rows <= 3
    for request, texts in zip(REQUESTS, results):
        assert texts == alone(model, tokenizer, request)


def test_a_failing_step_reaches_every_caller_as_an_error_and_the_engine_goes_on(tiny, monkeypatch):
    model, tokenizer = tiny
    engine = SamplingEngine(model, tokenizer)
    real_step = engine.stepper.step
    monkeypatch.setattr(engine.stepper, "step", lambda *a: (_ for _ in ()).throw(MemoryError("no room")))
    with pytest.raises(MemoryError, match="no room"):
        list(engine.stream("All:", 20, SamplingSettings(1.0), 3))
    monkeypatch.setattr(engine.stepper, "step", real_step)
    assert len(list(engine.stream("All:", 20, SamplingSettings(1.0), 3))) == 20


def test_a_batch_that_cannot_be_stacked_fails_its_callers_and_the_engine_goes_on(tiny, monkeypatch):
    model, tokenizer = tiny
    engine = SamplingEngine(model, tokenizer)

    def no_room(self, callers):
        raise MemoryError("no room to stack")

    monkeypatch.setattr(batching._Batch, "__init__", no_room)
    with pytest.raises(MemoryError, match="no room to stack"):
        list(engine.stream("All:", 20, SamplingSettings(1.0), 3))
    monkeypatch.undo()
    assert len(list(engine.stream("All:", 20, SamplingSettings(1.0), 3))) == 20
