"""The service data plane on a real kernel, proven with real traffic between namespaces.

Topology (every namespace created here, named ``svcnet-t5-<run><role>``, all removed at the end;
nothing is added to the root namespace)::

    client netns (c)                      node netns (n)                        pod netns
    eth0 172.20.0.2/24 ──veth── vc 172.20.0.11/24 (the node's address)
    default via .11                       table ip svcnet (the proxier's)
                                          br0 10.244.1.1/24 ──veth va (hairpin on)── a: eth0 10.244.1.10
                                                            └─veth vb (hairpin on)── b: eth0 10.244.1.11

The client is "outside the cluster"; pods ``a`` and ``b`` run a tiny HTTP server (port 8080)
and UDP echo server (port 5353) that answer with their name and the source address they saw.
Services use the 10.96.0.0/12 ClusterIP range and NodePorts on 172.20.0.11; the cluster CIDR is
10.244.0.0/16. Client traffic is sent by a short Python script run with ``ip netns exec``.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from svcnet.proxy import names
from svcnet.proxy.model import EndpointInfo, NodeInfo, ServicePortName
from svcnet.proxy.nft.nft import NftError, SubprocessNft
from svcnet.proxy.nft.transaction import plan_sync
from svcnet.proxy.proxier import Proxier
from svcnet.proxy.ruleset import ProxyConfig, build_ruleset
from tests.conftest import require, require_binary, require_root

pytestmark = pytest.mark.root

NODE_IP = "172.20.0.11"
CLIENT_IP = "172.20.0.2"
GATEWAY = "10.244.1.1"
VIP_RANGE = "172.20.0.128/25"
POD_IPS = {"a": "10.244.1.10", "b": "10.244.1.11"}
HTTP_PORT = 8080
UDP_PORT = 5353
NODE = NodeInfo("node-1", (NODE_IP,))
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "nftables"

SERVER = r'''
import json, socket, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
name, tcp_port, udp_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"pod": name, "client": self.client_address[0]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", udp_port))
    while True:
        data, addr = s.recvfrom(2048)
        s.sendto(json.dumps({"pod": name, "client": addr[0]}).encode(), addr)
threading.Thread(target=udp, daemon=True).start()
ThreadingHTTPServer(("0.0.0.0", tcp_port), Handler).serve_forever()
'''

CLIENT = r'''
import json, socket, sys, time
req = json.loads(sys.argv[1])
sources = req["sources"] or [None]
results = []
for i in range(req["count"]):
    source = sources[i % len(sources)]
    bind = (source, 0) if source else None
    start = time.monotonic()
    try:
        if req["proto"] == "tcp":
            with socket.create_connection((req["ip"], req["port"]), timeout=req["timeout"],
                                          source_address=bind) as s:
                s.sendall(b"GET / HTTP/1.0\r\nHost: svc\r\n\r\n")
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
            results.append({"ok": json.loads(data.split(b"\r\n\r\n", 1)[1])})
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(req["timeout"])
                if bind:
                    s.bind(bind)
                s.connect((req["ip"], req["port"]))
                s.send(b"ping")
                results.append({"ok": json.loads(s.recv(2048))})
    except OSError as err:
        results.append({"error": type(err).__name__,
                        "elapsed": round(time.monotonic() - start, 3)})
print(json.dumps(results))
'''


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done


@dataclass
class Topology:
    node: str
    client: str
    pods: dict[str, str]
    workdir: Path
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    bridge_nf: bool = False

    def require_bridge_nf(self) -> None:
        require(self.bridge_nf, "pod-to-pod traffic through a Service on a bridge needs "
                "br_netfilter (net.bridge.bridge-nf-call-iptables=1)")

    @property
    def nft(self) -> SubprocessNft:
        return SubprocessNft(self.node)

    def proxier(self, **config: Any) -> Proxier:
        return Proxier(self.nft, ProxyConfig(**config), stale_chain_delay=0.0)

    def send(self, ip: str, port: int, *, proto: str = "tcp", count: int = 1,
             timeout: float = 2.0, netns: str | None = None,
             sources: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Connections from ``netns`` (default: the client); one result dict per attempt.

        Attempt ``i`` is sent from ``sources[i % len(sources)]`` (addresses of ``netns``), or
        from the address the kernel picks when ``sources`` is empty.
        """
        request = json.dumps({"ip": ip, "port": port, "proto": proto, "count": count,
                              "timeout": timeout, "sources": list(sources)})
        done = sh("ip", "netns", "exec", netns or self.client, sys.executable,
                  str(self.workdir / "client.py"), request)
        results: list[dict[str, Any]] = json.loads(done.stdout)
        return results

    def pods_reached(self, ip: str, port: int, **kwargs: Any) -> Counter[str]:
        results = self.send(ip, port, **kwargs)
        errors = [r for r in results if "error" in r]
        assert not errors, f"{ip}:{port}: {errors[:3]}"
        return Counter(r["ok"]["pod"] for r in results)


def _setup(topo: Topology) -> None:
    for ns in (topo.node, topo.client, *topo.pods.values()):
        sh("ip", "netns", "add", ns)
        topo.namespaces.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    n = topo.node
    sh("ip", "netns", "exec", n, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    sh("ip", "-n", n, "link", "add", "br0", "type", "bridge")
    # A pod's reply to another pod on the same bridge is bridged, not routed: only with
    # br_netfilter (bridge-nf-call-iptables) does it pass conntrack and get un-DNATed. It is
    # per namespace and on by default where the module is present; we never load it.
    sh("ip", "netns", "exec", n, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1",
       check=False)
    topo.bridge_nf = sh("ip", "netns", "exec", n, "cat",
                        "/proc/sys/net/bridge/bridge-nf-call-iptables",
                        check=False).stdout.strip() == "1"
    sh("ip", "-n", n, "addr", "add", f"{GATEWAY}/24", "dev", "br0")
    sh("ip", "-n", n, "link", "set", "br0", "up")
    for role, ns in topo.pods.items():
        host_end = f"v{role}"
        sh("ip", "-n", n, "link", "add", host_end, "type", "veth", "peer", "name", "eth0",
           "netns", ns)
        sh("ip", "-n", n, "link", "set", host_end, "master", "br0", "up")
        # Hairpin: a pod reaching itself through a Service leaves and re-enters this port.
        sh("ip", "-n", n, "link", "set", host_end, "type", "bridge_slave", "hairpin", "on")
        sh("ip", "-n", ns, "addr", "add", f"{POD_IPS[role]}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", GATEWAY)
    sh("ip", "-n", n, "link", "add", "vc", "type", "veth", "peer", "name", "eth0", "netns",
       topo.client)
    sh("ip", "-n", n, "addr", "add", f"{NODE_IP}/24", "dev", "vc")
    sh("ip", "-n", n, "link", "set", "vc", "up")
    sh("ip", "-n", n, "route", "add", "default", "via", CLIENT_IP)
    sh("ip", "-n", topo.client, "addr", "add", f"{CLIENT_IP}/24", "dev", "eth0")
    sh("ip", "-n", topo.client, "link", "set", "eth0", "up")
    sh("ip", "-n", topo.client, "route", "add", "default", "via", NODE_IP)
    # LoadBalancer and external IPs are in the node network's upper half; no L2 announcer
    # answers ARP for them here, so the client routes them to the node.
    sh("ip", "-n", topo.client, "route", "add", VIP_RANGE, "via", NODE_IP)
    (topo.workdir / "server.py").write_text(SERVER)
    (topo.workdir / "client.py").write_text(CLIENT)
    for role, ns in topo.pods.items():
        topo.processes.append(subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, str(topo.workdir / "server.py"), role,
             str(HTTP_PORT), str(UDP_PORT)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.monotonic() + 15
    for role in topo.pods:
        while True:
            probe = topo.send(POD_IPS[role], HTTP_PORT, timeout=0.5, netns=topo.node)
            if "ok" in probe[0]:
                break
            assert time.monotonic() < deadline, f"pod {role} server did not start: {probe}"
            time.sleep(0.1)


def _teardown(topo: Topology) -> None:
    for proc in topo.processes:
        if proc.poll() is None:
            proc.terminate()
    for proc in topo.processes:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for ns in reversed(topo.namespaces):
        sh("ip", "netns", "del", ns, check=False)


@pytest.fixture(scope="module")
def topo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    # A module fixture is set up before the `root` marker's function-scoped check runs.
    require_root()
    require_binary("nft")
    require_binary("ip")
    run = secrets.token_hex(2)[:3]
    names = {role: f"svcnet-t5-{run}{role}" for role in ("n", "c", "a", "b")}
    assert all(len(name) <= 15 for name in names.values())
    topology = Topology(node=names["n"], client=names["c"],
                        pods={"a": names["a"], "b": names["b"]},
                        workdir=tmp_path_factory.mktemp("proxy-netns"))
    try:
        _setup(topology)
        yield topology
    finally:
        _teardown(topology)
        leftover = [ns for ns in topology.namespaces
                    if ns in sh("ip", "netns", "list").stdout.split()]
        assert not leftover, f"namespaces left behind: {leftover}"


# -- objects --------------------------------------------------------------------------------

def service(name: str, cluster_ip: str, *, port: int = 80, target: int | str = HTTP_PORT,
            protocol: str = "TCP", **spec: Any) -> dict[str, Any]:
    port_spec: dict[str, Any] = {"name": "p", "port": port, "protocol": protocol,
                                 "targetPort": target}
    if "nodePort" in spec:
        port_spec["nodePort"] = spec.pop("nodePort")
    status = spec.pop("status", None)
    svc: dict[str, Any] = {
        "metadata": {"namespace": "default", "name": name},
        "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                 "ports": [port_spec], **spec},
    }
    if status is not None:
        svc["status"] = status
    return svc


def slice_for(name: str, pods: list[str], *, port: int = HTTP_PORT, protocol: str = "TCP",
              node: str = "node-1") -> dict[str, Any]:
    return {
        "metadata": {"namespace": "default", "name": f"{name}-x1",
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "p", "port": port, "protocol": protocol}],
        "endpoints": [{"addresses": [POD_IPS[p]], "conditions": {"ready": True},
                       "nodeName": node} for p in pods],
    }


# -- tests ----------------------------------------------------------------------------------

def test_full_rendered_ruleset_is_accepted_by_the_kernel(topo: Topology) -> None:
    services = [
        service("web", "10.96.0.10", type="NodePort", nodePort=30080),
        service("dns", "10.96.0.53", port=53, target=UDP_PORT, protocol="UDP"),
        service("lb", "10.96.0.20", type="LoadBalancer", nodePort=30081,
                externalTrafficPolicy="Local", loadBalancerSourceRanges=["192.168.0.0/16"],
                sessionAffinity="ClientIP", externalIPs=["172.20.0.150"],
                status={"loadBalancer": {"ingress": [{"ip": "172.20.0.200"}]}}),
        service("local", "10.96.0.21", internalTrafficPolicy="Local"),
        service("empty", "10.96.0.30"),
        service("sctp", "10.96.0.40", port=3868, protocol="SCTP", type="NodePort",
                nodePort=30040),
    ]
    slices = [slice_for("web", ["a", "b"]), slice_for("dns", ["a"], port=UDP_PORT,
                                                       protocol="UDP"),
              slice_for("lb", ["a", "b"]), slice_for("local", ["b"], node="node-2"),
              slice_for("sctp", ["a"], port=3868, protocol="SCTP")]
    desired = build_ruleset(services, slices, NODE)
    assert not desired.problems()
    nft = topo.nft
    nft.check(desired.render())          # the canonical text, as a script
    nft.apply(plan_sync(None, desired).render())  # the full-sync transaction
    nft.apply(plan_sync(None, desired).render())  # ... which also works over itself
    listed = nft.list_table("ip", "svcnet")
    assert "chain sticky-local-" in listed and "map backends" in listed
    with pytest.raises(NftError, match="No such file or directory"):
        nft.apply("add rule ip svcnet services jump no-such-chain\n")
    # Every golden rendering is a valid script for this kernel too (checked, not committed,
    # each against an empty namespace).
    nft.apply("add table ip svcnet\ndelete table ip svcnet\n")
    goldens = sorted(GOLDEN.glob("*.nft"))
    assert goldens
    for path in goldens:
        nft.check(path.read_text())


def test_clusterip_spreads_over_both_endpoints_and_masquerades_off_cluster(
        topo: Topology) -> None:
    topo.proxier().sync([service("web", "10.96.0.10")], [slice_for("web", ["a", "b"])], NODE)
    results = topo.send("10.96.0.10", 80, count=60)
    reached = Counter(r["ok"]["pod"] for r in results)
    assert set(reached) == {"a", "b"}, reached
    assert min(reached.values()) >= 10, reached  # p(<10 of 60 at p=1/2) is about 1e-7
    # The client is outside the cluster CIDR: masqueraded to the node's bridge address.
    assert {r["ok"]["client"] for r in results} == {GATEWAY}


def test_udp_clusterip(topo: Topology) -> None:
    topo.proxier().sync([service("dns", "10.96.0.53", port=53, target=UDP_PORT,
                                 protocol="UDP")],
                        [slice_for("dns", ["a", "b"], port=UDP_PORT, protocol="UDP")], NODE)
    reached = topo.pods_reached("10.96.0.53", 53, proto="udp", count=30)
    assert set(reached) == {"a", "b"}, reached


def test_nodeport_on_the_node_address(topo: Topology) -> None:
    topo.proxier().sync([service("web", "10.96.0.10", type="NodePort", nodePort=30080)],
                        [slice_for("web", ["a", "b"])], NODE)
    results = topo.send(NODE_IP, 30080, count=20)
    assert all("ok" in r for r in results), results
    assert {r["ok"]["pod"] for r in results} <= {"a", "b"}
    assert {r["ok"]["client"] for r in results} == {GATEWAY}  # ETP Cluster: masqueraded


def test_nodeport_with_local_policy_keeps_the_client_address(topo: Topology) -> None:
    topo.proxier().sync([service("web", "10.96.0.10", type="NodePort", nodePort=30080,
                                 externalTrafficPolicy="Local")],
                        [slice_for("web", ["a", "b"])], NODE)
    results = topo.send(NODE_IP, 30080, count=10)
    assert {r["ok"]["client"] for r in results} == {CLIENT_IP}, results


def test_local_policy_without_local_endpoints_drops_outside_but_serves_pods(
        topo: Topology) -> None:
    topo.require_bridge_nf()
    # The only endpoint (pod b) belongs, on paper, to another node: outside traffic is
    # dropped (a timeout, not a refusal) while pods still short-circuit to all endpoints.
    topo.proxier().sync([service("web", "10.96.0.10", type="NodePort", nodePort=30080,
                                 externalTrafficPolicy="Local")],
                        [slice_for("web", ["b"], node="node-2")], NODE)
    [outside] = topo.send(NODE_IP, 30080, timeout=1.0)
    assert outside.get("error") == "TimeoutError", outside
    results = topo.send(NODE_IP, 30080, count=10, netns=topo.pods["a"])
    # Pod traffic is not masqueraded: b sees a's own address.
    assert {(r["ok"]["pod"], r["ok"]["client"]) for r in results} == {("b", POD_IPS["a"])}


def test_service_without_endpoints_is_refused_at_once(topo: Topology) -> None:
    topo.proxier().sync([service("empty", "10.96.0.30"),
                         service("empty-udp", "10.96.0.31", port=53, protocol="UDP")],
                        [], NODE)
    for result in topo.send("10.96.0.30", 80, count=3, timeout=5.0):
        assert result.get("error") == "ConnectionRefusedError", result
        assert result["elapsed"] < 1.0, result  # an ICMP answer, not a timeout
    [udp] = topo.send("10.96.0.31", 53, proto="udp", timeout=5.0)
    assert udp.get("error") == "ConnectionRefusedError" and udp["elapsed"] < 1.0, udp
    # A ClusterIP on a port no service defines is refused too.
    [other] = topo.send("10.96.0.30", 81, timeout=5.0)
    assert other.get("error") == "ConnectionRefusedError", other


def test_incremental_update_removes_an_endpoint(topo: Topology) -> None:
    proxier = topo.proxier()
    services = [service("web", "10.96.0.10", type="NodePort", nodePort=30080)]
    first = proxier.sync(services, [slice_for("web", ["a", "b"])], NODE)
    assert first.full or first.adopted  # earlier tests of this module left a table
    assert set(topo.pods_reached("10.96.0.10", 80, count=30)) == {"a", "b"}
    second = proxier.sync(services, [slice_for("web", ["a"])], NODE)
    assert not second.full
    assert proxier.last_transaction is not None
    text = proxier.last_transaction.render()
    assert "table" not in text.replace("ip svcnet", ""), text  # no table-level commands
    assert set(second.counts) <= {"add element", "delete element"}, second
    assert topo.pods_reached("10.96.0.10", 80, count=20) == Counter(a=20)
    assert topo.pods_reached(NODE_IP, 30080, count=10) == Counter(a=10)
    # ... and back, still incrementally; the emptied chain lb-2 was deleted in between.
    third = proxier.sync(services, [slice_for("web", ["a", "b"])], NODE)
    assert not third.full
    assert set(topo.pods_reached("10.96.0.10", 80, count=30)) == {"a", "b"}


def test_failed_apply_forces_a_full_sync(topo: Topology) -> None:
    proxier = topo.proxier()
    services = [service("web", "10.96.0.10")]
    proxier.sync(services, [slice_for("web", ["a"])], NODE)
    # Someone deletes our table behind our back: the incremental sync fails atomically...
    topo.nft.apply("delete table ip svcnet\n")
    with pytest.raises(NftError):
        proxier.sync(services, [slice_for("web", ["a", "b"])], NODE)
    # ... and the next one is full, and repairs everything.
    assert proxier.sync(services, [slice_for("web", ["a", "b"])], NODE).full
    assert set(topo.pods_reached("10.96.0.10", 80, count=30)) == {"a", "b"}


def test_pod_reaches_itself_through_its_service_hairpin(topo: Topology) -> None:
    topo.require_bridge_nf()
    topo.proxier().sync([service("web", "10.96.0.10")], [slice_for("web", ["a", "b"])], NODE)
    results = topo.send("10.96.0.10", 80, count=40, netns=topo.pods["a"])
    reached = Counter(r["ok"]["pod"] for r in results)
    assert set(reached) == {"a", "b"}, reached
    # Pod-to-pod through a ClusterIP keeps the pod's address, except for the hairpin case,
    # which must be masqueraded (or the reply would bypass conntrack inside the pod).
    clients = {(r["ok"]["pod"], r["ok"]["client"]) for r in results}
    assert clients == {("b", POD_IPS["a"]), ("a", GATEWAY)}, clients


def test_client_ip_affinity_sticks(topo: Topology) -> None:
    topo.require_bridge_nf()
    topo.proxier().sync([service("web", "10.96.0.10", sessionAffinity="ClientIP",
                                 sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})],
                        [slice_for("web", ["a", "b"])], NODE)
    reached = topo.pods_reached("10.96.0.10", 80, count=20)
    assert len(reached) == 1, reached
    # Another client (pod b) gets its own, equally sticky, choice.
    assert len(topo.pods_reached("10.96.0.10", 80, count=10, netns=topo.pods["b"])) == 1


#: A small sessionAffinityConfig.clientIP.timeoutSeconds (Kubernetes allows 1..86400), so the
#: test can watch it run out on the kernel's own clock.
AFFINITY_TIMEOUT = 2
#: The kernel keeps expiries in jiffies and nft lists them in whole milliseconds.
CLOCK_SLACK = 0.05
#: More clients (secondary addresses of the client's eth0, below VIP_RANGE): each picks its pod
#: independently, which makes "every pick is fresh after the timeout" checkable in one round.
EXTRA_CLIENTS = tuple(f"172.20.0.{host}" for host in range(32, 56))


def nft_seconds(duration: str) -> float:
    """nft's listing of a duration (``2s``, ``1s996ms``, ``996ms``, ``1h2m``) in seconds."""
    parts = re.findall(r"(\d+)(ms|d|h|m|s)", duration)
    assert "".join(number + unit for number, unit in parts) == duration, duration
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(int(number) * scale[unit] for number, unit in parts)


@dataclass(frozen=True)
class AffinitySet:
    """One endpoint's affinity set as the kernel lists it."""

    timeout: float
    #: Client address -> seconds until its element lapses (unless traffic refreshes it).
    expires: dict[str, float]


def affinity_sets(topo: Topology, set_names: dict[str, str]) -> dict[str, AffinitySet]:
    """Pod -> its affinity set, read back from the node's table (``nft list set``)."""
    result: dict[str, AffinitySet] = {}
    for pod, name in set_names.items():
        listing = sh("ip", "netns", "exec", topo.node, "nft", "list", "set", "ip", "svcnet",
                     name).stdout
        timeout = re.search(r"^\s*timeout (\S+)$", listing, re.MULTILINE)
        assert timeout, listing
        expires: dict[str, float] = {}
        if elements := re.search(r"elements = \{(.*?)\}", listing, re.DOTALL):
            for entry in elements.group(1).split(","):
                address, *words = entry.split()
                fields = dict(zip(words[::2], words[1::2], strict=True))
                # An element on the set's own timeout lists only `expires` (recent kernels).
                assert fields.get("timeout", timeout.group(1)) == timeout.group(1), listing
                expires[address] = nft_seconds(fields["expires"])
        result[pod] = AffinitySet(nft_seconds(timeout.group(1)), expires)
    return result


def assert_affinity_recorded(held: dict[str, AffinitySet], picks: dict[str, str], *,
                             since: float, listed: float) -> None:
    """Each client of ``picks`` (address -> pod reached) is in its pod's set and no other,
    with an element (re)started by a connection made no earlier than ``since``: with the
    listing done by ``listed``, at most ``listed - since`` of its timeout has run."""
    for client, pod in picks.items():
        holders = sorted(p for p, aff in held.items() if client in aff.expires)
        assert holders == [pod], (client, pod, held)
        expires = held[pod].expires[client]
        floor = AFFINITY_TIMEOUT - (listed - since) - CLOCK_SLACK
        assert floor <= expires <= AFFINITY_TIMEOUT, (client, expires, floor)


def test_client_ip_affinity_timeout_is_idle_time_on_the_kernel_clock(topo: Topology) -> None:
    """timeoutSeconds is honoured with real time: a client sticks while it keeps talking (each
    connection refreshes its element: the timeout is idle time, as in Kubernetes), and once it
    has been idle for the timeout the kernel forgets it and its next pick is a fresh one."""
    timeout = AFFINITY_TIMEOUT
    topo.proxier().sync([service("web", "10.96.0.10", sessionAffinity="ClientIP",
                                 sessionAffinityConfig={"clientIP": {"timeoutSeconds": timeout}})],
                        [slice_for("web", ["a", "b"])], NODE)
    spn = ServicePortName("default", "web", "p", "TCP")
    set_names = {pod: names.affinity_set(spn, EndpointInfo(ip, HTTP_PORT))
                 for pod, ip in POD_IPS.items()}

    def connect(clients: Sequence[str]) -> tuple[dict[str, str], float]:
        """One connection from each client: the pod each reached, and a time before all."""
        start = time.monotonic()
        results = topo.send("10.96.0.10", 80, count=len(clients), sources=clients)
        assert all("ok" in r for r in results), results
        return {c: r["ok"]["pod"] for c, r in zip(clients, results, strict=True)}, start

    for address in EXTRA_CLIENTS:
        sh("ip", "-n", topo.client, "addr", "add", f"{address}/24", "dev", "eth0")
    try:
        # 1. Within the timeout the client sticks to one pod, and the kernel records it: its
        # address in that endpoint's set only, due to lapse after the configured timeout.
        start = time.monotonic()
        reached = topo.pods_reached("10.96.0.10", 80, count=10, sources=[CLIENT_IP])
        assert len(reached) == 1, reached
        [chosen] = reached
        held = affinity_sets(topo, set_names)
        assert {aff.timeout for aff in held.values()} == {timeout}, held
        assert_affinity_recorded(held, {CLIENT_IP: chosen}, since=start,
                                 listed=time.monotonic())

        # 2. A client that keeps talking (every 0.5 s) stays for 3x the timeout: each
        # connection restarts its element's timeout — checked against the clock, which an
        # element counting from its creation would fail by the second round.
        refresh_until = start + 3 * timeout
        previous = start
        while (start := time.monotonic()) < refresh_until:
            reached = topo.pods_reached("10.96.0.10", 80, sources=[CLIENT_IP])
            # The premise: never idle for the timeout (the previous connection came after
            # `previous`); only a starved machine breaks it.
            assert time.monotonic() - previous < timeout - 0.5, "client too slow to keep up"
            assert reached == Counter({chosen: 1}), (reached, chosen)
            assert_affinity_recorded(affinity_sets(topo, set_names), {CLIENT_IP: chosen},
                                     since=start, listed=time.monotonic())
            previous = start
            time.sleep(max(0.0, start + 0.5 - time.monotonic()))

        # 3. The last round, joined by the other clients, each recorded where it went...
        everyone = [CLIENT_IP, *EXTRA_CLIENTS]
        before, idle_from = connect(everyone)
        assert before[CLIENT_IP] == chosen, before
        assert_affinity_recorded(affinity_sets(topo, set_names), before, since=idle_from,
                                 listed=time.monotonic())
        idle_sent = time.monotonic()
        # ... then silence: every element lapses, not before the timeout has run since the
        # last connection and not much after (polled; a listing hides lapsed elements).
        while True:
            held = affinity_sets(topo, set_names)
            listed = time.monotonic()
            remembered = {c for aff in held.values() for c in aff.expires} & set(everyone)
            if not remembered:
                break
            assert listed < idle_sent + timeout + 1.5, f"not forgotten: {held}"
            time.sleep(0.1)
        assert listed >= idle_from + timeout - CLOCK_SLACK, listed - idle_from

        # 4. The next picks are fresh: recorded anew with a full timeout, and independent of
        # the old ones — if the kernel still steered by them, no client would move; with
        # fresh uniform picks the chance that none of 25 moves is 2**-25 (3e-8).
        after, start = connect(everyone)
        assert_affinity_recorded(affinity_sets(topo, set_names), after, since=start,
                                 listed=time.monotonic())
        moved = [c for c in everyone if after[c] != before[c]]
        assert moved, (before, after)
    finally:
        for address in EXTRA_CLIENTS:
            sh("ip", "-n", topo.client, "addr", "del", f"{address}/24", "dev", "eth0",
               check=False)


def test_load_balancer_source_ranges(topo: Topology) -> None:
    lb_ip = "172.20.0.200"

    def lb(ranges: list[str]) -> dict[str, Any]:
        return service("lb", "10.96.0.20", type="LoadBalancer", nodePort=30081,
                       loadBalancerSourceRanges=ranges,
                       status={"loadBalancer": {"ingress": [{"ip": lb_ip}]}})

    proxier = topo.proxier()
    proxier.sync([lb(["192.168.0.0/16"])], [slice_for("lb", ["a", "b"])], NODE)
    for target, port in ((lb_ip, 80), (NODE_IP, 30081)):
        [blocked] = topo.send(target, port, timeout=1.0)
        assert blocked.get("error") == "TimeoutError", (target, blocked)
    assert sum(topo.pods_reached("10.96.0.20", 80, count=5).values()) == 5  # ClusterIP: open
    proxier.sync([lb(["172.20.0.0/24"])], [slice_for("lb", ["a", "b"])], NODE)
    assert sum(topo.pods_reached(lb_ip, 80, count=5).values()) == 5
    assert sum(topo.pods_reached(NODE_IP, 30081, count=5).values()) == 5


def test_host_originated_traffic_to_a_clusterip(topo: Topology) -> None:
    topo.proxier().sync([service("web", "10.96.0.10")], [slice_for("web", ["a", "b"])], NODE)
    reached = topo.pods_reached("10.96.0.10", 80, count=20, netns=topo.node)
    assert set(reached) <= {"a", "b"} and sum(reached.values()) == 20


# -- adoption (agent restart, full resync) ----------------------------------------------------

def every_kind_of_service() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Services whose table holds every kind of element (NodePorts, LB IPs with ranges incl.
    a /32, ETP Local, affinity, ITP Local, no endpoints, UDP, SCTP)."""
    services = [
        service("web", "10.96.0.10", type="NodePort", nodePort=30080),
        service("dns", "10.96.0.53", port=53, target=UDP_PORT, protocol="UDP"),
        service("lb", "10.96.0.20", type="LoadBalancer", nodePort=30081,
                externalTrafficPolicy="Local",
                loadBalancerSourceRanges=["192.168.0.0/16", "172.20.0.2/32"],
                sessionAffinity="ClientIP", externalIPs=["172.20.0.150"],
                status={"loadBalancer": {"ingress": [{"ip": "172.20.0.200"}]}}),
        service("sticky", "10.96.0.11", sessionAffinity="ClientIP",
                sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}}),
        service("local", "10.96.0.21", internalTrafficPolicy="Local"),
        service("empty", "10.96.0.30"),
        service("sctp", "10.96.0.40", port=3868, protocol="SCTP", type="NodePort",
                nodePort=30040),
    ]
    slices = [slice_for("web", ["a", "b"]),
              slice_for("dns", ["a"], port=UDP_PORT, protocol="UDP"),
              slice_for("lb", ["a", "b"]), slice_for("sticky", ["a", "b"]),
              slice_for("local", ["b"], node="node-2"),
              slice_for("sctp", ["a"], port=3868, protocol="SCTP")]
    return services, slices


def test_a_restarted_proxier_adopts_the_kernels_table(topo: Topology) -> None:
    """The JSON listing of the real kernel reads back exactly what was written: adopting an
    unchanged table only refills the sticky chains (whose rules cannot be read back)."""
    services, slices = every_kind_of_service()
    first = topo.proxier()
    first.sync(services, slices, NODE)
    restarted = topo.proxier()
    result = restarted.sync(services, slices, NODE)
    assert result.adopted and not result.full
    sticky = sum(1 for line in topo.nft.list_table("ip", "svcnet").splitlines()
                 if line.strip().startswith("chain sticky-"))
    assert sticky == 3  # lb (cluster and local) and sticky
    assert set(result.counts) == {"flush chain", "add rule"}, result.counts
    assert result.counts["flush chain"] == sticky
    # A change while the agent was down is found and applied as elements.
    slices[0] = slice_for("web", ["b"])
    third = topo.proxier()
    result = third.sync(services, slices, NODE)
    assert result.adopted and result.counts["delete element"] > 0
    assert third.last_transaction is not None
    assert "table" not in third.last_transaction.render()  # never deleted or recreated
    assert set(topo.pods_reached("10.96.0.10", 80, count=10)) == {"b"}


def test_restart_keeps_clients_sticky(topo: Topology) -> None:
    """Affinity lives in the table's sets; a restarted agent keeps them (a recreated table
    would forget every client)."""
    topo.require_bridge_nf()
    services = [service("web", "10.96.0.10", sessionAffinity="ClientIP",
                        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}})]
    slices = [slice_for("web", ["a", "b"])]
    topo.proxier().sync(services, slices, NODE)
    before = topo.pods_reached("10.96.0.10", 80, count=5)
    assert len(before) == 1
    def remembered() -> bool:
        listing = topo.nft.list_table("ip", "svcnet")
        return any(CLIENT_IP in block for block in listing.split("set affinity-")[1:])

    assert remembered()
    result = topo.proxier().sync(services, slices, NODE)  # the agent restarted
    assert result.adopted and "delete" not in " ".join(result.counts)
    assert remembered()
    after = topo.pods_reached("10.96.0.10", 80, count=10)
    assert set(after) == set(before), (before, after)


def test_a_restarted_ipv6_proxier_adopts_the_kernels_ip6_table(topo: Topology) -> None:
    """The ip6 table reads back as written too (IPv6 elements, prefixes and /128 sources in
    the kernel's JSON listing), beside the ip table, which it leaves alone."""
    from tests.unit.proxy.test_ruleset_golden import SCENARIOS

    dual = SCENARIOS["dual-stack-tables"]()
    six = SCENARIOS["ipv6-only"]()
    assert dual.second is not None
    four = topo.proxier(cluster_cidrs=dual.config.cluster_cidrs)
    four.sync(dual.services, dual.slices, dual.node)
    first = topo.proxier(family="IPv6", cluster_cidrs=six.config.cluster_cidrs)
    first.sync(six.services, six.slices, six.node)
    assert "fd00:10:244:1::5" in topo.nft.list_table("ip6", "svcnet")
    restarted = topo.proxier(family="IPv6", cluster_cidrs=six.config.cluster_cidrs)
    result = restarted.sync(six.services, six.slices, six.node)
    assert result.adopted and not result.full
    # Only the sticky chain's rules, which cannot be read back, are rewritten.
    assert set(result.counts) == {"flush chain", "add rule"}, result.counts
    assert "10.96.0.20" in topo.nft.list_table("ip", "svcnet")
    restarted.cleanup()
    with pytest.raises(NftError):
        topo.nft.list_table("ip6", "svcnet")
