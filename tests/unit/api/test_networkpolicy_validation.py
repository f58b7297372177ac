"""NetworkPolicy defaulting and validation (pkg/apis/networking/v1/defaults.go and
pkg/apis/networking/validation: the cases of validation_test.go's TestValidateNetworkPolicy and
TestValidateNetworkPolicyUpdate, each error with its field path and upstream's message)."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.api import kinds
from svcnet.api.errors import StatusError
from svcnet.api.networkpolicies import (
    set_defaults_network_policy,
    validate_network_policy,
    validate_network_policy_update,
)

Obj = dict[str, Any]

CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
LABEL_KEY_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                 "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  "
                 "or '123-abc', regex used for validation is "
                 "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
BAD_LABELS = {"NoUppercaseOrSpecialCharsLike=Equals": "b"}
BAD_LABEL = '"NoUppercaseOrSpecialCharsLike=Equals"'
PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"
SUBSET_MSG = "must be a strict subset of `cidr`"
V4_BLOCK = {"cidr": "192.168.0.0/16", "except": ["192.168.3.0/24", "192.168.4.0/24"]}
V6_BLOCK = {"cidr": "fd00:192:168::/48", "except": ["fd00:192:168:3::/64", "fd00:192:168:4::/64"]}
AB = {"matchLabels": {"a": "b"}}
CD = {"matchLabels": {"c": "d"}}


def policy(**spec: Any) -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "foo", "namespace": "bar"}, "spec": spec}


def ingress_from(*peers: Obj, selector: Obj | None = None) -> Obj:
    return policy(podSelector=selector or {}, ingress=[{"from": list(peers)}])


def ingress_ports(*ports: Obj) -> Obj:
    return policy(podSelector={}, ingress=[{"ports": list(ports)}])


def egress_ports(*ports: Obj) -> Obj:
    return policy(podSelector={}, egress=[{"ports": list(ports)}])


PORTS = [{"port": 80}, {"protocol": "TCP"}, {"protocol": "TCP", "port": 443},
         {"protocol": "UDP", "port": "dns"}, {"protocol": "SCTP", "port": 7777},
         {"protocol": "TCP", "port": 30000, "endPort": 32768},
         {"protocol": "UDP", "port": 32000, "endPort": 32000}]

VALID: list[tuple[str, Obj]] = [
    ("empty ingress", policy(podSelector=AB, ingress=[])),
    ("empty rule", policy(podSelector=AB, ingress=[{"from": [], "ports": []}])),
    ("ingress ports", policy(podSelector=AB, ingress=[{"ports": PORTS}])),
    ("egress ports", policy(podSelector=AB, egress=[{"ports": PORTS}])),
    ("pod selector peer", ingress_from({"podSelector": CD}, selector=AB)),
    ("namespace selector peer", ingress_from({"namespaceSelector": CD}, selector=AB)),
    ("both selectors", ingress_from({"namespaceSelector": CD,
                                     "podSelector": {"matchLabels": {"e": "f"}}}, selector=AB)),
    ("ipBlock and egress", policy(podSelector=AB, ingress=[{"from": [{"ipBlock": V4_BLOCK}]}],
                                  egress=[{"to": [{"namespaceSelector": CD}]}])),
    ("ipBlock", ingress_from({"ipBlock": V4_BLOCK}, selector=AB)),
    ("egress ipBlock, Egress", policy(podSelector=AB, egress=[{"to": [{"ipBlock": V4_BLOCK}]}],
                                      policyTypes=["Egress"])),
    ("both policy types", policy(podSelector=AB, egress=[{"to": [{"ipBlock": V4_BLOCK}]}],
                                 policyTypes=["Ingress", "Egress"])),
    ("IPv6 ipBlock", ingress_from({"ipBlock": V6_BLOCK}, selector=AB)),
    ("IPv6 egress ipBlock", policy(podSelector=AB, egress=[{"to": [{"ipBlock": V6_BLOCK}]}],
                                   policyTypes=["Egress"])),
    ("expressions", policy(podSelector={"matchExpressions": [
        {"key": "app", "operator": "In", "values": ["web"]},
        {"key": "tier", "operator": "Exists"}]})),
    # The same type twice is not a duplicate upstream checks for.
    ("repeated policy type", policy(policyTypes=["Ingress", "Ingress"])),
]


@pytest.mark.parametrize(("name", "obj"), VALID, ids=[c[0] for c in VALID])
def test_valid(name: str, obj: Obj) -> None:
    assert validate_network_policy(set_defaults_network_policy(obj)) == []


PEER = "spec.ingress[0].from[0]"
PORT = "spec.ingress[0].ports[0]"
INVALID: list[tuple[str, Obj, list[str]]] = [
    ("namespaceSelector and ipBlock",
     ingress_from({"namespaceSelector": CD, "ipBlock": V4_BLOCK}, selector=AB),
     [f"{PEER}: Forbidden: may not specify both ipBlock and another peer"]),
    ("podSelector and ipBlock",
     policy(podSelector=AB, egress=[{"to": [{"podSelector": CD, "ipBlock": V4_BLOCK}]}]),
     ["spec.egress[0].to[0]: Forbidden: may not specify both ipBlock and another peer"]),
    ("missing from and to type",
     policy(podSelector=AB, ingress=[{"from": [{}]}], egress=[{"to": [{}]}]),
     [f"{PEER}: Required value: must specify a peer",
      "spec.egress[0].to[0]: Required value: must specify a peer"]),
    ("null selectors are no peer", ingress_from({"podSelector": None, "ipBlock": None}),
     [f"{PEER}: Required value: must specify a peer"]),
    ("invalid spec.podSelector",
     ingress_from({"namespaceSelector": CD}, selector={"matchLabels": BAD_LABELS}),
     [f"spec.podSelector.matchLabels: Invalid value: {BAD_LABEL}: {LABEL_KEY_MSG}"]),
    ("invalid ingress.ports.protocol", ingress_ports({"protocol": "ICMP", "port": 80}),
     [f'{PORT}.protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", '
      '"SCTP"']),
    ("invalid ingress.ports.port (int)", ingress_ports({"protocol": "TCP", "port": 123456789}),
     [f"{PORT}.port: Invalid value: 123456789: {PORT_RANGE_MSG}"]),
    ("invalid ingress.ports.port (str)", ingress_ports({"protocol": "TCP", "port": "!@#$"}),
     [f'{PORT}.port: Invalid value: "!@#$": must contain only alpha-numeric characters '
      "(a-z, 0-9), and hyphens (-)",
      f'{PORT}.port: Invalid value: "!@#$": must contain at least one letter (a-z)']),
    ("invalid ingress.from.podSelector", ingress_from({"podSelector": {"matchLabels": BAD_LABELS}}),
     [f"{PEER}.podSelector.matchLabels: Invalid value: {BAD_LABEL}: {LABEL_KEY_MSG}"]),
    ("invalid egress.to.podSelector",
     policy(podSelector={}, egress=[{"to": [{"podSelector": {"matchLabels": BAD_LABELS}}]}]),
     [f"spec.egress[0].to[0].podSelector.matchLabels: Invalid value: {BAD_LABEL}: "
      f"{LABEL_KEY_MSG}"]),
    ("invalid egress.ports.protocol", egress_ports({"protocol": "ICMP", "port": 80}),
     ['spec.egress[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "TCP", '
      '"UDP", "SCTP"']),
    ("invalid egress.ports.port (int)", egress_ports({"protocol": "TCP", "port": 123456789}),
     [f"spec.egress[0].ports[0].port: Invalid value: 123456789: {PORT_RANGE_MSG}"]),
    ("invalid egress.ports.port (str)", egress_ports({"protocol": "TCP", "port": "!@#$"}),
     ['spec.egress[0].ports[0].port: Invalid value: "!@#$": must contain only alpha-numeric '
      "characters (a-z, 0-9), and hyphens (-)",
      'spec.egress[0].ports[0].port: Invalid value: "!@#$": must contain at least one letter '
      "(a-z)"]),
    ("invalid ingress.from.namespaceSelector",
     ingress_from({"namespaceSelector": {"matchLabels": BAD_LABELS}}),
     [f"{PEER}.namespaceSelector.matchLabels: Invalid value: {BAD_LABEL}: {LABEL_KEY_MSG}"]),
    ("invalid selector operator",
     ingress_from({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}}),
     [f'{PEER}.podSelector.matchExpressions[0].operator: Invalid value: "Is": not a valid '
      "selector operator"]),
    ("missing cidr field", ingress_from({"ipBlock": {"except": ["192.168.8.0/24"]}}),
     [f"{PEER}.ipBlock.cidr: Required value"]),
    ("invalid cidr format",
     ingress_from({"ipBlock": {"cidr": "192.168.5.6", "except": ["192.168.1.0/24"]}}),
     [f'{PEER}.ipBlock.cidr: Invalid value: "192.168.5.6": {CIDR_MSG}']),
    ("invalid ipv6 cidr format",
     ingress_from({"ipBlock": {"cidr": "fd00:192:168::", "except": ["fd00:192:168:3::/64"]}}),
     [f'{PEER}.ipBlock.cidr: Invalid value: "fd00:192:168::": {CIDR_MSG}']),
    ("except field is an empty string",
     ingress_from({"ipBlock": {"cidr": "192.168.8.0/24", "except": ["", " "]}}),
     [f'{PEER}.ipBlock.except[0]: Invalid value: "": {CIDR_MSG}',
      f'{PEER}.ipBlock.except[1]: Invalid value: " ": {CIDR_MSG}']),
    ("except IP is outside of CIDR range",
     ingress_from({"ipBlock": {"cidr": "192.168.8.0/24", "except": ["192.168.9.0/24"]}}),
     [f'{PEER}.ipBlock.except[0]: Invalid value: "192.168.9.0/24": {SUBSET_MSG}']),
    # Upstream's own case (with bits set): svcnet's strict CIDR check says so too.
    ("except IP is outside of CIDR range, bits set",
     ingress_from({"ipBlock": {"cidr": "192.168.8.0/24", "except": ["192.168.9.1/24"]}}),
     [f'{PEER}.ipBlock.except[0]: Invalid value: "192.168.9.1/24": must not have bits set '
      "beyond the prefix length",
      f'{PEER}.ipBlock.except[0]: Invalid value: "192.168.9.1/24": {SUBSET_MSG}']),
    ("except IP is not strictly within CIDR range",
     ingress_from({"ipBlock": {"cidr": "192.168.0.0/24", "except": ["192.168.0.0/24"]}}),
     [f'{PEER}.ipBlock.except[0]: Invalid value: "192.168.0.0/24": {SUBSET_MSG}']),
    ("except IPv6 is outside of CIDR range",
     ingress_from({"ipBlock": {"cidr": "fd00:192:168:1::/64",
                               "except": ["fd00:192:168:2::/64"]}}),
     [f'{PEER}.ipBlock.except[0]: Invalid value: "fd00:192:168:2::/64": {SUBSET_MSG}']),
    ("except of another family",
     ingress_from({"ipBlock": {"cidr": "0.0.0.0/0", "except": ["fd00::/64"]}}),
     [f'{PEER}.ipBlock.except[0]: Invalid value: "fd00::/64": {SUBSET_MSG}']),
    ("invalid policyTypes",
     policy(podSelector=AB, egress=[{"to": [{"ipBlock": V4_BLOCK}]}], policyTypes=["foo", "bar"]),
     ['spec.policyTypes[0]: Unsupported value: "foo": supported values: "Ingress", "Egress"',
      'spec.policyTypes[1]: Unsupported value: "bar": supported values: "Ingress", "Egress"']),
    ("too many policyTypes",
     policy(podSelector=AB, egress=[{"to": [{"ipBlock": V4_BLOCK}]}],
            policyTypes=["foo", "bar", "baz"]),
     ['spec.policyTypes: Invalid value: []networking.PolicyType{"foo", "bar", "baz"}: may not '
      "specify more than two policyTypes"]),
    ("endPort with a named port", ingress_ports({"port": "apache", "endPort": 32768}),
     [f"{PORT}.endPort: Invalid value: 32768: may not be specified when `port` is "
      "non-numeric"]),
    ("endPort without a port", ingress_ports({"endPort": 32768}),
     [f"{PORT}.endPort: Invalid value: 32768: may not be specified when `port` is not "
      "specified"]),
    # Upstream reports the port as the bad value here.
    ("endPort below port", ingress_ports({"port": 30000, "endPort": 29999}),
     [f"{PORT}.endPort: Invalid value: 30000: must be greater than or equal to `port`"]),
    ("endPort out of range", ingress_ports({"port": 30000, "endPort": 65537}),
     [f"{PORT}.endPort: Invalid value: 65537: {PORT_RANGE_MSG}"]),
    ("bad name and namespace",
     {"metadata": {"name": "Foo_", "namespace": "Bar"}, "spec": {}},
     ['metadata.name: Invalid value: "Foo_": a lowercase RFC 1123 subdomain must consist of '
      "lower case alphanumeric characters, '-' or '.', and must start and end with an "
      "alphanumeric character (e.g. 'example.com', regex used for validation is "
      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
      'metadata.namespace: Invalid value: "Bar": a lowercase RFC 1123 label must consist of '
      "lower case alphanumeric characters or '-', and must start and end with an "
      "alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]),
]


@pytest.mark.parametrize(("name", "obj", "want"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid(name: str, obj: Obj, want: list[str]) -> None:
    assert [str(e) for e in validate_network_policy(set_defaults_network_policy(obj))] == want


# ------------------------------------------------------------------------- defaults


def test_defaults_protocol_and_policy_types() -> None:
    obj = policy(ingress=[{"ports": [{"port": 80}, {"protocol": "UDP", "port": 53}]}],
                 egress=[{"ports": [{"port": 443, "protocol": None}]}])
    out = set_defaults_network_policy(obj)
    assert out["spec"]["ingress"][0]["ports"] == [{"port": 80, "protocol": "TCP"},
                                                  {"protocol": "UDP", "port": 53}]
    assert out["spec"]["egress"][0]["ports"] == [{"port": 443, "protocol": "TCP"}]
    assert out["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "policyTypes" not in obj["spec"]  # a copy


@pytest.mark.parametrize(("spec", "types"), [
    ({}, ["Ingress"]),
    ({"egress": []}, ["Ingress"]),
    ({"ingress": [{}]}, ["Ingress"]),
    ({"egress": [{}]}, ["Ingress", "Egress"]),
    ({"egress": [{}], "policyTypes": ["Egress"]}, ["Egress"]),
    ({"policyTypes": []}, ["Ingress"]),
])
def test_default_policy_types(spec: Obj, types: list[str]) -> None:
    assert set_defaults_network_policy(policy(**spec))["spec"]["policyTypes"] == types


def test_missing_spec_and_pod_selector_are_written_back_empty() -> None:
    out = set_defaults_network_policy({"metadata": {"name": "deny", "namespace": "bar"}})
    assert out["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    assert validate_network_policy(out) == []


def test_offline_check_defaults_then_validates() -> None:
    checked = kinds.check_object(policy(ingress=[{"ports": [{"port": 80}]}]))
    assert checked["spec"]["ingress"][0]["ports"][0]["protocol"] == "TCP"
    with pytest.raises(StatusError) as err:
        kinds.check_object(ingress_ports({"protocol": "ICMP"}))
    assert err.value.code == 422
    assert err.value.message == (
        'NetworkPolicy.networking.k8s.io "foo" is invalid: spec.ingress[0].ports[0].protocol: '
        'Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"')


# ------------------------------------------------------------------------- update


def _stored(obj: Obj) -> Obj:
    out = set_defaults_network_policy(obj)
    out["metadata"] = {**out["metadata"], "resourceVersion": "1", "uid": "u-1",
                       "creationTimestamp": "2026-01-01T00:00:00Z"}
    return out


def test_update_no_change_and_spec_change_are_valid() -> None:
    old = _stored(policy(podSelector=AB, ingress=[]))
    assert validate_network_policy_update(old, old) == []
    new = _stored(policy(podSelector={}, ingress=[]))
    assert validate_network_policy_update(new, old) == []


def test_update_cannot_change_the_name() -> None:
    old = _stored(policy(podSelector={}))
    new = _stored(policy(podSelector={}))
    new["metadata"]["name"] = "baz"
    assert [str(e) for e in validate_network_policy_update(new, old)] == [
        'metadata.name: Invalid value: "baz": field is immutable']


def test_update_runs_the_create_rules_once() -> None:
    old = _stored(policy(podSelector={}))
    new = _stored(ingress_ports({"protocol": "ICMP"}))
    assert [str(e) for e in validate_network_policy_update(new, old)] == [
        f'{PORT}.protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"']


def test_update_grandfathers_stored_cidrs_and_label_values() -> None:
    bad_value = {"matchExpressions": [{"key": "a", "operator": "In", "values": ["-bad-"]}]}
    old = _stored(policy(podSelector=bad_value,
                         ingress=[{"from": [{"ipBlock": {"cidr": "10.0.0.1/8",
                                                         "except": ["10.1.0.1/16"]}}]}]))
    assert len(validate_network_policy(old)) == 3  # stored before svcnet checked them
    # Kept as they were, moved about, or added to: the stored values still pass.
    new = _stored(policy(podSelector=bad_value, egress=[{"to": [
        {"ipBlock": {"cidr": "10.1.0.1/16"}},
        {"ipBlock": {"cidr": "10.0.0.1/8", "except": ["10.1.0.1/16", "10.2.0.0/16"]}},
        {"podSelector": bad_value}]}]))
    assert validate_network_policy_update(new, old) == []
    # A new bad CIDR is still refused; without the stored bad selector, so are its values.
    new["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"] = "10.3.0.1/16"
    clean = _stored(policy(podSelector={}, ingress=old["spec"]["ingress"]))
    assert [str(e) for e in validate_network_policy_update(new, clean)] == [
        'spec.podSelector.matchExpressions[0].values[0]: Invalid value: "-bad-": a valid label '
        "must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
        "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  "
        "or '12345', regex used for validation is "
        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        'spec.egress[0].to[0].ipBlock.cidr: Invalid value: "10.3.0.1/16": must not have bits '
        "set beyond the prefix length",
        'spec.egress[0].to[2].podSelector.matchExpressions[0].values[0]: Invalid value: '
        '"-bad-": a valid label must be an empty string or consist of alphanumeric characters, '
        "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
        "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]
