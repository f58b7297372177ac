"""Service validation, defaulting and registry fix-ups, ported from Kubernetes' own tables.

The create/update/externalTrafficPolicy tables are ports of ``TestValidateServiceCreate``,
``TestValidateServiceUpdate`` and ``TestValidateServiceExternalTrafficPolicy`` in
``pkg/apis/core/validation/validation_test.go``: same names, same mutations of the same base
Service (``makeValidService``). Upstream only asserts ``numErrs``; each case here asserts the
exact multiset of ``(field, type)`` pairs, derived from ``validation.go``. Cases after the
ported ones ("extra: ...") cover rules the upstream tables leave out.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from svcnet.api.errors import ErrorType, FieldError, invalid_error
from svcnet.api.services import (
    drop_type_dependent_fields,
    init_ip_family_fields,
    is_externally_accessible,
    is_headless,
    needs_cluster_ip,
    needs_health_check_node_port,
    needs_node_ports,
    normalize_cluster_ips,
    patch_allocated_values,
    prepare_for_create,
    prepare_for_update,
    set_defaults_service,
    uses_node_ports,
    validate_service,
    validate_service_create,
    validate_service_external_traffic_policy,
    validate_service_status_update,
    validate_service_update,
)

REQ = ErrorType.REQUIRED
INV = ErrorType.INVALID
DUP = ErrorType.DUPLICATE
NSUP = ErrorType.NOT_SUPPORTED
FORB = ErrorType.FORBIDDEN
TOOLONG = ErrorType.TOO_LONG

LB_RANGES = "service.beta.kubernetes.io/load-balancer-source-ranges"
LB_RANGES_PATH = f"metadata.annotations[{LB_RANGES}]"
TOPOLOGY_PATH = "metadata.annotations[service.kubernetes.io/topology-mode]"

Svc = dict[str, Any]
Mut = Callable[[Svc], None]
Want = list[tuple[str, ErrorType]]

_DEL = object()


# --------------------------------------------------------------------------------------------
# builders


def make_valid_service(*muts: Mut) -> Svc:
    """Upstream's makeValidService (already defaulted, no clusterIP), then the mutations."""
    svc: Svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "valid", "namespace": "valid", "labels": {}, "annotations": {},
                     "resourceVersion": "1"},
        "spec": {
            "selector": {"key": "val"},
            "sessionAffinity": "None",
            "type": "ClusterIP",
            "ports": [{"name": "p", "protocol": "TCP", "port": 8675, "targetPort": 8675}],
            "internalTrafficPolicy": "Cluster",
        },
    }
    for m in muts:
        m(svc)
    return svc


def _set(d: dict[str, Any], kw: dict[str, Any]) -> None:
    for k, v in kw.items():
        if v is _DEL:
            d.pop(k, None)
        else:
            d[k] = copy.deepcopy(v)


def spec(**kw: Any) -> Mut:
    return lambda s: _set(s["spec"], kw)


def meta(**kw: Any) -> Mut:
    return lambda s: _set(s["metadata"], kw)


def port(i: int, **kw: Any) -> Mut:
    return lambda s: _set(s["spec"]["ports"][i], kw)


def add_port(**kw: Any) -> Mut:
    return lambda s: s["spec"]["ports"].append(dict(kw))


def ann(key: str, value: str) -> Mut:
    return lambda s: s["metadata"]["annotations"].__setitem__(key, value)


def label(key: str, value: str) -> Mut:
    return lambda s: s["metadata"]["labels"].__setitem__(key, value)


def selector(key: str, value: str) -> Mut:
    return lambda s: s["spec"]["selector"].__setitem__(key, value)


def lb(**kw: Any) -> Mut:
    """type LoadBalancer as defaulting leaves it (ETP Cluster, allocateLBNodePorts true)."""
    return spec(**{"type": "LoadBalancer", "externalTrafficPolicy": "Cluster",
                   "allocateLoadBalancerNodePorts": True, **kw})


def nodeport(**kw: Any) -> Mut:
    return spec(**{"type": "NodePort", "externalTrafficPolicy": "Cluster", **kw})


def cips(*ips: str, single: str | None = None) -> Mut:
    """clusterIP := first (or ``single``), clusterIPs := ips."""
    first = single if single is not None else (ips[0] if ips else "")
    return spec(clusterIP=first, clusterIPs=list(ips))


def pairs(errs: Sequence[FieldError]) -> list[tuple[str, ErrorType]]:
    return sorted((e.field, e.type) for e in errs)


def case(name: str, muts: Sequence[Mut], want: Want) -> Any:
    return pytest.param(list(muts), want, id=name)


# --------------------------------------------------------------------------------------------
# TestValidateServiceCreate

CREATE_CASES = [
    case("missing namespace", [meta(namespace="")], [("metadata.namespace", REQ)]),
    case("invalid namespace", [meta(namespace="-123")], [("metadata.namespace", INV)]),
    case("missing name", [meta(name="")], [("metadata.name", REQ)]),
    case("invalid name", [meta(name="-123")], [("metadata.name", INV)]),
    case("too long name", [meta(name="a" * 64)], [("metadata.name", INV)]),
    case("invalid generateName", [meta(generateName="-123")], [("metadata.generateName", INV)]),
    case("too long generateName", [meta(generateName="a" * 64)],
         [("metadata.generateName", INV)]),
    case("invalid label", [label("NoUppercaseOrSpecialCharsLike=Equals", "bar")],
         [("metadata.labels", INV)]),
    case("invalid annotation", [ann("NoSpecialCharsLike=Equals", "bar")],
         [("metadata.annotations", INV)]),
    case("nil selector", [spec(selector=None)], []),
    case("invalid selector", [selector("NoSpecialCharsLike=Equals", "bar")],
         [("spec.selector", INV)]),
    case("missing session affinity", [spec(sessionAffinity="")], [("spec.sessionAffinity", REQ)]),
    case("missing type", [spec(type="")], [("spec.type", REQ)]),
    case("missing ports", [spec(ports=None)], [("spec.ports", REQ)]),
    case("missing ports but headless", [spec(ports=None), cips("None")], []),
    case("empty port[0] name", [port(0, name="")], []),
    case("empty port[1] name",
         [add_port(name="", protocol="TCP", port=12345, targetPort=12345)],
         [("spec.ports[1].name", REQ)]),
    case("empty multi-port port[0] name",
         [port(0, name=""), add_port(name="p", protocol="TCP", port=12345, targetPort=12345)],
         [("spec.ports[0].name", REQ)]),
    case("invalid port name", [port(0, name="INVALID")], [("spec.ports[0].name", INV)]),
    case("missing protocol", [port(0, protocol="")], [("spec.ports[0].protocol", REQ)]),
    case("invalid protocol", [port(0, protocol="INVALID")], [("spec.ports[0].protocol", NSUP)]),
    case("invalid cluster ip", [cips("invalid")], [("spec.clusterIPs[0]", INV)]),
    case("missing port", [port(0, port=0)], [("spec.ports[0].port", INV)]),
    case("invalid port", [port(0, port=65536)], [("spec.ports[0].port", INV)]),
    case("invalid TargetPort int", [port(0, targetPort=65536)],
         [("spec.ports[0].targetPort", INV)]),
    case("valid port headless", [port(0, port=11722, targetPort=11722), cips("None")], []),
    # In the v1 API, targetPorts on headless services were tolerated.
    case("invalid port headless 1", [port(0, port=11722, targetPort=11721), cips("None")], []),
    case("invalid port headless 2", [port(0, port=11722, targetPort="target"), cips("None")],
         []),
    case("invalid publicIPs localhost",
         [spec(externalTrafficPolicy="Cluster", externalIPs=["127.0.0.1"])],
         [("spec.externalIPs[0]", INV)]),
    case("invalid publicIPs unspecified",
         [spec(externalTrafficPolicy="Cluster", externalIPs=["0.0.0.0"])],
         [("spec.externalIPs[0]", INV)]),
    case("invalid publicIPs loopback",
         [spec(externalTrafficPolicy="Cluster", externalIPs=["127.0.0.1"])],
         [("spec.externalIPs[0]", INV)]),
    case("invalid publicIPs host",
         [spec(externalTrafficPolicy="Cluster", externalIPs=["myhost.mydomain"])],
         [("spec.externalIPs[0]", INV)]),
    case("valid publicIPs", [spec(externalTrafficPolicy="Cluster", externalIPs=["1.2.3.4"])], []),
    case("dup port name",
         [port(0, name="p"), add_port(name="p", port=12345, protocol="TCP", targetPort=12345)],
         [("spec.ports[1].name", DUP)]),
    case("valid load balancer protocol UDP 1", [lb(), port(0, protocol="UDP")], []),
    case("valid load balancer protocol UDP 2",
         [lb(), spec(ports=[{"name": "q", "port": 12345, "protocol": "UDP",
                             "targetPort": 12345}])], []),
    case("load balancer with mix protocol",
         [lb(), add_port(name="q", port=12345, protocol="UDP", targetPort=12345)], []),
    case("valid 1", [], []),
    case("valid 2", [port(0, protocol="UDP", targetPort=12345)], []),
    case("valid 3", [port(0, targetPort="http")], []),
    case("valid cluster ip - none", [cips("None")], []),
    case("valid cluster ip - empty", [spec(clusterIPs=None), port(0, targetPort="http")], []),
    case("valid type - clusterIP", [spec(type="ClusterIP")], []),
    case("valid type - loadbalancer", [lb()], []),
    case("valid type - loadbalancer with allocateLoadBalancerNodePorts=false",
         [lb(allocateLoadBalancerNodePorts=False)], []),
    case("invalid type - missing AllocateLoadBalancerNodePorts for loadbalancer type",
         [spec(type="LoadBalancer", externalTrafficPolicy="Cluster")],
         [("allocateLoadBalancerNodePorts", REQ)]),
    case("valid type loadbalancer 2 ports",
         [lb(), add_port(name="q", port=12345, protocol="TCP", targetPort=12345)], []),
    case("valid external load balancer 2 ports",
         [lb(), add_port(name="q", port=12345, protocol="TCP", targetPort=12345)], []),
    case("duplicate nodeports",
         [nodeport(), add_port(name="q", port=1, protocol="TCP", nodePort=1, targetPort=1),
          add_port(name="r", port=2, protocol="TCP", nodePort=1, targetPort=2)],
         [("spec.ports[2].nodePort", DUP)]),
    case("duplicate nodeports (different protocols)",
         [nodeport(), add_port(name="q", port=1, protocol="TCP", nodePort=1, targetPort=1),
          add_port(name="r", port=2, protocol="UDP", nodePort=1, targetPort=2),
          add_port(name="s", port=3, protocol="SCTP", nodePort=1, targetPort=3)], []),
    case("invalid duplicate ports (with same protocol)",
         [add_port(name="q", port=12345, protocol="TCP", targetPort=8080),
          add_port(name="r", port=12345, protocol="TCP", targetPort=80)],
         [("spec.ports[2]", DUP)]),
    case("valid duplicate ports (with different protocols)",
         [add_port(name="q", port=12345, protocol="TCP", targetPort=8080),
          add_port(name="r", port=12345, protocol="UDP", targetPort=80),
          add_port(name="s", port=12345, protocol="SCTP", targetPort=8088)], []),
    case("valid type - cluster", [spec(type="ClusterIP")], []),
    case("valid type - nodeport", [nodeport()], []),
    case("valid type - loadbalancer with allocateLoadBalancerNodePorts=true", [lb()], []),
    case("valid type loadbalancer 2 ports #2",
         [lb(), add_port(name="q", port=12345, protocol="TCP", targetPort=12345)], []),
    case("valid type loadbalancer with NodePort",
         [lb(), add_port(name="q", port=12345, protocol="TCP", nodePort=12345,
                         targetPort=12345)], []),
    case("valid type=NodePort service with NodePort",
         [nodeport(), add_port(name="q", port=12345, protocol="TCP", nodePort=12345,
                               targetPort=12345)], []),
    case("valid type=NodePort service without NodePort",
         [nodeport(), add_port(name="q", port=12345, protocol="TCP", targetPort=12345)], []),
    case("valid cluster service without NodePort",
         [add_port(name="q", port=12345, protocol="TCP", targetPort=12345)], []),
    case("invalid cluster service with NodePort",
         [add_port(name="q", port=12345, protocol="TCP", nodePort=12345, targetPort=12345)],
         [("spec.ports[1].nodePort", FORB)]),
    case("invalid public service with duplicate NodePort",
         [nodeport(), add_port(name="p1", port=1, protocol="TCP", nodePort=1, targetPort=1),
          add_port(name="p2", port=2, protocol="TCP", nodePort=1, targetPort=2)],
         [("spec.ports[2].nodePort", DUP)]),
    case("valid type=LoadBalancer",
         [lb(), add_port(name="q", port=12345, protocol="TCP", targetPort=12345)], []),
    case("valid port type=LoadBalancer",
         [lb(), add_port(name="kubelet", port=10250, protocol="TCP", targetPort=12345)], []),
    case("valid LoadBalancer source range annotation",
         [lb(), ann(LB_RANGES, "1.2.3.0/24,  5.6.0.0/16")], []),
    case("valid empty LoadBalancer source range annotation", [lb(), ann(LB_RANGES, "")], []),
    case("valid whitespace-only LoadBalancer source range annotation",
         [lb(), ann(LB_RANGES, "  ")], []),
    case("invalid LoadBalancer source range annotation (hostname)",
         [lb(), ann(LB_RANGES, "foo.bar")], [(LB_RANGES_PATH, INV)]),
    case("invalid LoadBalancer source range annotation (invalid CIDR)",
         [lb(), ann(LB_RANGES, "1.2.3.4/33")], [(LB_RANGES_PATH, INV)]),
    case("invalid LoadBalancer source range annotation for non LoadBalancer type service",
         [ann(LB_RANGES, "1.2.3.0/24")], [(LB_RANGES_PATH, FORB)]),
    case("invalid empty-but-set LoadBalancer source range annotation for non LoadBalancer "
         "type service", [ann(LB_RANGES, "")], [(LB_RANGES_PATH, FORB)]),
    case("valid LoadBalancer source range",
         [lb(loadBalancerSourceRanges=["1.2.3.0/24", "5.6.0.0/16"])], []),
    case("valid LoadBalancer source range with whitespace",
         [lb(loadBalancerSourceRanges=["1.2.3.0/24  ", " 5.6.0.0/16"])], []),
    case("invalid empty LoadBalancer source range", [lb(loadBalancerSourceRanges=["   "])],
         [("spec.LoadBalancerSourceRanges[0]", INV)]),
    case("invalid LoadBalancer source range (hostname)",
         [lb(loadBalancerSourceRanges=["foo.bar"])],
         [("spec.LoadBalancerSourceRanges[0]", INV)]),
    case("invalid LoadBalancer source range (invalid CIDR)",
         [lb(loadBalancerSourceRanges=["1.2.3.4/33"])],
         [("spec.LoadBalancerSourceRanges[0]", INV)]),
    case("invalid source range for non LoadBalancer type service",
         [spec(loadBalancerSourceRanges=["1.2.3.0/24", "5.6.0.0/16"])],
         [("spec.LoadBalancerSourceRanges", FORB)]),
    case("invalid source range annotation ignored with valid source range field",
         [lb(loadBalancerSourceRanges=["1.2.3.0/24", "5.6.0.0/16"]), ann(LB_RANGES, "foo.bar")],
         []),
    case("valid ExternalName", [spec(type="ExternalName", externalName="foo.bar.example.com")],
         []),
    case("valid ExternalName (trailing dot)",
         [spec(type="ExternalName", externalName="foo.bar.example.com.")], []),
    case("invalid ExternalName clusterIP (valid IP)",
         [spec(type="ExternalName", externalName="foo.bar.example.com"), cips("1.2.3.4")],
         [("spec.clusterIPs", FORB)]),
    case("invalid ExternalName clusterIP (None)",
         [spec(type="ExternalName", externalName="foo.bar.example.com"), cips("None")],
         [("spec.clusterIPs", FORB)]),
    case("invalid ExternalName (not a DNS name)",
         [spec(type="ExternalName", externalName="-123")], [("spec.externalName", INV)]),
    case("LoadBalancer type cannot have None ClusterIP", [cips("None"), lb()],
         [("spec.clusterIPs[0]", INV)]),
    case("invalid node port with clusterIP None",
         [nodeport(), add_port(name="q", port=1, protocol="TCP", nodePort=1, targetPort=1),
          cips("None")],
         [("spec.clusterIPs[0]", INV)]),
    # ESIPP section.
    case("invalid externalTraffic field",
         [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=True,
               externalTrafficPolicy="invalid")],
         [("spec.externalTrafficPolicy", NSUP)]),
    case("nil internalTraffic field when feature gate is on", [spec(internalTrafficPolicy=None)],
         [("spec.internalTrafficPolicy", REQ)]),
    case("internalTrafficPolicy field nil when type is ExternalName",
         [spec(internalTrafficPolicy=None, type="ExternalName", externalName="foo.bar.com")], []),
    # Tolerated for compatibility with objects stored by v1.22.
    case("internalTrafficPolicy field is set when type is ExternalName",
         [spec(internalTrafficPolicy="Cluster", type="ExternalName", externalName="foo.bar.com")],
         []),
    case("invalid internalTraffic field", [spec(internalTrafficPolicy="invalid")],
         [("spec.internalTrafficPolicy", NSUP)]),
    case("internalTrafficPolicy field set to Cluster", [spec(internalTrafficPolicy="Cluster")],
         []),
    case("internalTrafficPolicy field set to Local", [spec(internalTrafficPolicy="Local")], []),
    case("negative healthCheckNodePort field",
         [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=True,
               externalTrafficPolicy="Local", healthCheckNodePort=-1)],
         [("spec.healthCheckNodePort", INV)]),
    case("valid healthCheckNodePort field",
         [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=True,
               externalTrafficPolicy="Local", healthCheckNodePort=31100)], []),
    case("invalid timeoutSeconds field",
         [spec(sessionAffinity="ClientIP",
               sessionAffinityConfig={"clientIP": {"timeoutSeconds": -1}})],
         [("spec.sessionAffinityConfig.clientIP.timeoutSeconds", INV)]),
    case("sessionAffinityConfig can't be set when session affinity is None",
         [lb(), spec(sessionAffinity="None",
                     sessionAffinityConfig={"clientIP": {"timeoutSeconds": 90}})],
         [("spec.sessionAffinityConfig", FORB)]),
    # ip families
    case("invalid, service with invalid ipFamilies",
         [spec(ipFamilies=["not-a-valid-ip-family"])], [("spec.ipFamilies[0]", NSUP)]),
    case("invalid, service with invalid ipFamilies (2nd)",
         [spec(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "not-a-valid-ip-family"])],
         [("spec.ipFamilies[1]", NSUP)]),
    # SingleStack with two families is rejected by the allocator, not by validation.
    case("IPFamilyPolicy(singleStack) is set for two families",
         [spec(ipFamilyPolicy="SingleStack", ipFamilies=["IPv4", "IPv6"])], []),
    case("valid, IPFamilyPolicy(preferDualStack) is set for two families",
         [spec(ipFamilyPolicy="PreferDualStack", ipFamilies=["IPv4", "IPv6"])], []),
    case("invalid, service with 2+ ipFamilies",
         [spec(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6", "IPv4"])],
         [("spec.ipFamilies[2]", DUP)]),
    case("invalid, service with same ip families",
         [spec(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv6", "IPv6"])],
         [("spec.ipFamilies[1]", DUP)]),
    case("valid, nil service ipFamilies", [spec(ipFamilies=None)], []),
    case("valid, service with valid ipFamilies (v4)", [spec(ipFamilies=["IPv4"])], []),
    case("valid, service with valid ipFamilies (v6)", [spec(ipFamilies=["IPv6"])], []),
    case("valid, service with valid ipFamilies(v4,v6)",
         [spec(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"])], []),
    case("valid, service with valid ipFamilies(v6,v4)",
         [spec(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv6", "IPv4"])], []),
    case("valid, service preferred dual stack with single family",
         [spec(ipFamilyPolicy="PreferDualStack", ipFamilies=["IPv6"])], []),
    # cluster IPs
    case("invalid, garbage single ip", [cips("garbage-ip")], [("spec.clusterIPs[0]", INV)]),
    case("invalid, garbage ips",
         [spec(ipFamilyPolicy="RequireDualStack"), cips("garbage-ip", "garbage-second-ip")],
         [("spec.clusterIPs[0]", INV), ("spec.clusterIPs[1]", INV)]),
    case("invalid, garbage first ip",
         [spec(ipFamilyPolicy="RequireDualStack"), cips("garbage-ip", "2001::1")],
         [("spec.clusterIPs[0]", INV)]),
    case("invalid, garbage second ip",
         [spec(ipFamilyPolicy="RequireDualStack"), cips("2001::1", "garbage-ip")],
         [("spec.clusterIPs[1]", INV)]),
    case("invalid, NONE + IP",
         [spec(ipFamilyPolicy="RequireDualStack"), cips("None", "2001::1")],
         [("spec.clusterIPs", INV)]),
    case("invalid, IP + NONE",
         [spec(ipFamilyPolicy="RequireDualStack"), cips("2001::1", "None")],
         [("spec.clusterIPs[1]", INV)]),
    case("invalid, EMPTY STRING + IP",
         [spec(ipFamilyPolicy="RequireDualStack"), cips("", "2001::1")],
         [("spec.clusterIPs", INV), ("spec.clusterIPs[0]", INV)]),
    case("invalid, IP + EMPTY STRING",
         [spec(ipFamilyPolicy="RequireDualStack"), cips("2001::1", "")],
         [("spec.clusterIPs[1]", INV)]),
    case("invalid, same ip family (v6)",
         [spec(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"]),
          cips("2001::1", "2001::4")],
         [("spec.clusterIPs", INV), ("spec.clusterIPs[0]", INV)]),
    case("invalid, same ip family (v4)",
         [spec(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"]),
          cips("10.0.0.1", "10.0.0.10")],
         [("spec.clusterIPs", INV), ("spec.clusterIPs[1]", INV)]),
    case("invalid, more than two ips",
         [spec(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"]),
          cips("10.0.0.1", "2001::1", "10.0.0.10")],
         [("spec.clusterIPs", INV)]),
    case("multi ip, dualstack not set (request for downgrade)",
         [spec(ipFamilyPolicy="SingleStack", ipFamilies=["IPv4", "IPv6"]),
          cips("10.0.0.1", "2001::1")], []),
    case("valid, headless-no-selector + multi family + gate off",
         [spec(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"], selector=None),
          cips("None")], []),
    case("valid, multi ip, single ipfamilies preferDualStack",
         [spec(ipFamilyPolicy="PreferDualStack", ipFamilies=["IPv4"]),
          cips("10.0.0.1", "2001::1")], []),
    case("valid, multi ip, single ipfamilies (must match when provided) + requireDualStack",
         [spec(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4"]),
          cips("10.0.0.1", "2001::1")], []),
    case("invalid, families don't match (v4=>v6)",
         [cips("10.0.0.1"), spec(ipFamilies=["IPv6"])], [("spec.clusterIPs[0]", INV)]),
    case("invalid, families don't match (v6=>v4)",
         [cips("2001::1"), spec(ipFamilies=["IPv4"])], [("spec.clusterIPs[0]", INV)]),
    case("valid. no field set", [], []),
    case("valid, single ip", [spec(ipFamilyPolicy="SingleStack"), cips("10.0.0.1")], []),
    case("valid, single family", [spec(ipFamilyPolicy="SingleStack", ipFamilies=["IPv6"])], []),
    case("valid, single ip + single family",
         [spec(ipFamilyPolicy="SingleStack", ipFamilies=["IPv6"]), cips("2001::1")], []),
    case("valid, single ip + single family (dual stack requested)",
         [spec(ipFamilyPolicy="PreferDualStack", ipFamilies=["IPv6"]), cips("2001::1")], []),
    case("valid, single ip, multi ipfamilies",
         [spec(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"]),
          cips("10.0.0.1")], []),
    case("valid, multi ips, multi ipfamilies (4,6)",
         [spec(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"]),
          cips("10.0.0.1", "2001::1")], []),
    case("valid, ips, multi ipfamilies (6,4)",
         [spec(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv6", "IPv4"]),
          cips("2001::1", "10.0.0.1")], []),
    case("valid, multi ips (6,4)",
         [spec(ipFamilyPolicy="RequireDualStack"), cips("2001::1", "10.0.0.1")], []),
    case("valid, multi ipfamilies (6,4)",
         [spec(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv6", "IPv4"])], []),
    case("valid, multi ips (4,6)",
         [spec(ipFamilyPolicy="RequireDualStack"), cips("10.0.0.1", "2001::1")], []),
    case("valid, multi ipfamilies (4,6)",
         [spec(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"])], []),
    case("valid, dual stack", [spec(ipFamilyPolicy="RequireDualStack")], []),
    case("valid appProtocol",
         [spec(ports=[{"port": 12345, "targetPort": 12345, "protocol": "TCP",
                       "appProtocol": "HTTP"}])], []),
    case("valid custom appProtocol",
         [spec(ports=[{"port": 12345, "targetPort": 12345, "protocol": "TCP",
                       "appProtocol": "example.com/protocol"}])], []),
    case("invalid appProtocol",
         [spec(ports=[{"port": 12345, "targetPort": 12345, "protocol": "TCP",
                       "appProtocol": "example.com/protocol_with{invalid}[characters]"}])],
         [("spec.ports[0].appProtocol", INV)]),
    case("invalid cluster ip != clusterIP in multi ip service",
         [spec(ipFamilyPolicy="RequireDualStack"),
          cips("10.0.0.1", "2001::1", single="10.0.0.10")],
         [("spec.clusterIPs", INV)]),
    case("invalid cluster ip != clusterIP in single ip service",
         [cips("10.0.0.1", single="10.0.0.10")], [("spec.clusterIPs", INV)]),
    case("Use AllocateLoadBalancerNodePorts when type is not LoadBalancer",
         [spec(allocateLoadBalancerNodePorts=True)],
         [("spec.allocateLoadBalancerNodePorts", FORB)]),
    case("valid LoadBalancerClass when type is LoadBalancer",
         [lb(loadBalancerClass="test.com/test-load-balancer-class")], []),
    case("invalid LoadBalancerClass", [lb(loadBalancerClass="Bad/LoadBalancerClass")],
         [("spec.loadBalancerClass", INV)]),
    case("invalid: set LoadBalancerClass when type is not LoadBalancer",
         [spec(type="ClusterIP", loadBalancerClass="test.com/test-load-balancer-class")],
         [("spec.loadBalancerClass", FORB)]),
    case("topology annotations are mismatched",
         [ann("service.kubernetes.io/topology-aware-hints", "original"),
          ann("service.kubernetes.io/topology-mode", "different")],
         [(TOPOLOGY_PATH, INV)]),
    case("valid: trafficDistribution field set to PreferClose",
         [spec(trafficDistribution="PreferClose")], []),
    case("invalid: trafficDistribution field set to Random",
         [spec(trafficDistribution="Random")], [("spec.trafficDistribution", NSUP)]),
]

EXTRA_CREATE_CASES = [
    # metadata
    case("extra: DNS-1035 name may not start with a digit", [meta(name="1abc")],
         [("metadata.name", INV)]),
    case("extra: namespace may start with a digit", [meta(namespace="1abc")], []),
    case("extra: generateName with trailing dash", [meta(generateName="web-")], []),
    case("extra: upper-case name", [meta(name="Web")], [("metadata.name", INV)]),
    case("extra: annotation key case-insensitive", [ann("Example.COM/Key", "v")], []),
    case("extra: annotations over 256KiB", [ann("big", "x" * (256 * 1024))],
         [("metadata.annotations", TOOLONG)]),
    case("extra: bad label value", [label("ok", "-bad-")], [("metadata.labels", INV)]),
    case("extra: bare non-standard finalizer", [meta(finalizers=["foo"])],
         [("metadata.finalizers[0]", INV)]),
    case("extra: standard and qualified finalizers",
         [meta(finalizers=["kubernetes", "example.com/cleanup"])], []),
    case("extra: orphan and foregroundDeletion", [meta(finalizers=["orphan",
                                                                    "foregroundDeletion"])],
         [("metadata.finalizers", INV)]),
    case("extra: ownerReference missing uid and version",
         [meta(ownerReferences=[{"apiVersion": "", "kind": "Deployment", "name": "d"}])],
         [("metadata.ownerReferences.apiVersion", INV), ("metadata.ownerReferences.uid", INV)]),
    case("extra: two controller ownerReferences",
         [meta(ownerReferences=[
             {"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": True},
             {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "2", "controller": True}])],
         [("metadata.ownerReferences", INV)]),
    case("extra: negative generation", [meta(generation=-1)], [("metadata.generation", INV)]),
    # ports
    case("extra: port name may start with a digit", [port(0, name="8080-tcp")], []),
    case("extra: port name with dot", [port(0, name="a.b")], [("spec.ports[0].name", INV)]),
    case("extra: targetPort name with leading hyphen", [port(0, targetPort="-http")],
         [("spec.ports[0].targetPort", INV)]),
    case("extra: targetPort name too long", [port(0, targetPort="abcdefghijklmnop")],
         [("spec.ports[0].targetPort", INV)]),
    case("extra: targetPort name without letter", [port(0, targetPort="1234")],
         [("spec.ports[0].targetPort", INV)]),
    case("extra: targetPort name upper case (two messages)", [port(0, targetPort="HTTP")],
         [("spec.ports[0].targetPort", INV), ("spec.ports[0].targetPort", INV)]),
    case("extra: targetPort name with double hyphen", [port(0, targetPort="a--b")],
         [("spec.ports[0].targetPort", INV)]),
    case("extra: targetPort absent is int 0", [port(0, targetPort=_DEL)],
         [("spec.ports[0].targetPort", INV)]),
    case("extra: negative port", [port(0, port=-1)], [("spec.ports[0].port", INV)]),
    case("extra: SCTP port", [port(0, protocol="SCTP")], []),
    case("extra: lowercase protocol", [port(0, protocol="tcp")],
         [("spec.ports[0].protocol", NSUP)]),
    case("extra: nodePort range not checked by validation",
         [nodeport(), port(0, nodePort=80)], []),
    case("extra: nodePort on ExternalName is not rejected",
         [spec(type="ExternalName", externalName="x.example.com"), port(0, nodePort=30001)], []),
    case("extra: three errors on one port",
         [port(0, port=0, protocol="", targetPort=0)],
         [("spec.ports[0].port", INV), ("spec.ports[0].protocol", REQ),
          ("spec.ports[0].targetPort", INV)]),
    # type
    case("extra: unknown type", [spec(type="Foo")], [("spec.type", NSUP)]),
    case("extra: ExternalName empty name", [spec(type="ExternalName", externalName="")],
         [("spec.externalName", REQ)]),
    case("extra: ExternalName only a dot", [spec(type="ExternalName", externalName=".")],
         [("spec.externalName", REQ)]),
    case("extra: ExternalName two trailing dots",
         [spec(type="ExternalName", externalName="foo..")], [("spec.externalName", INV)]),
    case("extra: ExternalName single label", [spec(type="ExternalName", externalName="foo")], []),
    case("extra: ExternalName that looks like an IP",
         [spec(type="ExternalName", externalName="1.2.3.4")], []),
    case("extra: ExternalName upper case",
         [spec(type="ExternalName", externalName="Foo.example.com")],
         [("spec.externalName", INV)]),
    case("extra: ExternalName with families and policy",
         [spec(type="ExternalName", externalName="a.b", ipFamilies=["IPv4"],
               ipFamilyPolicy="SingleStack")],
         [("spec.ipFamilies", FORB), ("spec.ipFamilyPolicy", FORB)]),
    case("extra: ExternalName with clusterIP but no clusterIPs is not flagged",
         [spec(type="ExternalName", externalName="a.b", clusterIP="1.2.3.4")], []),
    case("extra: ExternalName without ports", [spec(type="ExternalName", externalName="a.b",
                                                     ports=None)], []),
    case("extra: NodePort headless", [nodeport(), cips("None")], [("spec.clusterIPs[0]", INV)]),
    # session affinity
    case("extra: unsupported session affinity", [spec(sessionAffinity="Sticky")],
         [("spec.sessionAffinity", NSUP)]),
    case("extra: ClientIP without config", [spec(sessionAffinity="ClientIP")],
         [("spec.sessionAffinityConfig", REQ)]),
    case("extra: ClientIP without clientIP",
         [spec(sessionAffinity="ClientIP", sessionAffinityConfig={})],
         [("spec.sessionAffinityConfig.clientIP", REQ)]),
    case("extra: ClientIP without timeout",
         [spec(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {}})],
         [("spec.sessionAffinityConfig.clientIP.timeoutSeconds", REQ)]),
    case("extra: ClientIP timeout 86400 accepted",
         [spec(sessionAffinity="ClientIP",
               sessionAffinityConfig={"clientIP": {"timeoutSeconds": 86400}})], []),
    case("extra: ClientIP timeout 86401",
         [spec(sessionAffinity="ClientIP",
               sessionAffinityConfig={"clientIP": {"timeoutSeconds": 86401}})],
         [("spec.sessionAffinityConfig.clientIP.timeoutSeconds", INV)]),
    case("extra: ClientIP timeout 0",
         [spec(sessionAffinity="ClientIP",
               sessionAffinityConfig={"clientIP": {"timeoutSeconds": 0}})],
         [("spec.sessionAffinityConfig.clientIP.timeoutSeconds", INV)]),
    case("extra: unsupported affinity with config is not checked further",
         [spec(sessionAffinity="Sticky", sessionAffinityConfig={})],
         [("spec.sessionAffinity", NSUP)]),
    # IPs
    case("extra: clusterIP leading zeros", [cips("010.0.0.1")], [("spec.clusterIPs[0]", INV)]),
    case("extra: clusterIP IPv4-mapped IPv6", [cips("::ffff:10.0.0.1")],
         [("spec.clusterIPs[0]", INV)]),
    case("extra: clusterIP without clusterIPs", [spec(clusterIP="10.0.0.1")],
         [("spec.clusterIPs", REQ)]),
    case("extra: unsupported ipFamilyPolicy", [spec(ipFamilyPolicy="Foo")],
         [("spec.ipFamilyPolicy", NSUP)]),
    case("extra: externalIPs link-local", [spec(externalTrafficPolicy="Cluster",
                                                externalIPs=["169.254.1.1"])],
         [("spec.externalIPs[0]", INV)]),
    case("extra: externalIPs IPv6 link-local", [spec(externalTrafficPolicy="Cluster",
                                                     externalIPs=["fe80::1"])],
         [("spec.externalIPs[0]", INV)]),
    case("extra: externalIPs link-local multicast",
         [spec(externalTrafficPolicy="Cluster", externalIPs=["224.0.0.1", "ff02::1"])],
         [("spec.externalIPs[0]", INV), ("spec.externalIPs[1]", INV)]),
    case("extra: externalIPs IPv6 unspecified and loopback",
         [spec(externalTrafficPolicy="Cluster", externalIPs=["::", "::1"])],
         [("spec.externalIPs[0]", INV), ("spec.externalIPs[1]", INV)]),
    case("extra: externalIPs leading zeros skip the special checks",
         [spec(externalTrafficPolicy="Cluster", externalIPs=["0127.0.0.1"])],
         [("spec.externalIPs[0]", INV)]),
    case("extra: externalIPs IPv6 global", [spec(externalTrafficPolicy="Cluster",
                                                 externalIPs=["2001:db8::1"])], []),
    case("extra: externalIPs make ETP required", [spec(externalIPs=["1.2.3.4"])],
         [("spec.externalTrafficPolicy", REQ)]),
    case("extra: externalIPs allowed on NodePort", [nodeport(externalIPs=["1.2.3.4"])], []),
    # source ranges (strict CIDRs)
    case("extra: source range with host bits", [lb(loadBalancerSourceRanges=["10.0.0.1/8"])],
         [("spec.LoadBalancerSourceRanges[0]", INV)]),
    case("extra: source range IPv6", [lb(loadBalancerSourceRanges=["2001:db8::/64"])], []),
    case("extra: source range annotation, two bad entries",
         [lb(), ann(LB_RANGES, "foo,bar")], [(LB_RANGES_PATH, INV), (LB_RANGES_PATH, INV)]),
    case("extra: source range annotation trailing comma",
         [lb(), ann(LB_RANGES, "10.0.0.0/8,")], [(LB_RANGES_PATH, INV)]),
    # LB-only fields and traffic policies
    case("extra: LoadBalancerClass with two slashes", [lb(loadBalancerClass="a/b/c")],
         [("spec.loadBalancerClass", INV)]),
    case("extra: healthCheckNodePort required for LB Local",
         [lb(externalTrafficPolicy="Local")], [("spec.healthCheckNodePort", REQ)]),
    case("extra: healthCheckNodePort 65536", [lb(externalTrafficPolicy="Local",
                                                 healthCheckNodePort=65536)],
         [("spec.healthCheckNodePort", INV)]),
    case("extra: legacy externalTrafficPolicy Global", [lb(externalTrafficPolicy="Global")],
         [("spec.externalTrafficPolicy", NSUP)]),
    case("extra: trafficDistribution PreferSameZone (gated)",
         [spec(trafficDistribution="PreferSameZone")], [("spec.trafficDistribution", NSUP)]),
    case("extra: internalTrafficPolicy required on LoadBalancer",
         [lb(internalTrafficPolicy=None)], [("spec.internalTrafficPolicy", REQ)]),
    case("extra: many errors at once",
         [meta(name=""), spec(type="", sessionAffinity="", ports=None)],
         [("metadata.name", REQ), ("spec.ports", REQ), ("spec.sessionAffinity", REQ),
          ("spec.type", REQ)]),
]


@pytest.mark.parametrize(("muts", "want"), CREATE_CASES + EXTRA_CREATE_CASES)
def test_validate_service_create(muts: list[Mut], want: Want) -> None:
    svc = make_valid_service(*muts)
    before = copy.deepcopy(svc)
    assert pairs(validate_service_create(svc)) == sorted(want)
    assert svc == before  # never mutates


# --------------------------------------------------------------------------------------------
# TestValidateServiceExternalTrafficPolicy (calls the helper directly, like upstream)

ETP_CASES = [
    case("valid loadBalancer service with externalTrafficPolicy and healthCheckNodePort set",
         [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=True,
               externalTrafficPolicy="Local", healthCheckNodePort=34567)], []),
    case("valid nodePort service with externalTrafficPolicy set",
         [spec(type="NodePort", externalTrafficPolicy="Local")], []),
    case("valid clusterIP service with none of externalTrafficPolicy and healthCheckNodePort set",
         [spec(type="ClusterIP")], []),
    case("cannot set healthCheckNodePort field on loadBalancer service with "
         "externalTrafficPolicy!=Local",
         [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=True,
               externalTrafficPolicy="Cluster", healthCheckNodePort=34567)],
         [("spec.healthCheckNodePort", INV)]),
    case("cannot set healthCheckNodePort field on nodePort service",
         [spec(type="NodePort", externalTrafficPolicy="Local", healthCheckNodePort=34567)],
         [("spec.healthCheckNodePort", INV)]),
    case("cannot set externalTrafficPolicy or healthCheckNodePort fields on clusterIP service",
         [spec(type="ClusterIP", externalTrafficPolicy="Local", healthCheckNodePort=34567)],
         [("spec.externalTrafficPolicy", INV), ("spec.healthCheckNodePort", INV)]),
    case("cannot set externalTrafficPolicy field on ExternalName service",
         [spec(type="ExternalName", externalTrafficPolicy="Local")],
         [("spec.externalTrafficPolicy", INV)]),
    case("externalTrafficPolicy is required on NodePort service", [spec(type="NodePort")],
         [("spec.externalTrafficPolicy", REQ)]),
    case("externalTrafficPolicy is required on LoadBalancer service",
         [spec(type="LoadBalancer")], [("spec.externalTrafficPolicy", REQ)]),
    case("externalTrafficPolicy is required on ClusterIP service with externalIPs",
         [spec(type="ClusterIP", externalIPs=["1.2.3,4"])],
         [("spec.externalTrafficPolicy", REQ)]),
]


@pytest.mark.parametrize(("muts", "want"), ETP_CASES)
def test_validate_service_external_traffic_policy(muts: list[Mut], want: Want) -> None:
    assert pairs(validate_service_external_traffic_policy(make_valid_service(*muts))) == sorted(
        want)


# --------------------------------------------------------------------------------------------
# TestValidateServiceUpdate


def ucase(name: str, old: Sequence[Mut], new: Sequence[Mut], want: Want) -> Any:
    return pytest.param(list(old), list(new), want, id=name)


_SS = {"ipFamilyPolicy": "SingleStack"}
_RDS = {"ipFamilyPolicy": "RequireDualStack"}
_PDS = {"ipFamilyPolicy": "PreferDualStack"}
_CLASS = "test.com/test-load-balancer-class"

UPDATE_CASES = [
    ucase("no change", [], [], []),
    ucase("change name", [], [meta(name="valid2")], [("metadata.name", INV)]),
    ucase("change namespace", [], [meta(namespace="valid2")], [("metadata.namespace", INV)]),
    ucase("change label valid", [], [label("key", "other-value")], []),
    ucase("add label", [], [label("key2", "value2")], []),
    ucase("change cluster IP", [cips("1.2.3.4")], [cips("8.6.7.5")],
          [("spec.clusterIPs[0]", INV)]),
    ucase("remove cluster IP", [cips("1.2.3.4")], [spec(clusterIP="", clusterIPs=None)],
          [("spec.clusterIPs[0]", INV)]),
    ucase("change affinity", [], [spec(sessionAffinity="ClientIP", sessionAffinityConfig={
        "clientIP": {"timeoutSeconds": 90}})], []),
    ucase("remove affinity", [], [spec(sessionAffinity="")], [("spec.sessionAffinity", REQ)]),
    ucase("change type", [], [lb()], []),
    ucase("remove type", [], [spec(type="")], [("spec.type", REQ)]),
    ucase("change type -> nodeport", [], [nodeport()], []),
    ucase("add loadBalancerSourceRanges", [spec(type="LoadBalancer",
                                                allocateLoadBalancerNodePorts=True)],
          [lb(loadBalancerSourceRanges=["10.0.0.0/8"])], []),
    ucase("update loadBalancerSourceRanges",
          [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=True,
                loadBalancerSourceRanges=["10.0.0.0/8"])],
          [lb(loadBalancerSourceRanges=["10.100.0.0/16"])], []),
    ucase("LoadBalancer type cannot have None ClusterIP", [], [cips("None"), lb()],
          [("spec.clusterIPs[0]", INV)]),
    ucase("`None` ClusterIP can NOT be changed", [cips("None")], [cips("1.2.3.4")],
          [("spec.clusterIPs[0]", INV)]),
    ucase("`None` ClusterIP can NOT be removed", [cips("None")],
          [spec(clusterIP="", clusterIPs=None)], [("spec.clusterIPs[0]", INV)]),
    ucase("ClusterIP can NOT be changed to None", [cips("1.2.3.4")], [cips("None")],
          [("spec.clusterIPs[0]", INV)]),
    ucase("Service with ClusterIP type cannot change its set ClusterIP",
          [cips("1.2.3.4")], [cips("1.2.3.5")], [("spec.clusterIPs[0]", INV)]),
    ucase("Service with ClusterIP type can change its empty ClusterIP",
          [spec(clusterIP="", clusterIPs=None)], [cips("1.2.3.5")], []),
    ucase("Service with ClusterIP type cannot change its set ClusterIP when changing type to "
          "NodePort", [cips("1.2.3.4")], [nodeport(), cips("1.2.3.5")],
          [("spec.clusterIPs[0]", INV)]),
    ucase("Service with ClusterIP type can change its empty ClusterIP when changing type to "
          "NodePort", [spec(clusterIP="", clusterIPs=None)], [nodeport(), cips("1.2.3.5")], []),
    ucase("Service with ClusterIP type cannot change its ClusterIP when changing type to "
          "LoadBalancer", [cips("1.2.3.4")], [lb(), cips("1.2.3.5")],
          [("spec.clusterIPs[0]", INV)]),
    ucase("Service with ClusterIP type can change its empty ClusterIP when changing type to "
          "LoadBalancer", [spec(clusterIP="", clusterIPs=None)], [lb(), cips("1.2.3.5")], []),
    ucase("Service with LoadBalancer type can change its AllocateLoadBalancerNodePorts from "
          "true to false", [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=True)],
          [lb(allocateLoadBalancerNodePorts=False)], []),
    ucase("Service with LoadBalancer type can change its AllocateLoadBalancerNodePorts from "
          "false to true", [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=False)],
          [lb(allocateLoadBalancerNodePorts=True)], []),
    ucase("Service with NodePort type cannot change its set ClusterIP",
          [spec(type="NodePort"), cips("1.2.3.4")], [nodeport(), cips("1.2.3.5")],
          [("spec.clusterIPs[0]", INV)]),
    ucase("Service with NodePort type can change its empty ClusterIP",
          [spec(type="NodePort", clusterIP="", clusterIPs=None)], [nodeport(), cips("1.2.3.5")],
          []),
    ucase("Service with NodePort type cannot change its set ClusterIP when changing type to "
          "ClusterIP", [spec(type="NodePort"), cips("1.2.3.4")], [cips("1.2.3.5")],
          [("spec.clusterIPs[0]", INV)]),
    ucase("Service with NodePort type can change its empty ClusterIP when changing type to "
          "ClusterIP", [spec(type="NodePort", clusterIP="", clusterIPs=None)],
          [cips("1.2.3.5")], []),
    ucase("Service with NodePort type cannot change its set ClusterIP when changing type to "
          "LoadBalancer", [spec(type="NodePort"), cips("1.2.3.4")], [lb(), cips("1.2.3.5")],
          [("spec.clusterIPs[0]", INV)]),
    ucase("Service with NodePort type can change its empty ClusterIP when changing type to "
          "LoadBalancer", [spec(type="NodePort", clusterIP="", clusterIPs=None)],
          [lb(), cips("1.2.3.5")], []),
    ucase("Service with LoadBalancer type cannot change its set ClusterIP",
          [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=True), cips("1.2.3.4")],
          [lb(), cips("1.2.3.5")], [("spec.clusterIPs[0]", INV)]),
    ucase("Service with LoadBalancer type can change its empty ClusterIP",
          [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=True, clusterIP="",
                clusterIPs=None)], [lb(), cips("1.2.3.5")], []),
    ucase("Service with LoadBalancer type cannot change its set ClusterIP when changing type "
          "to ClusterIP",
          [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=True), cips("1.2.3.4")],
          [cips("1.2.3.5")], [("spec.clusterIPs[0]", INV)]),
    ucase("Service with LoadBalancer type can change its empty ClusterIP when changing type to "
          "ClusterIP", [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=True,
                             clusterIP="", clusterIPs=None)], [cips("1.2.3.5")], []),
    ucase("Service with LoadBalancer type cannot change its set ClusterIP when changing type "
          "to NodePort",
          [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=True), cips("1.2.3.4")],
          [nodeport(), cips("1.2.3.5")], [("spec.clusterIPs[0]", INV)]),
    ucase("Service with LoadBalancer type can change its empty ClusterIP when changing type to "
          "NodePort", [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=True,
                            clusterIP="", clusterIPs=None)], [nodeport(), cips("1.2.3.5")], []),
    ucase("Service with ExternalName type can change its empty ClusterIP when changing type to "
          "ClusterIP", [spec(type="ExternalName", clusterIP="", clusterIPs=None)],
          [cips("1.2.3.5")], []),
    ucase("Service with ExternalName type can change its set ClusterIP when changing type to "
          "ClusterIP", [spec(type="ExternalName"), cips("1.2.3.4")], [cips("1.2.3.5")], []),
    ucase("invalid node port with clusterIP None",
          [spec(type="NodePort", clusterIP="", clusterIPs=None),
           add_port(name="q", port=1, protocol="TCP", nodePort=1, targetPort=1)],
          [nodeport(), add_port(name="q", port=1, protocol="TCP", nodePort=1, targetPort=1),
           cips("None")],
          [("spec.clusterIPs[0]", INV)]),
    # Service IP family
    ucase("convert from ExternalName", [spec(type="ExternalName")], [], []),
    # The strategy resets the unchanged fields; validation alone does not (hence 3 errors).
    ucase("invalid: convert to ExternalName",
          [cips("10.0.0.10"), spec(ipFamilies=["IPv4"], **_SS)],
          [spec(type="ExternalName", externalName="foo", ipFamilies=["IPv4"], **_SS),
           cips("10.0.0.10")],
          [("spec.clusterIPs", FORB), ("spec.ipFamilies", FORB), ("spec.ipFamilyPolicy", FORB)]),
    ucase("valid: convert to ExternalName",
          [cips("10.0.0.10"), spec(ipFamilies=["IPv4"], **_SS)],
          [spec(type="ExternalName", externalName="foo")], []),
    ucase("same ServiceIPFamily", [spec(ipFamilies=["IPv4"])], [spec(ipFamilies=["IPv4"])], []),
    ucase("same ServiceIPFamily, change IPFamilyPolicy to singleStack",
          [spec(ipFamilyPolicy=None, ipFamilies=["IPv4"])],
          [spec(ipFamilies=["IPv4"], **_SS)], []),
    ucase("same ServiceIPFamily, change IPFamilyPolicy singleStack => requireDualStack",
          [spec(ipFamilies=["IPv4"], **_SS)], [spec(ipFamilies=["IPv4"], **_RDS)], []),
    ucase("add a new ServiceIPFamily", [spec(ipFamilies=["IPv4"], **_RDS)],
          [spec(ipFamilies=["IPv4", "IPv6"], **_RDS)], []),
    ucase("ExternalName while changing Service IPFamily",
          [spec(type="ExternalName", externalName="somename")],
          [spec(type="ExternalName", externalName="somename")], []),
    ucase("setting ipfamily from nil to v4", [spec(ipFamilies=None)],
          [spec(externalName="somename", ipFamilies=["IPv4"])], []),
    ucase("setting ipfamily from nil to v6", [spec(ipFamilies=None)],
          [spec(externalName="somename", ipFamilies=["IPv6"])], []),
    ucase("change primary ServiceIPFamily", [cips("1.2.3.4"), spec(ipFamilies=["IPv4"])],
          [cips("1.2.3.4"), spec(ipFamilies=["IPv6"])],
          [("spec.ipFamilies[0]", INV), ("spec.clusterIPs[0]", INV)]),
    # upgrade + downgrade from/to dual-stack
    ucase("valid: upgrade to dual stack with requiredDualStack",
          [cips("1.2.3.4"), spec(ipFamilies=["IPv4"], **_RDS)],
          [cips("1.2.3.4"), spec(ipFamilies=["IPv4"])], []),
    ucase("valid: upgrade to dual stack with preferDualStack",
          [cips("1.2.3.4"), spec(ipFamilies=["IPv4"], **_SS)],
          [cips("1.2.3.4"), spec(ipFamilies=["IPv4"], **_PDS)], []),
    ucase("valid: upgrade to dual stack, no specific secondary ip",
          [cips("1.2.3.4"), spec(ipFamilies=["IPv4"], **_SS)],
          [cips("1.2.3.4"), spec(ipFamilies=["IPv4", "IPv6"], **_RDS)], []),
    ucase("valid: upgrade to dual stack, with specific secondary ip",
          [cips("1.2.3.4"), spec(ipFamilies=["IPv4"], **_SS)],
          [cips("1.2.3.4", "2001::1"), spec(ipFamilies=["IPv4", "IPv6"], **_RDS)], []),
    ucase("valid: downgrade from dual to single",
          [cips("1.2.3.4", "2001::1"), spec(ipFamilies=["IPv4", "IPv6"], **_RDS)],
          [cips("1.2.3.4"), spec(ipFamilies=["IPv4"], **_SS)], []),
    ucase("valid: change families for a headless service",
          [cips("None"), spec(ipFamilies=["IPv4", "IPv6"], **_RDS)],
          [cips("None"), spec(ipFamilies=["IPv6", "IPv4"], **_RDS)], []),
    ucase("valid: upgrade a headless service",
          [cips("None"), spec(ipFamilies=["IPv4"], **_SS)],
          [cips("None"), spec(ipFamilies=["IPv6", "IPv4"], **_RDS)], []),
    ucase("valid: downgrade a headless service",
          [cips("None"), spec(ipFamilies=["IPv4", "IPv6"], **_RDS)],
          [cips("None"), spec(ipFamilies=["IPv6"], **_SS)], []),
    # Quirk: both changed families are reported on ipFamilies[0].
    ucase("invalid flip families",
          [cips("1.2.3.4", "2001::1", single="1.2.3.40"),
           spec(ipFamilies=["IPv4", "IPv6"], **_RDS)],
          [cips("2001::1", "1.2.3.5"), spec(ipFamilies=["IPv6", "IPv4"], **_RDS)],
          [("spec.clusterIPs[0]", INV), ("spec.clusterIPs[1]", INV),
           ("spec.ipFamilies[0]", INV), ("spec.ipFamilies[0]", INV)]),
    ucase("invalid change first ip, in dualstack service",
          [cips("1.2.3.4", "2001::1"), spec(ipFamilies=["IPv4", "IPv6"], **_RDS)],
          [cips("1.2.3.5", "2001::1"), spec(ipFamilies=["IPv4", "IPv6"], **_RDS)],
          [("spec.clusterIPs[0]", INV)]),
    ucase("invalid, change second ip in dualstack service",
          [cips("1.2.3.4", "2001::1"), spec(ipFamilies=["IPv4", "IPv6"], **_RDS)],
          [cips("1.2.3.4", "2002::1"), spec(ipFamilies=["IPv4", "IPv6"], **_RDS)],
          [("spec.clusterIPs[1]", INV)]),
    ucase("downgrade keeping the families",
          [cips("1.2.3.4", "2001::1"), spec(ipFamilies=["IPv4", "IPv6"], **_RDS)],
          [cips("1.2.3.4"), spec(ipFamilies=["IPv4", "IPv6"], **_SS)], []),
    ucase("invalid, downgrade without changing to singleStack",
          [cips("1.2.3.4", "2001::1"), spec(ipFamilies=["IPv4", "IPv6"], **_RDS)],
          [cips("1.2.3.4"), spec(ipFamilies=["IPv4"], **_RDS)],
          [("spec.ipFamilyPolicy", INV), ("spec.ipFamilyPolicy", INV)]),
    ucase("invalid, downgrade and change primary ip",
          [cips("1.2.3.4", "2001::1"), spec(ipFamilies=["IPv4", "IPv6"], **_RDS)],
          [cips("1.2.3.5"), spec(ipFamilies=["IPv4"], **_SS)],
          [("spec.clusterIPs[0]", INV)]),
    ucase("invalid: upgrade to dual stack and change primary",
          [cips("1.2.3.4"), spec(ipFamilies=["IPv4"], **_SS)],
          [cips("1.2.3.5"), spec(ipFamilies=["IPv4", "IPv6"], **_RDS)],
          [("spec.clusterIPs[0]", INV)]),
    ucase("update to valid app protocol",
          [spec(ports=[{"name": "a", "port": 443, "targetPort": 3000, "protocol": "TCP"}])],
          [spec(ports=[{"name": "a", "port": 443, "targetPort": 3000, "protocol": "TCP",
                        "appProtocol": "https"}])], []),
    ucase("update to invalid app protocol",
          [spec(ports=[{"name": "a", "port": 443, "targetPort": 3000, "protocol": "TCP"}])],
          [spec(ports=[{"name": "a", "port": 443, "targetPort": 3000, "protocol": "TCP",
                        "appProtocol": "~https"}])],
          [("spec.ports[0].appProtocol", INV)]),
    ucase("Set AllocateLoadBalancerNodePorts when type is not LoadBalancer", [],
          [spec(allocateLoadBalancerNodePorts=True)],
          [("spec.allocateLoadBalancerNodePorts", FORB)]),
    ucase("update LoadBalancer type of service without change LoadBalancerClass",
          [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=True,
                loadBalancerClass="test.com/test-old")],
          [lb(loadBalancerClass="test.com/test-old")], []),
    ucase("invalid: change LoadBalancerClass when update service",
          [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=True,
                loadBalancerClass="test.com/test-old")],
          [lb(loadBalancerClass="test.com/test-new")], [("spec.loadBalancerClass", INV)]),
    ucase("invalid: unset LoadBalancerClass when update service",
          [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=True,
                loadBalancerClass="test.com/test-old")],
          [lb(loadBalancerClass=None)], [("spec.loadBalancerClass", INV)]),
    ucase("invalid: set LoadBalancerClass when update service",
          [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=True,
                loadBalancerClass=None)],
          [lb(loadBalancerClass="test.com/test-new")], [("spec.loadBalancerClass", INV)]),
    ucase("update to LoadBalancer type of service with valid LoadBalancerClass", [],
          [lb(loadBalancerClass=_CLASS)], []),
    ucase("update to LoadBalancer type of service without LoadBalancerClass", [],
          [lb(loadBalancerClass=None)], []),
    # Quirk: the class checks run twice on update, so errors come in pairs.
    ucase("invalid: set invalid LoadBalancerClass when update service to LoadBalancer", [],
          [lb(loadBalancerClass="Bad/LoadBalancerclass")],
          [("spec.loadBalancerClass", INV), ("spec.loadBalancerClass", INV)]),
    ucase("invalid: set LoadBalancerClass when update service to non LoadBalancer type of "
          "service (ClusterIP)", [], [spec(loadBalancerClass=_CLASS)],
          [("spec.loadBalancerClass", FORB), ("spec.loadBalancerClass", FORB)]),
    ucase("invalid: set LoadBalancerClass when update service to non LoadBalancer type of "
          "service (ExternalName)", [spec(type="ExternalName")],
          [spec(type="ExternalName", loadBalancerClass=_CLASS)],
          [("spec.loadBalancerClass", FORB), ("spec.loadBalancerClass", FORB),
           ("spec.externalName", REQ)]),
    ucase("invalid: set LoadBalancerClass when update service to non LoadBalancer type of "
          "service (NodePort)", [spec(type="NodePort")],
          [nodeport(loadBalancerClass=_CLASS)],
          [("spec.loadBalancerClass", FORB), ("spec.loadBalancerClass", FORB)]),
    ucase("invalid: set LoadBalancerClass when update from LoadBalancer service to non "
          "LoadBalancer type of service (ClusterIP)",
          [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=True,
                loadBalancerClass=_CLASS)],
          [spec(loadBalancerClass=_CLASS)],
          [("spec.loadBalancerClass", FORB), ("spec.loadBalancerClass", FORB)]),
    ucase("invalid: set LoadBalancerClass when update from LoadBalancer service to non "
          "LoadBalancer type of service (ExternalName)",
          [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=True,
                loadBalancerClass=_CLASS)],
          [spec(type="ExternalName", loadBalancerClass=_CLASS)],
          [("spec.loadBalancerClass", FORB), ("spec.loadBalancerClass", FORB),
           ("spec.externalName", REQ)]),
    ucase("invalid: set LoadBalancerClass when update from LoadBalancer service to non "
          "LoadBalancer type of service (NodePort)",
          [spec(type="LoadBalancer", allocateLoadBalancerNodePorts=True,
                loadBalancerClass=_CLASS)],
          [nodeport(loadBalancerClass=_CLASS)],
          [("spec.loadBalancerClass", FORB), ("spec.loadBalancerClass", FORB)]),
    ucase("update internalTrafficPolicy from Cluster to Local",
          [spec(internalTrafficPolicy="Cluster")], [spec(internalTrafficPolicy="Local")], []),
    ucase("update internalTrafficPolicy from Local to Cluster",
          [spec(internalTrafficPolicy="Local")], [spec(internalTrafficPolicy="Cluster")], []),
    ucase("topology annotations are mismatched", [],
          [ann("service.kubernetes.io/topology-aware-hints", "original"),
           ann("service.kubernetes.io/topology-mode", "different")],
          [(TOPOLOGY_PATH, INV)]),
    # extras
    ucase("extra: healthCheckNodePort is immutable",
          [lb(externalTrafficPolicy="Local", healthCheckNodePort=30001)],
          [lb(externalTrafficPolicy="Local", healthCheckNodePort=30002)],
          [("spec.healthCheckNodePort", FORB)]),
    ucase("extra: healthCheckNodePort may change when ETP becomes Local",
          [lb()], [lb(externalTrafficPolicy="Local", healthCheckNodePort=30002)], []),
    ucase("extra: missing resourceVersion", [], [meta(resourceVersion="")],
          [("metadata.resourceVersion", INV)]),
    ucase("extra: uid is immutable", [meta(uid="a")], [meta(uid="b")], [("metadata.uid", INV)]),
    ucase("extra: creationTimestamp is immutable",
          [meta(creationTimestamp="2024-01-01T00:00:00Z")],
          [meta(creationTimestamp="2024-01-02T00:00:00Z")],
          [("metadata.creationTimestamp", INV)]),
    ucase("extra: generation may not decrease", [meta(generation=3)], [meta(generation=2)],
          [("metadata.generation", INV)]),
    ucase("extra: no new finalizers while deleting",
          [meta(deletionTimestamp="2024-01-01T00:00:00Z", finalizers=["example.com/a"])],
          [meta(deletionTimestamp="2024-01-01T00:00:00Z",
                finalizers=["example.com/a", "example.com/b"])],
          [("metadata.finalizers", FORB)]),
    # Labels are checked by both the update- and create-style metadata validation.
    ucase("extra: invalid label reported twice on update", [], [label("bad key", "v")],
          [("metadata.labels", INV), ("metadata.labels", INV)]),
    ucase("extra: stored leading-zero externalIP is grandfathered",
          [spec(externalTrafficPolicy="Cluster", externalIPs=["010.1.1.1"])],
          [spec(externalTrafficPolicy="Cluster", externalIPs=["010.1.1.1"])], []),
    ucase("extra: new leading-zero externalIP is rejected",
          [spec(externalTrafficPolicy="Cluster", externalIPs=["10.1.1.1"])],
          [spec(externalTrafficPolicy="Cluster", externalIPs=["10.1.1.1", "010.1.1.2"])],
          [("spec.externalIPs[1]", INV)]),
    ucase("extra: stored host-bits source range is grandfathered",
          [lb(loadBalancerSourceRanges=["10.0.0.1/8"])],
          [lb(loadBalancerSourceRanges=["10.0.0.1/8", "192.168.0.0/16"])], []),
    ucase("extra: type change to NodePort keeps nodePorts",
          [lb(), port(0, nodePort=30080)], [nodeport(), port(0, nodePort=30080)], []),
    ucase("extra: grow to two IPs of the same family",
          [cips("1.2.3.4"), spec(ipFamilies=["IPv4"], **_SS)],
          [cips("1.2.3.4", "1.2.3.5"), spec(ipFamilies=["IPv4"], **_RDS)],
          [("spec.clusterIPs", INV)]),
]


@pytest.mark.parametrize(("old_muts", "new_muts", "want"), UPDATE_CASES)
def test_validate_service_update(old_muts: list[Mut], new_muts: list[Mut], want: Want) -> None:
    old = make_valid_service(*old_muts)
    new = make_valid_service(*new_muts)
    snapshot = copy.deepcopy((old, new))
    assert pairs(validate_service_update(new, old)) == sorted(want)
    assert (old, new) == snapshot


# --------------------------------------------------------------------------------------------
# status updates (ValidateServiceStatusUpdate / ValidateLoadBalancerStatus)


def ingress(*entries: dict[str, Any]) -> Mut:
    return lambda s: s.__setitem__("status", {"loadBalancer": {"ingress": list(entries)}})


STATUS_CASES = [
    case("valid ip with ipMode VIP", [lb(), ingress({"ip": "1.2.3.4", "ipMode": "VIP"})], []),
    case("valid ip with ipMode Proxy", [lb(), ingress({"ip": "2001:db8::1", "ipMode": "Proxy"})],
         []),
    case("valid hostname only", [lb(), ingress({"hostname": "lb.example.com"})], []),
    case("ip without ipMode", [lb(), ingress({"ip": "1.2.3.4"})],
         [("status.loadBalancer.ingress[0].ipMode", REQ)]),
    case("ipMode without ip", [lb(), ingress({"hostname": "a.b", "ipMode": "VIP"})],
         [("status.loadBalancer.ingress[0].ipMode", FORB)]),
    case("unsupported ipMode", [lb(), ingress({"ip": "1.2.3.4", "ipMode": "Direct"})],
         [("status.loadBalancer.ingress[0].ipMode", NSUP)]),
    case("invalid ip", [lb(), ingress({"ip": "1.2.3", "ipMode": "VIP"})],
         [("status.loadBalancer.ingress[0].ip", INV)]),
    case("hostname that is an IP", [lb(), ingress({"hostname": "1.2.3.4"})],
         [("status.loadBalancer.ingress[0].hostname", INV)]),
    case("invalid hostname", [lb(), ingress({"hostname": "Bad_Host"})],
         [("status.loadBalancer.ingress[0].hostname", INV)]),
    case("ingress on a ClusterIP service", [ingress({"ip": "1.2.3.4", "ipMode": "VIP"})],
         [("status.loadBalancer.ingress", FORB)]),
    case("second entry bad", [lb(), ingress({"ip": "1.2.3.4", "ipMode": "VIP"},
                                           {"ip": "x", "ipMode": "VIP"})],
         [("status.loadBalancer.ingress[1].ip", INV)]),
]


@pytest.mark.parametrize(("muts", "want"), STATUS_CASES)
def test_validate_service_status_update(muts: list[Mut], want: Want) -> None:
    old = make_valid_service(lb())
    new = make_valid_service(*muts)
    assert pairs(validate_service_status_update(new, old)) == sorted(want)


# --------------------------------------------------------------------------------------------
# exact messages


def _one(errs: list[FieldError], field: str) -> FieldError:
    found = [e for e in errs if e.field == field]
    assert len(found) == 1, errs
    return found[0]


def test_message_port_zero() -> None:
    e = _one(validate_service(make_valid_service(port(0, port=0))), "spec.ports[0].port")
    assert e.body() == "Invalid value: 0: must be between 1 and 65535, inclusive"


def test_message_unsupported_session_affinity() -> None:
    e = _one(validate_service(make_valid_service(spec(sessionAffinity="Sticky"))),
             "spec.sessionAffinity")
    assert e.body() == 'Unsupported value: "Sticky": supported values: "ClientIP", "None"'


def test_message_full_422_like_upstream() -> None:
    errs = validate_service(make_valid_service(meta(name="web"), port(0, port=0),
                                               spec(sessionAffinity="Sticky")))
    status = invalid_error("Service", "web", errs).to_status()
    assert status["message"] == (
        'Service "web" is invalid: [spec.ports[0].port: Invalid value: 0: must be between 1 '
        'and 65535, inclusive, spec.sessionAffinity: Unsupported value: "Sticky": supported '
        'values: "ClientIP", "None"]')
    assert status["details"]["causes"][0] == {
        "reason": "FieldValueInvalid",
        "message": "Invalid value: 0: must be between 1 and 65535, inclusive",
        "field": "spec.ports[0].port"}


def test_message_required_and_quirky_paths() -> None:
    errs = validate_service(make_valid_service(spec(type="LoadBalancer",
                                                    externalTrafficPolicy="Cluster")))
    assert [str(e) for e in errs] == ["allocateLoadBalancerNodePorts: Required value"]
    errs = validate_service(make_valid_service(spec(loadBalancerSourceRanges=["10.0.0.0/8"])))
    assert [str(e) for e in errs] == [
        "spec.LoadBalancerSourceRanges: Forbidden: may only be used when `type` is "
        "'LoadBalancer'"]


def test_message_dns1035_name() -> None:
    e = _one(validate_service(make_valid_service(meta(name="1abc"))), "metadata.name")
    assert e.body() == (
        'Invalid value: "1abc": a DNS-1035 label must consist of lower case alphanumeric '
        "characters or '-', start with an alphabetic character, and end with an alphanumeric "
        "character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
        "'[a-z]([-a-z0-9]*[a-z0-9])?')")


def test_message_cluster_ips_list_values() -> None:
    errs = validate_service(make_valid_service(cips("10.0.0.1", single="10.0.0.10")))
    assert [str(e) for e in errs] == [
        'spec.clusterIPs: Invalid value: []string{"10.0.0.1"}: first value must match '
        "`clusterIP`"]
    errs = validate_service(make_valid_service(cips("1.2.3")))
    assert [e.body() for e in errs] == [
        'Invalid value: "1.2.3": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)']
    errs = validate_service(make_valid_service(cips("010.0.0.1")))
    assert [e.body() for e in errs] == ['Invalid value: "010.0.0.1": must not have leading 0s']


def test_message_remove_cluster_ip_nil_slice() -> None:
    errs = validate_service_update(make_valid_service(spec(clusterIP="", clusterIPs=None)),
                                   make_valid_service(cips("1.2.3.4")))
    assert [str(e) for e in errs] == [
        "spec.clusterIPs[0]: Invalid value: []string(nil): primary clusterIP can not be unset"]


def test_message_unset_load_balancer_class_prints_null() -> None:
    old = make_valid_service(lb(loadBalancerClass="example.com/a"))
    errs = validate_service_update(make_valid_service(lb()), old)
    assert [str(e) for e in errs] == [
        'spec.loadBalancerClass: Invalid value: "null": may not change once set']


def test_message_duplicate_port_key() -> None:
    errs = validate_service(make_valid_service(
        add_port(name="q", port=8675, protocol="TCP", targetPort=1)))
    assert [e.body() for e in errs] == [
        'Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", '
        "AppProtocol:(*string)(nil), Port:8675, TargetPort:intstr.IntOrString{Type:0, "
        'IntVal:0, StrVal:""}, NodePort:0}']


def test_message_special_external_ips() -> None:
    errs = validate_service(make_valid_service(
        spec(externalTrafficPolicy="Cluster", externalIPs=["0.0.0.0", "127.0.0.1"])))
    assert [e.detail for e in errs] == [
        "may not be unspecified (0.0.0.0)",
        "may not be in the loopback range (127.0.0.0/8, ::1/128)"]


def test_message_family_mismatch_and_affinity() -> None:
    errs = validate_service(make_valid_service(cips("10.0.0.1"), spec(ipFamilies=["IPv6"])))
    assert [e.detail for e in errs] == ["expected an IPv6 value as indicated by `ipFamilies[0]`"]
    errs = validate_service(make_valid_service(spec(
        sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 0}})))
    assert [e.body() for e in errs] == ["Invalid value: 0: must be greater than 0 and less than "
                                        "86400"]


def test_evaluation_order() -> None:
    """Errors come out in validation.go's order (metadata first, traffic policies last)."""
    svc = make_valid_service(
        meta(name="Bad"), spec(ports=None, sessionAffinity="", type="",
                               externalTrafficPolicy="Local", allocateLoadBalancerNodePorts=True,
                               internalTrafficPolicy="x", trafficDistribution="x"))
    assert [e.field for e in validate_service(svc)] == [
        "metadata.name", "spec.ports", "spec.sessionAffinity", "spec.type",
        "spec.allocateLoadBalancerNodePorts", "spec.externalTrafficPolicy",
        "spec.internalTrafficPolicy", "spec.trafficDistribution"]


# --------------------------------------------------------------------------------------------
# defaulting (SetDefaults_Service)


def test_defaults_minimal_cluster_ip() -> None:
    out = set_defaults_service({"spec": {"ports": [{"port": 80}]}})
    assert out["spec"] == {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                           "sessionAffinity": "None", "type": "ClusterIP",
                           "internalTrafficPolicy": "Cluster"}


def test_defaults_missing_spec_and_no_mutation() -> None:
    src: Svc = {"metadata": {"name": "x"}}
    out = set_defaults_service(src)
    assert src == {"metadata": {"name": "x"}}
    assert out["spec"]["type"] == "ClusterIP"


@pytest.mark.parametrize(("target", "want"), [
    (None, 8080), (0, 8080), ("", 8080), (9090, 9090), ("http", "http")])
def test_defaults_target_port(target: Any, want: Any) -> None:
    p: dict[str, Any] = {"port": 8080}
    if target is not None:
        p["targetPort"] = target
    assert set_defaults_service({"spec": {"ports": [p]}})["spec"]["ports"][0]["targetPort"] == want


def test_defaults_session_affinity_none_drops_config() -> None:
    out = set_defaults_service({"spec": {"sessionAffinityConfig": {"clientIP": {
        "timeoutSeconds": 5}}}})
    assert out["spec"]["sessionAffinity"] == "None"
    assert "sessionAffinityConfig" not in out["spec"]


@pytest.mark.parametrize("cfg", [None, {}, {"clientIP": None}, {"clientIP": {}}])
def test_defaults_client_ip_incomplete_config_replaced(cfg: Any) -> None:
    s: dict[str, Any] = {"sessionAffinity": "ClientIP"}
    if cfg is not None:
        s["sessionAffinityConfig"] = cfg
    out = set_defaults_service({"spec": s})
    assert out["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_defaults_client_ip_complete_config_kept() -> None:
    out = set_defaults_service({"spec": {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {
        "clientIP": {"timeoutSeconds": 60}}}})
    assert out["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 60}}


def test_defaults_order_type_before_traffic_policies() -> None:
    """type is defaulted before ETP/ITP, so an untyped Service with externalIPs gets ETP."""
    out = set_defaults_service({"spec": {"externalIPs": ["1.2.3.4"]}})
    assert out["spec"]["type"] == "ClusterIP"
    assert out["spec"]["externalTrafficPolicy"] == "Cluster"
    assert out["spec"]["internalTrafficPolicy"] == "Cluster"


def test_defaults_node_port_and_load_balancer() -> None:
    np = set_defaults_service({"spec": {"type": "NodePort"}})["spec"]
    assert np["externalTrafficPolicy"] == "Cluster"
    assert "allocateLoadBalancerNodePorts" not in np
    lbs = set_defaults_service({"spec": {"type": "LoadBalancer"}})["spec"]
    assert lbs["allocateLoadBalancerNodePorts"] is True
    assert lbs["externalTrafficPolicy"] == "Cluster"
    kept = set_defaults_service({"spec": {"type": "LoadBalancer",
                                          "allocateLoadBalancerNodePorts": False,
                                          "externalTrafficPolicy": "Local"}})["spec"]
    assert kept["allocateLoadBalancerNodePorts"] is False
    assert kept["externalTrafficPolicy"] == "Local"


def test_defaults_external_name_has_no_itp() -> None:
    out = set_defaults_service({"spec": {"type": "ExternalName", "externalName": "a.b"}})
    assert "internalTrafficPolicy" not in out["spec"]
    assert "externalTrafficPolicy" not in out["spec"]


def test_defaults_ingress_ip_mode() -> None:
    out = set_defaults_service({"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {
        "ingress": [{"ip": "1.2.3.4"}, {"hostname": "a.b"}, {"ip": "5.6.7.8",
                                                              "ipMode": "Proxy"}]}}})
    assert out["status"]["loadBalancer"]["ingress"] == [
        {"ip": "1.2.3.4", "ipMode": "VIP"}, {"hostname": "a.b"},
        {"ip": "5.6.7.8", "ipMode": "Proxy"}]
    not_lb = set_defaults_service({"status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}})
    assert not_lb["status"]["loadBalancer"]["ingress"] == [{"ip": "1.2.3.4"}]


@pytest.mark.parametrize("manifest", [
    {"spec": {"selector": {"app": "a"}, "ports": [{"port": 80}]}},
    {"spec": {"type": "NodePort", "ports": [{"name": "a", "port": 80},
                                            {"name": "b", "port": 81, "protocol": "UDP"}]}},
    {"spec": {"type": "LoadBalancer", "ports": [{"port": 443, "targetPort": "https"}]}},
    {"spec": {"type": "ExternalName", "externalName": "db.example.com."}},
    {"spec": {"clusterIP": "None", "clusterIPs": ["None"]}},
    {"spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 80}]}},
])
def test_defaulted_manifests_validate(manifest: dict[str, Any]) -> None:
    svc = {"metadata": {"name": "web", "namespace": "default"}, **manifest}
    assert validate_service(set_defaults_service(svc)) == []


# --------------------------------------------------------------------------------------------
# predicates


def test_predicates() -> None:
    cluster = make_valid_service()
    np = make_valid_service(nodeport(), add_port(name="q", port=1, protocol="TCP",
                                                 targetPort=1))
    lb_no_alloc = make_valid_service(lb(allocateLoadBalancerNodePorts=False),
                                     add_port(name="q", port=1, protocol="TCP", targetPort=1,
                                              nodePort=30001))
    ext = make_valid_service(spec(type="ExternalName", externalName="a.b"))
    assert needs_cluster_ip(cluster) and not needs_cluster_ip(ext)
    assert not uses_node_ports(cluster) and uses_node_ports(np)
    assert needs_node_ports(cluster) == [] and needs_node_ports(np) == [0, 1]
    assert needs_node_ports(lb_no_alloc) == [1]
    assert needs_node_ports(make_valid_service(lb())) == [0]
    assert needs_health_check_node_port(make_valid_service(lb(externalTrafficPolicy="Local")))
    assert not needs_health_check_node_port(make_valid_service(nodeport(
        externalTrafficPolicy="Local")))
    assert is_headless(make_valid_service(cips("None")))
    assert is_headless(make_valid_service(spec(clusterIP="None")))
    assert not is_headless(make_valid_service(cips("None", "1.2.3.4")))
    assert not is_externally_accessible(cluster)
    assert is_externally_accessible(make_valid_service(spec(externalIPs=["1.2.3.4"])))
    assert is_externally_accessible(np)
    assert not is_externally_accessible(make_valid_service(spec(type="ExternalName",
                                                                externalIPs=["1.2.3.4"])))


# --------------------------------------------------------------------------------------------
# registry fix-ups


def test_prepare_for_create_wipes_status() -> None:
    src = make_valid_service(lambda s: s.__setitem__("status", {"loadBalancer": {"ingress": [
        {"ip": "1.2.3.4"}]}}))
    out = prepare_for_create(src)
    assert out["status"] == {"loadBalancer": {}}
    assert src["status"]["loadBalancer"]["ingress"] == [{"ip": "1.2.3.4"}]


def test_prepare_for_update_copies_status_then_drops() -> None:
    old_status = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ipMode": "VIP"}]}}
    old = make_valid_service(lb(), lambda s: s.__setitem__("status", old_status))
    new = make_valid_service(lb(), lambda s: s.__setitem__("status", {"loadBalancer": {}}))
    assert prepare_for_update(new, old)["status"] == old_status
    # Leaving LoadBalancer resets the copied status.
    to_cluster = make_valid_service()
    assert prepare_for_update(to_cluster, old)["status"] == {"loadBalancer": {}}


def test_normalize_cluster_ips_create() -> None:
    out = normalize_cluster_ips(make_valid_service(spec(clusterIP="10.0.0.5")), None)
    assert out["spec"]["clusterIPs"] == ["10.0.0.5"]
    # The plural never initializes the singular.
    out = normalize_cluster_ips(make_valid_service(spec(clusterIPs=["10.0.0.5"])), None)
    assert "clusterIP" not in out["spec"]
    # Both given: untouched (validation will judge them).
    out = normalize_cluster_ips(make_valid_service(cips("10.0.0.5", single="10.0.0.6")), None)
    assert out["spec"]["clusterIPs"] == ["10.0.0.5"]


def test_normalize_cluster_ips_update() -> None:
    old = make_valid_service(cips("10.0.0.5", "2001::5"))
    # Old client: sends clusterIP only.
    out = normalize_cluster_ips(make_valid_service(spec(clusterIP="10.0.0.5")), old)
    assert out["spec"]["clusterIPs"] == ["10.0.0.5", "2001::5"]
    # Clearing clusterIP with unchanged clusterIPs clears both.
    cleared = make_valid_service(spec(clusterIP="", clusterIPs=["10.0.0.5", "2001::5"]))
    assert "clusterIPs" not in normalize_cluster_ips(cleared, old)["spec"]
    # Changing clusterIP with unchanged clusterIPs rewrites the plural.
    changed = make_valid_service(spec(clusterIP="10.0.0.6", clusterIPs=["10.0.0.5", "2001::5"]))
    out = normalize_cluster_ips(changed, old)
    assert out["spec"]["clusterIPs"] == ["10.0.0.6"]
    errs = validate_service_update(out, old)
    assert ("spec.clusterIPs[0]", INV) in pairs(errs)


def test_patch_allocated_values() -> None:
    old = make_valid_service(
        lb(externalTrafficPolicy="Local", healthCheckNodePort=31000), cips("10.0.0.5"),
        port(0, nodePort=30080), add_port(name="q", port=81, protocol="TCP", targetPort=81,
                                          nodePort=30081))
    new = make_valid_service(lb(externalTrafficPolicy="Local"),
                             add_port(name="q", port=81, protocol="TCP", targetPort=81),
                             add_port(name="z", port=82, protocol="TCP", targetPort=82))
    out = patch_allocated_values(new, old)
    assert out["spec"]["clusterIP"] == "10.0.0.5"
    assert out["spec"]["clusterIPs"] == ["10.0.0.5"]
    assert [p.get("nodePort", 0) for p in out["spec"]["ports"]] == [30080, 30081, 0]
    assert out["spec"]["healthCheckNodePort"] == 31000
    assert "clusterIP" not in new["spec"]
    assert validate_service_update(out, old) == []


def test_patch_allocated_values_skips_node_port_in_use() -> None:
    old = make_valid_service(nodeport(), port(0, nodePort=30080),
                             add_port(name="q", port=81, protocol="TCP", targetPort=81,
                                      nodePort=30081))
    # The user moved 30080 to port "q"; port "p" must not get 30080 back.
    new = make_valid_service(nodeport(), add_port(name="q", port=81, protocol="TCP",
                                                  targetPort=81, nodePort=30080))
    out = patch_allocated_values(new, old)
    assert [p.get("nodePort", 0) for p in out["spec"]["ports"]] == [0, 30080]


def test_patch_allocated_values_not_across_type_boundaries() -> None:
    old = make_valid_service(nodeport(), cips("10.0.0.5"), port(0, nodePort=30080))
    to_cluster = patch_allocated_values(make_valid_service(), old)
    assert "nodePort" not in to_cluster["spec"]["ports"][0]
    assert to_cluster["spec"]["clusterIP"] == "10.0.0.5"
    to_ext = patch_allocated_values(make_valid_service(spec(type="ExternalName",
                                                            externalName="a.b")), old)
    assert "clusterIP" not in to_ext["spec"]


def test_drop_type_dependent_fields_to_external_name() -> None:
    old = make_valid_service(cips("10.0.0.5"), spec(ipFamilies=["IPv4"], **_SS))
    new = make_valid_service(cips("10.0.0.5"), spec(ipFamilies=["IPv4"], type="ExternalName",
                                                    externalName="a.b", **_SS))
    out = drop_type_dependent_fields(new, old)
    for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
        assert key not in out["spec"]
    assert out["spec"]["selector"] == {"key": "val"}  # never wiped
    assert validate_service_update(out, old) == []
    # A user who changed the IP at the same time keeps it, and validation rejects it.
    changed = make_valid_service(cips("10.0.0.6"), spec(type="ExternalName",
                                                        externalName="a.b"))
    out = drop_type_dependent_fields(changed, old)
    assert out["spec"]["clusterIPs"] == ["10.0.0.6"]
    assert ("spec.clusterIPs", FORB) in pairs(validate_service_update(out, old))


def test_drop_type_dependent_fields_node_ports() -> None:
    old = make_valid_service(lb(externalTrafficPolicy="Local", healthCheckNodePort=31000,
                                loadBalancerClass="example.com/x"), port(0, nodePort=30080))
    new = make_valid_service(lb(externalTrafficPolicy="Local", healthCheckNodePort=31000,
                                loadBalancerClass="example.com/x"), port(0, nodePort=30080),
                             spec(type="ClusterIP"))
    out = drop_type_dependent_fields(new, old)
    assert "nodePort" not in out["spec"]["ports"][0]
    for key in ("healthCheckNodePort", "allocateLoadBalancerNodePorts", "loadBalancerClass",
                "externalTrafficPolicy"):
        assert key not in out["spec"]
    assert validate_service_update(out, old) == []
    # Adding a net-new node port while switching keeps all of them (validation rejects).
    added = make_valid_service(port(0, nodePort=30099))
    out = drop_type_dependent_fields(added, old)
    assert out["spec"]["ports"][0]["nodePort"] == 30099
    assert ("spec.ports[0].nodePort", FORB) in pairs(validate_service_update(out, old))


def test_drop_type_dependent_fields_keeps_changed_values() -> None:
    old = make_valid_service(lb(allocateLoadBalancerNodePorts=True))
    new = make_valid_service(nodeport(allocateLoadBalancerNodePorts=False))
    out = drop_type_dependent_fields(new, old)
    assert out["spec"]["allocateLoadBalancerNodePorts"] is False
    # NodePort is still externally accessible, so externalTrafficPolicy stays.
    assert out["spec"]["externalTrafficPolicy"] == "Cluster"


# --------------------------------------------------------------------------------------------
# ipFamilyPolicy / ipFamilies initialization (alloc.go initIPFamilyFields)


def _init(svc: Svc, old: Svc | None = None,
          families: tuple[str, ...] = ("IPv4",)) -> tuple[Svc, Want]:
    out, errs = init_ip_family_fields(normalize_cluster_ips(svc, old), old,
                                      cluster_families=families)
    return out, pairs(errs)


def test_init_ip_families_single_stack_default() -> None:
    out, errs = _init(make_valid_service())
    assert errs == []
    assert out["spec"]["ipFamilyPolicy"] == "SingleStack"
    assert out["spec"]["ipFamilies"] == ["IPv4"]


def test_init_ip_families_from_cluster_ip() -> None:
    out, errs = _init(make_valid_service(spec(clusterIP="2001::5")), families=("IPv4", "IPv6"))
    assert errs == []
    assert out["spec"]["ipFamilies"] == ["IPv6"]


def test_init_ip_families_headless_selectorless_dual() -> None:
    out, errs = _init(make_valid_service(spec(clusterIP="None", selector=None)))
    assert errs == []
    assert out["spec"]["ipFamilyPolicy"] == "RequireDualStack"
    assert out["spec"]["ipFamilies"] == ["IPv4", "IPv6"]
    out, _ = _init(make_valid_service(spec(clusterIP="None")))  # has a selector
    assert out["spec"]["ipFamilyPolicy"] == "SingleStack"
    assert out["spec"]["ipFamilies"] == ["IPv4"]


def test_init_ip_families_errors_on_single_stack_cluster() -> None:
    _, errs = _init(make_valid_service(spec(ipFamilyPolicy="RequireDualStack")))
    assert errs == [("spec.ipFamilyPolicy", INV)]
    _, errs = _init(make_valid_service(spec(ipFamilies=["IPv6"])))
    assert errs == [("spec.ipFamilies[0]", INV)]
    _, errs_l = init_ip_family_fields(make_valid_service(cips("2001::5")))
    assert [str(e) for e in errs_l] == [
        'spec.clusterIPs[0]: Invalid value: []string{"2001::5"}: IPv6 is not configured on '
        "this cluster"]
    _, errs = _init(make_valid_service(cips("10.0.0.1", "2001::1"), spec(**_SS)),
                    families=("IPv4", "IPv6"))
    assert errs == [("spec.ipFamilyPolicy", INV)]
    # Malformed input is reported by the pre-validation.
    _, errs = _init(make_valid_service(cips("nope")))
    assert errs == [("spec.clusterIPs[0]", INV)]


def test_init_ip_families_dual_stack_cluster() -> None:
    out, errs = _init(make_valid_service(spec(**_PDS)), families=("IPv4", "IPv6"))
    assert errs == []
    assert out["spec"]["ipFamilies"] == ["IPv4", "IPv6"]
    out, _ = _init(make_valid_service(spec(**_PDS)), families=("IPv6", "IPv4"))
    assert out["spec"]["ipFamilies"] == ["IPv6", "IPv4"]
    out, _ = _init(make_valid_service(spec(**_PDS)))  # single-stack cluster: no upgrade
    assert out["spec"]["ipFamilies"] == ["IPv4"]


def test_init_ip_families_update() -> None:
    dual_old = make_valid_service(cips("10.0.0.1", "2001::1"),
                                  spec(ipFamilies=["IPv4", "IPv6"], **_RDS))
    # Policy omitted on update: the stored one is adopted.
    out, errs = _init(make_valid_service(cips("10.0.0.1", "2001::1"),
                                         spec(ipFamilies=["IPv4", "IPv6"])), dual_old,
                      ("IPv4", "IPv6"))
    assert errs == [] and out["spec"]["ipFamilyPolicy"] == "RequireDualStack"
    # Switching to SingleStack with unchanged lists trims them.
    out, errs = _init(make_valid_service(cips("10.0.0.1", "2001::1"),
                                         spec(ipFamilies=["IPv4", "IPv6"], **_SS)), dual_old,
                      ("IPv4", "IPv6"))
    assert errs == []
    assert out["spec"]["clusterIPs"] == ["10.0.0.1"]
    assert out["spec"]["ipFamilies"] == ["IPv4"]
    # Releasing the secondary IP without SingleStack is refused.
    _, errs = _init(make_valid_service(cips("10.0.0.1"), spec(ipFamilies=["IPv4"], **_RDS)),
                    dual_old, ("IPv4", "IPv6"))
    assert errs == [("spec.ipFamilyPolicy", INV), ("spec.ipFamilyPolicy", INV)]


def test_init_ip_families_external_name_untouched() -> None:
    svc = make_valid_service(spec(type="ExternalName", externalName="a.b"))
    out, errs = init_ip_family_fields(svc)
    assert errs == [] and out == svc and out is not svc


def test_full_create_pipeline() -> None:
    """defaults → normalize → ipFamilies → (allocation) → prepare → validate."""
    raw: Svc = {"metadata": {"name": "web", "namespace": "default"},
                "spec": {"type": "NodePort", "clusterIP": "10.96.0.10",
                         "ports": [{"port": 80, "nodePort": 30080}]},
                "status": {"loadBalancer": {"ingress": [{"ip": "1.1.1.1"}]}}}
    svc = set_defaults_service(raw)
    svc = normalize_cluster_ips(svc, None)
    svc, errs = init_ip_family_fields(svc)
    assert errs == []
    svc = prepare_for_create(svc)
    assert validate_service_create(svc) == []
    assert svc["spec"]["clusterIPs"] == ["10.96.0.10"]
    assert svc["spec"]["ipFamilies"] == ["IPv4"]
    assert svc["status"] == {"loadBalancer": {}}


def test_full_update_pipeline_resubmit_manifest() -> None:
    """Re-applying the original manifest (no allocated values) is a valid update."""
    stored = make_valid_service(nodeport(), cips("10.96.0.10"), port(0, nodePort=30080),
                                spec(ipFamilies=["IPv4"], **_SS),
                                meta(uid="u1", creationTimestamp="2024-01-01T00:00:00Z"))
    manifest: Svc = {"metadata": {"name": "valid", "namespace": "valid", "resourceVersion": "1",
                                  "uid": "u1", "creationTimestamp": "2024-01-01T00:00:00Z"},
                     "spec": {"type": "NodePort", "selector": {"key": "val"},
                              "ports": [{"name": "p", "port": 8675}]}}
    new = set_defaults_service(manifest)
    new = patch_allocated_values(new, stored)
    new = normalize_cluster_ips(new, stored)
    new, errs = init_ip_family_fields(new, stored)
    assert errs == []
    new = prepare_for_update(new, stored)
    assert validate_service_update(new, stored) == []
    assert new["spec"]["ports"][0]["nodePort"] == 30080
