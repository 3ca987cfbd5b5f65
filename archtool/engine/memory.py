"""Give freed heap memory back to the operating system between the phases of a file.

NumPy and torch allocate their arrays through the C library's ``malloc``. glibc keeps
freed memory inside the process (its heaps grow but rarely shrink, and the threshold above
which it maps large blocks directly rises each time such a block is freed), so the
resident size after the analysis of a long file, or after a pass over it, keeps the
high-water mark of all the short-lived arrays of that phase. ``malloc_trim(0)`` returns
the free pages of every heap; calling it after each phase keeps a worker's footprint at
what it really holds, however long the file and however many files it has done.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim`` or None (other C libraries, other systems)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system; True if anything was released.

    Costs a few milliseconds; does nothing where the C library offers no ``malloc_trim``.
    """
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
