"""Transactions and plan_sync: full vs incremental, what an incremental sync writes, order."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from svcnet.proxy.nft.fake import FakeNft
from svcnet.proxy.nft.objects import (
    Chain,
    Element,
    Map,
    NftValidationError,
    Rule,
    Ruleset,
    Set,
    Table,
)
from svcnet.proxy.nft.transaction import ELEMENTS_PER_COMMAND, Transaction, plan_sync
from svcnet.proxy.ruleset import build_ruleset
from tests.unit.proxy.builders import (
    NODE,
    Obj,
    endpoint,
    load_balancer,
    make_service,
    make_slice,
    many_services,
)

TABLE = Table("ip", "t")
VMAP = Map("vm", "ipv4_addr . inet_proto . inet_service")
SET = Set("s", "ipv4_addr")


def test_sticky_first_error() -> None:
    tx = Transaction(TABLE)
    tx.add_table()
    tx.add_elements(SET, [Element(("10.0.0.256",))])
    tx.add_rule("c", "accept")  # ignored after the error
    tx.delete_chain("not a name")
    assert isinstance(tx.error, NftValidationError)
    assert "10.0.0.256" in str(tx.error)
    assert len(tx) == 1
    with pytest.raises(NftValidationError, match=r"10\.0\.0\.256"):
        tx.render()


def test_rendering() -> None:
    tx = Transaction(Table("ip", "t", "mine"))
    tx.add_table()
    tx.add_chain(Chain("base", (), "nat", "prerouting", -100, "accept"))
    tx.add_set(Set("s", "ipv4_addr", elements=(Element(("10.0.0.1",)),)))
    tx.add_rule("base", Rule("ip saddr @s accept", "why"))
    tx.delete_elements(VMAP, [Element(("10.96.0.1", "tcp", "80"))])
    tx.create_elements(SET, [Element(("10.0.0.2",))])
    assert tx.render() == (
        'add table ip t { comment "mine" ; }\n'
        "add chain ip t base { type nat hook prerouting priority -100 ; policy accept ; }\n"
        "add set ip t s { type ipv4_addr ; }\n"
        "add element ip t s { 10.0.0.1 }\n"
        'add rule ip t base ip saddr @s accept comment "why"\n'
        "delete element ip t vm { 10.96.0.1 . tcp . 80 }\n"
        "create element ip t s { 10.0.0.2 }\n")
    assert tx.counts() == {"add table": 1, "add chain": 1, "add set": 1, "add element": 1,
                           "add rule": 1, "delete element": 1, "create element": 1}


def test_elements_are_chunked() -> None:
    tx = Transaction(TABLE)
    count = ELEMENTS_PER_COMMAND * 2 + 5
    tx.add_elements(SET, [Element((f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",))
                          for i in range(count)])
    assert len(tx) == 3 and tx.counts()["add element"] == count


def _ruleset(*elements: tuple[str, str], chains: tuple[Chain, ...] = (),
             sets: tuple[Set, ...] = ()) -> Ruleset:
    vm = Map("vm", VMAP.key, elements=tuple(
        Element((ip, "tcp", "80"), (f"goto {target}",)) for ip, target in elements))
    base = Chain("base", (Rule("ip daddr . meta l4proto . th dport vmap @vm"),), "nat",
                 "prerouting", -100, "accept")
    return Ruleset(TABLE, (base, *chains), sets, (vm,))


def test_full_sync_recreates_the_table() -> None:
    desired = _ruleset(("10.96.0.1", "a"), chains=(Chain("a", (Rule("accept"),)),))
    tx = plan_sync(None, desired)
    lines = tx.render().splitlines()
    assert tx.full
    assert lines[:3] == ["add table ip t", "delete table ip t", "add table ip t"]
    # Definitions first, then elements (which refer to chains), then rules.
    kinds = [op.kind for op in tx.ops[3:]]
    assert kinds == ["map", "chain", "chain", "element", "rule", "rule"]
    nft = FakeNft()
    nft.apply(tx.render())
    nft.apply(tx.render())  # a full sync works whatever the table holds
    assert nft.dump() == desired.render()


def test_no_change_writes_nothing() -> None:
    desired = _ruleset(("10.96.0.1", "a"), chains=(Chain("a"),))
    tx = plan_sync(desired, desired)
    assert not tx and tx.render() == ""


def test_incremental_order_is_valid_for_the_kernel() -> None:
    old = _ruleset(("10.96.0.1", "a"), ("10.96.0.2", "b"),
                   chains=(Chain("a", (Rule("ip saddr @s accept"),)), Chain("b")),
                   sets=(Set("s", "ipv4_addr", elements=(Element(("10.0.0.1",)),)),))
    new = _ruleset(("10.96.0.1", "c"), ("10.96.0.3", "a"),
                   chains=(Chain("a", (Rule("ip saddr @s2 accept"),)), Chain("c")),
                   sets=(Set("s2", "ipv4_addr"),))
    nft = FakeNft()
    nft.apply(plan_sync(None, old).render())
    tx = plan_sync(old, new)
    assert not tx.full
    nft.apply(tx.render())
    assert nft.dump() == new.render()
    assert tx.render().splitlines() == [
        "add set ip t s2 { type ipv4_addr ; }",
        "add chain ip t c",
        "flush chain ip t a",
        "delete element ip t vm { 10.96.0.1 . tcp . 80, 10.96.0.2 . tcp . 80 }",
        "delete set ip t s",
        "delete chain ip t b",
        "add element ip t vm { 10.96.0.1 . tcp . 80 : goto c, 10.96.0.3 . tcp . 80 : goto a }",
        "add rule ip t a ip saddr @s2 accept",
    ]


def test_deferred_chain_deletion() -> None:
    old = _ruleset(("10.96.0.1", "a"), chains=(Chain("a", (Rule("accept"),)),))
    new = _ruleset()
    tx = plan_sync(old, new, defer_chain_deletion=True)
    assert tx.stale_chains == ("a",)
    assert "delete chain" not in tx.render() and "flush chain ip t a" in tx.render()


def test_redefined_set_is_recreated_after_its_users_are_flushed() -> None:
    def rs(timeout: int) -> Ruleset:
        aff = Set("aff", "ipv4_addr", flags=("dynamic", "timeout"), timeout=timeout)
        return _ruleset(("10.96.0.1", "a"), chains=(
            Chain("a", (Rule("ip saddr @aff update @aff { ip saddr } accept"),)),), sets=(aff,))
    nft = FakeNft()
    nft.apply(plan_sync(None, rs(60)).render())
    tx = plan_sync(rs(60), rs(120))
    assert tx.render().splitlines() == [
        "flush chain ip t a",
        "delete set ip t aff",
        "add set ip t aff { type ipv4_addr ; flags dynamic,timeout ; timeout 120s ; }",
        "add rule ip t a ip saddr @aff update @aff { ip saddr } accept",
    ]
    nft.apply(tx.render())
    assert nft.dump() == rs(120).render()


def test_changed_chain_header_means_full_sync() -> None:
    old = _ruleset()
    new = Ruleset(TABLE, (Chain("base", old.chains[0].rules, "nat", "prerouting", -99,
                                "accept"),), (), old.maps)
    assert plan_sync(old, new).full


def test_rules_using_typeof_data_maps_are_only_written_by_full_syncs() -> None:
    backends = Map("b", "ip daddr . meta l4proto . th dport . numgen random mod 1",
                   typeof=True, value="ip daddr . th dport")
    old = Ruleset(TABLE, (Chain("lb-1", (Rule(
        "dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 1 map @b"),)),),
        maps=(backends,))
    grown = Ruleset(TABLE, (*old.chains, Chain("lb-2", (Rule(
        "dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 2 map @b"),))),
        maps=(backends,))
    assert plan_sync(old, grown).full
    assert not plan_sync(grown, old).full  # removing such a rule is fine


# -- the proxy's rulesets -------------------------------------------------------------------

def _sync(nft: FakeNft, old: Ruleset | None, new: Ruleset) -> Transaction:
    tx = plan_sync(old, new)
    nft.apply(tx.render())
    assert nft.dump() == new.render()
    return tx


def test_one_endpoint_more_in_a_thousand_services() -> None:
    services, slices = many_services(1000, 3)
    before = build_ruleset(services, slices, NODE)
    nft = FakeNft()
    _sync(nft, None, before)
    changed = copy.deepcopy(slices)
    changed[500]["endpoints"].append(endpoint("10.244.250.250", node="node-2"))
    after = build_ruleset(services, changed, NODE)
    tx = _sync(nft, before, after)
    text = tx.render()
    assert not tx.full
    assert "list" not in text and "table" not in text.replace("ip svcnet", "")
    assert set(tx.counts()) == {"add element", "delete element"}
    # the verdict lb-3 -> lb-4 (delete + add) and one new backend element
    assert sum(tx.counts().values()) == 3, text
    # ... while the table holds thousands of elements.
    assert after.stats()["elements"] > 4000


def test_one_endpoint_more_in_each_of_a_thousand_services() -> None:
    services, slices = many_services(1000, 3)
    before = build_ruleset(services, slices, NODE)
    nft = FakeNft()
    _sync(nft, None, before)
    changed = copy.deepcopy(slices)
    for i, eps in enumerate(changed):
        eps["endpoints"].append(endpoint(f"10.245.{i // 250}.{i % 250 + 1}", node="node-2"))
    tx = _sync(nft, before, build_ruleset(services, changed, NODE))
    assert not tx.full and set(tx.counts()) == {"add element", "delete element"}
    assert sum(tx.counts().values()) == 3 * 1000


def test_removing_a_service() -> None:
    services, slices = many_services(50, 2)
    before = build_ruleset(services, slices, NODE)
    nft = FakeNft()
    _sync(nft, None, before)
    tx = _sync(nft, before, build_ruleset(services[1:], slices[1:], NODE))
    # the verdict, two backends, the ClusterIP, its local endpoint's hairpin pair
    assert tx.counts() == {"delete element": 5}


# -- property: any sequence of changes, applied incrementally, gives the desired table ----

def _cluster(seed: int) -> tuple[list[Obj], list[Obj]]:
    rnd = random.Random(seed)
    services: list[Obj] = []
    slices: list[Obj] = []
    for i in range(rnd.randint(0, 6)):
        name = f"s{i}"

        def mutate(svc: Obj, i: int = i) -> None:
            kind = rnd.choice(["cluster", "nodeport", "lb", "lb-local", "itp", "sticky"])
            if kind in ("nodeport", "lb", "lb-local", "sticky"):
                load_balancer(f"172.20.0.{200 + i}", local=kind == "lb-local",
                              node_port=30000 + 10 * i,
                              ranges=["192.0.2.0/24"] if rnd.random() < 0.3 else ())(svc)
            if kind == "itp":
                svc["spec"]["internalTrafficPolicy"] = "Local"
            if kind == "sticky":
                svc["spec"]["sessionAffinity"] = "ClientIP"
                svc["spec"]["sessionAffinityConfig"] = {
                    "clientIP": {"timeoutSeconds": rnd.choice([60, 10800])}}
        services.append(make_service("ns", name, f"10.96.0.{i + 1}", mutate=mutate))
        eps = [endpoint(f"10.244.{rnd.choice([1, 2])}.{j}", node=rnd.choice(["node-1", "node-2"]),
                        ready=rnd.random() < 0.8, serving=rnd.random() < 0.9,
                        terminating=rnd.random() < 0.2)
               for j in rnd.sample(range(1, 40), rnd.randint(0, 20))]
        slices.append(make_slice("ns", name, eps))
    return services, slices


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 2**32), min_size=1, max_size=6))
def test_incremental_syncs_always_converge(seeds: list[int]) -> None:
    nft = FakeNft()
    applied: Ruleset | None = None
    for seed in seeds:
        services, slices = _cluster(seed)
        desired = build_ruleset(services, slices, NODE)
        assert not desired.problems()
        tx = plan_sync(applied, desired)
        if applied is None:
            assert tx.full
        nft.apply(tx.render())
        assert nft.dump() == desired.render()
        applied = desired


def test_changes_only_touch_what_changed() -> None:
    services, slices = _cluster(7)
    base = build_ruleset(services, slices, NODE)
    same: Any = build_ruleset(copy.deepcopy(services)[::-1], copy.deepcopy(slices)[::-1], NODE)
    assert same == base and same.render() == base.render()  # input order is irrelevant
