"""The app's Train tab: a person's text -> a preview -> a live training curve and samples -> a model in the pickers.

Every handler calls one method of charrnn.service.training.TrainingManager. The page keeps a session key in the
browser (gr.BrowserState), so a reload finds the session's job and models again; the handlers take it from a
hidden textbox, so API callers pass a key of their own. While a job is active a gr.Timer polls its progress
every second. On a Space with Hugging Face sign-in (`hf_oauth: true`) a gr.LoginButton signs the visitor in, and
Push uses their token and suggests `<username>/<model name>`; elsewhere the token field does.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys

import gradio as gr
from gradio.utils import get_space, get_upload_folder

from charrnn.cells import TEACHING_TRIO, label
from charrnn.config import TOKENIZERS
from charrnn.app.handlers import empty_note, hide_when_filled
from charrnn.app.texts import EMPTY_NOTES
from charrnn.app.session import PageSession
from charrnn.service.training import SIZES, JobSettings, TrainingManager, min_text_chars, preview_markdown

CELL_CHOICES = [(label(name), name) for name in reversed(TEACHING_TRIO)]  # LSTM first: the default
POLL_SECONDS = 1.0

HELP = """**Train your own model.** Paste a text, upload files (.txt, .md, .csv, .jsonl, .parquet; several at
once) or name a dataset, check the preview, pick a cell, a size and the minutes, and press Train. The curve shows
how many bits per character the model needs on the text it trains on (training) and on the last part it never
trains on (validation); when validation rises while training falls, the model is memorising: use a smaller size or
more dropout. At each evaluation the model writes a sample, so you see gibberish turn into words. A stopped or
finished model appears in the other tabs' model pickers (only in this browser), and can be downloaded or shared
on the Hugging Face Hub."""


def model_pickers(root) -> list[gr.Dropdown]:
    """The model pickers of the other tabs: every Dropdown under `root` whose label starts with "Model"."""
    found, stack = [], [root]
    while stack:
        block = stack.pop()
        if isinstance(block, gr.Dropdown) and str(block.label or "").startswith("Model"):
            found.append(block)
        stack.extend(getattr(block, "children", []) or [])
    return found


def sign_in_available() -> bool:
    """Whether this host signs visitors in with Hugging Face: a Space with `hf_oauth: true` in its README (the
    Space then sets OAUTH_CLIENT_ID) and Gradio's OAuth packages (gradio[oauth]). A gr.LoginButton elsewhere stops
    the app from starting: off a Space, Gradio mocks the sign-in with the host's own Hugging Face login, which it
    reads from the Hub at launch (and fails without a login or a network); on a Space without OAuth it raises."""
    if not (get_space() and os.environ.get("OAUTH_CLIENT_ID")):
        return False
    missing = [name for name in ("authlib", "itsdangerous") if importlib.util.find_spec(name) is None]
    if missing:
        print(f"warning: Hugging Face sign-in is on, but {', '.join(missing)} is not installed (pip install "
              f"'gradio[oauth]'); the Train tab asks for a token instead", file=sys.stderr)
    return not missing


def suggested_repo(username: str, model_name) -> str | None:
    """`<username>/<model name>` with the name's spaces as dashes, or None when the name makes no repo name."""
    name = re.sub(r"[^\w.-]+", "-", model_name.strip()).strip("-.") if isinstance(model_name, str) else ""
    return f"{username}/{name}" if name else None


def _upload_path(item):
    """(path, name) of an uploaded file as the page sends it raw: a FileData dict, or a path from the API."""
    if isinstance(item, dict):
        return item.get("path"), item.get("orig_name")
    return item, None


def _minutes(value: float) -> str:
    return f"{value:g} minute" + ("" if value == 1 else "s")


def _validation_line(p: dict) -> str:
    """The model you got: the kept best (what the other tabs load), and the latest named as such when it is worse."""
    best, latest = f"{p['best_bpc']:.2f}", f"{p['val_bpc']:.2f}"
    line = (f"- validation (bits per character on text it never trains on; lower is better): kept best **{best}** at "
            f"{p['best_minutes']:.2f} min (step {p['best_step']:,})")
    if latest != best:
        line += f"; latest {latest}" + (" (memorising: the kept best is the model you get)"
                                         if p["val_bpc"] > p["best_bpc"] else "")
    return line


def _status(manager: TrainingManager, key: str | None) -> tuple[str, str]:
    """Markdown of the session's latest job and an HTML progress bar."""
    job = manager.latest(key) if key else None
    if job is None:
        return "No model trained in this session yet.", ""
    p = manager.progress(key, job.id)
    lines = [f"**{job.settings.name}**: {p['state']}" + (f", number {p['position']} in the queue"
                                                         if p["position"] else "")
             + (f". {p['message']}" if p["message"] != p["state"] else ".")]
    if p["steps"]:
        lines.append(f"- {p['steps']:,} steps, {p['chars_per_s'] or 0:,} characters/s, "
                     f"{p['elapsed_s'] / 60:.1f} of {_minutes(job.budget_minutes)}"
                     + (f", about {p['seconds_left']:.0f} s left" if p["state"] == "running" else ""))
    if p["val_bpc"] is not None:
        lines.append(_validation_line(p))
    if p["model"]:
        lines.append(f"- in the model pickers as `{p['model']}`")
    bar = (f'<progress value="{p["fraction"]:.3f}" max="1" style="width:100%"></progress>'
           f'<div style="text-align:right">{p["fraction"]:.0%}</div>')
    return "\n".join(lines), bar


def train_tab(demo: gr.Blocks, session: PageSession, pickers: list[gr.Dropdown], wrap) -> None:
    """The Train tab of `demo`. `pickers`: the other tabs' model dropdowns, updated when a model is ready; `wrap`: the
    app's handler wrapper that turns a CharRNNError into a message on the page."""
    library, manager = session.library, session.manager
    limits = manager.limits
    upload_dirs = [get_upload_folder()]
    built_names = library.names()  # what the pickers list as built

    def choices(key):  # read at each page load: a model that failed to load after the page was built is gone
        return library.names() + manager.model_names(key)

    def picker_updates(key, shown):
        names = choices(key)
        if names == shown:
            return [gr.skip()] * len(pickers), shown
        return [gr.update(choices=names) for _ in pickers], names

    def settings(name, cell, size, params, minutes, dropout, lr, batch, seq_len, tokenizer):
        return JobSettings(name=name, cell=cell, size=size, params=params, minutes=minutes, dropout=dropout, lr=lr,
                           batch_size=batch, seq_len=seq_len, tokenizer=tokenizer)

    def gather(pasted, files, dataset, config, column, batch, seq_len):
        files = [_upload_path(item) for item in (files or [])] if isinstance(files, list) else files
        batch = batch if isinstance(batch, int) else 16
        seq_len = seq_len if isinstance(seq_len, int) else 64
        return manager.gather(pasted, files, dataset, config, column, allowed_upload_dirs=upload_dirs,
                              batch_size=batch, seq_len=seq_len)

    def on_load(stored_key):
        key = session.restored(stored_key)
        status, bar = _status(manager, key)
        job = manager.latest(key)
        updates, shown = picker_updates(key, built_names)
        return (key, key, status, bar, gr.Timer(active=bool(job and job.active)), shown,
                manager.size_table("lstm", measure=False), *updates)

    @wrap
    def preview(pasted, files, dataset, config, column, batch, seq_len, cell):
        text = gather(pasted, files, dataset, config, column, batch, seq_len)
        table = manager.size_table(cell if cell in dict(CELL_CHOICES).values() else "lstm",
                                   vocab_size=text.preview["distinct characters"] + 1)
        return preview_markdown(text.preview, text.sources), text.preview["suggested size"], table

    @wrap
    def train(key, pasted, files, dataset, config, column, name, cell, size, params, minutes, dropout, lr, batch,
              seq_len, tokenizer):
        text = gather(pasted, files, dataset, config, column, batch, seq_len)
        manager.submit(key, text, settings(name, cell, size, params, minutes, dropout, lr, batch, seq_len,
                                           tokenizer))
        return (*_status(manager, key), gr.Timer(active=True), preview_markdown(text.preview, text.sources))

    @wrap
    def stop(key):
        job = manager.latest(key)
        if job is not None and job.active:
            manager.stop(key, job.id)
        return _status(manager, key)

    @wrap
    def resume(key, minutes):
        job = manager.latest(key)
        if job is None:
            raise gr.Error("no model to resume in this session: train one first", print_exception=False)
        manager.resume(key, job.id, minutes)
        return (*_status(manager, key), gr.Timer(active=True))

    @wrap
    def poll(key, shown):
        job = manager.latest(key) if key else None
        if job is None:
            return None, "", *_status(manager, key), gr.Timer(active=False), shown, *[gr.skip()] * len(pickers)
        p = manager.progress(key, job.id)
        updates, shown = picker_updates(key, shown)
        return (p["curve"], p["sample"], *_status(manager, key), gr.Timer(active=job.active), shown, *updates)

    @wrap
    def download(key):
        job = manager.latest(key)
        if job is None:
            raise gr.Error("no model in this session yet: train one first", print_exception=False)
        return str(manager.zip(key, job.id))

    @wrap
    def push(key, repo_id, token, oauth: gr.OAuthToken | None = None):
        job = manager.latest(key)
        if job is None:
            raise gr.Error("no model in this session yet: train one first", print_exception=False)
        url = manager.push(key, job.id, repo_id, token, oauth_token=oauth)
        return f"Pushed: {url}"

    def suggest_repo(model_name, repo, suggested, profile: gr.OAuthProfile | None = None):
        """For a signed-in visitor, `<username>/<model name>` in the repository box, unless they wrote their own."""
        if profile is None or (repo and repo != suggested):
            return gr.skip(), suggested
        suggestion = suggested_repo(profile.username, model_name)
        return (suggestion, suggestion) if suggestion else (gr.skip(), suggested)

    with gr.Tab("Train"):
        gr.Markdown(HELP)
        stored_key, key = session.stored, session.key
        shown = gr.State(built_names)
        timer = gr.Timer(POLL_SECONDS, active=False)
        with gr.Row():
            with gr.Column(scale=3):
                pasted = gr.Textbox(label=f"Paste your text (at least {min_text_chars():,} characters; a smaller "
                                          "batch or sequence length under Advanced takes less)", lines=8, max_lines=14,
                                    placeholder="Paste a text here: a book, lyrics, code, your messages...")
                files = gr.File(label="...or upload files (.txt, .md, .csv, .jsonl, .parquet)", file_count="multiple",
                                file_types=[".txt", ".md", ".csv", ".jsonl", ".parquet"])
                with gr.Row():
                    dataset = gr.Textbox(label="...or a dataset", scale=2,
                                         placeholder="a preset (tiny_shakespeare) or a Hub id (user/name)")
                    dataset_config = gr.Textbox(label="Dataset configuration", scale=1)
                    text_column = gr.Textbox(label="Text column", scale=1)
                preview_button = gr.Button("Preview the text")
                preview_md = gr.Markdown()
            with gr.Column(scale=2):
                name = gr.Textbox(value="my-model", label="Name of your model", max_length=40)
                cell = gr.Radio(CELL_CHOICES, value="lstm", label="Cell")
                size = gr.Radio(list(SIZES), value="small", label="Size (auto: chosen for the minutes on this host)")
                params = gr.Textbox(label="Parameters (e.g. 500k, 2M)", value="500k", visible=False)
                sizes = gr.Dataframe(label="Sizes (speed measured on this host when you preview)",
                                     interactive=False)
                minutes = gr.Slider(0.5, limits.max_minutes, value=min(3, limits.max_minutes), step=0.5,
                                    label=f"Minutes of training (at most {limits.max_minutes} on this host)")
                with gr.Accordion("Advanced", open=False):
                    dropout = gr.Slider(0, 0.7, value=0.2, step=0.05, label="Dropout (size auto chooses its own)")
                    lr = gr.Number(value=3e-3, label="Learning rate")
                    batch = gr.Slider(1, 128, value=16, step=1, label="Batch (parallel text streams)")
                    seq_len = gr.Slider(8, 256, value=64, step=1, label="Sequence length (characters per step)")
                    tokenizer = gr.Radio(list(TOKENIZERS), value="char", label="Tokenizer")
        with gr.Row():
            train_button = gr.Button("Train", variant="primary")
            stop_button = gr.Button("Stop", variant="stop")
            resume_button = gr.Button("Resume")
        status = gr.Markdown("No model trained in this session yet.")
        bar = gr.HTML()
        with gr.Row():
            with gr.Column(scale=3):
                curve = gr.LinePlot(x="minutes", y="bits/char", color="curve", x_title="minutes of training",
                                    title="Bits per character against training time")
                curve_note = empty_note(EMPTY_NOTES["train"])
            sample = gr.Textbox(label="What the model writes now (at the latest evaluation)", lines=10,
                                elem_classes="sample-box", scale=2,
                                placeholder="The model's writing appears here at each evaluation.")
        with gr.Row():
            with gr.Column():
                download_button = gr.Button("Download the model (zip)")
                zip_file = gr.File(label="Model zip")
            with gr.Column():
                sign_in = sign_in_available()
                if sign_in:
                    gr.LoginButton()
                repo = gr.Textbox(label="Hub repository (user/name)")
                token = gr.Textbox(label="Hugging Face token with write access" + (" (or sign in above)"
                                                                                   if sign_in else ""),
                                   type="password")
                push_button = gr.Button("Push to the Hub")
                pushed = gr.Markdown()

        text_inputs = [pasted, files, dataset, dataset_config, text_column]
        choice_inputs = [name, cell, size, params, minutes, dropout, lr, batch, seq_len, tokenizer]
        # show_progress_on: a refused text (too short, say) is named in the error message, and only the preview
        # waits and fails with it; the Size radio and the sizes table, its other outputs, keep what they showed.
        preview_button.click(preview, [*text_inputs, batch, seq_len, cell], [preview_md, size, sizes],
                             api_name="preview_text", preprocess=False, show_progress_on=[preview_md])
        hide_when_filled(train_button.click(train, [key, *text_inputs, *choice_inputs],
                                            [status, bar, timer, preview_md], api_name="train", preprocess=False,
                                            show_progress_on=[status]), curve_note)
        size.change(lambda chosen: gr.Textbox(visible=chosen == "custom"), size, params, api_visibility="private",
                    preprocess=False)
        stop_button.click(stop, [key], [status, bar], api_name="stop_training", preprocess=False)
        hide_when_filled(resume_button.click(resume, [key, minutes], [status, bar, timer], api_name="resume_training",
                                             preprocess=False), curve_note)
        poll_outputs = [curve, sample, status, bar, timer, shown, *pickers]
        timer.tick(poll, [key, shown], poll_outputs, api_name="training_progress", preprocess=False,
                   show_progress="hidden")
        download_button.click(download, [key], [zip_file], api_name="download_model", preprocess=False)
        push_button.click(push, [key, repo, token], [pushed], api_name="push_model", preprocess=False)
        if sign_in:
            suggested = gr.State("")
            for event in (demo.load, name.change):
                event(suggest_repo, [name, repo, suggested], [repo, suggested], api_visibility="private",
                      preprocess=False)
    demo.load(on_load, [stored_key], [stored_key, key, status, bar, timer, shown, sizes, *pickers],
              api_visibility="private", preprocess=False)
