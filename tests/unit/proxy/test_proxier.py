"""Proxier: full first, incremental after, nothing when nothing changed, full after failure."""

from __future__ import annotations

import copy

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
    assert proxier.sync(services, slices[1:], NODE).full
    assert nft.dump() == build_ruleset(services, slices[1:], NODE).render()


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
