"""charrnn's web UI: generate text with character-level RNN / GRU / LSTM models and compare the cells.

    python app.py        # then open http://127.0.0.1:7860

Host and port come from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, as on Hugging Face Spaces. Handlers are
thin: each calls one function of charrnn.service and turns a CharRNNError into a message on the page.
"""

from __future__ import annotations

import gradio as gr

from charrnn import service
from charrnn.errors import CharRNNError

TITLE = "charrnn: character-level RNN, GRU and LSTM"
INTRO = """# charrnn
Character-level language models trained on Tiny Shakespeare. They read and write one character at a time, and
everything they know about spelling, names and verse lives in a few million numbers and a hidden state."""

SAMPLING_HELP = """**Temperature** divides the model's scores before they become probabilities: below 1 the likely
characters get likelier (safer, more repetitive text), above 1 the distribution flattens (wilder text, more
misspellings); 0 always takes the most likely character. **Top-k** samples only among the k most likely characters
(0 = all). **Top-p** (nucleus) samples only among the most likely characters whose probabilities add up to p
(1 = all). The same seed with the same settings gives the same text; -1 picks a new one each time."""

CELLS_HELP = """**Why LSTM and GRU write better than the plain RNN.** All three are trained by backpropagation through
time: the error at one character is sent back through every earlier step. In a plain RNN that signal is
multiplied by the same recurrent matrix and squashed by tanh at each step, so it shrinks (vanishes) or blows up
(explodes) exponentially with distance, and the model cannot learn to use what it read more than a few dozen
characters ago. The LSTM's cell state is updated by addition, controlled by forget, input and output gates, and
the GRU's update gate interpolates between the old and the new state: both give the gradient a path that does not
shrink, so they remember who is speaking, whether a line is open, and how long a verse has run. Gradient
clipping (used in training here) tames the exploding side; gates fix the vanishing side. All three models below
have the same number of parameters (3.3M) and the same 10-minute training budget on the same CPU."""

CSS = """
.sample-box textarea { font-family: ui-monospace, SFMono-Regular, Menlo, monospace !important; }
"""


def _format_samples(texts: list[str]) -> str:
    if len(texts) == 1:
        return texts[0]
    return "\n\n".join(f"--- sample {i + 1} ---\n{text}" for i, text in enumerate(texts))


def build_app(library: service.ModelLibrary | None = None) -> gr.Blocks:
    library = library or service.ModelLibrary()
    names = library.names()
    default_model = names[0] if names else None
    compare_models = [n if n in names else default_model for n in service.COMPARE_DEFAULT]

    def card(name):
        try:
            return service.model_card(library, name) if name else "No checkpoints found under checkpoints/."
        except CharRNNError as err:
            return f"**{err}**"

    def generate(prompt, model, temperature, top_k, top_p, length, seed, num_samples):
        try:
            for texts, status in service.generate_stream(library, model, prompt, length, temperature, top_k,
                                                         top_p, seed, num_samples):
                yield _format_samples(texts), status
        except CharRNNError as err:
            raise gr.Error(str(err)) from None

    def compare(prompt, model_a, model_b, model_c, temperature, length, seed):
        chosen = [model_a, model_b, model_c]
        try:
            curves = service.validation_curves(library, chosen)
            texts, table = [prompt] * 3, service.comparison_table(library, chosen)
            for texts, speeds in service.compare_stream(library, chosen, prompt, length, temperature, seed):
                table = service.comparison_table(library, chosen, speeds)
                yield *texts, table, curves, curves, None
            yield *texts, table, curves, curves, service.cross_scores(library, chosen, prompt or "", texts)
        except CharRNNError as err:
            raise gr.Error(str(err)) from None

    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(INTRO)
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column(scale=2):
                    prompt = gr.Textbox(label="Prompt", value="ROMEO:\n", lines=2,
                                        placeholder="Start of the text (empty = a newline)")
                    with gr.Row():
                        generate_button = gr.Button("Generate", variant="primary")
                        stop_button = gr.Button("Stop", variant="stop")
                    output = gr.Textbox(label="Generated text", lines=18, max_lines=30, autoscroll=True,
                                        buttons=["copy"], elem_classes="sample-box")
                    status = gr.Markdown()
                with gr.Column(scale=1):
                    model = gr.Dropdown(names, value=default_model, label="Model")
                    model_card = gr.Markdown(card(default_model))
                    temperature = gr.Slider(0, 2, value=0.8, step=0.05, label="Temperature")
                    top_k = gr.Slider(0, 100, value=0, step=1, label="Top-k (0 = off)")
                    top_p = gr.Slider(0.05, 1, value=1.0, step=0.05, label="Top-p (1 = off)")
                    length = gr.Slider(1, service.MAX_LENGTH, value=600, step=1, label="Length (characters)")
                    seed = gr.Number(value=42, precision=0, label="Seed (-1 = random)")
                    num_samples = gr.Slider(1, service.MAX_SAMPLES, value=1, step=1, label="Samples")
                    gr.Markdown(SAMPLING_HELP)
            model.change(card, model, model_card, api_visibility="private")
            event = generate_button.click(
                generate, [prompt, model, temperature, top_k, top_p, length, seed, num_samples], [output, status],
                api_name="generate")
            stop_button.click(None, None, None, cancels=[event], api_visibility="private")

        with gr.Tab("Compare cells"):
            with gr.Row():
                compare_prompt = gr.Textbox(label="Prompt", value="KING RICHARD II:\n", lines=2, scale=3)
                compare_temperature = gr.Slider(0, 2, value=0.7, step=0.05, label="Temperature", scale=1)
                compare_length = gr.Slider(1, service.MAX_LENGTH, value=400, step=1, label="Length", scale=1)
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
            table = gr.Dataframe(service.comparison_table(library, compare_models) if names else None,
                                 label="The models", interactive=False)
            curves = service.validation_curves(library, compare_models) if names else None
            with gr.Row():
                by_time = gr.LinePlot(curves, x="minutes", y="val bpc", color="model",
                                      title="Validation bits/char against training time", x_title="minutes")
                by_step = gr.LinePlot(curves, x="step", y="val bpc", color="model",
                                      title="Validation bits/char against training steps")
            scores = gr.Dataframe(label="Each generated text (prompt excluded) scored by every model, bits/char: "
                                        "lower = more plausible to that model", interactive=False)
            gr.Markdown(CELLS_HELP)
            compare_button.click(
                compare, [compare_prompt, *(p for p, _ in columns), compare_temperature, compare_length, compare_seed],
                [*(t for _, t in columns), table, by_time, by_step, scores], api_name="compare")
    return demo


if __name__ == "__main__":
    app = build_app()
    app.queue(default_concurrency_limit=4, max_size=64)  # a public Space stays responsive under load
    app.launch(theme=gr.themes.Soft(), css=CSS)
