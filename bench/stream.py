"""Exec and port-forward through the API server and the node agent, on a `svcnet up` cluster.

* exec round trip: a WebSocket exec of `true` (v5.channel.k8s.io) from open to exit status,
  p50/p99 over many runs; an interactive round trip on one open exec of `cat` (64 bytes on
  stdin until they are back on stdout), p50/p99; `kubectl exec POD -- true` wall time
  (kubectl's own start-up included);
* port-forward throughput: bytes echoed through `kubectl port-forward` (SPDY in a WebSocket,
  or plain SPDY for a kubectl before 1.30 given as ``--kubectl``: two hops, kubectl -> API
  server -> node agent -> pod) and through the Python client's
  port-forward (WebSocket channels), against the same echo client run inside the pod's
  network namespace (a direct connection).

Needs root. Run: .venv/bin/python bench/stream.py [--runs 100] [--mib 64] [--kubectl PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from stats import pct

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.e2e.streampods import manifest  # noqa: E402

SVCNET = [sys.executable, "-m", "svcnet.cli.main"]
NAME = "bs"

ECHO_CLIENT = r"""
import socket, sys, threading, time
host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port))
chunk = b"x" * 65536
def send():
    left = total
    while left > 0:
        n = min(left, len(chunk))
        s.sendall(chunk[:n])
        left -= n
start = time.perf_counter()
t = threading.Thread(target=send)
t.start()
got = 0
while got < total:
    data = s.recv(1 << 20)
    if not data:
        break
    got += len(data)
t.join()
elapsed = time.perf_counter() - start
print(got, elapsed)
"""


def echo_rate(argv_prefix: list[str], host: str, port: int, total: int,
              env: dict[str, str]) -> float:
    r = subprocess.run([*argv_prefix, sys.executable, "-c", ECHO_CLIENT, host, str(port),
                        str(total)], capture_output=True, text=True, env=env, timeout=600,
                       check=True)
    got, elapsed = r.stdout.split()
    assert int(got) == total, r.stdout + r.stderr
    return total / float(elapsed) / (1 << 20)


def client_parts(kubeconfig: Path) -> tuple[str, ssl.SSLContext, dict[str, str]]:
    cfg = yaml.safe_load(kubeconfig.read_text())
    cluster = cfg["clusters"][0]["cluster"]
    ctx = ssl.create_default_context(
        cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    headers = {"Authorization": f"Bearer {cfg['users'][0]['user']['token']}"}
    return cluster["server"], ctx, headers


async def exec_figures(kubeconfig: Path, runs: int) -> dict[str, Any]:
    server, ctx, headers = client_parts(kubeconfig)
    url = f"{server}/api/v1/namespaces/default/pods/talker-1/exec"
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(headers=headers) as s:
        once: list[float] = []
        for _ in range(runs):
            start = time.perf_counter()
            async with s.ws_connect(url, params=[("command", "true"), ("stdout", "true")],
                                    protocols=["v5.channel.k8s.io"], ssl=ctx) as ws:
                async for msg in ws:
                    if msg.data[:1] == b"\x03":
                        assert json.loads(msg.data[1:])["status"] == "Success"
            once.append(time.perf_counter() - start)
        out["exec true"] = once
        rtt: list[float] = []
        async with s.ws_connect(url, params=[("command", "cat"), ("stdin", "true"),
                                             ("stdout", "true")],
                                protocols=["v5.channel.k8s.io"], ssl=ctx) as ws:
            for _ in range(runs * 2):
                start = time.perf_counter()
                await ws.send_bytes(b"\x00" + b"y" * 64)
                got = 0
                while got < 64:
                    got += len(await ws.receive_bytes()) - 1
                rtt.append(time.perf_counter() - start)
            await ws.send_bytes(b"\xff\x00")
        out["interactive"] = rtt
    return out


def kubectl_exec(env: dict[str, str], runs: int, kubectl: str) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([kubectl, "exec", "talker-1", "--", "true"], env=env, check=True,
                       capture_output=True, timeout=60)
        times.append(time.perf_counter() - start)
    return times


def port_forward_rate(env: dict[str, str], total: int, kubectl: str) -> float:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        local = probe.getsockname()[1]
    with subprocess.Popen([kubectl, "port-forward", "pod/talker-1", f"{local}:9000"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env) as pf:
        try:
            assert pf.stdout is not None
            pf.stdout.readline()
            return echo_rate([], "127.0.0.1", local, total, env)
        finally:
            pf.kill()


def python_client_rate(kubeconfig: Path, total: int) -> float:
    """The same echo through the official Python client's port-forward (WebSocket channels)."""
    import threading

    from kubernetes import client, config
    from kubernetes.stream import portforward

    api_client = config.new_client_from_config(str(kubeconfig))
    try:
        api = client.CoreV1Api(api_client)
        pf = portforward(api.connect_get_namespaced_pod_portforward, "talker-1", "default",
                         ports="9000")
        sock = pf.socket(9000)
        chunk = b"x" * 65536

        def send() -> None:
            left = total
            while left > 0:
                sock.sendall(chunk[:min(left, len(chunk))])
                left -= len(chunk)

        start = time.perf_counter()
        sender = threading.Thread(target=send)
        sender.start()
        got = 0
        while got < total:
            data = sock.recv(1 << 20)
            assert data
            got += len(data)
        sender.join()
        elapsed = time.perf_counter() - start
        pf.close()
        return total / elapsed / (1 << 20)
    finally:
        api_client.close()


def ms(values: list[float]) -> str:
    return f"p50 {pct(values, 0.5) * 1000:.1f} ms, p99 {pct(values, 0.99) * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--kubectl", default="kubectl",
                        help="the kubectl to time (one before 1.30 speaks plain SPDY)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="svcnet-bench-stream-"))
    env = dict(os.environ, SVCNET_HOME=str(home))
    (home / "pods.yaml").write_text(manifest())
    subprocess.run([*SVCNET, "up", "--name", NAME, "--detach", "-f", str(home / "pods.yaml")],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    kubeconfig = home / NAME / "kubeconfig"
    kenv = dict(env, KUBECONFIG=str(kubeconfig))
    try:
        figures = asyncio.run(exec_figures(kubeconfig, args.runs))
        print(f"exec `true` over WebSocket, open to exit status: {ms(figures['exec true'])}")
        print(f"interactive round trip on one exec (64 B): {ms(figures['interactive'])}")
        print(f"kubectl exec POD -- true (wall): {ms(kubectl_exec(kenv, 20, args.kubectl))}")
        total = args.mib << 20
        direct = echo_rate([*SVCNET, "exec", "talker-1", "--kubeconfig", str(kubeconfig),
                            "--"], "127.0.0.1", 9000, total, env)
        forwarded = port_forward_rate(kenv, total, args.kubectl)
        print(f"echo {args.mib} MiB inside the pod (direct): {direct:.0f} MiB/s")
        print(f"echo {args.mib} MiB through kubectl port-forward: {forwarded:.0f} MiB/s "
              f"({forwarded / direct:.0%} of direct)")
        channels = python_client_rate(kubeconfig, total)
        print(f"echo {args.mib} MiB through the Python client's port-forward: "
              f"{channels:.0f} MiB/s ({channels / direct:.0%} of direct)")
    finally:
        subprocess.run([*SVCNET, "down", "--name", NAME], cwd=ROOT, env=env,
                       capture_output=True, timeout=120, check=False)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
