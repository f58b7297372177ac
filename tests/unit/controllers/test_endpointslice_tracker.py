"""EndpointSliceTracker (stale-cache guard) and TriggerTimeTracker, directly."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from svcnet.controllers.endpointslice.tracker import EndpointSliceTracker
from svcnet.controllers.endpointslice.util import (
    LABEL_SERVICE_NAME,
    TriggerTimeTracker,
    format_rfc3339_nano,
)
from tests.unit.controllers.test_endpointslice_helpers import (
    Obj,
    make_pod,
    make_service,
    meta,
    not_ready,
    ready_at,
)


def eps(uid: str, generation: int, service: str = "web") -> Obj:
    return {"metadata": {"namespace": "ns", "name": f"{service}-{uid}", "uid": uid,
                         "generation": generation, "labels": {LABEL_SERVICE_NAME: service}}}


SVC = make_service()


@pytest.mark.parametrize(
    ("cached", "stale"),
    [
        pytest.param([eps("a", 2), eps("b", 1)], False, id="caught-up"),
        pytest.param([eps("a", 3), eps("b", 1)], False, id="newer-than-ours"),
        pytest.param([eps("a", 1), eps("b", 1)], True, id="older-than-our-update"),
        pytest.param([eps("a", 2)], True, id="our-create-not-seen-yet"),
        pytest.param([eps("a", 2), eps("b", 1), eps("c", 4)], True, id="deleted-one-still-there"),
        pytest.param([eps("a", 2), eps("b", 1), eps("x", 1)], False, id="unknown-slice-is-news"),
    ],
)
def test_stale_slices(cached: list[Obj], stale: bool) -> None:
    tracker = EndpointSliceTracker()
    tracker.update(eps("a", 2))
    tracker.update(eps("b", 1))
    tracker.expect_deletion(eps("c", 4))
    assert tracker.stale_slices(SVC, cached) is stale


def test_events_for_our_own_writes_need_no_sync() -> None:
    tracker = EndpointSliceTracker()
    tracker.update(eps("a", 2))
    assert not tracker.should_sync(eps("a", 2))
    assert tracker.should_sync(eps("a", 3)), "someone else wrote after us"
    assert tracker.should_sync(eps("z", 1)), "never written by us"
    tracker.expect_deletion(eps("a", 2))
    assert tracker.handle_deletion(eps("a", 2)) is True
    assert tracker.handle_deletion(eps("a", 2)) is False, "forgotten after the first"
    assert not tracker.has(eps("a", 2))


def test_recreated_service_forgets_the_old_ones_writes() -> None:
    tracker = EndpointSliceTracker()
    assert not tracker.stale_slices(make_service(meta(uid="old")), [])
    tracker.update(eps("a", 5))
    assert tracker.stale_slices(make_service(meta(uid="old")), [])
    assert not tracker.stale_slices(make_service(meta(uid="new")), [])


def test_trigger_time_is_the_earliest_unprocessed_change() -> None:
    tt = TriggerTimeTracker()
    p1, p2 = make_pod("p1"), make_pod("p2")
    assert format_rfc3339_nano(tt.compute(SVC, [p1, p2]) or datetime.min) == (
        "2025-12-31T23:00:00Z"), "first sync: the Service's creation"
    assert tt.compute(SVC, [p1, p2]) is None, "nothing changed since"
    ready_at("2026-01-01T00:00:09Z")(p1)
    not_ready(p2, at="2026-01-01T00:00:03Z")
    assert tt.compute(SVC, [p1, p2]) == datetime(2026, 1, 1, 0, 0, 3, tzinfo=UTC)
    p3 = make_pod("p3", ready_at("2026-01-01T00:00:20Z"))
    assert tt.compute(SVC, [p1, p2, p3]) == datetime(2026, 1, 1, 0, 0, 20, tzinfo=UTC)
    tt.delete_service("ns", "web")
    assert tt.compute(SVC, [p1]) == datetime(2025, 12, 31, 23, tzinfo=UTC)


@pytest.mark.parametrize(
    ("dt", "text"),
    [
        pytest.param(datetime(2026, 1, 1, tzinfo=UTC), "2026-01-01T00:00:00Z", id="whole"),
        pytest.param(datetime(2026, 1, 1, 0, 0, 1, 120000, tzinfo=UTC),
                     "2026-01-01T00:00:01.12Z", id="trailing-zeros-trimmed"),
    ],
)
def test_rfc3339_nano(dt: datetime, text: str) -> None:
    assert format_rfc3339_nano(dt) == text
