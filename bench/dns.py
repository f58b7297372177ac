"""Cluster DNS figures: queries/s on loopback, and DNS programming latency.

1. **Query throughput.** A server process (this script with ``--serve``) serves a synthetic zone
   of ``--services`` Services (90% ClusterIP with two named ports, 10% of them dual-stack; 10%
   headless with three endpoints each, over 50 namespaces). A load generator in this process
   runs ``--clients`` closed-loop UDP clients (one query in flight each, raw sockets, the
   pre-built query bytes of a fixed mix: A of ClusterIP Services 40%, AAAA 10%, SRV 15%, PTR
   15%, headless A 10%, NXDOMAIN 10%) for ``--seconds`` and prints qps and latency p50/p99.
   It runs twice: with the wire answer cache (the default), and with the cache disabled (every
   query parsed and answered from the zone), to show what the cache buys.
2. **Zone build time** for 1k and 10k Services: the pure full ``build_zone``, and the
   incremental ``ZoneBuilder`` applying one changed Service and taking a snapshot (what each
   change costs once the DNS service runs).
3. **Change → resolvable latency.** In one process: a DNSServer fed by a DNSService whose
   informers are :class:`StaticSource` fakes holding the same synthetic world. Each round adds
   one Service (or moves a headless Service's endpoint) and polls the server over UDP every
   millisecond until the new answer comes back; p50/p99 over ``--changes`` rounds, with the
   default 50 ms debounce and with none.

The load generator is Python on the same 2 cores as the server, so qps is a lower bound on the
server's capacity. Latencies include the client's own overhead.

Run: .venv/bin/python bench/dns.py [--services 1000] [--clients 8] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import platform
import random
import struct
import sys
import time
from typing import Any, cast

import dnslib
from stats import pct  # bench/stats.py

from svcnet.dns.records import ZoneBuilder, build_zone
from svcnet.dns.server import DNSServer
from svcnet.dns.service import DNSService, StaticSource

Obj = dict[str, Any]
HOST = "127.0.0.1"
ZONE = "cluster.local"


# -- the synthetic world --------------------------------------------------------------------


def cluster_ip_ip(i: int) -> str:
    return f"10.{96 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"


def synth(n: int) -> tuple[list[Obj], list[Obj]]:
    services: list[Obj] = []
    slices: list[Obj] = []
    for i in range(n):
        ns = f"ns{i % 50}"
        meta = {"namespace": ns, "name": f"svc-{i}", "resourceVersion": "1"}
        ports = [{"name": "http", "port": 80, "protocol": "TCP"},
                 {"name": "metrics", "port": 9090, "protocol": "TCP"}]
        if i % 10 == 9:
            services.append({"metadata": meta, "spec": {
                "clusterIP": "None", "clusterIPs": ["None"], "ports": ports}})
            slices.append({
                "metadata": {"namespace": ns, "name": f"svc-{i}-abcde", "resourceVersion": "1",
                             "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [f"10.244.{(i >> 8) & 255}.{j * 64 + (i & 63)}"],
                               "hostname": f"pod-{j}", "conditions": {"ready": True}}
                              for j in range(3)],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                          {"name": "metrics", "port": 9090, "protocol": "TCP"}]})
        else:
            ips = [cluster_ip_ip(i)]
            if i % 10 == 3:
                ips.append(f"fd00:10:96::{i:x}")
            services.append({"metadata": meta, "spec": {
                "type": "ClusterIP", "clusterIP": ips[0], "clusterIPs": ips, "ports": ports}})
    return services, slices


def query_mix(n: int, count: int = 2000, seed: int = 1) -> list[bytes]:
    """Pre-built query messages (ID 0); the load generator stamps its own IDs."""
    rng = random.Random(seed)
    clusterip = [i for i in range(n) if i % 10 != 9]
    dual = [i for i in range(n) if i % 10 == 3]
    headless_ = [i for i in range(n) if i % 10 == 9]
    out = []
    for _ in range(count):
        r = rng.random()
        if r < 0.40:
            i = rng.choice(clusterip)
            name, rdtype = f"svc-{i}.ns{i % 50}.svc.{ZONE}.", "A"
        elif r < 0.50:
            i = rng.choice(dual or clusterip)
            name, rdtype = f"svc-{i}.ns{i % 50}.svc.{ZONE}.", "AAAA"
        elif r < 0.65:
            i = rng.choice(range(n))
            name, rdtype = f"_http._tcp.svc-{i}.ns{i % 50}.svc.{ZONE}.", "SRV"
        elif r < 0.80:
            i = rng.choice(clusterip)
            a, b, c, d = cluster_ip_ip(i).split(".")
            name, rdtype = f"{d}.{c}.{b}.{a}.in-addr.arpa.", "PTR"
        elif r < 0.90:
            i = rng.choice(headless_ or clusterip)
            name, rdtype = f"svc-{i}.ns{i % 50}.svc.{ZONE}.", "A"
        else:
            name, rdtype = f"missing-{rng.randrange(10**6)}.ns1.svc.{ZONE}.", "A"
        out.append(query(name, rdtype, 0))
    return out


def query(name: str, rdtype: str, qid: int) -> bytes:
    # dnslib, not dnspython: this file is called dns.py, and running it puts bench/ first on
    # sys.path, where "import dns" would find this very file.
    q = dnslib.DNSRecord.question(name, rdtype)
    q.header.id = qid
    return bytes(q.pack())


# -- 1. query throughput --------------------------------------------------------------------


async def serve(n: int, cache: bool) -> None:
    """The ``--serve`` mode: serve the synthetic zone, print the port, run until stdin ends."""
    server = DNSServer.create(ZONE, cache_size=20_000 if cache else 0)
    services, slices = synth(n)
    server.set_zone(build_zone(services, slices))
    _, port = await server.start(HOST, 0)
    print(f"PORT {port}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()
    await server.close()


class LoadClient(asyncio.DatagramProtocol):
    """One closed-loop client: send, wait for the reply, send the next."""

    def __init__(self, queries: list[bytes], deadline: float, latencies: list[float],
                 rcodes: dict[int, int], done: asyncio.Future[None], seed: int) -> None:
        self.queries = queries
        self.deadline = deadline
        self.latencies = latencies
        self.rcodes = rcodes
        self.done = done
        self.rng = random.Random(seed)
        self.qid = self.rng.randrange(65536)
        self.sent_at = 0.0
        self.timeouts = 0
        self.transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.send()

    def send(self) -> None:
        self.qid = (self.qid + 1) & 0xFFFF
        wire = self.qid.to_bytes(2, "big") + self.rng.choice(self.queries)[2:]
        self.sent_at = time.perf_counter()
        assert self.transport is not None
        self.transport.sendto(wire)
        loop = asyncio.get_running_loop()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(1.0, self.lost)

    def lost(self) -> None:
        self.timeouts += 1
        self.send()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if int.from_bytes(data[:2], "big") != self.qid:
            return  # a late reply to a query we gave up on
        now = time.perf_counter()
        self.latencies.append(now - self.sent_at)
        rcode = data[3] & 0xF
        self.rcodes[rcode] = self.rcodes.get(rcode, 0) + 1
        if now < self.deadline:
            self.send()
        else:
            if self._timer is not None:
                self._timer.cancel()
            if not self.done.done():
                self.done.set_result(None)


async def phase(port: int, queries: list[bytes], clients: int, seconds: float
                ) -> tuple[float, list[float], dict[int, int], int]:
    """``clients`` closed-loop clients for ``seconds``: (qps, latencies, rcodes, timeouts)."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    rcodes: dict[int, int] = {}
    started = time.perf_counter()
    deadline = started + seconds
    running = []
    for c in range(clients):
        fut: asyncio.Future[None] = loop.create_future()
        transport, proto = await loop.create_datagram_endpoint(
            functools.partial(LoadClient, queries, deadline, latencies, rcodes, fut, c),
            remote_addr=(HOST, port))
        running.append((transport, proto, fut))
    for transport, _, fut in running:
        await asyncio.wait_for(fut, seconds + 5)
        transport.close()
    elapsed = time.perf_counter() - started
    return (len(latencies) / elapsed, latencies, rcodes,
            sum(proto.timeouts for _, proto, _ in running))


async def load(port: int, queries: list[bytes], clients: int, seconds: float
               ) -> tuple[float, list[float], dict[int, int], int]:
    await phase(port, queries, clients, min(1.0, seconds / 5))  # warm-up: fills the cache
    return await phase(port, queries, clients, seconds)


async def bench_qps(n: int, clients: int, seconds: float, cache: bool) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", "--services", str(n),
        *([] if cache else ["--no-cache"]),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
        port = int(line.split()[1])
        queries = query_mix(n)
        # Correctness spot check before the load.
        loop = asyncio.get_running_loop()
        transport, poller = await loop.create_datagram_endpoint(Poller,
                                                                remote_addr=(HOST, port))
        transport.sendto(query(f"svc-0.ns0.svc.{ZONE}.", "A", 7))
        reply = dnslib.DNSRecord.parse(await asyncio.wait_for(poller.replies.get(), 3))
        transport.close()
        assert [str(rr.rdata) for rr in reply.rr] == [cluster_ip_ip(0)], reply
        qps, lat, rcodes, timeouts = await load(port, queries, clients, seconds)
    finally:
        proc.stdin.close()
        await proc.wait()
    label = "cache on " if cache else "cache off"
    mix = ", ".join(f"{ {0: 'NOERROR', 3: 'NXDOMAIN'}.get(k, k)}={v}"
                    for k, v in sorted(rcodes.items()))
    print(f"  {label}: {qps:8.0f} qps   p50 {pct(lat, 0.5) * 1e6:6.0f} us   "
          f"p99 {pct(lat, 0.99) * 1e6:6.0f} us   ({clients} clients, {len(lat)} answers: "
          f"{mix}; {timeouts} timeouts)")


# -- 2. zone build time ---------------------------------------------------------------------


def bench_build(n: int, rounds: int) -> None:
    services, slices = synth(n)
    full = []
    for _ in range(rounds):
        t = time.perf_counter()
        z = build_zone(services, slices)
        full.append(time.perf_counter() - t)
    by_svc: dict[str, list[Obj]] = {}
    for s in slices:
        by_svc.setdefault(s["metadata"]["labels"]["kubernetes.io/service-name"], []).append(s)
    builder = ZoneBuilder(ZONE)
    for svc in services:
        builder.set_service(svc, by_svc.get(svc["metadata"]["name"], ()))
    builder.zone()
    incr = []
    rng = random.Random(2)
    for _ in range(rounds * 10):
        svc = dict(rng.choice(services))
        t = time.perf_counter()
        builder.set_service(svc, by_svc.get(svc["metadata"]["name"], ()))
        builder.zone()
        incr.append(time.perf_counter() - t)
    print(f"  {n:6d} Services ({len(z):6d} names): full build_zone p50 "
          f"{pct(full, 0.5) * 1e3:7.1f} ms (min {min(full) * 1e3:.1f});   one change + "
          f"snapshot p50 {pct(incr, 0.5) * 1e3:6.2f} ms, p99 {pct(incr, 0.99) * 1e3:6.2f} ms")


# -- 3. change → resolvable -----------------------------------------------------------------


class Poller(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.replies.put_nowait(data)


async def resolvable(transport: asyncio.DatagramTransport, poller: Poller, wire: bytes,
                     want: bytes, timeout: float = 10.0) -> None:
    """Ask every millisecond until a reply contains ``want`` (the packed address)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        transport.sendto(wire)
        try:
            reply = await asyncio.wait_for(poller.replies.get(), 0.5)
        except TimeoutError:
            continue
        if struct.unpack_from("!H", reply, 6)[0] and want in reply[12:]:
            return
        await asyncio.sleep(0.001)
    raise TimeoutError("change never became resolvable")


async def bench_change(n: int, changes: int, debounce: float) -> None:
    services, slices = synth(n)
    server = DNSServer.create(ZONE)
    svc_src, slice_src = StaticSource(services), StaticSource(slices)
    service = DNSService(svc_src, slice_src, server.set_zone, debounce=debounce)
    await server.start(HOST, 0)
    started = time.perf_counter()
    service.start()
    await service.published.wait()
    first = time.perf_counter() - started
    loop = asyncio.get_running_loop()
    transport, poller = await loop.create_datagram_endpoint(Poller,
                                                            remote_addr=server.address)
    rng = random.Random(3)
    added, moved, updates = [], [], []
    try:
        for k in range(changes):
            await asyncio.sleep(rng.uniform(0.0, 0.02))
            if k % 2 == 0:
                # A new Service appears.
                ip = f"10.111.{k >> 8}.{k & 255}"
                name = f"new-{k}"
                wire = query(f"{name}.ns0.svc.{ZONE}.", "A", k)
                want = bytes(int(x) for x in ip.split("."))
                t = time.perf_counter()
                svc_src.put({"metadata": {"namespace": "ns0", "name": name,
                                          "resourceVersion": "1"},
                             "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": []}})
                await resolvable(transport, poller, wire, want)
                added.append(time.perf_counter() - t)
            else:
                # A headless Service's endpoint moves to a new address.
                old = slices[rng.randrange(len(slices))]
                svc_name = old["metadata"]["labels"]["kubernetes.io/service-name"]
                ns = old["metadata"]["namespace"]
                ip = f"10.250.{k >> 8}.{k & 255}"
                new = {**old, "endpoints": [{"addresses": [ip], "hostname": "pod-0",
                                             "conditions": {"ready": True}}]}
                wire = query(f"pod-0.{svc_name}.{ns}.svc.{ZONE}.", "A", k)
                want = bytes(int(x) for x in ip.split("."))
                t = time.perf_counter()
                slice_src.put(new)
                await resolvable(transport, poller, wire, want)
                moved.append(time.perf_counter() - t)
            updates.append(service.stats.last_seconds)
    finally:
        transport.close()
        await service.stop()
        await server.close()
    both = added + moved
    print(f"  {n:6d} Services, debounce {debounce * 1e3:3.0f} ms: change -> resolvable p50 "
          f"{pct(both, 0.5) * 1e3:6.1f} ms, p99 {pct(both, 0.99) * 1e3:6.1f} ms "
          f"(new Service p50 {pct(added, 0.5) * 1e3:.1f}, endpoint move p50 "
          f"{pct(moved, 0.5) * 1e3:.1f}); zone update p50 {pct(updates, 0.5) * 1e3:.2f} ms; "
          f"initial sync -> first zone {first * 1e3:.0f} ms")


# -- main -----------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    print(f"# bench/dns.py on {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs")
    print(f"query throughput, {args.services} Services, UDP on loopback:")
    for cache in (True, False):
        await bench_qps(args.services, args.clients, args.seconds, cache)
    print("zone build time:")
    for n in args.build_sizes:
        bench_build(n, args.rounds)
    print("DNS programming latency (fake informer feed -> server -> UDP query):")
    for n in args.build_sizes:
        for debounce in (0.05, 0.0):
            await bench_change(n, args.changes, debounce)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=5, help="full builds per size")
    ap.add_argument("--changes", type=int, default=60, help="changes per latency run")
    ap.add_argument("--build-sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-cache", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(args.services, not args.no_cache))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
