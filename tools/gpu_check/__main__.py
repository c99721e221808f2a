"""Every GPU check of issue 28 in one command, within a deadline, ending with one table.

    python -m tools.gpu_check --stage      # here, before the device call: Tiny Shakespeare into data/gpu-check/
    python -m tools.gpu_check              # on the GPU machine (data/gpu-check carried there): about 9 minutes
    python -m tools.gpu_check --dry-run    # on a CPU, tiny sizes: checks that the script runs, in seconds

The parts, in order, each in a process of its own under its own time limit and the whole check's deadline:

    tests     tests/test_gpu.py under pytest (training in bf16/fp16, exact resume with and without --deterministic,
              sampling, DDP over NCCL, the bench's code path)
    bench     charrnn bench --device cuda --quick: charrnn / plain at every shape, sampling on the CPU and the GPU
    profile   one training step at 2 x 512, batch 256 x 128, bf16: whole-step variants and a per-phase profile
              (tools/gpu_check/profile.py), with a trace for chrome://tracing or Perfetto
    resume    a resumed run beside an uninterrupted one, and two uninterrupted ones beside each other, at 2 x 512
    sampling  the CPU's compiled kernels beside the GPU from 1 to 64 samples at once, and scoring a text on each
    recipe    charrnn train --dataset <Tiny Shakespeare> --time-budget 5, if the time left allows (shortened, and
              said, when it does not; --skip recipe leaves it out)

The GPU machine has no `datasets`, `gradio` or `../shared`: training reads the staged text file, and nothing here
imports either package. Prints one summary table at the end, and writes it as gpu_check.json and gpu_check.md
beside the whole log (gpu_check.log) and the profile's trace (profile_trace.json.gz) into $OUT when it is set.
Exits 0 when every part passed, 1 when one failed or ran out of time, 2 without a CUDA GPU (and no --dry-run).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from charrnn.paths import IMPORT_ROOT
from tools.gpu_check.parts import PARTS, RECIPE_MINUTES, Setting, run_part
from tools.gpu_check.runner import Deadline, Result, staged_text

DEADLINE = 530  # seconds: under 9 minutes, with room for the device tool's transfers
SHARED_TEXT = IMPORT_ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", nargs="?", const=str(SHARED_TEXT), metavar="TEXT",
                        help=f"copy TEXT (default: {SHARED_TEXT}) to {staged_text().relative_to(IMPORT_ROOT)}, which "
                             "git ignores and the device call carries, then exit")
    parser.add_argument("--dry-run", action="store_true",
                        help="on the CPU with tiny sizes: a check that every part runs, not figures")
    parser.add_argument("--skip", default="", help=f"parts to leave out, by name: {', '.join(PARTS)}")
    parser.add_argument("--only", default="", help="the parts to run, by name (default: all)")
    parser.add_argument("--deadline", type=float, default=DEADLINE,
                        help=f"seconds for everything (default: {DEADLINE})")
    parser.add_argument("--recipe-minutes", type=float, default=None,
                        help=f"the recipe run's --time-budget (default: {RECIPE_MINUTES:g}; 0.05 in a dry run)")
    # One measured part in this process (what the check runs in a process of its own for each).
    parser.add_argument("--part", choices=("profile", "resume", "sampling"), help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    parser.add_argument("--text", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = {name for name in f"{args.skip},{args.only}".split(",") if name} - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}: choose from {', '.join(PARTS)}")
    return args


def stage(source: Path) -> int:
    target = staged_text()
    if not source.is_file():
        print(f"error: {source} is not a file: give the Tiny Shakespeare text to --stage", file=sys.stderr)
        return 2
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    print(f"staged {source} as {target} ({target.stat().st_size:,} bytes); carry "
          f"{target.parent.relative_to(IMPORT_ROOT)} in the device call")
    return 0


def measure_part(args: argparse.Namespace) -> int:
    """One measured part, its figures written to --result as JSON."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before cuBLAS starts, for the --deterministic runs
    import torch

    device = torch.device(args.device)
    if args.part == "profile":
        from tools.gpu_check import profile
        trace = args.out / "profile_trace.json.gz" if args.out else None
        figures = profile.run(device, args.tiny, trace)
    elif args.part == "resume":
        from tools.gpu_check import resume
        figures = resume.run(device, args.tiny, args.text, Path(tempfile.mkdtemp()))
    else:
        from tools.gpu_check import sampling
        figures = sampling.run(device, args.tiny)
    for table in figures["tables"]:
        print(f"\n{table}", flush=True)
    args.result.write_text(json.dumps(figures))
    return 0


def environment(device: str, text: Path) -> Result:
    """What the machine has: the versions, the GPU, the packages the parts need (and the two they must not)."""
    import torch

    details = {"python": platform.python_version(), "torch": torch.__version__, "device": device,
               "text": str(text), "text_chars": text.stat().st_size if text.is_file() else None}
    if device == "cuda":
        details.update(gpu=torch.cuda.get_device_name(), cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                       bf16=torch.cuda.is_bf16_supported())
    for package in ("numba", "pytest", "datasets", "gradio"):
        details[f"has_{package}"] = importlib.util.find_spec(package) is not None
    missing = [p for p in ("numba", "pytest") if not details[f"has_{p}"]]
    summary = (f"{details.get('gpu', 'CPU')}, torch {details['torch']}, Python {details['python']}"
               + (f", CUDA {details['cuda']}, cuDNN {details['cudnn']}" if device == "cuda" else "")
               + f"; datasets {'present' if details['has_datasets'] else 'absent'}, gradio "
               + ("present" if details["has_gradio"] else "absent")
               + (f"; MISSING {', '.join(missing)}" if missing else ""))
    return Result("environment", "failed" if missing else "ok", 0.0, summary, details)


def training_text() -> Path:
    """Tiny Shakespeare as staged, else a generated text of the same kind (enough for all but the recipe run)."""
    if staged_text().is_file():
        return staged_text()
    text = Path(tempfile.mkdtemp()) / "generated.txt"
    text.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 300)
    return text


def report(results: list[Result], out: Path | None, started: float) -> str:
    """The summary table; written with every figure to $OUT (after each part, so that a stop keeps what ran)."""
    lines = [f"GPU check, {time.time() - started:.0f} s", "", "| part | status | seconds | result |",
             "|---|---|---|---|"]
    lines += [f"| {r.part} | {r.status} | {r.seconds:.0f} | {r.summary} |" for r in results]
    table = "\n".join(lines)
    if out is not None:
        (out / "gpu_check.md").write_text("\n\n".join([table, *(t for r in results for t in r.tables)]) + "\n")
        (out / "gpu_check.json").write_text(json.dumps([r.as_dict() for r in results], indent=1))
    return table


def check(args: argparse.Namespace) -> int:
    import torch

    from charrnn.sampling import warm

    started = time.time()
    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print(f"error: no CUDA GPU here (torch {torch.__version__}): run this on a GPU machine, or add --dry-run to "
              f"check the script on this CPU", file=sys.stderr)
        return 2
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    deadline = Deadline(args.deadline)
    text = training_text()
    minutes = args.recipe_minutes if args.recipe_minutes is not None else 0.05 if args.dry_run else RECIPE_MINUTES
    setting = Setting(device, args.dry_run, text, out, minutes)
    if not warm.kernels_cached():  # the sampling kernels compile while the tests run
        warm.compile_in_background()
    chosen = [p for p in PARTS if (not args.only or p in args.only.split(",")) and p not in args.skip.split(",")]
    results = [environment(device, text)]
    print(results[0].summary, flush=True)
    with open(out / "gpu_check.log" if out else os.devnull, "w") as log:
        for name in chosen:
            if name in ("bench", "sampling"):
                warm.wait_for_compiling(max(0.0, min(120.0, deadline.left() - 60)))
            if name == "recipe" and text != staged_text() and not args.dry_run:
                results.append(Result(name, "skipped", 0.0, f"no {staged_text().relative_to(IMPORT_ROOT)}: run "
                                                            f"--stage before the device call, and carry its folder"))
            else:
                results.append(run_part(name, setting, deadline, log))
            report(results, out, started)
    tables = [table for result in results for table in result.tables]
    print("\n" + "\n\n".join([*tables, report(results, out, started)]), flush=True)
    return 0 if all(r.status in ("ok", "skipped") for r in results) else 1


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.stage:
        return stage(Path(args.stage))
    if args.part:
        return measure_part(args)
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
