"""The resource quota controller's sync against the real svcnet API server, in process (the
server's own controllers stopped, so each sync is the test's call)."""

from __future__ import annotations

import asyncio
from typing import Any

from svcnet.client.rest import NAMESPACES, PODS, RESOURCEQUOTAS, SERVICES, RESTClient
from svcnet.controllers.ownership import DEPLOYMENTS
from svcnet.controllers.resourcequota import ResourceQuotaController

Obj = dict[str, Any]
NS = "team"


def _pod(name: str, cpu: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"containers": [{"name": "c", "image": "app:1",
                                     "resources": {"requests": {"cpu": cpu}}}]}}


async def test_sync_fills_status_and_replenishes(rest: RESTClient) -> None:
    await rest.create(NAMESPACES, {"metadata": {"name": NS}})
    await rest.create(PODS, _pod("a", "500m"))
    await rest.create(PODS, _pod("b", "250m"))
    await rest.create(SERVICES, {"metadata": {"name": "s", "namespace": NS},
                                 "spec": {"type": "NodePort", "ports": [{"port": 80}]}})
    await rest.create(DEPLOYMENTS, {"metadata": {"name": "d", "namespace": NS}, "spec": {
        "selector": {"matchLabels": {"app": "d"}},
        "template": {"metadata": {"labels": {"app": "d"}},
                     "spec": {"containers": [{"name": "c", "image": "app:1"}]}}}})
    await rest.create(RESOURCEQUOTAS, {"metadata": {"name": "q", "namespace": NS}, "spec": {
        "hard": {"pods": "10", "requests.cpu": "4", "services.nodeports": "2",
                 "count/deployments.apps": "2", "configmaps": "3"}}})
    quota = await rest.get(RESOURCEQUOTAS, NS, "q")
    assert quota["status"] == {}  # uncharged: no status.hard yet, so nothing restricted

    controller = ResourceQuotaController(rest, sync_period=3600)
    for informer in controller.informers:
        informer.start()
    try:
        await asyncio.gather(*(i.wait_for_sync() for i in controller.informers))
        await controller.sync(f"{NS}/q")
        status = (await rest.get(RESOURCEQUOTAS, NS, "q"))["status"]
        assert status["hard"] == quota["spec"]["hard"]
        assert status["used"] == {"configmaps": "0", "count/deployments.apps": "1",
                                  "pods": "2", "requests.cpu": "750m",
                                  "services.nodeports": "1"}

        # A pod that finishes counts no more: its update queues the namespace's quotas.
        assert await controller.queue.get() == f"{NS}/q"  # queued when first listed
        controller.queue.done(f"{NS}/q")
        assert len(controller.queue) == 0
        pod = await rest.get(PODS, NS, "a")
        pod["status"] = {"phase": "Succeeded"}
        await rest.update_status(PODS, pod)
        for _ in range(100):
            if len(controller.queue):
                break
            await asyncio.sleep(0.02)
        assert len(controller.queue) == 1
        await controller.sync(f"{NS}/q")
        used = (await rest.get(RESOURCEQUOTAS, NS, "q"))["status"]["used"]
        assert (used["pods"], used["requests.cpu"]) == ("1", "250m")
    finally:
        for informer in controller.informers:
            await informer.stop()
