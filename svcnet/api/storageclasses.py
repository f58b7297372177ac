"""storage.k8s.io/v1 StorageClasses: defaulting and validation as Kubernetes does them, svcnet's
built-in default class, and the DefaultStorageClass admission of new PersistentVolumeClaims.

Theory of operation
-------------------
A StorageClass (cluster-scoped) names a ``provisioner`` that makes PersistentVolumes for the
claims of that class, with opaque ``parameters``, the ``reclaimPolicy`` and ``mountOptions``
the volumes get, whether they may be expanded, and when a claim is bound
(``volumeBindingMode``: at once, or once a pod that uses it is scheduled,
``WaitForFirstConsumer``). A class annotated ``storageclass.kubernetes.io/is-default-class:
"true"`` is the default: new claims that ask for no class get it.

Mirrors:

* ``pkg/apis/storage/v1/defaults.go`` — ``SetDefaults_StorageClass``: a missing
  ``reclaimPolicy`` is ``Delete``, a missing ``volumeBindingMode`` ``Immediate``
  (:func:`set_defaults_storage_class`; ``provisioner`` is written even when empty, as Go's
  encoder does for the non-omitempty field);
* ``pkg/apis/storage/validation/validation.go`` — ``ValidateStorageClass``: core's ObjectMeta
  rules (not namespaced, a DNS-subdomain name); ``provisioner`` required and, lower-cased, a
  qualified name (the error shows the lower-cased value); at most 512 ``parameters``, no empty
  key, keys and values together at most 256 KiB; ``reclaimPolicy`` ``Delete`` or ``Retain``
  (an empty one passes); ``volumeBindingMode`` ``Immediate`` or ``WaitForFirstConsumer``;
  ``allowedTopologies`` by ``ValidateTopologySelectorTerm`` (each requirement's values
  required and distinct, its key a label name, no key twice in a term) and no two terms alike
  (the same keys with the same sets of values, in any order). Upstream seeds its list of seen
  terms with as many empty ones as there are terms, so a term without expressions is always a
  "duplicate" (once per term); that is reproduced. ``mountOptions`` and
  ``allowVolumeExpansion`` are not validated upstream, nor here.
  ``ValidateStorageClassUpdate``: the ObjectMeta update rules; ``parameters``,
  ``provisioner`` and ``reclaimPolicy`` cannot change (Forbidden, "updates to <field> are
  forbidden."), nor ``volumeBindingMode`` (Invalid, "field is immutable"). Upstream compares
  ``parameters`` with ``reflect.DeepEqual``, under which an absent map and ``{}`` differ; here
  they are the same;
* ``pkg/registry/storage/storageclass/strategy.go`` — no generation, no status; an update is
  validated by both sets of rules;
* ``pkg/apis/storage/v1/util/helpers.go`` (``IsDefaultAnnotation``: the GA annotation or the
  beta ``storageclass.beta.kubernetes.io/is-default-class``, ``"true"`` exactly) and
  ``pkg/volume/util/util.go`` ``GetDefaultClass`` (:func:`default_storage_class`: of several
  default classes, the newest by ``creationTimestamp``, then the first by name);
* ``plugin/pkg/admission/storage/storageclass/setdefault/admission.go`` — the DefaultStorageClass
  admission (:func:`admit_claim_default_class`): on create only, a claim with neither
  ``spec.storageClassName`` (``""`` counts as set: it asks for no class) nor the beta
  ``volume.beta.kubernetes.io/storage-class`` annotation gets the default class's name; with
  no default class it is left alone.

svcnet's own class (:data:`DEFAULT_STORAGE_CLASS`): the API server creates ``standard``, the
default, with provisioner :data:`LOCAL_PATH_PROVISIONER` and ``WaitForFirstConsumer`` binding
(the shape of kind's and k3s's local-path class) at each start when it is missing, and never
changes one that exists: a user may edit its annotation away or delete it (it comes back at the
next start, as the system PriorityClasses do).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from svcnet.api.access import list_of, map_of, str_of
from svcnet.api.errors import (
    FieldError,
    Path,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
    too_long,
)
from svcnet.api.meta import (
    FIELD_IMMUTABLE_ERROR_MSG,
    validate_label_name,
    validate_object_meta,
    validate_object_meta_update,
)
from svcnet.api.names import is_qualified_name, name_is_dns_subdomain
from svcnet.api.volumes import BETA_STORAGE_CLASS

__all__ = [
    "ANN_BETA_IS_DEFAULT_CLASS",
    "ANN_BETA_STORAGE_PROVISIONER",
    "ANN_IS_DEFAULT_CLASS",
    "ANN_SELECTED_NODE",
    "ANN_STORAGE_PROVISIONER",
    "API_VERSION",
    "DEFAULT_STORAGE_CLASS",
    "DEFAULT_STORAGE_CLASS_NAME",
    "GROUP",
    "IMMEDIATE",
    "LOCAL_PATH_PROVISIONER",
    "LOCAL_PATH_ROOT_ANNOTATION",
    "WAIT_FOR_FIRST_CONSUMER",
    "admit_claim_default_class",
    "claim_class",
    "claim_has_class",
    "default_storage_class",
    "is_default_class",
    "set_defaults_storage_class",
    "validate_storage_class",
    "validate_storage_class_update",
]

Obj = dict[str, Any]
GROUP: Final = "storage.k8s.io"
API_VERSION: Final = f"{GROUP}/v1"

#: The annotation that makes a class the default (storageutil.IsDefaultStorageClassAnnotation).
ANN_IS_DEFAULT_CLASS: Final = "storageclass.kubernetes.io/is-default-class"
#: Its beta form, still honoured (BetaIsDefaultStorageClassAnnotation).
ANN_BETA_IS_DEFAULT_CLASS: Final = "storageclass.beta.kubernetes.io/is-default-class"
#: On a claim: the provisioner the PV binder left it to (``AnnStorageProvisioner``)...
ANN_STORAGE_PROVISIONER: Final = "volume.kubernetes.io/storage-provisioner"
#: ...and its beta twin, still written beside it (``AnnBetaStorageProvisioner``).
ANN_BETA_STORAGE_PROVISIONER: Final = "volume.beta.kubernetes.io/storage-provisioner"
#: On a claim of a WaitForFirstConsumer class: the node its first pod was scheduled to, which
#: the provisioner makes the volume for (``AnnSelectedNode``, set by the scheduler upstream).
ANN_SELECTED_NODE: Final = "volume.kubernetes.io/selected-node"
IMMEDIATE: Final = "Immediate"
WAIT_FOR_FIRST_CONSUMER: Final = "WaitForFirstConsumer"
#: The name of svcnet's built-in default class.
DEFAULT_STORAGE_CLASS_NAME: Final = "standard"
#: The provisioner of svcnet's built-in class (node-local directories).
LOCAL_PATH_PROVISIONER: Final = "svcnet.io/local-path"
#: A Node's directory for local-path volumes, set by its agent (svcnet/controllers/localpath.py).
LOCAL_PATH_ROOT_ANNOTATION: Final = "svcnet.io/local-path-root"

_RECLAIM_POLICIES: Final = ("Delete", "Retain")
_BINDING_MODES: Final = (IMMEDIATE, WAIT_FOR_FIRST_CONSUMER)
_MAX_PARAMETERS: Final = 512
_MAX_PARAMETERS_SIZE: Final = 256 * (1 << 10)
_META: Final = Path("metadata")
_PROVISIONER: Final = Path("provisioner")
_PARAMETERS: Final = Path("parameters")
_RECLAIM_POLICY: Final = Path("reclaimPolicy")
_BINDING_MODE: Final = Path("volumeBindingMode")
_TOPOLOGIES: Final = Path("allowedTopologies")

#: The class the API server creates when it is missing (as stored: defaulted).
DEFAULT_STORAGE_CLASS: Final[Obj] = {
    "apiVersion": API_VERSION, "kind": "StorageClass",
    "metadata": {"name": DEFAULT_STORAGE_CLASS_NAME,
                 "annotations": {ANN_IS_DEFAULT_CLASS: "true"}},
    "provisioner": LOCAL_PATH_PROVISIONER,
    "reclaimPolicy": "Delete",
    "volumeBindingMode": WAIT_FOR_FIRST_CONSUMER,
}


def set_defaults_storage_class(obj: Mapping[str, Any]) -> Obj:
    """SetDefaults_StorageClass (a copy)."""
    out = copy.deepcopy(dict(obj))
    if out.get("reclaimPolicy") is None:
        out["reclaimPolicy"] = "Delete"
    if out.get("volumeBindingMode") is None:
        out["volumeBindingMode"] = IMMEDIATE
    # Not a default: Go's encoder writes ``provisioner`` (no omitempty) even when empty.
    out.setdefault("provisioner", "")
    return out


# ------------------------------------------------------------------------- validation


def _validate_provisioner(provisioner: str) -> list[FieldError]:
    if not provisioner:
        return [required(_PROVISIONER, "")]
    lowered = provisioner.lower()
    return [invalid(_PROVISIONER, lowered, m) for m in is_qualified_name(lowered)]


def _validate_parameters(params: Mapping[str, Any]) -> list[FieldError]:
    if len(params) > _MAX_PARAMETERS:
        return [too_long(_PARAMETERS, "", _MAX_PARAMETERS)]
    errs: list[FieldError] = []
    size = 0
    for k, v in params.items():
        if not k:
            errs.append(invalid(_PARAMETERS, k, "field can not be empty."))
        size += len(str(k).encode()) + len(str(v).encode())
    if size > _MAX_PARAMETERS_SIZE:
        errs.append(too_long(_PARAMETERS, "", _MAX_PARAMETERS_SIZE))
    return errs


def _validate_topology_term(term: Mapping[str, Any], path: Path,
                            ) -> tuple[dict[str, frozenset[str]], list[FieldError]]:
    """ValidateTopologySelectorTerm: the term's key → values map, and its errors."""
    errs: list[FieldError] = []
    exprs: dict[str, frozenset[str]] = {}
    for i, req in enumerate(list_of(term, "matchLabelExpressions")):
        req_map = req if isinstance(req, dict) else {}
        p = path.child("matchLabelExpressions").index(i)
        values = list_of(req_map, "values")
        if not values:
            errs.append(required(p.child("values"), ""))
        seen: set[str] = set()
        for j, value in enumerate(values):
            if value in seen:
                errs.append(duplicate(p.child("values").index(j), value))
            seen.add(str(value))
        key = str_of(req_map, "key")
        errs.extend(validate_label_name(key, p.child("key")))
        if key in exprs:
            errs.append(duplicate(p.child("key"), key))
        exprs[key] = frozenset(seen)
    return exprs, errs


def _validate_allowed_topologies(terms: Sequence[Any]) -> list[FieldError]:
    """validateAllowedTopologies, with upstream's seeding of the seen terms (module doc)."""
    if not terms:
        return []
    errs: list[FieldError] = []
    seen: list[dict[str, frozenset[str]]] = [{} for _ in terms]
    for i, term in enumerate(terms):
        path = _TOPOLOGIES.index(i)
        exprs, term_errs = _validate_topology_term(term if isinstance(term, dict) else {}, path)
        errs.extend(term_errs)
        errs.extend(duplicate(path.child("matchLabelExpressions"), "")
                    for other in seen if other == exprs)
        seen.append(exprs)
    return errs


def validate_storage_class(sc: Mapping[str, Any]) -> list[FieldError]:
    """ValidateStorageClass."""
    errs = validate_object_meta(map_of(sc, "metadata"), requires_namespace=False,
                                name_fn=name_is_dns_subdomain, path=_META)
    errs.extend(_validate_provisioner(str_of(sc, "provisioner")))
    errs.extend(_validate_parameters(map_of(sc, "parameters")))
    policy = sc.get("reclaimPolicy")
    if policy and policy not in _RECLAIM_POLICIES:
        errs.append(not_supported(_RECLAIM_POLICY, policy, _RECLAIM_POLICIES))
    mode = sc.get("volumeBindingMode")
    if mode is None:
        errs.append(required(_BINDING_MODE, ""))
    elif mode not in _BINDING_MODES:
        errs.append(not_supported(_BINDING_MODE, mode, _BINDING_MODES))
    errs.extend(_validate_allowed_topologies(list_of(sc, "allowedTopologies")))
    return errs


def validate_storage_class_update(new: Mapping[str, Any],
                                  old: Mapping[str, Any]) -> list[FieldError]:
    """The strategy's ValidateUpdate: ValidateStorageClass, then ValidateStorageClassUpdate."""
    errs = validate_storage_class(new)
    errs.extend(validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"),
                                            _META))
    if map_of(new, "parameters") != map_of(old, "parameters"):
        errs.append(forbidden(_PARAMETERS, "updates to parameters are forbidden."))
    if str_of(new, "provisioner") != str_of(old, "provisioner"):
        errs.append(forbidden(_PROVISIONER, "updates to provisioner are forbidden."))
    if new.get("reclaimPolicy") != old.get("reclaimPolicy"):
        errs.append(forbidden(_RECLAIM_POLICY, "updates to reclaimPolicy are forbidden."))
    if new.get("volumeBindingMode") != old.get("volumeBindingMode"):
        errs.append(invalid(_BINDING_MODE, new.get("volumeBindingMode"),
                            FIELD_IMMUTABLE_ERROR_MSG))
    return errs


# ------------------------------------------------------------------------- the default class


def is_default_class(sc: Mapping[str, Any]) -> bool:
    """IsDefaultAnnotation: annotated default, by the GA or the beta annotation."""
    annotations = map_of(map_of(sc, "metadata"), "annotations")
    return (annotations.get(ANN_IS_DEFAULT_CLASS) == "true"
            or annotations.get(ANN_BETA_IS_DEFAULT_CLASS) == "true")


def default_storage_class(classes: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """GetDefaultClass: of the default classes, the newest (``creationTimestamp``, RFC 3339
    seconds, so it sorts as text), then the first by name; None when there is none."""
    found: Mapping[str, Any] | None = None
    for sc in classes:
        if not is_default_class(sc):
            continue
        meta = map_of(sc, "metadata")
        if found is None:
            found = sc
            continue
        best = map_of(found, "metadata")
        created, best_created = str_of(meta, "creationTimestamp"), str_of(
            best, "creationTimestamp")
        if created > best_created or (created == best_created
                                      and str_of(meta, "name") < str_of(best, "name")):
            found = sc
    return found


def claim_class(obj: Mapping[str, Any]) -> str:
    """GetPersistentVolume(Claim)Class: the beta annotation first, then
    ``spec.storageClassName`` ("" for none)."""
    annotations = map_of(map_of(obj, "metadata"), "annotations")
    if BETA_STORAGE_CLASS in annotations:
        return str(annotations[BETA_STORAGE_CLASS])
    return str_of(map_of(obj, "spec"), "storageClassName")


def claim_has_class(claim: Mapping[str, Any]) -> bool:
    """PersistentVolumeClaimHasClass: the beta annotation, or ``storageClassName`` set (even
    to ``""``)."""
    meta = map_of(claim, "metadata")
    return (BETA_STORAGE_CLASS in map_of(meta, "annotations")
            or map_of(claim, "spec").get("storageClassName") is not None)


def admit_claim_default_class(claim: Mapping[str, Any],
                              classes: Iterable[Mapping[str, Any]]) -> Obj:
    """The DefaultStorageClass admission of a new claim (a copy): a claim that asks for no
    class gets the default class's name, if there is a default class."""
    out = copy.deepcopy(dict(claim))
    if claim_has_class(out):
        return out
    found = default_storage_class(classes)
    if found is not None:
        spec = out.get("spec")
        if not isinstance(spec, dict):
            spec = out["spec"] = {}
        spec["storageClassName"] = str_of(map_of(found, "metadata"), "name")
    return out
