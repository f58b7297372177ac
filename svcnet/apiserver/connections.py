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
import errno
import logging
import math
import os
import socket
import ssl
from collections.abc import Callable, Sequence
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
    sockets, through :class:`SharedAcceptor`."""

    __slots__ = ("_acceptors", "_gate", "_header_timeout", "_inherited", "_more_servers",
                 "_shared")

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
        self._acceptors: list[SharedAcceptor] = []

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
        # A shared socket is served by SharedAcceptor, not by asyncio's accept loop.
        serving = not self._shared
        if self._inherited:  # an API worker's: the primary's listening sockets (workers.py)
            servers = [await loop.create_server(
                self._protocol, sock=sock, ssl=self._ssl_context,
                ssl_handshake_timeout=handshake, backlog=self._backlog,
                start_serving=serving)
                for sock in self._inherited]
            self._server = servers[0]
            self._more_servers = servers[1:]
        else:
            self._server = await loop.create_server(
                self._protocol, self._host, self._port, ssl=self._ssl_context,
                ssl_handshake_timeout=handshake, backlog=self._backlog,
                reuse_address=self._reuse_address, start_serving=serving)
        if self._shared:
            self._acceptors = [
                SharedAcceptor(fd, self._protocol, backlog=self._backlog,
                               ssl_context=self._ssl_context, handshake_timeout=handshake,
                               load=lambda: len(self._gate))
                for fd in self.listening_fds()]
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port

    def listening_fds(self) -> list[int]:
        """The listening sockets' descriptors (for API workers to inherit)."""
        servers = [self._server, *self._more_servers] if self._server else []
        return [s.fileno() for server in servers
                for s in (server.sockets if isinstance(server, asyncio.Server) else ())]

    async def stop(self) -> None:
        for acceptor in self._acceptors:
            acceptor.close()
        for server in self._more_servers:
            server.close()
        await super().stop()


ACCEPT_PAUSE = 0.0005
"""Seconds a process sharing a listening socket stands aside, per connection it holds, after
taking one (:class:`SharedAcceptor`)."""
MAX_ACCEPT_PAUSE = 0.01


class SharedSockSite(web.SockSite):
    """A listening socket, shared with other processes, served through
    :class:`SharedAcceptor` (plain HTTP: the loopback socket, loopback.py)."""

    __slots__ = ("_acceptor",)

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert isinstance(server, web.Server)
        self._acceptor = SharedAcceptor(self._sock.fileno(), server, backlog=self._backlog,
                                        ssl_context=None, handshake_timeout=None,
                                        load=lambda: len(server.connections))

    async def stop(self) -> None:
        self._acceptor.close()
        await super().stop()
        self._sock.close()  # no asyncio server owns it (web.SockSite's would close it)


class SharedAcceptor:
    """Accepts connections from a listening socket that other processes accept from too (an
    API server and its workers: workers.py), so that they share the connections evenly.

    asyncio's own accept loop takes every connection waiting (up to the backlog) each time
    the socket is readable, so the first process to wake takes a whole burst: 16 clients
    connecting at once could all land on one process while another idles, and a busy
    process takes as many as an idle one. Here a process takes one connection per wakeup,
    then stands aside for :data:`ACCEPT_PAUSE` seconds per connection it holds (``load()``,
    and the new one; at most :data:`MAX_ACCEPT_PAUSE`), so the others take the next ones: a
    burst alternates between them, and the process holding fewer connections takes more.
    (One process still accepts at least 100 connections a second, more than the TLS
    handshakes it can make.) The connection becomes a transport through
    ``loop.connect_accepted_socket`` (TLS included), as asyncio's loop would make it.
    Running out of descriptors or memory stops accepting for a second, as asyncio does.
    """

    def __init__(self, fd: int, protocol: Callable[[], asyncio.BaseProtocol], *, backlog: int,
                 ssl_context: ssl.SSLContext | None, handshake_timeout: float | None,
                 load: Callable[[], int]) -> None:
        self._sock = socket.socket(fileno=os.dup(fd))
        self._sock.setblocking(False)
        self._sock.listen(backlog)
        self._protocol = protocol
        self._ssl = ssl_context
        self._handshake_timeout = handshake_timeout
        self._load = load
        self._loop = asyncio.get_running_loop()
        self._resume: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop.add_reader(self._sock.fileno(), self._ready)

    def _ready(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another process took it
        except OSError as e:
            if e.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                raise
            log.warning("cannot accept connections for now: %s", e)
            self._stand_aside(1.0)
            return
        conn.setblocking(False)
        task = self._loop.create_task(self._connect(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._stand_aside(min(ACCEPT_PAUSE * (1 + self._load()), MAX_ACCEPT_PAUSE))

    def _stand_aside(self, seconds: float) -> None:
        if seconds <= 0:
            return
        self._loop.remove_reader(self._sock.fileno())
        self._resume = self._loop.call_later(
            seconds, self._loop.add_reader, self._sock.fileno(), self._ready)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(
                self._protocol, conn, ssl=self._ssl,
                ssl_handshake_timeout=self._handshake_timeout)
        except (OSError, ssl.SSLError, TimeoutError) as e:
            log.debug("connection dropped during its TLS handshake: %s", e)
            conn.close()

    def close(self) -> None:
        """Stop accepting (connections already made are the server's to close)."""
        if self._resume is not None:
            self._resume.cancel()
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        for task in self._tasks:
            task.cancel()
