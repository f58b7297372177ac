"""Local-cluster recovery figures: each process killed (SIGKILL), until it runs and serves again.

On a `svcnet up --detach -f examples/frontend-backend.yaml` cluster (2 nodes), each component
is killed ``--rounds`` times in turn; for each kill the script measures

* *restarted*: until the supervisor (or, for the DNS pod, its node agent) runs a new process;
* *serving*: until it answers again — the API server's ``/readyz``, the node agent's
  ``/healthz`` (port 10256 on its node's address), the DNS pod's address on UDP 53 (from the
  host, which routes to pod networks), the forwarder's ``127.0.0.1:30080``;

and, for the whole run, the longest failure window of a client asking the frontend's NodePort
on node 2 every 50 ms.

Needs root. Run: .venv/bin/python bench/restart.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from svcnet.cluster.networks import read_network
from svcnet.cluster.state import Paths

ROOT = Path(__file__).resolve().parent.parent
SVCNET = [sys.executable, "-m", "svcnet.cli.main"]


def poll(cond: Callable[[], bool], timeout: float = 60) -> float:
    """Seconds until ``cond()`` holds (polled every 10 ms)."""
    start = time.perf_counter()
    while not cond():
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"gave up after {timeout:g}s")
        time.sleep(0.01)
    return time.perf_counter() - start


def answers(url: str, *, token: str = "") -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # a bench, on loopback/bridge
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"}
                                 if token else {})
    try:
        with urllib.request.urlopen(req, timeout=0.5, context=ctx) as resp:
            return bool(resp.status == 200)
    except (OSError, ValueError):
        return False


def dns_answers(ip: str) -> bool:
    """A UDP query for kubernetes.default.svc.cluster.local (A) gets an answer."""
    q = struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0)
    for label in (b"kubernetes", b"default", b"svc", b"cluster", b"local"):
        q += bytes([len(label)]) + label
    q += b"\x00" + struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        try:
            s.sendto(q, (ip, 53))
            return len(s.recv(512)) > 12
        except OSError:
            return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="svcnet-bench-restart-"))
    name = f"bench{os.getpid() % 10000}"
    env = dict(os.environ, SVCNET_HOME=str(home))
    subprocess.run([*SVCNET, "up", "--name", name, "--detach", "-f",
                    "examples/frontend-backend.yaml"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    root = home / name
    network = read_network(Paths(root).network)
    assert network is not None, "svcnet up recorded no network"
    token = yaml.safe_load((root / "kubeconfig").read_text())["users"][0]["user"]["token"]
    stop = threading.Event()
    client: list[tuple[float, bool]] = []

    def nodeport_client() -> None:
        while not stop.is_set():
            client.append((time.time(), answers(f"http://{network.node_ip(2)}:30080/")))
            time.sleep(0.05)

    def component_pid(comp: str) -> int | None:
        if comp == "dns":
            for f in root.glob("nodes/*/containers/*/dns.json"):
                try:
                    rec = json.loads(f.read_text())
                except (OSError, ValueError):
                    return None
                return int(rec["pid"]) if rec.get("state") is None else None
            return None
        st = json.loads((root / "supervisor.json").read_text())["components"][comp]
        return int(st["pid"]) if st.get("state") == "running" and st.get("pid") else None

    def dns_ip() -> str:
        out = subprocess.run(["kubectl", "get", "pod", "-n", "kube-system", "kube-dns", "-o",
                              "jsonpath={.status.podIP}"], env=dict(
                                  env, KUBECONFIG=str(root / "kubeconfig")),
                             capture_output=True, text=True, check=True).stdout
        return out.strip()

    serving: dict[str, Callable[[], bool]] = {
        "server": lambda: answers(f"https://{network.gateway}:6443/readyz", token=token),
        "node-1": lambda: answers(f"http://{network.node_ip(1)}:10256/healthz"),
        "node-2": lambda: answers(f"http://{network.node_ip(2)}:10256/healthz"),
        "dns": lambda: dns_answers(dns_ip_now[0]),
        "nodeport-forwarder": lambda: answers("http://127.0.0.1:30080/"),
    }
    dns_ip_now = [dns_ip()]
    figures: dict[str, list[tuple[float, float]]] = {c: [] for c in serving}
    kills: list[tuple[float, str]] = []
    thread = threading.Thread(target=nodeport_client)
    thread.start()
    try:
        time.sleep(1)
        for _ in range(args.rounds):
            for comp, check in serving.items():
                pid = component_pid(comp)
                assert pid is not None and check(), comp
                start = time.perf_counter()
                kills.append((time.time(), comp))
                os.kill(pid, signal.SIGKILL)
                poll(lambda: component_pid(comp) not in (None, pid))  # noqa: B023
                restarted = time.perf_counter() - start
                poll(check)
                figures[comp].append((restarted, time.perf_counter() - start))
                time.sleep(12)  # longer than reset_after: each kill meets the first back-off
    finally:
        stop.set()
        thread.join()
        subprocess.run([*SVCNET, "down", "--name", name], cwd=ROOT, env=env,
                       capture_output=True, check=False)
    # Failure windows of the client (last answer before -> first after), by the kill before.
    windows: dict[str, list[float]] = {}
    last_ok, first_failure = client[0][0], None
    for t, ok in client:
        if ok and first_failure is not None:
            cause = max((k for k in kills if k[0] <= first_failure), default=(0.0, "none"))[1]
            windows.setdefault(cause, []).append(t - last_ok)
        if ok:
            last_ok, first_failure = t, None
        elif first_failure is None:
            first_failure = t
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")
    print()
    print(f"| killed ({args.rounds} rounds) | restarted (median) | serving again "
          "(median, max) |")
    print("|---|---|---|")
    for comp, rows in figures.items():
        rs, ss = [r for r, _ in rows], [s for _, s in rows]
        print(f"| {comp} | {statistics.median(rs):.2f} s | {statistics.median(ss):.2f} s, "
              f"{max(ss):.2f} s |")
    print(f"\nNodePort client on node 2 (every 50 ms, {len(client)} requests, "
          f"{sum(1 for _, ok in client if not ok)} failed), failure windows by the kill "
          "before them:")
    for cause, spans in sorted(windows.items()):
        print(f"  {cause}: {len(spans)} window(s), longest {max(spans):.2f} s")


if __name__ == "__main__":
    main()
