"""Kill -9 the real server under concurrent writers, restart it, and audit every acknowledged write.

Used by ``tests/e2e/test_crash_audit.py`` (a couple of kills, in CI) and ``bench/crash.py``
(many kills, prints the figures in docs/BENCHMARKS.md).

Theory of operation
-------------------
Each writer owns the Services it creates (fresh names, never reused) and remembers, per name,
the last state the server *acknowledged* (a 2xx): present with annotation ``audit/v`` = N and the
ClusterIP/NodePort it was given, or deleted. A request whose answer never came (the server died
under it, or a 5xx that may have been applied) is *uncertain*: the audit accepts either outcome
for that one name. A 4xx changed nothing by definition.

After each kill the server is restarted on the same store and the audit reads every Service:

* **lost**: an acknowledged create or update that is missing, or older than acknowledged;
* **resurrected**: an acknowledged delete whose Service is back;
* **phantom**: a Service that no acknowledged or uncertain request could have made;
* **moved**: a Service whose ClusterIP or NodePort differs from the one acknowledged;
* **double**: two Services holding one ClusterIP or one NodePort.

The writers then carry on against the restarted server with the same books, so allocations made
after a crash must avoid everything the crash left behind.

Each round writes for a random time, then, with ``min_writes``, until the writers have had that
many writes acknowledged in the round (at most a minute more), and kills: on a busy machine
(parallel test workers) a fixed time may see few writes, and a kill then tests little.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import ssl
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.e2e.conftest import start_server, stop_server

NS = "default"
PATH = f"/api/v1/namespaces/{NS}/services"
VERSION = "audit/v"


@dataclass
class Known:
    present: bool
    version: int
    cluster_ip: str = ""
    node_port: int | None = None


@dataclass
class Books:
    """What the server acknowledged, and what may or may not have happened."""

    known: dict[str, Known] = field(default_factory=dict)
    # name -> (op, the version it would leave) for requests without an answer
    uncertain: dict[str, tuple[str, int]] = field(default_factory=dict)
    acknowledged: int = 0
    refused: Counter[int] = field(default_factory=Counter)


@dataclass
class Audit:
    acknowledged: int
    services: int
    lost: list[str]
    resurrected: list[str]
    phantom: list[str]
    moved: list[str]
    double: list[str]

    @property
    def clean(self) -> bool:
        return not (self.lost or self.resurrected or self.phantom or self.moved or self.double)


class _Client:
    def __init__(self, data_dir: Path) -> None:
        cfg = yaml.safe_load((data_dir / "kubeconfig").read_text())
        self.url = cfg["clusters"][0]["cluster"]["server"]
        ctx = ssl.create_default_context(cafile=str(data_dir / "pki" / "ca.crt"))
        self.session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {cfg['users'][0]['user']['token']}"},
            connector=aiohttp.TCPConnector(ssl=ctx, limit=64),
            timeout=aiohttp.ClientTimeout(total=30))

    async def call(self, method: str, path: str, body: Any = None,
                   ctype: str = "application/json") -> tuple[int, Any]:
        async with self.session.request(method, self.url + path, json=body,
                                        headers={"Content-Type": ctype}) as resp:
            return resp.status, await resp.json(content_type=None)

    async def close(self) -> None:
        await self.session.close()


def _service(name: str, node_port: bool) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "annotations": {VERSION: "0"}},
            "spec": {"type": "NodePort" if node_port else "ClusterIP",
                     "selector": {"app": name}, "ports": [{"port": 80}]}}


def _allocated(obj: dict[str, Any]) -> tuple[str, int | None]:
    spec = obj.get("spec") or {}
    ports = spec.get("ports") or [{}]
    return str(spec.get("clusterIP") or ""), ports[0].get("nodePort")


async def _writer(client: _Client, books: Books, wid: int, seq: list[int],
                  stop: asyncio.Event, rng: random.Random) -> None:
    while not stop.is_set():
        live = [n for n, k in books.known.items() if k.present and n.startswith(f"w{wid}-")
                and n not in books.uncertain]
        r = rng.random()
        if len(live) < 4 or r < 0.45:
            seq[0] += 1
            name, op, version = f"w{wid}-{seq[0]}", "create", 0
            request: tuple[str, str, Any, str] = (
                "POST", PATH, _service(name, rng.random() < 0.5), "application/json")
        elif r < 0.85:
            name = rng.choice(live)
            op, version = "update", books.known[name].version + 1
            request = ("PATCH", f"{PATH}/{name}",
                       {"metadata": {"annotations": {VERSION: str(version)}}},
                       "application/merge-patch+json")
        else:
            name = rng.choice(live)
            op, version = "delete", books.known[name].version
            request = ("DELETE", f"{PATH}/{name}", None, "application/json")
        books.uncertain[name] = (op, version)
        try:
            code, answer = await client.call(*request)
        except (TimeoutError, aiohttp.ClientError, ConnectionError):
            return  # the server died under this request: it stays uncertain
        if code >= 500:
            return  # it may have been applied: leave it uncertain and stop this writer
        del books.uncertain[name]
        if code >= 300:
            books.refused[code] += 1
            continue
        books.acknowledged += 1
        if op == "delete":
            books.known[name] = Known(False, version)
        else:
            ip, port = _allocated(answer)
            books.known[name] = Known(True, version, ip, port)


def audit(books: Books, items: list[dict[str, Any]]) -> Audit:
    stored = {i["metadata"]["name"]: i for i in items
              if i["metadata"].get("namespace", NS) == NS}
    lost, resurrected, phantom, moved = [], [], [], []
    for name, known in books.known.items():
        obj = stored.get(name)
        maybe = books.uncertain.get(name)
        if obj is None:
            if known.present and maybe != ("delete", known.version):
                lost.append(f"{name}: acknowledged v{known.version}, missing")
            continue
        if not known.present:
            resurrected.append(f"{name}: deleted, back at v{_version(obj)}")
            continue
        allowed = {known.version} | ({maybe[1]} if maybe and maybe[0] == "update" else set())
        if _version(obj) not in allowed:
            lost.append(f"{name}: acknowledged v{known.version}, stored v{_version(obj)}")
        if _allocated(obj) != (known.cluster_ip, known.node_port):
            moved.append(f"{name}: acknowledged {known.cluster_ip}/{known.node_port}, "
                         f"stored {_allocated(obj)}")
    for name, obj in stored.items():
        if name in books.known or name == "kubernetes":
            continue
        if books.uncertain.get(name, ("", 0))[0] != "create":
            phantom.append(f"{name}: never acknowledged (v{_version(obj)})")
    ips = Counter(_allocated(i)[0] for i in items if _allocated(i)[0] not in ("", "None"))
    ports = Counter(_allocated(i)[1] for i in items if _allocated(i)[1])
    double = [f"ClusterIP {ip} x{n}" for ip, n in ips.items() if n > 1] + [
        f"NodePort {p} x{n}" for p, n in ports.items() if n > 1]
    return Audit(books.acknowledged, len(stored), lost, resurrected, phantom, moved, double)


def _version(obj: dict[str, Any]) -> int:
    return int(((obj.get("metadata") or {}).get("annotations") or {}).get(VERSION, -1))


async def _round(data_dir: Path, books: Books, writers: int, seconds: float, seqs: list[list[int]],
                 rng: random.Random, proc: subprocess.Popen[bytes], min_writes: int) -> None:
    client = _Client(data_dir)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_writer(client, books, w, seqs[w], stop,
                                         random.Random(rng.random())))
             for w in range(writers)]
    try:
        enough = books.acknowledged + min_writes
        await asyncio.sleep(seconds)
        deadline = asyncio.get_running_loop().time() + 60
        while (books.acknowledged < enough and asyncio.get_running_loop().time() < deadline
               and not all(t.done() for t in tasks)):
            await asyncio.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # mid-flight: requests are on the wire
        await asyncio.wait(tasks, timeout=30)
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()
    proc.wait()


async def _list(data_dir: Path) -> list[dict[str, Any]]:
    client = _Client(data_dir)
    try:
        code, doc = await client.call("GET", "/api/v1/services")
        assert code == 200, doc
        return list(doc["items"])
    finally:
        await client.close()


def run(data_dir: Path, store_args: list[str], *, kills: int, writers: int = 16,
        seconds: tuple[float, float] = (1.0, 2.5), seed: int = 0, min_writes: int = 0,
        ) -> list[Audit]:
    """``kills`` rounds of write → kill -9 → restart → audit; the server is stopped at the end.
    Each round writes for a time drawn from ``seconds`` and until ``min_writes`` more writes
    were acknowledged."""
    rng = random.Random(seed)
    books = Books()
    seqs = [[0] for _ in range(writers)]
    audits = []
    proc = start_server(data_dir, *store_args)
    try:
        for _ in range(kills):
            asyncio.run(_round(data_dir, books, writers, rng.uniform(*seconds), seqs, rng,
                               proc, min_writes))
            proc = start_server(data_dir, *store_args)
            audits.append(audit(books, asyncio.run(_list(data_dir))))
            # What is settled now is known: uncertain requests resolved either way.
            _settle(books, asyncio.run(_list(data_dir)))
    finally:
        with contextlib.suppress(Exception):
            stop_server(proc)
    return audits


def _settle(books: Books, items: list[dict[str, Any]]) -> None:
    """Adopt the outcome of each uncertain request, so the next round audits from here."""
    stored = {i["metadata"]["name"]: i for i in items}
    for name in list(books.uncertain):
        obj = stored.get(name)
        if obj is None:
            books.known[name] = Known(False, books.known[name].version
                                      if name in books.known else 0)
        else:
            ip, port = _allocated(obj)
            books.known[name] = Known(True, _version(obj), ip, port)
    books.uncertain.clear()
