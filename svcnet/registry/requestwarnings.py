"""Warnings a request earns below the HTTP layer (a strategy's ``WarningsOnCreate`` /
``WarningsOnUpdate``), carried to its response's ``Warning`` headers.

Theory of operation
-------------------
Followed: k8s.io/apiserver/pkg/warning (``AddWarning`` records into a recorder that the
request's context carries; the handler writes what was recorded as ``Warning: 299 - "..."``
headers, identical texts once). Here the context is a :class:`contextvars.ContextVar`: the API
server's handler opens :func:`recording` around a registry call, and the registry
(:mod:`svcnet.registry.generic`) calls :func:`add` with what the strategy says of the object it
is about to write. The recorder is a list shared by the copies of the context that the
registry's CPU work runs in (:mod:`svcnet.util.offload`); outside :func:`recording`,
:func:`add` does nothing (controllers writing through the registry have no one to tell).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_recorder: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "svcnet_request_warnings", default=None)


@contextlib.contextmanager
def recording() -> Iterator[list[str]]:
    """The warnings added while the block runs, in order, each text once."""
    out: list[str] = []
    token = _recorder.set(out)
    try:
        yield out
    finally:
        _recorder.reset(token)


def add(*texts: str) -> None:
    out = _recorder.get()
    if out is not None:
        out.extend(t for t in dict.fromkeys(texts) if t and t not in out)
