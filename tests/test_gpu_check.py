"""The one GPU check (tools/gpu_check), on this CPU: it stops at once without a GPU, runs its measured parts with tiny
sizes in a dry run, stages its text where git will not commit it; and what it runs works without `datasets` and
`gradio`, which the GPU machine does not have."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from tests.conftest import ROOT, TINY_TEXT


def check(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.gpu_check", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=timeout)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a GPU")
def test_without_a_gpu_the_check_says_so_and_stops_at_once():
    result = check()
    assert result.returncode == 2
    assert "no CUDA GPU here" in result.stderr and "--dry-run" in result.stderr


def test_a_dry_run_measures_each_part_and_writes_the_table_to_out(tmp_path):
    out = tmp_path / "out"
    result = check("--dry-run", "--only", "profile,resume", "--deadline", "100", env={"OUT": str(out)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    parts = {part["part"]: part for part in json.loads((out / "gpu_check.json").read_text())}
    assert list(parts) == ["environment", "profile", "resume"]
    assert all(part["status"] == "ok" for part in parts.values())
    profile = parts["profile"]["details"]
    assert [row["variant"] for row in profile["variants"]][-1].startswith("plain")
    phases = {row["phase"]: row for row in profile["profile"]["rows"]}
    assert all(phases[name]["device_ms"] > 0 for name in ("forward", "backward", "clip", "optimizer"))
    for row in parts["resume"]["details"]["rows"]:  # on a CPU a resumed run is bit for bit, with or without the flag
        assert row["resumed"] == 0.0 and row["between_straight_runs"] == 0.0 and row["passed"]
    table = (out / "gpu_check.md").read_text()
    assert "| part | status | seconds | result |" in table and "| phase | device ms |" in table
    assert result.stdout.rstrip().splitlines()[-1].startswith("| resume | ok |")  # the summary table comes last
    assert (out / "profile_trace.json.gz").stat().st_size > 0 and (out / "gpu_check.log").is_file()


def test_staging_puts_the_text_in_a_folder_git_ignores(tmp_path, monkeypatch):
    from tools.gpu_check import __main__ as gpu_check
    from tools.gpu_check.runner import staged_text

    source = tmp_path / "input.txt"
    source.write_text(TINY_TEXT)
    target = tmp_path / "data" / "gpu-check" / "tinyshakespeare.txt"
    monkeypatch.setattr(gpu_check, "staged_text", lambda: target)
    monkeypatch.setattr(gpu_check, "IMPORT_ROOT", tmp_path)
    assert gpu_check.main(["--stage", str(source)]) == 0
    assert target.read_text() == TINY_TEXT
    ignored = subprocess.run(["git", "check-ignore", "-q", str(staged_text().relative_to(ROOT))], cwd=ROOT)
    assert ignored.returncode == 0  # never committed, and the device call carries it by name


BLOCKER = """
import importlib.abc, sys

class Absent(importlib.abc.MetaPathFinder):
    # The GPU machine has neither package: importing one fails, as it would there.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("datasets", "gradio"):
            raise ImportError(f"{name} is not installed here")

sys.meta_path.insert(0, Absent())
"""


def test_training_sampling_and_scoring_a_text_file_never_import_datasets_or_gradio(text_file, tmp_path):
    script = BLOCKER + textwrap.dedent(f"""
        import json
        import tools.gpu_check.__main__, tools.gpu_check.profile, tools.gpu_check.resume, tools.gpu_check.sampling
        import charrnn.cli.bench
        from charrnn.cli import evaluate, sample, train
        summary = train.main(["--dataset", {str(text_file)!r}, "--hidden", "16", "--embedding", "8", "--batch-size",
                              "4", "--seq-len", "16", "--max-steps", "4", "--eval-interval", "2", "--no-progress",
                              "--device", "cpu", "--out", {str(tmp_path / "run")!r}])
        sample.main(["--checkpoint", {str(tmp_path / "run" / "best")!r}, "--length", "20", "--num-samples", "4"])
        evaluate.main(["--checkpoint", {str(tmp_path / "run" / "best")!r}, "--dataset", {str(text_file)!r}])
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("datasets", "gradio"))))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=180,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1]) == []
