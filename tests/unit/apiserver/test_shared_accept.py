"""SharedAcceptor: processes sharing one listening socket share its connections evenly.

Two acceptors on one event loop stand for two processes (each accepts from its own duplicate
of the socket's descriptor, as a worker does from the one it inherits).
"""

from __future__ import annotations

import asyncio
import socket

from svcnet.apiserver.connections import SharedAcceptor
from tests.waiting import eventually


class Counting(asyncio.Protocol):
    def __init__(self, made: list[asyncio.Transport]) -> None:
        self.made = made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.made.append(transport)


def sharer(listener: socket.socket, made: list[asyncio.Transport]) -> SharedAcceptor:
    """A process's acceptor on ``listener``, its connections kept in ``made``."""
    return SharedAcceptor(listener.fileno(), lambda: Counting(made), backlog=128,
                          ssl_context=None, handshake_timeout=None, load=lambda: len(made))


async def burst(n: int, port: int) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    return list(await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port)
                                       for _ in range(n))))


async def test_a_burst_of_connections_is_split_between_the_sharers() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    made: list[list[asyncio.Transport]] = [[], []]
    acceptors = [sharer(listener, m) for m in made]
    clients = []
    try:
        clients = await burst(16, port)
        await eventually(lambda: sum(map(len, made)) == 16, "16 connections made")
        assert sorted(map(len, made)) in ([8, 8], [7, 9]), [len(m) for m in made]

        # A sharer that holds more connections takes fewer of the next ones.
        for _ in range(20):
            made[0].append(made[0][0])  # pretend the first holds 20 more
        clients += await burst(16, port)
        await eventually(lambda: sum(map(len, made)) == 52, "16 more connections made")
        assert len(made[1]) - 8 > len(made[0]) - 28, [len(m) for m in made]
    finally:
        for _, writer in clients:
            writer.close()
        for acceptor in acceptors:
            acceptor.close()
        for transport in {t for m in made for t in m}:
            transport.close()
        listener.close()


async def test_closing_stops_accepting_and_leaves_the_socket_to_the_others() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    made: list[list[asyncio.Transport]] = [[], []]
    acceptors = [sharer(listener, m) for m in made]
    acceptors[0].close()
    clients = []
    try:
        clients = await burst(4, port)
        await eventually(lambda: len(made[1]) == 4, "the open acceptor took all four")
        assert made[0] == []
    finally:
        for _, writer in clients:
            writer.close()
        acceptors[1].close()
        for transport in made[1]:
            transport.close()
        listener.close()
