"""Session keys that a visitor's browser keeps across reloads and app restarts, and that nobody can forge.

A key is a random 128-bit token and its HMAC under the host's secret: the server checks the signature, so a key
cannot be made up (nor a token guessed), and the host keeps nothing per key. The browser stores the key
(gr.BrowserState, encrypted with a secret derived from the same one), so a reload finds the visitor's jobs and
models again. The secret comes from CHARRNN_SESSION_SECRET, else from a file created once beside the trained
models: keys then survive a restart of the app for as long as that folder does.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from charrnn.errors import CharRNNError

TOKEN_BYTES = 16  # 128 bits: no one guesses another visitor's key
SECRET_FILE = ".session-secret"


class SessionKeys:
    def __init__(self, secret: bytes):
        if len(secret) < 16:
            raise CharRNNError("the session secret must be at least 16 bytes long")
        self._secret = secret

    @classmethod
    def for_host(cls, folder: Path) -> "SessionKeys":
        """CHARRNN_SESSION_SECRET, else the secret kept in `folder` (created, readable by its owner only)."""
        if os.environ.get("CHARRNN_SESSION_SECRET"):
            return cls(os.environ["CHARRNN_SESSION_SECRET"].encode("utf-8"))
        path = Path(folder) / SECRET_FILE
        try:
            return cls(path.read_bytes())
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            secret = secrets.token_bytes(32)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as f:
                f.write(secret)
            return cls(secret)
        except FileExistsError:  # another process created it between the read and the open
            return cls(path.read_bytes())

    def _signature(self, token: str) -> str:
        return hmac.new(self._secret, token.encode("ascii"), hashlib.sha256).hexdigest()[:32]

    def new(self) -> str:
        token = secrets.token_hex(TOKEN_BYTES)
        return f"{token}.{self._signature(token)}"

    def is_valid(self, key) -> bool:
        if not isinstance(key, str) or len(key) != 2 * TOKEN_BYTES + 33:
            return False
        token, _, signature = key.partition(".")
        try:
            return hmac.compare_digest(signature, self._signature(token))
        except (TypeError, UnicodeEncodeError):
            return False

    def check(self, key) -> str:
        if not self.is_valid(key):
            raise CharRNNError("this page's session key is not valid (reload the page; API callers get one from "
                               "the new_session endpoint)")
        return key

    @property
    def browser_secret(self) -> str:
        """The secret that encrypts the key in the browser's storage (gr.BrowserState's `secret`): derived, so
        the signing secret itself never reaches a page."""
        return hmac.new(self._secret, b"browser-state", hashlib.sha256).hexdigest()[:32]
