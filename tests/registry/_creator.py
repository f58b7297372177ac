"""A separate API-server-like process that creates Services on a shared SQLite store.

Run as ``python -m tests.registry._creator DB WORKER COUNT TASKS [--ack]``. It creates COUNT
Services with TASKS concurrent tasks (alternating NodePort and LoadBalancer; LoadBalancer ones
then get an address from the pool and a status write, as the LB controller does). With
``--ack`` it prints ``ACK <name> <clusterIP>`` once each create has returned, for crash tests.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from svcnet.registry.lb_ipam import LoadBalancerIPAM
from svcnet.registry.service_alloc import ServiceAllocators
from svcnet.registry.services import service_registry
from svcnet.storage.sqlite import SQLiteStore

SERVICE_CIDR = "10.96.0.0/12"
NODE_PORTS = "30000-32767"
LB_POOL = "lan=172.20.0.0/22"


def make_service(name: str, lb: bool) -> dict[str, Any]:
    ports: list[dict[str, Any]] = [{"name": "http", "port": 80, "targetPort": 8080}]
    spec: dict[str, Any] = {"type": "LoadBalancer" if lb else "NodePort",
                            "selector": {"app": name}, "ports": ports}
    if lb:
        spec["externalTrafficPolicy"] = "Local"  # also takes a healthCheckNodePort
        ports.append({"name": "dns", "port": 53, "protocol": "UDP"})
        ports.append({"name": "dns-tcp", "port": 53, "protocol": "TCP"})
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


async def run(db: str, worker: str, count: int, tasks: int, ack: bool) -> None:
    store = SQLiteStore(db)
    allocators = ServiceAllocators.build(store, [SERVICE_CIDR], NODE_PORTS)
    lb = LoadBalancerIPAM(store, [LB_POOL])
    registry = service_registry(store, allocators, lb)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def creator() -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            name = f"{worker}-{i}"
            is_lb = i % 2 == 1
            svc = await registry.create("default", make_service(name, is_lb))
            if ack:
                print(f"ACK {name} {svc['spec']['clusterIP']}", flush=True)
            if is_lb:
                ips = await lb.assign(svc)
                svc["status"] = {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}
                                                              for ip in ips]}}
                await registry.update("default", name, svc, status_only=True)

    try:
        await asyncio.gather(*(creator() for _ in range(tasks)))
    finally:
        await store.close()


if __name__ == "__main__":
    db, worker, count, tasks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    asyncio.run(run(db, worker, count, tasks, "--ack" in sys.argv))
