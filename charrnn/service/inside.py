"""The Inside tab's views without the UI: each takes a model library and plain values, and returns tables, HTML
and charts (Vega-Lite specifications, see charts.py).

surprise, neurons, gradient_flow, gates and memory are what the app's endpoints of the same names return. The
computing is done by charrnn.analysis (pure functions of a model and a text); this module picks the models,
checks the user's input and lays the results out. The analysis modules that need torch are imported by the
views that use them, so that the app builds its page without importing torch.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from charrnn.cells import GATED, cell_info
from charrnn.analysis import gates as gate_analysis
from charrnn.analysis import neurons as neuron_analysis
from charrnn.analysis.render import colored_text, equations_html, gate_heatmap
from charrnn.checkpoint.folder import find_checkpoints
from charrnn.errors import CharRNNError, check
from charrnn.service import charts, inputs
from charrnn.service.inputs import LIMITS
from charrnn.service.library import ModelLibrary

MAX_TEXT = LIMITS.inside_chars  # characters: keeps every view under a couple of seconds
MAX_UNITS = 1_000_000  # any layer or unit number beyond this is a typo; the model's own sizes are checked later


def _one_thread(view):
    """A view's torch work on one thread: it steps a model one character at a time (charrnn.device)."""
    @functools.wraps(view)
    def run(*args, **kwargs):
        from charrnn.device import one_torch_thread

        with one_torch_thread():
            return view(*args, **kwargs)
    return run


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


@_one_thread
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


@_one_thread
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


@_one_thread
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
        curves[name] = gradients.gradient_flow(checkpoint.model, ids, int(max_distance))
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
            if underflows else [])
    # short lines: a chart's title does not wrap, and a phone is narrow
    flow = charts.line_chart(gradients.gradient_flow_table(curves), "distance", "log10 norm", "model",
                             "The gradient from k characters back", x_title="distance k (characters back)",
                             y_title="log10 of the gradient, relative to k = 0",
                             subtitle=gradient_takeaway(curves) + note)
    norms = pd.concat(histograms, ignore_index=True)
    # The bins are log-spaced: each is drawn at its geometric middle on a log axis, so none is squeezed
    norms["gradient norm"] = np.sqrt(norms["norm from"].clip(lower=norms["norm to"] / 10 ** 0.2) * norms["norm to"])
    norms["share of steps"] = norms["share"].round(4)
    histogram = charts.line_chart(norms, "gradient norm", "share of steps", "model",
                                  "Pre-clipping gradient norms in training", x_title="gradient norm (log scale)",
                                  x_log=True, distinct=True)
    return flow, histogram, pd.DataFrame(clipping, columns=CLIPPING_COLUMNS)


VANISHED = 1e-4  # a gradient this much smaller than the nearest teaches next to nothing next to it


def gradient_takeaway(curves: dict[str, np.ndarray]) -> list[str]:
    """What to notice in the curves, from their values at the largest distance: how much of the nearest gradient
    each model still gets from that far back, and whether the weakest can learn from there."""
    def relative(curve) -> float:
        return float(curve[-1]) if len(curve) else float("nan")

    def size(value: float) -> str:
        return "below 1e-45" if value <= 0 else f"{value:.0e}".replace("e-0", "e-").replace("e+00", "")

    k = min(len(c) for c in curves.values()) - 1
    ranked = sorted(curves, key=lambda name: relative(curves[name]))
    sizes = ", ".join(f"{name} {size(relative(curves[name]))}" for name in curves)
    weakest = ranked[0]
    verdict = (f"{weakest} cannot learn from that far: it vanished" if relative(curves[weakest]) < VANISHED
               else f"{'each' if len(curves) > 1 else 'it'} still learns from that far")
    return [f"Share of the k = 0 gradient left at k = {k}:", sizes, verdict]


# 4. Gates ---------------------------------------------------------------------------------------------------
GATE_MEAN_COLUMNS = gate_analysis.MEAN_COLUMNS


def gated_models(library: ModelLibrary) -> list[str]:
    """The models that have gates (LSTM and GRU): the only ones the Gates view can show."""
    return [n for n in library.names() if library.info(n)["model"]["cell"] in GATED]


@_one_thread
def gates(library: ModelLibrary, text: str, name: str, layer: int = 0, unit: int = 0) -> tuple[pd.DataFrame, str]:
    """Mean gate activations per layer, and the text with one unit's gates under each character, beside the
    cell's equations: how much of the old state survives each step."""
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
    cell = cell_info(config.cell)
    values = {gate: recorded.gates[int(layer)][gate][:, int(unit)].numpy() for gate in cell.gates}
    tips = [f"{ch!r}: " + ", ".join(f"{gate} {v[t]:.2f}" for gate, v in values.items()) for t, ch in enumerate(text)]
    kept = float(np.mean(values[cell.keep_gate]))
    title = (f"{name}, layer {layer}, unit {unit}: its {cell.keep_gate} gate averages {kept:.2f}: it keeps about "
             f"{kept:.0%} of its memory at each character" + ("" if kept >= 0.5 else ", so it forgets fast"))
    heatmap = gate_heatmap(list(text), values, {gate: charts.COLORS[gate] for gate in cell.gates}, tips, title)
    equations = equations_html(cell.equations, f"One step of the {cell.label}")
    # side by side where there is room; the equations go under the text on a phone
    html = (f"<div style='display:flex;flex-wrap:wrap;gap:8px 24px;align-items:flex-start'>"
            f"<div style='flex:3 1 340px;min-width:0'>{heatmap}</div>"
            f"<div style='flex:1 1 260px'>{equations}</div></div>")
    return gate_analysis.gate_means(recorded, config.cell), html


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


def memory_view() -> dict:
    """A chart of the accuracy after each gap of the shipped memory-test models (charrnn.service.retraining
    trains three new ones)."""
    return memory_chart(memory_models())


@_one_thread
def memory_chart(models: dict[str, object], retrained: bool = False) -> dict:
    from charrnn.analysis import memory

    table = memory_test(models)
    chance = 1 / len(memory.ROUTINE)  # a guess among the activities
    # distinct: the LSTM and the GRU both sit at 1.0 for most gaps; dashes and point shapes keep both in sight,
    # and the subtitle says when they coincide
    title = "Accuracy of the first activity after the rain" + (" (models retrained now)" if retrained else "")
    return charts.line_chart(table, "gap (rainy days)", "accuracy", "model", title, y_domain=[0, 1.05],
                             distinct=True, subtitle=memory_takeaway(table, chance),
                             rule=(chance, f"a guess: {chance:.0%}"))


def memory_takeaway(table: pd.DataFrame, chance: float) -> list[str]:
    """The accuracies at the longest gap tested, against chance, and which lines lie on top of each other."""
    gap = table["gap (rainy days)"].max()
    last = table[table["gap (rainy days)"] == gap]
    scores = ", ".join(f"{row.model} {row.accuracy:.0%}" for row in last.itertuples())
    lines = [f"After {gap} rainy days: {scores}", f"(a guess would get {chance:.0%}: the dashed line)"]
    by_model = {name: rows["accuracy"].round(2).tolist() for name, rows in table.groupby("model", sort=False)}
    names = list(by_model)
    same = [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if by_model[a] == by_model[b]]
    if same:  # a line drawn exactly over another: said, as no dash shows it well
        lines.append(f"{same[0][0]} and {same[0][1]} coincide: one line hides the other")
    return lines
