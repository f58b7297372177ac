"""Heavy requests' CPU-bound steps run on the one CPU thread; light ones inline."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading

import pytest

from svcnet.util import offload

_who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def _where() -> tuple[str, str]:
    return threading.current_thread().name, _who.get()


async def test_a_light_request_runs_inline() -> None:
    async def request() -> tuple[str, str]:
        offload.note_size(offload.HEAVY_BYTES - 1)
        assert not offload.is_heavy()
        return await offload.run(_where)

    thread, _ = await asyncio.create_task(request())
    assert thread == threading.current_thread().name


async def test_a_heavy_request_runs_on_the_cpu_thread_in_its_own_context() -> None:
    async def request(who: str) -> tuple[str, str]:
        _who.set(who)
        offload.note_size(offload.HEAVY_BYTES)
        return await offload.run(_where)

    (t1, w1), (t2, w2) = await asyncio.gather(asyncio.create_task(request("a")),
                                              asyncio.create_task(request("b")))
    assert t1 == t2 and t1.startswith("svcnet-cpu"), "one thread for all heavy requests"
    assert (w1, w2) == ("a", "b"), "each request's context goes along"
    assert not offload.is_heavy(), "heaviness stays with the request that noted it"


async def test_the_loop_serves_others_while_a_heavy_step_computes() -> None:
    started, release = threading.Event(), threading.Event()

    def compute() -> str:
        started.set()
        release.wait(10)
        return "done"

    async def heavy() -> str:
        offload.note_size(offload.HEAVY_BYTES)
        return await offload.run(compute)

    task = asyncio.create_task(heavy())
    await asyncio.to_thread(started.wait, 10)
    ticks = 0
    for _ in range(5):  # the loop is free: other coroutines run meanwhile
        await asyncio.sleep(0)
        ticks += 1
    assert ticks == 5 and not task.done()
    release.set()
    assert await task == "done"


async def test_heavy_steps_pause_the_collector_then_freeze_and_later_thaw(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offload, "THAW_AFTER", 0.05)
    gc.unfreeze()

    async def heavy() -> bool:
        offload.note_size(offload.HEAVY_BYTES)
        return await offload.run(gc.isenabled)

    assert gc.isenabled()
    assert await asyncio.create_task(heavy()) is False, "paused while the step runs"
    assert gc.isenabled(), "and back on after it"
    assert gc.get_freeze_count() > 0, "what the step left alive is frozen"
    await asyncio.sleep(0.3)
    assert gc.get_freeze_count() == 0, "and thawed once heavy steps stopped"


async def test_thawing_does_not_count_what_is_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """``gc.get_freeze_count`` walks every frozen object: after a heavy step that is the whole
    heap (70-130 ms on the event loop in a server holding 10k Services). The thaw knows
    without counting."""
    monkeypatch.setattr(offload, "THAW_AFTER", 0.05)
    gc.unfreeze()

    async def heavy() -> int:
        offload.note_size(offload.HEAVY_BYTES)
        return await offload.run(lambda: 1)

    assert await asyncio.create_task(heavy()) == 1
    counted: list[int] = []
    count = gc.get_freeze_count

    def counting() -> int:
        counted.append(1)
        return count()

    monkeypatch.setattr(gc, "get_freeze_count", counting)
    await asyncio.sleep(0.3)
    assert counted == [], "the thaw counted the frozen objects"
    assert count() == 0, "and still thawed them"
