"""nft objects validate themselves: nothing malformed (or resolvable via DNS) reaches nft."""

from __future__ import annotations

import pytest

from svcnet.proxy.nft.objects import (
    Chain,
    Element,
    Map,
    NftValidationError,
    Rule,
    Ruleset,
    Set,
    Table,
    key_datatypes,
    rule_references,
    validate_name,
)

TABLE = Table("ip", "svcnet")


@pytest.mark.parametrize("name", ["services", "lb-3", "sticky-ABCD1234-ns/svc/tcp/http",
                                  "_x", ".x", "a.b_c-d/e"])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "3lb", "-x", "/x", "a b", "a;b", "a\"b", "a{b", "x" * 256,
                                  "é"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(NftValidationError):
        validate_name(name)


@pytest.mark.parametrize("key", [
    ("10.128.256.1",),   # nft would look this up in DNS
    ("10.1.2",),
    ("010.1.2.3",),      # not canonical
    ("10.1.2.3 ",),
    ("fd00::1",),
    ("example.com",),
    ("",),
])
def test_malformed_addresses_never_reach_nft(key: tuple[str, ...]) -> None:
    with pytest.raises(NftValidationError):
        Set("s", "ipv4_addr", elements=(Element(key),))


@pytest.mark.parametrize("key", [
    ("FD00::1",),             # not canonical (nft lists it lower-case)
    ("fd00:0:0::1",),         # not canonical
    ("fd00::1::2",),
    ("10.0.0.1",),
    ("fd00::/8",),            # no prefix outside an interval set
])
def test_malformed_ipv6_addresses_never_reach_nft(key: tuple[str, ...]) -> None:
    with pytest.raises(NftValidationError):
        Set("s", "ipv6_addr", elements=(Element(key),))


def test_ipv6_sets_rules_and_order() -> None:
    s = Set("s", "ipv6_addr . inet_proto . inet_service",
            elements=(Element(("fd00::10", "tcp", "80")), Element(("fd00::9", "tcp", "80"))))
    assert [e.key[0] for e in s.elements] == ["fd00::9", "fd00::10"]  # numeric order
    Set("r", "ipv6_addr", flags=("interval",), elements=(Element(("fd00:10:244::/56",)),))
    with pytest.raises(NftValidationError):  # host bits
        Set("r", "ipv6_addr", flags=("interval",), elements=(Element(("fd00::1/64",)),))
    Rule("dnat ip6 to [fd00:10:244:1::5]:8080")
    with pytest.raises(NftValidationError):
        Rule("dnat ip6 to [fd00:10:244:1:0::5]:8080")
    assert key_datatypes("ip6 daddr . th dport", typeof=True) == ("ipv6_addr", "inet_service")


@pytest.mark.parametrize(("key", "value"), [
    (("10.96.0.1", "tcp", "80"), ("goto lb-1",)),
    (("10.96.0.1", "udp", "65535"), ("drop",)),
    (("10.96.0.1", "sctp", "0"), ("jump sticky-X/ns/a",)),
])
def test_valid_vmap_elements(key: tuple[str, ...], value: tuple[str, ...]) -> None:
    m = Map("m", "ipv4_addr . inet_proto . inet_service", elements=(Element(key, value),))
    assert m.elements[0].render().endswith(" : " + value[0])


@pytest.mark.parametrize(("key", "value"), [
    (("10.96.0.1", "icmp", "80"), ("drop",)),        # unsupported protocol
    (("10.96.0.1", "tcp", "65536"), ("drop",)),      # port out of range
    (("10.96.0.1", "tcp", "080"), ("drop",)),        # not canonical
    (("10.96.0.1", "tcp"), ("drop",)),               # arity
    (("10.96.0.1", "tcp", "80"), ()),                # a map element needs a value
    (("10.96.0.1", "tcp", "80"), ("goto bad name",)),
    (("10.96.0.1", "tcp", "80"), ("reject",)),       # not a verdict (reject is a statement)
])
def test_invalid_vmap_elements(key: tuple[str, ...], value: tuple[str, ...]) -> None:
    with pytest.raises(NftValidationError):
        Map("m", "ipv4_addr . inet_proto . inet_service", elements=(Element(key, value),))


def test_typeof_maps_and_interval_sets() -> None:
    backends = Map("backends", "ip daddr . meta l4proto . th dport . numgen random mod 1",
                   typeof=True, value="ip daddr . th dport",
                   elements=(Element(("10.96.0.1", "tcp", "80", "0"), ("10.244.1.5", "8080")),))
    assert backends.key_types == ("ipv4_addr", "inet_proto", "inet_service", "integer")
    assert backends.value_types == ("ipv4_addr", "inet_service")
    assert backends.rules_need_full_sync
    ranges = Set("r", "ipv4_addr", flags=("interval",),
                 elements=(Element(("10.0.0.0/8",)), Element(("192.0.2.1-192.0.2.9",))))
    assert len(ranges.elements) == 2
    with pytest.raises(NftValidationError, match="host bits"):
        Set("r", "ipv4_addr", flags=("interval",), elements=(Element(("10.0.0.1/8",)),))
    with pytest.raises(NftValidationError):
        Set("r", "ipv4_addr", elements=(Element(("10.0.0.0/8",)),))  # needs the interval flag
    with pytest.raises(NftValidationError):
        key_datatypes("ip daddr . tcp flags", typeof=True)
    with pytest.raises(NftValidationError):
        key_datatypes("ipv4_addr . verdict", typeof=False)


def test_set_options() -> None:
    s = Set("aff", "ipv4_addr", flags=("dynamic", "timeout"), timeout=10800)
    assert s.spec() == "{ type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }"
    assert s.dynamic
    with pytest.raises(NftValidationError):
        Set("aff", "ipv4_addr", timeout=60)  # timeout without the flag
    with pytest.raises(NftValidationError):
        Set("s", "ipv4_addr", flags=("bogus",))
    with pytest.raises(NftValidationError):
        Set("s", "ipv4_addr", elements=(Element(("10.0.0.1",)), Element(("10.0.0.1",))))


@pytest.mark.parametrize("text", [
    "accept; flush ruleset",     # a second command
    "ip daddr 10.0.0.1 accept # comment",
    'meta comment "x"',
    "ip daddr 10.128.256.1 accept",   # would be resolved as a hostname
    "ip daddr 10.0.0.1/33 accept",
    "ip daddr 10.0.0.1/8 accept",     # host bits
    "ip daddr 10.1.2 accept",
    "",
    " accept",
    "goto 9lives",
    "ip saddr @bad! accept",
])
def test_rules_refuse_what_could_go_wrong(text: str) -> None:
    with pytest.raises(NftValidationError):
        Rule(text)


def test_rules_and_references() -> None:
    rule = Rule("ip daddr . meta l4proto . th dport vmap @service-ips", "dispatch")
    assert rule.render() == 'ip daddr . meta l4proto . th dport vmap @service-ips comment "dispatch"'
    assert rule_references("ip saddr @a jump b") == ({"b"}, {"a"})
    assert rule_references("update @aff-1 { ip saddr } goto x/y") == ({"x/y"}, {"aff-1"})
    Rule("meta l4proto tcp dnat ip to 10.244.1.5:8080")
    Rule("ip saddr != { 10.0.0.0/8, 192.0.2.0/24 } drop")
    with pytest.raises(NftValidationError):
        Rule("accept", 'a "quoted" comment')
    with pytest.raises(NftValidationError):
        Rule("accept", "x" * 129)


def test_chains() -> None:
    base = Chain("nat-output", (Rule("jump services"),), "nat", "output", -100, "accept", "c")
    assert base.is_base
    assert base.spec() == '{ type nat hook output priority -100 ; policy accept ; comment "c" ; }'
    assert base.header().rules == ()
    assert Chain("plain").spec() == ""
    with pytest.raises(NftValidationError):
        Chain("x", type="nat")  # type without hook and priority
    with pytest.raises(NftValidationError):
        Chain("x", type="nat", hook="ingress", priority=0)
    with pytest.raises(NftValidationError):
        Chain("x", policy="accept")


def test_ruleset_is_canonical_and_checks_references() -> None:
    a = Ruleset(TABLE, (Chain("b", (Rule("goto a"),)), Chain("a")),
                (Set("s", "ipv4_addr", elements=(Element(("10.0.0.2",)),
                                                   Element(("10.0.0.10",)))),))
    b = Ruleset(TABLE, (Chain("a"), Chain("b", (Rule("goto a"),))),
                (Set("s", "ipv4_addr", elements=(Element(("10.0.0.10",)),
                                                   Element(("10.0.0.2",)))),))
    assert a == b and a.render() == b.render()
    assert a.render().index("10.0.0.2,") < a.render().index("10.0.0.10")  # numeric order
    assert a.problems() == []
    broken = Ruleset(TABLE, (Chain("b", (Rule("ip saddr @nope goto gone"),)),),
                     maps=(Map("m", "ipv4_addr", elements=(Element(("10.0.0.1",),
                                                                   ("goto lost",)),)),))
    assert broken.problems() == ["chain b: rule refers to missing chain gone",
                                 "chain b: rule refers to missing set nope",
                                 "map m: element refers to missing chain lost"]
    with pytest.raises(NftValidationError):
        Ruleset(TABLE, (Chain("a"), Chain("a")))
    with pytest.raises(NftValidationError):
        Ruleset(TABLE, sets=(Set("x", "ipv4_addr"),), maps=(Map("x", "ipv4_addr"),))
    assert a.stats() == {"chains": 2, "rules": 1, "sets": 1, "maps": 0, "elements": 2}


def test_table() -> None:
    assert Table("ip", "svcnet").ref == "ip svcnet"
    with pytest.raises(NftValidationError):
        Table("arp", "svcnet")
    with pytest.raises(NftValidationError):
        Table("ip", "svc net")
