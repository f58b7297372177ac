"""The ConfigMaps, Secrets, PersistentVolumeClaims and PersistentVolumes a node's pods use,
watched one object at a time.

Theory of operation
-------------------
The kubelet's watch-based configMap and secret managers
(pkg/kubelet/util/manager/watch_based_manager.go): for every object some pod on the node
references (``env``, ``envFrom``, volumes), one informer lists and watches exactly that object
(namespace plus ``fieldSelector=metadata.name=<name>``), reference-counted by pods: it starts
when the first pod naming it is seen and stops when the last one is gone. A node therefore
asks the API server only for objects its own pods name, which is also all that upstream's
Node authorizer lets it read.

Claims are watched the same way: the claim of each ``persistentVolumeClaim`` volume, and the
PersistentVolume a watched claim is bound to (its ``spec.volumeName``, once its informer has
it). The kubelet's volume populator instead gets both again on every pass
(pkg/kubelet/volumemanager/populator/desired_state_of_world_populator.go); a watch makes a
claim that binds, or a volume that changes, wake the pod loop at once rather than at the next
retry. The volume's reference follows the claim: :meth:`ObjectWatcher.track` works out the
claims' volumes after the claims' informers have synced (a second round), and a claim that
binds later wakes the pod loop, whose next ``track`` starts the volume's informer.

:meth:`ObjectWatcher.track` is called with the node's pods before every pod sync; it starts
the informers of new references and waits (a bounded time) for them to sync, so a lookup
right after answers "exists" or "does not exist" from a complete list rather than from an
empty cache. :meth:`ObjectWatcher.lookup` is the :data:`~svcnet.node.podenv.Lookup` the pod
runner's pure functions use: the cached object, None when the synced informer holds none,
or :class:`~svcnet.node.podenv.ObjectUnavailable` while its informer has not synced (the
API is unreachable, or forbids the read); the container then waits with that message. Every
change of a watched object calls ``on_change``, which wakes the agent's pod loop: that is
what starts a waiting container once its key appears, and rewrites a volume when its
ConfigMap changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from svcnet.api.podrefs import (
    CONFIG_MAP,
    PERSISTENT_VOLUME,
    PERSISTENT_VOLUME_CLAIM,
    SECRET,
    pod_claim_names,
    pod_config_references,
)
from svcnet.client.informer import EventHandler, Informer, ListerWatcher
from svcnet.client.rest import (
    CONFIGMAPS,
    GVR,
    PERSISTENTVOLUMECLAIMS,
    PERSISTENTVOLUMES,
    SECRETS,
)
from svcnet.node.podenv import ObjectUnavailable
from svcnet.node.pods import is_terminal_phase
from svcnet.util.clock import Clock

__all__ = ["ObjectWatcher", "needs_config", "pod_references"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Ref = tuple[str, str, str]
"""(kind, namespace, name)."""
_GVRS: Final[Mapping[str, GVR]] = {
    CONFIG_MAP: CONFIGMAPS, SECRET: SECRETS, PERSISTENT_VOLUME_CLAIM: PERSISTENTVOLUMECLAIMS,
    PERSISTENT_VOLUME: PERSISTENTVOLUMES}
SYNC_WAIT: Final = 5.0
"""Longest wait, per pod sync, for the informers of newly referenced objects."""


def needs_config(pod: Mapping[str, Any]) -> bool:
    """Whether the pod may still start containers (not terminating, not finished): only those
    keep objects watched and tokens cached."""
    meta = pod.get("metadata") or {}
    return not meta.get("deletionTimestamp") and not is_terminal_phase(
        (pod.get("status") or {}).get("phase"))


def pod_references(pod: Mapping[str, Any]) -> set[Ref]:
    """Every ConfigMap, Secret and PersistentVolumeClaim the pod's containers and volumes
    name (a claim's volume is known only from the claim: :meth:`ObjectWatcher.track`)."""
    if not needs_config(pod):
        return set()
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    refs = {(kind, namespace, name) for kind, name in pod_config_references(pod)}
    refs.update((PERSISTENT_VOLUME_CLAIM, namespace, name) for name in pod_claim_names(pod))
    return refs


def _key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


class ObjectWatcher:
    def __init__(self, client: ListerWatcher, *, clock: Clock | None = None,
                 on_change: Callable[[], None] | None = None,
                 sync_wait: float = SYNC_WAIT) -> None:
        self._client = client
        self._clock = clock
        self._on_change = on_change
        self._sync_wait = sync_wait
        self._informers: dict[Ref, Informer] = {}
        self._sync_tasks: dict[Ref, asyncio.Task[None]] = {}

    def watched(self) -> set[Ref]:
        return set(self._informers)

    def lookup(self, kind: str, namespace: str, name: str) -> Obj | None:
        informer = self._informers.get((kind, namespace, name))
        if informer is None or not informer.has_synced():
            raise ObjectUnavailable(f"{kind.lower()} {_key(namespace, name)} is not known to "
                                    "the node yet (cannot list and watch it)")
        return informer.get(_key(namespace, name))

    def _claimed_volumes(self, wanted: set[Ref]) -> set[Ref]:
        """The PersistentVolumes the watched claims among ``wanted`` are bound to."""
        out: set[Ref] = set()
        for kind, namespace, name in wanted:
            informer = self._informers.get((kind, namespace, name))
            if kind != PERSISTENT_VOLUME_CLAIM or informer is None or \
                    not informer.has_synced():
                continue
            claim = informer.get(_key(namespace, name)) or {}
            if volume := str((claim.get("spec") or {}).get("volumeName") or ""):
                out.add((PERSISTENT_VOLUME, "", volume))
        return out

    def _changed(self, *_objs: Obj) -> None:
        if self._on_change is not None:
            self._on_change()

    async def track(self, pods: Iterable[Mapping[str, Any]]) -> None:
        """Watch exactly the objects ``pods`` reference, and the volumes of their claims (see
        the module docstring)."""
        wanted: set[Ref] = set()
        for pod in pods:
            wanted |= pod_references(pod)
        await self._watch(wanted | self._claimed_volumes(wanted))
        if volumes := self._claimed_volumes(wanted) - set(self._informers):
            # Claims seen for the first time just now: their volumes in a second round.
            await self._watch(set(self._informers) | volumes)

    async def _watch(self, wanted: set[Ref]) -> None:
        for ref in sorted(set(self._informers) - wanted):
            if (task := self._sync_tasks.pop(ref, None)) is not None:
                task.cancel()
            await self._informers.pop(ref).stop()
        new: list[asyncio.Task[None]] = []
        for ref in sorted(wanted - set(self._informers)):
            kind, namespace, name = ref
            informer = Informer(self._client, _GVRS[kind], namespace=namespace,
                                field_selector=f"metadata.name={name}", clock=self._clock,
                                name=f"{kind.lower()} {_key(namespace, name)}")
            informer.add_handler(EventHandler(on_add=self._changed,
                                              on_update=self._changed,
                                              on_delete=self._changed))
            informer.start()
            self._informers[ref] = informer
            self._sync_tasks[ref] = task = asyncio.create_task(self._announce_sync(informer))
            new.append(task)
        if new:
            # A slower one still wakes the pod loop when it syncs (_announce_sync).
            _done, pending = await asyncio.wait(new, timeout=self._sync_wait)
            if pending:
                log.warning("%d referenced objects not synced after %gs",
                            len(pending), self._sync_wait)

    async def _announce_sync(self, informer: Informer) -> None:
        await informer.wait_for_sync()
        self._changed()

    async def stop(self) -> None:
        for task in self._sync_tasks.values():
            task.cancel()
        self._sync_tasks.clear()
        for informer in self._informers.values():
            with contextlib.suppress(Exception):
                await informer.stop()
        self._informers.clear()
