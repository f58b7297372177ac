"""Names of the per-service objects in the table (the few there are).

Fixed names (``services``, ``lb-3``, ``service-ips``...) are plain. The only per-service objects
are those of ClientIP session affinity: a chain per service port (``sticky-…``, and
``sticky-local-…`` for Local-policy traffic) and a timed set per endpoint (``affinity-…``).
Like kube-proxy, their names are ``<prefix><HASH>-<namespace>/<name>/<protocol>/<port name>``
(plus ``__<ip>/<port>`` for an endpoint, an IPv6 one with ``.`` for ``:``): readable in ``nft
list``, and the 8-character base32 SHA-256 prefix keeps them unique and tells near-identical
names apart at a glance. ``/`` is legal inside nft identifiers and cannot occur in namespaces,
names or port names, so the parts cannot run into each other. Names stay far below the kernel's
256-byte limit (namespace and names are at most 63 bytes each); an over-long one is cut and
marked with ``...``.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final

from svcnet.proxy.model import EndpointInfo, ServicePortName

__all__ = [
    "STICKY_PREFIXES",
    "affinity_set",
    "chain_of_count_set",
    "hash_name",
    "lb_chain",
    "lb_count_set",
    "lb_local_chain",
    "lb_local_count_set",
    "service_port_id",
    "sticky_chain",
    "sticky_local_chain",
]

_BASE_MAX: Final = 220


def hash_name(name: str) -> str:
    """``HASH-name``: 8 base32 characters of SHA-256, then the name (cut if very long)."""
    digest = base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()[:8]
    full = f"{digest}-{name}"
    return full if len(full) <= _BASE_MAX else full[:_BASE_MAX - 3] + "..."


def service_port_id(spn: ServicePortName) -> str:
    """``namespace/name/protocol/portname``: how a service port is written in names and
    comments (the protocol is part of it: DNS has a TCP and a UDP port of the same name)."""
    return f"{spn.namespace}/{spn.name}/{spn.protocol.lower()}/{spn.port_name}"


def lb_chain(count: int) -> str:
    """The shared chain picking one of ``count`` endpoints through ``@backends``."""
    return f"lb-{count}"


def lb_local_chain(count: int) -> str:
    """The shared chain picking one of ``count`` node-local endpoints (``@local-backends``)."""
    return f"lb-local-{count}"


def lb_count_set(count: int) -> str:
    """The frontends (``daddr . proto . port``) whose service port has ``count`` endpoints:
    sent to :func:`lb_chain` by a rule (a set, not verdict map elements, so that a change of
    count writes no chain reference; see :mod:`svcnet.proxy.ruleset`)."""
    return f"lb-count-{count}"


def lb_local_count_set(count: int) -> str:
    """Like :func:`lb_count_set` for :func:`lb_local_chain` (node-local endpoints)."""
    return f"lb-local-count-{count}"


def chain_of_count_set(name: str) -> str | None:
    """The chain a count set's rule goes to (None: not a count set)."""
    for prefix in ("lb-local-count-", "lb-count-"):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            return prefix.removesuffix("count-") + name[len(prefix):]
    return None


#: Every per-Service chain's name starts with one of these (the others are fixed).
STICKY_PREFIXES: Final = ("sticky-",)


def sticky_chain(spn: ServicePortName) -> str:
    return "sticky-" + hash_name(service_port_id(spn))


def sticky_local_chain(spn: ServicePortName) -> str:
    return "sticky-local-" + hash_name(service_port_id(spn))


def affinity_set(spn: ServicePortName, endpoint: EndpointInfo) -> str:
    # ":" is not legal in an nft name: an IPv6 endpoint is written with "." instead (as
    # kube-proxy's endpoint chain names do); the hash keeps such names apart all the same.
    ip = endpoint.ip.replace(":", ".")
    return "affinity-" + hash_name(f"{service_port_id(spn)}__{ip}/{endpoint.port}")
