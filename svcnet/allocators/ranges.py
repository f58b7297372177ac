"""What can be allocated: service CIDRs, the NodePort range and LoadBalancer pools (pure).

Each range maps its items (IP addresses or port numbers) to offsets ``0..size-1`` and knows its
*static band*: the lower offsets that dynamic allocation avoids until the rest is full, so that
users who pick an address or port by hand rarely collide with one handed out at random
(KEP-3070 for ClusterIPs, KEP-3668 for NodePorts). LoadBalancer pools have no band and hand out
their lowest free address first, as MetalLB does.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Upstream's IPAddress allocator (ipallocator.go) counts at most 2^64 - 1 addresses and
#: refuses IPv6 service CIDRs shorter than /64.
_MAX_SIZE = (1 << 64) - 1
MIN_IPV6_SERVICE_PREFIX = 64


class Range(Protocol):
    """A contiguous space of allocatable items, addressed by offset."""

    @property
    def kind(self) -> str:
        """Allocation kind, the store key segment: "clusterip", "nodeport" or "lbip"."""
        ...

    @property
    def size(self) -> int: ...

    @property
    def static_size(self) -> int: ...

    @property
    def lowest_first(self) -> bool: ...

    def offset_of(self, item: str) -> int | None:
        """The item's offset, or None if it is not in the range (or not parseable)."""
        ...

    def item_at(self, offset: int) -> str: ...

    def describe(self) -> str:
        """How Kubernetes names the range in 'not in the valid range' messages."""
        ...


def service_cidr_static_size(cidr_size: int) -> int:
    """KEP-3070: ``min(max(16, size/16), 256)``, and no static band for ranges of ≤ 16."""
    if cidr_size <= 16:
        return 0
    return min(max(16, cidr_size // 16), 256)


def node_port_static_size(range_size: int) -> int:
    """KEP-3668: ``min(max(16, size/32), 128)``, and no static band for ranges of ≤ 16."""
    if range_size <= 16:
        return 0
    return min(max(16, range_size // 32), 128)


@dataclass(frozen=True)
class ServiceCIDR:
    """A service CIDR. Offsets start at network+1; IPv4 excludes the broadcast address, IPv6
    does not (its all-ones address is the last one handed out), as upstream's IPAddress
    allocator counts them (hostsPerNetwork): a /112 holds 65535 addresses, a /64 2^64 - 1."""

    network: IPNetwork
    kind: str = "clusterip"
    lowest_first: bool = False
    size: int = field(init=False)
    static_size: int = field(init=False)

    def __post_init__(self) -> None:
        total = self.network.num_addresses
        if self.network.version == 4:
            usable = max(total - 2, 0)
        else:
            usable = min(max(total - 1, 0), _MAX_SIZE)
        object.__setattr__(self, "size", usable)
        object.__setattr__(self, "static_size", service_cidr_static_size(total))

    @classmethod
    def parse(cls, text: str) -> ServiceCIDR:
        net = ipaddress.ip_network(text.strip(), strict=True)
        if net.num_addresses < 4 and net.version == 4:
            raise ValueError(f"service CIDR {text} is too small")
        if net.version == 6 and net.prefixlen < MIN_IPV6_SERVICE_PREFIX:
            raise ValueError("shortest allowed prefix length for service CIDR is "
                             f"{MIN_IPV6_SERVICE_PREFIX}, got {net.prefixlen}")
        return cls(net)

    @property
    def family(self) -> str:
        return "IPv4" if self.network.version == 4 else "IPv6"

    def offset_of(self, item: str) -> int | None:
        try:
            ip = ipaddress.ip_address(item)
        except ValueError:
            return None
        if ip.version != self.network.version or ip not in self.network:
            return None
        offset = int(ip) - int(self.network.network_address) - 1
        if not 0 <= offset < self.size:
            return None
        return offset

    def item_at(self, offset: int) -> str:
        return str(self.network.network_address + offset + 1)

    def describe(self) -> str:
        return str(self.network)


@dataclass(frozen=True)
class PortRange:
    """The NodePort range, inclusive at both ends (default 30000-32767)."""

    base: int = 30000
    last: int = 32767
    kind: str = "nodeport"
    lowest_first: bool = False

    @property
    def size(self) -> int:
        return self.last - self.base + 1

    @property
    def static_size(self) -> int:
        return node_port_static_size(self.size)

    @classmethod
    def parse(cls, text: str) -> PortRange:
        lo, sep, hi = text.strip().partition("-")
        if not sep:
            raise ValueError(f"port range {text!r} must look like A-B")
        base, last = int(lo), int(hi)
        if not 1 <= base <= last <= 65535:
            raise ValueError(f"port range {text!r} must lie within 1-65535 with A <= B")
        return cls(base, last)

    def offset_of(self, item: str) -> int | None:
        try:
            port = int(item)
        except ValueError:
            return None
        if not self.base <= port <= self.last:
            return None
        return port - self.base

    def item_at(self, offset: int) -> str:
        return str(self.base + offset)

    def describe(self) -> str:
        return f"{self.base}-{self.last}"


@dataclass(frozen=True)
class AddressPool:
    """A LoadBalancer pool: one or more address ranges (``A-B``) or CIDRs, lowest first.

    A CIDR pool hands out every address in it, network and broadcast included, as MetalLB
    does by default (a LoadBalancer IP is a host route, not a subnet).
    """

    name: str
    spans: tuple[tuple[int, int, int], ...]
    """(first address as int, count, IP version) per span, in the order given."""
    kind: str = "lbip"
    lowest_first: bool = True
    static_size: int = 0

    @classmethod
    def parse(cls, text: str, default_name: str = "default") -> AddressPool:
        """``[NAME=]SPEC[,SPEC...]`` where SPEC is ``A-B`` or a CIDR."""
        name, sep, specs = text.partition("=")
        if not sep:
            name, specs = default_name, text
        spans: list[tuple[int, int, int]] = []
        for raw in specs.split(","):
            spec = raw.strip()
            if "-" in spec:
                lo_s, _, hi_s = spec.partition("-")
                lo, hi = ipaddress.ip_address(lo_s.strip()), ipaddress.ip_address(hi_s.strip())
                if lo.version != hi.version or int(hi) < int(lo):
                    raise ValueError(f"address range {spec!r} is not A-B with A <= B")
                spans.append((int(lo), int(hi) - int(lo) + 1, lo.version))
            else:
                net = ipaddress.ip_network(spec, strict=True)
                spans.append((int(net.network_address), min(net.num_addresses, 1 << 20),
                              net.version))
        if not spans:
            raise ValueError(f"address pool {text!r} is empty")
        return cls(name.strip(), tuple(spans))

    @property
    def size(self) -> int:
        return sum(count for _, count, _ in self.spans)

    def offset_of(self, item: str) -> int | None:
        try:
            ip = ipaddress.ip_address(item)
        except ValueError:
            return None
        base = 0
        for first, count, version in self.spans:
            if ip.version == version and first <= int(ip) < first + count:
                return base + int(ip) - first
            base += count
        return None

    def item_at(self, offset: int) -> str:
        for first, count, version in self.spans:
            if offset < count:
                value = first + offset
                return str(ipaddress.IPv4Address(value) if version == 4
                           else ipaddress.IPv6Address(value))
            offset -= count
        raise IndexError(offset)

    def family_spans(self, family: str) -> Iterator[range]:
        """The offset ranges of this pool's addresses of one family ("IPv4"/"IPv6")."""
        base = 0
        want = 4 if family == "IPv4" else 6
        for _, count, version in self.spans:
            if version == want:
                yield range(base, base + count)
            base += count

    def describe(self) -> str:
        parts = []
        for first, count, version in self.spans:
            make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
            parts.append(f"{make(first)}-{make(first + count - 1)}")
        return ",".join(parts)


def parse_pools(specs: Sequence[str]) -> list[AddressPool]:
    pools = [AddressPool.parse(s, default_name=f"pool-{i}") for i, s in enumerate(specs)]
    names = [p.name for p in pools]
    if len(set(names)) != len(names):
        raise ValueError(f"address pool names must be unique: {names}")
    spans = sorted((first, first + count, version, p.name)
                   for p in pools for first, count, version in p.spans)
    for a, b in itertools.pairwise(spans):
        if a[2] == b[2] and b[0] < a[1]:
            raise ValueError(f"address pools {a[3]} and {b[3]} overlap")
    return pools
