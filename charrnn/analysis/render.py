"""Text coloured character by character, as HTML (no UI library needed: any page can show it)."""

from __future__ import annotations

import html
import re

import numpy as np

STYLE = ("font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 14px; line-height: 1.6; "
         "white-space: pre-wrap; word-break: break-word;")


def _char_html(ch: str) -> str:
    if ch == "\n":
        return '<span style="opacity:.35">↵</span>\n'
    return html.escape(ch)


# A tapped (focused) character shows its tooltip in a bar at the foot of the window: a title appears only on hover,
# which a touch screen does not have, and under a long text a tip would be out of sight. The page has no script
# for it; this rule travels with the HTML.
TAP_STYLE = ("<style>.charrnn-heat span[title]:focus { outline: 2px solid; } "
             ".charrnn-heat span[title]:focus::after { content: attr(title); position: fixed; left: 8px; right: 8px; "
             "bottom: 8px; z-index: 50; white-space: pre-wrap; padding: 8px 12px; font-size: 14px; "
             "font-family: ui-monospace, SFMono-Regular, Menlo, monospace; text-align: left; "
             "background: var(--background-fill-primary, white); border: 1px solid #999; border-radius: 6px; "
             "box-shadow: 0 2px 8px rgba(0,0,0,.25); }</style>")


def color_legend(low: float, high: float, unit: str, diverging: bool = False) -> str:
    """A small gradient bar with its end values: what the colours of colored_text mean."""
    if diverging:
        gradient, labels = "rgba(40,90,230,1), white, rgba(220,40,40,1)", (f"{low:.2g}", "0", f"{high:.2g}")
    else:
        gradient, labels = "rgba(230,60,20,0), rgba(230,60,20,1)", (f"{low:.2g}", f"{high:.2g}")
    ends = "".join(f"<span>{html.escape(label)}</span>" for label in labels)
    return ("<div class='charrnn-legend' style='display:flex;align-items:center;gap:8px;font-size:13px;"
            f"margin:4px 0'><span>{html.escape(unit)}:</span><div style='width:180px'>"
            f"<div style='height:10px;border:1px solid #999;background:linear-gradient(to right, {gradient})'></div>"
            f"<div style='display:flex;justify-content:space-between'>{ends}</div></div></div>")


def colored_text(chars: list[str], values: np.ndarray, tooltips: list[str], low: float, high: float,
                 diverging: bool = False, title: str = "", unit: str = "") -> str:
    """One <span> per character, its background showing the value: white (low) to red (high), or for a
    diverging scale blue (low) - white - red (high). Hovering (or tapping) shows the tooltip; a unit adds a
    colour legend."""
    spans = []
    for ch, value, tip in zip(chars, values, tooltips):
        if diverging:
            x = float(np.clip(value / max(abs(low), abs(high), 1e-9), -1, 1))
            color = f"rgba(220,40,40,{x:.2f})" if x >= 0 else f"rgba(40,90,230,{-x:.2f})"
        else:
            x = float(np.clip((value - low) / max(high - low, 1e-9), 0, 1))
            color = f"rgba(230,60,20,{x:.2f})"
        spans.append(f'<span title="{html.escape(tip)}" tabindex="0" style="background:{color}">'
                     f'{_char_html(ch)}</span>')
    heading = f"<div style='font-weight:600;margin:6px 0'>{html.escape(title)}</div>" if title else ""
    legend = color_legend(low, high, unit, diverging) if unit else ""
    return f"{TAP_STYLE}{heading}{legend}<div class='charrnn-heat' style='{STYLE}'>{''.join(spans)}</div>"


def _subscripts(text: str) -> str:
    """`x_t` and `h_{t−1}` as HTML subscripts (the text escaped first)."""
    return re.sub(r"_(\{[^}]*\}|\w)", lambda m: f"<sub>{m.group(1).strip('{}')}</sub>", html.escape(text))


def equations_html(equations: tuple[tuple[str, str], ...], title: str) -> str:
    """A cell's equations, each with what it does (cells.Cell.equations)."""
    rows = "".join(f"<div style='margin:6px 0'><div style='font-family:ui-serif,Georgia,serif;font-size:15px'>"
                   f"{_subscripts(eq)}</div><div style='font-size:12px;opacity:.8'>{_subscripts(gloss)}</div></div>"
                   for eq, gloss in equations)
    return (f"<div class='charrnn-equations'><div style='font-weight:600'>{html.escape(title)}</div>{rows}"
            "<div style='font-size:12px;opacity:.8'>σ squashes to 0..1 (a gate); ⊙ multiplies unit by unit</div></div>")


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha:.2f})"


# Each character is a little column: the character, then one stripe per gate. Words wrap like text, so a phone
# shows as much as a desktop, a line at a time; a line break of the text starts a new row.
GATE_STYLE = ("<style>.charrnn-gate-text { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; "
              "font-size: 14px; line-height: 1.2; } "
              ".charrnn-gate-line { display: flex; flex-wrap: wrap; margin-bottom: 6px; } "
              ".charrnn-gate-text .w { display: inline-flex; white-space: nowrap; } "
              ".charrnn-gate-text span[title] { display: inline-flex; flex-direction: column; min-width: 0.62em; "
              "text-align: center; white-space: pre; } "
              ".charrnn-gate-text b { font-weight: normal; } .charrnn-gate-text i { display: block; height: 6px; }"
              "</style>")

def gate_heatmap(chars: list[str], gates: dict[str, np.ndarray], colors: dict[str, str], tooltips: list[str],
                 title: str = "") -> str:
    """The text with a stripe per gate under each character, its colour as strong as the gate is open (white:
    0, shut; full colour: 1, open), and a key naming the stripes from the top. Tapping a character shows its
    values."""
    names = list(gates)
    key = "".join(f"<span style='display:inline-flex;align-items:center;gap:4px;margin-right:12px'>"
                  f"<span style='width:28px;height:8px;border:1px solid #999;background:linear-gradient(to right, "
                  f"{_rgba(colors[n], 0)}, {_rgba(colors[n], 1)})'></span>{html.escape(n)}</span>" for n in names)
    lines, words, word = [], [], []  # a row per line of the text; a word ends in its space
    for t, (ch, tip) in enumerate(zip(chars, tooltips)):
        stripes = "".join(f"<i style='background:{_rgba(colors[n], float(np.clip(gates[n][t], 0, 1)))}'></i>"
                          for n in names)
        # in an element of its own: a bare space would be dropped from the column (a flex box)
        shown = "\u00a0" if ch == " " else _char_html(ch).rstrip("\n")
        word.append(f'<span title="{html.escape(tip)}" tabindex="0"><b>{shown}</b>{stripes}</span>')
        if ch in " \n":
            words.append("".join(word))
            word = []
        if ch == "\n":
            lines.append(words)
            words = []
    lines.append(words + ["".join(word)])
    rows = "".join("<div class='charrnn-gate-line'>" + "".join(f"<span class='w'>{w}</span>" for w in line if w)
                   + "</div>" for line in lines if any(line))
    heading = f"<div style='font-weight:600;margin:6px 0'>{html.escape(title)}</div>" if title else ""
    return (f"{TAP_STYLE}{GATE_STYLE}{heading}<div class='charrnn-legend' style='font-size:13px;margin:4px 0'>"
            f"Stripes under each character, from the top: {key}(pale: shut, 0; strong: open, 1)</div>"
            f"<div class='charrnn-heat charrnn-gate-text'>{rows}</div>")
