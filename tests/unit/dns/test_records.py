"""build_zone / answer: one table of named questions against the shared world (world.py), then
the rules that need their own inputs, then the incremental builder against build_zone.

Each case gives the question, the expected rcode, and the expected answer and additional
sections as zone-file lines (``name ttl TYPE data``); "NODATA" cases also check the SOA in the
authority section, since resolvers need it to cache the negative answer.
"""

from __future__ import annotations

import copy
import ipaddress
import random
from dataclasses import dataclass, field

import pytest

from svcnet.dns.records import (
    DEFAULT_TTL,
    Rcode,
    RType,
    Zone,
    ZoneBuilder,
    answer,
    build_zone,
    dashed_ip,
)
from tests.unit.dns.world import (
    Obj,
    cluster_ip,
    endpoint_slice,
    ep,
    external,
    headless,
    port,
    text,
    world,
)

Z = "cluster.local."
SVC = "default.svc.cluster.local."
V6_PTR = "2.1.0.0." + "0." * 16 + "6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa."
assert ipaddress.ip_address("fd00:10:96::12").reverse_pointer + "." == V6_PTR
SOA_LINE = f"{Z} 5 SOA ns.dns.{Z} hostmaster.{Z} 1 7200 1800 86400 5"


@dataclass(frozen=True)
class Case:
    id: str
    qname: str
    qtype: RType | int
    rcode: Rcode = Rcode.NOERROR
    answers: list[str] = field(default_factory=list)
    additionals: list[str] = field(default_factory=list)
    authority: list[str] | None = None
    """None: not checked."""
    in_zone: bool = True
    chase: str | None = None


def a(name: str, *ips: str) -> list[str]:
    return [f"{name} 5 {'AAAA' if ':' in ip else 'A'} {ip}" for ip in ips]


CASES = [
    # -- ClusterIP Services ------------------------------------------------------------------
    Case("clusterip-a", f"web.{SVC}", RType.A, answers=a(f"web.{SVC}", "10.96.0.11")),
    Case("clusterip-without-trailing-dot", f"web.{SVC}".rstrip("."), RType.A,
         answers=a(f"web.{SVC}", "10.96.0.11")),
    Case("clusterip-case-insensitive-keeps-asked-case", "WeB.Default.SVC.Cluster.Local.",
         RType.A, answers=a("WeB.Default.SVC.Cluster.Local.", "10.96.0.11")),
    Case("clusterip-aaaa-of-ipv4-only-is-nodata", f"web.{SVC}", RType.AAAA,
         authority=[SOA_LINE]),
    Case("clusterip-same-name-other-namespace", "web.other.svc.cluster.local.", RType.A,
         answers=a("web.other.svc.cluster.local.", "10.96.1.11")),
    Case("dual-stack-a", f"dual.{SVC}", RType.A, answers=a(f"dual.{SVC}", "10.96.0.12")),
    Case("dual-stack-aaaa", f"dual.{SVC}", RType.AAAA,
         answers=a(f"dual.{SVC}", "fd00:10:96::12")),
    Case("ipv6-only-aaaa", f"v6only.{SVC}", RType.AAAA,
         answers=a(f"v6only.{SVC}", "fd00:10:96::13")),
    Case("ipv6-only-a-is-nodata", f"v6only.{SVC}", RType.A, authority=[SOA_LINE]),
    Case("clusterip-any", f"dual.{SVC}", RType.ANY,
         answers=a(f"dual.{SVC}", "10.96.0.12", "fd00:10:96::12")),
    Case("clusterip-unknown-type-is-nodata", f"web.{SVC}", 15, authority=[SOA_LINE]),  # MX
    Case("clusterip-cname-query-is-nodata", f"web.{SVC}", RType.CNAME, authority=[SOA_LINE]),
    # -- SRV for ClusterIP Services ----------------------------------------------------------
    Case("srv-named-tcp-port", f"_http._tcp.web.{SVC}", RType.SRV,
         answers=[f"_http._tcp.web.{SVC} 5 SRV 0 100 80 web.{SVC}"],
         additionals=a(f"web.{SVC}", "10.96.0.11")),
    Case("srv-named-udp-port", f"_dns._udp.web.{SVC}", RType.SRV,
         answers=[f"_dns._udp.web.{SVC} 5 SRV 0 100 53 web.{SVC}"],
         additionals=a(f"web.{SVC}", "10.96.0.11")),
    Case("srv-case-insensitive", f"_HTTP._TCP.web.{SVC}", RType.SRV,
         answers=[f"_HTTP._TCP.web.{SVC} 5 SRV 0 100 80 web.{SVC}"],
         additionals=a(f"web.{SVC}", "10.96.0.11")),
    Case("srv-dual-stack-additionals-both-families", f"_http._tcp.dual.{SVC}", RType.SRV,
         answers=[f"_http._tcp.dual.{SVC} 5 SRV 0 100 80 dual.{SVC}"],
         additionals=a(f"dual.{SVC}", "10.96.0.12", "fd00:10:96::12")),
    Case("srv-wrong-protocol-is-nxdomain", f"_http._udp.web.{SVC}", RType.SRV,
         rcode=Rcode.NXDOMAIN, authority=[SOA_LINE]),
    Case("srv-unnamed-port-absent", f"_8080._tcp.web.{SVC}", RType.SRV,
         rcode=Rcode.NXDOMAIN),
    Case("srv-protocol-label-alone-is-nodata", f"_tcp.web.{SVC}", RType.SRV,
         authority=[SOA_LINE]),
    Case("srv-name-asked-for-a-is-nodata", f"_http._tcp.web.{SVC}", RType.A,
         authority=[SOA_LINE]),
    # -- headless Services -------------------------------------------------------------------
    Case("headless-a-ready-endpoints-only", f"db.{SVC}", RType.A,
         answers=a(f"db.{SVC}", "10.244.1.5", "10.244.1.6", "10.244.1.8")),
    Case("headless-hostname", f"db-0.db.{SVC}", RType.A,
         answers=a(f"db-0.db.{SVC}", "10.244.1.5")),
    Case("headless-no-hostname-gets-dashed-ip", f"10-244-1-6.db.{SVC}", RType.A,
         answers=a(f"10-244-1-6.db.{SVC}", "10.244.1.6")),
    Case("headless-nil-ready-counts-as-ready", f"10-244-1-8.db.{SVC}", RType.A,
         answers=a(f"10-244-1-8.db.{SVC}", "10.244.1.8")),
    Case("headless-not-ready-hostname-absent", f"db-2.db.{SVC}", RType.A,
         rcode=Rcode.NXDOMAIN),
    Case("headless-srv-per-endpoint", f"_pg._tcp.db.{SVC}", RType.SRV,
         answers=[f"_pg._tcp.db.{SVC} 5 SRV 0 33 5432 db-0.db.{SVC}",
                  f"_pg._tcp.db.{SVC} 5 SRV 0 33 5432 10-244-1-6.db.{SVC}",
                  f"_pg._tcp.db.{SVC} 5 SRV 0 33 5432 10-244-1-8.db.{SVC}"],
         additionals=[*a(f"db-0.db.{SVC}", "10.244.1.5"),
                      *a(f"10-244-1-6.db.{SVC}", "10.244.1.6"),
                      *a(f"10-244-1-8.db.{SVC}", "10.244.1.8")]),
    Case("headless-srv-port-is-the-endpoint-port", f"_web._tcp.sts.{SVC}", RType.SRV,
         answers=[f"_web._tcp.sts.{SVC} 5 SRV 0 50 8080 sts-0.sts.{SVC}",
                  f"_web._tcp.sts.{SVC} 5 SRV 0 50 8080 sts-1.sts.{SVC}"],
         additionals=[*a(f"sts-0.sts.{SVC}", "10.244.2.5", "fd00:10:244::2:5"),
                      *a(f"sts-1.sts.{SVC}", "10.244.2.6")]),
    Case("headless-srv-unnamed-slice-port-absent", f"_9000._tcp.db.{SVC}", RType.SRV,
         rcode=Rcode.NXDOMAIN),
    Case("headless-without-endpoints-is-nxdomain", f"empty.{SVC}", RType.A,
         rcode=Rcode.NXDOMAIN, authority=[SOA_LINE]),
    Case("headless-without-endpoints-has-no-srv", f"_pg._tcp.empty.{SVC}", RType.SRV,
         rcode=Rcode.NXDOMAIN),
    Case("headless-only-unready-endpoints-is-nxdomain", f"notready.{SVC}", RType.A,
         rcode=Rcode.NXDOMAIN),
    Case("headless-publish-not-ready-addresses", f"pnr.{SVC}", RType.A,
         answers=a(f"pnr.{SVC}", "10.244.4.1")),
    Case("headless-merges-slices-and-dedups", f"sts.{SVC}", RType.A,
         answers=a(f"sts.{SVC}", "10.244.2.5", "10.244.2.6")),
    Case("headless-dual-stack-aaaa", f"sts.{SVC}", RType.AAAA,
         answers=a(f"sts.{SVC}", "fd00:10:244::2:5")),
    Case("headless-dual-stack-hostname-aaaa", f"sts-0.sts.{SVC}", RType.AAAA,
         answers=a(f"sts-0.sts.{SVC}", "fd00:10:244::2:5")),
    Case("clusterip-slices-give-no-hostnames", f"w.web.{SVC}", RType.A,
         rcode=Rcode.NXDOMAIN),
    # -- ExternalName ------------------------------------------------------------------------
    Case("externalname-cname-for-a", f"ext.{SVC}", RType.A,
         answers=[f"ext.{SVC} 5 CNAME example.com."], chase="example.com."),
    Case("externalname-cname-for-any-type", f"ext.{SVC}", RType.SRV,
         answers=[f"ext.{SVC} 5 CNAME example.com."], chase="example.com."),
    Case("externalname-cname-query", f"ext.{SVC}", RType.CNAME,
         answers=[f"ext.{SVC} 5 CNAME example.com."]),
    Case("externalname-in-zone-target-followed", f"alias.{SVC}", RType.A,
         answers=[f"alias.{SVC} 5 CNAME web.{SVC}", *a(f"web.{SVC}", "10.96.0.11")]),
    Case("externalname-loop-is-servfail", f"loop1.{SVC}", RType.A, rcode=Rcode.SERVFAIL,
         answers=[f"loop1.{SVC} 5 CNAME loop2.{SVC}", f"loop2.{SVC} 5 CNAME loop1.{SVC}"] * 4),
    # -- PTR ---------------------------------------------------------------------------------
    Case("ptr-clusterip", "11.0.96.10.in-addr.arpa.", RType.PTR,
         answers=[f"11.0.96.10.in-addr.arpa. 5 PTR web.{SVC}"]),
    Case("ptr-clusterip-ipv6", V6_PTR, RType.PTR, answers=[f"{V6_PTR} 5 PTR dual.{SVC}"]),
    Case("ptr-headless-hostname", "5.1.244.10.in-addr.arpa.", RType.PTR,
         answers=[f"5.1.244.10.in-addr.arpa. 5 PTR db-0.db.{SVC}"]),
    Case("ptr-headless-dashed", "6.1.244.10.in-addr.arpa.", RType.PTR,
         answers=[f"6.1.244.10.in-addr.arpa. 5 PTR 10-244-1-6.db.{SVC}"]),
    Case("ptr-not-ready-endpoint-not-ours", "7.1.244.10.in-addr.arpa.", RType.PTR,
         in_zone=False, rcode=Rcode.REFUSED),
    Case("ptr-unknown-address-not-ours", "99.0.96.10.in-addr.arpa.", RType.PTR,
         in_zone=False, rcode=Rcode.REFUSED),
    Case("ptr-name-asked-for-a-is-nodata-without-soa", "11.0.96.10.in-addr.arpa.", RType.A,
         authority=[]),
    # -- the zone itself ---------------------------------------------------------------------
    Case("dns-version", f"dns-version.{Z}", RType.TXT,
         answers=[f"dns-version.{Z} 5 TXT \"1.0.1\""]),
    Case("apex-soa", Z, RType.SOA, answers=[SOA_LINE]),
    Case("apex-ns-with-kube-dns-address", Z, RType.NS, answers=[f"{Z} 5 NS ns.dns.{Z}"],
         additionals=a(f"ns.dns.{Z}", "10.96.0.10")),
    Case("ns-target", f"ns.dns.{Z}", RType.A, answers=a(f"ns.dns.{Z}", "10.96.0.10")),
    Case("namespace-is-nodata", SVC, RType.A, authority=[SOA_LINE]),
    Case("svc-is-nodata", f"svc.{Z}", RType.A, authority=[SOA_LINE]),
    Case("namespace-of-empty-headless-service-exists", "default.svc.cluster.local.",
         RType.SRV, authority=[SOA_LINE]),
    Case("unknown-namespace-is-nxdomain", f"nope.svc.{Z}", RType.A, rcode=Rcode.NXDOMAIN,
         authority=[SOA_LINE]),
    Case("unknown-service-is-nxdomain", f"nope.{SVC}", RType.A, rcode=Rcode.NXDOMAIN,
         authority=[SOA_LINE]),
    Case("below-a-service-is-nxdomain", f"a.b.web.{SVC}", RType.A, rcode=Rcode.NXDOMAIN),
    Case("unknown-top-label-is-nxdomain", f"nothing.{Z}", RType.A, rcode=Rcode.NXDOMAIN),
    # -- pods (insecure mode) ----------------------------------------------------------------
    Case("pod-a", f"10-244-1-5.default.pod.{Z}", RType.A,
         answers=a(f"10-244-1-5.default.pod.{Z}", "10.244.1.5")),
    Case("pod-ipv6-aaaa", f"fd00-10-244--5.default.pod.{Z}", RType.AAAA,
         answers=a(f"fd00-10-244--5.default.pod.{Z}", "fd00:10:244::5")),
    Case("pod-aaaa-of-ipv4-is-nodata", f"10-244-1-5.default.pod.{Z}", RType.AAAA,
         authority=[SOA_LINE]),
    Case("pod-invalid-address-is-nxdomain", f"10-244-1-999.default.pod.{Z}", RType.A,
         rcode=Rcode.NXDOMAIN),
    Case("pod-non-canonical-address-is-nxdomain", f"010-244-1-5.default.pod.{Z}", RType.A,
         rcode=Rcode.NXDOMAIN),
    Case("pod-namespace-is-nodata", f"default.pod.{Z}", RType.A, authority=[SOA_LINE]),
    Case("pod-deeper-is-nxdomain", f"x.10-244-1-5.default.pod.{Z}", RType.A,
         rcode=Rcode.NXDOMAIN),
    # -- not ours ----------------------------------------------------------------------------
    Case("outside-zone", "example.com.", RType.A, rcode=Rcode.REFUSED, in_zone=False),
    Case("suffix-lookalike-outside-zone", "web.default.svc.notcluster.local.", RType.A,
         rcode=Rcode.REFUSED, in_zone=False),
]


@pytest.fixture(scope="module")
def zone() -> Zone:
    services, slices = world()
    return build_zone(services, slices)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_answer(zone: Zone, case: Case) -> None:
    got = answer(zone, case.qname, case.qtype)
    assert got.rcode == case.rcode
    assert got.in_zone == case.in_zone
    assert [text(r) for r in got.answers] == case.answers
    assert [text(r) for r in got.additionals] == case.additionals
    if case.authority is not None:
        assert [text(r) for r in got.authority] == case.authority
    assert got.chase == case.chase


def test_negative_answers_in_zone_always_carry_the_soa(zone: Zone) -> None:
    for case in CASES:
        got = answer(zone, case.qname, case.qtype)
        if got.in_zone and not got.answers and case.qname.endswith(Z):
            assert [text(r) for r in got.authority] == [SOA_LINE], case.id


def test_only_named_ports_get_srv_records(zone: Zone) -> None:
    srv_owners = sorted(n for n, node in zone.rrsets.items() if RType.SRV in node)
    assert srv_owners == [
        f"_dns-tcp._tcp.kube-dns.kube-system.svc.{Z}", f"_dns._udp.kube-dns.kube-system.svc.{Z}",
        f"_dns._udp.web.{SVC}", f"_http._tcp.dual.{SVC}", f"_http._tcp.v6only.{SVC}",
        f"_http._tcp.web.{SVC}", "_http._tcp.web.other.svc.cluster.local.",
        f"_pg._tcp.db.{SVC}", f"_web._tcp.sts.{SVC}",
    ]


def test_pods_can_be_turned_off() -> None:
    z = build_zone([], [], pods=False)
    assert answer(z, f"10-244-1-5.default.pod.{Z}", RType.A).rcode == Rcode.NXDOMAIN
    assert answer(z, f"pod.{Z}", RType.A).rcode == Rcode.NXDOMAIN


def test_custom_zone_ttl_and_serial() -> None:
    z = build_zone([cluster_ip("ns1", "api", "10.96.0.20")], [], "Corp.Example", ttl=30,
                   serial=42)
    assert z.origin == "corp.example."
    got = answer(z, "api.ns1.svc.corp.example", RType.A)
    assert [text(r) for r in got.answers] == ["api.ns1.svc.corp.example. 30 A 10.96.0.20"]
    soa = answer(z, "corp.example.", RType.SOA).answers[0]
    assert text(soa) == ("corp.example. 30 SOA ns.dns.corp.example. hostmaster.corp.example. "
                         "42 7200 1800 86400 30")
    assert not answer(z, "api.ns1.svc.cluster.local", RType.A).in_zone


@pytest.mark.parametrize("bad", ["", ".", "a..b", ".cluster.local"])
def test_invalid_zone_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        build_zone([], [], bad)


def test_build_zone_does_not_touch_its_inputs() -> None:
    services, slices = world()
    before = copy.deepcopy((services, slices))
    build_zone(services, slices)
    assert (services, slices) == before


def test_empty_zone_has_only_the_apex() -> None:
    z = build_zone([], [])
    assert sorted(z.rrsets) == [Z, f"dns-version.{Z}"]
    assert z.ttl == DEFAULT_TTL
    assert answer(z, f"svc.{Z}", RType.A).rcode == Rcode.NOERROR
    assert answer(z, f"default.svc.{Z}", RType.A).rcode == Rcode.NXDOMAIN


@pytest.mark.parametrize(("service", "reason"), [
    ({"metadata": {"name": "x"}, "spec": {"clusterIP": "10.96.0.1"}}, "no namespace"),
    ({"metadata": {"namespace": "d", "name": "x"}, "spec": {"clusterIP": "not-an-ip"}},
     "bad address"),
    ({"metadata": {"namespace": "d", "name": "x"},
      "spec": {"type": "ExternalName", "externalName": ""}}, "empty externalName"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_malformed_services_are_skipped(service: Obj, reason: str) -> None:
    z = build_zone([service], [])
    assert answer(z, f"x.d.svc.{Z}", RType.A).rcode == Rcode.NXDOMAIN, reason


def test_endpoint_ips_are_canonicalised() -> None:
    svc = headless("default", "h")
    sl = endpoint_slice("default", "h", "h-1", [ep("fd00:10:244:0:0:0:0:5")])
    z = build_zone([svc], [sl])
    got = answer(z, f"h.{SVC}", RType.AAAA)
    assert [text(r) for r in got.answers] == a(f"h.{SVC}", "fd00:10:244::5")
    assert dashed_ip("fd00:10:244::5") == "fd00-10-244--5"
    assert answer(z, f"fd00-10-244--5.h.{SVC}", RType.AAAA).answers


def test_an_ip_behind_two_headless_services_has_two_ptrs() -> None:
    services = [headless("default", "a"), headless("default", "b")]
    slices = [endpoint_slice("default", "a", "a-1", [ep("10.244.7.7", hostname="p")]),
              endpoint_slice("default", "b", "b-1", [ep("10.244.7.7")])]
    got = answer(build_zone(services, slices), "7.7.244.10.in-addr.arpa", RType.PTR)
    assert [text(r) for r in got.answers] == [
        f"7.7.244.10.in-addr.arpa. 5 PTR 10-244-7-7.b.{SVC}",
        f"7.7.244.10.in-addr.arpa. 5 PTR p.a.{SVC}",
    ]


# -- the incremental builder ----------------------------------------------------------------


def _snapshot(z: Zone) -> tuple[dict[str, dict[RType, tuple[object, ...]]], set[str]]:
    return {k: dict(v) for k, v in z.rrsets.items()}, set(z.names)


def _random_objects(rng: random.Random) -> tuple[Obj, list[Obj]]:
    """One random Service in a tiny name space (so changes collide), with its slices."""
    ns = rng.choice(["a", "b"])
    name = rng.choice(["s1", "s2", "s3", "s4"])
    kind = rng.choice(["clusterip", "headless", "external"])
    slices: list[Obj] = []
    if kind == "clusterip":
        ips = [f"10.96.0.{rng.randrange(1, 6)}"]
        if rng.random() < 0.3:
            ips.append(f"fd00:10:96::{rng.randrange(1, 6)}")
        svc = cluster_ip(ns, name, *ips, ports=[port(rng.choice(["", "http", "web"]), 80)])
        if (ns, name) == ("a", "s1") and rng.random() < 0.5:
            svc["metadata"]["namespace"], svc["metadata"]["name"] = "kube-system", "kube-dns"
    elif kind == "headless":
        svc = headless(ns, name, publish_not_ready=rng.random() < 0.2)
        for i in range(rng.randrange(0, 3)):
            eps = [ep(f"10.244.0.{rng.randrange(1, 8)}",
                      hostname=rng.choice(["", "p0", "p1"]),
                      ready=rng.choice([True, False, None]))
                   for _ in range(rng.randrange(0, 4))]
            slices.append(endpoint_slice(ns, name, f"{name}-{i}", eps,
                                         ports=[port(rng.choice(["", "http"]), 8080)],
                                         family="IPv4"))
    else:
        target = rng.choice(["example.com", f"s1.{ns}.svc.cluster.local"])
        svc = external(ns, name, target)
    return svc, slices


@pytest.mark.parametrize("seed", range(20))
def test_incremental_builder_equals_a_fresh_build(seed: int) -> None:
    rng = random.Random(seed)
    services: dict[str, Obj] = {}
    slices: dict[str, list[Obj]] = {}
    builder = ZoneBuilder()
    for step in range(60):
        if services and rng.random() < 0.25:
            key = rng.choice(sorted(services))
            del services[key]
            slices.pop(key, None)
            builder.remove_service(key)
        else:
            svc, svc_slices = _random_objects(rng)
            key = f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
            services[key] = svc
            slices[key] = svc_slices
            builder.set_service(svc, svc_slices)
        got = builder.zone(serial=step)
        want = build_zone(list(services.values()),
                          [s for ss in slices.values() for s in ss], serial=step)
        assert _snapshot(got) == _snapshot(want), f"seed {seed} step {step}"


def test_builder_ignores_slices_of_other_services_and_unknown_removals() -> None:
    builder = ZoneBuilder()
    builder.remove_service("default/never")
    builder.set_service(headless("default", "h"),
                        [endpoint_slice("default", "other", "o-1", [ep("10.244.0.1")])])
    assert answer(builder.zone(), f"h.{SVC}", RType.A).rcode == Rcode.NXDOMAIN
    assert len(builder) == 1


def test_published_zones_are_not_changed_by_later_updates() -> None:
    builder = ZoneBuilder()
    builder.set_service(cluster_ip("default", "web", "10.96.0.11"))
    first = builder.zone()
    builder.remove_service("default/web")
    second = builder.zone()
    assert answer(first, f"web.{SVC}", RType.A).answers
    assert answer(second, f"web.{SVC}", RType.A).rcode == Rcode.NXDOMAIN
    assert second.serial == first.serial + 1
