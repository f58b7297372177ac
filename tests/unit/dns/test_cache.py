"""The forward cache (svcnet/dns/cache.py): TTLs honoured and aged, negative caching by SOA,
failures never kept, bounded; and cluster DNS answering from it."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from svcnet.dns.cache import MAX_TTL, ForwardCache, cache_ttl
from svcnet.dns.server import DNSCore, Forward


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def query(name: str = "example.com.", rdtype: str = "A", *, qid: int = 1) -> bytes:
    q = dns.message.make_query(name, rdtype)
    q.id = qid
    return q.to_wire()


def reply(wire: bytes, *, answers: list[tuple[str, int, str, str]] = (),  # type: ignore[assignment]
          soa: tuple[int, int] | None = None, rcode: dns.rcode.Rcode = dns.rcode.NOERROR,
          tc: bool = False) -> bytes:
    r = dns.message.make_response(dns.message.from_wire(wire))
    for name, ttl, rdtype, data in answers:
        r.answer.append(dns.rrset.from_text(name, ttl, "IN", rdtype, data))
    if soa is not None:
        ttl, minimum = soa
        r.authority.append(dns.rrset.from_text(
            "com.", ttl, "IN", "SOA", f"ns.com. admin.com. 1 7200 900 1209600 {minimum}"))
    r.set_rcode(rcode)
    if tc:
        r.flags |= dns.flags.TC
    return r.to_wire()


def ttls(wire: bytes) -> list[int]:
    m = dns.message.from_wire(wire)
    return [rrset.ttl for section in (m.answer, m.authority) for rrset in section]


@pytest.mark.parametrize(("kwargs", "want"), [
    ({"answers": [("example.com.", 20, "A", "192.0.2.1"),
                  ("example.com.", 9, "A", "192.0.2.2")]}, 9),  # the smallest TTL
    ({"answers": [("example.com.", 300, "CNAME", "b.example."),
                  ("b.example.", 12, "A", "192.0.2.2")]}, 12),
    ({"answers": [("example.com.", 86400, "A", "192.0.2.1")]}, MAX_TTL),
    ({"answers": [("example.com.", 0, "A", "192.0.2.1")]}, 0),
    ({"rcode": dns.rcode.NXDOMAIN, "soa": (900, 25)}, 25),  # min(SOA TTL, MINIMUM)
    ({"rcode": dns.rcode.NXDOMAIN, "soa": (7, 300)}, 7),
    ({"soa": (86400, 86400)}, MAX_TTL),  # NODATA
    ({"rcode": dns.rcode.NXDOMAIN}, 0),  # no SOA: not cached
    ({"rcode": dns.rcode.SERVFAIL, "soa": (60, 60)}, 0),
    ({"rcode": dns.rcode.REFUSED}, 0),
    ({"answers": [("example.com.", 300, "A", "192.0.2.1")], "tc": True}, 0),
])
def test_cache_ttl(kwargs: dict[str, object], want: int) -> None:
    assert cache_ttl(reply(query(), **kwargs)) == want  # type: ignore[arg-type]


def test_malformed_replies_are_not_cached() -> None:
    good = reply(query(), answers=[("example.com.", 300, "A", "192.0.2.1")])
    assert cache_ttl(good[:-3]) == 0 and cache_ttl(b"\x00" * 5) == 0


def test_hit_carries_the_clients_id_and_aged_ttls() -> None:
    clock = Clock()
    cache = ForwardCache(now=clock, max_ttl=3600)
    q = query(qid=1)
    assert cache.put(q, reply(q, answers=[("example.com.", 300, "CNAME", "b.example."),
                                          ("b.example.", 60, "A", "192.0.2.2")]))
    clock.t += 20.7
    hit = cache.get(query(qid=77))
    assert hit is not None
    m = dns.message.from_wire(hit)
    # Aged by 20 s, and none above what the entry has left (39.3 s of the smallest TTL).
    assert m.id == 77 and ttls(hit) == [39, 39]
    clock.t += 40  # past the smallest TTL: gone
    assert cache.get(query(qid=78)) is None and len(cache) == 0


def test_ttls_are_capped_to_what_the_cache_keeps() -> None:
    clock = Clock()
    cache = ForwardCache(now=clock)
    q = query()
    cache.put(q, reply(q, answers=[("example.com.", 3600, "A", "192.0.2.1")]))
    hit = cache.get(q)
    assert hit is not None and ttls(hit) == [MAX_TTL]
    clock.t += MAX_TTL
    assert cache.get(q) is None


def test_key_is_the_question_with_its_flags() -> None:
    cache = ForwardCache(now=Clock())
    q = query()
    cache.put(q, reply(q, answers=[("example.com.", 300, "A", "192.0.2.1")]))
    assert cache.get(query("example.com.", "AAAA")) is None
    assert cache.get(query("other.example.")) is None
    no_rd = dns.message.make_query("example.com.", "A")
    no_rd.flags &= ~dns.flags.RD
    assert cache.get(no_rd.to_wire()) is None
    assert cache.get(query(qid=9)) is not None


def test_failures_are_not_cached() -> None:
    cache = ForwardCache(now=Clock())
    q = query()
    assert not cache.put(q, reply(q, rcode=dns.rcode.SERVFAIL))
    assert cache.get(q) is None


def test_bounded_least_recently_used_goes_first() -> None:
    cache = ForwardCache(2, now=Clock())
    qs = [query(f"n{i}.example.") for i in range(3)]
    for q in qs[:2]:
        cache.put(q, reply(q, answers=[(dns.message.from_wire(q).question[0].name.to_text(),
                                        300, "A", "192.0.2.1")]))
    assert cache.get(qs[0]) is not None  # n0 is now the most recently used
    cache.put(qs[2], reply(qs[2], answers=[("n2.example.", 300, "A", "192.0.2.3")]))
    assert len(cache) == 2
    assert cache.get(qs[1]) is None and cache.get(qs[0]) is not None


def test_capacity_zero_turns_it_off() -> None:
    cache = ForwardCache(0, now=Clock())
    q = query()
    assert not cache.put(q, reply(q, answers=[("example.com.", 300, "A", "192.0.2.1")]))


def test_core_answers_repeated_forwards_from_the_cache() -> None:
    clock = Clock()
    core = DNSCore("cluster.local", can_forward=True, monotonic=clock)
    q1 = query(qid=5)
    out = core.handle(q1)
    assert isinstance(out, Forward)
    core.finish_forward(out, reply(q1, answers=[("example.com.", 25, "A", "192.0.2.1")]))
    clock.t += 10
    again = core.handle(query(qid=6))
    assert isinstance(again, bytes)
    m = dns.message.from_wire(again)
    assert m.id == 6 and ttls(again) == [15]
    assert (core.stats.forwarded, core.stats.forward_cache_hits) == (1, 1)
    # An upstream failure is SERVFAIL now, and asked again next time.
    q2 = query("down.example.", qid=7)
    fwd = core.handle(q2)
    assert isinstance(fwd, Forward)
    failed = core.finish_forward(fwd, None)
    assert dns.message.from_wire(failed).rcode() == dns.rcode.SERVFAIL
    assert isinstance(core.handle(q2), Forward)
