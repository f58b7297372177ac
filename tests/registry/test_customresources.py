"""CRDs and custom resources through the generic registry over a real store
(svcnet/registry/customresources.py): the CRD's create/update/status rules and the cleanup
finalizer its DELETE adds; a custom resource's defaulting, validation, storage version,
generation and status subresource, and creates refused while its CRD terminates."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.api import crds
from svcnet.api.errors import StatusError
from svcnet.apiserver.resources import RESOURCES
from svcnet.registry.customresources import (
    CustomResourceDefinitionRegistry,
    CustomResourceDefinitionStrategy,
    custom_resource_strategy,
)
from svcnet.registry.generic import Registry
from svcnet.storage.memory import MemoryStore
from svcnet.util.clock import FakeClock

Obj = dict[str, Any]
SCHEMA: Obj = {"type": "object", "properties": {
    "spec": {"type": "object", "properties": {
        "size": {"type": "integer", "maximum": 5, "default": 1}}},
    "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}}


def _crd(status: bool = True) -> Obj:
    version: Obj = {"name": "v1", "served": True, "storage": True,
                    "schema": {"openAPIV3Schema": SCHEMA}}
    if status:
        version["subresources"] = {"status": {}}
    return {"apiVersion": crds.API_VERSION, "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"plural": "widgets", "kind": "Widget"},
                     "versions": [{"name": "v1beta1", "served": True, "storage": False,
                                   "schema": {"openAPIV3Schema": SCHEMA}}, version]}}


async def test_crd_create_update_and_delete_with_cleanup_finalizer() -> None:
    registry = CustomResourceDefinitionRegistry(MemoryStore(), CustomResourceDefinitionStrategy(),
                                                clock=FakeClock())
    created = await registry.create("", _crd() | {"status": {"storedVersions": ["x"]}})
    assert created["metadata"]["generation"] == 1
    assert created["status"]["storedVersions"] == ["v1"]
    assert created["spec"]["names"]["listKind"] == "WidgetList"
    bad = _crd()
    bad["metadata"]["name"] = "gadgets.example.com"
    with pytest.raises(StatusError) as err:
        await registry.create("", bad)
    assert err.value.code == 422
    # The spec moves the generation; the status written with it is ignored.
    changed = copy.deepcopy(created)
    changed["spec"]["names"]["shortNames"] = ["wd"]
    changed["status"]["storedVersions"] = []
    updated = await registry.update("", "widgets.example.com", changed)
    assert updated["metadata"]["generation"] == 2
    assert updated["status"]["storedVersions"] == ["v1"]
    marked = await registry.delete("", "widgets.example.com")
    assert marked["metadata"]["finalizers"] == [crds.FINALIZER]
    assert marked["metadata"]["deletionTimestamp"]
    assert crds.condition_true(marked, "Terminating")
    done = copy.deepcopy(marked)
    done["metadata"]["finalizers"] = []
    await registry.update("", "widgets.example.com", done)
    with pytest.raises(StatusError) as gone:
        await registry.get("", "widgets.example.com")
    assert gone.value.code == 404


async def test_custom_resource_rules() -> None:
    crd = crds.set_defaults(_crd())
    store = MemoryStore()
    registry = Registry(store, custom_resource_strategy(crd), clock=FakeClock())
    assert registry.prefix == "/registry/example.com/widgets/"
    obj = await registry.create("ns", {"apiVersion": "example.com/v1beta1", "kind": "Widget",
                                       "metadata": {"name": "w"}, "spec": {},
                                       "status": {"ready": True}})
    # Defaulted, stored at the storage version, status dropped (status subresource).
    assert (obj["apiVersion"], obj["spec"], "status" in obj) == ("example.com/v1",
                                                                 {"size": 1}, False)
    with pytest.raises(StatusError) as err:
        await registry.create("ns", {"metadata": {"name": "big"}, "spec": {"size": 9}})
    assert err.value.code == 422
    assert err.value.details["causes"][0]["field"] == "spec.size"
    status = await registry.update("ns", "w", obj | {"status": {"ready": True},
                                                      "spec": {"size": 3}},
                                   status_only=True)
    assert (status["spec"], status["status"], status["metadata"]["generation"]) == (
        {"size": 1}, {"ready": True}, 1)
    spec = await registry.update("ns", "w", status | {"spec": {"size": 2}, "status": {}})
    assert (spec["status"], spec["metadata"]["generation"]) == ({"ready": True}, 2)
    labelled = copy.deepcopy(spec)
    labelled["metadata"]["labels"] = {"a": "b"}
    labelled = await registry.update("ns", "w", labelled)
    assert labelled["metadata"]["generation"] == 2

    # Without a status subresource, any change but metadata moves the generation.
    registry.strategy = custom_resource_strategy(crds.set_defaults(_crd(status=False)))
    again = await registry.update("ns", "w", labelled | {"status": {"ready": False}})
    assert (again["status"], again["metadata"]["generation"]) == ({"ready": False}, 3)

    terminating = crds.set_defaults(_crd())
    terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    registry.strategy = custom_resource_strategy(terminating)
    with pytest.raises(StatusError) as refused:
        await registry.create("ns", {"metadata": {"name": "late"}, "spec": {}})
    assert (refused.value.code, refused.value.message) == (
        405, "create not allowed while custom resource definition is terminating")


async def test_the_server_refuses_a_crd_for_a_resource_it_serves_itself() -> None:
    """Even approved, roles.rbac.authorization.k8s.io cannot be a CRD: it would shadow the
    built-in Roles (and deleting it would delete them all)."""
    registry = Registry(MemoryStore(), CustomResourceDefinitionStrategy(
        {(r.group, r.resource) for r in RESOURCES}))
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "roles.rbac.authorization.k8s.io",
                        "annotations": {"api-approved.kubernetes.io": "unapproved, test"}},
           "spec": {"group": "rbac.authorization.k8s.io", "scope": "Namespaced",
                    "names": {"plural": "roles", "kind": "Role"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object"}}}]}}
    with pytest.raises(StatusError) as info:
        await registry.create("", crd)
    assert info.value.code == 422 and "serves itself" in str(info.value)
