"""What the web UI does, without the UI: find models, stream samples, compare cells, describe models, look inside.

Each UI action calls one function here; the functions take plain values, raise CharRNNError for bad input,
and never import gradio, so they are tested and reused directly.

    library.py       the model registry (ModelLibrary) and warm_up
    streaming.py     generate_stream, compare_stream: text as it is written; cross_scores of compared texts
    presentation.py  model cards, comparison tables, validation curves
    charts.py        line charts as Vega-Lite specifications
    inside.py        the Inside tab's views (surprise, neurons, gradient flow, gates, memory test)
"""

import importlib

from charrnn.service.library import (SHIPPED_ORDER, LoadedModel, ModelLibrary, check_all,
                                     check_folders, warm_up)
from charrnn.service.presentation import (COMPARE_DEFAULT, COMPARISON_COLUMNS, comparison_table,
                                          model_card, model_summary, score_columns, validation_charts,
                                          validation_curves)

# streaming.py imports torch: its names are imported on first use, so that the app builds its page without torch
_STREAMING = ("MAX_LENGTH", "MAX_SAMPLES", "UPDATE_INTERVAL", "compare_stream", "cross_scores", "generate_stream",
              "prompt_notes")


def __getattr__(name: str):
    if name in _STREAMING:
        return getattr(importlib.import_module("charrnn.service.streaming"), name)
    raise AttributeError(f"module 'charrnn.service' has no attribute {name!r}")


__all__ = ["COMPARE_DEFAULT", "COMPARISON_COLUMNS", "MAX_LENGTH", "MAX_SAMPLES",
           "SHIPPED_ORDER", "UPDATE_INTERVAL", "LoadedModel", "ModelLibrary", "check_all", "check_folders",
           "compare_stream",
           "comparison_table", "cross_scores", "generate_stream", "model_card", "model_summary", "prompt_notes",
           "score_columns", "validation_charts", "validation_curves", "warm_up"]
