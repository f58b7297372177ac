"""Node controllers of the control plane: pod CIDR assignment and node lifecycle.

**Node IPAM** (kube-controller-manager's ``nodeipam`` range allocator,
``pkg/controller/nodeipam/ipam/range_allocator.go`` and ``cidrset/cidr_set.go``): every Node gets
a ``spec.podCIDR`` (and ``podCIDRs``), a /24 out of the cluster CIDR (10.244.0.0/16 by default);
on a dual-stack cluster (an IPv4,IPv6 pair of cluster CIDRs) also a /64 of the IPv6 one, so
``podCIDRs`` holds one subnet per family, in the cluster CIDRs' order.
As upstream, the set of subnets in use is kept in memory (:class:`CIDRSet`) and rebuilt from the
Nodes themselves: the informer's first list marks every Node's subnet used before any is handed
out, so the API is the only record and the controller talks to nothing else. A node agent may
ask for a specific subnet when it registers (``svcnet up`` gives node ``i`` ``10.244.<i>.0/24``);
it is then marked used (a warning Event if another Node already has it). A deleted Node's subnet
is freed. One controller instance hands subnets out at a time (the controller manager is one
process; with several servers it is the leader-elected one).

**Node lifecycle** (``nodelifecycle``): node agents renew a Lease in ``kube-node-lease`` every
few seconds. A node whose lease (or, lacking one, whose Ready condition heartbeat) is older than
``grace`` (40 s by default) gets its Ready condition set to ``Unknown``
("Kubelet stopped posting node status."), and the pods bound to it get ``Ready=False``, so the
EndpointSlice controller takes them out of Services. When the agent is back it writes Ready
itself, and its pods' status with it. The check is a periodic, level-triggered pass: the
decision is the pure :func:`stale_nodes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from svcnet.api.errors import StatusError
from svcnet.client.controller import Controller, RequeueError
from svcnet.client.events import EventRecorder
from svcnet.client.informer import EventHandler, Informer, InformerFactory, object_key
from svcnet.client.rest import LEASES, NODES, PODS, PatchType, RESTClient
from svcnet.util.clock import Clock, RealClock, parse_time, rfc3339

log = logging.getLogger(__name__)

Obj = dict[str, Any]
IPAM_COMPONENT: Final = "node-ipam-controller"
LIFECYCLE_COMPONENT: Final = "node-lifecycle-controller"
DEFAULT_GRACE: Final = timedelta(seconds=40)
LEASE_NAMESPACE: Final = "kube-node-lease"


class CIDRSet:
    """The subnets of size ``/prefix`` of ``cluster_cidr``, and which are in use (pure).

    Subnet ``i`` is the ``i``-th one; subnet 0 (10.244.0.0/24) is never handed out: node ``i``
    of a local cluster owns ``10.244.<i>.0/24`` and there is no node 0. The next free subnet is
    searched from after the last one handed out, wrapping around, as cidr_set.go does.
    """

    def __init__(self, cluster_cidr: str, prefix: int = 24) -> None:
        net = ipaddress.ip_network(cluster_cidr.strip(), strict=True)
        if not net.prefixlen < prefix <= net.max_prefixlen:
            raise ValueError(f"cannot cut {cluster_cidr} into /{prefix} subnets")
        self.network = net
        self.prefix = prefix
        self.size = min(1 << (prefix - net.prefixlen), 1 << 16)
        self._used: set[int] = set()
        self._next = 1

    def describe(self) -> str:
        return f"{self.network} in /{self.prefix} subnets"

    def index_of(self, cidr: str) -> int | None:
        """The subnet's index, or None if it is not one of this set's subnets."""
        try:
            net = ipaddress.ip_network(cidr, strict=True)
        except ValueError:
            return None
        if net.version != self.network.version or net.prefixlen != self.prefix:
            return None
        offset = (int(net.network_address) - int(self.network.network_address)) >> (
            net.max_prefixlen - self.prefix)
        return offset if 0 < offset < self.size else None

    def subnet(self, index: int) -> str:
        step = 1 << (self.network.max_prefixlen - self.prefix)
        return f"{self.network.network_address + index * step}/{self.prefix}"

    def occupy(self, cidr: str) -> bool:
        """Mark ``cidr`` used; False if it is outside the set."""
        index = self.index_of(cidr)
        if index is None:
            return False
        self._used.add(index)
        return True

    def release(self, cidr: str) -> None:
        index = self.index_of(cidr)
        if index is not None:
            self._used.discard(index)

    def allocate_next(self) -> str | None:
        """The next free subnet, now used; None when every one is."""
        for step in range(self.size - 1):
            index = (self._next - 1 + step) % (self.size - 1) + 1
            if index not in self._used:
                self._used.add(index)
                self._next = index % (self.size - 1) + 1
                return self.subnet(index)
        return None


def _pod_cidrs(node: Mapping[str, Any]) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = [str(c) for c in spec.get("podCIDRs") or []]
    return cidrs or ([str(spec["podCIDR"])] if spec.get("podCIDR") else [])


#: kube-controller-manager's --node-cidr-mask-size-ipv4 / -ipv6 defaults, by IP version.
NODE_MASK_SIZES: Final = {4: 24, 6: 64}


class NodeIPAMController:
    """Hands every Node one subnet of each cluster CIDR (``cluster_cidr`` is one CIDR or an
    IPv4,IPv6 pair, primary first): ``podCIDRs`` in the cluster CIDRs' order, ``podCIDR`` the
    first. A Node that already has podCIDRs keeps them, however many (as upstream's
    occupyCIDRs: a node registered with only its IPv4 subnet stays single-stack)."""

    def __init__(self, client: RESTClient, cluster_cidr: str = "10.244.0.0/16",
                 *, clock: Clock | None = None, nodes: Informer | None = None,
                 informers: InformerFactory | None = None) -> None:
        self._client = client
        self._clock: Clock = clock or RealClock()
        self.cidr_sets = [
            CIDRSet(text, NODE_MASK_SIZES[ipaddress.ip_network(text.strip()).version])
            for text in cluster_cidr.split(",")]
        # node name -> the subnets this controller (or the node) holds for it
        self._holders: dict[str, tuple[str, ...]] = {}
        self.nodes = nodes or InformerFactory.of(informers, client, clock=clock).informer(
            NODES, name="nodes")
        self.recorder = EventRecorder(client, IPAM_COMPONENT, clock=self._clock)
        self.controller = Controller(IPAM_COMPONENT, self.sync, informers=[self.nodes],
                                     clock=self._clock)
        self.nodes.add_handler(EventHandler(
            on_add=self._on_add,
            on_update=lambda _o, n: self._on_add(n),
            on_delete=self._on_delete))

    def start(self) -> None:
        self.nodes.start()
        self.controller.start()

    async def stop(self) -> None:
        await self.controller.stop()
        await self.nodes.stop()

    def describe(self) -> str:
        return " and ".join(s.describe() for s in self.cidr_sets)

    def _holder_of(self, cidr: str, other_than: str) -> str | None:
        return next((n for n, held in self._holders.items() if cidr in held and n != other_than),
                    None)

    def _occupy(self, cidrs: Iterable[str]) -> None:
        for cidr in cidrs:
            for cidr_set in self.cidr_sets:
                cidr_set.occupy(cidr)

    def _release(self, cidrs: Iterable[str], holder: str) -> None:
        for cidr in cidrs:
            if self._holder_of(cidr, holder) is None:
                for cidr_set in self.cidr_sets:
                    cidr_set.release(cidr)

    def _on_add(self, node: Obj) -> None:
        # Every Node's subnets are marked used as the cache learns of them, so the first list
        # has marked all of them before the controller (which waits for the sync) hands any out.
        name = str((node.get("metadata") or {}).get("name", ""))
        cidrs = tuple(_pod_cidrs(node))
        if cidrs and self._holders.get(name) != cidrs and not any(
                self._holder_of(c, name) for c in cidrs):
            self._occupy(cidrs)
            self._holders[name] = cidrs
        self.controller.queue.add(object_key(node))

    def _on_delete(self, node: Obj) -> None:
        name = str((node.get("metadata") or {}).get("name", ""))
        held = self._holders.pop(name, None)
        if held is not None:
            self._release(held, name)

    async def _check_own(self, node: Obj, key: str, cidrs: list[str]) -> None:
        for cidr in cidrs:
            holder = self._holder_of(cidr, key)
            if holder is not None:
                await self.recorder.warning(node, "CIDRNotAvailable",
                                            f"pod CIDR {cidr} is already used by node {holder}")
            elif all(s.index_of(cidr) is None for s in self.cidr_sets):
                await self.recorder.warning(node, "CIDRNotAvailable",
                                            f"pod CIDR {cidr} of node {key} is not in "
                                            + self.describe())

    async def _pick(self, node: Obj, key: str) -> tuple[str, ...]:
        if key in self._holders:
            return self._holders[key]  # handed out, the Node's update not seen yet
        picked: list[str] = []
        for cidr_set in self.cidr_sets:
            cidr = cidr_set.allocate_next()
            if cidr is None:
                for taken, owner in zip(picked, self.cidr_sets, strict=False):
                    owner.release(taken)
                await self.recorder.warning(node, "CIDRNotAvailable",
                                            "no pod CIDR is left in " + cidr_set.describe())
                raise RequeueError("pod CIDR range is full")
            picked.append(cidr)
        self._holders[key] = tuple(picked)
        return self._holders[key]

    async def sync(self, key: str) -> None:
        node = self.nodes.get(key)
        if node is None:
            return
        own = _pod_cidrs(node)
        if own:
            await self._check_own(node, key, own)
            return
        cidrs = await self._pick(node, key)
        try:
            await self._client.patch(NODES, "", key, {"spec": {"podCIDR": cidrs[0],
                                                               "podCIDRs": list(cidrs)}},
                                     patch_type=PatchType.MERGE)
        except StatusError as e:
            if e.code == 404:
                self._holders.pop(key, None)
                self._release(cidrs, key)
                return
            raise


def _ready_condition(node: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c  # type: ignore[no-any-return]
    return None


def stale_nodes(nodes: Iterable[Mapping[str, Any]], leases: Mapping[str, Mapping[str, Any]],
                now: datetime, grace: timedelta) -> list[str]:
    """Names of nodes whose heartbeat is older than ``grace`` and not yet marked Unknown."""
    out = []
    for node in nodes:
        name = str((node.get("metadata") or {}).get("name", ""))
        ready = _ready_condition(node)
        if ready is not None and ready.get("status") == "Unknown":
            continue
        lease = leases.get(name)
        beat = parse_time(((lease or {}).get("spec") or {}).get("renewTime"))
        if beat is None and ready is not None:
            beat = parse_time(ready.get("lastHeartbeatTime"))
        if beat is None:
            beat = parse_time((node.get("metadata") or {}).get("creationTimestamp"))
        if beat is not None and now - beat > grace:
            out.append(name)
    return sorted(out)


def pods_to_mark_not_ready(nodes: Iterable[Mapping[str, Any]], pods: Iterable[Obj],
                           stale: Iterable[str]) -> list[Obj]:
    """Pods whose Ready condition is not False on a node that is being marked Unknown
    (``stale``) or already is. Upstream marks them on the node's transition and again on every
    later pod update (node_lifecycle_controller.go's ``processPod``): a pod that turns Ready on
    a lost node, whoever wrote that status, is marked not ready again."""
    lost = set(stale) | {str((n.get("metadata") or {}).get("name", "")) for n in nodes
                         if (_ready_condition(n) or {}).get("status") == "Unknown"}
    if not lost:  # the usual pass: no pod to look at
        return []
    return [pod for pod in pods
            if (pod.get("spec") or {}).get("nodeName") in lost and any(
                c.get("type") == "Ready" and c.get("status") != "False"
                for c in (pod.get("status") or {}).get("conditions") or [])]


class NodeLifecycleController:
    def __init__(self, client: RESTClient, *, grace: timedelta = DEFAULT_GRACE,
                 period: float = 5.0, clock: Clock | None = None,
                 informers: InformerFactory | None = None) -> None:
        self._client = client
        self._clock: Clock = clock or RealClock()
        self.grace = grace
        self.period = period
        factory = InformerFactory.of(informers, client, clock=clock)
        self.nodes = factory.informer(NODES, name="nodes")
        self.leases = factory.informer(LEASES, namespace=LEASE_NAMESPACE, name="leases")
        self.pods = factory.informer(PODS, name="pods")
        self.recorder = EventRecorder(client, LIFECYCLE_COMPONENT, clock=self._clock)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        for inf in (self.nodes, self.leases, self.pods):
            inf.start()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for inf in (self.nodes, self.leases, self.pods):
            await inf.stop()

    async def _loop(self) -> None:
        while not all(i.has_synced() for i in (self.nodes, self.leases, self.pods)):
            await self._clock.sleep(0.1)
        while True:
            try:
                await self.monitor()
            except Exception:
                log.exception("node lifecycle pass failed; retrying next period")
            await self._clock.sleep(self.period)

    async def monitor(self) -> list[str]:
        """One pass: mark nodes with stale heartbeats Unknown and their pods not ready."""
        leases = {str((lease.get("metadata") or {}).get("name", "")): lease
                  for lease in self.leases.list()}
        now = self._clock.now()
        stale = stale_nodes(self.nodes.list(), leases, now, self.grace)
        for name in stale:
            node = self.nodes.get(name)
            if node is not None:
                await self._mark_unknown(node, now)
        for pod in pods_to_mark_not_ready(self.nodes.list(), self.pods.list(), stale):
            await self._mark_pod_not_ready(pod, now)
        return stale

    async def _mark_unknown(self, node: Obj, now: datetime) -> None:
        ts = rfc3339(now)
        conditions = [c for c in (node.get("status") or {}).get("conditions") or []
                      if c.get("type") != "Ready"]
        conditions.append({"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                           "message": "Kubelet stopped posting node status.",
                           "lastHeartbeatTime": (_ready_condition(node) or {}).get(
                               "lastHeartbeatTime", ts),
                           "lastTransitionTime": ts})
        name = node["metadata"]["name"]
        try:
            await self._client.patch(NODES, "", name, {"status": {"conditions": conditions}},
                                     patch_type=PatchType.MERGE, subresource="status")
        except StatusError as e:
            if e.code != 404:
                raise
            return
        await self.recorder.normal(node, "NodeNotReady",
                                   f"Node {name} status is now: NodeNotReady")

    async def _mark_pod_not_ready(self, pod: Obj, now: datetime) -> None:
        status = pod.get("status") or {}
        conditions = list(status.get("conditions") or [])
        changed = False
        for i, c in enumerate(conditions):
            if c.get("type") == "Ready" and c.get("status") != "False":
                conditions[i] = {**c, "status": "False", "lastTransitionTime": rfc3339(now)}
                changed = True
        if not changed:
            return
        meta = pod["metadata"]
        with contextlib.suppress(StatusError):
            await self._client.patch(PODS, meta.get("namespace", ""), meta["name"],
                                     {"status": {"conditions": conditions}},
                                     patch_type=PatchType.MERGE, subresource="status")
