"""Lease-based leader election with client-go's semantics.

Theory of operation
-------------------
Follows client-go's tools/leaderelection/leaderelection.go (``LeaderElector``: acquire, renew,
release, ``tryAcquireOrRenew``) and resourcelock/leaselock.go (a ``LeaderElectionRecord`` kept
in the spec of a ``coordination.k8s.io/v1`` Lease).

The record: ``holderIdentity``, ``leaseDurationSeconds``, ``acquireTime`` and ``renewTime``
(MicroTime) and ``leaseTransitions``. Expiry is judged on the *local* monotonic clock, never on
the times written in the record: a candidate remembers the record it last saw and when it first
saw it (``observed_time``); the lease is valid while ``observed_time + leaseDurationSeconds`` is
in the future. Any change of the record (its serialized form differs) resets ``observed_time``,
so a holder that keeps renewing is never deemed expired, whatever the clocks of the machines.

One attempt (:meth:`ElectionCore.decide`, pure; :meth:`LeaderElector.try_acquire_or_renew`
applies it):

1. fast path: a leader whose lease is still valid updates the Lease with the record it last
   wrote (same acquireTime and transitions, new renewTime), on the resourceVersion it last
   saw; a conflict falls through to the slow path;
2. get the Lease; none: create it with this candidate as holder (acquiring a free lease is
   immediate);
3. held by another identity and still valid: fail (try again later);
4. otherwise update it: a leader keeps acquireTime and leaseTransitions, a new holder sets
   acquireTime to now and adds one to leaseTransitions. The update is conditional on the
   resourceVersion read, so of two candidates racing for an expired lease one wins.

The loops: ``acquire`` tries at once, then every ``retry_period`` stretched by a random jitter
of up to 1.2 times (wait.JitterUntil), with two differences that make a takeover quicker
without changing when it is allowed: a candidate also watches the Lease (:meth:`Lock.watch`)
and tries again as soon as it changes, so it observes a renewal when it happens rather than at
its next poll (the lease then expires, in its eyes, close to 15 s after the holder's last
renewal instead of up to 4.4 s later); and it tries again just after the observed lease
expires rather than at the next jittered tick. A dead leader's lease is then taken about 15 s
after its last renewal (client-go's loop alone: 15 to about 24 s).

``renew`` runs a round every ``retry_period``, each round retrying every ``retry_period``
until ``renew_deadline`` has passed since the round began; a round that fails means
leadership is lost. ``renew_deadline`` (10 s) is shorter than the lease
duration (15 s), so a leader that cannot renew stops acting (its ``lead`` task is cancelled)
before any other candidate may take the lease over. :meth:`LeaderElector.run` campaigns again
after losing, where client-go's users exit the process. With ``release_on_cancel`` a leader that
is cancelled (clean shutdown) writes a record with no holder and a one-second duration, so the
next candidate takes over without waiting out the lease.

Left out: coordinated leader election (``tryCoordinatedRenew``, ``preferredHolder``,
``strategy``), the health-check watchdog, and events/metrics on transitions (logged instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from svcnet.api.errors import StatusError
from svcnet.client.rest import LEASES, RESTClient, TransportError
from svcnet.util.clock import Clock, RealClock, parse_time

log = logging.getLogger(__name__)

LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0
JITTER_FACTOR = 1.2
"""wait.JitterUntil's factor in client-go: a retry waits retry_period * (1 + [0, 1.2))."""
EXPIRY_MARGIN = 0.05
"""How long after the observed expiry of another's lease a candidate tries to take it."""


def micro_time(dt: datetime) -> str:
    """metav1.MicroTime's wire form: RFC 3339 with six fractional digits, UTC."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Record:
    """resourcelock.LeaderElectionRecord."""

    holder_identity: str = ""
    lease_duration_seconds: int = 0
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    leader_transitions: int = 0

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Record:
        return cls(str(spec.get("holderIdentity") or ""),
                   int(spec.get("leaseDurationSeconds") or 0),
                   parse_time(spec.get("acquireTime")), parse_time(spec.get("renewTime")),
                   int(spec.get("leaseTransitions") or 0))

    def to_spec(self) -> dict[str, Any]:
        """The Lease spec (LeaderElectionRecordToLeaseSpec); an empty holder is left out."""
        spec: dict[str, Any] = {"leaseDurationSeconds": self.lease_duration_seconds,
                                "leaseTransitions": self.leader_transitions}
        if self.holder_identity:
            spec["holderIdentity"] = self.holder_identity
        if self.acquire_time is not None:
            spec["acquireTime"] = micro_time(self.acquire_time)
        if self.renew_time is not None:
            spec["renewTime"] = micro_time(self.renew_time)
        return spec

    def raw(self) -> str:
        """The serialized record, compared to notice any change."""
        return json.dumps(self.to_spec(), sort_keys=True)


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one try decided after reading the lock: ``create`` or ``update`` with ``record``,
    or ``held`` (by another, still valid: nothing to write)."""

    action: Literal["create", "update", "held"]
    record: Record | None = None


@dataclass
class ElectionCore:
    """The elector's state and decisions, free of I/O: what this candidate observed, when
    (monotonic seconds), and what it should write next."""

    identity: str
    lease_duration: float = LEASE_DURATION
    observed: Record = field(default_factory=Record)
    observed_raw: str = ""
    observed_time: float = float("-inf")

    @property
    def is_leader(self) -> bool:
        return self.observed.holder_identity == self.identity

    def lease_valid(self, mono: float) -> bool:
        return self.observed_time + self.observed.lease_duration_seconds > mono

    def expires_in(self, mono: float) -> float | None:
        """Seconds until the lease another candidate holds expires in this one's eyes (None
        when no other holds it)."""
        if not self.observed.holder_identity or self.is_leader:
            return None
        return self.observed_time + self.observed.lease_duration_seconds - mono

    def observe(self, record: Record, mono: float) -> None:
        """setObservedRecord: remember ``record`` as seen (or written) at ``mono``."""
        self.observed, self.observed_time = record, mono

    def _mine(self, now: datetime) -> Record:
        return Record(self.identity, int(self.lease_duration), now, now, 0)

    def fast_path(self, now: datetime, mono: float) -> Record | None:
        """The optimistic renewal of a leader whose lease is still valid, else None."""
        if not (self.is_leader and self.lease_valid(mono)):
            return None
        return Record(self.identity, int(self.lease_duration), self.observed.acquire_time, now,
                      self.observed.leader_transitions)

    def decide(self, current: Record | None, now: datetime, mono: float) -> Attempt:
        """Steps 2-4 of tryAcquireOrRenew for the lock's ``current`` record (None: absent)."""
        if current is None:
            return Attempt("create", self._mine(now))
        raw = current.raw()
        if raw != self.observed_raw:
            self.observe(current, mono)
            self.observed_raw = raw
        if current.holder_identity and self.lease_valid(mono) and not self.is_leader:
            return Attempt("held")
        mine = self._mine(now)
        if self.is_leader:
            mine = Record(mine.holder_identity, mine.lease_duration_seconds,
                          current.acquire_time, now, current.leader_transitions)
        else:
            mine = Record(mine.holder_identity, mine.lease_duration_seconds, now, now,
                          current.leader_transitions + 1)
        return Attempt("update", mine)

    def release_record(self, now: datetime) -> Record | None:
        """The record that gives the lease up (no holder, one second), or None if this
        candidate is not the leader."""
        if not self.is_leader:
            return None
        return Record("", 1, now, now, self.observed.leader_transitions)


class Lock(Protocol):
    """resourcelock.Interface, narrowed: get (None if absent), create, update; and ``watch``,
    which sets ``changed`` whenever the lock's object changes, until cancelled."""

    def describe(self) -> str: ...

    async def watch(self, changed: asyncio.Event) -> None: ...

    async def get(self) -> Record | None: ...

    async def create(self, record: Record) -> None: ...

    async def update(self, record: Record) -> None: ...


class LeaseLock:
    """A Lease as the lock (leaselock.go): updates go to the Lease last read or written, so
    they are conditional on its resourceVersion."""

    def __init__(self, client: RESTClient, namespace: str, name: str) -> None:
        self.client, self.namespace, self.name = client, namespace, name
        self._lease: dict[str, Any] | None = None

    def describe(self) -> str:
        return f"{self.namespace}/{self.name}"

    async def get(self) -> Record | None:
        try:
            self._lease = await self.client.get(LEASES, self.namespace, self.name)
        except StatusError as e:
            if e.code == 404:
                return None
            raise
        return Record.from_spec(self._lease.get("spec") or {})

    async def create(self, record: Record) -> None:
        self._lease = await self.client.create(LEASES, {
            "apiVersion": LEASES.api_version, "kind": LEASES.kind,
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": record.to_spec()})

    async def update(self, record: Record) -> None:
        if self._lease is None:
            raise RuntimeError("lease not initialized, call get or create first")
        self._lease = await self.client.update(LEASES, {**self._lease,
                                                        "spec": record.to_spec()})

    async def watch(self, changed: asyncio.Event) -> None:
        while True:
            try:
                async with self.client.watch(LEASES, self.namespace,
                                             field_selector=f"metadata.name={self.name}",
                                             allow_bookmarks=False) as events:
                    async for _ in events:
                        changed.set()
            except Exception as e:  # polling goes on regardless
                log.debug("watching %s: %s", self.describe(), e)
            await asyncio.sleep(1.0)  # the stream ended: watch again (polling goes on)


LockError = (StatusError, TransportError, OSError, TimeoutError)
"""What a lock operation may fail with; the attempt then counts as failed."""


class LeaderElector:
    """Runs the election for one candidate (see the module docstring)."""

    def __init__(self, lock: Lock, identity: str, *, lease_duration: float = LEASE_DURATION,
                 renew_deadline: float = RENEW_DEADLINE, retry_period: float = RETRY_PERIOD,
                 release_on_cancel: bool = True, clock: Clock | None = None,
                 jitter: Callable[[], float] = random.random) -> None:
        if not lease_duration > renew_deadline > JITTER_FACTOR * retry_period:
            raise ValueError("need lease_duration > renew_deadline > 1.2 * retry_period")
        self.lock = lock
        self.core = ElectionCore(identity, lease_duration)
        self.renew_deadline, self.retry_period = renew_deadline, retry_period
        self.release_on_cancel = release_on_cancel
        self.clock = clock or RealClock()
        self._jitter = jitter
        self._reported = ""
        self._changed: asyncio.Event | None = None

    @property
    def is_leader(self) -> bool:
        return self.core.is_leader

    @property
    def leader(self) -> str:
        return self.core.observed.holder_identity

    async def try_acquire_or_renew(self) -> bool:
        now, mono = self.clock.now(), self.clock.monotonic()
        record = self.core.fast_path(now, mono)
        if record is not None:
            try:
                await self.lock.update(record)
            except LockError as e:
                log.info("optimistic renewal of %s failed (%s); reading it",
                         self.lock.describe(), e)
            else:
                self.core.observe(record, mono)
                return True
        try:
            attempt = self.core.decide(await self.lock.get(), now, mono)
            if attempt.action == "held":
                return False
            assert attempt.record is not None
            if attempt.action == "create":
                await self.lock.create(attempt.record)
            else:
                await self.lock.update(attempt.record)
        except LockError as e:
            log.info("acquiring or renewing %s failed: %s", self.lock.describe(), e)
            return False
        self.core.observe(attempt.record, mono)
        return True

    def _report(self) -> None:
        if self.leader != self._reported:
            self._reported = self.leader
            log.info("new leader of %s: %s", self.lock.describe(), self.leader or "(none)")

    async def acquire(self) -> None:
        """Try until this candidate leads (cancel to give up)."""
        log.info("attempting to acquire leader lease %s", self.lock.describe())
        while True:
            if self._changed is not None:
                self._changed.clear()  # a change from now on means: try again at once
            acquired = await self.try_acquire_or_renew()
            self._report()
            if acquired:
                log.info("successfully acquired lease %s", self.lock.describe())
                return
            delay = self.retry_period * (1 + JITTER_FACTOR * self._jitter())
            expires_in = self.core.expires_in(self.clock.monotonic())
            if expires_in is not None:
                delay = min(delay, max(expires_in, 0) + EXPIRY_MARGIN)
            await self._pause(delay)

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the lock changes meanwhile."""
        if self._changed is None:
            await self.clock.sleep(seconds)
            return
        waits = [asyncio.ensure_future(self.clock.sleep(seconds)),
                 asyncio.ensure_future(self._changed.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _renew_round(self) -> bool:
        """PollImmediateUntil: retry every retry_period until renew_deadline has passed."""
        deadline = self.clock.monotonic() + self.renew_deadline
        while True:
            left = deadline - self.clock.monotonic()
            # asyncio.timeout, not wait_for: before Python 3.12, wait_for loses a cancellation
            # that arrives as the attempt completes, and the elector would run on.
            try:
                async with asyncio.timeout(max(left, 0.01)):
                    renewed = await self.try_acquire_or_renew()
            except TimeoutError:
                renewed = False
            if renewed:
                return True
            left = deadline - self.clock.monotonic()
            if left <= self.retry_period:
                await self.clock.sleep(max(left, 0))
                return False
            await self.clock.sleep(self.retry_period)

    async def renew(self) -> None:
        """Renew every retry_period; return when a round fails (leadership lost)."""
        while True:
            renewed = await self._renew_round()
            self._report()
            if not renewed:
                log.warning("failed to renew lease %s within %g s: leadership lost",
                            self.lock.describe(), self.renew_deadline)
                return
            await self.clock.sleep(self.retry_period)

    async def release(self) -> bool:
        record = self.core.release_record(self.clock.now())
        if record is None:
            return True
        try:
            try:
                await self.lock.update(record)
            except StatusError as e:
                # A renewal cancelled in flight may have been applied: read the lease, and
                # release it if it is still this candidate's.
                if e.code != 409:
                    raise
                current = await self.lock.get()
                if current is None or current.holder_identity != self.core.identity:
                    return True
                await self.lock.update(record)
        except LockError as e:
            log.warning("failed to release lease %s: %s", self.lock.describe(), e)
            return False
        self.core.observe(record, self.clock.monotonic())
        return True

    async def run(self, lead: Callable[[], Awaitable[None]], *, leading: bool = False) -> None:
        """Campaign; while leading run ``lead()`` as a task, cancelled (and awaited) as soon as
        leadership is lost, then campaign again. Cancelling ``run`` stops ``lead`` and, with
        ``release_on_cancel``, gives the lease up. ``leading``: the caller's own
        :meth:`try_acquire_or_renew` just succeeded, so the first term starts at once."""
        self._changed = asyncio.Event()
        watcher = asyncio.create_task(self.lock.watch(self._changed))
        try:
            while True:
                if not leading:
                    await self.acquire()
                leading = False
                task = asyncio.create_task(_call(lead))
                try:
                    await self.renew()
                finally:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            self._changed = None
            if self.release_on_cancel and self.is_leader:
                await asyncio.shield(self.release())


async def _call(lead: Callable[[], Awaitable[None]]) -> None:
    try:
        await lead()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("the leader's work failed")
