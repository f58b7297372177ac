"""A cluster's IP families: which ones its API shows, and which of them is primary.

Theory of operation
-------------------
Upstream has no single switch for this: each component learns the primary family from the
first of its dual-stack flags (kube-apiserver's ``--service-cluster-ip-range``, the
controller manager's ``--cluster-cidr``, the kubelet's ``--node-ip``), and a single-stack
IPv6 cluster is one whose flags all name IPv6 only. svcnet's nodes keep an IPv4 address on
their uplink and give every pod an internal IPv4 address (from which the pod's IPv6 address is
derived, svcnet/node/ipam.py ``pod_ipv6``), so the node agent is told which families the API
may see: :class:`IPFamilies` is that policy, the one home of "primary family" for
``svcnet up`` (svcnet/cluster) and the node agent (svcnet/node). ``pick`` filters and orders
any list of addresses or CIDRs by it:

* ``ipv4``: IPv4 only (the default);
* ``dual``: both, IPv4 first (upstream's usual dual-stack order);
* ``ipv6``: IPv6 only; IPv4 addresses the node has for its own plumbing stay out of the API.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

IP_FAMILIES: Final = ("ipv4", "dual", "ipv6")
_SHOWN: Final = {"ipv4": (4,), "dual": (4, 6), "ipv6": (6,)}


def version_of(address: str) -> int:
    """4 or 6: the family of an address, CIDR or range (``a-b``) written as text."""
    return 6 if ":" in address else 4


@dataclass(frozen=True, slots=True)
class IPFamilies:
    name: str = "ipv4"
    """One of :data:`IP_FAMILIES`."""

    def __post_init__(self) -> None:
        if self.name not in _SHOWN:
            raise ValueError(f"IP family {self.name!r}: expected one of {', '.join(IP_FAMILIES)}")

    @property
    def versions(self) -> tuple[int, ...]:
        """The families the API shows (4, 6), the primary first."""
        return _SHOWN[self.name]

    @property
    def primary(self) -> int:
        return self.versions[0]

    @property
    def ipv6_primary(self) -> bool:
        return self.primary == 6

    def pick(self, items: Iterable[str]) -> list[str]:
        """The non-empty ``items`` of the families shown, the primary family's first (the
        order within a family kept)."""
        given = [i for i in items if i]
        return [i for v in self.versions for i in given if version_of(i) == v]


DUAL: Final = IPFamilies("dual")
"""Every address given, IPv4 first: the node agent's default."""
