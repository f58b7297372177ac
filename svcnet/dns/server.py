"""The cluster DNS server: a sans-IO message core and a thin asyncio UDP/TCP shell around it.

Theory of operation
-------------------
:class:`DNSCore` is the protocol, with no sockets: bytes of a query in, and out either the bytes
of the reply, ``None`` (drop it), or a request for upstream help (:class:`Forward`,
:class:`Chase`) that the shell performs and hands back to :meth:`DNSCore.finish_forward` /
:meth:`DNSCore.finish_chase`. It decides, in this order:

1. **Wire cache.** The reply to a query is a function of the zone and the query's bytes after
   the 2-byte ID (flags, question, EDNS options), so replies for the zone are cached under
   ``query[2:]`` and sent as ``query[:2] + cached``, without parsing anything: measured 31k qps
   against 5k for a parse-and-build per query (docs/MEASURED.md §4). The cache holds only answers
   computed from the zone, is emptied whenever the zone changes (:meth:`DNSCore.set_zone`), and
   is emptied when full (cheap, and keeps a flood of random names from growing it forever).
2. **Malformed input.** Fewer than 12 bytes: drop (there is no ID to answer to). A packet with QR
   set is a response, not a query: drop (answering responses makes reflection loops). Anything
   dnslib cannot parse, a question count other than one, or two OPT records: FORMERR, echoing
   the ID and opcode (RFC 1035 §4.1.1, RFC 6891 §6.1.1).
3. **Unsupported requests.** Opcode other than QUERY: NOTIMP. Class other than IN/ANY, and zone
   transfers (AXFR/IXFR): REFUSED. EDNS version above 0: BADVERS (RFC 6891 §6.1.3).
4. **The cluster zone** (names under ``<zone>``, and the reverse names of our ClusterIPs and
   headless endpoints): answered from :func:`~svcnet.dns.records.answer`, authoritatively (AA),
   never forwarded. Before the first zone exists (informers not yet synced) such queries get
   SERVFAIL, uncached: an NXDOMAIN then would be cached by clients for names that do exist.
   An ExternalName whose target is outside the zone yields :class:`Chase`: the shell asks
   upstream for the target and :meth:`DNSCore.finish_chase` appends what it says, because stub
   resolvers (glibc) do not follow a bare CNAME themselves. Without upstreams, or if upstream
   fails, the CNAME alone is the answer.
5. **Everything else** is answered from the forward cache (:mod:`~svcnet.dns.cache`: upstream
   replies kept for their TTLs, the TTLs aged on the way out) or forwarded (:class:`Forward`)
   to the upstream resolvers if there are any; with none, SERVFAIL at once rather than making
   clients wait for a timeout. When no upstream answers in time the reply is SERVFAIL too
   (never cached, so the next query asks again).

Replies over UDP are limited to 512 bytes, or the client's EDNS buffer size capped at 1232 (the
2020 DNS flag day's fragmentation-safe size); a longer reply goes out truncated (TC set, the
question only) and the client retries over TCP, where messages are framed with a 2-byte length
(RFC 1035 §4.2.2, RFC 7766).

The shell (:class:`DNSServer`) owns one UDP socket and one TCP listener on the same address.
UDP queries answered from the zone are handled inline in ``datagram_received``; forwarding runs
in tasks. A TCP connection's queries are read one after another (with an idle timeout); those
answered from the zone are answered at once, forwarded ones concurrently, so a slow upstream
never holds up cluster names queued behind it on the same connection. The
:class:`Upstream` client forwards over UDP with a fresh random ID from a fresh socket (random
source port), tries each resolver in turn within a short overall deadline, and repeats over TCP
when the answer comes back truncated to a TCP client.

Why this module is long: The sans-IO DNS core and its asyncio transports share the wire cache
and the counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import dnslib

from svcnet.dns.cache import DEFAULT_CAPACITY as DEFAULT_FORWARD_CACHE_SIZE, ForwardCache
from svcnet.dns.records import (
    AAAA,
    CNAME,
    NS,
    PTR,
    SOA,
    SRV,
    TXT,
    A,
    Answer,
    Rcode,
    Record,
    Zone,
    answer,
    canonical_name,
)
from svcnet.util import resolvconf

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_FORWARD_TIMEOUT",
    "Chase",
    "DNSCore",
    "DNSServer",
    "Forward",
    "Stats",
    "Upstream",
    "parse_listen",
    "parse_resolv_conf",
    "read_resolv_conf",
]

log = logging.getLogger(__name__)

HEADER: Final = struct.Struct("!HHHHHH")
QR: Final = 0x8000
TC: Final = 0x0200
RD: Final = 0x0100
MIN_UDP: Final = 512
MAX_UDP: Final = 1232
"""Our EDNS buffer size, and the cap on any UDP reply (DNS flag day 2020)."""
DEFAULT_CACHE_SIZE: Final = 20_000
DEFAULT_FORWARD_TIMEOUT: Final = 2.0
"""Seconds for one forwarded query, all upstreams included. Stub resolvers retry after 5 s
(glibc's default), so giving up before that leaves them a chance to retry."""
TCP_IDLE_TIMEOUT: Final = 10.0
MAX_TCP_IN_FLIGHT: Final = 16
"""Upstream queries one TCP connection may have outstanding before we stop reading it."""
CLASS_IN: Final = 1
CLASS_ANY: Final = 255
QTYPE_OPT: Final = 41
ZONE_TRANSFERS: Final = frozenset({251, 252})  # IXFR, AXFR
BADVERS: Final = 16

Address = tuple[str, int]


# -- the sans-IO core -----------------------------------------------------------------------


@dataclass(slots=True)
class Stats:
    """Counters for tests, benchmarks and (later) metrics."""

    queries: int = 0
    cache_hits: int = 0
    answered: int = 0
    """Answered from the zone (cache misses)."""
    forwarded: int = 0
    """Sent upstream (forward-cache misses)."""
    forward_cache_hits: int = 0
    chased: int = 0
    upstream_failures: int = 0
    formerr: int = 0
    dropped: int = 0
    not_ready: int = 0
    """In-zone queries refused (SERVFAIL) because no zone was loaded yet."""
    truncated: int = 0


@dataclass(frozen=True, slots=True)
class _Query:
    """A parsed query and what the reply to it must respect."""

    record: Any  # dnslib.DNSRecord
    edns: bool
    udp_limit: int


@dataclass(frozen=True, slots=True)
class Forward:
    """Send ``query`` (the client's bytes) upstream, then call :meth:`DNSCore.finish_forward`."""

    query: bytes
    tcp: bool
    udp_limit: int
    parsed: _Query = field(repr=False)


@dataclass(frozen=True, slots=True)
class Chase:
    """Resolve ``target``/``qtype`` upstream (see :meth:`DNSCore.chase_query`) to finish a CNAME
    answer, then call :meth:`DNSCore.finish_chase`."""

    target: str
    qtype: int
    answer: Answer
    tcp: bool
    parsed: _Query = field(repr=False)


Outcome = bytes | Forward | Chase | None


def _to_rr(record: Record, owner: Any = None) -> Any:
    """A dnslib RR for ``record``; ``owner`` (a DNSLabel) replaces the name when given."""
    d = record.data
    rdata: Any
    match d:
        case A():
            rdata = dnslib.A(d.address)
        case AAAA():
            rdata = dnslib.AAAA(d.address)
        case CNAME():
            rdata = dnslib.CNAME(d.target)
        case PTR():
            rdata = dnslib.PTR(d.target)
        case NS():
            rdata = dnslib.NS(d.target)
        case SRV():
            rdata = dnslib.SRV(d.priority, d.weight, d.port, d.target)
        case TXT():
            rdata = dnslib.TXT(list(d.strings))
        case SOA():
            rdata = dnslib.SOA(d.mname, d.rname,
                               (d.serial, d.refresh, d.retry, d.expire, d.minimum))
    return dnslib.RR(owner if owner is not None else record.name, int(d.rtype),
                     ttl=record.ttl, rdata=rdata)


def _formerr(data: bytes) -> bytes:
    """FORMERR for a query we could not parse: its ID and opcode, no sections."""
    qid, flags = struct.unpack_from("!HH", data)
    return HEADER.pack(qid, QR | (flags & 0x7800) | (flags & RD) | Rcode.FORMERR, 0, 0, 0, 0)


def _truncate(reply: bytes, limit: int) -> bytes:
    """``reply`` if it fits ``limit``, else its header and question with TC set (and its OPT),
    so the client retries over TCP."""
    if len(reply) <= limit:
        return reply
    record = dnslib.DNSRecord.parse(reply)
    short = dnslib.DNSRecord(dnslib.DNSHeader(id=record.header.id, bitmap=record.header.bitmap,
                                              qr=1), q=record.q)
    short.header.tc = 1
    for rr in record.ar:
        if rr.rtype == QTYPE_OPT:
            short.add_ar(rr)
    packed = bytes(short.pack())
    return packed


class DNSCore:
    """The DNS protocol over a :class:`~svcnet.dns.records.Zone`; no I/O (module doc)."""

    def __init__(self, origin: str, *, zone: Zone | None = None, can_forward: bool = False,
                 cache_size: int = DEFAULT_CACHE_SIZE,
                 forward_cache_size: int = DEFAULT_FORWARD_CACHE_SIZE,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.origin = canonical_name(origin)
        self.can_forward = can_forward
        self.cache_size = cache_size
        self.forward_cache = ForwardCache(forward_cache_size, now=monotonic)
        """Upstream answers, kept for their TTLs (svcnet/dns/cache.py)."""
        self.stats = Stats()
        self._cache: dict[bytes, tuple[bytes, bytes]] = {}
        """query[2:] → (reply[2:] for TCP, reply[2:] for UDP, truncated if need be)."""
        self._zone: Zone | None = None
        if zone is not None:
            self.set_zone(zone)

    @property
    def zone(self) -> Zone | None:
        return self._zone

    def set_zone(self, zone: Zone) -> None:
        """Serve ``zone`` from now on. Every cached reply may be stale, so all go."""
        if zone.origin != self.origin:
            raise ValueError(f"zone {zone.origin} is not {self.origin}")
        self._zone = zone
        self._cache.clear()

    @property
    def cache_len(self) -> int:
        return len(self._cache)

    # -- the one entry point ----------------------------------------------------------------

    def handle(self, data: bytes, *, tcp: bool = False) -> Outcome:
        """What to do with one query message (module doc)."""
        self.stats.queries += 1
        cached = self._cache.get(data[2:])
        if cached is not None:
            self.stats.cache_hits += 1
            return data[:2] + cached[0 if tcp else 1]
        if len(data) < HEADER.size or data[2] & 0x80:
            self.stats.dropped += 1
            return None
        parsed = self._parse(data)
        if parsed is None:
            self.stats.formerr += 1
            return _formerr(data)
        if isinstance(parsed, bytes):
            return parsed
        q = parsed.record
        qname = str(q.q.qname)
        name = qname.lower()
        in_cluster_zone = name == self.origin or name.endswith("." + self.origin)
        zone = self._zone
        if zone is None:
            if in_cluster_zone:
                self.stats.not_ready += 1
                return self._fit(self._reply(parsed, Rcode.SERVFAIL), parsed, tcp)
            return self._forward(data, parsed, tcp)
        if not zone.covers(name):
            return self._forward(data, parsed, tcp)
        result = answer(zone, qname, q.q.qtype)
        if result.chase is not None and self.can_forward:
            self.stats.chased += 1
            return Chase(result.chase, q.q.qtype, result, tcp, parsed)
        self.stats.answered += 1
        full = self._reply(parsed, result.rcode, result)
        udp = self._fit(full, parsed, False)
        if self.cache_size > 0:  # 0 turns the cache off (benchmarks, debugging)
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[data[2:]] = (full[2:], udp[2:])
        return full if tcp else udp

    # -- parsing and building ---------------------------------------------------------------

    def _parse(self, data: bytes) -> _Query | bytes | None:
        """The parsed query; or a finished error reply (bytes); or None for FORMERR."""
        try:
            q = dnslib.DNSRecord.parse(data)
        except Exception:  # dnslib raises DNSError, but also struct/Unicode/Index errors
            return None
        opts = [rr for rr in q.ar if rr.rtype == QTYPE_OPT]
        if len(q.questions) != 1 or len(opts) > 1:
            return None
        edns = bool(opts)
        limit = MIN_UDP
        if edns:
            limit = max(MIN_UDP, min(int(opts[0].rclass), MAX_UDP))
        parsed = _Query(q, edns, limit)
        if edns and (int(opts[0].ttl) >> 16) & 0xFF:
            return self._reply(parsed, Rcode(0), ext_rcode=BADVERS)
        if q.header.opcode != 0:
            return self._reply(parsed, Rcode.NOTIMP)
        if q.q.qclass not in (CLASS_IN, CLASS_ANY) or q.q.qtype in ZONE_TRANSFERS:
            return self._reply(parsed, Rcode.REFUSED)
        return parsed

    def _reply(self, parsed: _Query, rcode: Rcode, result: Answer | None = None, *,
               ext_rcode: int = 0) -> bytes:
        """The reply to ``parsed``: authoritative when it carries an answer from the zone."""
        q = parsed.record
        header = dnslib.DNSHeader(id=q.header.id, qr=1, opcode=q.header.opcode,
                                  aa=int(result is not None and result.in_zone),
                                  rd=q.header.rd, cd=q.header.cd, ra=int(self.can_forward),
                                  rcode=(int(rcode) | ext_rcode) & 0xF)
        reply = dnslib.DNSRecord(header, q=q.q)
        if result is not None:
            asked = str(q.q.qname)
            if not asked.endswith("."):
                asked += "."
            for r in result.answers:
                reply.add_answer(_to_rr(r, q.q.qname if r.name == asked else None))
            for r in result.authority:
                reply.add_auth(_to_rr(r))
            for r in result.additionals:
                reply.add_ar(_to_rr(r))
        if parsed.edns:
            reply.add_ar(dnslib.EDNS0(udp_len=MAX_UDP, ext_rcode=ext_rcode >> 4))
        packed = bytes(reply.pack())
        return packed

    def _fit(self, reply: bytes, parsed: _Query, tcp: bool) -> bytes:
        if tcp or len(reply) <= parsed.udp_limit:
            return reply
        self.stats.truncated += 1
        return _truncate(reply, parsed.udp_limit)

    # -- upstream ---------------------------------------------------------------------------

    def _forward(self, data: bytes, parsed: _Query, tcp: bool) -> bytes | Forward:
        if not self.can_forward:
            # Nobody to ask: say so now rather than let the client time out.
            return self._fit(self._reply(parsed, Rcode.SERVFAIL), parsed, tcp)
        cached = self.forward_cache.get(data)
        if cached is not None:
            self.stats.forward_cache_hits += 1
            return self._upstream_reply(cached, parsed, tcp)
        self.stats.forwarded += 1
        return Forward(data, tcp, parsed.udp_limit, parsed)

    def finish_forward(self, fwd: Forward, reply: bytes | None) -> bytes:
        """The client's reply, from upstream's ``reply`` (None: no usable answer), which
        the forward cache keeps as long as its TTLs allow."""
        if reply is None or len(reply) < HEADER.size:
            self.stats.upstream_failures += 1
            return self._fit(self._reply(fwd.parsed, Rcode.SERVFAIL), fwd.parsed, fwd.tcp)
        out = fwd.query[:2] + reply[2:]  # the client's ID back
        self.forward_cache.put(fwd.query, out)
        return self._upstream_reply(out, fwd.parsed, fwd.tcp)

    def _upstream_reply(self, out: bytes, parsed: _Query, tcp: bool) -> bytes:
        """An upstream's whole reply, truncated if a UDP client cannot take it."""
        if tcp or len(out) <= parsed.udp_limit:
            return out
        self.stats.truncated += 1
        try:
            return _truncate(out, parsed.udp_limit)
        except Exception:
            return self._fit(self._reply(parsed, Rcode.SERVFAIL), parsed, tcp)

    def chase_query(self, chase: Chase) -> bytes:
        """The query to send upstream for ``chase`` (recursion desired; EDNS if the client
        used it, so large answers come back whole)."""
        q = dnslib.DNSRecord(dnslib.DNSHeader(id=0, rd=1),
                             q=dnslib.DNSQuestion(chase.target, chase.qtype))
        if chase.parsed.edns:
            q.add_ar(dnslib.EDNS0(udp_len=MAX_UDP))
        packed = bytes(q.pack())
        return packed

    def finish_chase(self, chase: Chase, reply: bytes | None) -> bytes:
        """Our CNAME answer plus what upstream said about its target (RFC 6604: the rcode is
        the last name's). Without a usable upstream answer, the CNAME alone."""
        result = chase.answer
        extra: list[Any] = []
        rcode = result.rcode
        if reply is not None:
            try:
                up = dnslib.DNSRecord.parse(reply)
                if up.header.rcode in (Rcode.NOERROR, Rcode.NXDOMAIN):
                    extra = list(up.rr)
                    rcode = Rcode(up.header.rcode)
                else:
                    self.stats.upstream_failures += 1
            except Exception:
                self.stats.upstream_failures += 1
        else:
            self.stats.upstream_failures += 1
        out = dnslib.DNSRecord.parse(self._reply(chase.parsed, rcode, result))
        for rr in extra:
            out.add_answer(rr)
        packed = bytes(out.pack())
        return self._fit(packed, chase.parsed, chase.tcp)


# -- resolv.conf and addresses --------------------------------------------------------------


def parse_resolv_conf(text: str, port: int = 53) -> list[Address]:
    """The ``nameserver`` addresses of a resolv.conf, in order (svcnet/util/resolvconf.py);
    those that are not IP addresses are skipped, as glibc skips them."""
    out: list[Address] = []
    for server in resolvconf.parse(text).nameservers:
        try:
            ipaddress.ip_address(server.split("%", 1)[0])
        except ValueError:
            continue
        out.append((server, port))
    return out


def read_resolv_conf(path: str | Path | None) -> list[Address]:
    """Upstreams from ``path``; none if the path is None/empty or the file is missing."""
    if not path:
        return []
    try:
        return parse_resolv_conf(Path(path).read_text())
    except FileNotFoundError:
        log.warning("%s not found: names outside the cluster zone get SERVFAIL", path)
        return []


def parse_listen(listen: str, default_port: int = 53) -> Address:
    """``host:port``, ``[v6]:port``, ``host`` or ``v6`` → (host, port)."""
    if listen.startswith("["):
        host, _, rest = listen[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if listen.count(":") == 1:
        host, _, port = listen.partition(":")
        return host or "0.0.0.0", int(port)
    return listen or "0.0.0.0", default_port


# -- the asyncio shell ----------------------------------------------------------------------


class _UpstreamProtocol(asyncio.DatagramProtocol):
    def __init__(self, qid: int) -> None:
        self.qid = qid
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        # The socket is connected, so only the upstream can reach it; the ID check stops a
        # late answer to an earlier query of ours.
        if len(data) >= 2 and int.from_bytes(data[:2], "big") == self.qid \
                and not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


class Upstream:
    """Asks the resolvers in ``servers`` (in order) until one answers, within ``timeout``."""

    def __init__(self, servers: Sequence[Address], *,
                 timeout: float = DEFAULT_FORWARD_TIMEOUT) -> None:
        self.servers = list(servers)
        self.timeout = timeout

    async def query(self, message: bytes, *, tcp: bool = False) -> bytes | None:
        """The reply to ``message`` (its ID is replaced on the way out and restored on the
        way back); None if no server answered in time. ``tcp`` says the client can take a
        long answer, so a truncated UDP one is fetched again over TCP."""
        if not self.servers:
            return None
        per_server = self.timeout / len(self.servers)
        for server in self.servers:
            qid = secrets.randbits(16)
            wire = qid.to_bytes(2, "big") + message[2:]
            try:
                async with asyncio.timeout(per_server):
                    reply = await self._udp(server, wire, qid)
                    if tcp and len(reply) >= 4 and reply[2] & (TC >> 8):
                        reply = await self._tcp(server, wire)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as e:
                log.debug("upstream %s:%d failed: %r", server[0], server[1], e)
                continue
            return message[:2] + reply[2:]
        return None

    @staticmethod
    async def _udp(server: Address, wire: bytes, qid: int) -> bytes:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _UpstreamProtocol(qid), remote_addr=server)
        try:
            transport.sendto(wire)
            return await protocol.reply
        finally:
            transport.close()

    @staticmethod
    async def _tcp(server: Address, wire: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(*server)
        try:
            writer.write(len(wire).to_bytes(2, "big") + wire)
            await writer.drain()
            size = int.from_bytes(await reader.readexactly(2), "big")
            return await reader.readexactly(size)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class _UDPServer(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self._server = server
        self._core = server.core
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            out = self._core.handle(data)
        except Exception:
            log.exception("query from %s failed", addr)
            return
        if isinstance(out, bytes):
            assert self.transport is not None
            self.transport.sendto(out, addr)
        elif out is not None:
            self._server.spawn(self._finish(out, addr))

    async def _finish(self, out: Forward | Chase, addr: Any) -> None:
        reply = await self._server.resolve(out)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a client that went away: nothing to do.
        log.debug("udp error: %r", exc)


class DNSServer:
    """UDP and TCP on one address, answering through ``core``; forwarding via ``upstream``."""

    def __init__(self, core: DNSCore, upstream: Upstream | None = None, *,
                 tcp_idle_timeout: float = TCP_IDLE_TIMEOUT) -> None:
        self.core = core
        self.upstream = upstream or Upstream(())
        self.core.can_forward = bool(self.upstream.servers)
        self.tcp_idle_timeout = tcp_idle_timeout
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.address: Address = ("", 0)
        """Where we listen, once started (the real port if 0 was asked for)."""

    @classmethod
    def create(cls, zone_name: str, upstreams: Iterable[Address] = (), *,
               forward_timeout: float = DEFAULT_FORWARD_TIMEOUT,
               cache_size: int = DEFAULT_CACHE_SIZE,
               forward_cache_size: int = DEFAULT_FORWARD_CACHE_SIZE) -> DNSServer:
        core = DNSCore(zone_name, cache_size=cache_size, forward_cache_size=forward_cache_size)
        return cls(core, Upstream(list(upstreams), timeout=forward_timeout))

    def set_zone(self, zone: Zone) -> None:
        self.core.set_zone(zone)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Address:
        """Bind UDP, then TCP on the same port (retrying when ``port`` is 0 and the
        kernel's UDP choice is taken for TCP)."""
        loop = asyncio.get_running_loop()
        for attempt in range(10):
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UDPServer(self), local_addr=(host, port))
            bound = transport.get_extra_info("sockname")
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, host, bound[1],
                                                       reuse_address=True)
            except OSError:
                transport.close()
                if port != 0 or attempt == 9:
                    raise
                continue
            self._udp = transport
            self.address = (str(bound[0]), int(bound[1]))
            break
        # Never forward to ourselves: a resolv.conf naming this server would loop forever.
        self.upstream.servers = [s for s in self.upstream.servers if s != self.address]
        self.core.can_forward = bool(self.upstream.servers)
        log.info("cluster DNS for %s on %s:%d (udp+tcp), upstreams %s", self.core.origin,
                 *self.address, [f"{h}:{p}" for h, p in self.upstream.servers] or "none")
        return self.address

    async def close(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
        if self._udp is not None:
            self._udp.close()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._tcp is not None:
            await self._tcp.wait_closed()
            self._tcp = None
        self._udp = None

    def spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def resolve(self, out: Forward | Chase) -> bytes:
        """Do the upstream part of ``out`` and return the client's reply."""
        try:
            if isinstance(out, Forward):
                return self.core.finish_forward(
                    out, await self.upstream.query(out.query, tcp=out.tcp))
            reply = await self.upstream.query(self.core.chase_query(out), tcp=out.tcp)
            return self.core.finish_chase(out, reply)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("upstream resolution failed")
            if isinstance(out, Forward):
                return self.core.finish_forward(out, None)
            return self.core.finish_chase(out, None)

    async def _serve_tcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        """One TCP connection: queries one after another, but those that go upstream run
        concurrently and are answered when done, so one slow forward does not hold up the
        cluster answers behind it (RFC 7766 §6.2.1.1; the IDs tell the client which is which)."""
        task = asyncio.current_task()
        if task is not None:
            # Tracked so close() can end idle connections (3.11's Server.wait_closed does not
            # wait for them, and an open socket at exit is a ResourceWarning).
            self._tasks.add(task)
        upstream: set[asyncio.Task[None]] = set()
        closing = False
        try:
            while True:
                async with asyncio.timeout(self.tcp_idle_timeout):
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    data = await reader.readexactly(size)
                out = self.core.handle(data, tcp=True)
                if out is None:
                    continue
                if isinstance(out, bytes):
                    writer.write(len(out).to_bytes(2, "big") + out)
                    await writer.drain()
                    continue
                if len(upstream) >= MAX_TCP_IN_FLIGHT:
                    # Back-pressure: stop reading until one finishes.
                    await asyncio.wait(upstream, return_when=asyncio.FIRST_COMPLETED)
                t = asyncio.create_task(self._answer_tcp(out, writer))
                upstream.add(t)
                t.add_done_callback(upstream.discard)
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass  # the client is done, idle, or gone
        except asyncio.CancelledError:
            closing = True  # the server is closing
        finally:
            if upstream and not closing:
                # The client may have sent its last query and half-closed: answer it still
                # (each upstream query ends within the forward timeout).
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait(upstream)
            for t in list(upstream):
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _answer_tcp(self, out: Forward | Chase, writer: asyncio.StreamWriter) -> None:
        reply = await self.resolve(out)
        if not writer.is_closing():
            writer.write(len(reply).to_bytes(2, "big") + reply)
