"""node.k8s.io/v1 RuntimeClasses: validation as Kubernetes does it, and the classes every svcnet
cluster starts with.

Theory of operation
-------------------
A pod chooses its container runtime with ``spec.runtimeClassName``, the name of a
RuntimeClass (cluster-scoped) whose ``handler`` a node maps to one of its runtimes; the
RuntimeClass may also carry a fixed per-pod ``overhead`` and ``scheduling`` constraints, which
the RuntimeClass admission merges into the pod (:mod:`svcnet.api.podruntimeclass`).

Mirrors:

* ``pkg/apis/node/validation/validation.go`` — ``ValidateRuntimeClass``: apimachinery's
  ObjectMeta rules (not namespaced, the name a DNS subdomain; no core finalizer-name rule), the
  ``handler`` a DNS-1123 label (an empty one fails the label's pattern: there is no ``Required
  value``), ``overhead.podFixed`` as a container's limits (its errors under
  ``overhead.limits[<name>]``, the path upstream builds, :mod:`svcnet.api.resourcelists`),
  ``scheduling.nodeSelector`` as labels and ``scheduling.tolerations`` as a pod's (the same
  functions as a pod's, :mod:`svcnet.api.pods`), which must also be unique by key, operator,
  value and effect; ``ValidateRuntimeClassUpdate``: the ObjectMeta update rules and an
  immutable ``handler``;
* ``pkg/registry/node/runtimeclass/strategy.go`` — an update is validated as a create, then
  as an update; nothing is prepared; no generation. node/v1 has no defaulting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from svcnet.api.access import list_of, map_of, str_of
from svcnet.api.errors import ErrorType, FieldError, GoRaw, Path, go_quote, invalid
from svcnet.api.meta import (
    FIELD_IMMUTABLE_ERROR_MSG,
    validate_labels,
    validate_object_meta,
    validate_object_meta_update,
)
from svcnet.api.names import name_is_dns_label, name_is_dns_subdomain
from svcnet.api.pods import validate_tolerations
from svcnet.api.resourcelists import validate_overhead

__all__ = [
    "API_VERSION",
    "DEFAULT_RUNTIME_CLASSES",
    "GROUP",
    "HANDLER_PROCESS",
    "HANDLER_RUNC",
    "validate_runtime_class",
    "validate_runtime_class_update",
]

Obj = dict[str, Any]
GROUP: Final = "node.k8s.io"
API_VERSION: Final = f"{GROUP}/v1"
#: svcnet's own runtime: a container's command runs on the host's filesystem.
HANDLER_PROCESS: Final = "process"
#: containerd's default runtime (its CRI plugin's ``default_runtime_name``), through CRI.
HANDLER_RUNC: Final = "runc"
_META: Final = Path("metadata")
_HANDLER: Final = Path("handler")


def _runtime_class(name: str, handler: str) -> Obj:
    return {"apiVersion": API_VERSION, "kind": "RuntimeClass",
            "metadata": {"name": name}, "handler": handler}


#: The RuntimeClasses the API server creates when they are missing (one per handler a svcnet
#: node knows, named after it). Upstream has none: a cluster's provisioner makes its own.
DEFAULT_RUNTIME_CLASSES: Final[tuple[Obj, ...]] = (
    _runtime_class(HANDLER_PROCESS, HANDLER_PROCESS),
    _runtime_class(HANDLER_RUNC, HANDLER_RUNC),
)


def _go_toleration(t: Mapping[str, Any]) -> GoRaw:
    """%#v of a core.Toleration (a set tolerationSeconds is printed as its value: Go would
    print an address)."""
    seconds = t.get("tolerationSeconds")
    shown = "(*int64)(nil)" if seconds is None else f"(*int64)({seconds})"
    return GoRaw(f"core.Toleration{{Key:{go_quote(str_of(t, 'key'))}, "
                 f"Operator:{go_quote(str_of(t, 'operator'))}, "
                 f"Value:{go_quote(str_of(t, 'value'))}, "
                 f"Effect:{go_quote(str_of(t, 'effect'))}, TolerationSeconds:{shown}}}")


def _validate_tolerations(tolerations: Sequence[Any], path: Path) -> list[FieldError]:
    """The node validation's validateTolerations: a pod's rules, and no two tolerations with
    the same key, operator, value and effect."""
    errs = validate_tolerations(tolerations, path)
    seen: set[tuple[str, str, str, str]] = set()
    for i, raw in enumerate(tolerations):
        t = raw if isinstance(raw, dict) else {}
        key = (str_of(t, "key"), str_of(t, "operator"), str_of(t, "value"), str_of(t, "effect"))
        if key in seen:
            errs.append(FieldError(ErrorType.DUPLICATE, str(path.index(i)), _go_toleration(t)))
        seen.add(key)
    return errs


def validate_runtime_class(rc: Mapping[str, Any]) -> list[FieldError]:
    """ValidateRuntimeClass."""
    errs = validate_object_meta(map_of(rc, "metadata"), requires_namespace=False,
                                name_fn=name_is_dns_subdomain, path=_META,
                                kube_finalizers=False)
    handler = str_of(rc, "handler")
    errs.extend(invalid(_HANDLER, handler, m) for m in name_is_dns_label(handler, False))
    overhead = rc.get("overhead")
    if isinstance(overhead, dict):
        errs.extend(validate_overhead(map_of(overhead, "podFixed"), Path("overhead")))
    scheduling = rc.get("scheduling")
    if isinstance(scheduling, dict):
        path = Path("scheduling")
        if scheduling.get("nodeSelector") is not None:
            errs.extend(validate_labels(map_of(scheduling, "nodeSelector"),
                                        path.child("nodeSelector")))
        errs.extend(_validate_tolerations(list_of(scheduling, "tolerations"),
                                          path.child("tolerations")))
    return errs


def validate_runtime_class_update(new: Mapping[str, Any], old: Mapping[str, Any],
                                  ) -> list[FieldError]:
    """The strategy's ValidateUpdate: ValidateRuntimeClass, then ValidateRuntimeClassUpdate
    (the ObjectMeta update rules; ``handler`` cannot change)."""
    errs = validate_runtime_class(new)
    errs.extend(validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"),
                                            _META, kube_finalizers=False))
    handler = str_of(new, "handler")
    if handler != str_of(old, "handler"):
        errs.append(invalid(_HANDLER, handler, FIELD_IMMUTABLE_ERROR_MSG))
    return errs
