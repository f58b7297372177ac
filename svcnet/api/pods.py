"""Pod defaulting and validation: the subset of Kubernetes' rules that svcnet's pods exercise.

Mirrors:

* ``pkg/apis/core/v1/defaults.go`` (+ the generated ``zz_generated.defaults.go`` walk) —
  ``SetDefaults_Pod``, ``SetDefaults_PodSpec``, ``SetDefaults_Container``,
  ``SetDefaults_Probe``, ``SetDefaults_HTTPGetAction``, ``SetDefaults_Volume``, the declarative
  defaults (container port protocol ``TCP``, gRPC probe ``service: ""``), and the
  ``podIP``/``podIPs`` reconciliation of ``pkg/apis/core/v1/conversion.go``;
* ``pkg/apis/core/validation/validation.go`` — ``ValidatePodCreate``,
  ``validatePodMetadataAndSpec``, ``ValidatePodSpec`` (subset), ``validateContainers``,
  ``validateInitContainers``, ``validateContainerCommon``, ``validateContainerPorts``,
  ``ValidateEnv``/``ValidateEnvFrom``, probes and handlers, ``ValidateTolerations``,
  ``ValidatePodUpdate``, ``ValidatePodStatusUpdate``;
* ``pkg/registry/core/pod/strategy.go`` — what the API server does to a pod before validating
  it (status reset on create, status/spec preserved across the main/status endpoints);
* ``pkg/apis/core/helper/qos/qos.go`` — the QoS class set at creation.

Objects are JSON-shaped dicts as on the wire (camelCase); inputs are never mutated. A field
that is absent reads as Go's zero value, because that is what the Go structs hold after
decoding. Paths and messages are upstream's, including its quirks (noted where they occur),
because clients and people compare them with what a real cluster says.

Left out (accepted as-is, not validated): volume sources' own fields, containers' resources
(requests/limits; the pod's ``overhead`` is validated, :mod:`svcnet.api.resourcelists`),
security contexts, affinity, topology spread constraints, ephemeral containers' contents,
OS-specific rules.

Why this module is long: Pod defaulting and validation mirror upstream's SetDefaults_Pod and
ValidatePod* one to one, in upstream's order, so they are compared side by side.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

from svcnet.api.access import int_of as _int, list_of as _list, map_of as _map, str_of as _str
from svcnet.api.errors import (
    ErrorType,
    FieldError,
    GoRaw,
    Path,
    PathLike,
    duplicate,
    forbidden,
    go_quote,
    internal,
    invalid,
    not_supported,
    required,
)
from svcnet.api.meta import validate_labels, validate_object_meta, validate_object_meta_update
from svcnet.api.names import (
    inclusive_range_error,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_ip,
    is_valid_label_value,
    is_valid_port_name,
    is_valid_port_num,
    max_len_error,
    name_is_dns_subdomain,
    parse_ip_sloppy,
    regex_error,
)
from svcnet.api.resourcelists import parse_quantity, validate_overhead

__all__ = [
    "PodValidationOptions",
    "pod_qos_class",
    "prepare_pod_for_create",
    "prepare_pod_for_status_update",
    "prepare_pod_for_update",
    "set_defaults_pod",
    "validate_dns1123_label",
    "validate_dns1123_subdomain",
    "validate_pod",
    "validate_pod_status_update",
    "validate_pod_update",
    "validate_preemption_policy",
    "validate_qualified_name",
    "validate_taint_effect",
    "validate_tolerations",
]

MAX_INT32: Final = 2**31 - 1
IS_NEGATIVE_ERROR_MSG: Final = "must be greater than or equal to 0"
FIELD_IMMUTABLE_ERROR_MSG: Final = "field is immutable"

DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: Final = 30
DEFAULT_SCHEDULER_NAME: Final = "default-scheduler"
TERMINATION_MESSAGE_PATH_DEFAULT: Final = "/dev/termination-log"
MIRROR_POD_ANNOTATION: Final = "kubernetes.io/config.mirror"
POD_DELETION_COST_ANNOTATION: Final = "controller.kubernetes.io/pod-deletion-cost"

SUPPORTED_PORT_PROTOCOLS: Final = ("SCTP", "TCP", "UDP")  # sets.List order (sorted)
SUPPORTED_PULL_POLICIES: Final = ("Always", "IfNotPresent", "Never")
SUPPORTED_HTTP_SCHEMES: Final = ("HTTP", "HTTPS")
RESTART_POLICIES: Final = ("Always", "OnFailure", "Never")
DNS_POLICIES: Final = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
TERMINATION_MESSAGE_POLICIES: Final = ("File", "FallbackToLogsOnError")
TAINT_EFFECTS: Final = ("NoSchedule", "PreferNoSchedule", "NoExecute")
TOLERATION_OPERATORS: Final = ("Equal", "Exists")
PREEMPTION_POLICIES: Final = ("PreemptLowerPriority", "Never")
SYSTEM_POD_CONDITIONS: Final = frozenset({"PodScheduled", "Ready", "Initialized"})

MAX_DNS_NAMESERVERS: Final = 3
MAX_DNS_SEARCH_PATHS: Final = 32
MAX_DNS_SEARCH_LIST_CHARS: Final = 2048

# The field list ValidatePodUpdate prints, in upstream's order and punctuation.
UPDATABLE_POD_SPEC_FIELDS: Final = (
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
    "negative)",
)

# validEnvDownwardAPIFieldPathExpressions, sorted as sets.List prints them.
ENV_FIELD_PATHS: Final = (
    "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
    "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
    "status.podIPs",
)
# What ConvertDownwardAPIFieldLabel accepts at all (a superset of the env list).
_DOWNWARD_API_LABELS: Final = frozenset({
    "metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace",
    "metadata.uid", "spec.nodeName", "spec.restartPolicy", "spec.serviceAccountName",
    "spec.schedulerName", "status.phase", "status.hostIP", "status.hostIPs", "status.podIP",
    "status.podIPs",
})
# validContainerResourceFieldPathExpressions (sorted) and the hugepages prefixes.
RESOURCE_FIELD_PATHS: Final = (
    "limits.cpu", "limits.ephemeral-storage", "limits.memory", "requests.cpu",
    "requests.ephemeral-storage", "requests.memory",
)
_RESOURCE_FIELD_PREFIXES: Final = ("requests.hugepages-", "limits.hugepages-")

# Volume source fields in the order validateVolumeSource checks them, with the path child
# each one reports under when it is the second source (two upstream typos kept:
# "cephFS" and "downwarAPI").
_VOLUME_SOURCES: Final = (
    ("emptyDir", "emptyDir"), ("hostPath", "hostPath"), ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"), ("secret", "secret"), ("nfs", "nfs"),
    ("iscsi", "iscsi"), ("glusterfs", "glusterfs"), ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"), ("rbd", "rbd"), ("cinder", "cinder"),
    ("cephfs", "cephFS"), ("quobyte", "quobyte"), ("downwardAPI", "downwarAPI"), ("fc", "fc"),
    ("flexVolume", "flexVolume"), ("configMap", "configMap"), ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"), ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"), ("azureDisk", "azureDisk"),
    ("storageos", "storageos"), ("projected", "projected"), ("scaleIO", "scaleIO"),
    ("csi", "csi"), ("ephemeral", "ephemeral"), ("image", "image"),
)
_DEFAULT_MODE_SOURCES: Final = ("secret", "configMap", "downwardAPI", "projected")


@dataclass(frozen=True, slots=True)
class PodValidationOptions:
    """The PodValidationOptions flags svcnet honours.

    ``allow_relaxed_env_var_names``: the RelaxedEnvironmentVariableValidation behaviour (any
    printable ASCII but '='). Off by default, i.e. the classic IsEnvVarName rule; on update it
    is turned on automatically when the old pod already used such names, as upstream does.
    ``allow_invalid_pod_deletion_cost``: set on update when the old value was already bad.
    """

    allow_relaxed_env_var_names: bool = False
    allow_invalid_pod_deletion_cost: bool = False


# =============================================================================================
# small accessors (the typed reads are svcnet.api.access's): absent or null reads as Go's zero value


def _present(d: Mapping[str, Any] | None, key: str) -> bool:
    """A Go pointer field is non-nil (the decoder turned JSON null into "absent")."""
    return d is not None and d.get(key) is not None


def _dicts(items: Iterable[Any]) -> list[dict[str, Any]]:
    return [i if isinstance(i, dict) else {} for i in items]


# =============================================================================================
# reusable field validators (also used by nodes.py)


def validate_dns1123_label(value: str, path: PathLike) -> list[FieldError]:
    """ValidateDNS1123Label."""
    return [invalid(path, value, m) for m in is_dns1123_label(value)]


def validate_dns1123_subdomain(value: str, path: PathLike) -> list[FieldError]:
    """ValidateDNS1123Subdomain."""
    return [invalid(path, value, m) for m in is_dns1123_subdomain(value)]


def validate_qualified_name(value: str, path: PathLike) -> list[FieldError]:
    """ValidateQualifiedName."""
    return [invalid(path, value, m) for m in is_qualified_name(value)]


def _validate_name(value: str, path: PathLike,
                   fn: Callable[[str, bool], list[str]] = name_is_dns_subdomain,
                   prefix: bool = False) -> list[FieldError]:
    return [invalid(path, value, m) for m in fn(value, prefix)]


def _validate_ip(value: str, path: PathLike) -> list[FieldError]:
    """validation.IsValidIP(fldPath, value) of the v1.33 line: the sloppy (legacy) parser."""
    return [invalid(path, value, m) for m in is_valid_ip(value, strict=False)]


def _nonnegative(value: int, path: PathLike) -> list[FieldError]:
    """ValidateNonnegativeField."""
    return [invalid(path, value, IS_NEGATIVE_ERROR_MSG)] if value < 0 else []


def _not_found(path: PathLike, value: object) -> FieldError:
    return FieldError(ErrorType.NOT_FOUND, str(path), value)


_ENV_VAR_NAME_FMT: Final = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_ENV_VAR_NAME_RE: Final = re.compile(_ENV_VAR_NAME_FMT)
_CONFIG_MAP_KEY_FMT: Final = "[-._a-zA-Z0-9]+"
_CONFIG_MAP_KEY_RE: Final = re.compile(_CONFIG_MAP_KEY_FMT)
_HTTP_HEADER_NAME_FMT: Final = "[-A-Za-z0-9]+"
_HTTP_HEADER_NAME_RE: Final = re.compile(_HTTP_HEADER_NAME_FMT)


def _has_chdir_prefix(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_env_var_name(value: str) -> list[str]:
    """IsEnvVarName."""
    errs: list[str] = []
    if not _ENV_VAR_NAME_RE.fullmatch(value):
        errs.append(regex_error(
            "a valid environment variable name must consist of alphabetic characters, digits, "
            "'_', '-', or '.', and must not start with a digit",
            _ENV_VAR_NAME_FMT, "my.env-name", "MY_ENV.NAME", "MyEnvName1"))
    return errs + _has_chdir_prefix(value)


def is_relaxed_env_var_name(value: str) -> list[str]:
    """IsRelaxedEnvVarName: printable ASCII other than '='."""
    errs: list[str] = []
    if not value:
        errs.append("environment variable name must be non-empty")
    if any(ord(c) > 127 or not c.isprintable() or c == "=" for c in value):
        errs.append("a valid environment variable name must consist only of printable ASCII "
                    "characters other than '='")
    return errs


def is_config_map_key(value: str) -> list[str]:
    """IsConfigMapKey."""
    errs: list[str] = []
    if len(value.encode()) > 253:
        errs.append(max_len_error(253))
    if not _CONFIG_MAP_KEY_RE.fullmatch(value):
        errs.append(regex_error("a valid config key must consist of alphanumeric characters, "
                                "'-', '_' or '.'", _CONFIG_MAP_KEY_FMT,
                                "key.name", "KEY_NAME", "key-name"))
    return errs + _has_chdir_prefix(value)


def _is_http_header_name(value: str) -> list[str]:
    if _HTTP_HEADER_NAME_RE.fullmatch(value):
        return []
    return [regex_error("a valid HTTP header must consist of alphanumeric characters or '-'",
                        _HTTP_HEADER_NAME_FMT, "X-Header-Name")]


# =============================================================================================
# quantities (for QoS)


def pod_ready_condition(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """podutil.GetPodReadyCondition: the pod's ``Ready`` condition, if it has one."""
    status = pod.get("status")
    for cond in (status.get("conditions") or []) if isinstance(status, Mapping) else []:
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            return cond
    return None


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    """podutil.IsPodReady: the ``Ready`` condition is ``True``."""
    cond = pod_ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def _qos_resources(resources: Mapping[str, Any]) -> dict[str, Fraction]:
    out: dict[str, Fraction] = {}
    for name, raw in resources.items():
        if name not in ("cpu", "memory"):  # only these count for QoS
            continue
        q = parse_quantity(raw)
        if q is not None and q > 0:
            out[name] = q
    return out


def pod_qos_class(pod: Mapping[str, Any]) -> str:
    """qos.GetPodQOS for container-level resources (pod-level resources not supported)."""
    spec = _map(pod, "spec")
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for c in _dicts(_list(spec, "containers") + _list(spec, "initContainers")):
        res = _map(c, "resources")
        for k, q in _qos_resources(_map(res, "requests")).items():
            requests[k] = requests.get(k, Fraction(0)) + q
        found = _qos_resources(_map(res, "limits"))
        for k, q in found.items():
            limits[k] = limits.get(k, Fraction(0)) + q
        if not {"cpu", "memory"} <= found.keys():
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed:
        for k, req in requests.items():
            if limits.get(k) != req:
                guaranteed = False
                break
    if guaranteed and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


# =============================================================================================
# defaulting

# distribution/reference grammar, enough to tell a valid reference from an invalid one.
_DOMAIN_COMPONENT: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN: Final = (rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
                  r"(?::[0-9]+)?")
_PATH_COMPONENT: Final = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_REFERENCE_RE: Final = re.compile(
    rf"((?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::([\w][\w.-]{0,127}))?"
    r"(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?")
_IMAGE_ID_RE: Final = re.compile(r"[a-f0-9]{64}")


def _image_tag(image: str) -> str:
    """parsers.ParseImageName's tag: "latest" when neither tag nor digest is given, "" for an
    unparsable reference (SetDefaults_Container ignores the error)."""
    if _IMAGE_ID_RE.fullmatch(image):
        return ""
    # ParseNormalizedNamed: the repository part (after any registry) must be lower case.
    slash = image.find("/")
    first = image[:slash] if slash >= 0 else ""
    has_domain = slash >= 0 and ("." in first or ":" in first or first == "localhost"
                                 or first.lower() != first)
    remainder = image[slash + 1:] if has_domain else image
    repo = remainder.split("@", 1)[0]
    colon = repo.rfind(":")
    if colon >= 0:
        repo = repo[:colon]
    if repo.lower() != repo:
        return ""
    m = _REFERENCE_RE.fullmatch(image)
    if m is None or len(m.group(1)) > 255:
        return ""
    tag, digest = m.group(2) or "", m.group(3) or ""
    return "latest" if not tag and not digest else tag


def _default_probe(probe: dict[str, Any]) -> None:
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                       ("failureThreshold", 3)):
        if not probe.get(key):
            probe[key] = value
    _default_handler(probe)


def _default_handler(handler: dict[str, Any]) -> None:
    http_get = handler.get("httpGet")
    if isinstance(http_get, dict):
        if not http_get.get("path"):
            http_get["path"] = "/"
        if not http_get.get("scheme"):
            http_get["scheme"] = "HTTP"
    grpc = handler.get("grpc")
    if isinstance(grpc, dict) and grpc.get("service") is None:
        grpc["service"] = ""


def _default_container(c: dict[str, Any]) -> None:
    """SetDefaults_Container plus the generated walk over ports, env, probes, lifecycle."""
    if not c.get("imagePullPolicy"):
        c["imagePullPolicy"] = "Always" if _image_tag(_str(c, "image")) == "latest" \
            else "IfNotPresent"
    if not c.get("terminationMessagePath"):
        c["terminationMessagePath"] = TERMINATION_MESSAGE_PATH_DEFAULT
    if not c.get("terminationMessagePolicy"):
        c["terminationMessagePolicy"] = "File"
    for port in c.get("ports") or []:
        if isinstance(port, dict) and not port.get("protocol"):
            port["protocol"] = "TCP"
    for env in c.get("env") or []:
        field_ref = _map(_map(env, "valueFrom"), "fieldRef") if isinstance(env, dict) else {}
        if field_ref and not field_ref.get("apiVersion"):
            field_ref["apiVersion"] = "v1"
    for probe_key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.get(probe_key)
        if isinstance(probe, dict):
            _default_probe(probe)
    lifecycle = c.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            if isinstance(lifecycle.get(hook), dict):
                _default_handler(lifecycle[hook])


def _default_requests_from_limits(c: dict[str, Any]) -> None:
    """SetDefaults_Pod: requests default to limits, per resource."""
    resources = c.get("resources")
    if not isinstance(resources, dict) or not isinstance(resources.get("limits"), dict):
        return
    requests = resources.get("requests")
    if not isinstance(requests, dict):
        requests = resources["requests"] = {}
    for name, value in resources["limits"].items():
        requests.setdefault(name, value)


def _reconcile_ips(status: dict[str, Any], single: str, plural: str) -> None:
    """Convert_v1_PodStatus_To_core_PodStatus and back: ``podIP`` is authoritative.

    If both are set and disagree, or only the singular is set, the list becomes the singular
    one; the singular then always mirrors the first list entry.
    """
    one = _str(status, single)
    many = _dicts(_list(status, plural))
    if one and (not many or _str(many[0], "ip") != one):
        status[plural] = [{"ip": one}]
    elif many and _str(many[0], "ip"):
        status[single] = _str(many[0], "ip")


def set_defaults_pod(pod: Mapping[str, Any]) -> dict[str, Any]:  # noqa: C901
    """v1 defaulting of a Pod (what the API server applies right after decoding).

    Returns a new dict: ``restartPolicy: Always``, ``dnsPolicy: ClusterFirst``,
    ``terminationGracePeriodSeconds: 30``, ``schedulerName: default-scheduler``,
    ``securityContext: {}``, ``enableServiceLinks: true``; per container the image pull
    policy (``Always`` for ``:latest`` or untagged images, else ``IfNotPresent``),
    termination message path/policy, port protocol ``TCP`` (and hostPort = containerPort with
    hostNetwork), requests from limits, probe timings 1/10/1/3 and ``httpGet`` path ``/`` and
    scheme ``HTTP``; volumes without a source become ``emptyDir``.
    """
    out = copy.deepcopy(dict(pod))
    spec = out.get("spec")
    if not isinstance(spec, dict):
        spec = out["spec"] = {}
    # SetDefaults_PodSpec
    if not spec.get("dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    if not spec.get("restartPolicy"):
        spec["restartPolicy"] = "Always"
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS
    if not spec.get("schedulerName"):
        spec["schedulerName"] = DEFAULT_SCHEDULER_NAME
    # SetDefaults_Pod
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    all_containers = [c for key in ("initContainers", "containers", "ephemeralContainers")
                      for c in _list(spec, key) if isinstance(c, dict)]
    for c in all_containers:
        _default_container(c)
    for key in ("containers", "initContainers"):
        for c in _list(spec, key):
            if isinstance(c, dict):
                _default_requests_from_limits(c)
                if spec.get("hostNetwork"):
                    for port in _dicts(_list(c, "ports")):
                        if not port.get("hostPort") and "containerPort" in port:
                            port["hostPort"] = port["containerPort"]
    for vol in _list(spec, "volumes"):
        if not isinstance(vol, dict):
            continue
        if not any(vol.get(src) is not None for src, _ in _VOLUME_SOURCES):
            vol["emptyDir"] = {}  # SetDefaults_Volume
        for src in _DEFAULT_MODE_SOURCES:
            source = vol.get(src)
            if isinstance(source, dict) and source.get("defaultMode") is None:
                source["defaultMode"] = 0o644
        for token in _token_projections(vol):
            if token.get("expirationSeconds") is None:
                token["expirationSeconds"] = 3600  # SetDefaults_ServiceAccountTokenProjection
        host_path = vol.get("hostPath")
        if isinstance(host_path, dict) and host_path.get("type") is None:
            host_path["type"] = ""
    status = out.get("status")
    if isinstance(status, dict):
        _reconcile_ips(status, "podIP", "podIPs")
        _reconcile_ips(status, "hostIP", "hostIPs")
    return out


# =============================================================================================
# registry strategy: what happens between defaulting and validation


def prepare_pod_for_create(pod: Mapping[str, Any]) -> dict[str, Any]:
    """podStrategy.PrepareForCreate: status is reset to ``Pending`` with the QoS class."""
    out = copy.deepcopy(dict(pod))
    out["status"] = {"phase": "Pending", "qosClass": pod_qos_class(out)}
    return out


def prepare_pod_for_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """podStrategy.PrepareForUpdate: the main endpoint cannot change status."""
    out = copy.deepcopy(dict(new))
    out["status"] = copy.deepcopy(old.get("status") or {})
    return out


def prepare_pod_for_status_update(new: Mapping[str, Any],
                                  old: Mapping[str, Any]) -> dict[str, Any]:
    """podStatusStrategy.PrepareForUpdate: the status endpoint cannot change spec, owner
    references or the deletion timestamp; an emptied qosClass is backfilled."""
    out = copy.deepcopy(dict(new))
    out["spec"] = copy.deepcopy(old.get("spec") or {})
    meta = out.get("metadata")
    if not isinstance(meta, dict):
        meta = out["metadata"] = {}
    old_meta = _map(old, "metadata")
    for key in ("ownerReferences", "deletionTimestamp"):
        if key in old_meta:
            meta[key] = copy.deepcopy(old_meta[key])
        else:
            meta.pop(key, None)
    status = out.get("status")
    if not isinstance(status, dict):
        status = out["status"] = {}
    if not status.get("qosClass") and _str(_map(old, "status"), "qosClass"):
        status["qosClass"] = _str(_map(old, "status"), "qosClass")
    return out


# =============================================================================================
# validation: containers


def _validate_port_num_or_name(port: object, path: Path) -> list[FieldError]:
    """ValidatePortNumOrName (an IntOrString; absent is the integer 0)."""
    if isinstance(port, str):
        return [invalid(path, port, m) for m in is_valid_port_name(port)]
    num = port if isinstance(port, int) and not isinstance(port, bool) else 0
    return [invalid(path, num, m) for m in is_valid_port_num(num)]


def _validate_handler(handler: Mapping[str, Any], path: Path, grace: int | None,
                      *, lifecycle: bool) -> list[FieldError]:
    """validateHandler: exactly one of exec/httpGet/tcpSocket/grpc (probes) or
    exec/httpGet/tcpSocket/sleep (lifecycle hooks)."""
    kinds = ("exec", "httpGet", "tcpSocket", "sleep") if lifecycle else \
        ("exec", "httpGet", "tcpSocket", "grpc")
    errs: list[FieldError] = []
    count = 0
    for kind in kinds:
        if not _present(handler, kind):
            continue
        if count > 0:
            errs.append(forbidden(path.child(kind), "may not specify more than 1 handler type"))
            continue
        count += 1
        action = _map(handler, kind)
        p = path.child(kind)
        if kind == "exec":
            if not _list(action, "command"):
                errs.append(required(p.child("command")))
        elif kind == "httpGet":
            if not _str(action, "path"):
                errs.append(required(p.child("path")))
            errs.extend(_validate_port_num_or_name(action.get("port"), p.child("port")))
            scheme = _str(action, "scheme")
            if scheme not in SUPPORTED_HTTP_SCHEMES:
                errs.append(not_supported(p.child("scheme"), scheme, SUPPORTED_HTTP_SCHEMES))
            for header in _dicts(_list(action, "httpHeaders")):
                name = _str(header, "name")
                errs.extend(invalid(p.child("httpHeaders"), name, m)
                            for m in _is_http_header_name(name))
        elif kind == "tcpSocket":
            errs.extend(_validate_port_num_or_name(action.get("port"), p.child("port")))
        elif kind == "grpc":
            errs.extend(_validate_port_num_or_name(_int(action, "port"), p.child("port")))
        else:  # sleep; PodLifecycleSleepActionAllowZero is on in the v1.33 line
            seconds = _int(action, "seconds")
            if grace is not None and (seconds < 0 or seconds > grace):
                errs.append(invalid(p, seconds, "must be non-negative and less than "
                                                f"terminationGracePeriodSeconds ({grace})"))
    if count == 0:
        errs.append(required(path, "must specify a handler type"))
    return errs


def _validate_probe(probe: Mapping[str, Any], path: Path, grace: int | None,
                    kind: str) -> list[FieldError]:
    """validateProbe plus the liveness/readiness/startup specific rules."""
    errs = _validate_handler(probe, path, grace, lifecycle=False)
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                "failureThreshold"):
        errs.extend(_nonnegative(_int(probe, key), path.child(key)))
    tgps = probe.get("terminationGracePeriodSeconds")
    if isinstance(tgps, int) and tgps <= 0:
        errs.append(invalid(path.child("terminationGracePeriodSeconds"), tgps,
                            "must be greater than 0"))
    if kind in ("livenessProbe", "startupProbe") and _int(probe, "successThreshold") != 1:
        errs.append(invalid(path.child("successThreshold"), _int(probe, "successThreshold"),
                            "must be 1"))
    if kind == "readinessProbe" and probe.get("terminationGracePeriodSeconds") is not None:
        errs.append(invalid(path.child("terminationGracePeriodSeconds"),
                            probe.get("terminationGracePeriodSeconds"),
                            "must not be set for readinessProbes"))
    return errs


def _validate_probes_and_lifecycle(c: Mapping[str, Any], path: Path,
                                   grace: int | None) -> list[FieldError]:
    errs: list[FieldError] = []
    lifecycle = c.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            if _present(lifecycle, hook):
                errs.extend(_validate_handler(_map(lifecycle, hook),
                                              path.child("lifecycle", hook), grace,
                                              lifecycle=True))
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        if _present(c, kind):
            errs.extend(_validate_probe(_map(c, kind), path.child(kind), grace, kind))
    return errs


def _validate_container_ports(ports: Sequence[Any], path: Path) -> list[FieldError]:
    """validateContainerPorts."""
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(_dicts(ports)):
        p = path.index(i)
        name = _str(port, "name")
        if name:
            msgs = is_valid_port_name(name)
            if msgs:
                errs.extend(invalid(p.child("name"), name, m) for m in msgs)
            elif name in names:
                errs.append(duplicate(p.child("name"), name))
            else:
                names.add(name)
        container_port = _int(port, "containerPort")
        if container_port == 0:
            errs.append(required(p.child("containerPort")))
        else:
            errs.extend(invalid(p.child("containerPort"), container_port, m)
                        for m in is_valid_port_num(container_port))
        host_port = _int(port, "hostPort")
        if host_port != 0:
            errs.extend(invalid(p.child("hostPort"), host_port, m)
                        for m in is_valid_port_num(host_port))
        protocol = _str(port, "protocol")
        if not protocol:
            errs.append(required(p.child("protocol")))
        elif protocol not in SUPPORTED_PORT_PROTOCOLS:
            errs.append(not_supported(p.child("protocol"), protocol, SUPPORTED_PORT_PROTOCOLS))
    return errs


def _split_subscripted(field_path: str) -> tuple[str, str] | None:
    """fieldpath.SplitMaybeSubscriptedPath: ``metadata.labels['key']``."""
    if not field_path.endswith("']"):
        return None
    head, sep, sub = field_path[:-2].partition("['")
    if not sep or not head:
        return None
    return head, sub


def _validate_field_ref(ref: Mapping[str, Any], path: Path) -> list[FieldError]:
    """validateObjectFieldSelector with ConvertDownwardAPIFieldLabel's checks."""
    api_version = _str(ref, "apiVersion")
    field_path = _str(ref, "fieldPath")
    if not api_version:
        return [required(path.child("apiVersion"))]
    if not field_path:
        return [required(path.child("fieldPath"))]
    conversion_error = ""
    split = _split_subscripted(field_path)
    if api_version != "v1":
        conversion_error = f"unsupported pod version: {api_version}"
    elif split is not None:
        if split[0] not in ("metadata.annotations", "metadata.labels"):
            conversion_error = f"field label does not support subscript: {field_path}"
    elif field_path not in _DOWNWARD_API_LABELS and field_path != "spec.host":
        conversion_error = f"field label not supported: {field_path}"
    if conversion_error:
        return [invalid(path.child("fieldPath"), field_path,
                        f"error converting fieldPath: {conversion_error}")]
    if split is not None:
        head, sub = split
        key = sub.lower() if head == "metadata.annotations" else sub
        return validate_qualified_name(key, path)
    internal_path = "spec.nodeName" if field_path == "spec.host" else field_path
    if internal_path not in ENV_FIELD_PATHS:
        return [not_supported(path.child("fieldPath"), internal_path, ENV_FIELD_PATHS)]
    return []


def _validate_key_selector(sel: Mapping[str, Any], path: Path) -> list[FieldError]:
    """validateConfigMapKeySelector / validateSecretKeySelector."""
    name = _str(sel, "name")
    errs = _validate_name(name, path.child("name"))
    key = _str(sel, "key")
    if not key:
        errs.append(required(path.child("key")))
    else:
        errs.extend(invalid(path.child("key"), key, m) for m in is_config_map_key(key))
    return errs


def _validate_env(env: Sequence[Any], path: Path,
                  opts: PodValidationOptions) -> list[FieldError]:
    """ValidateEnv, including validateEnvVarValueFrom."""
    errs: list[FieldError] = []
    name_check = is_relaxed_env_var_name if opts.allow_relaxed_env_var_names \
        else is_env_var_name
    for i, ev in enumerate(_dicts(env)):
        p = path.index(i)
        name = _str(ev, "name")
        if not name:
            errs.append(required(p.child("name")))
        else:
            errs.extend(invalid(p.child("name"), name, m) for m in name_check(name))
        if not _present(ev, "valueFrom"):
            continue
        vf = _map(ev, "valueFrom")
        vp = p.child("valueFrom")
        sources = 0
        if _present(vf, "fieldRef"):
            sources += 1
            errs.extend(_validate_field_ref(_map(vf, "fieldRef"), vp.child("fieldRef")))
        if _present(vf, "resourceFieldRef"):
            sources += 1
            rf = _map(vf, "resourceFieldRef")
            resource = _str(rf, "resource")
            rp = vp.child("resourceFieldRef")
            if not resource:
                errs.append(required(rp.child("resource")))
            elif resource not in RESOURCE_FIELD_PATHS and not resource.startswith(
                    _RESOURCE_FIELD_PREFIXES):
                errs.append(not_supported(rp.child("resource"), resource,
                                          RESOURCE_FIELD_PATHS))
        if _present(vf, "configMapKeyRef"):
            sources += 1
            errs.extend(_validate_key_selector(_map(vf, "configMapKeyRef"),
                                               vp.child("configMapKeyRef")))
        if _present(vf, "secretKeyRef"):
            sources += 1
            errs.extend(_validate_key_selector(_map(vf, "secretKeyRef"),
                                               vp.child("secretKeyRef")))
        if sources == 0:
            errs.append(invalid(vp, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                        "`configMapKeyRef` or `secretKeyRef`"))
        elif _str(ev, "value"):
            errs.append(invalid(vp, "", "may not be specified when `value` is not empty"))
        elif sources > 1:
            errs.append(invalid(vp, "", "may not have more than one field specified at a time"))
    return errs


def _validate_env_from(env_from: Sequence[Any], path: Path,
                       opts: PodValidationOptions) -> list[FieldError]:
    """ValidateEnvFrom (note upstream's quirk: the source-count errors use the list path)."""
    errs: list[FieldError] = []
    name_check = is_relaxed_env_var_name if opts.allow_relaxed_env_var_names \
        else is_env_var_name
    for i, ef in enumerate(_dicts(env_from)):
        p = path.index(i)
        prefix = _str(ef, "prefix")
        if prefix:
            errs.extend(invalid(p.child("prefix"), prefix, m) for m in name_check(prefix))
        sources = 0
        for key in ("configMapRef", "secretRef"):
            if not _present(ef, key):
                continue
            sources += 1
            name = _str(_map(ef, key), "name")
            if not name:
                errs.append(required(p.child(key, "name")))
            else:
                errs.extend(_validate_name(name, p.child(key, "name"), prefix=True))
        if sources == 0:
            errs.append(invalid(path, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif sources > 1:
            errs.append(invalid(path, "", "may not have more than one field specified at a "
                                          "time"))
    return errs


def _validate_volume_mounts(mounts: Sequence[Any], volumes: set[str],
                            path: Path) -> list[FieldError]:
    """ValidateVolumeMounts, the part that does not depend on volume sources."""
    errs: list[FieldError] = []
    mount_points: set[str] = set()
    for i, mnt in enumerate(_dicts(mounts)):
        p = path.index(i)
        name = _str(mnt, "name")
        mount_path = _str(mnt, "mountPath")
        if not name:
            errs.append(required(p.child("name")))
        if name not in volumes:
            errs.append(_not_found(p.child("name"), name))
        if not mount_path:
            errs.append(required(p.child("mountPath")))
        if mount_path in mount_points:
            errs.append(invalid(p.child("mountPath"), mount_path, "must be unique"))
        mount_points.add(mount_path)
    return errs


def _validate_container_common(c: Mapping[str, Any], path: Path, volumes: set[str],
                               opts: PodValidationOptions) -> list[FieldError]:
    """validateContainerCommon (subset)."""
    errs: list[FieldError] = []
    name = _str(c, "name")
    if not name:
        errs.append(required(path.child("name")))
    else:
        errs.extend(validate_dns1123_label(name, path.child("name")))
    if not _str(c, "image"):
        errs.append(required(path.child("image")))
    policy = _str(c, "terminationMessagePolicy")
    if not policy:
        errs.append(required(path.child("terminationMessagePolicy")))
    elif policy not in TERMINATION_MESSAGE_POLICIES:
        errs.append(not_supported(path.child("terminationMessagePolicy"), policy,
                                  TERMINATION_MESSAGE_POLICIES))
    errs.extend(_validate_container_ports(_list(c, "ports"), path.child("ports")))
    errs.extend(_validate_env(_list(c, "env"), path.child("env"), opts))
    errs.extend(_validate_env_from(_list(c, "envFrom"), path.child("envFrom"), opts))
    errs.extend(_validate_volume_mounts(_list(c, "volumeMounts"), volumes,
                                        path.child("volumeMounts")))
    pull = _str(c, "imagePullPolicy")
    if not pull:
        errs.append(required(path.child("imagePullPolicy")))
    elif pull not in SUPPORTED_PULL_POLICIES:
        errs.append(not_supported(path.child("imagePullPolicy"), pull, SUPPORTED_PULL_POLICIES))
    return errs


def _check_host_port_conflicts(containers: Sequence[Mapping[str, Any]],
                               path: Path) -> list[FieldError]:
    """AccumulateUniqueHostPorts: protocol/hostIP/hostPort must be unique."""
    errs: list[FieldError] = []
    seen: set[str] = set()
    for ci, c in enumerate(containers):
        for pi, port in enumerate(_dicts(_list(c, "ports"))):
            host_port = _int(port, "hostPort")
            if host_port == 0:
                continue
            key = f"{_str(port, 'protocol')}/{_str(port, 'hostIP')}/{host_port}"
            if key in seen:
                errs.append(duplicate(path.index(ci).child("ports").index(pi).child("hostPort"),
                                      key))
            else:
                seen.add(key)
    return errs


def _validate_containers(containers: list[dict[str, Any]], path: Path, volumes: set[str],
                         grace: int | None, opts: PodValidationOptions) -> list[FieldError]:
    """validateContainers."""
    if not containers:
        return [required(path)]
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, c in enumerate(containers):
        p = path.index(i)
        errs.extend(_validate_container_common(c, p, volumes, opts))
        name = _str(c, "name")
        if name in names:
            errs.append(duplicate(p.child("name"), name))
        else:
            names.add(name)
        errs.extend(_validate_probes_and_lifecycle(c, p, grace))
        if _present(c, "restartPolicy"):
            errs.append(forbidden(p.child("restartPolicy"),
                                  "may not be set for non-init containers"))
    errs.extend(_check_host_port_conflicts(containers, path))
    return errs


def _validate_init_containers(inits: list[dict[str, Any]], regular: list[dict[str, Any]],
                              path: Path, *, volumes: set[str], grace: int | None,
                              opts: PodValidationOptions) -> list[FieldError]:
    """validateInitContainers: names unique across init and regular containers; probes and
    lifecycle only for restartable ("sidecar") init containers."""
    errs: list[FieldError] = []
    names = {_str(c, "name") for c in regular}
    for i, c in enumerate(inits):
        p = path.index(i)
        errs.extend(_validate_container_common(c, p, volumes, opts))
        restart_always = False
        if _present(c, "restartPolicy"):
            policy = _str(c, "restartPolicy")
            if policy != "Always":
                errs.append(not_supported(p.child("restartPolicy"), policy, ["Always"]))
            restart_always = policy == "Always"
        name = _str(c, "name")
        if name in names:
            errs.append(duplicate(p.child("name"), name))
        elif name:
            names.add(name)
        # Init containers run one by one, so host ports are checked per container.
        errs.extend(_check_host_port_conflicts([c], path))
        if restart_always:
            errs.extend(_validate_probes_and_lifecycle(c, p, grace))
        else:
            for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if _present(c, key):
                    errs.append(forbidden(p.child(key), "may not be set for init containers "
                                                        "without restartPolicy=Always"))
    return errs


# =============================================================================================
# validation: pod spec


def validate_taint_effect(effect: str, allow_empty: bool, path: PathLike) -> list[FieldError]:
    """validateTaintEffect."""
    if not allow_empty and not effect:
        return [required(path)]
    if effect not in TAINT_EFFECTS:
        return [not_supported(path, effect, TAINT_EFFECTS)]
    return []


def validate_preemption_policy(policy: str, path: Path) -> list[FieldError]:
    """ValidatePreemptionPolicy (a set pointer): ``PreemptLowerPriority`` or ``Never``; an
    empty one is a Required value. Pods and PriorityClasses share it."""
    if not policy:
        return [required(path)]
    if policy not in PREEMPTION_POLICIES:
        return [not_supported(path, policy, PREEMPTION_POLICIES)]
    return []


def validate_tolerations(tolerations: Sequence[Any], path: Path) -> list[FieldError]:
    """ValidateTolerations."""
    errs: list[FieldError] = []
    for i, t in enumerate(_dicts(tolerations)):
        p = path.index(i)
        key, op, value, effect = (_str(t, "key"), _str(t, "operator"), _str(t, "value"),
                                  _str(t, "effect"))
        if key:
            errs.extend(validate_qualified_name(key, p.child("key")))
        if not key and op != "Exists":
            errs.append(invalid(p.child("operator"), op,
                                "operator must be Exists when `key` is empty, which means "
                                "\"match all values and all keys\""))
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(invalid(p.child("effect"), effect,
                                "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if op in ("Equal", ""):
            msgs = is_valid_label_value(value)
            if msgs:
                errs.append(invalid(p.child("operator"), value, ";".join(msgs)))
        elif op == "Exists":
            if value:
                errs.append(invalid(p.child("operator"), value,
                                    "value must be empty when `operator` is 'Exists'"))
        else:
            errs.append(not_supported(p.child("operator"), op, TOLERATION_OPERATORS))
        if effect:
            errs.extend(validate_taint_effect(effect, True, p.child("effect")))
    return errs


def _validate_volumes(volumes: Sequence[Any], path: Path) -> tuple[set[str], list[FieldError]]:
    """ValidateVolumes without the per-source checks: names, and exactly one source.

    Returns the names of the volumes that validated (only those can be mounted).
    """
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, vol in enumerate(_dicts(volumes)):
        p = path.index(i)
        el: list[FieldError] = []
        count = 0
        for src, child in _VOLUME_SOURCES:
            if vol.get(src) is None:
                continue
            if count > 0:
                el.append(forbidden(p.child(child), "may not specify more than 1 volume type"))
            else:
                count += 1
        if count == 0:
            el.append(required(p, "must specify a volume type"))
        name = _str(vol, "name")
        if not name:
            el.append(required(p.child("name")))
        else:
            el.extend(validate_dns1123_label(name, p.child("name")))
        if name in names:
            el.append(duplicate(p.child("name"), name))
        if el:
            errs.extend(el)
        else:
            names.add(name)
    return names, errs


def _token_projections(volume: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``serviceAccountToken`` sources of a projected volume."""
    return [t for src in _dicts(_list(_map(volume, "projected"), "sources"))
            if isinstance(t := src.get("serviceAccountToken"), dict)]


def _validate_token_projections(volumes: Sequence[Any], path: Path) -> list[FieldError]:
    """validateProjectionSources' ``serviceAccountToken`` checks, with upstream's field paths
    (a missing ``path`` is reported on the projected volume's own ``path``)."""
    errs: list[FieldError] = []
    for i, vol in enumerate(_dicts(volumes)):
        projected = path.index(i).child("projected")
        for j, src in enumerate(_dicts(_list(_map(vol, "projected"), "sources"))):
            token = src.get("serviceAccountToken")
            if not isinstance(token, dict):
                continue
            where = projected.child("sources").index(j).child("serviceAccountToken")
            seconds = _int(token, "expirationSeconds")
            if seconds < 600:
                errs.append(invalid(where.child("expirationSeconds"), seconds,
                                    "may not specify a duration less than 10 minutes"))
            if seconds > 1 << 32:
                errs.append(invalid(where.child("expirationSeconds"), seconds,
                                    "may not specify a duration larger than 2^32 seconds"))
            target = _str(token, "path")
            if not target:
                errs.append(required(projected.child("path")))
            else:
                errs.extend(_local_non_reserved_path(target, projected.child("path")))
    return errs


def _local_non_reserved_path(target: str, path: PathLike) -> list[FieldError]:
    """ValidateLocalNonReservedPath."""
    errs = []
    if target.startswith("/"):
        errs.append(invalid(path, target, "must be a relative path"))
    if ".." in target.split("/"):
        errs.append(invalid(path, target, "must not contain '..'"))
    if target.startswith("..") and not target.startswith("../"):
        errs.append(invalid(path, target, "must not start with '..'"))
    return errs


def _validate_dns_config(spec: Mapping[str, Any], path: Path) -> list[FieldError]:
    """validatePodDNSConfig."""
    policy = _str(spec, "dnsPolicy")
    has_config = _present(spec, "dnsConfig")
    cfg = _map(spec, "dnsConfig")
    if policy == "None":
        if not has_config:
            return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not _list(cfg, "nameservers"):
            return [required(path.child("nameservers"),
                             "must provide at least one DNS nameserver when `dnsPolicy` is None")]
    if not has_config:
        return []
    errs: list[FieldError] = []
    nameservers = [n for n in _list(cfg, "nameservers") if isinstance(n, str)]
    if len(nameservers) > MAX_DNS_NAMESERVERS:
        errs.append(invalid(path.child("nameservers"), nameservers,
                            f"must not have more than {MAX_DNS_NAMESERVERS} nameservers"))
    for i, ns in enumerate(nameservers):
        errs.extend(_validate_ip(ns, path.child("nameservers").index(i)))
    searches = [s for s in _list(cfg, "searches") if isinstance(s, str)]
    if len(searches) > MAX_DNS_SEARCH_PATHS:
        errs.append(invalid(path.child("searches"), searches,
                            f"must not have more than {MAX_DNS_SEARCH_PATHS} search paths"))
    if len(" ".join(searches).encode()) > MAX_DNS_SEARCH_LIST_CHARS:
        errs.append(invalid(path.child("searches"), searches,
                            f"must not have more than {MAX_DNS_SEARCH_LIST_CHARS} characters "
                            "(including spaces) in the search list"))
    for i, search in enumerate(searches):
        trimmed = search[:-1] if search.endswith(".") else search
        errs.extend(validate_dns1123_subdomain(trimmed, path.child("searches").index(i)))
    for i, option in enumerate(_dicts(_list(cfg, "options"))):
        if not _str(option, "name"):
            errs.append(required(path.child("options").index(i), "must not be empty"))
    return errs


def validate_pod_spec(spec: Mapping[str, Any], path: Path,  # noqa: C901 (mirrors ValidatePodSpec)
                       opts: PodValidationOptions) -> list[FieldError]:
    """ValidatePodSpec (subset), in upstream's order."""
    errs: list[FieldError] = []
    grace_raw = spec.get("terminationGracePeriodSeconds")
    if grace_raw is None:
        errs.append(required(path.child("terminationGracePeriodSeconds")))
    grace = grace_raw if isinstance(grace_raw, int) else None

    volumes, vol_errs = _validate_volumes(_list(spec, "volumes"), path.child("volumes"))
    errs.extend(vol_errs)
    errs.extend(_validate_token_projections(_list(spec, "volumes"), path.child("volumes")))
    containers = _dicts(_list(spec, "containers"))
    inits = _dicts(_list(spec, "initContainers"))
    errs.extend(_validate_containers(containers, path.child("containers"), volumes, grace, opts))
    errs.extend(_validate_init_containers(inits, containers, path.child("initContainers"),
                                          volumes=volumes, grace=grace, opts=opts))

    # validatePodHostNetworkDeps (ResourceIsPod): hostPort must equal containerPort.
    if spec.get("hostNetwork") is True:
        for i, c in enumerate(containers):
            for j, port in enumerate(_dicts(_list(c, "ports"))):
                if _int(port, "hostPort") != _int(port, "containerPort"):
                    errs.append(invalid(
                        path.child("containers").index(i).child("ports").index(j)
                        .child("hostPort"), _int(port, "hostPort"),
                        "must match `containerPort` when `hostNetwork` is true"))

    restart = _str(spec, "restartPolicy")
    if not restart:
        errs.append(required(path.child("restartPolicy")))
    elif restart not in RESTART_POLICIES:
        errs.append(not_supported(path.child("restartPolicy"), restart, RESTART_POLICIES))
    dns = _str(spec, "dnsPolicy")
    if not dns:
        errs.append(required(path.child("dnsPolicy")))
    elif dns not in DNS_POLICIES:
        errs.append(not_supported(path.child("dnsPolicy"), dns, DNS_POLICIES))
    errs.extend(validate_labels(_map(spec, "nodeSelector"), path.child("nodeSelector")))
    errs.extend(_validate_dns_config(spec, path.child("dnsConfig")))
    for i, gate in enumerate(_dicts(_list(spec, "readinessGates"))):
        errs.extend(validate_qualified_name(_str(gate, "conditionType"),
                                            path.child("readinessGates").index(i)
                                            .child("conditionType")))
    seen_gates: set[str] = set()
    for i, gate in enumerate(_dicts(_list(spec, "schedulingGates"))):
        gp = path.child("schedulingGates").index(i)
        gate_name = _str(gate, "name")
        errs.extend(validate_qualified_name(gate_name, gp))
        if gate_name in seen_gates:
            errs.append(duplicate(gp, gate_name))
        seen_gates.add(gate_name)

    service_account = _str(spec, "serviceAccountName")
    if service_account:
        errs.extend(_validate_name(service_account, path.child("serviceAccountName")))
    node_name = _str(spec, "nodeName")
    if node_name:
        errs.extend(_validate_name(node_name, path.child("nodeName")))
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and not 1 <= deadline <= MAX_INT32:
        errs.append(invalid(path.child("activeDeadlineSeconds"), deadline,
                            inclusive_range_error(1, MAX_INT32)))
    hostname = _str(spec, "hostname")
    if hostname:
        errs.extend(validate_dns1123_label(hostname, path.child("hostname")))
    subdomain = _str(spec, "subdomain")
    if subdomain:
        errs.extend(validate_dns1123_label(subdomain, path.child("subdomain")))
    errs.extend(validate_tolerations(_list(spec, "tolerations"), path.child("tolerations")))
    for i, alias in enumerate(_dicts(_list(spec, "hostAliases"))):
        ap = path.child("hostAliases").index(i)
        errs.extend(_validate_ip(_str(alias, "ip"), ap.child("ip")))
        for j, host in enumerate(_list(alias, "hostnames")):
            errs.extend(validate_dns1123_subdomain(host if isinstance(host, str) else "",
                                                   ap.child("hostnames").index(j)))
    priority_class = _str(spec, "priorityClassName")
    if priority_class:
        errs.extend(_validate_name(priority_class, path.child("priorityClassName")))
    if _present(spec, "runtimeClassName"):  # ValidateRuntimeClassName
        errs.extend(_validate_name(_str(spec, "runtimeClassName"),
                                   path.child("runtimeClassName")))
    if _present(spec, "preemptionPolicy"):
        errs.extend(validate_preemption_policy(_str(spec, "preemptionPolicy"),
                                               path.child("preemptionPolicy")))
    if _present(spec, "overhead"):
        errs.extend(validate_overhead(_map(spec, "overhead"), path.child("overhead")))
    return errs


def _valid_first_digit(value: str) -> bool:
    if not value:
        return False
    return value[0] == "-" or value == "0" or "1" <= value[0] <= "9"


def _deletion_cost_valid(annotations: Mapping[str, Any]) -> bool:
    """helper.GetDeletionCostFromPodAnnotations succeeds (absent counts as valid)."""
    if POD_DELETION_COST_ANNOTATION not in annotations:
        return True
    value = annotations[POD_DELETION_COST_ANNOTATION]
    if not isinstance(value, str) or not _valid_first_digit(value):
        return False
    if not re.fullmatch(r"[+-]?[0-9]+", value):
        return False
    return -(2**31) <= int(value) <= MAX_INT32


def validate_pod_specific_annotations(annotations: Mapping[str, Any], spec: Mapping[str, Any],
                                       path: Path,
                                       opts: PodValidationOptions) -> list[FieldError]:
    """ValidatePodSpecificAnnotations (mirror pod and deletion cost parts)."""
    errs: list[FieldError] = []
    if MIRROR_POD_ANNOTATION in annotations and not _str(spec, "nodeName"):
        errs.append(invalid(path.key(MIRROR_POD_ANNOTATION), annotations[MIRROR_POD_ANNOTATION],
                            "must set spec.nodeName if mirror pod annotation is set"))
    if not opts.allow_invalid_pod_deletion_cost and not _deletion_cost_valid(annotations):
        errs.append(invalid(path.key(POD_DELETION_COST_ANNOTATION),
                            annotations.get(POD_DELETION_COST_ANNOTATION),
                            "must be a 32bit integer"))
    return errs


def _validate_pod_metadata_and_spec(pod: Mapping[str, Any],
                                    opts: PodValidationOptions) -> list[FieldError]:
    """validatePodMetadataAndSpec."""
    meta_path, spec_path = Path("metadata"), Path("spec")
    meta = _map(pod, "metadata")
    spec = _map(pod, "spec")
    errs = validate_object_meta(meta, requires_namespace=True, name_fn=name_is_dns_subdomain,
                                path=meta_path)
    errs.extend(validate_pod_specific_annotations(_map(meta, "annotations"), spec,
                                                   meta_path.child("annotations"), opts))
    errs.extend(validate_pod_spec(spec, spec_path, opts))
    # validateContainersOnlyForPod: images may not carry surrounding whitespace.
    for key in ("containers", "initContainers"):
        for i, c in enumerate(_dicts(_list(spec, key))):
            image = _str(c, "image")
            if image != image.strip():
                errs.append(invalid(spec_path.child(key).index(i).child("image"), image,
                                    "must not have leading or trailing whitespace"))
    return errs


def validate_pod(pod: Mapping[str, Any],
                 opts: PodValidationOptions | None = None) -> list[FieldError]:
    """ValidatePodCreate: every error, in upstream's order (call after defaulting)."""
    opts = opts or PodValidationOptions()
    errs = _validate_pod_metadata_and_spec(pod, opts)
    spec = _map(pod, "spec")
    if _list(spec, "ephemeralContainers"):
        errs.append(forbidden(Path("spec", "ephemeralContainers"), "cannot be set on create"))
    if _str(spec, "nodeName") and _list(spec, "schedulingGates"):
        errs.append(forbidden(Path("spec", "nodeName"),
                              "cannot be set until all schedulingGates have been cleared"))
    return errs


# =============================================================================================
# validation: updates


def _zeroish(value: object) -> bool:
    # False == 0 in Python, so booleans are covered too.
    return value is None or value in (0, "", [], {})


def _normalize(value: Any) -> Any:
    """Make two JSON values compare like apiequality.Semantic.DeepEqual compares the structs:
    an absent field, null, and the zero value are the same (nil and empty lists/maps too)."""
    if isinstance(value, dict):
        return {k: n for k, v in value.items() if not _zeroish(n := _normalize(v))}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _diff(old: Any, new: Any, path: str, out: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(old.keys() | new.keys()):
            _diff(old.get(k), new.get(k), f"{path}.{k}" if path else k, out)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _diff(a, b, f"{path}[{i}]", out)
    elif old != new:
        out.append(f"- {path}: {_render(old)}")
        out.append(f"+ {path}: {_render(new)}")


def _render(value: Any) -> str:
    return "<unset>" if value is None else json.dumps(value, sort_keys=True)


def _spec_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """A readable diff of the two specs (upstream prints go-cmp's diff of the Go structs;
    this is the same information in a different layout)."""
    lines: list[str] = []
    _diff(_normalize(dict(old)), _normalize(dict(new)), "", lines)
    return "\n".join(lines)


def _validate_container_updates(new: list[dict[str, Any]], old: list[dict[str, Any]],
                                path: Path) -> tuple[list[FieldError], bool]:
    """ValidateContainerUpdates: same number of containers, each with a non-blank image."""
    if len(new) != len(old):
        return [forbidden(path, "pod updates may not add or remove containers")], True
    errs: list[FieldError] = []
    for i, c in enumerate(new):
        image = _str(c, "image")
        if not image:
            errs.append(required(path.index(i).child("image")))
        if image != image.strip():
            errs.append(invalid(path.index(i).child("image"), image,
                                "must not have leading or trailing whitespace"))
    return errs, False


def _validate_only_added_tolerations(new: list[dict[str, Any]], old: list[dict[str, Any]],
                                     path: Path) -> list[FieldError]:
    """validateOnlyAddedTolerations: existing tolerations stay, except tolerationSeconds."""
    for o in old:
        base = _normalize({k: v for k, v in o.items() if k != "tolerationSeconds"})
        if not any(_normalize({k: v for k, v in n.items() if k != "tolerationSeconds"}) == base
                   for n in new):
            return [forbidden(path, "existing toleration can not be modified except its "
                                    "tolerationSeconds")]
    return validate_tolerations(new, path)


def _validate_only_deleted_scheduling_gates(new: list[dict[str, Any]],
                                            old: list[dict[str, Any]],
                                            path: Path) -> list[FieldError]:
    if not new:
        return []
    old_names = {_str(g, "name") for g in old}
    additions: dict[str, int] = {}
    for i, g in enumerate(new):
        additions[_str(g, "name")] = i
    return [forbidden(path.index(i).child("name"),
                      f"only deletion is allowed, but found new scheduling gate '{name}'")
            for name, i in additions.items() if name not in old_names]


def _uses_relaxed_env_names(pod: Mapping[str, Any]) -> bool:
    spec = _map(pod, "spec")
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for c in _dicts(_list(spec, key)):
            names = [_str(e, "name") for e in _dicts(_list(c, "env"))]
            names += [_str(e, "prefix") for e in _dicts(_list(c, "envFrom"))]
            if any(n and is_env_var_name(n) for n in names):
                return True
    return False


def _update_options(old: Mapping[str, Any], opts: PodValidationOptions | None,
                    ) -> PodValidationOptions:
    """The options upstream derives from the old pod (keep what was already accepted)."""
    opts = opts or PodValidationOptions()
    old_annotations = _map(_map(old, "metadata"), "annotations")
    return PodValidationOptions(
        allow_relaxed_env_var_names=opts.allow_relaxed_env_var_names
        or _uses_relaxed_env_names(old),
        allow_invalid_pod_deletion_cost=opts.allow_invalid_pod_deletion_cost
        or not _deletion_cost_valid(old_annotations),
    )


def _validate_pod_specific_annotation_updates(new: Mapping[str, Any], old: Mapping[str, Any],
                                              path: Path,
                                              opts: PodValidationOptions) -> list[FieldError]:
    """ValidatePodSpecificAnnotationUpdates (mirror-pod part; it re-runs the create checks,
    so their errors appear twice in an update response, exactly as upstream)."""
    errs: list[FieldError] = []
    new_ann = _map(_map(new, "metadata"), "annotations")
    old_ann = _map(_map(old, "metadata"), "annotations")
    if MIRROR_POD_ANNOTATION in old_ann and new_ann.get(MIRROR_POD_ANNOTATION) != \
            old_ann[MIRROR_POD_ANNOTATION]:
        errs.append(forbidden(path.key(MIRROR_POD_ANNOTATION),
                              "may not remove or update mirror pod annotation"))
    if MIRROR_POD_ANNOTATION in new_ann and MIRROR_POD_ANNOTATION not in old_ann:
        errs.append(forbidden(path.key(MIRROR_POD_ANNOTATION), "may not add mirror pod annotation"))
    errs.extend(validate_pod_specific_annotations(new_ann, _map(new, "spec"), path, opts))
    return errs


def validate_pod_update(new: Mapping[str, Any], old: Mapping[str, Any],  # noqa: C901
                        opts: PodValidationOptions | None = None) -> list[FieldError]:
    """ValidatePodUpdate: metadata rules, the full pod validation of ``new``, then the spec
    immutability rule.

    Only these spec changes are allowed: container and init container images, lowering (or
    setting) ``activeDeadlineSeconds``, adding tolerations (or changing an existing one's
    ``tolerationSeconds``), removing scheduling gates, setting ``terminationGracePeriodSeconds``
    to 1 when it was negative, and adding ``nodeSelector`` entries while the pod is gated.
    Anything else is one Forbidden error on ``spec`` ("pod updates may not change fields other
    than ...") followed by a diff.
    """
    opts = _update_options(old, opts)
    meta_path, spec_path = Path("metadata"), Path("spec")
    errs = validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"), meta_path)
    errs.extend(_validate_pod_metadata_and_spec(new, opts))
    errs.extend(_validate_pod_specific_annotation_updates(new, old,
                                                          meta_path.child("annotations"), opts))
    new_spec, old_spec = _map(new, "spec"), _map(old, "spec")

    for key in ("containers", "initContainers"):
        c_errs, stop = _validate_container_updates(_dicts(_list(new_spec, key)),
                                                   _dicts(_list(old_spec, key)),
                                                   spec_path.child(key))
        errs.extend(c_errs)
        if stop:
            return errs

    new_deadline = new_spec.get("activeDeadlineSeconds")
    old_deadline = old_spec.get("activeDeadlineSeconds")
    if isinstance(new_deadline, int):
        if not 0 <= new_deadline <= MAX_INT32:
            errs.append(invalid(spec_path.child("activeDeadlineSeconds"), new_deadline,
                                inclusive_range_error(0, MAX_INT32)))
            return errs
        if isinstance(old_deadline, int) and old_deadline < new_deadline:
            errs.append(invalid(spec_path.child("activeDeadlineSeconds"), new_deadline,
                                "must be less than or equal to previous value"))
            return errs
    elif old_deadline is not None:
        errs.append(invalid(spec_path.child("activeDeadlineSeconds"), None,
                            "must not update from a positive integer to nil value"))

    errs.extend(_validate_only_added_tolerations(_dicts(_list(new_spec, "tolerations")),
                                                 _dicts(_list(old_spec, "tolerations")),
                                                 spec_path.child("tolerations")))
    errs.extend(_validate_only_deleted_scheduling_gates(
        _dicts(_list(new_spec, "schedulingGates")), _dicts(_list(old_spec, "schedulingGates")),
        spec_path.child("schedulingGates")))

    if _normalize(new_spec) == _normalize(old_spec):
        return errs

    # Overwrite every field that may change with its old value, then compare what is left.
    munged = copy.deepcopy(new_spec)
    for key in ("containers", "initContainers"):
        for c, o in zip(_dicts(_list(munged, key)), _dicts(_list(old_spec, key)), strict=False):
            if "image" in o:
                c["image"] = o["image"]
            else:
                c.pop("image", None)
    for key in ("activeDeadlineSeconds", "schedulingGates", "tolerations"):
        if key in old_spec:
            munged[key] = copy.deepcopy(old_spec[key])
        else:
            munged.pop(key, None)
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    if isinstance(old_grace, int) and old_grace < 0 and \
            munged.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    if _list(old_spec, "schedulingGates"):
        # A gated pod may gain nodeSelector entries (no changes or removals).
        new_sel, old_sel = _map(munged, "nodeSelector"), _map(old_spec, "nodeSelector")
        if _normalize(new_sel) != _normalize(old_sel):
            if any(new_sel.get(k) != v for k, v in old_sel.items()):
                errs.append(invalid(spec_path.child("nodeSelector"), new_sel,
                                    "only additions to spec.nodeSelector are allowed (no "
                                    "mutations or deletions)"))
            if "nodeSelector" in old_spec:
                munged["nodeSelector"] = copy.deepcopy(old_spec["nodeSelector"])
            else:
                munged.pop("nodeSelector", None)

    if _normalize(munged) != _normalize(old_spec):
        errs.append(forbidden(
            spec_path,
            "pod updates may not change fields other than "
            f"{','.join(UPDATABLE_POD_SPEC_FIELDS)}\n{_spec_diff(old_spec, munged)}"))
    return errs


def _validate_pod_ips(status: Mapping[str, Any], single: str, plural: str,
                      ) -> list[FieldError]:
    """validatePodIPs / validateHostIPs: valid, at most one per family, no duplicates."""
    errs: list[FieldError] = []
    path = Path("status", plural)
    entries = _dicts(_list(status, plural))
    ips = [_str(e, "ip") for e in entries]
    if plural == "hostIPs":
        if not entries:
            return errs
        if _str(status, single) != ips[0]:
            errs.append(invalid(path.index(0).child("ip"), ips[0], "must be equal to `hostIP`"))
    for i, ip in enumerate(ips):
        errs.extend(_validate_ip(ip, path.index(i)))
    if len(ips) <= 1:
        return errs
    # netutils.IsDualStackIPStrings (an unparsable entry is an error, not just "not dual").
    dual_error = ""
    v4 = v6 = False
    for i, ip in enumerate(ips):
        ip_obj = parse_ip_sloppy(ip)
        if ip_obj is None:
            dual_error = f"invalid IP[{i}]: {ip}"
            break
        if ip_obj.version == 6 and getattr(ip_obj, "ipv4_mapped", None) is None:
            v6 = True
        else:
            v4 = True
    dual_stack = not dual_error and v4 and v6
    # The values print as Go's %#v of the core.PodIP / core.HostIP structs.
    go_type = "core.PodIP" if plural == "podIPs" else "core.HostIP"
    rendered = [f"{go_type}{{IP:{go_quote(ip)}}}" for ip in ips]
    seen: set[str] = set()
    dup_errs: list[FieldError] = []
    for i, ip in enumerate(ips):
        if ip in seen:
            dup_errs.append(duplicate(path.index(i), GoRaw(rendered[i])))
        seen.add(ip)
    if plural == "hostIPs":  # upstream checks duplicates first for hostIPs
        errs.extend(dup_errs)
    if dual_error:
        errs.append(internal(path, f"failed to check for dual stack with error:{dual_error}"))
    if not dual_stack or len(ips) > 2:
        errs.append(invalid(path, GoRaw(f"[]{go_type}{{{', '.join(rendered)}}}"),
                            "may specify no more than one IP for each IP family"))
    if plural == "podIPs":
        errs.extend(dup_errs)
    return errs


def _container_state_transitions(new: list[dict[str, Any]], old: list[dict[str, Any]],
                                 path: Path, restart_policy: str,
                                 restartable: frozenset[str] = frozenset(),
                                 ) -> list[FieldError]:
    """ValidateContainerStateTransition: unless the pod restarts containers, a terminated
    container may not become non-terminated."""
    errs: list[FieldError] = []
    if restart_policy == "Always":
        return errs
    for i, o in enumerate(old):
        terminated = _map(o, "state").get("terminated")
        if not isinstance(terminated, dict):
            continue
        if _int(terminated, "exitCode") != 0 and restart_policy == "OnFailure":
            continue
        if _str(o, "name") in restartable:
            continue
        for n in new:
            if _str(n, "name") == _str(o, "name") and \
                    not isinstance(_map(n, "state").get("terminated"), dict):
                errs.append(forbidden(path.index(i).child("state"),
                                      "may not be transitioned to non-terminated state"))
    return errs


def validate_pod_status_update(new: Mapping[str, Any], old: Mapping[str, Any],
                               opts: PodValidationOptions | None = None) -> list[FieldError]:
    """ValidatePodStatusUpdate (the ``pods/status`` endpoint).

    Upstream validates neither ``phase`` values nor condition statuses; it checks custom
    condition types, node name changes, QoS immutability, container state transitions and
    the pod/host IP lists.
    """
    opts = _update_options(old, opts)
    meta_path = Path("metadata")
    errs = validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"), meta_path)
    errs.extend(_validate_pod_specific_annotation_updates(new, old,
                                                          meta_path.child("annotations"), opts))
    new_status, old_status = _map(new, "status"), _map(old, "status")
    new_spec, old_spec = _map(new, "spec"), _map(old, "spec")
    # Upstream reports custom condition types under "metadata.conditions[i].Type" (sic).
    for i, cond in enumerate(_dicts(_list(new_status, "conditions"))):
        ctype = _str(cond, "type")
        if ctype not in SYSTEM_POD_CONDITIONS:
            errs.extend(validate_qualified_name(
                ctype, meta_path.child("conditions").index(i).child("Type")))
    status_path = Path("status")
    if _str(new_spec, "nodeName") != _str(old_spec, "nodeName"):
        errs.append(forbidden(status_path.child("nodeName"), "may not be changed directly"))
    nominated = _str(new_status, "nominatedNodeName")
    if nominated and nominated != _str(old_status, "nominatedNodeName"):
        errs.extend(_validate_name(nominated, status_path.child("nominatedNodeName")))
    if _str(new_status, "qosClass") != _str(old_status, "qosClass"):
        errs.append(invalid(status_path.child("qosClass"), _str(new_status, "qosClass"),
                            FIELD_IMMUTABLE_ERROR_MSG))
    old_restart = _str(old_spec, "restartPolicy")
    errs.extend(_container_state_transitions(
        _dicts(_list(new_status, "containerStatuses")),
        _dicts(_list(old_status, "containerStatuses")),
        status_path.child("containerStatuses"), old_restart))
    sidecars = frozenset(_str(c, "name") for c in _dicts(_list(old_spec, "initContainers"))
                         if _str(c, "restartPolicy") == "Always")
    errs.extend(_container_state_transitions(
        _dicts(_list(new_status, "initContainerStatuses")),
        _dicts(_list(old_status, "initContainerStatuses")),
        status_path.child("initContainerStatuses"), old_restart, sidecars))
    errs.extend(_container_state_transitions(
        _dicts(_list(new_status, "ephemeralContainerStatuses")),
        _dicts(_list(old_status, "ephemeralContainerStatuses")),
        status_path.child("ephemeralContainerStatuses"), "Never"))
    errs.extend(_validate_pod_ips(new_status, "podIP", "podIPs"))
    errs.extend(_validate_pod_ips(new_status, "hostIP", "hostIPs"))
    return errs

