"""Settings of the server process that let one Python process serve many visitors at once."""

from __future__ import annotations

import importlib.util
import sys

from charrnn.service.allocator import return_freed_memory


def skip_missing_matplotlib() -> None:
    """Gradio imports matplotlib around every event it runs, each streamed update included, to switch its
    backend. Where matplotlib is not installed (charrnn draws with Altair), each of those imports searches
    sys.path and fails: a large share of the event loop's time with many visitors streaming. Marking it absent makes
    the import fail at once."""
    if "matplotlib" not in sys.modules and importlib.util.find_spec("matplotlib") is None:
        sys.modules["matplotlib"] = None  # `import matplotlib` now raises ImportError without a search


def prepare_server_process() -> None:
    return_freed_memory()  # a public URL gets 10 MB requests: their memory goes back once they are answered
    skip_missing_matplotlib()
