"""DNSServer on real loopback sockets, queried by dnspython (queries and its stub resolver).

Everything listens on 127.0.0.1 with kernel-chosen ports: the server under test, and a scripted
:class:`FakeUpstream` for forwarding. Timing assertions are loose (this box is shared), but far
apart enough to tell "at once" from "after the timeout".
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.asyncresolver
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from svcnet.dns.records import build_zone
from svcnet.dns.server import DNSServer, parse_listen, parse_resolv_conf, read_resolv_conf
from tests.unit.dns.fakeupstream import FakeUpstream
from tests.unit.dns.world import cluster_ip, endpoint_slice, ep, headless, world

WEB = "web.default.svc.cluster.local."
HOST = "127.0.0.1"


async def start(upstreams: list[tuple[str, int]] | None = None, *,
                timeout: float = 1.0) -> DNSServer:
    server = DNSServer.create("cluster.local", upstreams or [], forward_timeout=timeout)
    services, slices = world()
    services.append(headless("default", "big"))
    slices.append(endpoint_slice("default", "big", "big-1",
                                 [ep(f"10.244.100.{i}") for i in range(1, 101)]))
    server.set_zone(build_zone(services, slices))
    await server.start(HOST, 0)
    return server


@pytest.fixture
async def server() -> AsyncIterator[DNSServer]:
    s = await start()
    yield s
    await s.close()


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    u = FakeUpstream()
    await u.start()
    yield u
    await u.close()


@pytest.fixture
async def forwarding(upstream: FakeUpstream) -> AsyncIterator[DNSServer]:
    s = await start([upstream.address])
    yield s
    await s.close()


async def udp(server: DNSServer, name: str, rdtype: str = "A") -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    return await dns.asyncquery.udp(q, HOST, port=server.address[1], timeout=3)


async def tcp(server: DNSServer, name: str, rdtype: str = "A") -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    return await dns.asyncquery.tcp(q, HOST, port=server.address[1], timeout=3)


def addresses(m: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in m.answer for rd in rrset
                  if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA))


def stub(server: DNSServer, namespace: str = "default") -> dns.asyncresolver.Resolver:
    """A stub resolver configured like a pod's resolv.conf (ClusterFirst, ndots:5)."""
    r = dns.asyncresolver.Resolver(configure=False)
    r.nameservers = [HOST]
    r.port = server.address[1]
    r.search = [dns.name.from_text(d) for d in
                (f"{namespace}.svc.cluster.local", "svc.cluster.local", "cluster.local")]
    r.ndots = 5
    r.use_search_by_default = True
    r.lifetime = 3
    r.cache = None
    return r


# -- serving the zone -----------------------------------------------------------------------


async def test_udp_and_tcp_answer_the_same(server: DNSServer) -> None:
    for ask in (udp, tcp):
        r = await ask(server, WEB)
        assert r.rcode() == dns.rcode.NOERROR and addresses(r) == ["10.96.0.11"]
        assert r.flags & dns.flags.AA


async def test_one_tcp_connection_carries_several_queries(server: DNSServer) -> None:
    reader, writer = await asyncio.open_connection(HOST, server.address[1])
    try:
        for i, name in enumerate([WEB, "dual.default.svc.cluster.local.", WEB]):
            q = dns.message.make_query(name, "A")
            q.id = 100 + i
            wire = q.to_wire()
            writer.write(len(wire).to_bytes(2, "big") + wire)
        await writer.drain()
        got = []
        for _ in range(3):
            size = int.from_bytes(await reader.readexactly(2), "big")
            r = dns.message.from_wire(await reader.readexactly(size))
            got.append((r.id, addresses(r)))
        assert got == [(100, ["10.96.0.11"]), (101, ["10.96.0.12"]), (102, ["10.96.0.11"])]
    finally:
        writer.close()
        await writer.wait_closed()


async def test_stub_resolver_with_pod_search_path(server: DNSServer) -> None:
    r = stub(server)
    answer = await r.resolve("web", "A")
    assert [rd.to_text() for rd in answer] == ["10.96.0.11"]
    assert answer.qname.to_text() == WEB
    other = await r.resolve("web.other", "A")  # <svc>.<ns> via the svc.<zone> search entry
    assert [rd.to_text() for rd in other] == ["10.96.1.11"]
    srv = await r.resolve("_http._tcp.web", "SRV")
    assert [rd.to_text() for rd in srv] == [f"0 100 80 {WEB}"]
    ptr = await r.resolve_address("10.96.0.11")
    assert [rd.to_text() for rd in ptr] == [WEB]
    with pytest.raises(dns.resolver.NXDOMAIN):
        await r.resolve("nope.default.svc.cluster.local.", "A")
    # A short name missing everywhere ends with the bare name, which goes upstream: without
    # upstreams that is SERVFAIL, and the stub reports that no server could answer.
    with pytest.raises(dns.resolver.NoNameservers):
        await r.resolve("nope", "A")
    with pytest.raises(dns.resolver.NoAnswer):
        await r.resolve("web", "AAAA")


async def test_stub_resolver_falls_back_to_tcp_for_long_answers(server: DNSServer) -> None:
    r = stub(server)
    answer = await r.resolve("big", "A")  # 100 records: truncated over UDP, whole over TCP
    assert len(answer) == 100
    assert server.core.stats.truncated >= 1


async def test_malformed_udp_packet_gets_formerr(server: DNSServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, server.address)
        await loop.sock_sendall(sock, struct.pack("!HHHHHH", 0xABCD, 0x0100, 1, 0, 0, 0)
                                + b"\x05ab")
        data = await asyncio.wait_for(loop.sock_recv(sock, 512), 3)
    r = dns.message.from_wire(data)
    assert r.id == 0xABCD and r.rcode() == dns.rcode.FORMERR


async def test_malformed_tcp_message_gets_formerr(server: DNSServer) -> None:
    reader, writer = await asyncio.open_connection(HOST, server.address[1])
    try:
        bad = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\xff\xff"
        writer.write(len(bad).to_bytes(2, "big") + bad)
        await writer.drain()
        size = int.from_bytes(await reader.readexactly(2), "big")
        r = dns.message.from_wire(await reader.readexactly(size))
        assert r.id == 0x1234 and r.rcode() == dns.rcode.FORMERR
    finally:
        writer.close()
        await writer.wait_closed()


async def test_new_zone_is_served_at_once_despite_the_cache(server: DNSServer) -> None:
    assert addresses(await udp(server, WEB)) == ["10.96.0.11"]
    assert addresses(await udp(server, WEB)) == ["10.96.0.11"]
    assert server.core.stats.cache_hits >= 1
    server.set_zone(build_zone([cluster_ip("default", "web", "10.96.0.77")], []))
    assert addresses(await udp(server, WEB)) == ["10.96.0.77"]
    assert addresses(await tcp(server, WEB)) == ["10.96.0.77"]


async def test_other_names_fail_at_once_without_upstreams(server: DNSServer) -> None:
    started = time.monotonic()
    r = await udp(server, "example.com.")
    assert r.rcode() == dns.rcode.SERVFAIL
    assert time.monotonic() - started < 0.5


async def test_close_ends_idle_tcp_connections() -> None:
    s = await start()
    reader, writer = await asyncio.open_connection(HOST, s.address[1])
    try:
        await s.close()
        assert await asyncio.wait_for(reader.read(), 3) == b""  # EOF: the server hung up
    finally:
        writer.close()
        await writer.wait_closed()


async def test_idle_tcp_connections_time_out() -> None:
    s = await start()
    s.tcp_idle_timeout = 0.1
    try:
        reader, writer = await asyncio.open_connection(HOST, s.address[1])
        assert await asyncio.wait_for(reader.read(), 3) == b""
        writer.close()
        await writer.wait_closed()
    finally:
        await s.close()


# -- forwarding -----------------------------------------------------------------------------


async def test_other_names_are_forwarded(forwarding: DNSServer,
                                         upstream: FakeUpstream) -> None:
    q = dns.message.make_query("example.com.", "A")
    r = await dns.asyncquery.udp(q, HOST, port=forwarding.address[1], timeout=3)
    assert r.id == q.id and addresses(r) == ["192.0.2.1"]
    assert not r.flags & dns.flags.AA  # upstream's reply, passed through with the client's ID
    assert [(t, m.question[0].name.to_text()) for t, m in upstream.seen] == [
        ("udp", "example.com.")]
    nx = await udp(forwarding, "nothing.example.")
    assert nx.rcode() == dns.rcode.NXDOMAIN


async def test_cluster_names_never_reach_upstream(forwarding: DNSServer,
                                                  upstream: FakeUpstream) -> None:
    for name in (WEB, "nope.default.svc.cluster.local.", "cluster.local.",
                 "11.0.96.10.in-addr.arpa."):
        await udp(forwarding, name)
    assert upstream.seen == []


async def test_unknown_reverse_names_fall_through_to_upstream(
        forwarding: DNSServer, upstream: FakeUpstream) -> None:
    r = await udp(forwarding, "99.0.96.10.in-addr.arpa.", "PTR")
    assert r.rcode() == dns.rcode.NXDOMAIN  # the fake upstream's answer
    assert len(upstream.seen) == 1


async def test_silent_upstream_gives_servfail_after_the_timeout(upstream: FakeUpstream) -> None:
    upstream.silent = True
    s = await start([upstream.address], timeout=0.3)
    try:
        started = time.monotonic()
        r = await udp(s, "example.com.")
        elapsed = time.monotonic() - started
        assert r.rcode() == dns.rcode.SERVFAIL
        assert 0.25 <= elapsed < 2.0
    finally:
        await s.close()


async def test_dead_upstream_is_skipped_for_the_next(upstream: FakeUpstream) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        dead = sock.getsockname()  # nothing listens here once the socket is closed
    s = await start([dead, upstream.address], timeout=2.0)
    try:
        assert addresses(await udp(s, "example.com.")) == ["192.0.2.1"]
    finally:
        await s.close()


async def test_tcp_client_gets_upstream_answer_refetched_over_tcp(
        forwarding: DNSServer, upstream: FakeUpstream) -> None:
    upstream.truncate_udp = True
    r = await tcp(forwarding, "example.com.")
    assert addresses(r) == ["192.0.2.1"] and not r.flags & dns.flags.TC
    assert [t for t, _ in upstream.seen] == ["udp", "tcp"]
    # A UDP client gets the truncated answer as it is, and retries over TCP itself (another
    # name: example.com's whole answer is in the forward cache now).
    upstream.records["other.example."] = ["192.0.2.2"]
    upstream.seen.clear()
    truncated = await udp(forwarding, "other.example.")
    assert truncated.flags & dns.flags.TC
    # A truncated answer is not cached: the next UDP query goes upstream again.
    await udp(forwarding, "other.example.")
    assert [t for t, _ in upstream.seen] == ["udp", "udp"]


async def test_forwarded_answers_are_cached_for_their_ttl(forwarding: DNSServer,
                                                         upstream: FakeUpstream) -> None:
    first = await udp(forwarding, "example.com.")
    again = await tcp(forwarding, "example.com.")
    assert addresses(first) == addresses(again) == ["192.0.2.1"]
    assert len(upstream.seen) == 1  # the second came from the cache, over the other transport
    assert again.answer[0].ttl <= 60
    upstream.silent = True  # cached answers do not need the upstream
    assert addresses(await udp(forwarding, "example.com.")) == ["192.0.2.1"]


async def test_externalname_is_resolved_through_upstream(forwarding: DNSServer,
                                                         upstream: FakeUpstream) -> None:
    answer = await stub(forwarding).resolve("ext", "A")
    assert [rd.to_text() for rd in answer] == ["192.0.2.1"]
    assert answer.canonical_name.to_text() == "example.com."
    assert [m.question[0].name.to_text() for _, m in upstream.seen] == ["example.com."]


async def test_server_never_forwards_to_itself() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    s = DNSServer.create("cluster.local", [(HOST, port)])
    try:
        await s.start(HOST, port)
        assert s.upstream.servers == [] and not s.core.can_forward
        r = await udp(s, "example.com.")
        assert r.rcode() == dns.rcode.SERVFAIL
    finally:
        await s.close()


# -- configuration helpers ------------------------------------------------------------------


def test_parse_resolv_conf() -> None:
    text = """# generated
search default.svc.cluster.local svc.cluster.local
nameserver 10.0.0.2
nameserver   2001:db8::53   # comment
nameserver fe80::1%eth0
nameserver not-an-ip
options ndots:5
;nameserver 10.9.9.9
"""
    assert parse_resolv_conf(text) == [("10.0.0.2", 53), ("2001:db8::53", 53),
                                       ("fe80::1%eth0", 53)]


def test_read_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 192.0.2.53\n")
    assert read_resolv_conf(conf) == [("192.0.2.53", 53)]
    assert read_resolv_conf(None) == []
    assert read_resolv_conf(tmp_path / "missing") == []


@pytest.mark.parametrize(("listen", "want"), [
    ("0.0.0.0:53", ("0.0.0.0", 53)),
    ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("[::1]:5353", ("::1", 5353)),
    ("[::]", ("::", 53)),
    ("::", ("::", 53)),
    ("10.96.0.10", ("10.96.0.10", 53)),
    (":53", ("0.0.0.0", 53)),
])
def test_parse_listen(listen: str, want: tuple[str, int]) -> None:
    assert parse_listen(listen) == want


async def test_tcp_cluster_answers_are_not_held_up_by_a_slow_forward(
        upstream: FakeUpstream) -> None:
    upstream.silent = True
    s = await start([upstream.address], timeout=0.5)
    reader, writer = await asyncio.open_connection(HOST, s.address[1])
    try:
        for qid, name in ((1, "example.com."), (2, WEB)):
            q = dns.message.make_query(name, "A")
            q.id = qid
            wire = q.to_wire()
            writer.write(len(wire).to_bytes(2, "big") + wire)
        await writer.drain()
        got = []
        for _ in range(2):
            size = int.from_bytes(await reader.readexactly(2), "big")
            r = dns.message.from_wire(await reader.readexactly(size))
            got.append((r.id, dns.rcode.to_text(r.rcode())))
        # The cluster name first; the forward ends in SERVFAIL when the upstream times out.
        assert got == [(2, "NOERROR"), (1, "SERVFAIL")]
    finally:
        writer.close()
        await writer.wait_closed()
        await s.close()


async def test_tcp_answers_forwards_still_in_flight_after_the_client_half_closes(
        forwarding: DNSServer) -> None:
    reader, writer = await asyncio.open_connection(HOST, forwarding.address[1])
    try:
        wire = dns.message.make_query("example.com.", "A").to_wire()
        writer.write(len(wire).to_bytes(2, "big") + wire)
        writer.write_eof()
        size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 3), "big")
        r = dns.message.from_wire(await reader.readexactly(size))
        assert addresses(r) == ["192.0.2.1"]
    finally:
        writer.close()
        await writer.wait_closed()


async def test_close_while_forwards_are_in_flight(upstream: FakeUpstream) -> None:
    upstream.silent = True
    s = await start([upstream.address], timeout=30)
    reader, writer = await asyncio.open_connection(HOST, s.address[1])
    try:
        wire = dns.message.make_query("example.com.", "A").to_wire()
        writer.write(len(wire).to_bytes(2, "big") + wire)
        await writer.drain()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(wire, s.address)
            await until_seen(upstream, 2)
        started = time.monotonic()
        await s.close()
        assert time.monotonic() - started < 2
        assert await asyncio.wait_for(reader.read(), 3) == b""
    finally:
        writer.close()
        await writer.wait_closed()


async def until_seen(upstream: FakeUpstream, count: int) -> None:
    for _ in range(300):
        if len(upstream.seen) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"upstream saw {len(upstream.seen)} queries, wanted {count}")
