"""Benchmark SQLiteStore holding N Services (default 10k, ~600-byte JSON values).

Phases, in one process and one event loop, with one watcher on the whole key space running
throughout (as an API server always has):

1. create N Services, one awaited call at a time (latency per call, sequential throughput);
2. update each once (same);
3. get each once;
4. list all N Services, several runs;
5. throughput with 32 concurrent client tasks: update each Service again, create N more keys;
6. compact away the superseded history.

Watch delivery latency is measured from the start of a write call to the moment the watcher
task receives the event. Aims: mutating p99 <= 20 ms, watch delivery p99 <= 20 ms, list of 10k
<= 300 ms.

Run: ``.venv/bin/python bench/store.py [--n 10000] [--synchronous FULL|NORMAL] [--dir DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from svcnet.storage.interface import KeyValue, WatchClosed
from svcnet.storage.sqlite import SQLiteStore

PREFIX = "/registry/services/specs/"
CONCURRENCY = 32


def service_json(i: int, generation: int) -> bytes:
    """A plausible ~600-byte Service object."""
    ns, name = f"ns-{i % 50:02d}", f"svc-{i:05d}"
    obj = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": name, "namespace": ns, "uid": f"6f1c2a4e-0000-4000-8000-{i:012d}",
            "generation": generation, "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": name, "tier": "backend"},
            "annotations": {"svcnet.io/owner": "bench"},
        },
        "spec": {
            "type": "ClusterIP", "selector": {"app": name},
            "clusterIP": f"10.96.{i // 250 % 256}.{i % 250 + 1}",
            "clusterIPs": [f"10.96.{i // 250 % 256}.{i % 250 + 1}"],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                      {"name": "https", "protocol": "TCP", "port": 443, "targetPort": 8443}],
            "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
        },
        "status": {"loadBalancer": {}},
    }
    return json.dumps(obj, separators=(",", ":")).encode()


def key(i: int) -> str:
    return f"{PREFIX}ns-{i % 50:02d}/svc-{i:05d}"


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


class Watcher:
    """Records when each revision reaches a watcher task."""

    def __init__(self, store: SQLiteStore) -> None:
        self.received: dict[int, float] = {}
        self.dropped = False
        self._target = 0
        self._reached = asyncio.Event()
        self._watch = store.watch("", 0)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for event in self._watch:
                self.received[event.revision] = time.perf_counter()
                if self._target and event.revision >= self._target:
                    self._reached.set()
        except WatchClosed:
            self.dropped = True
            self._reached.set()

    async def wait_for(self, revision: int) -> None:
        """Until the watcher has received ``revision`` (or was dropped)."""
        self._target = revision
        if revision in self.received:
            return
        await self._reached.wait()

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def timed_sequential(calls: Iterator[Callable[[], Awaitable[object]]],
                           started: dict[int, float]) -> tuple[list[float], float]:
    """Run calls one at a time; per-call latencies and total wall time."""
    latencies = []
    t_begin = time.perf_counter()
    for call in calls:
        t0 = time.perf_counter()
        result = await call()
        latencies.append(time.perf_counter() - t0)
        if isinstance(result, KeyValue):
            started[result.mod_revision] = t0
    return latencies, time.perf_counter() - t_begin


async def timed_concurrent(calls: list[Callable[[], Awaitable[KeyValue]]],
                           started: dict[int, float]) -> tuple[list[float], float]:
    """Run calls from CONCURRENCY tasks; per-call latencies and total wall time."""
    latencies: list[float] = []
    pending = iter(calls)

    async def client() -> None:
        for call in pending:
            t0 = time.perf_counter()
            kv = await call()
            latencies.append(time.perf_counter() - t0)
            started[kv.mod_revision] = t0

    t_begin = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return latencies, time.perf_counter() - t_begin


async def run(n: int, synchronous: str, directory: Path, list_runs: int) -> None:
    path = directory / "bench.db"
    store = SQLiteStore(path, synchronous="FULL" if synchronous == "FULL" else "NORMAL")
    await store.open()
    watcher = Watcher(store)
    started: dict[int, float] = {}
    rows: list[tuple[str, str, str, str]] = []  # operation, p50, p99, throughput

    def row(name: str, lat: list[float], total: float) -> None:
        rows.append((name, ms(pct(lat, 50)), ms(pct(lat, 99)), f"{len(lat) / total:,.0f}"))

    def create_call(i: int) -> Callable[[], Awaitable[KeyValue]]:
        return lambda: store.create(key(i), service_json(i, 1))

    lat, total = await timed_sequential((create_call(i) for i in range(n)), started)
    row(f"create ({n:,}, sequential)", lat, total)

    revisions = {kv.key: kv.mod_revision for kv in (await store.list(PREFIX)).items}

    def update_call(i: int, generation: int) -> Callable[[], Awaitable[KeyValue]]:
        async def call() -> KeyValue:
            kv = await store.update(key(i), service_json(i, generation), revisions[key(i)])
            revisions[kv.key] = kv.mod_revision
            return kv
        return call

    lat, total = await timed_sequential((update_call(i, 2) for i in range(n)), started)
    row(f"update ({n:,}, sequential)", lat, total)

    def get_call(i: int) -> Callable[[], Awaitable[KeyValue | None]]:
        return lambda: store.get(key(i))

    lat, total = await timed_sequential((get_call(i) for i in range(n)), started)
    row(f"get ({n:,}, sequential)", lat, total)

    list_lat = []
    for _ in range(list_runs):
        t0 = time.perf_counter()
        listed = await store.list(PREFIX)
        list_lat.append(time.perf_counter() - t0)
        assert len(listed.items) == n
    rows.append((f"list all {n:,} Services ({list_runs} runs)", ms(pct(list_lat, 50)),
                 ms(max(list_lat)) + " (max)", "-"))

    lat, total = await timed_concurrent([update_call(i, 3) for i in range(n)], started)
    row(f"update ({n:,}, {CONCURRENCY} tasks)", lat, total)
    def extra_create_call(i: int) -> Callable[[], Awaitable[KeyValue]]:
        return lambda: store.create(f"/bench/extra/{i:06d}", service_json(i, 1))

    lat, total = await timed_concurrent([extra_create_call(i) for i in range(n)], started)
    row(f"create ({n:,} more keys, {CONCURRENCY} tasks)", lat, total)

    last = await store.current_revision()
    await asyncio.wait_for(watcher.wait_for(last), 30)
    delivery = [watcher.received[r] - t0 for r, t0 in started.items() if r in watcher.received]
    rows.append((f"watch delivery, write start -> event ({len(delivery):,} events)",
                 ms(pct(delivery, 50)), ms(pct(delivery, 99)), "-"))

    t0 = time.perf_counter()
    await store.compact(last)
    compact_time = time.perf_counter() - t0
    rows.append((f"compact {last:,} revisions (2 superseded versions per Service)",
                 ms(compact_time), "-", "-"))

    await watcher.stop()
    await store.close()
    db_size = sum(p.stat().st_size for p in directory.glob("bench.db*"))

    print("## SQLiteStore benchmark\n")
    print(f"- machine: {os.cpu_count()} cores, {platform.machine()}, "
          f"{platform.system()} {platform.release()}")
    print(f"- python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"synchronous={synchronous}, WAL, one worker thread")
    print(f"- {n:,} Services of ~{len(service_json(n - 1, 3))} bytes; database in {directory} "
          f"({db_size / 1e6:.1f} MB after the run)")
    print(f"- a watcher on the whole key space ran throughout"
          f"{' and was DROPPED (too slow)' if watcher.dropped else ' (never dropped)'}\n")
    header = ("operation", "p50 ms", "p99 ms", "ops/s")
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(4)]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True))
              + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=10_000, help="number of Services")
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL")
    parser.add_argument("--dir", type=Path, default=None,
                        help="directory for the database (default: a fresh temporary one)")
    parser.add_argument("--list-runs", type=int, default=5)
    args = parser.parse_args()
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        if (args.dir / "bench.db").exists():
            sys.exit(f"{args.dir / 'bench.db'} exists; pick an empty directory")
        asyncio.run(run(args.n, args.synchronous, args.dir, args.list_runs))
        return
    # /var/tmp rather than /tmp: /tmp is often a tmpfs, where fsync costs nothing.
    base = "/var/tmp" if os.path.isdir("/var/tmp") else None
    with tempfile.TemporaryDirectory(prefix="svcnet-bench-", dir=base) as tmp:
        asyncio.run(run(args.n, args.synchronous, Path(tmp), args.list_runs))


if __name__ == "__main__":
    main()
