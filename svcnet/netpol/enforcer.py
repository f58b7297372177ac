"""The node agent's NetworkPolicy enforcement: informers, a bounded-frequency sync, the table.

Theory of operation. The enforcer watches NetworkPolicies, every pod of the cluster (peers
live on any node), Namespaces (their labels) and, through the agent's informer, the
EndpointSlices (svcnet's DNS server as a peer). Any change requests a sync; syncs are
coalesced by a :class:`~svcnet.proxy.runner.BoundedFrequencyRunner` (a burst of pod changes
costs one transaction). A sync plans the node's whole table (:func:`svcnet.netpol.plan.
plan_table`, pure) and applies it in one ``nft`` transaction through the node's runner, only
when it differs from what was applied last; the periodic full sync applies it anyway, which
puts back a table someone changed or deleted. The first sync always applies, so a restarted
agent removes a table its predecessor left for policies that are gone.

Pods of other nodes are watched too, which costs memory in proportion to the cluster's pods;
upstream's enforcing plugins (Calico, kube-network-policies) watch them the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Final

from svcnet.api.access import labels_of, name_of
from svcnet.client.informer import EventHandler, Informer
from svcnet.client.rest import GVR, NAMESPACES, PODS, RESTClient
from svcnet.netpol.plan import dns_peers, plan_table, pod_info
from svcnet.proxy.nft.nft import NftRunner
from svcnet.proxy.runner import BoundedFrequencyRunner
from svcnet.util.clock import Clock, RealClock

__all__ = ["NETWORKPOLICIES", "PolicyEnforcer"]


Obj = dict[str, Any]
NETWORKPOLICIES: Final = GVR("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")


class PolicyEnforcer:
    def __init__(self, client: RESTClient, node_name: str, nft: NftRunner, *,
                 endpoint_slices: Informer, clock: Clock | None = None,
                 full_sync_interval: float = 300.0) -> None:
        self.node_name = node_name
        self.nft = nft
        clock = clock or RealClock()
        self.policies = Informer(client, NETWORKPOLICIES, clock=clock, name="networkpolicies")
        self.pods = Informer(client, PODS, clock=clock, name="pods (all nodes)")
        self.namespaces = Informer(client, NAMESPACES, clock=clock, name="namespaces")
        self.slices = endpoint_slices
        self.runner = BoundedFrequencyRunner(self._sync, min_interval=0.05,
                                             max_interval=full_sync_interval, clock=clock,
                                             name="network policy")
        self.applied: str | None = None
        def request(_obj: Obj) -> None:
            self.runner.request()

        self.policies.add_handler(EventHandler(on_add=request,
                                               on_update=lambda _o, new: request(new),
                                               on_delete=request))
        # Pods and namespaces change often in ways that do not matter here (a pod's status
        # at each probe, say): only what the plan reads asks for a sync.
        self.pods.add_handler(EventHandler(on_add=request, on_update=self._pod_changed,
                                           on_delete=request))
        self.namespaces.add_handler(EventHandler(on_add=request,
                                                 on_update=self._namespace_changed,
                                                 on_delete=request))
        self.slices.add_handler(EventHandler(
            on_add=self._slice_changed, on_update=lambda _o, new: self._slice_changed(new),
            on_delete=self._slice_changed))
        self._task: asyncio.Task[None] | None = None

    def _pod_changed(self, old: Obj, new: Obj) -> None:
        if pod_info(old) != pod_info(new):
            self.runner.request()

    def _namespace_changed(self, old: Obj, new: Obj) -> None:
        if labels_of(old) != labels_of(new):
            self.runner.request()

    def _slice_changed(self, eps: Obj) -> None:
        if (eps.get("metadata") or {}).get("namespace") == "kube-system":
            self.runner.request()

    def start(self) -> None:
        for informer in (self.policies, self.pods, self.namespaces):
            informer.start()
        self._task = asyncio.create_task(self._run(), name="netpol-enforcer")

    async def _run(self) -> None:
        for informer in (self.policies, self.pods, self.namespaces, self.slices):
            await informer.wait_for_sync()
        await self.runner.run_forever()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for informer in (self.namespaces, self.pods, self.policies):
            await informer.stop()

    def plan(self) -> Callable[[], str]:
        """The plan of the caches as they are now: a snapshot taken on the event loop (the
        informers replace objects, never change them), planned by the returned function,
        which may run in another thread (a second or so at 10k pods)."""
        namespaces = {name_of(ns): dict(labels_of(ns)) for ns in self.namespaces.list()}
        policies, pods = self.policies.list(), self.pods.list()
        peers = dns_peers(self.slices.list())
        return lambda: plan_table(policies, pods, namespaces, self.node_name,
                                  extra_peers=peers)

    async def _sync(self, full: bool) -> None:
        script = await asyncio.to_thread(self.plan())
        if script == self.applied and not full:
            return
        await asyncio.to_thread(self.nft.apply, script)
        self.applied = script
