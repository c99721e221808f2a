"""charrnn's web UI: generate text with character-level RNN / GRU / LSTM models and compare the cells.

    python app.py        # then open http://127.0.0.1:7860

Host and port come from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, as on Hugging Face Spaces. Handlers are
thin: each calls one function of charrnn.service and turns a CharRNNError into a message on the page.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
import traceback

import gradio as gr
from gradio.components.plot import AltairPlotData

from charrnn import service
from charrnn.errors import CharRNNError
from charrnn.sampler_process import ENABLED as SAMPLING_PROCESS, SamplerProcess
from charrnn.service import inputs, inside
from charrnn.service.serving import prepare_server_process
from charrnn.service.inputs import LIMITS
from charrnn.service.training import TrainingManager
from charrnn.ui.train_tab import model_pickers, train_tab

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
clipping (used in training here) tames the exploding side; gates fix the vanishing side. The shipped `rnn`, `gru`
and `lstm` have the same number of parameters (3.3M) and the same 10-minute training budget on the same CPU;
pick any model in each column."""

INSIDE_TEXT = """JULIET:
O Romeo, Romeo! wherefore art thou Romeo?
Deny thy father and refuse thy name;
Or, if thou wilt not, be but sworn my love,
And I'll no longer be a Capulet.

ROMEO:
Shall I hear more, or shall I speak at this?

JULIET:
'Tis but thy name that is my enemy;
Thou art thyself, though not a Montague.
What's Montague? it is nor hand, nor foot,
Nor arm, nor face, nor any other part
Belonging to a man. O, be some other name!
What's in a name? that which we call a rose
By any other name would smell as sweet;
"""

INSIDE_HELP = {
    "surprise": "**Surprise.** Each character is coloured by how unexpected it was to the model, -log2 p, in bits; "
                "hover a character to see the five the model expected instead. The mean is the text's bits per "
                "character: everything the hidden state remembered is in those predictions.",
    "neurons": "**Neurons.** The text coloured by one unit of the hidden state (or the LSTM's cell state) as the "
               "model reads it. The table lists units whose activation follows a feature of the text, scored by "
               "correlation, as in Karpathy, Johnson and Fei-Fei (2015); unit -1 shows the best one.",
    "gradient_flow": "**Gradient flow through time.** How much the loss at one character depends on the state k steps "
                     "earlier, ||dL_T/ds_(T-k)||, relative to k = 0, on a log scale. Backpropagation through time "
                     "multiplies by the recurrent Jacobian at every step: for the plain RNN it vanishes "
                     "exponentially, gates keep it alive. Below: the pre-clipping gradient norms seen in training "
                     "and the share of steps that clipping cut (the exploding side).",
    "gates": "**Gates.** How open the LSTM's input, forget and output gates (GRU: reset and update) are over the "
             "text, and one unit's gates per character. A forget (update) gate near 1 keeps the memory; near 0 "
             "it wipes it.",
    "memory": "**Memory test.** Someone runs (r), bikes (b) and swims (s) in order; on rainy days they sleep (z), "
              "and when the sun returns they resume where they left off. Predicting that day needs memory of the "
              "last activity across the rain. Tiny models of each cell were trained on this; the plot shows "
              "accuracy against the length of the rainy spell: the plain RNN forgets first.",
}

CSS = """
.sample-box textarea { font-family: ui-monospace, SFMono-Regular, Menlo, monospace !important; }
"""


def _message(err: Exception) -> gr.Error:
    """What the visitor sees. A CharRNNError is their input's fault: its message, and no traceback in the log (it
    is not a fault of the server). Any other exception is ours: a message that says so, and the traceback in the
    log to fix it."""
    if isinstance(err, CharRNNError):
        return gr.Error(str(err), print_exception=False)
    traceback.print_exception(err, file=sys.stderr)
    return gr.Error(f"internal error ({type(err).__name__}); the request was not completed. Please report it.",
                    print_exception=False)


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
            raise gr.Error(f"this endpoint takes {len(block_fn.inputs)} input values, got {len(inputs)}",
                           print_exception=False)
        try:
            return await super().preprocess_data(block_fn, inputs, state, explicit_call)
        except gr.Error:
            raise
        except Exception as err:  # noqa: BLE001 - a value of the wrong form, from outside
            raise gr.Error(f"an input value has the wrong form ({type(err).__name__}: {str(err)[:200]})",
                           print_exception=False) from None
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


def _format_samples(texts: list[str]) -> str:
    if len(texts) == 1:
        return texts[0]
    return "\n\n".join(f"--- sample {i + 1} ---\n{text}" for i, text in enumerate(texts))


def build_app(library: service.ModelLibrary | None = None, manager: TrainingManager | None = None) -> gr.Blocks:
    library = library or service.ModelLibrary()
    manager = manager or TrainingManager(library)
    names = library.names()
    default_model = names[0] if names else None
    compare_models = [n if n in names else default_model for n in service.COMPARE_DEFAULT]

    def card(name):
        try:
            text = service.model_card(library, name) if name else "No checkpoints found under checkpoints/."
        except CharRNNError as err:
            text = f"**{err}**"
        if library.skipped:
            text += "\n\n*Skipped broken checkpoint folders:* " + "; ".join(
                f"`{folder}` ({why})" for folder, why in sorted(library.skipped.items()))
        return text

    @user_errors
    def generate(prompt, model, temperature, top_k, top_p, length, seed, num_samples):
        for texts, status in service.generate_stream(library, model, prompt, length, temperature, top_k,
                                                     top_p, seed, num_samples):
            yield _format_samples(texts), status, status

    def stopped(status_so_far):
        return " ".join(["**Stopped.**", status_so_far or ""]).strip()  # it names the seed used

    @user_errors
    def chosen_models(model_a, model_b, model_c):
        chosen = [model_a, model_b, model_c]
        by_time, by_step = service.validation_charts(library, chosen)
        return (service.comparison_table(library, chosen), plot(by_time), plot(by_step),
                gr.Dataframe(headers=service.score_columns(chosen), value=None))

    @user_errors
    def compare(prompt, model_a, model_b, model_c, temperature, length, seed):
        chosen = [model_a, model_b, model_c]
        by_time, by_step = (plot(chart) for chart in service.validation_charts(library, chosen))
        texts, table = [prompt] * 3, service.comparison_table(library, chosen)
        no_scores = gr.Dataframe(headers=service.score_columns(chosen), value=None)
        for i, (texts, speeds) in enumerate(service.compare_stream(library, chosen, prompt, length, temperature, seed)):
            table = service.comparison_table(library, chosen, speeds)
            # the curves do not change while the models write: drawn once, not twenty times a second
            yield *texts, table, *((by_time, by_step, no_scores) if i == 0 else (gr.skip(),) * 3)
        yield *texts, table, by_time, by_step, service.cross_scores(library, chosen, prompt or "", texts)

    with Blocks(title=TITLE) as demo:
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
                    length = gr.Slider(1, LIMITS.sample_chars, value=600, step=1, label="Length (characters)")
                    seed = gr.Number(value=42, precision=0, label="Seed (-1 = random)")
                    num_samples = gr.Slider(1, LIMITS.samples, value=1, step=1, label="Samples")
                    gr.Markdown(SAMPLING_HELP)
            model.change(card, model, model_card, api_visibility="private", preprocess=False)
            # The status so far is also kept on the server (a State is not part of the API): Stop reads it
            # there, as the page's copy may lag behind the stream. Stop writes its line once the cancel has
            # gone through; written with it, the cancelled event's last update could cover it.
            status_so_far = gr.State("")
            event = generate_button.click(
                generate, [prompt, model, temperature, top_k, top_p, length, seed, num_samples],
                [output, status, status_so_far], api_name="generate", preprocess=False,
                concurrency_limit=LIMITS.streams, concurrency_id="sampling")
            stop_button.click(None, None, None, cancels=[event], api_visibility="private").then(
                stopped, status_so_far, status, api_visibility="private")

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
                                  label="Each generated text (prompt excluded) scored by every model, bits/char: "
                                        "lower = more plausible to that model")
            for picker in pickers:
                picker.change(chosen_models, pickers, [table, by_time, by_step, scores], api_visibility="private",
                              preprocess=False)
            compare_button.click(
                compare, [compare_prompt, *pickers, compare_temperature, compare_length, compare_seed],
                [*(t for _, t in columns), table, by_time, by_step, scores], api_name="compare", preprocess=False,
                concurrency_limit=LIMITS.streams, concurrency_id="sampling")
        _inside_tab(library, names)
        train_tab(demo, library, manager, model_pickers(demo), user_errors)
    return demo


def _inside_tab(library: service.ModelLibrary, names: list[str]) -> None:
    """The Inside tab: five views of what the cells compute, each one a named API endpoint."""
    char_models = names
    gated = inside.gated_models(library)
    trio = [n for n in service.COMPARE_DEFAULT if n in names] or names[:3]
    default = "lstm" if "lstm" in names else (names[0] if names else None)
    gated_default = default if default in gated else (gated[0] if gated else None)

    @user_errors
    def surprise(text, model=default, all_cells=False):
        return inside.surprise(library, text, trio if inputs.flag(all_cells, "all cells") else [model])

    @user_errors
    def neurons(text, model=default, layer=-1, unit=-1, state="hidden"):
        return inside.neurons(library, text, model, layer, unit, state)

    @user_errors
    def gradient_flow(text, max_distance=60):
        flow, norms, clipping = inside.gradient_flow(library, text, trio, max_distance)
        return plot(flow), plot(norms), clipping

    @user_errors
    def gates(text, model=gated_default, layer=0, unit=0):
        means, series, html = inside.gates(library, text, model, layer, unit)
        return means, plot(series), html

    @user_errors
    def memory(retrain=False, progress=gr.Progress()):
        return plot(inside.memory_view(retrain, progress=lambda f, m: progress(f, desc=m)))

    with gr.Tab("Inside"):
        text = gr.Textbox(label="Text to look at", value=INSIDE_TEXT, lines=8, max_lines=16)
        text_tabs = []
        with gr.Tab("Surprise") as tab:
            text_tabs.append(tab)
            gr.Markdown(INSIDE_HELP["surprise"])
            with gr.Row():
                s_model = gr.Dropdown(char_models, value=default, label="Model")
                s_all = gr.Checkbox(label="Show RNN, GRU and LSTM", value=False)
                s_button = gr.Button("Show surprise", variant="primary")
            s_table = gr.Dataframe(headers=inside.SURPRISE_COLUMNS, label="Bits per character", interactive=False)
            s_html = gr.HTML()
            s_button.click(surprise, [text, s_model, s_all], [s_html, s_table], api_name="surprise", preprocess=False)
        with gr.Tab("Neurons") as tab:
            text_tabs.append(tab)
            gr.Markdown(INSIDE_HELP["neurons"])
            with gr.Row():
                n_model = gr.Dropdown(char_models, value=default, label="Model")
                n_layer = gr.Number(value=-1, precision=0, label="Layer (-1 = last)")
                n_state = gr.Radio(["hidden", "cell"], value="hidden", label="State (cell: LSTM only)")
                n_unit = gr.Number(value=-1, precision=0, label="Unit (-1 = the one of this layer and state "
                                                                "that best tracks a feature)")
                n_button = gr.Button("Show unit", variant="primary")
            n_html = gr.HTML()
            n_table = gr.Dataframe(headers=inside.NEURON_COLUMNS, label="Units (of every layer and state) that "
                                   "track a feature of the text", interactive=False)
            n_button.click(neurons, [text, n_model, n_layer, n_unit, n_state], [n_html, n_table], api_name="neurons",
                           preprocess=False)
        with gr.Tab("Gradient flow") as tab:
            text_tabs.append(tab)
            gr.Markdown(INSIDE_HELP["gradient_flow"])
            with gr.Row():
                g_distance = gr.Slider(5, 200, value=60, step=1, label="Largest distance k")
                g_button = gr.Button("Measure", variant="primary")
            g_plot = gr.Plot(show_label=False, elem_classes="chart")
            with gr.Row():
                g_hist = gr.Plot(show_label=False, elem_classes="chart", min_width=360)
                g_clip = gr.Dataframe(headers=inside.CLIPPING_COLUMNS, label="Clipping", interactive=False,
                                      min_width=360)
            g_button.click(gradient_flow, [text, g_distance], [g_plot, g_hist, g_clip], api_name="gradient_flow",
                           preprocess=False)
        with gr.Tab("Gates") as tab:
            text_tabs.append(tab)
            gr.Markdown(INSIDE_HELP["gates"])
            with gr.Row():
                # only the cells that have gates: a plain RNN has none to show
                t_model = gr.Dropdown(gated, value=gated_default, label="Model (LSTM or GRU)")
                t_layer = gr.Number(value=0, precision=0, label="Layer")
                t_unit = gr.Number(value=0, precision=0, label="Unit")
                t_button = gr.Button("Show gates", variant="primary")
            t_means = gr.Dataframe(headers=inside.GATE_MEAN_COLUMNS, label="Mean gate activations", interactive=False)
            t_plot = gr.Plot(show_label=False, elem_classes="chart")
            t_html = gr.HTML()
            t_button.click(gates, [text, t_model, t_layer, t_unit], [t_means, t_plot, t_html], api_name="gates",
                           preprocess=False)
        with gr.Tab("Memory test") as memory_tab:
            gr.Markdown(INSIDE_HELP["memory"])
            with gr.Row():
                m_retrain = gr.Checkbox(label="Retrain the three tiny models now (seconds)", value=False)
                m_button = gr.Button("Run the memory test", variant="primary")
            m_plot = gr.Plot(show_label=False, elem_classes="chart")
            m_button.click(memory, [m_retrain], [m_plot], api_name="memory", preprocess=False)
        # The memory test reads no text: its box is hidden there
        memory_tab.select(lambda: gr.Textbox(visible=False), None, text, api_visibility="private")
        for tab in text_tabs:
            tab.select(lambda: gr.Textbox(visible=True), None, text, api_visibility="private")


if __name__ == "__main__":
    prepare_server_process()  # memory given back after big requests; no import search on every event
    # Sampling runs in a child process (see sampler_process.py) unless CHARRNN_SAMPLING_PROCESS=0
    library = service.ModelLibrary(sampler=SamplerProcess() if SAMPLING_PROCESS else None)
    # The page is built and served before torch is imported (the slowest import): broken folders that show
    # without loading are skipped here, before the pickers are built; warm_up loads every model once the page
    # is up and drops any that fails from the pickers of pages opened after it.
    service.check_folders(library)
    app = build_app(library)
    app.queue(default_concurrency_limit=4, max_size=64)  # a public Space stays responsive under load
    app.launch(theme=gr.themes.Soft(), css=CSS, prevent_thread_lock=True, max_file_size=f"{LIMITS.upload_mb}mb",
               state_session_capacity=LIMITS.sessions)
    service.warm_up(library)  # after the page is up: load the models and compile the sampling kernels
    app.block_thread()
