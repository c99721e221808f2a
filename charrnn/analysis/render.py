"""Text coloured character by character, as HTML (no UI library needed: any page can show it)."""

from __future__ import annotations

import html

import numpy as np

STYLE = ("font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 14px; line-height: 1.6; "
         "white-space: pre-wrap; word-break: break-word;")


def _char_html(ch: str) -> str:
    if ch == "\n":
        return '<span style="opacity:.35">↵</span>\n'
    return html.escape(ch)


# A tapped (focused) character shows its tooltip under the text: a title appears only on hover, which a touch
# screen does not have. The page has no script for it; this rule travels with the HTML.
TAP_STYLE = ("<style>.charrnn-heat { position: relative; } .charrnn-heat span[title]:focus { outline: 2px solid; } "
             ".charrnn-heat span[title]:focus::after { content: attr(title); position: absolute; left: 0; top: 100%; "
             "z-index: 5; white-space: pre-wrap; padding: 4px 8px; font-size: 13px; "
             "background: var(--background-fill-primary, white); border: 1px solid #999; border-radius: 4px; }</style>")


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
