"""Where charrnn's files live: the one place that works out a location on disk. The presets it ships, the
folder that holds the package (child processes run `python -m charrnn...` from it), the shipped checkpoints
and the README beside it (a checkout or a Space), and the folder for dataset downloads and encoded caches.

Nothing here assumes the current folder is the repository. In a source checkout (the folder that holds
pyproject.toml beside the package) caches go to its data/ folder, as they always have; an installed package
writes to the user's cache folder, $XDG_CACHE_HOME/charrnn (~/.cache/charrnn). CHARRNN_DATA_DIR overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PRESETS_FILE = PACKAGE_DIR / "presets.json"  # package data: installed with the code
PAGE_TEMPLATE = PACKAGE_DIR / "export" / "page.html"  # package data: the exported page, filled in per model
PAGE_TOKENIZER = PACKAGE_DIR / "export" / "tokenizer.js"  # package data: inlined into that page
IMPORT_ROOT = PACKAGE_DIR.parent  # on sys.path of a child process that runs `python -m charrnn...`
SOURCE_TREE = IMPORT_ROOT if (IMPORT_ROOT / "pyproject.toml").is_file() else None
README = IMPORT_ROOT / "README.md"  # a checkout's or a Space's: its front matter lists the app's Hub models
# The shipped models, beside the package in a checkout or a Space; CHARRNN_CHECKPOINTS points the app elsewhere.
CHECKPOINTS_DIR = Path(os.environ.get("CHARRNN_CHECKPOINTS") or IMPORT_ROOT / "checkpoints")
MEMORY_DIR = IMPORT_ROOT / "checkpoints" / "memory"  # the Inside tab's memory-test models (tools/train_memory.py)


def user_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "charrnn"


def data_dir() -> Path:
    """Where downloads and encoded caches go: CHARRNN_DATA_DIR, else data/ of a source checkout, else the
    user's cache folder."""
    if os.environ.get("CHARRNN_DATA_DIR"):
        return Path(os.environ["CHARRNN_DATA_DIR"])
    return SOURCE_TREE / "data" if SOURCE_TREE else user_cache_dir()
