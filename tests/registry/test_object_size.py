"""The largest object stored: MAX_OBJECT_BYTES of JSON, a 413 past it (before managedFields
are computed when the object alone is already too large); nothing is written."""

from __future__ import annotations

import random
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.registry.generic import MAX_OBJECT_BYTES, Registry
from svcnet.registry.strategies import EndpointsStrategy
from svcnet.storage.memory import MemoryStore
from svcnet.util.clock import FakeClock

Obj = dict[str, Any]


def endpoints(addresses: int) -> Obj:
    """Endpoints (validated as ObjectMeta only) of about 30 bytes per address."""
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "ep"},
            "subsets": [{"addresses": [{"ip": f"10.0.{i >> 8 & 255}.{i & 255}"}
                                       for i in range(addresses)]}]}


@pytest.fixture
def registry() -> Registry:
    return Registry(MemoryStore(), EndpointsStrategy(), clock=FakeClock(),
                    rng=random.Random(1))


async def test_an_object_over_the_limit_is_refused_before_before_write(
        registry: Registry) -> None:
    calls: list[str] = []

    def record(old: Obj | None, new: Obj) -> Obj:
        calls.append("before_write")
        return new

    with pytest.raises(StatusError) as e:
        await registry.create("ns", endpoints(MAX_OBJECT_BYTES // 20), before_write=record)
    assert (e.value.code, e.value.reason) == (413, "RequestEntityTooLarge")
    assert e.value.message.startswith("Request entity too large: the object would be ")
    assert calls == [], "managedFields are not computed for an object already too large"
    assert (await registry.list("ns")).items == []


async def test_what_before_write_adds_counts_too(registry: Registry) -> None:
    def bloat(old: Obj | None, new: Obj) -> Obj:
        new["metadata"]["managedFields"] = [{"manager": "m" * (MAX_OBJECT_BYTES + 1)}]
        return new

    with pytest.raises(StatusError) as e:
        await registry.create("ns", endpoints(1), before_write=bloat)
    assert e.value.code == 413
    await registry.create("ns", endpoints(1))
    ep = await registry.get("ns", "ep")
    ep["metadata"]["labels"] = {"k": "v"}
    with pytest.raises(StatusError) as e:
        await registry.update("ns", "ep", ep, before_write=bloat)
    assert e.value.code == 413
    assert "labels" not in (await registry.get("ns", "ep"))["metadata"], "nothing written"
