"""The pod runner: applies :func:`~svcnet.node.pods.plan_pods` to a node, and nothing more.

Theory of operation
-------------------
The node agent owns one :class:`PodRunner`. It calls :meth:`PodRunner.start` once (set up the
node's pod bridge, adopt what a previous agent left running), then :meth:`PodRunner.sync`
with the pods bound to the node whenever something may have changed: a watch event, a
container exit or probe flip (``on_change(pod_uid)``), or the plan's ``next_wakeup`` (a
crash-loop back-off ending). Each sync

1. snapshots the actual state (:class:`~svcnet.node.pods.NodeState`) from the IPAM, the set
   of pod namespaces it made, the runtime's records and the probe verdicts;
2. asks the pure planner what to do;
3. carries the plan out in a safe order: forget vanished pods; start stops (in the
   background: a 30-second grace period must not hold up other pods); tear networks down;
   set networks up; start containers.

Ordering that matters:

* **IP before namespace, namespace before IP release.** A pod's netns exists only while the
  IPAM holds its address, so after a crash every pod netns of this node is found again
  through the IPAM file (netns names are hashes of pod UIDs and cannot be listed per node:
  all nodes of a cluster share the ``svcnet-<tag>-p`` prefix, and a node must never delete
  another node's pods).
* **A half-built pod network is removed at once** (its netns deleted), and the next sync
  builds it again; the pod shows ``ContainerCreating`` meanwhile.
* **Probes follow container runs.** A container started (or adopted) gets fresh probe
  trackers keyed to its start time; when it exits they are dropped.

Every failure that comes from a pod (its spec, its process, its network) is logged and shown
in its status, never raised: one bad pod must not stop the agent. ``sync`` returns the plan
and :attr:`SyncResult.retry_after` for the agent's scheduling.

**Events.** What happens to a pod is queued in :attr:`PodRunner.events` as :class:`PodEvent` s,
in the kubelet's words, for the agent to record (``on_event`` says one was queued: a pull is
shown while it lasts, and probe failures come between syncs). About a container, they name
it as the kubelet's ObjectReference does (``spec.containers{app}``). Lifecycle steps are
told each time they happen (``kuberuntime_container.go``, ``images/image_manager.go``):
``Pulling``, ``Pulled`` (or ``Container image ... already present on machine``),
``Created``, ``Started``, ``Killing`` when a container is stopped (pod deleted, liveness or
startup probe failed); ``Unhealthy`` for every failed probe (``prober.go``, also below the
failure threshold); ``BackOff`` once per step of a crash-loop or image pull back-off (the
kubelet repeats it on every sync of the pod; the recorder counts repeats either way). Other
warnings (a missing ConfigMap, a volume that cannot be set up) are told once per pod and
message, since every sync would repeat them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import re
import shutil
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Interface, IPv4Network, IPv6Network
from pathlib import Path
from typing import Any, Final, TypeVar

from svcnet.api.errors import go_quote
from svcnet.api.goduration import go_duration
from svcnet.node import crispec, etchosts, hostpath, podenv, pods as podlib, volumes
from svcnet.node.atomicwriter import read_payload, write_payload
from svcnet.node.cri import (
    CriError,
    CriRuntime,
    PullError,
    SandboxSpec,
    cri_auths,
    should_pull,
)
from svcnet.node.dnsconfig import PodDNS, pod_dns
from svcnet.node.files import atomic_write
from svcnet.node.ipam import IPAMError, PodIPAM, api_pod_ips, pod_ipv6
from svcnet.node.names import POD_BRIDGE, ClusterNames, PodNetworkNames
from svcnet.node.netns import (
    IPBatchNetwork,
    LinkExists,
    NetnsExists,
    NetnsNotFound,
    Network,
    NetworkError,
    mac_for,
)
from svcnet.node.podenv import Lookup
from svcnet.node.podnetwork import (
    CONFLIST_NAME,
    CNIPodNetwork,
    PodNetwork,
    PodNetworkError,
    node_conflist,
)
from svcnet.node.pods import ActualPod, NodeState, PodPlan
from svcnet.node.probes import (
    NetnsProbeExecutor,
    ProbeContext,
    ProbeKind,
    ProbeManager,
    container_probes,
)
from svcnet.node.runtime import (
    REASON_START_ERROR,
    ContainerKey,
    ContainerProcess,
    Exited,
    NetnsProcessRuntime,
    ProcessRuntime,
    ProcessSpec,
    Running,
)
from svcnet.util import resolvconf
from svcnet.util.clock import Clock, RealClock
from svcnet.util.ipfamily import DUAL, IPFamilies
from svcnet.util.resolvconf import ResolvConf

__all__ = ["NodeConfig", "PodEvent", "PodRunner", "SyncResult"]

log = logging.getLogger(__name__)

#: Per-namespace switches that hand bridged IPv4/IPv6 packets to the inet hooks.
BRIDGE_NETFILTER_SYSCTLS: Final = ("net.bridge.bridge-nf-call-iptables",
                                   "net.bridge.bridge-nf-call-ip6tables")

Pod = Mapping[str, Any]
T = TypeVar("T")
NETWORK_RETRY = 5.0
"""Seconds before a failed pod network setup is tried again."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    cluster: str
    node_name: str
    node_index: int
    pod_cidr: IPv4Network
    host_ip: str
    """The node's own address (``status.hostIP``; the pod IP of host-network pods)."""
    state_dir: Path
    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    resolv_conf: Path | None = None
    """The node's resolv.conf, the base of pods' DNS settings (the kubelet's
    ``--resolv-conf``); None: the kubelet's ``--resolv-conf=""`` (dnsconfig.py)."""
    allocatable: Mapping[str, str] = field(default_factory=dict)
    """The node's allocatable resources: the downward API's default limits."""
    container_runtime_endpoint: str | None = None
    """containerd's CRI socket (``unix:///...``): pods run their images there, except those
    whose RuntimeClass is ``process``. None: every pod runs on the process runtime."""
    cni_conf_dir: Path | None = None
    """Where :meth:`PodRunner.start` writes the pod network's CNI conflist (what containerd
    reads before it reports NetworkReady)."""
    pod_mtu: int | None = None
    """The pods' veth MTU (a VXLAN overlay's: svcnet/node/nodenet.py); None: the kernel's."""
    pod_cidr6: IPv6Network | None = None
    """The node's IPv6 pod CIDR (dual stack: every pod gets an IPv6 address too, see
    :func:`~svcnet.node.ipam.pod_ipv6`); None: IPv4 only."""
    families: IPFamilies = DUAL
    """Which of a pod's addresses its status and environment show (``ipv6``: the IPv6 one
    alone, the IPv4 one stays internal; svcnet/util/ipfamily.py)."""

    @property
    def names(self) -> ClusterNames:
        return ClusterNames.for_cluster(self.cluster)

    @property
    def node_netns(self) -> str:
        return self.names.node_netns(self.node_index)

    def pod_names(self, uid: str) -> PodNetworkNames:
        return self.names.pod_network(self.node_index, uid)


NORMAL = "Normal"
WARNING = "Warning"


@dataclass(frozen=True, slots=True)
class PodEvent:
    """An Event for the agent to record about a pod (or, with ``field_path``, one of its
    containers)."""

    pod: Pod
    type: str
    reason: str
    message: str
    field_path: str = ""


@dataclass(frozen=True, slots=True)
class SyncResult:
    plan: PodPlan
    retry_after: float | None = None
    """Seconds until the agent should sync again even without events (back-off, retries)."""


@dataclass
class _PodMemo:
    """What the runner remembers about a pod between syncs (in memory only)."""

    config_errors: dict[str, str] = field(default_factory=dict)
    network_error: str = ""
    volume_errors: dict[str, str] = field(default_factory=dict)
    volumes_missing: set[str] = field(default_factory=set)
    """Volumes never set up: the pod's containers wait for them."""
    volumes_written: dict[str, volumes.Payload] = field(default_factory=dict)
    """The payload last written per API-backed volume (to skip unchanged ones)."""
    host_volumes: dict[str, volumes.HostSource] = field(default_factory=dict)
    """hostPath and claim volumes whose host path was set up, by volume name: set up once,
    as the kubelet sets a volume up once for the pod, and what later (re)starts of its
    containers mount even if the claim changes meanwhile."""
    warned: set[tuple[str, str]] = field(default_factory=set)
    crash_backoff_told: dict[str, datetime] = field(default_factory=dict)
    """Container → the end of the crash-loop back-off its BackOff event was for."""
    image_backoff_told: dict[str, float] = field(default_factory=dict)
    """Container → the end of the image pull back-off its BackOff event was for."""
    image_waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Container → (ErrImagePull | ImagePullBackOff | ErrImageNeverPull | ImageInspectError |
    InvalidImageName, message)."""
    image_backoff: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Container → (monotonic time the next pull may start, the current back-off)."""
    sandbox_attempt: int = 0
    """The next sandbox's attempt number (the kubelet counts them: a failed sandbox keeps
    its name reserved in the runtime until removed)."""


@dataclass(frozen=True, slots=True)
class _Sandbox:
    """A CRI pod sandbox: its id, the pod's address, and what it was made from."""

    id: str
    ip: IPv4Interface
    spec: SandboxSpec | None = None


IMAGE_BACKOFF_INITIAL = 10.0
IMAGE_BACKOFF_MAX = 300.0
"""The kubelet's image pull back-off (``backOffPeriod``, ``MaxContainerBackOff``)."""
_SANDBOX_ID = re.compile(r"[0-9a-f]{64}")
"""A CRI sandbox id (containerd's: 64 hex digits); pod UIDs are UUIDs."""
PROCESS_HANDLER = "process"
"""The RuntimeClass handler of the process runtime (``runtimeClassName: process``)."""


CRI_CONCURRENCY = 8
"""Pods whose CRI calls (sandboxes, pulls, container starts) run at once."""


async def _bounded(coros: Iterable[Coroutine[Any, Any, T]],
                   limit: int = CRI_CONCURRENCY) -> list[T]:
    """Run ``coros`` concurrently, at most ``limit`` at a time; their results in order."""
    gate = asyncio.Semaphore(limit)

    async def gated(coro: Coroutine[Any, Any, T]) -> T:
        async with gate:
            return await coro

    return list(await asyncio.gather(*(gated(c) for c in coros)))


def _field_path(pod: Pod, container: str) -> str:
    """The kubelet's ``fieldPath`` of a container in its ObjectReference (names are unique
    across a pod's init and app containers)."""
    for c in (pod.get("spec") or {}).get("initContainers") or []:
        if isinstance(c, Mapping) and c.get("name") == container:
            return f"spec.initContainers{{{container}}}"
    return f"spec.containers{{{container}}}"


def _start_error(proc: ContainerProcess) -> bool:
    """Whether the runtime could not start the container at all (``StartError``)."""
    return isinstance(proc.state, Exited) and proc.state.reason == REASON_START_ERROR


def _go_millis(seconds: float) -> str:
    """A duration as the kubelet prints one truncated to milliseconds (``1.234s``)."""
    return go_duration(round(seconds * 1e9) // 1_000_000 * 1_000_000)


def _no_objects(kind: str, namespace: str, name: str) -> None:
    """The lookup of a runner given none: no ConfigMap or Secret exists."""
    return None


class PodRunner:
    def __init__(self, config: NodeConfig, *, network: Network, runtime: ProcessRuntime,
                 probes: ProbeManager, ipam: PodIPAM, clock: Clock,
                 on_change: Callable[[str], None] | None = None,
                 service_env: Callable[[Pod], Mapping[str, str]] | None = None,
                 objects: Lookup | None = None,
                 tokens: volumes.TokenLookup | None = None,
                 cri: CriRuntime | None = None,
                 pod_network: PodNetwork | None = None) -> None:
        self.config = config
        self.objects: Lookup = objects or _no_objects
        self.tokens = tokens
        self.events: list[PodEvent] = []
        """Events for the agent to record (see the module docstring)."""
        self.on_event: Callable[[], None] | None = None
        """Called when an event was queued."""
        self.network = network
        self.pod_network: PodNetwork = pod_network or CNIPodNetwork(self.conflist())
        """Pods' attachments to the node's pod network: the CNI plugin, in-process."""
        self.runtime = runtime
        self.probes = probes
        self.ipam = ipam
        self.clock = clock
        self.on_change = on_change
        self._service_env = service_env
        self._netns_ready: set[str] = set()
        self._backoff: Mapping[ContainerKey, podlib.BackoffEntry] = {}
        self._waiting: dict[str, dict[str, tuple[str, str]]] = {}
        self._memo: dict[str, _PodMemo] = {}
        self._stopping: dict[ContainerKey, asyncio.Task[None]] = {}
        self._probed: dict[ContainerKey, int] = {}
        """Container → pid of the run its probe trackers belong to."""
        self._pods: dict[str, Pod] = {}
        self._start_failed = False
        self.cri = cri
        self._sandboxes: dict[str, _Sandbox] = {}
        """Pod UID → its CRI sandbox (pods on the process runtime have none)."""
        runtime.on_exit = self._container_exited
        if cri is not None:
            cri.on_exit = self._container_exited
        probes.on_change = self._probe_changed
        probes.on_failure = self._probe_failed

    @classmethod
    def create(cls, config: NodeConfig, *, clock: Clock | None = None,
               on_change: Callable[[str], None] | None = None,
               service_env: Callable[[Pod], Mapping[str, str]] | None = None,
               objects: Lookup | None = None,
               tokens: volumes.TokenLookup | None = None) -> PodRunner:
        """The real thing: iproute2, ``ip netns exec`` processes, probes from the node netns,
        IPAM state in ``STATE/ipam.json``."""
        clock = clock or RealClock()
        endpoint = config.container_runtime_endpoint
        return cls(
            config, network=IPBatchNetwork(),
            runtime=NetnsProcessRuntime(config.state_dir, clock=clock),
            probes=ProbeManager(NetnsProbeExecutor(config.node_netns), clock),
            ipam=PodIPAM(config.pod_cidr, config.state_dir / "ipam.json"),
            clock=clock, on_change=on_change, service_env=service_env, objects=objects,
            tokens=tokens, cri=CriRuntime(endpoint) if endpoint else None)

    # --- lifecycle

    async def start(self) -> None:
        """Set up the node's pod network (idempotent) and adopt a previous agent's pods."""
        await self.ensure_node_network()
        if self.config.cni_conf_dir is not None:
            atomic_write(self.config.cni_conf_dir / CONFLIST_NAME, self.conflist())
        await self.runtime.adopt()
        if self.cri is not None:
            await self._adopt_cri(self.cri)
        existing = set(await self.network.list_netns(self.config.names.prefix))
        half_built: set[str] = set()
        for uid in self.ipam.allocations():
            netns = self.config.pod_names(uid).pod_netns
            if netns not in existing:
                continue
            if self._marker(uid).exists():
                self._netns_ready.add(uid)
            else:
                log.info("pod %s: removing half-built network namespace %s", uid, netns)
                half_built.add(uid)  # keeps its address: the next sync rebuilds it
                with contextlib.suppress(NetnsNotFound):
                    await self.network.delete_netns(netns)
        # CNI's garbage collection: an address whose owner (a sandbox, or a pod of the
        # process runtime with its network or a container) is gone was leaked by a crash.
        live = self._netns_ready | half_built | {s.id for s in self._sandboxes.values()}
        live |= {p.key.pod_uid for p in self.runtime.containers()}
        try:
            released = await self.pod_network.gc(live)
        except PodNetworkError as exc:
            log.warning("pod network garbage collection failed: %s", exc)
        else:
            if released:
                log.info("released the addresses of %d gone pod(s)", len(released))

    def conflist(self) -> str:
        """The node's CNI configuration: what containerd reads, and the in-process calls."""
        return node_conflist(self.config.names, self.config.node_netns,
                             str(self.config.pod_cidr), self.config.state_dir,
                             mtu=self.config.pod_mtu, subnet6=self.config.pod_cidr6)

    async def _adopt_cri(self, cri: CriRuntime) -> None:
        """Find the pods a previous agent left in containerd: their sandboxes (a pod with
        two keeps its newest ready one) and containers (by their labels)."""
        ready: dict[str, list[str]] = {}
        for sid, uid, is_ready in await cri.sandboxes():
            if is_ready:
                ready.setdefault(uid, []).append(sid)
            else:
                log.info("pod %s: removing stopped sandbox %s", uid, sid[:12])
                with contextlib.suppress(CriError):
                    await cri.remove_sandbox(sid)
        for uid, sids in ready.items():
            for stale in sids[1:]:
                with contextlib.suppress(CriError):
                    await cri.remove_sandbox(stale)
            try:
                ip = await cri.sandbox_ip(sids[0])
                self._sandboxes[uid] = _Sandbox(
                    sids[0], IPv4Interface(f"{ip}/{self.config.pod_cidr.prefixlen}"))
            except (CriError, ValueError) as exc:
                log.warning("pod %s: sandbox %s unusable (%s): removing it", uid,
                            sids[0][:12], exc)
                with contextlib.suppress(CriError):
                    await cri.remove_sandbox(sids[0])
        for proc in await cri.adopt():
            cri.set_log_dir(proc.key, str(podlib.log_path(
                self.config.state_dir, proc.key.pod_uid, proc.key.container, proc.attempt)))

    def uses_cri(self, pod: Pod) -> bool:
        """Whether the pod runs on containerd: every pod when the node has it, except those
        whose RuntimeClass is ``process``, and host-network pods: their host is the node's
        namespace, which containerd (in the machine's own, where a node's runtime runs)
        cannot give a container; the process runtime runs them there."""
        if self.cri is None or podlib.is_host_network(pod):
            return False
        return (pod.get("spec") or {}).get("runtimeClassName") != PROCESS_HANDLER

    def _runtime_of(self, key: ContainerKey) -> ProcessRuntime:
        if self.cri is not None and self.cri.get(key) is not None:
            return self.cri
        return self.runtime

    def _all_containers(self) -> list[ContainerProcess]:
        procs = self.runtime.containers()
        if self.cri is not None:
            procs += self.cri.containers()
        return procs

    def _network_ready(self, uid: str) -> bool:
        return uid in self._netns_ready or uid in self._sandboxes

    async def ensure_node_network(self) -> None:
        node = self.config.node_netns
        with contextlib.suppress(NetnsExists):
            await self.network.create_netns(node)
        await self.network.loopback_up(node)
        cidr6 = self.config.pod_cidr6
        gateway6 = None if cidr6 is None else pod_ipv6(self.ipam.gateway, self.config.pod_cidr,
                                                        cidr6)
        with contextlib.suppress(LinkExists):
            await self.network.create_bridge(
                node, POD_BRIDGE, self.ipam.gateway,
                mac=mac_for(self.ipam.gateway.ip), address6=gateway6)
        await self.network.set_sysctl(node, "net.ipv4.ip_forward", "1")
        if cidr6 is not None:
            await self.network.set_sysctl(node, "net.ipv6.conf.all.forwarding", "1")
        # Bridged pod-to-pod packets through the forward hook: Service replies on one node are
        # un-DNATed, and NetworkPolicies see them (svcnet/netpol/plan.py), as with kube-proxy.
        for key in BRIDGE_NETFILTER_SYSCTLS:
            try:
                await self.network.set_sysctl(node, key, "1")
            except OSError as e:
                log.warning("cannot set %s in %s (is br_netfilter loaded?): %s; pods on one "
                            "node reach each other around Service NAT and NetworkPolicies",
                            key, node, e)

    async def close(self) -> None:
        """Stop probing and watching (closing the probe executor); containers keep running
        for the next agent."""
        for task in list(self._stopping.values()):
            task.cancel()
        await asyncio.gather(*self._stopping.values(), return_exceptions=True)
        self._stopping.clear()
        await self.probes.close()
        await self.runtime.close()
        if self.cri is not None:
            await self.cri.close()

    # --- events

    def _container_exited(self, key: ContainerKey) -> None:
        self.probes.stop_container(key)
        self._probed.pop(key, None)
        self._notify(key.pod_uid)

    def _probe_changed(self, key: ContainerKey, kind: ProbeKind) -> None:
        self._notify(key.pod_uid)

    def _probe_failed(self, key: ContainerKey, kind: ProbeKind, message: str) -> None:
        if (pod := self._pods.get(key.pod_uid)) is not None:
            self._event(pod, WARNING, "Unhealthy",
                        f"{kind.value.capitalize()} probe failed: {message}",
                        _field_path(pod, key.container))

    def _notify(self, uid: str) -> None:
        if self.on_change is not None:
            self.on_change(uid)

    # --- state

    def actual_state(self) -> NodeState:
        by_pod: dict[str, dict[str, ContainerProcess]] = {}
        for proc in self._all_containers():
            by_pod.setdefault(proc.key.pod_uid, {})[proc.key.container] = proc
        # The IPAM file is shared with the CNI plugin: its CRI owners are sandbox ids, which
        # containerd, not this runner, releases (DEL on sandbox stop).
        process_owners = {o for o in self.ipam.allocations() if not _SANDBOX_ID.fullmatch(o)}
        uids = set(by_pod) | process_owners | set(self._sandboxes)
        pods = {}
        for uid in uids:
            containers = by_pod.get(uid, {})
            sandbox = self._sandboxes.get(uid)
            network = sandbox.ip if sandbox is not None else (
                self.ipam.get(uid) if uid in self._netns_ready else None)
            probes = {name: self.probes.status(ContainerKey(uid, name))
                      for name, proc in containers.items() if proc.running}
            pods[uid] = ActualPod(uid, network, containers, probes)
        return NodeState(pods, self._backoff)

    def actual_pod(self, uid: str) -> ActualPod | None:
        return self.actual_state().pods.get(uid)

    def pod_netns(self, pod: Pod) -> str | None:
        """Where ``svcnet exec`` runs commands for this pod (None: it has no network yet)."""
        uid = str(pod.get("metadata", {}).get("uid", ""))
        if podlib.is_host_network(pod):
            return self.config.node_netns
        return self.config.pod_names(uid).pod_netns if self._network_ready(uid) else None

    def errors(self, uid: str) -> dict[str, str]:
        """The pod's current setup problems, for Events: ``network`` (the kubelet's
        FailedCreatePodSandBox) and container names (CreateContainerConfigError)."""
        memo = self._memo.get(uid)
        if memo is None:
            return {}
        out = dict(memo.config_errors)
        out.update({f"volume {name}": err for name, err in memo.volume_errors.items()})
        if memo.network_error:
            out["network"] = memo.network_error
        return out

    def status(self, pod: Pod) -> dict[str, Any]:
        uid = str(pod.get("metadata", {}).get("uid", ""))
        waiting = dict(self._waiting.get(uid, {}))
        memo = self._memo.get(uid)
        if memo is not None:
            for name, message in memo.config_errors.items():
                waiting.setdefault(name, ("CreateContainerConfigError", message))
            for name, reason_message in memo.image_waiting.items():
                waiting.setdefault(name, reason_message)
        return podlib.pod_status(pod, self.actual_pod(uid), now=self.clock.now(),
                                 host_ip=self.config.host_ip, waiting=waiting,
                                 pod_cidr6=self.config.pod_cidr6, families=self.config.families)

    # --- sync

    async def sync(self, desired: Sequence[Pod]) -> SyncResult:
        self._pods = {str(p.get("metadata", {}).get("uid", "")): p for p in desired}
        now = self.clock.now()
        self._register_probes()
        plan = podlib.plan_pods(desired, self.actual_state(), now)
        self._backoff = plan.backoff
        self._waiting = {}
        for w in plan.waiting:
            self._waiting.setdefault(w.pod_uid, {})[w.container] = (w.reason, w.message)
            self._tell_crash_backoff(w)
        retry: list[float] = []
        if (wake := plan.next_wakeup) is not None:
            retry.append(max((wake - now).total_seconds(), 0.0))

        cri_gone = [u for u in plan.forget if u in self._sandboxes or (
            self.cri is not None and any(p.key.pod_uid == u for p in self.cri.containers()))]
        for uid in plan.forget:
            if uid not in cri_gone:
                await self._forget(uid)
        await _bounded(self._forget(uid) for uid in cri_gone)
        for stop in plan.stop:
            self._stop_in_background(stop)
        # CRI pods are forgotten, and their sandboxes set up and torn down, concurrently
        # (each is runtime calls and a CNI plugin process: 100 one after another would hold
        # the sync for a minute), as the kubelet's pod workers do; the process runtime's are
        # quick and go in order.
        cri_down = [u for u in plan.teardown_network if u in self._sandboxes]
        for uid in plan.teardown_network:
            if uid not in cri_down:
                await self._teardown_network(uid)
        await _bounded(self._teardown_network(uid) for uid in cri_down)
        cri_up = [self._pods[u] for u in plan.setup_network if self.uses_cri(self._pods[u])]
        for uid in plan.setup_network:
            if not self.uses_cri(self._pods[uid]) and not await self._setup_network(
                    self._pods[uid]):
                retry.append(NETWORK_RETRY)
        if not all(await _bounded(self._setup_sandbox(pod) for pod in cri_up)):
            retry.append(NETWORK_RETRY)
        for pod in desired:
            if not self._sync_volumes(pod):
                retry.append(NETWORK_RETRY)
        await self._start_planned(plan, retry)
        self._register_probes()
        return SyncResult(plan, min(retry) if retry else None)

    async def _start_planned(self, plan: PodPlan, retry: list[float]) -> None:
        self._start_failed = False
        cri_starts: dict[str, list[podlib.StartContainer]] = {}
        for start in plan.start:
            pod = self._pods[start.pod_uid]
            if not self._network_ready(start.pod_uid) and not podlib.is_host_network(pod):
                continue  # its network failed above; the retry will start it
            if self._memo.get(start.pod_uid, _PodMemo()).volumes_missing:
                continue  # ContainerCreating until its volumes can be set up
            if self.uses_cri(pod):
                cri_starts.setdefault(start.pod_uid, []).append(start)
            elif not await self._start(pod, start):
                retry.append(NETWORK_RETRY)

        async def start_pod(starts: list[podlib.StartContainer]) -> None:
            for start in starts:  # a pod's containers in the plan's order
                if (wait := await self._start_cri(self._pods[start.pod_uid], start)) is not None:
                    retry.append(wait)

        await _bounded(start_pod(starts) for starts in cri_starts.values())
        if self._start_failed:
            retry.append(0.0)

    # --- network

    async def _setup_network(self, pod: Pod) -> bool:
        uid = str(pod["metadata"]["uid"])
        names = self.config.pod_names(uid)
        memo = self._memo.setdefault(uid, _PodMemo())
        try:
            # Reserve the address before the netns (see the module docstring); the CNI ADD
            # below finds it (allocation is idempotent per owner).
            ip = self.ipam.allocate(uid)
        except IPAMError as exc:
            memo.network_error = str(exc)
            log.warning("pod %s: no IP: %s", uid, exc)
            return False
        try:
            await self.network.create_netns(names.pod_netns)
        except NetnsExists:
            # Not ours: start() deleted our own half-built ones. Another pod's netns has
            # this name (a 20-bit hash collision, maybe on another node): never touch it.
            memo.network_error = (f"network namespace {names.pod_netns} already exists "
                                  "(pod UID hash collision?)")
            log.warning("pod %s: %s", uid, memo.network_error)
            self.ipam.release(uid)
            return False
        except (NetworkError, OSError) as exc:
            memo.network_error = str(exc)
            log.warning("pod %s: network setup failed: %s", uid, exc)
            return False
        try:
            result = await self.pod_network.add(uid, names.pod_netns, uid)
            if result.ip != ip:
                raise PodNetworkError(f"the CNI plugin gave {result.ip}, reserved was {ip}")
            await self.network.write_etc_file(names.pod_netns, "resolv.conf",
                                              self._pod_dns(pod, memo).resolv_conf())
            await self.network.write_etc_file(names.pod_netns, "hosts", etchosts.managed_hosts(
                pod, self._pod_ips(result.ip), self.config.cluster_domain))
        except (NetworkError, PodNetworkError, OSError, ValueError) as exc:
            memo.network_error = str(exc)
            log.warning("pod %s: network setup failed: %s", uid, exc)
            with contextlib.suppress(PodNetworkError):
                await self.pod_network.delete(uid, names.pod_netns, uid)
            with contextlib.suppress(NetworkError):
                await self.network.delete_netns(names.pod_netns)
            return False
        atomic_write(self._marker(uid), json.dumps({"netns": names.pod_netns,
                                                    "ip": str(ip)}) + "\n")
        memo.network_error = ""
        self._netns_ready.add(uid)
        return True

    def _marker(self, uid: str) -> Path:
        """Written once a pod's network is complete: after a crash, a pod netns without it
        was half-built by us (we allocated its IP first) and is rebuilt."""
        return self.config.state_dir / "pods" / uid / "network.json"

    def _pod_dns(self, pod: Pod, memo: _PodMemo) -> PodDNS:
        """The pod's DNS settings, as the kubelet forms them (dnsconfig.py), from the node's
        resolv.conf read now (the kubelet reads it for every pod too); its warnings become
        the pod's Events. ValueError when the node's resolv.conf cannot be read, or has a
        ``nameserver`` line without an address (the kubelet's parse error)."""
        host: ResolvConf | None = None
        if self.config.resolv_conf is not None:
            try:
                host = resolvconf.read(self.config.resolv_conf)
            except OSError as exc:
                raise ValueError(f"reading the node's resolv.conf: {exc}") from exc
            if host.errors:  # the kubelet fails the pod's sandbox on these too
                raise ValueError(f"{self.config.resolv_conf}: {'; '.join(host.errors)}")
        dns = pod_dns(pod, host=host, cluster_dns=self.config.cluster_dns,
                      cluster_domain=self.config.cluster_domain,
                      node_ips=(self.config.host_ip,))
        for reason, message in dns.warnings:
            self._warn(pod, memo, reason, message)
        return dns

    def _sandbox_spec(self, pod: Pod) -> SandboxSpec:
        """The pod's sandbox: logs in its directory, cgroups under the node's."""
        uid = str(pod["metadata"]["uid"])
        return crispec.sandbox_spec(
            pod, log_directory=str(self._pod_dir(uid)),
            cgroup_root=f"/{self.config.node_netns}",
            dns=self._pod_dns(pod, self._memo.setdefault(uid, _PodMemo())))

    async def _setup_sandbox(self, pod: Pod) -> bool:
        """RunPodSandbox: containerd makes the pod's netns and runs the CNI plugin in it."""
        assert self.cri is not None
        uid = str(pod["metadata"]["uid"])
        memo = self._memo.setdefault(uid, _PodMemo())
        self._pod_dir(uid).mkdir(parents=True, exist_ok=True)
        try:
            spec = self._sandbox_spec(pod)
            sid = await self.cri.run_sandbox(spec, memo.sandbox_attempt)
            ip = await self.cri.sandbox_ip(sid)
            self._sandboxes[uid] = _Sandbox(
                sid, IPv4Interface(f"{ip}/{self.config.pod_cidr.prefixlen}"), spec)
        except (CriError, ValueError) as exc:
            memo.network_error = f"Failed to create pod sandbox: {exc}"
            log.warning("pod %s: %s", uid, memo.network_error)
            self._warn(pod, memo, "FailedCreatePodSandBox", memo.network_error)
            memo.sandbox_attempt += 1
            with contextlib.suppress(CriError):  # what the failed attempt left
                for sid, owner, _ready in await self.cri.sandboxes():
                    if owner == uid:
                        await self.cri.remove_sandbox(sid)
            return False
        memo.network_error = ""
        return True

    async def _teardown_network(self, uid: str) -> None:
        if (sandbox := self._sandboxes.pop(uid, None)) is not None and self.cri is not None:
            try:
                await self.cri.remove_sandbox(sandbox.id)
            except CriError as exc:
                log.warning("pod %s: removing sandbox %s: %s", uid, sandbox.id[:12], exc)
                self._sandboxes[uid] = sandbox  # the next sync tries again
            return
        names = self.config.pod_names(uid)
        try:
            await self.pod_network.delete(uid, names.pod_netns, uid)
        except PodNetworkError as exc:
            log.warning("pod %s: CNI DEL: %s", uid, exc)
        with contextlib.suppress(NetnsNotFound):
            await self.network.delete_netns(names.pod_netns)
        self._netns_ready.discard(uid)
        self._marker(uid).unlink(missing_ok=True)
        self.ipam.release(uid)  # only after the netns is gone: see the module docstring

    # --- containers

    def _container_spec(self, pod: Pod, name: str, init: bool) -> Mapping[str, Any]:
        key = "initContainers" if init else "containers"
        for c in pod.get("spec", {}).get(key) or []:
            if c.get("name") == name:
                return dict(c)
        raise KeyError(name)

    def _api_pod_ip(self, uid: str, host_net: bool) -> str:
        """The pod's primary address as its status shows it ("" before it has one)."""
        if host_net:
            return self.config.host_ip
        ip = self.ipam.get(uid)
        return "" if ip is None else self._pod_ips(ip)[0]

    def _pod_ips(self, ip: IPv4Interface) -> list[str]:
        """A pod's addresses as its status shows them, from its allocated IPv4 address."""
        return api_pod_ips(ip, self.config.pod_cidr6, self.config.families)

    async def _start(self, pod: Pod, start: podlib.StartContainer) -> bool:
        uid = start.pod_uid
        container = self._container_spec(pod, start.container, start.init)
        host_net = podlib.is_host_network(pod)
        pod_ip = self._api_pod_ip(uid, host_net)
        netns = self.config.node_netns if host_net else self.config.pod_names(uid).pod_netns
        memo = self._memo.setdefault(uid, _PodMemo())
        try:
            resolved = podenv.container_env(
                pod, container, self.objects, pod_ip=pod_ip, host_ip=self.config.host_ip,
                node_name=self.config.node_name, allocatable=self.config.allocatable,
                service_env=self._service_env(pod) if self._service_env else None)
            spec = podlib.container_process_spec(
                pod, container, netns=netns,
                log_file=podlib.log_path(self.config.state_dir, uid, start.container,
                                         start.attempt),
                attempt=start.attempt, pod_ip=pod_ip, host_ip=self.config.host_ip,
                node_name=self.config.node_name, resolved=resolved,
                mount_plan=self._mount_plan(pod, container, resolved.env))
        except podlib.ConfigError as exc:
            memo.config_errors[start.container] = str(exc)
            self._warn(pod, memo, "Failed", f"Error: {exc}", _field_path(pod, start.container))
            return False
        memo.config_errors.pop(start.container, None)
        for reason, message in resolved.warnings:
            self._warn(pod, memo, reason, message)
        self._prune_logs(uid, start.container, start.attempt)
        proc = await self.runtime.start(start.key, spec)
        self._tell_start(pod, proc, created=True)  # an exec that fails comes after creation
        self._after_start(proc, container, ProbeContext(
            pod_ip, netns, dict(spec.env), spec.working_dir), spec.mount_plan is not None)
        return True

    def _after_start(self, proc: ContainerProcess, container: Mapping[str, Any],
                     ctx: ProbeContext, enter_mounts: bool) -> None:
        """Probes for a container that started; for one that did not, another sync."""
        if isinstance(proc.state, Running):
            if enter_mounts:  # exec probes run in its mount namespace (volumes, image)
                ctx = dataclasses.replace(ctx, container_pid=proc.state.pid)
            self._start_probes(proc, container, ctx)
            return
        # It could not start, and no process exit will ever announce that: ask for another
        # sync straight away, which restarts it or puts it in back-off as the policy says.
        self._start_failed = True

    async def _start_cri(self, pod: Pod, start: podlib.StartContainer) -> float | None:
        """Pull the image (as its policy says, with back-off after failures), then create
        and start the container in the pod's sandbox. Returns seconds until a retry is
        due, or None."""
        assert self.cri is not None
        uid = start.pod_uid
        container = self._container_spec(pod, start.container, start.init)
        sandbox = self._sandboxes[uid]
        memo = self._memo.setdefault(uid, _PodMemo())
        image = str(container.get("image", ""))
        if (problem := crispec.image_reference_problem(image)) is not None:
            memo.image_waiting[start.container] = ("InvalidImageName", problem)
            self._warn(pod, memo, "InspectFailed", problem, _field_path(pod, start.container))
            return None
        try:
            resolved = podenv.container_env(
                pod, container, self.objects, pod_ip=str(sandbox.ip.ip),
                host_ip=self.config.host_ip, node_name=self.config.node_name,
                allocatable=self.config.allocatable,
                service_env=self._service_env(pod) if self._service_env else None)
            auths = cri_auths(self._pull_secrets(pod), image)
        except podlib.ConfigError as exc:
            memo.config_errors[start.container] = str(exc)
            self._warn(pod, memo, "Failed", f"Error: {exc}", _field_path(pod, start.container))
            return NETWORK_RETRY
        memo.config_errors.pop(start.container, None)
        if (wait := await self._ensure_image(pod, memo, start.container, image,
                                             crispec.image_pull_policy(container),
                                             auths)) is not None:
            return wait
        if crispec.run_as_non_root(pod, container) and (
                problem := crispec.run_as_non_root_problem(
                    pod, container, await self.cri.image_user(image))) is not None:
            memo.config_errors[start.container] = problem
            self._warn(pod, memo, "Failed", f"Error: {problem}",
                       _field_path(pod, start.container))
            return NETWORK_RETRY
        env = {"HOSTNAME": sandbox.spec.hostname if sandbox.spec else etchosts.pod_hostname(pod)}
        env.update(resolved.env)
        for reason, message in resolved.warnings:
            self._warn(pod, memo, reason, message)
        spec_cri = crispec.container_spec(
            pod, container, resolved.env, sandbox_id=sandbox.id,
            sandbox=sandbox.spec or self._sandbox_spec(pod))
        spec = ProcessSpec(
            argv=(), env=env, working_dir=container.get("workingDir") or None,
            log_path=podlib.log_path(self.config.state_dir, uid, start.container,
                                     start.attempt),
            attempt=start.attempt, cri=spec_cri,
            mount_plan=self._with_hosts_file(pod, sandbox.ip,
                                             self._mount_plan(pod, container, resolved.env)))
        self._prune_logs(uid, start.container, start.attempt)
        proc = await self.cri.start(start.key, spec)
        # CreateContainer and StartContainer are one call here: a failed start may have
        # failed to create, and is told without Created.
        self._tell_start(pod, proc, created=not _start_error(proc))
        self._after_start(proc, container, self._cri_probe_context(
            start.key, container, str(sandbox.ip.ip), env, spec.working_dir), True)
        return None

    async def _ensure_image(self, pod: Pod, memo: _PodMemo, name: str, image: str,
                            policy: str, auths: Sequence[Mapping[str, str]]) -> float | None:
        """The kubelet's image manager (``EnsureImageExists``): pull the image as its
        policy says, with a back-off after failures, telling the pod's Events. None when
        the image is there; else seconds until it is worth trying again."""
        assert self.cri is not None
        path = _field_path(pod, name)
        now = self.clock.monotonic()
        due, delay = memo.image_backoff.get(name, (0.0, 0.0))
        if now < due:
            message = f'Back-off pulling image "{image}"'
            memo.image_waiting[name] = ("ImagePullBackOff", message)
            if memo.image_backoff_told.get(name) != due:  # once per back-off step
                memo.image_backoff_told[name] = due
                self._event(pod, NORMAL, "BackOff", message, path)
                self._event(pod, WARNING, "Failed", "Error: ImagePullBackOff", path)
            return due - now
        failed: tuple[str, str] | None = None  # the container's waiting reason and message
        try:
            present = await self.cri.image_ref(image) is not None
        except CriError as exc:
            failed = ("ImageInspectError", f'Failed to inspect image "{image}": {exc}')
            self._event(pod, WARNING, "InspectFailed", failed[1], path)
        else:
            if not should_pull(policy, present) and present:
                self._event(pod, NORMAL, "Pulled",
                            f'Container image "{image}" already present on machine', path)
            elif not should_pull(policy, present):
                failed = ("ErrImageNeverPull", f'Container image "{image}" is not present '
                                               "with pull policy of Never")
                self._event(pod, WARNING, "ErrImageNeverPull", failed[1], path)
            else:
                failed = await self._pull(pod, path, image, auths, since=now)
        if failed is None:
            memo.image_backoff.pop(name, None)
            memo.image_waiting.pop(name, None)
            return None
        self._event(pod, WARNING, "Failed", f"Error: {failed[0]}", path)
        delay = min(max(delay * 2, IMAGE_BACKOFF_INITIAL), IMAGE_BACKOFF_MAX)
        memo.image_backoff[name] = (now + delay, delay)
        memo.image_waiting[name] = failed
        return delay

    async def _pull(self, pod: Pod, path: str, image: str, auths: Sequence[Mapping[str, str]],
                    *, since: float) -> tuple[str, str] | None:
        """Pull, telling Pulling and then Pulled or Failed; the waiting reason and message
        if it failed. Pulls are not queued here (the pod's CRI calls are, before), so the
        time "including waiting" is the pull's and the image lookup's before it."""
        assert self.cri is not None
        self._event(pod, NORMAL, "Pulling", f'Pulling image "{image}"', path)
        started = self.clock.monotonic()
        try:
            pulled = await self.cri.pull_image(image, auths)
        except PullError as exc:
            self._event(pod, WARNING, "Failed", f'Failed to pull image "{image}": {exc}', path)
            return ("ErrImagePull", str(exc))
        end = self.clock.monotonic()
        self._event(pod, NORMAL, "Pulled",
                    f'Successfully pulled image "{image}" in {_go_millis(end - started)} '
                    f"({_go_millis(end - since)} including waiting). Image size: "
                    f"{pulled.size} bytes.", path)
        return None

    def _cri_probe_context(self, key: ContainerKey, container: Mapping[str, Any], pod_ip: str,
                           env: Mapping[str, str], working_dir: str | None) -> ProbeContext:
        """Exec probes of a CRI container go through ``ExecSync``, bounded by the longest
        probe timeout of the container (the probe itself is cancelled at its own)."""
        cri = self.cri
        assert cri is not None
        timeout = max((p.timing.timeout for p in container_probes(container)), default=1.0)

        async def exec_sync(argv: list[str]) -> tuple[int, bytes]:
            return await cri.exec_sync(key, argv, timeout)

        return ProbeContext(pod_ip, self.config.pod_names(key.pod_uid).pod_netns, dict(env),
                            working_dir, exec_sync=exec_sync)

    def _pull_secrets(self, pod: Pod) -> list[Mapping[str, Any]]:
        """The ``.dockerconfigjson`` documents of the pod's ``imagePullSecrets`` (the API
        server's ServiceAccount admission already added the account's)."""
        namespace = str(pod["metadata"].get("namespace") or "default")
        docs = []
        for ref in (pod.get("spec") or {}).get("imagePullSecrets") or []:
            name = ref.get("name") if isinstance(ref, Mapping) else None
            secret = self.objects("Secret", namespace, str(name)) if name else None
            raw = ((secret or {}).get("data") or {}).get(".dockerconfigjson")
            if raw:
                with contextlib.suppress(ValueError):
                    docs.append(json.loads(base64.b64decode(raw)))
        return docs

    def _event(self, pod: Pod, event_type: str, reason: str, message: str,
               field_path: str = "") -> None:
        """Queue an Event (see the module docstring)."""
        self.events.append(PodEvent(pod, event_type, reason, message, field_path))
        if self.on_event is not None:
            self.on_event()

    def _warn(self, pod: Pod, memo: _PodMemo, reason: str, message: str,
              field_path: str = "") -> None:
        """Queue a Warning Event, once per pod and message: for problems every sync finds
        again (the recorder counts the repeats of other events)."""
        if (reason, message) not in memo.warned:
            memo.warned.add((reason, message))
            self._event(pod, WARNING, reason, message, field_path)

    def _tell_start(self, pod: Pod, proc: ContainerProcess, *, created: bool) -> None:
        """The kubelet's ``startContainer`` events: Created, then Started or the error."""
        name = proc.key.container
        path = _field_path(pod, name)
        if created:
            self._event(pod, NORMAL, "Created", f"Created container: {name}", path)
        if isinstance(proc.state, Exited) and _start_error(proc):
            self._event(pod, WARNING, "Failed", f"Error: {proc.state.message}", path)
        else:
            self._event(pod, NORMAL, "Started", f"Started container {name}", path)

    def _tell_crash_backoff(self, waiting: podlib.Waiting) -> None:
        """BackOff, once per step of a container's crash-loop back-off."""
        pod = self._pods.get(waiting.pod_uid)
        if pod is None or waiting.reason != "CrashLoopBackOff":
            return
        memo = self._memo.setdefault(waiting.pod_uid, _PodMemo())
        if memo.crash_backoff_told.get(waiting.container) != waiting.until:
            memo.crash_backoff_told[waiting.container] = waiting.until
            self._event(pod, WARNING, "BackOff",
                        f"Back-off restarting failed container {waiting.container} in pod "
                        f"{podlib.format_pod(pod)}", _field_path(pod, waiting.container))

    # --- volumes

    def _pod_dir(self, uid: str) -> Path:
        return self.config.state_dir / "pods" / uid

    def _mount_plan(self, pod: Pod, container: Mapping[str, Any],
                    env: Mapping[str, str]) -> dict[str, Any] | None:
        uid = str(pod["metadata"]["uid"])
        mounts = volumes.container_mounts(pod, container, self._pod_dir(uid), env,
                                          self.objects, self._host_volumes(uid))
        if not mounts:
            return None
        staging = self._pod_dir(uid) / "mounts" / str(container["name"])
        staging.mkdir(parents=True, exist_ok=True)
        return {"staging": str(staging),
                "mounts": [{"source": m.source, "target": m.target, "read_only": m.read_only,
                            "volume": m.volume} for m in mounts]}

    def _host_volumes(self, uid: str) -> Mapping[str, volumes.HostSource]:
        memo = self._memo.get(uid)
        return memo.host_volumes if memo is not None else {}

    def _with_hosts_file(self, pod: Pod, ip: IPv4Interface,
                         plan: dict[str, Any] | None) -> dict[str, Any]:
        """A CRI container's mount plan with the pod's hosts file (written now, as the
        kubelet's ``makeHostsMount`` does for each container it creates) mounted at
        /etc/hosts, unless one of its own mounts goes there."""
        plan = plan if plan is not None else {"mounts": []}
        if any(m["target"] == etchosts.HOSTS_PATH for m in plan["mounts"]):
            return plan
        path = self._pod_dir(str(pod["metadata"]["uid"])) / "etc-hosts"
        atomic_write(path, etchosts.managed_hosts(pod, self._pod_ips(ip),
                                                  self.config.cluster_domain), mode=0o644)
        return {**plan, "mounts": [*plan["mounts"], {"source": str(path),
                                                     "target": etchosts.HOSTS_PATH,
                                                     "read_only": False}]}

    def _sync_volumes(self, pod: Pod) -> bool:
        """Write the pod's API-backed volumes (again, if their content changed), make its
        emptyDirs, and check (or create) the host paths of its hostPath volumes and bound
        claims (:mod:`.hostpath`); False if one failed. A volume that never could be set up
        keeps the pod's containers waiting (``volumes_missing``); one that was, and fails
        later (its ConfigMap deleted), keeps its last content, as a mounted kubelet volume
        does."""
        uid = str(pod.get("metadata", {}).get("uid", ""))
        if pod.get("metadata", {}).get("deletionTimestamp") or podlib.is_terminal_phase(
                (pod.get("status") or {}).get("phase")):
            return True
        specs = [v for v in (pod.get("spec") or {}).get("volumes") or []
                 if isinstance(v, Mapping) and v.get("name")]
        if not specs:
            return True
        memo = self._memo.setdefault(uid, _PodMemo())
        for vol in specs:
            name = str(vol["name"])
            if volumes.volume_kind(vol) in volumes.HOST_VOLUMES:
                self._set_up_host_volume(pod, memo, vol)
                continue
            target = volumes.volume_dir(self._pod_dir(uid), vol)
            try:
                payload = volumes.volume_payload(pod, vol, self.objects,
                                                 self.config.allocatable, self.tokens)
                if payload is None:
                    if volumes.volume_kind(vol) == "emptyDir" and not target.is_dir():
                        target.mkdir(parents=True)
                        target.chmod(0o777)
                elif memo.volumes_written.get(name) != payload:
                    if write_payload(target, payload):
                        log.info("pod %s: volume %s written", uid, name)
                    memo.volumes_written[name] = payload
            except (podlib.ConfigError, OSError) as exc:
                message = f"MountVolume.SetUp failed for volume {go_quote(name)} : {exc}"
                if memo.volume_errors.get(name) != message:
                    log.warning("pod %s: %s", uid, message)
                    self._warn(pod, memo, "FailedMount", message)
                memo.volume_errors[name] = message
                if read_payload(target) is None and volumes.volume_kind(vol) != "emptyDir":
                    memo.volumes_missing.add(name)
                continue
            memo.volume_errors.pop(name, None)
            memo.volumes_missing.discard(name)
        return not memo.volume_errors

    def _set_up_host_volume(self, pod: Pod, memo: _PodMemo, vol: Mapping[str, Any]) -> None:
        """A hostPath volume or a claim: its host path checked (made, for the ``OrCreate``
        types) before the containers start, each time the pod syncs as the kubelet's
        reconciler does until it is mounted. A claim that is not usable yet keeps them
        waiting with the volume populator's message, in the Event the kubelet's pod sync
        records (``Unable to attach or mount volumes: ...``); a failed check with the
        plugin's, as ``MountVolume.SetUp`` (or ``NewMounter``) failed."""
        uid = str(pod.get("metadata", {}).get("uid", ""))
        name = str(vol["name"])
        if name in memo.host_volumes:
            return  # set up: containers (re)start with it, as with a mounted kubelet volume
        spec_name = name
        try:
            source = volumes.host_source(pod, vol, self.objects)
            assert source is not None
            spec_name = source.spec_name
            hostpath.set_up(source)
        except volumes.ClaimError as exc:
            message = (f"Unable to attach or mount volumes: unmounted volumes=[{name}], "
                       f"unattached volumes=[], failed to process volumes=[{name}]: {exc}")
        except hostpath.NewMounterError as exc:
            message = (f"MountVolume.NewMounter initialization failed for volume "
                       f"{go_quote(spec_name)} : {exc}")
        except (podlib.ConfigError, OSError) as exc:
            message = f"MountVolume.SetUp failed for volume {go_quote(spec_name)} : {exc}"
        else:
            memo.volume_errors.pop(name, None)
            memo.volumes_missing.discard(name)
            memo.host_volumes[name] = source
            if source.plugin == volumes.HOST_PATH and source.type:
                log.info("pod %s: volume %s: %s checked", uid, name, source.path)
            return
        if memo.volume_errors.get(name) != message:
            log.warning("pod %s: %s", uid, message)
            self._warn(pod, memo, "FailedMount", message)
        memo.volume_errors[name] = message
        memo.volumes_missing.add(name)

    def _prune_logs(self, uid: str, container: str, attempt: int) -> None:
        """Keep the logs of this run and the previous one (``kubectl logs --previous``)."""
        directory = podlib.log_path(self.config.state_dir, uid, container, 0).parent
        if not directory.is_dir():
            return
        for path in directory.glob("*.log"):
            if path.stem.isdigit() and int(path.stem) < attempt - 1:
                path.unlink(missing_ok=True)

    def _start_probes(self, proc: ContainerProcess, container: Mapping[str, Any],
                      ctx: ProbeContext) -> None:
        assert isinstance(proc.state, Running)
        specs = container_probes(container)
        if specs:
            # The runtime stamps wall-clock start times; probes count on the monotonic clock.
            age = (self.clock.now() - proc.state.started_at).total_seconds()
            started = self.clock.monotonic() - max(age, 0.0)
            self.probes.start_container(proc.key, specs, ctx, started)
        self._probed[proc.key] = proc.state.pid

    def _register_probes(self) -> None:
        """Give probe trackers to running containers that have none for their current run
        (adopted after a restart, or started before their pod spec was known)."""
        for proc in self._all_containers():
            state = proc.state
            if not isinstance(state, Running) or self._probed.get(proc.key) == state.pid:
                continue
            pod = self._pods.get(proc.key.pod_uid)
            if pod is None:
                continue
            try:
                container = self._container_spec(pod, proc.key.container, False)
            except KeyError:
                continue
            self._start_probes(proc, container, self.exec_context(pod, container))

    def exec_context(self, pod: Pod, container: Mapping[str, Any]) -> ProbeContext:
        """Where and how a command runs "in" a container (probes, ``kubectl exec``): the
        pod's netns, the container's environment and working directory, and, when the
        container has volumes, its main process (whose mount namespace shows them)."""
        uid = str(pod.get("metadata", {}).get("uid", ""))
        host_net = podlib.is_host_network(pod)
        pod_ip = self._api_pod_ip(uid, host_net)
        netns = self.config.node_netns if host_net else self.config.pod_names(uid).pod_netns
        try:
            spec = podlib.container_process_spec(
                pod, container, netns=netns, log_file=Path("/dev/null"), attempt=0,
                pod_ip=pod_ip, host_ip=self.config.host_ip, node_name=self.config.node_name,
                lookup=self.objects, allocatable=self.config.allocatable,
                service_env=self._service_env(pod) if self._service_env else None)
            mounts = volumes.container_mounts(pod, container, self._pod_dir(uid), spec.env,
                                              self.objects, self._host_volumes(uid))
        except podlib.ConfigError:
            return ProbeContext(pod_ip, netns)
        cri = self.uses_cri(pod)
        pid = self._running_pid(uid, str(container.get("name", ""))) if mounts or cri else None
        if cri:
            sandbox = self._sandboxes.get(uid)
            ctx = self._cri_probe_context(ContainerKey(uid, str(container.get("name", ""))),
                                          container, str(sandbox.ip.ip) if sandbox else pod_ip,
                                          spec.env, spec.working_dir)
            return dataclasses.replace(ctx, container_pid=pid)
        return ProbeContext(pod_ip, netns, dict(spec.env), spec.working_dir, pid)

    def _running_pid(self, uid: str, container: str) -> int | None:
        for proc in self._all_containers():
            if proc.key.pod_uid == uid and proc.key.container == container and \
                    isinstance(proc.state, Running):
                return proc.state.pid
        return None

    def log_files(self, uid: str, container: str) -> list[Path]:
        return podlib.log_files(self.config.state_dir, uid, container)

    def runtime_of(self, uid: str, container: str) -> ProcessRuntime:
        """The runtime that holds the container (the process runtime if none does)."""
        return self._runtime_of(ContainerKey(uid, container))

    def sandbox(self, uid: str) -> tuple[CriRuntime, str] | None:
        """The pod's CRI runtime and sandbox id, if it runs on one (port-forward goes through
        the runtime's streaming server then)."""
        sandbox = self._sandboxes.get(uid)
        if sandbox is None or self.cri is None:
            return None
        return self.cri, sandbox.id

    def cri_logs(self, uid: str) -> bool:
        if self.cri is None:
            return False
        pod = self._pods.get(uid)
        if pod is not None:
            return self.uses_cri(pod)
        return any(p.key.pod_uid == uid for p in self.cri.containers())

    def _stop_in_background(self, plan: podlib.StopContainer) -> None:
        key, grace = plan.key, plan.grace
        if key in self._stopping:
            return
        log.info("stopping container %s (%s, grace %gs)", key, plan.message, grace)
        if (pod := self._pods.get(key.pod_uid)) is not None:
            self._event(pod, NORMAL, "Killing", plan.message, _field_path(pod, key.container))

        async def stop() -> None:
            try:
                await self._runtime_of(key).stop(key, grace)
            except Exception:
                log.exception("stopping container %s failed", key)
            finally:
                self._stopping.pop(key, None)
                self._notify(key.pod_uid)

        self._stopping[key] = asyncio.create_task(stop(), name=f"stop {key}")

    async def wait_stopped(self) -> None:
        """Wait for every background stop (tests, shutdown)."""
        while self._stopping:
            await asyncio.gather(*self._stopping.values(), return_exceptions=True)

    async def _forget(self, uid: str) -> None:
        keys = [p.key for p in self._all_containers() if p.key.pod_uid == uid]
        for key in keys:
            self.probes.stop_container(key)
            self._probed.pop(key, None)
            if (task := self._stopping.get(key)) is not None:
                await asyncio.gather(task, return_exceptions=True)
            runtime = self._runtime_of(key)
            await runtime.stop(key, podlib.ORPHAN_GRACE)
            await runtime.remove(key)
        await self._teardown_network(uid)
        self._memo.pop(uid, None)
        self._waiting.pop(uid, None)
        shutil.rmtree(self.config.state_dir / "pods" / uid, ignore_errors=True)

