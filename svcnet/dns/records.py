"""Cluster DNS records: Services and EndpointSlices in, an immutable zone and answers out.

This module is the whole of the DNS *semantics* and has no I/O: no sockets, no clock, no wire
format (see :mod:`svcnet.dns.server` for the shell). It follows the Kubernetes DNS-Based Service
Discovery specification, schema 1.0.1 (kubernetes/dns ``docs/specification.md``), and CoreDNS's
``kubernetes`` plugin where the specification leaves room.

Theory of operation
-------------------
:func:`build_zone` turns the API objects (Kubernetes JSON dicts, as the informers cache them)
into a :class:`Zone`: a map *owner name → record type → record data*, plus the set of every name
that exists. ``<zone>`` below is the cluster domain (``cluster.local``); every owner is stored
lower-cased with its trailing dot, so lookups are case-insensitive by construction.

==========================================  =========  ==========================================
owner                                       type       data
==========================================  =========  ==========================================
``<zone>``                                  SOA, NS    ``ns.dns.<zone>`` (the NS target gets A/AAAA
                                                       from Service ``kube-system/kube-dns``)
``dns-version.<zone>``                      TXT        ``"1.0.1"``
``<svc>.<ns>.svc.<zone>`` (ClusterIP)       A, AAAA    each of ``spec.clusterIPs``, ready or not
``_<port>._<proto>.<svc>.<ns>.svc.<zone>``  SRV        per *named* port: ``0 100 <port>
                                                       <svc>.<ns>.svc.<zone>``
``<svc>.<ns>.svc.<zone>`` (headless)        A, AAAA    every ready endpoint address
``<host>.<svc>.<ns>.svc.<zone>``            A, AAAA    that endpoint's addresses
``_<port>._<proto>.<svc>.<ns>.svc.<zone>``  SRV        per ready endpoint × named slice port:
                                                       ``0 <100/n> <endpoint port> <host>.<svc>…``
``<svc>.<ns>.svc.<zone>`` (ExternalName)    CNAME      ``spec.externalName``
reverse name of a ClusterIP                 PTR        ``<svc>.<ns>.svc.<zone>``
reverse name of a ready headless endpoint   PTR        ``<host>.<svc>.<ns>.svc.<zone>``
==========================================  =========  ==========================================

``<host>`` is the endpoint's ``hostname`` (the pod's ``spec.hostname`` when its ``subdomain``
names the Service) or, failing that, the specification's "unique, system-assigned identifier",
which like CoreDNS we make the address with dots (or colons) turned into dashes: ``10-244-1-7``,
``fd00-10-244--7``. "Ready" means ``conditions.ready`` is true or absent (the API says nil means
ready), or the Service has ``publishNotReadyAddresses`` (the EndpointSlice controller already
folds that into ``ready``; we honour it too for slices someone else writes). Endpoints are
merged over all of a Service's slices (label ``kubernetes.io/service-name``) and de-duplicated,
as kube-proxy does; ``FQDN`` slices are ignored.

Pod records (``1-2-3-4.<ns>.pod.<zone>`` → A ``1.2.3.4``) are not stored: in CoreDNS's ``pods
insecure`` mode, kubeadm's default, they are synthesised for any well-formed dashed address, so
:func:`answer` computes them (``pods=False`` in :func:`build_zone` turns them off).

:func:`answer` is a pure lookup with the usual authoritative-server rules:

* a name outside the zone (and not one of our PTR owners): not ours (``Answer.in_zone`` false);
  the caller forwards it, we never answer it;
* a name with records of the asked type: NOERROR with them; SRV answers carry the targets'
  A/AAAA records in the additional section;
* a name with a CNAME (ExternalName): the CNAME whatever the type asked (except ANY/CNAME, which
  get just the CNAME), followed inside the zone; a target outside the zone is left in
  ``Answer.chase`` for the caller to resolve upstream, as CoreDNS does;
* a name that exists with no record of that type, including empty non-terminals such as
  ``svc.<zone>`` or ``_tcp.<svc>.<ns>.svc.<zone>``, and the namespace name of any Service:
  NOERROR with an empty answer ("NODATA", RFC 2308 §2.2) and the SOA in the authority section;
* any other name in the zone: NXDOMAIN with the SOA. In particular a headless Service with no
  ready endpoint has no records, so its name is NXDOMAIN, as the specification asks.

An ExternalName chain longer than 8 links (a loop ``a → b → a``) answers SERVFAIL.

Zones are immutable and shared: the server swaps in a new one atomically, and answers computed
from the old one stay consistent. :class:`ZoneBuilder` is the incremental form of
:func:`build_zone` (which is built on it): it keeps each Service's records separately, so a
change to one Service costs that Service's records plus a copy of the merged maps, not a
rebuild of everything (see the comment above it).

Why this module is long: The Kubernetes DNS specification's records, one builder; kept whole so
it reads against the specification.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Set as AbstractSet
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Any, ClassVar, Final

from svcnet.api.access import namespace_name_of as _namespace_name
from svcnet.api.services import is_headless

__all__ = [
    "AAAA",
    "CNAME",
    "DEFAULT_TTL",
    "DEFAULT_ZONE",
    "NS",
    "PTR",
    "SCHEMA_VERSION",
    "SOA",
    "SRV",
    "TXT",
    "A",
    "Answer",
        "RData",
    "RType",
    "Rcode",
    "Record",
    "Zone",
    "ZoneBuilder",
    "answer",
    "build_zone",
    "canonical_name",
    "dashed_ip",
]

DEFAULT_ZONE: Final = "cluster.local"
SCHEMA_VERSION: Final = "1.0.1"
DEFAULT_TTL: Final = 5
"""CoreDNS's ``kubernetes`` plugin default. Short on purpose: Services and endpoints change, and
a client that cached a stale answer keeps using it for the whole TTL."""
SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
DNS_SERVICE: Final = ("kube-system", "kube-dns")
"""The Service whose ClusterIPs are the zone's name server addresses (``ns.dns.<zone>``)."""
MAX_CNAME_CHAIN: Final = 8
"""ExternalName pointing at ExternalName...: follow at most this many links, then stop (a loop
``a → b → a`` must not hang the server)."""


class RType(IntEnum):
    """The record types we serve (RFC 1035, 3596, 2782), plus the ANY meta-type."""

    A = 1
    NS = 2
    CNAME = 5
    SOA = 6
    PTR = 12
    TXT = 16
    AAAA = 28
    SRV = 33
    ANY = 255


class Rcode(IntEnum):
    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5


# -- record data ----------------------------------------------------------------------------
# Owner names and targets are always canonical: lower case, absolute (trailing dot).


@dataclass(frozen=True, slots=True)
class A:
    rtype: ClassVar[RType] = RType.A
    address: str


@dataclass(frozen=True, slots=True)
class AAAA:
    rtype: ClassVar[RType] = RType.AAAA
    address: str


@dataclass(frozen=True, slots=True)
class CNAME:
    rtype: ClassVar[RType] = RType.CNAME
    target: str


@dataclass(frozen=True, slots=True)
class PTR:
    rtype: ClassVar[RType] = RType.PTR
    target: str


@dataclass(frozen=True, slots=True)
class NS:
    rtype: ClassVar[RType] = RType.NS
    target: str


@dataclass(frozen=True, slots=True)
class SRV:
    rtype: ClassVar[RType] = RType.SRV
    priority: int
    weight: int
    port: int
    target: str


@dataclass(frozen=True, slots=True)
class TXT:
    rtype: ClassVar[RType] = RType.TXT
    strings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SOA:
    rtype: ClassVar[RType] = RType.SOA
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


RData = A | AAAA | CNAME | PTR | NS | SRV | TXT | SOA


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record: owner name (as it goes on the wire), TTL, data."""

    name: str
    ttl: int
    data: RData

    @property
    def rtype(self) -> RType:
        return self.data.rtype


@dataclass(frozen=True, slots=True)
class Answer:
    """What to answer for one question; the server turns it into a DNS message.

    ``in_zone`` false means the name is not ours at all (forward it). ``chase`` is set when the
    answer ends in a CNAME whose target lies outside the zone: the caller may resolve
    ``chase`` upstream and append what it gets (with the upstream rcode, RFC 6604).
    """

    rcode: Rcode
    answers: tuple[Record, ...] = ()
    additionals: tuple[Record, ...] = ()
    authority: tuple[Record, ...] = ()
    in_zone: bool = True
    chase: str | None = None


NOT_OURS: Final = Answer(Rcode.REFUSED, in_zone=False)


# -- names ----------------------------------------------------------------------------------


def canonical_name(name: str) -> str:
    """Lower case with exactly one trailing dot: the form every lookup key has.

    Only ASCII letters fold (``str.lower`` on an ASCII name); DNS case-insensitivity is
    ASCII-only (RFC 4343), and wire names with other bytes arrive escaped as ``\\DDD``.
    """
    name = name.lower()
    return name if name.endswith(".") else name + "."


def dashed_ip(address: str) -> str:
    """The label CoreDNS derives from an address: ``10.244.1.7`` → ``10-244-1-7``,
    ``fd00::7`` → ``fd00--7``."""
    return address.replace(".", "-").replace(":", "-")


def _reverse_name(address: str, is_v6: bool) -> str:
    """``address`` (canonical) as a PTR owner: ``d.c.b.a.in-addr.arpa.`` or the nibbles."""
    if not is_v6:
        a, b, c, d = address.split(".")
        return f"{d}.{c}.{b}.{a}.in-addr.arpa."
    return ipaddress.ip_address(address).reverse_pointer + "."


def _canonical_ip(value: Any) -> tuple[str, bool] | None:
    """``(address, is_ipv6)`` re-printed in canonical form, or None if it is not an IP."""
    text = str(value)
    parts = text.split(".")
    # Fast path for the common case, a dotted quad already in canonical form (the API
    # canonicalises addresses): ipaddress costs ~5 µs per call, a third of a Service's build.
    if len(parts) == 4 and all(0 < len(p) <= 3 and p.isascii() and p.isdigit()
                               and (p[0] != "0" or p == "0") and int(p) <= 255
                               for p in parts):
        return text, False
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return str(ip), ip.version == 6


def _address_data(address: str, is_v6: bool) -> RData:
    return AAAA(address) if is_v6 else A(address)


# -- the zone -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Zone:
    """An immutable snapshot of the cluster zone. Build with :func:`build_zone`."""

    origin: str
    """The zone apex, canonical (``cluster.local.``)."""
    ttl: int
    serial: int
    pods: bool
    """Whether ``<dashed-ip>.<ns>.pod.<zone>`` names are answered (pods insecure)."""
    rrsets: Mapping[str, Mapping[RType, tuple[RData, ...]]]
    """owner → type → data, owners canonical. Read-only views; never mutate."""
    names: AbstractSet[str]
    """Every name that exists inside the zone: owners plus empty non-terminals."""
    soa: Record = field(init=False)
    _pod_suffix: str = field(init=False)

    def __post_init__(self) -> None:
        soa = self.rrsets[self.origin][RType.SOA][0]
        # Negative answers are cacheable for min(SOA TTL, SOA minimum) (RFC 2308 §5).
        object.__setattr__(self, "soa", Record(self.origin, self.ttl, soa))
        object.__setattr__(self, "_pod_suffix", ".pod." + self.origin)

    def __len__(self) -> int:
        """The number of owner names with records."""
        return len(self.rrsets)

    def covers(self, qname: str) -> bool:
        """Is ``qname`` (canonical) ours to answer? The zone itself, and our reverse names.

        Other names under ``in-addr.arpa``/``ip6.arpa`` are not ours, even inside the Service
        CIDR: like kubeadm's ``fallthrough in-addr.arpa ip6.arpa`` they go upstream."""
        return (qname == self.origin or qname.endswith("." + self.origin)
                or qname in self.rrsets)

    def lookup(self, qname: str, rtype: RType) -> tuple[RData, ...]:
        node = self.rrsets.get(qname)
        return node.get(rtype, ()) if node is not None else ()

    def pod_address(self, qname: str) -> tuple[str, bool] | None:
        """``(address, is_ipv6)`` if ``qname`` (canonical) is ``<dashed-ip>.<ns>.pod.<zone>``
        with the address's canonical dashed spelling (so each address has one name)."""
        if not self.pods or not qname.endswith(self._pod_suffix):
            return None
        labels = qname[: -len(self._pod_suffix)].split(".")
        if len(labels) != 2:
            return None
        dashed = labels[0]
        parts = dashed.split("-")
        if len(parts) == 4 and all(p.isdigit() for p in parts):
            candidate = ".".join(parts)
        else:
            candidate = dashed.replace("-", ":")
        parsed = _canonical_ip(candidate)
        if parsed is None or dashed_ip(parsed[0]) != dashed:
            return None
        return parsed

    def exists(self, qname: str) -> bool:
        """Does ``qname`` (canonical, in the zone) exist, records or not?

        ``pod.<zone>`` and any ``<ns>.pod.<zone>`` exist when pod records are on: which
        namespaces have pods is not something this zone knows, and NODATA is the safe answer
        for an ancestor of names we would answer."""
        if qname in self.names:
            return True
        if not self.pods:
            return False
        if qname == self._pod_suffix[1:]:
            return True
        return (qname.endswith(self._pod_suffix)
                and "." not in qname[: -len(self._pod_suffix)])


# -- building -------------------------------------------------------------------------------
# Each Service becomes a _Fragment: the records it owns. A Service's names all live under
# <svc>.<ns>.svc.<zone>, so fragments never share an owner there and the zone is their plain
# union. The only owners several Services can share are reverse names (one pod IP behind two
# headless Services) and ns.dns.<zone>; those are reference-counted record by record, as are
# the names that exist (many Services share <ns>.svc.<zone>). ZoneBuilder keeps the fragments
# and the merged maps, so a change to one Service costs that Service's records plus one copy of
# the merged maps per published zone; build_zone is a ZoneBuilder fed every Service at once.


@dataclass(frozen=True, slots=True)
class _Fragment:
    rrsets: dict[str, Mapping[RType, tuple[RData, ...]]]
    shared: tuple[tuple[str, RData], ...]
    names: frozenset[str]
    """Names inside the zone that exist because of this Service (owners and their ancestors,
    up to but excluding ``svc.<zone>``)."""


class _Builder:
    """Collects records (de-duplicated, in insertion order) and the names that exist."""

    def __init__(self, stop: Iterable[str]) -> None:
        self.sets: dict[str, dict[RType, dict[RData, None]]] = {}
        self.names: set[str] = set(stop)
        self._stop = frozenset(self.names)

    def add(self, owner: str, data: RData) -> None:
        self.sets.setdefault(owner, {}).setdefault(data.rtype, {})[data] = None
        self.exists(owner)

    def exists(self, name: str) -> None:
        """Mark ``name`` and its ancestors as existing (RFC 8020: a name with descendants
        exists, even without records of its own), up to a name we already know."""
        while name and name not in self.names:
            self.names.add(name)
            name = name.partition(".")[2]

    def own_names(self) -> frozenset[str]:
        return frozenset(self.names - self._stop)

    def freeze(self) -> dict[str, Mapping[RType, tuple[RData, ...]]]:
        return {owner: MappingProxyType({t: tuple(d) for t, d in types.items()})
                for owner, types in self.sets.items()}


def _record_order(data: RData) -> tuple[int, str]:
    # Shared owners hold only PTR, A and AAAA records.
    text = data.target if isinstance(data, PTR | CNAME | NS) else getattr(data, "address", "")
    return int(data.rtype), text


class ZoneBuilder:
    """The zone, maintained incrementally: :meth:`set_service` per changed Service, then
    :meth:`zone` for an immutable snapshot. Equal to :func:`build_zone` over the same objects
    (the unit tests check it on random change sequences). Not thread-safe: one writer."""

    def __init__(self, zone: str = DEFAULT_ZONE, *, ttl: int = DEFAULT_TTL,
                 pods: bool = True) -> None:
        origin = canonical_name(zone)
        if origin == "." or ".." in origin or origin.startswith("."):
            raise ValueError(f"invalid cluster zone {zone!r}")
        self.origin = origin
        self.ttl = ttl
        self.pods = pods
        self.serial = 0
        self._svc_zone = "svc." + origin
        self._ns_target = "ns.dns." + origin
        self._fragments: dict[str, _Fragment] = {}
        self._owned: dict[str, Mapping[RType, tuple[RData, ...]]] = {}
        self._shared: dict[str, dict[RData, int]] = {}
        self._shared_frozen: dict[str, Mapping[RType, tuple[RData, ...]]] = {}
        self._names: dict[str, int] = {}

    def __len__(self) -> int:
        """How many Services it holds."""
        return len(self._fragments)

    def set_service(self, svc: Mapping[str, Any],
                    slices: Iterable[Mapping[str, Any]] = ()) -> None:
        """Replace the records of ``svc`` with those of this version of it and ``slices``
        (all of its EndpointSlices; others are ignored)."""
        ns, name = _namespace_name(svc)
        if not ns or not name:
            return
        key = f"{ns}/{name}"
        # Sorted by name, so record order does not depend on the order slices arrived in.
        mine = sorted((s for s in slices if _slice_service(s) == (ns, name)),
                      key=lambda s: _namespace_name(s)[1])
        # Computed before the old records go: if this object breaks it, nothing changed.
        frag = _service_fragment(svc, mine, self._svc_zone, self._ns_target)
        self.remove_service(key)
        self._fragments[key] = frag
        self._owned.update(frag.rrsets)
        for n in frag.names:
            self._names[n] = self._names.get(n, 0) + 1
        touched = set()
        for owner, data in frag.shared:
            counts = self._shared.setdefault(owner, {})
            counts[data] = counts.get(data, 0) + 1
            touched.add(owner)
        self._refreeze(touched)

    def remove_service(self, key: str) -> None:
        """Forget the Service ``namespace/name`` (no-op if unknown)."""
        frag = self._fragments.pop(key, None)
        if frag is None:
            return
        for owner in frag.rrsets:
            self._owned.pop(owner, None)
        for n in frag.names:
            left = self._names[n] - 1
            if left:
                self._names[n] = left
            else:
                del self._names[n]
        touched = set()
        for owner, data in frag.shared:
            counts = self._shared[owner]
            left = counts[data] - 1
            if left:
                counts[data] = left
            else:
                del counts[data]
            touched.add(owner)
        self._refreeze(touched)

    def _refreeze(self, owners: Iterable[str]) -> None:
        for owner in owners:
            counts = self._shared.get(owner)
            if not counts:
                self._shared.pop(owner, None)
                self._shared_frozen.pop(owner, None)
                continue
            # Sorted, so the order of records does not depend on the order of changes.
            node: dict[RType, list[RData]] = {}
            for data in sorted(counts, key=_record_order):
                node.setdefault(data.rtype, []).append(data)
            self._shared_frozen[owner] = MappingProxyType(
                {t: tuple(d) for t, d in node.items()})

    def zone(self, serial: int | None = None) -> Zone:
        """A snapshot; ``serial`` (default: one more than the last) goes in the SOA."""
        self.serial = serial if serial is not None else (self.serial + 1) & 0xFFFFFFFF
        origin = self.origin
        apex = _Builder((origin,))
        apex.add(origin, SOA(self._ns_target, "hostmaster." + origin, self.serial, 7200, 1800,
                             86400, self.ttl))
        apex.add(origin, NS(self._ns_target))
        apex.add("dns-version." + origin, TXT((SCHEMA_VERSION,)))
        apex.exists(self._svc_zone)
        for owner in self._shared_frozen:
            if owner.endswith("." + origin):  # ns.dns.<zone>, not reverse names
                apex.exists(owner)
        if self.pods:
            apex.exists("pod." + origin)
        rrsets = dict(self._owned)
        rrsets.update(self._shared_frozen)
        rrsets.update(apex.freeze())
        names = dict(self._names)
        names.update(dict.fromkeys(apex.names, 1))
        # A dict's key view is a set; copying a dict is several times cheaper than building
        # a frozenset of tens of thousands of names, and nobody else holds this dict.
        return Zone(origin=origin, ttl=self.ttl, serial=self.serial, pods=self.pods,
                    rrsets=MappingProxyType(rrsets), names=names.keys())


@dataclass(slots=True)
class _Endpoint:
    hostname: str
    addresses: list[tuple[str, bool]]
    ports: list[tuple[str, str, int]]
    """(name, protocol lower-cased, port) of the slice it came from, named ports only."""


def _is_ready(endpoint: Mapping[str, Any]) -> bool:
    ready = (endpoint.get("conditions") or {}).get("ready")
    return ready is None or bool(ready)  # the API: "nil should be interpreted as true"


def _ready_endpoints(slices: Iterable[Mapping[str, Any]], publish_not_ready: bool
                     ) -> list[_Endpoint]:
    """Ready endpoints over all slices; an address seen twice (a pod moving between slices)
    counts once, under its first hostname."""
    seen: set[str] = set()
    out: list[_Endpoint] = []
    for s in slices:
        ports = []
        for p in s.get("ports") or []:
            name, port = str(p.get("name") or ""), p.get("port")
            if name and isinstance(port, int):
                ports.append((name.lower(), str(p.get("protocol") or "TCP").lower(), port))
        for ep in s.get("endpoints") or []:
            if not (publish_not_ready or _is_ready(ep)):
                continue
            addresses = []
            for raw in ep.get("addresses") or []:
                parsed = _canonical_ip(raw)
                if parsed is not None and parsed[0] not in seen:
                    seen.add(parsed[0])
                    addresses.append(parsed)
            if not addresses:
                continue
            hostname = str(ep.get("hostname") or "").lower()
            if hostname:
                out.append(_Endpoint(hostname, addresses, ports))
            else:
                # No hostname: each address gets its own system-assigned name.
                out.extend(_Endpoint(dashed_ip(a[0]), [a], ports) for a in addresses)
    return out


def _service_ips(spec: Mapping[str, Any]) -> list[tuple[str, bool]]:
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [p for p in (_canonical_ip(ip) for ip in ips) if p is not None]


def _slice_service(s: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (namespace, Service name) an EndpointSlice belongs to, if it serves addresses."""
    if s.get("addressType") not in ("IPv4", "IPv6"):
        return None  # FQDN slices name hosts, not addresses: nothing for DNS to serve
    ns, _ = _namespace_name(s)
    svc = ((s.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
    return (ns, str(svc)) if ns and svc else None


def build_zone(services: Iterable[Mapping[str, Any]],
               endpoint_slices: Iterable[Mapping[str, Any]],
               zone: str = DEFAULT_ZONE, *, ttl: int = DEFAULT_TTL, serial: int = 1,
               pods: bool = True) -> Zone:
    """The zone for these Services and EndpointSlices (see the module doc for the records).

    Pure: the inputs are only read (they may be informer cache objects), and equal inputs give
    equal zones. ``serial`` goes into the SOA; the caller bumps it on every change so
    secondary caches can tell zones apart. To follow changes cheaply, keep a
    :class:`ZoneBuilder` instead.
    """
    builder = ZoneBuilder(zone, ttl=ttl, pods=pods)
    by_service: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for s in endpoint_slices:
        key = _slice_service(s)
        if key is not None:
            by_service.setdefault(key, []).append(s)
    for svc in services:
        builder.set_service(svc, by_service.get(_namespace_name(svc), ()))
    return builder.zone(serial)


def _service_fragment(svc: Mapping[str, Any], slices: Iterable[Mapping[str, Any]],
                      svc_zone: str, ns_target: str) -> _Fragment:
    ns, name = _namespace_name(svc)
    spec = svc.get("spec") or {}
    owner = f"{name}.{ns}.{svc_zone}".lower()
    b = _Builder((svc_zone,))
    shared: list[tuple[str, RData]] = []
    # The namespace name exists while it holds a Service, even one with no records (a
    # headless Service without endpoints): a NODATA there is the honest answer.
    b.exists(f"{ns}.{svc_zone}".lower())
    if spec.get("type") == "ExternalName":
        target = str(spec.get("externalName") or "").strip().rstrip(".")
        if target:
            b.add(owner, CNAME(canonical_name(target)))
    elif is_headless(svc):
        _add_headless(b, shared, owner, slices, bool(spec.get("publishNotReadyAddresses")))
    else:
        for address, is_v6 in _service_ips(spec):
            b.add(owner, _address_data(address, is_v6))
            shared.append((_reverse_name(address, is_v6), PTR(owner)))
            if (ns, name) == DNS_SERVICE:
                shared.append((ns_target, _address_data(address, is_v6)))
        if owner in b.sets:  # a Service without an address yet has no SRV either
            for port in spec.get("ports") or []:
                port_name = str(port.get("name") or "").lower()
                number = port.get("port")
                if port_name and isinstance(number, int):
                    proto = str(port.get("protocol") or "TCP").lower()
                    b.add(f"_{port_name}._{proto}.{owner}", SRV(0, 100, number, owner))
    return _Fragment(b.freeze(), tuple(shared), b.own_names())


def _add_headless(b: _Builder, shared: list[tuple[str, RData]], owner: str,
                  slices: Iterable[Mapping[str, Any]], publish_not_ready: bool) -> None:
    srv: dict[str, dict[tuple[int, str], None]] = {}
    for ep in _ready_endpoints(slices, publish_not_ready):
        host = f"{ep.hostname}.{owner}"
        for address, is_v6 in ep.addresses:
            data = _address_data(address, is_v6)
            b.add(owner, data)
            b.add(host, data)
            shared.append((_reverse_name(address, is_v6), PTR(host)))
        for port_name, proto, number in ep.ports:
            srv.setdefault(f"_{port_name}._{proto}.{owner}", {})[(number, host)] = None
    for srv_owner, targets in srv.items():
        # Equal priority, the weight shared evenly (CoreDNS); at least 1, since weight 0 means
        # "pick only if nothing else" to RFC 2782 clients.
        weight = max(1, 100 // len(targets))
        for number, host in targets:
            b.add(srv_owner, SRV(0, weight, number, host))


# -- answering ------------------------------------------------------------------------------


def answer(zone: Zone, qname: str, qtype: int) -> Answer:
    """The answer to ``qname`` (any case, dot optional) type ``qtype`` from ``zone`` (module
    doc). Records owned by the question name carry it as asked, so a client that randomises
    case (DNS 0x20) sees its own spelling back."""
    owner = qname if qname.endswith(".") else qname + "."
    name = owner.lower()
    if not zone.covers(name):
        return NOT_OURS
    answers: list[Record] = []
    for _ in range(MAX_CNAME_CHAIN):
        node = zone.rrsets.get(name)
        if node is None:
            return _no_such_name(zone, name, owner, qtype, answers)
        cname = node.get(RType.CNAME)
        if cname and qtype not in (RType.CNAME, RType.ANY):
            target = cname[0]
            assert isinstance(target, CNAME)
            answers.append(Record(owner, zone.ttl, target))
            if not zone.covers(target.target):
                return Answer(Rcode.NOERROR, tuple(answers), chase=target.target)
            owner = name = target.target
            continue
        if qtype == RType.ANY:
            found = [d for datas in node.values() for d in datas]
        else:
            rtype = _rtype(qtype)
            found = list(node.get(rtype, ())) if rtype is not None else []
        if not found:
            return Answer(Rcode.NOERROR, tuple(answers), authority=_soa_for(zone, name))
        answers.extend(Record(owner, zone.ttl, d) for d in found)
        return Answer(Rcode.NOERROR, tuple(answers), additionals=_additionals(zone, found))
    # A CNAME loop, or a chain too long to be sane: what we have, and nothing more.
    return Answer(Rcode.SERVFAIL, tuple(answers))


def _rtype(qtype: int) -> RType | None:
    try:
        return RType(qtype)
    except ValueError:
        return None  # MX, HTTPS, ...: types we never hold, so NODATA where the name exists


def _no_such_name(zone: Zone, name: str, owner: str, qtype: int,
                  answers: list[Record]) -> Answer:
    pod = zone.pod_address(name)
    if pod is not None:
        address, is_v6 = pod
        want = RType.AAAA if is_v6 else RType.A
        if qtype in (want, RType.ANY):
            answers.append(Record(owner, zone.ttl, _address_data(address, is_v6)))
            return Answer(Rcode.NOERROR, tuple(answers))
        return Answer(Rcode.NOERROR, tuple(answers), authority=(zone.soa,))
    if zone.exists(name):
        return Answer(Rcode.NOERROR, tuple(answers), authority=(zone.soa,))
    return Answer(Rcode.NXDOMAIN, tuple(answers), authority=(zone.soa,))


def _soa_for(zone: Zone, name: str) -> tuple[Record, ...]:
    # Our PTR owners live in someone else's reverse zone: we hold no SOA for it, and a wrong
    # SOA would poison resolvers' negative caches for the whole reverse zone.
    return (zone.soa,) if name.endswith(zone.origin) else ()


def _additionals(zone: Zone, found: Iterable[RData]) -> tuple[Record, ...]:
    """Addresses of SRV targets (RFC 2782 recommends them), and of NS targets."""
    out: dict[Record, None] = {}
    for d in found:
        if isinstance(d, SRV | NS):
            for rtype in (RType.A, RType.AAAA):
                for data in zone.lookup(d.target, rtype):
                    out[Record(d.target, zone.ttl, data)] = None
    return tuple(out)
