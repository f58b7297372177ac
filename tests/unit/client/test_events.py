"""EventRecorder: Event shape, count aggregation, recreation after 404, best effort."""

from __future__ import annotations

from typing import Any

from svcnet.api.errors import StatusError
from svcnet.client.events import EventRecorder
from svcnet.client.rest import GVR, PatchType, TransportError
from svcnet.util.clock import FakeClock

Obj = dict[str, Any]

SVC: Obj = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "ns", "name": "web", "uid": "u-1",
                         "resourceVersion": "42"}}


class Sink:
    def __init__(self) -> None:
        self.actions: list[tuple[str, str, str, str]] = []
        self.created: list[Obj] = []
        self.patches: list[Any] = []
        self.fail: list[Exception] = []

    async def create(self, gvr: GVR, obj: Obj, *, namespace: str | None = None,
                     dry_run: bool = False, field_manager: str = "") -> Obj:
        self.actions.append(("create", str(gvr), namespace or "", obj["metadata"]["name"]))
        if self.fail:
            raise self.fail.pop(0)
        self.created.append(obj)
        return obj

    async def patch(self, gvr: GVR, namespace: str, name: str, patch: Any, *,
                    patch_type: PatchType = PatchType.MERGE, subresource: str = "",
                    dry_run: bool = False, field_manager: str = "", force: bool = False) -> Obj:
        self.actions.append(("patch", str(gvr), namespace, name))
        assert patch_type is PatchType.MERGE
        if self.fail:
            raise self.fail.pop(0)
        self.patches.append(patch)
        return {}


async def test_first_event_is_created_with_the_full_shape() -> None:
    sink, clock = Sink(), FakeClock()
    rec = EventRecorder(sink, "svcnet-lb-ipam", clock=clock, host="node-1")
    await rec.warning(SVC, "AllocationFailed", "no available IPv4 address in pool(s) default")
    (event,) = sink.created
    assert event == {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"web.{int(clock.now().timestamp() * 1e9):x}", "namespace": "ns"},
        "involvedObject": {"apiVersion": "v1", "kind": "Service", "name": "web",
                           "namespace": "ns", "uid": "u-1", "resourceVersion": "42"},
        "reason": "AllocationFailed",
        "message": "no available IPv4 address in pool(s) default",
        "type": "Warning",
        "source": {"component": "svcnet-lb-ipam", "host": "node-1"},
        "count": 1, "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
        "reportingComponent": "svcnet-lb-ipam", "reportingInstance": "node-1",
    }


async def test_repeats_patch_the_count_and_last_timestamp() -> None:
    sink, clock = Sink(), FakeClock()
    rec = EventRecorder(sink, "c", clock=clock)
    await rec.warning(SVC, "AllocationFailed", "full")
    clock.advance(60)
    await rec.warning(SVC, "AllocationFailed", "full")
    clock.advance(60)
    await rec.warning(SVC, "AllocationFailed", "full")
    name = sink.created[0]["metadata"]["name"]
    assert [a[0] for a in sink.actions] == ["create", "patch", "patch"]
    assert sink.actions[1] == ("patch", "events", "ns", name)
    assert sink.patches == [{"count": 2, "lastTimestamp": "2026-01-01T00:01:00Z"},
                            {"count": 3, "lastTimestamp": "2026-01-01T00:02:00Z"}]


async def test_different_messages_are_different_events_with_unique_names() -> None:
    sink = Sink()
    rec = EventRecorder(sink, "c", clock=FakeClock())  # the clock never moves
    await rec.warning(SVC, "AllocationFailed", "a")
    await rec.warning(SVC, "AllocationFailed", "b")
    await rec.normal(SVC, "IPAllocated", "a")
    names = [e["metadata"]["name"] for e in sink.created]
    assert len(set(names)) == 3


async def test_event_deleted_server_side_is_created_again() -> None:
    sink = Sink()
    rec = EventRecorder(sink, "c", clock=FakeClock())
    await rec.warning(SVC, "R", "m")
    sink.fail.append(StatusError(404, "NotFound", 'events "x" not found'))
    await rec.warning(SVC, "R", "m")
    assert [a[0] for a in sink.actions] == ["create", "patch", "create"]
    assert sink.created[-1]["count"] == 1


async def test_recording_is_best_effort() -> None:
    sink = Sink()
    rec = EventRecorder(sink, "c", clock=FakeClock())
    sink.fail.append(TransportError("connection refused"))
    await rec.warning(SVC, "R", "m")  # does not raise
    sink.fail.append(StatusError(403, "Forbidden", "no"))
    await rec.warning(SVC, "R", "m")
    assert [a[0] for a in sink.actions] == ["create", "create"]


async def test_cluster_scoped_objects_get_events_in_default() -> None:
    sink = Sink()
    rec = EventRecorder(sink, "c", clock=FakeClock(), cache_size=1)
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
    await rec.normal(node, "Ready", "ok")
    await rec.normal(node, "Other", "ok")  # evicts the first from the 1-entry cache
    await rec.normal(node, "Ready", "ok")
    assert [a[:3] for a in sink.actions] == [("create", "events", "default")] * 3
    assert "namespace" not in sink.created[0]["involvedObject"]


async def test_an_event_about_a_part_of_the_object_names_it() -> None:
    sink = Sink()
    rec = EventRecorder(sink, "kubelet", clock=FakeClock())
    pod = {"kind": "Pod", "metadata": {"namespace": "ns", "name": "web", "uid": "u-2"}}
    await rec.normal(pod, "Started", "Started container app", field_path="spec.containers{app}")
    await rec.normal(pod, "Started", "Started container app", field_path="spec.containers{app}")
    await rec.normal(pod, "Started", "Started container app",
                     field_path="spec.initContainers{app}")
    assert [a[0] for a in sink.actions] == ["create", "patch", "create"]
    assert sink.created[0]["involvedObject"] == {
        "apiVersion": "v1", "kind": "Pod", "name": "web", "namespace": "ns", "uid": "u-2",
        "fieldPath": "spec.containers{app}"}
    assert sink.created[1]["involvedObject"]["fieldPath"] == "spec.initContainers{app}"
