"""Visitors sampling the same model at once share steps, and each still gets exactly its own text."""

import threading

import numpy as np

from charrnn.checkpoint import load_checkpoint
from charrnn.sample import SamplingSettings, stream
from charrnn.service.batching import CombiningStepper
from charrnn.stepper import Stepper


def sample(checkpoint, stepper, seed, length=60, num_samples=1):
    pieces = stream(checkpoint.model, checkpoint.tokenizer, "All:\n", length, SamplingSettings(0.9), seed,
                    num_samples, stepper=stepper)
    return ["".join(p) for p in zip(*pieces)]


def test_concurrent_streams_are_batched_and_match_their_solo_runs(tiny_checkpoint):
    checkpoint = load_checkpoint(tiny_checkpoint)
    alone = {seed: sample(checkpoint, Stepper(checkpoint.model), seed, num_samples=1 + seed % 2) for seed in range(8)}
    shared = CombiningStepper(Stepper(checkpoint.model))
    together, start = {}, threading.Barrier(8)

    def run(seed):
        start.wait()
        together[seed] = sample(checkpoint, shared, seed, num_samples=1 + seed % 2)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert together == alone
    assert shared.batches < shared.rows  # some steps really carried several streams


def test_an_error_in_a_batch_reaches_its_callers_and_the_next_batch_runs(tiny_checkpoint):
    checkpoint = load_checkpoint(tiny_checkpoint)
    shared = CombiningStepper(Stepper(checkpoint.model))
    hidden = shared.to_numpy(checkpoint.model.init_hidden(1))
    bad_token = np.array([10 ** 6])  # out of the vocabulary: the table lookup fails
    try:
        shared.step(bad_token, hidden)
        raise AssertionError("expected an IndexError")
    except IndexError:
        pass
    logits, _ = shared.step(np.array([1]), hidden)
    assert logits.shape == (1, checkpoint.tokenizer.vocab_size)
