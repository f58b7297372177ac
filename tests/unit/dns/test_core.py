"""DNSCore, the sans-IO protocol: bytes in, bytes (or an upstream request) out.

Queries are built and replies decoded with dnspython, an independent implementation of the
wire format, so a mistake in how we use dnslib cannot hide behind the same mistake in the test.
"""

from __future__ import annotations

import struct

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from svcnet.dns.records import build_zone
from svcnet.dns.server import Chase, DNSCore, Forward
from tests.unit.dns.world import cluster_ip, endpoint_slice, ep, headless, world

WEB = "web.default.svc.cluster.local."


def core(*, can_forward: bool = False, cache_size: int = 1000) -> DNSCore:
    services, slices = world()
    services.append(headless("default", "big"))
    slices.append(endpoint_slice("default", "big", "big-1",
                                 [ep(f"10.244.100.{i}") for i in range(1, 101)]))
    services.append(headless("default", "mid"))
    slices.append(endpoint_slice("default", "mid", "mid-1",
                                 [ep(f"10.244.101.{i}") for i in range(1, 41)]))
    c = DNSCore("cluster.local", can_forward=can_forward, cache_size=cache_size)
    c.set_zone(build_zone(services, slices))
    return c


def query(name: str, rdtype: str = "A", *, qid: int = 4242, edns: int = -1,
          payload: int = 1232, rdclass: str = "IN") -> dns.message.QueryMessage:
    q = dns.message.make_query(name, rdtype, rdclass, use_edns=edns, payload=payload)
    q.id = qid
    return q


def ask(c: DNSCore, q: dns.message.Message, *, tcp: bool = False) -> dns.message.Message:
    out = c.handle(q.to_wire(), tcp=tcp)
    assert isinstance(out, bytes), out
    return dns.message.from_wire(out)


def addresses(m: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in m.answer for rd in rrset
                  if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA))


# -- answers from the zone ------------------------------------------------------------------


def test_answer_from_the_zone_is_authoritative_and_echoes_id_and_rd() -> None:
    r = ask(core(), query(WEB, qid=777))
    assert r.id == 777
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.QR and r.flags & dns.flags.AA and r.flags & dns.flags.RD
    assert not r.flags & dns.flags.RA  # nobody to recurse to
    assert addresses(r) == ["10.96.0.11"]
    assert r.answer[0].ttl == 5


def test_recursion_available_when_forwarding() -> None:
    assert ask(core(can_forward=True), query(WEB)).flags & dns.flags.RA


def test_nxdomain_carries_the_soa() -> None:
    r = ask(core(), query("nope.default.svc.cluster.local."))
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert r.authority[0].rdtype == dns.rdatatype.SOA
    assert r.flags & dns.flags.AA


def test_srv_answer_has_target_addresses_in_additional() -> None:
    r = ask(core(), query(f"_http._tcp.{WEB}", "SRV"))
    assert [rd.to_text() for rd in r.answer[0]] == [f"0 100 80 {WEB}"]
    assert [(rs.name.to_text(), rd.to_text()) for rs in r.additional for rd in rs] == [
        (WEB, "10.96.0.11")]


def test_question_case_is_preserved_in_answer() -> None:
    r = ask(core(), query("WEB.default.SVC.cluster.local."))
    assert r.answer[0].name.to_text() == "WEB.default.SVC.cluster.local."
    assert r.question[0].name.to_text() == "WEB.default.SVC.cluster.local."


def test_edns_query_gets_opt_back() -> None:
    r = ask(core(), query(WEB, edns=0, payload=4096))
    assert r.edns == 0 and r.payload == 1232


# -- the wire cache -------------------------------------------------------------------------


def test_second_identical_query_is_served_from_cache_with_its_own_id() -> None:
    c = core()
    first = c.handle(query(WEB, qid=1).to_wire())
    second = c.handle(query(WEB, qid=2).to_wire())
    assert isinstance(first, bytes) and isinstance(second, bytes)
    assert c.stats.cache_hits == 1 and c.stats.answered == 1
    assert second[:2] == struct.pack("!H", 2) and first[2:] == second[2:]


def test_set_zone_empties_the_cache() -> None:
    c = core()
    assert addresses(ask(c, query(WEB))) == ["10.96.0.11"]
    c.set_zone(build_zone([cluster_ip("default", "web", "10.96.0.99")], []))
    assert c.cache_len == 0
    assert addresses(ask(c, query(WEB))) == ["10.96.0.99"]


def test_cache_is_bounded() -> None:
    c = core(cache_size=2)
    for name in ("a", "b", "c", "d", "e"):
        ask(c, query(f"{name}.default.svc.cluster.local."))
        assert c.cache_len <= 2


def test_zone_rejects_a_different_origin() -> None:
    with pytest.raises(ValueError):
        DNSCore("cluster.local").set_zone(build_zone([], [], "other.zone"))


# -- malformed and unsupported queries ------------------------------------------------------


@pytest.mark.parametrize("packet", [b"", b"\x12", b"\x12\x34" + b"\x00" * 9],
                         ids=["empty", "one-byte", "short-header"])
def test_packets_shorter_than_a_header_are_dropped(packet: bytes) -> None:
    c = core()
    assert c.handle(packet) is None
    assert c.stats.dropped == 1


def test_responses_are_never_answered() -> None:
    wire = bytearray(query(WEB).to_wire())
    wire[2] |= 0x80  # QR
    assert core().handle(bytes(wire)) is None


@pytest.mark.parametrize("packet", [
    struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0) + b"\x03abc",  # question cut short
    struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0) + b"\xff" * 30,  # label too long
    struct.pack("!HHHHHH", 0xBEEF, 0x0100, 0, 0, 0, 0),  # no question
    struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0)
    + b"\xc0\x0c\x00\x01\x00\x01",  # compression pointer loop
], ids=["truncated-question", "garbage", "no-question", "pointer-loop"])
def test_malformed_queries_get_formerr_with_their_id(packet: bytes) -> None:
    c = core()
    out = c.handle(packet)
    assert isinstance(out, bytes)
    r = dns.message.from_wire(out)
    assert r.id == 0xBEEF and r.rcode() == dns.rcode.FORMERR
    assert r.flags & dns.flags.QR and r.flags & dns.flags.RD


def test_two_questions_get_formerr() -> None:
    q = query(WEB)
    q.question.append(dns.rrset.RRset(dns.name.from_text("other."), dns.rdataclass.IN,
                                      dns.rdatatype.A))
    assert ask(core(), q).rcode() == dns.rcode.FORMERR


def test_two_opt_records_get_formerr() -> None:
    wire = query(WEB, edns=0).to_wire()
    opt = wire[-11:]  # the OPT RR dnspython appended (root name + 10 bytes, no options)
    qid, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", wire)
    twice = struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar + 1) + wire[12:] + opt
    r = dns.message.from_wire(_as_bytes(core().handle(twice)))
    assert r.rcode() == dns.rcode.FORMERR


def _as_bytes(out: object) -> bytes:
    assert isinstance(out, bytes)
    return out


@pytest.mark.parametrize("opcode", [dns.opcode.NOTIFY, dns.opcode.UPDATE, dns.opcode.STATUS])
def test_other_opcodes_get_notimp(opcode: dns.opcode.Opcode) -> None:
    q = query(WEB)
    q.set_opcode(opcode)
    # Read the header by hand: dnspython parses an UPDATE reply by UPDATE's own rules.
    qid, flags = struct.unpack_from("!HH", _as_bytes(core().handle(q.to_wire())))
    assert qid == q.id and flags & 0x8000
    assert flags & 0xF == dns.rcode.NOTIMP
    assert (flags >> 11) & 0xF == opcode


@pytest.mark.parametrize(("rdtype", "rdclass"), [("A", "CH"), ("TXT", "HS"), ("AXFR", "IN"),
                                                 ("IXFR", "IN")])
def test_other_classes_and_zone_transfers_are_refused(rdtype: str, rdclass: str) -> None:
    q = query("cluster.local.", rdtype, rdclass=rdclass)
    r = dns.message.from_wire(_as_bytes(core().handle(q.to_wire())), question_only=True)
    assert r.rcode() == dns.rcode.REFUSED


def test_class_any_is_answered_like_in() -> None:
    assert addresses(ask(core(), query(WEB, rdclass="ANY"))) == ["10.96.0.11"]


def test_edns_version_above_zero_gets_badvers() -> None:
    q = query(WEB, edns=1)
    r = ask(core(), q)
    assert r.rcode() == dns.rcode.BADVERS
    assert r.edns == 0


# -- truncation -----------------------------------------------------------------------------


def test_long_udp_answer_is_truncated_and_tcp_gets_it_whole() -> None:
    c = core()
    r = ask(c, query("big.default.svc.cluster.local.", edns=0))
    assert r.flags & dns.flags.TC and not r.answer
    assert r.edns == 0  # the OPT survives truncation
    full = ask(c, query("big.default.svc.cluster.local.", edns=0), tcp=True)
    assert not full.flags & dns.flags.TC
    assert len(addresses(full)) == 100


def test_udp_limit_is_512_without_edns_and_the_edns_size_with_it() -> None:
    c = core()
    plain = ask(c, query("mid.default.svc.cluster.local."))  # 40 records: ~700 bytes
    assert plain.flags & dns.flags.TC
    bigger = ask(c, query("mid.default.svc.cluster.local.", edns=0, payload=1232))
    assert not bigger.flags & dns.flags.TC and len(addresses(bigger)) == 40
    small = ask(c, query("mid.default.svc.cluster.local.", edns=0, payload=600))
    assert small.flags & dns.flags.TC


# -- no zone yet, and other names -----------------------------------------------------------


def test_cluster_names_get_servfail_until_a_zone_exists_and_it_is_not_cached() -> None:
    c = DNSCore("cluster.local")
    r = ask(c, query(WEB))
    assert r.rcode() == dns.rcode.SERVFAIL and not r.flags & dns.flags.AA
    assert c.cache_len == 0 and c.stats.not_ready == 1
    c.set_zone(build_zone([cluster_ip("default", "web", "10.96.0.11")], []))
    assert addresses(ask(c, query(WEB))) == ["10.96.0.11"]


def test_other_names_get_servfail_at_once_without_upstreams() -> None:
    c = core()
    r = ask(c, query("example.com."))
    assert r.rcode() == dns.rcode.SERVFAIL
    assert c.stats.forwarded == 0


def test_unknown_reverse_names_are_not_ours() -> None:
    assert ask(core(), query("99.0.96.10.in-addr.arpa.", "PTR")).rcode() == dns.rcode.SERVFAIL
    assert isinstance(core(can_forward=True).handle(
        query("99.0.96.10.in-addr.arpa.", "PTR").to_wire()), Forward)


def test_other_names_are_forwarded_and_the_reply_gets_the_client_id_back() -> None:
    c = core(can_forward=True)
    wire = query("example.com.", qid=99).to_wire()
    fwd = c.handle(wire)
    assert isinstance(fwd, Forward) and fwd.query == wire
    upstream = dns.message.make_response(dns.message.from_wire(wire))
    upstream.id = 12345
    upstream.answer.append(dns.rrset.from_text("example.com.", 60, "IN", "A", "192.0.2.1"))
    r = dns.message.from_wire(c.finish_forward(fwd, upstream.to_wire()))
    assert r.id == 99 and addresses(r) == ["192.0.2.1"]
    assert c.cache_len == 0  # upstream answers have their own TTLs: never in our cache


def test_forward_without_answer_is_servfail() -> None:
    c = core(can_forward=True)
    fwd = c.handle(query("example.com.").to_wire())
    assert isinstance(fwd, Forward)
    r = dns.message.from_wire(c.finish_forward(fwd, None))
    assert r.rcode() == dns.rcode.SERVFAIL and c.stats.upstream_failures == 1


def test_cluster_names_are_never_forwarded() -> None:
    c = core(can_forward=True)
    for name in (WEB, "nope.default.svc.cluster.local.", "cluster.local.",
                 "x.y.z.cluster.local."):
        assert isinstance(c.handle(query(name).to_wire()), bytes), name
    assert c.stats.forwarded == 0


# -- ExternalName chasing -------------------------------------------------------------------


def _upstream_reply(chase_wire: bytes, rcode: dns.rcode.Rcode = dns.rcode.NOERROR,
                    *ips: str) -> bytes:
    q = dns.message.from_wire(chase_wire)
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    for ip in ips:
        r.answer.append(dns.rrset.from_text("example.com.", 60, "IN", "A", ip))
    return r.to_wire()


def test_externalname_target_is_chased_upstream() -> None:
    c = core(can_forward=True)
    out = c.handle(query("ext.default.svc.cluster.local.", qid=5).to_wire())
    assert isinstance(out, Chase) and out.target == "example.com."
    up = dns.message.from_wire(c.chase_query(out))
    assert up.question[0].name.to_text() == "example.com." and up.flags & dns.flags.RD
    r = dns.message.from_wire(c.finish_chase(out, _upstream_reply(c.chase_query(out),
                                                                  dns.rcode.NOERROR,
                                                                  "192.0.2.7")))
    assert r.id == 5 and r.rcode() == dns.rcode.NOERROR
    assert [rs.to_text() for rs in r.answer] == [
        "ext.default.svc.cluster.local. 5 IN CNAME example.com.",
        "example.com. 60 IN A 192.0.2.7"]
    assert c.cache_len == 0


def test_externalname_chase_takes_the_upstream_nxdomain() -> None:
    c = core(can_forward=True)
    out = c.handle(query("ext.default.svc.cluster.local.").to_wire())
    assert isinstance(out, Chase)
    r = dns.message.from_wire(c.finish_chase(out, _upstream_reply(c.chase_query(out),
                                                                  dns.rcode.NXDOMAIN)))
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert r.answer[0].rdtype == dns.rdatatype.CNAME


@pytest.mark.parametrize("reply", [None, b"garbage-garbage", "servfail"])
def test_externalname_without_usable_upstream_is_the_cname_alone(reply: object) -> None:
    c = core(can_forward=True)
    out = c.handle(query("ext.default.svc.cluster.local.").to_wire())
    assert isinstance(out, Chase)
    wire = (_upstream_reply(c.chase_query(out), dns.rcode.SERVFAIL) if reply == "servfail"
            else reply)
    assert wire is None or isinstance(wire, bytes)
    r = dns.message.from_wire(c.finish_chase(out, wire))
    assert r.rcode() == dns.rcode.NOERROR
    assert [rs.to_text() for rs in r.answer] == [
        "ext.default.svc.cluster.local. 5 IN CNAME example.com."]


def test_externalname_without_upstreams_is_the_cname_alone_and_cached() -> None:
    c = core()
    r = ask(c, query("ext.default.svc.cluster.local."))
    assert [rs.rdtype for rs in r.answer] == [dns.rdatatype.CNAME]
    assert c.cache_len == 1
