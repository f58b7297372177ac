"""Patch metadata: how each kind's lists and maps merge (the Go struct tags, as data)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

JSON = Any
Obj = dict[str, Any]




@dataclass(frozen=True, slots=True)
class ListMeta:
    """How one list field merges.

    ``list_type``/``map_keys``/``key_defaults`` are the server-side apply view
    (``x-kubernetes-list-type``, ``x-kubernetes-list-map-keys`` and ``+default`` on a key
    field, which SSA uses when an item omits that key). ``patch_strategy``/``merge_key`` are
    the strategic merge patch view (``patchStrategy``/``patchMergeKey``); ``""`` means
    "replace the whole list". ``atomic_items`` marks lists whose items are atomic structs
    (``+structType=atomic``, e.g. ``LocalObjectReference``).
    """

    list_type: str = "atomic"
    map_keys: tuple[str, ...] = ()
    key_defaults: tuple[tuple[str, Any], ...] = ()
    patch_strategy: str = ""
    merge_key: str = ""
    retain_keys: bool = False
    atomic_items: bool = False


@dataclass(frozen=True, slots=True)
class MapMeta:
    """How one map/struct field merges.

    ``atomic`` is SSA's ``mapType=atomic``/``structType=atomic`` (the value is owned and
    replaced as a unit); ``patch_strategy="replace"`` makes SMP replace it whole.
    """

    atomic: bool = False
    patch_strategy: str = ""
    retain_keys: bool = False


FieldMeta = ListMeta | MapMeta

_DEFAULT_LIST: Final = ListMeta()
_DEFAULT_MAP: Final = MapMeta()


class PatchSchema:
    """Patch metadata of one kind: field path (``a.b[].c``) → :class:`ListMeta`/:class:`MapMeta`.

    Lookups take a tuple of path segments, ``"[]"`` standing for "any list item".
    """

    __slots__ = ("_fields", "name")

    def __init__(self, name: str, fields: Mapping[str, FieldMeta]) -> None:
        self.name = name
        self._fields: dict[tuple[str, ...], FieldMeta] = {
            _split_path(p): m for p, m in fields.items()}

    def items(self) -> list[tuple[tuple[str, ...], FieldMeta]]:
        """Every (path, metadata) pair (``tools/gen_openapi.py`` publishes them)."""
        return list(self._fields.items())

    def lookup(self, path: tuple[str, ...]) -> FieldMeta | None:
        return self._fields.get(path)

    def list_meta(self, path: tuple[str, ...]) -> ListMeta:
        m = self._fields.get(path)
        return m if isinstance(m, ListMeta) else _DEFAULT_LIST

    def map_meta(self, path: tuple[str, ...]) -> MapMeta:
        m = self._fields.get(path)
        if isinstance(m, MapMeta):
            return m
        # The item of a list of atomic structs is itself atomic.
        if path and path[-1] == "[]":
            parent = self._fields.get(path[:-1])
            if isinstance(parent, ListMeta) and parent.atomic_items:
                return MapMeta(atomic=True)
        return _DEFAULT_MAP


def _split_path(path: str) -> tuple[str, ...]:
    """``"spec.containers[].ports"`` → ``("spec", "containers", "[]", "ports")``."""
    return tuple(seg for seg in path.replace("[]", ".[]").split(".") if seg)


def _under(prefix: str, fields: Mapping[str, FieldMeta]) -> dict[str, FieldMeta]:
    return {f"{prefix}.{k}" if prefix else k: v for k, v in fields.items()}


def _merge_by(key: str, *, keys: tuple[str, ...] | None = None,
              defaults: tuple[tuple[str, Any], ...] = (), retain_keys: bool = False,
              atomic_items: bool = False) -> ListMeta:
    """A list that SMP merges on ``key`` and SSA treats as a map keyed by ``keys``."""
    return ListMeta("map", keys or (key,), defaults, "merge", key, retain_keys, atomic_items)


def _ssa_map(*keys: str, defaults: tuple[tuple[str, Any], ...] = ()) -> ListMeta:
    """listType=map without a patch strategy (SMP replaces it)."""
    return ListMeta("map", keys, defaults)


_ATOMIC: Final = ListMeta("atomic")
_ATOMIC_MAP: Final = MapMeta(atomic=True)
_PRIMITIVE_MERGE_SET: Final = ListMeta("set", patch_strategy="merge")
_BY_TYPE: Final = _merge_by("type")
_TCP: Final = (("protocol", "TCP"),)

# metav1.ObjectMeta (types.go in apimachinery/pkg/apis/meta/v1).
_OBJECT_META: Final[dict[str, FieldMeta]] = {
    "ownerReferences": _merge_by("uid", atomic_items=True),  # OwnerReference: structType=atomic
    "finalizers": _PRIMITIVE_MERGE_SET,
    "managedFields": _ATOMIC,
}

# metav1.LabelSelector is structType=atomic.
_LABEL_SELECTOR: Final = _ATOMIC_MAP

_CONTAINER: Final[dict[str, FieldMeta]] = {
    "command": _ATOMIC,
    "args": _ATOMIC,
    "ports": _merge_by("containerPort", keys=("containerPort", "protocol"), defaults=_TCP),
    "env": _merge_by("name"),
    "env[].valueFrom.configMapKeyRef": _ATOMIC_MAP,
    "env[].valueFrom.secretKeyRef": _ATOMIC_MAP,
    "env[].valueFrom.fieldRef": _ATOMIC_MAP,
    "env[].valueFrom.resourceFieldRef": _ATOMIC_MAP,
    "envFrom": _ATOMIC,
    "volumeMounts": _merge_by("mountPath"),
    "volumeDevices": _merge_by("devicePath"),
    "resizePolicy": _ATOMIC,
    "resources.claims": _ssa_map("name"),
    "securityContext.capabilities.add": _ATOMIC,
    "securityContext.capabilities.drop": _ATOMIC,
    "lifecycle.postStart.exec.command": _ATOMIC,
    "lifecycle.preStop.exec.command": _ATOMIC,
    "livenessProbe.exec.command": _ATOMIC,
    "readinessProbe.exec.command": _ATOMIC,
    "startupProbe.exec.command": _ATOMIC,
    "livenessProbe.httpGet.httpHeaders": _ATOMIC,
    "readinessProbe.httpGet.httpHeaders": _ATOMIC,
    "startupProbe.httpGet.httpHeaders": _ATOMIC,
}

# core/v1 PodSpec.
_POD_SPEC: Final[dict[str, FieldMeta]] = {
    "volumes": _merge_by("name", retain_keys=True),
    "volumes[].configMap.items": _ATOMIC,
    "volumes[].secret.items": _ATOMIC,
    "volumes[].downwardAPI.items": _ATOMIC,
    "volumes[].projected.sources": _ATOMIC,
    "initContainers": _merge_by("name"),
    **_under("initContainers[]", _CONTAINER),
    "containers": _merge_by("name"),
    **_under("containers[]", _CONTAINER),
    "ephemeralContainers": _merge_by("name"),
    **_under("ephemeralContainers[]", _CONTAINER),
    "imagePullSecrets": _merge_by("name", atomic_items=True),  # LocalObjectReference: atomic
    "nodeSelector": _ATOMIC_MAP,
    "tolerations": _ATOMIC,
    "hostAliases": _merge_by("ip"),
    "hostAliases[].hostnames": _ATOMIC,
    "readinessGates": _ATOMIC,
    "topologySpreadConstraints": _merge_by(
        "topologyKey", keys=("topologyKey", "whenUnsatisfiable")),
    "topologySpreadConstraints[].labelSelector": _LABEL_SELECTOR,
    "topologySpreadConstraints[].matchLabelKeys": _ATOMIC,
    "resourceClaims": _merge_by("name", retain_keys=True),
    "schedulingGates": _merge_by("name"),
    "securityContext.supplementalGroups": _ATOMIC,
    "securityContext.sysctls": _ATOMIC,
    "dnsConfig.nameservers": _ATOMIC,
    "dnsConfig.searches": _ATOMIC,
    "dnsConfig.options": _ATOMIC,
    "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution": _ATOMIC_MAP,
    "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution": _ATOMIC,
    "affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution": _ATOMIC,
    "affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution": _ATOMIC,
    "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution": _ATOMIC,
    "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution": _ATOMIC,
}

_POD_STATUS: Final[dict[str, FieldMeta]] = {
    "conditions": _BY_TYPE,
    "podIPs": _merge_by("ip"),
    "hostIPs": ListMeta("atomic", patch_strategy="merge", merge_key="ip"),
    "containerStatuses": _ATOMIC,
    "initContainerStatuses": _ATOMIC,
    "ephemeralContainerStatuses": _ATOMIC,
    "resourceClaimStatuses": _merge_by("name", retain_keys=True),
}


def _pod_template(prefix: str) -> dict[str, FieldMeta]:
    return {**_under(f"{prefix}.metadata", _OBJECT_META), **_under(f"{prefix}.spec", _POD_SPEC)}


_WEBHOOKS: Final[dict[str, FieldMeta]] = {
    "webhooks": _merge_by("name"),
    "webhooks[].rules": _ATOMIC,
    "webhooks[].namespaceSelector": _LABEL_SELECTOR,
    "webhooks[].objectSelector": _LABEL_SELECTOR,
    "webhooks[].admissionReviewVersions": _ATOMIC,
    "webhooks[].matchConditions": _merge_by("name"),
}

_WORKLOAD_STATUS: Final[dict[str, FieldMeta]] = {"conditions": _BY_TYPE}

_KIND_FIELDS: Final[dict[tuple[str, str], dict[str, FieldMeta]]] = {
    ("v1", "Service"): {
        "spec.ports": _merge_by("port", keys=("port", "protocol"), defaults=_TCP),
        "spec.selector": _ATOMIC_MAP,  # +mapType=atomic
        "spec.clusterIPs": _ATOMIC,
        "spec.externalIPs": _ATOMIC,
        "spec.ipFamilies": _ATOMIC,
        "spec.loadBalancerSourceRanges": _ATOMIC,
        "status.loadBalancer.ingress": _ATOMIC,
        "status.loadBalancer.ingress[].ports": _ATOMIC,
        "status.conditions": _BY_TYPE,
    },
    ("v1", "Pod"): {**_under("spec", _POD_SPEC), **_under("status", _POD_STATUS)},
    ("v1", "Node"): {
        "spec.podCIDRs": _PRIMITIVE_MERGE_SET,
        "spec.taints": _ATOMIC,
        "status.addresses": _BY_TYPE,
        "status.conditions": _BY_TYPE,
        "status.images": _ATOMIC,
        "status.volumesInUse": _ATOMIC,
        "status.volumesAttached": _ATOMIC,
        "status.runtimeHandlers": _ATOMIC,
    },
    ("v1", "Namespace"): {
        "spec.finalizers": _ATOMIC,
        "status.conditions": _BY_TYPE,
    },
    ("v1", "ServiceAccount"): {
        "secrets": _merge_by("name", atomic_items=True),  # ObjectReference: structType=atomic
        "imagePullSecrets": _ATOMIC,
    },
    ("v1", "Endpoints"): {
        "subsets": _ATOMIC,
    },
    ("v1", "PersistentVolume"): {
        "spec.accessModes": _ATOMIC,
        "spec.mountOptions": _ATOMIC,
        "spec.claimRef": MapMeta(atomic=True),  # ObjectReference: +structType=atomic
    },
    ("v1", "PersistentVolumeClaim"): {
        "spec.accessModes": _ATOMIC,
        "spec.selector": _LABEL_SELECTOR,
        "status.accessModes": _ATOMIC,
        "status.conditions": _BY_TYPE,
    },
    ("storage.k8s.io/v1", "StorageClass"): {
        "mountOptions": _ATOMIC,  # +listType=atomic
        "allowedTopologies": _ATOMIC,  # +listType=atomic, as are the terms' lists
    },
    # admissionregistration/v1 types.go: webhooks +patchMergeKey=name +listType=map; in each,
    # matchConditions the same, rules and admissionReviewVersions +listType=atomic.
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"): _WEBHOOKS,
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"): _WEBHOOKS,
    ("node.k8s.io/v1", "RuntimeClass"): {
        "scheduling.nodeSelector": _ATOMIC_MAP,  # +mapType=atomic
        "scheduling.tolerations": _ATOMIC,  # +listType=atomic
    },
    ("networking.k8s.io/v1", "NetworkPolicy"): {
        "spec.podSelector": _LABEL_SELECTOR,
        "spec.ingress": _ATOMIC,  # +listType=atomic, as are the rules' lists and except
        "spec.egress": _ATOMIC,
        "spec.policyTypes": _ATOMIC,
    },
    ("networking.k8s.io/v1", "ServiceCIDR"): {
        "spec.cidrs": _ATOMIC,  # +listType=atomic
    },
    ("certificates.k8s.io/v1", "CertificateSigningRequest"): {
        # types.go: usages and groups +listType=atomic, extra's values atomic; conditions
        # +listType=map +listMapKey=type without a patch strategy.
        "spec.usages": _ATOMIC,
        "spec.groups": _ATOMIC,
        "status.conditions": _ssa_map("type"),
    },
    ("autoscaling/v2", "HorizontalPodAutoscaler"): {
        # Lists are atomic (the default); conditions +listType=map +listMapKey=type.
        "status.conditions": _BY_TYPE,
    },
    ("policy/v1", "PodDisruptionBudget"): {
        "spec.selector": _LABEL_SELECTOR,  # +patchStrategy=replace
        "status.conditions": _BY_TYPE,  # +patchMergeKey=type +listType=map +listMapKey=type
    },
    ("discovery.k8s.io/v1", "EndpointSlice"): {
        "endpoints": _ATOMIC,
        "ports": _ATOMIC,
    },
    ("apps/v1", "Deployment"): {
        "spec.selector": _LABEL_SELECTOR,
        "spec.strategy": MapMeta(retain_keys=True),
        **_pod_template("spec.template"),
        **_under("status", _WORKLOAD_STATUS),
    },
    ("apps/v1", "ReplicaSet"): {
        "spec.selector": _LABEL_SELECTOR,
        **_pod_template("spec.template"),
        **_under("status", _WORKLOAD_STATUS),
    },
    ("apps/v1", "DaemonSet"): {
        "spec.selector": _LABEL_SELECTOR,
        **_pod_template("spec.template"),
        **_under("status", _WORKLOAD_STATUS),
    },
    ("apps/v1", "StatefulSet"): {
        "spec.selector": _LABEL_SELECTOR,
        **_pod_template("spec.template"),
        "spec.volumeClaimTemplates": _ATOMIC,  # +listType=atomic
        **_under("status", _WORKLOAD_STATUS),
    },
    ("v1", "ReplicationController"): {
        "spec.selector": _ATOMIC_MAP,  # +mapType=atomic
        **_pod_template("spec.template"),
        **_under("status", _WORKLOAD_STATUS),
    },
    ("batch/v1", "Job"): {
        "spec.selector": _LABEL_SELECTOR,
        "spec.podFailurePolicy.rules": _ATOMIC,
        "spec.successPolicy.rules": _ATOMIC,
        **_pod_template("spec.template"),
        # +patchMergeKey=type +patchStrategy=merge +listType=atomic
        "status.conditions": ListMeta("atomic", patch_strategy="merge", merge_key="type"),
    },
    ("batch/v1", "CronJob"): {
        "spec.jobTemplate.spec.selector": _LABEL_SELECTOR,
        "spec.jobTemplate.spec.podFailurePolicy.rules": _ATOMIC,
        "spec.jobTemplate.spec.successPolicy.rules": _ATOMIC,
        **_under("spec.jobTemplate.metadata", _OBJECT_META),
        **_pod_template("spec.jobTemplate.spec.template"),
        "status.active": _ATOMIC,
    },
}

#: Patch metadata for every kind we serve, keyed by ``(apiVersion, kind)``. ObjectMeta rules
#: apply to all of them.
PATCH_META: Final[dict[tuple[str, str], PatchSchema]] = {
    gvk: PatchSchema(f"{gvk[0]}/{gvk[1]}", {**_under("metadata", _OBJECT_META), **fields})
    for gvk, fields in _KIND_FIELDS.items()
}

_OBJECT_META_ONLY: Final = PatchSchema("unknown", _under("metadata", _OBJECT_META))


def patch_schema(api_version: str, kind: str) -> PatchSchema:
    """The patch metadata of a kind; unknown kinds get the ObjectMeta rules only."""
    return PATCH_META.get((api_version, kind), _OBJECT_META_ONLY)
