"""The page: its five tabs built on one ModelLibrary and one TrainingManager."""

from __future__ import annotations

import gradio as gr

from charrnn import service
from charrnn.app.agents import agent_tools, only_tools
from charrnn.app.compare_tab import compare_tab
from charrnn.app.generate_tab import generate_tab
from charrnn.app.handlers import Blocks, user_errors
from charrnn.app.inside_tab import inside_tab
from charrnn.app.session import PageSession
from charrnn.app.texts import INTRO, TITLE
from charrnn.app.train_tab import model_pickers, train_tab
from charrnn.app.write_tab import suggest_api, write_tab
from charrnn.service.retraining import MemoryRetraining
from charrnn.service.sessions import SessionKeys
from charrnn.service.inputs import env_int
from charrnn.service.training import TrainingManager, user_models_dir
from charrnn.service.writing import WritingDesk


CACHE_SECONDS = 60 * env_int("CHARRNN_CACHE_MINUTES", 15)


def build_app(library: service.ModelLibrary | None = None, manager: TrainingManager | None = None,
              retraining: MemoryRetraining | None = None) -> gr.Blocks:
    library = library or service.ModelLibrary()
    manager = manager or TrainingManager(library, sessions=SessionKeys.for_host(user_models_dir()))
    names = library.names()
    # Gradio keeps a copy of every upload and of every file a handler returns (the model zips): files older than
    # CHARRNN_CACHE_MINUTES are deleted as often, so repeated uploads and downloads cannot fill the disk.
    with Blocks(title=TITLE, delete_cache=(CACHE_SECONDS, CACHE_SECONDS)) as demo:
        gr.Markdown(INTRO)
        tools = agent_tools(library, names)  # first: see charrnn/app/agents.py
        session = PageSession(library, manager)  # outside the tabs: a tab's components mount only when shown
        desk = WritingDesk()  # the Write tab's and the suggest endpoint's kept states
        suggest_api(session, names, desk)
        # "wrap": on a phone every tab stays one tap away, where the default hides those past the width in a menu
        with gr.Tabs(overflow_behavior="wrap"):
            generate_tab(session, names)
            write_tab(session, names, desk)
            compare_tab(session, names)
            inside_tab(session, names, retraining or MemoryRetraining())
            train_tab(demo, session, model_pickers(demo), user_errors)
    only_tools(demo, [*tools, "suggest"])  # the write-together suggestions are a tool too
    return demo
