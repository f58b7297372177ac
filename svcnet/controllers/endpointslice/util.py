"""Pod and Service helpers shared by the EndpointSlice and the legacy Endpoints controllers.

These are the small predicates both controllers agree on (upstream keeps them in
``k8s.io/endpointslice/util`` and ``k8s.io/endpointslice/utils.go``, and the Endpoints
controller imports them from there):

* which Services get controller-managed endpoints at all (:func:`manages_service`): not
  ``ExternalName``, and with a selector. An empty selector ``{}`` counts as *no* selector: it
  does not survive the API's round trip (it reads back as absent), so treating it as "match
  every pod" would make the answer depend on how the object was stored;
* which pods may become endpoints (:func:`should_pod_be_in_endpoints`): not terminal, with an
  IP, and (for legacy Endpoints only) not terminating;
* readiness (:func:`is_pod_ready`: the ``Ready`` condition is ``"True"``), the hostname rule
  (:func:`should_set_hostname`) and named ``targetPort`` resolution (:func:`find_port`);
* which Services a pod event concerns (:func:`services_to_update_on_pod_change`), so handlers
  enqueue only keys that can change;
* the ``endpoints.kubernetes.io/last-change-trigger-time`` bookkeeping
  (:class:`TriggerTimeTracker`).

Everything here is pure except :class:`TriggerTimeTracker`, which remembers what it saw per
Service between syncs (exactly as upstream's ``TriggerTimeTracker``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from svcnet.api.access import (
    list_of as _list,
    mapping_of as _map,
    str_of as _str,
)
from svcnet.api.endpointslices import LABEL_TOPOLOGY_ZONE
from svcnet.api.names import parse_ip_sloppy
from svcnet.api.pods import is_pod_ready, pod_ready_condition
from svcnet.util.clock import parse_time

__all__ = [
    "ANNOTATION_LAST_CHANGE_TRIGGER_TIME",
    "ANNOTATION_OVER_CAPACITY",
    "LABEL_HEADLESS",
    "LABEL_MANAGED_BY",
    "LABEL_SERVICE_NAME",
    "LABEL_ZONE",
    "TriggerTimeTracker",
    "canonical_ip",
    "find_port",
    "format_rfc3339_nano",
    "is_pod_ready",
    "is_pod_terminal",
    "is_service_ip_set",
    "is_terminating",
    "manages_service",
    "parse_time",
    "pod_endpoints_changed",
    "pod_ips",
    "selector_matches",
    "service_selector",
    "services_for_pod",
    "services_to_update_on_pod_change",
    "should_pod_be_in_endpoints",
    "should_set_hostname",
]

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

LABEL_SERVICE_NAME: Final = "kubernetes.io/service-name"
LABEL_MANAGED_BY: Final = "endpointslice.kubernetes.io/managed-by"
LABEL_HEADLESS: Final = "service.kubernetes.io/headless"
LABEL_ZONE: Final = LABEL_TOPOLOGY_ZONE
ANNOTATION_LAST_CHANGE_TRIGGER_TIME: Final = "endpoints.kubernetes.io/last-change-trigger-time"
ANNOTATION_OVER_CAPACITY: Final = "endpoints.kubernetes.io/over-capacity"


# -- Services --------------------------------------------------------------------------------


def service_selector(svc: ObjMap) -> dict[str, str] | None:
    """The Service's pod selector, or None for a selectorless Service (``{}`` included)."""
    sel = _map(svc, "spec").get("selector")
    if not isinstance(sel, Mapping) or not sel:
        return None
    return {str(k): str(v) for k, v in sel.items()}


def manages_service(svc: ObjMap) -> bool:
    """Does a controller own this Service's endpoints? ``ExternalName`` Services have none, and
    selectorless ones get theirs from users (or other controllers), never from us."""
    return _str(_map(svc, "spec"), "type") != "ExternalName" and service_selector(svc) is not None


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, Any] | None) -> bool:
    """``labels.Set(selector).AsSelector().Matches(labels)``: every key present and equal."""
    have = labels or {}
    return all(k in have and have[k] == v for k, v in selector.items())


def is_service_ip_set(svc: ObjMap) -> bool:
    """Headful? (``clusterIP`` neither ``None`` nor empty; upstream ``IsServiceIPSet``)."""
    cip = _str(_map(svc, "spec"), "clusterIP")
    return cip not in ("", "None")


# -- Pods ------------------------------------------------------------------------------------


def is_pod_terminal(pod: ObjMap) -> bool:
    """Succeeded or Failed: its containers are gone for good (unlike *terminating*)."""
    return _str(_map(pod, "status"), "phase") in ("Succeeded", "Failed")


def is_terminating(obj: ObjMap) -> bool:
    return bool(_map(obj, "metadata").get("deletionTimestamp"))


def pod_ips(pod: ObjMap) -> list[str]:
    """``status.podIPs`` in order; ``[status.podIP]`` if only that is set.

    (Upstream reads ``podIPs`` only; the API server keeps ``podIPs[0] == podIP``, so falling back
    changes nothing for stored pods and is kinder to hand-written ones.)
    """
    status = _map(pod, "status")
    ips = [str(p.get("ip")) for p in _list(status, "podIPs")
           if isinstance(p, Mapping) and p.get("ip")]
    if not ips and _str(status, "podIP"):
        ips = [_str(status, "podIP")]
    return ips


def should_pod_be_in_endpoints(pod: ObjMap, *, include_terminating: bool) -> bool:
    """Upstream ``ShouldPodBeInEndpoints``: not terminal, has an IP, and (unless
    ``include_terminating``) has no deletionTimestamp."""
    if is_pod_terminal(pod):
        return False
    status = _map(pod, "status")
    if not _str(status, "podIP") and not _list(status, "podIPs"):
        return False
    return include_terminating or not is_terminating(pod)


def should_set_hostname(pod: ObjMap, svc: ObjMap) -> bool:
    """A pod's ``hostname`` is published only when its ``subdomain`` names this Service (same
    namespace): that is what makes ``<hostname>.<service>.<ns>.svc`` resolvable."""
    spec = _map(pod, "spec")
    return (bool(_str(spec, "hostname")) and _str(spec, "subdomain") == _str(_map(svc, "metadata"),
                                                                             "name")
            and _str(_map(pod, "metadata"), "namespace") == _str(_map(svc, "metadata"),
                                                                  "namespace"))


def find_port(pod: ObjMap, svc_port: ObjMap) -> int | None:
    """The pod port a Service port targets, or None if this pod does not offer it.

    A numeric ``targetPort`` is used as is (no check that a container declares it). A named one
    is the first container port, in ``spec.containers`` order and then in restartable init
    containers (sidecars: ``restartPolicy: Always``), whose name matches **and whose protocol
    equals the Service port's**. A missing ``targetPort`` means the port number, as the API's
    defaulting would have made it.
    """
    target = svc_port.get("targetPort")
    if isinstance(target, bool):  # JSON true/false is no port (and bool is an int in Python)
        return None
    if isinstance(target, int) and target != 0:
        return target
    if target is None or target in (0, ""):
        port = svc_port.get("port")
        return port if isinstance(port, int) and not isinstance(port, bool) else None
    if not isinstance(target, str):
        return None
    protocol = _str(svc_port, "protocol") or "TCP"
    spec = _map(pod, "spec")
    containers = [c for c in _list(spec, "containers") if isinstance(c, Mapping)]
    containers += [c for c in _list(spec, "initContainers")
                   if isinstance(c, Mapping) and c.get("restartPolicy") == "Always"]
    for container in containers:
        for cp in _list(container, "ports"):
            if not isinstance(cp, Mapping):
                continue
            if cp.get("name") == target and (_str(cp, "protocol") or "TCP") == protocol:
                number = cp.get("containerPort")
                if isinstance(number, int) and not isinstance(number, bool):
                    return number
    return None


def canonical_ip(value: str) -> tuple[str, str] | None:
    """``(family, text)`` with the address re-printed the way Go prints it, or None.

    Go treats an IPv4-mapped IPv6 address as IPv4 (``net.IP.To4``) and prints it dotted.
    """
    ip = parse_ip_sloppy(value)
    if ip is None:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return "IPv4", str(ip.ipv4_mapped)
        return "IPv6", str(ip)
    return "IPv4", str(ip)


# -- which Services a pod event concerns -----------------------------------------------------


def services_for_pod(services: Iterable[ObjMap], namespace: str,
                     labels: Mapping[str, Any] | None) -> set[str]:
    """Keys of the Services (in ``namespace``) whose selector matches ``labels``."""
    keys: set[str] = set()
    for svc in services:
        meta = _map(svc, "metadata")
        if _str(meta, "namespace") != namespace:
            continue
        sel = service_selector(svc)
        if sel is not None and selector_matches(sel, labels):
            keys.add(f"{namespace}/{_str(meta, 'name')}")
    return keys


def pod_endpoints_changed(old: ObjMap, new: ObjMap) -> tuple[bool, bool]:
    """``(pod_changed, labels_changed)``: could the pod's endpoint change, and could the set of
    Services selecting it change? (Hostname/subdomain count as "labels": they decide which
    Service publishes the hostname.)"""
    old_meta, new_meta = _map(old, "metadata"), _map(new, "metadata")
    old_spec, new_spec = _map(old, "spec"), _map(new, "spec")
    labels_changed = (dict(_map(old_meta, "labels")) != dict(_map(new_meta, "labels"))
                      or _str(old_spec, "hostname") != _str(new_spec, "hostname")
                      or _str(old_spec, "subdomain") != _str(new_spec, "subdomain"))
    if old_meta.get("deletionTimestamp") != new_meta.get("deletionTimestamp"):
        return True, labels_changed
    if is_pod_ready(old) != is_pod_ready(new):
        return True, labels_changed
    old_ips = [p.get("ip") for p in _list(_map(old, "status"), "podIPs") if isinstance(p, Mapping)]
    new_ips = [p.get("ip") for p in _list(_map(new, "status"), "podIPs") if isinstance(p, Mapping)]
    if old_ips != new_ips or _str(_map(old, "status"), "podIP") != _str(_map(new, "status"),
                                                                        "podIP"):
        return True, labels_changed
    # Terminal phases drop the pod; nodeName is set once, before the pod has an IP.
    if is_pod_terminal(old) != is_pod_terminal(new):
        return True, labels_changed
    return False, labels_changed


def services_to_update_on_pod_change(services: Iterable[ObjMap], old: ObjMap,
                                     new: ObjMap) -> set[str]:
    """Upstream ``GetServicesToUpdateOnPodChange``.

    A resync (same resourceVersion) concerns nobody: the Service informer resyncs Services
    itself. If only the pod changed, its current Services; if only its labels changed, the
    Services it joined or left (symmetric difference); if both, all of them.
    """
    old_meta, new_meta = _map(old, "metadata"), _map(new, "metadata")
    if old_meta.get("resourceVersion") and (old_meta.get("resourceVersion")
                                            == new_meta.get("resourceVersion")):
        return set()
    pod_changed, labels_changed = pod_endpoints_changed(old, new)
    if not pod_changed and not labels_changed:
        return set()
    services = list(services)
    namespace = _str(new_meta, "namespace")
    current = services_for_pod(services, namespace, _map(new_meta, "labels"))
    if not labels_changed:
        return current
    previous = services_for_pod(services, namespace, _map(old_meta, "labels"))
    if pod_changed:
        return current | previous
    return current ^ previous


# -- trigger times ---------------------------------------------------------------------------


def format_rfc3339_nano(dt: datetime) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: fraction only if non-zero, trailing zeros trimmed."""
    dt = dt.astimezone(UTC)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += "." + f"{dt.microsecond:06d}".rstrip("0")
    return text + "Z"


def _pod_trigger_time(pod: ObjMap) -> datetime | None:
    cond = pod_ready_condition(pod)
    return parse_time(cond.get("lastTransitionTime")) if cond is not None else None


@dataclass(slots=True)
class _ServiceState:
    service_time: datetime | None = None
    pod_times: dict[str, datetime] = field(default_factory=dict)


class TriggerTimeTracker:
    """Computes ``endpoints.kubernetes.io/last-change-trigger-time`` (upstream semantics).

    The annotation says when the change that the written endpoints reflect happened, so that
    consumers can measure "network programming latency". A pod's trigger time is its Ready
    condition's ``lastTransitionTime``; a Service's is its ``creationTimestamp``. Each sync
    reports the **earliest** trigger time that changed since the previous sync of that Service
    (the oldest unprocessed change is the one whose latency matters), the Service's creation
    time on its first sync, and None when nothing tracked changed (then the writers *remove*
    the annotation, as upstream does).

    Like upstream it can be wrong when one object changes several times between two syncs; it
    is an approximation for metrics, never an input to routing.
    """

    def __init__(self) -> None:
        self._states: dict[str, _ServiceState] = {}

    def compute(self, svc: ObjMap, pods: Iterable[ObjMap]) -> datetime | None:
        meta = _map(svc, "metadata")
        key = f"{_str(meta, 'namespace')}/{_str(meta, 'name')}"
        state = self._states.get(key)
        known = state is not None
        if state is None:
            state = self._states[key] = _ServiceState()
        earliest: datetime | None = None
        pod_times: dict[str, datetime] = {}
        for pod in pods:
            t = _pod_trigger_time(pod)
            if t is None:
                continue
            name = _str(_map(pod, "metadata"), "name")
            pod_times[name] = t
            last = state.pod_times.get(name)
            if (last is None or t > last) and (earliest is None or t < earliest):
                earliest = t
        service_time = parse_time(meta.get("creationTimestamp"))
        if service_time is not None and (state.service_time is None
                                         or service_time > state.service_time):
            earliest = service_time if earliest is None else min(earliest, service_time)
        state.pod_times = pod_times
        state.service_time = service_time
        if not known:
            return service_time
        return earliest

    def delete_service(self, namespace: str, name: str) -> None:
        self._states.pop(f"{namespace}/{name}", None)
