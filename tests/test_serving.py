import importlib.machinery
import importlib.util
import sys

import pytest
from gradio import utils as gradio_utils

from charrnn.service.serving import skip_missing_matplotlib


def test_a_missing_matplotlib_is_not_searched_for_around_every_event(monkeypatch):
    if importlib.util.find_spec("matplotlib") is not None:
        pytest.skip("matplotlib is installed here: Gradio's import of it is a dictionary lookup")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    del sys.modules["matplotlib"]  # absent, as at start-up; monkeypatch leaves it absent afterwards
    searched = []
    real = importlib.machinery.PathFinder.find_spec.__func__
    monkeypatch.setattr(importlib.machinery.PathFinder, "find_spec",
                        classmethod(lambda cls, name, *a, **k: searched.append(name) or real(cls, name, *a, **k)))
    with gradio_utils.MatplotlibBackendMananger():  # what Gradio does around each event and streamed update
        pass
    assert "matplotlib" in searched  # the cost this removes: a search of sys.path
    skip_missing_matplotlib()  # searches once, at start-up
    searched.clear()
    for _ in range(3):
        with gradio_utils.MatplotlibBackendMananger():
            pass
    assert "matplotlib" not in searched
