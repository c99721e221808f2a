"""Line charts as Vega-Lite specifications (plain dicts): what the page's plots draw.

The page shows these through gr.Plot rather than gr.LinePlot because gr.LinePlot (Gradio 6.31) fixes its colour
domain when it is first drawn and afterwards only swaps the data: a series whose name was not in the first
data (a model the user picks, another cell's gates) is silently dropped. Here each update is a whole chart whose
colour domain is the series in its data, every series keeps one colour on every plot (a model, a cell, a gate),
and lines that coincide can be told apart (dashes and point shapes).
"""

from __future__ import annotations

import math

import pandas as pd

# One colour per series name on every plot: a model keeps its colour when the user picks other models.
COLORS = {"rnn": "#e45756", "gru": "#4c78a8", "lstm": "#54a24b", "lstm_best": "#b279a2",
          "input": "#4c78a8", "forget": "#e45756", "output": "#54a24b", "reset": "#f58518", "update": "#b279a2"}
SPARE_COLORS = ("#f58518", "#72b7b2", "#eeca3b", "#9d755d", "#ff9da6", "#bab0ac")
DASHES = ([1, 0], [8, 4], [2, 3], [12, 3, 2, 3])
SHAPES = ("circle", "square", "triangle-up", "diamond")


def series_colors(names: list[str]) -> list[str]:
    """A colour for each name: its own if it has one, else a spare one not used by the others."""
    spare = iter([c for c in SPARE_COLORS if c not in {COLORS.get(n) for n in names}])
    return [COLORS.get(name) or next(spare, "#888888") for name in names]


def _records(data: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts; NaN becomes null, which Vega-Lite leaves out of a line (the line stops)."""
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
            for row in data.to_dict(orient="records")]


def line_chart(data: pd.DataFrame, x: str, y: str, color: str, title: str | list[str], *, x_title: str | None = None,
               y_title: str | None = None, subtitle: str | list[str] | None = None, y_domain: list[float] | None = None,
               x_log: bool = False, distinct: bool = False, height: int = 300,
               rule: tuple[float, str] | None = None) -> dict:
    """One line per value of `color`, in the order they first appear, each named in the legend.

    distinct: also vary the dash and the point shape, so lines that lie on top of each other stay visible.
    rule: (y, label): a grey dashed line across the chart at y, with its label above its left end (a chance
    level, say): drawn, not a series, so the legend names only the data.
    """
    names = list(dict.fromkeys(data[color].tolist())) if len(data) else []
    scale = {"domain": names, "range": series_colors(names)}
    encoding = {
        "x": {"field": x, "type": "quantitative", "title": x_title or x,
              "scale": {"type": "log"} if x_log else {"zero": False, "nice": False}},
        "y": {"field": y, "type": "quantitative", "title": y_title or y,
              "scale": {"domain": y_domain} if y_domain else {"zero": False}},
        "color": {"field": color, "type": "nominal", "scale": scale, "title": None,
                  "legend": {"orient": "top", "symbolStrokeWidth": 3}},
        "tooltip": [{"field": color, "type": "nominal"}, {"field": x, "type": "quantitative"},
                    {"field": y, "type": "quantitative", "format": ".4~g"}],
    }
    mark = {"type": "line", "strokeWidth": 2.5, "point": distinct and {"filled": False, "size": 60}}
    if distinct:
        encoding["strokeDash"] = {"field": color, "type": "nominal", "legend": None,
                                  "scale": {"domain": names, "range": [DASHES[i % len(DASHES)]
                                                                       for i in range(len(names))]}}
        encoding["shape"] = {"field": color, "type": "nominal", "legend": None,
                             "scale": {"domain": names, "range": [SHAPES[i % len(SHAPES)] for i in range(len(names))]}}
    # Every encoding is the line layer's own: a rule layer would inherit a top-level one (and draw a rule at each
    # point). The top level keeps an empty encoding, which Gradio's chart theming reads. The colour in particular
    # must sit in a layer: that theming recolours a top-level colour encoding with the page's palette.
    layers = [{"mark": mark, "encoding": encoding}]
    if rule:
        value, label = rule
        # the line's own y field, so that the shared axis keeps the line's title
        at = {"data": {"values": [{y: value, "label": label}]}, "encoding": {"y": {"field": y, "type": "quantitative"}}}
        layers += [{**at, "mark": {"type": "rule", "color": "#777", "strokeDash": [6, 4], "strokeWidth": 1.5}},
                   # stroke None: the theme gives every mark an outline in the page's accent colour
                   {**at, "mark": {"type": "text", "align": "left", "baseline": "bottom", "dx": 4, "dy": -3,
                                   "color": "#555", "stroke": None, "fontSize": 12},
                    "encoding": {**at["encoding"], "x": {"value": 0}, "text": {"field": "label"}}}]
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": {"text": title, **({"subtitle": subtitle} if subtitle else {})},
        "height": height,
        "data": {"values": _records(data)},
        "encoding": {},
        "layer": layers,
        # SVG: the legend and the lines are elements a test (or a screen reader) can read
        "usermeta": {"embedOptions": {"renderer": "svg", "actions": False}},
    }
