"""`svcnet up --egress` against a simulated outside world: pods resolve its names through cluster
DNS (forwarded upstream) and fetch its pages through their node; without --egress they reach
neither.

"The internet" is a network namespace of the test, ``svcnet-eg<rand>-w``, linked to the
cluster's node bridge by a veth, with an address on the node network (``.254``, the
``--egress-gateway``) and the documentation addresses 198.51.100.10 (a web server) and
198.51.100.53 (a DNS server knowing ``shop.example``) on its loopback. No packet of this
test leaves the machine: the world's addresses are routed only inside the cluster's nodes, and
nothing in the root namespace changes but the veth on the cluster's own bridge.
"""

from __future__ import annotations

import contextlib
import json
import random
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from svcnet.cluster.networks import machine_in_use
from svcnet.node.names import ClusterNames
from tests.e2e.local_clusters import LocalCluster, local_cluster, network_of

pytestmark = pytest.mark.root

WEB, RESOLVER = "198.51.100.10", "198.51.100.53"
NAME = "shop.example"
POD = """
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  runtimeClassName: process
  containers:
  - name: c
    image: python
    command: ["python3", "-c", "import time; time.sleep(100000)"]
"""

WORLD = r"""
import http.server, socketserver, sys, threading
from dnslib import A, QTYPE, RR, SOA, DNSRecord, RCODE
from dnslib.server import BaseResolver, DNSServer

class Resolver(BaseResolver):
    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).lower()
        if name == "shop.example." and request.q.qtype == QTYPE.A:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(sys.argv[1]), ttl=60))
        else:
            reply.header.rcode = RCODE.NXDOMAIN if name != "shop.example." else 0
            reply.add_auth(RR("example.", QTYPE.SOA, ttl=60, rdata=SOA(
                "ns.example.", "admin.example.", (1, 60, 60, 60, 60))))
        return reply

class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"the world says hello to {self.client_address[0]}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

for tcp in (False, True):
    DNSServer(Resolver(), address=sys.argv[2], port=53, tcp=tcp).start_thread()
web = socketserver.ThreadingTCPServer((sys.argv[1], 80), Page)
threading.Thread(target=web.serve_forever, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""

CLIENT = r"""
import json, socket, time, urllib.request
out = {}
started = time.monotonic()
try:
    out["address"] = socket.getaddrinfo("shop.example", 80, socket.AF_INET)[0][4][0]
except OSError as e:
    out["dns_error"] = repr(e)
out["dns_seconds"] = time.monotonic() - started
if "address" in out:
    out["page"] = urllib.request.urlopen("http://shop.example/", timeout=5).read().decode()
s = socket.socket()
s.settimeout(5)
try:
    s.connect(("198.51.100.10", 80))
    out["connect"] = "ok"
except OSError as e:
    out["connect_error"] = repr(e)
print(json.dumps(out))
"""


def ip(*args: str, stdin: str | None = None) -> None:
    r = subprocess.run(["ip", *args], input=stdin, capture_output=True, text=True, check=False)
    assert r.returncode == 0, f"ip {' '.join(args)}: {r.stderr}"


@dataclass(frozen=True)
class World:
    netns: str
    gateway: str


@contextlib.contextmanager
def simulated_world(cluster: LocalCluster) -> Iterator[World]:
    """The world namespace on the cluster's node bridge at the node network's .254, with its
    DNS and web servers running; all removed afterwards."""
    nodes = network_of(cluster.home, cluster.name).nodes
    gateway = str(nodes.network_address + 254)
    tag = secrets.token_hex(2)
    netns, veth = f"svcnet-eg{tag}-w", f"svcnet-eg{tag}w"
    bridge = ClusterNames.for_cluster(cluster.name).node_bridge
    proc: subprocess.Popen[str] | None = None
    try:
        ip("netns", "add", netns)
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
        ip("link", "set", veth, "master", bridge, "up")
        ip("-n", netns, "-batch", "-", stdin="\n".join([
            "link set lo up", f"addr add {gateway}/{nodes.prefixlen} dev eth0",
            "link set eth0 up", f"addr add {WEB}/32 dev lo",
            f"addr add {RESOLVER}/32 dev lo"]) + "\n")
        proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", WORLD,
                                 WEB, RESOLVER], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield World(netns, gateway)
    finally:
        if proc is not None:
            proc.kill()
            proc.communicate()  # reaps it and closes its pipes
        subprocess.run(["ip", "link", "del", veth], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)


def free_node_network() -> str:
    """A /24 of 172.20.128.0/17 that nothing on the machine uses now: the world's address
    (the egress gateway) must be known before `svcnet up`."""
    taken = [u.network for u in machine_in_use()]
    candidates = [IPv4Network(f"172.20.{k}.0/24") for k in range(128, 255)]
    free = [c for c in candidates if not any(c.overlaps(t) for t in taken)]
    assert free, "no free node network in 172.20.128.0/17"
    return str(random.choice(free))


def pod_reaches_world(cluster: LocalCluster, tmp_path: Path) -> dict[str, object]:
    (tmp_path / "client.yaml").write_text(POD)
    cluster.kubectl("apply", "-f", str(tmp_path / "client.yaml"))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/client", "--timeout=60s")
    r = cluster.svcnet("exec", "client", "--kubeconfig", str(cluster.kubeconfig), "--",
                       sys.executable, "-c", CLIENT, timeout=60)
    out: dict[str, object] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


@pytest.fixture(scope="module")
def egress_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    network = free_node_network()
    gateway = str(IPv4Network(network).network_address + 254)
    with local_cluster(tmp_path_factory, "eg", "--nodes", "1", "--container-runtime",
                       "process", "--no-localhost-nodeports", "--node-network", network,
                       "--egress", "--egress-gateway", gateway,
                       "--upstream", RESOLVER) as cluster:
        yield cluster


def test_with_egress_a_pod_resolves_and_fetches_from_the_world(
        egress_cluster: LocalCluster, tmp_path: Path) -> None:
    cluster = egress_cluster
    with simulated_world(cluster) as world:
        assert world.gateway.endswith(".254")
        out = pod_reaches_world(cluster, tmp_path)
    node_ip = network_of(cluster.home, cluster.name).node_ip(1)
    # The name came from the world's DNS through cluster DNS; the page through the node,
    # which masqueraded the pod's address to its own.
    assert out.get("address") == WEB, out
    assert out.get("page") == f"the world says hello to {node_ip}", out
    assert out.get("connect") == "ok", out
    up = json.loads((cluster.home / cluster.name / "cluster.json").read_text())
    assert (up["egressGateway"], up["dnsUpstreams"]) == (world.gateway, [f"{RESOLVER}:53"])
    # The node's resolv.conf (the base of pods' DNS settings) names the upstream.
    assert f"nameserver {RESOLVER}" in (cluster.home / cluster.name /
                                        "node-resolv.conf").read_text()


def test_without_egress_pods_reach_neither_names_nor_packets(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    with local_cluster(tmp_path_factory, "eg", "--nodes", "1", "--container-runtime",
                       "process", "--no-localhost-nodeports") as cluster, \
            simulated_world(cluster):
        out = pod_reaches_world(cluster, tmp_path)
    assert "address" not in out and "dns_error" in out, out
    dns_seconds = out["dns_seconds"]
    assert isinstance(dns_seconds, float) and dns_seconds < 3, out  # SERVFAIL at once
    assert "connect_error" in out and "timed out" not in str(out["connect_error"]), out
