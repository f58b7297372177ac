"""Large writes against a real `svcnet server`: time against the length of a keyed list, and
the latency of small requests while a large write is being processed.

Prints two tables:

1. Write time by list length (``--sizes``): create of a Pod (n containers), a Service (n
   ports), a ConfigMap (n keys), an EndpointSlice (n endpoints), each also with every item
   invalid (empty names: one or more errors per item); a strategic merge patch and a
   server-side apply of n Service ports. Each row gives the answer's code, the body and answer
   sizes and the time from sending to the last byte read.
2. Concurrent requests: while one large write is in flight, a client GETs ``/healthz`` and a
   small Service every 10 ms; the table gives their latency (p50 / p99 / max) next to a quiet
   baseline, and the large write's own time. The large writes: a Service of 10,000 ports
   (legal, 0.46 MB), and a 3 MiB body of nameless containers (``{"name": ""}``: 260,000 of
   them, three errors each), each sent by a separate process.

The load generator shares the machine's cores with the server; latencies include its own.
``--root`` runs the server from another checkout of svcnet (to compare before and after).

Run: .venv/bin/python bench/large_writes.py [--sizes 1000,10000,100000] [--root DIR]
     (``--sizes ''`` for the second table only)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from stats import pct  # bench/stats.py

ROOT = Path(__file__).resolve().parent.parent
NS = "/api/v1/namespaces/default"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
Obj = dict[str, Any]
TIMEOUT = aiohttp.ClientTimeout(total=300)


def pod(name: str, n: int, bad: bool) -> Obj:
    containers = [{"name": ""} if bad else {"name": f"c{i}", "image": "busybox"}
                  for i in range(n)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": containers}}


def service(name: str, n: int, bad: bool) -> Obj:
    ports = [{"port": 0} if bad else {"name": f"p{i}", "port": i % 65535 + 1,
                                      "protocol": "TCP" if i < 65535 else "UDP"}
             for i in range(n)]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": ports}}


def configmap(name: str, n: int, bad: bool) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {(f"k{i}!" if bad else f"k{i}"): "v" for i in range(n)}}


def endpointslice(name: str, n: int, bad: bool) -> Obj:
    endpoints = [{"addresses": ["" if bad else f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"]}
                 for i in range(n)]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name}, "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}


class Client:
    def __init__(self, kubeconfig: Path) -> None:
        cfg = yaml.safe_load(kubeconfig.read_text())
        self.url = cfg["clusters"][0]["cluster"]["server"]
        self.token = cfg["users"][0]["user"]["token"]
        self.ca = str(kubeconfig.parent / "pki" / "ca.crt")
        ctx = ssl.create_default_context(cafile=self.ca)
        self.session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.token}"},
            connector=aiohttp.TCPConnector(ssl=ctx, limit=20), timeout=TIMEOUT)

    async def send(self, method: str, path: str, body: bytes | None = None,
                   ctype: str = "application/json") -> tuple[int, int, float]:
        """(status, answer bytes, seconds)."""
        start = time.perf_counter()
        async with self.session.request(method, self.url + path, data=body,
                                        headers={"Content-Type": ctype}) as resp:
            answer = await resp.read()
        return resp.status, len(answer), time.perf_counter() - start


def _body(obj: Obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


Case = Callable[[Client, str, int], Any]


async def _create(client: Client, path: str, obj: Obj) -> tuple[int, int, int, float]:
    body = _body(obj)
    code, size, secs = await client.send("POST", path, body)
    return code, len(body), size, secs


def _creates() -> list[tuple[str, Case]]:
    cases: list[tuple[str, Case]] = []
    for label, make, path in (("Pod create, n containers", pod, f"{NS}/pods"),
                              ("Service create, n ports", service, f"{NS}/services"),
                              ("ConfigMap create, n keys", configmap, f"{NS}/configmaps"),
                              ("EndpointSlice create, n endpoints", endpointslice, SLICES)):
        for bad in (False, True):
            def case(c: Client, name: str, n: int, make: Callable[[str, int, bool], Obj] = make,
                     path: str = path, bad: bool = bad) -> Any:
                return _create(c, path, make(name, n, bad))
            cases.append((label + (", every item invalid" if bad else ""), case))
    return cases


async def _smp(client: Client, name: str, n: int) -> tuple[int, int, int, float]:
    await client.send("POST", f"{NS}/services", _body(service(name, 1, False)))
    body = _body({"spec": {"ports": service(name, n, False)["spec"]["ports"]}})
    code, size, secs = await client.send("PATCH", f"{NS}/services/{name}", body,
                                         "application/strategic-merge-patch+json")
    return code, len(body), size, secs


async def _apply(client: Client, name: str, n: int) -> tuple[int, int, int, float]:
    body = _body(service(name, n, False))
    code, size, secs = await client.send("PATCH", f"{NS}/services/{name}?fieldManager=bench",
                                         body, "application/apply-patch+yaml")
    return code, len(body), size, secs


async def write_times(client: Client, sizes: list[int]) -> None:
    if not sizes:
        return
    cases = [*_creates(), ("Service strategic merge patch, n ports", _smp),
             ("Service server-side apply, n ports", _apply)]
    print("\n| write | n | code | body | answer | seconds |\n|---|---|---|---|---|---|")
    for i, (label, case) in enumerate(cases):
        for j, n in enumerate(sizes):
            try:
                code, body, answer, secs = await case(client, f"w{i}-{j}", n)
            except TimeoutError:
                print(f"| {label} | {n:,} | - | - | - | > {TIMEOUT.total:.0f} |", flush=True)
                continue
            print(f"| {label} | {n:,} | {code} | {body / 1e6:.2f} MB | {answer / 1e6:.2f} MB "
                  f"| {secs:.2f} |", flush=True)


async def _probe(client: Client, path: str, until: asyncio.Event) -> list[float]:
    latencies: list[float] = []
    while not until.is_set():
        try:
            code, _, secs = await client.send("GET", path)
        except TimeoutError:  # a server stuck on the large write
            latencies.append(TIMEOUT.total or 0.0)
            break
        if code != 200:
            raise RuntimeError(f"GET {path}: {code}")
        latencies.append(secs)
        await asyncio.sleep(0.01)
    return latencies


async def _while(client: Client, big: Callable[[], Any] | None,
                 quiet: float = 3.0) -> tuple[dict[str, list[float]], str]:
    until = asyncio.Event()
    paths = {"GET /healthz": "/healthz", "GET one Service": f"{NS}/services/kubernetes"}
    probes = {k: asyncio.create_task(_probe(client, p, until)) for k, p in paths.items()}
    await asyncio.sleep(0.2)
    if big is None:
        await asyncio.sleep(quiet)
        note = "-"
    else:
        code, body, _, secs = await big()
        note = (f"{code} in {secs:.2f} s" if code else f"no answer in {secs:.0f} s") + \
            f" ({body / 1e6:.2f} MB body)"
    until.set()
    return {k: await t for k, t in probes.items()}, note


_POSTER = """
import json, ssl, sys, time, urllib.error, urllib.request
url, token, ca, body = sys.argv[1], sys.argv[2], sys.argv[3], open(sys.argv[4], "rb").read()
req = urllib.request.Request(url, data=body, method="POST", headers={
    "Authorization": "Bearer " + token, "Content-Type": "application/json"})
start = time.perf_counter()
try:
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca),
                                timeout=float(sys.argv[5])) as r:
        code, answer = r.status, r.read()
except urllib.error.HTTPError as e:
    code, answer = e.code, e.read()
except TimeoutError:
    code, answer = 0, b""
print(json.dumps([code, len(answer), time.perf_counter() - start]))
"""


async def _post_elsewhere(client: Client, path: str, body: bytes) -> tuple[int, int, int, float]:
    """POST from another process, so that sending and reading a large body does not share this
    process (and the probes' event loop) with them."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        f.write(body)
        f.flush()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _POSTER, client.url + path, client.token, client.ca, f.name,
            str(TIMEOUT.total), stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
    code, size, secs = json.loads(out)
    return code, len(body), size, secs


async def concurrent(client: Client) -> None:
    # Bodies are built first: encoding them would stall this client's own loop.
    ports = _body(service("big", 10_000, False))
    nameless = b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"junk"},"spec":{' \
               b'"containers":[' + b",".join([b'{"name":""}'] * 260_000) + b"]}}"

    def posting(path: str, body: bytes) -> Callable[[], Any]:
        async def post() -> Any:
            return await _post_elsewhere(client, path, body)
        return post

    print("\n| while | request | n | p50 ms | p99 ms | max ms | the large write |\n"
          "|---|---|---|---|---|---|---|")
    for label, big in (("nothing (baseline)", None),
                       ("Service of 10,000 ports (legal)", posting(f"{NS}/services", ports)),
                       ("3 MiB of nameless containers", posting(f"{NS}/pods", nameless))):
        lat, note = await _while(client, big)
        for what, xs in lat.items():
            print(f"| {label} | {what} | {len(xs)} | {pct(xs, 0.5) * 1e3:.1f} | "
                  f"{pct(xs, 0.99) * 1e3:.1f} | {max(xs) * 1e3:.1f} | {note} |", flush=True)


async def run(kubeconfig: Path, sizes: list[int]) -> None:
    client = Client(kubeconfig)
    try:
        await write_times(client, sizes)
        await concurrent(client)
    finally:
        await client.session.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--root", type=Path, default=ROOT, help="svcnet checkout to run")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]  # none: the concurrent table only
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; server from {args.root}")
    with tempfile.TemporaryDirectory(prefix="svcnet-bench-large-") as tmp:
        data = Path(tmp)
        with open(data / "server.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "svcnet.cli.main", "server", "--data-dir", str(data),
                 "--listen", "127.0.0.1:0"], cwd=args.root, stdout=subprocess.DEVNULL,
                stderr=log)
        try:
            deadline = time.monotonic() + 60
            while not (data / "kubeconfig").exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("server did not start: "
                                       + (data / "server.log").read_text()[-2000:])
                time.sleep(0.1)
            asyncio.run(run(data / "kubeconfig", sizes))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    main()
