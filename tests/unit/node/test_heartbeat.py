"""The agent's heartbeat retry (svcnet/node/agent.py): tried again at once after a transport
failure (the REST client has moved on to the next server), up to five times in all, as
kubelet's lease controller; a refusal by the server is not retried. Registration: tried until
it succeeds, with backoff, as kubelet's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest

from svcnet.api.errors import StatusError
from svcnet.client.rest import RESTClient, TransportError
from svcnet.node.agent import (
    HEARTBEAT_ATTEMPTS,
    REGISTER_MAX_PAUSE,
    AgentConfig,
    NodeAgent,
    _attempts,
)
from svcnet.util.clock import FakeClock


def _beat(failures: list[Exception]) -> tuple[list[int], Callable[[], Awaitable[str]]]:
    calls: list[int] = []

    async def beat() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "renewed"

    return calls, beat


async def test_a_heartbeat_is_tried_again_at_once_after_a_transport_failure() -> None:
    calls, beat = _beat([TransportError("timed out"), TransportError("timed out")])
    assert await _attempts(beat) == "renewed"
    assert len(calls) == 3


async def test_a_heartbeat_gives_up_after_five_attempts() -> None:
    calls, beat = _beat([TransportError(str(i)) for i in range(10)])
    with pytest.raises(TransportError, match="4"):
        await _attempts(beat)
    assert len(calls) == HEARTBEAT_ATTEMPTS == 5


async def test_a_refused_heartbeat_is_not_tried_again() -> None:
    calls, beat = _beat([StatusError(403, "Forbidden", "no")])
    with pytest.raises(StatusError):
        await _attempts(beat)
    assert len(calls) == 1


class _Clock(FakeClock):
    """Sleeps return at once, and are recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


class _Client:
    """The REST client's Node calls: each outcome in turn (an exception is raised), and the
    timeout of every call."""

    def __init__(self, outcomes: list[Exception | None]) -> None:
        self.outcomes = outcomes
        self.timeouts: list[float | None] = []

    async def _answer(self, timeout: float | None, obj: dict[str, Any]) -> dict[str, Any]:
        self.timeouts.append(timeout)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        return {**obj, "spec": {"podCIDR": "10.244.1.0/24"}}

    async def create(self, _gvr: object, obj: dict[str, Any], *,
                     timeout: float | None = None) -> dict[str, Any]:
        return await self._answer(timeout, obj)

    async def patch(self, _gvr: object, _ns: str, name: str, _patch: object, *,
                    timeout: float | None = None, **_: object) -> dict[str, Any]:
        return await self._answer(timeout, {"metadata": {"name": name}})


def _agent(client: _Client, clock: _Clock) -> NodeAgent:
    return NodeAgent(AgentConfig(kubeconfig=Path("unused"), node_name="n1"),
                     client=cast(RESTClient, client), clock=clock)


async def test_registration_is_tried_until_it_succeeds_each_try_with_a_short_timeout() -> None:
    """kubelet's registerWithAPIServer: 0.1 s doubling to 7 s between tries; a silent server
    costs one heartbeat timeout per try (the client has moved on meanwhile)."""
    failures: list[Exception | None] = [
        TransportError("timed out"), *[StatusError(503, "ServiceUnavailable", "etcd")] * 7]
    client, clock = _Client(failures), _Clock()
    agent = _agent(client, clock)
    await agent.register()
    assert clock.slept == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, REGISTER_MAX_PAUSE]
    assert len(client.timeouts) == 8 + 2  # the tries, then the create and the status
    assert set(client.timeouts) == {agent.config.heartbeat_timeout}
    assert agent._node["metadata"]["name"] == "n1"


async def test_a_registration_refused_for_good_is_raised() -> None:
    client, clock = _Client([StatusError(403, "Forbidden", "no")]), _Clock()
    with pytest.raises(StatusError, match="no"):
        await _agent(client, clock).register()
    assert clock.slept == []
