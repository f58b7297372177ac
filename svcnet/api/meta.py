"""ObjectMeta validation, as Kubernetes does it.

Mirrors:

* ``staging/src/k8s.io/apimachinery/pkg/api/validation/objectmeta.go`` —
  ``ValidateObjectMetaAccessor`` (create), ``ValidateObjectMetaAccessorUpdate`` (update),
  ``ValidateAnnotations`` (with the 256 KiB total), ``ValidateOwnerReferences``,
  ``ValidateFinalizers``, ``ValidateImmutableField``;
* ``staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/validation/validation.go`` —
  ``ValidateLabels``/``ValidateLabelName`` and ``ValidateManagedFields``;
* ``pkg/apis/core/validation/validation.go`` — the core wrappers ``ValidateObjectMeta`` /
  ``ValidateObjectMetaUpdate`` that additionally insist that un-prefixed finalizers are one of
  the standard names (``validateKubeFinalizerName``).

Metadata is a JSON-shaped dict as it appears on the wire. Inputs are never mutated.

Map iteration order is random in Go, so upstream's error order for several bad labels (or
annotations) is unspecified; we iterate keys in sorted order to be deterministic.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from svcnet.api.errors import (
    FieldError,
    GoRaw,
    Path,
    PathLike,
    duplicate,
    forbidden,
    go_quote,
    invalid,
    not_supported,
    required,
    too_long,
)
from svcnet.api.names import (
    NameValidator,
    is_qualified_name,
    is_valid_label_value,
    regex_error,
    validate_namespace_name,
)

FIELD_IMMUTABLE_ERROR_MSG: Final = "field is immutable"
TOTAL_ANNOTATION_SIZE_LIMIT_B: Final = 256 * (1 << 10)  # 256 KiB
IS_NEGATIVE_ERROR_MSG: Final = "must be greater than or equal to 0"
FIELD_MANAGER_MAX_LENGTH: Final = 128
MAX_SUBRESOURCE_NAME_LENGTH: Final = 256

FINALIZER_ORPHAN_DEPENDENTS: Final = "orphan"
FINALIZER_DELETE_DEPENDENTS: Final = "foregroundDeletion"
#: helper.IsStandardFinalizerName: the only finalizers allowed without a "domain/" prefix.
STANDARD_FINALIZERS: Final = frozenset(
    {"kubernetes", FINALIZER_ORPHAN_DEPENDENTS, FINALIZER_DELETE_DEPENDENTS})

#: objectmeta.go BannedOwners: (group, version, kind).
BANNED_OWNERS: Final = frozenset({("", "v1", "Event")})

METADATA: Final = Path("metadata")


def _p(path: PathLike) -> Path:
    return path if isinstance(path, Path) else Path(path)


def _str(d: Mapping[str, Any], key: str) -> str:
    v = d.get(key)
    return v if isinstance(v, str) else ""


def _map(d: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    v = d.get(key)
    return v if isinstance(v, Mapping) else {}


def _list(d: Mapping[str, Any], key: str) -> list[Any]:
    v = d.get(key)
    return list(v) if isinstance(v, list) else []


def _go_str_list(values: Sequence[str] | None) -> GoRaw:
    """%#v of a Go []string (nil prints as ``[]string(nil)``)."""
    if values is None:
        return GoRaw("[]string(nil)")
    return GoRaw("[]string{" + ", ".join(go_quote(v) for v in values) + "}")


# --------------------------------------------------------------------------------------------
# labels, annotations, selectors


def validate_label_name(name: str, path: PathLike) -> list[FieldError]:
    """ValidateLabelName: a qualified name; errors name the (un-keyed) map path."""
    return [invalid(path, name, msg) for msg in is_qualified_name(name)]


def validate_labels(labels: Mapping[str, str] | None, path: PathLike) -> list[FieldError]:
    """ValidateLabels: every key a qualified name, every value a label value.

    Upstream reports all label problems on the map's own path (``metadata.labels``), not on
    ``metadata.labels[key]``; the bad key or value is the error's value.
    """
    errs: list[FieldError] = []
    if not labels:
        return errs
    for k in sorted(labels):
        v = labels[k]
        errs.extend(validate_label_name(k, path))
        value = v if isinstance(v, str) else ""
        errs.extend(invalid(path, value, msg) for msg in is_valid_label_value(value))
    return errs


def annotations_size(annotations: Mapping[str, str] | None) -> int:
    """ValidateAnnotationsSize's measure: bytes of every key plus every value."""
    if not annotations:
        return 0
    return sum(len(k.encode()) + len(str(v).encode()) for k, v in annotations.items())


def validate_annotations(annotations: Mapping[str, str] | None,
                         path: PathLike) -> list[FieldError]:
    """ValidateAnnotations: keys are qualified names *case-insensitively*; total <= 256 KiB.

    The key check lower-cases first (so ``Foo/Bar`` is fine) but reports the original key.
    The size error is TooLong with an empty value (upstream passes "" as "unused").
    """
    errs: list[FieldError] = []
    if not annotations:
        return errs
    for k in sorted(annotations):
        errs.extend(invalid(path, k, msg) for msg in is_qualified_name(k.lower()))
    if annotations_size(annotations) > TOTAL_ANNOTATION_SIZE_LIMIT_B:
        errs.append(too_long(path, "", TOTAL_ANNOTATION_SIZE_LIMIT_B))
    return errs


# --------------------------------------------------------------------------------------------
# ownerReferences, finalizers, managedFields


def _parse_api_version(api_version: str) -> tuple[str, str]:
    """schema.ParseGroupVersion, folded into FromAPIVersionAndKind: (group, version).

    An unparsable value (more than one '/') yields an empty version, as upstream does.
    """
    if not api_version or api_version == "/":
        return "", ""
    parts = api_version.split("/")
    if len(parts) == 1:
        return "", api_version
    if len(parts) == 2:
        return parts[0], parts[1]
    return "", ""


def _go_owner_ref(ref: Mapping[str, Any]) -> str:
    def ptr(key: str) -> str:
        v = ref.get(key)
        return "(*bool)(nil)" if v is None else f"(*bool)({'true' if v else 'false'})"

    return ("v1.OwnerReference{"
            f"APIVersion:{go_quote(_str(ref, 'apiVersion'))}, "
            f"Kind:{go_quote(_str(ref, 'kind'))}, "
            f"Name:{go_quote(_str(ref, 'name'))}, "
            f"UID:{go_quote(_str(ref, 'uid'))}, "
            f"Controller:{ptr('controller')}, "
            f"BlockOwnerDeletion:{ptr('blockOwnerDeletion')}}}")


def validate_owner_references(refs: Sequence[Mapping[str, Any]] | None,
                              path: PathLike) -> list[FieldError]:
    """ValidateOwnerReferences: shape of each reference, and at most one controller.

    Errors use the un-indexed ``metadata.ownerReferences`` path (plus ``.apiVersion`` etc.),
    exactly as upstream does. Struct values are rendered approximately like Go's ``%#v``
    (pointers print as their value instead of an address).
    """
    p = _p(path)
    errs: list[FieldError] = []
    if not refs:
        return errs
    first_controller = ""
    for ref in refs:
        if not isinstance(ref, Mapping):
            continue
        api_version = _str(ref, "apiVersion")
        kind = _str(ref, "kind")
        group, version = _parse_api_version(api_version)
        if not version:
            errs.append(invalid(p.child("apiVersion"), api_version, "version must not be empty"))
        if not kind:
            errs.append(invalid(p.child("kind"), kind, "must not be empty"))
        if not _str(ref, "name"):
            errs.append(invalid(p.child("name"), _str(ref, "name"), "must not be empty"))
        if not _str(ref, "uid"):
            errs.append(invalid(p.child("uid"), _str(ref, "uid"), "must not be empty"))
        if (group, version, kind) in BANNED_OWNERS:
            errs.append(invalid(p, GoRaw(_go_owner_ref(ref)),
                                f"{group}/{version}, Kind={kind} is disallowed from being an "
                                "owner"))
        if ref.get("controller") is True:
            current = f"{kind}/{_str(ref, 'name')}"
            if first_controller:
                all_refs = "[]v1.OwnerReference{" + ", ".join(
                    _go_owner_ref(r) for r in refs if isinstance(r, Mapping)) + "}"
                errs.append(invalid(
                    p, GoRaw(all_refs),
                    "Only one reference can have Controller set to true. Found \"true\" in "
                    f"references for {first_controller} and {current}"))
            else:
                first_controller = current
    return errs


def validate_finalizers(finalizers: Sequence[str] | None, path: PathLike) -> list[FieldError]:
    """ValidateFinalizers: qualified names (un-indexed path) and not orphan+foreground."""
    errs: list[FieldError] = []
    if not finalizers:
        return errs
    for f in finalizers:
        value = f if isinstance(f, str) else ""
        errs.extend(invalid(path, value, msg) for msg in is_qualified_name(value))
    if FINALIZER_ORPHAN_DEPENDENTS in finalizers and FINALIZER_DELETE_DEPENDENTS in finalizers:
        errs.append(invalid(path, _go_str_list(list(finalizers)),
                            f"finalizer {FINALIZER_ORPHAN_DEPENDENTS} and "
                            f"{FINALIZER_DELETE_DEPENDENTS} cannot be both set"))
    return errs


def validate_kube_finalizer_names(finalizers: Sequence[str] | None,
                                  path: PathLike) -> list[FieldError]:
    """Core's validateKubeFinalizerName, per index: bare names must be standard ones."""
    p = _p(path)
    errs: list[FieldError] = []
    for i, f in enumerate(finalizers or []):
        if isinstance(f, str) and "/" not in f and f not in STANDARD_FINALIZERS:
            errs.append(invalid(p.index(i), f,
                                "name is neither a standard finalizer name nor is it fully "
                                "qualified"))
    return errs


def validate_managed_fields(entries: Sequence[Mapping[str, Any]] | None,
                            path: PathLike) -> list[FieldError]:
    """ValidateManagedFields (operation, fieldsType, manager, subresource)."""
    p = _p(path)
    errs: list[FieldError] = []
    for i, e in enumerate(entries or []):
        if not isinstance(e, Mapping):
            continue
        ip = p.index(i)
        op = _str(e, "operation")
        if op not in ("Apply", "Update"):
            errs.append(invalid(ip.child("operation"), op, "must be `Apply` or `Update`"))
        ft = _str(e, "fieldsType")
        if ft and ft != "FieldsV1":
            errs.append(invalid(ip.child("fieldsType"), ft, "must be `FieldsV1`"))
        manager = _str(e, "manager")
        if len(manager.encode()) > FIELD_MANAGER_MAX_LENGTH:
            errs.append(too_long(ip.child("manager"), manager, FIELD_MANAGER_MAX_LENGTH))
        for pos, ch in enumerate(manager):
            if not ch.isprintable():
                errs.append(invalid(ip.child("manager"), manager,
                                    f"invalid character U+{ord(ch):04X} (at position {pos})"))
        sub = _str(e, "subresource")
        if len(sub.encode()) > MAX_SUBRESOURCE_NAME_LENGTH:
            errs.append(too_long(ip.child("subresource"), sub, MAX_SUBRESOURCE_NAME_LENGTH))
    return errs


# --------------------------------------------------------------------------------------------
# create


def validate_object_meta(meta: Mapping[str, Any] | None, *, requires_namespace: bool,
                         name_fn: NameValidator,
                         path: PathLike = METADATA,
                         kube_finalizers: bool = True) -> list[FieldError]:
    """ValidateObjectMeta (core wrapper), for creates. Name generation has already happened.

    Order: generateName, name, namespace, generation, labels, annotations, ownerReferences,
    finalizers, managedFields, then core's per-index finalizer-name check, which
    ``kube_finalizers=False`` leaves out (apimachinery's ValidateObjectMeta, which kinds
    outside core such as RuntimeClass call).
    """
    p = _p(path)
    m: Mapping[str, Any] = meta or {}
    errs: list[FieldError] = []

    generate_name = _str(m, "generateName")
    if generate_name:
        errs.extend(invalid(p.child("generateName"), generate_name, msg)
                    for msg in name_fn(generate_name, True))
    name = _str(m, "name")
    if not name:
        errs.append(required(p.child("name"), "name or generateName is required"))
    else:
        errs.extend(invalid(p.child("name"), name, msg) for msg in name_fn(name, False))

    namespace = _str(m, "namespace")
    if requires_namespace:
        if not namespace:
            errs.append(required(p.child("namespace")))
        else:
            errs.extend(invalid(p.child("namespace"), namespace, msg)
                        for msg in validate_namespace_name(namespace, False))
    elif namespace:
        errs.append(forbidden(p.child("namespace"), "not allowed on this type"))

    generation = m.get("generation")
    if isinstance(generation, int) and generation < 0:
        errs.append(invalid(p.child("generation"), generation, IS_NEGATIVE_ERROR_MSG))

    errs.extend(validate_labels(_map(m, "labels"), p.child("labels")))
    errs.extend(validate_annotations(_map(m, "annotations"), p.child("annotations")))
    errs.extend(validate_owner_references(_list(m, "ownerReferences"),
                                          p.child("ownerReferences")))
    finalizers = _list(m, "finalizers")
    errs.extend(validate_finalizers(finalizers, p.child("finalizers")))
    errs.extend(validate_managed_fields(_list(m, "managedFields"), p.child("managedFields")))
    if kube_finalizers:
        errs.extend(validate_kube_finalizer_names(finalizers, p.child("finalizers")))
    return errs


# --------------------------------------------------------------------------------------------
# update


def _parse_time(v: object) -> _dt.datetime | None:
    if not isinstance(v, str) or not v:
        return None
    try:
        t = _dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.UTC)
    return t.astimezone(_dt.UTC)


def _go_time(v: object) -> GoRaw | str | None:
    """metav1.Time is a fmt.Stringer: it prints as time.Time.String() in UTC."""
    if v is None:
        return None
    t = _parse_time(v)
    if t is None:
        return str(v)
    return GoRaw(t.strftime("%Y-%m-%d %H:%M:%S +0000 UTC"))


def _same_time(a: object, b: object) -> bool:
    if (a is None or a == "") and (b is None or b == ""):
        return True
    ta, tb = _parse_time(a), _parse_time(b)
    if ta is not None and tb is not None:
        return ta == tb
    return a == b


def validate_object_meta_update(new_meta: Mapping[str, Any] | None,
                                old_meta: Mapping[str, Any] | None,
                                path: PathLike = METADATA, *,
                                kube_finalizers: bool = True) -> list[FieldError]:
    """ValidateObjectMetaUpdate (core wrapper).

    Note that upstream does *not* re-check the name's format here (it cannot change anyway)
    nor the finalizers' qualified-name format; only core's bare-finalizer check runs (not with
    ``kube_finalizers=False``: apimachinery's ValidateObjectMetaUpdate).
    """
    p = _p(path)
    new: Mapping[str, Any] = new_meta or {}
    old: Mapping[str, Any] = old_meta or {}
    errs: list[FieldError] = []

    # Finalizers cannot be added once the object is being deleted.
    if old.get("deletionTimestamp"):
        extra = sorted(set(_list(new, "finalizers")) - set(_list(old, "finalizers")))
        if extra:
            errs.append(forbidden(
                p.child("finalizers"),
                "no new finalizers can be added if the object is being deleted, found new "
                f"finalizers {_go_str_list(extra)}"))

    if not _str(new, "resourceVersion"):
        errs.append(invalid(p.child("resourceVersion"), _str(new, "resourceVersion"),
                            "must be specified for an update"))

    new_gen = new.get("generation") or 0
    old_gen = old.get("generation") or 0
    if isinstance(new_gen, int) and isinstance(old_gen, int) and new_gen < old_gen:
        errs.append(invalid(p.child("generation"), new_gen, "must not be decremented"))

    for key in ("name", "namespace", "uid"):
        if _str(new, key) != _str(old, key):
            errs.append(invalid(p.child(key), _str(new, key), FIELD_IMMUTABLE_ERROR_MSG))
    # creationTimestamp is a value (zero time when unset); deletionTimestamp is a pointer.
    if not _same_time(new.get("creationTimestamp"), old.get("creationTimestamp")):
        value = _go_time(new.get("creationTimestamp")) or GoRaw("0001-01-01 00:00:00 +0000 UTC")
        errs.append(invalid(p.child("creationTimestamp"), value, FIELD_IMMUTABLE_ERROR_MSG))
    if not _same_time(new.get("deletionTimestamp"), old.get("deletionTimestamp")):
        errs.append(invalid(p.child("deletionTimestamp"), _go_time(new.get("deletionTimestamp")),
                            FIELD_IMMUTABLE_ERROR_MSG))
    if new.get("deletionGracePeriodSeconds") != old.get("deletionGracePeriodSeconds"):
        errs.append(invalid(p.child("deletionGracePeriodSeconds"),
                            new.get("deletionGracePeriodSeconds"), FIELD_IMMUTABLE_ERROR_MSG))

    errs.extend(validate_labels(_map(new, "labels"), p.child("labels")))
    errs.extend(validate_annotations(_map(new, "annotations"), p.child("annotations")))
    errs.extend(validate_owner_references(_list(new, "ownerReferences"),
                                          p.child("ownerReferences")))
    errs.extend(validate_managed_fields(_list(new, "managedFields"), p.child("managedFields")))
    if kube_finalizers:
        errs.extend(validate_kube_finalizer_names(_list(new, "finalizers"),
                                                  p.child("finalizers")))
    return errs


# --------------------------------------------------------------------------------------------
# metav1.Condition lists (status.conditions of the newer kinds)

CONDITION_STATUSES: Final = ("False", "True", "Unknown")
_CONDITION_REASON_FMT: Final = "[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?"
_CONDITION_REASON_RE: Final = re.compile(_CONDITION_REASON_FMT)
_CONDITION_REASON_MSG: Final = (
    "a condition reason must start with alphabetic character, optionally followed by a string "
    "of alphanumeric characters or '_,:', and must end with an alphanumeric character or '_'")
_MAX_REASON_LEN: Final = 1024
_MAX_MESSAGE_LEN: Final = 32 * 1024


def validate_conditions(conditions: Sequence[Any], path: PathLike) -> list[FieldError]:
    """metav1 validation's ValidateConditions: each condition's type (a label name, unique),
    status, observedGeneration, lastTransitionTime, reason and message."""
    p = _p(path)
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, raw in enumerate(conditions):
        c: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        cp = p.index(i)
        ctype = _str(c, "type")
        if ctype in seen:
            errs.append(duplicate(cp.child("type"), ctype))
        seen.add(ctype)
        errs.extend(validate_label_name(ctype, cp.child("type")))
        status = _str(c, "status")
        if status not in CONDITION_STATUSES:
            errs.append(not_supported(cp.child("status"), status, CONDITION_STATUSES))
        generation = c.get("observedGeneration") or 0
        if isinstance(generation, int) and generation < 0:
            errs.append(invalid(cp.child("observedGeneration"), generation,
                                "must be greater than or equal to zero"))
        if _parse_time(c.get("lastTransitionTime")) is None:
            errs.append(required(cp.child("lastTransitionTime"), "must be set"))
        reason = _str(c, "reason")
        if not reason:
            errs.append(required(cp.child("reason"), "must be set"))
        else:
            if not _CONDITION_REASON_RE.fullmatch(reason):
                errs.append(invalid(cp.child("reason"), reason, regex_error(
                    _CONDITION_REASON_MSG, _CONDITION_REASON_FMT, "my_name", "MY_NAME",
                    "MyName", "ReasonA,ReasonB", "ReasonA:ReasonB")))
            if len(reason) > _MAX_REASON_LEN:
                errs.append(too_long(cp.child("reason"), reason, _MAX_REASON_LEN))
        message = _str(c, "message")
        if len(message) > _MAX_MESSAGE_LEN:
            errs.append(too_long(cp.child("message"), message, _MAX_MESSAGE_LEN))
    return errs
