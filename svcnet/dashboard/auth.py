"""Who may see the dashboard: whoever holds a token the API server accepts.

Theory of operation
-------------------
The page shows what the dashboard's own credentials (the kubeconfig's) can read, so it must
not be open to anyone who can reach the loopback port (other local users, a web page making
the browser fetch ``127.0.0.1``). A visitor proves a token: ``?token=`` on any page, or the
login form. The token is checked against the API server — a ``GET`` of the Services
collection (``limit=1``) *with that token*: 401 there is a bad token, 403 a token whose user may
not list Services, either way the visitor is refused with the same code. An accepted token is
exchanged for a random session id in an ``HttpOnly``, ``SameSite=Strict`` cookie (the token
itself never goes back to the browser), and the URL is cleaned of it by a redirect.

Sessions re-check their token every :data:`RECHECK` seconds, so revoking the token (deleting
its ServiceAccount, say) ends the session at the next request or event-stream check; a session
unused for :data:`IDLE` seconds is forgotten.
"""

from __future__ import annotations

import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from svcnet.api.errors import StatusError
from svcnet.client.rest import SERVICES, RESTClient, TransportError

COOKIE: Final = "svcnet-dashboard"
RECHECK: Final = 30.0
IDLE: Final = 12 * 3600.0
"""A session unused this long is forgotten (and a new login needs the token again)."""

Verifier = Callable[[str], Awaitable[int]]
"""Checks a token: the HTTP status the API server answered (200, 401, 403, 503...)."""


def api_verifier(server: str, ssl_context: ssl.SSLContext | None,
                 server_hostname: str = "") -> Verifier:
    """A :data:`Verifier` asking the API server at ``server`` (one request per check)."""

    async def verify(token: str) -> int:
        if not token:
            return 401
        async with RESTClient(server, token=token, ssl_context=ssl_context,
                              server_hostname=server_hostname, timeout=10) as client:
            try:
                await client.request("GET", SERVICES.path(), params={"limit": "1"})
            except StatusError as e:
                return e.code
            except TransportError:
                return 503
        return 200

    return verify


@dataclass
class _Session:
    token: str
    checked: float
    used: float


class Sessions:
    """Session ids (cookie values) for verified tokens."""

    def __init__(self, verify: Verifier, clock: Callable[[], float] = time.monotonic) -> None:
        self._verify = verify
        self._clock = clock
        self._sessions: dict[str, _Session] = {}

    async def login(self, token: str) -> tuple[int, str]:
        """(status, session id): the id is empty unless the API server accepted the token."""
        code = await self._verify(token)
        if code != 200:
            return code, ""
        now = self._clock()
        for stale in [k for k, s in self._sessions.items() if now - s.used >= IDLE]:
            del self._sessions[stale]
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = _Session(token, now, now)
        return 200, sid

    async def check(self, sid: str | None) -> int:
        """200 for a live session, else the code to refuse with (401 unknown, or the token's
        current answer once re-checked)."""
        session = self._sessions.get(sid or "")
        if session is None:
            return 401
        if self._clock() - session.used >= IDLE:
            self._sessions.pop(sid or "", None)
            return 401
        session.used = self._clock()
        if self._clock() - session.checked >= RECHECK:
            code = await self._verify(session.token)
            if code != 200:
                self._sessions.pop(sid or "", None)
                return code
            session.checked = self._clock()
        return 200

    def logout(self, sid: str | None) -> None:
        self._sessions.pop(sid or "", None)
