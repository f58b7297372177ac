"""Giving memory the process has freed back to the operating system.

glibc's allocator keeps freed heap memory for reuse instead of returning it, and after the first
large block is freed it stops serving blocks of that size from mmap. So a burst of connections
that ends (each TLS connection holds asyncio's 256 KiB read buffer and OpenSSL's buffers) leaves
the server's RSS at its peak, although nothing uses the memory any more. Go's runtime, which the
Kubernetes API server runs on, hands such memory back in the background (its scavenger);
``malloc_trim(0)`` is glibc's way to do the same: it releases every free page of the heap.

:func:`release_soon` asks for that once the current burst of releases is over, at most once per
``delay`` seconds; it does nothing where glibc is not the allocator.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable

__all__ = ["release_free_memory", "release_soon"]


def _load_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_trim = _load_trim()


def release_free_memory() -> bool:
    """Return the heap's free pages to the OS now; True if the allocator could do it."""
    if _trim is None:
        return False
    _trim(0)
    return True


class _Releaser:
    """One pending :func:`release_free_memory` per event loop at a time."""

    def __init__(self) -> None:
        self._pending: tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle] | None = None

    def request(self, delay: float = 1.0) -> None:
        """Schedule :func:`release_free_memory` in ``delay`` seconds unless one is pending."""
        if _trim is None:
            return
        loop = asyncio.get_running_loop()
        if self._pending is not None and self._pending[0] is loop \
                and not self._pending[1].cancelled():
            return
        self._pending = (loop, loop.call_later(delay, self._run))

    def _run(self) -> None:
        self._pending = None
        release_free_memory()


release_soon = _Releaser().request
