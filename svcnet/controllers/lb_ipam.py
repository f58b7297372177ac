"""The LoadBalancer IP controller: gives ``type: LoadBalancer`` Services their addresses.

Theory of operation
-------------------
It runs inside ``svcnet server`` but talks to the API like any client: an informer on Services
feeds a work queue of ``namespace/name`` keys; one worker at a time per key runs the
level-triggered :meth:`LoadBalancerIPController.sync`, which

1. reads the Service from the informer cache (gone → nothing to do: the registry released its
   addresses when it deleted it);
2. refuses to act on a cache older than its own last status write for that key (else
   it would assign a second address to a Service whose first one it cannot see yet);
3. asks the pure :func:`plan` what to do, and applies the answer:

   * :class:`Assign`: ``ipam.assign(svc)`` picks (and allocates, as store keys) the addresses
     the Service should have; if they differ from ``status.loadBalancer.ingress``, write
     ``[{"ip": ip, "ipMode": "VIP"}, ...]`` through the ``status`` subresource, conditional on the
     cached resourceVersion. On a definite refusal (any 4xx: a 409 conflict, the Service is
     gone, ...) the addresses allocated *for this write* are released and the key is retried.
     On an uncertain outcome (5xx, connection lost) nothing is released: the write may have
     committed, and leaking an address until the repair loop reclaims it is better than handing
     it out twice (svcnet/allocators/operation.py). A Normal ``IPAllocated`` Event reports
     success.
     If ``assign`` refuses (:class:`~svcnet.api.lbips.AssignmentError`, e.g. the pools are
     exhausted) a Warning Event with the error's reason (``AllocationFailed``) is recorded on the
     Service and the key is retried with back-off; the Service stays pending meanwhile.
   * :class:`Clear`: the Service no longer wants our addresses (its type changed, it has a
     ``loadBalancerClass``) but its status still shows some from our pools: write the status
     without them. The Service registry releases addresses dropped from status *after* that
     write commits, so the controller never releases them itself.
   * :class:`Skip`: nothing to do.

Because pending Services wait on back-off, the controller also re-queues every pending Service
whenever addresses may have been freed (a Service with ingress addresses is deleted or gives them
up), as MetalLB does; the informer's periodic resync catches anything else.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from svcnet.api.errors import StatusError
from svcnet.api.lbips import (
    ANNOTATION_POOL,
    AssignmentError,
    ingress_ips,
    requested_ips,
    wants_load_balancer_ips,
)
from svcnet.client.controller import Controller, RequeueError
from svcnet.client.events import EventRecorder, EventSink
from svcnet.client.informer import EventHandler, Informer, InformerFactory, object_key
from svcnet.client.rest import GVR, SERVICES, RESTClient
from svcnet.client.workqueue import RateLimitingQueue
from svcnet.util.clock import Clock, RealClock

__all__ = [
    "COMPONENT",
    "Action",
    "Assign",
    "Clear",
    "LoadBalancerIPController",
    "Skip",
    "ingress_for",
    "plan",
    "with_ingress",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
COMPONENT: Final = "svcnet-lb-ipam"
IP_MODE: Final = "VIP"
DEFAULT_RESYNC: Final = 300.0


# -- the pure part --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str


@dataclass(frozen=True, slots=True)
class Assign:
    """Ask the IPAM for the Service's addresses and write them if they differ."""

    reason: str


@dataclass(frozen=True, slots=True)
class Clear:
    """Write ``ingress`` (the entries that are not ours) instead of the current ingress."""

    ips: tuple[str, ...]
    ingress: tuple[Mapping[str, Any], ...]


Action = Skip | Assign | Clear

PoolOf = Callable[[str], str | None]
"""An address's pool name, or None if it is in none of our pools."""


def _family(ip: str) -> str:
    return "IPv6" if ":" in ip else "IPv4"


def _ingress(svc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    lb = (svc.get("status") or {}).get("loadBalancer") or {}
    return [i for i in lb.get("ingress") or [] if isinstance(i, Mapping)]


def plan(svc: Obj | None, pool_of: PoolOf) -> Action:
    """What the controller should do about ``svc`` (None: it no longer exists)."""
    if svc is None:
        return Skip("deleted")
    meta = svc.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return Skip("being deleted")
    ips = ingress_ips(svc)
    if not wants_load_balancer_ips(svc):
        ours = tuple(ip for ip in ips if pool_of(ip) is not None)
        if not ours:
            return Skip("not a LoadBalancer we serve")
        # Only a LoadBalancer may have ingress at all (validation); for one with another
        # loadBalancerClass, entries its own controller wrote stay.
        is_lb = (svc.get("spec") or {}).get("type") == "LoadBalancer"
        keep = tuple(i for i in _ingress(svc)
                     if is_lb and not (i.get("ip") and pool_of(i["ip"])))
        return Clear(ours, keep)
    if not ips:
        return Assign("no addresses yet")
    requested = requested_ips(svc)
    if requested and sorted(requested) != sorted(ips):
        return Assign("requested addresses differ from status")
    families = list((svc.get("spec") or {}).get("ipFamilies") or ["IPv4"])
    have = [_family(ip) for ip in ips]
    if any(f not in families for f in have):
        return Assign("an address of a family the Service no longer has")
    if not requested and any(f not in have for f in families):
        # A secondary family may have had no free address when we last tried.
        return Assign("a family without an address")
    pool = ((meta.get("annotations") or {}).get(ANNOTATION_POOL) or "").strip()
    if pool and any(pool_of(ip) != pool for ip in ips):
        return Assign("an address outside the requested pool")
    return Skip("up to date")


def ingress_for(ips: Sequence[str]) -> list[Obj]:
    return [{"ip": ip, "ipMode": IP_MODE} for ip in ips]


def with_ingress(svc: Obj, ingress: Sequence[Mapping[str, Any]]) -> Obj | None:
    """A copy of ``svc`` whose status carries ``ingress``; None if it already does."""
    if [dict(i) for i in _ingress(svc)] == [dict(i) for i in ingress]:
        return None
    out = copy.deepcopy(svc)
    status = out.get("status")
    if not isinstance(status, dict):
        status = out["status"] = {}
    lb = status.get("loadBalancer")
    if not isinstance(lb, dict):
        lb = status["loadBalancer"] = {}
    if ingress:
        lb["ingress"] = [dict(i) for i in ingress]
    else:
        lb.pop("ingress", None)
    return out


# -- the applying part ----------------------------------------------------------------------


class ServiceStatusClient(EventSink, Protocol):
    """The writes the controller makes (RESTClient fits)."""

    async def update_status(self, gvr: GVR, obj: Obj, *, dry_run: bool = False,
                            field_manager: str = "") -> Obj: ...


class AddressManager(Protocol):
    """The pools' bookkeeping this controller drives (the API server's
    :class:`svcnet.registry.lb_ipam.LoadBalancerIPAM` fits): it decides which addresses a
    Service gets and records them store-arbitrated, so two control planes never hand out one
    address twice; this controller decides *when*, and writes Service status over the API."""

    def pool_name_of(self, ip: str) -> str | None: ...

    async def assign(self, svc: Obj) -> list[str]:
        """The addresses ``svc`` should have, now held for it; AssignmentError if none."""
        ...

    async def release(self, svc: Obj, ips: Sequence[str]) -> None: ...


class LoadBalancerIPController:
    """Assigns LoadBalancer IPs from ``ipam`` into Service status (see the module doc).

    ``services`` is an informer on Services whose events this controller consumes; tests pass
    one that is never started and fill its indexer directly, then call :meth:`sync`.
    Use :meth:`from_client` to build the usual one.
    """

    def __init__(self, client: ServiceStatusClient, ipam: AddressManager,
                 services: Informer, *, clock: Clock | None = None, workers: int = 1,
                 recorder: EventRecorder | None = None,
                 resync_period: float | None = None) -> None:
        self._client = client
        self.ipam = ipam
        self.services = services
        self._clock: Clock = clock or RealClock()
        self.recorder = recorder or EventRecorder(client, COMPONENT, clock=self._clock)
        self.controller = Controller(COMPONENT, self.sync, informers=[services],
                                     workers=workers, clock=self._clock)
        self._written: dict[str, int] = {}
        """key → resourceVersion of our last status write, until the cache shows it."""
        self.handler = EventHandler(on_add=self._on_add, on_update=self._on_update,
                                    on_delete=self._on_delete)
        """What this controller registered on ``services`` (tests call it directly)."""
        services.add_handler(self.handler, resync_period=resync_period)

    @classmethod
    def from_client(cls, client: RESTClient, ipam: AddressManager, *,
                    clock: Clock | None = None, resync_period: float = DEFAULT_RESYNC,
                    workers: int = 1, informers: InformerFactory | None = None
                    ) -> LoadBalancerIPController:
        """The usual wiring: a Service informer over ``client``, which also does the writes."""
        factory = InformerFactory.of(informers, client, clock=clock)
        return cls(client, ipam, factory.informer(SERVICES, name="services"), clock=clock,
                   workers=workers, resync_period=resync_period)

    @property
    def queue(self) -> RateLimitingQueue[str]:
        return self.controller.queue

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the informer and the workers (which wait for the informer to sync)."""
        self.services.start()
        self.controller.start()

    async def stop(self) -> None:
        await self.controller.stop()
        await self.services.stop()

    def has_synced(self) -> bool:
        return self.services.has_synced()

    # -- event handlers: keys only ----------------------------------------------------------

    def _on_add(self, svc: Obj) -> None:
        self.controller.queue.add(object_key(svc))

    def _on_update(self, old: Obj, new: Obj) -> None:
        self.controller.queue.add(object_key(new))
        if set(ingress_ips(old)) - set(ingress_ips(new)):
            self._requeue_pending()

    def _on_delete(self, svc: Obj) -> None:
        key = object_key(svc)
        self.controller.queue.add(key)
        if ingress_ips(svc):
            self._requeue_pending()

    def _requeue_pending(self) -> None:
        """Addresses may have been freed: retry Services waiting for one, now."""
        for svc in self.services.list():
            if wants_load_balancer_ips(svc) and not ingress_ips(svc):
                self.controller.queue.add(object_key(svc))

    # -- sync -------------------------------------------------------------------------------

    def _pool_of(self, ip: str) -> str | None:
        return self.ipam.pool_name_of(ip)

    async def sync(self, key: str) -> None:
        svc = self.services.get(key)
        if svc is None:
            self._written.pop(key, None)
            return
        if self._is_stale(key, svc):
            raise RequeueError("informer cache is older than our last status write")
        action = plan(svc, self._pool_of)
        log.debug("%s: %s", key, action)
        match action:
            case Skip():
                return
            case Assign():
                await self._assign(key, svc)
            case Clear(ips=ips, ingress=keep):
                updated = with_ingress(svc, keep)
                if updated is not None and await self._write(key, svc, updated, newly=()):
                    log.info("%s: cleared load-balancer addresses %s", key, ", ".join(ips))

    def _is_stale(self, key: str, svc: Obj) -> bool:
        written = self._written.get(key)
        if written is None:
            return False
        try:
            seen = int((svc.get("metadata") or {}).get("resourceVersion") or 0)
        except ValueError:
            return False  # not our numeric revisions: cannot tell, trust the server's 409
        if seen >= written:
            del self._written[key]  # the cache caught up
            return False
        return True

    async def _assign(self, key: str, svc: Obj) -> None:
        try:
            ips = await self.ipam.assign(svc)
        except AssignmentError as e:
            await self.recorder.warning(svc, e.reason, str(e))
            raise RequeueError(f"{e.reason}: {e}") from e
        held = set(ingress_ips(svc))
        newly = [ip for ip in ips if ip not in held]
        updated = with_ingress(svc, ingress_for(ips))
        if updated is None:
            return
        if not await self._write(key, svc, updated, newly):
            return
        if newly:
            log.info("%s: assigned load-balancer addresses %s", key, ", ".join(ips))
            # MetalLB's wording, Go-quoted: Assigned IP ["192.0.2.10"]
            await self.recorder.normal(svc, "IPAllocated", f"Assigned IP {json.dumps(ips)}")

    async def _write(self, key: str, svc: Obj, updated: Obj, newly: Sequence[str]) -> bool:
        """Write ``updated``'s status; False if the Service is gone. ``newly`` are addresses
        allocated for this write, released again if the server refuses it."""
        try:
            result = await self._client.update_status(SERVICES, updated)
        except StatusError as e:
            if newly and 400 <= e.code < 500:
                # The server refused the write: nothing refers to these addresses.
                await self.ipam.release(svc, newly)
            if e.code == 404:
                return False  # deleted meanwhile; its delete event is on its way
            if e.code == 409:
                raise RequeueError(f"status write conflicted: {e}") from e
            raise
        rv = str((result.get("metadata") or {}).get("resourceVersion") or "")
        if rv.isdigit():
            self._written[key] = int(rv)
        return True
