"""The first minute on a fresh install, measured (not a test): how long `charrnn sample` takes from an empty cache
and from a warm one, and how long the app's first Generate takes after its page is up, each beside `python -c
"import torch"` on the same machine in the same run (issue 29's targets: cold sample <= 2x and warm <= 1.5x the
import; first Generate <= 5 s after the page).

    python -m tools.measure_first_minute [--rounds 2]

"Fresh" here is a copy of the repository's files (git archive of HEAD, so no bytecode of charrnn's own) with an
empty cache of compiled kernels (NUMBA_CACHE_DIR); the packages come from the current environment, compiled to
bytecode as pip installs them. A cold `charrnn sample` starts compiling the kernels in a process of its own: the
warm run waits for it to finish, as a person's second command would come later. The rounds alternate, so the machine's noise hits each alike. Prints one line per
measurement and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from charrnn.paths import SOURCE_TREE as ROOT
from charrnn.sampling import warm
from tools.stress.server import AppServer



def fresh_copy(into: Path) -> Path:
    """The repository's committed files (no caches) in a new folder."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def timed(command: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def caches(folder: Path) -> dict:
    return {"NUMBA_CACHE_DIR": str(folder / "numba"), "CHARRNN_DATA_DIR": str(folder / "data")}


def sample_round(workdir: Path, number: int) -> dict:
    repo = fresh_copy(workdir / f"repo-{number}")
    env = {**os.environ, **caches(workdir / f"caches-{number}"), "PYTHONPATH": str(repo)}
    command = [sys.executable, "-m", "charrnn", "sample", "--checkpoint", "checkpoints/lstm_best", "--length", "200",
               "--seed", "1"]
    figures = {"import_torch_s": timed([sys.executable, "-c", "import torch"], repo, env)}
    figures["sample_cold_s"] = timed(command, repo, env)
    warm.wait_for_compiling(timeout=600)
    figures["sample_warm_s"] = timed(command, repo, env)
    return figures


def app_round(workdir: Path, number: int) -> dict:
    from gradio_client import Client

    repo = fresh_copy(workdir / f"app-repo-{number}")
    env = {**caches(workdir / f"app-caches-{number}"), "PYTHONPATH": str(repo),
           "CHARRNN_USER_MODELS": str(workdir / f"user-models-{number}")}
    start = time.perf_counter()
    server = AppServer(workdir / f"app-{number}.log", env=env, app=repo / "app.py", wait_for_models=False)
    try:
        page_s = time.perf_counter() - start
        client = Client(server.url, verbose=False)
        asked = time.perf_counter()
        client.predict("ROMEO:\n", "lstm_best", 0.8, 0, 1.0, 600, 42, 1, api_name="/generate")
        return {"page_up_s": page_s, "first_generate_s": time.perf_counter() - asked}
    finally:
        server.stop()
        warm.wait_for_compiling(timeout=600)  # the app's compiling process writes into the folder removed next


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m tools.measure_first_minute", description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    rounds: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="charrnn-first-minute-") as tmp:
        for number in range(args.rounds):
            figures = {**sample_round(Path(tmp), number), **app_round(Path(tmp), number)}
            print(json.dumps({key: round(value, 2) for key, value in figures.items()}), flush=True)
            rounds.append(figures)
    medians = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    summary = {**{key: round(value, 2) for key, value in medians.items()},
               "sample_cold_over_import_torch": round(medians["sample_cold_s"] / medians["import_torch_s"], 2),
               "sample_warm_over_import_torch": round(medians["sample_warm_s"] / medians["import_torch_s"], 2)}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
