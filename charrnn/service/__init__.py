"""What the web UI does, without the UI: find models, stream samples, compare cells, describe models, look inside.

Each UI action calls one function here; the functions take plain values, raise CharRNNError for bad input,
and never import gradio, so they are tested and reused directly.

    library.py       the model registry (ModelLibrary) and warm_up
    streaming.py     generate_stream, compare_stream: text as it is written
    presentation.py  model cards, comparison tables, validation curves, cross scores
    charts.py        line charts as Vega-Lite specifications
    inside.py        the Inside tab's views (surprise, neurons, gradient flow, gates, memory test)
"""

from charrnn.service.library import (CHECKPOINTS_DIR, ROOT, SHIPPED_ORDER, LoadedModel, ModelLibrary, check_all,
                                     warm_up)
from charrnn.service.presentation import (CELL_NAMES, COMPARE_DEFAULT, COMPARISON_COLUMNS, comparison_table,
                                          cross_scores, model_card, model_summary, score_columns, validation_charts,
                                          validation_curves)
from charrnn.service.streaming import (MAX_LENGTH, MAX_SAMPLES, UPDATE_INTERVAL, compare_stream, generate_stream,
                                       prompt_notes)

__all__ = ["CELL_NAMES", "CHECKPOINTS_DIR", "COMPARE_DEFAULT", "COMPARISON_COLUMNS", "MAX_LENGTH", "MAX_SAMPLES",
           "ROOT", "SHIPPED_ORDER", "UPDATE_INTERVAL", "LoadedModel", "ModelLibrary", "check_all", "compare_stream",
           "comparison_table", "cross_scores", "generate_stream", "model_card", "model_summary", "prompt_notes",
           "score_columns", "validation_charts", "validation_curves", "warm_up"]
