"""Serving the page: the sampler's child process, the model library, the queue and its limits, the launch, and
the models loaded (and kernels compiled) once the page is up."""

from __future__ import annotations

import os
import warnings

import gradio as gr
from gradio.utils import get_space

from charrnn import service
from charrnn.app.page import build_app
from charrnn.app.texts import CSS
from charrnn.sampling import warm
from charrnn.sampling.process import ENABLED as SAMPLING_PROCESS, SamplerProcess
from charrnn.service.inputs import LIMITS
from charrnn.service.serving import prepare_server_process


def mcp_server() -> bool | None:
    """Whether to serve the page's tools to agents over MCP, at /gradio_api/mcp/ (charrnn/app/agents.py).

    CHARRNN_MCP=1 or 0 says so; else Gradio's own GRADIO_MCP_SERVER, where it is set; else on for a Hugging Face
    Space and off elsewhere (None: Gradio's default). On a Space it is on because it costs the page nothing
    measurable (docs/benchmarks.md): the mcp package is imported with Gradio whether the server runs or not.
    """
    value = os.environ.get("CHARRNN_MCP", "").strip().lower()
    if value:
        return value in ("1", "true", "yes", "on")
    if os.environ.get("GRADIO_MCP_SERVER"):
        return None
    return True if get_space() else None


def main() -> None:
    fresh = not warm.cache_files_present()
    if fresh:  # the kernels compile while the page is built; until they are ready the engines sample with torch
        warm.compile_in_background()
    prepare_server_process()  # memory given back after big requests; no import search on every event
    # Sampling runs in a child process (see sampler_process.py) unless CHARRNN_SAMPLING_PROCESS=0
    library = service.ModelLibrary(sampler=SamplerProcess(while_compiling=fresh) if SAMPLING_PROCESS else None,
                                   while_compiling=fresh)
    if library.sampler is not None:
        library.sampler.start()  # its imports (torch the slowest) overlap with building the page
    # The page is built and served before torch is imported (the slowest import): broken folders that show
    # without loading are skipped here, before the pickers are built; warm_up loads every model once the page
    # is up and drops any that fails from the pickers of pages opened after it.
    service.check_folders(library)
    app = build_app(library)
    app.queue(default_concurrency_limit=4, max_size=64)  # a public Space stays responsive under load
    # Gradio warns of every public endpoint with a gr.State input as if it were a tool; those are not (agents.py)
    warnings.filterwarnings("ignore", message="This MCP server includes a tool that has a gr.State input")
    app.launch(theme=gr.themes.Soft(), css=CSS, prevent_thread_lock=True, max_file_size=f"{LIMITS.upload_mb}mb",
               state_session_capacity=LIMITS.sessions, mcp_server=mcp_server())
    service.warm_up(library)  # after the page is up: load the models and compile the sampling kernels
    app.block_thread()
