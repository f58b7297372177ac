"""The answer cache for forwarded queries: upstream replies kept as long as their TTLs say.

Theory of operation
-------------------
The anchor is CoreDNS's ``cache`` plugin as Kubernetes' default Corefile uses it (``cache 30``
in front of ``forward . /etc/resolv.conf``: nothing kept longer than 30 seconds), read for
behaviour, with RFC 1035 §3.2.1 (TTL), RFC 2308 (negative caching) and RFC 8767 left out (no
serving of stale answers):

* **What is cached.** A reply that came back whole (TC clear) with rcode NOERROR or NXDOMAIN.
  A positive answer lives for the smallest TTL among its answer, authority and additional
  records (the OPT pseudo-record's "TTL" holds EDNS flags and is skipped); a negative one
  (NXDOMAIN, or NOERROR without answers: NODATA) for its SOA's ``min(TTL, MINIMUM)`` (RFC 2308
  §5); either at most ``max_ttl`` (:data:`MAX_TTL`, the Corefile's 30). A negative answer
  without an SOA is not cached (RFC 2308 §5: such answers "SHOULD NOT" be), nor is a TTL of
  zero ("use once", RFC 1035 §3.2.1). SERVFAIL, REFUSED and failures to reach any upstream
  are never cached, so a recovering upstream is asked again at once.
* **The key** is the query's bytes after its 2-byte ID: question (with the client's letter
  case), flags (RD, CD) and EDNS options, everything the reply may depend on.
* **A hit** is the stored reply with the client's ID and every TTL lowered by the whole
  seconds the entry has been cached, and to at most what the entry has left (so clients never
  keep an answer longer than upstream allowed, nor longer than we do). The TTL fields'
  offsets are found once, when the reply is stored, by walking the message; a hit only
  patches 4-byte fields, with no parsing.
* **Bounded.** At most ``capacity`` entries, least recently used evicted first; an expired
  entry is dropped when it is looked up. The clock is injected (tests move it by hand).

This cache is for forwarded answers only: answers from the cluster zone have their own wire
cache in :class:`~svcnet.dns.server.DNSCore`, emptied on every zone change.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DEFAULT_CAPACITY",
    "MAX_TTL",
    "ForwardCache",
    "cache_ttl",
    "ttl_fields",
]

DEFAULT_CAPACITY: Final = 10_000
MAX_TTL: Final = 30
"""The longest anything is kept: Kubernetes' default Corefile's ``cache 30``."""

_HEADER: Final = struct.Struct("!HHHHHH")
_RR_FIXED: Final = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_TTL: Final = struct.Struct("!I")
_TC: Final = 0x0200
_TYPE_SOA: Final = 6
_TYPE_OPT: Final = 41
_NOERROR, _NXDOMAIN = 0, 3


@dataclass(frozen=True, slots=True)
class _RR:
    section: int
    """0 answer, 1 authority, 2 additional."""
    rtype: int
    ttl: int
    ttl_offset: int
    rdata_offset: int
    rdlength: int


def _skip_name(msg: bytes, pos: int) -> int:
    """The offset just past the (possibly compressed) domain name at ``pos``."""
    while True:
        if pos >= len(msg):
            raise ValueError("name runs past the message")
        length = msg[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        if length & 0xC0:
            raise ValueError("unknown label type")
        pos += 1 + length


def _records(msg: bytes) -> list[_RR]:
    """Every resource record of a DNS message, walked without decoding names or data.
    ValueError if the message is malformed."""
    if len(msg) < _HEADER.size:
        raise ValueError("shorter than a header")
    _, _, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(msg)
    pos = _HEADER.size
    for _ in range(qdcount):
        pos = _skip_name(msg, pos) + 4
    out: list[_RR] = []
    for section, count in enumerate((ancount, nscount, arcount)):
        for _ in range(count):
            pos = _skip_name(msg, pos)
            if pos + _RR_FIXED.size > len(msg):
                raise ValueError("record runs past the message")
            rtype, _, ttl, rdlength = _RR_FIXED.unpack_from(msg, pos)
            rdata = pos + _RR_FIXED.size
            if rdata + rdlength > len(msg):
                raise ValueError("record data runs past the message")
            out.append(_RR(section, rtype, ttl, pos + 4, rdata, rdlength))
            pos = rdata + rdlength
    return out


def ttl_fields(msg: bytes) -> list[tuple[int, int]]:
    """(offset, TTL) of every record's TTL field but the OPT pseudo-record's."""
    return [(r.ttl_offset, r.ttl) for r in _records(msg) if r.rtype != _TYPE_OPT]


def _soa_minimum(msg: bytes, rr: _RR) -> int:
    """The MINIMUM field of an SOA record: the last 4 bytes of its data."""
    end = rr.rdata_offset + rr.rdlength
    if rr.rdlength < 20:
        raise ValueError("SOA record too short")
    value: int = _TTL.unpack_from(msg, end - 4)[0]
    return value


def cache_ttl(reply: bytes, max_ttl: int = MAX_TTL) -> int:
    """Seconds ``reply`` may be cached for (module doc); 0: not at all. Malformed: 0."""
    if len(reply) < _HEADER.size:
        return 0
    _, flags, _, ancount, _, _ = _HEADER.unpack_from(reply)
    rcode = flags & 0xF
    if flags & _TC or rcode not in (_NOERROR, _NXDOMAIN):
        return 0
    try:
        records = [r for r in _records(reply) if r.rtype != _TYPE_OPT]
        if rcode == _NOERROR and ancount > 0:
            return min(*(r.ttl for r in records), max_ttl)
        soas = [min(r.ttl, _soa_minimum(reply, r)) for r in records
                if r.section == 1 and r.rtype == _TYPE_SOA]
    except ValueError:
        return 0
    return min(*soas, max_ttl) if soas else 0


@dataclass(slots=True)
class _Entry:
    reply: bytes
    stored: float
    expires: float
    ttls: list[tuple[int, int]]


class ForwardCache:
    """Upstream replies by query (module doc). ``now`` is a monotonic clock in seconds."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, *, now: Callable[[], float],
                 max_ttl: int = MAX_TTL) -> None:
        self.capacity = capacity
        self.max_ttl = max_ttl
        self._now = now
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, query: bytes, reply: bytes) -> bool:
        """Keep ``reply`` to ``query`` for as long as :func:`cache_ttl` allows; whether it
        was kept."""
        if self.capacity <= 0:
            return False
        ttl = cache_ttl(reply, self.max_ttl)
        if ttl <= 0:
            return False
        now = self._now()
        key = query[2:]
        self._entries.pop(key, None)
        while len(self._entries) >= self.capacity:
            self._entries.popitem(last=False)
        self._entries[key] = _Entry(reply, now, now + ttl, ttl_fields(reply))
        return True

    def get(self, query: bytes) -> bytes | None:
        """The cached reply to ``query`` with its ID and aged TTLs; None on a miss."""
        key = query[2:]
        entry = self._entries.get(key)
        now = self._now()
        if entry is None or now >= entry.expires:
            if entry is not None:
                del self._entries[key]
            return None
        self._entries.move_to_end(key)
        age = int(now - entry.stored)
        left = int(entry.expires - now)
        out = bytearray(entry.reply)
        out[:2] = query[:2]
        for offset, ttl in entry.ttls:
            aged = max(0, min(ttl - age, left))
            if aged != ttl:
                _TTL.pack_into(out, offset, aged)
        return bytes(out)
