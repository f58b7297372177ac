"""Allocation figures: time to allocate 10k ClusterIPs and 10k NodePorts through the store.

Each allocation is a real store create (the store arbitrates, see svcnet/allocators/allocator.py),
so this measures the allocator as `svcnet server` uses it. Also: filling the default NodePort
range completely (2,768 ports: the dynamic band, then the static band, then "range is full"),
and 10k Services created through the whole Service write pipeline (defaulting, allocation,
validation, write).

Run: .venv/bin/python bench/alloc.py [--n 10000] [--store sqlite|memory]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from stats import pct  # bench/stats.py

from svcnet.allocators.allocator import Owner, RangeFull, StoreAllocator
from svcnet.allocators.ranges import PortRange, ServiceCIDR
from svcnet.registry.service_alloc import ServiceAllocators
from svcnet.registry.services import service_registry
from svcnet.storage.interface import Store
from svcnet.storage.memory import MemoryStore
from svcnet.storage.sqlite import SQLiteStore


async def open_store(kind: str, tmp: Path, name: str) -> Store:
    if kind == "memory":
        return MemoryStore()
    store = SQLiteStore(tmp / f"{name}.db")
    await store.open()
    return store


async def timed_allocations(alloc: StoreAllocator, n: int) -> tuple[float, list[float]]:
    lat = []
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        await alloc.allocate_next(Owner("bench", f"s{i}"))
        lat.append(time.perf_counter() - t)
    return time.perf_counter() - start, lat


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--store", choices=["sqlite", "memory"], default="sqlite")
    args = ap.parse_args()
    n = args.n
    rows: list[tuple[str, Any, Any, Any]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        store = await open_store(args.store, tmp, "ips")
        total, lat = await timed_allocations(
            StoreAllocator(store, ServiceCIDR.parse("10.96.0.0/12")), n)
        rows.append((f"{n} ClusterIPs (10.96.0.0/12)", total, pct(lat, .5), pct(lat, .99)))
        await store.close()

        store = await open_store(args.store, tmp, "ports")
        total, lat = await timed_allocations(
            StoreAllocator(store, PortRange.parse("20000-32767")), n)
        rows.append((f"{n} NodePorts (20000-32767)", total, pct(lat, .5), pct(lat, .99)))
        await store.close()

        store = await open_store(args.store, tmp, "fill")
        alloc = StoreAllocator(store, PortRange())
        total, lat = await timed_allocations(alloc, 2768)
        t = time.perf_counter()
        with contextlib.suppress(RangeFull):
            await alloc.allocate_next(Owner("bench", "one-too-many"))
        full = time.perf_counter() - t
        rows.append(("fill 30000-32767 (2768 ports)", total, pct(lat, .5), pct(lat, .99)))
        rows.append(("'range is full' answer", full, full, full))
        await store.close()

        store = await open_store(args.store, tmp, "services")
        registry = service_registry(store, ServiceAllocators.build(
            store, ["10.96.0.0/12"], "30000-32767"))
        lat = []
        start = time.perf_counter()
        for i in range(n):
            svc = {"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": f"svc-{i}", "namespace": "default"},
                   "spec": {"type": "NodePort" if i < 2000 else "ClusterIP",
                            "selector": {"app": f"a{i}"},
                            "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
            t = time.perf_counter()
            await registry.create("default", svc)
            lat.append(time.perf_counter() - t)
        rows.append((f"{n} Services via the write pipeline (2k NodePort)",
                     time.perf_counter() - start, pct(lat, .5), pct(lat, .99)))
        await store.close()

    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"SQLite {sqlite3.sqlite_version}, store {args.store}")
    print()
    print("| allocation | total (s) | p50 (ms) | p99 (ms) |")
    print("|---|---|---|---|")
    for name, total, p50, p99 in rows:
        print(f"| {name} | {total:.2f} | {p50 * 1000:.2f} | {p99 * 1000:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
