"""Where charrnn's files live: the presets it ships, and the folder for dataset downloads and encoded caches.

Nothing here assumes the current folder is the repository. In a source checkout (the folder that holds
pyproject.toml beside the package) caches go to its data/ folder, as they always have; an installed package
writes to the user's cache folder, $XDG_CACHE_HOME/charrnn (~/.cache/charrnn). CHARRNN_DATA_DIR overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PRESETS_FILE = PACKAGE_DIR / "presets.json"  # package data: installed with the code
SOURCE_TREE = PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "pyproject.toml").is_file() else None


def user_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "charrnn"


def data_dir() -> Path:
    """Where downloads and encoded caches go: CHARRNN_DATA_DIR, else data/ of a source checkout, else the
    user's cache folder."""
    if os.environ.get("CHARRNN_DATA_DIR"):
        return Path(os.environ["CHARRNN_DATA_DIR"])
    return SOURCE_TREE / "data" if SOURCE_TREE else user_cache_dir()
