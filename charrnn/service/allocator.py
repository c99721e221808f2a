"""Give freed memory back to the system, so that one huge request does not keep the server's memory high.

glibc's malloc serves allocations of up to 32 MB from its heap once a big block has been freed (its mmap
threshold rises), and keeps what is freed there for reuse: after a few 10 MB requests (a fuzzed prompt, refused
or not) the server held ~400 MB it no longer used. A fixed threshold makes every block of 128 kB or more a
separate mapping, returned to the system when freed, and a low trim threshold returns the heap's free top.
The same as starting Python with MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 128 * 1024


def return_freed_memory() -> bool:
    """Set glibc's thresholds for this process; False where the C library is not glibc (nothing to do)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl, macOS, Windows: no mallopt
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, THRESHOLD_BYTES))
