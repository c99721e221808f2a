"""What every handler of the page shares: bad input from anyone with the URL answered with a message (never a
traceback), long inputs not kept in the session, and the service's Vega-Lite charts handed to gr.Plot."""

from __future__ import annotations

import functools
import html
import inspect
import json
import sys
import traceback

import gradio as gr
from gradio.components.plot import AltairPlotData

from charrnn.errors import CharRNNError


def error(message: str) -> gr.Error:
    """A message for the page's error toast, which shows it as HTML: a message can hold what a visitor typed (a
    file or dataset name, `<img src=x onerror=...>`), so its <, > and & are escaped to show as themselves. Quotes
    are left as they are: the HTML shows them as written, and API clients, which get the message as text, read it
    as written too."""
    return gr.Error(html.escape(message, quote=False), print_exception=False)


def _message(err: Exception) -> gr.Error:
    """What the visitor sees. A CharRNNError is their input's fault: its message, and no traceback in the log (it
    is not a fault of the server). Any other exception is ours: a message that says so, and the traceback in the
    log to fix it."""
    if isinstance(err, CharRNNError):
        return error(str(err))
    traceback.print_exception(err, file=sys.stderr)
    return error(f"internal error ({type(err).__name__}); the request was not completed. Please report it.")


def user_errors(fn):
    """Every handler's values arrive raw (`preprocess=False`: anyone with the URL can send anything) and are
    checked by the service; this turns what it raises into a message on the page. functools.wraps keeps fn's
    signature, which Gradio reads for the endpoint's input names in "Use via API" and for gr.Progress."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as err:  # noqa: BLE001 - see _message
                raise _message(err) from None
        return stream

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:  # noqa: BLE001 - see _message
            raise _message(err) from None
    return run


class Blocks(gr.Blocks):
    """gr.Blocks whose input conversion (too few values, a file input that is not a file) answers with a message:
    Gradio raises those before any handler runs, as exceptions the visitor sees as a bare error. It also keeps
    no long input text in the session (see _forget_long_inputs)."""

    async def preprocess_data(self, block_fn, inputs, state, explicit_call=False):
        if len(inputs) < len(block_fn.inputs):
            raise error(f"this endpoint takes {len(block_fn.inputs)} input values, got {len(inputs)}")
        try:
            return await super().preprocess_data(block_fn, inputs, state, explicit_call)
        except gr.Error:
            raise
        except Exception as err:  # noqa: BLE001 - a value of the wrong form, from outside
            raise error(f"an input value has the wrong form ({type(err).__name__}: {str(err)[:200]})") from None
        finally:
            _forget_long_inputs(block_fn, inputs, state)


KEPT_INPUT_CHARS = 100_000  # longer input texts are not kept in the session after the call


def _forget_long_inputs(block_fn, inputs, state) -> None:
    """Gradio keeps each session's latest input values in its per-session copy of the page config (for deep
    links), for as long as it keeps the session (up to CHARRNN_MAX_SESSIONS of them): one 10 MB prompt, refused
    or not, would stay in memory that long. Long texts are replaced there by the page's own value once the call
    has them."""
    if state is None:
        return
    for block, value in zip(block_fn.inputs, inputs):
        if isinstance(value, str) and len(value) > KEPT_INPUT_CHARS and block._id in state.config_values:
            props = state.config_values[block._id].get("props", {})
            props["value"] = getattr(block, "value", None)  # the page's own value, as a new session has


def plot(chart: dict) -> AltairPlotData:
    """A Vega-Lite chart from charrnn.service for a gr.Plot (see charrnn/service/charts.py for why not
    gr.LinePlot). "altair" is how gr.Plot names a Vega-Lite specification; naming a chart kind makes Gradio
    fit it to the page's width and theme ("scatter" touches only the mark's default stroke)."""
    return AltairPlotData(plot=json.dumps(chart), chart="scatter")


def empty_note(text: str) -> gr.Markdown:
    """A line where a table or chart is still empty: what will appear there and which button fills it."""
    return gr.Markdown(text, elem_classes="empty-note")


def hide_when_filled(event, note: gr.Markdown) -> None:
    """The note goes once the event has filled its outputs; a refused input leaves it, as nothing was filled."""
    event.success(lambda: gr.Markdown(visible=False), None, note, api_visibility="private")
