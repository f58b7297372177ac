"""The field manager pipeline (k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager)."""

from __future__ import annotations

import json
from datetime import datetime

from svcnet.api.access import meta_of as _meta
from svcnet.api.errors import StatusError, bad_request
from svcnet.apiserver.apply.fieldset import FieldSet, _fp
from svcnet.apiserver.apply.kinds import (
    _ANCIENT_CHANGES,
    _BEFORE_FIRST_APPLY,
    _CURRENT_OPERATION,
    _RESET_FIELDS,
    _STRIP,
    _ZERO_STRUCTS,
    _rfc3339,
    _view_without_managed_fields,
    _with_managed_fields,
    _without_managed_fields,
)
from svcnet.apiserver.apply.managers import (
    _conflict_error,
    _Conflicts,
    _conflicts_from,
    _decode_managed_fields,
    _epoch,
    _is_reset_managed_fields,
    _Managed,
    _manager_id,
    _VersionedSet,
)
from svcnet.apiserver.apply.values import (
    JSON,
    LAST_APPLIED_ANNOTATION,
    MAX_UPDATE_MANAGERS,
    MISSING,
    TOTAL_ANNOTATION_SIZE_LIMIT,
    Obj,
    _value_eq,
)
from svcnet.apiserver.apply.walks import _Comparison, _drop_nulls, _Typed, _TypedError
from svcnet.apiserver.patch import go_json, patch_schema
from svcnet.util.jsoncopy import json_copy

# The field manager
# ============================================================================================


class _FieldManager:
    """The default fieldmanager stack for one kind, (sub)resource and point in time."""

    def __init__(self, api_version: str, kind: str, subresource: str,
                 now: str | datetime) -> None:
        self.api_version = api_version
        self.kind = kind
        self.subresource = subresource
        self.now = _rfc3339(now)
        self.typed = _Typed(patch_schema(api_version, kind))
        self.ignored = FieldSet(_fp(p) for p in _RESET_FIELDS.get(
            (api_version, kind, subresource), ()))

    def _id(self, manager: str, operation: str) -> str:
        return _manager_id(manager or "unknown", operation, self.api_version, self.subresource)

    def _zero(self, like: Obj | None = None) -> Obj:
        """The zero object of the kind, limited to the structs ``like`` has."""
        zero: Obj = {"metadata": {}}
        for k in _ZERO_STRUCTS.get((self.api_version, self.kind), ()):
            if like is None or k in like:
                zero[k] = {}
        return zero

    # -- structured-merge-diff Updater ----------------------------------------------------

    def _reconcile(self, managed: dict[str, _VersionedSet]) -> dict[str, _VersionedSet]:
        # Managers of an apiVersion we cannot convert to are dropped, as upstream drops
        # managers of versions that are no longer served.
        return {m: vs for m, vs in managed.items() if vs.api_version == self.api_version}

    def _update_managers(self, live: JSON, new: JSON, managers: dict[str, _VersionedSet],
                         workflow: str, force: bool) -> _Comparison:
        cmp = self.typed.compare(live, new).exclude(self.ignored)
        changed = cmp.modified | cmp.added
        conflicts = {m: vs.fields & changed for m, vs in managers.items()
                     if m != workflow and vs.fields & changed}
        if conflicts and not force:
            raise _Conflicts(_conflicts_from(conflicts))
        for m, vs in list(managers.items()):
            if m == workflow:
                continue
            kept = vs.fields - conflicts.get(m, FieldSet()) - cmp.removed
            managers[m] = _VersionedSet(kept, vs.api_version, vs.applied)
        for m in [m for m, vs in managers.items() if not vs.fields]:
            del managers[m]
        return cmp

    def _updater_update(self, live: JSON, new: JSON, managed: dict[str, _VersionedSet],
                        manager: str) -> dict[str, _VersionedSet]:
        managers = self._reconcile(managed)
        cmp = self._update_managers(live, new, managers, manager, force=True)
        prev = managers.get(manager, _VersionedSet(FieldSet(), self.api_version, False))
        owned = ((prev.fields - cmp.removed) | cmp.modified | cmp.added)
        owned = owned.recursive_difference(self.ignored)
        managers[manager] = _VersionedSet(owned, self.api_version, False)
        if not owned:
            del managers[manager]
        return managers

    def _prune(self, merged: JSON, managers: dict[str, _VersionedSet],
               last: _VersionedSet | None) -> JSON:
        """Remove what the applier owned last time and nobody owns now."""
        if last is None or not last.fields:
            return merged
        t = self.typed
        last_named = last.fields.ensure_named_fields_are_members()
        pruned = t.remove_items(merged, last_named)
        # addBackOwnedItems: keep anything another manager (or the new config) owns.
        owned = FieldSet()
        for vs in managers.values():
            owned = owned | vs.fields
        merged_set = t.field_set(merged).ensure_named_fields_are_members()
        pruned_set = t.field_set(pruned).ensure_named_fields_are_members()
        pruned = t.remove_items(merged, merged_set - (
            pruned_set | owned.ensure_named_fields_are_members()))
        # addBackDanglingItems: only remove what the applier itself had.
        pruned_set = t.field_set(pruned).ensure_named_fields_are_members()
        return t.remove_items(merged, (merged_set - pruned_set) & last_named)

    def _updater_apply(self, live: Obj, config: Obj, managed: dict[str, _VersionedSet],
                       manager: str, force: bool) -> tuple[Obj | None, dict[str, _VersionedSet]]:
        managers = self._reconcile(managed)
        merged = self.typed.merge(live, config)
        new: JSON = {} if merged is MISSING else merged
        last = managers.get(manager)
        applied_set = self.typed.field_set(config).recursive_difference(self.ignored)
        managers[manager] = _VersionedSet(applied_set, self.api_version, True)
        new = self._prune(new, managers, last)
        if new is MISSING:
            new = {}
        self._update_managers(live, new, managers, manager, force)
        if _value_eq(live, new):
            return None, managers
        return new, managers

    # -- update layers --------------------------------------------------------------------

    def update_no_errors(self, live: Obj | None, new: Obj, manager: str) -> Obj:
        try:
            return self._update(live, new, manager)
        except (_TypedError, ValueError):
            # UpdateNoErrors keeps the live object's managedFields rather than losing them.
            out = json_copy(new)
            entries = _meta(live or {}).get("managedFields")
            meta = out.setdefault("metadata", {})
            if entries:
                meta["managedFields"] = json_copy(entries)
            else:
                meta.pop("managedFields", None)
            return out

    def _update(self, live: Obj | None, new: Obj, manager: str) -> Obj:
        creating = live is None
        live_obj = self._zero(new) if live is None else _view_without_managed_fields(live)
        managed = self._decode_live_or_new(live or {}, new)
        new_obj = _without_managed_fields(new)
        # skipNonApplied: an existing object without managedFields stays untracked.
        if not managed.fields and not creating and _meta(live_obj).get("uid"):
            return new_obj
        managed = self._update_capped(live_obj, new_obj, managed, manager)
        return _with_managed_fields(new_obj, managed)

    def _decode_live_or_new(self, live: Obj, new: Obj) -> _Managed:
        live_entries = _meta(live).get("managedFields")
        if self.subresource:
            # Subresources cannot set managedFields; take the live object's.
            try:
                return _decode_managed_fields(live_entries)
            except ValueError:
                return _Managed()
        new_entries = _meta(new).get("managedFields")
        if _is_reset_managed_fields(new_entries):
            return _Managed()
        try:
            managed = _decode_managed_fields(new_entries)
        except ValueError:
            managed = _Managed()
        if managed.fields:
            return managed
        try:
            return _decode_managed_fields(live_entries)
        except ValueError:
            return _Managed()

    def _update_capped(self, live: Obj, new: Obj, managed: _Managed, manager: str) -> _Managed:
        managed = self._update_tracked(live, new, managed, self._id(manager, "Update"))
        return self._cap_update_managers(managed)

    def _update_tracked(self, live: Obj, new: Obj, managed: _Managed, mid: str) -> _Managed:
        """managedFieldsUpdater + stripMeta + structured merge for an update."""
        out = managed.copy()
        fields = self._updater_update(live, new, out.fields, _CURRENT_OPERATION)
        fields = self._strip(fields, _CURRENT_OPERATION)
        current = fields.pop(_CURRENT_OPERATION, None)
        if current is not None:
            prev = fields.get(mid)
            fields[mid] = current if prev is None else _VersionedSet(
                current.fields | prev.fields, current.api_version, current.applied)
            out.times[mid] = self.now
        out.fields = fields
        return out

    @staticmethod
    def _strip(fields: dict[str, _VersionedSet], manager: str) -> dict[str, _VersionedSet]:
        vs = fields.get(manager)
        if vs is not None:
            kept = vs.fields - _STRIP
            if kept:
                fields[manager] = _VersionedSet(kept, vs.api_version, vs.applied)
            else:
                del fields[manager]
        return fields

    def _cap_update_managers(self, managed: _Managed) -> _Managed:
        """Fold the oldest Update entries into per-version ``ancient-changes`` buckets."""
        updaters = [m for m, vs in managed.fields.items() if not vs.applied]
        if len(updaters) <= MAX_UPDATE_MANAGERS:
            return managed
        updaters.sort(key=lambda m: (_epoch(managed.times.get(m)), m))
        first_of_version: dict[str, str] = {}
        length = len(updaters)
        for m in updaters:
            if length <= MAX_UPDATE_MANAGERS:
                break
            vs = managed.fields[m]
            bucket = _manager_id(_ANCIENT_CHANGES, "Update", vs.api_version, "")
            first = first_of_version.get(vs.api_version)
            if first is None:
                first_of_version[vs.api_version] = m
                continue
            if bucket not in managed.fields:
                managed.fields[bucket] = managed.fields.pop(first)
            managed.fields[bucket] = _VersionedSet(vs.fields | managed.fields[bucket].fields,
                                                   vs.api_version, vs.applied)
            del managed.fields[m]
            managed.times[bucket] = managed.times.get(m)
            length -= 1
        return managed

    # -- apply layers ---------------------------------------------------------------------

    def apply(self, live: Obj | None, applied: JSON, manager: str, force: bool) -> Obj:
        if not isinstance(applied, dict):
            raise bad_request("error decoding YAML: the apply configuration must be an "
                              "object")
        # versionCheck
        av, kd = str(applied.get("apiVersion") or ""), str(applied.get("kind") or "")
        if (av, kd) != (self.api_version, self.kind):
            group, _, version = av.rpartition("/")
            raise bad_request(f"invalid object type: {group}/{version}, Kind={kd}")
        live_obj: Obj = {} if live is None else json_copy(live)
        try:
            managed = _decode_managed_fields(_meta(live_obj).get("managedFields"))
        except ValueError as e:
            raise StatusError(500, "", f"failed to decode managed fields: {e}") from e
        try:
            obj, managed = self._apply_last_applied(live_obj, applied, managed, manager, force)
        except _Conflicts as c:
            raise _conflict_error(c.conflicts) from None
        return _with_managed_fields(obj, managed)

    def _apply_last_applied(self, live: Obj, applied: Obj, managed: _Managed, manager: str,
                            force: bool) -> tuple[Obj, _Managed]:
        """lastAppliedUpdater + lastAppliedManager: kubectl's client-side-apply migration."""
        try:
            obj, managed = self._apply_tracked(live, applied, managed, manager, force)
        except _Conflicts as c:
            if manager != "kubectl":
                raise
            allowed = self._allowed_conflicts_from_last_applied(live)
            if allowed is None:
                raise
            remaining = [(m, p) for m, p in c.conflicts if p not in allowed]
            if remaining:
                raise _Conflicts(remaining) from None
            obj, managed = self._apply_tracked(live, applied, managed, manager, True)
        if manager == "kubectl" and _meta(obj).get("annotations", {}).get(
                LAST_APPLIED_ANNOTATION):
            obj = _set_last_applied(obj, _build_last_applied(applied))
        return obj, managed

    def _allowed_conflicts_from_last_applied(self, live: Obj) -> FieldSet | None:
        """Fields whose live value still equals the client-side last-applied configuration."""
        raw = _meta(live).get("annotations", {}).get(LAST_APPLIED_ANNOTATION)
        if not raw or not isinstance(raw, str):
            return None
        try:
            last = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(last, dict) or last.get("apiVersion") != self.api_version:
            return None
        try:
            last_set = self.typed.field_set(last)
            cmp = self.typed.compare(last, _without_managed_fields(live))
        except _TypedError:
            return None
        return last_set - cmp.modified - cmp.added - cmp.removed

    def _apply_tracked(self, live: Obj, applied: Obj, managed: _Managed, manager: str,
                       force: bool) -> tuple[Obj, _Managed]:
        """skipNonApplied, buildManagerInfo, managedFieldsUpdater and stripMeta for apply."""
        managed = managed.copy()
        if not managed.fields:
            # Whatever is already there belongs to "before-first-apply".
            base = _without_managed_fields(live)
            managed = self._update_capped(self._zero(base), base, managed,
                                          _BEFORE_FIRST_APPLY)
        mid = self._id(manager, "Apply")
        new, fields = self._structured_apply(live, applied, managed.fields, mid, force)
        managed.fields = self._strip(fields, mid)
        if new is not None:
            managed.times[mid] = self.now
            return new, managed
        return _without_managed_fields(live), managed

    def _structured_apply(self, live: Obj, applied: Obj, managed: dict[str, _VersionedSet],
                          mid: str, force: bool) -> tuple[Obj | None, dict[str, _VersionedSet]]:
        if applied.get("apiVersion") != self.api_version:
            raise bad_request("Incorrect version specified in apply patch. Specified patch "
                              f"version: {applied.get('apiVersion')}, expected: "
                              f"{self.api_version}")
        meta = applied.get("metadata")
        if isinstance(meta, dict) and meta.get("managedFields") is not None:
            raise bad_request("metadata.managedFields must be nil")
        try:
            self.typed.validate(applied)
        except _TypedError as e:
            raise StatusError(500, "", f"failed to create typed patch object "
                                       f"({self._describe(applied)}): {e.message()}") from e
        try:
            new, fields = self._updater_apply(_without_managed_fields(live), applied, managed,
                                              mid, force)
        except _TypedError as e:
            raise StatusError(500, "", f"failed to create typed live object "
                                       f"({self._describe(live)}): {e.message()}") from e
        return (None if new is None else _drop_nulls(new)), fields

    def _describe(self, obj: Obj) -> str:
        """``objectGVKNN``: ``namespace/name; group/version, Kind=kind``."""
        meta = _meta(obj)
        group, _, version = self.api_version.rpartition("/")
        return (f"{meta.get('namespace', '')}/{meta.get('name', '')}; "
                f"{group}/{version}, Kind={self.kind}")


def _build_last_applied(applied: Obj) -> str:
    """The applied configuration minus the annotation, as ``UnstructuredJSONScheme`` encodes."""
    obj = json_copy(applied)
    annotations = _meta(obj).get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED_ANNOTATION, None)
    return go_json(obj) + "\n"


def _set_last_applied(obj: Obj, value: str) -> Obj:
    out = json_copy(obj)
    meta = out.setdefault("metadata", {})
    annotations = meta.get("annotations")
    if not isinstance(annotations, dict):
        annotations = meta["annotations"] = {}
    annotations[LAST_APPLIED_ANNOTATION] = value
    size = sum(len(k.encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > TOTAL_ANNOTATION_SIZE_LIMIT:
        # ValidateAnnotationsSize would fail: drop the annotation rather than the write.
        del annotations[LAST_APPLIED_ANNOTATION]
    return out


# ============================================================================================
