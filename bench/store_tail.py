"""The SQLite store's write latency tail under a steady load: this tree against a baseline.

What it isolates: where the WAL is checkpointed (storage/sqlite.py, "Checkpoints"). SQLite's
own checkpoints run inside the commit that finds the WAL past 1000 pages, so under a load one
write in a few hundred waits for pages to be copied back and fsynced, and every writer queued
behind it waits too; the store's checkpointer does that from a thread of its own.

The load: 10k keys of ~1.6 KB (a stored Service's size), then 16 clients each updating random
keys of their own (no conflicts) with a 2 ms pause between writes, 1,500 writes each, through
the store's API on one event loop (the API server's shape, without the HTTP and the object
work). Each tree runs in a child process of its own (two versions of svcnet cannot share one
interpreter), in alternating rounds, so that load coming and going on the machine weighs on
both alike. Printed per tree: writes/s, latency p50/p99/p99.9/max over every round, and the
largest WAL file seen at the end of a round.

Run: .venv/bin/python bench/store_tail.py --baseline REV [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stats import pct  # bench/stats.py

ROOT = Path(__file__).resolve().parent.parent
KEYS = 10_000
CLIENTS = 16
WRITES = 1_500


async def child() -> None:
    from svcnet.storage.sqlite import SQLiteStore

    assert Path(sys.modules["svcnet"].__file__ or "").is_relative_to(Path.cwd()), "wrong tree"

    value = os.urandom(800).hex().encode()
    with tempfile.TemporaryDirectory() as d:
        store = SQLiteStore(Path(d) / "state.db")
        await store.open()
        revisions: dict[str, int] = {}
        for first in range(0, KEYS, 500):
            made = await asyncio.gather(*(store.create(f"/registry/services/default/svc-{i}",
                                                       value)
                                          for i in range(first, first + 500)))
            revisions.update((kv.key, kv.mod_revision) for kv in made)
        keys = sorted(revisions)
        latencies: list[float] = []

        async def client(k: int) -> None:
            mine = keys[k::CLIENTS]
            for _ in range(WRITES):
                key = random.choice(mine)
                start = time.perf_counter()
                kv = await store.update(key, value, revisions[key])
                latencies.append(time.perf_counter() - start)
                revisions[key] = kv.mod_revision
                await asyncio.sleep(0.002)

        start = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(CLIENTS)))
        wall = time.perf_counter() - start
        wal = (Path(d) / "state.db-wal").stat().st_size
        await store.close()
    print(json.dumps({"wall": wall, "latencies": latencies, "wal": wal}))


def run_tree(root: Path) -> tuple[float, list[float], int]:
    """One round in a child running ``root``'s svcnet: (wall seconds, latencies, WAL bytes)."""
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{Path(__file__).parent}"}
    out = subprocess.run([sys.executable, __file__, "--child"], cwd=root, env=env,
                         check=True, capture_output=True, text=True).stdout
    result = json.loads(out.splitlines()[-1])
    return float(result["wall"]), [float(x) for x in result["latencies"]], int(result["wal"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", help="a git revision to run side by side")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        asyncio.run(child())
        return
    # Only here: bench/api.py (under write_cpu) puts this tree first on sys.path, which a
    # child running another tree must not have.
    from write_cpu import worktree_of  # bench/write_cpu.py

    with contextlib.ExitStack() as stack:
        trees = [("this tree", ROOT)]
        if args.baseline:
            trees.insert(0, (f"base {args.baseline}",
                             stack.enter_context(worktree_of(args.baseline))))
        results: dict[str, list[tuple[float, list[float], int]]] = {name: [] for name, _ in trees}
        for _ in range(args.rounds):
            for name, root in trees:
                results[name].append(run_tree(root))
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}; {KEYS} keys, {CLIENTS} clients x "
          f"{WRITES} updates, {args.rounds} alternating rounds")
    print()
    print("| store | writes/s | p50 ms | p99 ms | p99.9 ms | max ms | largest WAL |")
    print("|---|---|---|---|---|---|---|")
    for name, rounds in results.items():
        lat = [x for _, latencies, _ in rounds for x in latencies]
        wall = sum(w for w, _, _ in rounds)
        wal = max(size for _, _, size in rounds)
        print(f"| {name} | {len(lat) / wall:,.0f} | {pct(lat, .5) * 1e3:.2f} | "
              f"{pct(lat, .99) * 1e3:.2f} | {pct(lat, .999) * 1e3:.2f} | "
              f"{max(lat) * 1e3:.2f} | {wal / 2**20:.1f} MiB |")


if __name__ == "__main__":
    main()
