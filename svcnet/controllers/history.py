"""Controller history: the ControllerRevisions a DaemonSet or StatefulSet keeps of its templates.

Theory of operation (after ``pkg/controller/history/controller_history.go``:
``ControllerRevisionName``, ``NewControllerRevision``, ``FindEqualRevisions``,
``CreateControllerRevision``; and their two users, ``pkg/controller/daemon/update.go``'s
``constructHistory``, ``dedupCurHistories`` and ``cleanupHistory``, and
``pkg/controller/statefulset/stateful_set_control.go``'s ``getStatefulSetRevisions`` and
``truncateHistory``)
-------------------------------------------------------------------------------------------------
A revision is a snapshot of the owner's pod template: its ``data`` is the patch
``{"spec": {"template": {<template>, "$patch": "replace"}}}`` (upstream's ``getPatch`` for both
kinds), which is also what ``kubectl rollout undo`` sends back to the owner as a strategic
merge patch to return to it. Its name is ``<owner>-<hash>``, the hash being
:func:`template_hash` of the template (and of ``status.collisionCount`` once that is
non-zero); it carries the template's labels plus ``controller-revision-hash: <hash>``, the
owner's annotations (so ``kubernetes.io/change-cause`` shows in ``kubectl rollout history``)
and a controller reference to the owner, so the garbage collector removes it with its owner.
``revision`` numbers them: the newest template has the highest.

Each sync of an owner (:func:`plan_history`, pure; :func:`sync_history` applies it):

1. the revisions whose ``data`` equals the current template's are *equal*; the one with the
   highest number is the current revision, the others are duplicates, deleted;
2. when there is none, a revision is created, numbered one past the highest; when the current
   one is not the highest (the owner went back to an older template: a rollback) it is
   renumbered one past the highest, so the numbers keep the order of use;
3. history beyond ``spec.revisionHistoryLimit`` (10 by default) is deleted, oldest first,
   sparing the current revision and every revision a pod still runs (*live*).

A name taken by a revision with other data (a hash collision, or another owner's revision of the
same name) is upstream's collision: ``collisionCount`` goes up by one, which changes the hash,
and the create is tried again under the new name; the owner's status keeps the count.
Revisions are found through an informer and claimed like pods (an orphan that matches the
owner's selector is adopted, one that no longer matches is released).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from svcnet.api.access import (
    annotations_of as _annotations,
    int_of as _int,
    labels_of as _labels,
    map_of as _map,
    name_of as _name,
    namespace_of as _namespace,
)
from svcnet.api.errors import StatusError
from svcnet.client.informer import NAMESPACE_INDEX, Informer
from svcnet.client.rest import GVR
from svcnet.controllers.ownership import (
    CONTROLLERREVISIONS,
    WorkloadClient,
    claim,
    controller_ref,
    label_selector,
    new_controller_ref,
    recheck_deletion,
)
from svcnet.util.jsoncopy import json_copy

__all__ = ["HASH_LABEL", "History", "HistoryPlan", "live_names", "owner_key", "plan_history",
           "revision_data", "revision_name", "sync_history", "template_hash",
           "template_of"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

HASH_LABEL: Final = "controller-revision-hash"
DEFAULT_HISTORY_LIMIT: Final = 10
_MAX_PREFIX: Final = 223
"""ControllerRevisionName: a longer owner name is cut, leaving room for ``-<hash>``."""
_MAX_COLLISIONS: Final = 100


def template_hash(owner: ObjMap) -> str:
    """A short stable hash of the owner's pod template and its ``status.collisionCount``
    (upstream hashes the revision's data with the count; any stable hash will do, and this
    one keeps the names svcnet gave before it kept revisions)."""
    text = json.dumps(_map(_map(owner, "spec"), "template"), sort_keys=True,
                      separators=(",", ":"))
    count = _int(_map(owner, "status"), "collisionCount")
    if count:
        text += f"/{count}"
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def revision_name(owner: ObjMap, hash_: str | None = None) -> str:
    """ControllerRevisionName: ``<owner>-<hash>``."""
    return f"{_name(owner)[:_MAX_PREFIX]}-{hash_ or template_hash(owner)}"


def revision_data(owner: ObjMap) -> Obj:
    """getPatch: the strategic merge patch that puts the owner's template back."""
    template = json_copy(dict(_map(_map(owner, "spec"), "template")))
    return {"spec": {"template": {**template, "$patch": "replace"}}}


def template_of(revision: ObjMap) -> Obj:
    """The pod template a revision holds (ApplyRevision for a template-only patch)."""
    template = json_copy(dict(_map(_map(_map(revision, "data"), "spec"), "template")))
    template.pop("$patch", None)
    return template


def _number(revision: ObjMap) -> int:
    return _int(revision, "revision")


def new_revision(owner: ObjMap, owner_gvr: GVR, number: int) -> Obj:
    """NewControllerRevision for the owner's current template."""
    hash_ = template_hash(owner)
    meta: Obj = {"name": revision_name(owner, hash_), "namespace": _namespace(owner),
                 "labels": {**_labels(_map(_map(owner, "spec"), "template")), HASH_LABEL: hash_},
                 "ownerReferences": [new_controller_ref(owner, owner_gvr)]}
    if _annotations(owner):
        meta["annotations"] = dict(_annotations(owner))
    return {"apiVersion": CONTROLLERREVISIONS.api_version, "kind": CONTROLLERREVISIONS.kind,
            "metadata": meta, "data": revision_data(owner), "revision": number}


def owner_key(revision: ObjMap, kind: str) -> str | None:
    """The informer key of the revision's controller when it is a ``kind``: its owner to
    sync when the revision changes (upstream's addHistory, updateHistory, deleteHistory)."""
    ref = controller_ref(revision)
    if ref is None or ref.get("kind") != kind:
        return None
    return f"{_namespace(revision)}/{ref.get('name')}"


def history_limit(owner: ObjMap) -> int:
    limit = _map(owner, "spec").get("revisionHistoryLimit")
    return limit if isinstance(limit, int) and not isinstance(limit, bool) else (
        DEFAULT_HISTORY_LIMIT)


def live_names(owner: ObjMap, pods: Iterable[ObjMap], *, label_is_name: bool) -> set[str]:
    """The revisions the owner's pods run, by name (a StatefulSet's pods carry the revision's
    name in ``controller-revision-hash``, a DaemonSet's its hash)."""
    values = {str(_labels(p).get(HASH_LABEL) or "") for p in pods} - {""}
    return values if label_is_name else {revision_name(owner, v) for v in values}


@dataclass
class HistoryPlan:
    """What :func:`sync_history` should write."""

    current: Obj
    """The revision of the current template: existing (maybe renumbered) or to create."""
    create: bool = False
    renumber: bool = False
    delete: list[Obj] = field(default_factory=list)


def plan_history(owner: ObjMap, owner_gvr: GVR, revisions: Sequence[ObjMap],
                 live: set[str]) -> HistoryPlan:
    """Steps 1-3 of the module doc over the owner's revisions. Pure."""
    data = revision_data(owner)
    ordered = sorted(revisions, key=lambda r: (_number(r), _name(r)))
    highest = _number(ordered[-1]) if ordered else 0
    equal = [r for r in ordered if r.get("data") == data]
    out: HistoryPlan
    if equal:
        current = dict(equal[-1])
        out = HistoryPlan(current, delete=[dict(r) for r in equal[:-1]])
        if _number(current) < highest:
            out.current = {**current, "revision": highest + 1}
            out.renumber = True
    else:
        out = HistoryPlan(new_revision(owner, owner_gvr, highest + 1), create=True)
    keep = {_name(out.current), *live} | {_name(r) for r in out.delete}
    old = [r for r in ordered if _name(r) not in keep]
    excess = len(old) - history_limit(owner)
    out.delete.extend(dict(r) for r in old[:max(excess, 0)])
    return out


@dataclass
class History:
    """The outcome of :func:`sync_history`."""

    current: Obj
    revisions: list[Obj]
    """Every revision of the owner after the sync (the current one included)."""
    collision_count: int


async def sync_history(client: WorkloadClient, informer: Informer, owner: Obj,
                       owner_gvr: GVR, live: set[str]) -> History:
    """Claim the owner's revisions, then carry out :func:`plan_history`. ``owner`` is a
    private copy: a collision raises its ``status.collisionCount`` in it (the caller writes
    it with its status)."""
    selector = label_selector(owner)
    candidates = informer.by_index(NAMESPACE_INDEX, _namespace(owner))
    revisions = await claim(client, CONTROLLERREVISIONS, owner, owner_gvr, selector,
                            candidates, recheck_deletion(client, owner_gvr, owner)
                            ) if selector is not None else []
    the_plan = plan_history(owner, owner_gvr, revisions, live)
    current = the_plan.current
    for doomed in the_plan.delete:
        try:
            await client.delete(CONTROLLERREVISIONS, _namespace(doomed), _name(doomed))
        except StatusError as e:
            if e.code != 404:
                raise
    if the_plan.renumber:
        current = await client.update(CONTROLLERREVISIONS, current)
    elif the_plan.create:
        current = await _create(client, owner, owner_gvr, current)
    gone = {_name(r) for r in the_plan.delete}
    kept = [r for r in revisions if _name(r) not in gone and _name(r) != _name(current)]
    return History(current, [*kept, current],
                   _int(_map(owner, "status"), "collisionCount"))


async def _create(client: WorkloadClient, owner: Obj, owner_gvr: GVR, revision: Obj) -> Obj:
    """CreateControllerRevision: on a name taken by other data, count a collision and try
    the next name."""
    for _ in range(_MAX_COLLISIONS):
        try:
            return await client.create(CONTROLLERREVISIONS, revision,
                                       namespace=_namespace(owner))
        except StatusError as e:
            if e.code != 409:
                raise
        existing = await client.get(CONTROLLERREVISIONS, _namespace(owner), _name(revision))
        if existing.get("data") == revision["data"]:
            return existing  # ours, from a sync whose answer the cache has not seen yet
        status = owner.setdefault("status", {})
        status["collisionCount"] = _int(status, "collisionCount") + 1
        log.info("%s %s/%s: revision name %s is taken, collision count now %d",
                 owner_gvr.kind, _namespace(owner), _name(owner), _name(revision),
                 status["collisionCount"])
        revision = new_revision(owner, owner_gvr, _number(revision))
    raise RuntimeError(f"no free revision name for {_namespace(owner)}/{_name(owner)}")
