"""What the page shows about models: cards, comparison tables, validation curves, cross scores."""

from __future__ import annotations

import math

import pandas as pd

from charrnn.evaluate import continuation_bpc
from charrnn.sample import encode_prompt
from charrnn.service.library import ModelLibrary

COMPARE_DEFAULT = ("rnn", "gru", "lstm")
CELL_NAMES = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN (tanh)", "rnn_relu": "RNN (ReLU)"}


def _round(value, digits=3):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(value, digits)


def model_summary(library: ModelLibrary, name: str) -> dict:
    info = library.info(name)
    model, metrics = info["model"], info.get("metrics", {})
    return {
        "model": name,
        "cell": CELL_NAMES.get(model["cell"], model["cell"]),
        "layers x hidden": f"{model['num_layers']} x {model['hidden_size']}",
        "parameters": info.get("num_params"),
        "val bpc": _round(metrics.get("val_bpc")),
        "val nats/char": _round(metrics.get("val_nats")),
        "training minutes": _round(metrics.get("train_seconds", 0) / 60, 1),
        "training chars/s": metrics.get("train_chars_per_s"),
        "steps": metrics.get("steps"),
    }


def model_card(library: ModelLibrary, name: str) -> str:
    """A short Markdown card: what the model is and how good it is."""
    s = model_summary(library, name)
    info = library.info(name)
    metrics = info.get("metrics", {})
    lines = [
        f"**{name}**: {s['cell']}, {s['layers x hidden']}, {s['parameters']:,} parameters, "
        f"dropout {info['model']['dropout']}",
        f"- validation: **{s['val bpc']} bits/char** ({s['val nats/char']} nats/char) on "
        f"{metrics.get('data', {}).get('val_split', 'its validation split')}",
        f"- trained {s['training minutes']} min, {s['steps']} steps, {s['training chars/s']} chars/s on "
        f"{metrics.get('hardware', 'unknown hardware')}",
    ]
    if info.get("command"):
        lines.append(f"- made by `{info['command']}`")
    return "\n".join(lines)


def comparison_table(library: ModelLibrary, names: list[str], speeds: list[float] | None = None) -> pd.DataFrame:
    rows = []
    for i, name in enumerate(names):
        s = model_summary(library, name)
        rows.append({"model": name, "cell": s["cell"], "parameters": s["parameters"], "val bpc": s["val bpc"],
                     "training minutes": s["training minutes"], "steps": s["steps"],
                     "sampling chars/s": round(speeds[i]) if speeds else None})
    return pd.DataFrame(rows)


def validation_curves(library: ModelLibrary, names: list[str]) -> pd.DataFrame:
    """Long-format validation curves: one row per (model, evaluation)."""
    rows = []
    for name in names:
        for point in library.info(name).get("metrics", {}).get("curve", []):
            rows.append({"model": name, "step": point["step"], "minutes": round(point["elapsed_s"] / 60, 2),
                         "val bpc": round(point["val_bpc"], 4)})
    return pd.DataFrame(rows, columns=["model", "step", "minutes", "val bpc"])


def cross_scores(library: ModelLibrary, names: list[str], prompt: str, texts: list[str]) -> pd.DataFrame:
    """Bits per character of each model's generated text under every model, each read after the prompt as the
    writer was (the prompt itself is not scored)."""
    rows = []
    for writer, text in zip(names, texts):
        continuation = text[len(prompt):] if text.startswith(prompt) else text
        row = {"text written by": writer}
        for scorer in names:
            checkpoint = library.load(scorer).checkpoint
            context, _ = encode_prompt(checkpoint.tokenizer, prompt)
            bpc = continuation_bpc(checkpoint.model, checkpoint.tokenizer, context, continuation)
            row[f"bpc under {scorer}"] = None if bpc is None else round(bpc, 3)
        rows.append(row)
    return pd.DataFrame(rows)
