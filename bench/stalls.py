"""How long an idle `svcnet server` holding 10k Services stops answering, side by side with a
baseline revision.

Background work the size of the cluster (the informers' resync of every Service every 300 s,
the allocation repair every 180 s) ran on the event loop in one go, and for its whole length
the server answered nothing: no request, no watch, no health check. This bench fills a server
of this tree and one of ``--baseline`` (a temporary ``git worktree``, as bench/write_cpu.py
makes) with ``--n`` Services each, then, with both idle, asks each for ``/livez`` every 20 ms
for ``--seconds`` (past the first repair and the first resync), and prints per server the
answers slower than 40 ms (seconds since the server started: milliseconds), the slowest, and
the p99.9 of all answers.

Run: .venv/bin/python bench/stalls.py [--n 10000] [--seconds 330] [--baseline REV]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import time
from dataclasses import dataclass, field

from api import SVC_PATH, Client, served_client, service, timed_parallel  # bench/api.py
from stats import pct  # bench/stats.py
from write_cpu import CLIENTS, trees  # bench/write_cpu.py

PROBE_INTERVAL = 0.02
SLOW = 0.04


@dataclass
class Probe:
    name: str
    client: Client
    started: float  # monotonic, when the server was up
    latencies: list[float] = field(default_factory=list)
    slow: list[tuple[float, float]] = field(default_factory=list)

    async def run(self, until: float) -> None:
        while time.monotonic() < until:
            sent = time.monotonic()
            async with self.client.session.get(self.client.url + "/livez") as resp:
                await resp.read()
            took = time.monotonic() - sent
            self.latencies.append(took)
            if took > SLOW:
                self.slow.append((sent - self.started, took))
            await asyncio.sleep(PROBE_INTERVAL)

    def row(self) -> str:
        slow = ", ".join(f"{at:.0f}: {took * 1e3:.0f}" for at, took in self.slow)
        return (f"| {self.name} | {max(self.latencies) * 1e3:.0f} | "
                f"{pct(self.latencies, .999) * 1e3:.1f} | {slow or '-'} |")


async def run(n: int, seconds: float, baseline: str | None) -> list[Probe]:
    async with contextlib.AsyncExitStack() as stack:
        probes = []
        for name, root in trees(stack, baseline):
            _, client = await served_client(stack, root)
            probes.append(Probe(name, client, time.monotonic()))
        for p in probes:
            c = p.client
            await timed_parallel(n, CLIENTS, lambda i, c=c: c.call("POST", SVC_PATH, service(i)))
        until = max(p.started for p in probes) + seconds
        await asyncio.gather(*(p.run(until) for p in probes))
        return probes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000, help="Services stored")
    ap.add_argument("--seconds", type=float, default=330.0,
                    help="probe until this long after the servers started")
    ap.add_argument("--baseline", help="a git revision to run side by side")
    args = ap.parse_args()
    probes = asyncio.run(run(args.n, args.seconds, args.baseline))
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}; {args.n} Services, idle, GET /livez "
          f"every {PROBE_INTERVAL * 1e3:.0f} ms until {args.seconds:.0f} s after start")
    print()
    print("| server | slowest ms | p99.9 ms | answers over 40 ms (s since start: ms) |")
    print("|---|---|---|---|")
    for p in probes:
        print(p.row())


if __name__ == "__main__":
    main()
