"""The Inside tab's views without the UI: each takes a model library and plain values, and returns tables, HTML
and charts (Vega-Lite specifications, see charts.py).

surprise, neurons, gradient_flow, gates and memory are what the app's endpoints of the same names return. The
computing is done by charrnn.analysis (pure functions of a model and a text); this module picks the models,
checks the user's input and lays the results out. The analysis modules that need torch are imported by the
views that use them, so that the app builds its page without importing torch.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd

from charrnn.cells import GATED, cell_info
from charrnn.analysis import gates as gate_analysis
from charrnn.analysis import neurons as neuron_analysis
from charrnn.analysis.render import colored_text
from charrnn.checkpoint.folder import find_checkpoints
from charrnn.errors import CharRNNError, check
from charrnn.service import charts, inputs
from charrnn.service.inputs import LIMITS
from charrnn.service.library import ModelLibrary

MAX_TEXT = LIMITS.inside_chars  # characters: keeps every view under a couple of seconds
MAX_UNITS = 1_000_000  # any layer or unit number beyond this is a typo; the model's own sizes are checked later


def _text(text) -> str:
    text = inputs.text(text, "the text", MAX_TEXT)
    check(len(text) >= 2, "paste or type a text of at least two characters to look inside")
    return text


def _char_model(library: ModelLibrary, name: str):
    loaded = library.load(inputs.model_name(name))
    if loaded.tokenizer.kind != "char":
        raise CharRNNError(f"{name} uses a subword tokenizer; the Inside views need a character model")
    return loaded.checkpoint


# 1. Surprise ------------------------------------------------------------------------------------------------
SURPRISE_COLUMNS = ["model", "bits per character", "total bits", "unknown characters"]


def surprise(library: ModelLibrary, text: str, names: list[str]) -> tuple[str, pd.DataFrame]:
    """Heat maps of surprisal (bits) for each model, and the text's bits per character under each."""
    from charrnn.analysis.surprise import surprise as score_surprise

    text = _text(text)
    check(isinstance(names, (list, tuple)) and bool(names), "choose at least one model")
    parts, rows = [], []
    for name in names:
        checkpoint = _char_model(library, name)
        result = score_surprise(checkpoint.model, checkpoint.tokenizer, text)
        tips = [f"{ch!r}: {bits:.2f} bits. Expected: " + ", ".join(f"{c!r} {p:.0%}" for c, p in top)
                for ch, bits, top in zip(result.chars, result.bits, result.top)]
        parts.append(colored_text(result.chars, result.bits, tips, 0.0, 8.0, title=f"{name}: {result.bpc:.3f} bits "
                                  "per character", unit="surprise in bits (darkest: 8 or more)"))
        rows.append({"model": name, "bits per character": round(result.bpc, 4),
                     "total bits": round(float(result.bits.sum()), 1),
                     "unknown characters": "".join(result.unknown)})
    return "\n".join(parts), pd.DataFrame(rows, columns=SURPRISE_COLUMNS)


# 2. Neurons -------------------------------------------------------------------------------------------------
NEURON_COLUMNS = ["feature", "layer", "state", "unit", "correlation"]


def neurons(library: ModelLibrary, text: str, name: str, layer: int = -1, unit: int = -1,
            state: str = "hidden") -> tuple[str, pd.DataFrame]:
    """The text coloured by one unit's activation, and the units (of any layer and state) that track a feature.

    Layer -1 is the last layer; unit -1 is the unit of the chosen layer and state that tracks a feature best.
    """
    from charrnn.analysis.trace import trace

    text = _text(text)
    layer = inputs.integer(layer, "the layer", -1, MAX_UNITS, default=-1)
    unit = inputs.integer(unit, "the unit", -1, MAX_UNITS, default=-1)
    state = inputs.choice(state, "the state", ("hidden", "cell"))
    checkpoint = _char_model(library, name)
    config = checkpoint.model.config
    layer = config.num_layers - 1 if layer is None or int(layer) < 0 else int(layer)
    check(layer < config.num_layers, f"{name} has layers 0..{config.num_layers - 1}, not {layer}")
    check(state == "hidden" or cell_info(config.cell).has_cell_state, "only an LSTM has a cell state; choose 'hidden'")
    recorded = trace(checkpoint.model, checkpoint.tokenizer.encode(text))
    ranked = neuron_analysis.interpretable_units(recorded, text)
    table = pd.DataFrame([{"feature": s.feature, "layer": s.layer, "state": s.state, "unit": s.unit,
                           "correlation": round(s.correlation, 3)} for s in ranked], columns=NEURON_COLUMNS)
    found = ""
    if unit is None or int(unit) < 0:
        best = neuron_analysis.interpretable_units(recorded, text, per_feature=1, only=(layer, state))
        check(bool(best), f"no unit of layer {layer}'s {state} state tracks a feature of this text; "
                          "pick a unit by number")
        unit = best[0].unit
        found = f": of this layer's {state} state, the unit that best tracks {best[0].feature} " \
                f"(correlation {best[0].correlation:+.2f})"
    check(0 <= int(unit) < config.hidden_size, f"{name} has units 0..{config.hidden_size - 1}, not {unit}")
    values = neuron_analysis.activations(recorded, layer, int(unit), state)
    tips = [f"{ch!r}: {v:+.3f}" for ch, v in zip(text, values)]
    limit = float(np.abs(values).max()) or 1.0
    title = f"{name}, layer {layer}, {state} unit {unit}{found} (blue negative, red positive)"
    return colored_text(list(text), values, tips, -limit, limit, diverging=True, title=title,
                        unit="activation"), table


# 3. Gradient flow -------------------------------------------------------------------------------------------
CLIPPING_COLUMNS = ["model", "cut above (gradient size)", "clipped steps", "steps"]


def gradient_flow(library: ModelLibrary, text: str, names: list[str], max_distance: int = 60
                  ) -> tuple[dict, dict, pd.DataFrame]:
    """(vanishing side) a chart of relative ||d loss_T / d s_{T-k}|| against k for each model; (exploding side) a
    chart of the pre-clipping gradient norms recorded in training, and a table of the share of clipped steps."""
    from charrnn.analysis import gradients

    text = _text(text)
    max_distance = inputs.integer(max_distance, "the distance", 1, 200, default=60)
    curves, histograms, clipping = {}, [], []
    for name in names:
        checkpoint = _char_model(library, name)
        ids = checkpoint.tokenizer.encode(text)
        check(len(ids) > int(max_distance) + 2,
              f"the text needs more than {int(max_distance) + 2} characters for a distance of {max_distance}")
        curves[name] = gradients.gradient_flow(checkpoint.model, ids, int(max_distance), positions=3)
        metrics = checkpoint.metrics
        hist = gradients.grad_norm_histogram(metrics)
        hist.insert(0, "model", name)
        histograms.append(hist)
        grad = metrics.get("grad_norm") or {}
        clipping.append({"model": name, "cut above (gradient size)": grad.get("clip"),
                         "clipped steps": f"{grad.get('clipped_fraction', float('nan')):.1%}",
                         "steps": f"{sum(grad.get('counts', [])):,}"})
    underflows = [f"{name} from k = {k}" for name, k in
                  ((name, gradients.first_underflow(curve)) for name, curve in curves.items()) if k is not None]
    note = (["The line stops where the norm fell below", f"float32's smallest number (~1e-45): {', '.join(underflows)}"]
            if underflows else None)  # two short lines: they fit a phone
    flow = charts.line_chart(gradients.gradient_flow_table(curves), "distance", "log10 norm", "model",
                             gradient_takeaway(curves), x_title="distance k (characters back)",
                             y_title="log10 of the gradient, relative to k = 0", subtitle=note)
    norms = pd.concat(histograms, ignore_index=True)
    # The bins are log-spaced: each is drawn at its geometric middle on a log axis, so none is squeezed
    norms["gradient norm"] = np.sqrt(norms["norm from"].clip(lower=norms["norm to"] / 10 ** 0.2) * norms["norm to"])
    norms["share of steps"] = norms["share"].round(4)
    histogram = charts.line_chart(norms, "gradient norm", "share of steps", "model",
                                  "Pre-clipping gradient norms in training", x_title="gradient norm (log scale)",
                                  x_log=True, distinct=True)
    return flow, histogram, pd.DataFrame(clipping, columns=CLIPPING_COLUMNS)


def gradient_takeaway(curves: dict[str, np.ndarray]) -> list[str]:
    """What to notice in the curves, from their values at the largest distance: how much of the signal from that
    far back the weakest and the strongest model still get."""
    def relative(curve) -> float:
        return float(curve[-1]) if len(curve) else float("nan")

    ranked = sorted(curves, key=lambda name: relative(curves[name]))
    weakest, strongest = ranked[0], ranked[-1]
    k = min(len(c) for c in curves.values()) - 1

    def size(value: float) -> str:
        return "below 1e-45" if value <= 0 else f"{value:.0e}".replace("e-0", "e-").replace("e+00", "")

    line = f"From {k} characters back, {weakest} gets {size(relative(curves[weakest]))} of the nearest gradient"
    if strongest != weakest:
        line += f", {strongest} {size(relative(curves[strongest]))}"
    # two lines: a chart's title does not wrap, and one line is wider than a phone
    return [line + (":" if len(ranked) > 1 else ""), "a model learns little from where its gradient has vanished"]


# 4. Gates ---------------------------------------------------------------------------------------------------
GATE_MEAN_COLUMNS = gate_analysis.MEAN_COLUMNS


def gated_models(library: ModelLibrary) -> list[str]:
    """The models that have gates (LSTM and GRU): the only ones the Gates view can show."""
    return [n for n in library.names() if library.info(n)["model"]["cell"] in GATED]


def gates(library: ModelLibrary, text: str, name: str, layer: int = 0, unit: int = 0) -> tuple[pd.DataFrame, dict, str]:
    """Mean gate activations per layer, a chart of one unit's gates per character, and the text coloured by its
    forget gate (LSTM) or update gate (GRU): how much of the old state survives each step."""
    from charrnn.analysis.trace import trace

    text = _text(text)
    layer = inputs.integer(layer, "the layer", 0, MAX_UNITS, default=0)
    unit = inputs.integer(unit, "the unit", 0, MAX_UNITS, default=0)
    checkpoint = _char_model(library, name)
    config = checkpoint.model.config
    check(config.cell in GATED, f"{name} is a plain RNN: it has no gates. Pick an LSTM or a GRU")
    check(0 <= int(layer) < config.num_layers, f"{name} has layers 0..{config.num_layers - 1}, not {layer}")
    check(0 <= int(unit) < config.hidden_size, f"{name} has units 0..{config.hidden_size - 1}, not {unit}")
    recorded = trace(checkpoint.model, checkpoint.tokenizer.encode(text))
    keep = cell_info(config.cell).keep_gate
    values = recorded.gates[int(layer)][keep][:, int(unit)].numpy()
    tips = [f"{ch!r}: {keep} gate {v:.3f}" for ch, v in zip(text, values)]
    html = colored_text(list(text), values, tips, 0.0, 1.0, unit=f"{keep} gate",
                        title=f"{name}, layer {layer}, unit {unit}: {keep} gate (red = keeps its memory)")
    kept = float(np.mean(values))
    series = charts.line_chart(gate_analysis.gate_series(recorded, config.cell, int(layer), int(unit)),
                               "position", "value", "gate", f"{name}, layer {layer}, unit {unit}: its gates per "
                               "character", x_title="character position", y_title="gate value", y_domain=[0, 1],
                               subtitle=[f"Its {keep} gate averages {kept:.2f}:", f"it keeps about {kept:.0%} of its "
                                         "memory at each character" + ("" if kept >= 0.5 else ", so it forgets fast")])
    return gate_analysis.gate_means(recorded, config.cell), series, html


# 5. Memory test ---------------------------------------------------------------------------------------------
def memory_models(root=None) -> dict[str, object]:
    """The shipped memory-test models (under `root`, by default checkpoints/memory), by cell name (rnn, gru,
    lstm), in that order."""
    from charrnn.analysis import memory
    from charrnn.paths import MEMORY_DIR
    from charrnn.checkpoint.saving import load_checkpoint

    found = {}
    for path in find_checkpoints(MEMORY_DIR if root is None else root):
        checkpoint = load_checkpoint(path)
        found[memory.cell_name(checkpoint.model.config.cell)] = checkpoint.model
    order = [memory.cell_name(c) for c in memory.CELLS]
    return dict(sorted(found.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order)))


def memory_test(models: dict[str, object], probes: int = 200) -> pd.DataFrame:
    from charrnn.analysis import memory

    check(bool(models), "no memory-test models: train them first")
    return memory.accuracy_table(models, memory.GAPS, probes)


_retraining = threading.Lock()  # one live retraining per server: it takes both cores for up to a minute


def memory_view(retrain: bool = False, progress=None, budget_seconds: float | None = None) -> dict:
    """A chart of the accuracy after each gap of the shipped memory-test models, or of three trained now
    (seconds); progress(fraction, message) while they train. Retraining happens only for a real `True`, one
    request at a time, and stops with a message if it runs past its time budget."""
    from charrnn.analysis import memory

    if not inputs.flag(retrain, "retrain"):
        return _memory_chart(memory_models())
    budget = LIMITS.retrain_seconds if budget_seconds is None else budget_seconds
    if not _retraining.acquire(blocking=False):
        raise CharRNNError("another visitor is retraining the memory-test models right now; try again in a "
                           "minute, or run the test on the shipped models")
    try:
        deadline = time.monotonic() + budget

        def report(fraction: float, message: str) -> None:
            if time.monotonic() > deadline:
                raise CharRNNError(f"retraining ran past its {budget:g} s budget on this busy host and was "
                                   "stopped; the shipped models are unchanged")
            if progress:
                progress(fraction, message)

        return _memory_chart(memory.train_models(progress=report))
    finally:
        _retraining.release()


def _memory_chart(models: dict[str, object]) -> dict:
    from charrnn.analysis import memory

    table = memory_test(models)
    chance = 1 / len(memory.ROUTINE)  # a guess among the activities
    # distinct: the LSTM and the GRU both sit at 1.0 for most gaps; dashes and point shapes keep both in sight
    return charts.line_chart(table, "gap (rainy days)", "accuracy", "model",
                             "Accuracy of the first activity after the rain", y_domain=[0, 1.05], distinct=True,
                             subtitle=memory_takeaway(table, chance))


def memory_takeaway(table: pd.DataFrame, chance: float) -> list[str]:
    """The accuracies at the longest gap tested, against chance."""
    gap = table["gap (rainy days)"].max()
    last = table[table["gap (rainy days)"] == gap]
    scores = ", ".join(f"{row.model} {row.accuracy:.0%}" for row in last.itertuples())
    return [f"After {gap} rainy days: {scores}", f"(a guess would get {chance:.0%})"]
