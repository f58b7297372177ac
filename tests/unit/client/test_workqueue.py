"""Work queue semantics (client-go's queue, delaying queue, rate limiters) on a FakeClock.

No test sleeps: time moves only through ``clock.advance``. :func:`settle` lets already-runnable
tasks run (it yields to the loop; no time passes), which is how a test shows that a blocked
``get`` stays blocked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

import pytest

from svcnet.client.workqueue import (
    BucketRateLimiter,
    DelayingQueue,
    ExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    Queue,
    QueueShutDown,
    RateLimitingQueue,
    default_controller_rate_limiter,
)
from svcnet.util.clock import FakeClock


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


# -- the basic queue ------------------------------------------------------------------------


async def test_dedups_and_keeps_fifo_order() -> None:
    q: Queue[str] = Queue(clock=FakeClock())
    for key in ("a", "b", "a", "c", "b"):
        q.add(key)
    assert len(q) == 3
    assert [await q.get(), await q.get(), await q.get()] == ["a", "b", "c"]
    assert len(q) == 0


async def test_key_added_while_processing_is_requeued_on_done() -> None:
    q: Queue[str] = Queue(clock=FakeClock())
    q.add("a")
    assert await q.get() == "a"
    assert q.is_processing("a")
    q.add("a")
    q.add("a")
    assert len(q) == 0, "a processing key is only marked dirty, not handed out again"
    q.done("a")
    assert len(q) == 1, "done() puts the dirty key back, once"
    assert await q.get() == "a"
    q.done("a")
    assert len(q) == 0


async def test_key_never_processed_concurrently() -> None:
    q: Queue[str] = Queue(clock=FakeClock())
    q.add("a")
    first = await q.get()
    q.add("a")
    second = asyncio.create_task(q.get())
    await settle()
    assert not second.done(), "a second worker must not get a key that is being processed"
    q.done(first)
    assert await second == "a"


async def test_done_without_readd_does_not_requeue() -> None:
    q: Queue[str] = Queue(clock=FakeClock())
    q.add("a")
    q.done(await q.get())
    assert len(q) == 0


async def test_get_blocks_until_add() -> None:
    q: Queue[str] = Queue(clock=FakeClock())
    getter = asyncio.create_task(q.get())
    await settle()
    assert not getter.done()
    q.add("x")
    assert await getter == "x"


async def test_cancelled_get_leaves_no_waiter_behind() -> None:
    q: Queue[str] = Queue(clock=FakeClock())
    getter = asyncio.create_task(q.get())
    await settle()
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    q.add("x")
    assert await q.get() == "x"


async def test_shutdown_hands_out_queued_keys_then_raises() -> None:
    q: Queue[str] = Queue(clock=FakeClock())
    q.add("a")
    q.shutdown()
    q.add("b")  # ignored
    assert q.shutting_down
    assert await q.get() == "a"
    with pytest.raises(QueueShutDown):
        await q.get()


async def test_shutdown_wakes_blocked_getters() -> None:
    q: Queue[str] = Queue(clock=FakeClock())
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await settle()
    q.shutdown()
    for g in getters:
        with pytest.raises(QueueShutDown):
            await g


# -- delays ---------------------------------------------------------------------------------


async def test_add_after_waits_for_the_clock() -> None:
    clock = FakeClock()
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add_after("a", 2.0)
    assert len(q) == 0 and q.waiting == 1
    clock.advance(1.999)
    assert len(q) == 0
    clock.advance(0.001)
    assert len(q) == 1 and q.waiting == 0
    assert await q.get() == "a"


async def test_blocked_get_wakes_when_the_clock_reaches_the_deadline() -> None:
    clock = FakeClock()
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add_after("a", 5.0)
    getter = asyncio.create_task(q.get())
    await settle()
    clock.advance(4.0)
    await settle()
    assert not getter.done()
    clock.advance(1.0)
    assert await getter == "a"


async def test_earlier_add_after_shortens_a_blocked_gets_wait() -> None:
    clock = FakeClock()
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add_after("late", 100.0)
    getter = asyncio.create_task(q.get())
    await settle()
    q.add_after("soon", 1.0)
    await settle()
    clock.advance(1.0)
    assert await getter == "soon"


@pytest.mark.parametrize(
    ("delays", "advance", "ready"),
    [
        pytest.param([5.0, 1.0], 1.0, True, id="earlier-deadline-wins"),
        pytest.param([1.0, 5.0], 1.0, True, id="later-deadline-does-not-postpone"),
        pytest.param([5.0, 5.0], 4.0, False, id="same-deadline-once"),
    ],
)
async def test_add_after_dedup(delays: list[float], advance: float, ready: bool) -> None:
    clock = FakeClock()
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    for d in delays:
        q.add_after("a", d)
    clock.advance(advance)
    assert len(q) == (1 if ready else 0)
    if ready:
        assert await q.get() == "a"
        q.done("a")
    clock.advance(100.0)
    assert len(q) == (0 if ready else 1), "the key is delivered exactly once"


@pytest.mark.parametrize("delay", [pytest.param(0.0, id="zero"), pytest.param(-1.0, id="negative")])
async def test_non_positive_delay_adds_now_without_cancelling_a_wait(delay: float) -> None:
    # As in client-go: the earlier add_after still fires later (one extra, harmless pass).
    clock = FakeClock()
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add_after("a", 5.0)
    q.add_after("a", delay)
    assert len(q) == 1
    q.done(await q.get())
    clock.advance(5.0)
    assert len(q) == 1


async def test_add_after_for_a_queued_key_collapses() -> None:
    clock = FakeClock()
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add("a")
    q.add_after("a", 1.0)
    clock.advance(1.0)
    assert len(q) == 1


async def test_shutdown_drops_waiting_keys() -> None:
    clock = FakeClock()
    q: DelayingQueue[str] = DelayingQueue(clock=clock)
    q.add_after("a", 1.0)
    q.shutdown()
    clock.advance(2.0)
    assert len(q) == 0 and q.waiting == 0
    with pytest.raises(QueueShutDown):
        await q.get()


# -- rate limiters --------------------------------------------------------------------------


def test_exponential_failure_ladder() -> None:
    rl = ExponentialFailureRateLimiter()  # client-go defaults: 5 ms base, 1000 s cap
    delays = [rl.when("k") for _ in range(20)]
    assert delays[:5] == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08])
    assert delays[17] == pytest.approx(655.36)
    assert delays[18] == delays[19] == 1000.0
    assert rl.num_requeues("k") == 20
    assert rl.num_requeues("other") == 0
    rl.forget("k")
    assert rl.num_requeues("k") == 0
    assert rl.when("k") == pytest.approx(0.005)


def test_exponential_failure_never_overflows() -> None:
    rl = ExponentialFailureRateLimiter(0.005, 1000.0)
    for _ in range(2000):
        last = rl.when("k")
    assert last == 1000.0


def test_bucket_burst_then_rate_then_refill() -> None:
    clock = FakeClock()
    rl = BucketRateLimiter(qps=10.0, burst=3, clock=clock)
    assert [rl.when(i) for i in range(3)] == [0.0, 0.0, 0.0]
    assert rl.when(3) == pytest.approx(0.1)
    assert rl.when(4) == pytest.approx(0.2), "reservations queue up behind each other"
    clock.advance(0.2)
    assert rl.when(5) == pytest.approx(0.1)
    clock.advance(10.0)
    assert [rl.when(i) for i in range(3)] == [0.0, 0.0, 0.0], "refilled up to burst, no more"
    assert rl.when(9) == pytest.approx(0.1)


def test_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="qps"):
        BucketRateLimiter(qps=0)


def test_max_of_takes_the_longest_delay_and_forgets_everywhere() -> None:
    clock = FakeClock()
    per_key = ExponentialFailureRateLimiter(1.0, 100.0)
    bucket = BucketRateLimiter(qps=1.0, burst=1, clock=clock)
    rl = MaxOfRateLimiter(per_key, bucket)
    assert rl.when("a") == 1.0  # per-key 1 s; bucket had a token
    assert rl.when("b") == 1.0  # per-key 1 s; bucket 1 s
    assert rl.when("a") == 2.0  # per-key 2 s; bucket 2 s
    assert rl.when("c") == 3.0  # per-key 1 s; bucket 3 s: the global rate wins
    assert rl.num_requeues("a") == 2
    rl.forget("a")
    assert rl.num_requeues("a") == 0


def test_default_controller_rate_limiter() -> None:
    clock = FakeClock()
    rl = default_controller_rate_limiter(clock)
    keys: list[Hashable] = [f"k{i}" for i in range(100)]
    assert {rl.when(k) for k in keys} == {0.005}, "burst of 100 at the per-key base delay"
    assert rl.when("k100") == pytest.approx(0.1), "then 10 qps"


# -- the rate-limited queue -----------------------------------------------------------------


async def test_add_rate_limited_backs_off_per_key_until_forgotten() -> None:
    clock = FakeClock()
    q: RateLimitingQueue[str] = RateLimitingQueue(ExponentialFailureRateLimiter(1.0, 8.0),
                                                  clock=clock)
    expected = [1.0, 2.0, 4.0, 8.0, 8.0]
    for n, delay in enumerate(expected, start=1):
        q.add_rate_limited("a")
        clock.advance(delay - 0.001)
        assert len(q) == 0, f"retry {n} not before {delay}s"
        clock.advance(0.001)
        assert await q.get() == "a"
        q.done("a")
        assert q.num_requeues("a") == n
    q.forget("a")
    assert q.num_requeues("a") == 0
    q.add_rate_limited("a")
    clock.advance(1.0)
    assert len(q) == 1


async def test_rate_limited_keys_do_not_delay_each_other() -> None:
    clock = FakeClock()
    q: RateLimitingQueue[str] = RateLimitingQueue(ExponentialFailureRateLimiter(1.0, 100.0),
                                                  clock=clock)
    for _ in range(4):
        q.rate_limiter.when("hot")  # four earlier failures
    q.add_rate_limited("hot")  # 16 s
    q.add_rate_limited("cold")  # 1 s
    clock.advance(1.0)
    assert len(q) == 1
    assert await q.get() == "cold"
    clock.advance(15.0)
    assert await q.get() == "hot"
