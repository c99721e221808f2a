"""Write together: a model's suggestions at the cursor for the page and the API, with each visitor's place kept.

The model's state after a visitor's text is kept between their calls (one `Suggester` per session key and model),
so that a keystroke steps only the characters it added. The least recently used are let go beyond `KEPT`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from charrnn.service import inputs
from charrnn.service.library import LibraryView, ModelLibrary
from charrnn.service.inputs import LIMITS

if TYPE_CHECKING:
    from charrnn.sampling.suggest import Suggester, Suggestions

MAX_SUGGESTIONS = 8  # per kind (characters, words): the page has a button for each
KEPT = 512  # (session, model) states kept: each is a few hidden vectors, and its Suggester's table of tokens


class WritingDesk:
    """The suggesters of every visitor, by (session key, model, the loaded model's identity)."""

    def __init__(self, kept: int = KEPT):
        self.kept = kept
        self._suggesters: OrderedDict[tuple, Suggester] = OrderedDict()
        self._steppers: dict[int, object] = {}  # one Stepper per loaded model, shared by its visitors
        self._lock = threading.Lock()

    def _suggester(self, library: ModelLibrary | LibraryView, name: str, session_key) -> Suggester:
        from charrnn.sampling.suggest import Suggester  # torch: imported once a model is loaded, as library.load does

        checkpoint = library.load(name).checkpoint
        # a retrained folder loads as a new model: its identity in the key lets the old state go
        key = (session_key if isinstance(session_key, str) else None, name, id(checkpoint.model))
        with self._lock:
            suggester = self._suggesters.pop(key, None)
            if suggester is None:
                shared = self._steppers.get(id(checkpoint.model))
                suggester = Suggester(checkpoint.model, checkpoint.tokenizer, shared)
                self._steppers[id(checkpoint.model)] = suggester.stepper
            self._suggesters[key] = suggester
            while len(self._suggesters) > self.kept:
                self._suggesters.popitem(last=False)
            live = {id(s.model) for s in self._suggesters.values()}
            self._steppers = {k: v for k, v in self._steppers.items() if k in live}
        return suggester

    def suggest(self, library: ModelLibrary | LibraryView, name, text, n=5, temperature=1.0,
                session_key=None) -> Suggestions:
        """The model's `n` likeliest next characters and words after `text`; every value checked (see inputs)."""
        name = inputs.model_name(name)
        text = inputs.text(text, "the text", LIMITS.prompt_chars)
        n = inputs.integer(n, "the number of suggestions", 1, MAX_SUGGESTIONS, default=5)
        temperature = inputs.number(temperature, "the temperature", 0.05, 2.0)
        return self._suggester(library, name, session_key).suggest(text, n, temperature)
