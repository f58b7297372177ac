"""The legacy Endpoints controller: one ``v1/Endpoints`` object per selector Service.

Endpoints are deprecated in favour of EndpointSlices (Kubernetes 1.33) but still maintained:
``kubectl describe service`` shows them, and older consumers read them.

Theory of operation (after ``pkg/controller/endpoint/endpoints_controller.go``)
------------------------------------------------------------------------------
Informers on Services, Pods and Endpoints feed a queue of Service keys. Service events enqueue
the Service; pod events enqueue the Services the pod belongs to (or joined/left), after
``batch_period``; the deletion of an Endpoints object whose Service exists enqueues that
Service (so it is recreated). Once, at start-up, every existing Endpoints object is enqueued
too, so that one left behind by a Service deleted while we were not running is removed
(leader-election records, which have no Service, are spared).

:meth:`EndpointsController.sync` is level-triggered:

1. Service gone → delete the Endpoints of that name (404 is fine). ``ExternalName`` or
   selectorless → nothing (those Endpoints are the user's);
2. if the cached Endpoints is the very version our last update replaced, the cache is stale:
   retry later (upstream's ``staleEndpointsTracker``);
3. the pure :func:`plan_endpoints` builds the subsets and says :class:`Create`,
   :class:`Update` or :class:`Skip`, and the controller writes accordingly.

:func:`plan_endpoints`, the rules:

* pods: same namespace and selector; not terminal; with an IP; **terminating pods are
  excluded** unless ``publishNotReadyAddresses`` (unlike EndpointSlices, which keep them);
* one address per pod: its IP of the Service's primary family (``ipFamilies[0]``; without
  ``ipFamilies``: the ``clusterIP``'s family, or for headless Services the pod IP's), with
  ``nodeName``, ``targetRef`` and ``hostname`` (when ``spec.subdomain`` names the Service);
* ready pods (every included pod with ``publishNotReadyAddresses``) go to ``addresses``, the
  others to ``notReadyAddresses``;
* ports: each Service port the pod resolves (named ``targetPort`` by name and protocol), as
  ``{name, port, protocol, appProtocol}``; a headless Service without ports gets port-less
  subsets; then subsets are **repacked**: addresses offering exactly the same port set share a
  subset, and everything is sorted, so equal content always serialises equally;
* more than 1000 addresses in total → truncated to 1000 (ready ones kept first, each subset
  cut in proportion) and annotated ``endpoints.kubernetes.io/over-capacity: truncated``;
* labels = the Service's labels, plus ``service.kubernetes.io/headless: ""`` for a headless
  Service; annotation ``endpoints.kubernetes.io/last-change-trigger-time`` as for slices;
* nothing is written when subsets, labels (ignoring the headless label) and the capacity
  annotation already match.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from svcnet.api.access import (
    list_of as _list,
    mapping_of as _map,
    str_of as _str,
)
from svcnet.api.errors import StatusError, is_namespace_terminating
from svcnet.client.controller import Controller, InformerController, RequeueError
from svcnet.client.events import EventRecorder, EventSink
from svcnet.client.informer import (
    NAMESPACE_INDEX,
    EventHandler,
    Informer,
    InformerFactory,
    ListerWatcher,
    object_key,
    split_key,
)
from svcnet.client.rest import ENDPOINTS, GVR, PODS, SERVICES, Preconditions
from svcnet.controllers.endpointslice.util import (
    ANNOTATION_LAST_CHANGE_TRIGGER_TIME,
    ANNOTATION_OVER_CAPACITY,
    LABEL_HEADLESS,
    TriggerTimeTracker,
    canonical_ip,
    find_port,
    format_rfc3339_nano,
    is_pod_ready,
    is_service_ip_set,
    manages_service,
    pod_ips,
    selector_matches,
    service_selector,
    services_for_pod,
    services_to_update_on_pod_change,
    should_pod_be_in_endpoints,
    should_set_hostname,
)
from svcnet.util.clock import Clock, RealClock
from svcnet.util.jsoncopy import json_copy

__all__ = [
    "COMPONENT",
    "EVENT_SOURCE",
    "LEADER_ANNOTATION",
    "MAX_CAPACITY",
    "APIClient",
    "Action",
    "Create",
    "EndpointsClient",
    "EndpointsController",
    "Skip",
    "Update",
    "desired_subsets",
    "plan_endpoints",
    "repack_subsets",
    "truncate_subsets",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

COMPONENT: Final = "endpoints-controller"
EVENT_SOURCE: Final = "endpoint-controller"
"""``source.component`` of our Events, as upstream's."""
MAX_CAPACITY: Final = 1000
TRUNCATED: Final = "truncated"
LEADER_ANNOTATION: Final = "control-plane.alpha.kubernetes.io/leader"
"""Endpoints used as leader-election records carry this; they have no Service."""
DEFAULT_RESYNC: Final = 300.0


def _dicts(items: Iterable[Any]) -> list[ObjMap]:
    return [i for i in items if isinstance(i, Mapping)]


# -- the pure part: subsets ------------------------------------------------------------------


def _primary_family(svc: ObjMap, pod: ObjMap) -> str:
    spec = _map(svc, "spec")
    families = [f for f in _list(spec, "ipFamilies") if f in ("IPv4", "IPv6")]
    if families:
        return str(families[0])
    cip = _str(spec, "clusterIP")
    probe = cip if cip and cip != "None" else _str(_map(pod, "status"), "podIP")
    parsed = canonical_ip(probe)
    return parsed[0] if parsed is not None else "IPv4"


def _address(svc: ObjMap, pod: ObjMap) -> Obj | None:
    """The pod's ``EndpointAddress`` for ``svc``, or None without an IP of its family."""
    family = _primary_family(svc, pod)
    ip = next((ip for ip in pod_ips(pod)
               if (canonical_ip(ip) or ("IPv4", ""))[0] == family), None)
    if ip is None:
        return None
    meta, spec = _map(pod, "metadata"), _map(pod, "spec")
    addr: Obj = {"ip": ip}
    if should_set_hostname(pod, svc):
        addr["hostname"] = _str(spec, "hostname")
    if _str(spec, "nodeName"):
        addr["nodeName"] = _str(spec, "nodeName")
    ref: Obj = {"kind": "Pod"}
    for field_name in ("namespace", "name", "uid"):
        if _str(meta, field_name):
            ref[field_name] = _str(meta, field_name)
    addr["targetRef"] = ref
    return addr


def _endpoint_port(svc_port: ObjMap, number: int) -> Obj:
    port: Obj = {}
    if _str(svc_port, "name"):
        port["name"] = _str(svc_port, "name")
    port["port"] = number
    port["protocol"] = _str(svc_port, "protocol") or "TCP"
    if svc_port.get("appProtocol") is not None:
        port["appProtocol"] = svc_port["appProtocol"]
    return port


def desired_subsets(svc: ObjMap, pods: Iterable[ObjMap]) -> list[Obj]:
    """The repacked (not yet truncated) subsets for ``svc`` (see the module doc)."""
    spec, meta = _map(svc, "spec"), _map(svc, "metadata")
    namespace = _str(meta, "namespace")
    selector = service_selector(svc) or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    svc_ports = _dicts(_list(spec, "ports"))
    raw: list[Obj] = []
    for pod in pods:
        pod_meta = _map(pod, "metadata")
        if _str(pod_meta, "namespace") != namespace or not selector_matches(
                selector, _map(pod_meta, "labels")):
            continue
        if not should_pod_be_in_endpoints(pod, include_terminating=publish_not_ready):
            continue
        addr = _address(svc, pod)
        if addr is None:
            continue  # no IP of the Service's family (a mixed single/dual-stack cluster)
        which = "addresses" if publish_not_ready or is_pod_ready(pod) else "notReadyAddresses"
        if not svc_ports:
            if not is_service_ip_set(svc):  # only headless Services may lack ports
                raw.append({which: [addr]})
            continue
        for sp in svc_ports:
            number = find_port(pod, sp)
            if number is not None:
                raw.append({which: [addr], "ports": [_endpoint_port(sp, number)]})
    return repack_subsets(raw)


PortT = tuple[str, int, str, str | None]
AddrKey = tuple[str, str]


def _port_tuple(p: ObjMap) -> PortT:
    number = p.get("port")
    app = p.get("appProtocol")
    return (_str(p, "name"), number if isinstance(number, int) else 0,
            _str(p, "protocol") or "TCP", app if isinstance(app, str) else None)


def _port_dict(t: PortT) -> Obj:
    name, number, protocol, app = t
    port: Obj = {}
    if name:
        port["name"] = name
    port["port"] = number
    port["protocol"] = protocol
    if app is not None:
        port["appProtocol"] = app
    return port


def _addr_key(addr: ObjMap) -> AddrKey:
    return (_str(addr, "ip"), _str(_map(addr, "targetRef"), "uid"))


def _addr_sort_key(addr: ObjMap) -> tuple[bytes, bool, str]:
    # Upstream LessEndpointAddress: IP bytes, then (no targetRef first) uid.
    has_ref = isinstance(addr.get("targetRef"), Mapping)
    return (_str(addr, "ip").encode(), has_ref, _str(_map(addr, "targetRef"), "uid"))


def _port_sort_key(t: PortT) -> tuple[str, int, str, str]:
    return (t[0], t[1], t[2], t[3] or "")


def repack_subsets(subsets: Iterable[ObjMap]) -> list[Obj]:
    """Upstream ``RepackSubsets``: the canonical layout of a set of subsets.

    Every (address, port) pair is expanded, addresses are de-duplicated by (IP, pod uid), and
    addresses offering exactly the same set of ports (with the same readiness; "not ready"
    wins over "ready") are merged into one subset. Addresses are sorted by IP then uid; ports
    and subsets in a fixed order (upstream sorts those by a hash: a different but equally
    arbitrary order).
    """
    all_addrs: dict[AddrKey, Obj] = {}
    by_port: dict[PortT | None, dict[AddrKey, bool]] = {}

    def add(addr: ObjMap, port: PortT | None, ready: bool) -> None:
        key = _addr_key(addr)
        all_addrs.setdefault(key, copy.deepcopy(dict(addr)))
        seen = by_port.setdefault(port, {})
        if seen.get(key, True):  # unseen, or ready so far: not ready always wins
            seen[key] = ready

    for subset in subsets:
        # A port-less subset (headless Service without ports) maps to a sentinel port.
        ports: list[PortT | None] = [_port_tuple(p) for p in _dicts(_list(subset, "ports"))]
        for port in ports or [None]:
            for addr in _dicts(_list(subset, "addresses")):
                add(addr, port, True)
            for addr in _dicts(_list(subset, "notReadyAddresses")):
                add(addr, port, False)

    groups: dict[tuple[tuple[AddrKey, bool], ...], list[PortT | None]] = {}
    for port, addrs in by_port.items():
        groups.setdefault(tuple(sorted(addrs.items())), []).append(port)

    out: list[Obj] = []
    for members, ports_of in groups.items():
        packed: Obj = {}
        ready = sorted((all_addrs[k] for k, r in members if r), key=_addr_sort_key)
        not_ready = sorted((all_addrs[k] for k, r in members if not r), key=_addr_sort_key)
        if ready:
            packed["addresses"] = ready
        if not_ready:
            packed["notReadyAddresses"] = not_ready
        real = sorted((p for p in ports_of if p is not None), key=_port_sort_key)
        if real:
            packed["ports"] = [_port_dict(p) for p in real]
        out.append(packed)
    out.sort(key=lambda s: json.dumps(s, sort_keys=True))
    return out


def _count(subsets: Iterable[ObjMap]) -> tuple[int, int]:
    ready = not_ready = 0
    for s in subsets:
        ready += len(_list(s, "addresses"))
        not_ready += len(_list(s, "notReadyAddresses"))
    return ready, not_ready


def truncate_subsets(subsets: Sequence[ObjMap], capacity: int = MAX_CAPACITY
                     ) -> tuple[list[Obj], bool]:
    """Upstream ``truncateEndpoints``: at most ``capacity`` addresses, ready ones first.

    If the ready addresses alone exceed the capacity, every not-ready address goes and the
    ready ones are cut; otherwise only not-ready ones are cut. Each subset keeps a share
    proportional to its size (rounded up, so the last subsets may get fewer). Returns the
    subsets and whether anything was cut.
    """
    out = [copy.deepcopy(dict(s)) for s in subsets]
    total_ready, total_not_ready = _count(out)
    if total_ready + total_not_ready <= capacity:
        return out, False
    truncate_ready = total_ready > capacity
    limit, total = ((capacity, total_ready) if truncate_ready
                    else (capacity - total_ready, total_not_ready))
    room = limit
    for subset in out:
        field_name = "addresses" if truncate_ready else "notReadyAddresses"
        members = _list(subset, field_name)
        share = min(math.ceil(len(members) / total * limit), room)
        kept = members[:share]
        if kept:
            subset[field_name] = kept
        else:
            subset.pop(field_name, None)
        if truncate_ready:
            subset.pop("notReadyAddresses", None)
        room -= len(kept)
    return out, True


# -- the pure part: the decision -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str


@dataclass(frozen=True, slots=True)
class Create:
    endpoints: Obj


@dataclass(frozen=True, slots=True)
class Update:
    endpoints: Obj
    """The replacement, carrying the ``resourceVersion`` of the object it replaces."""


Action = Skip | Create | Update


def _normal(value: Any) -> Any:
    """For comparing subsets as Go's semantic equality does: absent, null, "" and [] are the
    same zero value, and a target's resourceVersion does not count."""
    if isinstance(value, Mapping):
        return {k: _normal(v) for k, v in value.items()
                if v not in (None, "", [], {}) and k != "resourceVersion"}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _capacity_annotation_correct(current: ObjMap) -> bool:
    ready, not_ready = _count(_dicts(_list(current, "subsets")))
    if ready + not_ready > MAX_CAPACITY:
        return False
    return ANNOTATION_OVER_CAPACITY not in _map(_map(current, "metadata"), "annotations")


def plan_endpoints(service: ObjMap, pods: Iterable[ObjMap], current: ObjMap | None, *,
                   trigger_time: datetime | None = None) -> Action:
    """What to write for ``service``'s Endpoints, given the ``current`` object (None: none)."""
    if not manages_service(service):
        return Skip("no selector" if _str(_map(service, "spec"), "type") != "ExternalName"
                    else "ExternalName")
    meta = _map(service, "metadata")
    svc_labels = dict(_map(meta, "labels"))
    subsets = desired_subsets(service, pods)
    if current is not None:
        have_labels = {k: v for k, v in _map(_map(current, "metadata"), "labels").items()
                       if k != LABEL_HEADLESS}
        if (_normal(_list(current, "subsets")) == _normal(subsets) and have_labels == svc_labels
                and _capacity_annotation_correct(current)):
            return Skip("up to date")
        new = json_copy(dict(current))
    else:
        new = {"apiVersion": "v1", "kind": "Endpoints",
               "metadata": {"name": _str(meta, "name"), "namespace": _str(meta, "namespace")}}
    new_meta = new.get("metadata")
    if not isinstance(new_meta, dict):
        new_meta = new["metadata"] = {}
    annotations = dict(new_meta.get("annotations") or {})
    if trigger_time is not None:
        annotations[ANNOTATION_LAST_CHANGE_TRIGGER_TIME] = format_rfc3339_nano(trigger_time)
    else:
        annotations.pop(ANNOTATION_LAST_CHANGE_TRIGGER_TIME, None)
    subsets, truncated = truncate_subsets(subsets)
    if truncated:
        annotations[ANNOTATION_OVER_CAPACITY] = TRUNCATED
    else:
        annotations.pop(ANNOTATION_OVER_CAPACITY, None)
    labels = dict(svc_labels)
    if not is_service_ip_set(service):
        labels[LABEL_HEADLESS] = ""
    else:
        labels.pop(LABEL_HEADLESS, None)
    new_meta["labels"] = labels
    if annotations:
        new_meta["annotations"] = annotations
    else:
        new_meta.pop("annotations", None)
    new["subsets"] = subsets
    return Create(new) if current is None else Update(new)


# -- the applying part -----------------------------------------------------------------------


class EndpointsClient(EventSink, Protocol):
    """The writes the controller makes (RESTClient fits)."""

    async def update(self, gvr: GVR, obj: Obj, *, subresource: str = "",
                     dry_run: bool = False, field_manager: str = "") -> Obj: ...

    async def delete(self, gvr: GVR, namespace: str, name: str, *,
                     preconditions: Preconditions | None = None,
                     propagation_policy: str = "", dry_run: bool = False) -> Obj: ...


class APIClient(EndpointsClient, ListerWatcher, Protocol):
    """Reads and writes: what :meth:`EndpointsController.from_client` needs (RESTClient
    fits)."""


class EndpointsController(InformerController):
    """Maintains one Endpoints object per selector Service (see the module doc).

    As with :class:`~svcnet.controllers.endpointslice.EndpointSliceController`, the informers
    are passed in (tests fill never-started ones and call :meth:`sync`); :meth:`from_client`
    builds the usual set.
    """

    def __init__(self, client: EndpointsClient, *, services: Informer, pods: Informer,
                 endpoints: Informer, clock: Clock | None = None, workers: int = 1,
                 batch_period: float = 0.0, recorder: EventRecorder | None = None,
                 resync_period: float | None = None) -> None:
        self._client = client
        self.services = services
        self.pods = pods
        self.endpoints = endpoints
        self._clock: Clock = clock or RealClock()
        self.batch_period = batch_period
        self.recorder = recorder or EventRecorder(client, EVENT_SOURCE, clock=self._clock)
        self.trigger_times = TriggerTimeTracker()
        self._stale_rv: dict[str, str] = {}
        """key → the resourceVersion our last update replaced: seeing it again means the
        cache has not caught up with that update yet."""
        self.controller = Controller(COMPONENT, self.sync,
                                     informers=[services, pods, endpoints], workers=workers,
                                     clock=self._clock)
        self.service_handler = EventHandler.for_keys(self.queue.add)
        self.pod_handler = EventHandler(on_add=self._on_pod, on_update=self._on_pod_update,
                                        on_delete=self._on_pod)
        self.endpoints_handler = EventHandler(on_add=self._on_endpoints_add,
                                              on_delete=self._on_endpoints_delete)
        services.add_handler(self.service_handler, resync_period=resync_period)
        pods.add_handler(self.pod_handler)
        endpoints.add_handler(self.endpoints_handler)

    @classmethod
    def from_client(cls, client: APIClient, *, clock: Clock | None = None,
                    resync_period: float = DEFAULT_RESYNC, workers: int = 1,
                    batch_period: float = 0.0,
                    informers: InformerFactory | None = None) -> EndpointsController:
        """The usual wiring: Service (resyncing), Pod and Endpoints informers over ``client``."""
        factory = InformerFactory.of(informers, client, clock=clock)
        return cls(client, services=factory.informer(SERVICES, name="services"),
                   pods=factory.informer(PODS, name="pods"),
                   endpoints=factory.informer(ENDPOINTS, name="endpoints"), clock=clock,
                   workers=workers, batch_period=batch_period, resync_period=resync_period)


    @property
    def informers(self) -> tuple[Informer, ...]:
        return (self.services, self.pods, self.endpoints)


    # -- event handlers: keys only ----------------------------------------------------------

    def _services_in(self, namespace: str) -> list[Obj]:
        return self.services.by_index(NAMESPACE_INDEX, namespace)

    def _on_pod(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        ns = str(meta.get("namespace") or "")
        for key in sorted(services_for_pod(self._services_in(ns), ns, meta.get("labels"))):
            self.queue.add_after(key, self.batch_period)

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        ns = str((new.get("metadata") or {}).get("namespace") or "")
        for key in sorted(services_to_update_on_pod_change(self._services_in(ns), old, new)):
            self.queue.add_after(key, self.batch_period)

    def _on_endpoints_add(self, ep: Obj) -> None:
        # Only the initial list (upstream checkLeftoverEndpoints, once at start-up): later,
        # an Endpoints object created before its Service is the user's business.
        if self.endpoints.has_synced():
            return
        if LEADER_ANNOTATION in _map(_map(ep, "metadata"), "annotations"):
            return
        self.queue.add(object_key(ep))

    def _on_endpoints_delete(self, ep: Obj) -> None:
        # Recreate Endpoints deleted from under a live Service. (Upstream queues every
        # deletion; for a Service that is gone, that sync would only repeat our delete.)
        key = object_key(ep)
        if self.services.get(key) is not None:
            self.queue.add(key)

    # -- sync -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.services.get(key)
        if svc is None:
            # Upstream deletes by name, whether or not the cache has it: the cache may lag.
            try:
                await self._client.delete(ENDPOINTS, ns, name)
            except StatusError as e:
                if e.code != 404:
                    raise
            self.trigger_times.delete_service(ns, name)
            self._stale_rv.pop(key, None)
            return
        if not manages_service(svc):
            return
        current = self.endpoints.get(key)
        if current is not None and self._stale_rv.get(key) == _str(_map(current, "metadata"),
                                                                   "resourceVersion"):
            raise RequeueError("endpoints informer cache is out of date")
        selector = service_selector(svc) or {}
        pods = [p for p in self.pods.by_index(NAMESPACE_INDEX, ns)
                if selector_matches(selector, _map(p, "metadata").get("labels"))]
        trigger_time = self.trigger_times.compute(svc, pods)
        action = plan_endpoints(svc, pods, current, trigger_time=trigger_time)
        match action:
            case Skip():
                return
            case Create(endpoints=obj):
                await self._create(key, obj)
            case Update(endpoints=obj):
                await self._update(key, obj, current)

    async def _create(self, key: str, obj: Obj) -> None:
        try:
            await self._client.create(ENDPOINTS, obj, namespace=obj["metadata"]["namespace"])
        except StatusError as e:
            if is_namespace_terminating(e):
                return  # creates keep failing until the namespace is gone: drop the key
            await self.recorder.warning(obj, "FailedToCreateEndpoint",
                                        f"Failed to create endpoint for service {key}: {e}")
            if e.code == 409:
                # It exists but our cache has not seen it yet: retry once it has.
                raise RequeueError(f"Endpoints {key} already exists: {e}") from e
            raise
        log.debug("%s: created Endpoints", key)

    async def _update(self, key: str, obj: Obj, current: ObjMap | None) -> None:
        try:
            updated = await self._client.update(ENDPOINTS, obj)
        except StatusError as e:
            await self.recorder.warning(obj, "FailedToUpdateEndpoint",
                                        f"Failed to update endpoint {key}: {e}")
            if e.code in (404, 409):
                raise RequeueError(f"Endpoints {key} changed meanwhile: {e}") from e
            raise
        old_rv = _str(_map(current, "metadata"), "resourceVersion")
        if _str(_map(updated, "metadata"), "resourceVersion") != old_rv:
            # A no-op update keeps the resourceVersion; only a real one makes old_rv stale.
            self._stale_rv[key] = old_rv
        log.debug("%s: updated Endpoints", key)
