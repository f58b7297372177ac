"""`svcnet node`: the node agent (our kubelet), from registration to pod status.

Theory of operation
-------------------
The agent runs in the host's network namespace and works on named namespaces only (the node's
``svcnet-<tag>-n<i>`` and one per pod), so nothing it does lands in the host's network stack.

1. **Register**: create (or adopt) the Node object — labels, and the pod CIDR when one was
   given (``svcnet up`` gives node ``i`` ``10.244.<i>.0/24``) — then write its status through
   the status subresource: addresses, capacity, node info, ``Ready=True``. Without a given pod
   CIDR it waits for the control plane's node IPAM to assign one. Tried until it succeeds,
   with the heartbeat's timeout (below), as kubelet registers.
2. **Heartbeat**: renew the Lease ``kube-node-lease/<node>`` every ``lease_interval`` seconds
   (the node lifecycle controller marks the node ``Unknown`` when it stops), and re-post
   ``Ready=True`` when the control plane marked the node otherwise, or every
   ``status_interval`` seconds. As kubelet's heartbeat client (cmd/kubelet/app/server.go,
   pkg/kubelet/nodelease), heartbeats carry a short timeout of their own
   (``heartbeat_timeout``) and a failed one is tried again at once, up to five times: the REST
   client moves to the next listed server after a timeout and ends everything else waiting on
   the silent one (svcnet/client/rest.py), so a server that vanished from the network costs
   one heartbeat timeout, not the 30 s request timeout of each request and watch.
3. **Pods**: an informer on pods with ``spec.nodeName=<node>``; every event, container exit and
   probe change wakes one level-triggered sync: the :class:`~svcnet.node.runner.PodRunner`
   applies the pure plan, then each pod's computed status is written through ``pods/status``
   when it differs from what the API shows, and pods that finished terminating (graceful
   deletion) are deleted with grace 0. The first sync waits until the informer has synced: the
   runner treats a pod missing from ``desired`` as gone.
4. **ConfigMaps and Secrets** the pods name (``env``, ``envFrom``, volumes) are watched one
   object at a time (:mod:`svcnet.node.objects`, the kubelet's watch-based managers); a
   change wakes the pod sync, which starts containers waiting for them and rewrites volumes.
   What the runner tells of pods (the kubelet's ``Pulling``, ``Created``, ``Started``,
   ``Killing``, ``BackOff``, ``Unhealthy``, warnings such as ``FailedMount``) is recorded as
   Events on the pod as it comes, in order, by a task of its own: a long pull shows
   ``Pulling`` while it lasts, and probes fail between syncs. The ServiceAccount tokens of
   projected volumes are requested through the TokenRequest API and renewed before they expire
   (:mod:`svcnet.node.tokens`, the kubelet's token manager).
5. **Service environment variables** come from a Services informer (``BACKEND_SERVICE_HOST``
   etc., as the kubelet computes them).
6. **The service proxy** (nftables, in the node netns) is fed from the same Services informer
   and an EndpointSlices informer, when enabled.
7. **The pod network across machines** (``pod_network_mode`` routes or vxlan, for nodes that
   joined as machines: :mod:`svcnet.node.nodenet`) follows the Nodes informer: routes (and for
   vxlan FDB and neighbour entries) to every other node's pod CIDR. In vxlan mode the Node
   carries this node's VTEP MAC as an annotation and pods get the overlay's MTU.
   ``svcnet up``'s nodes have static routes instead (cluster/topology.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import platform
import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from svcnet.api.errors import StatusError
from svcnet.api.nodes import LABEL_CLUSTER, LABEL_NODE_INDEX
from svcnet.api.storageclasses import LOCAL_PATH_ROOT_ANNOTATION
from svcnet.client.events import EventRecorder
from svcnet.client.informer import Backoff, EventHandler, Informer
from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.client.rest import (
    ENDPOINTSLICES,
    LEASES,
    NODES,
    PODS,
    SERVICES,
    PatchType,
    Preconditions,
    RESTClient,
    TransportError,
)
from svcnet.netpol.enforcer import PolicyEnforcer
from svcnet.node.announcer import Announcer
from svcnet.node.healthcheck import HealthCheckServers, health_checks
from svcnet.node.names import ClusterNames
from svcnet.node.nodenet import (
    VTEP_MAC_ANNOTATION,
    NodeNetwork,
    peer_view,
    pod_mtu,
    vtep_mac,
)
from svcnet.node.objects import ObjectWatcher
from svcnet.node.resourceusage import ResourceCollector
from svcnet.node.runner import NodeConfig, PodRunner
from svcnet.node.server import DEFAULT_PORT, NodeServer, ServingConfig, listening_socket
from svcnet.node.tokens import TokenManager
from svcnet.proxy.changes import ProxySource
from svcnet.proxy.nft.nft import SubprocessNft
from svcnet.proxy.runner import BoundedFrequencyRunner
from svcnet.proxy.service import (
    SERVICE_INDEX,
    InformerSource,
    changed_key,
    slice_service_index,
)
from svcnet.util.aio import wait_event
from svcnet.util.clock import Clock, RealClock, rfc3339
from svcnet.util.ipfamily import IPFamilies, version_of

log = logging.getLogger(__name__)

Obj = dict[str, Any]
LEASE_NAMESPACE: Final = "kube-node-lease"
_T = TypeVar("_T")
HEARTBEAT_ATTEMPTS: Final = 5
"""Tries of one heartbeat in a row (kubelet's maxUpdateRetries / nodeStatusUpdateRetry)."""

REGISTER_MAX_PAUSE: Final = 7.0
"""Longest pause between two tries to register (kubelet's registerWithAPIServer: 7 s)."""

KUBELET_VERSION: Final = "v1.33.0-svcnet"


@dataclass
class AgentConfig:
    kubeconfig: Path
    node_name: str
    cluster: str = "svcnet"
    node_index: int = 1
    node_ip: str = "127.0.0.1"
    node_ip6: str = ""
    """The node's IPv6 address on a dual-stack node network (a second InternalIP)."""
    pod_cidr: str = ""
    """Ask for this pod CIDR, or an IPv4,IPv6 pair (dual stack); "": the control plane's."""
    ip_family: str = "dual"
    """Which of the node's addresses and pod CIDRs the API sees, primary first
    (svcnet/util/ipfamily.py): ``dual`` shows all that are given (IPv4 first); ``ipv6`` makes
    an IPv6 single-stack node, whose IPv4 address and pod CIDR (pods' internal addresses)
    stay out of its Node and its pods' status."""
    state_dir: Path = field(default_factory=lambda: Path("/var/lib/svcnet/node"))
    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    resolv_conf: Path | None = Path("/etc/resolv.conf")
    """The base of pods' DNS settings (the kubelet's ``--resolv-conf``, same default); None:
    no base (``--resolv-conf=""``), see svcnet/node/dnsconfig.py."""
    labels: Mapping[str, str] = field(default_factory=dict)
    lease_interval: float = 10.0
    status_interval: float = 60.0
    heartbeat_timeout: float = 5.0
    """Seconds a heartbeat request (Lease renewal, node status) may take. kubelet bounds its
    heartbeat client's timeout by the status period (10 s); half of it still leaves a loaded
    server a thousand times what a Lease write takes, and notices a silent one sooner."""
    announce_lb_ips: bool = False
    """Announce LoadBalancer IPs of the node network on the uplink (local clusters)."""
    proxy_min_sync_period: float = 0.05
    """Least time between two proxy syncs (kube-proxy's minSyncPeriod; bursts coalesce)."""
    proxy_full_sync_period: float = 3600.0
    """Longest time without a full proxy sync (the periodic safety net)."""
    network_policy: bool = True
    """Enforce NetworkPolicies on this node (svcnet/netpol/), along with the service proxy."""
    health_port: int = 0
    """Serve /healthz, /livez and /metrics on ``node_ip:<port>`` (kube-proxy's 10256) in the
    node's netns; 0: off."""
    tls_cert_file: Path | None = None
    """The node server's certificate (kubelet's ``--tls-cert-file``); None: no node server
    (no logs, exec, attach or port-forward for this node's pods)."""

    @property
    def families(self) -> IPFamilies:
        return IPFamilies(self.ip_family)

    @property
    def api_ips(self) -> list[str]:
        """The node's InternalIPs, the primary first (its servers listen on that one)."""
        return self.families.pick([self.node_ip, self.node_ip6]) or [self.node_ip]

    @property
    def given_pod_cidrs(self) -> list[str]:
        return [c.strip() for c in self.pod_cidr.split(",") if c.strip()]
    tls_key_file: Path | None = None
    server_port: int = DEFAULT_PORT
    """The node server's port on ``node_ip`` (kubelet's 10250; 0: the kernel picks)."""
    container_runtime_endpoint: str | None = None
    """containerd's CRI socket; None: the process runtime only."""
    cni_conf_dir: Path | None = None
    """Where the pod network's CNI conflist goes (read by the container runtime)."""
    servers: tuple[str, ...] = ()
    """More API servers to fail over to (``svcnet join URL1,URL2``), after the kubeconfig's."""
    pod_network_mode: str = ""
    """``routes`` or ``vxlan`` (svcnet/node/nodenet.py); "": routes are someone else's."""


class ServiceProxy(Protocol):
    """The node's service data plane, fed with the full desired state on every change."""

    async def sync(self, source: ProxySource, node: Obj,
                   changed: Collection[str] | None = None, full: bool = False) -> None:
        """Apply the Services ``changed`` (keys; None: any), or everything if ``full``."""
        ...

    def close(self) -> None:
        """Release what the proxy holds (the table stays: a restarted agent adopts it)."""
        ...

    def note_queued(self) -> None:
        """A change is waiting for the next sync (for health and metrics)."""
        ...

    def healthy(self) -> bool:
        """False when a queued change has waited too long without a successful sync."""
        ...

    def metrics_text(self) -> bytes:
        """Prometheus text exposition of the proxy's metrics."""
        ...


def _env_name(service_name: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", service_name.upper())


def service_env(services: list[Obj], namespace: str) -> dict[str, str]:
    """The Docker-links-style variables the kubelet injects for every Service in the pod's
    namespace that has a ClusterIP (pkg/kubelet/envvars)."""
    env: dict[str, str] = {}
    for svc in sorted(services, key=lambda s: str(s["metadata"]["name"])):
        if (svc.get("metadata") or {}).get("namespace") != namespace:
            continue
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP") or ""
        if not ip or ip == "None":
            continue
        ports = spec.get("ports") or []
        if not ports:
            continue
        name = _env_name(str(svc["metadata"]["name"]))
        env[f"{name}_SERVICE_HOST"] = ip
        env[f"{name}_SERVICE_PORT"] = str(ports[0]["port"])
        for p in ports:
            if p.get("name"):
                env[f"{name}_SERVICE_PORT_{_env_name(p['name'])}"] = str(p["port"])
        first = ports[0]
        proto = str(first.get("protocol", "TCP")).lower()
        env[f"{name}_PORT"] = f"{proto}://{ip}:{first['port']}"
        for p in ports:
            proto = str(p.get("protocol", "TCP"))
            prefix = f"{name}_PORT_{p['port']}_{proto}"
            env[prefix] = f"{proto.lower()}://{ip}:{p['port']}"
            env[f"{prefix}_PROTO"] = proto.lower()
            env[f"{prefix}_PORT"] = str(p["port"])
            env[f"{prefix}_ADDR"] = ip
    return env


async def _attempts(heartbeat: Callable[[], Awaitable[_T]]) -> _T:
    """``heartbeat()``, tried again at once after a transport failure (up to
    :data:`HEARTBEAT_ATTEMPTS` in all): the REST client has moved on to the next server."""
    for _ in range(HEARTBEAT_ATTEMPTS - 1):
        try:
            return await heartbeat()
        except TransportError as e:
            log.warning("heartbeat failed, trying again: %s", e)
    return await heartbeat()


def _transient(error: TransportError | StatusError) -> bool:
    """A failure that may pass by itself: no answer, or the server or its store busy or
    unavailable (not a refusal that trying again cannot change)."""
    return isinstance(error, TransportError) or error.code >= 500 or error.code == 429


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for c in status.get("conditions") or []:
        if c.get("type") == kind:
            return c  # type: ignore[no-any-return]
    return {}


def _comparable(status: Mapping[str, Any]) -> Obj:
    """A pod status without the timestamps that change on every computation."""
    out = dict(status)
    out["conditions"] = sorted(
        ({k: v for k, v in c.items() if k not in ("lastProbeTime", "lastTransitionTime")}
         for c in status.get("conditions") or []), key=lambda c: str(c.get("type")))
    return out


class NodeAgent:
    def __init__(self, config: AgentConfig, *, client: RESTClient | None = None,
                 clock: Clock | None = None,
                 proxy_factory: Callable[[NodeConfig], ServiceProxy] | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or RealClock()
        self.client = client or RESTClient.from_kubeconfig(
            load_kubeconfig(config.kubeconfig), user_agent=f"svcnet-node/{config.node_name}",
            fallback_servers=config.servers)
        name = config.node_name
        self.pods = Informer(self.client, PODS, field_selector=f"spec.nodeName={name}",
                             clock=clock, name="pods")
        self.services = Informer(self.client, SERVICES, clock=clock, name="services")
        self.slices = Informer(self.client, ENDPOINTSLICES, clock=clock, name="endpointslices",
                               indexers={SERVICE_INDEX: slice_service_index})
        self.nodes = Informer(self.client, NODES, clock=clock, name="nodes")
        self.announcer: Announcer | None = None
        self.health_checks: HealthCheckServers | None = None
        self.runner: PodRunner | None = None
        self._runtime_version = "svcnet://0.1.0"
        """What the Node reports as its container runtime (``containerd://1.6.20`` with CRI)."""
        self._proxy_factory = proxy_factory
        self.proxy: ServiceProxy | None = None
        self.policies: PolicyEnforcer | None = None
        self._wake = asyncio.Event()
        self.objects = ObjectWatcher(self.client, clock=clock, on_change=self._wake.set)
        self.tokens = TokenManager(self.client, clock=clock)
        self.recorder = EventRecorder(self.client, "kubelet", clock=clock, host=name)
        self._events_wake = asyncio.Event()
        self._events_lock = asyncio.Lock()
        self._proxy_runner: BoundedFrequencyRunner | None = None
        self._proxy_changed: set[str] = set()
        self._announce_wake = asyncio.Event()
        self._routes_wake = asyncio.Event()
        self.node_network: NodeNetwork | None = None
        if config.pod_network_mode:
            netns = ClusterNames.for_cluster(config.cluster).node_netns(config.node_index)
            self.node_network = NodeNetwork(netns, config.pod_network_mode, config.node_ip)
        self._tasks: list[asyncio.Task[None]] = []
        self._node: Obj = {}
        self._health_runner: Any = None
        self.server: NodeServer | None = None
        self._server_port = 0

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.register()
        cidr4, cidr6 = node_pod_cidrs(await self.wait_for_pod_cidr(),
                                      self.config.given_pod_cidrs)
        mtu = None
        if self.node_network is not None:
            _, link_mtu = await asyncio.to_thread(self.node_network.uplink)
            mtu = pod_mtu(link_mtu, self.node_network.mode)
        node_config = NodeConfig(
            cluster=self.config.cluster, node_name=self.config.node_name,
            node_index=self.config.node_index, pod_cidr=cidr4, pod_cidr6=cidr6,
            families=self.config.families, host_ip=self.config.api_ips[0],
            state_dir=self.config.state_dir,
            cluster_dns=self.config.cluster_dns, cluster_domain=self.config.cluster_domain,
            resolv_conf=self.config.resolv_conf,
            allocatable=_capacity(),
            container_runtime_endpoint=self.config.container_runtime_endpoint,
            cni_conf_dir=self.config.cni_conf_dir, pod_mtu=mtu)
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self.runner = PodRunner.create(node_config, clock=self.clock,
                                       on_change=lambda _uid: self._wake.set(),
                                       service_env=self._service_env,
                                       objects=self.objects.lookup,
                                       tokens=self.tokens.lookup)
        self.runner.on_event = self._events_wake.set
        await self.runner.start()
        if self.runner.cri is not None:
            name, version = await self.runner.cri.version()
            self._runtime_version = f"{name}://{version}"
            await self.post_status()
        await self._serve_node_api(node_config)
        poke = EventHandler(on_add=lambda _o: self._wake.set(),
                            on_update=lambda _o, _n: self._wake.set(),
                            on_delete=lambda _o: self._wake.set())
        self.pods.add_handler(poke)
        for inf in (self.pods, self.services, self.slices, self.nodes):
            inf.start()
        if self.config.announce_lb_ips:
            self.announcer = Announcer(node_config.node_netns, self.config.node_name,
                                       self.config.node_ip, node_ip6=self.config.node_ip6)
        if self._proxy_factory is not None:
            self.health_checks = HealthCheckServers(node_config.node_netns)
        poke_announcer = EventHandler(on_add=lambda _o: self._announce_wake.set(),
                                      on_update=lambda _o, _n: self._announce_wake.set(),
                                      on_delete=lambda _o: self._announce_wake.set())
        for inf in (self.services, self.slices, self.nodes):
            inf.add_handler(poke_announcer)
        self._tasks.append(asyncio.create_task(self._announce_loop()))
        if self.node_network is not None:
            self.nodes.add_handler(EventHandler(
                on_add=lambda _o: self._routes_wake.set(),
                on_update=self._peer_changed,
                on_delete=lambda _o: self._routes_wake.set()))
            own_cidrs: list[IPv4Network | IPv6Network] = [cidr4]
            if cidr6 is not None:
                own_cidrs.append(cidr6)
            self._tasks.append(asyncio.create_task(self._pod_network_loop(own_cidrs)))
        if self._proxy_factory is not None:
            self.proxy = self._proxy_factory(node_config)
            if self.proxy is not None:
                # kube-proxy's change trackers: the keys of the Services whose Service or
                # EndpointSlices changed, for the next sync to recompute.
                proxy_poke = EventHandler(on_add=self._queue_proxy,
                                          on_update=self._queue_proxy_update,
                                          on_delete=self._queue_proxy)
                self.services.add_handler(proxy_poke)
                self.slices.add_handler(proxy_poke)
                own_node = EventHandler(on_update=self._node_changed)
                self.nodes.add_handler(own_node)
                self._tasks.append(asyncio.create_task(self._proxy_loop()))
                if self.config.network_policy:
                    self.policies = PolicyEnforcer(
                        self.client, self.config.node_name,
                        SubprocessNft(node_config.node_netns),
                        endpoint_slices=self.slices, clock=self.clock)
                    self.policies.start()
        if self.config.health_port:
            await self._serve_health(node_config)
        self._tasks.append(asyncio.create_task(self._pod_loop()))
        self._tasks.append(asyncio.create_task(self._event_loop()))
        self._tasks.append(asyncio.create_task(self._lease_loop()))
        self._tasks.append(asyncio.create_task(self._status_loop()))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.policies is not None:
            await self.policies.stop()
        for inf in (self.pods, self.services, self.slices, self.nodes):
            await inf.stop()
        await self.objects.stop()
        if self.proxy is not None:
            self.proxy.close()
        if self.announcer is not None:
            self.announcer.close()
        if self.health_checks is not None:
            self.health_checks.close()
        if self._health_runner is not None:
            await self._health_runner.cleanup()
        if self.server is not None:
            await self.server.stop()
        if self.runner is not None:
            await self.runner.close()
        await self.client.close()

    # -- registration and heartbeats -----------------------------------------------------

    def _desired_node(self) -> Obj:
        cfg = self.config
        labels = {"kubernetes.io/hostname": cfg.node_name, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": _arch(), LABEL_CLUSTER: cfg.cluster,
                  LABEL_NODE_INDEX: str(cfg.node_index), **cfg.labels}
        # `svcnet exec` finds pod namespaces by the labels.
        # Where local-path volumes of this node go (svcnet/controllers/localpath.py): under
        # the agent's state, so that they leave with the node's state.
        annotations = {LOCAL_PATH_ROOT_ANNOTATION: str(cfg.state_dir / "local-path")}
        if cfg.pod_network_mode == "vxlan":
            annotations[VTEP_MAC_ANNOTATION] = vtep_mac(IPv4Address(cfg.node_ip))
        node: Obj = {"apiVersion": "v1", "kind": "Node",
                     "metadata": {"name": cfg.node_name, "labels": labels,
                                  "annotations": annotations}, "spec": {}}
        cidrs = cfg.families.pick(cfg.given_pod_cidrs)
        if cidrs:
            node["spec"] = {"podCIDR": cidrs[0], "podCIDRs": cidrs}
        return node

    def _status(self) -> Obj:
        now = rfc3339(self.clock.now())
        ready = _condition(self._node.get("status") or {}, "Ready")
        transition = (ready.get("lastTransitionTime", now) if ready.get("status") == "True"
                      else now)
        capacity = {**_capacity(), "pods": "110"}
        return {
            # Where the API server reaches this agent's server (server.py), as kubelet says.
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self._server_port}},
            "addresses": [*({"type": "InternalIP", "address": ip}
                            for ip in self.config.api_ips),
                          {"type": "Hostname", "address": self.config.node_name}],
            "capacity": capacity, "allocatable": capacity,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": now, "lastTransitionTime": transition}],
            "nodeInfo": {"kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": KUBELET_VERSION,
                         "operatingSystem": "linux", "architecture": _arch(),
                         "osImage": _os_image(), "kernelVersion": platform.release(),
                         "containerRuntimeVersion": self._runtime_version, "machineID": "",
                         "systemUUID": "", "bootID": ""},
        }

    async def register(self) -> None:
        """Register the Node (create or adopt it) and post its status, as kubelet's
        ``registerWithAPIServer`` (pkg/kubelet/kubelet_node_status.go): tried until it
        succeeds, 0.1 s doubling to 7 s between tries, each request with the heartbeat's
        timeout, so a server that went silent costs one such timeout (the REST client then
        moves to the next listed server), not the 30 s request timeout of each request. A
        refusal that trying again cannot change (a bad token, an invalid Node) is raised."""
        backoff = Backoff(initial=0.1, cap=REGISTER_MAX_PAUSE)
        while True:
            try:
                await self._register_once()
                return
            except (TransportError, StatusError) as e:
                if not _transient(e):
                    raise
                pause = backoff.next_delay()
                log.warning("registering node %s failed, trying again in %.1f s: %s",
                            self.config.node_name, pause, e)
            await self.clock.sleep(pause)

    async def _register_once(self) -> None:
        desired = self._desired_node()
        timeout = self.config.heartbeat_timeout
        try:
            self._node = await self.client.create(NODES, desired, timeout=timeout)
        except StatusError as e:
            if e.code != 409:
                raise
            self._node = await self.client.get(NODES, "", self.config.node_name,
                                               timeout=timeout)
            labels = {**(self._node["metadata"].get("labels") or {}),
                      **desired["metadata"]["labels"]}
            patch: Obj = {"metadata": {"labels": labels, "annotations": desired["metadata"].get(
                "annotations") or {}}}
            if self.config.pod_cidr and not (self._node.get("spec") or {}).get("podCIDR"):
                patch["spec"] = desired["spec"]
            self._node = await self.client.patch(NODES, "", self.config.node_name, patch,
                                                 patch_type=PatchType.MERGE, timeout=timeout)
        await self.post_status()

    async def post_status(self) -> None:
        self._node = await self.client.patch(NODES, "", self.config.node_name,
                                             {"status": self._status()},
                                             patch_type=PatchType.MERGE, subresource="status",
                                             timeout=self.config.heartbeat_timeout)

    async def wait_for_pod_cidr(self) -> list[str]:
        """The Node's podCIDRs (the primary first), once it has any."""
        while True:
            spec = self._node.get("spec") or {}
            cidr = str(spec.get("podCIDR") or "")
            if cidr:
                return [cidr, *(str(c) for c in spec.get("podCIDRs") or [] if c != cidr)]
            await self.clock.sleep(0.2)
            try:
                self._node = await self.client.get(NODES, "", self.config.node_name,
                                                   timeout=self.config.heartbeat_timeout)
            except (TransportError, StatusError) as e:
                if not _transient(e):
                    raise
                log.warning("reading node %s failed, trying again: %s",
                            self.config.node_name, e)

    async def renew_lease(self) -> None:
        name = self.config.node_name
        timeout = self.config.heartbeat_timeout
        spec = {"holderIdentity": name, "leaseDurationSeconds": 40,
                "renewTime": self.clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        try:
            await self.client.patch(LEASES, LEASE_NAMESPACE, name, {"spec": spec},
                                    patch_type=PatchType.MERGE, timeout=timeout)
        except StatusError as e:
            if e.code != 404:
                raise
            await self.client.create(LEASES, {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": LEASE_NAMESPACE}, "spec": spec},
                timeout=timeout)

    async def _update_status(self, since: float) -> bool:
        """Re-post the status if the control plane marked the node otherwise or the period is
        up; whether it was posted."""
        current = await self.client.get(NODES, "", self.config.node_name,
                                        timeout=self.config.heartbeat_timeout)
        ready = _condition(current.get("status") or {}, "Ready")
        if ready.get("status") == "True" and since < self.config.status_interval:
            return False
        self._node = current
        await self.post_status()
        return True

    async def _lease_loop(self) -> None:
        while True:
            try:
                await _attempts(self.renew_lease)
            except Exception as e:  # the API may be restarting: keep beating
                log.warning("lease renewal failed: %s", e)
            await self.clock.sleep(self.config.lease_interval)

    async def _status_loop(self) -> None:
        since = 0.0
        while True:
            await self.clock.sleep(min(self.config.lease_interval, self.config.status_interval))
            since += min(self.config.lease_interval, self.config.status_interval)
            try:
                if await _attempts(functools.partial(self._update_status, since)):
                    since = 0.0
            except Exception as e:
                log.warning("node status update failed: %s", e)

    # -- pods -------------------------------------------------------------------------------

    def _service_env(self, pod: Mapping[str, Any]) -> Mapping[str, str]:
        if (pod.get("spec") or {}).get("enableServiceLinks") is False:
            return {}
        return service_env(self.services.list(),
                           str((pod.get("metadata") or {}).get("namespace", "")))

    async def _pod_loop(self) -> None:
        while not self.pods.has_synced():
            await self.clock.sleep(0.05)
        while True:
            self._wake.clear()
            retry: float | None = None
            try:
                retry = await self.sync_pods()
            except Exception:
                log.exception("pod sync failed; retrying")
                retry = 1.0
            wait = 30.0 if retry is None else retry
            if wait > 0:
                await wait_event(self._wake, wait)

    async def sync_pods(self) -> float | None:
        assert self.runner is not None
        desired = self.pods.list()
        await self.objects.track(desired)
        await self.tokens.track(desired)
        result = await self.runner.sync(desired)
        await self.record_events()
        for pod in desired:
            await self._write_status(pod)
        finished = set(getattr(result.plan, "finished", ()) or ())
        for pod in desired:
            meta = pod.get("metadata") or {}
            if meta.get("uid") in finished and meta.get("deletionTimestamp"):
                with contextlib.suppress(StatusError):
                    await self.client.delete(
                        PODS, meta.get("namespace", ""), meta["name"],
                        preconditions=Preconditions(uid=meta["uid"]), grace_period=0)
        return result.retry_after

    async def _event_loop(self) -> None:
        while True:
            await self._events_wake.wait()
            self._events_wake.clear()
            try:
                await self.record_events()
            except Exception:
                log.exception("recording pod events failed")

    async def record_events(self) -> None:
        """Record the events the runner queued, in their order."""
        assert self.runner is not None
        async with self._events_lock:
            while self.runner.events:
                events, self.runner.events = self.runner.events, []
                for e in events:
                    await self.recorder.event({"kind": "Pod", **e.pod}, e.type, e.reason,
                                              e.message, field_path=e.field_path)

    async def _write_status(self, pod: Obj) -> None:
        assert self.runner is not None
        status = self.runner.status(pod)
        if _comparable(status) == _comparable(pod.get("status") or {}):
            return
        updated = dict(pod)
        updated["status"] = status
        try:
            await self.client.update_status(PODS, updated)
        except StatusError as e:
            if e.code in (404, 409):
                self._wake.set()  # gone, or changed meanwhile: the next sync sees the new one
                return
            raise

    # -- proxy ------------------------------------------------------------------------------

    def _queue_proxy(self, obj: Obj | None = None) -> None:
        if self.proxy is None:
            return
        key = changed_key(obj) if obj is not None else None
        if key is not None:
            self._proxy_changed.add(key)
        self.proxy.note_queued()
        if self._proxy_runner is not None:
            self._proxy_runner.request()

    def _queue_proxy_update(self, old: Obj, new: Obj) -> None:
        self._queue_proxy(old)  # an EndpointSlice can move from one Service to another
        self._queue_proxy(new)

    def _node_changed(self, old: Obj, new: Obj) -> None:
        """Our Node's addresses and zone feed the data plane (the proxier rebuilds when they
        change); heartbeats change neither."""
        def view(node: Obj) -> tuple[object, object]:
            return ((node.get("status") or {}).get("addresses"),
                    (node.get("metadata") or {}).get("labels"))

        if (new.get("metadata") or {}).get("name") == self.config.node_name and \
                view(old) != view(new):
            self._queue_proxy()

    async def _serve_health(self, node_config: NodeConfig) -> None:
        """kube-proxy's /healthz, /livez and /metrics on the node's address, in the node's
        netns (as kube-proxy binds its node's 10256), so that every node and every cluster
        on the machine has its own; on loopback when the node address is loopback."""
        from aiohttp import web

        async def healthz(_r: web.Request) -> web.Response:
            ok = self.proxy is None or self.proxy.healthy()
            return web.Response(text="ok" if ok else "proxy rules are stale",
                                status=200 if ok else 503)

        async def metrics(_r: web.Request) -> web.Response:
            body = self.proxy.metrics_text() if self.proxy is not None else b""
            return web.Response(body=body, content_type="text/plain")

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/livez", healthz)
        app.router.add_get("/metrics", metrics)
        cfg = self.config
        ip = cfg.api_ips[0]
        sock = await listening_socket(ip, cfg.health_port, None if _loopback(
            ip) else node_config.node_netns)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._health_runner = runner

    async def _serve_node_api(self, node_config: NodeConfig) -> None:
        """Logs, exec, attach and port-forward for the API server (server.py), on the node's
        address (in the node's netns unless that is loopback), then advertise the port."""
        cfg = self.config
        if cfg.tls_cert_file is None or cfg.tls_key_file is None:
            log.warning("no --tls-cert-file: not serving logs, exec or port-forward")
            return
        ca = load_kubeconfig(cfg.kubeconfig).ca_pem
        if ca is None:
            raise ValueError("the kubeconfig names no certificate authority: the node server "
                             "cannot verify the API server")
        assert self.runner is not None
        runner = self.runner
        usage = ResourceCollector(self.pods.list, runner.runtime_of, lambda: runner.cri)
        self.server = NodeServer(runner, lambda ns, name: self.pods.get(f"{ns}/{name}"),
                                 self._connection_counts, usage.sample)
        self._server_port = await self.server.start(ServingConfig(
            cfg.tls_cert_file, cfg.tls_key_file, ca.decode("ascii"), node_config.host_ip,
            cfg.server_port, None if _loopback(node_config.host_ip) else node_config.node_netns))
        await self.post_status()

    async def _connection_counts(self) -> list[list[Any]] | None:
        counts = getattr(self.proxy, "connection_counts", None)
        return await counts() if counts is not None else None

    async def _proxy_loop(self) -> None:
        assert self.proxy is not None
        proxy = self.proxy
        while not (self.services.has_synced() and self.slices.has_synced()):
            await self.clock.sleep(0.05)

        source = InformerSource(self.services, self.slices)

        async def sync(full: bool) -> None:
            node = self.nodes.get(self.config.node_name)
            if node is None:  # not in the cache yet (just registered)
                node = await self.client.get(NODES, "", self.config.node_name)
            changed, self._proxy_changed = self._proxy_changed, set()
            try:
                await proxy.sync(source, node, None if full else changed, full)
            except BaseException:
                self._proxy_changed |= changed  # not applied: still to do
                raise

        self._proxy_runner = BoundedFrequencyRunner(
            sync, min_interval=self.config.proxy_min_sync_period,
            max_interval=self.config.proxy_full_sync_period, clock=self.clock)
        await self._proxy_runner.run_forever()

    def _peer_changed(self, old: Obj, new: Obj) -> None:
        """A Node's pod CIDR, addresses or VTEP MAC feed the pod network; heartbeats not."""
        if peer_view(old) != peer_view(new):
            self._routes_wake.set()

    async def _pod_network_loop(self, own_cidrs: list[IPv4Network | IPv6Network]) -> None:
        """Routes (vxlan: and FDB, neighbours) to the other nodes' pods, as Nodes change."""
        assert self.node_network is not None
        while not self.nodes.has_synced():
            await self.clock.sleep(0.05)
        while True:
            self._routes_wake.clear()
            retry = 30.0
            try:
                await self.node_network.sync(self.nodes.list(), self.config.node_name,
                                             own_cidrs)
            except Exception:
                log.exception("pod network routes failed; retrying")
                retry = 2.0
            await wait_event(self._routes_wake, retry)

    async def _announce_loop(self) -> None:
        """LoadBalancer IP announcements and healthCheckNodePort servers: both follow
        Services, EndpointSlices and Nodes."""
        while not all(i.has_synced() for i in (self.services, self.slices, self.nodes)):
            await self.clock.sleep(0.05)
        while True:
            self._announce_wake.clear()
            try:
                if self.announcer is not None:
                    await self.announcer.sync(self.services.list(), self.slices.list(),
                                              self.nodes.list())
                if self.health_checks is not None:
                    await self.health_checks.sync(health_checks(
                        self.config.node_name, self.services.list(), self.slices.list()))
            except Exception:
                log.exception("LoadBalancer IP announcement / health checks failed; retrying")
            await wait_event(self._announce_wake, 10.0)


def node_pod_cidrs(api: list[str], given: list[str]) -> tuple[IPv4Network, IPv6Network | None]:
    """The pod runner's IPv4 subnet and IPv6 one (None: IPv4 only) from the Node's podCIDRs
    (``api``) and the ones the agent was given: an IPv6 single-stack node's IPv4 subnet, the
    pods' internal addresses, is only in ``given``."""
    cidr4 = next((c for c in [*api, *given] if version_of(c) == 4), None)
    if cidr4 is None:
        raise ValueError(f"pod CIDRs {','.join(api)}: an IPv6-only node needs an IPv4 "
                         f"--pod-cidr too (its pods' internal addresses, never in the API)")
    cidr6 = next((c for c in api if version_of(c) == 6), None)
    return IPv4Network(cidr4), None if cidr6 is None else IPv6Network(cidr6)


def _loopback(ip: str) -> bool:
    """A node on loopback (tests) lives in the host's namespace: its servers listen there."""
    return ip.startswith("127.")


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _capacity() -> dict[str, str]:
    """What the node offers pods (capacity = allocatable: svcnet reserves nothing)."""
    return {"cpu": str(os.cpu_count() or 1), "memory": f"{_memory_kib()}Ki"}


def _memory_kib() -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return 0


def _os_image() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return "Linux"


async def run_agent(config: AgentConfig, *,
                    proxy_factory: Callable[[NodeConfig], ServiceProxy] | None = None) -> None:
    import signal

    # Handlers first: a SIGTERM that arrives while the agent starts is a clean stop too.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    agent = NodeAgent(config, proxy_factory=proxy_factory)
    try:
        await agent.start()
        await stop.wait()
    finally:
        await agent.stop()
