"""A scripted upstream resolver on loopback (UDP and TCP on one port), built on dnspython.

It answers from a fixed table of A records (``name → addresses``), NXDOMAIN for other names,
records every query it gets, and misbehaves on cue: ``silent`` (never answers, to test
timeouts) and ``truncate_udp`` (answers UDP with TC and no records, so the client must retry
over TCP).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class FakeUpstream:
    def __init__(self, records: dict[str, list[str]] | None = None) -> None:
        self.records = records if records is not None else {"example.com.": ["192.0.2.1"]}
        self.silent = False
        self.truncate_udp = False
        self.seen: list[tuple[str, dns.message.Message]] = []
        """(transport, query) for every query received."""
        self.address = ("", 0)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._conns: set[asyncio.Task[Any]] = set()

    def answer(self, wire: bytes, transport: str) -> bytes | None:
        q = dns.message.from_wire(wire)
        self.seen.append((transport, q))
        if self.silent:
            return None
        r = dns.message.make_response(q)
        question = q.question[0]
        name = question.name.to_text().lower()
        if transport == "udp" and self.truncate_udp:
            r.flags |= dns.flags.TC
            return r.to_wire()
        if name not in self.records:
            r.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A:
            r.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A",
                                                *self.records[name]))
        return r.to_wire()

    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        upstream = self

        class UDP(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = cast(asyncio.DatagramTransport, transport)

            def datagram_received(self, data: bytes, addr: Any) -> None:
                out = upstream.answer(data, "udp")
                if out is not None:
                    self.transport.sendto(out, addr)

        # The kernel's UDP port choice may be taken for TCP: close and try another one.
        for attempt in range(20):
            transport, _ = await loop.create_datagram_endpoint(UDP,
                                                               local_addr=("127.0.0.1", 0))
            port = transport.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, "127.0.0.1", port)
            except OSError:
                transport.close()
                if attempt == 19:
                    raise
                continue
            self._udp = transport
            break
        self.address = ("127.0.0.1", port)
        return self.address

    async def _serve_tcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                out = self.answer(await reader.readexactly(size), "tcp")
                if out is not None:
                    writer.write(len(out).to_bytes(2, "big") + out)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._conns.discard(task)
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for t in list(self._conns):
                t.cancel()
            for t in list(self._conns):
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            await self._tcp.wait_closed()
