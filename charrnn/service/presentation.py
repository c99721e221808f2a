"""What the page shows about models: cards, comparison tables, validation curves, cross scores."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from charrnn.cells import label
from charrnn.service import charts, inputs
from charrnn.service.library import ModelLibrary

COMPARE_DEFAULT = ("rnn", "gru", "lstm")


def _round(value, digits=3):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(value, digits)


def _count(value) -> str:
    """A count as people read it (4,527,090), the same on every card and table."""
    return "?" if value is None else f"{round(value):,}"


def model_summary(library: ModelLibrary, name: str) -> dict:
    info = library.info(name)
    model, metrics = info["model"], info.get("metrics", {})
    return {
        "model": name,
        "cell": label(model["cell"]),
        "layers x hidden": f"{model['num_layers']} x {model['hidden_size']}",
        "parameters": info.get("num_params"),
        "validation bits per character": _round(metrics.get("val_bpc")),
        "training minutes": _round(metrics.get("train_seconds", 0) / 60, 1),
        "training chars/s": metrics.get("train_chars_per_s"),
        # the checkpoint is the best evaluation's weights; its curve (and the training) ran on to total_steps
        "steps trained": metrics.get("total_steps", metrics.get("steps")),
        "best at step": metrics.get("best_step", metrics.get("steps")),
    }


def model_card(library: ModelLibrary, name: str) -> str:
    """A short Markdown card: what the model is and how good it is."""
    s = model_summary(library, name)
    info = library.info(name)
    metrics = info.get("metrics", {})
    training = info.get("training") or {}
    trained_on = training.get("data_name") or ", ".join(Path(d).name for d in training.get("dataset") or [])
    command = info.get("command")
    for path in training.get("dataset") or []:  # a developer's folder means nothing to a visitor: its name does
        command = command and command.replace(path, Path(path).name)
    lines = [
        f"**{name}**: {s['cell']}, {s['layers x hidden']}, {_count(s['parameters'])} parameters, "
        f"dropout {info['model']['dropout']}",
        *([f"- trained on {trained_on}"] if trained_on else []),
        f"- validation: **{s['validation bits per character']} bits per character** on "
        f"{metrics.get('data', {}).get('val_split', 'its validation split')} (how surprised the model is by each "
        "next character of text it never trained on: 1 bit = a coin flip, lower is better)",
        f"- trained {s['training minutes']} min, {_count(s['steps trained'])} steps (the best at step "
        f"{_count(s['best at step'])}), {_count(s['training chars/s'])} chars/s on "
        f"{metrics.get('hardware', 'unknown hardware')}",
    ]
    if command:
        lines.append(f"- made by `{command}`")
    return "\n".join(lines)


COMPARISON_COLUMNS = ["model", "cell", "parameters", "validation bits per character",
                      "training minutes", "steps trained",
                      "best at step", "sampling chars/s"]


def _model_names(names) -> list[str]:
    """The chosen models, each checked to be a name (which models exist is the library's to say)."""
    return [inputs.model_name(name, f"model {i + 1}") for i, name in enumerate(names)]


def comparison_table(library: ModelLibrary, names: list[str], speeds: list[float] | None = None) -> pd.DataFrame:
    rows = []
    for i, name in enumerate(_model_names(names)):
        s = model_summary(library, name)
        rows.append({"model": name, "cell": s["cell"], "parameters": _count(s["parameters"]), "validation bits per character": s["validation bits per character"],
                     "training minutes": s["training minutes"], "steps trained": _count(s["steps trained"]),
                     "best at step": _count(s["best at step"]),
                     "sampling chars/s": _count(speeds[i]) if speeds else None})
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def validation_curves(library: ModelLibrary, names: list[str]) -> pd.DataFrame:
    """Long-format validation curves: one row per (model, evaluation)."""
    rows = []
    for name in dict.fromkeys(_model_names(names)):  # a model picked twice is drawn once
        for point in library.info(name).get("metrics", {}).get("curve", []):
            rows.append({"model": name, "step": point["step"], "minutes": round(point["elapsed_s"] / 60, 2),
                         "bits per character": round(point["val_bpc"], 4)})
    return pd.DataFrame(rows, columns=["model", "step", "minutes", "bits per character"])


def validation_charts(library: ModelLibrary, names: list[str]) -> tuple[dict, dict]:
    """The chosen models' validation curves against training time and against steps (Vega-Lite charts)."""
    curves = validation_curves(library, names)
    return (charts.line_chart(curves, "minutes", "bits per character", "model", "Validation bits per character against training time",
                              x_title="training minutes", y_title="validation bits per character"),
            charts.line_chart(curves, "step", "bits per character", "model", "Validation bits per character against training steps",
                              x_title="training steps", y_title="validation bits per character"))


def score_columns(names: list[str]) -> list[str]:
    return ["text written by", *(f"bits per character under {scorer}" for scorer in names)]
