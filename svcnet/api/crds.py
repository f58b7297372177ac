"""apiextensions.k8s.io/v1 CustomResourceDefinitions: defaulting, validation, and the status
upstream's controllers write, as pure functions.

Theory of operation
-------------------
A CRD (cluster-scoped, named ``<plural>.<group>``) asks the API server to serve a new resource:
``/apis/<group>/<version>/[namespaces/<ns>/]<plural>`` for each ``served`` version, objects
stored at the one ``storage`` version and checked against that version's structural
``openAPIV3Schema`` (:mod:`svcnet.api.crschema`). Mirrors:

* ``pkg/apis/apiextensions/v1/defaults.go``: ``singular`` is the lower-cased ``kind``,
  ``listKind`` is ``<kind>List``, ``conversion`` is ``{strategy: None}``; a new CRD's
  ``status.storedVersions`` gets the storage version (:func:`set_defaults`);
* ``pkg/registry/customresourcedefinition/strategy.go``: a create starts with an empty
  status and generation 1; an update keeps the stored status, bumps the generation when the spec
  changes, and adds the storage version to ``storedVersions``; a ``/status`` write changes only
  the status (:func:`prepare_for_create`, :func:`prepare_for_update`);
* ``pkg/apis/apiextensions/validation/validation.go``: the name (a DNS subdomain equal to
  ``spec.names.plural+"."+spec.group``), the group (a DNS subdomain with a dot), the scope,
  versions (DNS-1035 names, unique, exactly one storage version), names
  (plural, singular, kind, listKind, shortNames, categories; kind and listKind differ), a
  schema for every version (v1 requires one), structural schemas (:func:`validate_structural`:
  a type on every node, ``object`` at the root, ``items`` for arrays, ``properties`` and
  ``additionalProperties`` exclusive, ``x-kubernetes-preserve-unknown-fields`` only ``true``,
  ``x-kubernetes-int-or-string`` without a type, ``x-kubernetes-embedded-resource`` on objects,
  the list-type, list-map-keys and map-type extensions, ``uniqueItems`` forbidden, patterns
  that compile), ``additionalPrinterColumns`` (name, type, jsonPath), subresources (scale's
  paths), and on update: group and plural immutable, and scope and kind once established;
  ``status.storedVersions`` must name versions of the spec;
* the naming controller (``pkg/controller/status/naming_controller.go``): the names a CRD asks
  for are accepted unless another CRD of its group has accepted one of them
  (:func:`accepted_names`, conditions ``NamesAccepted`` with reasons ``NoConflicts``,
  ``PluralConflict``, ``SingularConflict``, ``ShortNamesConflict``, ``KindConflict``,
  ``ListKindConflict``), and the establishing controller's ``Established``
  (``InitialNamesAccepted``) once they are; the finalizer controller's ``Terminating``
  condition while a deleted CRD's objects are removed (:data:`FINALIZER`).

Differences: conversion strategy ``Webhook`` is refused (Forbidden at
``spec.conversion.strategy``: svcnet calls no conversion webhooks), so every version of a kind
holds the same fields and objects are served at any served version by rewriting ``apiVersion``
(the ``None`` strategy). The errors about ``spec.versions`` as a whole print no value
(upstream prints the Go slice). Defaults in a schema are not checked against the schema.
``x-kubernetes-validations`` (CEL) rules of every version are checked and compiled when the CRD
is written (:func:`svcnet.api.crcel.compile_schema`; a rule that does not compile refuses the
CRD with upstream's path and message), and evaluated on writes of its objects.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from svcnet.api import crcel
from svcnet.api.access import list_of, map_of, str_of
from svcnet.api.crschema import pattern_error
from svcnet.api.errors import (
    OMIT,
    FieldError,
    Path,
    forbidden,
    invalid,
    not_supported,
    required,
)
from svcnet.api.meta import (
    FIELD_IMMUTABLE_ERROR_MSG,
    validate_object_meta,
    validate_object_meta_update,
)
from svcnet.api.names import is_dns1035_label, is_dns1123_subdomain, name_is_dns_subdomain

__all__ = [
    "API_VERSION",
    "FINALIZER",
    "GROUP",
    "accepted_names",
    "condition_true",
    "established",
    "json_path_results",
    "prepare_for_create",
    "prepare_for_status_update",
    "prepare_for_update",
    "printer_columns",
    "scale_of",
    "scale_paths",
    "set_condition",
    "set_defaults",
    "storage_version",
    "validate_crd",
    "validate_crd_update",
    "validate_structural",
    "version_schema",
    "with_naming_status",
    "with_scale",
]

Obj = dict[str, Any]
GROUP: Final = "apiextensions.k8s.io"
API_VERSION: Final = f"{GROUP}/v1"
#: What a CRD carries until its custom resources are gone (the finalizer controller's).
FINALIZER: Final = "customresourcecleanup.apiextensions.k8s.io"

_META: Final = Path("metadata")
_SPEC: Final = Path("spec")
_SCOPES: Final = ("Cluster", "Namespaced")
_COLUMN_TYPES: Final = ("integer", "number", "string", "boolean", "date")
_TYPES: Final = ("array", "boolean", "integer", "number", "object", "string")
_LIST_TYPES: Final = ("atomic", "set", "map")
_MAP_TYPES: Final = ("granular", "atomic")


# -------------------------------------------------------------------------------- defaulting


def set_defaults(crd: Obj) -> Obj:
    """SetDefaults_CustomResourceDefinition (in place; returned)."""
    spec = crd.setdefault("spec", {})
    if not isinstance(spec, dict):
        return crd
    names = spec.setdefault("names", {})
    if isinstance(names, dict):
        kind = str_of(names, "kind")
        if not names.get("singular"):
            names["singular"] = kind.lower()
        if not names.get("listKind") and kind:
            names["listKind"] = f"{kind}List"
    if not isinstance(spec.get("conversion"), dict):
        spec["conversion"] = {"strategy": "None"}
    status = crd.get("status")
    if isinstance(status, dict) and not status.get("storedVersions"):
        stored = storage_version(crd)
        if stored:
            status["storedVersions"] = [stored]
    return crd


def storage_version(crd: Mapping[str, Any]) -> str:
    """The name of the version marked ``storage`` ("" when none is)."""
    for v in list_of(map_of(crd, "spec"), "versions"):
        if isinstance(v, Mapping) and v.get("storage") is True:
            return str_of(v, "name")
    return ""


def _with_stored_version(crd: Obj) -> None:
    status = crd.setdefault("status", {})
    stored = list(status.get("storedVersions") or [])
    version = storage_version(crd)
    if version and version not in stored:
        stored.append(version)
    status["storedVersions"] = stored
    status.setdefault("acceptedNames", {"plural": "", "kind": ""})
    status.setdefault("conditions", [])


def prepare_for_create(crd: Obj) -> Obj:
    """strategy.PrepareForCreate: the client's status is dropped; storedVersions begins."""
    crd["status"] = {}
    _with_stored_version(crd)
    return crd


def prepare_for_update(new: Obj, old: Obj) -> Obj:
    """strategy.PrepareForUpdate: the stored status stays, the storage version joins it."""
    new["status"] = copy.deepcopy(old.get("status") or {})
    _with_stored_version(new)
    return new


def prepare_for_status_update(new: Obj, old: Obj) -> Obj:
    """statusStrategy.PrepareForUpdate: only the status changes (the spec and ObjectMeta are
    the stored ones, as ResetObjectMetaForStatus leaves them)."""
    merged = copy.deepcopy(old)
    merged["status"] = copy.deepcopy(new.get("status") or {})
    return merged


# -------------------------------------------------------------------------------- validation


def _join(errs: Sequence[str]) -> str:
    return ",".join(errs)


def validate_crd(crd: Mapping[str, Any]) -> list[FieldError]:
    """ValidateCustomResourceDefinition."""
    spec = map_of(crd, "spec")
    names = map_of(spec, "names")
    wanted = f"{str_of(names, 'plural')}.{str_of(spec, 'group')}"

    def name_fn(name: str, prefix: bool) -> list[str]:
        msgs = name_is_dns_subdomain(name, prefix)
        if name != wanted:
            msgs.append('must be spec.names.plural+"."+spec.group')
        return msgs

    errs = validate_object_meta(map_of(crd, "metadata"), requires_namespace=False,
                                name_fn=name_fn, path=_META, kube_finalizers=False)
    errs.extend(_validate_spec(spec))
    errs.extend(_validate_names(map_of(map_of(crd, "status"), "acceptedNames"),
                                Path("status", "acceptedNames")))
    errs.extend(validate_api_approval(crd, None))
    return errs


API_APPROVED_ANNOTATION: Final = "api-approved.kubernetes.io"
_APPROVAL_MISSING: Final = (f'protected groups must have approval annotation '
                            f'"{API_APPROVED_ANNOTATION}", see '
                            "https://github.com/kubernetes/enhancements/pull/1111")
_APPROVAL_INVALID: Final = (f'protected groups must have approval annotation '
                            f'"{API_APPROVED_ANNOTATION}" with either a URL or a reason starting '
                            'with "unapproved", see '
                            "https://github.com/kubernetes/enhancements/pull/1111")


def is_protected_group(group: str) -> bool:
    """IsProtectedCommunityGroup: Kubernetes' own API groups."""
    return group in ("k8s.io", "kubernetes.io") or group.endswith((".k8s.io", ".kubernetes.io"))


def _approval_state(crd: Mapping[str, Any]) -> str:
    """GetAPIApprovalState: missing, bypassed ("unapproved..."), approved (a URL), invalid."""
    value = map_of(map_of(crd, "metadata"), "annotations").get(API_APPROVED_ANNOTATION)
    if value is None:
        return "missing"
    text = str(value)
    if text.startswith("unapproved"):
        return "bypassed"
    scheme, sep, rest = text.partition("://")
    if sep and scheme.isalpha() and rest and not any(c.isspace() for c in text):
        return "approved"
    return "invalid"


def validate_api_approval(new: Mapping[str, Any],
                          old: Mapping[str, Any] | None) -> list[FieldError]:
    """validateAPIApproval: a CRD in a protected group (``*.k8s.io``, ``*.kubernetes.io``)
    carries the ``api-approved.kubernetes.io`` annotation, a URL or a reason starting with
    "unapproved"; an update that leaves the state as it was is never refused."""
    if not is_protected_group(str_of(map_of(new, "spec"), "group")):
        return []
    state = _approval_state(new)
    if old is not None and _approval_state(old) == state:
        return []
    path = _META.child("annotations").key(API_APPROVED_ANNOTATION)
    if state == "missing":
        return [required(path, _APPROVAL_MISSING)]
    if state == "invalid":
        return [invalid(path, map_of(map_of(new, "metadata"), "annotations").get(
            API_APPROVED_ANNOTATION), _APPROVAL_INVALID)]
    return []


def validate_not_built_in(crd: Mapping[str, Any],
                          built_in: Collection[tuple[str, str]]) -> list[FieldError]:
    """A CRD may not name a resource the server serves itself (``built_in``: group and plural
    pairs). Upstream's built-in handlers answer first, which leaves such a CRD unreachable;
    here it is refused, so that it cannot shadow (or, on deletion, empty) a built-in resource."""
    spec = map_of(crd, "spec")
    group, plural = str_of(spec, "group"), str_of(map_of(spec, "names"), "plural")
    if (group, plural) not in built_in:
        return []
    return [forbidden(_SPEC.child("names", "plural"),
                      f'"{plural}.{group}" is a resource this API server serves itself')]


def validate_crd_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[FieldError]:
    """ValidateCustomResourceDefinitionUpdate."""
    errs = validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"), _META,
                                       kube_finalizers=False)
    spec, old_spec = map_of(new, "spec"), map_of(old, "spec")
    errs.extend(_validate_spec(spec, crcel.rule_texts(old_spec)))
    names, old_names = map_of(spec, "names"), map_of(old_spec, "names")
    if established(old):
        if spec.get("scope") != old_spec.get("scope"):
            errs.append(invalid(_SPEC.child("scope"), spec.get("scope"),
                                FIELD_IMMUTABLE_ERROR_MSG))
        if names.get("kind") != old_names.get("kind"):
            errs.append(invalid(_SPEC.child("names", "kind"), names.get("kind"),
                                FIELD_IMMUTABLE_ERROR_MSG))
    if spec.get("group") != old_spec.get("group"):
        errs.append(invalid(_SPEC.child("group"), spec.get("group"), FIELD_IMMUTABLE_ERROR_MSG))
    if names.get("plural") != old_names.get("plural"):
        errs.append(invalid(_SPEC.child("names", "plural"), names.get("plural"),
                            FIELD_IMMUTABLE_ERROR_MSG))
    errs.extend(_validate_names(map_of(map_of(new, "status"), "acceptedNames"),
                                Path("status", "acceptedNames")))
    errs.extend(_validate_stored_versions(new))
    errs.extend(validate_api_approval(new, old))
    return errs


def validate_crd_status_update(new: Mapping[str, Any],
                               old: Mapping[str, Any]) -> list[FieldError]:
    """ValidateUpdateCustomResourceDefinitionStatus."""
    errs = validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"), _META,
                                       kube_finalizers=False)
    errs.extend(_validate_names(map_of(map_of(new, "status"), "acceptedNames"),
                                Path("status", "acceptedNames")))
    return errs


def _validate_stored_versions(crd: Mapping[str, Any]) -> list[FieldError]:
    versions = {str_of(v, "name") for v in list_of(map_of(crd, "spec"), "versions")
                if isinstance(v, Mapping)}
    path = Path("status", "storedVersions")
    return [invalid(path.index(i), v, "must appear in spec.versions")
            for i, v in enumerate(list_of(map_of(crd, "status"), "storedVersions"))
            if v not in versions]


def _validate_spec(spec: Mapping[str, Any],
                   preexisting: frozenset[str] = frozenset()) -> list[FieldError]:
    """``preexisting``: the stored CRD's rule texts, on update (crcel.rule_texts)."""
    errs = _validate_group_scope(spec)
    errs.extend(_validate_versions(spec, preexisting))
    names = map_of(spec, "names")
    npath = _SPEC.child("names")
    for key in ("plural", "singular", "kind", "listKind"):
        if not str_of(names, key):
            errs.append(required(npath.child(key)))
    errs.extend(_validate_names(names, npath))
    strategy = str_of(map_of(spec, "conversion"), "strategy")
    cpath = _SPEC.child("conversion", "strategy")
    if strategy == "Webhook":
        errs.append(forbidden(cpath, "conversion webhooks are not supported by this server: "
                                     "use strategy None"))
    elif strategy != "None":
        errs.append(not_supported(cpath, strategy, ("None", "Webhook")))
    return errs


def _validate_group_scope(spec: Mapping[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    group = str_of(spec, "group")
    if not group:
        errs.append(required(_SPEC.child("group")))
    elif msgs := is_dns1123_subdomain(group):
        errs.append(invalid(_SPEC.child("group"), group, _join(msgs)))
    elif len(group.split(".")) < 2:
        errs.append(invalid(_SPEC.child("group"), group, "should be a domain with at least one "
                                                          "dot"))
    scope = str_of(spec, "scope")
    if not scope:
        errs.append(required(_SPEC.child("scope")))
    elif scope not in _SCOPES:
        errs.append(not_supported(_SPEC.child("scope"), scope, _SCOPES))
    return errs


def _validate_versions(spec: Mapping[str, Any],
                       preexisting: frozenset[str]) -> list[FieldError]:
    errs: list[FieldError] = []
    versions = [v if isinstance(v, Mapping) else {} for v in list_of(spec, "versions")]
    vpath = _SPEC.child("versions")
    seen: set[str] = set()
    unique = True
    for i, version in enumerate(versions):
        name = str_of(version, "name")
        if name in seen:
            unique = False
        seen.add(name)
        if msgs := is_dns1035_label(name):
            errs.append(invalid(vpath.index(i).child("name"), name, _join(msgs)))
        errs.extend(_validate_version(version, vpath.index(i), preexisting))
    if not unique:
        errs.append(invalid(vpath, OMIT, "must contain unique version names"))
    if sum(1 for v in versions if v.get("storage") is True) != 1:
        errs.append(invalid(vpath, OMIT,
                            "must have exactly one version marked as storage version"))
    return errs


def _validate_names(names: Mapping[str, Any], path: Path) -> list[FieldError]:
    """ValidateCustomResourceDefinitionNames."""
    errs: list[FieldError] = []
    for key in ("plural", "singular"):
        value = str_of(names, key)
        if value and (msgs := is_dns1035_label(value)):
            errs.append(invalid(path.child(key), value, _join(msgs)))
    for key in ("kind", "listKind"):
        value = str_of(names, key)
        if value and (msgs := is_dns1035_label(value.lower())):
            errs.append(invalid(path.child(key), value, "may have mixed case, but should "
                                                        "otherwise match: " + _join(msgs)))
    for i, short in enumerate(list_of(names, "shortNames")):
        if msgs := is_dns1035_label(str(short)):
            errs.append(invalid(path.child("shortNames").index(i), short, _join(msgs)))
    kind = str_of(names, "kind")
    if kind and kind == str_of(names, "listKind"):
        errs.append(invalid(path.child("listKind"), kind, "kind and listKind may not be the "
                                                          "same"))
    for i, category in enumerate(list_of(names, "categories")):
        if msgs := is_dns1035_label(str(category)):
            errs.append(invalid(path.child("categories").index(i), category, _join(msgs)))
    return errs


def _validate_version(version: Mapping[str, Any], path: Path,
                      preexisting: frozenset[str]) -> list[FieldError]:
    errs: list[FieldError] = []
    schema = map_of(map_of(version, "schema"), "openAPIV3Schema")
    spath = path.child("schema", "openAPIV3Schema")
    if not schema:
        errs.append(required(spath, "schemas are required"))
    else:
        structural = validate_structural(schema, spath)
        errs.extend(structural)
        if not structural:  # (upstream compiles rules of valid schemas only)
            errs.extend(crcel.compile_schema(schema, spath, preexisting=preexisting)[1])
    subresources = map_of(version, "subresources")
    scale = subresources.get("scale")
    if isinstance(scale, Mapping):
        scale_path = path.child("subresources", "scale")
        for key, under, need in (("specReplicasPath", ("spec",), True),
                                 ("statusReplicasPath", ("status",), True),
                                 ("labelSelectorPath", ("spec", "status"), False)):
            value = str_of(scale, key)
            m = _SIMPLE_PATH.match(value)
            if not value:
                if need:
                    errs.append(required(scale_path.child(key)))
            elif m is None or m.group(1) not in under:
                errs.append(invalid(scale_path.child(key), value, "should be a json path under "
                                    + " or ".join(f".{u}" for u in under).replace(
                                        ".spec or", "either .spec or")))
    for i, entry in enumerate(list_of(version, "additionalPrinterColumns")):
        errs.extend(_validate_column(entry if isinstance(entry, Mapping) else {},
                                     path.child("additionalPrinterColumns").index(i)))
    return errs


def _validate_column(column: Mapping[str, Any], cpath: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    if not str_of(column, "name"):
        errs.append(required(cpath.child("name")))
    column_type = str_of(column, "type")
    if not column_type:
        errs.append(required(cpath.child("type")))
    elif column_type not in _COLUMN_TYPES:
        errs.append(not_supported(cpath.child("type"), column_type, _COLUMN_TYPES))
    json_path = str_of(column, "jsonPath")
    if not json_path:
        errs.append(required(cpath.child("jsonPath")))
    elif not json_path.startswith("."):
        errs.append(invalid(cpath.child("jsonPath"), json_path,
                            "must be a simple json path starting with ."))
    return errs


_SIMPLE_PATH: Final = re.compile(r"^\.(spec|status)(\.[A-Za-z0-9_-]+)+$")


def validate_structural(schema: Mapping[str, Any], path: Path) -> list[FieldError]:
    """The structural-schema rules of ``openAPIV3Schema`` (see the module docstring)."""
    errs: list[FieldError] = []
    root_type = schema.get("type")
    if not root_type:
        errs.append(required(path.child("type"), "must not be empty at the root"))
    elif root_type != "object":
        errs.append(invalid(path.child("type"), root_type, "must be object at the root"))
    _structural(schema, path, errs, root=True)
    return errs


def _structural(schema: Mapping[str, Any], path: Path, errs: list[FieldError], *,
                root: bool = False) -> None:
    type_name = schema.get("type")
    if type_name and type_name not in _TYPES:
        errs.append(not_supported(path.child("type"), type_name, _TYPES))
    if not root and not type_name and schema.get("x-kubernetes-int-or-string") is not True \
            and schema.get("x-kubernetes-embedded-resource") is not True:
        errs.append(required(path.child("type"), "must not be empty for specified object "
                                                 "fields"))
    _kubernetes_extensions(schema, path, errs)
    if type_name == "array" and not isinstance(schema.get("items"), Mapping):
        errs.append(required(path.child("items"), "must be specified"))
    if schema.get("uniqueItems") is True:
        errs.append(forbidden(path.child("uniqueItems"), "uniqueItems cannot be set to true "
                                                         "since the runtime complexity becomes "
                                                         "quadratic"))
    extra = schema.get("additionalProperties")
    if extra is not None and map_of(schema, "properties") and extra is not True:
        errs.append(forbidden(path.child("additionalProperties"),
                              "additionalProperties and properties are mutual exclusive"))
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and (problem := pattern_error(pattern)) is not None:
        errs.append(invalid(path.child("pattern"), pattern,
                            f"must be a valid regular expression: {problem}"))
    for key, sub in map_of(schema, "properties").items():
        if isinstance(sub, Mapping):
            _structural(sub, path.child("properties").key(key), errs)
    if isinstance(extra, Mapping):
        _structural(extra, path.child("additionalProperties"), errs)
    items = schema.get("items")
    if isinstance(items, Mapping):
        _structural(items, path.child("items"), errs)
    for combinator in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(list_of(schema, combinator)):
            if isinstance(sub, Mapping):
                _combinator_structural(sub, path.child(combinator).index(i), errs)


def _kubernetes_extensions(schema: Mapping[str, Any], path: Path,
                           errs: list[FieldError]) -> None:
    type_name = schema.get("type")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields")
    if schema.get("x-kubernetes-int-or-string") is True and type_name:
        errs.append(invalid(path.child("type"), type_name,
                            "must be empty if x-kubernetes-int-or-string is true"))
    if schema.get("x-kubernetes-embedded-resource") is True:
        if type_name != "object":
            errs.append(invalid(path.child("type"), type_name or "",
                                "must be object if x-kubernetes-embedded-resource is true"))
        if preserve is not True and not map_of(schema, "properties"):
            errs.append(required(path.child("properties"), "must not be empty if "
                                 "x-kubernetes-embedded-resource is true without "
                                 "x-kubernetes-preserve-unknown-fields"))
    if preserve is not None and preserve is not True:
        errs.append(invalid(path.child("x-kubernetes-preserve-unknown-fields"), preserve,
                            "must be true or undefined"))
    _list_extensions(schema, path, errs)


def _combinator_structural(schema: Mapping[str, Any], path: Path,
                           errs: list[FieldError]) -> None:
    """Inside allOf/anyOf/oneOf a schema may only restrict values: no types or defaults
    (structural schemas' value validations)."""
    for key in ("type", "default", "nullable", "additionalProperties",
                "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
                "x-kubernetes-int-or-string"):
        if key in schema and not (key == "type" and _int_or_string_branch(schema)):
            errs.append(forbidden(path.child(key), "must be empty to be structural"))


def _int_or_string_branch(schema: Mapping[str, Any]) -> bool:
    """``anyOf: [{type: integer}, {type: string}]`` beside ``x-kubernetes-int-or-string``."""
    return schema.get("type") in ("integer", "string") and len(schema) == 1


def _typed_extension(schema: Mapping[str, Any], path: Path, key: str, type_name: str,
                     allowed: Sequence[str], errs: list[FieldError]) -> Any:
    """An extension only for ``type_name`` nodes, one of ``allowed``; its value."""
    value = schema.get(key)
    if value is not None:
        if schema.get("type") != type_name:
            errs.append(invalid(path.child(key), value,
                                f"must only be used if type is {type_name}"))
        elif value not in allowed:
            errs.append(not_supported(path.child(key), value, allowed))
    return value


def _list_extensions(schema: Mapping[str, Any], path: Path, errs: list[FieldError]) -> None:
    list_type = _typed_extension(schema, path, "x-kubernetes-list-type", "array", _LIST_TYPES,
                                 errs)
    if list_type is not None:
        items = map_of(schema, "items")
        if list_type == "set" and items.get("type") in ("object", "array"):
            errs.append(invalid(path.child("items", "type"), items.get("type"),
                                "must be a scalar type if x-kubernetes-list-type=set"))
        if list_type == "map":
            keys = list_of(schema, "x-kubernetes-list-map-keys")
            kpath = path.child("x-kubernetes-list-map-keys")
            if not keys:
                errs.append(required(kpath, "must not be empty if x-kubernetes-list-type is "
                                            "map"))
            if items.get("type") != "object":
                errs.append(invalid(path.child("items", "type"), items.get("type"),
                                    "must be object if x-kubernetes-list-type=map"))
            props = map_of(items, "properties")
            for i, key in enumerate(keys):
                if key not in props:
                    errs.append(invalid(kpath.index(i), key, "entries must all be names of "
                                                             "item properties"))
    elif "x-kubernetes-list-map-keys" in schema:
        errs.append(forbidden(path.child("x-kubernetes-list-map-keys"),
                              "must be empty if x-kubernetes-list-type is not map"))
    _typed_extension(schema, path, "x-kubernetes-map-type", "object", _MAP_TYPES, errs)


# ------------------------------------------------------------------------- reading a CRD


def version_schema(crd: Mapping[str, Any], version: str) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of ``version`` ({} when it has none)."""
    for v in list_of(map_of(crd, "spec"), "versions"):
        if isinstance(v, Mapping) and v.get("name") == version:
            return map_of(map_of(v, "schema"), "openAPIV3Schema")
    return {}


def printer_columns(crd: Mapping[str, Any], version: str) -> list[dict[str, Any]]:
    """``additionalPrinterColumns`` of ``version``."""
    for v in list_of(map_of(crd, "spec"), "versions"):
        if isinstance(v, Mapping) and v.get("name") == version:
            return [c for c in list_of(v, "additionalPrinterColumns") if isinstance(c, dict)]
    return []


# ----------------------------------------------------------------------------------- status


def condition_true(crd: Mapping[str, Any], condition: str) -> bool:
    return any(isinstance(c, Mapping) and c.get("type") == condition
               and c.get("status") == "True"
               for c in list_of(map_of(crd, "status"), "conditions"))


def established(crd: Mapping[str, Any]) -> bool:
    return condition_true(crd, "Established")


def set_condition(crd: Obj, condition_type: str, status: str, reason: str, message: str,
                  now: str) -> None:
    """SetCRDCondition: the transition time changes only with the status."""
    conditions = crd.setdefault("status", {}).setdefault("conditions", [])
    for c in conditions:
        if c.get("type") == condition_type:
            if c.get("status") != status:
                c["lastTransitionTime"] = now
            c.update(status=status, reason=reason, message=message)
            return
    conditions.append({"type": condition_type, "status": status, "lastTransitionTime": now,
                       "reason": reason, "message": message})


def accepted_names(crd: Mapping[str, Any], others: Sequence[Mapping[str, Any]]
                   ) -> tuple[dict[str, Any], str, str, str]:
    """The naming controller's calculateNamesAndConditions: (acceptedNames, NamesAccepted
    status, reason, message), given the other CRDs (their accepted names count).

    A name of this CRD's group that another CRD has accepted (as plural, singular, short name,
    kind or list kind) is a conflict: the CRD keeps the names it had accepted before for that
    part and is not accepted.
    """
    names = map_of(map_of(crd, "spec"), "names")
    previous = map_of(map_of(crd, "status"), "acceptedNames")
    group = str_of(map_of(crd, "spec"), "group")
    own = str_of(map_of(crd, "metadata"), "name")
    resources: set[str] = set()
    kinds: set[str] = set()
    for other in others:
        if str_of(map_of(other, "metadata"), "name") == own or str_of(
                map_of(other, "spec"), "group") != group:
            continue
        taken = map_of(map_of(other, "status"), "acceptedNames")
        resources.update(str(n) for n in (taken.get("plural"), taken.get("singular"),
                                           *list_of(taken, "shortNames")) if n)
        kinds.update(str(n) for n in (taken.get("kind"), taken.get("listKind")) if n)
    accepted: dict[str, Any] = dict(previous) if previous else {}
    reason, message = "NoConflicts", "no conflicts found"
    # In the controller's order; each conflict overwrites the reason, the last one stands.
    for key, taken_names, conflict in (("plural", resources, "PluralConflict"),
                                       ("singular", resources, "SingularConflict"),
                                       ("kind", kinds, "KindConflict"),
                                       ("listKind", kinds, "ListKindConflict")):
        if key == "kind":  # short names are checked between singular and kind
            shorts = [str(s) for s in list_of(names, "shortNames")]
            clash = next((s for s in shorts if s in resources), None)
            if clash is not None:
                reason, message = "ShortNamesConflict", f'"{clash}" is already in use'
            elif shorts:
                accepted["shortNames"] = shorts
            else:
                accepted.pop("shortNames", None)
        wanted = str_of(names, key)
        if wanted in taken_names:
            reason, message = conflict, f'"{wanted}" is already in use'
        else:
            accepted[key] = wanted
    categories = list_of(names, "categories")
    if categories:
        accepted["categories"] = list(categories)
    else:
        accepted.pop("categories", None)
    return accepted, "True" if reason == "NoConflicts" else "False", reason, message


# ------------------------------------------------------------------------- printer columns

_PATH_TOKEN: Final = re.compile(
    r"""\.(?P<field>[A-Za-z0-9_\-]+)"""
    r"""|\[(?P<index>-?\d+)\]"""
    r"""|\[(?P<star>\*)\]"""
    r"""|\['(?P<key>[^']*)'\]"""
    r"""|\[\?\(@\.(?P<filter>[A-Za-z0-9_.\-]+)\s*==\s*["'](?P<value>[^"']*)["']\)\]""")


def json_path_results(obj: Any, json_path: str) -> list[Any]:
    """What a printer column's simple JSONPath (``.status.replicas``,
    ``.spec.items[0].name``, ``.status.conditions[?(@.type=="Ready")].status``) finds in
    ``obj``: the subset of kubectl's JSONPath that ``additionalPrinterColumns`` use."""
    current = [obj]
    pos = 0
    while pos < len(json_path):
        m = _PATH_TOKEN.match(json_path, pos)
        if m is None:
            return []
        pos = m.end()
        found: list[Any] = []
        for value in current:
            found.extend(_step(value, m))
        current = found
    return current


def _step(value: Any, m: re.Match[str]) -> list[Any]:
    name = m.group("field") or m.group("key")
    if name is not None:
        return [value[name]] if isinstance(value, dict) and name in value else []
    if not isinstance(value, list):
        return []
    if m.group("index") is not None:
        i = int(m.group("index"))
        return [value[i]] if -len(value) <= i < len(value) else []
    if m.group("star") is not None:
        return list(value)
    wanted, field_path = m.group("value"), "." + m.group("filter")
    return [item for item in value
            if any(str(v) == wanted for v in json_path_results(item, field_path))]


def with_naming_status(crd: Mapping[str, Any], others: Sequence[Mapping[str, Any]],
                       now: str) -> Obj:
    """A copy of ``crd`` with the status the naming and establishing controllers give it:
    ``acceptedNames`` and ``NamesAccepted`` (:func:`accepted_names`), then ``Established``:
    True (``InitialNamesAccepted``) once the names are accepted, and until then False
    (``NotAccepted``) unless it was established before (names stay served once served)."""
    out = copy.deepcopy(dict(crd))
    names, status, reason, message = accepted_names(crd, others)
    out.setdefault("status", {})["acceptedNames"] = names
    set_condition(out, "NamesAccepted", status, reason, message, now)
    if status == "True":
        set_condition(out, "Established", "True", "InitialNamesAccepted",
                      "the initial names have been accepted", now)
    elif not established(crd):
        set_condition(out, "Established", "False", "NotAccepted",
                      "not all names are accepted", now)
    return out


# ------------------------------------------------------------------------------ /scale


def scale_paths(crd: Mapping[str, Any], version: str) -> tuple[str, str, str] | None:
    """``subresources.scale`` of ``version``: (specReplicasPath, statusReplicasPath,
    labelSelectorPath, "" when none), or None when the version has no scale subresource."""
    for v in list_of(map_of(crd, "spec"), "versions"):
        if isinstance(v, Mapping) and v.get("name") == version:
            scale = map_of(map_of(v, "subresources"), "scale")
            if "scale" in map_of(v, "subresources"):
                return (str_of(scale, "specReplicasPath"), str_of(scale, "statusReplicasPath"),
                        str_of(scale, "labelSelectorPath"))
    return None


def _path_value(obj: Any, path: str) -> Any:
    found = json_path_results(obj, path) if path else []
    return found[0] if found else None


def scale_of(obj: Mapping[str, Any], paths: tuple[str, str, str]) -> Obj:
    """The ``autoscaling/v1`` Scale of a custom resource (apiextensions' scale REST): the
    replicas at the spec and status paths (0 when unset), the selector string at the label
    selector path."""
    spec_path, status_path, selector_path = paths
    meta = map_of(obj, "metadata")
    status: Obj = {"replicas": _int_value(_path_value(obj, status_path))}
    selector = _path_value(obj, selector_path)
    if isinstance(selector, str) and selector:
        status["selector"] = selector
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                              "creationTimestamp") if k in meta},
            "spec": {"replicas": _int_value(_path_value(obj, spec_path))}, "status": status}


def _int_value(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def with_scale(obj: Mapping[str, Any], scale: Mapping[str, Any],
               paths: tuple[str, str, str]) -> Obj:
    """``obj`` with the Scale's replicas written at the spec replicas path (a simple
    ``.spec.a.b`` path, as validation demands); a Scale naming a resourceVersion makes the
    write conditional on it."""
    out = copy.deepcopy(dict(obj))
    node = out
    *parents, leaf = paths[0].lstrip(".").split(".")
    for name in parents:
        child = node.get(name)
        if not isinstance(child, dict):
            child = node[name] = {}
        node = child
    node[leaf] = _int_value(map_of(scale, "spec").get("replicas"))
    rv = map_of(scale, "metadata").get("resourceVersion")
    if rv:
        out.setdefault("metadata", {})["resourceVersion"] = str(rv)
    return out
