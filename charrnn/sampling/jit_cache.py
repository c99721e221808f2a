"""numba's on-disk cache of the compiled sampling kernels, made stale by an edit to any of their source files.

numba keys a cached function by a stamp of the one file that defines it. The kernels of kernels.py inline the
products of tiles.py and bf16.py, so an edit there alone would leave the old machine code in use until someone
deleted the cache by hand. The locators here stamp every function of those files with one hash of all of them,
and keep the cache where numba would (beside the package when it can write there, else the user's cache folder,
or NUMBA_CACHE_DIR when set). Import this module before any of the kernels is decorated.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from numba.core import caching

HERE = Path(__file__).resolve().parent
KERNEL_SOURCES = ("kernels.py", "tiles.py", "bf16.py")  # every file whose code ends up in a compiled kernel
# numba renamed its cache classes (0.60 has _CacheImpl and _InTreeCacheLocator; later ones drop the underscore)
LOCATORS = ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")


def sources_hash() -> bytes:
    digest = hashlib.sha256()
    for name in KERNEL_SOURCES:
        digest.update((HERE / name).read_bytes())
    return digest.digest()


def _kernel_locator(base: type) -> type:
    class KernelSourcesLocator(base):
        """`base`, for the functions of this folder, stamped with the hash of every kernel source file."""

        charrnn_kernels = True

        def get_source_stamp(self):
            return sources_hash()

        @classmethod
        def from_function(cls, py_func, py_file):
            if Path(py_file).resolve().parent != HERE:
                return None
            return super().from_function(py_func, py_file)

    KernelSourcesLocator.__name__ = f"KernelSources{base.__name__.lstrip('_')}"
    return KernelSourcesLocator


def install() -> bool:
    """Put the locators first in numba's list (once); False where this numba has no such list."""
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    classes = getattr(impl, "_locator_classes", None)
    if not isinstance(classes, list):
        return False
    if not any(getattr(cls, "charrnn_kernels", False) for cls in classes):
        bases = [getattr(caching, name, None) or getattr(caching, "_" + name, None) for name in LOCATORS]
        classes[:0] = [_kernel_locator(base) for base in bases if base is not None]
    return True


install()
