"""Mutating requests/s and latency: one `svcnet server` against three on the same etcd.

An etcd cluster (``--members``, default 3) is started on loopback; then, one after the other,
1 server and 3 servers (each set on its own key prefix) take ``--n`` ConfigMap creates from
16 concurrent clients over HTTPS (spread round-robin over the servers). Prints requests/s,
p50 and p99 for each, and the ratio of the two rates in one run.

The servers, etcd and this load generator share the machine's cores, so on a small machine
more servers mostly compete for the same CPU; the figure says what HA costs or gains there.

Run: .venv/bin/python bench/ha_writes.py [--n 3000] [--clients 16] [--members 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import platform
import ssl
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from stats import pct  # bench/stats.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import start_server, stop_server  # noqa: E402
from tests.etcd_server import EtcdCluster  # noqa: E402

CM_PATH = "/api/v1/namespaces/default/configmaps"


def endpoint(kubeconfig: Path) -> tuple[str, dict[str, str], ssl.SSLContext]:
    cfg: dict[str, Any] = yaml.safe_load(kubeconfig.read_text())
    cluster = cfg["clusters"][0]["cluster"]
    ctx = ssl.create_default_context(
        cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    return cluster["server"], {"Authorization": f"Bearer {cfg['users'][0]['user']['token']}",
                               "Content-Type": "application/json"}, ctx


async def load(urls: list[str], headers: dict[str, str], ctx: ssl.SSLContext, n: int,
               clients: int, prefix: str) -> tuple[float, list[float]]:
    """``n`` creates from ``clients`` tasks, client ``i`` on server ``i % len(urls)``:
    (seconds, latencies in ms)."""
    latencies: list[float] = []
    counter = iter(range(n))

    async def client(i: int, session: aiohttp.ClientSession) -> None:
        url = urls[i % len(urls)] + CM_PATH
        for k in counter:
            body = {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": f"{prefix}-{k}"}, "data": {"k": "v" * 100}}
            started = time.perf_counter()
            async with session.post(url, json=body, headers=headers, ssl=ctx) as resp:
                await resp.read()
                if resp.status != 201:
                    raise RuntimeError(f"create answered {resp.status}")
            latencies.append((time.perf_counter() - started) * 1000)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(i, session) for i in range(clients)))
        return time.perf_counter() - started, latencies


def run(store: str, servers: int, n: int, clients: int) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory(prefix="svcnet-bench-ha-") as tmp:
        dirs = [Path(tmp) / f"s{i}" for i in range(servers)]
        for d in dirs:
            d.mkdir()
        with ThreadPoolExecutor(servers) as pool:
            procs = list(pool.map(lambda d: start_server(d, "--store", store), dirs))
        try:
            urls = [endpoint(d / "kubeconfig")[0] for d in dirs]
            _, headers, ctx = endpoint(dirs[0] / "kubeconfig")
            asyncio.run(load(urls, headers, ctx, min(200, n // 10), clients, "warm"))
            seconds, latencies = asyncio.run(load(urls, headers, ctx, n, clients, "cm"))
        finally:
            for p in procs:
                stop_server(p)
    return n / seconds, pct(latencies, 0.5), pct(latencies, 0.99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--members", type=int, default=3)
    args = parser.parse_args()
    etcd = EtcdCluster(args.members)
    etcd.start()
    try:
        rows = {}
        for servers in (1, 3):
            store = f"etcd://{etcd.endpoints}/bench-ha-{servers}/?timeout=10"
            rows[servers] = run(store, servers, args.n, args.clients)
    finally:
        etcd.stop()
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; etcd members: {args.members}; "
          f"{args.n} ConfigMap creates, {args.clients} clients")
    print("| servers | requests/s | p50 ms | p99 ms |")
    print("|---|---|---|---|")
    for servers, (rate, p50, p99) in rows.items():
        print(f"| {servers} | {rate:,.0f} | {p50:.1f} | {p99:.1f} |")
    print(f"3 servers / 1 server: {rows[3][0] / rows[1][0]:.2f}x requests/s")


if __name__ == "__main__":
    main()
