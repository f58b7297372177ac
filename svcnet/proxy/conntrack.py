"""Stale UDP conntrack entries: removed when an endpoint goes away or a Service is deleted.

UDP has no connection teardown, so a NAT'd flow keeps its conntrack entry — and its DNAT target
— for as long as packets keep coming: a client that talks to a ClusterIP from one source port
would keep hitting a deleted endpoint forever. After each successful sync, as kube-proxy does,
the proxy deletes exactly the entries that point somewhere the ruleset no longer sends UDP:

* for every UDP frontend (ClusterIP, external IP, LoadBalancer IP, ``:port``; or the NodePort),
  entries whose DNAT target is an endpoint that is no longer serving it;
* for a UDP frontend that disappeared (Service deleted, port removed), all its entries.

Each IP family is planned on its own (one snapshot per family, as kube-proxy runs one proxier
per family): IPv6 deletions run ``conntrack -f ipv6``, so that a NodePort's entries of one
family are never taken for the other's. Entries are never flushed wholesale. The plan is pure
(:func:`plan_cleanup`, over ``frontend → endpoint set`` snapshots); :class:`Conntrack` runs
``conntrack -D`` with matching filters inside the node's namespace. Without the ``conntrack``
tool, cleanup is skipped with a warning, and UDP flows to removed endpoints time out as they
would without cleanup.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from svcnet.proxy.model import endpoints_by_port, service_ports
from svcnet.proxy.topology import categorize_endpoints

log = logging.getLogger(__name__)

Obj = Mapping[str, Any]
Frontend = tuple[str, int]
"""(address, port) for IP frontends; ("", nodePort) for a NodePort."""


@dataclass(frozen=True, slots=True)
class Deletion:
    frontend: Frontend
    endpoint: str | None
    """The stale DNAT target; None deletes every entry of the frontend."""
    family: str = "IPv4"

    def argv(self) -> list[str]:
        address, port = self.frontend
        args = ["-D", "-f", "ipv6"] if self.family == "IPv6" else ["-D"]
        args += ["-p", "udp"]
        if address:
            args += ["--orig-dst", address]
        args += ["--orig-port-dst", str(port)]
        if self.endpoint is not None:
            args += ["--reply-src", self.endpoint]
        return args


def udp_frontends(services: Iterable[Obj], slices: Iterable[Obj], node_name: str,
                  zone: str | None = None, family: str = "IPv4"
                  ) -> dict[Frontend, frozenset[str]]:
    """Every UDP frontend of ``family`` and the endpoint addresses it may be DNATed to. Pure."""
    by_port = endpoints_by_port(list(slices), family)
    out: dict[Frontend, set[str]] = {}
    for svc in services:
        for sp in service_ports(svc, family):
            if sp.protocol != "UDP":
                continue
            endpoints = by_port.get(sp.name, ())
            usable = categorize_endpoints(endpoints, sp, node_name, zone)
            addresses = {e.ip for e in (*usable.cluster, *usable.local)}
            for ip in (sp.cluster_ip, *sp.external_ips, *sp.load_balancer_ips):
                out.setdefault((ip, sp.port), set()).update(addresses)
            if sp.node_port:
                out.setdefault(("", sp.node_port), set()).update(addresses)
    return {k: frozenset(v) for k, v in out.items()}


def plan_cleanup(before: Mapping[Frontend, frozenset[str]],
                 after: Mapping[Frontend, frozenset[str]], family: str = "IPv4"
                 ) -> list[Deletion]:
    """What to delete after ``before`` was replaced by ``after`` (frontends of ``family``).
    Pure."""
    plan = []
    for frontend, old in sorted(before.items()):
        new = after.get(frontend)
        if new is None:
            plan.append(Deletion(frontend, None, family))
            continue
        plan += [Deletion(frontend, ep, family) for ep in sorted(old - new)]
    return plan


class Conntrack:
    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.available = shutil.which("conntrack") is not None
        if not self.available:
            log.warning("conntrack is not installed: stale UDP flows are not cleared")

    async def apply(self, deletions: Iterable[Deletion]) -> int:
        if not self.available:
            return 0
        done = 0
        for d in deletions:
            proc = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", self.netns, "conntrack", *d.argv(),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            # Exit status 1 means "no matching entries": nothing was stale.
            if await proc.wait() == 0:
                done += 1
        return done
