"""Measure the Train tab's path on this host (not a test): Generate's speed with and without a training job, the
time from Train to the first curve point, and what the default preset learns in N minutes.

    python docs/measure_train_tab.py TEXT_FILE [--chars 200000] [--minutes 3]

Prints one JSON line. Uses the shipped lstm for Generate and a throwaway folder for the job.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from charrnn.service import ModelLibrary, generate_stream  # noqa: E402
from charrnn.service.training import JobSettings, TrainingManager, TrainLimits  # noqa: E402


def generate_speed(library: ModelLibrary, length: int = 3000) -> float:
    start = time.perf_counter()
    for _ in generate_stream(library, "lstm", "ROMEO:\n", length, 0.8, 0, 1.0, 1, 1):
        pass
    return length / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text_file")
    parser.add_argument("--chars", type=int, default=200_000, help="characters of the file to train on")
    parser.add_argument("--minutes", type=float, default=3, help="minutes of training")
    parser.add_argument("--size", choices=("auto", "tiny", "small", "medium"), help="default: the suggested size")
    args = parser.parse_args()
    library = ModelLibrary(hub_ids=[])
    generate_speed(library, 200)  # load the model and compile the kernels
    idle = [round(generate_speed(library)) for _ in range(3)]
    manager = TrainingManager(library, tempfile.mkdtemp(prefix="charrnn-measure-"), TrainLimits())
    text = manager.gather(pasted=Path(args.text_file).read_text(encoding="utf-8")[:args.chars])
    owner = "measurement-session"
    clicked = time.perf_counter()
    size = args.size or text.preview["suggested size"]  # what the tab picks after Preview
    job = manager.submit(owner, text, JobSettings(name="measure", size=size, minutes=args.minutes))
    first_point = first_eval = None
    busy = []
    while job.active:
        curve = manager.progress(owner, job.id)["curve"]
        if first_point is None and len(curve):
            first_point = time.perf_counter() - clicked
        if first_eval is None and (curve["curve"] == "validation").any():
            first_eval = time.perf_counter() - clicked
        if first_point is not None and len(busy) < 3 and time.perf_counter() - clicked > 20:
            busy.append(round(generate_speed(library)))
        time.sleep(0.2)
    done = manager.progress(owner, job.id)
    print(json.dumps({"generate_chars_per_s_idle": idle, "generate_chars_per_s_while_training": busy,
                      "seconds_to_first_curve_point": round(first_point, 1) if first_point else None,
                      "seconds_to_first_validation_point": round(first_eval, 1) if first_eval else None,
                      "state": done["state"], "message": done["message"], "steps": done["steps"],
                      "train_chars_per_s": done["chars_per_s"], "val_bpc": done["val_bpc"],
                      "size": job.settings.size, "sample": done["sample"]}))


if __name__ == "__main__":
    main()
