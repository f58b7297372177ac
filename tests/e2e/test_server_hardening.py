"""The real server process under hostile clients: bounded metrics, slow and idle connections,
over-long requests, and health checks that follow the store (issue 14, findings 3, 6 and 8)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from svcnet.apiserver.resources import RESOURCES
from svcnet.storage.sqlite import SQLiteStore
from svcnet.util.clock import rfc3339
from tests.conftest import require_root
from tests.e2e.conftest import start_server, stop_server
from tests.etcd_server import EtcdServer


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        doc: dict[str, Any] = yaml.safe_load((data_dir / "kubeconfig").read_text())
        self.url = str(doc["clusters"][0]["cluster"]["server"])
        self.token = str(doc["users"][0]["user"]["token"])
        host, _, port = self.url.removeprefix("https://").rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.ctx = ssl.create_default_context(cafile=str(data_dir / "pki" / "ca.crt"))

    def log(self) -> str:
        return (self.data_dir / "server.log").read_text(errors="replace")

    def get(self, path: str, *, token: str | None = "") -> tuple[int, str]:
        req = urllib.request.Request(self.url + path)
        if token is not None:
            req.add_header("Authorization", f"Bearer {token or self.token}")
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=20) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, *,
             token: str = "", content_type: str = "application/json"
             ) -> tuple[int, dict[str, Any]]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token or self.token}")
        req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=20) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def connect(self) -> ssl.SSLSocket:
        raw = socket.create_connection((self.host, self.port), timeout=20)
        return self.ctx.wrap_socket(raw, server_hostname=self.host)

    def raw(self, request: bytes) -> tuple[int, dict[str, Any]]:
        """Send raw bytes; the status code and JSON body of the answer (connection closed)."""
        with self.connect() as s:
            s.sendall(request)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1."), data[:300]
        doc: dict[str, Any] = json.loads(body)
        return int(head.split()[1]), doc


def _closed_by_server(s: socket.socket, within: float) -> bool:
    s.settimeout(within)
    try:
        return s.recv(1) == b""
    except TimeoutError:
        return False
    except (ConnectionResetError, ssl.SSLError):
        return True


def _closed_among(socks: list[ssl.SSLSocket], within: float) -> int:
    """How many of ``socks`` the server closes within ``within`` seconds, all watched at once.
    A socket turns readable for TLS records that carry no data too (TLS 1.3 session tickets):
    it stays watched until it reads data (open) or its end (closed)."""
    deadline = time.monotonic() + within
    closed = 0
    with selectors.DefaultSelector() as sel:
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        while sel.get_map() and (left := deadline - time.monotonic()) > 0:
            for key, _ in sel.select(left):
                sock: ssl.SSLSocket = key.fileobj  # type: ignore[assignment]
                try:
                    data = sock.recv(1)
                except ssl.SSLWantReadError:
                    continue
                except (ConnectionResetError, ssl.SSLError):
                    data = b""
                sel.unregister(sock)
                closed += data == b""
    return closed


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*extra: str) -> Server:
        data_dir = tmp_path / f"server-{len(procs)}"
        data_dir.mkdir()
        procs.append(start_server(data_dir, *extra))
        return Server(data_dir)

    try:
        yield start
    finally:
        for p in procs:
            stop_server(p)


def test_metrics_labels_stay_bounded_under_unauthenticated_garbage(server_factory: Any
                                                                    ) -> None:
    server = server_factory()
    garbage = [f"x{uuid.uuid4().hex}" for _ in range(30)]
    for name in garbage:
        code, _ = server.get(f"/api/v1/{name}", token=None)
        assert code == 401
        code, _ = server.get(f"/apis/{name}/v1/{name}", token="not-a-token")
        assert code == 401
    code, _ = server.get("/api/v1/namespaces/default/services")
    assert code == 200
    code, metrics = server.get("/metrics")
    assert code == 200, metrics
    assert not [g for g in garbage if g in metrics]
    assert 'resource="other"' in metrics
    assert 'resource="services"' in metrics
    resources = {line.split('resource="')[1].split('"')[0]
                 for line in metrics.splitlines() if line.startswith("apiserver_request_total")}
    # Bounded: the served resources' names, "other" and "" (discovery) only.
    served = {r.resource for r in RESOURCES}
    assert resources <= served | {"other", ""}, resources


def test_over_long_request_line_and_headers_get_414_and_431(server_factory: Any) -> None:
    server = server_factory()
    long_url = b"GET /api/v1/" + b"x" * 100_000 + b" HTTP/1.1\r\nHost: h\r\n\r\n"
    code, status = server.raw(long_url)
    assert (code, status["kind"], status["code"]) == (414, "Status", 414), status
    big_header = b"GET /version HTTP/1.1\r\nHost: h\r\nX-Big: " + b"y" * 100_000 + b"\r\n\r\n"
    code, status = server.raw(big_header)
    assert (code, status["code"]) == (431, 431), status
    many = b"GET /version HTTP/1.1\r\nHost: h\r\n" + b"".join(
        b"X-H%d: 1\r\n" % i for i in range(500)) + b"\r\n"
    code, status = server.raw(many)
    assert (code, status["code"]) == (431, 431), status
    code, status = server.raw(b"NOT-HTTP\r\n\r\n")
    assert (code, status["reason"]) == (400, "BadRequest"), status
    assert "Traceback" not in server.log()
    # The server still answers a normal request afterwards.
    assert server.get("/version")[0] == 200


def test_slow_loris_and_idle_connections_are_closed_after_the_header_timeout(
        server_factory: Any) -> None:
    server = server_factory("--read-header-timeout", "1")
    slow = server.connect()
    slow.sendall(b"GET /version HTTP/1.1\r\nHost: h\r\n")  # the head never ends
    idle = server.connect()  # says nothing at all
    served = server.connect()
    served.sendall(b"GET /version HTTP/1.1\r\nHost: h\r\n\r\n")
    assert served.recv(65536).startswith(b"HTTP/1.1 200")  # then stays idle
    try:
        for s in (slow, idle, served):
            assert _closed_by_server(s, within=15), "the server kept a connection open"
    finally:
        for s in (slow, idle, served):
            s.close()
    plain = socket.create_connection((server.host, server.port), timeout=20)
    try:  # a client that never even starts the TLS handshake
        assert _closed_by_server(plain, within=15)
    finally:
        plain.close()


def test_connection_cap_makes_room_for_real_clients(server_factory: Any) -> None:
    cap, idle = 100, 120
    server = server_factory("--max-connections", str(cap))
    # The server's controllers hold some connections (a watch each: about 60 with every
    # controller running); fill the rest, and more, with connections that do nothing.
    loris = []
    try:
        for _ in range(idle):
            s = server.connect()
            s.sendall(b"GET /version HTTP/1.1\r\n")
            loris.append(s)
        for _ in range(5):
            code, body = server.get("/api/v1/namespaces/default/services")
            assert code == 200, body
        closed = _closed_among(loris, within=3)
        assert closed >= idle - cap, f"only {closed} of {idle} idle connections were closed"
    finally:
        for s in loris:
            s.close()
    assert "Traceback" not in server.log()


def _record(server: str, instance: str) -> bytes:
    return json.dumps({"owner": {"namespace": "default", "name": "never-written", "uid": ""},
                       "allocatedAt": rfc3339(datetime.now(UTC)),
                       "holder": {"server": server, "instance": instance}}).encode()


async def _allocations(db: Path, *put: tuple[str, bytes]) -> list[str]:
    async with SQLiteStore(db) as store:
        for key, value in put:
            await store.create(key, value)
        return [kv.key for kv in (await store.list("/registry/allocations/nodeport/")).items]


def test_a_restarted_server_frees_at_once_what_its_killed_predecessor_leaked(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "server"
    data_dir.mkdir()
    proc = start_server(data_dir)
    proc.kill()  # a crash
    proc.wait()
    server_id = (data_dir / "server-id").read_text().strip()
    # What a create interrupted by the crash leaves behind: an allocation and no Service.
    # Beside it, one that another server sharing the store has just made.
    prefix = "/registry/allocations/nodeport/"
    asyncio.run(_allocations(data_dir / "state.db",
                             (prefix + "30005", _record(server_id, "the-killed-one")),
                             (prefix + "30006", _record("another-server", "alive"))))
    proc = start_server(data_dir)
    try:
        left = asyncio.run(_allocations(data_dir / "state.db"))
        assert left == [prefix + "30006"], (data_dir / "server.log").read_text()[-2000:]
    finally:
        assert stop_server(proc) == 0


# -- listening beyond loopback -------------------------------------------------------------

WILDCARD_ADDRESS = "198.51.100.7"  # TEST-NET-2, on a link in our own namespace


def _ip(*args: str) -> None:
    r = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    assert r.returncode == 0, f"ip {' '.join(args)} failed: {r.stderr}"


@pytest.fixture
def netns() -> Iterator[str]:
    """A namespace of our own (``svcnet-hc-*``) with loopback and one address on a veth link
    that carries its default route: the host a wildcard listener is tested on."""
    require_root()
    name = f"svcnet-hc-w{secrets.token_hex(3)}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        # Both ends of the pair stay in the namespace.
        _ip("-n", name, "link", "add", "hc0", "type", "veth", "peer", "name", "hc1")
        _ip("-n", name, "addr", "add", f"{WILDCARD_ADDRESS}/24", "dev", "hc0")
        _ip("-n", name, "link", "set", "hc1", "up")
        _ip("-n", name, "link", "set", "hc0", "up")
        _ip("-n", name, "route", "add", "default", "dev", "hc0")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


CLIENT = """
import ssl, sys, urllib.request, yaml
doc = yaml.safe_load(open(sys.argv[1]))
url = doc["clusters"][0]["cluster"]["server"]
ctx = ssl.create_default_context(cafile=sys.argv[2])  # verifies the name in the URL
for u in (url, url.replace(sys.argv[3], "127.0.0.1")):
    req = urllib.request.Request(u + "/version")
    req.add_header("Authorization", "Bearer " + doc["users"][0]["user"]["token"])
    print(u, urllib.request.urlopen(req, context=ctx, timeout=10).status)
"""


@pytest.mark.root
def test_wildcard_listen_certifies_every_address_and_advertises_a_real_one(
        tmp_path: Path, netns: str) -> None:
    data_dir = tmp_path / "server"
    data_dir.mkdir()
    wrapper = ("ip", "netns", "exec", netns)
    proc = start_server(data_dir, listen="0.0.0.0:0", wrapper=wrapper)
    try:
        server = Server(data_dir)
        assert server.host == WILDCARD_ADDRESS, server.url
        cert = x509.load_pem_x509_certificate((data_dir / "pki" / "apiserver.crt").read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
        assert {WILDCARD_ADDRESS, "127.0.0.1"} <= ips and "0.0.0.0" not in ips
        r = subprocess.run([*wrapper, sys.executable, "-c", CLIENT,
                            str(data_dir / "kubeconfig"), str(data_dir / "pki" / "ca.crt"),
                            WILDCARD_ADDRESS],
                           capture_output=True, text=True, check=False, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == [server.url, "200",
                                    server.url.replace(WILDCARD_ADDRESS, "127.0.0.1"), "200"]
        assert "serving beyond loopback" in server.log()
    finally:
        assert stop_server(proc) == 0


MERGE = "application/merge-patch+json"


def test_a_node_cannot_give_itself_roles_or_relabel_its_pods(server_factory: Any) -> None:
    server = server_factory()
    node_token = uuid.uuid4().hex
    with (server.data_dir / "tokens.csv").open("a") as f:
        f.write(f"{node_token},system:node:n1,n1,system:nodes\n")
    code, body = server.call("POST", "/api/v1/nodes", {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}}},
        token=node_token)
    assert code == 201, body
    code, body = server.call(
        "PATCH", "/api/v1/nodes/n1",
        {"metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}}},
        token=node_token, content_type=MERGE)
    assert (code, body["reason"], body["message"]) == (
        403, "Forbidden", 'nodes "n1" is forbidden: is not allowed to modify labels: '
                          "node-role.kubernetes.io/control-plane"), body
    code, body = server.call("PATCH", "/api/v1/nodes/n1",
                             {"metadata": {"labels": {"kubernetes.io/arch": "amd64"}}},
                             token=node_token, content_type=MERGE)
    assert code == 200, body

    code, body = server.call("POST", "/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]}})
    assert code == 201, body
    status_path = "/api/v1/namespaces/default/pods/web/status"
    code, body = server.call("PATCH", status_path, {"metadata": {"labels": {"app": "db"}}},
                             token=node_token, content_type=MERGE)
    assert (code, body["message"]) == (
        403, 'pods "web" is forbidden: node "n1" cannot update labels through pod status'), body
    code, body = server.call("PATCH", status_path, {"status": {"phase": "Running"}},
                             token=node_token, content_type=MERGE)
    assert code == 200, body
    code, pod = server.call("GET", "/api/v1/namespaces/default/pods/web")
    assert pod["metadata"]["labels"] == {"app": "web"}
    assert pod["status"]["phase"] == "Running"
    # The administrator is not a node: the same label change goes through.
    code, body = server.call("PATCH", status_path, {"metadata": {"labels": {"app": "db"}}},
                             content_type=MERGE)
    assert code == 200, body


# -- health ---------------------------------------------------------------------------------

@pytest.fixture
def etcd() -> Iterator[EtcdServer]:
    server = EtcdServer()  # our own: this test stops it
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _signal_etcd(etcd: EtcdServer, sig: signal.Signals) -> None:
    assert etcd.proc is not None
    os.kill(etcd.proc.pid, sig)


def _wait_for(server: Server, path: str, code: int) -> tuple[int, str]:
    deadline = time.monotonic() + 30
    while True:
        got = server.get(path, token=None)
        if got[0] == code or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_readyz_follows_the_store_and_livez_does_not(server_factory: Any,
                                                      etcd: EtcdServer) -> None:
    server = server_factory("--store", f"etcd://{etcd.endpoint}{etcd.new_prefix()}")
    assert server.get("/readyz", token=None) == (200, "ok")
    assert server.get("/readyz?verbose", token=None) == (
        200, "[+]ping ok\n[+]etcd ok\n[+]shutdown ok\nreadyz check passed\n")
    assert server.get("/livez?verbose", token=None) == (200, "[+]ping ok\nlivez check passed\n")
    assert server.get("/readyz/etcd", token=None) == (200, "ok")

    _signal_etcd(etcd, signal.SIGSTOP)  # etcd stops answering
    try:
        code, body = _wait_for(server, "/readyz", 500)
        assert code == 500, body
        assert body == ("[+]ping ok\n[-]etcd failed: reason withheld\n[+]shutdown ok\n"
                        "readyz check failed\n")
        code, body = server.get("/readyz/etcd", token=None)
        assert code == 500 and body.startswith("internal server error: "), body
        assert server.get("/readyz?exclude=etcd", token=None) == (200, "ok")
        assert server.get("/livez", token=None) == (200, "ok")
        assert server.get("/healthz", token=None)[0] == 500
    finally:
        _signal_etcd(etcd, signal.SIGCONT)  # and comes back
    assert _wait_for(server, "/readyz", 200) == (200, "ok")
    assert server.get("/healthz", token=None) == (200, "ok")

    etcd.stop()  # and now gone for good: connections refused rather than hanging
    code, body = _wait_for(server, "/readyz", 500)
    assert (code, body.splitlines()[1]) == (500, "[-]etcd failed: reason withheld"), body
    assert server.get("/livez", token=None) == (200, "ok")
