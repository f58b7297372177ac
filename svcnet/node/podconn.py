"""Connections to a pod's ports, however they are made: the :class:`PodConnection` that
port-forward relays (:mod:`svcnet.node.portforward`, :mod:`svcnet.node.spdyforward`), and the
process runtime's :class:`PodDialer` (the CRI's is :class:`svcnet.node.cristreams.CriDialer`).

Theory of operation
-------------------
Followed: the container runtimes' PortForward (dial ``localhost:PORT`` in the pod's network
namespace; the kubelet's message when that fails). A connection reads until the pod's side
ends, writes, half-closes (the client finished sending), and, once it ended, says why it failed
(an empty reason: it did not); a dial that fails gives a :class:`Refused` connection, so the
relays have one path. :class:`PodDialer` creates its sockets on a thread inside the pod's
network namespace (a socket belongs to the namespace it was created in:
:mod:`svcnet.util.nsthread`), and the event loop connects and relays them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from typing import Protocol

from svcnet.util.nsthread import NetnsThread

_READ = 64 * 1024


class PodConnection(Protocol):
    """One connection to a pod's port, however it is made."""

    async def read(self) -> bytes:
        """The next bytes from the pod; ``b""`` once it finished."""

    async def write(self, data: bytes) -> None: ...

    async def write_eof(self) -> None:
        """The client finished sending (the pod reads EOF)."""

    async def close(self) -> None: ...

    async def error(self) -> str:
        """Once :meth:`read` gave ``b""``: why the connection failed ("" if it did not)."""


class Dialer(Protocol):
    async def dial(self, port: int) -> PodConnection: ...

    async def close(self) -> None: ...


class Refused:
    """A connection that could not be made: it reads nothing and says why."""

    def __init__(self, message: str) -> None:
        self.message = message

    async def read(self) -> bytes:
        return b""

    async def write(self, data: bytes) -> None:
        return None

    async def write_eof(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def error(self) -> str:
        return self.message


class TcpConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def read(self) -> bytes:
        try:
            return await self._reader.read(_READ)
        except ConnectionError:
            return b""

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    async def write_eof(self) -> None:
        with contextlib.suppress(OSError):
            if self._writer.can_write_eof():
                self._writer.write_eof()

    async def close(self) -> None:
        self._writer.close()

    async def error(self) -> str:
        return ""


class PodDialer:
    """TCP connections to ``127.0.0.1:PORT`` inside a pod's network namespace, for pods of
    the process runtime: sockets are created on a thread in that namespace, then connected
    by the event loop."""

    def __init__(self, netns: str | None, uid: str) -> None:
        self.netns, self.uid = netns, uid
        self._thread = NetnsThread(netns) if netns else None

    async def dial(self, port: int) -> TcpConnection | Refused:
        """A connection, or why there is none in the kubelet's words."""
        # (Made here when there is no namespace to enter: creating a socket does not block.)
        sock = (await self._thread.call(_socket, discard=socket.socket.close) if self._thread
                else _socket())
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        except OSError as e:
            sock.close()
            reason = os.strerror(e.errno).lower() if e.errno else str(e)
            return Refused(
                f"error forwarding port {port} to pod {self.uid}, uid : failed to connect to "
                f"localhost:{port} inside namespace {self.netns or 'of the node'}, IPv4: dial "
                f"tcp4 127.0.0.1:{port}: connect: {reason}")
        return TcpConnection(*await asyncio.open_connection(sock=sock))

    async def close(self) -> None:
        if self._thread is not None:
            self._thread.close()


def _socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    return s
