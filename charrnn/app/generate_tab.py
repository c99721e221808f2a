"""The Generate tab: a model, a prompt and the sampling settings in, text streamed out; Stop keeps the text."""

from __future__ import annotations

import gradio as gr

from charrnn import service
from charrnn.app.handlers import user_errors
from charrnn.app.session import PageSession
from charrnn.app.texts import SAMPLING_HELP
from charrnn.errors import CharRNNError
from charrnn.service.inputs import LIMITS


def format_texts(texts: list[str], beam_width=0) -> str:
    """One text as it is; several under '--- sample N ---' lines (or '--- beam N ---' for a beam search)."""
    if len(texts) == 1:
        return texts[0]
    label = "beam" if isinstance(beam_width, (int, float)) and beam_width > 1 else "sample"  # a raw value
    return "\n\n".join(f"--- {label} {i + 1} ---\n{text}" for i, text in enumerate(texts))


def generate_tab(session: PageSession, names: list[str]) -> None:
    default_model = names[0] if names else None

    def card(name, session_key=None):
        library = session.view(session_key)
        try:
            text = service.model_card(library, name) if name else "No checkpoints found under checkpoints/."
        except CharRNNError as err:
            text = f"**{err}**"
        if library.skipped:
            text += "\n\n*Skipped broken checkpoint folders:* " + "; ".join(
                f"`{folder}` ({why})" for folder, why in sorted(library.skipped.items()))
        return text

    @user_errors
    def generate(prompt, model, temperature, top_k, top_p, length, seed, num_samples, beam_width=0, session_key=None):
        for texts, status in service.generate_stream(session.view(session_key), model, prompt, length, temperature,
                                                     top_k, top_p, seed, num_samples, beam_width):
            yield format_texts(texts, beam_width), status, status

    def stopped(status_so_far):
        return " ".join(["**Stopped.**", status_so_far or ""]).strip()  # it names the seed used

    with gr.Tab("Generate"):
        with gr.Row(elem_classes="controls-first"):  # see CSS in texts.py
            with gr.Column(scale=2):
                prompt = gr.Textbox(label="Prompt", value="ROMEO:\n", lines=2,
                                    placeholder="Start of the text (empty = a newline)")
                with gr.Row():
                    generate_button = gr.Button("Generate", variant="primary")
                    stop_button = gr.Button("Stop", variant="stop")
                output = gr.Textbox(label="Generated text", lines=18, max_lines=30, autoscroll=True,
                                    buttons=["copy"], elem_classes="sample-box")
                status = gr.Markdown()
            with gr.Column(scale=1, elem_classes="controls"):
                model = gr.Dropdown(names, value=default_model, label="Model")
                model_card = gr.Markdown(card(default_model))
                temperature = gr.Slider(0, 2, value=0.8, step=0.05, label="Temperature")
                top_k = gr.Slider(0, 100, value=0, step=1, label="Top-k (0 = off)")
                top_p = gr.Slider(0.05, 1, value=1.0, step=0.05, label="Top-p (1 = off)")
                length = gr.Slider(1, LIMITS.sample_chars, value=600, step=1, label="Length (characters)")
                seed = gr.Number(value=42, precision=0, label="Seed (-1 = random)")
                num_samples = gr.Slider(1, LIMITS.samples, value=1, step=1, label="Samples")
                beam_width = gr.Slider(0, LIMITS.beam_width, value=0, step=1,
                                       label="Beam width (0 or 1 = sample; more = the likeliest text)")
                gr.Markdown(SAMPLING_HELP)
        model.change(card, [model, session.key], model_card, api_visibility="private", preprocess=False)
        # The status so far is also kept on the server (a State is not part of the API): Stop reads it
        # there, as the page's copy may lag behind the stream. Stop writes its line once the cancel has
        # gone through; written with it, the cancelled event's last update could cover it.
        status_so_far = gr.State("")
        event = generate_button.click(
            generate, [prompt, model, temperature, top_k, top_p, length, seed, num_samples, beam_width, session.key],
            [output, status, status_so_far], api_name="generate", preprocess=False,
            concurrency_limit=LIMITS.streams, concurrency_id="sampling")
        stop_button.click(None, None, None, cancels=[event], api_visibility="private").then(
            stopped, status_so_far, status, api_visibility="private")

