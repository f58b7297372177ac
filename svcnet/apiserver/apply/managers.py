"""Managers: the ``metadata.managedFields`` entries and their bookkeeping."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from svcnet.api.errors import StatusError, go_quote
from svcnet.apiserver.apply.fieldset import FieldPath, FieldSet, path_string
from svcnet.apiserver.apply.values import JSON, Obj

# Managers
# ============================================================================================


@dataclass(frozen=True, slots=True)
class _VersionedSet:
    fields: FieldSet
    api_version: str
    applied: bool


@dataclass
class _Managed:
    """Decoded managedFields: manager identifier → field set, and → time."""

    fields: dict[str, _VersionedSet] = field(default_factory=dict)
    times: dict[str, str | None] = field(default_factory=dict)

    def copy(self) -> _Managed:
        return _Managed(dict(self.fields), dict(self.times))


def _manager_id(manager: str, operation: str, api_version: str, subresource: str) -> str:
    """``BuildManagerIdentifier``: the entry minus fields, time and (for Apply) apiVersion."""
    ident: Obj = {}
    if manager:
        ident["manager"] = manager
    if operation:
        ident["operation"] = operation
    if api_version and operation != "Apply":
        ident["apiVersion"] = api_version
    if subresource:
        ident["subresource"] = subresource
    # json.Marshal of the struct: declaration order, not sorted.
    return json.dumps(ident, ensure_ascii=False, separators=(",", ":"))


def _print_manager(manager_id: str) -> str:
    """How a conflict names a manager: ``"kubectl-client-side-apply" using v1``."""
    try:
        ident = json.loads(manager_id)
    except ValueError:
        return go_quote(manager_id)
    if not isinstance(ident, dict):
        return go_quote(manager_id)
    text = go_quote(str(ident.get("manager", "")))
    if ident.get("subresource"):
        text += f" with subresource {go_quote(str(ident['subresource']))}"
    if ident.get("operation") == "Update":
        text += f" using {ident.get('apiVersion', '')}"
        if ident.get("time"):
            text += f" at {ident['time']}"
    return text


def _decode_managed_fields(entries: JSON) -> _Managed:
    """``DecodeManagedFields``; raises ValueError like upstream on a malformed entry."""
    managed = _Managed()
    if entries is None:
        return managed
    if not isinstance(entries, list):
        raise ValueError("managedFields must be a list")
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise ValueError(f"managed fields entry {i} is not an object")
        op = e.get("operation")
        if op not in ("Apply", "Update"):
            raise ValueError("operation must be `Apply` or `Update`")
        api_version = e.get("apiVersion") or ""
        if not api_version:
            raise ValueError("apiVersion must not be empty")
        fields_type = e.get("fieldsType") or ""
        if fields_type == "":
            raise ValueError(f"missing fieldsType in managed fields entry {i}")
        if fields_type != "FieldsV1":
            raise ValueError(f"invalid fieldsType {go_quote(str(fields_type))} in managed "
                             f"fields entry {i}")
        mid = _manager_id(str(e.get("manager") or ""), op, api_version,
                          str(e.get("subresource") or ""))
        fields = FieldSet.from_fields_v1(e.get("fieldsV1") or {})
        managed.fields[mid] = _VersionedSet(fields, api_version, op == "Apply")
        managed.times[mid] = e.get("time")
    return managed


def _epoch(t: str | None) -> int:
    if not t:
        return 0
    try:
        return int(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _encode_managed_fields(managed: _Managed) -> list[Obj] | None:
    """``EncodeObjectManagedFields``: one entry per manager, sorted as upstream sorts them."""
    if not managed.fields:
        return None
    entries: list[Obj] = []
    for mid, vs in managed.fields.items():
        try:
            ident = json.loads(mid)
        except ValueError:
            ident = {"manager": mid}
        entry: Obj = {}
        if ident.get("manager"):
            entry["manager"] = ident["manager"]
        entry["operation"] = "Apply" if vs.applied else ident.get("operation", "Update")
        entry["apiVersion"] = vs.api_version
        if managed.times.get(mid):
            entry["time"] = managed.times[mid]
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = vs.fields.to_fields_v1()
        if ident.get("subresource"):
            entry["subresource"] = ident["subresource"]
        entries.append(entry)
    entries.sort(key=lambda e: (e["operation"], _epoch(e.get("time")), e.get("manager", ""),
                                e["apiVersion"], e.get("subresource", "")))
    return entries


def _is_reset_managed_fields(entries: JSON) -> bool:
    """``[]`` or ``[{}]`` in a request means "drop all ownership"."""
    if not isinstance(entries, list):
        return False
    if not entries:
        return True
    return len(entries) == 1 and isinstance(entries[0], dict) and not any(
        v not in (None, "", {}) for v in entries[0].values())


class _Conflicts(Exception):
    def __init__(self, conflicts: list[tuple[str, FieldPath]]) -> None:
        super().__init__(f"{len(conflicts)} conflicts")
        self.conflicts = conflicts


def _conflicts_from(managers: Mapping[str, FieldSet]) -> list[tuple[str, FieldPath]]:
    return [(m, p) for m in sorted(managers) for p in managers[m]]


def _conflict_error(conflicts: list[tuple[str, FieldPath]]) -> StatusError:
    """``NewConflictError``: 409 Conflict with one FieldManagerConflict cause per path."""
    causes = [{"reason": "FieldManagerConflict",
               "message": f"conflict with {_print_manager(m)}",
               "field": path_string(p)} for m, p in conflicts]
    if len(conflicts) == 1:
        m, p = conflicts[0]
        message = (f"Apply failed with 1 conflict: conflict with {_print_manager(m)}: "
                   f"{path_string(p)}")
    else:
        by_manager: dict[str, list[FieldPath]] = {}
        for m, p in conflicts:
            by_manager.setdefault(m, []).append(p)
        lines: list[str] = []
        for m in sorted(by_manager):
            lines.append(f"conflicts with {_print_manager(m)}:")
            lines.extend(f"- {path_string(p)}" for p in by_manager[m])
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return StatusError(409, "Conflict", message, {"causes": causes})


# ============================================================================================
