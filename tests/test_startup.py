"""The page is built before torch is imported: importing torch is the slowest part of starting the app."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BUILD_THE_PAGE = """
import sys
from charrnn.app.page import build_app
from charrnn import service
library = service.ModelLibrary()
ready = service.check_folders(library)
build_app(library)
print(len(ready), sorted(name for name in ("torch", "numba", "charrnn.checkpoint.saving", "charrnn.data")
                         if name in sys.modules))
"""


def test_the_page_is_built_without_importing_torch():
    done = subprocess.run([sys.executable, "-c", BUILD_THE_PAGE], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    models, heavy = done.stdout.split(" ", 1)
    assert int(models) >= 4  # the shipped models were checked and listed
    assert heavy.strip() == "[]"
