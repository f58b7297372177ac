"""EventRecorder: core/v1 Events about objects, aggregated the way client-go's recorder does.

A controller calls ``await recorder.warning(svc, "AllocationFailed", "no available IPv4 ...")``;
an event about one part of the object names it with ``field_path`` (the kubelet's
``spec.containers{app}``, which ``kubectl get events -o wide`` lists as SUBOBJECT). The first
occurrence creates an Event named ``<object name>.<hex nanoseconds>`` in the object's
namespace, with ``involvedObject`` pointing at the object, ``source.component`` set to our
component, ``count: 1`` and ``firstTimestamp == lastTimestamp``. Repeats of the *same* event
(same object and field path, type, reason and message) patch that Event instead: ``count + 1``
and a new ``lastTimestamp``, which is what ``kubectl describe`` shows as "(x5 over 3m)". The
recorder remembers the last 4096 distinct events (client-go's LRU size); an Event deleted behind
our back (404 on the patch) is simply created again.

Recording is best effort, as in client-go: failures are logged and swallowed, because an Event
is a report about work, never a reason for the work to fail.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from svcnet.api.errors import StatusError
from svcnet.client.rest import EVENTS, GVR, PatchType, TransportError
from svcnet.util.clock import Clock, RealClock, rfc3339

__all__ = ["EventRecorder", "EventSink"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
CACHE_SIZE = 4096
MAX_MESSAGE = 1024  # kube-apiserver rejects longer event messages in events.k8s.io; be safe


class EventSink(Protocol):
    """The two client calls the recorder makes (RESTClient fits)."""

    async def create(self, gvr: GVR, obj: Obj, *, namespace: str | None = None,
                     dry_run: bool = False, field_manager: str = "") -> Obj: ...

    async def patch(self, gvr: GVR, namespace: str, name: str, patch: Any, *,
                    patch_type: PatchType = ..., subresource: str = "",
                    dry_run: bool = False, field_manager: str = "", force: bool = False
                    ) -> Obj: ...


@dataclass(slots=True)
class _Seen:
    namespace: str
    name: str
    count: int


class EventRecorder:
    def __init__(self, client: EventSink, component: str, *, clock: Clock | None = None,
                 host: str = "", cache_size: int = CACHE_SIZE) -> None:
        self._client = client
        self.component = component
        self.host = host
        self._clock: Clock = clock or RealClock()
        self._seen: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()
        self._cache_size = cache_size
        self._last_nanos = 0

    async def normal(self, obj: Mapping[str, Any], reason: str, message: str, *,
                     field_path: str = "") -> None:
        await self.event(obj, "Normal", reason, message, field_path=field_path)

    async def warning(self, obj: Mapping[str, Any], reason: str, message: str, *,
                      field_path: str = "") -> None:
        await self.event(obj, "Warning", reason, message, field_path=field_path)

    async def event(self, obj: Mapping[str, Any], event_type: str, reason: str,
                    message: str, *, field_path: str = "") -> None:
        message = message[:MAX_MESSAGE]
        involved = _reference(obj, field_path)
        key = (involved.get("uid", ""), involved.get("namespace", ""), involved["name"],
               involved["kind"], field_path, event_type, reason, message)
        now = rfc3339(self._clock.now())
        try:
            seen = self._seen.get(key)
            if seen is not None:
                self._seen.move_to_end(key)
                try:
                    await self._client.patch(
                        EVENTS, seen.namespace, seen.name,
                        {"count": seen.count + 1, "lastTimestamp": now},
                        patch_type=PatchType.MERGE)
                    seen.count += 1
                    return
                except StatusError as e:
                    if e.code != 404:
                        raise
                    del self._seen[key]  # deleted (or expired) server-side: start over
            await self._create(key, involved, event_type=event_type, reason=reason,
                               message=message, now=now)
        except (StatusError, TransportError) as e:
            log.warning("could not record event %s %s on %s/%s: %s", event_type, reason,
                        involved.get("namespace", ""), involved["name"], e)

    async def _create(self, key: tuple[str, ...], involved: Obj, *, event_type: str,
                      reason: str, message: str, now: str) -> None:
        namespace = involved.get("namespace") or "default"
        name = f"{involved['name']}.{self._nanos():x}"
        event: Obj = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "reason": reason, "message": message, "type": event_type,
            "source": {"component": self.component, **({"host": self.host} if self.host
                                                       else {})},
            "count": 1, "firstTimestamp": now, "lastTimestamp": now,
            "reportingComponent": self.component,
            "reportingInstance": self.host or self.component,
        }
        await self._client.create(EVENTS, event, namespace=namespace)
        self._seen[key] = _Seen(namespace, name, 1)
        while len(self._seen) > self._cache_size:
            self._seen.popitem(last=False)

    def _nanos(self) -> int:
        # client-go names events after UnixNano; keep names unique even when the clock has not
        # moved (a fake clock, or two events within one clock tick).
        nanos = int(self._clock.now().timestamp() * 1_000_000_000)
        self._last_nanos = max(nanos, self._last_nanos + 1)
        return self._last_nanos


def _reference(obj: Mapping[str, Any], field_path: str = "") -> Obj:
    """An ObjectReference to ``obj`` (what ``involvedObject`` holds), or to the part of it
    that ``field_path`` names."""
    meta = obj.get("metadata") or {}
    ref: Obj = {"apiVersion": str(obj.get("apiVersion") or "v1"),
                "kind": str(obj.get("kind") or ""), "name": str(meta.get("name") or "")}
    for field, source in (("namespace", "namespace"), ("uid", "uid"),
                          ("resourceVersion", "resourceVersion")):
        if meta.get(source):
            ref[field] = str(meta[source])
    if field_path:
        ref["fieldPath"] = field_path
    return ref
