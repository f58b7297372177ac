"""The namespace controller: empties a namespace being deleted, then lets it go.

Theory of operation (``pkg/controller/namespace/namespace_controller.go``, and
``pkg/controller/namespace/deletion/namespaced_resources_deleter.go`` and
``status_condition_utils.go``)
-----------------------------------------------------------------------------------------------
A DELETE of a namespace only marks it (``deletionTimestamp``, phase ``Terminating``: see
``svcnet/registry/namespaces.py``); it keeps ``spec.finalizers: [kubernetes]`` until this
controller has removed everything in it. A namespace with a ``deletionTimestamp`` is queued
:data:`DELETION_GRACE_PERIOD` after each event about it (upstream's delay: objects created at the
last moment are seen). Each sync of a namespace:

1. re-reads it (gone, or not being deleted: nothing to do) and sets the phase ``Terminating``
   if something cleared it; a namespace whose ``spec.finalizers`` is already empty is done;
2. **discovers** every namespaced resource of each group's preferred version
   (:func:`svcnet.client.discovery.server_preferred_namespaced_resources`), so a kind the
   server learns later is covered too, and keeps those that answer ``delete``;
3. for each: **estimates** how long its content may take to go (pods only: the longest
   ``terminationGracePeriodSeconds`` of the non-terminal pods, or 0 once that long has passed
   since the namespace's ``deletionTimestamp``), deletes the whole collection
   (``deletecollection``, else list and delete each) with ``propagationPolicy: Background``
   through the ordinary API (so Services release their ClusterIPs, NodePorts and LoadBalancer
   IPs, and pods on a node are stopped gracefully by it), and lists what remains, counting
   remaining objects by finalizer. Remaining objects with no estimate and no finalizer are an
   error (``unexpected items still remain``);
4. writes the five deletion **conditions** (:func:`deletion_conditions`,
   :func:`update_conditions`): each either its failure (status True, with upstream's reason
   and message) or its success (status False: ``ResourcesDiscovered``, ``ParsedGroupVersions``,
   ``ContentDeleted``, ``ContentRemoved``, ``ContentHasNoFinalizers``);
5. errors → retried with back-off (never dropped: the namespace must go eventually); content
   still terminating → queued again after ``estimate / 2 + 1`` seconds; nothing left → removes
   ``kubernetes`` from ``spec.finalizers`` with ``PUT .../finalize`` (retried on conflict while
   the uid stays), and the API server deletes the namespace once its metadata finalizers are
   gone too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from svcnet.api.access import meta_of as _meta
from svcnet.api.errors import StatusError
from svcnet.api.namespaces import (
    FINALIZER_KUBERNETES,
    PHASE_TERMINATING,
    finalized,
    spec_finalizers,
)
from svcnet.client.controller import Controller, InformerController, RequeueError
from svcnet.client.discovery import (
    GroupVersionParseError,
    server_preferred_namespaced_resources,
    to_gvr,
)
from svcnet.client.informer import EventHandler, Informer, InformerFactory, object_key
from svcnet.client.rest import GVR, NAMESPACES, PODS, RESTClient, TransportError
from svcnet.util.clock import Clock, RealClock, parse_time, rfc3339

__all__ = [
    "CONDITION_TYPES",
    "DELETION_GRACE_PERIOD",
    "DeletionReport",
    "NamespaceController",
    "deletion_conditions",
    "update_conditions",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

COMPONENT: Final = "namespace-controller"
DELETION_GRACE_PERIOD: Final = 5.0
"""Seconds between an event about a terminating namespace and its sync (upstream's
``namespaceDeletionGracePeriod``)."""
FINALIZER_ESTIMATE_SECONDS: Final = 15
"""Upstream's wait for objects that remain only because of their finalizers."""
RESYNC: Final = 300.0
MAX_RETRIES: Final = 1 << 30
"""Upstream never drops a namespace; back-off is capped by the rate limiter."""

DISCOVERY_FAILURE: Final = "NamespaceDeletionDiscoveryFailure"
GV_PARSING_FAILURE: Final = "NamespaceDeletionGroupVersionParsingFailure"
CONTENT_FAILURE: Final = "NamespaceDeletionContentFailure"
CONTENT_REMAINING: Final = "NamespaceContentRemaining"
FINALIZERS_REMAINING: Final = "NamespaceFinalizersRemaining"
CONDITION_TYPES: Final = (DISCOVERY_FAILURE, GV_PARSING_FAILURE, CONTENT_FAILURE,
                          CONTENT_REMAINING, FINALIZERS_REMAINING)
_OK: Final = {
    DISCOVERY_FAILURE: ("ResourcesDiscovered", "All resources successfully discovered"),
    GV_PARSING_FAILURE: ("ParsedGroupVersions", "All legacy kube types successfully parsed"),
    CONTENT_FAILURE: ("ContentDeleted",
                      "All content successfully deleted, may be waiting on finalization"),
    CONTENT_REMAINING: ("ContentRemoved", "All content successfully removed"),
    FINALIZERS_REMAINING: ("ContentHasNoFinalizers",
                           "All content-preserving finalizers finished"),
}


# =============================================================================================
# conditions (pure)


@dataclass
class DeletionReport:
    """What one pass over a namespace's content found."""

    discovery_error: str = ""
    group_version_error: str = ""
    content_errors: list[str] = field(default_factory=list)
    remaining: dict[GVR, int] = field(default_factory=dict)
    """Objects left per resource (only those with some)."""
    finalizers: dict[str, int] = field(default_factory=dict)
    """Objects left per finalizer they carry."""


def _condition(ctype: str, status: str, reason: str, message: str, now: str) -> Obj:
    return {"type": ctype, "status": status, "lastTransitionTime": now, "reason": reason,
            "message": message}


def deletion_conditions(report: DeletionReport, now: str) -> list[Obj]:
    """The failing conditions a pass calls for (namespaceConditionUpdater's Process*)."""
    out = []
    if report.discovery_error:
        out.append(_condition(DISCOVERY_FAILURE, "True", "DiscoveryFailed",
                              report.discovery_error, now))
    if report.group_version_error:
        out.append(_condition(GV_PARSING_FAILURE, "True", "GroupVersionParsingFailed",
                              report.group_version_error, now))
    if report.content_errors:
        msgs = sorted(report.content_errors)
        out.append(_condition(CONTENT_FAILURE, "True", "ContentDeletionFailed",
                              f"Failed to delete all resource types, {len(msgs)} remaining: "
                              + ", ".join(msgs), now))
    remaining = sorted(f"{gvr.resource}.{gvr.group} has {n} resource instances"
                       for gvr, n in report.remaining.items() if n)
    if report.remaining:
        out.append(_condition(CONTENT_REMAINING, "True", "SomeResourcesRemain",
                              "Some resources are remaining: " + ", ".join(remaining), now))
    by_finalizer = sorted(f"{f} in {n} resource instances"
                          for f, n in report.finalizers.items() if n)
    if report.finalizers:
        out.append(_condition(FINALIZERS_REMAINING, "True", "SomeFinalizersRemain",
                              "Some content in the namespace has finalizers remaining: "
                              + ", ".join(by_finalizer), now))
    return out


def update_conditions(existing: Sequence[Mapping[str, Any]], failing: Sequence[Obj],
                      now: str) -> tuple[list[Obj], bool]:
    """updateConditions: each of the five types becomes its failure or its success; an old
    condition keeps its lastTransitionTime unless its status flips. Conditions of other types
    are kept as they are. Returns (conditions, changed)."""
    out = [dict(c) for c in existing]
    changed = False
    for ctype in CONDITION_TYPES:
        new = next((c for c in failing if c["type"] == ctype), None)
        if new is None:
            reason, message = _OK[ctype]
            new = _condition(ctype, "False", reason, message, now)
        old = next((c for c in out if c.get("type") == ctype), None)
        if old is None:
            out.append(new)
            changed = True
        elif (old.get("status"), old.get("reason"), old.get("message")) != (
                new["status"], new["reason"], new["message"]):
            if old.get("status") != new["status"]:
                old["lastTransitionTime"] = now
            old.update(status=new["status"], reason=new["reason"], message=new["message"])
            changed = True
    return out, changed


def _gvr_string(gvr: GVR) -> str:
    """schema.GroupVersionResource.String(), as upstream's messages print it."""
    return f"{gvr.group}/{gvr.version}, Resource={gvr.resource}"


def pod_grace_estimate(pods: Sequence[Mapping[str, Any]]) -> int:
    """estimateGracefulTerminationForPods: the longest grace period of non-terminal pods."""
    estimate = 0
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        if isinstance(grace, int) and grace > estimate:
            estimate = grace
    return estimate


class ResourcesRemaining(Exception):
    """Content is still going away; look again in ``estimate / 2 + 1`` seconds."""

    def __init__(self, estimate: int) -> None:
        super().__init__(f"some content remains in the namespace, estimate {estimate} seconds "
                         "before it is removed")
        self.estimate = estimate


# =============================================================================================
# the controller


@dataclass
class _Remains:
    estimate: int = 0
    count: int = 0
    finalizers: dict[str, int] = field(default_factory=dict)


class NamespaceController(InformerController):
    """Deletes the content of terminating namespaces, then finalizes them (module doc)."""

    def __init__(self, client: RESTClient, namespaces: Informer, *,
                 clock: Clock | None = None, workers: int = 2,
                 grace_period: float = DELETION_GRACE_PERIOD,
                 resync_period: float | None = None) -> None:
        self._client = client
        self.namespaces = namespaces
        self._clock: Clock = clock or RealClock()
        self._grace_period = grace_period
        self.controller = Controller(COMPONENT, self.sync, informers=[namespaces],
                                     workers=workers, max_retries=MAX_RETRIES,
                                     clock=self._clock)
        namespaces.add_handler(EventHandler(on_add=self._enqueue,
                                            on_update=lambda old, new: self._enqueue(new)),
                               resync_period=resync_period)

    @classmethod
    def from_client(cls, client: RESTClient, *, clock: Clock | None = None,
                    informers: InformerFactory | None = None) -> NamespaceController:
        factory = InformerFactory.of(informers, client, clock=clock)
        return cls(client, factory.informer(NAMESPACES, name="namespaces"), clock=clock,
                   resync_period=RESYNC)

    @property
    def informers(self) -> tuple[Informer, ...]:
        return (self.namespaces,)

    def _enqueue(self, ns: Obj) -> None:
        if _meta(ns).get("deletionTimestamp"):
            self.queue.add_after(object_key(ns), self._grace_period)

    # -- one namespace ----------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        try:
            await self._delete(key)
        except ResourcesRemaining as e:
            wait = e.estimate // 2 + 1
            log.info("%s: content remaining in namespace %s, waiting %d seconds", COMPONENT,
                     key, wait)
            self.queue.add_after(key, wait)

    async def _delete(self, name: str) -> None:
        """namespacedResourcesDeleter.Delete."""
        try:
            ns = await self._client.get(NAMESPACES, "", name)
        except StatusError as e:
            if e.code == 404:
                return
            raise
        if not _meta(ns).get("deletionTimestamp"):
            return
        ns = await self._ensure_terminating(ns)
        if finalized(ns):
            return
        estimate = await self._delete_all_content(ns)
        if estimate > 0:
            raise ResourcesRemaining(estimate)
        await self._finalize(ns)

    async def _ensure_terminating(self, ns: Obj) -> Obj:
        if (ns.get("status") or {}).get("phase") == PHASE_TERMINATING:
            return ns
        fixed = dict(ns, status={**(ns.get("status") or {}), "phase": PHASE_TERMINATING})
        return await self._client.update_status(NAMESPACES, fixed)

    async def _finalize(self, ns: Obj) -> None:
        """finalizeNamespace, retried on conflict while the namespace keeps its uid."""
        uid = _meta(ns).get("uid")
        for _ in range(10):
            rest = sorted(set(spec_finalizers(ns)) - {FINALIZER_KUBERNETES})
            body = dict(ns, spec={**(ns.get("spec") or {}), "finalizers": rest})
            try:
                await self._client.update(NAMESPACES, body, subresource="finalize")
                return
            except StatusError as e:
                if e.code == 404:
                    return
                if e.code != 409:
                    raise
            try:
                ns = await self._client.get(NAMESPACES, "", str(_meta(ns).get("name")))
            except StatusError as e:
                if e.code == 404:
                    return
                raise
            if _meta(ns).get("uid") != uid:
                raise RequeueError("namespace uid has changed across retries")
        raise RequeueError(f"namespace {_meta(ns).get('name')} kept changing while finalized")

    # -- content ----------------------------------------------------------------------------

    async def _discover(self, report: DeletionReport,
                        errors: list[Exception]) -> list[tuple[GVR, frozenset[str]]]:
        """The deletable namespaced resources; discovery and parsing failures go into the
        report and ``errors`` (not fatal: what was found is still worked on)."""
        try:
            resources, failed = await server_preferred_namespaced_resources(self._client)
        except (StatusError, TransportError) as e:  # the roots themselves
            resources, failed = [], None
            report.discovery_error = str(e)
            errors.append(e)
        if failed is not None:
            report.discovery_error = (f"Discovery failed for some groups, "
                                      f"{len(failed.groups)} failing: {failed}")
            errors.append(failed)
        out: list[tuple[GVR, frozenset[str]]] = []
        for res in resources:
            if "delete" not in res.verbs:
                continue
            try:
                out.append((to_gvr(res), res.verbs))
            except GroupVersionParseError as e:
                report.group_version_error = str(e)
                errors.append(e)
        return out

    async def _delete_all_content(self, ns: Obj) -> int:
        """deleteAllContent: returns the estimate; raises the first error met (after writing
        the conditions, which are written whatever happened)."""
        name = str(_meta(ns).get("name"))
        report = DeletionReport()
        errors: list[Exception] = []
        resources = await self._discover(report, errors)
        deleted_at = parse_time(str(_meta(ns).get("deletionTimestamp")))
        estimate = 0
        for gvr, verbs in resources:
            try:
                remains = await self._delete_resource(gvr, verbs, name, deleted_at)
            except _ContentError as e:
                remains = e.remains
                report.content_errors.append(str(e.cause))
                errors.append(e.cause)
            estimate = max(estimate, remains.estimate)
            if remains.count:
                report.remaining[gvr] = remains.count
                for f, n in remains.finalizers.items():
                    report.finalizers[f] = report.finalizers.get(f, 0) + n
        await self._write_conditions(ns, report)
        if errors:
            first = errors[0]
            if isinstance(first, (StatusError, TransportError)):
                raise first  # the runner tells a server outage from the rest by its type
            raise RequeueError(str(first)) from first
        return estimate

    async def _write_conditions(self, ns: Obj, report: DeletionReport) -> None:
        now = rfc3339(self._clock.now())
        status = dict(ns.get("status") or {})
        conditions, changed = update_conditions(status.get("conditions") or [],
                                                deletion_conditions(report, now), now)
        if not changed:
            return
        status["conditions"] = conditions
        try:
            await self._client.update_status(NAMESPACES, dict(ns, status=status))
        except StatusError as e:
            log.info("%s: couldn't update status condition for namespace %r: %s", COMPONENT,
                     _meta(ns).get("name"), e)

    async def _estimate(self, gvr: GVR, namespace: str, deleted_at: Any) -> int:
        """estimateGracefulTermination: pods only, and 0 once that long has passed."""
        if (gvr.group, gvr.resource) != ("", "pods"):
            return 0
        pods = await self._client.list_all(PODS, namespace)
        estimate = pod_grace_estimate(pods.items)
        if deleted_at is None:
            return estimate
        elapsed = (self._clock.now() - deleted_at).total_seconds()
        return 0 if elapsed >= estimate else estimate

    async def _delete_resource(self, gvr: GVR, verbs: frozenset[str], namespace: str,
                               deleted_at: Any) -> _Remains:
        """deleteAllContentForGroupVersionResource."""
        try:
            estimate = await self._estimate(gvr, namespace, deleted_at)
        except StatusError as e:
            raise _ContentError(e, _Remains()) from e
        try:
            if not ("deletecollection" in verbs and await self._delete_collection(
                    gvr, namespace)):
                await self._delete_each(gvr, verbs, namespace)
            if "list" not in verbs:
                return _Remains(estimate)
            left = (await self._client.list_all(gvr, namespace)).items
        except StatusError as e:
            raise _ContentError(e, _Remains(estimate)) from e
        if not left:
            return _Remains()
        finalizers: dict[str, int] = {}
        for obj in left:
            for f in _meta(obj).get("finalizers") or []:
                finalizers[str(f)] = finalizers.get(str(f), 0) + 1
        remains = _Remains(estimate, len(left), finalizers)
        if estimate:
            return remains
        if finalizers:
            remains.estimate = FINALIZER_ESTIMATE_SECONDS
            return remains
        raise _ContentError(RuntimeError(
            f"unexpected items still remain in namespace: {namespace} for gvr: "
            f"{_gvr_string(gvr)}"), remains)

    async def _delete_collection(self, gvr: GVR, namespace: str) -> bool:
        """True if the server did it; False if it does not serve deletecollection here."""
        try:
            await self._client.delete_collection(gvr, namespace,
                                                 propagation_policy="Background")
        except StatusError as e:
            if e.code in (404, 405):
                return False
            raise
        return True

    async def _delete_each(self, gvr: GVR, verbs: frozenset[str], namespace: str) -> None:
        if "list" not in verbs:
            return
        for obj in (await self._client.list_all(gvr, namespace)).items:
            try:
                await self._client.delete(gvr, namespace, str(_meta(obj).get("name")),
                                          propagation_policy="Background")
            except StatusError as e:
                if e.code not in (404, 405):
                    raise


class _ContentError(Exception):
    """One resource's content could not be deleted: the cause, and what was seen remaining."""

    def __init__(self, cause: Exception, remains: _Remains) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.remains = remains
