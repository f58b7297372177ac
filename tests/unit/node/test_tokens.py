"""The node's ServiceAccount token manager: upstream's refresh rule (pure), and the cache that
requests, renews and forgets tokens over a fake TokenRequest API."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.client.rest import TransportError
from svcnet.node.tokens import Token, TokenManager, requires_refresh
from svcnet.node.volumes import TokenKey, VolumeError
from svcnet.util.clock import FakeClock, rfc3339

Obj = dict[str, Any]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def token(lifetime: int, issued: datetime = T0) -> Token:
    return Token("jwt", issued + timedelta(seconds=lifetime), lifetime)


@pytest.mark.parametrize(("lifetime", "age", "jitter", "due"), [
    (3600, 2879, 0.0, False),      # 80 % of an hour is 2880 s
    (3600, 2881, 0.0, True),
    (3600, 2875, 9.9, True),       # the jitter (whole seconds: 9) brings it forward
    (3600, 2870, 9.9, False),
    (600, 479, 0.0, False),        # the shortest lifetime the API allows
    (600, 481, 0.0, True),
    (7 * 86400, 86399, 0.0, False),  # a week-long token: renewed after a day, not 80 %
    (7 * 86400, 86401, 0.0, True),
])
def test_requires_refresh(lifetime: int, age: int, jitter: float, due: bool) -> None:
    assert requires_refresh(token(lifetime), T0 + timedelta(seconds=age), jitter) is due


class FakeTokenAPI:
    """``POST .../serviceaccounts/SA/token`` over a set of ServiceAccounts."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.accounts = {("ns", "robot")}
        self.requests: list[tuple[str, Obj]] = []
        self.down = False
        self.issued = 0

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      body: Any = None, content_type: str = "application/json") -> Any:
        assert method == "POST"
        self.requests.append((path, body))
        if self.down:
            raise TransportError(f"POST {path}: connection refused")
        parts = path.split("/")  # /api/v1/namespaces/NS/serviceaccounts/SA/token
        ns, name = parts[4], parts[6]
        if (ns, name) not in self.accounts:
            raise StatusError(404, "NotFound", f'serviceaccounts "{name}" not found')
        self.issued += 1
        seconds = body["spec"]["expirationSeconds"]
        return {**body, "status": {
            "token": f"jwt-{self.issued}",
            "expirationTimestamp": rfc3339(self.clock.now() + timedelta(seconds=seconds))}}


def pod(name: str, uid: str, account: str = "robot", **extra: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid, **extra},
            "spec": {"serviceAccountName": account, "containers": [{"name": "c"}],
                     "volumes": [{"name": "kube-api-access-abcde", "projected": {"sources": [
                         {"serviceAccountToken": {"path": "token",
                                                  "expirationSeconds": 3607}}]}}]}}


def key(name: str, uid: str, account: str = "robot") -> TokenKey:
    return TokenKey("ns", account, name, uid, "", 3607)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def api(clock: FakeClock) -> FakeTokenAPI:
    return FakeTokenAPI(clock)


@pytest.fixture
def manager(api: FakeTokenAPI, clock: FakeClock) -> TokenManager:
    return TokenManager(api, clock=clock, jitter=lambda: 0.0)


async def test_requests_a_bound_token_once_and_serves_it_from_the_cache(
        manager: TokenManager, api: FakeTokenAPI, clock: FakeClock) -> None:
    with pytest.raises(VolumeError, match="failed to fetch token: no token requested yet"):
        manager.lookup(key("web", "u1"))
    await manager.track([pod("web", "u1")])
    assert api.requests == [("/api/v1/namespaces/ns/serviceaccounts/robot/token", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "metadata": {"namespace": "ns"},
        "spec": {"audiences": [], "expirationSeconds": 3607,
                 "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web",
                                    "uid": "u1"}}})]
    assert manager.lookup(key("web", "u1")) == "jwt-1"
    clock.advance(2800)
    await manager.track([pod("web", "u1")])
    assert len(api.requests) == 1, "a fresh token is not asked for again"
    assert manager.lookup(key("web", "u1")) == "jwt-1"


async def test_renews_after_80_percent_of_the_lifetime(
        manager: TokenManager, api: FakeTokenAPI, clock: FakeClock) -> None:
    await manager.track([pod("web", "u1")])
    clock.advance(3607 * 0.8 + 1)
    await manager.track([pod("web", "u1")])
    assert manager.lookup(key("web", "u1")) == "jwt-2"
    assert len(api.requests) == 2


async def test_a_failed_renewal_keeps_the_valid_token_until_it_expires(
        manager: TokenManager, api: FakeTokenAPI, clock: FakeClock) -> None:
    await manager.track([pod("web", "u1")])
    api.down = True
    clock.advance(3000)
    await manager.track([pod("web", "u1")])
    assert manager.lookup(key("web", "u1")) == "jwt-1"
    clock.advance(700)
    await manager.track([pod("web", "u1")])
    with pytest.raises(VolumeError) as err:
        manager.lookup(key("web", "u1"))
    assert str(err.value) == (
        "token ns/robot for pod web (u1), audience <api>, 3607s expired and refresh failed: "
        "POST /api/v1/namespaces/ns/serviceaccounts/robot/token: connection refused")
    api.down = False
    await manager.track([pod("web", "u1")])
    assert len(api.requests) == 3, "asked again only after the back-off"
    clock.advance(1)
    await manager.track([pod("web", "u1")])
    assert manager.lookup(key("web", "u1")) == "jwt-2"


async def test_a_missing_service_account_fails_until_it_exists_with_back_off(
        manager: TokenManager, api: FakeTokenAPI, clock: FakeClock) -> None:
    job = pod("job", "u2", account="builder")
    await manager.track([job])
    with pytest.raises(VolumeError) as err:
        manager.lookup(key("job", "u2", "builder"))
    assert str(err.value) == 'failed to fetch token: serviceaccounts "builder" not found'
    # Failed requests are repeated after 0.5 s, 1 s, 2 s, ... however often pods sync.
    asked_at = []
    for _ in range(80):
        before = len(api.requests)
        await manager.track([job])
        if len(api.requests) > before:
            asked_at.append(clock.monotonic() - 1000.0)
        clock.advance(0.1)
    assert [round(t, 1) for t in asked_at] == [0.5, 1.5, 3.5, 7.5]
    api.accounts.add(("ns", "builder"))
    clock.advance(8.0)
    await manager.track([job])
    assert manager.lookup(key("job", "u2", "builder")) == "jwt-1"


async def test_tokens_of_removed_finished_or_terminating_pods_are_dropped(
        manager: TokenManager, api: FakeTokenAPI) -> None:
    web, job = pod("web", "u1"), pod("job", "u2")
    await manager.track([web, job])
    assert manager.cached() == {key("web", "u1"), key("job", "u2")}
    await manager.track([web])
    assert manager.cached() == {key("web", "u1")}
    with pytest.raises(VolumeError):
        manager.lookup(key("job", "u2"))
    await manager.track([{**web, "status": {"phase": "Succeeded"}}])
    assert manager.cached() == set()
    await manager.track([pod("web", "u3", deletionTimestamp="2026-01-01T00:00:00Z")])
    assert manager.cached() == set()
    assert len(api.requests) == 2, "no token is asked for a pod that is going away"


async def test_a_hanging_api_fails_the_request_after_the_timeout(clock: FakeClock) -> None:
    class Hanging:
        async def request(self, method: str, path: str, **_kw: Any) -> Any:
            await asyncio.Event().wait()

    manager = TokenManager(Hanging(), clock=clock, timeout=0.05)
    await manager.track([pod("web", "u1")])
    with pytest.raises(VolumeError, match=r"failed to fetch token: POST .*: no answer in 0.05s"):
        manager.lookup(key("web", "u1"))
