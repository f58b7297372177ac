"""``describe`` texts, ported from kubectl's describers (pkg/describe/describe.go).

Expected texts were checked against kubectl 1.32's output for the same objects served by
``svcnet server``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from svcnet.cli.describe import (
    describe_endpoint_slice,
    describe_generic,
    describe_namespace,
    describe_service,
    smart_label,
)

Obj = dict[str, Any]
NOW = datetime(2025, 11, 27, 17, 0, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def svc(**spec: Any) -> Obj:
    base: Obj = {"type": "ClusterIP", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                 "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                            "targetPort": 8080}]}
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {**base, **spec}}


def eps(ports: list[Obj] | None, *endpoints: Obj) -> Obj:
    slice_: Obj = {"addressType": "IPv4", "endpoints": list(endpoints)}
    if ports is not None:
        slice_["ports"] = ports
    return slice_


def ep(address: str, ready: bool | None = True) -> Obj:
    return {"addresses": [address],
            "conditions": {} if ready is None else {"ready": ready}}


HTTP = [{"name": "http", "port": 8080, "protocol": "TCP"}]


def test_describe_service_minimal() -> None:
    assert describe_service(svc(), [], [], NOW) == """\
Name:                     web
Namespace:                default
Labels:                   <none>
Annotations:              <none>
Selector:                 <none>
Type:                     ClusterIP
IP Family Policy:         SingleStack
IP Families:              IPv4
IP:                       10.96.0.20
IPs:                      10.96.0.20
Port:                     http  80/TCP
TargetPort:               8080/TCP
Endpoints:                <none>
Session Affinity:         None
Internal Traffic Policy:  Cluster
Events:                   <none>
"""


def test_describe_load_balancer_service_with_everything() -> None:
    obj = svc(type="LoadBalancer", selector={"tier": "front", "app": "lb"},
              externalIPs=["192.0.2.10", "192.0.2.11"], loadBalancerIP="172.20.0.210",
              externalTrafficPolicy="Local", healthCheckNodePort=32196,
              loadBalancerSourceRanges=["10.0.0.0/8"], trafficDistribution="PreferClose",
              sessionAffinity="ClientIP",
              ports=[{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "web",
                      "nodePort": 32687, "appProtocol": "http"},
                     {"port": 53, "protocol": "UDP", "targetPort": 5353, "nodePort": 32433}])
    obj["metadata"]["labels"] = {"tier": "front", "app": "lb"}
    obj["metadata"]["annotations"] = {
        "note": "hello", "long": "a" * 140, "multi": "one\ntwo\n",
        "kubectl.kubernetes.io/last-applied-configuration": "{}"}
    obj["status"] = {"loadBalancer": {"ingress": [{"ip": "172.20.0.200", "ipMode": "VIP"},
                                                  {"hostname": "lb.example"}]}}
    slices = [eps([*HTTP, {"name": "", "port": 5353, "protocol": "UDP"}],
                  ep("10.244.1.5"), ep("10.244.1.6", ready=False), ep("10.244.2.7", None),
                  ep("10.244.2.8"), ep("10.244.2.9"))]
    events: list[Obj] = [
        {"type": "Warning", "reason": "Sync", "message": " synced \n", "count": 4,
         "firstTimestamp": ago(hours=1), "lastTimestamp": ago(minutes=3, seconds=6),
         "source": {}, "reportingComponent": "x",
         "involvedObject": {"kind": "Service", "name": "lb", "fieldPath": "spec"}},
        {"type": "Normal", "reason": "IPAllocated", "message": 'Assigned IP ["172.20.0.200"]',
         "firstTimestamp": ago(hours=1), "lastTimestamp": ago(hours=1), "count": 1,
         "source": {"component": "lb-ipam"}},
        {"type": "Normal", "reason": "Series", "message": "m",
         "eventTime": ago(minutes=30), "series": {"count": 7, "lastObservedTime": ago(seconds=5)},
         "reportingController": "ignored", "source": {"component": "svcnet"}},
    ]
    expected = """\
Name:                        web
Namespace:                   default
Labels:                      app=lb
                             tier=front
Annotations:                 long:
                               aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...
                             multi:
                               one
                               two
                             note: hello
Selector:                    app=lb,tier=front
Type:                        LoadBalancer
IP Family Policy:            SingleStack
IP Families:                 IPv4
IP:                          10.96.0.20
IPs:                         10.96.0.20
External IPs:                192.0.2.10,192.0.2.11
Desired LoadBalancer IP:     172.20.0.210
LoadBalancer Ingress:        172.20.0.200 (VIP), lb.example
Port:                        http  80/TCP
TargetPort:                  web/TCP
NodePort:                    http  32687/TCP
Endpoints:                   10.244.1.5:8080,10.244.2.7:8080,10.244.2.8:8080 + 1 more...
Port:                        <unset>  53/UDP
TargetPort:                  5353/UDP
NodePort:                    <unset>  32433/UDP
Endpoints:                   10.244.1.5:5353,10.244.2.7:5353,10.244.2.8:5353 + 1 more...
Session Affinity:            ClientIP
External Traffic Policy:     Local
Internal Traffic Policy:     Cluster
HealthCheck NodePort:        32196
LoadBalancer Source Ranges:  10.0.0.0/8
Traffic Distribution:        PreferClose
Events:
  Type     Reason       Age                 From     Message
  ----     ------       ----                ----     -------
  Normal   Series       5s (x7 over 30m)    svcnet   m
  Normal   IPAllocated  60m                 lb-ipam  Assigned IP ["172.20.0.200"]
  Warning  Sync         3m6s (x4 over 60m)  x        spec: synced
"""
    assert describe_service(obj, slices, events, NOW) == expected


@pytest.mark.parametrize(("slices", "endpoints"), [
    pytest.param([], "<none>", id="no-slices"),
    pytest.param([eps(HTTP)], "", id="slice-without-endpoints"),
    pytest.param([eps(HTTP, ep("10.244.1.6", ready=False))], "", id="none-ready"),
    pytest.param([eps(HTTP, ep("10.244.1.5"))], "10.244.1.5:8080", id="one"),
    pytest.param([eps(HTTP, ep("10.244.1.5")), eps(HTTP, ep("10.244.2.5"))],
                 "10.244.1.5:8080,10.244.2.5:8080", id="across-slices"),
    pytest.param([eps([{"name": "other", "port": 9, "protocol": "TCP"}], ep("10.244.1.5"))],
                 "", id="other-port-name"),
    pytest.param([eps(None, ep("10.244.1.5"), ep("10.244.1.7"))], "10.244.1.5,10.244.1.7",
                 id="headless-without-ports"),
    pytest.param([eps(HTTP, ep("fd00::5"))], "[fd00::5]:8080", id="ipv6"),
    pytest.param([eps(HTTP, *(ep(f"10.0.0.{i}") for i in range(1, 6)))],
                 "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 2 more...", id="more"),
    pytest.param([eps(HTTP, *(ep(f"10.0.0.{i}") for i in range(1, 4)),
                      ep("10.0.0.4", ready=False))],
                 "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 0 more...",
                 id="kubectl-quirk-not-ready-past-the-limit"),
    pytest.param([eps(HTTP, {"addresses": [], "conditions": {}}, ep("10.0.0.9"))],
                 "10.0.0.9:8080", id="endpoint-without-address-skipped"),
])
def test_service_endpoints(slices: list[Obj], endpoints: str) -> None:
    lines = describe_service(svc(), slices, None, NOW).splitlines()
    assert f"Endpoints:                {endpoints}".rstrip() == lines[-3].rstrip()
    assert lines[-1].startswith("Internal Traffic Policy:"), "events=None: no Events section"


def test_describe_endpoint_slice() -> None:
    obj = eps([*HTTP, {"port": 53, "protocol": "UDP"}], ep("10.244.1.5"),
              {"addresses": ["10.244.2.7", "10.244.2.8"], "hostname": "h", "nodeName": "node-1",
               "zone": "z", "targetRef": {"kind": "Pod", "name": "web-1"}})
    obj["metadata"] = {"name": "web-abc", "namespace": "default",
                       "labels": {"kubernetes.io/service-name": "web"}}
    assert describe_endpoint_slice(obj, [], NOW) == """\
Name:         web-abc
Namespace:    default
Labels:       kubernetes.io/service-name=web
Annotations:  <none>
AddressType:  IPv4
Ports:
  Name     Port  Protocol
  ----     ----  --------
  http     8080  TCP
  <unset>  53    UDP
Endpoints:
  - Addresses:  10.244.1.5
    Conditions:
      Ready:    true
    Hostname:   <unset>
    NodeName:   <unset>
    Zone:       <unset>
  - Addresses:  10.244.2.7, 10.244.2.8
    Conditions:
      Ready:    <unset>
    Hostname:   h
    TargetRef:  Pod/web-1
    NodeName:   node-1
    Zone:       z
Events:         <none>
"""


def test_describe_empty_endpoint_slice() -> None:
    obj = {"metadata": {"name": "e", "namespace": "ns"}, "addressType": "IPv6"}
    assert describe_endpoint_slice(obj, None, NOW) == """\
Name:         e
Namespace:    ns
Labels:       <none>
Annotations:  <none>
AddressType:  IPv6
Ports: <unset>
Endpoints: <none>
"""


def test_describe_namespace() -> None:
    ns = {"metadata": {"name": "default", "labels": {"kubernetes.io/metadata.name": "default"}},
          "status": {"phase": "Active"}}
    assert describe_namespace(ns) == """\
Name:         default
Labels:       kubernetes.io/metadata.name=default
Annotations:  <none>
Status:       Active
"""


def test_describe_terminating_namespace_lists_its_conditions(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # kubectl prints each lastTransitionTime in local time, as RFC 1123 with a numeric zone.
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    ns = {"metadata": {"name": "d1", "labels": {"kubernetes.io/metadata.name": "d1"}},
          "status": {"phase": "Terminating", "conditions": [
              {"type": "NamespaceDeletionDiscoveryFailure", "status": "False",
               "lastTransitionTime": "2026-12-06T18:31:43Z", "reason": "ResourcesDiscovered",
               "message": "All resources successfully discovered"},
              {"type": "NamespaceContentRemaining", "status": "True",
               "lastTransitionTime": "2026-12-06T18:31:43Z", "reason": "SomeResourcesRemain",
               "message": "Some resources are remaining: pods. has 1 resource instances"}]}}
    # What kubectl 1.33 printed for this namespace (svcnet server, the other three
    # conditions left out here).
    assert describe_namespace(ns) == """\
Name:         d1
Labels:       kubernetes.io/metadata.name=d1
Annotations:  <none>
Status:       Terminating
Conditions:
  Type                               Status  LastTransitionTime               Reason               Message
  ----                               ------  ------------------               ------               -------
  NamespaceDeletionDiscoveryFailure  False   Sun, 06 Dec 2026 18:31:43 +0000  ResourcesDiscovered  All resources successfully discovered
  NamespaceContentRemaining          True    Sun, 06 Dec 2026 18:31:43 +0000  SomeResourcesRemain  Some resources are remaining: pods. has 1 resource instances
"""


def test_describe_generic() -> None:
    # Nested lines with tabs share a column block with the top-level lines around them (a line
    # without a tab, like "Metadata:", ends it): hence "Kind:" aligned under "  API Version:".
    event = {"apiVersion": "v1", "kind": "Event", "count": 4, "message": "synced",
             "metadata": {"name": "lb.2", "namespace": "default", "uid": "u2",
                          "resourceVersion": "28", "managedFields": [{"manager": "x"}],
                          "creationTimestamp": "2026-11-27T18:33:46Z"},
             "involvedObject": {"apiVersion": "v1", "kind": "Service", "name": "lb"},
             "related": None, "ratio": 0.5, "ok": False, "source": {},
             "tags": ["a", {"k": "v"}]}
    assert describe_generic(event, [], NOW) == """\
Name:         lb.2
Namespace:    default
Labels:       <none>
Annotations:  <none>
API Version:  v1
Count:        4
Involved Object:
  API Version:  v1
  Kind:         Service
  Name:         lb
Kind:           Event
Message:        synced
Metadata:
  Creation Timestamp:  2026-11-27T18:33:46Z
  Resource Version:    28
  UID:                 u2
Ok:                    false
Ratio:                 0.5
Related:               <nil>
Source:
Tags:
  a
  K:     v
Events:  <none>
"""


@pytest.mark.parametrize(("field", "label"), [
    ("name", "Name"),
    ("apiVersion", "API Version"),
    ("uid", "UID"),
    ("creationTimestamp", "Creation Timestamp"),
    ("clusterIPs", "Cluster I Ps"),  # fatih/camelcase, faithfully
    ("ipFamilyPolicy", "Ip Family Policy"),
    ("HTTPServer", "HTTP Server"),
    ("host-name", "Host - Name"),  # '-' is a character class of its own
    ("kubernetes.io/name", "kubernetes.io/name"),
    ("port80", "port80"),
])
def test_smart_label(field: str, label: str) -> None:
    assert smart_label(field) == label
