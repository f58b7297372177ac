"""A CRD's x-kubernetes-validations rules through the API server in process (in-memory store):
a CRD whose rule does not compile is a 422, an invalid custom resource is a 422 whose causes
carry the rule's error, a valid one is stored, and a transition rule sees the stored object on
update (svcnet/api/crcel.py through svcnet/registry/customresources.py)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.apiserver.server import APIServer, ServerConfig
from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.client.rest import CUSTOMRESOURCEDEFINITIONS, GVR, RESTClient
from svcnet.storage.memory import MemoryStore

Obj = dict[str, Any]
WIDGETS = GVR("cel.example.com", "v1", "widgets", "Widget")

SPEC: Obj = {
    "type": "object",
    "properties": {"min": {"type": "integer"}, "max": {"type": "integer"},
                   "mode": {"type": "string",
                            "x-kubernetes-validations": [
                                {"rule": "self == oldSelf", "message": "mode is immutable"}]}},
    "x-kubernetes-validations": [{"rule": "self.min <= self.max",
                                  "message": "min must not exceed max", "fieldPath": ".min"}],
}


def _crd(spec_schema: Obj) -> Obj:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.cel.example.com"},
            "spec": {"group": "cel.example.com", "scope": "Namespaced",
                     "names": {"plural": "widgets", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {
                                       "type": "object",
                                       "properties": {"spec": spec_schema}}}}]}}


def _widget(name: str, **spec: Any) -> Obj:
    return {"apiVersion": "cel.example.com/v1", "kind": "Widget",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[RESTClient]:
    server = APIServer(ServerConfig(data_dir=tmp_path, listen="127.0.0.1:0"),
                       store=MemoryStore())
    await server.start()
    rest = RESTClient.from_kubeconfig(load_kubeconfig(server.kubeconfig_path))
    try:
        yield rest
    finally:
        await rest.close()
        await server.stop()


async def _create_when_served(rest: RESTClient, obj: Obj) -> Obj:
    """Create ``obj`` once its CRD is established and served (404 until then)."""
    for _ in range(200):
        try:
            return await rest.create(WIDGETS, obj, namespace="default")
        except StatusError as e:
            if e.code != 404:
                raise
        await asyncio.sleep(0.05)
    raise AssertionError("the widgets resource was never served")


async def test_rules_refuse_a_crd_and_custom_resources_with_upstream_causes(
        client: RESTClient) -> None:
    broken = copy.deepcopy(SPEC)
    broken["x-kubernetes-validations"][0]["rule"] = "self.min <="
    with pytest.raises(StatusError) as refused:
        await client.create(CUSTOMRESOURCEDEFINITIONS, _crd(broken))
    assert refused.value.code == 422
    [cause] = refused.value.details["causes"]
    assert cause["field"] == ("spec.versions[0].schema.openAPIV3Schema.properties[spec]"
                              ".x-kubernetes-validations[0].rule")
    assert "compilation failed: ERROR: <input>:1:12: Syntax error" in cause["message"]

    await client.create(CUSTOMRESOURCEDEFINITIONS, _crd(SPEC))
    created = await _create_when_served(client, _widget("ok", min=1, max=2, mode="a"))
    assert created["spec"] == {"min": 1, "max": 2, "mode": "a"}

    with pytest.raises(StatusError) as invalid:
        await client.create(WIDGETS, _widget("bad", min=3, max=2, mode="a"),
                            namespace="default")
    assert invalid.value.code == 422
    assert invalid.value.details["causes"] == [{
        "reason": "FieldValueInvalid", "message": "Invalid value: min must not exceed max",
        "field": "spec.min"}]
    assert invalid.value.message == ('Widget.cel.example.com "bad" is invalid: spec.min: Invalid '
                                     "value: min must not exceed max")

    # The transition rule compares with the stored object on update.
    changed = copy.deepcopy(created)
    changed["spec"]["mode"] = "b"
    with pytest.raises(StatusError) as immutable:
        await client.update(WIDGETS, changed)
    assert immutable.value.code == 422
    assert immutable.value.details["causes"] == [{
        "reason": "FieldValueInvalid", "message": 'Invalid value: "b": mode is immutable',
        "field": "spec.mode"}]
    changed["spec"]["mode"] = "a"
    changed["spec"]["max"] = 5
    updated = await client.update(WIDGETS, changed)
    assert updated["spec"]["max"] == 5
