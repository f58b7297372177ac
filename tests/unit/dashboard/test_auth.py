"""Dashboard sessions: a token the API server accepts buys a session, re-checked later."""

from __future__ import annotations

from svcnet.dashboard.auth import IDLE, RECHECK, Sessions


class FakeApi:
    def __init__(self) -> None:
        self.answers = {"good": 200, "reader-without-services": 403}
        self.calls: list[str] = []

    async def verify(self, token: str) -> int:
        self.calls.append(token)
        return self.answers.get(token, 401)


async def test_only_accepted_tokens_get_a_session_and_revocation_ends_it() -> None:
    api, now = FakeApi(), [0.0]
    sessions = Sessions(api.verify, clock=lambda: now[0])
    assert await sessions.login("bad") == (401, "")
    assert await sessions.login("reader-without-services") == (403, "")
    code, sid = await sessions.login("good")
    assert code == 200 and sid and "good" not in sid
    assert await sessions.check(sid) == 200
    assert await sessions.check("forged") == 401
    assert await sessions.check(None) == 401
    calls = len(api.calls)
    now[0] += RECHECK / 2
    assert await sessions.check(sid) == 200
    assert len(api.calls) == calls  # not re-checked yet
    api.answers["good"] = 401  # the token was revoked
    now[0] += RECHECK
    assert await sessions.check(sid) == 401
    api.answers["good"] = 200
    assert await sessions.check(sid) == 401  # the session is gone for good


async def test_logout_forgets_the_session() -> None:
    sessions = Sessions(FakeApi().verify)
    _, sid = await sessions.login("good")
    sessions.logout(sid)
    assert await sessions.check(sid) == 401


async def test_an_idle_session_is_forgotten() -> None:
    now = [0.0]
    sessions = Sessions(FakeApi().verify, clock=lambda: now[0])
    _, sid = await sessions.login("good")
    now[0] += IDLE
    assert await sessions.check(sid) == 401
