"""The namespace registry: deletion in two steps, and the ``namespaces/finalize`` endpoint.

Theory of operation (``pkg/registry/core/namespace/storage/storage.go``'s ``REST.Delete``,
``ShouldDeleteNamespaceDuringUpdate`` and ``FinalizeREST``; the immortal namespaces are
NamespaceLifecycle's, ``staging/src/k8s.io/apiserver/pkg/admission/plugin/namespace/lifecycle``)
-----------------------------------------------------------------------------------------------
A namespace is created with ``spec.finalizers: [kubernetes]`` (the strategy adds it). Deleting
one cannot simply remove it: its content (Services holding ClusterIPs and NodePorts, pods
running on nodes, ...) must go first, through the API, so that everything it held is released
the ordinary way. So:

* ``default``, ``kube-system`` and ``kube-public`` may not be deleted: 403 ``namespaces
  "default" is forbidden: this namespace may not be deleted``;
* the first DELETE only marks it: ``deletionTimestamp`` now, ``status.phase: Terminating``, and
  the GC finalizers the delete options ask for (``orphan`` for ``propagationPolicy: Orphan``,
  ``foregroundDeletion`` for ``Foreground``, neither for ``Background``; none given keeps what
  it has). A UID or resourceVersion precondition must hold (409). From now on the API refuses
  to create anything in it (NamespaceLifecycle's 403 with the ``NamespaceTerminating`` cause);
* the namespace controller (``svcnet/controllers/namespace.py``) deletes the content and then
  removes ``kubernetes`` from ``spec.finalizers`` through ``PUT .../finalize``, an update that
  keeps the stored status and takes the rest from the request;
* an update (any endpoint) that leaves both ``spec.finalizers`` and ``metadata.finalizers``
  empty on a namespace being deleted deletes it; a DELETE while ``spec.finalizers`` is not
  empty answers the namespace as it is; once it is empty, DELETE is the generic one (which
  removes it, or waits for its metadata finalizers).
"""

from __future__ import annotations

from typing import Any

from svcnet.api import errors
from svcnet.api.namespaces import IMMORTAL_NAMESPACES, finalized, mark_terminating
from svcnet.registry.generic import (
    BeforeWrite,
    Preconditions,
    Registry,
    gc_finalizers,
)
from svcnet.registry.strategies import NamespaceFinalizeStrategy, NamespaceStrategy
from svcnet.storage.interface import Conflict, KeyNotFound, Store
from svcnet.util.clock import rfc3339

Obj = dict[str, Any]

_DELETE_RETRIES = 10


class _NamespaceWrites(Registry):
    """The namespace's rule for when an update completes a deletion."""

    def should_delete_during_update(self, old: Obj, new: Obj) -> bool:
        """ShouldDeleteNamespaceDuringUpdate: the generic rule, and no spec finalizer left."""
        return finalized(new) and super().should_delete_during_update(old, new)


class NamespaceRegistry(_NamespaceWrites):
    """Namespaces: :class:`Registry` with the two-step delete and :meth:`finalize`."""

    def __init__(self, store: Store, **kwargs: Any) -> None:
        super().__init__(store, NamespaceStrategy(), **kwargs)
        self._finalize = _NamespaceWrites(store, NamespaceFinalizeStrategy(),
                                          subresource="finalize", **kwargs)

    async def finalize(self, name: str, obj: Obj, *, dry_run: bool = False,
                       before_write: BeforeWrite | None = None) -> Obj:
        """``PUT /api/v1/namespaces/NAME/finalize`` (FinalizeREST.Update)."""
        return await self._finalize.update("", name, obj, dry_run=dry_run,
                                           before_write=before_write)

    async def delete(self, namespace: str, name: str, *,
                     preconditions: Preconditions | None = None,
                     dry_run: bool = False, grace_period: int | None = None,
                     propagation_policy: str = "") -> Obj:
        if name in IMMORTAL_NAMESPACES:
            raise errors.forbidden_error("namespaces", name, "this namespace may not be deleted")
        key = self.key("", name)
        admitted = False
        for _ in range(_DELETE_RETRIES):
            kv = await self.store.get(key)
            if kv is None:
                raise self._not_found(name)
            current = self.decode(kv)
            if preconditions is not None:
                self._check_preconditions(current, preconditions)
            meta = current.get("metadata") or {}
            if meta.get("deletionTimestamp"):
                if not finalized(current):
                    return current  # the namespace controller is still at work
                return await super().delete(namespace, name, preconditions=preconditions,
                                            dry_run=dry_run, grace_period=grace_period,
                                            propagation_policy=propagation_policy)
            # Admission sees the delete as it marks the namespace (the final delete, once
            # finalized, is admitted by the generic delete above).
            admitted = admitted or await self._admit_delete("", name, current, dry_run)
            existing = list(meta.get("finalizers") or [])
            wanted = gc_finalizers(existing, propagation_policy)
            marked = mark_terminating(current, rfc3339(self.clock.now()),
                                      wanted if wanted != existing else None)
            if dry_run:
                return marked
            try:
                written = await self.store.update(key, self.encode(marked), kv.mod_revision)
            except (Conflict, KeyNotFound):
                continue  # changed under us: look again (preconditions included)
            return self.decode(written)
        raise errors.conflict("namespaces", name,
                              "the object kept changing while being deleted")
