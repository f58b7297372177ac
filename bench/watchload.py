"""Watch fan-out under load, against a real `svcnet server` process.

Starts the server (SQLite by default; ``--store etcd://HOST:PORT/PREFIX`` for an etcd, or
``--store etcd`` for a throwaway one started like the tests' etcd), creates one
Service per writer, opens N watches on the Services of namespace ``default`` from two separate
client processes (so the clients' CPU is not spent in the process being measured), then runs 16
writers (merge patches, back to back) for the run time, and prints:

* writes/s acknowledged, and the server's CPU use during the run;
* watch delivery latency p50/p99/max: write acknowledged (the writer's response, which carries the
  object's resourceVersion) → event received by a watcher, matched by resourceVersion over every
  (watcher, event) pair; and how many of the expected deliveries arrived at all, how many
  streams the server ended (a watcher too far behind is cut loose and re-watches from the last
  resourceVersion it saw, as client-go does);
* GET latency p50/p99 of one Service during the run (one client, back to back);
* the server's RSS before the watchers open, at its peak, and after the watchers closed.

Timestamps are CLOCK_MONOTONIC, which all processes on the machine share.

Run: .venv/bin/python bench/watchload.py [--watchers 500] [--writers 16] [--duration 60]
     [--clients 2] [--store etcd://127.0.0.1:2379/bench | --store etcd]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from stats import pct, rss_mib  # bench/stats.py

ROOT = Path(__file__).resolve().parent.parent
SVC_PATH = "/api/v1/namespaces/default/services"
RV_MARK = b'"resourceVersion":"'


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def line_rv(line: bytes) -> int:
    """The first resourceVersion in a watch line: the object's own (metadata comes first)."""
    at = line.find(RV_MARK)
    if at < 0:
        return 0
    start = at + len(RV_MARK)
    return int(line[start:line.index(b'"', start)])


# -- the watcher client process ------------------------------------------------------------


async def watcher_process(url: str, token: str, ca: str, count: int, rv: int, out: str) -> None:
    """Open ``count`` watches from ``rv``; say "ready"; read stdin for the last written rv, then
    wait until every watcher saw it (or 60 s), and write (rv, time) pairs to ``out``."""
    ctx = ssl.create_default_context(cafile=ca)
    session = aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {token}"},
        connector=aiohttp.TCPConnector(ssl=ctx, limit=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30))
    rvs = array("q")
    times = array("d")
    last_seen = [rv] * count
    restarts = 0
    errors = 0
    final: list[int] = []
    opened = 0
    all_open = asyncio.Event()

    async def watch_one(i: int) -> None:
        nonlocal restarts, errors, opened
        first = True
        while not final or last_seen[i] < final[0]:
            query = (f"?watch=true&resourceVersion={last_seen[i]}&allowWatchBookmarks=true"
                     "&timeoutSeconds=3600")
            try:
                async with session.get(url + SVC_PATH + query) as resp:
                    if first:
                        first = False
                        opened += 1
                        if opened == count:
                            all_open.set()
                    if resp.status != 200:
                        errors += 1
                        await asyncio.sleep(0.5)
                        continue
                    async for line in resp.content:
                        now = time.monotonic()
                        if b'"BOOKMARK"' in line[:20]:
                            continue
                        if b'"ERROR"' in line[:20]:
                            errors += 1
                            break
                        got = line_rv(line)
                        if got > last_seen[i]:
                            last_seen[i] = got
                            rvs.append(got)
                            times.append(now)
                        if final and last_seen[i] >= final[0]:
                            return
            except (TimeoutError, aiohttp.ClientError):
                errors += 1
                await asyncio.sleep(0.2)
            restarts += 1

    tasks = [asyncio.create_task(watch_one(i)) for i in range(count)]
    await all_open.wait()
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    text = await loop.run_in_executor(None, sys.stdin.readline)
    final.append(int(text))
    _, pending = await asyncio.wait(tasks, timeout=60)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await session.close()
    with open(out, "wb") as f:
        rvs.tofile(f)
        times.tofile(f)
    missing = sum(1 for seen in last_seen if seen < final[0])
    print(json.dumps({"restarts": restarts,
                      "errors": errors, "unfinished": missing, "n": len(rvs)}), flush=True)


# -- the driver ----------------------------------------------------------------------------


class Api:
    def __init__(self, kubeconfig: Path) -> None:
        cfg = yaml.safe_load(kubeconfig.read_text())
        self.url: str = cfg["clusters"][0]["cluster"]["server"]
        self.ca = str(kubeconfig.parent / "pki" / "ca.crt")
        self.token: str = cfg["users"][0]["user"]["token"]
        self.session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.token}"},
            connector=aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=self.ca),
                                           limit=64))

    async def call(self, method: str, path: str, body: Any = None,
                   content_type: str = "application/json") -> Any:
        data = json.dumps(body) if body is not None else None
        async with self.session.request(method, self.url + path, data=data,
                                        headers={"Content-Type": content_type}) as resp:
            payload = await resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {payload[:300]!r}")
            return json.loads(payload)


async def drive(args: argparse.Namespace, data: Path, pid: int) -> list[str]:
    api = Api(data / "kubeconfig")
    try:
        for w in range(args.writers):
            await api.call("POST", SVC_PATH, {
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": f"load-{w}"},
                "spec": {"ports": [{"port": 80}]}})
        rv = int((await api.call("GET", f"{SVC_PATH}?limit=1"))["metadata"]["resourceVersion"])
        await asyncio.sleep(2)
        rss_start = rss_mib(pid)

        clients = []
        per = [args.watchers // args.clients + (i < args.watchers % args.clients)
               for i in range(args.clients)]
        for i, count in enumerate(per):
            out = data / f"watch-{i}.bin"
            proc = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--role", "watchers", "--url", api.url,
                "--token", api.token, "--ca", api.ca, "--count", str(count), "--rv", str(rv),
                "--out", str(out), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            clients.append((proc, out))
        for proc, _ in clients:
            assert proc.stdout is not None
            line = await proc.stdout.readline()
            if line.strip() != b"ready":
                raise RuntimeError(f"watcher client failed: {line!r}")
        rss_open = rss_mib(pid)

        acks: dict[int, float] = {}
        gets: list[float] = []
        rss_peak = rss_open
        stop = time.monotonic() + args.duration

        async def writer(w: int) -> None:
            seq = 0
            while time.monotonic() < stop:
                seq += 1
                obj = await api.call("PATCH", f"{SVC_PATH}/load-{w}",
                                     {"metadata": {"labels": {"seq": str(seq)}}},
                                     "application/merge-patch+json")
                acks[int(obj["metadata"]["resourceVersion"])] = time.monotonic()

        async def getter() -> None:
            while time.monotonic() < stop:
                t = time.monotonic()
                await api.call("GET", f"{SVC_PATH}/load-0")
                gets.append(time.monotonic() - t)
                await asyncio.sleep(0.05)

        async def sampler() -> None:
            nonlocal rss_peak
            while time.monotonic() < stop:
                rss_peak = max(rss_peak, rss_mib(pid))
                await asyncio.sleep(0.5)

        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.gather(*(writer(w) for w in range(args.writers)), getter(), sampler())
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(pid) - cpu0
        last = max(acks)
        stats = []
        for proc, _ in clients:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(f"{last}\n".encode())
            await proc.stdin.drain()
        for proc, _ in clients:
            assert proc.stdout is not None
            stats.append(json.loads(await proc.stdout.readline()))
            await proc.wait()
        rss_peak = max(rss_peak, rss_mib(pid))
        await asyncio.sleep(5)
        rss_end = rss_mib(pid)

        delays: list[float] = []
        for _, out in clients:
            raw = out.read_bytes()
            half = len(raw) // 2
            rvs, times = array("q"), array("d")
            rvs.frombytes(raw[:half])
            times.frombytes(raw[half:])
            delays += [t - acks[r] for r, t in zip(rvs, times, strict=True) if r in acks]
        expected = len(acks) * args.watchers
        restarts = sum(s["restarts"] for s in stats)
        errors = sum(s["errors"] for s in stats)
        unfinished = sum(s["unfinished"] for s in stats)
        return [
            f"writes: {len(acks)} in {elapsed:.1f} s = {len(acks) / elapsed:.0f}/s "
            f"({args.writers} writers); server CPU {100 * cpu / elapsed:.0f}% of one core",
            f"watch delivery ({args.watchers} watchers): p50 {pct(delays, .5) * 1e3:.0f} ms, "
            f"p99 {pct(delays, .99) * 1e3:.0f} ms, max {max(delays, default=0) * 1e3:.0f} ms; "
            f"{len(delays)} of {expected} deliveries ({100 * len(delays) / expected:.1f}%); "
            f"streams re-opened {restarts}, errors {errors}, watchers short of the last "
            f"write after 60 s: {unfinished}",
            f"GET during the run: {len(gets)} requests, p50 {pct(gets, .5) * 1e3:.1f} ms, "
            f"p99 {pct(gets, .99) * 1e3:.1f} ms, max {max(gets) * 1e3:.1f} ms",
            f"server RSS: {rss_start:.0f} MiB before the watchers, {rss_open:.0f} MiB with them "
            f"open, peak {rss_peak:.0f} MiB, {rss_end:.0f} MiB 5 s after they closed "
            f"({100 * (rss_end - rss_start) / rss_start:+.0f}%)",
        ]
    finally:
        await api.session.close()


def run(args: argparse.Namespace) -> list[str]:
    if args.store == "etcd":  # a throwaway etcd, as the tests start one
        sys.path.insert(0, str(ROOT))
        from tests.etcd_server import EtcdServer

        etcd = EtcdServer()
        try:
            args.store = f"etcd://{etcd.start()}/watchload"
            return run(args)
        finally:
            etcd.stop()
    with tempfile.TemporaryDirectory(prefix="svcnet-hw-bench-") as d:
        data = Path(d)
        extra = ["--store", args.store] if args.store else []
        with open(data / "server.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "svcnet.cli.main", "server",
                                     "--data-dir", str(data), "--listen", "127.0.0.1:0",
                                     *extra], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while not (data / "kubeconfig").exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("server did not start: "
                                       + (data / "server.log").read_text()[-2000:])
                time.sleep(0.05)
            return asyncio.run(drive(args, data, proc.pid))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--watchers", type=int, default=500)
    ap.add_argument("--writers", type=int, default=16)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=2, help="watcher client processes")
    ap.add_argument("--store", default="", help="store URL (default: SQLite in a temp dir); "
                    "'etcd' starts a throwaway etcd (etcd-server must be installed)")
    ap.add_argument("--role", default="driver", choices=["driver", "watchers"],
                    help=argparse.SUPPRESS)
    for name in ("url", "token", "ca", "out"):
        ap.add_argument(f"--{name}", default="", help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--rv", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "watchers":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(watcher_process(args.url, args.token, args.ca, args.count, args.rv,
                                        args.out))
        return
    lines = run(args)
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}; svcnet server with "
          f"{args.store or 'SQLite (synchronous=FULL)'}, HTTPS; {args.clients} watcher client "
          "processes and the writers on the same cores")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
