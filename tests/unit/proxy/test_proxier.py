"""Proxier: full first, incremental after, nothing when nothing changed, full after failure."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from svcnet.proxy.nft.fake import FakeNft
from svcnet.proxy.nft.nft import NftError
from svcnet.proxy.proxier import Proxier
from svcnet.proxy.ruleset import ProxyConfig, build_ruleset
from tests.unit.proxy.builders import NODE, endpoint, make_service, make_slice, many_services


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sync_lifecycle() -> None:
    nft, clock = FakeNft(), Clock()
    proxier = Proxier(nft, clock=clock)
    services, slices = many_services(20, 2)
    first = proxier.sync(services, slices, NODE)
    assert first.full and first.changed and first.bytes > 0
    assert nft.dump() == build_ruleset(services, slices, NODE).render()

    again = proxier.sync(services, slices, NODE)
    assert not again.full and not again.changed and again.bytes == 0
    assert len(nft.transactions) == 1  # nothing was written

    changed = copy.deepcopy(slices)
    changed[3]["endpoints"].pop()
    third = proxier.sync(services, changed, NODE)
    # the verdict lb-2 -> lb-1 (delete + add) and the second backend (a remote endpoint)
    assert not third.full and third.counts == {"delete element": 2, "add element": 1}
    assert nft.dump() == build_ruleset(services, changed, NODE).render()


def test_failure_forces_the_next_sync_to_be_full() -> None:
    nft = FakeNft()
    proxier = Proxier(nft)
    services, slices = many_services(5, 2)
    proxier.sync(services, slices, NODE)
    nft.fail_next = "Error: Could not process rule: Device or resource busy"
    with pytest.raises(NftError, match="busy"):
        proxier.sync(services, slices[1:], NODE)
    assert proxier.needs_full_sync and proxier.failures == 1
    # The kernel state is unknown after a failure: it is read back and planned from.
    result = proxier.sync(services, slices[1:], NODE)
    assert result.adopted and not result.full
    assert nft.dump() == build_ruleset(services, slices[1:], NODE).render()


def test_failed_adoption_recreates_the_table_next() -> None:
    nft = FakeNft()
    services, slices = many_services(5, 2)
    Proxier(nft).sync(services, slices, NODE)
    proxier = Proxier(nft)  # a restarted agent
    nft.fail_next = "Error: Could not process rule: Invalid argument"
    with pytest.raises(NftError):
        proxier.sync(services, slices[1:], NODE)
    result = proxier.sync(services, slices[1:], NODE)
    assert result.full and not result.adopted
    assert nft.dump() == build_ruleset(services, slices[1:], NODE).render()


def sticky_service() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    svc = make_service("ns", "s", "10.96.0.1", mutate=lambda s: s["spec"].update(
        sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 30}}))
    return svc, [make_slice("ns", "s", [endpoint("10.244.1.5"), endpoint("10.244.1.6")])]


def affinity_set_name(nft: FakeNft) -> str:
    table = nft.ruleset()
    assert table is not None
    return next(s.name for s in table.sets if s.name.startswith("affinity-"))


def test_a_restarted_proxier_adopts_the_table_and_keeps_affinity() -> None:
    nft = FakeNft()
    svc, slices = sticky_service()
    services, more = many_services(10, 2)
    Proxier(nft).sync([svc, *services], [*slices, *more], NODE)
    # The data path remembered a client (the fake has no data path: written by hand).
    affinity = affinity_set_name(nft)
    nft.apply(f"add element ip svcnet {affinity} {{ 192.168.7.7 }}\n")
    # Meanwhile one endpoint went away; then the agent restarts.
    more[3]["endpoints"].pop()
    restarted = Proxier(nft)
    result = restarted.sync([svc, *services], [*slices, *more], NODE)
    assert result.adopted and not result.full
    text = nft.last_transaction or ""
    assert "delete table" not in text and f"delete set ip svcnet {affinity}" not in text
    # Only the changed endpoint's elements, and the sticky chain refilled (rules unknown).
    assert result.counts["delete element"] == 2 and result.counts["add element"] == 1
    assert result.counts["flush chain"] == 1
    table = nft.ruleset()
    assert table is not None
    [remembered] = [s for s in table.sets if s.name == affinity]
    assert [e.key for e in remembered.elements] == [("192.168.7.7",)]  # still sticky
    without_state = replace(table, sets=tuple(s.with_elements(()) if s.dynamic else s
                                              for s in table.sets))
    assert without_state.render() == build_ruleset([svc, *services], [*slices, *more],
                                                   NODE).render()


def test_adoption_repairs_what_was_changed_behind_our_back() -> None:
    nft = FakeNft()
    services, slices = many_services(5, 2)
    Proxier(nft).sync(services, slices, NODE)
    nft.apply("delete element ip svcnet cluster-ips { 10.96.10.3 }\n"
              "add element ip svcnet cluster-ips { 10.96.99.99 }\n")
    result = Proxier(nft).sync(services, slices, NODE)
    assert result.adopted and result.counts == {"delete element": 1, "add element": 1}
    assert nft.dump() == build_ruleset(services, slices, NODE).render()


def test_another_layout_is_recreated_not_adopted() -> None:
    nft = FakeNft()
    services, slices = many_services(5, 2)
    Proxier(nft).sync(services, slices, NODE)
    result = Proxier(nft, ProxyConfig(masquerade_all=True)).sync(services, slices, NODE)
    assert result.full and not result.adopted
    assert nft.dump() == build_ruleset(services, slices, NODE,
                                       ProxyConfig(masquerade_all=True)).render()


def test_stale_chains_are_deleted_later() -> None:
    nft, clock = FakeNft(), Clock()
    proxier = Proxier(nft, clock=clock, stale_chain_delay=1.0)
    sticky = make_service("ns", "s", "10.96.0.1", mutate=lambda s: s["spec"].update(
        sessionAffinity="ClientIP"))
    slices = [make_slice("ns", "s", [endpoint("10.244.1.5")])]
    proxier.sync([sticky], slices, NODE)
    [chain] = [c for c in nft.dump().splitlines() if "chain sticky-" in c]
    # The service goes away: its chain is emptied at once, but still there...
    result = proxier.sync([], [], NODE)
    assert "delete chain" not in (nft.last_transaction or "")
    assert chain in nft.dump() and not result.full
    assert proxier.stale_chains
    # ... until a later sync, at least a second afterwards.
    clock.now += 0.5
    proxier.sync([], [], NODE)
    assert chain in nft.dump()
    clock.now += 1.0
    proxier.sync([], [], NODE)
    assert chain not in nft.dump() and not proxier.stale_chains
    assert nft.dump() == build_ruleset([], [], NODE).render()


def test_stale_chain_wanted_again_is_reused() -> None:
    nft, clock = FakeNft(), Clock()
    proxier = Proxier(nft, clock=clock)
    sticky = make_service("ns", "s", "10.96.0.1", mutate=lambda s: s["spec"].update(
        sessionAffinity="ClientIP"))
    slices = [make_slice("ns", "s", [endpoint("10.244.1.5")])]
    proxier.sync([sticky], slices, NODE)
    proxier.sync([], [], NODE)
    clock.now += 5
    proxier.sync([sticky], slices, NODE)
    assert not proxier.stale_chains
    assert nft.dump() == build_ruleset([sticky], slices, NODE).render()


def test_cleanup_removes_the_table() -> None:
    nft = FakeNft()
    proxier = Proxier(nft, ProxyConfig(table="other"))
    proxier.sync([], [], NODE)
    assert nft.ruleset("ip", "other") is not None
    proxier.cleanup()
    assert nft.ruleset("ip", "other") is None and proxier.needs_full_sync
    proxier.cleanup()  # idempotent


def test_adoption_removes_what_a_deleted_sticky_service_left() -> None:
    nft, clock = FakeNft(), Clock()
    svc, slices = sticky_service()
    others, more = many_services(3, 2)
    Proxier(nft, clock=clock).sync([svc, *others], [*slices, *more], NODE)
    affinity = affinity_set_name(nft)
    # The sticky Service is deleted while the agent is down.
    restarted = Proxier(nft, clock=clock, stale_chain_delay=1.0)
    result = restarted.sync(others, more, NODE)
    assert result.adopted and not result.full
    table = nft.ruleset()
    assert table is not None and affinity not in table.set_by_name
    [sticky] = [c for c in table.chains if c.name.startswith("sticky-")]
    assert not sticky.rules and sticky.name in restarted.stale_chains  # flushed, deleted later
    clock.now += 2
    restarted.sync(others, more, NODE)
    assert nft.dump() == build_ruleset(others, more, NODE).render()
