"""`svcnet up`: a whole local cluster in one command (DESIGN §2-§3).

Steps, each shown with its duration:

1. checks: root, ``ip`` and ``nft`` present, no cluster of that name running, no other
   cluster owning the names of its tag; leftovers of a crashed cluster are removed first;
2. network: the node and pod networks chosen (networks.py: ``--node-network`` or the first
   free candidates) and recorded, then (topology.py) the node bridge, one netns per node with
   its uplink and routes, all under a machine-wide lock so that concurrent runs choose apart;
3. control plane: ``svcnet server`` on the bridge address (172.20.0.1:6443 by default; the
   IPv6 one, ``[fd00:172:20::1]:6443``, on an IPv6 single-stack cluster);
4. nodes: one ``svcnet node`` per node with its own token (nodes may only write their own
   Node, their pods' status, their Lease);
5. cluster DNS: the ``kube-system/kube-dns`` Service at 10.96.0.10 (``fd00:10:96::a`` on IPv6
   single stack: networks.py) and a DNS pod behind it,
   forwarding other names to ``--upstream``'s resolvers, or with ``--egress`` the host's
   (egress.py, svcnet/dns/upstreams.py; docs/EGRESS.md);
6. the user's manifests, applied (server-side apply), then waiting until every node, pod and
   Service endpoint is ready;
7. the summary: nodes, Services and how to reach each one.

The server, the node agents and the NodePort forwarder run under the cluster's supervisor
(supervise.py), which restarts any of them that crashes; ``svcnet status`` shows them. Every
process is recorded (state.py) so ``svcnet down`` can remove everything, even after a crash.
Without ``--detach`` the command stays in the foreground and tears the cluster down on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import yaml

from svcnet.api.endpointslices import LABEL_TOPOLOGY_ZONE
from svcnet.api.errors import StatusError
from svcnet.apiserver.certs import issue_node_serving
from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.client.rest import GVR, NODES, PODS, SERVICES, RESTClient
from svcnet.cluster import down as teardown, networks, runtimes
from svcnet.cluster.egress import (
    EgressError,
    EgressPlan,
    node_route_lines,
    plan_egress,
    ruleset as egress_ruleset,
)
from svcnet.cluster.state import Paths, cluster_dir, live_processes, record_pid
from svcnet.cluster.supervise import reload_supervisor, write_unit
from svcnet.cluster.topology import (
    Topology,
    host_batch,
    host_port,
    node_batch,
    plan_topology,
)
from svcnet.dashboard.server import DEFAULT_LISTEN
from svcnet.dns.service import kube_dns_service
from svcnet.dns.upstreams import HOST_RESOLV_CONF, Address, format_upstream, host_upstreams
from svcnet.node.containerd import ContainerdPaths
from svcnet.node.names import ClusterNames
from svcnet.util import resolvconf
from svcnet.util.resolvconf import ResolvConf

Obj = dict[str, Any]
Echo = Callable[[str], None]
DEPLOYMENTS = GVR("apps", "v1", "deployments", "Deployment")
HEALTH_PORT = 10256
"""The node agents' /healthz and /metrics, on each node's address (kube-proxy's port)."""


class UpError(Exception):
    """A one-line reason why the cluster cannot come up."""


@dataclass
class UpOptions:
    name: str = "svcnet"
    nodes: int = 2
    files: Sequence[Path] = ()
    detach: bool = False
    timeout: float = 120.0
    localhost_nodeports: bool = True
    node_grace: float = 40.0
    metric_resolution: float = 15.0
    """Seconds between the server's scrapes of the nodes' resource metrics."""
    hpa_sync_period: float = 15.0
    """Seconds between the autoscaler's looks at each HorizontalPodAutoscaler."""
    manifests: list[Obj] = field(default_factory=list)
    container_runtime: str = "auto"
    """``containerd`` (one per node), ``process`` (commands on the host), or ``auto``:
    containerd when it is installed (:func:`svcnet.cluster.runtimes.containerd_available`)."""
    registry_mirrors: dict[str, str] = field(default_factory=dict)
    """Registry host → mirror URL (``--registry-mirror``), no fall-back to the registry."""
    node_network: IPv4Network | None = None
    """``--node-network`` (checked by :func:`svcnet.cluster.networks.parse_node_network`);
    None: the first free candidate."""
    zones: Sequence[str] = ()
    """``--zones``: node i is labelled ``topology.kubernetes.io/zone=zones[(i-1) % len]``."""
    egress: bool = False
    """``--egress``: pods reach the outside through their node (egress.py)."""
    egress_gateway: str | None = None
    """``--egress-gateway``: the nodes' default gateway; None: the bridge address."""
    upstreams: Sequence[Address] = ()
    """``--upstream``: cluster DNS's resolvers for other names; empty: the host's with
    ``--egress`` (svcnet/dns/upstreams.py), none without."""
    ip_family: str = "ipv4"
    """``--ip-family``: ``ipv4``; ``dual`` (IPv4 and IPv6 node, pod and service networks:
    dual-stack Services, pods with an address of each family); or ``ipv6`` (IPv6 single
    stack: the API sees IPv6 networks only, networks.py)."""


def node_zone(opts: UpOptions, index: int) -> str | None:
    """The zone of node ``index`` (from 1), if ``--zones`` was given."""
    return opts.zones[(index - 1) % len(opts.zones)] if opts.zones else None


class Progress:
    def __init__(self, echo: Echo) -> None:
        self.echo = echo
        self.start = time.monotonic()

    def step(self, text: str) -> _Step:
        return _Step(self, text)


class _Step:
    def __init__(self, progress: Progress, text: str) -> None:
        self.progress, self.text = progress, text

    def __enter__(self) -> _Step:  # the text may be completed inside the block
        self.t0 = time.monotonic()
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.progress.echo(f"  ✓ {self.text} ({time.monotonic() - self.t0:.1f}s)")


def _run(argv: Sequence[str], stdin: str | None = None) -> None:
    r = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise UpError(f"{' '.join(argv[:3])} failed: {r.stderr.strip() or r.stdout.strip()}")


def check_host(opts: UpOptions) -> None:
    if os.geteuid() != 0:
        raise UpError("svcnet up needs root (it creates network namespaces); run it with sudo")
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            raise UpError(f"`{tool}` is not installed (Debian: apt-get install "
                          f"{'iproute2' if tool == 'ip' else 'nftables'})")
    paths = Paths(cluster_dir(opts.name))
    if live_processes(paths):
        raise UpError(f"cluster {opts.name!r} is already up (`svcnet status --name "
                      f"{opts.name}` shows it); run `svcnet down --name {opts.name}` first")
    other = teardown.foreign_owner(opts.name)
    if other is not None:
        tag = ClusterNames.for_cluster(opts.name).tag
        raise UpError(f"the kernel names of cluster {opts.name!r} (svcnet-{tag}-…) belong to "
                      f"the cluster whose state is in {other}; choose another name")


def claim_network(opts: UpOptions, paths: Paths) -> tuple[Topology, EgressPlan | None]:
    """Choose the cluster's networks, record them and build the network, under the machine's
    lock (networks.py): a concurrent ``svcnet up`` sees this cluster's bridge or record."""
    with networks.machine_lock():
        in_use = networks.machine_in_use()
        others = networks.recorded_networks(paths.root.parent, exclude=opts.name)
        try:
            network = networks.plan_network(opts.node_network, in_use, others,
                                            family=opts.ip_family)
            topo = plan_topology(opts.name, opts.nodes, network, teardown.owner(paths))
            egress = plan_egress(network, opts.egress_gateway,
                                 tuple(n.ip for n in topo.nodes)) if opts.egress else None
        except (networks.NetworkError, EgressError) as e:
            raise UpError(str(e)) from None
        paths.network.write_text(network.to_json(opts.name))
        build_network(topo, egress)
    return topo, egress


def build_network(topo: Topology, egress: EgressPlan | None = None) -> None:
    for node in topo.nodes:
        _run(["ip", "netns", "add", node.netns])
    _run(["ip", "-batch", "-"], "\n".join(host_batch(topo)) + "\n")
    for node in topo.nodes:
        lines = node_batch(topo, node) + (node_route_lines(egress) if egress else [])
        _run(["ip", "-n", node.netns, "-batch", "-"], "\n".join(lines) + "\n")
        _run(["ip", "netns", "exec", node.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        if node.ip6:
            _run(["ip", "netns", "exec", node.netns, "sysctl", "-qw",
                  "net.ipv6.conf.all.forwarding=1"])
        if egress is not None:
            _run(["ip", "netns", "exec", node.netns, "nft", "-f", "-"], egress_ruleset(egress))


def node_resolv_conf(upstreams: Sequence[Address], host: ResolvConf) -> str:
    """The nodes' resolv.conf (the kubelet's ``--resolv-conf``, the base of pods' DNS
    settings): the host's search domains and options, and as nameservers the cluster's
    upstreams that a resolv.conf can name (port 53), since the host's own may be loopback
    stubs no node can reach. No upstreams: no nameserver (pods with ``dnsPolicy: Default``
    then fail at once, like everything else that would need a way out)."""
    lines = ["# svcnet up: the nodes' resolv.conf"]
    if host.searches:
        lines.append("search " + " ".join(host.searches))
    lines += [f"nameserver {h}" for h, port in upstreams if port == 53][:3]
    if host.options:
        lines.append("options " + " ".join(host.options))
    return "\n".join(lines) + "\n"


def dns_upstreams(opts: UpOptions, echo: Echo) -> tuple[Address, ...]:
    """Cluster DNS's upstreams: ``--upstream``'s; else, with egress, the host's usable ones
    (svcnet/dns/upstreams.py, its notes shown); else none."""
    if opts.upstreams:
        return tuple(opts.upstreams)
    if not opts.egress:
        return ()
    chosen = host_upstreams()
    for note in chosen.notes:
        echo(f"  ! {note}")
    return chosen.servers


def spawn(paths: Paths, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
    paths.logs.mkdir(parents=True, exist_ok=True)
    with open(paths.logs / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(list(argv), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    record_pid(paths, name, proc.pid)
    return proc


def _svcnet() -> list[str]:
    return [sys.executable, "-m", "svcnet.cli.main"]


def _add_token(server_dir: Path, token: str, user: str, groups: str) -> None:
    line = f'{token},{user},{user},"{groups}"\n'
    fd = os.open(server_dir / "tokens.csv", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(line)


def _kubeconfig_for(admin: Obj, token: str, user: str) -> Obj:
    doc: Obj = json.loads(json.dumps(admin))
    doc["users"] = [{"name": user, "user": {"token": token}}]
    for ctx in doc["contexts"]:
        ctx["context"]["user"] = user
    return doc


def _write_private(path: Path, doc: Obj) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)


def dns_manifests(kubeconfig: Path, resolv_conf: Path, upstreams: Sequence[Address] = (),
                  network: networks.ClusterNetwork = networks.DEFAULT) -> list[Obj]:
    """The kube-dns Service at the network's DNS address and its pod, listening on every
    address of the primary family (``[::]`` takes IPv4 too)."""
    upstream_args = [a for u in upstreams for a in ("--upstream", format_upstream(u))]
    return [
        kube_dns_service(network.dns_ip, selector={"k8s-app": "kube-dns"}),
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "kube-dns", "namespace": "kube-system",
                      "labels": {"k8s-app": "kube-dns"}},
         # The DNS server is svcnet's own code on the host's Python: the process runtime.
         "spec": {"dnsPolicy": "Default", "runtimeClassName": "process", "containers": [{
             "name": "dns", "image": "svcnet/dns",
             "command": [sys.executable, "-m", "svcnet.dns", "--kubeconfig", str(kubeconfig),
                         "--listen", "[::]:53" if network.families.ipv6_primary else "0.0.0.0:53",
                         "--resolv-conf", str(resolv_conf),
                         *upstream_args],
             "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                       {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}],
             "readinessProbe": {"tcpSocket": {"port": 53}, "periodSeconds": 1}}]}},
    ]


def load_files(files: Sequence[Path]) -> list[Obj]:
    docs: list[Obj] = []
    for f in files:
        try:
            loaded = [d for d in yaml.safe_load_all(f.read_text()) if d]
        except OSError as e:
            raise UpError(f"cannot read {f}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise UpError(f"{f}: invalid YAML: {e}".replace("\n", " ")) from None
        for d in loaded:
            if not isinstance(d, dict):
                raise UpError(f"{f}: every document must be an object")
            docs.extend(d.get("items") or [] if d.get("kind") == "List" else [d])
    return docs


_GVRS: dict[tuple[str, str], GVR] = {}


def _gvr_for(obj: Obj) -> GVR:
    from svcnet.apiserver.resources import by_kind

    res = by_kind(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    if res is None:
        raise UpError(f"{obj.get('kind')} ({obj.get('apiVersion')}) is not served by svcnet")
    return GVR(res.group, res.version, res.resource, res.kind, res.namespaced)


async def apply_all(client: RESTClient, docs: Sequence[Obj], echo: Echo) -> list[Obj]:
    applied = []
    for doc in docs:
        gvr = _gvr_for(doc)
        meta = doc.setdefault("metadata", {})
        ns = meta.get("namespace") or ("default" if gvr.namespaced else "")
        if gvr.namespaced:
            meta["namespace"] = ns
        try:
            obj = await client.patch(gvr, ns, meta["name"], doc, patch_type=_apply_type(),
                                     field_manager="svcnet-up", force=True)
        except StatusError as e:
            raise UpError(f"{doc.get('kind')} {meta.get('name')!r}: {e.message}") from None
        applied.append(obj)
        echo(f"    {gvr.kind.lower()}/{meta['name']} applied")
    return applied


def _apply_type() -> Any:
    from svcnet.client.rest import PatchType

    return PatchType.APPLY


async def wait_ready(client: RESTClient, topo: Topology, applied: Sequence[Obj],
                     timeout: float, *, with_dns: bool = True) -> None:
    deadline = time.monotonic() + timeout
    wanted_pods = {(o["metadata"].get("namespace", ""), o["metadata"]["name"])
                   for o in applied if o.get("kind") == "Pod"}
    if with_dns:
        wanted_pods.add(("kube-system", "kube-dns"))
    while True:
        nodes = (await client.list(NODES)).items
        ready_nodes = {n["metadata"]["name"] for n in nodes if _ready(n)}
        pods = (await client.list(PODS)).items
        ready_pods = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods
                      if _ready(p)}
        missing = [f"node {n.name}" for n in topo.nodes if n.name not in ready_nodes]
        missing += [f"pod {ns}/{name}" for ns, name in sorted(wanted_pods - ready_pods)]
        for d in applied:
            if d.get("kind") != "Deployment":
                continue
            meta = d["metadata"]
            current = await client.get(DEPLOYMENTS, meta["namespace"], meta["name"])
            want = (current.get("spec") or {}).get("replicas", 1)
            status = current.get("status") or {}
            if status.get("availableReplicas", 0) < want or status.get(
                    "updatedReplicas", 0) < want:
                missing.append(f"deployment {meta['namespace']}/{meta['name']} "
                               f"({status.get('availableReplicas', 0)}/{want} available)")
        if not missing:
            return
        if time.monotonic() > deadline:
            raise UpError("not ready after {:.0f}s: {}".format(timeout, ", ".join(missing[:5])))
        await asyncio.sleep(0.2)


async def wait_node_ports(client: RESTClient, topo: Topology, opts: UpOptions) -> None:
    """Ready pods are not the end: wait until every TCP NodePort accepts connections on each
    node (rules programmed) and on 127.0.0.1 (the forwarder listening), so that the commands
    the summary prints work the moment it is printed."""
    from svcnet.cluster.forwarder import tcp_node_ports

    services = (await client.list(SERVICES)).items
    ports = tcp_node_ports(services)
    # An externalTrafficPolicy: Local NodePort answers only on nodes with an endpoint.
    local_only = tcp_node_ports([s for s in services
                                 if (s.get("spec") or {}).get("externalTrafficPolicy")
                                 == "Local"])
    deadline = time.monotonic() + 30
    for port in sorted(ports):
        hosts = [] if port in local_only else [ip for n in topo.nodes for ip in n.api_ips]
        hosts += ["127.0.0.1"] if opts.localhost_nodeports else []
        for host in hosts:
            while True:
                try:
                    _, writer = await asyncio.wait_for(  # (IPv6 literals need no brackets)
                        asyncio.open_connection(host, port), timeout=1)
                    writer.close()
                    await writer.wait_closed()
                    break
                except (OSError, TimeoutError):
                    if time.monotonic() > deadline:
                        raise UpError(f"NodePort {port} does not answer on {host}") from None
                    await asyncio.sleep(0.1)


def _ready(obj: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def egress_line(egress: EgressPlan | None, upstreams: Sequence[Address]) -> str:
    """The summary's word on the way out (docs/EGRESS.md)."""
    dns = ", ".join(map(format_upstream, upstreams)) or "none: other names get SERVFAIL"
    if egress is None:
        return f"Egress: off (pods reach nothing outside the cluster); DNS upstreams {dns}"
    return (f"Egress: via {egress.gateway}, pod traffic masqueraded to the node's address "
            f"(the host decides what leaves it); DNS upstreams {dns}")


async def summary(client: RESTClient, topo: Topology, paths: Paths, egress: str = "") -> str:
    lines = ["", f"Network: {topo.network.describe()}", *([egress] if egress else []), "",
             "Nodes:"]
    nodes = {n["metadata"]["name"]: n for n in (await client.list(NODES)).items}
    for n in topo.nodes:
        state = "Ready" if _ready(nodes.get(n.name, {})) else "NotReady"
        runtime = ((nodes.get(n.name, {}).get("status") or {}).get("nodeInfo") or {}).get(
            "containerRuntimeVersion", "")
        (ip, *more), cidrs = n.api_ips, topo.network.families.pick([n.pod_cidr, n.pod_cidr6])
        lines.append(f"  {n.name:<8} {ip:<14} pods {cidrs[0]:<15} {state:<8} "
                     f"{runtime}".rstrip())
        lines += [f"  {'':<8} {ip:<14} pods {cidr}" for ip, cidr in zip(more, cidrs[1:],
                                                                          strict=False)]
    services = (await client.list(SERVICES)).items
    from svcnet.client.rest import ENDPOINTSLICES

    slices = (await client.list(ENDPOINTSLICES)).items
    lines += ["", "Services:"]
    reach: list[str] = []
    first_node = topo.nodes[0].api_ips[0]
    for svc in sorted(services, key=lambda s: (s["metadata"]["namespace"],
                                               s["metadata"]["name"])):
        meta, spec = svc["metadata"], svc.get("spec") or {}
        key = f"{meta['namespace']}/{meta['name']}"
        ready = sum(1 for s in slices
                    if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name")
                    == meta["name"] and s["metadata"]["namespace"] == meta["namespace"]
                    for e in s.get("endpoints") or []
                    if (e.get("conditions") or {}).get("ready") is not False)
        ports = ",".join(
            f"{p['port']}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/"
            f"{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
        lb = ",".join(i.get("ip", "") for i in ((svc.get("status") or {}).get("loadBalancer")
                                                 or {}).get("ingress") or [])
        cluster_ips = ",".join(spec.get("clusterIPs") or [spec.get("clusterIP", "")])
        lines.append(f"  {key:<28} {spec.get('type', 'ClusterIP'):<13} "
                     f"{cluster_ips:<14} {ports:<22} {lb or '-':<14} "
                     f"endpoints {ready}")
        if meta["namespace"] in ("kube-system",) or meta["name"] == "kubernetes":
            continue
        port = (spec.get("ports") or [{}])[0]
        dns = f"{meta['name']}.{meta['namespace']}.svc.cluster.local"
        reach.append(f"  # {key}")
        reach.append(f"  from a pod:  svcnet exec <pod> -- curl -s http://{dns}:"
                     f"{port.get('port')}/")
        if port.get("nodePort"):
            reach.append(f"  NodePort:    curl -s http://"
                         f"{host_port(first_node, port['nodePort'])}/")
            reach.append(f"  localhost:   curl -s http://127.0.0.1:{port['nodePort']}/")
        if lb:
            reach.append(f"  LB IP:       curl -s http://"
                         f"{host_port(lb.split(',')[0], port.get('port', 0))}/")
    if reach:
        lines += ["", "Reach them:", *reach]
    lines += ["", "Dashboard (a live picture of the Services; open the URL it prints):",
              f"  svcnet dashboard --kubeconfig {paths.kubeconfig}  # http://{DEFAULT_LISTEN}/",
              "", f"export KUBECONFIG={paths.kubeconfig}"]
    return "\n".join(lines)


async def _start_control_plane(paths: Paths, topo: Topology, opts: UpOptions) -> None:
    """The API server as the supervisor's first unit; back once it serves (its kubeconfig)."""
    # The supervisor starts the units it finds, then those added later on SIGHUP.
    write_unit(paths, "server", [
        *_svcnet(), "server", "--data-dir", str(paths.server), "--listen",
        topo.api_server, "--service-cidr", topo.network.service_cidrs, "--lb-pool",
        topo.network.lb_pool, "--cluster-cidr", topo.network.cluster_cidrs,
        "--advertise-address", topo.network.api_address, "--node-monitor-grace-period",
        str(opts.node_grace), "--metric-resolution", str(opts.metric_resolution),
        "--horizontal-pod-autoscaler-sync-period", str(opts.hpa_sync_period)])
    spawn(paths, "supervisor", [*_svcnet(), "_supervise", "--state-dir", str(paths.root)])
    deadline = time.monotonic() + 30
    while not (paths.server / "kubeconfig").exists():
        if time.monotonic() > deadline:
            raise UpError(f"the API server did not start; see {paths.logs}/server.log")
        await asyncio.sleep(0.05)
    shutil.copy(paths.server / "kubeconfig", paths.kubeconfig)
    os.chmod(paths.kubeconfig, 0o600)


def use_containerd(opts: UpOptions) -> bool:
    """Whether the nodes get a containerd (raises UpError when asked for and missing)."""
    if opts.container_runtime == "process":
        return False
    missing = runtimes.containerd_available()
    if missing is not None and opts.container_runtime == "containerd":
        raise UpError(f"--container-runtime containerd: {missing}")
    return missing is None


def _start_containerds(paths: Paths, topo: Topology, opts: UpOptions) -> None:
    """One containerd unit per node, then the sandbox image into each."""
    started = []
    for node in topo.nodes:
        cpaths, argv = runtimes.node_containerd(paths.node(node.name) / "containerd",
                                                mirrors=opts.registry_mirrors)
        write_unit(paths, f"containerd-{node.name}", argv)
        started.append(cpaths)
    reload_supervisor(paths)
    for cpaths in started:
        try:
            runtimes.wait_for_socket(cpaths)
            runtimes.import_sandbox_image(cpaths)
        except (TimeoutError, RuntimeError) as exc:
            raise UpError(f"{exc}; see {paths.logs}") from None


def _start_node_agents(paths: Paths, topo: Topology, opts: UpOptions,
                       admin: dict[str, Any], containerd: bool,
                       upstreams: Sequence[Address]) -> None:
    """One agent unit per node, each with a token of its own (nodes write only their own)."""
    try:
        host = resolvconf.read(HOST_RESOLV_CONF)
    except OSError:
        host = ResolvConf()
    node_resolv = paths.root / "node-resolv.conf"
    node_resolv.write_text(node_resolv_conf(upstreams, host))
    for node in topo.nodes:
        token = secrets.token_urlsafe(24)
        _add_token(paths.server, token, f"system:node:{node.name}", "system:nodes")
        state = paths.node(node.name)
        state.mkdir(parents=True, exist_ok=True)
        kcfg = state / "kubeconfig"
        _write_private(kcfg, _kubeconfig_for(admin, token, f"system:node:{node.name}"))
        # The node server's certificate for the node's address, from the cluster CA (the
        # API server verifies it when it proxies logs, exec and port-forward).
        cert, key = issue_node_serving(paths.server, node.name, node.api_ips, state / "pki")
        runtime_flags: list[str] = []
        zone = node_zone(opts, node.index)
        if zone is not None:
            runtime_flags += ["--node-labels", f"{LABEL_TOPOLOGY_ZONE}={zone}"]
        if containerd:
            cpaths = ContainerdPaths(state / "containerd")
            runtime_flags += ["--container-runtime-endpoint", cpaths.endpoint,
                              "--cni-conf-dir", str(cpaths.cni_conf)]
        write_unit(paths, node.name, [
            *_svcnet(), "node", "--kubeconfig", str(kcfg), "--name", node.name,
            "--cluster", opts.name, "--node-index", str(node.index), "--node-ip", node.node_ips,
            "--pod-cidr", node.pod_cidrs, "--cluster-cidr", topo.network.cluster_cidrs,
            "--ip-family", opts.ip_family,
            "--state-dir", str(state), "--cluster-dns", topo.network.dns_ip,
            "--resolv-conf", str(node_resolv), "--announce-lb-ips",
            "--health-port", str(HEALTH_PORT), "--pod-network-mode", "routes",
            "--tls-cert-file", str(cert), "--tls-private-key-file", str(key),
            *runtime_flags])
    reload_supervisor(paths)


async def _start_dns(client: RESTClient, paths: Paths, admin: dict[str, Any],
                     upstreams: Sequence[Address], network: networks.ClusterNetwork) -> None:
    """Cluster DNS as a pod behind kube-system/kube-dns, reading the API with its own token;
    names outside the cluster go to ``upstreams`` (none: SERVFAIL at once)."""
    token = secrets.token_urlsafe(24)
    _add_token(paths.server, token, "system:serviceaccount:kube-system:kube-dns",
               "svcnet:readers")
    dns_cfg = paths.root / "dns.kubeconfig"
    _write_private(dns_cfg, _kubeconfig_for(admin, token, "kube-dns"))
    empty_resolv = paths.root / "dns-upstream.conf"
    # Without --egress nodes have no route out of the machine, so names outside the cluster
    # domain are answered SERVFAIL at once rather than forwarded into a black hole; the
    # upstreams, when there are any, come as --upstream flags.
    empty_resolv.write_text("# no upstream resolvers but the --upstream flags\n")
    await apply_all(client, dns_manifests(dns_cfg, empty_resolv, upstreams, network),
                    lambda _s: None)


async def up(opts: UpOptions, echo: Echo) -> str:
    plan_topology(opts.name, opts.nodes)  # checks the node count before anything else
    if opts.egress and opts.ip_family == "ipv6":
        raise UpError("--egress masquerades IPv4 only: it does not go with --ip-family ipv6")
    check_host(opts)
    containerd = use_containerd(opts)
    docs = load_files(opts.files)
    paths = Paths(cluster_dir(opts.name))
    names = ClusterNames.for_cluster(opts.name)
    progress = Progress(echo)
    echo(f"Creating cluster {opts.name!r} with {opts.nodes} node(s)")
    if paths.root.exists() or teardown.cluster_namespaces(names) or \
            teardown.cluster_links(names):
        with progress.step("removed leftovers of an earlier run"):
            teardown.down(opts.name)
    paths.root.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.root, 0o700)
    with progress.step("network") as step:
        topo, egress = claim_network(opts, paths)
        step.text = (f"network {topo.network.describe()}: bridge {topo.bridge} "
                     f"({topo.network.api_address}), {len(topo.nodes)} node namespace(s)")
        if egress is not None:
            step.text += f", egress via {egress.gateway}"
    upstreams = dns_upstreams(opts, echo)
    with progress.step(f"control plane on https://{topo.api_server}"):
        await _start_control_plane(paths, topo, opts)
    admin = yaml.safe_load(paths.kubeconfig.read_text())
    if containerd:
        with progress.step(f"{len(topo.nodes)} containerd(s), sandbox image imported"):
            _start_containerds(paths, topo, opts)
    runtime = "containerd" if containerd else "process"
    with progress.step(f"{len(topo.nodes)} node agent(s), {runtime} runtime"):
        _start_node_agents(paths, topo, opts, admin, containerd, upstreams)
    client = RESTClient.from_kubeconfig(load_kubeconfig(paths.kubeconfig),
                                        user_agent="svcnet-up")
    try:
        with progress.step("nodes Ready"):
            # Before any pod exists: the scheduler spreads pods only over nodes that are Ready,
            # so pods applied while one node is still registering would all land on the other.
            await wait_ready(client, topo, [], opts.timeout, with_dns=False)
        forwards = ", ".join(map(format_upstream, upstreams)) or "nowhere (SERVFAIL)"
        with progress.step(f"cluster DNS at {topo.network.dns_ip}, other names to {forwards}"):
            await _start_dns(client, paths, admin, upstreams, topo.network)
        if docs:
            echo("  applying manifests:")
            applied = await apply_all(client, docs, echo)
        else:
            applied = []
        with progress.step("everything ready"):
            await wait_ready(client, topo, applied, opts.timeout)
        if opts.localhost_nodeports:
            write_unit(paths, "nodeport-forwarder", [
                *_svcnet(), "_forward-nodeports", "--kubeconfig", str(paths.kubeconfig),
                "--target", topo.nodes[0].api_ips[0]])
            reload_supervisor(paths)
        with progress.step("NodePorts answering"):
            await wait_node_ports(client, topo, opts)
        (paths.config).write_text(json.dumps({
            "name": opts.name, "nodes": [dataclasses.asdict(n) for n in topo.nodes],
            "bridge": topo.bridge, "api": f"https://{topo.api_server}",
            "egressGateway": egress.gateway if egress is not None else None,
            "dnsUpstreams": [format_upstream(u) for u in upstreams]}, indent=2))
        text = await summary(client, topo, paths, egress_line(egress, upstreams))
    finally:
        await client.close()
    echo(f"Cluster {opts.name!r} is up in {time.monotonic() - progress.start:.1f}s.")
    return text
