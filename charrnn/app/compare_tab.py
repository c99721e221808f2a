"""The Compare cells tab: one prompt, three models writing side by side, their table, curves and cross scores."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from charrnn import service
from charrnn.app.handlers import empty_note, hide_when_filled, plot, user_errors
from charrnn.app.session import PageSession
from charrnn.app.texts import CELLS_HELP, EMPTY_NOTES
from charrnn.service.inputs import LIMITS


def compare_tab(session: PageSession, names: list[str]) -> None:
    library = session.library  # the public models: the page's defaults
    default_model = names[0] if names else None
    compare_models = [n if n in names else default_model for n in service.COMPARE_DEFAULT]

    def waiting_scores(chosen, line):
        """The score table while it has no scores: one row that says what is happening."""
        columns = service.score_columns(chosen)
        return gr.Dataframe(pd.DataFrame([[line, *[""] * (len(columns) - 1)]], columns=columns))

    @user_errors
    def chosen_models(model_a, model_b, model_c, session_key=None):
        chosen, library = [model_a, model_b, model_c], session.view(session_key)
        by_time, by_step = service.validation_charts(library, chosen)
        return (service.comparison_table(library, chosen), plot(by_time), plot(by_step),
                gr.Dataframe(headers=service.score_columns(chosen), value=None))

    @user_errors
    def compare(prompt, model_a, model_b, model_c, temperature, length, seed, session_key=None):
        chosen, library = [model_a, model_b, model_c], session.view(session_key)
        by_time, by_step = (plot(chart) for chart in service.validation_charts(library, chosen))
        texts, table = [prompt] * 3, service.comparison_table(library, chosen)
        waiting = waiting_scores(chosen, "scored here once the three texts are written")
        for i, (texts, speeds) in enumerate(service.compare_stream(library, chosen, prompt, length, temperature, seed)):
            table = service.comparison_table(library, chosen, speeds)
            # the curves do not change while the models write: drawn once, not twenty times a second
            yield *texts, table, *((by_time, by_step, waiting) if i == 0 else (gr.skip(),) * 3)
        # scoring reads each text once per model: a visible line while it runs, not only a pulsing border
        yield *texts, table, gr.skip(), gr.skip(), waiting_scores(chosen, "scoring each text under every model...")
        yield *texts, table, by_time, by_step, service.cross_scores(library, chosen, prompt or "", texts)

    with gr.Tab("Compare cells"):
        gr.Markdown(CELLS_HELP)  # it introduces what is below it
        with gr.Row():
            compare_prompt = gr.Textbox(label="Prompt", value="KING RICHARD II:\n", lines=2, scale=3)
            compare_temperature = gr.Slider(0, 2, value=0.7, step=0.05, label="Temperature", scale=1)
            compare_length = gr.Slider(1, LIMITS.sample_chars, value=400, step=1, label="Length", scale=1)
            compare_seed = gr.Number(value=7, precision=0, label="Seed", scale=1)
        compare_button = gr.Button("Compare", variant="primary")
        columns = []
        with gr.Row():
            for default in compare_models:
                with gr.Column():
                    picker = gr.Dropdown(names, value=default, label="Model")
                    text = gr.Textbox(label="Generated text", lines=14, max_lines=24, autoscroll=True,
                                      elem_classes="sample-box")
                    columns.append((picker, text))
        pickers = [p for p, _ in columns]
        table = gr.Dataframe(service.comparison_table(library, compare_models) if names else None,
                             headers=service.COMPARISON_COLUMNS, label="The models", interactive=False)
        by_time, by_step = (service.validation_charts(library, compare_models) if names else (None, None))
        with gr.Row():
            # min_width: on a phone the two charts stack instead of squeezing side by side
            by_time = gr.Plot(by_time and plot(by_time), show_label=False, elem_classes="chart", min_width=360)
            by_step = gr.Plot(by_step and plot(by_step), show_label=False, elem_classes="chart", min_width=360)
        scores = gr.Dataframe(headers=service.score_columns(compare_models), interactive=False,
                              label="Each generated text (prompt excluded) scored by every model, in bits per character: "
                                    "lower = more plausible to that model")
        scores_note = empty_note(EMPTY_NOTES["scores"])
        for picker in pickers:
            picker.change(chosen_models, [*pickers, session.key], [table, by_time, by_step, scores], api_visibility="private",
                          preprocess=False)
        hide_when_filled(compare_button.click(
            compare, [compare_prompt, *pickers, compare_temperature, compare_length, compare_seed, session.key],
            [*(t for _, t in columns), table, by_time, by_step, scores], api_name="compare", preprocess=False,
            concurrency_limit=LIMITS.streams, concurrency_id="sampling"), scores_note)
