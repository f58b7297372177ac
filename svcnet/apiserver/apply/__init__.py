"""Server-side apply and ``metadata.managedFields``, as kube-apiserver's field manager does them.

Theory of operation
===================

Every write records who set which fields. A *field set* (:class:`FieldSet`) is a set of field
paths; a path is a sequence of :class:`PathElement` -- a field name (``f:spec``), a list-map
item key (``k:{"port":80,"protocol":"TCP"}``), a set value (``v:"x"``) or an index
(``i:0``). ``metadata.managedFields`` stores one field set per *manager* (name + operation
``Apply``/``Update`` + apiVersion for updates + subresource), encoded in structured-merge-diff's
``FieldsV1`` JSON: a trie whose leaves are ``{}`` and where ``".": {}`` marks a node that is a
member itself as well as a parent.

Three typed walks over plain JSON dicts do the work; the "types" are the list/map kinds from
:data:`svcnet.apiserver.patch.PATCH_META` (atomic, set, map-with-keys; atomic maps/structs):

* :func:`fields_of` (smd ``ToFieldSet``): every leaf and list item of an object;
* ``compare`` (smd ``Compare``): which paths were added, modified or removed;
* ``merge`` (smd ``Merge``): the applied configuration over the live object, list-map items
  matched by key and kept in a stable order, atomic values replaced whole.

On top of them sits a port of the ``fieldmanager`` pipeline, layer by layer:

``update_managed_fields`` (``FieldManager.UpdateNoErrors``)
    For create/update/non-apply patch. Ownership comes from comparing old and new: the writer
    gains every path it added or modified; every other manager loses the paths whose value
    changed and all removed paths. Entries of the same manager merge; ``time`` only moves
    when the writer changed something. An existing object without managedFields is not
    tracked on update (upstream ``skipNonApplied``); at most 10 ``Update`` entries are kept,
    the oldest folded into ``ancient-changes``.

``server_side_apply`` (``FieldManager.Apply``)
    1. merge the applied configuration into the live object;
    2. the applier's new set is the configuration's field set;
    3. prune: remove what the applier applied last time but no longer applies, unless another
       manager (or the new configuration) still owns it;
    4. compare live with the result: a changed or added path owned by another manager is a
       conflict (409 ``Apply failed with N conflict(s): ...``) unless ``force``, in which case
       the other manager loses it;
    5. a no-op keeps the live object and the manager's ``time``.
    Around that: ``before-first-apply`` takes ownership of everything when an object without
    managedFields is first applied to; for the manager ``kubectl``, conflicts with values that
    still match the client-side ``last-applied-configuration`` annotation are forced, and that
    annotation is kept in sync with the applied configuration.

In both, fields of the kind's *reset set* never get owners (``status`` for the main
resource, ``spec`` for ``/status``), and ``apiVersion``, ``kind``, ``metadata.name`` and the
other system metadata are stripped from every set.

Conversion between API versions is not needed (one version per kind): managers recorded
against another apiVersion are dropped, as upstream drops managers of versions that no
longer exist. Go's typed decoding after a merge (nulls become absent) is done by dropping
nulls from the result; defaulting is left to the registry, as it runs after apply upstream.
"""

from __future__ import annotations

from datetime import datetime

from svcnet.apiserver.apply.fieldmanager import _FieldManager
from svcnet.apiserver.apply.fieldset import FieldSet, PathElement
from svcnet.apiserver.apply.values import JSON, LAST_APPLIED_ANNOTATION, Obj
from svcnet.apiserver.apply.walks import _Typed
from svcnet.apiserver.patch import patch_schema

__all__ = [
    "LAST_APPLIED_ANNOTATION",
    "FieldSet",
    "PathElement",
    "fields_of",
    "server_side_apply",
    "update_managed_fields",
]




# Public API
# ============================================================================================


def fields_of(obj: JSON, api_version: str, kind: str) -> FieldSet:
    """Every leaf and list item of ``obj`` as field paths (smd ``ToFieldSet``).

    Nothing is stripped: ``apiVersion``, ``metadata.name`` and the like are included.
    """
    return _Typed(patch_schema(api_version, kind)).field_set(obj)


def update_managed_fields(old_obj: Obj | None, new_obj: Obj, manager: str,
                          operation: str, api_version: str, now: str | datetime,
                          subresource: str = "", *, kind: str | None = None) -> Obj:
    """Record a create/update/non-apply patch in ``new_obj``'s managedFields; returns a copy.

    ``old_obj`` is the stored object (None on create); ``new_obj`` is what will be stored.
    ``manager`` is the ``fieldManager`` (or user agent); ``now`` an RFC 3339 time or a
    datetime. ``operation`` must be ``"Update"``: apply goes through :func:`server_side_apply`.
    The kind defaults to ``new_obj["kind"]``. Never raises for bad managedFields: like
    ``UpdateNoErrors`` it then keeps the old object's entries.
    """
    if operation != "Update":
        raise ValueError(f"operation must be Update, got {operation!r}; use server_side_apply")
    kind = kind or str(new_obj.get("kind") or (old_obj or {}).get("kind") or "")
    fm = _FieldManager(api_version, kind, subresource, now)
    return fm.update_no_errors(old_obj, new_obj, manager)


def server_side_apply(live: Obj | None, applied: JSON, manager: str,
                      force: bool, api_version: str, kind: str, now: str | datetime, *,
                      subresource: str = "") -> Obj:
    """Merge an apply configuration into ``live`` (None: create) for ``manager``.

    Returns the new object with its managedFields; if nothing changed, the live object (with
    possibly updated ownership). Raises StatusError 409 on conflicts (unless ``force``), 400
    for a configuration of the wrong type or carrying managedFields, 500 for a configuration
    smd cannot type (duplicate list-map keys). Inputs are not mutated.
    """
    fm = _FieldManager(api_version, kind, subresource, now)
    return fm.apply(live, applied, manager, force)
