"""ServiceCIDR and IPAddress validation: upstream's field paths and messages."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.api.servicecidrs import (
    default_service_cidr,
    validate_ip_address,
    validate_ip_address_update,
    validate_service_cidr,
    validate_service_cidr_status_update,
    validate_service_cidr_update,
)

Obj = dict[str, Any]


def cidr(*cidrs: str, name: str = "c") -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
            "metadata": {"name": name}, "spec": {"cidrs": list(cidrs)}}


def ipaddr(ip: str, **ref: str) -> Obj:
    parent = {"group": "", "resource": "services", "namespace": "default", "name": "web"}
    parent.update(ref)
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
            "metadata": {"name": ip}, "spec": {"parentRef": parent}}


def messages(errs: list[Any]) -> list[str]:
    return [str(e) for e in errs]


@pytest.mark.parametrize(("cidrs", "expected"), [
    ((), ["spec.cidrs: Required value: at least one CIDR required"]),
    (("10.0.0.0/24", "10.1.0.0/24", "fd00::/64"),
     ['spec.cidrs: Invalid value: networking.ServiceCIDRSpec{CIDRs:[]string{"10.0.0.0/24", '
      '"10.1.0.0/24", "fd00::/64"}}: may only hold up to 2 values']),
    (("10.0.0.0/24", "10.1.0.0/24"),
     ['spec.cidrs: Invalid value: networking.ServiceCIDRSpec{CIDRs:[]string{"10.0.0.0/24", '
      '"10.1.0.0/24"}}: may specify no more than one IP for each IP family, '
      'i.e 192.168.0.0/24 and 2001:db8::/64']),
    (("10.0.0.1/24",),
     ['spec.cidrs[0]: Invalid value: "10.0.0.1/24": must not have bits set beyond the '
      'prefix length']),
    (("nope",),
     ['spec.cidrs[0]: Invalid value: "nope": must be a valid CIDR value, (e.g. 10.9.8.0/24 '
      'or 2001:db8::/64)']),
    (("10.0.0.0/24",), []),
    (("10.0.0.0/24", "fd00::/108"), []),
])
def test_service_cidr_spec(cidrs: tuple[str, ...], expected: list[str]) -> None:
    assert messages(validate_service_cidr(cidr(*cidrs))) == expected


def test_service_cidr_name_is_a_dns_subdomain() -> None:
    errs = messages(validate_service_cidr(cidr("10.0.0.0/24", name="Bad_Name")))
    assert len(errs) == 1 and errs[0].startswith('metadata.name: Invalid value: "Bad_Name": '
                                                 "a lowercase RFC 1123 subdomain")


def test_service_cidr_cidrs_are_immutable_but_status_may_change() -> None:
    old = cidr("10.0.0.0/24")
    old["metadata"].update(uid="u", resourceVersion="1", creationTimestamp="2025-01-01T00:00:00Z")
    new = copy.deepcopy(old)
    new["spec"]["cidrs"] = ["10.0.0.0/23"]
    assert messages(validate_service_cidr_update(new, old)) == [
        'spec.cidrs: Invalid value: []string{"10.0.0.0/23"}: field is immutable']
    new["spec"]["cidrs"] = ["10.0.0.0/24", "fd00::/112"]
    assert validate_service_cidr_update(new, old) == [], "single to dual-stack"
    new["spec"]["cidrs"] = ["10.0.1.0/24", "fd00::/112"]
    assert messages(validate_service_cidr_update(new, old)) == [
        'spec.cidrs[0]: Invalid value: "10.0.1.0/24": field is immutable']
    dual = copy.deepcopy(old)
    dual["spec"]["cidrs"] = ["10.0.0.0/24", "fd00::/112"]
    back = copy.deepcopy(old)
    assert messages(validate_service_cidr_update(back, dual)) == [
        'spec.cidrs: Invalid value: []string{"10.0.0.0/24"}: field is immutable'], "no way back"
    status = copy.deepcopy(old)
    status["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    assert validate_service_cidr_status_update(status, old) == []
    assert validate_service_cidr_update(copy.deepcopy(old), old) == []


@pytest.mark.parametrize(("name", "expected"), [
    ("10.0.0.1", []),
    ("2001:db8::1", []),
    ("2001:DB8::1", ['metadata.name: Invalid value: "2001:DB8::1": must be a canonical '
                     "format IP address"]),
    ("2001:db8:0::1", ['metadata.name: Invalid value: "2001:db8:0::1": must be a canonical '
                       "format IP address"]),
    ("10.0.0.010", ['metadata.name: Invalid value: "10.0.0.010": must not have leading 0s']),
    ("web", ['metadata.name: Invalid value: "web": must be a valid IP address, (e.g. '
             "10.9.8.7 or 2001:db8::ffff)"]),
])
def test_ip_address_name_is_a_canonical_ip(name: str, expected: list[str]) -> None:
    assert messages(validate_ip_address(ipaddr(name))) == expected


def test_ip_address_parent_ref() -> None:
    obj = ipaddr("10.0.0.1")
    del obj["spec"]["parentRef"]
    assert messages(validate_ip_address(obj)) == ["spec.parentRef: Required value"]
    assert messages(validate_ip_address(ipaddr("10.0.0.1", resource="", name=""))) == [
        "spec.parentRef.resource: Required value", "spec.parentRef.name: Required value"]
    assert messages(validate_ip_address(ipaddr(
        "10.0.0.1", group="Bad_Group", resource="a/b", namespace="..", name="%"))) == [
        'spec.parentRef.group: Invalid value: "Bad_Group": a lowercase RFC 1123 subdomain '
        "must consist of lower case alphanumeric characters, '-' or '.', and must start and "
        "end with an alphanumeric character (e.g. 'example.com', regex used for validation "
        "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        "spec.parentRef.resource: Invalid value: \"a/b\": may not contain '/'",
        "spec.parentRef.name: Invalid value: \"%\": may not contain '%'",
        "spec.parentRef.namespace: Invalid value: \"..\": may not be '..'"]


def test_ip_address_parent_ref_is_immutable() -> None:
    old = ipaddr("10.0.0.1")
    old["metadata"].update(uid="u", resourceVersion="1", creationTimestamp="2025-01-01T00:00:00Z")
    new = copy.deepcopy(old)
    new["spec"]["parentRef"]["name"] = "other"
    assert messages(validate_ip_address_update(new, old)) == [
        'spec.parentRef: Invalid value: &networking.ParentReference{Group:"", '
        'Resource:"services", Namespace:"default", Name:"other"}: field is immutable']


def test_default_service_cidr_takes_one_cidr_per_family() -> None:
    assert default_service_cidr(["10.96.0.0/12", "10.200.0.0/16", "fd00::/108"])["spec"] == {
        "cidrs": ["10.96.0.0/12", "fd00::/108"]}
