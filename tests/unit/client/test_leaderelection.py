"""Leader election (client-go's semantics) on a FakeClock, against an in-memory lock that is
conditional on a resourceVersion as a Lease is."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from svcnet.api.errors import StatusError
from svcnet.client.leaderelection import ElectionCore, LeaderElector, Record, micro_time
from svcnet.util.clock import FakeClock


@dataclass
class Stored:
    record: Record | None = None
    version: int = 0
    down: bool = False  # every call fails (the API server is unreachable)
    watchers: list[asyncio.Event] = field(default_factory=list)


class FakeLock:
    """One candidate's view of a shared :class:`Stored` lease: updates are conditional on the
    version this lock last read or wrote, as LeaseLock's are."""

    def __init__(self, stored: Stored) -> None:
        self.stored = stored
        self.version = -1
        self.writes = 0

    def describe(self) -> str:
        return "kube-system/test"

    def _check(self) -> None:
        if self.stored.down:
            raise OSError("unreachable")

    async def get(self) -> Record | None:
        self._check()
        self.version = self.stored.version
        return self.stored.record

    async def create(self, record: Record) -> None:
        self._check()
        if self.stored.record is not None:
            raise StatusError(409, "AlreadyExists", "exists")
        self._write(record)

    async def update(self, record: Record) -> None:
        self._check()
        if self.version != self.stored.version:
            raise StatusError(409, "Conflict", "the object has been modified")
        self._write(record)

    def _write(self, record: Record) -> None:
        self.stored.record = record
        self.stored.version += 1
        self.version = self.stored.version
        self.writes += 1
        for changed in self.stored.watchers:
            changed.set()

    async def watch(self, changed: asyncio.Event) -> None:
        self.stored.watchers.append(changed)
        try:
            await asyncio.Event().wait()
        finally:
            self.stored.watchers.remove(changed)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def elector(stored: Stored, identity: str, clock: FakeClock) -> LeaderElector:
    return LeaderElector(FakeLock(stored), identity, clock=clock, jitter=lambda: 0.0)


async def test_a_free_lease_is_acquired_at_once_with_the_record_filled_in() -> None:
    clock, stored = FakeClock(), Stored()
    a = elector(stored, "a", clock)
    assert await a.try_acquire_or_renew()
    assert a.is_leader
    assert stored.record == Record("a", 15, clock.now(), clock.now(), 0)
    spec = stored.record.to_spec()
    assert spec["renewTime"] == micro_time(clock.now()) == "2026-01-01T00:00:00.000000Z"
    assert spec["holderIdentity"] == "a" and spec["leaseTransitions"] == 0


async def test_renewal_keeps_acquire_time_and_transitions() -> None:
    clock, stored = FakeClock(), Stored()
    a = elector(stored, "a", clock)
    assert await a.try_acquire_or_renew()
    acquired = clock.now()
    clock.advance(2)
    assert await a.try_acquire_or_renew()
    assert stored.record is not None
    assert stored.record.acquire_time == acquired
    assert stored.record.renew_time == clock.now()
    assert stored.record.leader_transitions == 0


async def test_a_held_lease_is_taken_only_after_the_duration_without_change() -> None:
    clock, stored = FakeClock(), Stored()
    a, b = elector(stored, "a", clock), elector(stored, "b", clock)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()  # b observes the record now
    assert b.leader == "a"
    clock.advance(14.9)
    assert not await b.try_acquire_or_renew()
    clock.advance(0.2)  # 15.1 s since b first saw this record
    assert await b.try_acquire_or_renew()
    assert stored.record is not None
    assert stored.record.holder_identity == "b"
    assert stored.record.leader_transitions == 1
    assert stored.record.acquire_time == clock.now()
    # a's optimistic renewal conflicts; reading, it finds b's valid lease.
    assert not await a.try_acquire_or_renew()
    assert not a.is_leader and a.leader == "b"


async def test_a_renewed_lease_never_expires_whatever_its_times_say() -> None:
    clock, stored = FakeClock(), Stored()
    a, b = elector(stored, "a", clock), elector(stored, "b", clock)
    assert await a.try_acquire_or_renew()
    for _ in range(20):
        assert not await b.try_acquire_or_renew()
        clock.advance(10)
        assert await a.try_acquire_or_renew()  # the record changes: b's expiry restarts


async def test_of_two_candidates_racing_for_an_expired_lease_one_wins() -> None:
    clock, stored = FakeClock(), Stored(Record("gone", 15, None, None, 3), 7)
    b, c = elector(stored, "b", clock), elector(stored, "c", clock)
    assert not await b.try_acquire_or_renew()
    assert not await c.try_acquire_or_renew()
    clock.advance(16)
    # Both read the expired record, then both write: the second write conflicts.
    b_attempt = b.core.decide(await b.lock.get(), clock.now(), clock.monotonic())
    c_attempt = c.core.decide(await c.lock.get(), clock.now(), clock.monotonic())
    assert b_attempt.action == c_attempt.action == "update"
    assert b_attempt.record is not None and c_attempt.record is not None
    await b.lock.update(b_attempt.record)
    with pytest.raises(StatusError):
        await c.lock.update(c_attempt.record)
    assert stored.record is not None and stored.record.holder_identity == "b"
    assert stored.record.leader_transitions == 4


async def test_released_lease_is_free_for_the_next_candidate_at_once() -> None:
    clock, stored = FakeClock(), Stored()
    a, b = elector(stored, "a", clock), elector(stored, "b", clock)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    assert await a.release()
    assert stored.record == Record("", 1, clock.now(), clock.now(), 0)
    assert "holderIdentity" not in stored.record.to_spec()
    assert await b.try_acquire_or_renew()
    assert stored.record.holder_identity == "b" and stored.record.leader_transitions == 1


async def test_the_same_identity_after_a_restart_takes_its_lease_back_at_once() -> None:
    """A new elector with the holder's identity (the next start of a server whose data
    directory, hence identity, it shares) keeps the term: same acquireTime, transitions."""
    clock, stored = FakeClock(), Stored()
    assert await elector(stored, "a", clock).try_acquire_or_renew()
    clock.advance(3)
    again = elector(stored, "a", clock)
    assert await again.try_acquire_or_renew()
    assert stored.record is not None
    assert stored.record.acquire_time == clock.now() - timedelta(seconds=3)
    assert stored.record.leader_transitions == 0


def test_core_decisions_are_pure_functions_of_what_was_observed() -> None:
    clock = FakeClock()
    core = ElectionCore("me")
    assert core.fast_path(clock.now(), clock.monotonic()) is None
    attempt = core.decide(None, clock.now(), clock.monotonic())
    assert attempt.action == "create"
    held = Record("other", 15, clock.now(), clock.now(), 2)
    assert core.decide(held, clock.now(), clock.monotonic()).action == "held"
    assert core.release_record(clock.now()) is None  # not the leader: nothing to release
    # A record with no holder is free even while "valid".
    free = Record("", 15, clock.now(), clock.now(), 2)
    attempt = core.decide(free, clock.now(), clock.monotonic())
    assert attempt.action == "update" and attempt.record is not None
    assert attempt.record.leader_transitions == 3


async def test_a_leader_that_cannot_renew_stops_leading_before_the_lease_can_be_taken(
        ) -> None:
    clock, stored = FakeClock(), Stored()
    a, b = elector(stored, "a", clock), elector(stored, "b", clock)
    started, stopped = asyncio.Event(), asyncio.Event()
    stopped_at: list[float] = []

    async def lead() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped_at.append(clock.monotonic())
            stopped.set()

    run = asyncio.create_task(a.run(lead))
    await settle()
    assert started.is_set() and a.is_leader
    assert not await b.try_acquire_or_renew()
    for _ in range(3):  # renewals every 2 s
        clock.advance(2)
        await settle()
    assert not stopped.is_set()
    last_renewal = clock.monotonic()
    assert stored.record is not None and stored.record.renew_time == clock.now()
    stored.down = True
    for _ in range(30):
        clock.advance(0.5)
        await settle()
        if stopped.is_set():
            break
    assert stopped.is_set(), "the leader kept acting without renewing"
    # It stopped within renew period + renew deadline of its last renewal: before the lease
    # (15 s) could expire in anyone's eyes.
    assert stopped_at[0] - last_renewal <= 2 + 10 < 15
    stored.down = False
    assert not await b.try_acquire_or_renew()  # still a's until the lease runs out
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run


async def test_cancelling_run_stops_the_work_and_releases_the_lease() -> None:
    clock, stored = FakeClock(), Stored()
    a = elector(stored, "a", clock)
    stopped = asyncio.Event()

    async def lead() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    run = asyncio.create_task(a.run(lead))
    await settle()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert stopped.is_set()
    assert stored.record is not None and stored.record.holder_identity == ""
    assert stored.record.lease_duration_seconds == 1


async def takeover_time(clock: FakeClock, leading: asyncio.Event) -> float:
    waited = 0.0
    while not leading.is_set():
        clock.advance(0.05)
        waited += 0.05
        await settle()
        assert waited < 30
    return waited


async def test_a_candidate_takes_an_abandoned_lease_just_after_it_expires() -> None:
    clock, stored = FakeClock(), Stored()
    assert await elector(stored, "a", clock).try_acquire_or_renew()  # then a dies
    b = LeaderElector(FakeLock(stored), "b", clock=clock, jitter=lambda: 1.0)
    leading = asyncio.Event()

    async def lead() -> None:
        leading.set()
        await asyncio.Event().wait()

    run = asyncio.create_task(b.run(lead))
    await settle()
    # Polls every 2 * (1 + 1.2) = 4.4 s (tries at 13.2 and 17.6 s), but tries again when
    # the lease it observed at 0 s expires, 15 s later.
    assert 15 < await takeover_time(clock, leading) <= 15.2
    assert stored.record is not None and stored.record.holder_identity == "b"
    assert stored.record.leader_transitions == 1
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run


async def test_a_watching_candidate_observes_a_renewal_when_it_happens() -> None:
    clock, stored = FakeClock(), Stored()
    a = elector(stored, "a", clock)
    assert await a.try_acquire_or_renew()
    b = LeaderElector(FakeLock(stored), "b", clock=clock, jitter=lambda: 1.0)
    leading = asyncio.Event()

    async def lead() -> None:
        leading.set()
        await asyncio.Event().wait()

    run = asyncio.create_task(b.run(lead))
    await settle()  # b observed a's record at 0 s and polls next at 4.4 s
    clock.advance(0.5)
    assert await a.try_acquire_or_renew()  # a's last renewal, at 0.5 s; then a dies
    await settle()
    # b saw the renewal at 0.5 s (not at its 4.4 s poll): the lease is b's 15 s later.
    assert 15.5 - 0.5 < await takeover_time(clock, leading) <= 15.5 - 0.5 + 0.15
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run


async def test_release_after_a_renewal_it_did_not_see_applied() -> None:
    """A renewal cancelled in flight may have been written: the release reads the lease and
    still gives it up (its cached version is stale)."""
    clock, stored = FakeClock(), Stored()
    a = elector(stored, "a", clock)
    assert await a.try_acquire_or_renew()
    other_view = FakeLock(stored)
    assert await other_view.get() is not None
    await other_view.update(Record("a", 15, clock.now(), clock.now(), 0))  # the lost reply
    assert await a.release()
    assert stored.record is not None and stored.record.holder_identity == ""
    # Not released when another holds it by then.
    b = elector(stored, "b", clock)
    assert await b.try_acquire_or_renew()
    a.core.observe(Record("a", 15, None, None, 0), clock.monotonic())  # a still thinks it leads
    await other_view.get()
    await other_view.update(Record("b", 15, clock.now(), clock.now(), 1))
    assert await a.release()
    assert stored.record.holder_identity == "b"
