"""Both endpoint controllers against the real svcnet API server, in process.

The in-memory API of the other tests imitates the server; this one is the server (memory
store, TLS on a loopback port, its own registries, validation and watch), reached through
:class:`RESTClient`. If the server already runs these controllers (once they are wired into
``svcnet server``), the test exercises those instead of starting a second pair: two
EndpointSlice controllers with separate trackers would fight.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from svcnet.apiserver.server import APIServer, ServerConfig
from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.client.rest import (
    ENDPOINTS,
    ENDPOINTSLICES,
    NAMESPACES,
    NODES,
    PODS,
    SERVICES,
    RESTClient,
)
from svcnet.controllers.endpoints import EndpointsController
from svcnet.controllers.endpointslice import EndpointSliceController
from svcnet.controllers.lb_ipam import LoadBalancerIPController
from svcnet.storage.memory import MemoryStore
from tests.unit.controllers.test_endpointslice_helpers import (
    NODES as NODE_OBJS,
    Obj,
    describe,
    make_pod,
    make_service,
    not_ready,
)
from tests.waiting import eventually


def fresh(obj: Obj, *drop: str) -> Obj:
    """A builder object as a client would submit it (no server-owned fields)."""
    out = copy.deepcopy(obj)
    for f in ("uid", "resourceVersion", "creationTimestamp"):
        out["metadata"].pop(f, None)
    for f in drop:
        out["spec"].pop(f, None)
    return out


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[RESTClient]:
    server = APIServer(ServerConfig(data_dir=tmp_path, listen="127.0.0.1:0"),
                       store=MemoryStore())
    await server.start()
    rest = RESTClient.from_kubeconfig(load_kubeconfig(server.kubeconfig_path))
    assert server.controller_manager is not None
    running = {type(c) for c in server.controller_manager.controllers}
    ours: list[EndpointSliceController | EndpointsController] = []
    if EndpointSliceController not in running:
        ours.append(EndpointSliceController.from_client(rest))
    if EndpointsController not in running:
        ours.append(EndpointsController.from_client(rest))
    for c in ours:
        c.start()
    try:
        yield rest
    finally:
        for c in ours:
            await c.stop()
        await rest.close()
        await server.stop()


async def run_pod(rest: RESTClient, pod: Obj) -> None:
    """Create ``pod`` and give it the builder's status (as a kubelet would)."""
    body = fresh(pod)
    status = body.pop("status")
    created = await rest.create(PODS, body)
    created["status"] = status
    await rest.update_status(PODS, created)


async def test_slices_and_endpoints_follow_pods_through_the_real_api(client: RESTClient
                                                                     ) -> None:
    rest = client
    await rest.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": "ns"}})
    for node in NODE_OBJS.values():
        await rest.create(NODES, fresh(node))
    await rest.create(SERVICES, fresh(make_service(), "clusterIP", "clusterIPs"))
    await run_pod(rest, make_pod("p1"))
    await run_pod(rest, make_pod("p2"))

    async def slice_endpoints() -> list[str]:
        return [e for s in (await rest.list(ENDPOINTSLICES, "ns")).items
                for e in describe(s)[2]]

    async def endpoint_ips() -> tuple[list[str], list[str]]:
        try:
            ep = await rest.get(ENDPOINTS, "ns", "web")
        except Exception:
            return [], []
        subsets = ep.get("subsets") or []
        return ([a["ip"] for s in subsets for a in s.get("addresses", [])],
                [a["ip"] for s in subsets for a in s.get("notReadyAddresses", [])])

    both_ready = ["10.1.0.1 p1 ready,serving zone=zone-a", "10.1.0.2 p2 ready,serving zone=zone-a"]

    async def settled_ready() -> bool:
        return (await slice_endpoints() == both_ready
                and await endpoint_ips() == (["10.1.0.1", "10.1.0.2"], []))

    await eventually(settled_ready)
    (eps,) = (await rest.list(ENDPOINTSLICES, "ns")).items
    assert eps["metadata"]["name"].startswith("web-")
    assert eps["metadata"]["ownerReferences"][0]["kind"] == "Service"

    p2 = await rest.get(PODS, "ns", "p2")
    not_ready(p2)
    await rest.update_status(PODS, p2)

    async def settled_not_ready() -> bool:
        return (await slice_endpoints() == [both_ready[0], "10.1.0.2 p2 - zone=zone-a"]
                and await endpoint_ips() == (["10.1.0.1"], ["10.1.0.2"]))

    await eventually(settled_not_ready)
    (after,) = (await rest.list(ENDPOINTSLICES, "ns")).items
    assert after["metadata"]["name"] == eps["metadata"]["name"], "updated in place"

    await rest.delete(SERVICES, "ns", "web")

    async def all_gone() -> bool:
        return (not (await rest.list(ENDPOINTSLICES, "ns")).items
                and not (await rest.list(ENDPOINTS, "ns")).items)

    await eventually(all_gone)


async def test_the_server_controllers_share_one_informer_per_resource(tmp_path: Path) -> None:
    server = APIServer(ServerConfig(data_dir=tmp_path, listen="127.0.0.1:0"),
                       store=MemoryStore())
    await server.start()
    try:
        manager = server.controller_manager
        assert manager is not None
        services = manager.informers.informer(SERVICES)
        pods = manager.informers.informer(PODS)
        followers = [c for c in manager.controllers if getattr(c, "services", None)]
        assert {type(c) for c in followers} == {EndpointSliceController, EndpointsController,
                                                LoadBalancerIPController}
        assert all(c.services is services for c in followers)  # type: ignore[attr-defined]
        pod_users = [c for c in manager.controllers if getattr(c, "pods", None)]
        assert len(pod_users) >= 8 and all(c.pods is pods  # type: ignore[attr-defined]
                                           for c in pod_users)
        await eventually(services.has_synced)
        assert services.relists == 1  # listed once for all three
        await eventually(lambda: services.watches == 1)
    finally:
        await server.stop()
