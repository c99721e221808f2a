"""The Inside tab: five views of what the cells compute, each one a named API endpoint."""

from __future__ import annotations

import contextlib
import html

import gradio as gr

from charrnn import service
from charrnn.app.handlers import empty_note, hide_when_filled, plot, user_errors
from charrnn.app.session import PageSession
from charrnn.app.texts import EMPTY_NOTES, INSIDE_HELP, INSIDE_TEXT
from charrnn.service import inputs, inside, retraining


def inside_tab(session: PageSession, names: list[str], jobs: retraining.MemoryRetraining) -> None:
    """The Inside tab: five views of what the cells compute, each one a named API endpoint."""
    library = session.library  # the public models: the page's defaults and the three cells compared
    char_models = names
    gated = inside.gated_models(library)
    trio = [n for n in service.COMPARE_DEFAULT if n in names] or names[:3]
    default = "lstm" if "lstm" in names else (names[0] if names else None)
    gated_default = default if default in gated else (gated[0] if gated else None)

    @user_errors
    def surprise(text, model=default, all_cells=False, session_key=None):
        return inside.surprise(session.view(session_key), text, trio if inputs.flag(all_cells, "all cells") else [model])

    @user_errors
    def neurons(text, model=default, layer=-1, unit=-1, state="hidden", session_key=None):
        return inside.neurons(session.view(session_key), text, model, layer, unit, state)

    @user_errors
    def gradient_flow(text, max_distance=60):
        flow, norms, clipping = inside.gradient_flow(library, text, trio, max_distance)
        return plot(flow), plot(norms), clipping

    @user_errors
    def gates(text, model=gated_default, layer=0, unit=0, session_key=None):
        return inside.gates(session.view(session_key), text, model, layer, unit)

    @user_errors
    def memory(retrain=False, session_key=None, request: gr.Request = None):
        if not inputs.flag(retrain, "retrain"):
            yield "", plot(inside.memory_view())
            return
        # Closing this generator (Gradio does when the page is closed or the event cancelled) stops the
        # watching; a retraining that no page watches stops itself (see charrnn/service/retraining.py).
        with contextlib.closing(retraining.retrain(jobs, session.manager.viewer(session_key),
                                                   getattr(request, "session_hash", None))) as updates:
            for update in updates:
                yield _memory_update(update)

    @user_errors
    def follow_memory(session_key=None, request: gr.Request = None):
        """A reloaded page watches its visitor's retraining, if one runs, to the end."""
        shown = False
        with contextlib.closing(retraining.follow(jobs, session.manager.viewer(session_key),
                                                  getattr(request, "session_hash", None))) as updates:
            for update in updates:
                shown = True
                yield *_memory_update(update), gr.Markdown(visible=False)
        if not shown:  # a generator that yields nothing would empty its outputs
            yield gr.skip(), gr.skip(), gr.skip()

    with gr.Tab("Inside"):
        text = gr.Textbox(label="Text to look at", value=INSIDE_TEXT, lines=8, max_lines=16)
        text_tabs = []
        with gr.Tabs(overflow_behavior="wrap"):  # see page.py
            with gr.Tab("Surprise") as tab:
                text_tabs.append(tab)
                gr.Markdown(INSIDE_HELP["surprise"])
                with gr.Row():
                    s_model = gr.Dropdown(char_models, value=default, label="Model")
                    s_all = gr.Checkbox(label="Show RNN, GRU and LSTM", value=False)
                    s_button = gr.Button("Show surprise", variant="primary")
                s_note = empty_note(EMPTY_NOTES["surprise"])
                s_table = gr.Dataframe(headers=inside.SURPRISE_COLUMNS, label="Bits per character", interactive=False)
                s_html = gr.HTML()
                hide_when_filled(s_button.click(surprise, [text, s_model, s_all, session.key], [s_html, s_table],
                                                api_name="surprise", preprocess=False), s_note)
            with gr.Tab("Neurons") as tab:
                text_tabs.append(tab)
                gr.Markdown(INSIDE_HELP["neurons"])
                with gr.Row():
                    n_model = gr.Dropdown(char_models, value=default, label="Model")
                    n_layer = gr.Number(value=-1, precision=0, label="Layer (0 = first, -1 = last)")
                    n_state = gr.Radio(["hidden", "cell"], value="hidden", label="State (cell: LSTM only)")
                    n_unit = gr.Number(value=-1, precision=0, label="Unit (-1 = the one of this layer and state "
                                                                    "that best tracks a feature)")
                    n_button = gr.Button("Show unit", variant="primary")
                n_note = empty_note(EMPTY_NOTES["neurons"])
                n_html = gr.HTML()
                n_table = gr.Dataframe(headers=inside.NEURON_COLUMNS, label="Units (of every layer and state) that "
                                       "track a feature of the text", interactive=False)
                hide_when_filled(n_button.click(neurons, [text, n_model, n_layer, n_unit, n_state, session.key],
                                                [n_html, n_table], api_name="neurons", preprocess=False), n_note)
            with gr.Tab("Gradient flow") as tab:
                text_tabs.append(tab)
                gr.Markdown(INSIDE_HELP["gradient_flow"])
                with gr.Row():
                    g_distance = gr.Slider(5, 200, value=60, step=1, label="Largest distance k")
                    g_button = gr.Button("Measure", variant="primary")
                g_note = empty_note(EMPTY_NOTES["gradient_flow"])
                g_plot = gr.Plot(show_label=False, elem_classes="chart")
                with gr.Row():
                    g_hist = gr.Plot(show_label=False, elem_classes="chart", min_width=360)
                    g_clip = gr.Dataframe(headers=inside.CLIPPING_COLUMNS, interactive=False,
                                          label="Clipping: the share of training steps whose gradient grew too "
                                                "large and was cut. That is the exploding side; vanishing is the "
                                                "far end of the chart above: a plain RNN has both",
                                          min_width=360)
                hide_when_filled(g_button.click(gradient_flow, [text, g_distance], [g_plot, g_hist, g_clip],
                                                api_name="gradient_flow", preprocess=False), g_note)
            with gr.Tab("Gates") as tab:
                text_tabs.append(tab)
                gr.Markdown(INSIDE_HELP["gates"])
                with gr.Row():
                    # only the cells that have gates: a plain RNN has none to show
                    t_model = gr.Dropdown(gated, value=gated_default, label="Model (LSTM or GRU)")
                    t_layer = gr.Number(value=0, precision=0, label="Layer")
                    t_unit = gr.Number(value=0, precision=0, label="Unit")
                    t_button = gr.Button("Show gates", variant="primary")
                t_note = empty_note(EMPTY_NOTES["gates"])
                t_means = gr.Dataframe(headers=inside.GATE_MEAN_COLUMNS, label="Mean gate activations", interactive=False)
                t_html = gr.HTML()
                hide_when_filled(t_button.click(gates, [text, t_model, t_layer, t_unit, session.key],
                                                [t_means, t_html], api_name="gates", preprocess=False), t_note)
            with gr.Tab("Memory test") as memory_tab:
                gr.Markdown(INSIDE_HELP["memory"])
                with gr.Row():
                    m_retrain = gr.Checkbox(label="Retrain the three tiny models now (under half a minute on a "
                                                  f"free server; stopped at {jobs.budget:g} s, and if you leave "
                                                  "the page; the shipped models' plot stays if it stops)",
                                            value=False)
                    m_button = gr.Button("Run the memory test", variant="primary")
                m_status = gr.HTML()
                m_note = empty_note(EMPTY_NOTES["memory"])
                m_plot = gr.Plot(show_label=False, elem_classes="chart")
                hide_when_filled(m_button.click(memory, [m_retrain, session.key], [m_status, m_plot],
                                                api_name="memory", preprocess=False, show_progress_on=[m_plot]),
                                 m_note)
                # the key is set once the page has loaded (train_tab.py's on_load): then a reloaded page finds
                # its visitor's retraining
                session.key.change(follow_memory, [session.key], [m_status, m_plot, m_note], preprocess=False,
                                   api_visibility="private", show_progress="hidden")
        # The memory test reads no text: its box is hidden there
        memory_tab.select(lambda: gr.Textbox(visible=False), None, text, api_visibility="private")
        for tab in text_tabs:
            tab.select(lambda: gr.Textbox(visible=True), None, text, api_visibility="private")


def _memory_update(update: retraining.Update) -> tuple:
    """A retraining's line (with a bar while it trains) and its chart, once it has one."""
    bar = (f'<progress value="{update.fraction:.3f}" max="1" style="width:100%"></progress>'
           if update.fraction is not None and update.chart is None else "")
    line = f"<p class='retrain-status'>{html.escape(update.message)}</p>{bar}"
    return line, (plot(update.chart) if update.chart else gr.skip())
