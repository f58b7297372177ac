"""Namespace deletion in the registry (pkg/registry/core/namespace/storage/storage.go): the
first DELETE marks, ``/finalize`` empties ``spec.finalizers``, and the namespace goes once both
finalizer lists are empty; the immortal namespaces are refused."""

from __future__ import annotations

import random
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.registry.generic import Preconditions
from svcnet.registry.namespaces import NamespaceRegistry
from svcnet.storage.memory import MemoryStore
from svcnet.util.clock import FakeClock


@pytest.fixture
def registry() -> NamespaceRegistry:
    return NamespaceRegistry(MemoryStore(), clock=FakeClock(), rng=random.Random(1))


async def create(registry: NamespaceRegistry, name: str = "x", **meta: Any) -> dict[str, Any]:
    return await registry.create("", {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": name, **meta}})


async def gone(registry: NamespaceRegistry, name: str = "x") -> bool:
    try:
        await registry.get("", name)
    except StatusError as e:
        return e.code == 404
    return False


def finalize_body(ns: dict[str, Any], finalizers: list[str]) -> dict[str, Any]:
    return {**ns, "spec": {**ns["spec"], "finalizers": finalizers},
            "status": {"phase": "Active"}}


async def test_create_adds_the_kubernetes_finalizer(registry: NamespaceRegistry) -> None:
    ns = await create(registry)
    assert ns["spec"]["finalizers"] == ["kubernetes"]
    assert ns["status"] == {"phase": "Active"}


async def test_delete_marks_terminating_until_finalized(registry: NamespaceRegistry) -> None:
    await create(registry)
    marked = await registry.delete("", "x")
    assert marked["metadata"]["deletionTimestamp"]
    assert marked["status"]["phase"] == "Terminating"
    assert "deletionGracePeriodSeconds" not in marked["metadata"]
    assert marked == await registry.get("", "x"), "stored, not removed"
    # Deleting again while spec.finalizers is not empty answers the namespace as it is.
    assert await registry.delete("", "x") == marked
    # The finalize update keeps the stored status whatever the body says, and removing the
    # last finalizer removes the namespace.
    done = await registry.finalize("x", finalize_body(marked, []))
    assert done["status"]["phase"] == "Terminating"
    assert await gone(registry)


async def test_finalize_without_deletion_keeps_the_namespace(
        registry: NamespaceRegistry) -> None:
    ns = await create(registry)
    written = await registry.finalize("x", finalize_body(ns, []))
    assert written["spec"]["finalizers"] == [] and written["status"]["phase"] == "Active"
    assert not await gone(registry)
    # Nothing left to wait for: a delete marks it, and the next delete removes it.
    await registry.delete("", "x")
    assert not await gone(registry)
    await registry.delete("", "x")
    assert await gone(registry)


async def test_the_main_endpoint_cannot_touch_spec_finalizers(
        registry: NamespaceRegistry) -> None:
    ns = await create(registry)
    updated = await registry.update("", "x", finalize_body(ns, []))
    assert updated["spec"]["finalizers"] == ["kubernetes"]


async def test_metadata_finalizers_hold_it_after_finalize(registry: NamespaceRegistry) -> None:
    await create(registry, finalizers=["example.com/hold"])
    marked = await registry.delete("", "x", propagation_policy="Orphan")
    assert marked["metadata"]["finalizers"] == ["example.com/hold", "orphan"]
    assert marked["status"]["phase"] == "Terminating"
    await registry.finalize("x", finalize_body(marked, []))
    held = await registry.get("", "x")
    assert held["metadata"]["finalizers"] == ["example.com/hold", "orphan"]
    held["metadata"]["finalizers"] = []
    await registry.update("", "x", held)
    assert await gone(registry)


async def test_background_policy_removes_gc_finalizers(registry: NamespaceRegistry) -> None:
    await create(registry, finalizers=["orphan", "example.com/hold"])
    marked = await registry.delete("", "x", propagation_policy="Background")
    assert marked["metadata"]["finalizers"] == ["example.com/hold"]


async def test_removing_metadata_finalizers_alone_does_not_delete(
        registry: NamespaceRegistry) -> None:
    await create(registry, finalizers=["example.com/hold"])
    marked = await registry.delete("", "x")
    marked["metadata"]["finalizers"] = []
    await registry.update("", "x", marked)
    left = await registry.get("", "x")
    assert left["spec"]["finalizers"] == ["kubernetes"], "the controller has not finalized"


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
async def test_immortal_namespaces_are_refused(registry: NamespaceRegistry,
                                               name: str) -> None:
    await create(registry, name)
    with pytest.raises(StatusError) as e:
        await registry.delete("", name)
    assert (e.value.code, e.value.reason) == (403, "Forbidden")
    assert e.value.message == (f'namespaces "{name}" is forbidden: this namespace may not be '
                               "deleted")
    assert e.value.details == {"name": name, "kind": "namespaces"}
    assert not (await registry.get("", name))["metadata"].get("deletionTimestamp")


async def test_kube_node_lease_may_be_deleted(registry: NamespaceRegistry) -> None:
    await create(registry, "kube-node-lease")
    assert (await registry.delete("", "kube-node-lease"))["metadata"]["deletionTimestamp"]


async def test_preconditions_and_dry_run(registry: NamespaceRegistry) -> None:
    ns = await create(registry)
    with pytest.raises(StatusError) as e:
        await registry.delete("", "x", preconditions=Preconditions(uid="other"))
    assert e.value.code == 409
    assert "Precondition failed: UID in precondition: other" in e.value.message
    dry = await registry.delete("", "x", dry_run=True)
    assert dry["status"]["phase"] == "Terminating"
    assert await registry.get("", "x") == ns
    with pytest.raises(StatusError) as e:
        await registry.delete("", "missing")
    assert e.value.code == 404


async def test_finalize_validates_finalizer_names(registry: NamespaceRegistry) -> None:
    ns = await create(registry)
    with pytest.raises(StatusError) as e:
        await registry.finalize("x", finalize_body(ns, ["kubernetes", "bogus"]))
    assert e.value.code == 422
    (cause,) = e.value.details["causes"]
    assert cause["field"] == "spec.finalizers[1]"
