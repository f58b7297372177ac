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

With ``--baseline REV`` the first server is instead one process of the tree at REV (a temporary
``git worktree``, as bench/write_cpu.py runs one): issue 13's comparison with the tree before
its work (3372ca8) measured side by side on the same machine in one run, rather than against
figures of another day.

With ``--generator wrk`` the merge patches come from wrk instead of the Python clients (same
16 connections, same patches, each round as long as the Python round before it took on that
server; bench/wrkload.py), and with ``--generator both`` each round sends both, one after the
other, tallied apart: how much of the latency is the Python clients' own CPU on the shared
cores. Creates always come from the Python clients.

Run: .venv/bin/python bench/workers.py [--n 10000] [--patches 8000] [--rounds 4] [--workers 2]
                                       [--generator python|wrk|both] [--baseline REV]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import wrkload  # bench/wrkload.py
from api import SVC_PATH, Client, served_client, timed_parallel  # bench/api.py
from stats import pct  # bench/stats.py
from write_cpu import (  # bench/write_cpu.py
    CLIENTS,
    cpu_seconds,
    fill,
    load_arguments,
    patches,
    worktree_of,
)

#: A batch's own run: (writes, wall seconds, latencies).
Run = Callable[[], Awaitable[tuple[int, float, list[float]]]]


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
        """``count`` writes from the Python clients."""
        async def run() -> tuple[int, float, list[float]]:
            wall, lat = await timed_parallel(count, CLIENTS, write)
            return count, wall, lat
        await self.record(kind, run)

    async def record(self, kind: str, run: Run) -> None:
        """Tally ``run``'s writes, and the CPU until the server is quiet again."""
        cpu = self.cpu()
        start = time.perf_counter()
        count, wall, lat = await run()
        await self.quiet()
        tally = self.tallies.setdefault(kind, Tally())
        tally.settled += time.perf_counter() - start
        tally.cpu += self.cpu() - cpu
        tally.wall += wall
        tally.writes += count
        tally.latencies += lat


async def python_patches(t: Target, kind: str, count: int, n: int, seq: int) -> float:
    """``count`` merge patches from the Python clients; the seconds they took."""
    before = t.tallies[kind].wall if kind in t.tallies else 0.0
    await patches(t, count, n, seq, kind)
    return t.tallies[kind].wall - before


async def wrk_patches(t: Target, kind: str, seconds: float, n: int, seq: str) -> None:
    await t.record(kind, lambda: wrkload.patches(
        t.client.url, t.client.headers["Authorization"], SVC_PATH, n, seq, seconds))


async def patch_rounds(targets: Sequence[Target], n: int, n_patches: int, rounds: int,
                       generator: str) -> None:
    """Rounds of merge patches, alternating between the servers; a wrk round lasts as long
    as that server's Python round took (or 4 s a 1000 patches with wrk alone)."""
    count = n_patches // rounds
    for r in range(rounds):
        for t in targets:
            seconds = count / 250
            if generator in ("python", "both"):
                kind = "merge patch" if generator == "python" else "merge patch, Python"
                seconds = await python_patches(t, kind, count, n, r)
            if generator in ("wrk", "both"):
                await wrk_patches(t, "merge patch, wrk", seconds, n, f"w{r}")


async def run(n: int, n_patches: int, rounds: int, workers: int,
              generator: str, baseline: str | None) -> list[Target]:
    async with contextlib.AsyncExitStack() as stack:
        targets = []
        if baseline:
            pid, client = await served_client(stack, stack.enter_context(worktree_of(baseline)))
            targets.append(Target(f"base {baseline}", pid, client))
        else:
            pid, client = await served_client(stack, args=["--workers", "1"])
            targets.append(Target("--workers 1", pid, client))
        pid, client = await served_client(stack, args=["--workers", str(workers)])
        targets.append(Target(f"--workers {workers}", pid, client))
        for t in targets:
            await t.quiet()
        await fill(targets, n, rounds)
        await patch_rounds(targets, n, n_patches, rounds, generator)
        return targets


def main() -> None:
    ap = load_arguments(patches=8000)
    ap.add_argument("--workers", type=int, default=2, help="processes of the second server")
    ap.add_argument("--generator", choices=("python", "wrk", "both"), default="python",
                    help="what sends the merge patches (bench/wrkload.py)")
    ap.add_argument("--baseline", help="run the first server, one process, from this git "
                    "revision instead of this tree")
    args = ap.parse_args()
    if args.generator != "python" and not wrkload.available():
        ap.error("--generator wrk needs wrk (Debian package wrk)")
    targets = asyncio.run(run(args.n, args.patches, args.rounds, args.workers,
                              args.generator, args.baseline))
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}; {CLIENTS} clients, {args.n} Services "
          f"created then {args.patches} merge patches, in {args.rounds} alternating rounds, "
          f"patches from {args.generator}")
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
        print(f"| **{kind}: {more.name} / {one.name}** | "
              f"**{(b.writes / b.wall) / (a.writes / a.wall):.2f}x** | - | "
              f"{pct(b.latencies, .99) / pct(a.latencies, .99):.2f}x | "
              f"{(b.settled / b.writes) / (a.settled / a.writes):.2f}x | "
              f"{(b.cpu / b.writes) / (a.cpu / a.writes):.2f}x |")
    if args.generator == "both":
        for t in targets:
            a, b = t.tallies["merge patch, Python"], t.tallies["merge patch, wrk"]
            print(f"| **{t.name}: wrk / Python** | "
                  f"**{(b.writes / b.wall) / (a.writes / a.wall):.2f}x** | "
                  f"{pct(b.latencies, .5) / pct(a.latencies, .5):.2f}x | "
                  f"{pct(b.latencies, .99) / pct(a.latencies, .99):.2f}x | "
                  f"{(b.settled / b.writes) / (a.settled / a.writes):.2f}x | "
                  f"{(b.cpu / b.writes) / (a.cpu / a.writes):.2f}x |")


if __name__ == "__main__":
    main()
