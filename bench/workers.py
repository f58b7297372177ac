"""Writes/s and latency of one `svcnet server` with 16 clients: one process against API workers.

Issue 13's aim for one server: with 16 concurrent clients and 10k Services stored, mutating
p99 ≤ 50 ms and twice the writes/s of the issue-3 run (bench/api.py: 275 merge patches/s, p99
273 ms). One Python process serves its requests on one core; ``--workers N`` serves them from
N processes on one store and one socket (svcnet/apiserver/workers.py).

Two servers run side by side, ``--workers 1`` and ``--workers W`` (default 2), each with its
own SQLite store in a temporary data directory, and the same load goes to each in alternating
rounds, as bench/write_cpu.py sends it (creates in chunks while filling each to ``--n``
Services, then rounds of merge patches of a label on random Services), so that load which
comes and goes on the machine weighs on both alike. Each batch is timed from the clients
(writes/s, p50, p99); then the bench waits until the server is quiet (its store revision
moves by at most 2 in a second: only leases), so that the controllers' follow-up writes (each
Service's EndpointSlice and Endpoints, which carry its labels) land before the next batch,
and reports how long that took from the batch's start ("settled in") and the CPU time of all
the server's processes over it, per client write.

Run: .venv/bin/python bench/workers.py [--n 10000] [--patches 8000] [--rounds 4] [--workers 2]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

from api import Client, served_client, timed_parallel  # bench/api.py
from stats import pct  # bench/stats.py
from write_cpu import CLIENTS, cpu_seconds, load_arguments, measure  # bench/write_cpu.py


def processes(pid: int) -> list[int]:
    """``pid`` and its children (a server and its API workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]


@dataclass
class Tally:
    writes: int = 0
    wall: float = 0.0
    settled: float = 0.0
    cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def row(self, label: str) -> str:
        return (f"| {label} | {self.writes / self.wall:.0f}/s | "
                f"{pct(self.latencies, .5) * 1e3:.1f} | {pct(self.latencies, .99) * 1e3:.1f} | "
                f"{self.settled / (self.writes / 1000):.2f} s | "
                f"{self.cpu / self.writes * 1e3:.2f} |")


@dataclass
class Target:
    name: str
    pid: int
    client: Client
    created: int = 0
    tallies: dict[str, Tally] = field(default_factory=dict)

    async def revision(self) -> int:
        async with self.client.session.get(self.client.url
                                           + "/api/v1/namespaces?limit=1") as resp:
            return int((await resp.json())["metadata"]["resourceVersion"])

    async def quiet(self) -> None:
        before = await self.revision()
        while True:
            await asyncio.sleep(1.0)
            now = await self.revision()
            if now - before <= 2:
                return
            before = now

    def cpu(self) -> float:
        total = 0.0
        for pid in processes(self.pid):
            with contextlib.suppress(OSError):
                total += cpu_seconds(pid)
        return total

    async def batch(self, kind: str, count: int, write: object) -> None:
        cpu = self.cpu()
        start = time.perf_counter()
        wall, lat = await timed_parallel(count, CLIENTS, write)
        await self.quiet()
        tally = self.tallies.setdefault(kind, Tally())
        tally.settled += time.perf_counter() - start
        tally.cpu += self.cpu() - cpu
        tally.wall += wall
        tally.writes += count
        tally.latencies += lat


async def run(n: int, n_patches: int, rounds: int, workers: int) -> list[Target]:
    async with contextlib.AsyncExitStack() as stack:
        targets = []
        for count in (1, workers):
            pid, client = await served_client(stack, args=["--workers", str(count)])
            targets.append(Target(f"--workers {count}", pid, client))
        for t in targets:
            await t.quiet()
        await measure(targets, n, n_patches, rounds)
        return targets


def main() -> None:
    ap = load_arguments(patches=8000)
    ap.add_argument("--workers", type=int, default=2, help="processes of the second server")
    args = ap.parse_args()
    targets = asyncio.run(run(args.n, args.patches, args.rounds, args.workers))
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}; {CLIENTS} clients, {args.n} Services "
          f"created then {args.patches} merge patches, in {args.rounds} alternating rounds")
    print()
    print("| server, write | writes/s | p50 ms | p99 ms | settled in, per 1000 writes "
          "| server CPU ms/write (all processes) |")
    print("|---|---|---|---|---|---|")
    for t in targets:
        for kind, tally in t.tallies.items():
            print(tally.row(f"{t.name}, {kind}"))
    one, more = targets
    for kind in one.tallies:
        a, b = one.tallies[kind], more.tallies[kind]
        print(f"| **{kind}: {more.name} / --workers 1** | "
              f"**{(b.writes / b.wall) / (a.writes / a.wall):.2f}x** | - | "
              f"{pct(b.latencies, .99) / pct(a.latencies, .99):.2f}x | "
              f"{(b.settled / b.writes) / (a.settled / a.writes):.2f}x | "
              f"{(b.cpu / b.writes) / (a.cpu / a.writes):.2f}x |")


if __name__ == "__main__":
    main()
