"""The page: its four tabs built on one ModelLibrary and one TrainingManager."""

from __future__ import annotations

import gradio as gr

from charrnn import service
from charrnn.app.agents import agent_tools, only_tools
from charrnn.app.compare_tab import compare_tab
from charrnn.app.generate_tab import generate_tab
from charrnn.app.handlers import Blocks, user_errors
from charrnn.app.inside_tab import inside_tab
from charrnn.app.texts import INTRO, TITLE
from charrnn.app.train_tab import model_pickers, train_tab
from charrnn.service.training import TrainingManager


def build_app(library: service.ModelLibrary | None = None, manager: TrainingManager | None = None) -> gr.Blocks:
    library = library or service.ModelLibrary()
    manager = manager or TrainingManager(library)
    names = library.names()
    with Blocks(title=TITLE) as demo:
        gr.Markdown(INTRO)
        tools = agent_tools(library, names)  # first: see charrnn/app/agents.py
        generate_tab(library, names)
        compare_tab(library, names)
        inside_tab(library, names)
        train_tab(demo, library, manager, model_pickers(demo), user_errors)
    only_tools(demo, tools)
    return demo
