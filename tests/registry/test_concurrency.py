"""Many writers, one SQLite store: no ClusterIP, NodePort or LoadBalancer IP is handed out twice,
and a writer killed mid-stream loses no acknowledged write.

Two OS processes share the database file (as two `svcnet server`s on one store would), each
running 16 concurrent creator tasks: 32 creators, 500 Services in all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from svcnet.registry.lb_ipam import LoadBalancerIPAM
from svcnet.registry.repair import holdings, repair
from svcnet.registry.service_alloc import ServiceAllocators
from svcnet.storage.sqlite import SQLiteStore
from tests.registry._creator import LB_POOL, NODE_PORTS, SERVICE_CIDR

ROOT = Path(__file__).resolve().parents[2]


def spawn(db: Path, worker: str, count: int, tasks: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.registry._creator", str(db), worker, str(count),
         str(tasks), *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def stored_services(store: SQLiteStore) -> list[dict[str, Any]]:
    return [json.loads(kv.value) for kv in (await store.list("/registry/services/")).items]


async def allocation_records(store: SQLiteStore) -> set[tuple[str, str, str]]:
    out = set()
    for kv in (await store.list("/registry/allocations/")).items:
        kind, item = kv.key.split("/")[-2:]
        owner = json.loads(kv.value)["owner"]
        out.add((kind, item, f"{owner['namespace']}/{owner['name']}"))
    # ClusterIPs are IPAddress objects (allocators/ipaddresses.py).
    for kv in (await store.list("/registry/networking.k8s.io/ipaddresses/")).items:
        ref = json.loads(kv.value)["spec"]["parentRef"]
        out.add(("clusterip", kv.key.split("/")[-1], f"{ref['namespace']}/{ref['name']}"))
    return out


def held(services: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(h.kind, h.item, h.owner.key()) for s in services for h in holdings(s)}


async def test_two_processes_32_creators_500_services_never_share(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    procs = [spawn(db, "a", 250, 16), spawn(db, "b", 250, 16)]
    for p in procs:
        _out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err

    store = SQLiteStore(db)
    try:
        services = await stored_services(store)
        assert len(services) == 500
        cluster_ips = Counter(s["spec"]["clusterIP"] for s in services)
        node_ports = Counter(p["nodePort"] for s in services for p in s["spec"]["ports"]
                             if p["protocol"] == "TCP")
        node_ports.update(s["spec"]["healthCheckNodePort"] for s in services
                          if s["spec"].get("healthCheckNodePort"))
        lb_ips = Counter(i["ip"] for s in services
                         for i in s["status"].get("loadBalancer", {}).get("ingress", []))
        assert max(cluster_ips.values()) == 1 and len(cluster_ips) == 500
        assert max(node_ports.values()) == 1
        assert len(node_ports) == 250 + 250 * 3  # NodePort: 1 each; LB: 2 ports + health check
        assert max(lb_ips.values()) == 1 and len(lb_ips) == 250
        for s in services:
            if s["spec"]["type"] == "LoadBalancer":
                by_port = {p["name"]: p["nodePort"] for p in s["spec"]["ports"]}
                assert by_port["dns"] == by_port["dns-tcp"], "53/UDP and 53/TCP share a nodePort"
        # Every allocation record belongs to exactly what a stored Service holds: no leaks.
        assert await allocation_records(store) == held(services)
    finally:
        await store.close()


async def test_kill_9_loses_no_acknowledged_write_and_repair_reconciles(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    proc = spawn(db, "k", 100000, 8, "--ack")
    acked: dict[str, str] = {}
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            _, name, ip = line.split()
            acked[name] = ip
            if len(acked) >= 300:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert len(acked) >= 300

    store = SQLiteStore(db)
    try:
        services = {s["metadata"]["name"]: s for s in await stored_services(store)}
        for name, ip in acked.items():
            assert name in services, f"acknowledged {name} lost"
            assert services[name]["spec"]["clusterIP"] == ip
        allocators = ServiceAllocators.build(store, [SERVICE_CIDR], NODE_PORTS)
        lb = LoadBalancerIPAM(store, [LB_POOL])
        before = await store.current_revision()
        await repair(store, allocators, lb, leak_grace=timedelta(0))
        assert await allocation_records(store) == held(list(services.values()))
        assert await store.current_revision() >= before, "revisions never go back"
        # A second pass has nothing left to do.
        again = await repair(store, allocators, lb, leak_grace=timedelta(0))
        assert (again.created, again.released) == ([], [])
    finally:
        await store.close()
