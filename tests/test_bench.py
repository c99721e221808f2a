"""`charrnn bench`: the device benchmark's code path, run on the CPU with tiny shapes (--quick)."""

import json

import pytest
import torch

from charrnn.bench.tables import TINY_SHAPES
from charrnn.cli.bench import main
from charrnn.checkpoint.saving import load_checkpoint
from charrnn.device import bf16_supported
from charrnn.sampling.stepper import Stepper


def table_rows(printed: str, first_cell: str) -> list[list[str]]:
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in printed.splitlines()
            if line.startswith("|")]
    return [row for row in rows if row[0].startswith(first_cell)]


def test_quick_bench_prints_the_training_and_sampling_tables_and_their_json(capsys):
    results = main(["--device", "cpu", "--quick"])
    printed = capsys.readouterr().out
    assert printed.startswith("charrnn bench on cpu: ")
    assert json.loads(printed.strip().splitlines()[-1]) == results
    precisions = ["fp32", "bf16"] if bf16_supported(torch.device("cpu")) else ["fp32"]
    training = [row for shape in TINY_SHAPES for row in table_rows(printed, shape.model)
                if row[1] == f"{shape.batch} x {shape.seq_len}"]
    assert [(row[0], row[1], row[2]) for row in training] == [
        (shape.model, f"{shape.batch} x {shape.seq_len}", precision)
        for shape in TINY_SHAPES for precision in precisions]
    for row in training:  # charrnn chars/s, the plain loop's, their ratio
        assert int(row[3].replace(",", "")) > 0 and int(row[4].replace(",", "")) > 0 and row[5].startswith("x")
    sampling = table_rows(printed, "charrnn streaming") + table_rows(printed, "naive")
    assert [int(row[1]) for row in sampling] == [1, 4, 1, 4]
    assert all(row["chars_s"] > 0 for row in results["sampling"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a GPU")
def test_bench_on_a_missing_gpu_says_so(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--device", "cuda", "--quick"])
    assert exit_info.value.code == 2
    assert "no CUDA GPU is available" in capsys.readouterr().err


def test_the_visitors_bench_times_loops_and_the_engine_alone_and_beside_busy_python(tiny_checkpoint, capsys):
    from charrnn.cli import bench_visitors as visitors

    figures = visitors.main(["--checkpoint", str(tiny_checkpoint), "--visitors", "4", "--chars", "30",
                             "--rounds", "1"])
    printed = capsys.readouterr().out
    ways = {"loops", "engine"} | ({"engine-half"} if figures["precision"] == "bf16" else set())
    assert set(figures["chars_per_s"]) == {f"{way} {mode}" for way in ways for mode in ("alone", "busy")}
    assert figures["precision"] == Stepper(load_checkpoint(tiny_checkpoint).model).precision
    assert all(speed > 0 for speed in figures["chars_per_s"].values())
    assert "beside busy Python" in printed and json.loads(printed.strip().splitlines()[-1]) == figures


def test_the_visitors_bench_refuses_sizes_out_of_range(capsys):
    from charrnn.cli import bench_visitors as visitors

    with pytest.raises(SystemExit) as exit_info:
        visitors.main(["--visitors", "0"])
    assert exit_info.value.code == 2 and "--visitors" in capsys.readouterr().err


def test_the_bench_names_the_kernels_this_cpu_gets_and_an_avx2_cpu_gets_narrower_tiles():
    import os
    import subprocess
    import sys

    from charrnn.sampling.stepper import kernel_choice
    from tests.conftest import ROOT

    assert kernel_choice().startswith(("AVX-512", "AVX2", "NEON", "generic"))
    avx2 = {**os.environ, "NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "+avx2,+fma,+f16c,-avx512f"}
    shown = subprocess.run([sys.executable, "-c", "from charrnn.sampling.stepper import kernel_choice; "
                            "print(kernel_choice())"], cwd=ROOT, env=avx2, capture_output=True, text=True, check=True)
    assert shown.stdout.startswith("AVX2: products in tiles of 4 weight rows x 2 batch rows of 8-float vectors")


def test_the_inside_bench_times_each_view_against_a_forward_and_backward_pass(capsys):
    from charrnn.cli.bench_inside import main as inside_main

    rows = inside_main(["--chars", "150", "--repeats", "1"])
    assert [row["view"] for row in rows] == ["surprise", "neurons", "gradient flow", "gates"]
    for row in rows:
        assert row["view_s"] > 0 and row["forward_backward_s"] > 0
        view, base = row["view_s"], row["forward_backward_s"]  # rounded to the millisecond: so is their ratio
        assert row["ratio"] == pytest.approx(view / base, abs=0.01 + view / base * (0.0005 / view + 0.0005 / base))
    out = capsys.readouterr().out
    assert "fwd+bwd s" in out and json.loads(out.strip().splitlines()[-1])["views"] == rows
    with pytest.raises(SystemExit):
        inside_main(["--chars", "10"])


def test_the_load_test_sets_what_the_app_served_beside_what_the_engine_alone_writes(tiny_checkpoint):
    from tools.stress.load import serving_share

    figures = {"generated_chars_per_s": 100, "latency_s": {"generate": {"p95": 1.5}}}
    serving_share(figures, tiny_checkpoint, clients=3, length=20)
    serving = figures["serving"]
    assert serving["engine_alone_chars_per_s"] > 0 and serving["generate_p95_s"] == 1.5
    assert serving["served_over_engine_alone"] == pytest.approx(100 / serving["engine_alone_chars_per_s"], abs=0.011)


def test_the_recipe_bench_trains_the_fixed_model_and_the_recipe_and_prints_both(text_file, tmp_path, capsys):
    from charrnn.cli import bench_recipe

    figures = bench_recipe.main(["--dataset", str(text_file), "--time-budget", "0.05", "--keep", str(tmp_path),
                                 "--batch-size", "4", "--seq-len", "16", "--embedding", "16", "--warmup-steps", "2"])
    printed = capsys.readouterr().out
    fixed, recipe = figures["runs"]
    assert (fixed["run"], fixed["model"], fixed["dropout"]) == ("fixed 2 x 512", "2 x 512", 0.1)
    assert recipe["run"] == "recipe" and (tmp_path / "recipe" / "recipe.json").is_file()
    assert not (tmp_path / "fixed-2-x-512" / "recipe.json").exists()
    for result in (fixed, recipe):
        assert result["steps"] > 0 and result["val_nats"] > 0
        assert table_rows(printed, result["run"])[0][1] == result["model"]
    assert json.loads(printed.strip().splitlines()[-1]) == figures


def test_the_recipe_bench_refuses_a_size_for_both_runs(text_file, capsys):
    from charrnn.cli import bench_recipe

    with pytest.raises(SystemExit):
        bench_recipe.main(["--dataset", str(text_file), "--time-budget", "0.02", "--hidden", "64"])
    assert "--hidden would size the recipe's run too" in capsys.readouterr().err
