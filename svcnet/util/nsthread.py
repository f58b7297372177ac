"""Threads that live inside a named network namespace, for work that must happen "in" it.

Theory of operation
-------------------
``setns(2)`` moves only the *calling thread* into a namespace, and Python 3.11 has no
``os.setns`` (it came in 3.12), hence the ctypes call below. Two rules follow from the
per-thread semantics:

* never call it on the asyncio thread (every later socket and ``/proc/sys/net`` open of the
  agent would silently land in the pod's or node's namespace);
* never call it on a pooled thread that may later run unrelated work (the default executor,
  ``asyncio.to_thread``). A :class:`NetnsThread` is a private thread that enters the namespace
  once, before running anything, and never leaves it.

What a netns thread is good for:

* **sockets.** A socket belongs to the network namespace it was *created* in, for its whole
  life, whichever thread uses it later. So a netns thread only creates sockets; the event loop
  then connects, reads and writes them. That is how the prober reaches pod IPs "from the node"
  (:mod:`svcnet.node.probes`) at the cost of one thread hop (tens of microseconds) per probe
  rather than a ``python -c`` process (tens of milliseconds) per probe.
* **sysctls.** ``/proc/sys/net/*`` resolves against the netns of the thread that opens it
  (measured: docs/MEASURED.md §1), so writing ``ip_forward`` from a node-netns thread
  sets the node's, not the host's.

A thread inside a namespace keeps that namespace alive after ``ip netns del`` (like any
process in it), so long-lived :class:`NetnsThread` objects must be closed when their namespace
is deleted.

``asyncio`` is imported inside the coroutines that need it (they run on a loop, where it is
loaded already): the CNI plugin (:mod:`svcnet.node.cni`) imports this module through
:mod:`svcnet.node.netns` on every pod start, and importing asyncio costs ~90 ms there.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import functools
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

__all__ = ["NETNS_RUN_DIR", "NetnsThread", "enter_netns", "run_in_netns"]

T = TypeVar("T")

NETNS_RUN_DIR: Final = Path("/run/netns")
_CLONE_NEWNET: Final = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


def enter_netns(path: Path) -> None:
    """Move the *calling thread* into the network namespace bound at ``path``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


_Work = tuple[Callable[[], object], "concurrent.futures.Future[object]"]


def _discard(discard: Callable[[Any], object], fut: concurrent.futures.Future[object]) -> None:
    if not fut.cancelled() and fut.exception() is None:
        discard(fut.result())


class NetnsThread:
    """A private thread inside one netns; :meth:`call` runs a function on it.

    The thread starts on first use. If the namespace cannot be entered (it does not exist),
    every call raises that ``OSError``.
    """

    def __init__(self, netns: str, *, run_dir: Path = NETNS_RUN_DIR) -> None:
        self.netns = netns
        self._path = run_dir / netns
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._entered: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, name=f"netns:{netns}", daemon=True)
        self._closed = False
        self._started = False
        self._start_lock = threading.Lock()

    def _main(self) -> None:
        try:
            enter_netns(self._path)
        except BaseException as exc:
            self._entered.set_exception(exc)
            return
        self._entered.set_result(None)
        while (work := self._queue.get()) is not None:
            fn, fut = work
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

    def _start(self) -> None:
        with self._start_lock:
            if not self._started:
                self._started = True
                self._thread.start()

    async def call(self, fn: Callable[[], T], *,
                   discard: Callable[[T], object] | None = None) -> T:
        """``fn()`` on the thread. If the caller is cancelled once ``fn`` has started, its
        result is handed to ``discard`` when it comes (e.g. ``socket.close`` for a socket
        that nobody will receive: it would otherwise be leaked)."""
        if self._closed:
            raise RuntimeError(f"netns thread for {self.netns} is closed")
        import asyncio

        self._start()
        await asyncio.wrap_future(self._entered)
        fut: concurrent.futures.Future[object] = concurrent.futures.Future()
        self._queue.put((fn, fut))
        try:
            result = await asyncio.wrap_future(fut)
        except asyncio.CancelledError:
            if discard is not None:
                fut.add_done_callback(functools.partial(_discard, discard))
            raise
        return result  # type: ignore[return-value]

    def call_sync(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the thread and wait for it, from any thread *except* an event loop's
        (it blocks)."""
        if self._closed:
            raise RuntimeError(f"netns thread for {self.netns} is closed")
        self._start()
        self._entered.result()
        fut: concurrent.futures.Future[object] = concurrent.futures.Future()
        self._queue.put((fn, fut))
        return fut.result()  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the thread (after the work already queued). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


async def run_in_netns(netns: str, fn: Callable[[], T], *, run_dir: Path = NETNS_RUN_DIR) -> T:
    """Run ``fn`` once on a throwaway thread inside ``netns``."""
    thread = NetnsThread(netns, run_dir=run_dir)
    try:
        return await thread.call(fn)
    finally:
        thread.close()
