import copy
import json
import math

import numpy as np
import pytest
import torch
from numba.core.registry import CPUDispatcher

from charrnn.sampling import kernels
from charrnn.checkpoint.saving import load_checkpoint
from charrnn.errors import CharRNNError
from charrnn.cli.sample import main
from charrnn.sampling.generate import (PROMPT_CHUNK, STEPPED_PROMPT, Samples, SamplingSettings, draw_tokens,
                                       encode_prompt, generate, next_token_probabilities, prime, stream)
from charrnn.device import CUDA_SAMPLING_ROWS, pick_device, sampling_device
from charrnn.sampling.stepper import Stepper
from charrnn.sampling.torch_stepper import TorchStepper
from tests.conftest import TINY_TEXT


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint):
    checkpoint = load_checkpoint(tiny_checkpoint)
    return checkpoint.model, checkpoint.tokenizer


def test_the_same_seed_gives_the_same_text_and_another_seed_another(tiny):
    model, tokenizer = tiny
    first = generate(model, tokenizer, "All:", 80, temperature=1.0, seed=7)
    assert len(first) == 80
    assert generate(model, tokenizer, "All:", 80, temperature=1.0, seed=7) == first
    assert generate(model, tokenizer, "All:", 80, temperature=1.0, seed=8) != first


def test_greedy_top_k_1_and_a_tiny_top_p_agree(tiny):
    model, tokenizer = tiny
    greedy = generate(model, tokenizer, "First", 40, temperature=0)
    assert generate(model, tokenizer, "First", 40, temperature=1.0, top_k=1, seed=3) == greedy
    assert generate(model, tokenizer, "First", 40, temperature=1.0, top_p=1e-6, seed=4) == greedy


def test_filters_keep_the_right_tokens():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    top2 = next_token_probabilities(logits, SamplingSettings(temperature=1.0, top_k=2))
    np.testing.assert_allclose(top2, [[0.625, 0.375, 0, 0]])
    nucleus = next_token_probabilities(logits, SamplingSettings(temperature=1.0, top_p=0.75))
    np.testing.assert_allclose(nucleus, [[0.625, 0.375, 0, 0]])  # 0.5 + 0.3 is the smallest set reaching 0.75
    hot = next_token_probabilities(logits, SamplingSettings(temperature=2.0))
    assert hot[0, 3] > 0.05  # higher temperature flattens the distribution


def reference_probabilities(logits, temperature, top_k, top_p, banned=None):
    """The filtered distribution computed independently with torch, from the documented rules: top-k keeps
    the k largest logits and ties with the k-th; top-p keeps a token while the mass of the tokens strictly
    more likely than it is below p (so ties are kept or dropped together). Returns (probs, margin): how
    close a mass came to p, below which float rounding could decide a boundary."""
    z = torch.tensor(logits, dtype=torch.float64)
    if banned is not None:
        z[banned] = -math.inf
    if 0 < top_k < len(z):
        z = z.masked_fill(z < torch.topk(z, top_k).values[-1], -math.inf)
    probs = torch.softmax(z / temperature, dim=0)
    margin = math.inf
    if top_p < 1:
        ordered, order = torch.sort(probs, descending=True)
        _, group, counts = torch.unique_consecutive(ordered, return_inverse=True, return_counts=True)
        group_mass = ordered[torch.cumsum(counts, 0) - 1] * counts  # each group of equal probabilities
        before = (torch.cumsum(group_mass, 0) - group_mass)[group]  # mass of the strictly more likely groups
        keep = torch.empty_like(probs, dtype=torch.bool)
        keep[order] = before < top_p
        probs = torch.where(keep, probs, 0.0)
        probs /= probs.sum()
        margin = (before - top_p).abs().min().item()
    return probs.numpy(), margin


def tied_logits(rng, size):
    return (rng.integers(-6, 7, size) / 2).astype(np.float32)  # half-integers in [-3, 3]: many ties


def test_filters_match_an_independent_torch_reference_on_random_logits_with_ties():
    rng = np.random.default_rng(0)
    checked = 0
    for case in range(400):
        size = int(rng.choice([2, 7, 65]))
        logits = tied_logits(rng, size)
        settings = SamplingSettings(float(rng.choice([0.5, 1.0, 1.7])), int(rng.integers(0, size + 2)),
                                    float(rng.choice([1.0, 0.95, 0.7, 0.4, 0.1])))
        banned = int(rng.integers(size)) if case % 3 == 0 and size > 2 else None
        expected, margin = reference_probabilities(logits, settings.temperature, settings.top_k, settings.top_p, banned)
        if margin < 1e-9:
            continue  # a mass within rounding of p: either answer is right
        got = next_token_probabilities(logits[None], settings, banned)[0]
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, err_msg=f"case {case}: {settings}")
        checked += 1
    assert checked > 390


@pytest.mark.parametrize("settings", [SamplingSettings(1.0, top_k=5, top_p=0.6), SamplingSettings(0.7, top_p=0.5),
                                      SamplingSettings(1.3, top_k=3)])
def test_draws_have_the_reference_support_and_frequencies(settings):
    logits = np.array([2, 2, 1.5, 1.5, 1.5, 1, 0.5, 0.5, -1, -1], np.float32)  # ties at every boundary
    expected, margin = reference_probabilities(logits, settings.temperature, settings.top_k, settings.top_p, banned=2)
    assert margin > 1e-6
    rows = 40_000
    tokens = draw_tokens(np.tile(logits, (rows, 1)), settings, np.random.default_rng(1), banned=2)
    frequencies = np.bincount(tokens, minlength=len(logits)) / rows
    assert set(np.flatnonzero(frequencies)) == set(np.flatnonzero(expected))  # every kept token, and only those
    assert np.all(np.abs(frequencies - expected) <= 4 * np.sqrt(expected * (1 - expected) / rows) + 1e-9)


def test_kernels_never_assume_there_are_no_infinities_or_nans():
    # fastmath=True means LLVM's `fast`, which includes nnan and ninf: yet the draw masks with -inf, a sigmoid
    # can overflow exp to inf, and NaN scores must be noticed.
    for name, kernel in vars(kernels).items():
        if isinstance(kernel, CPUDispatcher):
            flags = kernel.targetoptions.get("fastmath", set())
            assert isinstance(flags, set) and not flags & {"fast", "nnan", "ninf"}, (name, flags)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_scores_are_an_error_that_names_them(bad):
    logits = np.array([[0.5, 1.0, 0.2], [0.5, bad, 0.2]], np.float32)
    for settings in (SamplingSettings(1.0), SamplingSettings(0.0), SamplingSettings(0.8, top_k=2, top_p=0.9)):
        with pytest.raises(CharRNNError, match="non-finite scores"):
            draw_tokens(logits, settings, np.random.default_rng(0))
        with pytest.raises(CharRNNError, match="non-finite scores"):
            next_token_probabilities(logits, settings)
    assert draw_tokens(logits[:1], SamplingSettings(1.0), np.random.default_rng(0))[0] in (0, 1, 2)


@pytest.mark.parametrize("settings", [SamplingSettings(1e-320), SamplingSettings(1e308), SamplingSettings(1.0, 10**30),
                                      SamplingSettings(1.0, top_p=1e-320)])
def test_extreme_but_valid_settings_still_sample(settings):
    logits = np.array([[0.5, 3.0, 0.2, -np.inf]], np.float32)
    probs = next_token_probabilities(logits, settings)[0]
    assert np.isfinite(probs).all() and probs.sum() == pytest.approx(1) and probs[3] == 0
    assert draw_tokens(logits, settings, np.random.default_rng(0))[0] in np.flatnonzero(probs)


def test_a_model_with_nan_weights_gives_a_clear_error_not_a_bogus_token(tiny):
    model, tokenizer = tiny
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.rnn.weight_hh_l0[0, 0] = math.nan  # as in a corrupt checkpoint
    with pytest.raises(CharRNNError, match="non-finite scores.*corrupt"):
        generate(broken, tokenizer, "All:", 5, seed=0)


def test_stream_leaves_the_model_in_the_mode_it_was_in(tiny):
    model, tokenizer = tiny
    settings = SamplingSettings(temperature=1.0)
    in_eval = "".join(p[0] for p in stream(model, tokenizer, "All:", 30, settings, seed=2))
    assert not model.training
    model.train()
    try:
        steps = stream(model, tokenizer, "All:", 30, settings, seed=2)
        first = next(steps)
        assert model.training
        assert first[0] + "".join(p[0] for p in steps) == in_eval  # the prompt is still read without dropout
        assert model.training
    finally:
        model.eval()


def test_a_long_prompt_is_read_in_chunks_and_gives_the_one_shot_next_token_distribution(tiny):
    model, tokenizer = tiny
    ids, _ = encode_prompt(tokenizer, TINY_TEXT * 2)
    with torch.no_grad():
        logits, _, _ = model(torch.from_numpy(ids[None]))  # the whole prompt at once
    one_shot = torch.softmax(logits[0, -1].double(), dim=0).numpy()
    stepper = Stepper(model, "float32")
    hidden = stepper.to_numpy(prime(model, ids[:-1], chunk=97))
    chunked, _ = stepper.step(ids[-1:], hidden)
    np.testing.assert_allclose(next_token_probabilities(chunked, SamplingSettings(1.0))[0], one_shot, atol=1e-5)


@pytest.mark.parametrize("length", [1, 2, STEPPED_PROMPT + 1, STEPPED_PROMPT + 2])
def test_a_short_prompt_is_stepped_a_longer_one_read_by_torch_and_both_give_the_one_shot_distribution(tiny, length):
    model, tokenizer = tiny
    prompt = (TINY_TEXT * 10)[:length]
    ids, _ = encode_prompt(tokenizer, prompt)
    with torch.no_grad():
        one_shot = torch.softmax(model(torch.from_numpy(ids[None]))[0][0, -1].double(), dim=0).numpy()
    stepper = Stepper(model, "float32")
    calls = []
    hook = model.rnn.register_forward_hook(lambda *args: calls.append(1))
    try:
        samples = Samples(model, tokenizer, stepper, prompt, 5, num_samples=2)
    finally:
        hook.remove()
    assert len(calls) == (0 if length - 1 <= STEPPED_PROMPT else 1)
    logits, _ = stepper.step(samples.tokens, samples.hidden)  # the prompt's last token: the first step
    for row in next_token_probabilities(logits, SamplingSettings(1.0)):
        np.testing.assert_allclose(row, one_shot, atol=1e-5)


def test_stream_reads_a_long_prompt_without_ever_running_it_all_at_once(tiny):
    model, tokenizer = tiny
    lengths = {"rnn": [], "head": []}
    hooks = [getattr(model, name).register_forward_hook(lambda m, args, out, name=name: lengths[name].append(
        args[0].shape[1])) for name in lengths]
    try:
        prompt = TINY_TEXT * (2 * PROMPT_CHUNK // len(TINY_TEXT) + 1)
        text = generate(model, tokenizer, prompt, 3, seed=0)
    finally:
        for hook in hooks:
            hook.remove()
    assert len(text) == 3
    assert sum(lengths["rnn"]) == len(prompt) - 1 and max(lengths["rnn"]) <= PROMPT_CHUNK
    assert lengths["head"] == []  # no logits for the prompt: the stepper computes the last position's


def test_the_unknown_token_is_never_sampled(tiny):
    model, tokenizer = tiny
    text = generate(model, tokenizer, "", 300, temperature=3.0, seed=0)
    assert "\ufffd" not in text and set(text) <= set(tokenizer.chars)


def test_stream_yields_one_character_per_step_and_stops_at_the_stop_string(tiny):
    model, tokenizer = tiny
    pieces = list(stream(model, tokenizer, "All:", 200, SamplingSettings(temperature=0.5), seed=1, stop="\n"))
    text = "".join(p[0] for p in pieces)
    assert all(len(p[0]) == 1 for p in pieces)
    assert text.endswith("\n") and text.count("\n") == 1


def test_batched_samples_differ(tiny):
    model, tokenizer = tiny
    texts = ["", "", ""]
    for pieces in stream(model, tokenizer, "All", 60, SamplingSettings(temperature=1.0), seed=5, num_samples=3):
        texts = [t + p for t, p in zip(texts, pieces)]
    assert all(len(t) == 60 for t in texts) and len(set(texts)) == 3


def test_unknown_prompt_characters_are_reported_not_fatal(tiny):
    model, tokenizer = tiny
    ids, unknown = encode_prompt(tokenizer, "All: 🎉 ψ")
    assert unknown == sorted(["🎉", "ψ"]) and len(ids) > 0
    assert len(generate(model, tokenizer, "🎉", 10, seed=0)) == 10  # nothing known: starts from a newline


@pytest.mark.parametrize("settings, message", [
    (dict(temperature=-0.1), "temperature must be >= 0"),
    (dict(top_p=0.0), "top-p must be in"),
    (dict(top_p=1.5), "top-p must be in"),
    (dict(top_k=-1), "top-k must be >= 0"),
])
def test_bad_sampling_settings_are_refused(settings, message):
    with pytest.raises(CharRNNError, match=message):
        SamplingSettings(**settings)


def test_sample_cli_streams_text_and_ends_with_a_json_line(tiny_checkpoint, capsys):
    main(["--checkpoint", str(tiny_checkpoint), "--prompt", "All:", "--length", "50", "--seed", "3"])
    out = capsys.readouterr().out.splitlines()
    figures = json.loads(out[-1])
    assert out[0].startswith("All:") and figures["chars"] == 50 and figures["chars_per_s"] > 0


def test_seed_minus_one_picks_a_random_seed_and_prints_it(tiny_checkpoint, capsys):
    main(["--checkpoint", str(tiny_checkpoint), "--prompt", "All:", "--length", "40", "--seed", "-1"])
    out = capsys.readouterr().out.splitlines()
    seed = json.loads(out[-1])["seed"]
    assert isinstance(seed, int) and seed >= 0
    main(["--checkpoint", str(tiny_checkpoint), "--prompt", "All:", "--length", "40", "--seed", str(seed)])
    assert capsys.readouterr().out.splitlines()[0] == out[0]  # the printed seed makes the same text again


@pytest.mark.parametrize("argv, message", [
    (["--temperature", "inf"], "temperature must be >= 0 and finite"),
    (["--temperature", "nan"], "temperature must be >= 0 and finite"),
    (["--temperature", "-1"], "temperature must be >= 0"),
    (["--temperature", "warm"], "invalid float value"),
    (["--top-p", "nan"], "top-p must be in"),
    (["--top-p", "0"], "top-p must be in"),
    (["--top-k", "-3"], "top-k must be >= 0"),
    (["--top-k", "2.5"], "invalid int value"),
    (["--length", "-5"], "--length must be >= 0"),
    (["--num-samples", "0"], "--num-samples must be in [1, 10000]"),
    (["--num-samples", "1000000000"], "--num-samples must be in [1, 10000]"),
    (["--seed", "-2"], "--seed must be >= 0, or -1"),
    (["--seed", "x"], "invalid int value"),
    (["--prompt", "caf\udce9"], "--prompt is not valid text"),  # a latin-1 byte in a UTF-8 command line
    (["--stop", "\ud800"], "--stop is not valid text"),
    (["--no-such-flag"], "unrecognized arguments"),
    (["--checkpoint", "no/such/folder"], "does not exist"),
    (None, "the following arguments are required: --checkpoint"),
])
def test_bad_command_lines_get_one_line_and_exit_code_2(tiny_checkpoint, capsys, argv, message):
    argv = [] if argv is None else ["--checkpoint", str(tiny_checkpoint), *argv]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("cuda, rows, name, expected", [
    (True, 1, "auto", "cpu"), (True, CUDA_SAMPLING_ROWS - 1, "auto", "cpu"), (True, CUDA_SAMPLING_ROWS, "auto", "cuda"),
    (True, 64, "auto", "cuda"), (False, 64, "auto", "cpu"), (True, 64, "cpu", "cpu"), (True, 1, "cuda", "cuda"),
])
def test_sampling_steps_on_a_gpu_for_many_samples_and_on_the_cpu_for_few(monkeypatch, cuda, rows, name, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert sampling_device(rows, name).type == expected
    if cuda:  # charrnn evaluate's --device auto: a GPU whenever there is one
        assert pick_device("auto").type == "cuda"


def test_the_sample_command_asks_the_rule_where_to_step_and_says_where_it_did(tiny_checkpoint, capsys, monkeypatch):
    from charrnn import device

    asked = []

    def rule(rows, name):
        asked.append((rows, name))
        return torch.device("cpu")

    monkeypatch.setattr(device, "sampling_device", rule)
    main(["--checkpoint", str(tiny_checkpoint), "--length", "5", "--num-samples", "8", "--seed", "1"])
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["device"] == "cpu"
    # Fewer samples than a GPU is worth, --device cpu and beam search (whatever --device says) step on the CPU
    # without asking: the rule needs torch, and the CPU's path runs without it.
    for extra in (["--num-samples", str(CUDA_SAMPLING_ROWS - 1)], ["--device", "cpu", "--num-samples", "8"],
                  ["--beam", "3", "--device", "cuda"]):
        main(["--checkpoint", str(tiny_checkpoint), "--length", "5", *extra])
    assert asked == [(8, "auto")]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a GPU")
def test_sampling_on_a_missing_gpu_says_so(tiny_checkpoint, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--checkpoint", str(tiny_checkpoint), "--device", "cuda"])
    assert exit_info.value.code == 2 and "no CUDA GPU is available" in capsys.readouterr().err


def test_the_torch_stepper_takes_back_the_state_it_keeps_on_a_gpu(tiny):
    # On a GPU the state stays there between steps, as a tensor; the step from it is the step from the array.
    model, _ = tiny
    stepper = TorchStepper(model)
    hidden = np.random.default_rng(0).normal(size=(stepper.state_size, 3, model.config.hidden_size)).astype(np.float32)
    tokens = np.array([1, 2, 3])
    (logits, after), (tensor_logits, tensor_after) = (stepper.step(tokens, state)
                                                      for state in (hidden, torch.from_numpy(hidden)))
    assert np.array_equal(logits, tensor_logits) and np.array_equal(after, tensor_after)
