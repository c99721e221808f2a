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


def colored_text(chars: list[str], values: np.ndarray, tooltips: list[str], low: float, high: float,
                 diverging: bool = False, title: str = "") -> str:
    """One <span> per character, its background showing the value: white (low) to red (high), or for a
    diverging scale blue (low) - white - red (high). Hovering shows the tooltip."""
    spans = []
    for ch, value, tip in zip(chars, values, tooltips):
        if diverging:
            x = float(np.clip(value / max(abs(low), abs(high), 1e-9), -1, 1))
            color = f"rgba(220,40,40,{x:.2f})" if x >= 0 else f"rgba(40,90,230,{-x:.2f})"
        else:
            x = float(np.clip((value - low) / max(high - low, 1e-9), 0, 1))
            color = f"rgba(230,60,20,{x:.2f})"
        spans.append(f'<span title="{html.escape(tip)}" style="background:{color}">{_char_html(ch)}</span>')
    heading = f"<div style='font-weight:600;margin:6px 0'>{html.escape(title)}</div>" if title else ""
    return f"{heading}<div class='charrnn-heat' style='{STYLE}'>{''.join(spans)}</div>"
