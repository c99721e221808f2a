"""Kill -9 a training run at random moments, resume it each time, and count what the crashes cost.

    python -m tools.stress.kills --kills 20 --seconds 120

Each round starts `python -m charrnn.train` on a generated corpus (a tiny model that evaluates and saves every
few steps, so kills land during saves too), sends SIGKILL after a random, seeded delay, and checks the run
folder: every best/ and last/ loads with load_checkpoint; the folders a crash leaves (`*.tmp-*`, `*.old`) are
gone after the next save; `--resume` continues from the step last/ holds; and how many steps each kill cost
(the step reached minus the step of last/), against the evaluation interval. Local processes and files only;
bounded in kills and in seconds. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from charrnn.checkpoint.saving import CONFIG, load_checkpoint
from charrnn.errors import CharRNNError
from charrnn.paths import IMPORT_ROOT
from charrnn.train import find_resume_checkpoint

EVAL_INTERVAL = 5  # steps between evaluations, each followed by a save of last/ (and of best/ when it improves)
MAX_DELAY = 1.5  # seconds of training before a kill, at most: several save cycles of the tiny model
STARTUP_KILLS = 0.1  # the fraction of kills sent while the process starts up (imports, data), before training
WAIT = 90.0  # seconds a process may take to start training, or to finish the last round
WORDS = ("the", "king", "and", "queen", "of", "a", "night", "speak", "hear", "me", "citizen", "resolved",
         "rather", "to", "die", "than", "famish", "all", "you", "are", "first", "proceed", "any", "further")


def corpus_text(rng: random.Random, chars: int) -> str:
    """About `chars` characters of sentences of WORDS, one a line."""
    lines, size = [], 0
    while size < chars:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))).capitalize() + "."
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines) + "\n"


def write_corpus(path: Path, rng: random.Random, chars: int = 40_000) -> None:
    path.write_text(corpus_text(rng, chars), encoding="utf-8")


def train_command(corpus: Path, run_dir: Path, resume: bool, steps: int | None = None) -> list[str]:
    command = [sys.executable, "-m", "charrnn.train", "--no-progress"]
    if resume:
        command += ["--resume", str(run_dir)]
    else:
        command += ["--dataset", str(corpus), "--out", str(run_dir), "--hidden", "32", "--embedding", "16",
                    "--layers", "2", "--batch-size", "4", "--seq-len", "16", "--max-steps", "1000000",
                    "--eval-interval", str(EVAL_INTERVAL), "--log-interval", "1", "--threads", "1"]
    if steps:
        command += ["--steps-this-run", str(steps)]
    return command


def read_records(run_dir: Path) -> list[dict]:
    """metrics.jsonl, without the lines a kill cut short."""
    records = []
    try:
        lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return records
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return records


def saved_step(run_dir: Path) -> int | None:
    """The step of the checkpoint --resume would continue from (None when there is none yet)."""
    try:
        checkpoint = find_resume_checkpoint(run_dir)
        return json.loads((checkpoint / CONFIG).read_text(encoding="utf-8"))["metrics"]["steps"]
    except (CharRNNError, OSError, ValueError, KeyError):
        return None


def leftovers(run_dir: Path) -> set[tuple[str, int]]:
    """The folders an interrupted save leaves, by name and inode (a later save may reuse a name)."""
    found = set()
    for path in run_dir.glob("*"):
        if ".tmp-" in path.name or path.name.endswith(".old"):
            try:
                found.add((path.name, path.stat().st_ino))
            except OSError:  # removed while we looked
                pass
    return found


def unreadable(run_dir: Path) -> list[str]:
    """Checkpoints of the run that do not load: best/ and last/, or their .old when a kill came between the
    two renames of a save."""
    bad = []
    for name in ("best", "last"):
        path = run_dir / name
        if not path.exists():
            path = run_dir / (name + ".old")
            if not path.exists():
                continue  # not written yet
        try:
            load_checkpoint(path)
        except CharRNNError as err:
            bad.append(f"{path.name}: {err}")
    return bad


def run(kills: int = 20, seconds: float = 120, workdir: Path | None = None, seed: int = 0) -> dict:
    """Kill a training run `kills` times and count what went wrong. No round starts after `seconds`; the
    round under way and a last resume (each bounded by WAIT) finish after it. `workdir` keeps the corpus, the
    run and each process's stderr (default: a temporary folder, removed at the end)."""
    with tempfile.TemporaryDirectory(prefix="charrnn-kills-") as scratch:
        return _run(kills, seconds, Path(workdir) if workdir else Path(scratch), seed)


def _run(kills: int, seconds: float, workdir: Path, seed: int) -> dict:
    start = time.monotonic()
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    corpus, run_dir = workdir / "corpus.txt", workdir / "run"
    write_corpus(corpus, rng)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(IMPORT_ROOT), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "CHARRNN_DATA_DIR": str(workdir / "data"), "OMP_NUM_THREADS": "1"}
    counts = {"unreadable_checkpoints": 0, "stale_folders_after_next_save": 0, "resume_failures": 0,
              "resumes": 0, "restarts_before_first_save": 0, "kills_during_save": 0, "unexpected_exits": 0}
    lost: list[int] = []
    problems: list[str] = []
    pending: set[tuple[str, int]] = set()  # left by kills, to be gone after the next save of the run

    def start_process(command: list[str], log: Path) -> subprocess.Popen:
        with open(log, "w") as err:
            return subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=err)

    def check_pending(saved_before: int | None) -> None:
        """Once the run has saved since this round began, what earlier kills left must be gone."""
        nonlocal pending
        if pending and saved_step(run_dir) not in (None, saved_before):
            stale = pending & leftovers(run_dir)
            counts["stale_folders_after_next_save"] += len(stale)
            problems.extend(f"stale after the next save: {name}" for name, _ in sorted(stale))
            pending = set()

    done = 0
    while done < kills and time.monotonic() - start < seconds:
        before = saved_step(run_dir)
        resume = before is not None
        if not resume and run_dir.exists():
            # Killed before its first save: --resume must say so (and how to start again), not fail obscurely.
            try:
                find_resume_checkpoint(run_dir)
            except CharRNNError as err:
                if "has no checkpoint yet" not in str(err):
                    problems.append(f"before the first save, --resume said: {err}")
                    counts["resume_failures"] += 1
            counts["restarts_before_first_save"] += 1
        log = workdir / f"round-{done}.log"
        starts_before = sum(r.get("event") == "start" for r in read_records(run_dir))
        process = start_process(train_command(corpus, run_dir, resume), log)
        try:
            if rng.random() < STARTUP_KILLS:
                time.sleep(rng.uniform(0, 3.0))  # somewhere in the start-up: imports, data, model
            else:
                deadline = time.monotonic() + WAIT
                while (process.poll() is None and time.monotonic() < deadline
                       and sum(r.get("event") == "start" for r in read_records(run_dir)) == starts_before):
                    time.sleep(0.05)
                starts = [r for r in read_records(run_dir) if r.get("event") == "start"]
                if len(starts) == starts_before:  # exited, or hung, before training
                    counts["resume_failures" if resume else "unexpected_exits"] += 1
                    problems.append(f"round {done}: training did not start: {log.read_text()[-300:]!r}")
                    break  # the same command would fail again
                if resume:
                    counts["resumes"] += 1
                    if starts[-1].get("step") != before:
                        counts["resume_failures"] += 1
                        problems.append(f"round {done}: resumed at step {starts[-1].get('step')}, not {before}")
                kill_at = time.monotonic() + rng.uniform(0, MAX_DELAY)
                while time.monotonic() < kill_at and process.poll() is None:
                    check_pending(before)
                    time.sleep(0.01)
            if process.poll() is not None:
                counts["unexpected_exits"] += 1
                problems.append(f"round {done}: exited by itself ({process.returncode}): {log.read_text()[-300:]!r}")
        finally:
            process.send_signal(signal.SIGKILL)  # no-op when it has exited
            process.wait()
        done += 1
        # What the kill left: every checkpoint must still load, and the steps since the last save are lost.
        bad = unreadable(run_dir)
        counts["unreadable_checkpoints"] += len(bad)
        problems.extend(bad)
        left = leftovers(run_dir)
        counts["kills_during_save"] += bool(left - pending)
        pending |= left
        records = read_records(run_dir)
        starts = [i for i, r in enumerate(records) if r.get("event") == "start"]
        if len(starts) > starts_before:  # it trained: the steps since its last save are lost
            reached = max(r.get("step", 0) for r in records[starts[-1]:])
            lost.append(max(0, reached - (saved_step(run_dir) or 0)))

    # One last resume, to a clean pause: it must continue, save, and leave nothing behind.
    final_steps = None
    if done:
        before = saved_step(run_dir)
        log = workdir / "final.log"
        process = start_process(train_command(corpus, run_dir, before is not None, steps=EVAL_INTERVAL), log)
        try:
            returncode = process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            returncode = process.wait()
        final_steps = saved_step(run_dir)
        if returncode != 0 or final_steps is None or (before is not None and final_steps <= before):
            counts["resume_failures"] += 1
            problems.append(f"final resume: exit code {returncode}, {log.read_text()[-300:]!r}")
        counts["unreadable_checkpoints"] += len(unreadable(run_dir))
        # It saved and exited cleanly: anything a kill left is stale now.
        counts["stale_folders_after_next_save"] += len(leftovers(run_dir))
    return {"kills": done, **counts, "max_steps_lost": max(lost, default=0),
            "mean_steps_lost": round(sum(lost) / max(len(lost), 1), 2), "eval_interval": EVAL_INTERVAL,
            "final_step": final_steps, "seconds": round(time.monotonic() - start, 1), "problems": problems[:10]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m tools.stress.kills", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20, help="kill -9s to send (default: 20)")
    parser.add_argument("--seconds", type=float, default=120, help="stop starting rounds after this (default: 120)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the corpus and run here (default: a "
                        "temporary folder, removed at the end)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments (default: 0)")
    args = parser.parse_args(argv)
    result = run(args.kills, args.seconds, args.workdir, args.seed)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
