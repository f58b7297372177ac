"""Builders and an in-memory API for the EndpointSlice and Endpoints controller tests.

(This module holds no tests; it is named ``test_*`` only to live beside the tests that use it.)

Test address plan: pod IPv4 addresses 10.1.0.0/24, pod IPv6 addresses fd00:10:1::/64,
ClusterIPs from 10.96.0.0/12 and fd00:96::/112. Nodes: ``node-a`` (zone ``zone-a``),
``node-b`` (zone ``zone-b``), ``node-c`` (no zone label). Unless a case says otherwise the
Service is ``ns/web``, selects ``app=web`` and has one port ``http`` 80 → ``targetPort: http``;
pods ``p<n>`` run on ``node-a``, are Ready, and name container port 8080/TCP ``http``.

:class:`FakeAPI` behaves like the API server where the controllers can tell: ``generateName``,
uids, resourceVersions, conditional updates (409), uid preconditions on delete, the
EndpointSlice registry's defaulting, generation bumps and validation (422), no-op updates that
keep the resourceVersion, label-selected list and watch. It records every write in
:attr:`FakeAPI.actions`.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from svcnet.api import endpointslices as epsapi
from svcnet.api.errors import StatusError
from svcnet.api.labels import parse_selector
from svcnet.client.informer import Informer, object_key
from svcnet.client.rest import GVR, ObjectList, PatchType, Preconditions
from svcnet.client.watchstream import WatchEvent

Obj = dict[str, Any]
Mod = Callable[[Obj], None]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
"""The FakeClock's start; Services are created at T0 - 1h, pods become Ready at T0 - 30 min."""
SVC_CREATED = "2025-12-31T23:00:00Z"
POD_READY = "2025-12-31T23:30:00Z"

NODES: dict[str, Obj] = {
    "node-a": {"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": "node-a", "uid": "uid-node-a", "resourceVersion": "1",
                            "labels": {"topology.kubernetes.io/zone": "zone-a"}}},
    "node-b": {"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": "node-b", "uid": "uid-node-b", "resourceVersion": "1",
                            "labels": {"topology.kubernetes.io/zone": "zone-b"}}},
    "node-c": {"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": "node-c", "uid": "uid-node-c", "resourceVersion": "1"}},
}


# -- builders --------------------------------------------------------------------------------


def make_service(*mods: Mod, name: str = "web", ns: str = "ns") -> Obj:
    svc: Obj = {"apiVersion": "v1", "kind": "Service",
                "metadata": {"namespace": ns, "name": name, "uid": f"uid-{name}",
                             "resourceVersion": "10", "creationTimestamp": SVC_CREATED},
                "spec": {"type": "ClusterIP", "selector": {"app": "web"},
                         "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                         "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                         "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                    "targetPort": "http"}]}}
    for mod in mods:
        mod(svc)
    return svc


def make_pod(name: str, *mods: Mod, ip: str | None = None, ns: str = "ns") -> Obj:
    """A Ready pod; ``ip`` defaults to 10.1.0.<n> for ``p<n>``."""
    if ip is None:
        ip = f"10.1.0.{int(name.lstrip('p') or 0)}"
    pod: Obj = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"namespace": ns, "name": name, "uid": f"uid-{name}",
                             "resourceVersion": "20", "labels": {"app": "web"}},
                "spec": {"nodeName": "node-a",
                         "containers": [{"name": "app", "image": "app:1",
                                         "ports": [{"name": "http", "containerPort": 8080,
                                                    "protocol": "TCP"}]}]},
                "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                           "conditions": [{"type": "Ready", "status": "True",
                                           "lastTransitionTime": POD_READY}]}}
    for mod in mods:
        mod(pod)
    return pod


def spec(**fields: Any) -> Mod:
    return lambda obj: obj["spec"].update(fields)


def labels(**values: str) -> Mod:
    return lambda obj: obj["metadata"].__setitem__("labels", dict(values))


def meta(**fields: Any) -> Mod:
    return lambda obj: obj["metadata"].update(fields)


def ports(*service_ports: Obj) -> Mod:
    return lambda svc: svc["spec"].__setitem__("ports", [dict(p) for p in service_ports])


def dual_stack(svc: Obj) -> None:
    svc["spec"].update(ipFamilies=["IPv4", "IPv6"], ipFamilyPolicy="RequireDualStack",
                       clusterIPs=["10.96.0.10", "fd00:96::10"])


def headless(svc: Obj) -> None:
    svc["spec"].update(clusterIP="None", clusterIPs=["None"])


def publish_not_ready(svc: Obj) -> None:
    svc["spec"]["publishNotReadyAddresses"] = True


def not_ready(pod: Obj, *, at: str = "2026-01-01T00:00:00Z") -> None:
    pod["status"]["conditions"] = [{"type": "Ready", "status": "False",
                                    "lastTransitionTime": at}]


def ready_at(at: str) -> Mod:
    return lambda pod: pod["status"].__setitem__(
        "conditions", [{"type": "Ready", "status": "True", "lastTransitionTime": at}])


def terminating(obj: Obj) -> None:
    obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"


def phase(value: str) -> Mod:
    return lambda pod: pod["status"].__setitem__("phase", value)


def no_ip(pod: Obj) -> None:
    pod["status"].pop("podIP", None)
    pod["status"].pop("podIPs", None)


def ips(*addresses: str) -> Mod:
    def set_ips(pod: Obj) -> None:
        pod["status"]["podIP"] = addresses[0]
        pod["status"]["podIPs"] = [{"ip": a} for a in addresses]
    return set_ips


def on_node(name: str) -> Mod:
    return lambda pod: pod["spec"].__setitem__("nodeName", name)


def container_ports(*container_port_list: Obj) -> Mod:
    return lambda pod: pod["spec"]["containers"][0].__setitem__(
        "ports", [dict(p) for p in container_port_list])


def rv(value: str) -> Mod:
    return lambda obj: obj["metadata"].__setitem__("resourceVersion", value)


def mods(*fns: Mod) -> Mod:
    def apply(obj: Obj) -> None:
        for fn in fns:
            fn(obj)
    return apply


def pods(count: int, start: int = 0) -> list[Obj]:
    """``count`` Ready pods p<start>.. with IPs 10.1.<n // 250>.<n % 250 + 1>."""
    return [make_pod(f"p{n}", ip=f"10.1.{n // 250}.{n % 250 + 1}")
            for n in range(start, start + count)]


# -- reading results -------------------------------------------------------------------------


def describe_endpoint(ep: Obj) -> str:
    """``"<address> <pod> ready,serving"`` (flags: the true conditions, or ``-``), plus
    ``host=``/``zone=`` when set."""
    cond = ep.get("conditions") or {}
    flags = ",".join(c for c in ("ready", "serving", "terminating") if cond.get(c)) or "-"
    text = f"{' '.join(ep['addresses'])} {ep['targetRef']['name']} {flags}"
    if ep.get("hostname"):
        text += f" host={ep['hostname']}"
    if ep.get("zone"):
        text += f" zone={ep['zone']}"
    return text


def describe_port(port: Obj) -> str:
    text = f"{port.get('name') or '-'}/{port.get('protocol')}:{port.get('port')}"
    if port.get("appProtocol"):
        text += f"({port['appProtocol']})"
    return text


def describe(eps: Obj) -> tuple[str, list[str], list[str]]:
    return (eps["addressType"], [describe_port(p) for p in eps.get("ports") or []],
            [describe_endpoint(e) for e in eps.get("endpoints") or []])


# -- the in-memory API -----------------------------------------------------------------------


_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class FakeAPI:
    """An in-memory API server for any resource type (see the module doc)."""

    def __init__(self) -> None:
        self.rev = 100
        self.objects: dict[str, dict[str, Obj]] = {}
        self.actions: list[tuple[str, str, str]] = []
        self.fail: dict[str, list[Exception]] = {}
        """verb → exceptions to raise on the next calls of that verb (before anything else)."""
        self._names = 0
        self._uids = 0
        self._watchers: list[tuple[GVR, str, asyncio.Queue[WatchEvent]]] = []

    # -- test controls ----------------------------------------------------------------------

    def store(self, gvr: GVR) -> dict[str, Obj]:
        return self.objects.setdefault(gvr.resource, {})

    def items(self, gvr: GVR) -> list[Obj]:
        return [copy.deepcopy(o) for _, o in sorted(self.store(gvr).items())]

    def get(self, gvr: GVR, key: str) -> Obj | None:
        obj = self.store(gvr).get(key)
        return copy.deepcopy(obj) if obj is not None else None

    def seed(self, gvr: GVR, obj: Obj) -> Obj:
        """Put ``obj`` on the server as is (a new resourceVersion; uid kept or made up)."""
        obj = copy.deepcopy(obj)
        obj.setdefault("apiVersion", gvr.api_version)
        obj.setdefault("kind", gvr.kind)
        meta = obj["metadata"]
        meta.setdefault("uid", self._new_uid())
        key = object_key(obj)
        etype = "MODIFIED" if key in self.store(gvr) else "ADDED"
        self._commit(gvr, key, obj, etype)
        return copy.deepcopy(obj)

    def remove(self, gvr: GVR, key: str) -> None:
        obj = self.store(gvr).pop(key)
        self.rev += 1
        obj["metadata"]["resourceVersion"] = str(self.rev)
        self._publish(gvr, "DELETED", obj, obj)

    def writes(self, resource: str = "endpointslices") -> list[tuple[str, str]]:
        """``(verb, key)`` of the writes to ``resource``, in order."""
        return [(verb, key) for verb, res, key in self.actions if res == resource]

    # -- internals --------------------------------------------------------------------------

    def _new_uid(self) -> str:
        self._uids += 1
        return f"uid-{self._uids:04d}"

    def _generate(self, prefix: str) -> str:
        self._names += 1
        n, suffix = self._names, ""
        for _ in range(5):
            n, digit = divmod(n, len(_ALPHABET))
            suffix += _ALPHABET[digit]
        return prefix[:58] + suffix

    def _check_fail(self, verb: str) -> None:
        pending = self.fail.get(verb)
        if pending:
            raise pending.pop(0)

    def _commit(self, gvr: GVR, key: str, obj: Obj, etype: str) -> None:
        old = self.store(gvr).get(key)
        self.rev += 1
        obj["metadata"]["resourceVersion"] = str(self.rev)
        self.store(gvr)[key] = obj
        self._publish(gvr, etype, obj, old)

    def _publish(self, gvr: GVR, etype: str, obj: Obj, old: Obj | None) -> None:
        for wgvr, selector, q in self._watchers:
            if wgvr != gvr:
                continue
            sel = parse_selector(selector)
            now = sel.matches(obj["metadata"].get("labels"))
            was = old is not None and sel.matches(old["metadata"].get("labels"))
            if etype == "DELETED":
                if now:
                    q.put_nowait(WatchEvent("DELETED", copy.deepcopy(obj)))
            elif now:
                q.put_nowait(WatchEvent("ADDED" if etype == "ADDED" or not was else "MODIFIED",
                                        copy.deepcopy(obj)))
            elif was:
                q.put_nowait(WatchEvent("DELETED", copy.deepcopy(obj)))

    @staticmethod
    def _not_found(gvr: GVR, name: str) -> StatusError:
        return StatusError(404, "NotFound", f'{gvr} "{name}" not found')

    # -- the client surface -----------------------------------------------------------------

    async def create(self, gvr: GVR, obj: Obj, *, namespace: str | None = None,
                     dry_run: bool = False, field_manager: str = "") -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if namespace is not None:
            meta["namespace"] = namespace
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate(meta["generateName"])
        key = object_key(obj)
        self.actions.append(("create", gvr.resource, key))
        self._check_fail("create")
        if key in self.store(gvr):
            raise StatusError(409, "AlreadyExists", f'{gvr} "{meta["name"]}" already exists')
        if gvr.resource == "endpointslices":
            obj = epsapi.prepare_endpointslice_for_create(epsapi.set_defaults_endpointslice(obj))
            errs = epsapi.validate_endpointslice(obj)
            if errs:
                raise StatusError(422, "Invalid", "; ".join(str(e) for e in errs))
            meta = obj["metadata"]
        meta["uid"] = self._new_uid()
        meta["creationTimestamp"] = "2026-01-01T00:00:00Z"
        self._commit(gvr, key, obj, "ADDED")
        return copy.deepcopy(obj)

    async def update(self, gvr: GVR, obj: Obj, *, subresource: str = "",
                     dry_run: bool = False, field_manager: str = "") -> Obj:
        key = object_key(obj)
        self.actions.append(("update", gvr.resource, key))
        self._check_fail("update")
        current = self.store(gvr).get(key)
        if current is None:
            raise self._not_found(gvr, obj["metadata"]["name"])
        given_rv = obj["metadata"].get("resourceVersion")
        if given_rv and given_rv != current["metadata"]["resourceVersion"]:
            raise StatusError(409, "Conflict", "the object has been modified; please apply "
                                               "your changes to the latest version and try again")
        new = copy.deepcopy(obj)
        for f in ("uid", "creationTimestamp", "generation"):
            if f in current["metadata"]:
                new["metadata"].setdefault(f, current["metadata"][f])
        if gvr.resource == "endpointslices":
            new = epsapi.prepare_endpointslice_for_update(
                epsapi.set_defaults_endpointslice(new), current)
            errs = epsapi.validate_endpointslice_update(new, current)
            if errs:
                raise StatusError(422, "Invalid", "; ".join(str(e) for e in errs))
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if new == current:
            return copy.deepcopy(current)  # a no-op keeps the resourceVersion
        self._commit(gvr, key, new, "MODIFIED")
        return copy.deepcopy(new)

    async def delete(self, gvr: GVR, namespace: str, name: str, *,
                     preconditions: Preconditions | None = None,
                     propagation_policy: str = "", dry_run: bool = False) -> Obj:
        key = f"{namespace}/{name}" if namespace else name
        self.actions.append(("delete", gvr.resource, key))
        self._check_fail("delete")
        current = self.store(gvr).get(key)
        if current is None:
            raise self._not_found(gvr, name)
        if preconditions is not None and preconditions.uid and (
                preconditions.uid != current["metadata"].get("uid")):
            raise StatusError(409, "Conflict", "Precondition failed: UID in precondition: "
                                               f"{preconditions.uid}")
        self.remove(gvr, key)
        return copy.deepcopy(current)

    async def patch(self, gvr: GVR, namespace: str, name: str, patch: Any, *,
                    patch_type: PatchType = PatchType.MERGE, subresource: str = "",
                    dry_run: bool = False, field_manager: str = "", force: bool = False) -> Obj:
        key = f"{namespace}/{name}"
        self.actions.append(("patch", gvr.resource, key))
        current = self.store(gvr).get(key)
        if current is None:
            raise self._not_found(gvr, name)
        new = copy.deepcopy(current)
        new.update(patch)
        self._commit(gvr, key, new, "MODIFIED")
        return copy.deepcopy(new)

    async def list_all(self, gvr: GVR, namespace: str = "", *, label_selector: str = "",
                       field_selector: str = "", page_size: int = 500) -> ObjectList:
        sel = parse_selector(label_selector)
        items = [o for o in self.items(gvr) if sel.matches(o["metadata"].get("labels"))
                 and (not namespace or o["metadata"].get("namespace") == namespace)]
        return ObjectList(items, str(self.rev))

    @asynccontextmanager
    async def _stream(self, gvr: GVR, selector: str) -> AsyncIterator[AsyncIterator[WatchEvent]]:
        q: asyncio.Queue[WatchEvent] = asyncio.Queue()
        entry = (gvr, selector, q)
        self._watchers.append(entry)

        async def events() -> AsyncGenerator[WatchEvent, None]:
            while True:
                yield await q.get()

        gen = events()
        try:
            yield gen
        finally:
            self._watchers.remove(entry)
            await gen.aclose()

    def watch(self, gvr: GVR, namespace: str = "", *, resource_version: str = "",
              label_selector: str = "", field_selector: str = "", timeout_seconds: int = 300,
              allow_bookmarks: bool = True
              ) -> AbstractAsyncContextManager[AsyncIterator[WatchEvent]]:
        return self._stream(gvr, label_selector)


def sync_cache(informer: Informer, items: Iterable[Obj]) -> None:
    """Make a never-started informer's cache hold exactly ``items`` (no handlers run)."""
    fresh = {object_key(o): copy.deepcopy(o) for o in items}
    for key in informer.indexer.list_keys():
        if key not in fresh:
            informer.indexer.delete(key)
    for key, obj in fresh.items():
        informer.indexer.upsert(key, obj)


def later(ts: str, seconds: int) -> str:
    """An RFC 3339 timestamp ``seconds`` after ``ts``."""
    dt = datetime.fromisoformat(ts) + timedelta(seconds=seconds)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
