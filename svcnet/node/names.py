"""Kernel-safe, deterministic names for everything a node agent creates.

Theory of operation
-------------------
Two name spaces matter, and they have different scopes:

* **Host-global names** live in ``/run/netns`` (network namespaces) or in the root network
  namespace (the node-network bridge and the host ends of the node uplinks). Every cluster on
  the machine shares them, so each such name starts with the cluster's prefix
  ``svcnet-<tag>-`` and matches one exact pattern (:meth:`ClusterNames.owns_netns`), which is
  what lets ``svcnet down`` find and remove a crashed cluster's namespaces without any state
  file, and without ever touching cluster ``t4x``'s namespaces when asked to remove ``t4``.
* **Names inside a namespace** (the pod bridge and the pods' host-side veths inside a node
  netns, ``eth0`` inside a pod netns) only need to be unique in that namespace, and vanish
  with it. They carry no cluster prefix.

The kernel refuses interface names longer than 15 bytes (``IFNAMSIZ`` - 1; iproute2 reports
"Attribute failed policy validation"). Namespace names have no such kernel limit, but the
design fixes 15 characters for them too, so every name here fits in 15 characters, and
:func:`check_name` is the one validator both :mod:`svcnet.node.netns` implementations use.

The budget is tight: ``svcnet-`` (7) + tag + ``-`` (1) + ``p`` (1) leaves ``6 - len(tag)``
characters for a pod's identity. Hence the **cluster tag**: the cluster name itself when it is
at most 2 characters of ``[a-z0-9]`` (``t4`` → ``svcnet-t4-n1``), otherwise a 2-character hash
of it (``svcnet`` → ``svcnet-b7-n1``). With a 2-character tag a pod netns keeps 4 hash
characters (20 bits; the collision risk is about 0.1% for 50 pods, 1% for 150); a
1-character cluster name buys 25 bits. Two clusters whose tags collide (a 1-in-1024 chance for
two hashed names) would share a prefix; ``svcnet up`` should refuse to create a cluster whose
tag equals a running cluster's.

Hashes are SHA-256 in lowercase base32 (``a-z2-7``): stable across Python versions and
processes (unlike ``hash()``), and every character is legal in interface and file names.

A pod's host-side veth is ``veth`` + 11 hash characters (55 bits: collisions inside one node
are out of the question), and shares its first characters with the pod netns name, so
``ip -n svcnet-t4-n1 link`` can be read against ``ip netns list`` by eye.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_NAME_LEN",
    "NODE_UPLINK_IN_NETNS",
    "POD_BRIDGE",
    "POD_VETH",
    "PREFIX",
    "ClusterNames",
    "InvalidName",
    "PodNetworkNames",
    "check_name",
    "cluster_tag",
    "pod_host_veth",
    "short_hash",
]

PREFIX: Final = "svcnet-"
MAX_NAME_LEN: Final = 15
"""The kernel's interface name limit (IFNAMSIZ 16, minus the terminating NUL)."""

POD_BRIDGE: Final = "svcnet0"
"""The bridge inside each node netns that holds the pod gateway (``10.244.<i>.1/24``)."""
POD_VETH: Final = "eth0"
"""A pod's end of its veth pair, inside the pod netns (what Kubernetes pods see)."""
NODE_UPLINK_IN_NETNS: Final = "eth0"
"""A node's end of its uplink veth, inside the node netns."""

_VERBATIM_TAG_MAX: Final = 2
_HASHED_TAG_LEN: Final = 2
_HOST_VETH_PREFIX: Final = "veth"
_MAX_NODE_INDEX: Final = 9999
_TAG_RE: Final = re.compile(r"[a-z0-9]+")
_PREFIX_RE: Final = re.compile(rf"{re.escape(PREFIX)}([a-z0-9]{{1,{_VERBATIM_TAG_MAX}}})-")
# What the kernel's dev_valid_name() rejects, plus '%' (a printf template for the kernel) and
# anything outside printable ASCII, which no name of ours ever needs.
_NAME_RE: Final = re.compile(r"[A-Za-z0-9._@+=-]+")


class InvalidName(ValueError):
    """A name the kernel (or the 15-character rule) would refuse."""


def check_name(name: str) -> str:
    """Return ``name`` if it is a usable interface/netns name, else raise :class:`InvalidName`."""
    if not name:
        raise InvalidName("name must not be empty")
    if len(name.encode()) > MAX_NAME_LEN:
        raise InvalidName(f"name {name!r} is longer than {MAX_NAME_LEN} characters")
    if name in (".", "..") or not _NAME_RE.fullmatch(name):
        raise InvalidName(f"name {name!r} has characters an interface name cannot hold")
    return name


def short_hash(value: str, length: int) -> str:
    """``length`` lowercase base32 characters of SHA-256(value): deterministic everywhere."""
    if not 1 <= length <= 52:
        raise ValueError(f"hash length {length} out of range")
    digest = base64.b32encode(hashlib.sha256(value.encode()).digest()).decode()
    return digest[:length].lower()


def cluster_tag(cluster: str) -> str:
    """The cluster's part of every host-global name (see the module docstring)."""
    if not cluster:
        raise InvalidName("cluster name must not be empty")
    if len(cluster) <= _VERBATIM_TAG_MAX and _TAG_RE.fullmatch(cluster):
        return cluster
    return short_hash(f"cluster:{cluster}", _HASHED_TAG_LEN)


@dataclass(frozen=True, slots=True)
class PodNetworkNames:
    """Every name one pod's network touches, as :func:`svcnet.node.netns.plan_pod_network` uses."""

    node_netns: str
    bridge: str
    pod_netns: str
    host_veth: str
    pod_veth: str = POD_VETH


@dataclass(frozen=True, slots=True)
class ClusterNames:
    """Names for one cluster; build with :meth:`for_cluster`."""

    cluster: str
    tag: str

    @classmethod
    def for_cluster(cls, cluster: str) -> ClusterNames:
        return cls(cluster, cluster_tag(cluster))

    @classmethod
    def for_prefix(cls, prefix: str) -> ClusterNames:
        """The names of the cluster whose host-global names start with ``prefix``
        (``svcnet-<tag>-``, what :attr:`prefix` returns), for a process that is told the prefix
        rather than the cluster (the CNI plugin's ``netnsPrefix``). Every name depends on the
        tag only; a hashed tag does not give the cluster's name back, so ``cluster`` is the tag.
        """
        m = _PREFIX_RE.fullmatch(prefix)
        if m is None:
            raise InvalidName(f"{prefix!r} is not a cluster prefix ({PREFIX}<tag>-)")
        return cls(m[1], m[1])

    @property
    def prefix(self) -> str:
        """``svcnet-<tag>-``: every host-global name of the cluster starts with it."""
        return f"{PREFIX}{self.tag}-"

    @property
    def node_bridge(self) -> str:
        """The node-network bridge in the root namespace (holds ``172.20.0.1``)."""
        return check_name(f"{PREFIX}{self.tag}")

    def node_netns(self, index: int) -> str:
        """Node ``index``'s (1-based) network namespace: ``svcnet-<tag>-n<index>``."""
        if not 1 <= index <= _MAX_NODE_INDEX:
            raise InvalidName(f"node index {index} out of range 1-{_MAX_NODE_INDEX}")
        return check_name(f"{self.prefix}n{index}")

    def node_uplink_host(self, index: int) -> str:
        """The root-namespace end of node ``index``'s uplink veth.

        Interface and netns names are separate name spaces, so it reuses the netns name: in
        ``ip link`` on the host, ``svcnet-t4-n1`` is plainly "the cable to node 1".
        """
        return self.node_netns(index)

    @property
    def pod_id_len(self) -> int:
        return MAX_NAME_LEN - len(self.prefix) - 1

    def pod_netns(self, pod_uid: str) -> str:
        """A pod's network namespace: ``svcnet-<tag>-p<hash of uid>``, exactly 15 characters."""
        if not pod_uid:
            raise InvalidName("pod uid must not be empty")
        return check_name(f"{self.prefix}p{_pod_hash(pod_uid)[: self.pod_id_len]}")

    def pod_network(self, node_index: int, pod_uid: str) -> PodNetworkNames:
        return PodNetworkNames(
            node_netns=self.node_netns(node_index),
            bridge=POD_BRIDGE,
            pod_netns=self.pod_netns(pod_uid),
            host_veth=pod_host_veth(pod_uid),
        )

    def owns_netns(self, name: str) -> bool:
        """Is ``name`` a netns this cluster's names produce (node or pod)?

        Exact patterns, not a bare prefix test: cluster ``t4``'s prefix ``svcnet-t4-`` is also
        the start of every name cluster ``t4-x`` would make, were its tag verbatim.
        """
        rest = name.removeprefix(self.prefix)
        if rest == name:
            return False
        if re.fullmatch(r"n[1-9][0-9]*", rest):
            return int(rest[1:]) <= _MAX_NODE_INDEX
        return re.fullmatch(rf"p[a-z2-7]{{{self.pod_id_len}}}", rest) is not None


def _pod_hash(pod_uid: str) -> str:
    return short_hash(f"pod:{pod_uid}", 11)


def pod_host_veth(pod_uid: str) -> str:
    """A pod's veth end inside its node netns: ``veth`` + 11 hash characters."""
    return check_name(_HOST_VETH_PREFIX + _pod_hash(pod_uid))
