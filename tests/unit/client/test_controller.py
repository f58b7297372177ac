"""Controller runner: retry ladder, drop after max retries, sync gate, one key at a time, stop.

Single-step tests call ``process_next_work_item`` directly; the few that run workers await
events the fake ``sync`` sets, and move time only through the FakeClock.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from svcnet.api.errors import StatusError
from svcnet.client.controller import (
    UNAVAILABLE_RETRY_CAP,
    Controller,
    RequeueError,
    server_unavailable,
)
from svcnet.client.rest import TransportError
from svcnet.client.workqueue import ExponentialFailureRateLimiter, RateLimitingQueue
from svcnet.util.clock import FakeClock
from tests.waiting import LoopTurns


class Script:
    """A fake ``sync``: per key, a list of outcomes (None = success, or an exception)."""

    def __init__(self, outcomes: dict[str, list[Exception | None]] | None = None) -> None:
        self.outcomes = outcomes or {}
        self.calls: list[str] = []
        self.called = asyncio.Event()

    async def __call__(self, key: str) -> None:
        self.calls.append(key)
        self.called.set()
        todo = self.outcomes.get(key) or [None]
        outcome = todo.pop(0) if len(todo) > 1 else todo[0]
        if outcome is not None:
            raise outcome


class Gate:
    """A Syncable whose sync the test controls."""

    def __init__(self) -> None:
        self.synced = asyncio.Event()

    def has_synced(self) -> bool:
        return self.synced.is_set()

    async def wait_for_sync(self) -> None:
        await self.synced.wait()


def make(script: Script, clock: FakeClock, max_retries: int = 15) -> Controller:
    queue: RateLimitingQueue[str] = RateLimitingQueue(ExponentialFailureRateLimiter(1.0, 60.0),
                                                      clock=clock)
    return Controller("test", script, clock=clock, queue=queue, max_retries=max_retries)


async def test_success_forgets_the_key() -> None:
    clock = FakeClock()
    script = Script()
    c = make(script, clock)
    c.queue.add_rate_limited("ns/a")  # an earlier failure, now due
    clock.advance(1.0)
    assert await c.process_next_work_item()
    assert script.calls == ["ns/a"]
    assert c.queue.num_requeues("ns/a") == 0
    assert not c.queue.is_processing("ns/a")
    assert c.stats.syncs == 1 and c.stats.last_success == clock.monotonic()


async def test_failures_retry_with_backoff_until_success() -> None:
    clock = FakeClock()
    script = Script({"ns/a": [RuntimeError("boom"), RequeueError("conflict"), None]})
    c = make(script, clock)
    c.queue.add("ns/a")
    await c.process_next_work_item()
    assert c.queue.num_requeues("ns/a") == 1
    assert len(c.queue) == 0
    clock.advance(1.0)
    await c.process_next_work_item()
    assert c.queue.num_requeues("ns/a") == 2
    clock.advance(1.999)
    assert len(c.queue) == 0, "second retry waits 2 s"
    clock.advance(0.001)
    await c.process_next_work_item()
    assert script.calls == ["ns/a"] * 3
    assert c.queue.num_requeues("ns/a") == 0
    assert c.stats.failures == 2


async def test_gives_up_after_max_retries(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    script = Script({"ns/a": [RequeueError("pool full")]})
    c = make(script, clock, max_retries=3)
    c.queue.add("ns/a")
    for delay in (0.0, 1.0, 2.0, 4.0):
        clock.advance(delay)
        await c.process_next_work_item()
    assert len(script.calls) == 4
    clock.advance(1000.0)
    assert len(c.queue) == 0 and c.queue.waiting == 0, "dropped"
    assert c.queue.num_requeues("ns/a") == 0, "and forgotten"
    assert c.stats.dropped == 1
    assert "dropping ns/a out of the queue after 3 retries: pool full" in caplog.text


@pytest.mark.parametrize("error", [
    pytest.param(StatusError(503, "ServiceUnavailable", "etcd is down"), id="503"),
    pytest.param(StatusError(504, "Timeout", "Timeout: etcd did not answer"), id="504"),
    pytest.param(StatusError(429, "TooManyRequests", "slow down"), id="429"),
    pytest.param(TransportError("connection refused"), id="no-answer"),
])
async def test_server_unavailable_retries_capped_and_never_drops(error: Exception) -> None:
    """A key that fails because the server cannot serve is kept however long the outage
    lasts, with its back-off capped, and is synced within the cap once the server is back."""
    clock = FakeClock()
    script = Script({"ns/a": [error] * 30 + [None]})
    c = make(script, clock, max_retries=3)
    c.queue.add("ns/a")
    await c.process_next_work_item()
    for _ in range(29):
        clock.advance(UNAVAILABLE_RETRY_CAP)
        assert len(c.queue) == 1, "retried within the cap, not dropped"
        await c.process_next_work_item()
    assert c.stats.dropped == 0
    clock.advance(UNAVAILABLE_RETRY_CAP)
    await c.process_next_work_item()  # the server is back
    assert len(script.calls) == 31
    assert c.queue.num_requeues("ns/a") == 0 and c.queue.waiting == 0


def test_server_unavailable_is_only_the_servers_failures() -> None:
    assert not server_unavailable(StatusError(409, "Conflict", "modified"))
    assert not server_unavailable(StatusError(422, "Invalid", "bad"))
    assert not server_unavailable(RequeueError("pool full"))
    assert not server_unavailable(StatusError(500, "InternalError", "bug"))


@pytest.mark.parametrize(
    ("error", "level", "traceback"),
    [
        pytest.param(RequeueError("stale cache"), logging.INFO, False, id="requeue-error"),
        pytest.param(StatusError(409, "Conflict", "modified"), logging.INFO, False,
                     id="conflict"),
        pytest.param(KeyError("bug"), logging.WARNING, True, id="unexpected"),
    ],
)
async def test_error_logging(error: Exception, level: int, traceback: bool,
                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="svcnet.client.controller")
    c = make(Script({"k": [error]}), FakeClock())
    c.queue.add("k")
    await c.process_next_work_item()
    (record,) = [r for r in caplog.records if r.name == "svcnet.client.controller"]
    assert record.levelno == level
    assert (record.exc_info is not None) == traceback


async def test_workers_wait_for_informers_then_stop_cleanly() -> None:
    clock = FakeClock()
    script = Script()
    gate = Gate()
    c = Controller("test", script, informers=[gate], workers=2, clock=clock)
    c.queue.add("ns/a")
    c.start()
    for _ in range(10):
        await asyncio.sleep(0)  # let the run task reach its wait (no time passes)
    assert script.calls == [] and not c.has_synced()
    gate.synced.set()
    await script.called.wait()
    assert script.calls == ["ns/a"] and c.has_synced()
    await c.stop()
    assert c.queue.shutting_down


async def test_a_key_is_never_synced_by_two_workers_at_once() -> None:
    clock = FakeClock()
    running: set[str] = set()
    overlaps: list[str] = []
    release = asyncio.Event()
    entered = asyncio.Event()
    calls: list[str] = []

    async def sync(key: str) -> None:
        if key in running:
            overlaps.append(key)
        running.add(key)
        calls.append(key)
        entered.set()
        await release.wait()
        running.discard(key)

    c = Controller("test", sync, workers=4, clock=clock)
    c.queue.add("ns/a")
    c.start()
    await entered.wait()
    c.queue.add("ns/a")  # changes while being synced: exactly one more pass afterwards
    c.queue.add("ns/a")
    c.queue.add("ns/b")
    entered.clear()
    release.set()
    while len(calls) < 3:
        entered.clear()
        await entered.wait()
    await c.stop()
    assert sorted(calls) == ["ns/a", "ns/a", "ns/b"]
    assert overlaps == []


async def test_workers_give_the_loop_a_turn_between_keys() -> None:
    """A sync that needs no I/O never suspends: 200 of them (a resync's worth of unchanged
    Services) must not run in one go while the process answers nothing else."""
    seen: list[int] = []
    async with LoopTurns() as turns:

        async def sync(key: str) -> None:
            seen.append(turns.count)

        c = Controller("test", sync, clock=FakeClock())
        for i in range(200):
            c.queue.add(f"ns/{i}")
        c.start()
        while len(seen) < 200:
            await asyncio.sleep(0)
        await c.stop()
    assert seen[-1] - seen[0] >= 199, "the loop turned between every two keys"


async def test_stop_while_caches_never_sync_returns() -> None:
    script = Script()
    c = Controller("test", script, informers=[Gate()], clock=FakeClock())
    c.queue.add("k")
    c.start()
    await asyncio.sleep(0)  # let run() start waiting
    await c.stop()
    assert script.calls == []


async def test_stop_without_start() -> None:
    c = Controller("test", Script(), clock=FakeClock())
    await c.stop()
    assert c.queue.shutting_down


def test_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="worker"):
        Controller("test", Script(), workers=0)
