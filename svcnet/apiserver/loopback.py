"""The API server's own way in: its controllers' requests over a private Unix socket.

Theory of operation
-------------------
kube-apiserver gives the controllers it runs itself (its post-start hooks) a *loopback client
config* (``LoopbackClientConfig`` in k8s.io/apiserver's ``pkg/server/config.go``): a client
of its own port, authenticated by a token generated at start-up. Here the whole controller
manager runs in the server's process while it leads, and its traffic is most of the server's
traffic: for each Service a client writes, the controllers receive the change on a watch and
write an EndpointSlice and an Endpoints object, and receive those back on their own watches.
Over TLS, every one of those bytes is encrypted and decrypted twice by this one process.

So the controllers speak plain HTTP over a Unix socket in Linux's abstract namespace, named
``svcnet-apiserver-<128 random bits>``: no file to clean up, gone with the process, and
reachable only from this network namespace by a process that knows the name. A server's API
workers (workers.py) inherit the listening socket and accept from it too, as from the TCP
socket (connections.SharedAcceptor), so the controllers' connections are spread over every
process of the server as clients' are. Nothing else
changes: requests go through the same handlers, and each is authenticated (the admin bearer
token, as before: a caller who found the name still needs it), authorized, admitted,
validated and recorded in managedFields like any client's. Only the transport differs, so
controllers still "talk to the API like any client" (docs/DESIGN.md §1) and run the same
against a remote server (``svcnet.controllers.manager`` takes any client).
"""

from __future__ import annotations

import secrets
import socket

import aiohttp
from aiohttp import web

from svcnet.apiserver.connections import SharedSockSite
from svcnet.client.rest import RESTClient

BACKLOG = 128

__all__ = ["Loopback"]


class Loopback:
    """The private socket (:meth:`serve`) and clients of it (:meth:`client`)."""

    def __init__(self) -> None:
        self.path = f"\0svcnet-apiserver-{secrets.token_hex(16)}"
        self._sessions: list[aiohttp.ClientSession] = []
        self.sock: socket.socket | None = None

    async def serve(self, runner: web.BaseRunner, *, shared: bool = False,
                    inherited: int | None = None) -> None:
        """Serve ``runner``'s application on the socket too (after its main site): a new
        one, or the one ``inherited`` (a descriptor) from the server of an API worker.
        ``shared``: other processes accept from it too (connections.SharedAcceptor)."""
        if inherited is not None:
            sock = socket.socket(fileno=inherited)
            shared = True
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(self.path)
            sock.listen(BACKLOG)
        self.sock = sock
        site = SharedSockSite if shared else web.SockSite
        await site(runner, sock, backlog=BACKLOG).start()

    def client(self, token: str, *, user_agent: str) -> RESTClient:
        """A client of this server through the socket; call from the running loop."""
        session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=self.path))
        self._sessions.append(session)
        return RESTClient("http://svcnet-apiserver", token=token, user_agent=user_agent,
                          session=session)

    async def close(self) -> None:
        """Close every client's connections (the socket closes with the runner's site)."""
        sessions, self._sessions = self._sessions, []
        for session in sessions:
            await session.close()
