"""EndpointSlice defaulting and validation; cases ported from upstream's
pkg/apis/discovery/validation/validation_test.go (TestValidateEndpointSlice,
TestValidateEndpointSliceCreate, TestValidateEndpointSliceUpdate), with exact field errors
instead of error counts."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from svcnet.api.endpointslices import (
    MAX_ADDRESSES,
    MAX_ENDPOINTS,
    MAX_PORTS,
    MAX_TOPOLOGY_LABELS,
    prepare_endpointslice_for_create,
    prepare_endpointslice_for_update,
    set_defaults_endpointslice,
    validate_endpointslice,
    validate_endpointslice_update,
)
from svcnet.api.errors import ErrorType, FieldError

R = ErrorType.REQUIRED
I = ErrorType.INVALID  # noqa: E741
D = ErrorType.DUPLICATE
NS = ErrorType.NOT_SUPPORTED
TM = ErrorType.TOO_MANY
IE = ErrorType.INTERNAL

Obj = dict[str, Any]
Mutator = Callable[[Obj], object]


def _errset(errs: list[FieldError]) -> set[tuple[str, ErrorType]]:
    return {(e.field, e.type) for e in errs}


def _ips(n: int) -> list[str]:
    return [f"10.1.{i // 250}.{i % 250 + 1}" for i in range(n)]


def _ports(n: int) -> list[Obj]:
    return [{"name": f"http-{i}", "protocol": "TCP", "port": 1000 + i} for i in range(n)]


def _endpoints(n: int) -> list[Obj]:
    return [{"addresses": [ip]} for ip in _ips(n)]


def _slice(address_type: str = "IPv4", **fields: Any) -> Obj:
    eps: Obj = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "hello", "namespace": "world"},
        "addressType": address_type,
        "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
        "endpoints": [{"addresses": _ips(1), "hostname": "valid-123"}],
    }
    eps.update(fields)
    return eps


def _ep(eps: Obj, i: int = 0) -> Obj:
    endpoint: Obj = eps["endpoints"][i]
    return endpoint


CASES: list[tuple[str, Obj, set[tuple[str, ErrorType]]]] = [
    ("good-slice", _slice(), set()),
    ("good-ipv6", _slice("IPv6", endpoints=[{"addresses": ["a00:100::4"],
                                             "hostname": "valid-123"}]), set()),
    ("good-fqdns", _slice("FQDN", endpoints=[{"addresses": [
        "foo.example.com", "example.com", "example.com.", "hyphens-are-good.example.com"],
        "hostname": "valid-123"}]), set()),
    ("all-protocols", _slice(ports=[{"name": "tcp", "protocol": "TCP"},
                                    {"name": "udp", "protocol": "UDP"},
                                    {"name": "sctp", "protocol": "SCTP"}]), set()),
    ("app-protocols", _slice(ports=[
        {"name": "one", "protocol": "TCP", "appProtocol": "HTTP"},
        {"name": "two", "protocol": "TCP", "appProtocol": "https"},
        {"name": "three", "protocol": "TCP", "appProtocol": "my-protocol"},
        {"name": "four", "protocol": "TCP", "appProtocol": "example.com/custom-protocol"}]),
     set()),
    ("empty-port-name", _slice(ports=[{"name": "", "protocol": "TCP"},
                                      {"name": "http", "protocol": "TCP"}],
                               endpoints=[{"addresses": _ips(1)}]), set()),
    ("long-port-name", _slice(ports=[{"name": "a" * 63, "protocol": "TCP"}]), set()),
    ("empty-ports-and-endpoints", _slice(ports=[], endpoints=[]), set()),
    ("max-endpoints", _slice(ports=_ports(1), endpoints=_endpoints(MAX_ENDPOINTS)), set()),
    ("max-ports", _slice(ports=_ports(MAX_PORTS), endpoints=[]), set()),
    ("max-addresses", _slice(endpoints=[{"addresses": _ips(MAX_ADDRESSES)}]), set()),
    ("max-topology-keys", _slice(endpoints=[{"addresses": _ips(1), "deprecatedTopology": {
        f"topology-{i}": "example" for i in range(MAX_TOPOLOGY_LABELS)}}]), set()),
    ("node-name-zone-conditions", _slice(endpoints=[{
        "addresses": _ips(1), "nodeName": "node-1.example.com", "zone": "anything goes",
        "conditions": {"ready": True, "serving": True, "terminating": False},
        "targetRef": {"kind": "Pod", "name": "web-0", "namespace": "world"}}]), set()),
    ("zone-hints", _slice(endpoints=[{"addresses": _ips(1), "hints": {
        "forZones": [{"name": "zone-a"}, {"name": "zone-b"}]}}]), set()),
    # expected failures
    ("duplicate-port-name", _slice(ports=[{"name": "", "protocol": "TCP"},
                                          {"name": "", "protocol": "TCP"}], endpoints=[]),
     {("ports[1].name", D)}),
    ("bad-port-name-caps", _slice(ports=[{"name": "aCapital", "protocol": "TCP"}],
                                  endpoints=[]), {("ports[0].name", I)}),
    ("bad-port-name-chars", _slice(ports=[{"name": "almost_valid", "protocol": "TCP"}],
                                   endpoints=[]), {("ports[0].name", I)}),
    ("bad-port-name-length", _slice(ports=[{"name": "a" * 64, "protocol": "TCP"}],
                                    endpoints=[]), {("ports[0].name", I)}),
    ("invalid-port-protocol", _slice(ports=[{"name": "http", "protocol": "foo"}]),
     {("ports[0].protocol", NS)}),
    ("missing-port-protocol", _slice(ports=[{"name": "http"}]), {("ports[0].protocol", R)}),
    ("too-many-ports", _slice(ports=_ports(MAX_PORTS + 1)), {("ports", TM)}),
    ("too-many-endpoints", _slice(ports=_ports(1), endpoints=_endpoints(MAX_ENDPOINTS + 1)),
     {("endpoints", TM)}),
    ("no-endpoint-addresses", _slice(endpoints=[{"addresses": []}]),
     {("endpoints[0].addresses", R)}),
    ("too-many-addresses", _slice(endpoints=[{"addresses": _ips(MAX_ADDRESSES + 1)}]),
     {("endpoints[0].addresses", TM)}),
    ("bad-topology-key", _slice(endpoints=[{"addresses": _ips(1),
                                            "deprecatedTopology": {"--INVALID": "example"}}]),
     {("endpoints[0].deprecatedTopology", I)}),
    ("too-many-topology-keys", _slice(endpoints=[{"addresses": _ips(1), "deprecatedTopology": {
        f"topology-{i}": "example" for i in range(MAX_TOPOLOGY_LABELS + 1)}}]),
     {("endpoints[0].deprecatedTopology", TM)}),
    ("reserved-topology-key", _slice(endpoints=[{"addresses": _ips(1), "deprecatedTopology": {
        "topology.kubernetes.io/zone": "a"}}]),
     {("endpoints[0].deprecatedTopology[topology.kubernetes.io/zone]", IE)}),
    ("bad-hostname", _slice(endpoints=[{"addresses": _ips(1), "hostname": "--INVALID"}]),
     {("endpoints[0].hostname", I)}),
    ("bad-node-name", _slice(endpoints=[{"addresses": _ips(1), "nodeName": "Node_1"}]),
     {("endpoints[0].nodeName", I)}),
    ("bad-meta", _slice(metadata={"name": "*&^", "namespace": "foo"}), {("metadata.name", I)}),
    ("bad-ipv4", _slice(endpoints=[{"addresses": ["123.456.789.012", "2001:4860:4860::8888"],
                                    "hostname": "valid-123"}]),
     {("endpoints[0].addresses[0]", I), ("endpoints[0].addresses[1]", I)}),
    ("bad-ipv6", _slice("IPv6", endpoints=[{"addresses": ["123.456.789.012",
                                                          "2001:4860:4860:defg"]}]),
     {("endpoints[0].addresses[0]", I), ("endpoints[0].addresses[1]", I)}),
    ("ipv4-mapped-in-ipv6-slice", _slice("IPv6", endpoints=[{"addresses": ["::ffff:1.2.3.4"]}]),
     {("endpoints[0].addresses[0]", I)}),
    ("bad-fqdns", _slice("FQDN", endpoints=[{"addresses": [
        "foo.*", "FOO.example.com", "underscores_are_bad.example.com", "*.example.com"]}]),
     {("endpoints[0].addresses[0]", I), ("endpoints[0].addresses[1]", I),
      ("endpoints[0].addresses[2]", I), ("endpoints[0].addresses[3]", I)}),
    ("fqdn-single-label", _slice("FQDN", endpoints=[{"addresses": ["localhost"]}]),
     {("endpoints[0].addresses[0]", I)}),
    ("fqdn-empty", _slice("FQDN", endpoints=[{"addresses": [""]}]),
     {("endpoints[0].addresses[0]", R)}),
    ("bad-app-protocol", _slice(ports=[{"name": "http", "protocol": "TCP",
                                        "appProtocol": "--"}]),
     {("ports[0].appProtocol", I)}),
    ("empty-everything", {}, {("metadata.name", R), ("metadata.namespace", R),
                              ("addressType", R)}),
    ("special-ipv4-loopback", _slice(endpoints=[{"addresses": ["127.0.0.1"]}]),
     {("endpoints[0].addresses[0]", I)}),
    ("special-ipv4-unspecified", _slice(endpoints=[{"addresses": ["0.0.0.0"]}]),
     {("endpoints[0].addresses[0]", I)}),
    ("special-ipv4-link-local", _slice(endpoints=[{"addresses": ["169.254.169.254"]}]),
     {("endpoints[0].addresses[0]", I)}),
    ("special-ipv4-link-local-multicast", _slice(endpoints=[{"addresses": ["224.0.0.251"]}]),
     {("endpoints[0].addresses[0]", I)}),
    ("special-ipv6", _slice("IPv6", endpoints=[{"addresses": ["fe80::9656:d028:8652:66b6"]}]),
     {("endpoints[0].addresses[0]", I)}),
    ("special-ipv6-loopback", _slice("IPv6", endpoints=[{"addresses": ["::1"]}]),
     {("endpoints[0].addresses[0]", I)}),
    ("deprecated-ip-address-type", _slice("IP"), {("addressType", NS)}),
    ("unknown-address-type-skips-addresses",
     _slice("Foo", endpoints=[{"addresses": ["not an address"]}]), {("addressType", NS)}),
    ("too-many-zone-hints", _slice(endpoints=[{"addresses": _ips(1), "hints": {
        "forZones": [{"name": f"z{i}"} for i in range(9)]}}]),
     {("endpoints[0].hints.forZones", TM)}),
    ("duplicate-zone-hint", _slice(endpoints=[{"addresses": _ips(1), "hints": {
        "forZones": [{"name": "a"}, {"name": "a"}]}}]),
     {("endpoints[0].hints.forZones[1].name", D)}),
    ("bad-zone-hint", _slice(endpoints=[{"addresses": _ips(1), "hints": {
        "forZones": [{"name": "not valid"}]}}]),
     {("endpoints[0].hints.forZones[0].name", I)}),
    ("bad-label", _slice(metadata={"name": "hello", "namespace": "world",
                                   "labels": {"kubernetes.io/service-name": "Not Valid"}}),
     {("metadata.labels", I)}),
]


@pytest.mark.parametrize(("eps", "expected"), [(s, e) for _, s, e in CASES],
                         ids=[c[0] for c in CASES])
def test_validate_endpointslice(eps: Obj, expected: set[tuple[str, ErrorType]]) -> None:
    assert _errset(validate_endpointslice(eps)) == expected


@pytest.mark.parametrize(("name", "count"), [
    ("bad-ipv4", 3), ("bad-ipv6", 4), ("bad-fqdns", 4), ("empty-everything", 3),
    ("special-ipv4-unspecified", 1),
])
def test_error_counts_match_upstream(name: str, count: int) -> None:
    # Upstream's table asserts error counts; a bad IPv4 address is reported twice (not IPv4,
    # and not an IP at all).
    (eps,) = [s for n, s, _ in CASES if n == name]
    assert len(validate_endpointslice(eps)) == count


@pytest.mark.parametrize(("address_type", "address", "message"), [
    ("IPv4", "127.0.0.1", 'endpoints[0].addresses[0]: Invalid value: "127.0.0.1": may not be '
                          "in the loopback range (127.0.0.0/8, ::1/128)"),
    ("IPv4", "0.0.0.0", 'endpoints[0].addresses[0]: Invalid value: "0.0.0.0": may not be '
                        "unspecified (0.0.0.0)"),
    ("IPv4", "fd00::1", 'endpoints[0].addresses[0]: Invalid value: "fd00::1": must be a valid '
                        "IPv4 address"),
    ("IPv6", "10.0.0.1", 'endpoints[0].addresses[0]: Invalid value: "10.0.0.1": must be a valid '
                         "IPv6 address"),
    ("FQDN", "localhost", 'endpoints[0].addresses[0]: Invalid value: "localhost": should be a '
                          "domain with at least two segments separated by dots"),
    ("FQDN", "a.-b.c", 'endpoints[0].addresses[0]: Invalid value: "a.-b.c": a lowercase RFC 1123 '
                       "subdomain must consist of lower case alphanumeric characters, '-' or "
                       "'.', and must start and end with an alphanumeric character (e.g. "
                       "'example.com', regex used for validation is "
                       "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
], ids=["loopback", "unspecified", "v6-in-v4-slice", "v4-in-v6-slice", "single-label",
        "bad-label"])
def test_address_messages(address_type: str, address: str, message: str) -> None:
    errs = validate_endpointslice(_slice(address_type, endpoints=[{"addresses": [address]}]))
    assert str(errs[0]) == message


def test_too_many_message() -> None:
    errs = validate_endpointslice(_slice(endpoints=[{"addresses": _ips(MAX_ADDRESSES + 1)}]))
    assert [str(e) for e in errs] == [
        "endpoints[0].addresses: Too many: 101: must have at most 100 items"]


# ----------------------------------------------------------------------------- updates


def _stored() -> Obj:
    eps = prepare_endpointslice_for_create(set_defaults_endpointslice(_slice()))
    eps["metadata"].update(resourceVersion="9", uid="u-eps",
                           creationTimestamp="2024-01-01T00:00:00Z")
    return eps


UPDATE_CASES: list[tuple[str, Mutator, set[tuple[str, ErrorType]]]] = [
    ("no-change", lambda n: None, set()),
    ("endpoints-changed", lambda n: n.update(endpoints=_endpoints(3)), set()),
    ("ports-changed", lambda n: n.update(ports=_ports(2)), set()),
    ("address-type-changed",
     lambda n: n.update(addressType="IPv6", endpoints=[{"addresses": ["fd00::1"]}]),
     {("addressType", I)}),
    ("address-type-changed-and-invalid", lambda n: n.update(addressType="IPv6"),
     {("addressType", I), ("endpoints[0].addresses[0]", I)}),
    ("resource-version-missing", lambda n: n["metadata"].pop("resourceVersion"),
     {("metadata.resourceVersion", I)}),
    ("namespace-changed", lambda n: n["metadata"].update(namespace="other"),
     {("metadata.namespace", I)}),
    ("bad-port-on-update", lambda n: n["ports"][0].update(protocol="ICMP"),
     {("ports[0].protocol", NS)}),
]


@pytest.mark.parametrize(("mutate", "expected"), [(m, e) for _, m, e in UPDATE_CASES],
                         ids=[c[0] for c in UPDATE_CASES])
def test_validate_endpointslice_update(mutate: Mutator,
                                       expected: set[tuple[str, ErrorType]]) -> None:
    old = _stored()
    new = copy.deepcopy(old)
    mutate(new)
    assert _errset(validate_endpointslice_update(new, old)) == expected


def test_address_type_immutable_message() -> None:
    old = _stored()
    new = copy.deepcopy(old)
    new.update(addressType="FQDN", endpoints=[{"addresses": ["example.com"]}])
    assert [str(e) for e in validate_endpointslice_update(new, old)] == [
        'addressType: Invalid value: "FQDN": field is immutable']


# ----------------------------------------------------------------------------- defaulting


def test_port_defaults() -> None:
    raw = _slice(ports=[{"port": 80}, {"name": "dns", "protocol": "UDP", "port": 53}])
    before = copy.deepcopy(raw)
    eps = set_defaults_endpointslice(raw)
    assert raw == before
    assert eps["ports"] == [{"port": 80, "name": "", "protocol": "TCP"},
                            {"name": "dns", "protocol": "UDP", "port": 53}]
    assert validate_endpointslice(eps) == []


def test_prepare_for_create_sets_generation_and_drops_topology() -> None:
    raw = _slice(endpoints=[{"addresses": _ips(1),
                             "deprecatedTopology": {"topology.kubernetes.io/zone": "a"}}])
    assert _errset(validate_endpointslice(raw)) == {
        ("endpoints[0].deprecatedTopology[topology.kubernetes.io/zone]", IE)}
    eps = prepare_endpointslice_for_create(raw)
    assert eps["metadata"]["generation"] == 1
    assert "deprecatedTopology" not in eps["endpoints"][0]
    assert validate_endpointslice(eps) == []


@pytest.mark.parametrize(("mutate", "generation"), [
    (lambda n: None, 1),
    (lambda n: n["metadata"].update(annotations={"a": "b"}), 1),
    (lambda n: n["metadata"].update(labels={"kubernetes.io/service-name": "web"}), 2),
    (lambda n: n.update(endpoints=_endpoints(2)), 2),
    (lambda n: n["ports"][0].update(port=8080), 2),
], ids=["unchanged", "annotations-only", "labels", "endpoints", "ports"])
def test_prepare_for_update_generation(mutate: Mutator, generation: int) -> None:
    old = _stored()
    new = copy.deepcopy(old)
    mutate(new)
    assert prepare_endpointslice_for_update(new, old)["metadata"]["generation"] == generation


def test_prepare_for_update_keeps_topology_when_endpoints_unchanged() -> None:
    old = _stored()
    old["endpoints"][0]["deprecatedTopology"] = {"rack": "r1"}
    new = copy.deepcopy(old)
    assert prepare_endpointslice_for_update(new, old)["endpoints"][0]["deprecatedTopology"] == {
        "rack": "r1"}
    new["endpoints"].append({"addresses": ["10.9.9.9"]})
    prepared = prepare_endpointslice_for_update(new, old)
    assert "deprecatedTopology" not in prepared["endpoints"][0]
