"""Waiting for a condition in tests: one home for polling (sync and async), for waiting on an
informer's cache, for running a command whose failure shows what it printed, and for counting
the event loop's turns (:class:`LoopTurns`: does long work let the loop serve others?)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

from svcnet.client.informer import EventHandler, Informer


def wait_for(fn: Callable[[], Any], what: str = "the condition", *, timeout: float = 30.0,
             interval: float = 0.1, detail: Callable[[], str] | None = None) -> Any:
    """Call ``fn`` until it returns something truthy and return that; fail after ``timeout``
    seconds naming ``what`` (and ``detail()``, if given, for what was seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f": {detail()}" if detail is not None else f" (last: {value!r})"
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{seen}")
        time.sleep(interval)


async def eventually(fn: Callable[[], Any], what: str = "the condition", *,
                     timeout: float = 10.0, interval: float = 0.02) -> Any:
    """:func:`wait_for` for the event loop: ``fn`` may be a coroutine function or a plain one."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} "
                                 f"(last: {value!r})")
        await asyncio.sleep(interval)


async def cache_settles(informer: Informer, cond: Callable[[], bool], *,
                        timeout: float = 10.0) -> None:
    """Until ``cond()`` holds, checked after every event ``informer`` delivers."""
    done = asyncio.Event()

    def check(*_: Any) -> None:
        if cond():
            done.set()

    informer.add_handler(EventHandler(on_add=check, on_update=check, on_delete=check))
    if not cond():
        await asyncio.wait_for(done.wait(), timeout=timeout)


def run(args: Sequence[str], *, check: bool = True, timeout: float = 120,
        **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` with text output captured; a failure shows the command, its exit
    status, and what it printed on stdout and stderr."""
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                       check=False, **kwargs)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({r.returncode}):\n"
                             f"stdout: {r.stdout}\nstderr: {r.stderr}")
    return r


class LoopTurns:
    """Counts the event loop's turns while open (``async with LoopTurns() as turns``): work
    that gives the loop a turn now and then lets ``turns.count`` grow while it runs; work that
    holds the loop to the end does not."""

    def __init__(self) -> None:
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> LoopTurns:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
