"""Serving the page: the sampler's child process, the model library, the queue and its limits, the launch, and
the models loaded (and kernels compiled) once the page is up."""

from __future__ import annotations

import gradio as gr

from charrnn import service
from charrnn.app.page import build_app
from charrnn.app.texts import CSS
from charrnn.sampling.process import ENABLED as SAMPLING_PROCESS, SamplerProcess
from charrnn.service.inputs import LIMITS
from charrnn.service.serving import prepare_server_process


def main() -> None:
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
