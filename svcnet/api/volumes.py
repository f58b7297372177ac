"""core/v1 PersistentVolumes and PersistentVolumeClaims: defaulting, the registry's
preparation and validation, as Kubernetes 1.33 does them.

Theory of operation
-------------------
A PersistentVolume (cluster-scoped) is a piece of storage an administrator made; a
PersistentVolumeClaim (namespaced) asks for storage by size, access modes, class and selector.
The PV binder (:mod:`svcnet.controllers.volumebinder`) pairs them. svcnet's nodes do not mount
volumes into pods: these objects are served and bound, not attached.

Mirrors:

* ``pkg/apis/core/v1/defaults.go`` — ``SetDefaults_PersistentVolume`` (reclaim policy
  ``Retain``, volume mode ``Filesystem``, phase ``Pending``), ``SetDefaults_PersistentVolumeClaim``
  / ``..ClaimSpec`` (phase ``Pending``, volume mode ``Filesystem``) and
  ``SetDefaults_HostPathVolumeSource`` (``type: ""``);
* ``pkg/apis/core/validation/validation.go`` — ``ValidatePersistentVolume`` (core's ObjectMeta,
  the name a DNS subdomain; access modes required and supported, ReadWriteOncePod alone; a
  capacity of ``storage`` only, positive; a supported reclaim policy; exactly one volume source,
  of which svcnet checks ``hostPath``, ``local`` (which needs ``nodeAffinity``), ``nfs`` and
  ``csi`` field by field and accepts the other in-tree sources as they are; the node affinity's
  required node selector; storage class name and volume mode), ``ValidatePersistentVolumeUpdate``
  (the volume source, volume mode and a set node affinity are immutable),
  ``ValidatePersistentVolumeClaim`` (access modes, ``spec.resources[storage]`` required and
  positive, selector, class, volume mode) and ``ValidatePersistentVolumeClaimUpdate`` (the spec
  is immutable but for ``volumeName`` once, the storage request of a bound claim — which may
  not fall below ``status.capacity``, RecoverFromExpansionFailure being on — and a class set
  where there was none). The detail of "spec is immutable" errors is upstream's first line
  followed by svcnet's own list of the changed fields (upstream prints a Go ``cmp.Diff``);
* ``pkg/registry/core/persistentvolume{,claim}/strategy.go`` — status is reset on create
  (phase ``Pending``) and kept by spec updates; ``/status`` keeps the spec. svcnet does not
  record ``status.lastPhaseTransitionTime``;
* ``plugin/pkg/admission/storage/storageobjectinuseprotection`` — new claims get the
  ``kubernetes.io/pvc-protection`` finalizer and new volumes ``kubernetes.io/pv-protection``:
  :func:`add_protection_finalizer`.
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Mapping, Sequence
from typing import Any, Final

from svcnet.api.access import list_of, map_of, str_of
from svcnet.api.errors import (
    FieldError,
    GoRaw,
    Path,
    forbidden,
    invalid,
    not_supported,
    required,
    too_long,
)
from svcnet.api.labels import validate_label_selector
from svcnet.api.meta import (
    FIELD_IMMUTABLE_ERROR_MSG,
    validate_label_name,
    validate_object_meta,
    validate_object_meta_update,
)
from svcnet.api.names import is_dns1123_subdomain, is_valid_label_value, name_is_dns_subdomain
from svcnet.api.resourcelists import parse_quantity

__all__ = [
    "ACCESS_MODES",
    "PROTECTION_PV",
    "PROTECTION_PVC",
    "add_protection_finalizer",
    "prepare_for_create",
    "prepare_for_status_update",
    "prepare_for_update",
    "set_defaults_persistent_volume",
    "set_defaults_persistent_volume_claim",
    "validate_persistent_volume",
    "validate_persistent_volume_claim",
    "validate_persistent_volume_claim_update",
    "validate_persistent_volume_update",
    "validate_status_update",
]

Obj = dict[str, Any]
PROTECTION_PVC: Final = "kubernetes.io/pvc-protection"
PROTECTION_PV: Final = "kubernetes.io/pv-protection"
#: The beta annotation that still wins over ``storageClassName`` (v1.BetaStorageClassAnnotation).
BETA_STORAGE_CLASS: Final = "volume.beta.kubernetes.io/storage-class"
ACCESS_MODES: Final = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
_RECLAIM_POLICIES: Final = ("Delete", "Recycle", "Retain")
_VOLUME_MODES: Final = ("Block", "Filesystem")
_HOST_PATH_TYPES: Final = ("", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate",
                           "File", "FileOrCreate", "Socket")
#: Every PersistentVolumeSource field, in the order ValidatePersistentVolumeSpec checks them.
_SOURCES: Final = ("hostPath", "gcePersistentDisk", "awsElasticBlockStore", "glusterfs",
                   "flocker", "nfs", "rbd", "quobyte", "cinder", "cephfs", "iscsi", "fc",
                   "azureFile", "vsphereVolume", "photonPersistentDisk", "portworxVolume",
                   "azureDisk", "scaleIO", "local", "storageos", "csi", "flexVolume")
_META: Final = Path("metadata")
_SPEC: Final = Path("spec")
_NOT_POSITIVE: Final = "must be greater than zero"
_NODE_SELECTOR_OPS: Final = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")


# ------------------------------------------------------------------------- defaulting


def set_defaults_persistent_volume(obj: Mapping[str, Any]) -> Obj:
    """SetDefaults_PersistentVolume (and its hostPath's type)."""
    out = copy.deepcopy(dict(obj))
    spec = out.setdefault("spec", {})
    if isinstance(spec, dict):
        if not spec.get("persistentVolumeReclaimPolicy"):
            spec["persistentVolumeReclaimPolicy"] = "Retain"
        if spec.get("volumeMode") is None:
            spec["volumeMode"] = "Filesystem"
        host_path = spec.get("hostPath")
        if isinstance(host_path, dict) and host_path.get("type") is None:
            host_path["type"] = ""
    status = out.setdefault("status", {})
    if isinstance(status, dict) and not status.get("phase"):
        status["phase"] = "Pending"
    return out


def set_defaults_persistent_volume_claim(obj: Mapping[str, Any]) -> Obj:
    """SetDefaults_PersistentVolumeClaim and SetDefaults_PersistentVolumeClaimSpec."""
    out = copy.deepcopy(dict(obj))
    spec = out.setdefault("spec", {})
    if isinstance(spec, dict) and spec.get("volumeMode") is None:
        spec["volumeMode"] = "Filesystem"
    status = out.setdefault("status", {})
    if isinstance(status, dict) and not status.get("phase"):
        status["phase"] = "Pending"
    return out


def prepare_for_create(obj: Mapping[str, Any]) -> Obj:
    """The strategies' PrepareForCreate: status is the server's (a pending one)."""
    out = copy.deepcopy(dict(obj))
    out["status"] = {"phase": "Pending"}
    return out


def prepare_for_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> Obj:
    """The strategies' PrepareForUpdate: the main endpoint cannot change status."""
    out = copy.deepcopy(dict(new))
    out["status"] = copy.deepcopy(old.get("status") or {})
    return out


def prepare_for_status_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> Obj:
    """The status strategies' PrepareForUpdate: the status endpoint cannot change the spec."""
    out = copy.deepcopy(dict(new))
    out["spec"] = copy.deepcopy(old.get("spec") or {})
    return out


def add_protection_finalizer(obj: Mapping[str, Any], finalizer: str) -> Obj:
    """The StorageObjectInUseProtection admission of a new claim or volume."""
    out = copy.deepcopy(dict(obj))
    meta = out.setdefault("metadata", {})
    finalizers = list(meta.get("finalizers") or [])
    if finalizer not in finalizers:
        meta["finalizers"] = [*finalizers, finalizer]
    return out


# ------------------------------------------------------------------------- shared rules


def _validate_access_modes(modes: Sequence[Any], path: Path) -> list[FieldError]:
    errs = [not_supported(path, m, ACCESS_MODES) for m in modes if m not in ACCESS_MODES]
    once_pod = "ReadWriteOncePod" in modes
    others = any(m in ACCESS_MODES and m != "ReadWriteOncePod" for m in modes)
    if once_pod and others:
        errs.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return errs


def _positive_quantity(raw: object, path: Path) -> list[FieldError]:
    """ValidatePositiveQuantityValue."""
    value = parse_quantity(raw)
    if value is not None and value <= 0:
        return [invalid(path, str(raw), _NOT_POSITIVE)]
    return []


def _no_backsteps(target: str, path: Path) -> list[FieldError]:
    """validatePathNoBacksteps."""
    if ".." in target.split("/"):
        return [invalid(path, target, "must not contain '..'")]
    return []


def _validate_class_and_mode(spec: Mapping[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    class_name = spec.get("storageClassName")
    if isinstance(class_name, str) and class_name:
        errs.extend(invalid(_SPEC.child("storageClassName"), class_name, m)
                    for m in name_is_dns_subdomain(class_name, False))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in _VOLUME_MODES:
        errs.append(not_supported(_SPEC.child("volumeMode"), mode, _VOLUME_MODES))
    return errs


# ------------------------------------------------------------------------- PersistentVolume


def _validate_node_selector_requirement(req: Mapping[str, Any], path: Path) -> list[FieldError]:
    """ValidateNodeSelectorRequirement."""
    errs: list[FieldError] = []
    op, values = req.get("operator"), list_of(req, "values")
    if op in ("In", "NotIn"):
        if not values:
            errs.append(required(path.child("values"),
                                 "must be specified when `operator` is 'In' or 'NotIn'"))
    elif op in ("Exists", "DoesNotExist"):
        if values:
            errs.append(forbidden(path.child("values"), "may not be specified when `operator` "
                                                        "is 'Exists' or 'DoesNotExist'"))
    elif op in ("Gt", "Lt"):
        if len(values) != 1:
            errs.append(required(path.child("values"), "must be specified single value when "
                                                       "`operator` is 'Lt' or 'Gt'"))
    else:
        errs.append(invalid(path.child("operator"), op, "not a valid selector operator"))
    errs.extend(validate_label_name(str_of(req, "key"), path.child("key")))
    for i, value in enumerate(values):
        errs.extend(invalid(path.child("values").index(i), value, m)
                    for m in is_valid_label_value(str(value)))
    return errs


def _validate_node_affinity(affinity: Mapping[str, Any], path: Path) -> list[FieldError]:
    """validateVolumeNodeAffinity and ValidateNodeSelector (match expressions)."""
    required_sel = affinity.get("required")
    if not isinstance(required_sel, dict):
        return [required(path.child("required"), "must specify required node constraints")]
    terms_path = path.child("required", "nodeSelectorTerms")
    terms = list_of(required_sel, "nodeSelectorTerms")
    if not terms:
        return [required(terms_path, "must have at least one node selector term")]
    errs: list[FieldError] = []
    for i, term in enumerate(terms):
        for j, req in enumerate(list_of(term if isinstance(term, dict) else {},
                                        "matchExpressions")):
            errs.extend(_validate_node_selector_requirement(
                req if isinstance(req, dict) else {},
                terms_path.index(i).child("matchExpressions").index(j)))
    return errs


def _validate_source(name: str, source: Mapping[str, Any], path: Path) -> list[FieldError]:
    """The per-source checks of hostPath, local, nfs and csi."""
    errs: list[FieldError] = []
    if name == "hostPath":
        target = str_of(source, "path")
        if not target:
            return [required(path.child("path"))]
        errs.extend(_no_backsteps(target, path.child("path")))
        kind = source.get("type")
        if kind is not None and kind not in _HOST_PATH_TYPES:
            errs.append(not_supported(path.child("type"), kind, _HOST_PATH_TYPES))
    elif name == "local":
        target = str_of(source, "path")
        if not target:
            return [required(path.child("path"))]
        errs.extend(_no_backsteps(target, path.child("path")))
    elif name == "nfs":
        target = str_of(source, "path")
        if not str_of(source, "server"):
            errs.append(required(path.child("server")))
        if not target:
            errs.append(required(path.child("path")))
        if not target.startswith("/"):
            errs.append(invalid(path.child("path"), target, "must be an absolute path"))
    elif name == "csi":
        driver = str_of(source, "driver")
        if not driver:
            errs.append(required(path.child("driver")))
        if len(driver) > 63:
            errs.append(too_long(path.child("driver"), driver, 63))
        errs.extend(invalid(path.child("driver"), driver, m)
                    for m in is_dns1123_subdomain(driver.lower()))
        if not str_of(source, "volumeHandle"):
            errs.append(required(path.child("volumeHandle")))
    return errs


def _validate_capacity(spec: Mapping[str, Any]) -> list[FieldError]:
    path = _SPEC.child("capacity")
    capacity = spec.get("capacity")
    caps = capacity if isinstance(capacity, dict) else {}
    errs: list[FieldError] = []
    if not caps:
        errs.append(required(path))
    if "storage" not in caps or len(caps) > 1:
        shown = ("core.ResourceList(nil)" if capacity is None else
                 "core.ResourceList{" + ", ".join(f'"{k}":{v}' for k, v in sorted(caps.items()))
                 + "}")
        errs.append(not_supported(path, GoRaw(shown), ["storage"]))
    for name in sorted(caps):
        value = parse_quantity(caps[name])
        if value is not None and value < 0:
            errs.append(invalid(path.key(name), int(value), "must be a valid resource quantity"))
        errs.extend(_positive_quantity(caps[name], path.key(name)))
    return errs


def validate_persistent_volume(pv: Mapping[str, Any]) -> list[FieldError]:
    """ValidatePersistentVolume."""
    errs = validate_object_meta(map_of(pv, "metadata"), requires_namespace=False,
                                name_fn=name_is_dns_subdomain, path=_META)
    spec = map_of(pv, "spec")
    modes = list_of(spec, "accessModes")
    if not modes:
        errs.append(required(_SPEC.child("accessModes")))
    errs.extend(_validate_access_modes(modes, _SPEC.child("accessModes")))
    errs.extend(_validate_capacity(spec))
    policy = str_of(spec, "persistentVolumeReclaimPolicy")
    if policy and policy not in _RECLAIM_POLICIES:
        errs.append(not_supported(_SPEC.child("persistentVolumeReclaimPolicy"), policy,
                                  _RECLAIM_POLICIES))
    affinity = spec.get("nodeAffinity")
    if isinstance(affinity, dict):
        errs.extend(_validate_node_affinity(affinity, _SPEC.child("nodeAffinity")))
    count = 0
    for name in _SOURCES:
        source = spec.get(name)
        if not isinstance(source, dict):
            continue
        if count:
            errs.append(forbidden(_SPEC.child(name), "may not specify more than 1 volume type"))
            continue
        count += 1
        errs.extend(_validate_source(name, source, _SPEC.child(name)))
        if name == "local" and not isinstance(affinity, dict):
            errs.append(required(_SPEC.child("nodeAffinity"),
                                 "Local volume requires node affinity"))
    if not count:
        errs.append(required(_SPEC, "must specify a volume type"))
    host_path = spec.get("hostPath")
    if isinstance(host_path, dict) and posixpath.normpath(str_of(host_path, "path") or ".") == \
            "/" and policy == "Recycle":
        errs.append(forbidden(_SPEC.child("persistentVolumeReclaimPolicy"),
                              "may not be 'recycle' for a hostPath mount of '/'"))
    errs.extend(_validate_class_and_mode(spec))
    return errs


def _source_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: spec[k] for k in _SOURCES if k in spec}


def _changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    keys = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
    return "".join(f"  {k}: {old.get(k)!r} -> {new.get(k)!r}\n" for k in keys)


def validate_persistent_volume_update(new: Mapping[str, Any],
                                      old: Mapping[str, Any]) -> list[FieldError]:
    """The strategy's ValidateUpdate: ValidatePersistentVolume, then
    ValidatePersistentVolumeUpdate."""
    errs = validate_persistent_volume(new)
    errs.extend(validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"),
                                            _META))
    new_spec, old_spec = map_of(new, "spec"), map_of(old, "spec")
    if _source_of(new_spec) != _source_of(old_spec):
        errs.append(forbidden(_SPEC.child("persistentvolumesource"),
                              "spec.persistentvolumesource is immutable after creation\n"
                              + _changed_fields(_source_of(old_spec), _source_of(new_spec))))
    if new_spec.get("volumeMode") != old_spec.get("volumeMode"):
        errs.append(invalid(Path("volumeMode"), new_spec.get("volumeMode"),
                            FIELD_IMMUTABLE_ERROR_MSG))
    if old_spec.get("nodeAffinity") is not None and \
            new_spec.get("nodeAffinity") != old_spec.get("nodeAffinity"):
        errs.append(invalid(Path("nodeAffinity"), GoRaw("core.VolumeNodeAffinity{...}"),
                            FIELD_IMMUTABLE_ERROR_MSG))
    return errs


# ------------------------------------------------------------------------- PersistentVolumeClaim


def _validate_claim_spec(spec: Mapping[str, Any]) -> list[FieldError]:
    """ValidatePersistentVolumeClaimSpec."""
    errs: list[FieldError] = []
    modes = list_of(spec, "accessModes")
    if not modes:
        errs.append(required(_SPEC.child("accessModes"), "at least 1 access mode is required"))
    selector = spec.get("selector")
    if isinstance(selector, dict):
        errs.extend(validate_label_selector(selector, _SPEC.child("selector")))
    errs.extend(_validate_access_modes(modes, _SPEC.child("accessModes")))
    requests = map_of(map_of(spec, "resources"), "requests")
    path = _SPEC.child("resources").key("storage")
    if "storage" not in requests:
        errs.append(required(path))
    else:
        errs.extend(_positive_quantity(requests["storage"], path))
    errs.extend(_validate_class_and_mode(spec))
    return errs


def validate_persistent_volume_claim(pvc: Mapping[str, Any]) -> list[FieldError]:
    """ValidatePersistentVolumeClaim."""
    errs = validate_object_meta(map_of(pvc, "metadata"), requires_namespace=True,
                                name_fn=name_is_dns_subdomain, path=_META)
    errs.extend(_validate_claim_spec(map_of(pvc, "spec")))
    return errs


def validate_persistent_volume_claim_update(new: Mapping[str, Any],
                                            old: Mapping[str, Any]) -> list[FieldError]:
    """ValidatePersistentVolumeClaimUpdate."""
    errs = validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"), _META)
    errs.extend(validate_persistent_volume_claim(new))
    new_spec = copy.deepcopy(map_of(new, "spec"))
    old_spec = copy.deepcopy(map_of(old, "spec"))
    if not str_of(old_spec, "volumeName"):
        # The binder sets volumeName once.
        old_spec.pop("volumeName", None)
        new_spec.pop("volumeName", None)
    if old_spec.get("storageClassName") is None and new_spec.get("storageClassName") is not None \
            and BETA_STORAGE_CLASS not in map_of(map_of(old, "metadata"), "annotations"):
        # Retroactive default StorageClass: a class may be set where there was none.
        new_spec.pop("storageClassName", None)
    new_requests = map_of(map_of(new_spec, "resources"), "requests")
    if str_of(map_of(new, "status"), "phase") == "Bound" and "storage" in new_requests:
        new_requests["storage"] = map_of(map_of(old_spec, "resources"), "requests").get(
            "storage")
    if new_spec != old_spec:
        errs.append(forbidden(_SPEC, "spec is immutable after creation except resources.requests "
                                     "and volumeAttributesClassName for bound claims\n"
                                     + _changed_fields(old_spec, new_spec)))
    old_size = parse_quantity(map_of(map_of(map_of(old, "spec"), "resources"), "requests").get(
        "storage"))
    new_size = parse_quantity(map_of(map_of(map_of(new, "spec"), "resources"), "requests").get(
        "storage"))
    status_size = parse_quantity(map_of(map_of(old, "status"), "capacity").get("storage")) or 0
    if old_size is not None and new_size is not None and new_size < old_size and \
            new_size <= status_size:
        errs.append(forbidden(Path("spec", "resources", "requests", "storage"),
                              "field can not be less than status.capacity"))
    if map_of(new, "spec").get("volumeMode") != map_of(old, "spec").get("volumeMode"):
        errs.append(invalid(Path("volumeMode"), map_of(new, "spec").get("volumeMode"),
                            FIELD_IMMUTABLE_ERROR_MSG))
    return errs


def validate_status_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[FieldError]:
    """ValidatePersistentVolumeStatusUpdate / ...ClaimStatusUpdate: the ObjectMeta update rules
    (svcnet does not check the claim status's resource lists)."""
    return validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"), _META)
