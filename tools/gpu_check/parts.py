"""The check's parts, each run in a process of its own: the GPU tests (pytest), `charrnn bench`, the profile, the
resume figures and the sampling figures (this package's own modules, run as `--part NAME`), and the recipe run
(`charrnn train --time-budget`). Each returns a Result; none raises."""

from __future__ import annotations

import json
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from tools.gpu_check.runner import Deadline, Finished, Result, last_json_line, python_module, run_command

GPU_TESTS = "tests/test_gpu.py"
RECIPE_MINUTES = 5.0  # the budget for Tiny Shakespeare on one GPU
RECIPE_TARGET = 1.38  # nats per character on the last 10%, the target for that run
RECIPE_MARGIN = 30.0  # seconds a recipe run takes beyond its budget: start-up, the corpus, the final scoring


@dataclass(frozen=True)
class Setting:
    """What every part is told."""

    device: str  # cuda, or cpu for a dry run
    tiny: bool  # tiny sizes: a check of the code path, not figures
    text: Path  # the training text (Tiny Shakespeare, staged; a generated one in a dry run)
    out: Path | None  # where the trace goes ($OUT), if anywhere
    recipe_minutes: float


def stopped(part: str, finished: Finished, limit: float) -> Result | None:
    """A Result for a process that did not finish well, else None."""
    if finished.returncode is None:
        return Result(part, "timed out", finished.seconds, f"stopped after its {limit:.0f} s")
    if finished.returncode != 0:
        tail = finished.output.strip().splitlines()[-1:] or [""]
        return Result(part, "failed", finished.seconds, f"exit code {finished.returncode}: {tail[0][:200]}")
    return None


def tests(setting: Setting, limit: float, log: TextIO) -> Result:
    """tests/test_gpu.py under pytest (its tests skip without CUDA): passed, failed and skipped, by name."""
    report = Path(tempfile.mkdtemp()) / "junit.xml"
    finished = run_command(python_module("pytest", "-q", "-p", "no:cacheprovider", "-rfEs", f"--junitxml={report}",
                                         GPU_TESTS), limit, log,
                           env={"CUBLAS_WORKSPACE_CONFIG": ":4096:8"})  # before cuBLAS starts, for --deterministic
    if finished.returncode is None or not report.exists():
        return stopped("tests", finished, limit) or Result("tests", "failed", finished.seconds, "no report")
    outcomes, messages = {}, {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        found = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        kind = "passed" if found is None else {"failure": "failed", "error": "failed"}.get(found.tag, found.tag)
        outcomes[case.get("name")] = kind
        if kind == "failed":
            messages[case.get("name")] = (found.get("message") or "")[:500]
    counts = {kind: sum(1 for v in outcomes.values() if v == kind) for kind in ("passed", "failed", "skipped")}
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) + (f": {', '.join(messages)}" if messages
                                                                             else "")
    return Result("tests", "failed" if messages or finished.returncode not in (0, 5) else "ok", finished.seconds,
                  summary, {"counts": counts, "outcomes": outcomes, "failures": messages})


def sampler_name(row_name: str) -> str:
    """The bench's sampling rows, in a word: charrnn's sampler stepping on the CPU or the GPU, or the naive loop."""
    if row_name.startswith("naive"):
        return "naive"
    return "cpu" if "the CPU" in row_name else "gpu"


def bench(setting: Setting, limit: float, log: TextIO) -> Result:
    """`charrnn bench --device D --quick`: charrnn / plain at every shape, and sampling speeds."""
    finished = run_command(python_module("charrnn", "bench", "--device", setting.device, "--quick"), limit, log)
    line = last_json_line(finished.output)
    if (problem := stopped("bench", finished, limit)) or line is None:
        return problem or Result("bench", "failed", finished.seconds, "no JSON line")
    figures = json.loads(line)
    ratios = [f"{r['model']} b{r['batch']} {r['precision']} x{r['charrnn_chars_s'] / max(r['plain_chars_s'], 1):.2f}"
              for r in figures["training"]]
    sampling = [f"{sampler_name(r['sampler'])} x{r['samples']} {r['chars_s']:,}" for r in figures["sampling"]]
    return Result("bench", "ok", finished.seconds, "charrnn/plain " + ", ".join(ratios) + "; sampling chars/s: "
                  + ", ".join(sampling), figures)


def measured(name: str):
    """A part measured by this package's module `name` (profile, resume, sampling), in a process of its own."""

    def part(setting: Setting, limit: float, log: TextIO) -> Result:
        result_file = Path(tempfile.mkdtemp()) / f"{name}.json"
        finished = run_command(python_module("tools.gpu_check", "--part", name, "--device", setting.device,
                                             "--text", str(setting.text), "--result", str(result_file),
                                             *(["--tiny"] if setting.tiny else []),
                                             *(["--out", str(setting.out)] if setting.out else [])), limit, log,
                               env={"CUBLAS_WORKSPACE_CONFIG": ":4096:8"})
        if (problem := stopped(name, finished, limit)) or not result_file.exists():
            return problem or Result(name, "failed", finished.seconds, "no result")
        figures = json.loads(result_file.read_text())
        status = "ok" if figures.get("passed", True) else "failed"
        return Result(name, status, finished.seconds, figures["summary"], figures["details"], figures["tables"])

    return part


def recipe(setting: Setting, limit: float, log: TextIO) -> Result:
    """`charrnn train --dataset <Tiny Shakespeare> --time-budget M`, with M shortened to the time left (and said)."""
    minutes = min(setting.recipe_minutes, (limit - RECIPE_MARGIN) / 60)
    if minutes < min(1.0, setting.recipe_minutes):
        return Result("recipe", "skipped", 0.0, f"{limit:.0f} s left: too little for a run")
    out = Path(tempfile.mkdtemp()) / "recipe"
    finished = run_command(python_module("charrnn", "train", "--dataset", str(setting.text), "--time-budget",
                                         f"{minutes:.2f}", "--device", setting.device, "--no-progress", "--out",
                                         str(out)), limit, log)
    line = last_json_line(finished.output)
    if (problem := stopped("recipe", finished, limit)) or line is None:
        return problem or Result("recipe", "failed", finished.seconds, "no summary line")
    figures = json.loads(line)
    shortened = "" if minutes == setting.recipe_minutes else f" (budget shortened to {minutes:.2f} min)"
    verdict = "meets" if figures["val_nats"] <= RECIPE_TARGET else "misses"
    summary = (f"{figures['val_nats']} nats/char, {verdict} <= {RECIPE_TARGET}; best at step {figures['best_step']:,} "
               f"of {figures['steps']:,}, {figures['chars_per_s']:,} chars/s{shortened}")
    return Result("recipe", "ok", finished.seconds, summary, {**figures, "time_budget_min": round(minutes, 2)})


# In the order they run, with each one's time limit in seconds (a GPU's; a dry run's are the same, and unused).
PARTS = {"tests": (tests, 150), "bench": (bench, 120), "profile": (measured("profile"), 75),
         "resume": (measured("resume"), 90), "sampling": (measured("sampling"), 60), "recipe": (recipe, 600)}


def run_part(name: str, setting: Setting, deadline: Deadline, log: TextIO) -> Result:
    function, seconds = PARTS[name]
    limit = deadline.limit(seconds)
    if limit < 10:
        return Result(name, "skipped", 0.0, "the check's deadline came first")
    print(f"\n=== {name} (at most {limit:.0f} s) ===", flush=True)
    log.write(f"\n=== {name} ===\n")
    return function(setting, limit, log)
