"""Zips of trained models to download: one per job, in one folder of the app, gone after a few minutes.

Gradio copies a file that a handler returns into its own cache before the page fetches it, so the zip is needed
only for moments. A fresh temporary folder per download would leave one more copy of the model on the disk at
every press of the button; here a job's zip is replaced when it is built again, removed KEEP_SECONDS after it was
built (or when its job is deleted). The app's folder has a fixed name (in the temporary folder, where Gradio
serves files from) and is emptied when the app starts, so the zips of an app that was killed (its timer with it)
do not stay on the disk either.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from pathlib import Path

KEEP_SECONDS = 300


def downloads_folder(models_root: Path) -> Path:
    """The download folder of the app that keeps its trained models in `models_root`: the same at every start."""
    tag = hashlib.sha256(str(Path(models_root).resolve()).encode("utf-8")).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"charrnn-downloads-{tag}"


class Downloads:
    """The app's download folder: <folder>/<job id>/<model name>.zip."""

    def __init__(self, keep_seconds: float = KEEP_SECONDS, folder: Path | None = None):
        """`folder`: the app's own (emptied now: what is there was left by an earlier run); else a temporary
        folder removed with this object."""
        if folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="charrnn-downloads-"))
            weakref.finalize(self, shutil.rmtree, self.folder, ignore_errors=True)
        else:
            self.folder = Path(folder)
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
        self.keep_seconds = keep_seconds
        self._timer: threading.Timer | None = None
        self._lock = threading.RLock()  # a zip is not expired while it is being built

    def zip(self, job_id: str, name: str, model_folder: Path) -> Path:
        """A zip of `model_folder`'s files as <name>.zip, built anew (written beside it, then moved over the old
        one, so a download of the old one still running reads it whole)."""
        with self._lock:
            self.expire()
            target = self.folder / job_id / f"{name}.zip"
            target.parent.mkdir(parents=True, exist_ok=True)
            built = shutil.make_archive(str(target.parent / f".building-{uuid.uuid4().hex}"), "zip", model_folder)
            os.replace(built, target)
            self._expire_later()
            return target

    def remove(self, job_id: str) -> None:
        with self._lock:
            shutil.rmtree(self.folder / job_id, ignore_errors=True)

    def archives(self) -> list[Path]:
        return sorted(self.folder.glob("*/*.zip"))

    def expire(self) -> None:
        """Remove the zips built more than keep_seconds ago, and the job folders they leave empty."""
        with self._lock:
            too_old = time.time() - self.keep_seconds
            for archive in self.archives():
                try:
                    if archive.stat().st_mtime < too_old:
                        archive.unlink()
                        archive.parent.rmdir()
                except OSError:  # already gone, or the folder holds a newer zip
                    pass

    def _expire_later(self) -> None:
        """One timer at a time, however many downloads: it removes what has expired, and waits again while
        zips remain."""
        with self._lock:
            if self._timer is None:
                self._timer = threading.Timer(self.keep_seconds + 1, self._on_timer)
                self._timer.daemon = True
                self._timer.start()

    def _on_timer(self) -> None:
        self.expire()
        with self._lock:
            self._timer = None
        if self.archives():
            self._expire_later()
