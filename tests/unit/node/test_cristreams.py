"""exec, attach and port-forward of CRI containers (svcnet/node/cristreams.py over
svcnet/node/spdyclient.py), against a fake CRI streaming server (tests/fakestreaming.py): a
real WebSocket on the client's side (as the API server opens it), real SPDY on the runtime's."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from svcnet.api import remotecommand as rc
from svcnet.node.cristreams import CriDialer, decode_status, remote_command
from svcnet.node.exec import StreamOptions, _drain_client, accept
from svcnet.node.spdyclient import SpdyClient, UpgradeError
from svcnet.util.bytequeue import DEFAULT_LIMIT
from tests.fakestreaming import FakeStreamingServer


@pytest.fixture
async def runtime() -> AsyncIterator[FakeStreamingServer]:
    server = FakeStreamingServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _exec(url: str, opts: StreamOptions, *, stdin: bytes | None = None,
                resize: tuple[int, int] | None = None, protocol: str = rc.V5
                ) -> tuple[bytes, bytes, Any]:
    """One exec through a WebSocket served by the node's handler code: (stdout, stderr, the
    error channel's payload)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        chans = await accept(request, rc.EXEC_PROTOCOLS)
        await remote_command(chans, opts, url, _drain_client)
        return chans.ws

    app = web.Application()
    app.router.add_get("/exec", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    out = {rc.STDOUT: b"", rc.STDERR: b"", rc.ERROR: b""}
    try:
        async with aiohttp.ClientSession() as s, s.ws_connect(
                f"http://127.0.0.1:{port}/exec", protocols=(protocol,)) as ws:
            proto = rc.Protocol(ws.protocol or "")
            if resize is not None:
                await ws.send_bytes(bytes([rc.RESIZE]) + json.dumps(
                    {"Width": resize[0], "Height": resize[1]}).encode())
            if stdin is not None:
                await ws.send_bytes(bytes([rc.STDIN]) + stdin)
                await ws.send_bytes(bytes([rc.CLOSE, rc.STDIN]))
            async for msg in ws:
                if msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                    channel, data = proto.decode(msg.data)
                    out[channel] += data
    finally:
        await runner.cleanup()
    error = json.loads(out[rc.ERROR]) if out[rc.ERROR].startswith(b"{") else out[rc.ERROR]
    return out[rc.STDOUT], out[rc.STDERR], error


async def test_exec_copies_stdin_to_the_command_and_its_eof(runtime: FakeStreamingServer
                                                            ) -> None:
    opts = StreamOptions(("cat",), stdin=True, stdout=True, stderr=True, tty=False)
    url = runtime.url("exec", command=opts.command, stdin=True)
    stdout, stderr, status = await _exec(url, opts, stdin=b"hello\nworld\n")
    assert (stdout, stderr) == (b"hello\nworld\n", b"")
    assert status == {"metadata": {}, "status": "Success"}


async def test_a_failing_command_gives_its_stderr_and_exit_code(runtime: FakeStreamingServer
                                                                ) -> None:
    opts = StreamOptions(("fail", "3"), stdin=False, stdout=True, stderr=True, tty=False)
    url = runtime.url("exec", command=opts.command)
    stdout, stderr, status = await _exec(url, opts)
    assert (stdout, stderr) == (b"", b"oops\n")
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


async def test_old_protocols_get_the_message_not_the_status(runtime: FakeStreamingServer
                                                            ) -> None:
    opts = StreamOptions(("fail", "2"), stdin=False, stdout=True, stderr=True, tty=False)
    _, _, error = await _exec(runtime.url("exec", command=opts.command), opts,
                              protocol=rc.V1)
    assert error == (b"command terminated with non-zero exit code: error executing command "
                     b"[fail 2], exit code 2")


async def test_a_tty_gets_resizes_on_its_resize_stream(runtime: FakeStreamingServer) -> None:
    opts = StreamOptions(("size",), stdin=False, stdout=True, stderr=False, tty=True)
    url = runtime.url("exec", command=opts.command, stderr=False, tty=True)
    stdout, _, status = await _exec(url, opts, resize=(132, 43))
    assert stdout == b"132x43\n"
    assert status["status"] == "Success"


async def test_a_used_or_unknown_url_is_a_failure_on_the_error_channel(
        runtime: FakeStreamingServer) -> None:
    opts = StreamOptions(("fail", "1"), stdin=False, stdout=True, stderr=True, tty=False)
    url = runtime.url("exec", command=opts.command)
    assert (await _exec(url, opts))[1] == b"oops\n"
    _, _, status = await _exec(url, opts)  # tokens are single-use
    assert status["status"] == "Failure"
    assert status["message"].startswith("error dialing backend: Not Found")


async def test_the_upgrade_is_refused_with_the_runtimes_reason(runtime: FakeStreamingServer
                                                               ) -> None:
    with pytest.raises(UpgradeError, match="unable to negotiate protocol"):
        await SpdyClient.connect(runtime.url("exec", command=("cat",)), ("v9.channel.k8s.io",))
    with pytest.raises(UpgradeError, match="cannot reach the streaming server"):
        await SpdyClient.connect(f"http://127.0.0.1:{await _closed_port()}/exec/x", (rc.V4,))


async def test_a_slow_reader_holds_back_the_runtime_not_the_agents_memory(
        runtime: FakeStreamingServer) -> None:
    """Back-pressure: 64 MiB of output to a reader that does not read leaves at most the
    stream's limit (plus what the kernel buffers) in the agent, and all of it arrives later."""
    total = 64 << 20
    session = await SpdyClient.connect(runtime.url("exec", command=("flood", str(total)),
                                                   stderr=False), (rc.V4,))
    try:
        error = await session.open({"streamType": "error"})
        stdout = await session.open({"streamType": "stdout"})
        await asyncio.sleep(0.5)
        assert stdout._inbox.size <= DEFAULT_LIMIT + 65536
        got = 0
        while data := await stdout.read():
            got += len(data)
        assert got == total
        assert decode_status(await error.read_all())["status"] == "Success"
    finally:
        await session.close()


def test_decode_status() -> None:
    assert decode_status(b"") == {"metadata": {}, "status": "Success"}
    assert decode_status(b'{"status":"Failure","message":"m"}')["message"] == "m"
    assert decode_status(b"plain words")["message"] == "plain words"


async def _closed_port() -> int:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()
    return port


async def test_port_forward_connections_share_one_session(runtime: FakeStreamingServer
                                                          ) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the client's half-close
        writer.write(data.upper())
        await writer.drain()
        writer.close()

    pod = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = int(pod.sockets[0].getsockname()[1])
    urls = 0

    async def url() -> str:
        nonlocal urls
        urls += 1
        return runtime.url("portforward")

    dialer = CriDialer(url, "sandbox-1")
    try:
        for word in (b"one", b"two"):
            conn = await dialer.dial(port)
            await conn.write(word)
            await conn.write_eof()
            got = b""
            while data := await conn.read():
                got += data
            assert (got, await conn.error()) == (word.upper(), "")
            await conn.close()
        refused = await dialer.dial(await _closed_port())
        assert await refused.read() == b""
        assert "failed to connect to localhost" in await refused.error()
        assert (urls, runtime.sessions) == (1, 1)
        await refused.close()
        session = dialer._session
        assert session is not None and session._streams == {}  # finished streams forgotten
    finally:
        await dialer.close()
        pod.close()
        with contextlib.suppress(Exception):
            await pod.wait_closed()


async def test_a_dialer_whose_url_fails_refuses_with_the_reason() -> None:
    async def url() -> str:
        return f"http://127.0.0.1:{await _closed_port()}/portforward/x"

    dialer = CriDialer(url, "sandbox-2")
    conn = await dialer.dial(80)
    assert await conn.read() == b""
    assert (await conn.error()).startswith("error forwarding port 80 to pod sandbox-2: cannot "
                                           "reach the streaming server")
    await dialer.close()
