"""Data-plane figures: real traffic through a ClusterIP programmed by the Proxier, in one run.

Side by side, on one kernel, against one server:

a. **Keep-alive requests/s** through the ClusterIP vs straight to the pod IP (``wrk``, one
   thread, ``--connections`` keep-alive connections; aim: ratio ≥ 0.97).
b. **New connections/s** (connect, one small request, close) through the ClusterIP vs straight
   to the pod IP (``wrk`` with ``Connection: close``: the server closes after every response
   and wrk reconnects; aim: ratio ≥ 0.9).
c. **Connect latency** through the ClusterIP with the large set (default 30k Services)
   programmed vs the small set (default 1k): a small Python client does ``--connects``
   sequential connections and times the TCP connect alone and connect + first response bytes
   (one GET, ``Connection: close``); p50, p90 and p99 of all samples (aim: within 10%). The
   same is measured to the pod IP as a control, in alternating batches (its change between
   the sets is the noise level); the ClusterIP p50 over the pod-IP p50 of the same visit is
   also compared between the sets, a figure that slowdowns of the whole machine (a VM's
   neighbours, say) cancel out of. Each set is measured 3 s after its sync (the kernel
   resizes big sets afterwards).

(a) and (b) run with the large set programmed (``--rates-at small`` to change that).

Topology (namespaces ``svcnet-t5-d<run><role>``, created here and always deleted, also on
Ctrl-C or SIGTERM; nothing is added to the root namespace)::

    node netns (n): table ip svcnet (the Proxier's), ip_forward, br_netfilter sysctl on
        br0 10.244.1.1/24 ─┬─ veth ── server pod (s): eth0 10.244.1.10, HTTP on :8080, :8081
                           └─ veth ── client pod (c): eth0 10.244.1.20, default via .1

The client is a pod on the same node bridge (``--client pod``, the main case: pod to
ClusterIP). Its ClusterIP traffic is routed by the node and DNATed; the server's replies are
bridged straight back and un-DNATed only because br_netfilter (the node netns' sysctl
``net.bridge.bridge-nf-call-iptables=1``) passes bridged packets through conntrack. Without
br_netfilter, ``--client auto`` falls back to ``--client netns``: the client in its own
namespace, eth0 172.20.0.2/24 on a veth to the node's 172.20.0.11/24, everything routed via
the node (an off-cluster client: its ClusterIP traffic is also masqueraded, ``masquerade
fully-random``, so connections from different client ports share the server's TIME_WAIT
tuples; the kernel's TCP timestamp offset differs per flow, and the server drops a share of the
new SYNs as PAWS violations: expect a low new-connection ratio there, with SYN retransmits and
PAWS counts in the report to show it). The pod-IP path
crosses the same node netns in both cases (bridged, or routed), so conntrack and the nat hooks
see both paths. The node does not send ICMP redirects (a redirect would let the client skip the
node's router for the rest of a run, changing the path mid-measurement).

The bench's own Service (``10.96.0.10:80`` → ``10.244.1.10:8080``, one endpoint) takes the
place of the generated Service with the same ClusterIP in ``bench/proxy.py``'s ``cluster(n,
endpoints)`` set, so a set of n has exactly n Services; generated endpoints inside the bench's
pod subnet 10.244.1.0/24 are left out (256 of them), so no address collides. The direct path
goes to the same server on port 8081: with both paths on 8080, a connection through the
ClusterIP and a later one straight to the pod from the same client port are the same 4-tuple at
the server, whose TIME_WAIT socket then drops the second SYN as a PAWS violation (the client's
TCP timestamp offset depends on the destination address it used), and the new-connection rate
collapses into 1 s SYN retransmits; one port per path keeps the two apart. The Proxier
(``Proxier(SubprocessNft(node), ProxyConfig())``) programs the sets with its ordinary syncs:
the first is full, switching between the sets is incremental; each sync's time is reported.

Drift is cancelled by alternation: rates run ClusterIP/pod-IP in ABBA order, ``--rounds``
times each; the ratio is the median of the per-round ratios (a round's two runs are adjacent in
time), shown with the median rates; the latency phase switches the programmed set in
ABBA order (small, large, large, small, ...) and pools each set's samples. On 2+ cores the
client (wrk or the latency client) is pinned to CPU 0 and the server to CPU 1 (``--no-pin``:
not pinned), one thread each. The softirq work of a veth runs on the sending CPU, so with
pinning the node's work on requests (routing, DNAT) lands on the client's CPU. The cores are
shared with everything else on the machine: the report shows how much other work ran meanwhile
(in cores, from ``/proc/stat``) and the client's SYN retransmits, signs of a disturbed run.

Needs root, ``ip``, ``nft``, ``taskset`` and ``wrk`` (Debian: ``apt-get install -y wrk``; the
script stops with that hint if it is missing). The server is nginx (one worker, no master,
``return 200``; Debian: ``apt-get install -y nginx-light``) if installed, else a small asyncio
HTTP/1.1 server (``--server python``, slower: then the server, not the data plane, dominates
the rates).

Run: .venv/bin/python bench/dataplane.py [--services-small 1000] [--services-large 30000]
     [--seconds 2] [--rounds 8] [--latency-rounds 3] [--connections 32] [--connects 3000]
     [--endpoints 5] [--client auto|pod|netns] [--server auto|nginx|python]
     [--rates-at large|small] [--no-pin] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy import NODE, Obj, cluster  # bench/proxy.py (this directory is first on sys.path)
from stats import pct  # bench/stats.py

from svcnet.proxy.nft.nft import SubprocessNft
from svcnet.proxy.proxier import Proxier
from svcnet.proxy.ruleset import ProxyConfig

PREFIX = "svcnet-t5-d"
SERVICE_IP = "10.96.0.10"
SERVICE_PORT = 80
POD_PORT = 8080  # the Service's targetPort
DIRECT_PORT = 8081  # the same server, for the straight-to-the-pod-IP path (see the docstring)
GATEWAY = "10.244.1.1"
SERVER_IP = "10.244.1.10"
CLIENT_POD_IP = "10.244.1.20"
POD_SUBNET_PREFIX = "10.244.1."  # the bench's /24: generated endpoints there are left out
SETTLE_S = 3.0  # pause after a sync before measuring
NODE_IP = NODE.addresses[0]  # 172.20.0.11
CLIENT_NETNS_IP = "172.20.0.2"

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen {port} backlog=4096;
        listen {direct_port} backlog=4096;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""

# The fallback server: HTTP/1.1, keep-alive unless the request says "Connection: close".
PY_SERVER = r"""
import asyncio, sys
BODY = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buf = transport, b""
    def data_received(self, data):
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head, self.buf = self.buf[:end].lower(), self.buf[end + 4:]
            if b"connection: close" in head:
                self.transport.write(BODY + b"Connection: close\r\n\r\nok\n")
                self.transport.close()
                return
            self.transport.write(BODY + b"\r\nok\n")
async def main():
    loop = asyncio.get_running_loop()
    for port in sys.argv[1:]:
        await loop.create_server(Http, "0.0.0.0", int(port), backlog=4096)
    await asyncio.Event().wait()
asyncio.run(main())
"""

# Sequential connections; prints microseconds for connect and for connect + first response.
LATENCY_CLIENT = r"""
import json, socket, struct, sys, time
req = json.loads(sys.argv[1])
addr = (req["ip"], req["port"])
msg = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
tv = struct.pack("ll", int(req["timeout"]), 0)
clock = time.perf_counter_ns
connect, first, errors = [], [], []
for i in range(req["warmup"] + req["count"]):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        t0 = clock()
        s.connect(addr)
        t1 = clock()
        s.sendall(msg)
        data = s.recv(4096)
        t2 = clock()
        while chunk := s.recv(4096):
            data += chunk
        if not data.startswith(b"HTTP/1.1 200"):
            raise OSError(f"bad response {data[:40]!r}")
    except OSError as err:
        errors.append(repr(err))
        continue
    finally:
        s.close()
    if i >= req["warmup"]:
        connect.append((t1 - t0) / 1000)
        first.append((t2 - t0) / 1000)
print(json.dumps({"connect_us": connect, "first_us": first, "errors": errors[:5],
                  "error_count": len(errors)}))
"""


class BenchError(RuntimeError):
    pass


def sh(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done


# -- the Service sets ------------------------------------------------------------------------

def bench_service() -> tuple[Obj, Obj]:
    name = "bench-web"
    svc: Obj = {"metadata": {"namespace": "bench", "name": name},
                "spec": {"type": "ClusterIP", "clusterIP": SERVICE_IP, "clusterIPs": [SERVICE_IP],
                         "ports": [{"name": "http", "port": SERVICE_PORT, "protocol": "TCP",
                                    "targetPort": POD_PORT}]}}
    eps: Obj = {"metadata": {"namespace": "bench", "name": f"{name}-x",
                             "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": POD_PORT, "protocol": "TCP"}],
                "endpoints": [{"addresses": [SERVER_IP], "conditions": {"ready": True},
                               "nodeName": NODE.name}]}
    return svc, eps


def service_set(n: int, endpoints: int) -> tuple[list[Obj], list[Obj]]:
    """``n`` Services: ``cluster(n, endpoints)`` with the bench's Service in place of the one
    generated on its ClusterIP (or added, for tiny n), without endpoints in the bench's /24."""
    services, slices = cluster(n, endpoints)
    for eps in slices:
        eps["endpoints"] = [ep for ep in eps["endpoints"]
                            if not ep["addresses"][0].startswith(POD_SUBNET_PREFIX)]
    svc, eps = bench_service()
    taken = [i for i, s in enumerate(services) if s["spec"]["clusterIP"] == SERVICE_IP]
    if taken:
        services[taken[0]], slices[taken[0]] = svc, eps
    else:
        services.append(svc)
        slices.append(eps)
    assert sum(s["spec"]["clusterIP"] == SERVICE_IP for s in services) == 1
    return services, slices


# -- the topology ----------------------------------------------------------------------------

@dataclass
class Topology:
    client_mode: str  # "auto", "pod" or "netns"; resolved by setup()
    server_kind: str  # "nginx" or "python"
    run: str = field(default_factory=lambda: secrets.token_hex(1))
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="svcnet-dp-")))
    bridge_nf: bool = False
    pin: bool = field(default_factory=lambda: (os.cpu_count() or 1) >= 2)

    def name(self, role: str) -> str:
        name = f"{PREFIX}{self.run}{role}"
        assert len(name) <= 15, name
        return name

    @property
    def node(self) -> str:
        return self.name("n")

    @property
    def server(self) -> str:
        return self.name("s")

    @property
    def client(self) -> str:
        return self.name("c")

    @property
    def server_pid(self) -> int:
        return self.processes[0].pid

    def on_cpu(self, cpu: int, argv: list[str]) -> list[str]:
        return ["taskset", "-c", str(cpu), *argv] if self.pin else argv

    def setup(self) -> None:
        for ns in (self.node, self.server, self.client):
            sh("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        n = self.node
        sh("ip", "netns", "exec", n, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("ip", "-n", n, "link", "add", "br0", "type", "bridge")
        # Per namespace, on by default where br_netfilter is loaded; we never load it.
        sh("ip", "netns", "exec", n, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1",
           check=False)
        self.bridge_nf = sh("ip", "netns", "exec", n, "cat",
                            "/proc/sys/net/bridge/bridge-nf-call-iptables",
                            check=False).stdout.strip() == "1"
        if self.client_mode == "auto":
            self.client_mode = "pod" if self.bridge_nf else "netns"
        if self.client_mode == "pod" and not self.bridge_nf:
            raise BenchError("--client pod needs br_netfilter (net.bridge.bridge-nf-call-"
                             "iptables=1 in the node netns); use --client netns")
        sh("ip", "-n", n, "addr", "add", f"{GATEWAY}/24", "dev", "br0")
        sh("ip", "-n", n, "link", "set", "br0", "up")
        self._pod(self.server, "vs", SERVER_IP)
        if self.client_mode == "pod":
            self._pod(self.client, "vc", CLIENT_POD_IP)
        else:
            sh("ip", "-n", n, "link", "add", "vc", "type", "veth", "peer", "name", "eth0",
               "netns", self.client)
            sh("ip", "-n", n, "addr", "add", f"{NODE_IP}/24", "dev", "vc")
            sh("ip", "-n", n, "link", "set", "vc", "up")
            sh("ip", "-n", self.client, "addr", "add", f"{CLIENT_NETNS_IP}/24", "dev", "eth0")
            sh("ip", "-n", self.client, "link", "set", "eth0", "up")
            sh("ip", "-n", self.client, "route", "add", "default", "via", NODE_IP)
        for key in ("all", "default", "br0"):
            sh("ip", "netns", "exec", n, "sysctl", "-qw",
               f"net.ipv4.conf.{key}.send_redirects=0")
        self._start_server()

    def _pod(self, ns: str, host_end: str, ip: str) -> None:
        n = self.node
        sh("ip", "-n", n, "link", "add", host_end, "type", "veth", "peer", "name", "eth0",
           "netns", ns)
        sh("ip", "-n", n, "link", "set", host_end, "master", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", GATEWAY)

    def _start_server(self) -> None:
        if self.server_kind == "nginx":
            conf = self.workdir / "nginx.conf"
            conf.write_text(NGINX_CONF.format(dir=self.workdir, port=POD_PORT,
                                              direct_port=DIRECT_PORT))
            argv = ["nginx", "-p", str(self.workdir), "-c", str(conf)]
        else:
            script = self.workdir / "server.py"
            script.write_text(PY_SERVER)
            argv = [sys.executable, str(script), str(POD_PORT), str(DIRECT_PORT)]
        # `ip netns exec` and taskset exec in place: the Popen is the server process itself.
        self.processes.append(subprocess.Popen(
            ["ip", "netns", "exec", self.server, *self.on_cpu(1, argv)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 15
        ports = [POD_PORT, DIRECT_PORT]
        while ports:
            result = self.latency(SERVER_IP, ports[0], count=1, warmup=0, netns=self.node)
            if result["connect_us"]:
                ports.pop(0)
                continue
            if self.processes[-1].poll() is not None:
                raise BenchError(f"the {self.server_kind} server exited "
                                 f"({self.processes[-1].returncode}); see {self.workdir}")
            if time.monotonic() > deadline:
                raise BenchError(f"the server did not start: {result['errors']}")
            time.sleep(0.1)

    def tcp_counters(self) -> dict[str, int]:
        """Signs of lost connection attempts, over the whole run (all zero in a good one)."""
        def netstat(ns: str) -> dict[str, int]:
            lines = sh("ip", "netns", "exec", ns, "cat", "/proc/net/netstat").stdout.split("\n")
            out: dict[str, int] = {}
            for head, values in zip(lines[::2], lines[1::2], strict=False):
                if head.startswith("TcpExt:"):
                    out.update(zip(head.split()[1:], map(int, values.split()[1:]),
                                   strict=False))
            return out

        client, server = netstat(self.client), netstat(self.server)
        return {"client_syn_retransmits": client.get("TCPSynRetrans", 0),
                "server_paws_timewait": server.get("PAWSTimewait", 0),
                "server_listen_drops": server.get("ListenDrops", 0)}

    def teardown(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)
        listed = sh("ip", "netns", "list", check=False).stdout.split()
        leftover = [ns for ns in self.namespaces if ns in listed]
        if leftover:
            print(f"warning: namespaces left behind: {leftover}", file=sys.stderr)

    # -- load ------------------------------------------------------------------------------

    def latency(self, ip: str, port: int, *, count: int, warmup: int = 200,
                netns: str | None = None) -> dict[str, Any]:
        script = self.workdir / "latency.py"
        if not script.exists():
            script.write_text(LATENCY_CLIENT)
        request = json.dumps({"ip": ip, "port": port, "count": count, "warmup": warmup,
                              "timeout": 2})
        with CpuMeter(self.server_pid if self.processes else None) as cpu:
            done = sh("ip", "netns", "exec", netns or self.client,
                      *self.on_cpu(0, [sys.executable, str(script), request]),
                      timeout=60 + count * 0.1)
        result: dict[str, Any] = json.loads(done.stdout)
        result["foreign_cores"] = cpu.foreign_cores
        return result

    def wrk(self, ip: str, port: int, *, seconds: float, connections: int,
            close: bool) -> dict[str, Any]:
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "2s"]
        if close:
            argv += ["-H", "Connection: close"]
        with CpuMeter(self.server_pid) as cpu:
            done = sh("ip", "netns", "exec", self.client,
                      *self.on_cpu(0, [*argv, f"http://{ip}:{port}/"]), timeout=seconds + 60)
        return parse_wrk(done.stdout) | {"foreign_cores": cpu.foreign_cores}


class CpuMeter:
    """How busy the machine was with *other* work while a measurement ran, in cores: user and
    system time of all CPUs (``/proc/stat``) less that of the client (a child of this process,
    waited for inside the block) and the server. Interrupt and softirq time, mostly the
    packets' own, is not counted. A check on the conditions (a concurrent test suite, say),
    not part of the figures."""

    CLOCK = os.sysconf("SC_CLK_TCK")

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.foreign_cores = 0.0

    @staticmethod
    def _busy() -> float:
        with open("/proc/stat") as stat:
            user, nice, system = (int(x) for x in stat.readline().split()[1:4])
        return (user + nice + system) / CpuMeter.CLOCK

    def _ours(self) -> float:
        children = os.times()
        seconds = children.children_user + children.children_system
        if self.server_pid is not None:
            try:
                with open(f"/proc/{self.server_pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                seconds += (int(fields[11]) + int(fields[12])) / self.CLOCK  # utime, stime
            except OSError:
                pass
        return seconds + os.times().user + os.times().system

    def __enter__(self) -> CpuMeter:
        self.start = (time.monotonic(), self._busy(), self._ours())
        return self

    def __exit__(self, *exc: object) -> None:
        wall, busy, ours = (time.monotonic(), self._busy(), self._ours())
        foreign = (busy - self.start[1]) - (ours - self.start[2])
        self.foreign_cores = max(0.0, foreign / max(wall - self.start[0], 1e-9))


def parse_wrk(out: str) -> dict[str, Any]:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rate is None:
        raise BenchError(f"unexpected wrk output:\n{out}")
    errors = 0
    if socket_errors := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                                  r"timeout (\d+)", out):
        errors += sum(int(x) for x in socket_errors.groups())
    if non_2xx := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(non_2xx.group(1))
    total = re.search(r"(\d+) requests in", out)
    return {"rps": float(rate.group(1)), "requests": int(total.group(1)) if total else 0,
            "errors": errors}


@contextmanager
def topology(client_mode: str, server_kind: str, *, pin: bool = True) -> Iterator[Topology]:
    topo = Topology(client_mode, server_kind)
    topo.pin = topo.pin and pin
    try:
        topo.setup()
        yield topo
    finally:
        topo.teardown()


# -- the phases ------------------------------------------------------------------------------

@dataclass
class Programmer:
    """One Proxier on the node netns, switching between the two Service sets."""

    proxier: Proxier
    sets: dict[str, tuple[list[Obj], list[Obj]]]
    current: str | None = None
    syncs: list[dict[str, Any]] = field(default_factory=list)

    def program(self, which: str, topo: Topology) -> None:
        if which == self.current:
            return
        services, slices = self.sets[which]
        result = self.proxier.sync(services, slices, NODE)
        self.syncs.append({"to": which, "from": self.current, "services": len(services),
                           "full": result.full, "seconds": result.duration,
                           "bytes": result.bytes})
        self.current = which
        time.sleep(SETTLE_S)  # the kernel's deferred work after a big transaction (set resizes)
        probe = topo.latency(SERVICE_IP, SERVICE_PORT, count=3, warmup=0)
        if probe["error_count"]:
            raise BenchError(f"the ClusterIP does not answer with the {which} set: "
                             f"{probe['errors']}")


QUANTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))


def latency_phase(topo: Topology, prog: Programmer, rounds: int, connects: int,
                  chunks: int = 4) -> dict[str, Any]:
    """Visits the sets in ABBA order; in each visit, ``connects`` connections per path in
    ``chunks`` alternating (ABBA) batches. Besides the pooled percentiles, each visit's
    ClusterIP p50 over the pod-IP p50 measured alongside it: a figure that machine-wide
    slowdowns (which hit both paths) cancel out of."""
    order = [size for r in range(rounds)
             for size in (("small", "large") if r % 2 == 0 else ("large", "small"))]
    pooled: dict[tuple[str, str], dict[str, list[float]]] = {
        (size, path): {"connect_us": [], "first_us": []}
        for size in ("small", "large") for path in ("clusterip", "pod")}
    targets = {"clusterip": (SERVICE_IP, SERVICE_PORT), "pod": (SERVER_IP, DIRECT_PORT)}
    errors = 0
    foreign: list[float] = []
    visits: list[dict[str, Any]] = []
    for size in order:
        prog.program(size, topo)
        visit: dict[str, dict[str, list[float]]] = {
            path: {"connect_us": [], "first_us": []} for path in targets}
        for c in range(chunks):
            for path in (("clusterip", "pod") if c % 2 == 0 else ("pod", "clusterip")):
                ip, port = targets[path]
                result = topo.latency(ip, port, count=max(1, connects // chunks),
                                      warmup=50 if c else 200)
                errors += result["error_count"]
                foreign.append(result["foreign_cores"])
                for key in ("connect_us", "first_us"):
                    visit[path][key] += result[key]
                    pooled[size, path][key] += result[key]
        summary: dict[str, Any] = {"size": size}
        for key in ("connect_us", "first_us"):
            cip, pod = (statistics.median(visit[path][key]) for path in ("clusterip", "pod"))
            summary |= {f"clusterip_{key[:-3]}_p50_us": cip, f"pod_{key[:-3]}_p50_us": pod,
                        f"{key[:-3]}_p50_vs_pod": cip / pod}
        visits.append(summary)
    out: dict[str, Any] = {"order": order, "errors": errors, "visits": visits,
                           "foreign_cores_mean": statistics.fmean(foreign),
                           "foreign_cores_max": max(foreign)}
    for (size, path), samples in pooled.items():
        out[f"{path}_{size}"] = {
            f"{key[:-3]}_{name}_us": pct(values, q)
            for key, values in samples.items() for name, q in QUANTILES
        } | {"samples": len(samples["connect_us"])}
    for size in ("small", "large"):
        out[f"vs_pod_{size}"] = {
            key: statistics.median(v[f"{key}_p50_vs_pod"] for v in visits if v["size"] == size)
            for key in ("connect", "first")}
    return out


def rate_phase(topo: Topology, rounds: int, seconds: float, connections: int,
               close: bool) -> dict[str, Any]:
    targets = {"clusterip": (SERVICE_IP, SERVICE_PORT), "pod": (SERVER_IP, DIRECT_PORT)}
    for ip, port in targets.values():  # warm-up, not recorded
        topo.wrk(ip, port, seconds=1, connections=connections, close=close)
    runs: dict[str, list[dict[str, Any]]] = {"clusterip": [], "pod": []}
    for r in range(rounds):
        for path in (("clusterip", "pod") if r % 2 == 0 else ("pod", "clusterip")):
            ip, port = targets[path]
            runs[path].append(topo.wrk(ip, port, seconds=seconds, connections=connections,
                                       close=close))
    median = {path: statistics.median(run["rps"] for run in rs) for path, rs in runs.items()}
    # Each round's two runs are adjacent in time: their ratio is what drift disturbs least.
    paired = [c["rps"] / p["rps"] for c, p in zip(runs["clusterip"], runs["pod"], strict=True)]
    foreign = [run["foreign_cores"] for rs in runs.values() for run in rs]
    return {"clusterip_rps": median["clusterip"], "pod_rps": median["pod"],
            "ratio": statistics.median(paired), "ratio_of_medians":
            median["clusterip"] / median["pod"], "paired_ratios": paired,
            "errors": sum(run["errors"] for rs in runs.values() for run in rs),
            "foreign_cores_mean": statistics.fmean(foreign), "foreign_cores_max": max(foreign),
            "runs": runs}


# -- output ----------------------------------------------------------------------------------

def version(argv: list[str], pattern: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError:
        return "?"
    found = re.search(pattern, done.stdout + done.stderr)
    return found.group(1) if found else "?"


def machine(server_kind: str) -> dict[str, Any]:
    nginx = version(["nginx", "-v"], r"nginx/(\S+)")
    server = f"nginx {nginx}" if server_kind == "nginx" else "Python asyncio"
    return {"cores": os.cpu_count(), "kernel": platform.release(),
            "nft": version(["nft", "--version"], r"(v\S+)"),
            "python": platform.python_version(),
            "wrk": version(["wrk", "--version"], r"wrk (\S+)"), "server": server}


def k(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def print_report(report: dict[str, Any]) -> None:
    m, cfg = report["machine"], report["config"]
    small, large = k(cfg["services_small"]), k(cfg["services_large"])
    client = ("a pod on the node bridge (br_netfilter)" if cfg["client"] == "pod"
              else "its own netns, routed via the node (off-cluster: masqueraded)")
    print(f"machine: {m['cores']} cores, kernel {m['kernel']}, nftables {m['nft']}, "
          f"Python {m['python']}; wrk {m['wrk']}, server {m['server']}")
    print(f"client: {client}; client and server pinned to one CPU each: "
          f"{'yes' if cfg['pinned'] else 'no'}")
    print()
    rates_at = k(cfg[f"services_{cfg['rates_at']}"])
    print(f"| {rates_at} Services programmed; {cfg['rounds']} × {cfg['seconds']:g} s runs per "
          "cell, ABBA | ClusterIP (median) | pod IP (median) | ratio | aim |")
    print("|---|---|---|---|---|")
    for key, label, aim in (
            ("keepalive", f"requests/s, keep-alive ({cfg['connections']} conns)", "≥ 0.97"),
            ("new_connections", "new connections/s: connect, 1 request, close "
             f"({cfg['connections']} conns)", "≥ 0.9")):
        r = report[key]
        print(f"| {label} | {r['clusterip_rps']:,.0f} | {r['pod_rps']:,.0f} "
              f"| {r['ratio']:.3f} | {aim} |")
    lat = report["latency"]
    print()
    print(f"| connect latency, µs ({cfg['latency_rounds']} × {cfg['connects']} sequential "
          f"connects per cell) | {small} Services | {large} Services | {large} / {small} "
          "| aim |")
    print("|---|---|---|---|---|")
    for path, label in (("clusterip", "ClusterIP"), ("pod", "pod IP (control)")):
        for key, what in (("connect", "connect"), ("first", "connect + first response")):
            for q, _ in QUANTILES:
                a = lat[f"{path}_small"][f"{key}_{q}_us"]
                b = lat[f"{path}_large"][f"{key}_{q}_us"]
                aim = "≤ 1.10" if path == "clusterip" else "–"
                print(f"| {label}: {what} {q} | {a:.0f} | {b:.0f} | {b / a:.3f} | {aim} |")
    for key, what in (("connect", "connect"), ("first", "connect + first response")):
        a, b = lat["vs_pod_small"][key], lat["vs_pod_large"][key]
        print(f"| ClusterIP p50 ÷ pod-IP p50 alongside (drift-free): {what} | {a:.3f} "
              f"| {b:.3f} | {b / a:.3f} | ≤ 1.10 |")
    print()
    ka, nc = report["keepalive"], report["new_connections"]
    print("ratio: median of the per-round ClusterIP / pod-IP ratios (each round's two runs are "
          "adjacent); per round: keep-alive "
          + " ".join(f"{x:.3f}" for x in ka["paired_ratios"]) + "; new connections "
          + " ".join(f"{x:.3f}" for x in nc["paired_ratios"]))
    tcp = report["tcp"]
    print(f"errors (wrk socket errors + non-2xx; latency client): keep-alive {ka['errors']}, "
          f"new connections {nc['errors']}, latency {lat['errors']}; over the run: client SYN "
          f"retransmits {tcp['client_syn_retransmits']}, server PAWS-rejected SYNs "
          f"{tcp['server_paws_timewait']}, listen drops {tcp['server_listen_drops']}")
    print("other work on the machine during the runs, cores (mean / max): keep-alive "
          f"{ka['foreign_cores_mean']:.2f} / {ka['foreign_cores_max']:.2f}, new connections "
          f"{nc['foreign_cores_mean']:.2f} / {nc['foreign_cores_max']:.2f}, latency "
          f"{lat['foreign_cores_mean']:.2f} / {lat['foreign_cores_max']:.2f}")
    syncs = "; ".join(f"{s['from'] or 'empty'} → {s['to']} ({k(s['services'])}): "
                      f"{s['seconds']:.1f} s {'full' if s['full'] else 'incremental'}"
                      for s in report["syncs"])
    print(f"Proxier syncs: {syncs}")
    names = {"small": small, "large": large}
    visits = ", ".join(f"{names[v['size']]} {v['clusterip_connect_p50_us']:.0f}/"
                       f"{v['pod_connect_p50_us']:.0f}" for v in lat["visits"])
    print(f"latency visits in order (Services: ClusterIP/pod-IP connect p50, µs): {visits}")


# -- main ------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--services-small", type=int, default=1000)
    ap.add_argument("--services-large", type=int, default=30000)
    ap.add_argument("--endpoints", type=int, default=5,
                    help="endpoints per generated Service (the bench's own has one)")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of one wrk run")
    ap.add_argument("--rounds", type=int, default=8,
                    help="wrk runs per path and figure (ABBA order)")
    ap.add_argument("--latency-rounds", type=int, default=3,
                    help="latency measurements per Service set and path (ABBA order)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections")
    ap.add_argument("--connects", type=int, default=3000,
                    help="sequential connects per latency measurement")
    ap.add_argument("--client", choices=("auto", "pod", "netns"), default="auto")
    ap.add_argument("--server", choices=("auto", "nginx", "python"), default="auto")
    ap.add_argument("--rates-at", choices=("large", "small"), default="large")
    ap.add_argument("--no-pin", action="store_true",
                    help="leave the client and the server to the scheduler (not pinned)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/dataplane.py needs root (it creates network namespaces)")
    missing = [tool for tool in ("ip", "nft", "taskset") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"bench/dataplane.py needs {', '.join(missing)}")
    if shutil.which("wrk") is None:
        sys.exit("bench/dataplane.py needs wrk as its load generator (Debian: "
                 "apt-get install -y wrk)")
    server_kind = args.server
    if server_kind == "auto":
        server_kind = "nginx" if shutil.which("nginx") else "python"
    elif server_kind == "nginx" and shutil.which("nginx") is None:
        sys.exit("--server nginx: nginx is not installed (Debian: apt-get install -y "
                 "nginx-light)")
    # SIGTERM unwinds like Ctrl-C, through the finally blocks that delete the namespaces.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    sets = {"small": service_set(args.services_small, args.endpoints),
            "large": service_set(args.services_large, args.endpoints)}
    with topology(args.client, server_kind, pin=not args.no_pin) as topo:
        prog = Programmer(Proxier(SubprocessNft(topo.node), ProxyConfig(),
                                  stale_chain_delay=0.0), sets)
        latency = latency_phase(topo, prog, args.latency_rounds, args.connects)
        prog.program(args.rates_at, topo)
        keepalive = rate_phase(topo, args.rounds, args.seconds, args.connections, close=False)
        new_connections = rate_phase(topo, args.rounds, args.seconds, args.connections,
                                     close=True)
        client_mode = topo.client_mode
        pinned = topo.pin
        counters = topo.tcp_counters()
    report = {
        "machine": machine(server_kind),
        "config": {"services_small": len(sets["small"][0]),
                   "services_large": len(sets["large"][0]), "endpoints": args.endpoints,
                   "seconds": args.seconds, "rounds": args.rounds,
                   "latency_rounds": args.latency_rounds,
                   "connections": args.connections, "connects": args.connects,
                   "client": client_mode, "server": server_kind, "pinned": pinned,
                   "rates_at": args.rates_at},
        "keepalive": keepalive, "new_connections": new_connections, "latency": latency,
        "syncs": prog.syncs, "tcp": counters,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (namespaces deleted)")
