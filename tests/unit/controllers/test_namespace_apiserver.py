"""The namespace controller's passes against the real svcnet API server, in process.

The server's own controllers are stopped, so each pass is the test's call of
:meth:`NamespaceController.sync` and what it leaves can be looked at step by step.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.client.controller import RequeueError
from svcnet.client.informer import Informer
from svcnet.client.rest import ENDPOINTSLICES, NAMESPACES, PODS, SERVICES, RESTClient
from svcnet.controllers.namespace import NamespaceController

Obj = dict[str, Any]
NS = "doomed"


def pod(name: str, *, node: str = "", grace: int = 30, finalizers: tuple[str, ...] = ()
        ) -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "app:1"}],
                 "terminationGracePeriodSeconds": grace}
    if node:
        spec["nodeName"] = node
    meta: Obj = {"name": name, "namespace": NS}
    if finalizers:
        meta["finalizers"] = list(finalizers)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def conditions(ns: Obj) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["message"]) for c in ns["status"]["conditions"]}


async def setup(rest: RESTClient, *pods: Obj) -> NamespaceController:
    await rest.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": NS}})
    await rest.create(SERVICES, {"apiVersion": "v1", "kind": "Service",
                                 "metadata": {"name": "np", "namespace": NS},
                                 "spec": {"type": "NodePort", "ports": [{"port": 80}]}})
    await rest.create(ENDPOINTSLICES, {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "manual", "namespace": NS}, "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.1.2.3"]}]})
    for p in pods:
        await rest.create(PODS, p)
    ns = await rest.delete(NAMESPACES, "", NS)
    assert ns["status"]["phase"] == "Terminating"
    # Not started: the test runs each pass itself.
    return NamespaceController(rest, Informer(rest, NAMESPACES), grace_period=0)


async def names(rest: RESTClient, gvr: Any) -> list[str]:
    return [o["metadata"]["name"] for o in (await rest.list(gvr, NS)).items]


async def test_pods_on_a_node_hold_the_namespace_until_they_are_gone(rest: RESTClient) -> None:
    ctl = await setup(rest, pod("bound", node="n1"), pod("unbound"))
    await ctl.sync(NS)
    assert ctl.queue.waiting == 1, "queued again: content is still terminating"
    assert await names(rest, SERVICES) == [] and await names(rest, ENDPOINTSLICES) == []
    (left,) = (await rest.list(PODS, NS)).items
    assert left["metadata"]["name"] == "bound" and left["metadata"]["deletionTimestamp"]
    ns = await rest.get(NAMESPACES, "", NS)
    assert ns["spec"]["finalizers"] == ["kubernetes"]
    assert conditions(ns)["NamespaceContentRemaining"] == (
        "True", "Some resources are remaining: pods. has 1 resource instances")
    assert conditions(ns)["NamespaceDeletionContentFailure"][0] == "False"

    await rest.delete(PODS, NS, "bound", grace_period=0)  # what its node does when done
    await ctl.sync(NS)
    with pytest.raises(StatusError) as e:
        await rest.get(NAMESPACES, "", NS)
    assert e.value.code == 404


async def test_content_left_past_its_grace_is_an_error(rest: RESTClient) -> None:
    # The grace must outlast the first sync, which deletes every namespaced kind served
    # (about 25 collections): on a loaded machine that took more than a second.
    ctl = await setup(rest, pod("slow", node="n1", grace=4))
    await ctl.sync(NS)
    assert ctl.queue.waiting == 1
    await asyncio.sleep(4.1)
    with pytest.raises(RequeueError, match="unexpected items still remain in namespace: "
                                           f"{NS} for gvr: /v1, Resource=pods"):
        await ctl.sync(NS)
    ns = await rest.get(NAMESPACES, "", NS)
    assert conditions(ns)["NamespaceDeletionContentFailure"] == (
        "True", "Failed to delete all resource types, 1 remaining: unexpected items still "
                f"remain in namespace: {NS} for gvr: /v1, Resource=pods")


async def test_finalizers_of_the_content_are_reported(rest: RESTClient) -> None:
    ctl = await setup(rest, pod("held", finalizers=("example.com/hold",)))
    await ctl.sync(NS)
    ns = await rest.get(NAMESPACES, "", NS)
    assert conditions(ns)["NamespaceFinalizersRemaining"] == (
        "True", "Some content in the namespace has finalizers remaining: example.com/hold in "
                "1 resource instances")
    assert ctl.queue.waiting == 1
    held = await rest.get(PODS, NS, "held")
    held["metadata"]["finalizers"] = []
    await rest.update(PODS, held)  # the last finalizer gone: the pod goes
    await ctl.sync(NS)
    with pytest.raises(StatusError) as e:
        await rest.get(NAMESPACES, "", NS)
    assert e.value.code == 404
