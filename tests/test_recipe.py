"""The --time-budget recipe: the rule's choices and their monotonicity, flags given winning, the choice printed and
stored so that the run repeats, and resume keeping it. Speeds are made up (the rule is a function of them); the
runs train tiny models on the tiny corpus."""

import json
import shlex
import time

import pytest

from charrnn.checkpoint.saving import load_checkpoint
from charrnn.cli.train import main
from charrnn.config import TrainConfig, count_params
from charrnn.train import recipe as rule
from charrnn.train.recipe import (MIN_HIDDEN, NEAR, RECIPE_FIELDS, SpeedModel, choose, params_of, recipe_fields,
                                  sized, useful_epochs)
from charrnn.train.run_folder import RECIPE

SHAKESPEARE = 1_003_854  # Tiny Shakespeare's training characters
VOCAB = 66


def flops_bound(chars_per_s_at_512: float, overhead_s: float = 0.0) -> SpeedModel:
    """A device whose time per character grows with the parameters (as arithmetic-bound CPUs and big models on a
    GPU do), after a fixed overhead per character (small models on a GPU)."""
    reference = params_of(512, "lstm", VOCAB, 64)
    seconds = 1 / chars_per_s_at_512
    return SpeedModel({p: 1 / (overhead_s + (seconds - overhead_s) * p / reference)
                       for p in (params_of(h, "lstm", VOCAB, 64) for h in (128, 512, 1024))})


def recipe_for(minutes: float, speed: SpeedModel, corpus: int = SHAKESPEARE, **kwargs):
    return choose(minutes * 60, corpus, speed, "lstm", VOCAB, 64, **kwargs)


CPU = flops_bound(10_000)  # this project's 2-core CPU: ~10k chars/s for 2 x 512 at batch 16 x 64
SLOW_CPU = flops_bound(2_220)  # issue 28's AVX2 CPU
GPU = flops_bound(2_000_000, overhead_s=2e-7)  # an H200 at batch 256


def test_a_longer_budget_or_a_faster_device_never_chooses_less():
    budgets = [0.05, 0.2, 0.5, 1, 2, 3, 5, 7, 10, 15, 20, 30, 45, 60, 120, 240, 600]
    devices = [flops_bound(speed) for speed in (500, 2_000, 5_000, 10_000, 30_000, 100_000, 1_000_000)]
    for corpus in (2_000, 200_000, SHAKESPEARE, 30_000_000):
        def settings(minutes, speed, corpus=corpus):
            r = recipe_for(minutes, speed, corpus)
            return r.hidden, r.dropout, r.input_dropout, r.pressure

        for speed in devices:  # longer budgets on one device
            chosen = [settings(minutes, speed) for minutes in budgets]
            for name, column in zip(("hidden", "dropout", "input dropout", "pressure"), zip(*chosen)):
                assert list(column) == sorted(column), (name, corpus, column)
        for minutes in budgets:  # faster devices for one budget
            chosen = [settings(minutes, speed) for speed in devices]
            for name, column in zip(("hidden", "dropout", "input dropout", "pressure"), zip(*chosen)):
                assert list(column) == sorted(column), (name, corpus, minutes, column)


def test_a_slow_cpu_on_a_large_text_gets_a_model_it_can_train_without_dropout():
    # Issue 28: 2 x 512 read a fifth of a 3.3M-character text in 10 minutes on this CPU.
    slow = recipe_for(10, SLOW_CPU, corpus=3_300_000)
    assert MIN_HIDDEN <= slow.hidden < 512 and slow.dropout == slow.input_dropout == 0.0
    assert slow.chars >= rule.CHARS_PER_PARAM * slow.params * 0.9  # each parameter gets its characters
    assert recipe_for(10, CPU).hidden > slow.hidden


def test_many_epochs_get_more_dropout_and_a_size_the_text_can_feed():
    cpu, gpu = recipe_for(10, CPU), recipe_for(5, GPU)
    assert gpu.hidden > cpu.hidden and gpu.dropout > cpu.dropout and gpu.input_dropout > cpu.input_dropout
    assert gpu.epochs > 100 and (gpu.dropout, gpu.input_dropout) == (0.5, 0.2)
    # The repeats of a text are worth at most 1 + R readings: however long the budget, the size stops growing
    # where those would no longer give each parameter its characters.
    ceiling = SHAKESPEARE * (1 + rule.REPEATS_WORTH) / rule.CHARS_PER_PARAM
    assert recipe_for(600, GPU).params <= ceiling < params_of(recipe_for(600, GPU).hidden + 32, "lstm", VOCAB, 64)
    assert useful_epochs(1) == 1 and useful_epochs(1e9) == pytest.approx(1 + rule.REPEATS_WORTH)


def test_the_size_stops_at_the_step_limit_and_the_memory():
    limited = recipe_for(10, CPU, max_chars=200_000)
    assert limited.chars <= 200_000 and limited.hidden < recipe_for(10, CPU).hidden
    assert recipe_for(600, GPU, corpus=10**9, max_hidden=700).hidden <= 700


def test_a_measured_speed_never_makes_a_bigger_model_faster():
    noisy = SpeedModel({1_000_000: 40_000, 2_000_000: 50_000, 3_000_000: 10_000})  # the middle one ran alone
    times = [noisy.seconds_per_char(p) for p in range(500_000, 6_000_000, 100_000)]
    assert times == sorted(times)


def test_sizing_measures_the_default_then_each_choice_until_it_is_near_a_measured_size():
    measured = []

    def measure(hidden):
        measured.append(hidden)
        return 1 / CPU.seconds_per_char(params_of(hidden, "lstm", VOCAB, 64))

    recipe = sized(600, SHAKESPEARE, measure, "lstm", VOCAB, 64)
    assert measured[0] == 512 and len(measured) <= rule.MAX_PROBES and set(recipe.speeds) == set(measured)
    assert any(abs(recipe.hidden - h) <= NEAR * h for h in measured)
    assert recipe.hidden == recipe_for(10, CPU).hidden


def test_what_the_recipe_chooses_leaves_out_what_was_given():
    timed = TrainConfig(dataset=["x"], time_budget=5)
    assert recipe_fields(timed, {}) == RECIPE_FIELDS
    assert recipe_fields(timed, {"dropout": 0.3, "embedding": 32}) == ("layers", "hidden", "input_dropout")
    for size in ("layers", "hidden", "params", "tie_weights"):  # the person chose the model
        assert recipe_fields(timed, {size: 1}) == ()
    assert recipe_fields(TrainConfig(dataset=["x"]), {}) == ()  # no budget: the defaults
    assert recipe_fields(TrainConfig(resume="run", time_budget=5), {}) == ()  # resume keeps the run's own


@pytest.fixture
def made_up_speed(monkeypatch):
    """Every shape measures at a speed that makes the tiny corpus's recipe a tiny model, in no time."""
    calls = []

    def speed(cfg, hidden, *args):
        calls.append(hidden)
        return 2e8 / count_params(cfg.cell, hidden, VOCAB, cfg.embedding, 2)

    monkeypatch.setattr("charrnn.train.probe.step_speed", speed)
    return calls


def budget_args(dataset, out, *extra):
    return ["--dataset", str(dataset), "--time-budget", "0.01", "--embedding", "16", "--batch-size", "4",
            "--seq-len", "16", "--warmup-steps", "2", "--eval-interval", "10", "--log-interval", "5", "--no-progress",
            "--out", str(out), *map(str, extra)]


def test_a_budget_run_prints_and_stores_its_recipe_and_the_stored_command_repeats_it(text_file, tmp_path, capsys,
                                                                                       made_up_speed):
    run = tmp_path / "run"
    summary = main(budget_args(text_file, run, "--max-steps", "100000"))
    err = capsys.readouterr().err
    stored = json.loads((run / RECIPE).read_text())
    chosen = stored["chosen"]
    assert set(chosen) == set(RECIPE_FIELDS) and made_up_speed[0] == rule.SHORT_REFERENCE  # a short budget
    assert "recipe for 0.01 minutes on this cpu" in err and stored["flags"] in err
    assert all(reason in err for reason in stored["reasons"])
    assert "epochs" in stored["reasons"][1] and "dropout" in stored["reasons"][2]
    meta = load_checkpoint(run / "best").meta
    assert {name: meta["training"][name] for name in chosen} == chosen  # the run trained what it chose
    assert meta["command"].endswith(stored["flags"]) and stored["command"] == meta["command"]
    assert load_checkpoint(run / "best").model.config.hidden_size == chosen["hidden"]
    # The stored command, with the steps and schedule the budget gave, trains the same weights: measuring drew
    # nothing from the run's random numbers, and with the size given no recipe is made again.
    made_up_speed.clear()
    again = shlex.split(meta["command"])[3:]
    again[again.index("--out") + 1] = str(tmp_path / "again")
    del again[again.index("--time-budget"):again.index("--time-budget") + 2]  # the steps the budget gave instead
    main([*again, "--max-steps", str(summary["steps"]), "--schedule-steps", str(summary["schedule_steps"])])
    assert made_up_speed == [] and not (tmp_path / "again" / RECIPE).exists()
    first, second = (load_checkpoint(path / "last").model.state_dict() for path in (run, tmp_path / "again"))
    assert all((first[name] == second[name]).all() for name in first)


def test_flags_given_win_over_the_recipe(text_file, tmp_path, made_up_speed):
    main(budget_args(text_file, tmp_path / "dropout", "--dropout", "0.05"))
    stored = json.loads((tmp_path / "dropout" / RECIPE).read_text())
    assert "dropout" not in stored["chosen"] and "hidden" in stored["chosen"]
    assert load_checkpoint(tmp_path / "dropout" / "best").meta["training"]["dropout"] == 0.05
    made_up_speed.clear()
    main(budget_args(text_file, tmp_path / "sized", "--hidden", "24"))
    assert made_up_speed == [] and not (tmp_path / "sized" / RECIPE).exists()
    training = load_checkpoint(tmp_path / "sized" / "best").meta["training"]
    assert (training["hidden"], training["layers"], training["dropout"]) == (24, 2, 0.1)  # the defaults


def test_resume_keeps_the_recipe_of_the_run(text_file, tmp_path, made_up_speed, monkeypatch):
    run = tmp_path / "run"
    first = main(budget_args(text_file, run, "--max-steps", "100000"))
    chosen = json.loads((run / RECIPE).read_text())["chosen"]
    monkeypatch.setattr("charrnn.train.probe.step_speed", lambda *args: pytest.fail("measured again on resume"))
    resumed = main(["--resume", str(run), "--time-budget", "0.02", "--out", str(tmp_path / "fork"), "--no-progress"])
    assert resumed["steps"] > first["steps"]
    training = load_checkpoint(tmp_path / "fork" / "last").meta["training"]
    assert {name: training[name] for name in chosen} == chosen
    assert json.loads((tmp_path / "fork" / RECIPE).read_text())["chosen"] == chosen  # the record came along


def test_the_time_spent_measuring_counts_in_the_budget(text_file, tmp_path, monkeypatch):
    def slow_speed(cfg, hidden, *args):
        time.sleep(0.2)
        return 2e8 / count_params(cfg.cell, hidden, VOCAB, cfg.embedding, 2)

    monkeypatch.setattr("charrnn.train.probe.step_speed", slow_speed)
    run = tmp_path / "run"
    args = budget_args(text_file, run, "--max-steps", "100000", "--log-interval", "1")
    args[args.index("--time-budget") + 1] = "0.03"
    summary = main(args)
    probe = json.loads((run / RECIPE).read_text())["probe_seconds"]
    first_log = next(r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
                     if r["event"] == "train")
    assert probe >= 0.2 and first_log["elapsed_s"] >= probe  # the run's clock started with the measuring in it
    assert summary["stopped"] == "time_budget" and summary["wall_s"] < 1.8 + 1.0
