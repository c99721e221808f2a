"""Measure how long `python app.py` takes to answer its page (not a test), beside the floor any Gradio app has on
this host: a one-textbox Gradio page started the same way. The two alternate, so that the machine's noise hits
both alike; the ratio is the figure to compare across days.

    python docs/measure_startup.py [--rounds 3]

Prints one line per start and a JSON summary. Uses ports 7891-7892 on 127.0.0.1.
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

ROOT = Path(__file__).resolve().parent.parent
BARE_PAGE = "import gradio as gr\nwith gr.Blocks() as demo:\n    gr.Textbox()\ndemo.launch()\n"


def seconds_to_answer(script: Path, port: int, timeout: float = 180) -> float:
    """Start `python script` and poll its page until it answers 200; the seconds that took."""
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, str(script)], cwd=script.parent, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - start < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as page:
                    if page.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"{script} did not answer within {timeout} s")
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
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
