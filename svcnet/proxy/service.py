"""The service proxy as the node agent runs it: the Proxier, driven asynchronously.

The agent hands over its informer caches on every change (level-triggered, coalesced by the
agent); :meth:`NodeProxy.sync` builds and applies in a worker thread, because ``nft -f`` is a
subprocess and the agent's event loop must keep serving pods and heartbeats meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from svcnet.proxy.model import NodeInfo
from svcnet.proxy.nft.nft import SubprocessNft
from svcnet.proxy.proxier import Proxier, SyncResult
from svcnet.proxy.ruleset import ProxyConfig

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def node_info(node: Obj, fallback_ip: str = "") -> NodeInfo:
    """The proxy's view of its Node: name, addresses that serve NodePorts, zone."""
    meta = node.get("metadata") or {}
    addresses = tuple(a["address"] for a in (node.get("status") or {}).get("addresses") or []
                      if a.get("type") in ("InternalIP", "ExternalIP") and a.get("address"))
    if not addresses and fallback_ip:
        addresses = (fallback_ip,)
    zone = (meta.get("labels") or {}).get("topology.kubernetes.io/zone")
    return NodeInfo(str(meta.get("name", "")), addresses, zone)


class NodeProxy:
    def __init__(self, netns: str, *, node_ip: str = "",
                 cluster_cidrs: Sequence[str] = ("10.244.0.0/16",)) -> None:
        self.netns = netns
        self.node_ip = node_ip
        self.proxier = Proxier(SubprocessNft(netns),
                               ProxyConfig(cluster_cidrs=tuple(cluster_cidrs)))
        self.last: SyncResult | None = None

    async def sync(self, services: list[Obj], endpoint_slices: list[Obj], node: Obj) -> None:
        info = node_info(node, self.node_ip)
        result = await asyncio.to_thread(self.proxier.sync, services, endpoint_slices, info)
        self.last = result
        if result.changed:
            log.info("proxy sync (%s) in %.1f ms: %s", "full" if result.full else "partial",
                     result.duration * 1000, dict(result.counts))
