"""The API server's end of plain SPDY exec/attach (svcnet/apiserver/subresources/spdyrelay.py):
protocol negotiation, resize lines, error translation, and the bridge between a client's SPDY
streams and the node's v5 channels, with a scripted client and node."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest
from aiohttp import WSMessage, WSMsgType, web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from svcnet.api import remotecommand as rc, spdy
from svcnet.api.errors import StatusError
from svcnet.apiserver.subresources.spdyrelay import (
    SPDY_EXEC_PROTOCOLS,
    ExecBridge,
    ResizeLines,
    error_for_client,
    is_spdy_upgrade,
    negotiate_stream_protocol,
)


def _request(*protocols: str) -> Any:
    headers = CIMultiDict([("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")])
    for p in protocols:
        headers.add("X-Stream-Protocol-Version", p)
    return make_mocked_request("POST", "/exec", headers=headers)


def test_the_clients_first_supported_protocol_is_chosen() -> None:
    assert is_spdy_upgrade(_request())
    chosen = negotiate_stream_protocol(_request("v9.channel.k8s.io", rc.V3, rc.V4),
                                       SPDY_EXEC_PROTOCOLS)
    assert chosen == rc.V3
    refusal = negotiate_stream_protocol(_request(rc.V5), SPDY_EXEC_PROTOCOLS)
    assert isinstance(refusal, web.Response) and refusal.status == 403
    assert refusal.headers.getall("X-Accepted-Stream-Protocol-Versions") == list(
        SPDY_EXEC_PROTOCOLS)
    assert json.loads(cast(bytes, refusal.body))["message"] == (
        "unable to upgrade: unable to negotiate protocol: client supports "
        "[v5.channel.k8s.io], server accepts [v4.channel.k8s.io v3.channel.k8s.io "
        "v2.channel.k8s.io channel.k8s.io]")
    with pytest.raises(StatusError) as err:
        negotiate_stream_protocol(_request(), SPDY_EXEC_PROTOCOLS)
    assert err.value.code == 400
    assert err.value.message == "unable to upgrade: X-Stream-Protocol-Version is required"


def test_resize_objects_are_cut_at_newlines_wherever_data_frames_end() -> None:
    lines = ResizeLines()
    assert lines.feed(b'{"Width":80,') == []
    assert lines.feed(b'"Height":24}\n{"Width":1') == [b'{"Width":80,"Height":24}']
    assert lines.feed(b'00,"Height":30}\n') == [b'{"Width":100,"Height":30}']


def test_the_error_stream_carries_what_the_clients_protocol_expects() -> None:
    failure = json.dumps(rc.exit_status(3, ["sh"])).encode()
    assert error_for_client(rc.V4, failure) == failure
    assert error_for_client(rc.V3, failure).startswith(b"command terminated with non-zero")
    success = json.dumps(rc.exit_status(0, ["true"])).encode()
    assert error_for_client(rc.V2, success) == b""


class FakeConn:
    def __init__(self, incoming: list[bytes]) -> None:
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        for data in incoming:
            self.incoming.put_nowait(data)
        self.out = bytearray()

    async def read(self) -> bytes | None:
        return await self.incoming.get()

    async def write(self, data: bytes) -> None:
        self.out += data


class FakeNode:
    def __init__(self, messages: list[bytes], after: asyncio.Event) -> None:
        self.messages = messages
        self.after = after
        self.sent: list[bytes] = []

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)
        if data == bytes((rc.CLOSE, rc.STDIN)):
            self.after.set()  # the command's stdin ended: it answers

    def __aiter__(self) -> Any:
        return self._messages()

    async def _messages(self) -> Any:
        await self.after.wait()
        for data in self.messages:
            yield WSMessage(WSMsgType.BINARY, data, None)


def _syn(codec: spdy.Codec, sid: int, kind: str) -> bytes:
    return codec.encode(spdy.Frame(spdy.SYN_STREAM, sid, headers={"streamtype": [kind]}))


async def test_streams_map_to_the_nodes_channels_and_end_with_the_status() -> None:
    client = spdy.Codec()
    frames = [_syn(client, 1, "error"), _syn(client, 3, "stdin"), _syn(client, 5, "stdout"),
              _syn(client, 7, "stderr"),
              client.encode(spdy.Frame(spdy.DATA, 3, data=b"input")),
              client.encode(spdy.Frame(spdy.PING, value=9)),
              client.encode(spdy.Frame(spdy.DATA, 3, spdy.FLAG_FIN))]
    status = json.dumps(rc.exit_status(3, ["cat"])).encode()
    conn = FakeConn([b"".join(frames)])
    node = FakeNode([bytes((rc.STDOUT,)) + b"out", bytes((rc.STDERR,)) + b"err",
                     bytes((rc.ERROR,)) + status], asyncio.Event())
    bridge = ExecBridge(cast(Any, conn), cast(Any, node), rc.V4)
    run = asyncio.create_task(bridge.run())

    def got() -> list[spdy.Frame]:
        return spdy.Codec().feed(bytes(conn.out))

    await _until_finished(got, 1)
    assert not run.done()  # the server waits for the client to close
    conn.incoming.put_nowait(None)
    await asyncio.wait_for(run, 5)
    assert node.sent == [bytes((rc.STDIN,)) + b"input", bytes((rc.CLOSE, rc.STDIN))]
    frames_out = got()
    assert [f.stream_id for f in frames_out if f.kind == spdy.SYN_REPLY] == [1, 3, 5, 7]
    assert [f.value for f in frames_out if f.kind == spdy.PING] == [9]
    data = [(f.stream_id, f.data, f.fin) for f in frames_out if f.kind == spdy.DATA]
    assert data == [(5, b"out", False), (7, b"err", False), (1, status, False),
                    (5, b"", True), (7, b"", True), (1, b"", True)]


async def _until_finished(got: Any, sid: int) -> None:
    for _ in range(200):
        if any(f.kind == spdy.DATA and f.stream_id == sid and f.fin for f in got()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"stream {sid} was not finished")


async def test_a_stream_opened_after_the_node_ended_is_finished_at_once() -> None:
    """A command the node refuses ends before the client has opened every stream."""
    client = spdy.Codec()
    refusal = json.dumps(rc.failure_status("stdin cannot be attached", "BadRequest", 400))
    conn = FakeConn([_syn(client, 1, "error")])
    ended = asyncio.Event()
    ended.set()
    node = FakeNode([bytes((rc.ERROR,)) + refusal.encode()], ended)
    bridge = ExecBridge(cast(Any, conn), cast(Any, node), rc.V4)
    run = asyncio.create_task(bridge.run())

    def got() -> list[spdy.Frame]:
        return spdy.Codec().feed(bytes(conn.out))

    await _until_finished(got, 1)
    conn.incoming.put_nowait(_syn(client, 3, "stdin") + _syn(client, 5, "stdout"))
    await _until_finished(got, 5)
    conn.incoming.put_nowait(None)
    await asyncio.wait_for(run, 5)
    frames_out = got()
    assert [f.stream_id for f in frames_out if f.kind == spdy.SYN_REPLY] == [1, 3, 5]
    assert [(f.stream_id, f.fin) for f in frames_out if f.kind == spdy.DATA] == [
        (1, False), (1, True), (5, True)]
