"""RESTClient against a server that went silent: failover on timeouts, sticky and once.

The silent servers are real sockets on loopback: :class:`Silent` accepts connections and
never answers (a process that hangs, or a peer whose answers are lost), optionally answering a
watch's headers and then nothing; :func:`syn_dropping_address` is a listener whose accept
queue is full, so the kernel drops every SYN sent to it, as it is for a machine that vanished
from the network (no RST, no answer at all).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
from aiohttp.test_utils import TestServer

from svcnet.client import rest
from svcnet.client.rest import SERVICES, RESTClient, TransportError
from tests.unit.client.fakeapi import FakeAPI


class Silent:
    """A TCP server that reads requests and never answers; with ``watch_headers`` it answers
    a watch request's status line and headers, then stays silent on the open stream."""

    def __init__(self, *, watch_headers: bool = False) -> None:
        self.watch_headers = watch_headers
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        head = await reader.readuntil(b"\r\n\r\n")
        if self.watch_headers and b"watch=true" in head.split(b"\r\n", 1)[0]:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
        await reader.read()  # until the client goes away

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@contextmanager
def syn_dropping_address() -> Iterator[str]:
    """A URL whose SYNs are dropped: a listener (backlog 0) whose accept queue holds one
    connection it never accepts, so the kernel drops the SYNs of any other."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.connect(listener.getsockname())
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@asynccontextmanager
async def live_api() -> AsyncIterator[str]:
    fake = FakeAPI()
    fake.put("ns", "web")
    server = TestServer(fake.app())
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_a_request_timing_out_moves_to_the_next_server_and_stays() -> None:
    silent = Silent()
    dead = await silent.start()
    async with live_api() as live:
        client = RESTClient(dead, fallback_servers=[live])
        try:
            started = time.monotonic()
            with pytest.raises(TransportError, match="TimeoutError"):
                await client.get(SERVICES, "ns", "web", timeout=0.3)
            assert time.monotonic() - started < 2
            assert client.server == live
            for _ in range(3):  # sticky: never back to the silent one while this one answers
                assert (await client.get(SERVICES, "ns", "web"))["metadata"]["name"] == "web"
            assert silent.connections == 1
        finally:
            await client.close()
            await silent.close()


async def test_requests_failing_together_move_the_server_once() -> None:
    """Three requests waiting on one silent server fail together: the client moves past it
    once (before, each failure moved it one further, back round to a silent server)."""
    first, third = Silent(), Silent()
    dead1, dead3 = await first.start(), await third.start()
    async with live_api() as live:
        client = RESTClient(dead1, fallback_servers=[live, dead3])
        try:
            results = await asyncio.gather(
                *(client.get(SERVICES, "ns", "web", timeout=0.3) for _ in range(3)),
                return_exceptions=True)
            assert all(isinstance(r, TransportError) for r in results), results
            assert client.server == live
            assert third.connections == 0
        finally:
            await client.close()
            await first.close()
            await third.close()


async def test_a_move_ends_requests_and_watches_waiting_on_the_silent_server() -> None:
    """kubelet's closeAllConns: once one (short, heartbeat) request times out, a long request
    and a watch still waiting on the silent server fail at once, not after their own
    timeouts (30 s, and the watch's idle timeout)."""
    silent = Silent(watch_headers=True)
    dead = await silent.start()
    async with live_api() as live:
        client = RESTClient(dead, fallback_servers=[live], watch_idle_timeout=60)
        try:
            watch = client.watch(SERVICES, "ns")
            await watch.__aenter__()  # headers came: the stream is open, and silent
            long_request = asyncio.create_task(client.get(SERVICES, "ns", "web"))
            next_event = asyncio.create_task(anext(watch))
            await asyncio.sleep(0.1)
            started = time.monotonic()
            with pytest.raises(TransportError):
                await client.get(SERVICES, "ns", "web", timeout=0.3)
            with pytest.raises(TransportError, match=f"given up: {dead} did not answer"):
                await asyncio.wait_for(long_request, 2)
            with pytest.raises(TransportError, match=f"moved on to {live}"):
                await asyncio.wait_for(next_event, 2)
            assert time.monotonic() - started < 2
            assert client.server == live
            assert (await client.get(SERVICES, "ns", "web"))["metadata"]["name"] == "web"
        finally:
            await client.close()
            await silent.close()


async def test_a_server_dropping_syns_is_left_after_the_connect_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rest, "CONNECT_TIMEOUT", 0.5)
    with syn_dropping_address() as dead:
        async with live_api() as live:
            client = RESTClient(dead, fallback_servers=[live])
            alone = RESTClient(dead)
            try:
                started = time.monotonic()
                with pytest.raises(TransportError):
                    await client.get(SERVICES, "ns", "web")  # the 30 s request timeout
                assert time.monotonic() - started < 2
                assert client.server == live
                started = time.monotonic()
                with pytest.raises(TransportError):  # a watch's connect is bounded the same
                    await alone.watch(SERVICES, "ns").__aenter__()
                assert time.monotonic() - started < 2
            finally:
                await client.close()
                await alone.close()


async def test_a_silent_watch_stream_fails_after_the_idle_timeout() -> None:
    silent = Silent(watch_headers=True)
    client = RESTClient(await silent.start(), watch_idle_timeout=0.5)
    try:
        started = time.monotonic()
        async with client.watch(SERVICES, "ns") as watch:
            with pytest.raises(TransportError, match="Timeout"):
                await anext(watch)
        assert 0.4 < time.monotonic() - started < 2
    finally:
        await client.close()
        await silent.close()
