"""Slow and idle connections against a real `svcnet server` process: do real clients still get
served, and are the hostile connections let go?

Opens N slow-loris connections (TLS set up, then a request head trickled in, one header line
every few seconds, never finished) and N idle ones (TLS set up, then nothing), while one client
(4 concurrent requests, keep-alive) GETs one Service. Prints the client's GET latency (p50 /
p99) without and with the hostile connections, the server's RSS, how many hostile connections
the server accepted and how many it had closed after its header-read timeout.

Run: .venv/bin/python bench/slowloris.py [--n 500] [--seconds 10] [--header-timeout 32]
     [--max-connections 1024]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml
from stats import pct, rss_mib  # bench/stats.py

ROOT = Path(__file__).resolve().parent.parent
PATH = "/api/v1/namespaces/default/services/kubernetes"


class Hostile:
    """N slow-loris and N idle connections; counts how many the server has closed."""

    def __init__(self, host: str, port: int, ctx: ssl.SSLContext) -> None:
        self.host, self.port, self.ctx = host, port, ctx
        self.conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.failed = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self, n: int, *, slow: bool) -> None:
        async def one() -> None:
            try:
                r, w = await asyncio.open_connection(self.host, self.port, ssl=self.ctx,
                                                     server_hostname=self.host)
            except OSError:
                self.failed += 1
                return
            self.conns.append((r, w))
            if slow:
                w.write(b"GET /version HTTP/1.1\r\nHost: x\r\n")
                self._tasks.append(asyncio.create_task(self._trickle(w)))
        for start in range(0, n, 50):  # 50 handshakes at a time
            await asyncio.gather(*(one() for _ in range(min(50, n - start))))

    @staticmethod
    async def _trickle(w: asyncio.StreamWriter) -> None:
        i = 0
        try:
            while True:
                await asyncio.sleep(5)
                if w.is_closing() or w.transport.get_extra_info("socket") is None:
                    return
                w.write(b"X-Slow-%d: 1\r\n" % i)
                i += 1
        except (OSError, RuntimeError):
            return

    def closed_by_server(self) -> int:
        return sum(1 for r, _ in self.conns if r.at_eof())

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for _, w in self.conns:
            w.close()


async def measure(session: aiohttp.ClientSession, url: str, seconds: float,
                  concurrency: int = 4) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            t = time.perf_counter()
            try:
                async with session.get(url + PATH) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                        continue
            except aiohttp.ClientError:
                errors += 1
                continue
            latencies.append((time.perf_counter() - t) * 1000)
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


async def run(args: argparse.Namespace, data_dir: Path, pid: int) -> None:
    cfg = yaml.safe_load((data_dir / "kubeconfig").read_text())
    url = cfg["clusters"][0]["cluster"]["server"]
    host, _, port = url.removeprefix("https://").rpartition(":")
    ctx = ssl.create_default_context(cafile=str(data_dir / "pki" / "ca.crt"))
    headers = {"Authorization": f"Bearer {cfg['users'][0]['user']['token']}"}
    async with aiohttp.ClientSession(headers=headers,
                                     connector=aiohttp.TCPConnector(ssl=ctx)) as session:
        await measure(session, url, 1.0)  # warm up
        base, base_err = await measure(session, url, args.seconds)
        rss_before = rss_mib(pid)
        hostile = Hostile(host, int(port), ctx)
        t = time.monotonic()
        await hostile.open(args.n, slow=True)
        await hostile.open(args.n, slow=False)
        opened = time.monotonic() - t
        loaded, loaded_err = await measure(session, url, args.seconds)
        rss_loaded = rss_mib(pid)
        accepted = len(hostile.conns)
        closed_early = hostile.closed_by_server()
        wait = max(0.0, args.header_timeout + 3 - (time.monotonic() - t))
        await asyncio.sleep(wait)
        closed_late = hostile.closed_by_server()
        after, after_err = await measure(session, url, 2.0)
        await hostile.close()

    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; "
          f"python {platform.python_version()}")
    print(f"server: --read-header-timeout {args.header_timeout:g} --max-connections "
          f"{args.max_connections}")
    print(f"GET {PATH}, 4 concurrent requests, {args.seconds:g} s per phase")
    print(f"  quiet:   p50 {pct(base, .5):6.1f} ms  p99 {pct(base, .99):6.1f} ms  "
          f"n={len(base)} errors={base_err}  server RSS {rss_before:.0f} MiB")
    print(f"  hostile: p50 {pct(loaded, .5):6.1f} ms  p99 {pct(loaded, .99):6.1f} ms  "
          f"n={len(loaded)} errors={loaded_err}  server RSS {rss_loaded:.0f} MiB")
    print(f"  after:   p50 {pct(after, .5):6.1f} ms  p99 {pct(after, .99):6.1f} ms  "
          f"n={len(after)} errors={after_err}")
    print(f"hostile connections: {args.n} slow-loris + {args.n} idle asked, {accepted} set "
          f"up in {opened:.1f} s ({hostile.failed} refused at connect); closed by the server: "
          f"{closed_early} during the loaded phase, {closed_late} "
          f"{args.header_timeout + 3:g} s after opening")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--header-timeout", type=float, default=32.0)
    p.add_argument("--max-connections", type=int, default=1024)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="svcnet-bench-loris-") as tmp:
        data_dir = Path(tmp)
        log = (data_dir / "server.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "svcnet.cli.main", "server", "--data-dir", str(data_dir),
             "--listen", "127.0.0.1:0", "--read-header-timeout", str(args.header_timeout),
             "--max-connections", str(args.max_connections)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while not (data_dir / "kubeconfig").exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("server did not start:\n"
                                     + (data_dir / "server.log").read_text()[-2000:])
                time.sleep(0.05)
            asyncio.run(run(args, data_dir, proc.pid))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


if __name__ == "__main__":
    main()
