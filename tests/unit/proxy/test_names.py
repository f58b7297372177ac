"""Names of per-service objects: readable, unique, stable, valid nft identifiers."""

from __future__ import annotations

import pytest

from svcnet.proxy import names
from svcnet.proxy.model import EndpointInfo, ServicePortName
from svcnet.proxy.nft.objects import validate_name

SPN = ServicePortName("ns1", "svc1", "p80", "TCP")


@pytest.mark.parametrize(("name", "expected"), [
    (names.service_port_id(SPN), "ns1/svc1/tcp/p80"),
    (names.service_port_id(ServicePortName("ns", "dns", "", "UDP")), "ns/dns/udp/"),
    (names.lb_chain(3), "lb-3"),
    (names.lb_local_chain(12), "lb-local-12"),
])
def test_plain_names(name: str, expected: str) -> None:
    assert name == expected


def test_hashed_names_are_stable_and_readable() -> None:
    chain = names.sticky_chain(SPN)
    assert chain.startswith("sticky-") and chain.endswith("-ns1/svc1/tcp/p80")
    assert chain == names.sticky_chain(ServicePortName("ns1", "svc1", "p80", "TCP"))
    prefix = chain[len("sticky-"):].split("-", 1)[0]
    assert len(prefix) == 8 and prefix.isalnum() and prefix.isupper()
    assert names.sticky_local_chain(SPN) == "sticky-local-" + chain[len("sticky-"):]
    aff = names.affinity_set(SPN, EndpointInfo("10.180.0.1", 8080))
    assert aff.startswith("affinity-") and aff.endswith("-ns1/svc1/tcp/p80__10.180.0.1/8080")


def test_hashed_names_differ_where_inputs_differ() -> None:
    variants = [SPN, ServicePortName("ns1", "svc1", "p80", "UDP"),
                ServicePortName("ns1", "svc1", "p81", "TCP"),
                ServicePortName("ns1", "svc2", "p80", "TCP"),
                ServicePortName("ns2", "svc1", "p80", "TCP")]
    chains = {names.sticky_chain(v) for v in variants}
    assert len(chains) == len(variants)
    prefixes = {c.split("-")[1] for c in chains}
    assert len(prefixes) == len(variants)  # the hash alone tells them apart


def test_names_are_valid_nft_identifiers_even_at_maximum_length() -> None:
    longest = ServicePortName("n" * 63, "s" * 63, "p" * 15, "SCTP")
    for name in (names.sticky_chain(longest), names.sticky_local_chain(longest),
                 names.affinity_set(longest, EndpointInfo("255.255.255.255", 65535))):
        assert validate_name(name) == name
        assert len(name) <= 255


def test_overlong_names_are_cut_and_marked() -> None:
    cut = names.hash_name("x" * 400)
    assert len(cut) == 220 and cut.endswith("...")
    assert cut != names.hash_name("x" * 401)  # the hash still tells them apart
