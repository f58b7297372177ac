"""A queue of byte chunks bounded by the bytes it holds: back-pressure for relays.

A relay that reads from one side as fast as it can and queues for a slower side holds, in the
end, everything the fast side sent. Go's stream libraries do not (spdystream's frame reader
blocks on a stream's full data channel, and the connection's TCP window then stops the
sender); :class:`ByteQueue` gives a reader loop the same behaviour: :meth:`put` waits while
more than ``limit`` bytes wait to be taken, :meth:`get` makes room. The end of the stream
(:meth:`close`) never waits, so a reader loop can always finish a stream.
"""

from __future__ import annotations

import asyncio
import collections

__all__ = ["ByteQueue"]

DEFAULT_LIMIT = 1 << 20
"""Bytes a queue holds before :meth:`ByteQueue.put` waits (1 MiB)."""


class ByteQueue:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._closed = False
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    @property
    def size(self) -> int:
        """Bytes waiting to be taken."""
        return self._size

    async def put(self, data: bytes) -> None:
        """Queue ``data`` (dropped once closed); waits while the queue is over its limit."""
        if self._closed or not data:
            return
        self._chunks.append(data)
        self._size += len(data)
        self._readable.set()
        if self._size > self.limit:
            self._writable.clear()
            await self._writable.wait()

    def close(self) -> None:
        """The end: :meth:`get` returns ``b""`` once what is queued has been taken."""
        self._closed = True
        self._readable.set()
        self._writable.set()  # nobody waits to put into a finished stream

    async def get(self) -> bytes:
        """The next chunk, or ``b""`` at the end."""
        while not self._chunks:
            if self._closed:
                return b""
            self._readable.clear()
            await self._readable.wait()
        data = self._chunks.popleft()
        self._size -= len(data)
        if self._size <= self.limit:
            self._writable.set()
        return data
