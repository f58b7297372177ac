"""The node's per-object ConfigMap/Secret watches: which objects, their lifetime, lookups, and
the wake-ups that start waiting containers (over an in-memory lister-watcher)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from svcnet.client.rest import GVR, ObjectList
from svcnet.client.watchstream import WatchEvent
from svcnet.node.objects import ObjectWatcher, pod_references
from svcnet.node.podenv import ObjectUnavailable
from tests.waiting import eventually

Obj = dict[str, Any]


class FakeObjects:
    """list+watch over a dict; honours the namespace and a metadata.name field selector."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.rev = 1
        self.watches: list[tuple[str, str, str, asyncio.Queue[WatchEvent]]] = []
        self.lists: list[tuple[str, str, str]] = []

    def put(self, resource: str, namespace: str, name: str, data: dict[str, str],
            **fields: Any) -> None:
        self.rev += 1
        etype = "MODIFIED" if (resource, namespace, name) in self.objects else "ADDED"
        meta = {"name": name, "resourceVersion": str(self.rev)}
        if namespace:
            meta["namespace"] = namespace
        obj = {"metadata": meta, "data": data, **fields}
        self.objects[(resource, namespace, name)] = obj
        for res, ns, sel, queue in self.watches:
            if (res, ns, sel) == (resource, namespace, f"metadata.name={name}"):
                queue.put_nowait(WatchEvent(etype, obj))

    async def list_all(self, gvr: GVR, namespace: str = "", *, label_selector: str = "",
                       field_selector: str = "", page_size: int = 500) -> ObjectList:
        self.lists.append((gvr.resource, namespace, field_selector))
        name = field_selector.removeprefix("metadata.name=")
        items = [o for (res, ns, n), o in self.objects.items()
                 if (res, ns, n) == (gvr.resource, namespace, name)]
        return ObjectList(items, str(self.rev))

    @asynccontextmanager
    async def watch(self, gvr: GVR, namespace: str = "", *, resource_version: str = "",
                    label_selector: str = "", field_selector: str = "",
                    timeout_seconds: int = 0, allow_bookmarks: bool = True
                    ) -> AsyncIterator[AsyncIterator[WatchEvent]]:
        queue: asyncio.Queue[WatchEvent] = asyncio.Queue()
        entry = (gvr.resource, namespace, field_selector, queue)
        self.watches.append(entry)

        async def events() -> AsyncIterator[WatchEvent]:
            while True:
                yield await queue.get()

        try:
            yield events()
        finally:
            self.watches.remove(entry)


def pod(name: str, *, cm: str = "", secret: str = "", deleted: bool = False) -> Obj:
    container: Obj = {"name": "app"}
    if cm:
        container["envFrom"] = [{"configMapRef": {"name": cm}}]
    meta: Obj = {"name": name, "namespace": "ns"}
    if deleted:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    volumes = [{"name": "s", "secret": {"secretName": secret}}] if secret else []
    return {"metadata": meta, "spec": {"containers": [container], "volumes": volumes}}


def claiming(name: str, claim: str) -> Obj:
    p = pod(name)
    p["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    return p


def test_pod_references() -> None:
    assert pod_references(pod("a", cm="c", secret="s")) == {
        ("ConfigMap", "ns", "c"), ("Secret", "ns", "s")}
    assert pod_references(pod("a", cm="c", deleted=True)) == set()
    assert pod_references(claiming("a", "data")) == {("PersistentVolumeClaim", "ns", "data")}


async def test_a_claim_is_watched_and_then_the_volume_it_is_bound_to() -> None:
    api = FakeObjects()
    api.put("persistentvolumes", "", "pv1", {}, spec={"hostPath": {"path": "/x"}})
    api.put("persistentvolumes", "", "pv2", {}, spec={"hostPath": {"path": "/y"}})
    woken: list[int] = []
    watcher = ObjectWatcher(api, on_change=lambda: woken.append(1))
    try:
        await watcher.track([claiming("a", "data")])
        assert watcher.watched() == {("PersistentVolumeClaim", "ns", "data")}
        assert watcher.lookup("PersistentVolumeClaim", "ns", "data") is None

        await eventually(lambda: len(api.watches) == 1)
        woken.clear()
        api.put("persistentvolumeclaims", "ns", "data", {}, spec={"volumeName": "pv1"},
                status={"phase": "Bound"})
        await eventually(lambda: bool(woken))  # the claim bound: the pod loop wakes
        await watcher.track([claiming("a", "data")])
        assert watcher.watched() == {("PersistentVolumeClaim", "ns", "data"),
                                     ("PersistentVolume", "", "pv1")}
        assert ("persistentvolumes", "", "metadata.name=pv1") in api.lists
        pv = watcher.lookup("PersistentVolume", "", "pv1")
        assert pv is not None and pv["spec"]["hostPath"] == {"path": "/x"}

        # A claim already bound when first seen: its volume is watched in the same track.
        api.put("persistentvolumeclaims", "ns", "other", {}, spec={"volumeName": "pv2"},
                status={"phase": "Bound"})
        await watcher.track([claiming("b", "other")])
        assert watcher.watched() == {("PersistentVolumeClaim", "ns", "other"),
                                     ("PersistentVolume", "", "pv2")}
        assert watcher.lookup("PersistentVolume", "", "pv2") is not None
        await watcher.track([])
        assert watcher.watched() == set()
    finally:
        await watcher.stop()


async def test_one_watch_per_referenced_object_and_wake_ups() -> None:
    api = FakeObjects()
    api.put("configmaps", "ns", "c", {"k": "v"})
    api.put("configmaps", "ns", "unrelated", {})
    woken: list[int] = []
    watcher = ObjectWatcher(api, on_change=lambda: woken.append(1))
    try:
        with pytest.raises(ObjectUnavailable):
            watcher.lookup("ConfigMap", "ns", "c")
        await watcher.track([pod("a", cm="c", secret="s"), pod("b", cm="c")])
        assert watcher.watched() == {("ConfigMap", "ns", "c"), ("Secret", "ns", "s")}
        assert sorted(api.lists) == [("configmaps", "ns", "metadata.name=c"),
                                     ("secrets", "ns", "metadata.name=s")]
        cm = watcher.lookup("ConfigMap", "ns", "c")
        assert cm is not None and cm["data"] == {"k": "v"}
        assert watcher.lookup("Secret", "ns", "s") is None  # synced, and absent

        await eventually(lambda: len(api.watches) == 2)
        woken.clear()
        api.put("secrets", "ns", "s", {"k": "dg=="})
        await eventually(lambda: watcher.lookup("Secret", "ns", "s") is not None)
        assert woken, "a change of a watched object wakes the pod sync"

        await watcher.track([pod("b", cm="c")])
        assert watcher.watched() == {("ConfigMap", "ns", "c")}
        await eventually(lambda: len(api.watches) == 1)
    finally:
        await watcher.stop()
