"""Admission webhooks in the write pipeline: a real API server in process (in-memory store)
whose registries call a real HTTPS webhook backend on 127.0.0.1 through configurations
created over its API, as a client would (svcnet/apiserver/webhookadmission.py,
svcnet/registry/generic.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.apiserver.server import APIServer, ServerConfig
from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.client.rest import CONFIGMAPS, GVR, NAMESPACES, PODS, PatchType, RESTClient
from svcnet.storage.memory import MemoryStore
from tests.unit.apiserver.webhook_backend import (
    Obj,
    WebhookServer,
    allow,
    configuration,
    patch_of,
    reply,
    serving_webhooks,
    url_client,
    webhook,
)

VALIDATING = GVR("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
                 "ValidatingWebhookConfiguration", namespaced=False)
MUTATING = GVR("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations",
               "MutatingWebhookConfiguration", namespaced=False)
CONFIGMAP_RULE = [{"operations": ["CREATE", "UPDATE", "DELETE"], "apiGroups": [""],
                   "apiVersions": ["v1"], "resources": ["configmaps"], "scope": "*"}]


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[WebhookServer]:
    async with serving_webhooks(tmp_path / "hooks") as b:
        yield b


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[APIServer, RESTClient]]:
    (tmp_path / "server").mkdir()
    server = APIServer(ServerConfig(data_dir=tmp_path / "server", listen="127.0.0.1:0"),
                       store=MemoryStore())
    await server.start()
    client = RESTClient.from_kubeconfig(load_kubeconfig(server.kubeconfig_path))
    try:
        yield server, client
    finally:
        await client.close()
        await server.stop()


def configmap(name: str, **labels: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "data": {"k": "v"}}


def last_call(backend: WebhookServer, path: str, name: str) -> Obj:
    """The last review sent to ``path`` about the object ``name`` (the server's controllers
    write ConfigMaps of their own meanwhile)."""
    for review in reversed(backend.calls(path)):
        request: Obj = review["request"]
        obj = request["object"] or request["oldObject"]
        if obj["metadata"]["name"] == name:
            return request
    raise AssertionError(f"no review about {name} was sent to {path}")


async def add(client: RESTClient, gvr: GVR, name: str, *hooks: Obj) -> None:
    """Create a configuration and wait until this server's view of them has it."""
    config = configuration(name, *hooks, kind=gvr.kind)
    config["metadata"] = {"name": name}
    await client.create(gvr, config)


async def refuse_labelled(review: Obj) -> tuple[int, Any]:
    obj = review["request"]["object"] or review["request"]["oldObject"]
    if (obj["metadata"].get("labels") or {}).get("deny") == "yes":
        return 200, reply(review, allowed=False,
                          status={"code": 403, "message": "configmaps labelled deny=yes"})
    return 200, reply(review, allowed=True)


async def eventually_refused(client: RESTClient, name: str) -> StatusError:
    """The configuration reaches the server's view through its watch: retry until it does."""
    for _ in range(100):
        try:
            await client.create(CONFIGMAPS, configmap(name, deny="yes"))
        except StatusError as e:
            return e
        await client.delete(CONFIGMAPS, "default", name)
        await asyncio.sleep(0.05)
    raise AssertionError("the webhook never refused")


async def deny_labelled(client: RESTClient, backend: WebhookServer,
                        probe: str = "warmup") -> StatusError:
    """A validating webhook refusing ConfigMaps labelled deny=yes, in force: the refusal of
    a create named ``probe``."""
    backend.behaviours["/validate"] = refuse_labelled
    await add(client, VALIDATING, "deny.example.com",
              webhook("deny.example.com", url_client(backend, "/validate"),
                      rules=CONFIGMAP_RULE))
    return await eventually_refused(client, probe)


async def test_validating_webhook_refuses_creates_updates_and_deletes(
        backend: WebhookServer, api: tuple[APIServer, RESTClient]) -> None:
    _, client = api
    e = await deny_labelled(client, backend, "refused")
    assert (e.code, e.reason) == (403, "Forbidden")
    assert e.message == ('admission webhook "deny.example.com" denied the request: '
                         "configmaps labelled deny=yes")
    with pytest.raises(StatusError):
        await client.get(CONFIGMAPS, "default", "refused")  # nothing was stored

    # Allowed: the review says who wrote what, at which version.
    await client.create(CONFIGMAPS, configmap("kept"))
    review = last_call(backend, "/validate", "kept")
    assert (review["operation"], review["name"], review["namespace"]) == (
        "CREATE", "kept", "default")
    assert review["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert review["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
    assert "system:masters" in review["userInfo"]["groups"]
    assert review["object"]["data"] == {"k": "v"} and review["oldObject"] is None

    # An update that would add the label is refused and leaves the object as it was.
    with pytest.raises(StatusError) as refused:
        await client.patch(CONFIGMAPS, "default", "kept",
                           {"metadata": {"labels": {"deny": "yes"}}},
                           patch_type=PatchType.MERGE)
    assert refused.value.code == 403
    assert (await client.get(CONFIGMAPS, "default", "kept"))["metadata"].get("labels") in (
        None, {})
    update = last_call(backend, "/validate", "kept")
    assert update["operation"] == "UPDATE"
    assert update["oldObject"]["metadata"]["name"] == "kept"

    # A delete is sent the object being deleted, as oldObject.
    backend.behaviours["/validate"] = allow
    await client.delete(CONFIGMAPS, "default", "kept")
    delete = last_call(backend, "/validate", "kept")
    assert delete["operation"] == "DELETE" and delete["object"] is None
    assert delete["oldObject"]["metadata"]["name"] == "kept"
    assert delete["options"]["kind"] == "DeleteOptions"


async def test_dry_run_reaches_a_webhook_without_side_effects_and_stores_nothing(
        backend: WebhookServer, api: tuple[APIServer, RESTClient]) -> None:
    _, client = api
    await deny_labelled(client, backend)
    await client.create(CONFIGMAPS, configmap("dry"), dry_run=True)
    assert last_call(backend, "/validate", "dry")["dryRun"] is True
    with pytest.raises(StatusError):
        await client.get(CONFIGMAPS, "default", "dry")


async def test_mutating_webhook_patches_what_is_stored(
        backend: WebhookServer, api: tuple[APIServer, RESTClient]) -> None:
    _, client = api

    async def label(review: Obj) -> tuple[int, Any]:
        labels = review["request"]["object"]["metadata"].get("labels")
        op: Obj = ({"op": "add", "path": "/metadata/labels/injected", "value": "yes"} if labels
                   else {"op": "add", "path": "/metadata/labels", "value": {"injected": "yes"}})
        return 200, reply(review, allowed=True, patchType="JSONPatch", patch=patch_of(op))

    backend.behaviours["/mutate"] = label
    await add(client, MUTATING, "label.example.com",
              webhook("label.example.com", url_client(backend, "/mutate"),
                      rules=CONFIGMAP_RULE, reinvocationPolicy="Never"))
    for i in range(100):
        made = await client.create(CONFIGMAPS, configmap(f"m{i}", app="x"))
        if (made["metadata"].get("labels") or {}).get("injected") == "yes":
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the webhook never patched")
    stored = await client.get(CONFIGMAPS, "default", f"m{i}")
    assert stored["metadata"]["labels"] == {"app": "x", "injected": "yes"}
    # The server's own fields are set after the webhooks: the review had none.
    review = last_call(backend, "/mutate", f"m{i}")["object"]
    assert "uid" not in review["metadata"] and "creationTimestamp" not in review["metadata"]
    assert stored["metadata"]["uid"]

    # Updates go through it too.
    stored["data"] = {"k": "changed"}
    stored["metadata"]["labels"] = {"app": "x"}
    updated = await client.update(CONFIGMAPS, stored)
    assert updated["metadata"]["labels"] == {"app": "x", "injected": "yes"}
    assert updated["data"] == {"k": "changed"}


async def test_a_failing_webhook_fails_writes_unless_ignored_and_never_its_own_kind(
        backend: WebhookServer, api: tuple[APIServer, RESTClient]) -> None:
    _, client = api
    gone = url_client(backend, "/validate")
    gone["url"] = "https://127.0.0.1:1/validate"  # nothing listens there
    every = [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"],
              "resources": ["*/*"], "scope": "*"}]
    await add(client, VALIDATING, "broken.example.com",
              webhook("broken.example.com", gone, rules=every, timeoutSeconds=2))
    for _ in range(100):
        try:
            await client.create(CONFIGMAPS, configmap("probe"))
        except StatusError as e:
            assert (e.code, e.reason) == (500, "InternalError")
            assert e.message.startswith(
                'Internal error occurred: failed calling webhook "broken.example.com": '
                "failed to call webhook: Post")
            break
        await client.delete(CONFIGMAPS, "default", "probe")
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the broken webhook never failed a write")
    # The configurations themselves are never sent to webhooks: the broken one can be
    # fixed (here: set to Ignore), and writes pass again.
    await client.patch(VALIDATING, "", "broken.example.com",
                       [{"op": "replace", "path": "/webhooks/0/failurePolicy",
                         "value": "Ignore"}], patch_type=PatchType.JSON)
    for _ in range(100):
        try:
            await client.create(CONFIGMAPS, configmap("passes"))
            break
        except StatusError:
            await asyncio.sleep(0.05)
    else:
        raise AssertionError("failurePolicy Ignore never let the write through")


async def test_without_configurations_a_write_awaits_no_webhook_step(
        api: tuple[APIServer, RESTClient]) -> None:
    server, client = api
    for _ in range(100):
        if server.webhook_configs.ready:
            break
        await asyncio.sleep(0.02)
    assert not server.webhook_admission.mutating
    assert not server.webhook_admission.validating
    await client.create(CONFIGMAPS, configmap("plain"))


async def test_validating_reviews_name_a_generated_name(
        backend: WebhookServer, api: tuple[APIServer, RESTClient]) -> None:
    _, client = api
    await deny_labelled(client, backend)
    generated = configmap("")
    generated["metadata"] = {"generateName": "gen-", "namespace": "default"}
    made = await client.create(CONFIGMAPS, generated)
    name = made["metadata"]["name"]
    assert name.startswith("gen-")
    assert last_call(backend, "/validate", name)["name"] == name


async def test_namespace_deletes_are_admitted_and_finalize_is_its_own_subresource(
        backend: WebhookServer, api: tuple[APIServer, RESTClient]) -> None:
    """A policy refusing every namespace UPDATE does not hold deletions up: the namespace
    controller's finalize is ``namespaces/finalize``, which a ``namespaces`` rule does not
    match (upstream's rule matching); the DELETE itself is sent to the webhook."""
    _, client = api

    async def refuse_updates(review: Obj) -> tuple[int, Any]:
        allowed = review["request"]["operation"] != "UPDATE"
        return 200, reply(review, allowed=allowed, status={"message": "no updates"})

    backend.behaviours["/ns"] = refuse_updates
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": "doomed"}})
    await add(client, VALIDATING, "ns.example.com",
              webhook("ns.example.com", url_client(backend, "/ns"),
                      rules=[{"operations": ["UPDATE", "DELETE"], "apiGroups": [""],
                              "apiVersions": ["v1"], "resources": ["namespaces"],
                              "scope": "*"}]))
    for _ in range(100):
        try:
            await client.patch(NAMESPACES, "", "doomed", {"metadata": {"labels": {"a": "b"}}})
        except StatusError as e:
            assert e.message.endswith("denied the request: no updates")
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the webhook never refused an update")
    await client.delete(NAMESPACES, "", "doomed")
    delete = last_call(backend, "/ns", "doomed")
    assert (delete["operation"], delete["namespace"]) == ("DELETE", "doomed")
    for _ in range(200):
        try:
            await client.get(NAMESPACES, "", "doomed")
        except StatusError as e:
            assert e.code == 404
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the namespace was never finalized")


async def test_a_pods_own_admissions_run_before_the_mutating_webhooks(
        backend: WebhookServer, api: tuple[APIServer, RESTClient]) -> None:
    """As upstream's plugin order: the webhook is sent the pod with its ServiceAccount
    token volume (what injectors copy into their sidecars)."""
    _, client = api
    backend.behaviours["/mutate"] = allow
    pod_rule = [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                 "resources": ["pods"], "scope": "*"}]
    await add(client, MUTATING, "pods.example.com",
              webhook("pods.example.com", url_client(backend, "/mutate"), rules=pod_rule,
                      reinvocationPolicy="Never"))
    pod: Obj = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "", "namespace": "default"},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    for i in range(100):
        pod["metadata"]["name"] = f"p{i}"
        try:
            await client.create(PODS, pod)
        except StatusError:  # the default ServiceAccount is not made yet
            await asyncio.sleep(0.05)
            continue
        if any(c["request"]["object"]["metadata"]["name"] == f"p{i}"
               for c in backend.calls("/mutate")):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the pod webhook was never called")
    sent = last_call(backend, "/mutate", f"p{i}")["object"]
    (volume,) = sent["spec"]["volumes"]
    assert volume["name"].startswith("kube-api-access-")
    stored = await client.get(PODS, "default", f"p{i}")
    assert stored["spec"]["volumes"] == sent["spec"]["volumes"]  # added once
