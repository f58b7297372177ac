"""Builders and an in-process API for the workload controller and garbage collector tests.

(This module holds no tests; it is named ``test_*`` only to live beside the tests that use it.)

:class:`RegistryAPI` is the client surface the controllers use (get, list_all, watch, create,
update, patch, delete) implemented directly on svcnet's real registries over a
:class:`MemoryStore`: real defaulting, validation, generation bumps, status subresources,
generateName, resourceVersion conflicts, uid preconditions and patch semantics (JSON, merge and
strategic, through :mod:`svcnet.apiserver.patch`). It adds what the registry does not do yet
and a Kubernetes API server does: finalizers on delete (a delete of an object with finalizers,
or with ``propagationPolicy`` Orphan/Foreground, only sets ``deletionTimestamp`` and the
``orphan``/``foregroundDeletion`` finalizer; an update that removes the last finalizer of such an
object deletes it). Pods are deleted at once unless bound to a node (then gracefully, as the
pod strategy says). Every write is recorded in :attr:`RegistryAPI.actions`.

:class:`World` wires the API to never-started informers (``catch_up`` copies the store into
their caches without running handlers) so tests can call ``sync`` directly, and offers a
"kubelet" that marks pods Ready.
"""

from __future__ import annotations

import copy
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from svcnet.api import errors
from svcnet.api.errors import StatusError
from svcnet.apiserver import patch as patching
from svcnet.client.informer import Informer, object_key
from svcnet.client.rest import (
    CONFIGMAPS,
    ENDPOINTSLICES,
    EVENTS,
    GVR,
    NAMESPACES,
    NODES,
    PERSISTENTVOLUMECLAIMS,
    PODS,
    SECRETS,
    SERVICEACCOUNTS,
    SERVICES,
    ObjectList,
    PatchType,
    Preconditions,
)
from svcnet.client.watchstream import WatchEvent
from svcnet.controllers.ownership import (
    CONTROLLERREVISIONS,
    CRONJOBS,
    DAEMONSETS,
    DEPLOYMENTS,
    JOBS,
    REPLICASETS,
    REPLICATIONCONTROLLERS,
    STATEFULSETS,
)
from svcnet.registry.batch import CronJobStrategy, JobStrategy
from svcnet.registry.configs import ConfigMapStrategy, SecretStrategy, ServiceAccountStrategy
from svcnet.registry.generic import Preconditions as RegistryPreconditions, Registry, Strategy
from svcnet.registry.strategies import (
    EndpointSliceStrategy,
    EventStrategy,
    MetaOnlyStrategy,
    NamespaceStrategy,
    NodeStrategy,
    PodStrategy,
)
from svcnet.registry.volumes import PersistentVolumeClaimStrategy
from svcnet.registry.workloads import (
    ControllerRevisionStrategy,
    DaemonSetStrategy,
    DeploymentStrategy,
    ReplicaSetStrategy,
    ReplicationControllerStrategy,
    StatefulSetStrategy,
)
from svcnet.storage.memory import MemoryStore
from svcnet.util.clock import FakeClock, rfc3339

Obj = dict[str, Any]
Mod = Callable[[Obj], None]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"


class _ServiceLite(MetaOnlyStrategy):
    """Services without allocation (the GC tests only need them as owners)."""

    kind: ClassVar[str] = "Service"
    resource: ClassVar[str] = "services"


_PATCH_TYPES = {PatchType.JSON: patching.PatchType.JSON,
                PatchType.MERGE: patching.PatchType.MERGE,
                PatchType.STRATEGIC: patching.PatchType.STRATEGIC}


def _strategies() -> dict[GVR, Strategy]:
    return {PODS: PodStrategy(), REPLICASETS: ReplicaSetStrategy(),
            DEPLOYMENTS: DeploymentStrategy(), ENDPOINTSLICES: EndpointSliceStrategy(),
            SERVICES: _ServiceLite(), NAMESPACES: NamespaceStrategy(), EVENTS: EventStrategy(),
            CONFIGMAPS: ConfigMapStrategy(), SECRETS: SecretStrategy(),
            SERVICEACCOUNTS: ServiceAccountStrategy(), NODES: NodeStrategy(),
            DAEMONSETS: DaemonSetStrategy(), STATEFULSETS: StatefulSetStrategy(),
            CONTROLLERREVISIONS: ControllerRevisionStrategy(),
            REPLICATIONCONTROLLERS: ReplicationControllerStrategy(), JOBS: JobStrategy(),
            CRONJOBS: CronJobStrategy(), PERSISTENTVOLUMECLAIMS: PersistentVolumeClaimStrategy()}


class RegistryAPI:
    """The controllers' client over real registries (see the module doc)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.store = MemoryStore()
        self._uids = 0
        self.registries: dict[GVR, Registry] = {
            gvr: Registry(self.store, strategy, clock=clock, rng=random.Random(7),
                          uid_factory=self._new_uid)
            for gvr, strategy in _strategies().items()}
        self.actions: list[tuple[str, str, str]] = []
        self.fail: dict[str, list[Exception]] = {}
        """verb → exceptions to raise on the next calls of that verb."""

    def _new_uid(self) -> str:
        self._uids += 1
        return f"uid-{self._uids:04d}"

    def _check_fail(self, verb: str) -> None:
        pending = self.fail.get(verb)
        if pending:
            raise pending.pop(0)

    @staticmethod
    def _key(namespace: str, name: str) -> str:
        return f"{namespace}/{name}" if namespace else name

    def writes(self, resource: str) -> list[tuple[str, str]]:
        return [(verb, key) for verb, res, key in self.actions if res == resource]

    # -- reads ------------------------------------------------------------------------------

    async def items(self, gvr: GVR, namespace: str = "") -> list[Obj]:
        page = await self.registries[gvr].list(namespace)
        return [self._typed(gvr, o) for o in page.items]

    async def find(self, gvr: GVR, key: str) -> Obj | None:
        ns, _, name = key.rpartition("/")
        try:
            return await self.get(gvr, ns, name)
        except StatusError:
            return None

    @staticmethod
    def _typed(gvr: GVR, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        obj["apiVersion"] = gvr.api_version
        obj["kind"] = gvr.kind
        return obj

    async def request(self, method: str, path: str, *, params: Any = None, body: Any = None,
                      content_type: str = "application/json") -> Any:
        """Discovery: no custom resources here."""
        raise StatusError(404, "NotFound", "the server could not find the requested resource")

    async def get(self, gvr: GVR, namespace: str, name: str, *, subresource: str = "") -> Obj:
        return self._typed(gvr, await self.registries[gvr].get(namespace, name))

    async def list_all(self, gvr: GVR, namespace: str = "", *, label_selector: str = "",
                       field_selector: str = "", page_size: int = 500) -> ObjectList:
        page = await self.registries[gvr].list(namespace)
        return ObjectList([self._typed(gvr, o) for o in page.items], page.resource_version)

    @asynccontextmanager
    async def _stream(self, gvr: GVR, namespace: str, rv: str
                      ) -> AsyncIterator[AsyncIterator[WatchEvent]]:
        events = self.registries[gvr].watch(namespace, int(rv or 0))

        async def gen() -> AsyncGenerator[WatchEvent, None]:
            async for etype, obj, _ in events:
                yield WatchEvent(str(etype), self._typed(gvr, obj))

        g = gen()
        try:
            yield g
        finally:
            await g.aclose()

    def watch(self, gvr: GVR, namespace: str = "", *, resource_version: str = "",
              label_selector: str = "", field_selector: str = "", timeout_seconds: int = 300,
              allow_bookmarks: bool = True
              ) -> AbstractAsyncContextManager[AsyncIterator[WatchEvent]]:
        return self._stream(gvr, namespace, resource_version)

    # -- writes -----------------------------------------------------------------------------

    async def create(self, gvr: GVR, obj: Obj, *, namespace: str | None = None,
                     dry_run: bool = False, field_manager: str = "") -> Obj:
        obj = self._typed(gvr, obj)
        ns = namespace if namespace is not None else str(obj["metadata"].get("namespace", ""))
        self.actions.append(("create", gvr.resource,
                             self._key(ns, obj["metadata"].get("name")
                                       or obj["metadata"].get("generateName", "") + "*")))
        self._check_fail("create")
        return self._typed(gvr, await self.registries[gvr].create(ns, obj))

    async def update(self, gvr: GVR, obj: Obj, *, subresource: str = "",
                     dry_run: bool = False, field_manager: str = "") -> Obj:
        meta = obj["metadata"]
        ns, name = str(meta.get("namespace") or ""), str(meta["name"])
        verb = "update" if not subresource else f"update/{subresource}"
        self.actions.append((verb, gvr.resource, self._key(ns, name)))
        self._check_fail(verb)
        written = await self.registries[gvr].update(ns, name, self._typed(gvr, obj),
                                                    status_only=subresource == "status")
        return await self._finish_deletion(gvr, written)

    async def patch(self, gvr: GVR, namespace: str, name: str, patch: Any, *,
                    patch_type: PatchType = PatchType.MERGE, subresource: str = "",
                    dry_run: bool = False, field_manager: str = "", force: bool = False) -> Obj:
        self.actions.append(("patch", gvr.resource, self._key(namespace, name)))
        self._check_fail("patch")
        for _ in range(5):
            current = await self.get(gvr, namespace, name)
            rv = current["metadata"]["resourceVersion"]
            patched = patching.apply_patch(_PATCH_TYPES[patch_type], current, patch,
                                           gvr.api_version, gvr.kind)
            conditional = patched["metadata"].get("resourceVersion") not in (None, "", rv)
            patched["metadata"].setdefault("resourceVersion", rv)
            try:
                written = await self.registries[gvr].update(
                    namespace, name, patched, status_only=subresource == "status")
            except StatusError as e:
                if e.code == 409 and not conditional:
                    continue
                raise
            return await self._finish_deletion(gvr, self._typed(gvr, written))
        raise errors.conflict(gvr.resource, name, "kept changing")

    async def _finish_deletion(self, gvr: GVR, obj: Obj) -> Obj:
        """Store.Update's shouldDeleteDuringUpdate: the last finalizer of a deleted object."""
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and meta.get(
                "deletionGracePeriodSeconds") == 0:
            await self.registries[gvr].delete(str(meta.get("namespace") or ""), meta["name"])
        return obj

    async def delete(self, gvr: GVR, namespace: str, name: str, *,
                     preconditions: Preconditions | None = None,
                     propagation_policy: str = "", dry_run: bool = False,
                     grace_period: int | None = None) -> Obj:
        self.actions.append(("delete", gvr.resource, self._key(namespace, name)))
        self._check_fail("delete")
        registry = self.registries[gvr]
        current = await registry.get(namespace, name)
        pre = RegistryPreconditions(uid=preconditions.uid if preconditions else "")
        if pre.uid and pre.uid != current["metadata"].get("uid"):
            raise errors.conflict(gvr.resource, name,
                                  f"Precondition failed: UID in precondition: {pre.uid}, UID "
                                  f"in object meta: {current['metadata'].get('uid')}")
        own = list(current["metadata"].get("finalizers") or [])
        wanted = [f for f in own if f not in (ORPHAN, FOREGROUND)]
        if propagation_policy == "Orphan" or (not propagation_policy and ORPHAN in own):
            wanted.append(ORPHAN)
        if propagation_policy == "Foreground" or (not propagation_policy and FOREGROUND in own):
            wanted.append(FOREGROUND)
        if current["metadata"].get("deletionTimestamp"):
            return self._typed(gvr, current)
        if wanted:
            now = rfc3339(self.clock.now())

            def mark(obj: Obj) -> Obj:
                obj["metadata"]["finalizers"] = wanted
                obj["metadata"]["deletionTimestamp"] = now
                obj["metadata"]["deletionGracePeriodSeconds"] = 0
                return obj

            return self._typed(gvr, await registry.guaranteed_update(namespace, name, mark))
        return self._typed(gvr, await registry.delete(namespace, name, preconditions=pre,
                                                      grace_period=grace_period,
                                                      propagation_policy=propagation_policy))


# -- builders --------------------------------------------------------------------------------


def make_deployment(name: str = "web", *mods: Mod, replicas: int = 3, image: str = "app:1",
                    ns: str = "ns") -> Obj:
    d: Obj = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": name, "namespace": ns},
              "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                       "template": {"metadata": {"labels": {"app": name}},
                                    "spec": {"containers": [{"name": "app", "image": image}]}}}}
    for mod in mods:
        mod(d)
    return d


def make_replicaset(name: str = "rs", *mods: Mod, replicas: int = 3, ns: str = "ns",
                    labels: dict[str, str] | None = None) -> Obj:
    lbl = labels or {"app": name}
    rs: Obj = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
               "metadata": {"name": name, "namespace": ns, "labels": dict(lbl)},
               "spec": {"replicas": replicas, "selector": {"matchLabels": dict(lbl)},
                        "template": {"metadata": {"labels": dict(lbl)},
                                     "spec": {"containers": [{"name": "app",
                                                              "image": "app:1"}]}}}}
    for mod in mods:
        mod(rs)
    return rs


def make_pod(name: str, labels: dict[str, str], *mods: Mod, ns: str = "ns") -> Obj:
    pod: Obj = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
                "spec": {"containers": [{"name": "app", "image": "app:1"}]}}
    for mod in mods:
        mod(pod)
    return pod


def spec(**fields: Any) -> Mod:
    return lambda obj: obj["spec"].update(fields)


def strategy(**fields: Any) -> Mod:
    return lambda obj: obj["spec"].__setitem__("strategy", dict(fields))


def at(seconds: float) -> str:
    """T0 + ``seconds`` as an RFC 3339 timestamp."""
    return rfc3339(T0 + timedelta(seconds=seconds))


# -- the world -------------------------------------------------------------------------------


class World:
    """An API, never-started informers over it, and helpers (see the module doc)."""

    RESOURCES = (PODS, REPLICASETS, DEPLOYMENTS)

    def __init__(self, resources: Iterable[GVR] = RESOURCES) -> None:
        self.clock = FakeClock(T0)
        self.api = RegistryAPI(self.clock)
        self.informers: dict[GVR, Informer] = {
            gvr: Informer(self.api, gvr, clock=self.clock, name=str(gvr)) for gvr in resources}

    async def catch_up(self, *, notify: bool = False) -> None:
        """The informers' caches become the store's content; with ``notify`` the handlers
        hear about the differences, as after a watch (or relist) delivered them."""
        for gvr, informer in self.informers.items():
            items = await self.api.items(gvr)
            if notify:
                informer._replace(items)
                continue
            fresh = {object_key(o): o for o in items}
            for key in informer.indexer.list_keys():
                if key not in fresh:
                    informer.indexer.delete(key)
            for key, obj in fresh.items():
                informer.indexer.upsert(key, obj)

    async def create(self, gvr: GVR, obj: Obj) -> Obj:
        created = await self.api.create(gvr, obj)
        await self.catch_up()
        return created

    async def pods(self, ns: str = "ns") -> list[Obj]:
        return await self.api.items(PODS, ns)

    async def replicasets(self, ns: str = "ns") -> list[Obj]:
        return sorted(await self.api.items(REPLICASETS, ns),
                      key=lambda rs: rs["metadata"]["name"])

    async def mark_ready(self, *, ready: bool = True,
                         only: Callable[[Obj], bool] = lambda pod: True) -> None:
        """A kubelet: pods Running, and Ready (or not) since now. The caches are left to
        :meth:`catch_up`."""
        for pod in await self.pods():
            if not only(pod) or pod["metadata"].get("deletionTimestamp"):
                continue
            status = pod.get("status") or {}
            already = any(c.get("type") == "Ready" and c.get("status") == ("True" if ready
                                                                           else "False")
                          for c in status.get("conditions") or [])
            if already:
                continue
            status.update(phase="Running", conditions=[
                {"type": "Ready", "status": "True" if ready else "False",
                 "lastTransitionTime": rfc3339(self.clock.now())}])
            pod["status"] = status
            await self.api.update(PODS, pod, subresource="status")


async def settle(world: World, step: Callable[[], Awaitable[Any]], *, rounds: int = 40
                 ) -> None:
    """Run ``step`` (one round of syncs) until the store stops changing."""
    last = -1
    for _ in range(rounds):
        await step()
        await world.catch_up()
        rev = await world.api.store.current_revision()
        if rev == last:
            return
        last = rev
    raise AssertionError("the world did not settle")
