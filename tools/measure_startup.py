"""Measure how long `python app.py` takes to answer its page (not a test), beside the floor any Gradio app has on
this host: a one-textbox Gradio page started the same way. The two alternate, so that the machine's noise hits
both alike; the ratio is the figure to compare across days.

    python -m tools.measure_startup [--rounds 3]
    python -m tools.measure_startup --mcp [--rounds 3]    app.py without the mcp package, and with it with its
                                                          MCP server off and on (CHARRNN_MCP)

With --mcp, each start also reports the resident memory of the app and its sampling process when the page
answers and once its models are loaded. Installed, the mcp package is imported with Gradio whether the server is
on or not, so "without" is app.py with `import mcp` made to fail, as where it is not installed. Prints one line per start and a JSON summary. Uses ports 7891-7892 on
127.0.0.1.
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
import urllib.request
from pathlib import Path

from charrnn.paths import SOURCE_TREE as ROOT
from tools.stress.server import READY_MARK, memory_mb

BARE_PAGE = "import gradio as gr\nwith gr.Blocks() as demo:\n    gr.Textbox()\ndemo.launch()\n"


WITHOUT_MCP = ("import runpy, sys\nsys.modules['mcp'] = None  # any `import mcp` fails\nsys.path.insert(0, {root!r})\n"
               "runpy.run_path({app!r}, run_name='__main__')\n")


def seconds_to_answer(script: Path, port: int, timeout: float = 180, env: dict | None = None,
                      memory: bool = False) -> float | dict:
    """Start `python script` and poll its page until it answers 200; the seconds that took. With `memory`: a dict
    of those seconds, the memory (MB) of the process and its children then, and once its log says the models are
    ready."""
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "PYTHONUNBUFFERED": "1",
           **(env or {})}
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen([sys.executable, str(script)], cwd=script.parent, env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
        try:
            seconds = _wait(lambda: _answers(port), start, timeout, script)
            if not memory:
                return seconds
            figures = {"seconds": seconds, "mb_at_answer": memory_mb(server.pid)["now"]}
            _wait(lambda: _says(log, READY_MARK), start, timeout, script)
            return {**figures, "ready_seconds": time.perf_counter() - start, "mb_ready": memory_mb(server.pid)["now"]}
        finally:
            server.terminate()
            server.wait(30)


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as page:
            return page.status == 200
    except OSError:
        return False


def _says(log, mark: str) -> bool:
    log.seek(0)
    return mark in log.read()


def _wait(done, start: float, timeout: float, script: Path) -> float:
    while time.perf_counter() - start < timeout:
        if done():
            return time.perf_counter() - start
        time.sleep(0.05)
    raise TimeoutError(f"{script} was not ready within {timeout} s")


def compare_mcp(rounds: int) -> None:
    """app.py without the mcp package, with it and its server off, and on, in turn: seconds to the page and memory."""
    runs = {"no mcp package": [], "server off": [], "server on": []}
    with tempfile.TemporaryDirectory() as folder:
        without = Path(folder) / "no_mcp.py"
        without.write_text(WITHOUT_MCP.format(root=str(ROOT), app=str(ROOT / "app.py")))
        modes = [("no mcp package", without, "0"), ("server off", ROOT / "app.py", "0"),
                 ("server on", ROOT / "app.py", "1")]
        for i in range(rounds):
            for mode, script, flag in modes:
                run = seconds_to_answer(script, 7892, env={"CHARRNN_MCP": flag}, memory=True)
                runs[mode].append(run)
                print(f"round {i + 1}, {mode}: page {run['seconds']:.1f} s ({run['mb_at_answer']:.0f} MB), "
                      f"models ready {run['ready_seconds']:.1f} s ({run['mb_ready']:.0f} MB)", flush=True)
    summary = {mode: {key: round(statistics.median(run[key] for run in runs[mode]), 2) for key in runs[mode][0]}
               for mode in runs}
    print(json.dumps({"runs": runs, "median": summary}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mcp", action="store_true", help="app.py without and with its MCP server")
    args = parser.parse_args()
    if args.mcp:
        compare_mcp(args.rounds)
        return
    times = {"app": [], "bare": []}
    with tempfile.TemporaryDirectory() as folder:
        bare = Path(folder) / "bare_page.py"
        bare.write_text(BARE_PAGE)
        for i in range(args.rounds):
            times["bare"].append(seconds_to_answer(bare, 7891))
            times["app"].append(seconds_to_answer(ROOT / "app.py", 7892))
            print(f"round {i + 1}: bare Gradio page {times['bare'][-1]:.1f} s, app.py {times['app'][-1]:.1f} s",
                  flush=True)
    app, bare = statistics.median(times["app"]), statistics.median(times["bare"])
    print(json.dumps({"app_s": [round(t, 2) for t in times["app"]], "bare_gradio_s": [round(t, 2) for t in times["bare"]],
                      "median_app_s": round(app, 2), "median_bare_s": round(bare, 2), "ratio": round(app / bare, 2)}))


if __name__ == "__main__":
    main()
