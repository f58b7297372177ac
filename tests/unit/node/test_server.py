"""The node server (svcnet/node/server.py, exec.py, portforward.py) over real TLS on loopback,
reached with the API server's node client: who may call it, container logs, exec (pipes, TTY,
v5 close, base64), and port-forward to a local listener. No root: commands run in this
process's namespaces (a pod context without a netns)."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from svcnet.api import remotecommand as rc, spdy
from svcnet.api.errors import StatusError
from svcnet.api.resourcemetrics import (
    ContainerUsage,
    PodRef,
    ResourceSample,
    Usage,
    parse_resource_metrics,
)
from svcnet.apiserver.certs import (
    ensure_kubelet_client,
    ensure_tls,
    issue_client,
    issue_node_serving,
)
from svcnet.apiserver.nodeclient import NodeClient
from svcnet.node.runtime import ContainerKey
from svcnet.node.server import LogOptions, NodeServer, ServingConfig, check_caller
from tests.fakenode import FakeHost

POD: dict[str, Any] = {"metadata": {"name": "web", "namespace": "default", "uid": "uid-1"},
                       "spec": {"containers": [{"name": "app"}]}}


@dataclass
class Setup:
    base: str
    client: NodeClient
    data: Path
    ca: Path
    host: FakeHost


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Setup]:
    tls = ensure_tls(tmp_path, ["127.0.0.1"])
    cert, key = issue_node_serving(tmp_path, "n1", ["127.0.0.1"], tmp_path / "node")
    host = FakeHost()
    await host.run("uid-1", "app", tmp_path / "0.log", b"one\ntwo\nthree\n")
    server = NodeServer(host, lambda ns, name: POD if (ns, name) == ("default", "web")
                        else None)
    port = await server.start(ServingConfig(cert, key, tls.ca_pem().decode(), "127.0.0.1", 0))
    client = NodeClient(tls.ca_cert, *ensure_kubelet_client(tmp_path))
    try:
        yield Setup(f"https://127.0.0.1:{port}", client, tmp_path, tls.ca_cert, host)
    finally:
        await client.close()
        await server.stop()


def test_check_caller() -> None:
    with pytest.raises(StatusError) as err:
        check_caller(None)
    assert err.value.code == 401
    other = {"subject": ((("organizationName", "system:nodes"),), (("commonName", "x"),))}
    with pytest.raises(StatusError) as err:
        check_caller(other)
    assert err.value.code == 403
    check_caller({"subject": ((("organizationName", "system:masters"),),
                              (("commonName", "kube-apiserver-kubelet-client"),))})


async def test_callers_without_the_api_servers_certificate_are_refused(node: Setup) -> None:
    ctx = ssl.create_default_context(cafile=str(node.ca))
    async with aiohttp.ClientSession() as s, s.get(
            f"{node.base}/containerLogs/default/web/app", ssl=ctx) as r:
        assert r.status == 401
        assert (await r.json())["reason"] == "Unauthorized"
    cert_pem, key_pem = issue_client(node.data, "system:node:n2", ("system:nodes",))
    (node.data / "other.crt").write_bytes(cert_pem)
    (node.data / "other.key").write_bytes(key_pem)
    ctx.load_cert_chain(node.data / "other.crt", node.data / "other.key")
    async with aiohttp.ClientSession() as s, s.get(
            f"{node.base}/containerLogs/default/web/app", ssl=ctx) as r:
        assert r.status == 403
    async with node.client.session.get(f"{node.base}/healthz") as r:
        assert r.status == 200


async def test_container_logs(node: Setup) -> None:
    url = f"{node.base}/containerLogs/default/web/app"
    for params, body in (({}, b"one\ntwo\nthree\n"), ({"tailLines": "1"}, b"three\n"),
                         ({"limitBytes": "5"}, b"one\nt"), ({"tailLines": "0"}, b"")):
        async with node.client.session.get(url, params=params) as r:
            assert (r.status, await r.read()) == (200, body)
    async with node.client.session.get(url, params={"previous": "true"}) as r:
        assert r.status == 400
        assert "previous terminated container" in (await r.json())["message"]
    async with node.client.session.get(f"{node.base}/containerLogs/default/nope/app") as r:
        assert r.status == 404
    async with node.client.session.get(f"{node.base}/containerLogs/default/web/x") as r:
        assert (await r.json())["message"] == "container x is not valid for pod web"


async def test_follow_streams_until_the_container_exits(node: Setup) -> None:
    url = f"{node.base}/containerLogs/default/web/app"
    async with node.client.session.get(url, params={"follow": "true"}) as r:
        assert await r.content.readexactly(14) == b"one\ntwo\nthree\n"
        with open(node.host.logs[("uid-1", "app")], "ab") as f:
            f.write(b"four\n")
        assert await r.content.readexactly(5) == b"four\n"
        node.host.runtime.exit(ContainerKey("uid-1", "app"), 0)
        assert await asyncio.wait_for(r.content.read(), 5) == b""


async def test_cri_logs_are_decoded_with_timestamps_and_partial_lines(node: Setup) -> None:
    """containerd writes ``TIME STREAM TAG MESSAGE`` lines; clients get the output."""
    path = node.host.logs[("uid-1", "app")]
    path.write_bytes(b"2026-12-06T20:00:00.1Z stdout F one\n"
                     b"2026-12-06T20:00:00.2Z stderr P tw\n"
                     b"2026-12-06T20:00:00.3Z stderr F o\n"
                     b"2026-12-06T20:00:00.4Z stdout F thr")  # still being written
    node.host.cri.add("uid-1")
    url = f"{node.base}/containerLogs/default/web/app"
    for params, body in (({}, b"one\ntwo\n"), ({"tailLines": "1"}, b"two\n"),
                         ({"timestamps": "true"},
                          b"2026-12-06T20:00:00.1Z one\n2026-12-06T20:00:00.2Z two\n")):
        async with node.client.session.get(url, params=params) as r:
            assert (r.status, await r.read()) == (200, body)
    async with node.client.session.get(url, params={"follow": "true"}) as r:
        assert await r.content.readexactly(8) == b"one\ntwo\n"
        with open(path, "ab") as f:
            f.write(b"ee\n2026-12-06T20:00:00.5Z stdout F four\n")
        assert await r.content.readexactly(11) == b"three\nfour\n"
        node.host.runtime.exit(ContainerKey("uid-1", "app"), 0)
        assert await asyncio.wait_for(r.content.read(), 5) == b""


async def exec_ws(node: Setup, command: list[str], protocols: list[str], *,
                  stdin: bytes = b"", tty: bool = False, resize: bytes = b"",
                  close: bool = True) -> tuple[str | None, dict[int, bytes]]:
    params = [("command", c) for c in command] + [("stdout", "true"), ("stderr", "true")]
    params += [("stdin", "true")] if stdin or close else []
    params += [("tty", "true")] if tty else []
    got: dict[int, bytes] = {}
    async with node.client.session.ws_connect(f"{node.base}/exec/default/web/app",
                                              params=params, protocols=protocols) as ws:
        proto = rc.Protocol(ws.protocol or rc.V1)
        for channel, data in ((rc.RESIZE, resize), (rc.STDIN, stdin)):
            if data:
                frame = proto.encode(channel, data)
                await (ws.send_str(frame) if isinstance(frame, str) else ws.send_bytes(frame))
        if close and proto.close_signal:
            await ws.send_bytes(bytes((rc.CLOSE, rc.STDIN)))
        async for msg in ws:
            channel, data = proto.decode(msg.data)
            got[channel] = got.get(channel, b"") + data
    return ws.protocol, got


async def test_exec_pipes_exit_status_and_v5_close(node: Setup) -> None:
    proto, got = await exec_ws(node, ["sh", "-c", "cat; echo $GREETING; echo err >&2; exit 3"],
                               [rc.V5, rc.V4], stdin=b"in\n")
    assert proto == rc.V5
    assert got[rc.STDOUT] == b"in\nhello\n" and got[rc.STDERR] == b"err\n"
    status = json.loads(got[rc.ERROR])
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    proto, got = await exec_ws(node, ["true"], [rc.V4], close=False)
    assert proto == rc.V4 and json.loads(got[rc.ERROR]) == {"metadata": {},
                                                            "status": "Success"}


async def test_exec_base64_and_v1_protocols(node: Setup) -> None:
    proto, got = await exec_ws(node, ["echo", "hi"], [rc.BASE64], close=False)
    assert proto == rc.BASE64 and got[rc.STDOUT] == b"hi\n"
    proto, got = await exec_ws(node, ["sh", "-c", "exit 2"], [rc.V1], close=False)
    assert proto == rc.V1
    assert got[rc.ERROR] == (b"command terminated with non-zero exit code: error executing "
                             b"command [sh -c exit 2], exit code 2")


async def test_exec_tty_resize(node: Setup) -> None:
    _, got = await exec_ws(node, ["sh", "-c", "read x; stty size; exit 4"], [rc.V5],
                           stdin=b"go\n", tty=True, resize=b'{"Width":120,"Height":40}',
                           close=False)
    assert b"40 120" in got[rc.STDOUT]
    assert rc.STDERR not in got
    assert json.loads(got[rc.ERROR])["details"]["causes"][0]["message"] == "4"


async def test_exec_needs_an_upgrade_and_a_command(node: Setup) -> None:
    async with node.client.session.post(f"{node.base}/exec/default/web/app",
                                        params={"command": "ls"}) as r:
        assert r.status == 400 and "Upgrade request required" in (await r.json())["message"]
    async with node.client.session.post(f"{node.base}/exec/default/web/app") as r:
        assert (await r.json())["message"] == "you must specify at least 1 command"


async def test_port_forward_channels(node: Setup) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
        writer.close()

    listener = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    closed = 1 if port != 1 else 2  # nothing listens on port 1
    try:
        async with node.client.session.ws_connect(
                f"{node.base}/portForward/default/web", params={"ports": f"{port},{closed}"},
                protocols=[rc.V5, rc.V4]) as ws:
            assert ws.protocol == rc.V4
            first = [await ws.receive_bytes() for _ in range(5)]
            prefix, dead = port.to_bytes(2, "little"), closed.to_bytes(2, "little")
            assert first[:4] == [b"\x00" + prefix, b"\x01" + prefix, b"\x02" + dead,
                                 b"\x03" + dead]
            assert first[4].startswith(b"\x03error forwarding port")
            await ws.send_bytes(b"\x00ping")
            assert await ws.receive_bytes() == b"\x00ping"
    finally:
        listener.close()


async def test_a_websocket_that_cannot_be_served_is_told_why_on_the_error_channel(
        node: Setup) -> None:
    async with node.client.session.ws_connect(
            f"{node.base}/attach/default/web/app", params={"stdin": "true"},
            protocols=[rc.V5]) as ws:
        msg = await ws.receive_bytes()
        assert msg[0] == rc.ERROR
        status = json.loads(msg[1:])
        assert status["status"] == "Failure" and status["code"] == 400
        assert status["message"].startswith("stdin cannot be attached")


async def test_port_forward_over_spdy_as_kubectl_speaks_it(node: Setup) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
        writer.close()

    listener = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    client = spdy.Codec()

    def syn(sid: int, kind: str, request: str, to: int) -> bytes:
        return client.encode(spdy.Frame(spdy.SYN_STREAM, sid, headers={
            "streamtype": [kind], "port": [str(to)], "requestid": [request]}))

    try:
        async with node.client.session.ws_connect(f"{node.base}/portForward/default/web",
                                                  protocols=[rc.SPDY_PORT_FORWARD]) as ws:
            assert ws.protocol == rc.SPDY_PORT_FORWARD
            # Two connections: one to the echo server, one to a port nobody listens on.
            await ws.send_bytes(syn(1, "error", "0", port) + syn(3, "data", "0", port)
                                + syn(5, "error", "1", 1) + syn(7, "data", "1", 1))
            await ws.send_bytes(client.encode(spdy.Frame(spdy.DATA, 3, data=b"ping"))
                                + client.encode(spdy.Frame(spdy.DATA, 3, spdy.FLAG_FIN))
                                + client.encode(spdy.Frame(spdy.PING, value=7)))
            server = spdy.Codec()
            frames: list[spdy.Frame] = []
            while sum(1 for f in frames if f.kind == spdy.DATA and f.fin) < 4:
                frames += server.feed(await asyncio.wait_for(ws.receive_bytes(), 5))
    finally:
        listener.close()
    assert sorted(f.stream_id for f in frames if f.kind == spdy.SYN_REPLY) == [1, 3, 5, 7]
    assert any(f.kind == spdy.PING and f.value == 7 for f in frames)
    data = b"".join(f.data for f in frames if f.kind == spdy.DATA and f.stream_id == 3)
    assert data == b"ping"
    error = b"".join(f.data for f in frames if f.kind == spdy.DATA and f.stream_id == 5)
    assert error.startswith(b"error forwarding port 1 to pod uid-1")
    assert {f.stream_id for f in frames if f.kind == spdy.DATA and f.fin} == {1, 3, 5, 7}


def test_ports_and_log_options_parsing() -> None:
    assert rc.parse_ports(["80", "8080,9000"]) == [80, 8080, 9000]
    for bad, message in ((["x"], 'unable to parse "x" as a port'),
                         (["0"], "port 0 must be > 0 and < 65536"),
                         ([], 'query parameter "ports" is required')):
        with pytest.raises(StatusError) as err:
            rc.parse_ports(bad)
        assert err.value.code == 400 and message in err.value.message
    opts = LogOptions.from_query({"follow": "true", "tailLines": "2", "limitBytes": "4"})
    assert opts == LogOptions(follow=True, tail_lines=2, limit_bytes=4)
    assert opts.cut(b"a\nbb\nccc\n") == b"bb\nc"
    with pytest.raises(StatusError):
        LogOptions.from_query({"tailLines": "-1"})


async def test_stats_services_serves_the_proxys_counters_or_404(tmp_path: Path) -> None:
    rows = [["10.96.0.20", "tcp", "80", "10.244.1.3", "8080", 7]]
    answers: list[list[list[Any]] | None] = [rows, None]

    async def traffic() -> list[list[Any]] | None:
        return answers.pop(0)

    tls = ensure_tls(tmp_path, ["127.0.0.1"])
    cert, key = issue_node_serving(tmp_path, "n1", ["127.0.0.1"], tmp_path / "node")
    server = NodeServer(FakeHost(), lambda ns, name: None, traffic)
    port = await server.start(ServingConfig(cert, key, tls.ca_pem().decode(), "127.0.0.1", 0))
    client = NodeClient(tls.ca_cert, *ensure_kubelet_client(tmp_path))
    try:
        async with client.session.get(f"https://127.0.0.1:{port}/stats/services") as r:
            assert (r.status, (await r.json())["connections"]) == (200, rows)
        async with client.session.get(f"https://127.0.0.1:{port}/stats/services") as r:
            assert r.status == 404  # counters off
    finally:
        await client.close()
        await server.stop()


async def test_metrics_resource_serves_the_kubelets_text_or_404(tmp_path: Path) -> None:
    sample = ResourceSample(Usage(2_000_000_000, 1 << 20, 1700000000.5), (ContainerUsage(
        PodRef("default", "web"), "app", Usage(1_000_000_000, 4096, 1700000000.5, 1.0)),))

    async def resources() -> ResourceSample:
        return sample

    tls = ensure_tls(tmp_path, ["127.0.0.1"])
    cert, key = issue_node_serving(tmp_path, "n1", ["127.0.0.1"], tmp_path / "node")
    servers = [NodeServer(FakeHost(), lambda ns, name: None, None, resources),
               NodeServer(FakeHost(), lambda ns, name: None)]
    ports = [await s.start(ServingConfig(cert, key, tls.ca_pem().decode(), "127.0.0.1", 0))
             for s in servers]
    client = NodeClient(tls.ca_cert, *ensure_kubelet_client(tmp_path))
    try:
        async with client.session.get(f"https://127.0.0.1:{ports[0]}/metrics/resource") as r:
            assert r.status == 200 and r.content_type == "text/plain"
            batch = parse_resource_metrics(await r.text(), 0.0)
        assert batch.node == sample.node
        assert batch.pods == {PodRef("default", "web"): {"app": sample.containers[0].usage}}
        async with client.session.get(f"https://127.0.0.1:{ports[1]}/metrics/resource") as r:
            assert r.status == 404
        # Authenticated as the node's other endpoints: no client certificate is a 401.
        plain = ssl.create_default_context(cafile=str(tls.ca_cert))
        async with aiohttp.ClientSession() as anonymous, anonymous.get(
                f"https://127.0.0.1:{ports[0]}/metrics/resource", ssl=plain) as r:
            assert r.status == 401
    finally:
        await client.close()
        for s in servers:
            await s.stop()
