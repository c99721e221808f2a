"""The visitor's session on the page: a signed key (charrnn.service.sessions) kept in the browser across reloads
and app restarts, handed to every handler that takes a model name as a hidden last input, so that each request
sees the library as that visitor may (their own trained models, and no one else's)."""

from __future__ import annotations

import secrets

import gradio as gr

from charrnn.service.library import LibraryView, ModelLibrary
from charrnn.service.training import TrainingManager

STORAGE_KEY = "charrnn-session"


class PageSession:
    def __init__(self, library: ModelLibrary, manager: TrainingManager):
        self.library, self.manager = library, manager
        sessions = manager.sessions
        # Encrypted in the browser with a secret that outlives a restart (a random one would not: every restart
        # would hand each returning visitor a new, empty session).
        self.stored = gr.BrowserState(None, storage_key=STORAGE_KEY,
                                      secret=sessions.browser_secret if sessions else None)
        self.key = gr.Textbox(visible=False, label="Session key")

        def new_session() -> str:
            """A new session key: pass it as `session_key` to the endpoints that train and use your own models."""
            return self.new_key()

        gr.api(new_session, api_name="new_session")

    def new_key(self) -> str:
        return self.manager.sessions.new() if self.manager.sessions else secrets.token_hex(16)

    def restored(self, stored) -> str:
        """The key the browser kept, if it is one of this host's; else a new one."""
        return stored if self.manager.viewer(stored) is not None else self.new_key()

    def view(self, key) -> LibraryView:
        """The library as the visitor with this key may see it (a missing or bad key: the public models only)."""
        return LibraryView(self.library, self.manager.viewer(key))
