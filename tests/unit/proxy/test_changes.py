"""Change tracking: per-Service pieces give exactly the reference table, change after change.

The reference is :func:`build_ruleset` over all objects; the fake nft has the kernel's
semantics (atomic apply, reference checks), so "the table after an incremental sync equals the
reference rendering" is checked for random sequences of changes that include conflicting
Services, growing past eight endpoints, affinity and both traffic policies.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from hypothesis import given, settings, strategies as st

from svcnet.proxy.changes import StaticSource, TableIndex
from svcnet.proxy.nft.fake import FakeNft
from svcnet.proxy.proxier import Proxier
from svcnet.proxy.ruleset import ProxyConfig, build_ruleset, contribution
from tests.unit.proxy.builders import (
    NODE,
    endpoint,
    load_balancer,
    make_service,
    make_slice,
    many_services,
    node_port_service,
)

Obj = dict[str, Any]
NAMES = ("a", "b", "c", "d")
# Small pools, so that random Services collide: same ClusterIP (not a conflict: equal
# elements), same external IP or NodePort (a conflict: the first Service wins).
EXTERNAL_IPS = ("172.20.0.150", "172.20.0.151")
NODE_PORTS = (30080, 30081)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


service_spec = st.fixed_dictionaries({
    "cluster_ip": st.sampled_from(("10.96.0.1", "10.96.0.2", "10.96.0.3", "10.96.0.4")),
    "kind": st.sampled_from(("ClusterIP", "NodePort", "LoadBalancer", "external")),
    "node_port": st.sampled_from(NODE_PORTS),
    "external_ip": st.sampled_from(EXTERNAL_IPS),
    "local": st.booleans(),
    "affinity": st.booleans(),
    "ranges": st.booleans(),
    "endpoints": st.integers(min_value=0, max_value=10),
    "remote": st.integers(min_value=0, max_value=10),
    "terminating": st.booleans(),
})


def build_service(name: str, spec: dict[str, Any]) -> tuple[Obj, Obj]:
    def mutate(svc: Obj) -> None:
        if spec["kind"] == "NodePort":
            node_port_service(svc, spec["node_port"])
        elif spec["kind"] == "LoadBalancer":
            ranges = ("10.0.0.0/8",) if spec["ranges"] else ()
            load_balancer("172.20.0.200", local=spec["local"], node_port=spec["node_port"],
                          ranges=ranges)(svc)
        elif spec["kind"] == "external":
            svc["spec"]["externalIPs"] = [spec["external_ip"]]
        if spec["affinity"]:
            svc["spec"]["sessionAffinity"] = "ClientIP"
            svc["spec"]["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 60}}

    svc = make_service("ns", name, spec["cluster_ip"], mutate=mutate)
    index = NAMES.index(name)
    eps = [endpoint(f"10.244.1.{index * 20 + i + 1}", node="node-1",
                    ready=not (spec["terminating"] and i == 0),
                    serving=True, terminating=spec["terminating"] and i == 0)
           for i in range(min(spec["endpoints"], spec["remote"] + 1))]
    eps += [endpoint(f"10.244.2.{index * 20 + i + 1}", node="node-2")
            for i in range(spec["remote"] if spec["endpoints"] else 0)]
    return svc, make_slice("ns", name, eps)


def live(nft: FakeNft, proxier: Proxier) -> str:
    """The table without the chains that wait (flushed) for their deferred deletion."""
    table = nft.ruleset()
    assert table is not None
    stale = set(proxier.stale_chains)
    assert all(not c.rules for c in table.chains if c.name in stale)
    return replace(table, chains=tuple(c for c in table.chains if c.name not in stale)).render()


step = st.tuples(st.sampled_from(NAMES), st.one_of(st.none(), service_spec))


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=1, max_size=12))
def test_incremental_syncs_always_equal_the_reference(steps: list[tuple[str, Any]]) -> None:
    nft = FakeNft()
    proxier = Proxier(nft, clock=Clock(), stale_chain_delay=0.0)
    current: dict[str, tuple[Obj, Obj]] = {}
    proxier.sync([], [], NODE)
    for name, spec in steps:
        if spec is None:
            current.pop(name, None)
        else:
            current[name] = build_service(name, spec)
        services = [s for s, _ in current.values()]
        slices = [sl for _, sl in current.values()]
        proxier.sync_source(StaticSource(services, slices), NODE, {f"ns/{name}"})
        assert live(nft, proxier) == build_ruleset(services, slices, NODE).render()
    # A level-triggered sync afterwards finds nothing left to do.
    assert not proxier.sync(services, slices, NODE).changed


def test_one_change_is_planned_from_that_service_alone() -> None:
    nft = FakeNft()
    proxier = Proxier(nft)
    services, slices = many_services(50, 3)
    proxier.sync(services, slices, NODE)
    changed = copy.deepcopy(slices)
    changed[7]["endpoints"].pop()
    result = proxier.sync_source(StaticSource(services, changed), NODE, {"bulk/svc-00007"})
    assert result.fast and not result.full
    # lb-3 -> lb-2 for the ClusterIP (delete + add) and the third backend slot deleted.
    assert result.counts == {"delete element": 2, "add element": 1}
    assert nft.dump() == build_ruleset(services, changed, NODE).render()
    # Keys that did not change cost nothing, even if named.
    again = proxier.sync_source(StaticSource(services, changed), NODE, {"bulk/svc-00001"})
    assert not again.changed


def test_conflicts_take_the_reference_path_until_resolved() -> None:
    nft = FakeNft()
    proxier = Proxier(nft)
    first = make_service("ns", "a", "10.96.0.1",
                         mutate=lambda s: s["spec"].update(externalIPs=[EXTERNAL_IPS[0]]))
    second = make_service("ns", "b", "10.96.0.2",
                          mutate=lambda s: s["spec"].update(externalIPs=[EXTERNAL_IPS[0]]))
    slices = [make_slice("ns", "a", [endpoint("10.244.1.1")]),
              make_slice("ns", "b", [endpoint("10.244.1.2"), endpoint("10.244.1.3")])]
    proxier.sync([first], slices, NODE)
    result = proxier.sync_source(StaticSource([first, second], slices), NODE, {"ns/b"})
    assert not result.fast  # b's external IP collides with a's: the reference decides
    assert result.warnings and "already used by" in result.warnings[0]
    assert nft.dump() == build_ruleset([first, second], slices, NODE).render()
    assert proxier.index is not None and not proxier.index.clean
    # The conflict goes away with b's external IP; the next change is fast again.
    del second["spec"]["externalIPs"]
    result = proxier.sync_source(StaticSource([first, second], slices), NODE, {"ns/b"})
    assert not result.fast and proxier.index.clean
    slices[1]["endpoints"].pop()
    result = proxier.sync_source(StaticSource([first, second], slices), NODE, {"ns/b"})
    assert result.fast
    assert nft.dump() == build_ruleset([first, second], slices, NODE).render()


def test_growing_past_the_lb_chains_is_a_full_sync() -> None:
    nft = FakeNft()
    proxier = Proxier(nft)
    svc = make_service("ns", "a", "10.96.0.1")
    proxier.sync([svc], [make_slice("ns", "a", [endpoint("10.244.1.1")])], NODE)
    nine = make_slice("ns", "a", [endpoint(f"10.244.1.{i + 1}") for i in range(9)])
    result = proxier.sync_source(StaticSource([svc], [nine]), NODE, {"ns/a"})
    assert result.full and not result.fast
    assert nft.dump() == build_ruleset([svc], [nine], NODE).render()


def test_index_sum_equals_the_reference_for_many_services() -> None:
    services, slices = many_services(30, 4)
    source = StaticSource(services, slices)
    index = TableIndex(NODE, ProxyConfig())
    index.commit(index.compute(source, source.keys()))
    assert index.clean
    assert index.ruleset() == build_ruleset(services, slices, NODE)


def test_a_deleted_service_with_slices_left_contributes_nothing() -> None:
    slices = [make_slice("ns", "gone", [endpoint("10.244.1.1")])]
    source = StaticSource([], slices)
    assert contribution(source.service("ns/gone"), source.slices("ns/gone"), NODE,
                        ProxyConfig()).elements == {}


def test_a_change_of_zone_hints_replans_the_service() -> None:
    nft = FakeNft()
    proxier = Proxier(nft)
    node = replace(NODE, zone="zone-a")
    svc = make_service("ns", "web", "10.96.0.10")

    def slices(hint_remote: str) -> list[Any]:
        return [make_slice("ns", "web", [
            endpoint("10.244.1.5", zone="zone-a", hints=["zone-a"]),
            endpoint("10.244.2.7", node="node-2", zone="zone-b", hints=[hint_remote])])]

    proxier.sync([svc], slices("zone-b"), node)
    # Only the same-zone endpoint is used...
    assert "10.244.2.7" not in nft.dump()
    # ...until the controller hints the remote one for zone-a too (only the hints changed).
    result = proxier.sync_source(StaticSource([svc], slices("zone-a")), node, {"ns/web"})
    assert result.changed and result.fast
    assert "10.244.2.7 . 8080" in nft.dump()
    assert nft.dump() == build_ruleset([svc], slices("zone-a"), node).render()
