"""Connections: how long a client may take to ask, how many may stay, how long a request may be.

Theory of operation
-------------------
The anchor is Go's ``net/http`` Server as kube-apiserver configures it
(k8s.io/apiserver/pkg/server/secure_serving.go): ``ReadHeaderTimeout`` 32 s, ``IdleTimeout``
90 s, ``MaxHeaderBytes`` 1 MiB, and the TLS handshake bounded by the same read deadline. svcnet
serves through aiohttp and uses its knobs rather than protocol code of its own:

* **header-read and idle timeout**: aiohttp arms one timer when a connection is made and again
  after each response, and closes the connection if no complete request head has arrived when it
  fires (``keepalive_timeout``). That is Go's ``ReadHeaderTimeout`` for a slow-loris client (a
  head trickled in byte by byte) and its ``IdleTimeout`` for a silent keep-alive one at once, so
  both are :data:`READ_HEADER_TIMEOUT`; the TLS handshake gets the same bound
  (``ssl_handshake_timeout`` of the listening socket);
* **sizes**: the request line may be :data:`MAX_REQUEST_LINE` bytes, one header field
  :data:`MAX_HEADER_FIELD`, and a request :data:`MAX_HEADERS` fields (aiohttp's parser limits).
  A longer request line is answered ``414 Request-URI Too Long``, a longer field or too many
  fields ``431 Request Header Fields Too Large``, other unparsable input 400 — each a real HTTP
  response carrying a Kubernetes ``Status``, then the connection is closed (as Go does);
* **a cap on connections** (:class:`ConnectionGate`): at most ``limit`` established connections.
  A new one over the cap evicts, of the connections waiting for a request (idle, or still
  trickling its head: what a slow-loris client looks like), the one that has waited longest.
  A real client between two requests has waited microseconds, a slow-loris one since it
  connected, so real clients are not starved by connections that do nothing; if every
  connection is busy serving a request (a watch, say), the new one is closed at once, which
  costs nothing but the accept.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import ssl
from collections.abc import Sequence
from typing import Any, Protocol

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from svcnet.api.errors import StatusError

log = logging.getLogger(__name__)

READ_HEADER_TIMEOUT = 32.0
"""Seconds a connection may take to deliver a complete request head (and may stay idle)."""
MAX_REQUEST_LINE = 64 * 1024
MAX_HEADER_FIELD = 32 * 1024
MAX_HEADERS = 128
MAX_CONNECTIONS = 1024


class Connection(Protocol):
    """What the gate needs of a connection."""

    def idle_deadline(self) -> float | None:
        """When the header/idle timer closes this connection if no request head arrives;
        ``None`` while it is serving a request."""
        ...

    def force_close(self) -> None: ...


class ConnectionGate:
    """Admits up to ``limit`` connections; over it, makes room or refuses (see module doc)."""

    def __init__(self, limit: int = MAX_CONNECTIONS) -> None:
        if limit < 1:
            raise ValueError(f"the connection limit must be at least 1, not {limit}")
        self.limit = limit
        self._open: dict[Connection, None] = {}
        self.evicted = 0
        self.refused = 0

    def __len__(self) -> int:
        return len(self._open)

    def victim(self) -> Connection | None:
        """Pure choice: of the connections waiting for a request, the one that has waited
        longest (its timer is due first), if any."""
        best: Connection | None = None
        best_deadline = math.inf
        for conn in self._open:
            deadline = conn.idle_deadline()
            if deadline is not None and deadline < best_deadline:
                best, best_deadline = conn, deadline
        return best

    def admit(self, conn: Connection) -> bool:
        """Record a new connection; ``False`` means it must be closed (all others busy)."""
        if len(self._open) >= self.limit:
            old = self.victim()
            if old is None:
                self.refused += 1
                return False
            self.evicted += 1
            self.closed(old)
            old.force_close()
        self._open[conn] = None
        return True

    def closed(self, conn: Connection) -> None:
        self._open.pop(conn, None)


def _parse_error_status(exc: BaseException | None) -> StatusError:
    if isinstance(exc, LineTooLong):
        if exc.args[1] == MAX_REQUEST_LINE:
            return StatusError(414, "", "Request-URI Too Long: the request line is longer "
                                        f"than {MAX_REQUEST_LINE} bytes")
        return StatusError(431, "", "Request Header Fields Too Large: a header field is "
                                    f"longer than {MAX_HEADER_FIELD} bytes")
    message = (str(getattr(exc, "message", "")).strip().splitlines() or ["unparsable"])[0]
    if isinstance(exc, BadHttpMessage) and message == "Too many headers received":
        return StatusError(431, "", "Request Header Fields Too Large: more than "
                                    f"{MAX_HEADERS} header fields")
    return StatusError(400, "BadRequest", f"malformed HTTP request: {message}")


class GatedRequestHandler(RequestHandler):
    """aiohttp's connection protocol, admitted through a :class:`ConnectionGate`, answering
    unparsable requests with a Kubernetes ``Status``."""

    __slots__ = ("_gate",)

    def __init__(self, manager: web.Server, *, gate: ConnectionGate, **kwargs: Any) -> None:
        super().__init__(manager, loop=asyncio.get_running_loop(), **kwargs)
        self._gate = gate

    def idle_deadline(self) -> float | None:
        # The same test and the same deadline aiohttp's keep-alive timer uses: waiting for a
        # request head since the connection was made or its last response was sent.
        if self._waiter is None or self._waiter.done():
            return None
        return self._next_keepalive_close_time

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self._gate.admit(self):
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._gate.closed(self)
        super().connection_lost(exc)

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status != 400:  # a handler failure or timeout: aiohttp's own answer
            return super().handle_error(request, status, exc, message)
        # Hostile or broken input is the client's problem: no traceback in the log.
        log.debug("unparsable request from %s: %s", request.remote, exc)
        err = _parse_error_status(exc)
        resp = web.json_response(err.to_status(), status=err.code)
        resp.force_close()
        return resp


class GatedSite(web.TCPSite):
    """A TCP (TLS) listening socket whose connections go through a :class:`ConnectionGate`.

    ``sockets``: listening sockets to serve instead of binding ``host:port`` (an API worker's,
    inherited from its server: workers.py). ``shared``: other processes accept from the same
    sockets, so this one takes one connection each time its loop finds some waiting (asyncio
    takes up to the listen backlog, its ``backlog`` argument, in one go: the first process
    to wake would take a whole burst of new connections, and a busy one would take as many
    as an idle one). The kernel's queue keeps the full backlog (:func:`relisten`)."""

    __slots__ = ("_gate", "_header_timeout", "_inherited", "_more_servers", "_shared")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *,
                 ssl_context: ssl.SSLContext | None, gate: ConnectionGate,
                 header_timeout: float = READ_HEADER_TIMEOUT,
                 sockets: Sequence[socket.socket] = (), shared: bool = False) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context, reuse_address=True)
        self._gate = gate
        self._header_timeout = header_timeout
        self._inherited = tuple(sockets)
        self._shared = shared or bool(sockets)
        self._more_servers: list[asyncio.Server] = []

    def _protocol(self) -> GatedRequestHandler:
        server = self._runner.server
        assert isinstance(server, web.Server)
        return GatedRequestHandler(
            server, gate=self._gate, keepalive_timeout=self._header_timeout,
            max_line_size=MAX_REQUEST_LINE, max_field_size=MAX_HEADER_FIELD,
            max_headers=MAX_HEADERS, access_log=None)

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        loop = asyncio.get_running_loop()
        handshake = self._header_timeout if self._ssl_context else None
        batch = 1 if self._shared else self._backlog
        if self._inherited:  # an API worker's: the primary's listening sockets (workers.py)
            servers = [await loop.create_server(
                self._protocol, sock=sock, ssl=self._ssl_context,
                ssl_handshake_timeout=handshake, backlog=batch)
                for sock in self._inherited]
            self._server = servers[0]
            self._more_servers = servers[1:]
        else:
            self._server = await loop.create_server(
                self._protocol, self._host, self._port, ssl=self._ssl_context,
                ssl_handshake_timeout=handshake, backlog=batch,
                reuse_address=self._reuse_address)
        if self._shared:
            for fd in self.listening_fds():
                relisten(fd, self._backlog)
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port

    def listening_fds(self) -> list[int]:
        """The listening sockets' descriptors (for API workers to inherit)."""
        servers = [self._server, *self._more_servers] if self._server else []
        return [s.fileno() for server in servers
                for s in (server.sockets if isinstance(server, asyncio.Server) else ())]

    async def stop(self) -> None:
        for server in self._more_servers:
            server.close()
        await super().stop()


def relisten(fd: int, backlog: int) -> None:
    """``listen(backlog)`` on the listening socket ``fd`` again: the kernel's queue length,
    after asyncio was given a backlog of 1 to accept one connection per wakeup."""
    sock = socket.socket(fileno=os.dup(fd))
    try:
        sock.listen(backlog)
    finally:
        sock.close()
