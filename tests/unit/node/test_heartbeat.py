"""The agent's heartbeat retry (svcnet/node/agent.py): tried again at once after a transport
failure (the REST client has moved on to the next server), up to five times in all, as
kubelet's lease controller; a refusal by the server is not retried."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from svcnet.api.errors import StatusError
from svcnet.client.rest import TransportError
from svcnet.node.agent import HEARTBEAT_ATTEMPTS, _attempts


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
