import os
import shutil
import signal
import threading

import pytest

from charrnn.sampling.engine import SamplingEngine
from charrnn.checkpoint.saving import load_checkpoint
from charrnn.errors import CharRNNError
from charrnn.sampling.generate import SamplingSettings
from charrnn.sampling.process import SamplerProcess
from charrnn.sampling.stepper import Stepper
from tests.test_batching import REQUESTS


@pytest.fixture(scope="module")
def sampler():
    sampler = SamplerProcess()
    yield sampler
    sampler.close()


def texts(stream, num_samples: int) -> list[str]:
    out = [""] * num_samples
    for pieces in stream:
        out = [t + p for t, p in zip(out, pieces)]
    return out


def test_calls_running_at_once_in_the_child_write_what_the_engine_here_writes(sampler, tiny_checkpoint):
    checkpoint = load_checkpoint(tiny_checkpoint)
    here = SamplingEngine(checkpoint.model, checkpoint.tokenizer)
    expected = [texts(here.stream(*request), request[4]) for request in REQUESTS]
    remote = sampler.engine(tiny_checkpoint)
    got: list = [None] * len(REQUESTS)

    def call(i):
        got[i] = texts(remote.stream(*REQUESTS[i], every=0.05), REQUESTS[i][4])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(REQUESTS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert got == expected
    assert all(len(t) > 0 for sample in got for t in sample)


def test_a_closed_stream_ends_its_call_and_the_next_call_runs(sampler, tiny_checkpoint):
    remote = sampler.engine(tiny_checkpoint)
    streams = [remote.stream("All:", 5000, SamplingSettings(1.0), seed) for seed in range(3)]
    for stream in streams:
        next(stream)
        stream.close()
    assert len(texts(remote.stream("All:", 50, SamplingSettings(1.0), 1), 1)[0]) > 0


def test_a_child_that_dies_ends_its_calls_with_a_message_and_the_next_call_starts_a_new_one(sampler,
                                                                                         tiny_checkpoint):
    remote = sampler.engine(tiny_checkpoint)
    stream = remote.stream("All:", 100_000, SamplingSettings(1.0), 1)
    next(stream)
    first = sampler.pid
    os.kill(first, signal.SIGKILL)
    with pytest.raises(CharRNNError, match="sampling process stopped"):
        for _ in stream:
            pass
    assert len(texts(remote.stream("All:", 50, SamplingSettings(1.0), 1), 1)[0]) > 0
    assert sampler.pid != first


def test_a_folder_that_is_no_checkpoint_gives_a_message(sampler, tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CharRNNError):
        texts(sampler.engine(tmp_path).stream("All:", 10), 1)
    with pytest.raises(CharRNNError, match="deleted"):
        texts(sampler.engine(tmp_path / "gone").stream("All:", 10), 1)


def test_a_retrained_folder_is_loaded_again(sampler, tiny_library, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_library / "rnn", folder)
    settings = SamplingSettings(1.0)
    remote = sampler.engine(folder)
    before = texts(remote.stream("All:", 200, settings, 3), 1)
    shutil.rmtree(folder)
    shutil.copytree(tiny_library / "gru", folder)
    os.utime(folder / "model.safetensors", (1, 1))  # a different stamp even on a coarse clock
    checkpoint = load_checkpoint(folder)
    expected = texts(SamplingEngine(checkpoint.model, checkpoint.tokenizer).stream("All:", 200, settings, 3), 1)
    assert texts(remote.stream("All:", 200, settings, 3), 1) == expected != before


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads the child's memory map from /proc")
def test_the_child_samples_without_torch_once_the_kernels_are_compiled(sampler, tiny_checkpoint):
    from charrnn.sampling.generate import STEPPED_PROMPT

    long_prompt = "All:\nSpeak, speak.\n" * (STEPPED_PROMPT // 10)  # stepped too: there is no torch to read it
    checkpoint = load_checkpoint(tiny_checkpoint)
    stepped = SamplingEngine(None, checkpoint.tokenizer, Stepper(checkpoint.model))  # no model: prompts are stepped
    expected = texts(stepped.stream(long_prompt, 30, seed=4), 1)
    assert len(expected[0]) == 30
    assert texts(sampler.engine(tiny_checkpoint).stream(long_prompt, 30, seed=4), 1) == expected
    with open(f"/proc/{sampler.pid}/maps") as maps:
        assert "libtorch" not in maps.read()
