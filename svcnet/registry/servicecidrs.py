"""The ServiceCIDR controllers of the API server: the allocators' CIDR set, finalizer, status.

Theory of operation
-------------------
Three upstream loops meet here, all driven by ServiceCIDR changes:

* the MetaAllocator's sync (pkg/registry/core/service/ipallocator/cidrallocator.go): every
  change of a ServiceCIDR re-reads them all and hands them to
  :meth:`~svcnet.registry.service_alloc.ServiceAllocators.sync_service_cidrs`;
* the servicecidrs controller (pkg/controller/servicecidrs/servicecidrs_controller.go): a
  ServiceCIDR that is not being deleted gets the ``networking.k8s.io/service-cidr-finalizer``
  and the condition Ready=True ("Kubernetes Service CIDR is ready"); one being deleted keeps
  its finalizer, with Ready=False reason ``Terminating``, while a managed IPAddress lies in its
  range and in no other ServiceCIDR's (its CIDRs contained in another ServiceCIDR's free it at
  once); once free, the finalizer goes after ``deletion_grace`` (upstream's 10 s, so that every
  API server's allocators have stopped using the range) and the object with it;
* the default ServiceCIDR (pkg/controlplane/controller/defaultservicecidr):
  :func:`ensure_default_service_cidr`, run by the server's bootstrap, creates ``kubernetes``
  from its --service-cidr flags when it is missing, and makes a single-stack one dual-stack
  when the flags became a pair with the same primary; any other difference is left alone
  (upstream only reports it).

:func:`plan_service_cidrs` decides (pure); :class:`ServiceCIDRController` lists, applies and
waits: for a ServiceCIDR event, for an IPAddress event while some ServiceCIDR is terminating, or
for the end of a grace period. This server runs it for its own allocators; the finalizer and
status writes are idempotent, so several servers on one store agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from svcnet.api.errors import StatusError
from svcnet.api.servicecidrs import (
    DEFAULT_SERVICE_CIDR,
    IPALLOCATOR_MANAGER,
    LABEL_MANAGED_BY,
    SERVICE_CIDR_FINALIZER,
    default_service_cidr,
)
from svcnet.registry.generic import Registry
from svcnet.registry.service_alloc import ServiceAllocators
from svcnet.util.aio import wait_event
from svcnet.util.clock import Clock, parse_time, rfc3339

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Net = ipaddress.IPv4Network | ipaddress.IPv6Network

READY_MESSAGE: Final = "Kubernetes Service CIDR is ready"
TERMINATING_REASON: Final = "Terminating"
TERMINATING_MESSAGE: Final = ("There are still IPAddresses referencing the ServiceCIDR, please "
                              "remove them or create a new ServiceCIDR")
DELETION_GRACE: Final = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class CIDRAction:
    """One write to a ServiceCIDR: ``add_finalizer``, ``remove_finalizer`` or ``condition``
    (set the Ready condition to ``status``/``reason``/``message``)."""

    name: str
    action: str
    status: str = ""
    reason: str = ""
    message: str = ""


@dataclass
class CIDRPlan:
    actions: list[CIDRAction]
    #: When to look again without an event (a grace period ends), if ever.
    wake_at: datetime | None
    #: Whether a ServiceCIDR waits for IPAddresses to go (IPAddress events matter).
    blocked: bool


def _nets(obj: Obj) -> list[Net]:
    out = []
    for text in (obj.get("spec") or {}).get("cidrs") or []:
        with contextlib.suppress(ValueError):
            out.append(ipaddress.ip_network(str(text), strict=True))
    return out


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _contains(outer: Net, inner: Net) -> bool:
    return outer.version == inner.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def can_delete(cidr: Obj, all_cidrs: Sequence[Obj], ips: Sequence[str]) -> bool:
    """canDeleteCIDR: no managed IPAddress would be left in no ServiceCIDR (pure)."""
    others = [(_name(o), _nets(o)) for o in all_cidrs if _name(o) != _name(cidr)]
    mine = _nets(cidr)
    if all(any(_contains(n, net) for _, nets in others for n in nets) for net in mine):
        return True  # a larger or equal ServiceCIDR takes over every address
    for text in ips:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        if any(ip in net for net in mine) and not any(
                ip in n for _, nets in others for n in nets):
            return False
    return True


def _ready_condition(obj: Obj) -> Obj | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return dict(c)
    return None


def _condition_action(obj: Obj, status: str, reason: str, message: str) -> CIDRAction | None:
    current = _ready_condition(obj)
    if current is not None and (current.get("status"), current.get("reason") or "",
                                current.get("message")) == (status, reason, message):
        return None
    return CIDRAction(_name(obj), "condition", status, reason, message)


def plan_service_cidrs(cidrs: Sequence[Obj], ips: Sequence[str] | None, *, now: datetime,
                       grace: timedelta = DELETION_GRACE) -> CIDRPlan:
    """What the servicecidrs controller writes (pure). ``ips`` are the managed IPAddresses'
    names (None: not listed, when no ServiceCIDR is being deleted)."""
    actions: list[CIDRAction] = []
    wake_at: datetime | None = None
    blocked = False
    for obj in cidrs:
        meta = obj.get("metadata") or {}
        finalizers = list(meta.get("finalizers") or [])
        deleted_at = parse_time(meta.get("deletionTimestamp"))
        if meta.get("deletionTimestamp"):
            if SERVICE_CIDR_FINALIZER not in finalizers:
                continue  # someone else's finalizers hold it
            if not can_delete(obj, cidrs, ips or []):
                blocked = True
                act = _condition_action(obj, "False", TERMINATING_REASON, TERMINATING_MESSAGE)
                if act is not None:
                    actions.append(act)
                continue
            due = (deleted_at or now) + grace
            if due > now:
                wake_at = due if wake_at is None else min(wake_at, due)
                continue
            actions.append(CIDRAction(_name(obj), "remove_finalizer"))
            continue
        if SERVICE_CIDR_FINALIZER not in finalizers:
            actions.append(CIDRAction(_name(obj), "add_finalizer"))
        act = _condition_action(obj, "True", "", READY_MESSAGE)
        if act is not None:
            actions.append(act)
    return CIDRPlan(actions, wake_at, blocked)


def _apply_to(obj: Obj, action: CIDRAction, now: datetime) -> tuple[Obj, bool]:
    """``obj`` after ``action`` (a copy), and whether it is a status write (pure)."""
    obj = {**obj, "metadata": dict(obj.get("metadata") or {})}
    meta = obj["metadata"]
    finalizers = list(meta.get("finalizers") or [])
    if action.action == "add_finalizer":
        meta["finalizers"] = [*finalizers, SERVICE_CIDR_FINALIZER]
        return obj, False
    if action.action == "remove_finalizer":
        meta["finalizers"] = [f for f in finalizers if f != SERVICE_CIDR_FINALIZER]
        return obj, False
    condition: Obj = {"type": "Ready", "status": action.status, "message": action.message,
                      "lastTransitionTime": rfc3339(now)}
    if action.reason:
        condition["reason"] = action.reason
    status = dict(obj.get("status") or {})
    status["conditions"] = [c for c in status.get("conditions") or []
                            if c.get("type") != "Ready"] + [condition]
    obj["status"] = status
    return obj, True


async def ensure_default_service_cidr(cidrs: Registry, flags: Sequence[str]) -> None:
    """The defaultservicecidr controller's sync: create the default ServiceCIDR from the
    flags, or upgrade it from single- to dual-stack (same primary, flags now a pair)."""
    wanted = default_service_cidr(flags)
    want = list(wanted["spec"]["cidrs"])
    try:
        current = await cidrs.get("", DEFAULT_SERVICE_CIDR)
    except StatusError:
        with contextlib.suppress(StatusError):  # created meanwhile
            await cidrs.create("", wanted)
        return
    have = list((current.get("spec") or {}).get("cidrs") or [])
    if len(want) == 2 and len(have) == 1 and have[0] == want[0]:
        log.info("updating the default ServiceCIDR from single-stack %s to dual-stack %s",
                 have, want)
        try:
            await cidrs.update("", DEFAULT_SERVICE_CIDR,
                               {**current, "spec": {**current["spec"], "cidrs": want}})
        except StatusError as e:  # changed meanwhile: the next bootstrap pass tries again
            log.info("the default ServiceCIDR was not upgraded: %s", e)


class ServiceCIDRController:
    """Applies :func:`plan_service_cidrs` and keeps the allocators' CIDRs in sync."""

    def __init__(self, cidrs: Registry, ips: Registry, allocators: ServiceAllocators,
                 clock: Clock, *, grace: timedelta = DELETION_GRACE) -> None:
        self.cidrs = cidrs
        self.ips = ips
        self.allocators = allocators
        self.clock = clock
        self.grace = grace
        self._wake = asyncio.Event()
        self._blocked = False

    async def _list_cidrs(self) -> list[Obj]:
        return list((await self.cidrs.list("")).items)

    async def sync_allocators(self) -> list[Obj]:
        """Hand the stored ServiceCIDRs to the allocators; returns them."""
        cidrs = await self._list_cidrs()
        self.allocators.sync_service_cidrs(cidrs)
        return cidrs

    async def _managed_ips(self) -> list[str]:
        return [_name(o) for o in (await self.ips.list("")).items
                if ((o.get("metadata") or {}).get("labels") or {}).get(LABEL_MANAGED_BY)
                == IPALLOCATOR_MANAGER]

    async def reconcile(self) -> CIDRPlan:
        """One pass: sync the allocators, then write what the plan says."""
        cidrs = await self.sync_allocators()
        deleting = any((o.get("metadata") or {}).get("deletionTimestamp") for o in cidrs)
        ips = await self._managed_ips() if deleting else None
        now = self.clock.now()
        plan = plan_service_cidrs(cidrs, ips, now=now, grace=self.grace)
        by_name = {_name(o): o for o in cidrs}
        for action in plan.actions:
            obj, status = _apply_to(by_name[action.name], action, now)
            try:
                by_name[action.name] = await self.cidrs.update("", action.name, obj,
                                                               status_only=status)
            except StatusError as e:  # changed meanwhile: its event brings us back
                log.info("ServiceCIDR %s: %s not applied: %s", action.name, action.action, e)
                self._wake.set()
                break
        if any(a.action == "remove_finalizer" for a in plan.actions):
            await self.sync_allocators()  # the range is gone: stop serving it now
        self._blocked = plan.blocked
        return plan

    async def _watch(self, registry: Registry, only_when_blocked: bool) -> None:
        while True:
            try:
                async for _ in registry.watch("", 0):
                    if not only_when_blocked or self._blocked:
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # the watch ended (compaction, store trouble): start again
                await self.clock.sleep(1)
                self._wake.set()

    async def run(self, resync: float = 10.0) -> None:
        watchers = [asyncio.create_task(self._watch(self.cidrs, False)),
                    asyncio.create_task(self._watch(self.ips, True))]
        try:
            while True:
                self._wake.clear()
                timeout = resync
                try:
                    plan = await self.reconcile()
                    if plan.wake_at is not None:
                        timeout = min(timeout, max(
                            (plan.wake_at - self.clock.now()).total_seconds(), 0.05))
                except Exception:
                    log.exception("ServiceCIDR reconcile failed; retrying")
                    timeout = 1.0
                # Not asyncio.wait_for: in 3.11 it can take a cancellation for the timeout
                # (svcnet/util/aio.py), and then the server's SIGTERM never ends this loop.
                await wait_event(self._wake, timeout)
        finally:
            for t in watchers:
                t.cancel()
            for t in watchers:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
