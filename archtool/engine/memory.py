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


def resident_bytes() -> int | None:
    """This process's resident set size in bytes (Linux ``/proc/self/statm``), else None."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _page_size()
    except (OSError, IndexError, ValueError):
        return None


@functools.lru_cache(maxsize=1)
def _page_size() -> int:
    import os

    return os.sysconf("SC_PAGE_SIZE")


class HeapCeiling:
    """Keep a block loop's resident size from creeping up with the file's length.

    A loop over blocks allocates and frees the same large temporaries each step; glibc
    reuses the freed pages, but as its heap fragments, now and then a temporary lands on
    fresh pages while freed ones stay resident, so a long file ends a pass tens of MB
    above where it began. Calling :meth:`step` after each block notes the resident size
    once the loop has settled (the largest after the first ``settle`` steps) and returns
    freed pages (``malloc_trim``) whenever a later step ends more than ``slack_bytes``
    above it. A trim costs a few milliseconds plus the page faults of re-touching the
    pool, so it runs only when the footprint has grown, not every block: the step after
    a trim sets the level anew if it is higher (what the loop needs with the heap as it
    now is; trimming that again each step would only fault the same pages back in).
    """

    def __init__(self, slack_bytes: int = 8 << 20, settle: int = 3):
        self.slack = int(slack_bytes)
        self.settle = int(settle)
        self.steps = 0
        self.trims = 0
        self.settled: int | None = None
        self._resettle = False
        self._active = _malloc_trim() is not None and resident_bytes() is not None

    def step(self) -> bool:
        """Call after each block; True if freed pages were returned this time."""
        if not self._active:
            return False
        self.steps += 1
        rss = resident_bytes() or 0
        if self.steps <= self.settle or self._resettle:
            self.settled = max(self.settled or 0, rss)
            self._resettle = False
            return False
        if rss > (self.settled or 0) + self.slack:
            release_free_memory()
            self.trims += 1
            self._resettle = True
            return True
        return False
