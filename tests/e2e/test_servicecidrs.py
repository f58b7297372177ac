"""ServiceCIDRs and IPAddresses (networking.k8s.io/v1) through a real `svcnet server` and the
real kubectl: the default ServiceCIDR, an extra one taking over once the default is full, and
the deletion of a ServiceCIDR still in use waiting (Terminating) until its Services go.

The server of this module has a tiny default range (10.96.0.0/28: 14 addresses, one of them
default/kubernetes's), so filling it takes 13 Services.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Cluster, start_server, stop_server
from tests.waiting import wait_for

Obj = dict[str, Any]
DEFAULT = ipaddress.ip_network("10.96.0.0/28")
EXTRA = ipaddress.ip_network("10.97.0.0/29")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("cidr-server")
    proc = start_server(data_dir, "--service-cidr", str(DEFAULT))
    cache = tmp_path_factory.mktemp("kubecache")
    try:
        yield Cluster(data_dir, data_dir / "kubeconfig", proc, cache)
    finally:
        assert stop_server(proc) == 0


def _ready(obj: Obj) -> str:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == "Ready":
            return f"{c['status']}/{c.get('reason', '')}"
    return ""


def _services(names: list[str]) -> str:
    items = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": n},
              "spec": {"ports": [{"port": 80}], "selector": {"app": n}}} for n in names]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def test_servicecidrs_fill_default_then_extra_and_deletion_waits(small: Cluster) -> None:
    out = small.kubectl("get", "servicecidrs").stdout.splitlines()
    assert out[0].split() == ["NAME", "CIDRS", "AGE"]
    assert out[1].split()[:2] == ["kubernetes", str(DEFAULT)]
    wait_for(what="the default ServiceCIDR's finalizer and Ready=True", fn=lambda: (
        (obj := small.get_json("servicecidr", "kubernetes"))["metadata"].get("finalizers")
        == ["networking.k8s.io/service-cidr-finalizer"] and _ready(obj) == "True/"))
    ips = small.kubectl("get", "ipaddresses").stdout.splitlines()
    assert ips[0].split() == ["NAME", "PARENTREF"]
    assert ["10.96.0.1", "services/default/kubernetes"] in [line.split() for line in ips]

    small.kubectl("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
        "metadata": {"name": "extra"}, "spec": {"cidrs": [str(EXTRA)]}}))
    wait_for(what="extra Ready", fn=lambda: _ready(small.get_json("servicecidr", "extra")) == "True/")

    names = [f"s{i}" for i in range(15)]
    small.kubectl("create", "-f", "-", stdin=_services(names))
    held = {s["metadata"]["name"]: ipaddress.ip_address(s["spec"]["clusterIP"])
            for s in small.get_json("services")["items"] if s["metadata"]["name"] in names}
    in_default = [n for n, ip in held.items() if ip in DEFAULT]
    in_extra = sorted(n for n, ip in held.items() if ip in EXTRA)
    assert len(in_default) == 13 and len(in_extra) == 2, held
    both = small.kubectl("get", "servicecidrs,ipaddresses").stdout
    assert "servicecidr.networking.k8s.io/extra" in both
    for n in in_extra:
        assert f"ipaddress.networking.k8s.io/{held[n]}" in both
        ip_obj = small.get_json("ipaddress", str(held[n]))
        assert ip_obj["spec"]["parentRef"] == {"group": "", "resource": "services",
                                               "namespace": "default", "name": n}
        assert ip_obj["metadata"]["labels"]["ipaddress.kubernetes.io/managed-by"] == \
            "ipallocator.k8s.io"

    small.kubectl("delete", "servicecidr", "extra", "--wait=false")
    wait_for(what="extra Terminating", fn=lambda: _ready(small.get_json("servicecidr", "extra"))
           == "False/Terminating")
    # Still there: its addresses are in use and in no other ServiceCIDR.
    time.sleep(1)
    extra = small.get_json("servicecidr", "extra")
    assert extra["metadata"]["deletionTimestamp"]
    # Neither range hands out addresses now: the default is full, extra is terminating.
    r = small.kubectl("create", "-f", "-", stdin=_services(["late"]), check=False)
    assert r.returncode != 0 and "range is full" in r.stderr, r.stderr

    small.kubectl("delete", "service", *in_extra)
    wait_for(what="extra deleted", fn=lambda: small.kubectl(
        "get", "servicecidr", "extra", check=False).returncode != 0, timeout=40)
    for n in in_extra:
        assert small.kubectl("get", "ipaddress", str(held[n]), check=False).returncode != 0
    small.kubectl("delete", "service", *in_default)


def test_validation_messages_through_kubectl(small: Cluster) -> None:
    r = small.kubectl("create", "-f", "-", check=False, stdin=json.dumps({
        "apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
        "metadata": {"name": "three"},
        "spec": {"cidrs": ["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"]}}))
    assert ('The ServiceCIDR "three" is invalid: spec.cidrs: Invalid value: '
            'networking.ServiceCIDRSpec{CIDRs:[]string{"10.1.0.0/24", "10.2.0.0/24", '
            '"10.3.0.0/24"}}: may only hold up to 2 values') in r.stderr, r.stderr
    r = small.kubectl("create", "-f", "-", check=False, stdin=json.dumps({
        "apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
        "metadata": {"name": "2001:DB8::1"}, "spec": {}}))
    assert 'metadata.name: Invalid value: "2001:DB8::1": must be a canonical format IP' \
        in r.stderr, r.stderr
    assert "spec.parentRef: Required value" in r.stderr
    # An IPAddress a user makes takes its address: no Service gets it.
    small.kubectl("create", "-f", "-", stdin=json.dumps({
        "apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
        "metadata": {"name": "10.96.0.14"},
        "spec": {"parentRef": {"resource": "gateways", "group": "example.com",
                               "name": "gw", "namespace": "default"}}}))
    r = small.kubectl("create", "-f", "-", check=False, stdin=json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "wants-14"},
        "spec": {"clusterIP": "10.96.0.14", "ports": [{"port": 80}]}}))
    assert "provided IP is already allocated" in r.stderr, r.stderr
    rows = small.kubectl("get", "ipaddress", "10.96.0.14").stdout.splitlines()
    assert rows[1].split() == ["10.96.0.14", "gateways.example.com/default/gw"]
    r = small.kubectl("patch", "servicecidr", "kubernetes", "--type=merge", "-p",
                      '{"spec":{"cidrs":["10.96.0.0/27"]}}', check=False)
    assert "spec.cidrs: Invalid value: []string{\"10.96.0.0/27\"}: field is immutable" \
        in r.stderr, r.stderr
    small.kubectl("delete", "ipaddress", "10.96.0.14")
