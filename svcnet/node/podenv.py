"""A container's environment, and the downward API's values: pure functions only.

Theory of operation
-------------------
The kubelet's ``makeEnvironmentVariables`` (pkg/kubelet/kubelet_pods.go), step by step:

1. ``envFrom``, in order: every key of the ConfigMap's ``data`` (or the Secret's decoded
   ``data``) becomes a variable, ``prefix`` first. A key that is not a valid variable name
   (``IsEnvVarName``) is skipped, and the kubelet's ``InvalidEnvironmentVariableNames``
   warning (one per source, keys sorted) is returned for the agent to record as an Event.
   A missing object is an error unless the source is ``optional``.
2. ``env``, in order: a ``value`` is ``$(VAR)``-expanded against the variables so far
   (``envFrom`` and the earlier ``env`` entries), then the Service variables; a ``valueFrom``
   is resolved without expansion: ``fieldRef`` (:func:`pod_field_value`),
   ``resourceFieldRef`` (:func:`resource_field_value`, limits defaulted to the node's
   allocatable as ``defaultPodLimitsForDownwardAPI`` does), ``configMapKeyRef`` /
   ``secretKeyRef`` (an ``optional`` reference to a missing object or key leaves the
   variable out).
3. Service variables that no ``env``/``envFrom`` entry set are added last.

Objects come from a :data:`Lookup` (the agent's caches): it returns the object, None when it
does not exist, or raises :class:`ObjectUnavailable` when it cannot tell. Errors carry the
kubelet's messages (``configmap "x" not found`` as its configMapManager words a NotFound,
``couldn't find key k in ConfigMap ns/x``); the container then waits with
``CreateContainerConfigError`` and is started once a later sync resolves everything.

The downward API's values (``fieldpath.ExtractFieldPathAsString``,
``resource.ExtractContainerResourceValue``) are here too: volumes (:mod:`.volumes`) use them.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final

from svcnet.api.access import mapping_of
from svcnet.api.errors import go_quote
from svcnet.api.podrefs import CONFIG_MAP, SECRET
from svcnet.api.pods import is_env_var_name
from svcnet.api.resourcelists import parse_quantity

__all__ = [
    "ConfigError",
    "EnvResult",
    "Lookup",
    "ObjectUnavailable",
    "container_env",
    "decoded_data",
    "expand_vars",
    "get_object",
    "pod_field_value",
    "resource_field_value",
]

Obj = Mapping[str, Any]
Lookup = Callable[[str, str, str], "Obj | None"]
"""``lookup(kind, namespace, name)``: the object, or None if it does not exist."""

_NOT_FOUND_NAME: Final = {CONFIG_MAP: "configmap", SECRET: "secret"}


class ConfigError(Exception):
    """The container cannot be configured (the kubelet's ``CreateContainerConfigError``)."""


class ObjectUnavailable(ConfigError):
    """The agent cannot tell whether the object exists (not synced, not allowed, ...)."""


class NotFound(ConfigError):
    """A referenced object does not exist (the message is the kubelet's)."""


def get_object(lookup: Lookup, kind: str, namespace: str, name: str) -> Obj:
    """The object, or :class:`NotFound` with ``configmap "x" not found``."""
    obj = lookup(kind, namespace, name)
    if obj is None:
        raise NotFound(f"{_NOT_FOUND_NAME[kind]} {go_quote(name)} not found")
    return obj


def decoded_data(obj: Obj, kind: str, key: str = "data") -> dict[str, bytes]:
    """A ConfigMap's ``data`` (text) or ``binaryData``/a Secret's ``data`` (base64), as
    bytes."""
    raw = obj.get(key) or {}
    if not isinstance(raw, Mapping):
        return {}
    if kind == CONFIG_MAP and key == "data":
        return {str(k): str(v).encode() for k, v in raw.items()}
    out: dict[str, bytes] = {}
    for k, v in raw.items():
        try:
            out[str(k)] = base64.b64decode(str(v or ""), validate=True)
        except (binascii.Error, ValueError):
            out[str(k)] = b""
    return out


# --- $(VAR) expansion -------------------------------------------------------------------------


_VAR_RE: Final = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


def expand_vars(text: str, *envs: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined variables (first of ``envs`` that has it)
    are replaced, undefined ones are left as written, ``$$`` is a literal ``$``."""

    def replace(m: re.Match[str]) -> str:
        if m[0] == "$$":
            return "$"
        for env in envs:
            if m[1] in env:
                return env[m[1]]
        return m[0]

    return _VAR_RE.sub(replace, text)


# --- the downward API -----------------------------------------------------------------------


def _split_subscript(path: str) -> tuple[str, str] | None:
    if not path.endswith("']"):
        return None
    head, sep, sub = path[:-2].partition("['")
    return (head, sub) if sep and head else None


def format_map(m: Mapping[str, Any]) -> str:
    """fieldpath.FormatMap: ``key="value"`` lines, keys sorted, values Go-quoted."""
    return "\n".join(f"{k}={go_quote(str(m[k]))}" for k in sorted(m))


def extract_field_path(pod: Obj, path: str) -> str:
    """fieldpath.ExtractFieldPathAsString: the metadata fields (what volumes may use)."""
    meta = mapping_of(pod, "metadata")
    if (split := _split_subscript(path)) is not None:
        head, sub = split
        if head in ("metadata.annotations", "metadata.labels"):
            return str((meta.get(head.split(".")[1]) or {}).get(sub, ""))
        raise ConfigError(f"fieldPath {go_quote(path)} does not support subscript")
    if path in ("metadata.annotations", "metadata.labels"):
        return format_map(meta.get(path.split(".")[1]) or {})
    if path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        return str(meta.get(path.split(".")[1]) or "")
    raise ConfigError(f"unsupported fieldPath: {path}")


def pod_field_value(pod: Obj, ref: Obj, *, pod_ip: str, host_ip: str, node_name: str) -> str:
    """podFieldSelectorRuntimeValue: a ``fieldRef``'s value for an environment variable."""
    version = str(ref.get("apiVersion") or "v1")
    if version != "v1":
        raise ConfigError(f"unsupported pod version: {version}")
    path = str(ref.get("fieldPath") or "")
    if path == "spec.host":
        path = "spec.nodeName"
    spec = mapping_of(pod, "spec")
    runtime = {
        "spec.nodeName": str(spec.get("nodeName") or node_name),
        "spec.serviceAccountName": str(spec.get("serviceAccountName") or ""),
        "status.hostIP": host_ip, "status.hostIPs": host_ip,
        "status.podIP": pod_ip, "status.podIPs": pod_ip,
    }
    if path in runtime:
        return runtime[path]
    return extract_field_path(pod, path)


_RESOURCES: Final = ("cpu", "memory", "ephemeral-storage")


def _find_container(pod: Obj, name: str) -> Obj:
    spec = mapping_of(pod, "spec")
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, Mapping) and c.get("name") == name:
                return c
    raise ConfigError(f"container {name} not found")


def resource_field_value(ref: Obj, container: Obj,
                         allocatable: Mapping[str, str] | None = None) -> str:
    """resource.ExtractContainerResourceValue, after ``defaultPodLimitsForDownwardAPI``
    (a limit the container does not set is the node's allocatable amount)."""
    divisor = parse_quantity(ref.get("divisor") or "1") or Fraction(1)
    if divisor <= 0:
        divisor = Fraction(1)
    resource = str(ref.get("resource") or "")
    section, _, name = resource.partition(".")
    resources = mapping_of(container, "resources")
    values = dict(mapping_of(resources, section)) if section in ("limits", "requests") else {}
    if section == "limits":
        for r in _RESOURCES:
            if r not in values and allocatable and r in allocatable:
                values[r] = allocatable[r]
    if section not in ("limits", "requests") or not (
            name in _RESOURCES or name.startswith("hugepages-")):
        raise ConfigError(f"unsupported container resource : {resource}")
    amount = parse_quantity(values.get(name, "0")) or Fraction(0)
    if name == "cpu":
        # convertResourceCPUToString: whole millicores (rounded up), then divided, rounded up.
        return str(math.ceil(Fraction(math.ceil(amount * 1000), math.ceil(divisor * 1000))))
    return str(math.ceil(Fraction(math.ceil(amount), math.ceil(divisor))))


def container_resource_value(ref: Obj, pod: Obj, container: Obj | None,
                             allocatable: Mapping[str, str] | None = None) -> str:
    """containerResourceRuntimeValue: ``containerName`` picks another container."""
    name = str(ref.get("containerName") or "")
    target = _find_container(pod, name) if name or container is None else container
    return resource_field_value(ref, target, allocatable)


# --- makeEnvironmentVariables ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnvResult:
    env: dict[str, str]
    warnings: tuple[tuple[str, str], ...] = field(default=())
    """(reason, message) pairs for Warning Events (invalid names from ``envFrom``)."""


@dataclass
class _Sources:
    pod: Obj
    lookup: Lookup
    cache: dict[tuple[str, str], Obj | None] = field(default_factory=dict)

    def get(self, kind: str, name: str, optional: bool) -> Obj | None:
        """The object; None only if it is missing and ``optional``."""
        key = (kind, name)
        if key not in self.cache:
            namespace = str(mapping_of(self.pod, "metadata").get("namespace") or "default")
            self.cache[key] = self.lookup(kind, namespace, name)
        obj = self.cache[key]
        if obj is None and not optional:
            raise NotFound(f"{_NOT_FOUND_NAME[kind]} {go_quote(name)} not found")
        return obj


def _env_from(container: Obj, src: _Sources) -> tuple[dict[str, str], list[tuple[str, str]]]:
    env: dict[str, str] = {}
    warnings: list[tuple[str, str]] = []
    namespace = str(mapping_of(src.pod, "metadata").get("namespace") or "default")
    for item in container.get("envFrom") or []:
        if not isinstance(item, Mapping):
            continue
        for ref_key, kind, word in (("configMapRef", CONFIG_MAP, "configMap"),
                                    ("secretRef", SECRET, "secret")):
            ref = item.get(ref_key)
            if not isinstance(ref, Mapping):
                continue
            name = str(ref.get("name") or "")
            obj = src.get(kind, name, bool(ref.get("optional")))
            if obj is None:
                continue
            invalid = []
            for key, value in decoded_data(obj, kind).items():
                var = str(item.get("prefix") or "") + key
                if is_env_var_name(var):
                    invalid.append(var)
                    continue
                env[var] = value.decode(errors="replace")
            if invalid:
                warnings.append((
                    "InvalidEnvironmentVariableNames",
                    f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {word} "
                    f"{namespace}/{name} were skipped since they are considered invalid "
                    "environment variable names."))
    return env, warnings


def _key_ref(ref: Obj, kind: str, src: _Sources) -> str | None:
    """A configMapKeyRef/secretKeyRef's value; None: optional and missing."""
    name, key = str(ref.get("name") or ""), str(ref.get("key") or "")
    optional = bool(ref.get("optional"))
    obj = src.get(kind, name, optional)
    if obj is None:
        return None
    data = decoded_data(obj, kind)
    if key not in data:
        if optional:
            return None
        namespace = str(mapping_of(src.pod, "metadata").get("namespace") or "default")
        raise ConfigError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return data[key].decode(errors="replace")


def _value_from(pod: Obj, container: Obj, source: Obj, src: _Sources, *, pod_ip: str,
                host_ip: str, node_name: str,
                allocatable: Mapping[str, str] | None) -> str | None:
    if isinstance(source.get("fieldRef"), Mapping):
        return pod_field_value(pod, source["fieldRef"], pod_ip=pod_ip, host_ip=host_ip,
                               node_name=node_name)
    if isinstance(source.get("resourceFieldRef"), Mapping):
        return container_resource_value(source["resourceFieldRef"], pod, container,
                                        allocatable)
    if isinstance(source.get("configMapKeyRef"), Mapping):
        return _key_ref(source["configMapKeyRef"], CONFIG_MAP, src)
    if isinstance(source.get("secretKeyRef"), Mapping):
        return _key_ref(source["secretKeyRef"], SECRET, src)
    return ""


def container_env(pod: Obj, container: Obj, lookup: Lookup, *, pod_ip: str, host_ip: str,
                  node_name: str, service_env: Mapping[str, str] | None = None,
                  allocatable: Mapping[str, str] | None = None) -> EnvResult:
    """The variables the kubelet gives ``container`` (see the module docstring), in the
    kubelet's order. Raises :class:`ConfigError`."""
    src = _Sources(pod, lookup)
    service = dict(service_env or {})
    env, warnings = _env_from(container, src)
    for item in container.get("env") or []:
        if not isinstance(item, Mapping) or not item.get("name"):
            continue
        name = str(item["name"])
        value = str(item.get("value") or "")
        if value:
            value = expand_vars(value, env, service)
        elif isinstance(item.get("valueFrom"), Mapping):
            resolved = _value_from(pod, container, item["valueFrom"], src, pod_ip=pod_ip,
                                   host_ip=host_ip, node_name=node_name,
                                   allocatable=allocatable)
            if resolved is None:
                continue
            value = resolved
        env[name] = value
    for key, val in service.items():
        env.setdefault(key, val)
    return EnvResult(env, tuple(warnings))
