"""Where the page gets ONNX Runtime Web: a copy beside the page when one is at hand, else a pinned CDN release.

A copy makes the page work offline and from any static server; it comes from the npm package onnxruntime-web
(`npm install onnxruntime-web@VERSION`, or `npm pack` and unpack), and the export copies the three files the
page loads. Without one the page loads the same release from jsDelivr, the script pinned by its hash
(Subresource Integrity); the runtime then fetches its WebAssembly files from the same folder.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from charrnn.errors import CharRNNError

VERSION = "1.31.1"  # the onnxruntime-web release the CDN page loads (and the tests vendor)
CDN = f"https://cdn.jsdelivr.net/npm/onnxruntime-web@{VERSION}/dist/"
SCRIPT = "ort.wasm.min.js"  # the WebAssembly (CPU) build only: the smallest script, and all a small RNN needs
SCRIPT_INTEGRITY = "sha384-tNxIwEqSlcdvKtUte98AsccPbDKM958LBXB/+3BLS42TTihXHKTWgdqPqXI/lot8"  # of VERSION's SCRIPT
FILES = (SCRIPT, "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")  # the script loads the other two
PACKAGE = "onnxruntime-web"
CHOICES = "auto, cdn, or a folder holding an onnxruntime-web package"


@dataclass(frozen=True)
class Runtime:
    """How the page loads the runtime: from `source` (a folder copied beside the page) or from the CDN."""

    source: Path | None = None
    version: str = VERSION

    @property
    def vendored(self) -> bool:
        return self.source is not None

    def script_tag(self) -> str:
        if self.vendored:
            return f'<script src="{SCRIPT}"></script>'
        return (f'<script src="{CDN}{SCRIPT}" integrity="{SCRIPT_INTEGRITY}" crossorigin="anonymous" '
                'referrerpolicy="no-referrer"></script>')

    def wasm_folder(self) -> str:
        """The folder the runtime fetches its WebAssembly from ("" = beside the page)."""
        return "" if self.vendored else CDN

    def describe(self) -> str:
        if self.vendored:
            return f"onnxruntime-web {self.version} copied from {self.source} (works offline)"
        return f"onnxruntime-web {self.version} from {CDN} (needs the network)"

    def install(self, out: Path) -> list[Path]:
        """Copy the runtime's files into `out` (nothing for the CDN); the files written."""
        if not self.vendored:
            return []
        return [Path(shutil.copy2(self.source / name, out / name)) for name in FILES]


def _dist_folder(folder: Path) -> Path | None:
    """The folder with the runtime's files: `folder` itself, its dist/, or node_modules/onnxruntime-web/dist."""
    for candidate in (folder, folder / "dist", folder / PACKAGE / "dist", folder / "node_modules" / PACKAGE / "dist"):
        if all((candidate / name).is_file() for name in FILES):
            return candidate
    return None


def _version(dist: Path) -> str:
    try:
        return json.loads((dist.parent / "package.json").read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return "(version unknown)"


def choose_runtime(choice: str, here: Path | None = None) -> Runtime:
    """`cdn`, a folder holding the npm package's files, or `auto`: ./node_modules/onnxruntime-web when it is
    there, else the CDN."""
    if choice == "cdn":
        return Runtime()
    if choice == "auto":
        dist = _dist_folder((here or Path.cwd()) / "node_modules")
        return Runtime(dist, _version(dist)) if dist else Runtime()
    folder = Path(choice)
    dist = _dist_folder(folder) if folder.is_dir() else None
    if dist is None:
        raise CharRNNError(f"--runtime {choice}: no onnxruntime-web files ({', '.join(FILES)}) in that folder, its "
                           f"dist/ or node_modules/{PACKAGE}/dist; get them with `npm install {PACKAGE}@{VERSION}` "
                           f"and pass node_modules, or choose {CHOICES}")
    return Runtime(dist, _version(dist))
