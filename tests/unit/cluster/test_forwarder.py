"""The localhost NodePort forwarder's relay, on loopback: 127.0.0.1:PORT to 127.0.0.2:PORT.

A client that connects and leaves before the forwarder has reached the endpoint (as ``svcnet
up``'s "NodePorts answering" check does) must not leave an idle connection open to the
endpoint: a single-threaded server behind the NodePort would wait on it forever. And once
both directions are closed, both sockets are (no file descriptor is left behind).
"""

from __future__ import annotations

import asyncio
import os

from svcnet.cluster.forwarder import NodePortForwarder
from tests.conftest import free_port


async def _backend(port: int) -> tuple[asyncio.Server, asyncio.Queue[bytes]]:
    """A server on 127.0.0.2 that reports, per connection, everything it read until EOF."""
    seen: asyncio.Queue[bytes] = asyncio.Queue()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await seen.put(await reader.read())
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.2", port), seen


def test_a_client_gone_before_the_upstream_connects_closes_it() -> None:
    async def main() -> None:
        port = free_port()
        server, seen = await _backend(port)
        fwd = NodePortForwarder("127.0.0.2")
        await fwd.set_ports({port})
        fds = len(os.listdir("/proc/self/fd"))
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()  # at once: the forwarder is still connecting upstream
            await w.wait_closed()
            assert await asyncio.wait_for(seen.get(), 3) == b""
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"hello")
            w.write_eof()  # before the upstream is connected, too
            assert await asyncio.wait_for(seen.get(), 3) == b"hello"
            assert await asyncio.wait_for(r.read(), 3) == b""
            w.close()
            await w.wait_closed()
            await asyncio.sleep(0.1)  # the relay's transports finish closing
            assert len(os.listdir("/proc/self/fd")) == fds
        finally:
            await fwd.close()
            server.close()
            await server.wait_closed()

    asyncio.run(main())
