"""Injectable clocks: real code takes a Clock, tests advance a FakeClock instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall-clock time (UTC), for timestamps written into objects."""
        ...

    def monotonic(self) -> float:
        """Seconds on a monotonic scale, for intervals and deadlines."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that moves only when told; sleepers wake when ``advance`` passes their deadline."""

    def __init__(self, start: datetime | None = None) -> None:
        self._wall = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 1000.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._mono + seconds, fut))
        await fut

    def sleeping(self) -> int:
        """How many sleeps are waiting for :meth:`advance` (a test waits for a loop to be
        back asleep, its step done, instead of sleeping itself)."""
        return sum(not fut.done() for _, fut in self._sleepers)

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self._mono += seconds
        self._wall += timedelta(seconds=seconds)
        due = [(t, f) for t, f in self._sleepers if t <= self._mono]
        self._sleepers = [(t, f) for t, f in self._sleepers if t > self._mono]
        for _, fut in sorted(due, key=lambda x: x[0]):
            if not fut.done():
                fut.set_result(None)


def rfc3339(dt: datetime) -> str:
    """Kubernetes' metav1.Time wire form: second precision, 'Z' suffix."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> datetime | None:
    """A metav1.Time / MicroTime string as an aware datetime (None if absent or malformed;
    a time without an offset is UTC)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
