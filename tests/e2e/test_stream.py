"""Logs, exec, attach, cp and port-forward on a whole `svcnet up` cluster, through the API
server to the node agents' servers, with the real kubectl and the official Python client, on
pods of both nodes.

Needs root (a cluster); cluster name "e9" plus random hex, on the first free node network,
always removed by `svcnet down`.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import http.client
import json
import os
import pty
import select
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import termios
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require, require_root
from tests.e2e.local_clusters import network_of, unique_name
from tests.e2e.streampods import GREETING, manifest
from tests.e2e.test_kubectl_versions import oldest_kubectl
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
NAME = unique_name("e9")
SVCNET = [sys.executable, "-m", "svcnet.cli.main"]
PODS = ("talker-1", "talker-2")
pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_root()
    require(shutil.which("nft") is not None, "nft is not installed")
    h = tmp_path_factory.mktemp("svcnet-home")
    env = dict(os.environ, SVCNET_HOME=str(h))
    (h / "pods.yaml").write_text(manifest())
    r = subprocess.run([*SVCNET, "up", "--name", NAME, "--detach", "-f", str(h / "pods.yaml")],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=180,
                       check=False)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        yield h
    finally:
        subprocess.run([*SVCNET, "down", "--name", NAME], cwd=ROOT, env=env, timeout=120,
                       check=False)


def env_for(home: Path) -> dict[str, str]:
    return dict(os.environ, KUBECONFIG=str(home / NAME / "kubeconfig"),
                KUBECACHEDIR=str(home / "kcache"))


def kubectl(home: Path, *args: str, check: bool = True, input: bytes | None = None,
            timeout: float = 60, binary: str = "kubectl") -> subprocess.CompletedProcess[bytes]:
    r = subprocess.run([binary, *args], capture_output=True, env=env_for(home),
                       input=input, timeout=timeout, check=False)
    if check and r.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {r.returncode}\n{r.stderr.decode()}")
    return r


@pytest.fixture
def api(home: Path) -> Iterator[Any]:
    from kubernetes import client, config

    api_client = config.new_client_from_config(str(home / NAME / "kubeconfig"))
    try:
        yield client.CoreV1Api(api_client)
    finally:
        api_client.close()


# -- logs ------------------------------------------------------------------------------------


def test_logs_come_from_each_pods_node(home: Path, api: Any) -> None:
    for pod in PODS:
        first = kubectl(home, "logs", pod).stdout.decode().splitlines()
        assert first[0] == "started" and first[1] == "tick 1"
        assert wait_for(lambda: len(kubectl(home, "logs", pod).stdout.splitlines()) > 3,  # noqa: B023
                        timeout=10)
        tail = kubectl(home, "logs", pod, "--tail=2").stdout.decode().splitlines()
        assert len(tail) == 2 and all(line.startswith("tick ") for line in tail)
    text = api.read_namespaced_pod_log("talker-2", "default", tail_lines=1)
    assert text.startswith("tick ") and text.count("\n") == 1


def test_logs_follow_streams_new_lines(home: Path) -> None:
    with subprocess.Popen(["kubectl", "logs", "-f", "--tail=1", "talker-1"],
                          stdout=subprocess.PIPE, env=env_for(home)) as proc:
        try:
            assert proc.stdout is not None
            ticks = [int(proc.stdout.readline().split()[1]) for _ in range(4)]
            assert ticks == list(range(ticks[0], ticks[0] + 4))
        finally:
            proc.kill()


def test_log_options_are_validated(home: Path) -> None:
    base = "/api/v1/namespaces/default/pods/talker-1/log"
    r = kubectl(home, "get", "--raw", f"{base}?tailLines=-1", check=False)
    assert r.returncode != 0
    assert b'PodLogOptions \\"talker-1\\" is invalid' in r.stderr or \
        b'PodLogOptions "talker-1" is invalid' in r.stderr
    r = kubectl(home, "logs", "talker-1", "-c", "nope", check=False)
    assert b"container nope is not valid for pod talker-1" in r.stderr


def test_node_agent_refuses_callers_without_the_api_servers_certificate(home: Path) -> None:
    ca = home / NAME / "server" / "pki" / "ca.crt"
    ctx = ssl.create_default_context(cafile=str(ca))
    token = (home / NAME / "server" / "admin.token").read_text().strip()
    request = urllib.request.Request(
        f"https://{network_of(home, NAME).node_ip(1)}:10250/containerLogs/default/talker-1/"
        "talker",
        headers={"Authorization": f"Bearer {token}"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, context=ctx, timeout=10)
    err.value.close()
    assert err.value.code == 401


# -- exec ------------------------------------------------------------------------------------


def test_kubectl_exec_runs_in_the_pod_with_its_environment(home: Path) -> None:
    net = network_of(home, NAME)
    prefixes = (net.pod_cidr(i).rsplit(".", 1)[0] + "." for i in (1, 2))
    for pod, ip_prefix in zip(PODS, prefixes, strict=True):
        r = kubectl(home, "exec", pod, "--", "sh", "-c",
                    "echo $GREETING; hostname -I; echo oops >&2; exit 3", check=False)
        out = r.stdout.decode().splitlines()
        assert out[0] == GREETING and out[1].strip().startswith(ip_prefix)
        assert r.returncode == 3
        assert b"oops" in r.stderr and b"command terminated with exit code 3" in r.stderr
    assert kubectl(home, "exec", "talker-1", "--", "true").returncode == 0


def test_kubectl_exec_stdin_and_cp_both_ways(home: Path, tmp_path: Path) -> None:
    data = os.urandom(2_000_000)
    r = kubectl(home, "exec", "-i", "talker-2", "--", "sha256sum", input=data)
    assert r.stdout.decode().split()[0] == hashlib.sha256(data).hexdigest()
    src = tmp_path / "up.bin"
    src.write_bytes(data)
    inside = f"/tmp/svcnet-e9-cp-{os.getpid()}.bin"  # pods share the host's filesystem
    try:
        kubectl(home, "cp", str(src), f"talker-1:{inside}")
        kubectl(home, "cp", f"talker-1:{inside}", str(tmp_path / "down.bin"))
        assert (tmp_path / "down.bin").read_bytes() == data
    finally:
        Path(inside).unlink(missing_ok=True)


def _drive_tty(argv: list[str], env: dict[str, str], steps: list[bytes],
               rows: int, cols: int) -> tuple[bytes, int]:
    pid, fd = pty.fork()
    if pid == 0:  # the child: kubectl on a terminal of its own
        os.execvpe(argv[0], argv, env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    out = b""

    def read_for(seconds: float) -> None:
        nonlocal out
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    return

    read_for(2.0)
    for step in steps:
        os.write(fd, step)
        read_for(2.0)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return out, os.waitstatus_to_exitcode(status)


def test_kubectl_exec_it_gets_a_terminal_of_the_right_size(home: Path) -> None:
    out, code = _drive_tty(["kubectl", "exec", "-it", "talker-2", "--", "sh"], env_for(home),
                           [b"stty size; echo $((6*7)); tty\n", b"exit 5\n"], 33, 111)
    text = out.decode(errors="replace")
    assert "33 111" in text and "\r\n42\r\n" in text and "/dev/pts/" in text
    assert code == 5


def release(resp: Any) -> None:
    """Close a client WSClient. Its close() skips closing the socket once the server has
    closed the WebSocket (websocket-client's close() returns early when no longer connected),
    so the socket is shut here."""
    resp.close()
    resp.sock.shutdown()


def test_python_client_exec(api: Any) -> None:
    from kubernetes.stream import stream

    # _preload_content=False throughout: the preloading form never closes its socket.
    resp = stream(api.connect_get_namespaced_pod_exec, "talker-1", "default",
                  command=["sh", "-c", "echo $GREETING; exit 0"], stderr=True, stdin=False,
                  stdout=True, tty=False, _preload_content=False)
    try:
        resp.run_forever(timeout=20)
        assert resp.read_stdout() == GREETING + "\n" and resp.returncode == 0
    finally:
        release(resp)
    resp = stream(api.connect_get_namespaced_pod_exec, "talker-2", "default",
                  command=["sh", "-c", "cat; exit 7"], stderr=True, stdin=True, stdout=True,
                  tty=False, _preload_content=False)
    resp.write_stdin("through stdin\n")
    resp.close_channel(0)  # v5: the end of stdin
    try:
        resp.run_forever(timeout=20)
        assert resp.subprotocol == "v5.channel.k8s.io"
        assert resp.read_stdout() == "through stdin\n"
        assert resp.returncode == 7
    finally:
        release(resp)


def test_an_idle_exec_session_stays_open(api: Any) -> None:
    """Longer than the API server's idle-connection timeout (32 s): a stream being served is
    not an idle connection (an idle `kubectl exec -it` shell must survive)."""
    from kubernetes.stream import stream

    resp = stream(api.connect_get_namespaced_pod_exec, "talker-2", "default",
                  command=["sh", "-c", "read x; echo got $x"], stderr=True, stdin=True,
                  stdout=True, tty=False, _preload_content=False)
    try:
        time.sleep(40)
        assert resp.is_open()
        resp.write_stdin("late\n")
        resp.run_forever(timeout=20)
        assert resp.read_stdout() == "got late\n" and resp.returncode == 0
    finally:
        release(resp)


@pytest.mark.parametrize("old", [False, True], ids=["websocket", "spdy"])
def test_exec_needs_create_on_pods_exec(home: Path, old: bool) -> None:
    node_kubeconfig = home / NAME / "nodes" / "node-1" / "kubeconfig"
    binary = str(old_kubectl()) if old else "kubectl"
    r = subprocess.run([binary, "--kubeconfig", str(node_kubeconfig), "exec", "talker-1",
                        "--", "true"], capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode != 0
    assert ('User "system:node:node-1" cannot create resource "pods/exec"' in r.stderr), r.stderr


def test_kubectl_attach_streams_the_containers_output(home: Path) -> None:
    with subprocess.Popen(["kubectl", "attach", "talker-1"], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, env=env_for(home)) as proc:
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline() for _ in range(3)]
            ticks = [int(line.split()[1]) for line in lines]
            assert ticks == list(range(ticks[0], ticks[0] + 3))
        finally:
            proc.kill()
    r = kubectl(home, "attach", "-i", "talker-1", check=False, input=b"", timeout=30)
    assert r.returncode != 0 and b"error: stdin cannot be attached" in r.stderr, r.stderr


# -- port-forward ----------------------------------------------------------------------------


def close_forward(pf: Any) -> None:
    """Close a client PortForward and wait until its proxy thread has closed the WebSocket
    (it does so once it sees the local sockets closed)."""
    pf.close()
    wait_for(lambda: not pf.connected, "the port-forward WebSocket to close", timeout=10)
    time.sleep(0.2)  # the proxy thread closes its socketpair halves right after


def test_python_client_port_forward_several_ports_on_both_nodes(api: Any) -> None:
    from kubernetes.stream import portforward

    for pod in PODS:
        pf = portforward(api.connect_get_namespaced_pod_portforward, pod, "default",
                         ports="8080,9000")
        echo = pf.socket(9000)
        payload = os.urandom(300_000)
        echo.sendall(payload)
        got = b""
        while len(got) < len(payload):
            got += echo.recv(65536)
        assert got == payload
        web = pf.socket(8080)
        web.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while not reply.endswith(b"hello through port-forward\n"):
            chunk = web.recv(4096)
            assert chunk
            reply += chunk
        assert reply.startswith(b"HTTP/1.0 200")
        close_forward(pf)
    pf = portforward(api.connect_get_namespaced_pod_portforward, "talker-1", "default",
                     ports="9999")
    assert pf.socket(9999).recv(10) == b""
    error = pf.error(9999) or ""
    close_forward(pf)
    assert "error forwarding port 9999" in error and "connection refused" in error


def test_many_concurrent_port_forwards(api: Any) -> None:
    import concurrent.futures

    from kubernetes.stream import portforward


    def one(i: int) -> bytes:
        pf = portforward(api.connect_get_namespaced_pod_portforward, PODS[i % 2], "default",
                         ports="9000")
        try:
            s: socket.socket = pf.socket(9000)
            msg = f"connection {i}".encode()
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                got += s.recv(100)
            return got
        finally:
            close_forward(pf)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(32)))
    assert results == [f"connection {i}".encode() for i in range(32)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
        return bytes(resp.read())


@pytest.mark.parametrize("target", ["pod/talker-1", "pod/talker-2", "svc/talker"])
def test_kubectl_port_forward(home: Path, target: str) -> None:
    """kubectl 1.32: SPDY/3.1 tunnelled in a WebSocket; two ports, many connections."""
    import concurrent.futures

    web, echo = free_port(), free_port()
    ports = [f"{web}:80"] if target.startswith("svc/") else [f"{web}:8080", f"{echo}:9000"]
    with subprocess.Popen(["kubectl", "port-forward", target, *ports],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env=env_for(home)) as proc:
        try:
            assert proc.stdout is not None
            assert b"Forwarding from 127.0.0.1" in proc.stdout.readline()
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                bodies = list(pool.map(lambda _: http_get(web), range(64)))
            assert set(bodies) == {b"hello through port-forward\n"}
            if not target.startswith("svc/"):
                payload = os.urandom(1_000_000)
                with socket.create_connection(("127.0.0.1", echo), timeout=10) as s:
                    s.sendall(payload)
                    got = b""
                    while len(got) < len(payload):
                        got += s.recv(65536)
                assert got == payload
        finally:
            proc.kill()


@pytest.mark.parametrize("old", [False, True], ids=["websocket", "spdy"])
def test_kubectl_port_forward_to_a_closed_port_says_why(home: Path, old: bool) -> None:
    port = free_port()
    binary = str(old_kubectl()) if old else "kubectl"
    with subprocess.Popen([binary, "port-forward", "pod/talker-2", f"{port}:9999"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env=env_for(home)) as proc:
        try:
            assert proc.stdout is not None
            assert b"Forwarding from 127.0.0.1" in proc.stdout.readline()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.settimeout(10)
                assert s.recv(10) == b""
            out, _ = proc.communicate(timeout=20)
        finally:
            proc.kill()
    assert b"error forwarding port 9999 to pod" in out and b"connection refused" in out


# -- plain SPDY (kubectl before 1.30) ---------------------------------------------------------


def old_kubectl() -> Path:
    old = oldest_kubectl()
    if old is None or int(old.name.rsplit(".", 1)[1]) >= 30:
        pytest.skip("no kubectl before 1.30 beside the installed dispatcher")
    return old


def test_kubectl_127_exec_over_spdy(home: Path, tmp_path: Path) -> None:
    old = str(old_kubectl())
    for pod in PODS:
        r = kubectl(home, "exec", pod, "--", "sh", "-c",
                    "echo $GREETING; echo oops >&2; exit 3", check=False, binary=old)
        assert r.stdout.decode().splitlines() == [GREETING]
        assert r.returncode == 3, r.stderr
        assert b"oops" in r.stderr and b"command terminated with exit code 3" in r.stderr
    assert kubectl(home, "exec", "talker-1", "--", "true", binary=old).returncode == 0
    data = os.urandom(2_000_000)
    r = kubectl(home, "exec", "-i", "talker-2", "--", "sha256sum", input=data, binary=old)
    assert r.stdout.decode().split()[0] == hashlib.sha256(data).hexdigest()
    src = tmp_path / "up.bin"
    src.write_bytes(data)
    inside = f"/tmp/svcnet-e9-spdy-cp-{os.getpid()}.bin"  # pods share the host's filesystem
    try:
        kubectl(home, "cp", str(src), f"talker-1:{inside}", binary=old)
        kubectl(home, "cp", f"talker-1:{inside}", str(tmp_path / "down.bin"), binary=old)
        assert (tmp_path / "down.bin").read_bytes() == data
    finally:
        Path(inside).unlink(missing_ok=True)
    out, code = _drive_tty([old, "exec", "-it", "talker-1", "--", "sh"], env_for(home),
                           [b"stty size; echo $((6*7))\n", b"exit 4\n"], 21, 97)
    text = out.decode(errors="replace")
    assert "21 97" in text and "\r\n42\r\n" in text
    assert code == 4


def test_kubectl_127_attach_over_spdy(home: Path) -> None:
    old = str(old_kubectl())
    with subprocess.Popen([old, "attach", "talker-2"], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, env=env_for(home)) as proc:
        try:
            assert proc.stdout is not None
            ticks = [int(proc.stdout.readline().split()[1]) for _ in range(3)]
            assert ticks == list(range(ticks[0], ticks[0] + 3))
        finally:
            proc.kill()
    # The node's refusal comes after the upgrade, on the error stream.
    r = kubectl(home, "attach", "-i", "talker-1", check=False, input=b"", timeout=30,
                binary=old)
    assert r.returncode != 0 and b"error: stdin cannot be attached" in r.stderr, r.stderr


def test_kubectl_127_port_forward_over_spdy(home: Path) -> None:
    import concurrent.futures

    web, echo = free_port(), free_port()
    with subprocess.Popen([str(old_kubectl()), "port-forward", "pod/talker-2",
                           f"{web}:8080", f"{echo}:9000"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env=env_for(home)) as proc:
        try:
            assert proc.stdout is not None
            assert b"Forwarding from 127.0.0.1" in proc.stdout.readline()
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                bodies = list(pool.map(lambda _: http_get(web), range(32)))
            assert set(bodies) == {b"hello through port-forward\n"}
            payload = os.urandom(1_000_000)
            with socket.create_connection(("127.0.0.1", echo), timeout=10) as s:
                s.sendall(payload)
                got = b""
                while len(got) < len(payload):
                    got += s.recv(65536)
            assert got == payload
        finally:
            proc.kill()


def _raw_post(home: Path, path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """A POST with exactly these headers (urllib would replace ``Connection``)."""
    cfg = yaml.safe_load((home / NAME / "kubeconfig").read_text())
    server = urllib.parse.urlsplit(cfg["clusters"][0]["cluster"]["server"])
    ca = base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"])
    ctx = ssl.create_default_context(cadata=ca.decode())
    token = cfg["users"][0]["user"]["token"]
    conn = http.client.HTTPSConnection(server.hostname or "", server.port, context=ctx,
                                       timeout=10)
    try:
        conn.request("POST", path, headers={"Authorization": f"Bearer {token}", **headers})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_stream_requests_without_a_usable_upgrade_are_refused(home: Path) -> None:
    path = "/api/v1/namespaces/default/pods/talker-1/exec?command=true"
    code, status = _raw_post(home, path, {})
    assert code == 400 and status["message"] == "Upgrade request required"
    code, status = _raw_post(home, path, {"Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                                          "X-Stream-Protocol-Version": "v9.channel.k8s.io"})
    assert code == 403
    assert status["message"].startswith("unable to upgrade: unable to negotiate protocol: "
                                        "client supports [v9.channel.k8s.io], server accepts")
    code, status = _raw_post(home, path, {"Connection": "Upgrade", "Upgrade": "SPDY/3.1"})
    assert code == 400
    assert status["message"] == "unable to upgrade: X-Stream-Protocol-Version is required"


def test_nodes_advertise_their_server(home: Path) -> None:
    r = kubectl(home, "get", "nodes", "-o", "json")
    for node in json.loads(r.stdout)["items"]:
        assert node["status"]["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
        assert "svcnet.io/state-dir" not in (node["metadata"].get("annotations") or {})
