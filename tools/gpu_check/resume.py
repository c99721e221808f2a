"""How far a resumed run lands from an uninterrupted one, beside how far two uninterrupted runs land from each other
(issue 28, section 3). tests/test_gpu.py asserts on these figures at tiny sizes; the check reports them at a size
a person trains.

Three runs of the same settings: two straight through, and one paused half-way (--steps-this-run) and resumed. Each
difference is the largest, over the trained weights and the moving average, of |a - b| / |a| (norms of whole
tensors): 0.0 is bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import torch

from charrnn.checkpoint.saving import load_checkpoint, load_training_state

STEPS = 24  # a run's length; the split run pauses at half of it


def trained_tensors(run: Path) -> dict[str, torch.Tensor]:
    """The weights last/ holds and the moving average in its training state."""
    tensors = {f"weights.{k}": v for k, v in load_checkpoint(run / "last").model.state_dict().items()}
    ema = load_training_state(run / "last").get("ema", {})
    tensors.update({f"average.{k}": v for k, v in ema.items() if v.is_floating_point()})
    return tensors


def difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The largest relative difference of two runs' tensors (0.0: the same bits)."""
    assert a.keys() == b.keys()
    worst = 0.0
    for name in a:
        x, y = a[name].double(), b[name].double()
        if not torch.equal(x, y):
            worst = max(worst, ((x - y).norm() / x.norm().clamp_min(1e-30)).item())
    return worst


def resume_differences(train, text: Path, folder: Path, flags: list[str]) -> dict:
    """`train` (charrnn.cli.train.main) run three times with `flags` on `text` in `folder`: the differences of a
    second straight run and of a paused-and-resumed one from the first straight run."""
    common = ["--dataset", str(text), "--max-steps", str(STEPS), "--eval-interval", str(STEPS // 3), "--no-progress",
              *flags]
    train([*common, "--out", str(folder / "straight")])
    train([*common, "--out", str(folder / "again")])
    train([*common, "--out", str(folder / "split"), "--steps-this-run", str(STEPS // 2)])
    train(["--resume", str(folder / "split"), "--no-progress"])
    straight = trained_tensors(folder / "straight")
    return {"between_straight_runs": difference(straight, trained_tensors(folder / "again")),
            "resumed": difference(straight, trained_tensors(folder / "split"))}


def run(device: torch.device, tiny: bool, text: Path, workdir: Path) -> dict:
    """The check's resume part: bf16 and fp16 on a GPU (fp32 on a CPU), without and with --deterministic."""
    from charrnn.cli.train import main

    size = (["--hidden", "32", "--embedding", "16", "--batch-size", "4", "--seq-len", "16"] if tiny else
            ["--hidden", "512", "--batch-size", "64", "--seq-len", "64", "--eval-tokens", "8192"])
    regularised = ["--dropout", "0.2", "--input-dropout", "0.1", "--weight-drop", "0.2"]
    precisions = ["bf16", "fp16"] if device.type == "cuda" else ["fp32"]
    rows = []
    # Without --deterministic first: the flag switches torch's deterministic kernels on for the rest of the process.
    for deterministic in (False, True):
        for precision in precisions:
            name = f"{precision}{' deterministic' if deterministic else ''}"
            flags = [*size, *regularised, "--device", device.type, "--precision", precision,
                     *(["--threads", "1"] if device.type == "cpu" else []),  # a CPU's sums split alike every run
                     *(["--deterministic"] if deterministic else [])]
            figures = resume_differences(main, text, workdir / name.replace(" ", "-"), flags)
            expected = ("resumed == straight" if deterministic else
                        "resumed <= 2 x between straight runs")
            passed = (figures["resumed"] == 0.0 if deterministic else
                      figures["resumed"] <= 2 * figures["between_straight_runs"] + 1e-6)
            rows.append({"run": name, **figures, "expected": expected, "passed": passed})
    table = ["resume: largest relative difference from an uninterrupted run (0 = bit for bit)", "",
             "| run | second straight run | paused and resumed | expected | holds |", "|---|---|---|---|---|"]
    table += [f"| {r['run']} | {r['between_straight_runs']:.3g} | {r['resumed']:.3g} | {r['expected']} | "
              f"{'yes' if r['passed'] else 'NO'} |" for r in rows]
    summary = "; ".join(f"{r['run']}: resumed {r['resumed']:.3g} vs straight {r['between_straight_runs']:.3g}"
                        f"{'' if r['passed'] else ' (FAILS)'}" for r in rows)
    return {"summary": summary, "details": {"rows": rows}, "tables": ["\n".join(table)],
            "passed": all(r["passed"] for r in rows)}
