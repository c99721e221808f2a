"""Stress the app as a public Space is stressed, and print the figures.

    python -m tools.stress                        # everything, with the issue's sizes (about 10 minutes)
    python -m tools.stress --fuzz 200 --clients 5 --seconds 15 --kills 3 --train-churn 3   # a quick look

It starts `python app.py` on 127.0.0.1 (only; nothing else is contacted) with the shipped checkpoints plus a
folder of every kind of broken checkpoint beside them, then: fuzzes every event handler, runs concurrent
clients for a while, and kills a training run with SIGKILL at random moments. The Train tab's round
(train_tab.py) starts an app of its own with small training limits: upload bombs, other sessions' models,
throw-away sessions, the app killed while it trains, a reloaded page. Every loop is bounded in count and time.
Ends with one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from charrnn.checkpoint.saving import find_checkpoints
from charrnn.errors import cli_errors
from tools.stress import fuzz, kills, load, train_tab
from tools.stress.broken import make_broken_checkpoints
from charrnn.paths import SOURCE_TREE
from tools.stress.server import AppServer


def _checkpoint_root(workdir: Path) -> tuple[Path, int]:
    """The shipped checkpoints and one broken folder of each kind, side by side."""
    root = workdir / "checkpoints"
    shutil.copytree(SOURCE_TREE / "checkpoints", root, ignore=shutil.ignore_patterns("*.md", "*.sh", "*.jsonl"))
    good = [p for p in find_checkpoints(root) if p.name == "lstm"][0]
    broken = make_broken_checkpoints(good, root / "broken")
    return root, len(broken)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.stress", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fuzz", type=int, default=1000, help="fuzzed calls (0 = skip)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (0 = skip the load test)")
    parser.add_argument("--compare-clients", type=int, default=0, help="how many of the clients call /compare")
    parser.add_argument("--seconds", type=float, default=60, help="length of the load test")
    parser.add_argument("--length", type=int, default=600, help="characters per generation in the load test")
    parser.add_argument("--session-per-call", action="store_true",
                        help="load clients start a new session for every call (default: one session per client, "
                             "as a browser tab or a gradio_client Client keeps)")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs of a training run (0 = skip)")
    parser.add_argument("--kill-seconds", type=float, default=600, help="no new kill round starts after this")
    parser.add_argument("--train-probes", action=argparse.BooleanOptionalAction, default=True,
                        help="the Train tab's round: bombs, other sessions, churn, a kill and restart, a reload")
    parser.add_argument("--train-churn", type=int, default=10,
                        help="throw-away sessions that start and stop a job in the Train round (0 = skip that probe)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("fuzz", "clients", "compare_clients", "kills", "length", "train_churn"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 or more")
    if not 0 < args.seconds <= 3600:
        parser.error("--seconds must be in (0, 3600]")
    return args


@cli_errors
def main(argv=None) -> dict:
    args = parse_args(argv)
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="charrnn-stress-") as tmp:
        workdir = Path(tmp)
        root, broken = _checkpoint_root(workdir)
        start = time.perf_counter()
        with AppServer(workdir / "app.log", env={"CHARRNN_CHECKPOINTS": str(root)}) as server:
            figures["startup"] = {"broken_folders_beside_good_ones": broken, "seconds_to_ready": round(
                time.perf_counter() - start, 1), "skipped_reported": server.log_text().count("skipped "),
                "memory_mb": server.memory_mb()}
            if args.fuzz:
                figures["fuzz"] = fuzz.run(server, args.fuzz, seed=args.seed)
                print(json.dumps({"fuzz": figures["fuzz"]}), flush=True)
            if args.clients:
                figures["load"] = load.run(server, args.clients, args.seconds, args.length, args.compare_clients,
                                           seed=args.seed, session_per_call=args.session_per_call)
                print(json.dumps({"load": figures["load"]}), flush=True)
            figures["server_tracebacks"] = server.tracebacks()
        if args.clients and not args.compare_clients:  # the app stopped: the engine alone, on the same machine
            load.serving_share(figures["load"], root / "lstm_best", args.clients, args.length, args.seed)
            print(json.dumps({"serving": figures["load"]["serving"]}), flush=True)
            if figures["server_tracebacks"]:
                shutil.copy(server.log, "stress-app.log")
                figures["server_log"] = "stress-app.log"
        if args.train_probes:
            figures["train_tab"] = train_tab.run(workdir / "train", args.train_churn, seed=args.seed)
            print(json.dumps({"train_tab": figures["train_tab"]}), flush=True)
    if args.kills:
        figures["kills"] = kills.run(args.kills, seconds=args.kill_seconds, seed=args.seed)
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
