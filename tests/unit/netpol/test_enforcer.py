"""The node's PolicyEnforcer over informer caches: it plans from them, applies a changed
table once, skips an unchanged one, and re-applies on the periodic full sync."""

from __future__ import annotations

import copy

from svcnet.client.informer import Informer
from svcnet.client.rest import ENDPOINTSLICES, NAMESPACES, PODS
from svcnet.netpol.enforcer import NETWORKPOLICIES, PolicyEnforcer
from svcnet.util.clock import FakeClock
from tests.unit.controllers.test_endpointslice_helpers import T0, FakeAPI, sync_cache
from tests.unit.netpol.test_plan import DNS_SLICE, EMPTY, NODE, WEB, policy


class Recorder:
    def __init__(self) -> None:
        self.scripts: list[str] = []

    def apply(self, text: str) -> None:
        self.scripts.append(text)


async def test_applies_changes_once_and_everything_on_full_syncs() -> None:
    api, clock, nft = FakeAPI(), FakeClock(T0), Recorder()
    slices = Informer(api, ENDPOINTSLICES, clock=clock)
    enforcer = PolicyEnforcer(api, NODE, nft, endpoint_slices=slices,  # type: ignore[arg-type]
                              clock=clock)
    sync_cache(enforcer.pods, [WEB])
    sync_cache(enforcer.namespaces, [{"metadata": {"name": "default"}}])
    sync_cache(slices, [DNS_SLICE])
    await enforcer._sync(True)
    assert nft.scripts == [EMPTY], "the first sync clears what a previous agent left"
    await enforcer._sync(False)
    assert len(nft.scripts) == 1, "an unchanged plan is not applied again"
    sync_cache(enforcer.policies, [policy("deny", {"podSelector": {}})])
    await enforcer._sync(False)
    assert len(nft.scripts) == 2 and "chain ingress-" in nft.scripts[-1]
    await enforcer._sync(True)
    assert len(nft.scripts) == 3 and nft.scripts[-1] == nft.scripts[-2]
    assert {i.gvr for i in (enforcer.policies, enforcer.pods, enforcer.namespaces)} == {
        NETWORKPOLICIES, PODS, NAMESPACES}


def test_only_what_the_plan_reads_asks_for_a_sync() -> None:
    api, clock = FakeAPI(), FakeClock(T0)
    enforcer = PolicyEnforcer(api, NODE, Recorder(),  # type: ignore[arg-type]
                              endpoint_slices=Informer(api, ENDPOINTSLICES, clock=clock),
                              clock=clock)
    pending = enforcer.runner._pending
    probed = copy.deepcopy(WEB)
    probed["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    enforcer._pod_changed(WEB, probed)
    assert not pending.is_set(), "a status change the plan does not read"
    relabelled = copy.deepcopy(WEB)
    relabelled["metadata"]["labels"] = {"app": "other"}
    enforcer._pod_changed(WEB, relabelled)
    assert pending.is_set()
    pending.clear()
    ns = {"metadata": {"name": "default", "labels": {"team": "a"}}}
    enforcer._namespace_changed(ns, {**ns, "status": {"phase": "Active"}})
    assert not pending.is_set()
    enforcer._namespace_changed(ns, {"metadata": {"name": "default", "labels": {"team": "b"}}})
    assert pending.is_set()
