"""API server figures with 10k Services stored, against a real `svcnet server` process.

Prints: create and update latency (p50/p99, 16 concurrent clients over HTTPS), list-all latency
(JSON, 10k items), watch delivery latency with 50 concurrent watchers (write sent → event read
by each watcher), and GET requests/s (32 concurrent clients, keep-alive). Then protobuf against
JSON side by side, as ratios: list of every Service, and create throughput (the server and this
client read Kubernetes' message descriptors from the installed kubectl; without it the protobuf
rows are left out).

The load generator is Python (aiohttp) on the same 2 cores as the server, so the GET rate is a
lower bound on what the server can do; latencies include the client's own overhead.

Run: .venv/bin/python bench/api.py [--n 10000] [--watchers 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from stats import pct  # bench/stats.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from svcnet.api.protobuf import MEDIA_TYPE, Codec  # noqa: E402
from tests.kubectl_codec import kubectl_codec  # noqa: E402

SVC_PATH = "/api/v1/namespaces/default/services"


def service(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"svc-{i}", "labels": {"app": f"a{i % 100}"}},
            "spec": {"selector": {"app": f"a{i % 100}"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


class Client:
    def __init__(self, kubeconfig: Path) -> None:
        cfg = yaml.safe_load(kubeconfig.read_text())
        self.url = cfg["clusters"][0]["cluster"]["server"]
        ca = (kubeconfig.parent / "pki" / "ca.crt")
        self.ssl = ssl.create_default_context(cafile=str(ca))
        self.headers = {"Authorization": f"Bearer {cfg['users'][0]['user']['token']}",
                        "Content-Type": "application/json"}
        self.session = aiohttp.ClientSession(
            headers=self.headers, connector=aiohttp.TCPConnector(ssl=self.ssl, limit=100))

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body) if body is not None else None
        async with self.session.request(method, self.url + path, data=data) as resp:
            payload = await resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {payload[:200]!r}")
            return json.loads(payload)

    async def call_raw(self, method: str, path: str, body: bytes | None, ctype: str,
                       accept: str) -> bytes:
        headers = {"Content-Type": ctype, "Accept": accept}
        async with self.session.request(method, self.url + path, data=body,
                                        headers=headers) as resp:
            payload = await resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {payload[:200]!r}")
            return payload

    async def close(self) -> None:
        await self.session.close()


async def timed_parallel(n: int, workers: int, fn: Any) -> tuple[float, list[float]]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    lat: list[float] = []

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            t = time.perf_counter()
            await fn(i)
            lat.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return time.perf_counter() - start, lat


@contextlib.asynccontextmanager
async def running_server(root: Path = ROOT, args: Sequence[str] = ()
                         ) -> AsyncIterator[tuple[subprocess.Popen[bytes], Path]]:
    """A `svcnet server` process run from the source tree ``root`` (SQLite in a temporary data
    directory) with ``args`` added to its command line, and its data directory once its
    kubeconfig is written; stopped on exit."""
    with tempfile.TemporaryDirectory() as d:
        data = Path(d)
        env = {**os.environ, "PYTHONPATH": str(root)}
        with open(data / "server.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "svcnet.cli.main", "server",
                                     "--data-dir", str(data), "--listen", "127.0.0.1:0",
                                     *args],
                                    cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            while not (data / "kubeconfig").exists():
                if proc.poll() is not None:
                    raise RuntimeError((data / "server.log").read_text())
                await asyncio.sleep(0.05)
            yield proc, data
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


async def served_client(stack: contextlib.AsyncExitStack, root: Path = ROOT,
                        args: Sequence[str] = ()) -> tuple[int, Client]:
    """A :func:`running_server` (stopped when ``stack`` closes) and a client of it: its pid
    and the client."""
    proc, data = await stack.enter_async_context(running_server(root, args))
    client = Client(data / "kubeconfig")
    stack.push_async_callback(client.close)
    return proc.pid, client


async def run(n: int, watchers: int) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    async with running_server() as (_, data):
        client = Client(data / "kubeconfig")
        try:
            rows += await measure(client, n, watchers)
            codec = kubectl_codec()
            if codec is not None:
                rows += await protobuf_vs_json(client, n, codec)
        finally:
            await client.close()
    return rows


async def measure(c: Client, n: int, watchers: int) -> list[tuple[str, str, str, str]]:
    rows = []
    total, lat = await timed_parallel(n, 16, lambda i: c.call("POST", SVC_PATH, service(i)))
    rows.append((f"create {n} Services (16 clients)", f"{pct(lat, .5) * 1e3:.1f}",
                 f"{pct(lat, .99) * 1e3:.1f}", f"{n / total:.0f}/s"))
    total, lat = await timed_parallel(500, 1, lambda i: c.call("POST", SVC_PATH,
                                                               service(n + i)))
    rows.append(("create 500 more (1 client: service time)", f"{pct(lat, .5) * 1e3:.1f}",
                 f"{pct(lat, .99) * 1e3:.1f}", f"{500 / total:.0f}/s"))

    async def update(i: int) -> None:
        name = f"svc-{random.randrange(n)}"
        await c.call("PATCH", f"{SVC_PATH}/{name}", {"metadata": {"labels": {"u": str(i)}}})
    c.session.headers["Content-Type"] = "application/merge-patch+json"
    total, lat = await timed_parallel(2000, 16, update)
    c.session.headers["Content-Type"] = "application/json"
    rows.append(("update (merge patch) x2000 (16 clients)", f"{pct(lat, .5) * 1e3:.1f}",
                 f"{pct(lat, .99) * 1e3:.1f}", f"{2000 / total:.0f}/s"))
    c.session.headers["Content-Type"] = "application/merge-patch+json"
    total, lat = await timed_parallel(500, 1, update)
    c.session.headers["Content-Type"] = "application/json"
    rows.append(("update (merge patch) x500 (1 client)", f"{pct(lat, .5) * 1e3:.1f}",
                 f"{pct(lat, .99) * 1e3:.1f}", f"{500 / total:.0f}/s"))

    lat = []
    for _ in range(5):
        t = time.perf_counter()
        listed = await c.call("GET", SVC_PATH)
        lat.append(time.perf_counter() - t)
        assert len(listed["items"]) >= n
    rows.append((f"list all {len(listed['items'])} Services (JSON, 5 runs)",
                 f"{pct(lat, .5) * 1e3:.0f}", f"{max(lat) * 1e3:.0f} (max)", "-"))

    rows.append(await watch_delivery(c, n, watchers))

    stop = time.perf_counter() + 5
    count = 0

    async def getter() -> None:
        nonlocal count
        while time.perf_counter() < stop:
            await c.call("GET", f"{SVC_PATH}/svc-{random.randrange(n)}")
            count += 1
    start = time.perf_counter()
    await asyncio.gather(*(getter() for _ in range(32)))
    rows.append(("GET one Service (32 clients, 5 s)", "-", "-",
                 f"{count / (time.perf_counter() - start):.0f}/s"))
    return rows


async def watch_delivery(c: Client, n: int, watchers: int) -> tuple[str, str, str, str]:
    rv = (await c.call("GET", f"{SVC_PATH}?limit=1"))["metadata"]["resourceVersion"]
    sent: dict[str, float] = {}
    delays: list[float] = []
    ready = 0
    changes = 200

    async def watcher() -> None:
        nonlocal ready
        url = f"{c.url}{SVC_PATH}?watch=true&resourceVersion={rv}&labelSelector=bench%3Dwatch"
        async with c.session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as resp:
            ready += 1
            seen = 0
            async for line in resp.content:
                ev = json.loads(line)
                got = time.perf_counter()
                name = ev["object"]["metadata"]["name"] + ev["object"]["metadata"][
                    "labels"].get("seq", "")
                if name in sent:
                    delays.append(got - sent[name])
                seen += 1
                if seen >= changes:
                    return

    tasks = [asyncio.create_task(watcher()) for _ in range(watchers)]
    while ready < watchers:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    c.session.headers["Content-Type"] = "application/merge-patch+json"
    for i in range(changes):
        name = f"svc-{i}"
        sent[name + str(i)] = time.perf_counter()
        await c.call("PATCH", f"{SVC_PATH}/{name}",
                     {"metadata": {"labels": {"bench": "watch", "seq": str(i)}}})
        await asyncio.sleep(0.02)
    c.session.headers["Content-Type"] = "application/json"
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    return (f"watch delivery, {watchers} watchers x {changes} changes",
            f"{pct(delays, .5) * 1e3:.1f}", f"{pct(delays, .99) * 1e3:.1f}", "-")


async def protobuf_vs_json(c: Client, n: int, codec: Codec) -> list[tuple[str, str, str, str]]:
    """List every Service and create Services, in JSON and in protobuf, interleaved in pairs;
    each ratio is the median of the pairs' ratios, so load that comes and goes on the machine
    weighs on both formats alike."""
    rows = []
    lat: dict[str, list[float]] = {"json": [], "protobuf": []}
    size: dict[str, int] = {}
    for _ in range(7):
        for name, accept in (("json", "application/json"), ("protobuf", MEDIA_TYPE)):
            t = time.perf_counter()
            body = await c.call_raw("GET", SVC_PATH, None, "application/json", accept)
            lat[name].append(time.perf_counter() - t)
            size[name] = len(body)
    assert len(codec.decode(body)["items"]) >= n
    for name in ("json", "protobuf"):
        rows.append((f"list all Services, {name} ({size[name] / 1e6:.1f} MB, 7 runs, bytes read)",
                     f"{pct(lat[name], .5) * 1e3:.0f}", f"{max(lat[name]) * 1e3:.0f} (max)",
                     "-"))
    ratios = [p / j for j, p in zip(lat["json"], lat["protobuf"], strict=True)]
    rows.append(("list all: protobuf / JSON time (median of 7 pairs)", "-", "-",
                 f"{pct(ratios, .5):.2f}x"))

    spent: dict[str, list[float]] = {"json": [], "protobuf": []}
    per_round, rounds = 125, 8
    for r in range(rounds):
        for name in ("json", "protobuf"):
            first = max(2 * n, n + 500) + (2 * r + (name == "protobuf")) * per_round

            async def create(i: int, name: str = name, first: int = first) -> None:
                svc = service(first + i)
                if name == "json":
                    await c.call_raw("POST", SVC_PATH, json.dumps(svc).encode(),
                                     "application/json", "application/json")
                else:
                    await c.call_raw("POST", SVC_PATH, codec.encode(svc), MEDIA_TYPE,
                                     f"{MEDIA_TYPE}, application/json")
            total, _ = await timed_parallel(per_round, 16, create)
            spent[name].append(total)
    count = rounds * per_round
    for name in ("json", "protobuf"):
        rows.append((f"create {count} Services, {name} bodies and answers (16 clients)",
                     "-", "-", f"{count / sum(spent[name]):.0f}/s"))
    ratios = [j / p for j, p in zip(spent["json"], spent["protobuf"], strict=True)]
    rows.append((f"create: protobuf / JSON throughput (median of {rounds} rounds)", "-", "-",
                 f"{pct(ratios, .5):.2f}x"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--watchers", type=int, default=50)
    args = ap.parse_args()
    rows = asyncio.run(run(args.n, args.watchers))
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}; svcnet server with SQLite "
          "(synchronous=FULL), HTTPS, load generator on the same cores")
    print()
    print("| operation | p50 ms | p99 ms | throughput |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {' | '.join(r)} |")


if __name__ == "__main__":
    main()
