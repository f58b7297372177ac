"""svcnet/util/bytequeue.py: a put waits while the queue holds more than its limit."""

from __future__ import annotations

import asyncio

from svcnet.util.bytequeue import ByteQueue


async def test_put_waits_until_the_reader_makes_room() -> None:
    q = ByteQueue(limit=10)
    await q.put(b"12345")
    await q.put(b"67890")  # at the limit: no wait
    over = asyncio.create_task(q.put(b"x"))
    await asyncio.sleep(0.01)
    assert not over.done() and q.size == 11
    assert await q.get() == b"12345"
    await asyncio.wait_for(over, 1)
    assert [await q.get(), await q.get()] == [b"67890", b"x"]


async def test_close_ends_the_stream_and_frees_a_waiting_writer() -> None:
    q = ByteQueue(limit=1)
    stuck = asyncio.create_task(q.put(b"ab"))
    await asyncio.sleep(0.01)
    assert not stuck.done()
    q.close()
    await asyncio.wait_for(stuck, 1)
    await q.put(b"dropped")
    assert [await q.get(), await q.get()] == [b"ab", b""]
