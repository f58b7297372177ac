"""Issue 13's demonstration: three machines, each an etcd member, a `svcnet server` and a
`svcnet join` agent; the machine that leads the controllers dies whole.

Machines are network namespaces on one LAN (machines.py), with a plain host on the same LAN
(``lan_host``: no svcnet part) as an outside client. Each machine runs an etcd member on its
LAN address (over TLS, client certificates required, as docs/HA.md sets etcd up), a server
on the three-member store listening on its LAN address (a LoadBalancer pool on the LAN:
``--lb-pool``), and an agent that lists all three servers and announces LoadBalancer IPs
(``--announce-lb-ips``). Then:

* kubectl works through each server with the first server's admin kubeconfig (one CA);
* Services of every type answer from every machine and from the LAN: ``web`` (a Deployment
  kept off the leading machine, which the test is about to kill, behind a LoadBalancer
  Service) through its ClusterIP from a pod on each machine, its NodePort on each machine
  from the next machine and from the LAN host, its LoadBalancer IP (the pool's first address,
  chosen so that the leading machine announces it) from the LAN host; ``spread`` (a
  DaemonSet: a backend on every machine, the dying one too) through its ClusterIP;
* every process in the leading machine's namespace and in its pods' namespaces is SIGKILLed
  (its server, agent, etcd member, pods), and at once the machine vanishes from the LAN
  (``silence``: its kernel no longer answers anything, ARP included, as with a pulled cable,
  so its peers' connections time out rather than fail). Another server takes the lease within TAKEOVER_SECONDS; a
  Deployment scaled during the failover converges; a client pod on a surviving machine,
  requesting web's ClusterIP every 50 ms all along, never waits longer than MAX_GAP_SECONDS
  between answers; the dead machine's node turns NotReady while the others' agents (all
  connected to the first server, which leads first) renew their node Leases through another
  server and their nodes stay Ready; another machine announces the LoadBalancer IP, the LAN
  host's neighbour entry follows its gratuitous ARP and the LAN host, requesting it every
  50 ms, is answered again within LB_FAILOVER_SECONDS of the kill; the dead machine's spread
  endpoint leaves service within NOT_READY_SECONDS, and a client pod requesting spread's
  ClusterIP every 50 ms (1 s timeout) has no failure after that. The figures are printed
  (docs/HA.md quotes them).

Needs root and Debian's etcd; everything is removed whatever happens.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import ssl
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from svcnet.apiserver.certs import EtcdMember, ensure_etcd_pki
from svcnet.node.announcer import announcing_node
from svcnet.node.names import ClusterNames
from tests.conftest import require_binary
from tests.e2e.traffic import SERVER
from tests.etcd_server import member_argv
from tests.multimachine.machines import (
    Machine,
    Machines,
    ip,
    join_args,
    lan_host,
    machines,
    run_in_netns,
    silence,
    wait_for,
)
from tests.multimachine.test_join import FETCH, Cluster

pytestmark = pytest.mark.root

TAKEOVER_SECONDS = 20.0
MAX_GAP_SECONDS = 5.0
NODE_GRACE_SECONDS = 20.0
"""The servers' --node-monitor-grace-period."""
NOT_READY_SECONDS = NODE_GRACE_SECONDS + 10
"""From the kill until the dead node's endpoints are out of service: the grace period
counts from its last heartbeat (the agent renews every 10 s, so up to 10 s before the kill),
then a node lifecycle pass (every 5 s), with room for the controllers' failover."""
LB_FAILOVER_SECONDS = NOT_READY_SECONDS + 5
"""From the kill until the LAN client is answered through the LoadBalancer IP again: the
dead node's NotReady, then the next node's announcement."""
PROPAGATION_SECONDS = 2.0
"""From an EndpointSlice change seen by the test until every agent has applied it."""

# Request http://ARGV1/ every 50 ms; one line per request to ARGV2: "wall-clock-time 0|1".
CLIENT_LOOP = ("import sys, time, urllib.request\n"
               "with open(sys.argv[2], 'a', buffering=1) as out:\n"
               "    while True:\n"
               "        t = time.time()\n"
               "        try:\n"
               "            ok = urllib.request.urlopen(sys.argv[1], timeout=1).status == 200\n"
               "        except OSError:\n"
               "            ok = False\n"
               "        out.write(f'{t:.3f} {int(ok)}\\n')\n"
               "        time.sleep(0.05)\n")


def _web(replicas: int, avoid: str) -> dict[str, Any]:
    container = {"name": "web", "image": "python", "command": ["python3", "-c", SERVER, "web"],
                 "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}
    avoid_node = {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": [avoid]}]}]}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                         "runtimeClassName": "process", "terminationGracePeriodSeconds": 1,
                         "affinity": {"nodeAffinity": {
                             "requiredDuringSchedulingIgnoredDuringExecution": avoid_node}},
                         "containers": [container]}}}}


def _service(name: str, kind: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": kind, "selector": {"app": name},
                     "ports": [{"port": 80, "targetPort": 8080}]}}


def _spread() -> dict[str, Any]:
    """A backend on every machine (the dying one too): a DaemonSet answering "spread"."""
    container = {"name": "web", "image": "python",
                 "command": ["python3", "-c", SERVER, "spread"],
                 "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "spread"},
            "spec": {"selector": {"matchLabels": {"app": "spread"}},
                     "template": {"metadata": {"labels": {"app": "spread"}}, "spec": {
                         "runtimeClassName": "process", "terminationGracePeriodSeconds": 1,
                         "containers": [container]}}}}


def _ready_nodes(names: list[str]) -> list[dict[str, Any]]:
    return [{"metadata": {"name": n}, "status": {"conditions": [
        {"type": "Ready", "status": "True"}]}} for n in names]


def _lb_pool(m: Machines, announcer: Machine) -> tuple[str, str]:
    """A LoadBalancer pool on the LAN (from its .200) whose first address, the one the
    Service gets, is announced by ``announcer`` while all three nodes are Ready (the
    announcers' own rule): the machine the test kills. (pool, first address)"""
    lan = m.machines[0].lan
    nodes = _ready_nodes([f"m{x.index}" for x in m.machines])
    svc = _service("web", "LoadBalancer") | {"metadata": {"name": "web", "namespace": "default"}}
    for offset in range(200, 240):
        first = str(lan.network_address + offset)
        if announcing_node(svc, first, [], nodes) == f"m{announcer.index}":
            return f"{first}-{lan.network_address + offset + 7}", first
    raise AssertionError("no address of the LAN's .200-.239 is announced by the first machine")


def _client(name: str, node: str, url: str, out: Path) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "runtimeClassName": "process",
                     "terminationGracePeriodSeconds": 1, "containers": [{
                         "name": "main", "image": "python",
                         "command": ["python3", "-c", CLIENT_LOOP, url, str(out)]}]}}


def _start_etcd(m: Machines, data: Path) -> tuple[str, list[str]]:
    """Three members over TLS, as docs/HA.md sets them up: certificates from `svcnet
    etcd-certs`, each member's naming its own LAN address only (so a store that checked
    another member's name would be refused), client certificates required. The store's
    endpoints and the servers' TLS flags."""
    pki = data / "pki"
    ensure_etcd_pki(pki, [EtcdMember(f"svcnet-m{x.index}", (str(x.address),))
                          for x in m.machines])
    peers = ",".join(f"svcnet-m{x.index}=https://{x.address}:2380" for x in m.machines)
    token = f"svcnet-{m.tag}"
    for x in m.machines:
        m.start(x, f"etcd-m{x.index}", member_argv(
            f"svcnet-m{x.index}", data / f"m{x.index}", f"https://{x.address}:2379",
            f"https://{x.address}:2380", peers, token, pki=pki))
    client = [str(pki / "apiserver-etcd-client.crt"), str(pki / "apiserver-etcd-client.key")]
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(*client)

    def healthy() -> bool:
        for x in m.machines:  # the host reaches the LAN through the bridge's address
            with urllib.request.urlopen(f"https://{x.address}:2379/health", timeout=1,
                                        context=context) as r:
                if json.load(r).get("health") != "true":
                    return False
        return True

    wait_for("three healthy etcd members", healthy, 20, m)
    flags = ["--etcd-cafile", str(pki / "ca.crt"), "--etcd-certfile", client[0],
             "--etcd-keyfile", client[1]]
    return ",".join(f"{x.address}:2379" for x in m.machines), flags


def _start_servers(m: Machines, etcd: tuple[str, list[str]], lb_pool: str) -> list[Path]:
    endpoints, tls = etcd
    store = f"etcd://{endpoints}/svcnet-ha/?timeout=3"
    dirs = [m.workdir / f"server-m{x.index}" for x in m.machines]
    for x, d in zip(m.machines, dirs, strict=True):
        m.spawn(x, f"server-m{x.index}", "server", "--data-dir", str(d), "--store", store,
                *tls,
                "--listen", f"{x.address}:6443", "--advertise-address", x.address,
                "--cluster-cidr", str(m.pod_network), "--lb-pool", lb_pool,
                "--node-monitor-grace-period", str(NODE_GRACE_SECONDS))
        if x.index == 1:
            # The first leads (the leader is still found from the Lease below): every agent
            # is connected to it (the first of their servers) and must fail over.
            first = Cluster(m, d)
            wait_for("the first server leading",
                     lambda first=first, x=x: _leader(first, x, dirs, m) is x, 30, m)
    wait_for("three servers' kubeconfigs and the join token",
             lambda: all((d / "kubeconfig").exists() for d in dirs)
             and (dirs[0] / "join-token").exists(), 40, m)
    return dirs


def _ready(obj: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def _leader(cluster: Cluster, server: Machine, dirs: list[Path], m: Machines) -> Machine:
    lease = cluster.get("--server", f"https://{server.address}:6443", "lease", "-n",
                        "kube-system", "kube-controller-manager")
    holder = str(lease["spec"].get("holderIdentity", ""))
    for x, d in zip(m.machines, dirs, strict=True):
        if holder.endswith("_" + (d / "server-id").read_text().strip()):
            return x
    raise AssertionError(f"no server holds the lease: {holder!r}")


def _kill_machine(m: Machines, cluster: Cluster, machine: Machine) -> None:
    """SIGKILL every process in the machine's namespace (its etcd member, server, agent) and
    in its pods' namespaces, until none is left. Its kernel still answers (connections to it
    are refused) and keeps what the agent set up (the Service rules, the LoadBalancer
    address, the pods' namespaces) until the machine vanishes from the LAN."""
    names = ClusterNames.for_cluster(m.cluster)
    pods = [p for p in cluster.get("pods", "-A")["items"]
            if p["spec"].get("nodeName") == f"m{machine.index}"]
    spaces = [machine.netns, *(names.pod_netns(p["metadata"]["uid"]) for p in pods)]

    def kill() -> bool:
        alive = [pid for ns in spaces for pid in ip("netns", "pids", ns, check=False).split()]
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        return not alive

    while not kill():
        time.sleep(0.01)


def _pod_fetch(cluster: Cluster, pod: dict[str, Any], url: str) -> str:
    """GET ``url`` from ``pod``'s network namespace (as the pod would)."""
    netns = ClusterNames.for_cluster(cluster.m.cluster).pod_netns(pod["metadata"]["uid"])
    r = run_in_netns(netns, sys.executable, "-c", FETCH, url)
    return r.stdout.strip() or r.stderr.strip()


def _fetch(machine: Machine, url: str) -> str:
    r = machine.run(sys.executable, "-c", FETCH, url)
    return r.stdout.strip() or r.stderr.strip()


def _rows(log: Path, since: float) -> list[tuple[float, bool]]:
    """The client's requests started after ``since``: (start, answered)."""
    rows = [(float(t), ok == "1") for t, ok in
            (line.split() for line in log.read_text().splitlines() if line.count(" ") == 1)]
    return [r for r in rows if r[0] >= since]


def _gaps(log: Path, since: float) -> tuple[int, int, float]:
    """(requests, failed, longest time between two answered requests) after ``since``."""
    rows = _rows(log, since)
    answered = [t for t, ok in rows if ok]
    longest = max((b - a for a, b in itertools.pairwise(answered)), default=0.0)
    return len(rows), sum(1 for _, ok in rows if not ok), longest


def _outage(log: Path, since: float) -> tuple[int, float | None, float | None, int]:
    """After ``since``: (failed requests, start of the first and of the last failed one,
    requests answered after the last failure)."""
    rows = _rows(log, since)
    failed = [t for t, ok in rows if not ok]
    last = failed[-1] if failed else None
    after = sum(1 for t, ok in rows if ok and (last is None or t > last))
    return len(failed), failed[0] if failed else None, last, after


def _steady(log: Path, since: float, count: int = 20) -> bool:
    """The client has been answered ``count`` times in a row since its last failure."""
    return log.exists() and _outage(log, since)[3] >= count


def test_losing_the_leading_machine(tmp_path: Path) -> None:
    require_binary("nsenter")
    require_binary("etcd")
    t0 = time.monotonic()
    shm = Path("/dev/shm")
    etcd_data = Path(tempfile.mkdtemp(prefix="svcnet-m3-etcd-",
                                      dir=shm if shm.is_dir() else None))
    try:
        with machines(tmp_path, 3) as m:
            _run(m, tmp_path, _start_etcd(m, etcd_data))
    finally:
        shutil.rmtree(etcd_data, ignore_errors=True)
    left = ip("netns", "list")
    names = ClusterNames.for_cluster(m.cluster)
    assert not [n for n in left.split() if n.startswith(f"svcnet-{m.tag}-") or
                names.owns_netns(n)], left
    assert time.monotonic() - t0 < 120


@dataclass
class Setup:
    m: Machines
    cluster: Cluster
    dirs: list[Path]
    leader: Machine
    survivors: list[Machine]
    lan: Machine
    lb_ip: str
    node_port: int
    web_log: Path
    spread_log: Path
    lan_log: Path


def _run(m: Machines, tmp_path: Path, etcd: tuple[str, list[str]]) -> None:
    first = m.machines[0]
    lb_pool, lb_ip = _lb_pool(m, first)  # the first server leads: its machine announces
    dirs = _start_servers(m, etcd, lb_pool)
    token = dirs[0] / "join-token"
    for x in m.machines:
        m.spawn(x, f"agent-m{x.index}", *join_args(m.machines, token, x, "routes",
                                                   m.workdir / f"node-m{x.index}", m),
                "--announce-lb-ips")
    cluster = Cluster(m, dirs[0])

    # 1. One admin kubeconfig, every server (each serving certificate names its own IP).
    for x in m.machines:
        out = cluster.kubectl("--server", f"https://{x.address}:6443", "get", "ns",
                              "kube-system", "-o", "name")
        assert out.strip() == "namespace/kube-system"

    def nodes_ready() -> bool:
        nodes = cluster.get("nodes")["items"]
        return len(nodes) == 3 and all(_ready(n) and n["spec"].get("podCIDR") for n in nodes)

    wait_for("three machines Ready as nodes", nodes_ready, 40, m)
    leader = _leader(cluster, first, dirs, m)
    assert leader is first, f"m{leader.index} leads, not m1"
    setup = Setup(m, cluster, dirs, leader, [x for x in m.machines if x is not leader],
                  lan_host(m), lb_ip, 0, tmp_path / "client-requests",
                  tmp_path / "spread-requests", tmp_path / "lan-requests")
    _before(setup)
    _after(setup)


def _before(s: Setup) -> None:
    """Services of every type answer from every machine and from the LAN."""
    m, cluster, leader = s.m, s.cluster, s.leader
    # web: backends off the leading machine, a LoadBalancer Service (so a NodePort and a
    # ClusterIP too); spread: a backend on every machine, a ClusterIP Service.
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [
            _web(2, f"m{leader.index}"), _service("web", "LoadBalancer"), _spread(),
            _service("spread", "ClusterIP")]}))
    svc = cluster.get("service", "web")
    cluster_ip, s.node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    spread_ip = cluster.get("service", "spread")["spec"]["clusterIP"]
    client_node = f"m{s.survivors[0].index}"
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [
            _client("client", client_node, f"http://{cluster_ip}/", s.web_log),
            _client("client-spread", client_node, f"http://{spread_ip}/", s.spread_log)]}))

    def spread_ready() -> bool:
        return sorted(_ready_endpoint_nodes(cluster, "spread")) == ["m1", "m2", "m3"]

    wait_for("a ready spread backend on every machine", spread_ready, 40, m)
    since = time.time()
    for log in (s.web_log, s.spread_log):
        wait_for(f"{log.name}: the client answered through the ClusterIP",
                 lambda log=log: _steady(log, since), 40, m)

    # ClusterIP from a pod on each machine (the spread backends).
    pods = cluster.get("pods", "-l", "app=spread")["items"]
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["m1", "m2", "m3"]
    for pod in pods:
        assert _pod_fetch(cluster, pod, f"http://{cluster_ip}/") == "web", pod["spec"]
    # Each machine's NodePort, from the next machine and from the LAN.
    for i, x in enumerate(m.machines):
        for other in (m.machines[(i + 1) % 3], s.lan):
            wait_for(f"m{x.index}'s NodePort from {other.netns}",
                     lambda x=x, other=other: _fetch(other, f"http://{x.address}:"
                                                     f"{s.node_port}/") == "web", 20, m)
    # The LoadBalancer IP: the pool's first address, announced by the leading machine.
    svc = cluster.get("service", "web")
    ingress = [i.get("ip") for i in svc["status"].get("loadBalancer", {}).get("ingress", [])]
    assert ingress == [s.lb_ip], ingress
    wait_for(f"m{leader.index} alone announcing {s.lb_ip}",
             lambda: _announcers(m.machines, s.lb_ip) == [leader], 20, m)
    assert announcing_node(svc, s.lb_ip, cluster.get("endpointslices")["items"],
                           cluster.get("nodes")["items"]) == f"m{leader.index}"
    assert _fetch(s.lan, f"http://{s.lb_ip}/") == "web"
    m.start(s.lan, "lan-client", [sys.executable, "-c", CLIENT_LOOP, f"http://{s.lb_ip}/",
                                  str(s.lan_log)])
    since = time.time()
    wait_for("the LAN client answered through the LoadBalancer IP",
             lambda: _steady(s.lan_log, since), 20, m)


def _ready_endpoint_nodes(cluster: Cluster, service: str, *args: str) -> list[str]:
    """The nodes of the Service's ready endpoints."""
    slices = cluster.get(*args, "endpointslices", "-l",
                         f"kubernetes.io/service-name={service}")["items"]
    return [str(e.get("nodeName")) for sl in slices for e in sl.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready") is not False]


def _announcers(among: list[Machine], address: str) -> list[Machine]:
    """The machines whose LAN interface holds ``address`` (those answering ARP for it)."""
    return [x for x in among
            if f" {address}/32 " in ip("-n", x.netns, "-o", "addr", "show", "dev", "eth0")]


def _renewed(cluster: Cluster, server: str, since: float) -> dict[str, bool]:
    """Node name -> its Lease was renewed after ``since`` (wall clock)."""
    return {lease["metadata"]["name"]: datetime.fromisoformat(
        lease["spec"]["renewTime"]).timestamp() > since for lease in cluster.get(
            "--server", server, "leases", "-n", "kube-node-lease")["items"]}


def _after(s: Setup) -> None:
    """The leading machine (the LoadBalancer IP's announcer, a spread backend's host) dies:
    its processes are killed and it vanishes from the LAN at once."""
    m, cluster, leader, survivors = s.m, s.cluster, s.leader, s.survivors
    survivor_server = f"https://{survivors[1].address}:6443"
    _kill_machine(m, cluster, leader)
    silence(leader)
    killed = time.time()

    def scaled() -> bool:  # the Deployment is scaled during the failover
        cluster.kubectl("--server", survivor_server, "scale", "deployment/web", "--replicas", "3")
        return True

    wait_for("scaling during the failover", scaled, 15, m)
    wait_for("another server holding the lease",
             lambda: _leader(cluster, survivors[1], s.dirs, m) in survivors, TAKEOVER_SECONDS + 5, m)
    lease = cluster.get("--server", survivor_server, "lease", "-n", "kube-system",
                        "kube-controller-manager")
    takeover = datetime.fromisoformat(lease["spec"]["acquireTime"]).timestamp() - killed
    dead = f"m{leader.index}"
    wait_for(f"{dead}'s spread endpoint out of service",
             lambda: dead not in _ready_endpoint_nodes(cluster, "spread", "--server",
                                                       survivor_server),
             NOT_READY_SECONDS + 5, m)
    endpoints_out = time.time() - killed

    def converged() -> bool:
        d = cluster.get("--server", survivor_server, "deployment", "web")
        return int(d["status"].get("readyReplicas") or 0) == 3

    wait_for("3 ready replicas after the failover", converged, 30, m)

    def nodes_after() -> bool:  # the survivors' agents heartbeat through a live server
        ready = {n["metadata"]["name"]: _ready(n) for n in
                 cluster.get("--server", survivor_server, "nodes")["items"]}
        want = {f"m{x.index}": x is not leader for x in m.machines}
        return ready == want and _renewed(cluster, survivor_server, killed + 1) == want

    wait_for("the dead machine NotReady, the others Ready", nodes_after, 40, m)
    # The LoadBalancer IP moves to the survivor the announcers' rule names, and the LAN
    # client's neighbour entry follows its gratuitous ARP.
    nodes = cluster.get("--server", survivor_server, "nodes")["items"]
    svc = cluster.get("--server", survivor_server, "service", "web")
    successor = announcing_node(svc, s.lb_ip, [], nodes)
    wait_for(f"{successor} announcing {s.lb_ip}",  # (the silent machine still holds it)
             lambda: [f"m{x.index}" for x in _announcers(survivors, s.lb_ip)] == [successor],
             20, m)
    mac = next(_mac(x) for x in survivors if f"m{x.index}" == successor)
    wait_for(f"the LAN client's neighbour entry for {s.lb_ip} at {successor}'s {mac}",
             lambda: f" lladdr {mac} " in ip("-n", s.lan.netns, "neigh", "show", s.lb_ip), 10, m)
    for i, x in enumerate(survivors):  # the survivors' NodePorts still answer
        for other in (survivors[1 - i], s.lan):
            wait_for(f"m{x.index}'s NodePort from {other.netns} after the failover",
                     lambda x=x, other=other: _fetch(other, f"http://{x.address}:"
                                                     f"{s.node_port}/") == "web", 10, m)
    for log in (s.lan_log, s.spread_log):
        wait_for(f"{log.name}: answered steadily after the failover",
                 lambda log=log: _steady(log, killed), 20, m)
    _report(s, killed, Figures(takeover, endpoints_out, successor))


def _mac(x: Machine) -> str:
    return ip("-n", x.netns, "-o", "link", "show", "dev", "eth0").split("link/ether ")[1].split()[0]


@dataclass
class Figures:
    takeover: float
    endpoints_out: float
    successor: str | None


def _report(s: Setup, killed: float, f: Figures) -> None:
    total, failed, gap = _gaps(s.web_log, killed - 1)
    lan_failed, lan_first, lan_last, _ = _outage(s.lan_log, killed)
    lan_back = min(t for t, ok in _rows(s.lan_log, lan_last or killed) if ok) - killed
    spread_total = len(_rows(s.spread_log, killed))
    spread_failed, first_fail, last_fail, _ = _outage(s.spread_log, killed)
    window = ("none" if first_fail is None or last_fail is None else
              f"{first_fail - killed:.1f}-{last_fail - killed:.1f} s")
    print(f"\nm{s.leader.index} led and died, vanishing from the LAN: "
          f"takeover {f.takeover:.1f} s; {failed} of {total} client requests failed during "
          f"the failover; longest gap between answers {gap:.2f} s\n"
          f"LoadBalancer {s.lb_ip}: {f.successor} announces it; the LAN client answered again "
          f"{lan_back:.1f} s after the kill ({lan_failed} requests failed, the first "
          f"{(lan_first or killed) - killed:.1f} s after the kill)\n"
          f"spread (a backend on every machine): the dead node's endpoint out of service "
          f"{f.endpoints_out:.1f} s after the kill; {spread_failed} of {spread_total} requests "
          f"failed, started {window} after the kill")
    assert f.takeover < TAKEOVER_SECONDS, f"takeover took {f.takeover:.1f} s"
    assert total > 50, total  # the client kept running all along
    assert gap < MAX_GAP_SECONDS, f"the Service did not answer for {gap:.1f} s\n{s.m.logs()}"
    assert f.successor in {f"m{x.index}" for x in s.survivors}, f.successor
    assert lan_back < LB_FAILOVER_SECONDS, f"the LoadBalancer IP came back after {lan_back:.1f} s"
    assert f.endpoints_out < NOT_READY_SECONDS, f"endpoints out after {f.endpoints_out:.1f} s"
    # Once the dead node's endpoint is out of service, no request fails.
    assert last_fail is None or last_fail < killed + f.endpoints_out + PROPAGATION_SECONDS, (
        f"a request failed {last_fail - killed:.1f} s after the kill")
