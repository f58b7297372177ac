"""Per-write CPU of one `svcnet server`, and its writes/s and latency under 16 clients.

Issue 13's last aim: with 16 concurrent clients and 10k Services stored, mutating p99 ≤ 50 ms
and twice the writes/s of before. On a shared machine wall-clock throughput is noisy, so the
figure that decides is the server process's own CPU time per write (utime + stime of every
thread, from /proc/PID/stat, over a batch of writes): other processes' load does not change it.

With ``--baseline REV`` a second server runs from a temporary ``git worktree`` of REV (same
Python, same packages) beside the one from this tree, and the same load goes to both in
alternating rounds (creates in chunks while filling each to ``--n`` Services, then merge patches
of a label), so that load which comes and goes on the machine weighs on both alike; the ratios
printed are baseline / this tree, from the totals of all rounds.

Run: .venv/bin/python bench/write_cpu.py [--n 10000] [--patches 2000] [--baseline REV]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from api import ROOT, SVC_PATH, Client, served_client, service, timed_parallel  # bench/api.py
from stats import pct  # bench/stats.py

CLIENTS = 16
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


@dataclass
class Tally:
    """One kind of write against one server, summed over rounds."""

    writes: int = 0
    server_writes: float = 0.0
    """Successful mutating requests the server served meanwhile: the client's, and those of
    its in-process controllers (each Service gets an EndpointSlice and an Endpoints object,
    which also carry its labels)."""
    cpu: float = 0.0
    gc: float | None = 0.0
    """Seconds the server spent in cyclic garbage collections meanwhile (its
    ``svcnet_gc_pause_seconds``; None for a revision without that metric)."""
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def row(self, label: str) -> str:
        gc = "-" if self.gc is None else f"{self.gc / self.writes * 1e3:.2f}"
        return (f"| {label} | {self.cpu / self.writes * 1e3:.2f} | {gc} | "
                f"{self.server_writes / self.writes:.2f} | "
                f"{self.writes / self.wall:.0f}/s | {pct(self.latencies, .5) * 1e3:.1f} | "
                f"{pct(self.latencies, .99) * 1e3:.1f} |")


@dataclass
class Target:
    name: str
    pid: int
    client: Client
    created: int = 0
    tallies: dict[str, Tally] = field(default_factory=dict)

    async def batch(self, kind: str, count: int, write: object) -> None:
        """``count`` writes from 16 clients; the CPU counted runs until the server's count of
        writes stops moving (looked at 1 s apart: each look at /metrics costs the server tens
        of milliseconds of CPU, counted here too): the follow-up writes of its controllers
        belong to the batch that caused them."""
        served, gc_before = await self.scrape()
        start = served
        before = cpu_seconds(self.pid)
        wall, lat = await timed_parallel(count, CLIENTS, write)
        while (now := await self.scrape())[0] != served:
            served = now[0]
            await asyncio.sleep(1.0)
        tally = self.tallies.setdefault(kind, Tally())
        tally.cpu += cpu_seconds(self.pid) - before
        gc_after = now[1]
        tally.gc = (None if tally.gc is None or gc_before is None or gc_after is None
                    else tally.gc + gc_after - gc_before)
        tally.server_writes += now[0] - start
        tally.wall += wall
        tally.writes += count
        tally.latencies += lat

    async def scrape(self) -> tuple[float, float | None]:
        """From the server's metrics: successful creates, updates and patches served so far,
        and seconds spent in garbage collections (None if it does not say)."""
        async with self.client.session.get(self.client.url + "/metrics") as resp:
            lines = (await resp.text()).splitlines()
        writes = sum(float(line.rsplit(" ", 1)[1]) for line in lines
                     if line.startswith("apiserver_request_total{") and 'code="20' in line
                     and any(f'verb="{v}"' in line for v in ("create", "update", "patch")))
        gc = [float(line.rsplit(" ", 1)[1]) for line in lines
              if line.startswith("svcnet_gc_pause_seconds_sum{")]
        return writes, (sum(gc) if gc else None)


class Loaded(Protocol):
    """A server the load goes to in batches (this bench's Target, bench/workers.py's)."""

    created: int
    client: Client

    async def batch(self, kind: str, count: int, write: object) -> None: ...


async def creates(t: Loaded, count: int) -> None:
    first = t.created
    t.created += count
    await t.batch("create", count,
                  lambda i: t.client.call("POST", SVC_PATH, service(first + i)))


async def patches(t: Loaded, count: int, n: int, seq: int, kind: str = "merge patch") -> None:
    async def patch(i: int) -> None:
        await t.client.call("PATCH", f"{SVC_PATH}/svc-{random.randrange(n)}",
                            {"metadata": {"labels": {"u": f"{seq}-{i}"}}})
    t.client.session.headers["Content-Type"] = "application/merge-patch+json"
    try:
        await t.batch(kind, count, patch)
    finally:
        t.client.session.headers["Content-Type"] = "application/json"


async def fill(targets: Sequence[Loaded], n: int, rounds: int) -> None:
    """Creates until each target holds ``n`` Services, in alternating chunks."""
    chunk = max(1, n // (rounds * 2))
    while any(t.created < n for t in targets):
        for t in targets:
            await creates(t, min(chunk, n - t.created))


async def measure(targets: Sequence[Loaded], n: int, n_patches: int, rounds: int) -> None:
    await fill(targets, n, rounds)
    for r in range(rounds):
        for t in targets:
            await patches(t, n_patches // rounds, n, r)


@contextlib.contextmanager
def worktree_of(rev: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(path), rev], cwd=ROOT,
                       check=True, capture_output=True)
        try:
            yield path
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT,
                           check=False, capture_output=True)


def trees(stack: contextlib.ExitStack | contextlib.AsyncExitStack,
          baseline: str | None) -> list[tuple[str, Path]]:
    """The source trees to run side by side: a worktree of ``baseline`` (removed when
    ``stack`` closes), if given, then this one; each with its label."""
    roots = [("this tree", ROOT)]
    if baseline:
        roots.insert(0, (f"base {baseline}", stack.enter_context(worktree_of(baseline))))
    return roots


async def run(n: int, n_patches: int, rounds: int, baseline: str | None) -> list[Target]:
    async with contextlib.AsyncExitStack() as stack:
        targets = []
        for name, root in trees(stack, baseline):
            pid, client = await served_client(stack, root)
            targets.append(Target(name, pid, client))
        await asyncio.sleep(2)  # let the in-process controllers settle
        await measure(targets, n, n_patches, rounds)
        return targets


def load_arguments(patches: int) -> argparse.ArgumentParser:
    """The options of the load :func:`measure` sends (``patches``: the default count)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000, help="Services created (and stored)")
    ap.add_argument("--patches", type=int, default=patches, help="merge patches after that")
    ap.add_argument("--rounds", type=int, default=4, help="alternations between servers")
    return ap


def main() -> None:
    ap = load_arguments(patches=2000)
    ap.add_argument("--baseline", help="a git revision to run side by side")
    args = ap.parse_args()
    targets = asyncio.run(run(args.n, args.patches, args.rounds, args.baseline))
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}; {CLIENTS} clients, "
          f"{args.n} Services created then {args.patches} merge patches, in {args.rounds} "
          "alternating rounds per server")
    print()
    print("| server, write | server CPU ms/write | of which GC | server writes/write | writes/s "
          "| p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for t in targets:
        for kind, tally in t.tallies.items():
            print(tally.row(f"{t.name}, {kind}"))
    if len(targets) == 2:
        base, ours = targets
        for kind in base.tallies:
            b, o = base.tallies[kind], ours.tallies[kind]
            print(f"| **{kind}: base / this tree** | "
                  f"**{b.cpu / b.writes / (o.cpu / o.writes):.2f}x** | - | - | "
                  f"**{(o.writes / o.wall) / (b.writes / b.wall):.2f}x** | - | "
                  f"{pct(b.latencies, .99) / pct(o.latencies, .99):.2f}x |")


if __name__ == "__main__":
    main()
