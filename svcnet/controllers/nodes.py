"""Node controllers of the control plane: pod CIDR assignment and node lifecycle.

**Node IPAM** (kube-controller-manager's ``nodeipam``, range allocator): every Node gets a
``spec.podCIDR`` (and ``podCIDRs``), a /24 out of the cluster CIDR (10.244.0.0/16 by default).
A node agent may ask for a specific one when it registers (``svcnet up`` gives node ``i``
``10.244.<i>.0/24``); that subnet is then recorded as taken. Subnets are allocation keys in the
store like ClusterIPs (see svcnet/allocators/allocator.py), so two control planes never give one
subnet to two nodes. A deleted Node's subnet is released.

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
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from svcnet.allocators.allocator import AllocationError, Owner, RangeFull, StoreAllocator
from svcnet.allocators.ranges import SubnetRange
from svcnet.api.errors import StatusError
from svcnet.client.controller import Controller, RequeueError
from svcnet.client.events import EventRecorder
from svcnet.client.informer import EventHandler, Informer, object_key
from svcnet.client.rest import LEASES, NODES, PODS, PatchType, RESTClient
from svcnet.storage.interface import Store
from svcnet.util.clock import Clock, RealClock, rfc3339

log = logging.getLogger(__name__)

Obj = dict[str, Any]
IPAM_COMPONENT: Final = "node-ipam-controller"
LIFECYCLE_COMPONENT: Final = "node-lifecycle-controller"
DEFAULT_GRACE: Final = timedelta(seconds=40)
LEASE_NAMESPACE: Final = "kube-node-lease"


def _owner(node: Mapping[str, Any]) -> Owner:
    meta = node.get("metadata") or {}
    return Owner("", str(meta.get("name", "")), str(meta.get("uid", "")))


class NodeIPAMController:
    def __init__(self, client: RESTClient, store: Store, cluster_cidr: str = "10.244.0.0/16",
                 *, node_prefix: int = 24, clock: Clock | None = None,
                 nodes: Informer | None = None) -> None:
        self._client = client
        self._clock: Clock = clock or RealClock()
        self.range = SubnetRange.parse(cluster_cidr, node_prefix)
        self.allocator = StoreAllocator(store, self.range, clock=self._clock)
        self.nodes = nodes or Informer(client, NODES, clock=clock, name="nodes")
        self.recorder = EventRecorder(client, IPAM_COMPONENT, clock=self._clock)
        self.controller = Controller(IPAM_COMPONENT, self.sync, informers=[self.nodes],
                                     clock=self._clock)
        self.nodes.add_handler(EventHandler(
            on_add=lambda n: self.controller.queue.add(object_key(n)),
            on_update=lambda _o, n: self.controller.queue.add(object_key(n)),
            on_delete=self._on_delete))
        self._deleted: list[Obj] = []

    def start(self) -> None:
        self.nodes.start()
        self.controller.start()

    async def stop(self) -> None:
        await self.controller.stop()
        await self.nodes.stop()

    def _on_delete(self, node: Obj) -> None:
        self._deleted.append(node)
        self.controller.queue.add(object_key(node))

    async def sync(self, key: str) -> None:
        node = self.nodes.get(key)
        if node is None:
            for gone in [n for n in self._deleted if object_key(n) == key]:
                for cidr in (gone.get("spec") or {}).get("podCIDRs") or []:
                    await self.allocator.release(cidr, _owner(gone))
                self._deleted.remove(gone)
            return
        spec = node.get("spec") or {}
        owner = _owner(node)
        cidr = spec.get("podCIDR") or ""
        if cidr:
            # Registered with a subnet of its own choosing: make sure it is recorded as ours.
            current = await self.allocator.get(cidr)
            if current is None and self.allocator.contains(cidr):
                try:
                    await self.allocator.allocate(cidr, owner)
                except AllocationError as e:
                    await self.recorder.warning(node, "CIDRNotAvailable",
                                                f"pod CIDR {cidr} of node {key}: {e}")
            elif current is not None and current.owner.name != owner.name:
                await self.recorder.warning(node, "CIDRNotAvailable",
                                            f"pod CIDR {cidr} is already used by node "
                                            f"{current.owner.name}")
            return
        try:
            cidr = await self.allocator.allocate_next(owner, allowed=range(1, self.range.size))
        except RangeFull:
            await self.recorder.warning(node, "CIDRNotAvailable",
                                        "no pod CIDR is left in " + self.range.describe())
            raise RequeueError("pod CIDR range is full") from None
        try:
            await self._client.patch(NODES, "", key, {"spec": {"podCIDR": cidr,
                                                               "podCIDRs": [cidr]}},
                                     patch_type=PatchType.MERGE)
        except StatusError as e:
            await self.allocator.release(cidr, owner)
            if e.code == 404:
                return
            raise


def _ready_condition(node: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c  # type: ignore[no-any-return]
    return None


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(ts.replace("Z", "+00:00"))
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
        beat = _parse(((lease or {}).get("spec") or {}).get("renewTime"))
        if beat is None and ready is not None:
            beat = _parse(ready.get("lastHeartbeatTime"))
        if beat is None:
            beat = _parse((node.get("metadata") or {}).get("creationTimestamp"))
        if beat is not None and now - beat > grace:
            out.append(name)
    return sorted(out)


class NodeLifecycleController:
    def __init__(self, client: RESTClient, *, grace: timedelta = DEFAULT_GRACE,
                 period: float = 5.0, clock: Clock | None = None) -> None:
        self._client = client
        self._clock: Clock = clock or RealClock()
        self.grace = grace
        self.period = period
        self.nodes = Informer(client, NODES, clock=clock, name="nodes")
        self.leases = Informer(client, LEASES, namespace=LEASE_NAMESPACE, clock=clock,
                               name="leases")
        self.pods = Informer(client, PODS, clock=clock, name="pods")
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
            if node is None:
                continue
            await self._mark_unknown(node, now)
            for pod in self.pods.list():
                if (pod.get("spec") or {}).get("nodeName") == name:
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
