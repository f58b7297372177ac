"""Builders for Services and EndpointSlices, and the shared test world.

Address plan (fixed for all DNS tests): ClusterIPs 10.96.0.0/16 and fd00:10:96::/112; pod
addresses 10.244.0.0/16 and fd00:10:244::/64; 192.0.2.0/24 (TEST-NET-1) for upstream answers.
Zone ``cluster.local`` unless a test says otherwise.
"""

from __future__ import annotations

from typing import Any

from svcnet.dns.records import AAAA, CNAME, NS, PTR, SOA, SRV, TXT, A, Record

Obj = dict[str, Any]


def port(name: str, number: int, protocol: str = "TCP") -> Obj:
    p: Obj = {"port": number, "protocol": protocol}
    if name:
        p["name"] = name
    return p


def cluster_ip(ns: str, name: str, *ips: str, ports: list[Obj] | None = None) -> Obj:
    families = ["IPv6" if ":" in ip else "IPv4" for ip in ips]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": ns, "name": name, "resourceVersion": "1"},
            "spec": {"type": "ClusterIP", "clusterIP": ips[0], "clusterIPs": list(ips),
                     "ipFamilies": families,
                     "ports": ports if ports is not None else [port("http", 80)]}}


def headless(ns: str, name: str, *, ports: list[Obj] | None = None,
             publish_not_ready: bool = False) -> Obj:
    spec: Obj = {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"],
                 "ports": ports if ports is not None else []}
    if publish_not_ready:
        spec["publishNotReadyAddresses"] = True
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": ns, "name": name, "resourceVersion": "1"}, "spec": spec}


def external(ns: str, name: str, target: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": ns, "name": name, "resourceVersion": "1"},
            "spec": {"type": "ExternalName", "externalName": target}}


def ep(address: str, *, hostname: str = "", ready: bool | None = True) -> Obj:
    e: Obj = {"addresses": [address], "conditions": {} if ready is None else {"ready": ready}}
    if hostname:
        e["hostname"] = hostname
    return e


def endpoint_slice(ns: str, service: str, name: str, endpoints: list[Obj], *,
                   ports: list[Obj] | None = None, family: str = "") -> Obj:
    if not family:
        first = endpoints[0]["addresses"][0] if endpoints else ""
        family = "IPv6" if ":" in first else "IPv4"
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": ns, "name": name, "resourceVersion": "1",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": family, "endpoints": endpoints,
            "ports": ports if ports is not None else []}


def world() -> tuple[list[Obj], list[Obj]]:
    """The Services and EndpointSlices most record tests query."""
    services = [
        cluster_ip("kube-system", "kube-dns", "10.96.0.10",
                   ports=[port("dns", 53, "UDP"), port("dns-tcp", 53)]),
        cluster_ip("default", "web", "10.96.0.11",
                   ports=[port("http", 80), port("dns", 53, "UDP"), port("", 8080)]),
        cluster_ip("default", "dual", "10.96.0.12", "fd00:10:96::12"),
        cluster_ip("default", "v6only", "fd00:10:96::13"),
        cluster_ip("other", "web", "10.96.1.11"),
        headless("default", "db", ports=[port("pg", 5432)]),
        headless("default", "empty", ports=[port("pg", 5432)]),
        headless("default", "notready"),
        headless("default", "pnr", publish_not_ready=True),
        headless("default", "sts", ports=[port("web", 80)]),
        external("default", "ext", "Example.COM."),
        external("default", "alias", "web.default.svc.cluster.local"),
        external("default", "loop1", "loop2.default.svc.cluster.local"),
        external("default", "loop2", "loop1.default.svc.cluster.local"),
    ]
    slices = [
        endpoint_slice("default", "db", "db-abcde", [
            ep("10.244.1.5", hostname="db-0"),
            ep("10.244.1.6"),
            ep("10.244.1.7", hostname="db-2", ready=False),
            ep("10.244.1.8", ready=None),
        ], ports=[port("pg", 5432), port("", 9000)]),
        endpoint_slice("default", "notready", "notready-abcde",
                       [ep("10.244.3.1", ready=False)]),
        endpoint_slice("default", "pnr", "pnr-abcde", [ep("10.244.4.1", ready=False)]),
        endpoint_slice("default", "sts", "sts-v4a", [ep("10.244.2.5", hostname="sts-0")],
                       ports=[port("web", 8080)]),
        endpoint_slice("default", "sts", "sts-v4b", [
            ep("10.244.2.5", hostname="sts-0"),  # the same pod in two slices: counted once
            ep("10.244.2.6", hostname="sts-1"),
        ], ports=[port("web", 8080)]),
        endpoint_slice("default", "sts", "sts-v6", [ep("fd00:10:244::2:5", hostname="sts-0")],
                       ports=[port("web", 8080)]),
        endpoint_slice("default", "sts", "sts-fqdn",
                       [{"addresses": ["example.com"], "conditions": {"ready": True}}],
                       family="FQDN"),
        # A slice of a ClusterIP Service: DNS answers with the ClusterIP, not endpoints.
        endpoint_slice("default", "web", "web-abcde", [ep("10.244.9.9", hostname="w")]),
    ]
    return services, slices


def text(record: Record) -> str:
    """A record in zone-file form, for readable assertions."""
    d = record.data
    match d:
        case A() | AAAA():
            value = d.address
        case CNAME() | PTR() | NS():
            value = d.target
        case SRV():
            value = f"{d.priority} {d.weight} {d.port} {d.target}"
        case TXT():
            value = " ".join(f'"{s}"' for s in d.strings)
        case SOA():
            value = f"{d.mname} {d.rname} {d.serial} {d.refresh} {d.retry} {d.expire} {d.minimum}"
    return f"{record.name} {record.ttl} {d.rtype.name} {value}"
