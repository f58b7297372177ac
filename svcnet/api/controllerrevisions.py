"""apps/v1 ControllerRevisions: validation as Kubernetes does it.

Theory of operation
-------------------
A ControllerRevision is an immutable snapshot of the state of a controller's object that its
pods are made from: the DaemonSet and StatefulSet controllers keep one per pod template they
have run (their *history*, :mod:`svcnet.controllers.history`), ``kubectl rollout history``
lists them and ``kubectl rollout undo`` patches the owner with one's ``data``. ``data`` is
free-form (a ``RawExtension``: here whatever JSON value was sent), ``revision`` the number
that orders a controller's revisions.

Mirrors ``pkg/apis/apps/validation/validation.go`` (``ValidateControllerRevision`` and
``ValidateControllerRevisionUpdate``: core's ObjectMeta rules with a DNS-subdomain name,
``data`` required ("data is mandatory"), ``revision`` not negative; on update the ObjectMeta
update rules and ``data`` immutable, while ``revision`` may change: the controllers renumber a
revision they roll back to) and ``pkg/registry/apps/controllerrevision/strategy.go`` (no
defaulting, no generation, no status). Objects are JSON dicts as on the wire; inputs are never
mutated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from svcnet.api.access import map_of as _map
from svcnet.api.errors import FieldError, Path, invalid, required
from svcnet.api.meta import FIELD_IMMUTABLE_ERROR_MSG, validate_object_meta_update
from svcnet.api.workloads import nonnegative, validate_create_meta

__all__ = ["GROUP", "validate_controller_revision", "validate_controller_revision_update"]

GROUP: Final = "apps"

ObjMap = Mapping[str, Any]

_DATA: Final = Path("data")


def _revision(obj: ObjMap) -> int:
    value = obj.get("revision")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def validate_controller_revision(obj: ObjMap) -> list[FieldError]:
    """ValidateControllerRevision."""
    errs = validate_create_meta(obj)
    if obj.get("data") is None:
        errs.append(required(_DATA, "data is mandatory"))
    errs.extend(nonnegative(_revision(obj), Path("revision")))
    return errs


def validate_controller_revision_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateControllerRevisionUpdate."""
    errs = validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"))
    errs.extend(validate_controller_revision(new))
    if new.get("data") != old.get("data"):  # RawExtension: its bytes, not a semantic compare
        errs.append(invalid(_DATA, new.get("data"), FIELD_IMMUTABLE_ERROR_MSG))
    return errs
