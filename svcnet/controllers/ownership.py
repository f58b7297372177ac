"""Owners and the objects they control, as kube-controller-manager's controller_utils.go and
controller_ref_manager.go have it for the ReplicaSet and Deployment controllers (and the
garbage collector): the workload resources, their small accessors, controller references, and
claiming (adopt what the selector matches and nobody controls, release what no longer matches),
rechecked against a live read before adopting, as upstream's RecheckDeletionTimestamp does."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from svcnet.api.access import (
    labels_of as _labels,
    list_of as _list,
    map_of as _map,
    meta_of as _meta,
    name_of as _name,
    namespace_of as _namespace,
    uid_of as _uid,
)
from svcnet.api.errors import StatusError
from svcnet.api.labels import (
    Selector,
    SelectorError,
    selector_from_label_selector,
    selector_from_set,
)
from svcnet.client.controller import RequeueError
from svcnet.client.events import EventSink
from svcnet.client.informer import (
    ListerWatcher,
    object_key,
)
from svcnet.client.rest import GVR, PatchType, Preconditions
from svcnet.util.clock import parse_time

__all__ = [
    "CONTROLLERREVISIONS",
    "CRONJOBS",
    "DEPLOYMENTS",
    "JOBS",
    "REPLICASETS",
    "APIClient",
    "ClaimPlan",
    "WorkloadClient",
    "adopt_patch",
    "claim",
    "controller_ref",
    "controller_uid_index",
    "is_controlled_by",
    "label_selector",
    "new_controller_ref",
    "parse_time",
    "plan_claims",
    "recheck_deletion",
    "release_patch",
    "spec_replicas",
    "terminating",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

REPLICASETS: Final = GVR("apps", "v1", "replicasets", "ReplicaSet")
DEPLOYMENTS: Final = GVR("apps", "v1", "deployments", "Deployment")
DAEMONSETS: Final = GVR("apps", "v1", "daemonsets", "DaemonSet")
CONTROLLERREVISIONS: Final = GVR("apps", "v1", "controllerrevisions", "ControllerRevision")
STATEFULSETS: Final = GVR("apps", "v1", "statefulsets", "StatefulSet")
REPLICATIONCONTROLLERS: Final = GVR("", "v1", "replicationcontrollers", "ReplicationController")
JOBS: Final = GVR("batch", "v1", "jobs", "Job")
CRONJOBS: Final = GVR("batch", "v1", "cronjobs", "CronJob")


# =============================================================================================
# small accessors


def terminating(obj: ObjMap) -> bool:
    return bool(_meta(obj).get("deletionTimestamp"))


def spec_replicas(obj: ObjMap) -> int:
    """``spec.replicas`` (defaulted to 1 by the API server; 1 here too if absent)."""
    v = _map(obj, "spec").get("replicas")
    return v if isinstance(v, int) and not isinstance(v, bool) else 1


def label_selector(obj: ObjMap) -> Selector | None:
    """The object's ``spec.selector`` as a Selector; None if it does not parse."""
    try:
        return selector_from_label_selector(_map(obj, "spec").get("selector"))
    except SelectorError:
        return None


def map_selector(obj: ObjMap) -> Selector | None:
    """A ReplicationController's ``spec.selector`` (a label map) as a Selector
    (``labels.SelectorFromSet``); an empty map selects nothing here, as the RC controller's
    conversion to a ReplicaSet turns it into a nil selector."""
    raw = _map(obj, "spec").get("selector")
    if not isinstance(raw, Mapping) or not raw:
        return None
    return selector_from_set({str(k): str(v) for k, v in raw.items()})


# =============================================================================================
# controller references (metav1.GetControllerOf, NewControllerRef)


def controller_ref(obj: ObjMap) -> dict[str, Any] | None:
    """GetControllerOf: the ownerReference with ``controller: true``, if any."""
    for ref in _list(_meta(obj), "ownerReferences"):
        if isinstance(ref, dict) and ref.get("controller") is True:
            return ref
    return None


def new_controller_ref(owner: ObjMap, gvr: GVR) -> Obj:
    """NewControllerRef: a controller ownerReference to ``owner`` that blocks its deletion in
    the foreground until this dependent is gone."""
    return {"apiVersion": gvr.api_version, "kind": gvr.kind, "name": _name(owner),
            "uid": _uid(owner), "controller": True, "blockOwnerDeletion": True}


def is_controlled_by(obj: ObjMap, owner: ObjMap) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == _uid(owner)


def controller_uid_index(obj: Obj) -> list[str]:
    ref = controller_ref(obj)
    return [str(ref["uid"])] if ref is not None and ref.get("uid") else []


# =============================================================================================
# claiming (BaseControllerRefManager.ClaimObject)


@dataclass(frozen=True, slots=True)
class ClaimPlan:
    """What claiming decides for a set of candidate dependents."""

    owned: list[Obj]
    """Ours and matching: claimed as they are."""
    adopt: list[Obj]
    """Orphans that match: claimed once adopted."""
    release: list[Obj]
    """Ours but no longer matching: to be released."""


def plan_claims(owner: ObjMap, selector: Selector, candidates: Iterable[ObjMap]) -> ClaimPlan:
    """ClaimObject's decision for each candidate, in order. Pure."""
    owned: list[Obj] = []
    adopt: list[Obj] = []
    release: list[Obj] = []
    owner_uid = _uid(owner)
    owner_deleting = terminating(owner)
    for obj in candidates:
        ref = controller_ref(obj)
        matches = selector.matches(_labels(obj))
        if ref is not None:
            if ref.get("uid") != owner_uid:
                continue  # someone else's
            if matches:
                owned.append(dict(obj))
            elif not owner_deleting:
                release.append(dict(obj))
            continue
        if owner_deleting or not matches or terminating(obj):
            continue
        if _namespace(owner) and _namespace(owner) != _namespace(obj):
            continue
        adopt.append(dict(obj))
    return ClaimPlan(owned, adopt, release)


def adopt_patch(obj: ObjMap, ref: Obj) -> list[Obj]:
    """A JSON patch adding controller ``ref`` to ``obj`` if, and only if, the object is still
    the one we saw (uid) with the ownerReferences we saw (``test`` of an absent member against
    ``null`` passes)."""
    current = _list(_meta(obj), "ownerReferences")
    refs = [r for r in current if not (isinstance(r, dict) and r.get("uid") == ref["uid"])]
    return [{"op": "test", "path": "/metadata/uid", "value": _uid(obj)},
            {"op": "test", "path": "/metadata/ownerReferences",
             "value": current if "ownerReferences" in _meta(obj) else None},
            {"op": "add", "path": "/metadata/ownerReferences", "value": [*refs, ref]}]


def release_patch(obj: ObjMap, owner_uid: str) -> list[Obj]:
    """A JSON patch removing every ownerReference to ``owner_uid`` (guarded like
    :func:`adopt_patch`)."""
    current = _list(_meta(obj), "ownerReferences")
    rest = [r for r in current if not (isinstance(r, dict) and r.get("uid") == owner_uid)]
    ops: list[Obj] = [{"op": "test", "path": "/metadata/uid", "value": _uid(obj)},
                      {"op": "test", "path": "/metadata/ownerReferences", "value": current}]
    if rest:
        ops.append({"op": "replace", "path": "/metadata/ownerReferences", "value": rest})
    else:
        ops.append({"op": "remove", "path": "/metadata/ownerReferences"})
    return ops


class WorkloadClient(EventSink, Protocol):
    """The calls the workload controllers make (RESTClient fits)."""

    async def get(self, gvr: GVR, namespace: str, name: str, *,
                  subresource: str = "") -> Obj: ...

    async def update(self, gvr: GVR, obj: Obj, *, subresource: str = "",
                     dry_run: bool = False, field_manager: str = "") -> Obj: ...

    async def delete(self, gvr: GVR, namespace: str, name: str, *,
                     preconditions: Preconditions | None = None,
                     propagation_policy: str = "", dry_run: bool = False) -> Obj: ...


class APIClient(WorkloadClient, ListerWatcher, Protocol):
    """Reads, watches and writes (RESTClient fits)."""


async def claim(client: WorkloadClient, gvr: GVR, owner: ObjMap, owner_gvr: GVR,
                selector: Selector, candidates: Iterable[ObjMap],
                can_adopt: Callable[[], Awaitable[None]]) -> list[Obj]:
    """Claim ``candidates`` for ``owner`` (ClaimPods / ClaimReplicaSets): returns what is ours
    afterwards; raises the first adoption/release failure after trying them all."""
    plan = plan_claims(owner, selector, candidates)
    claimed = list(plan.owned)
    errors: list[Exception] = []
    for obj in plan.release:
        try:
            await client.patch(gvr, _namespace(obj), _name(obj), release_patch(obj, _uid(owner)),
                               patch_type=PatchType.JSON)
        except StatusError as e:
            # Gone, or changed so that our guarded patch no longer applies: nothing to release.
            if e.code not in (404, 422):
                errors.append(e)
    ref = new_controller_ref(owner, owner_gvr)
    for obj in plan.adopt:
        try:
            await can_adopt()
            await client.patch(gvr, _namespace(obj), _name(obj), adopt_patch(obj, ref),
                               patch_type=PatchType.JSON)
        except StatusError as e:
            if e.code == 404:
                continue
            errors.append(e)
            continue
        except RequeueError as e:
            errors.append(e)
            continue
        claimed.append(obj)
    if errors:
        raise RequeueError(f"claiming for {owner_gvr.kind} {object_key(owner)}: {errors[0]}")
    return claimed


def recheck_deletion(client: WorkloadClient, gvr: GVR, owner: ObjMap
                     ) -> Callable[[], Awaitable[None]]:
    """RecheckDeletionTimestamp: before the first adoption, read the owner from the server
    (not the cache) and refuse if it is gone, replaced or being deleted."""
    checked: list[bool] = []

    async def can_adopt() -> None:
        if checked:
            return
        ns, name, uid = _namespace(owner), _name(owner), _uid(owner)
        try:
            fresh = await client.get(gvr, ns, name)
        except StatusError as e:
            raise RequeueError(f"can't adopt: {gvr.kind} {ns}/{name}: {e}") from e
        if _uid(fresh) != uid:
            raise RequeueError(f"original {gvr.kind} {ns}/{name} is gone: got uid "
                               f"{_uid(fresh)}, wanted {uid}")
        if terminating(fresh):
            raise RequeueError(f"{ns}/{name} has just been deleted at "
                               f"{_meta(fresh).get('deletionTimestamp')}")
        checked.append(True)

    return can_adopt
