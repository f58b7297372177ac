"""NetnsThread (util/nsthread.py) in a namespace of its own: a caller cancelled while its
function runs does not leak what the function made (a socket nobody would close)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest

from svcnet.util.nsthread import NetnsThread
from tests.e2e.local_clusters import unique_name

pytestmark = pytest.mark.root


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"svcnet-{unique_name('nst')}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


async def test_a_cancelled_callers_socket_is_discarded(netns: str) -> None:
    thread = NetnsThread(netns)
    started, release = threading.Event(), threading.Event()
    made: list[socket.socket] = []
    discarded: list[socket.socket] = []

    def make() -> socket.socket:
        started.set()
        release.wait(10)
        made.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        return made[-1]

    def discard(sock: socket.socket) -> None:
        discarded.append(sock)
        sock.close()

    try:
        caller = asyncio.create_task(thread.call(make, discard=discard))
        assert await asyncio.to_thread(started.wait, 10)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        release.set()
        for _ in range(200):
            if discarded:
                break
            await asyncio.sleep(0.01)
        assert discarded == made and made[0].fileno() == -1
        # An uncancelled call hands its result over and discards nothing.
        sock = await thread.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM),
                                 discard=discard)
        assert sock.fileno() >= 0 and len(discarded) == 1
        sock.close()
    finally:
        release.set()
        thread.close()
