"""What the Train tab shows while a job trains, read from what the trainer appends to its metrics.jsonl."""

from __future__ import annotations

import json
import math

import pandas as pd

from charrnn.service.training.jobs import Job


# -- progress -----------------------------------------------------------------------------------------
def job_progress(job: Job, position: int | None, model_ready: bool) -> dict:
    """What the tab shows while a job trains: state, message, queue position, the curves (a long table of
    minutes against bits/char, training and validation), the latest sample, chars/s, steps, time left and
    the fraction done.

    Two validation figures: the latest, and the best, whose weights the job keeps (best/) and the other tabs use.
    Once validation rises the two differ, and a learner must see which one is the model they got; once the job
    has stopped, the sample shown is the best evaluation's, written by those kept weights."""
    records = read_metrics(job)
    rows, sample, speed, steps, elapsed, val_bpc = [], "", None, 0, 0.0, None
    best: dict | None = None
    per_char = job.settings.tokenizer == "char"
    for record in records:
        event = record.get("event")
        if event == "train":
            rows.append({"minutes": round(record["elapsed_s"] / 60, 3),
                         "bits/char": round(record["loss"] / math.log(2), 4),
                         "curve": "training" if per_char else "training (bits/token)"})
            speed, steps, elapsed = record.get("chars_per_s"), record["step"], record["elapsed_s"]
        elif event == "eval":
            rows.append({"minutes": round(record["elapsed_s"] / 60, 3), "bits/char": round(record["val_bpc"], 4),
                         "curve": "validation"})
            sample = record.get("sample", sample)
            steps, elapsed, val_bpc = max(steps, record["step"]), max(elapsed, record["elapsed_s"]), record["val_bpc"]
            if best is None or record["val_bpc"] < best["val_bpc"]:
                best = dict(record)
        elif event == "final" and best is not None:  # best/ scored again as stored: the figure its card shows
            val_bpc = record["val_bpc"] if val_bpc == best["val_bpc"] else val_bpc
            best["val_bpc"] = record["val_bpc"]
    budget = job.budget_minutes * 60
    return {"state": job.state, "message": job.message, "position": position,
            "curve": pd.DataFrame(rows, columns=["minutes", "bits/char", "curve"]),
            "sample": best.get("sample", sample) if best and not job.active else sample,
            "chars_per_s": speed, "steps": steps, "elapsed_s": elapsed, "val_bpc": val_bpc,
            "best_bpc": best and best["val_bpc"], "best_minutes": best and best["elapsed_s"] / 60,
            "best_step": best and best["step"],
            "seconds_left": max(budget - elapsed, 0.0) if job.active else 0.0,
            "fraction": 1.0 if job.state == "finished" else min(elapsed / budget, 1.0) if budget else 0.0,
            "model": job.model_name if model_ready else None}

def read_metrics(job: Job) -> list[dict]:
    """metrics.jsonl's records, reading only what was appended since the last call."""
    path = job.folder / "metrics.jsonl"
    try:
        with open(path, "rb") as f:
            f.seek(job.metrics_offset)
            data = f.read()
    except OSError:
        return job.metrics
    complete = data[:data.rfind(b"\n") + 1]  # a line being written is read next time
    job.metrics_offset += len(complete)
    for line in complete.decode("utf-8", errors="replace").splitlines():
        try:
            job.metrics.append(json.loads(line))
        except ValueError:
            continue
    return job.metrics