"""EndpointSliceTracker: the controller's defence against its own stale cache.

Why it exists
-------------
The controller reads EndpointSlices from an informer, and its own writes come back through that
informer some time later. A sync that runs in between would see the slices *before* its last
write and "fix" them again: recreate a slice it just created (now twice as many endpoints),
re-add endpoints to a slice it just emptied, and so on. So, as upstream's
``EndpointSliceTracker`` does, we remember for every slice we wrote the ``metadata.generation``
the server gave back (every content change of an EndpointSlice bumps it), and for every slice we
deleted that we expect it gone. Before acting, :meth:`stale_slices` compares that memory with the
cache; if the cache is behind, the sync is retried later instead of acting.

It also filters informer events: a slice event that only reflects our own write
(:meth:`should_sync` is False) does not need a sync, while one we did not cause (someone edited
or deleted "our" slice) does, so the controller reverts it.

Slices are keyed by uid and grouped per Service (``namespace/<kubernetes.io/service-name>``).
If a Service is deleted and re-created under the same name, its uid changes and what was
remembered about the old one is forgotten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from svcnet.api.access import int_of, mapping_of
from svcnet.controllers.endpointslice.util import LABEL_SERVICE_NAME

__all__ = ["EndpointSliceTracker", "service_key_for_slice"]

DELETION_EXPECTED: Final = -1

ObjMap = Mapping[str, Any]


def service_key_for_slice(eps: ObjMap) -> str | None:
    """``namespace/service`` from the slice's ``kubernetes.io/service-name`` label."""
    meta = mapping_of(eps, "metadata")
    labels = meta.get("labels")
    name = labels.get(LABEL_SERVICE_NAME) if isinstance(labels, Mapping) else None
    if not isinstance(name, str) or not name:
        return None
    return f"{meta.get('namespace') or ''}/{name}"


def _uid(eps: ObjMap) -> str:
    return str(mapping_of(eps, "metadata").get("uid") or "")


def _generation(eps: ObjMap) -> int:
    return int_of(mapping_of(eps, "metadata"), "generation")


class EndpointSliceTracker:
    """Expected generation (or expected deletion) per slice uid, per Service key."""

    def __init__(self) -> None:
        self._by_service: dict[str, dict[str, int]] = {}
        self._service_uids: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"EndpointSliceTracker({self._by_service!r})"

    def _generations(self, eps: ObjMap) -> dict[str, int] | None:
        key = service_key_for_slice(eps)
        return self._by_service.get(key) if key is not None else None

    def has(self, eps: ObjMap) -> bool:
        gens = self._generations(eps)
        return gens is not None and _uid(eps) in gens

    def should_sync(self, eps: ObjMap) -> bool:
        """Is this slice state news to us (not the result of our own last write)?"""
        gens = self._generations(eps)
        if gens is None:
            return True
        expected = gens.get(_uid(eps))
        return expected is None or _generation(eps) > expected

    def stale_slices(self, svc: ObjMap, slices: Iterable[ObjMap]) -> bool:
        """True if ``slices`` (from the cache) predate our writes for ``svc``: a tracked slice
        is older than what we wrote, still present though we deleted it, or missing though we
        created it."""
        meta = mapping_of(svc, "metadata")
        key = f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"
        uid = str(meta.get("uid") or "")
        tracked_uid = self._service_uids.get(key)
        if tracked_uid and uid and tracked_uid != uid:
            # A new Service under an old name: what we wrote for the old one is obsolete.
            self._by_service.pop(key, None)
        self._service_uids[key] = uid
        gens = self._by_service.get(key)
        if not gens:
            return False
        seen: set[str] = set()
        for eps in slices:
            slice_uid = _uid(eps)
            seen.add(slice_uid)
            expected = gens.get(slice_uid)
            if expected is not None and (expected == DELETION_EXPECTED
                                         or expected > _generation(eps)):
                return True
        return any(g != DELETION_EXPECTED and u not in seen for u, g in gens.items())

    def update(self, eps: ObjMap) -> None:
        """Remember the generation of a slice we just created or updated (the server's answer)."""
        key = service_key_for_slice(eps)
        if key is not None and _uid(eps):
            self._by_service.setdefault(key, {})[_uid(eps)] = _generation(eps)

    def expect_deletion(self, eps: ObjMap) -> None:
        key = service_key_for_slice(eps)
        if key is not None and _uid(eps):
            self._by_service.setdefault(key, {})[_uid(eps)] = DELETION_EXPECTED

    def handle_deletion(self, eps: ObjMap) -> bool:
        """Forget a deleted slice; True if we expected (caused) the deletion."""
        key = service_key_for_slice(eps)
        gens = self._by_service.get(key) if key is not None else None
        if gens is None:
            return False
        expected = gens.pop(_uid(eps), None)
        if not gens and key is not None:
            del self._by_service[key]
        return expected == DELETION_EXPECTED

    def delete_service(self, namespace: str, name: str) -> None:
        key = f"{namespace}/{name}"
        self._by_service.pop(key, None)
        self._service_uids.pop(key, None)
