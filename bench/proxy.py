"""Control-path figures of the service proxy: loading and changing its nftables table in a
real kernel (issue 5). The data path's figures (requests/s through a ClusterIP) are in
``bench/dataplane.py``.

For each size (default 1k, 5k, 10k and 30k Services × 5 endpoints, a NodePort on every tenth
of the first 27,680):

* full sync: building the desired table in Python (per-Service pieces, as the proxier does),
  rendering the transaction, and ``nft -f`` of it into a fresh network namespace: wall time,
  the peak RSS of the ``nft`` process (from ``wait4``) and the growth of this process's RSS;
* an agent restart: a new proxier adopts the loaded table (one ``nft -j list table``);
* one change until the rule is live: an endpoint removed or added back, and one Service added,
  through the proxier's change tracking and libnftables (what the node agent runs); median and
  maximum over ``--rounds``;
* at ``--latency-size`` Services: network programming latency under ``--latency-rate``
  changes/s through the agent's bounded-frequency runner (see :func:`programming_latency`).

Dual stack (``--dual-size``, default off): at that size the same cluster is synced IPv4-only
(one ``ip`` table) and dual-stack (every Service RequireDualStack with an IPv6 ClusterIP and an
IPv6 EndpointSlice: an ``ip`` and an ``ip6`` table, one proxier each, as the node agent runs
them): full sync (build + render + ``nft -f``) and one endpoint removed/added back (in both
slices of the Service for dual stack), with the dual/IPv4 ratios of the same run.

In the same run, a kube-proxy-style table (per service: a chain with an anonymous
``numgen ... vmap``, a chain per endpoint; kube-proxy's nftables layout) is loaded for the
``--kube-proxy-sizes`` (default 1k and 5k) and compared with ours at the same size.

Everything happens in namespaces named ``svcnet-t5-b…``, created here and always deleted.
Needs root.

Run: .venv/bin/python bench/proxy.py [--sizes 1000,5000,10000,30000] [--endpoints 5]
     [--kube-proxy-sizes 1000,5000] [--rounds 10] [--latency-size 10000] [--dual-size N]
     [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from svcnet.proxy.changes import StaticSource, TableIndex, service_key
from svcnet.proxy.model import NodeInfo
from svcnet.proxy.nft.libnft import NodeNft
from svcnet.proxy.nft.objects import Chain, Element, Map, Rule, Ruleset, Table
from svcnet.proxy.nft.transaction import plan_sync
from svcnet.proxy.proxier import Proxier
from svcnet.proxy.ruleset import ProxyConfig
from svcnet.proxy.runner import BoundedFrequencyRunner
from svcnet.util.gcpause import gc_paused

NODE = NodeInfo("node-1", ("172.20.0.11", "fd00:172:20::11"))
CLUSTER_CIDRS = {"IPv4": ("10.244.0.0/16",), "IPv6": ("fd00:10:244::/48",)}
Obj = dict[str, Any]


def cluster(n: int, endpoints: int, *, first: int = 0, dual: bool = False
            ) -> tuple[list[Obj], list[Obj]]:
    """Services ``first``..``n-1`` with ``endpoints`` endpoints each; every tenth is a
    NodePort, up to the 2768 ports of the NodePort range (no two Services conflict). With
    ``dual``, every Service also has an IPv6 ClusterIP and an IPv6 EndpointSlice."""
    services: list[Obj] = []
    slices: list[Obj] = []
    for i in range(first, n):
        name = f"svc-{i}"
        ip = f"10.{96 + i // 65536}.{i // 256 % 256}.{i % 256}"
        port: Obj = {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}
        svc_type = "ClusterIP"
        if i % 10 == 0 and i // 10 < 2768:  # (the NodePort range holds 2768 ports)
            svc_type = "NodePort"
            port["nodePort"] = 30000 + i // 10
        ips = [ip, f"fd00:10:96::{i:x}"] if dual else [ip]
        services.append({"metadata": {"namespace": "bench", "name": name},
                         "spec": {"type": svc_type, "clusterIP": ip, "clusterIPs": ips,
                                  "ports": [port]}})
        eps = []
        for j in range(endpoints):
            k = i * endpoints + j
            eps.append({"addresses": [f"10.{244 + k // 65536 % 8}.{k // 256 % 256}.{k % 256}"],
                        "conditions": {"ready": True},
                        "nodeName": "node-1" if j == 0 else f"node-{j + 1}"})
        slices.append({"metadata": {"namespace": "bench", "name": f"{name}-x",
                                    "labels": {"kubernetes.io/service-name": name}},
                       "addressType": "IPv4",
                       "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                       "endpoints": eps})
        if dual:
            eps6 = [{**ep, "addresses": [f"fd00:10:244::{i * endpoints + j:x}"]}
                    for j, ep in enumerate(eps)]
            slices.append({**slices[-1], "metadata": {
                "namespace": "bench", "name": f"{name}-y",
                "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv6", "endpoints": eps6})
    return services, slices


def kube_proxy_style(services: list[Obj], slices: list[Obj]) -> Ruleset:
    """kube-proxy's nftables layout: service-ips vmap → chain per service with an anonymous
    ``numgen random mod N vmap`` → chain per endpoint (masquerade check, DNAT)."""
    chains = [
        Chain("nat-prerouting", (Rule("jump services"),), "nat", "prerouting", -100, "accept"),
        Chain("nat-output", (Rule("jump services"),), "nat", "output", -100, "accept"),
        Chain("services", (Rule("ip daddr . meta l4proto . th dport vmap @service-ips"),)),
        Chain("mark-for-masquerade", (Rule("meta mark set meta mark | 0x00004000"),)),
    ]
    elements = []
    for i, (svc, eps) in enumerate(zip(services, slices, strict=True)):
        ip = svc["spec"]["clusterIP"]
        endpoint_chains = []
        for j, ep in enumerate(eps["endpoints"]):
            addr = ep["addresses"][0]
            name = f"endpoint-{i}-{j}"
            endpoint_chains.append(name)
            chains.append(Chain(name, (Rule(f"ip saddr {addr} jump mark-for-masquerade"),
                                       Rule(f"meta l4proto tcp dnat to {addr}:8080"))))
        vmap = ", ".join(f"{j} : goto {c}" for j, c in enumerate(endpoint_chains))
        chains.append(Chain(f"service-{i}", (
            Rule(f"ip daddr {ip} tcp dport 80 ip saddr != 10.244.0.0/16 "
                 "jump mark-for-masquerade"),
            Rule(f"numgen random mod {len(endpoint_chains)} vmap {{ {vmap} }}"))))
        elements.append(Element((ip, "tcp", "80"), (f"goto service-{i}",)))
    service_ips = Map("service-ips", "ipv4_addr . inet_proto . inet_service",
                      elements=tuple(elements))
    return Ruleset(Table("ip", "kubeproxy"), tuple(chains), (), (service_ips,))


@contextmanager
def fresh_netns(tag: str) -> Iterator[str]:
    name = f"svcnet-t5-b{secrets.token_hex(1)}{tag}"[:15]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


# Spawns nft from a small helper process: a child forked from *this* (large) Python process
# would report this process's resident pages as its own peak RSS until it execs.
_SPAWN = """
import json, os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = proc.stderr.read()
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"seconds": time.perf_counter() - start, "maxrss": usage.ru_maxrss,
                  "rc": os.waitstatus_to_exitcode(status), "stderr": err.decode()[:2000]}))
"""


def nft_apply(netns: str, text: str) -> tuple[float, int]:
    """Run ``nft -f`` in ``netns``: (seconds, peak RSS of nft in KiB)."""
    with tempfile.NamedTemporaryFile("w", suffix=".nft") as script:
        script.write(text)
        script.flush()
        # `ip netns exec` execs nft in place (no fork), so wait4 reports nft's own usage.
        done = subprocess.run([sys.executable, "-c", _SPAWN, "ip", "netns", "exec", netns,
                               "nft", "-f", script.name],
                              capture_output=True, text=True, check=True)
    report = json.loads(done.stdout)
    if report["rc"] != 0:
        raise RuntimeError(f"nft failed: {report['stderr']}")
    return float(report["seconds"]), int(report["maxrss"])


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(n: int, endpoints: int, rounds: int, *, latency_size: int = 0,
            latency_rate: float = 20.0, latency_seconds: float = 15.0) -> dict[str, Any]:
    services, slices = cluster(n, endpoints)
    config = ProxyConfig()
    rss_before = rss_mib()
    with gc_paused():  # as the Proxier builds
        start = time.perf_counter()
        index = TableIndex(NODE, config)
        src = StaticSource(services, slices)
        index.commit(index.compute(src, src.keys()))
        desired = index.ruleset()
        build = time.perf_counter() - start
        start = time.perf_counter()
        text = plan_sync(None, desired).render()
        render = time.perf_counter() - start
    result: dict[str, Any] = {"services": n, "endpoints": endpoints, **desired.stats(),
                              "build_s": build, "render_s": render, "bytes": len(text),
                              "python_rss_mib": rss_mib() - rss_before}
    del index, src
    with fresh_netns("o") as netns:
        result["load_s"], result["load_rss_kib"] = nft_apply(netns, text)
        del text
        runner = NodeNft(netns)
        proxier = Proxier(runner, config)
        source = StaticSource(services, slices)
        # The agent restarts: it adopts the loaded table (reads it back once).
        start = time.perf_counter()
        adopted = proxier.sync_source(source, NODE)
        result["adopt_s"] = time.perf_counter() - start
        assert adopted.adopted, "the loaded table must be adopted"
        victim = f"bench/svc-{n // 2}"
        endpoint_changes, adds = [], []
        for r in range(rounds * 2):
            eps = source.slices_by_key[victim][0]["endpoints"]
            if r % 2 == 0:
                removed = eps.pop()
            else:
                eps.append(removed)
            start = time.perf_counter()
            done = proxier.sync_source(source, NODE, {victim})
            endpoint_changes.append(time.perf_counter() - start)
            assert done.fast and done.changed and not done.full
        for _ in range(rounds):
            extra_services, extra_slices = cluster(n + 1, endpoints, first=n)
            key = service_key(extra_services[0])
            source.services_by_key[key] = extra_services[0]
            source.slices_by_key[key] = [*extra_slices]
            start = time.perf_counter()
            done = proxier.sync_source(source, NODE, {key})
            adds.append(time.perf_counter() - start)
            assert done.fast and done.changed
            del source.services_by_key[key], source.slices_by_key[key]
            proxier.sync_source(source, NODE, {key})
        result.update(endpoint_change_s=statistics.median(endpoint_changes),
                      endpoint_change_max_s=max(endpoint_changes),
                      service_add_s=statistics.median(adds),
                      service_add_max_s=max(adds))
        if n == latency_size:
            result["programming"] = asyncio.run(programming_latency(
                proxier, source, n, rate=latency_rate, seconds=latency_seconds))
        runner.close()
    return result


async def programming_latency(proxier: Proxier, source: StaticSource, n: int, *,
                              rate: float, seconds: float) -> dict[str, Any]:
    """API change -> rule live, as the node agent does it: each change (an endpoint of a
    random Service removed or added back) is noted by key, as the agent's informer handlers
    do; a :class:`BoundedFrequencyRunner` (the agent's 50 ms minimum interval) runs
    ``sync_source`` in a worker thread with the keys collected since the last sync. The API
    server and watch delivery are not in this path (issue 3's figures: watch p99 22 ms)."""
    rng = random.Random(5)
    pending: dict[str, float] = {}
    latencies: list[float] = []
    syncs = 0

    async def sync(full: bool) -> None:
        nonlocal syncs
        batch = dict(pending)
        pending.clear()
        await asyncio.to_thread(proxier.sync_source, source, NODE, set(batch))
        now = time.perf_counter()
        latencies.extend(now - at for at in batch.values())
        syncs += 1

    runner = BoundedFrequencyRunner(sync, min_interval=0.05, retry_interval=0.05)
    task = asyncio.create_task(runner.run_forever())
    await asyncio.sleep(0.2)  # the runner's first (full) sync: nothing to write
    removed: dict[str, Obj] = {}
    start = time.perf_counter()
    count = int(rate * seconds)
    for i in range(count):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        key = f"bench/svc-{rng.randrange(n)}"
        eps = source.slices_by_key[key][0]["endpoints"]
        if key in removed:
            eps.append(removed.pop(key))
        else:
            removed[key] = eps.pop()
        pending.setdefault(key, time.perf_counter())
        runner.request()
    while pending:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the last sync finishes
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    latencies.sort()
    return {"changes": count, "rate": rate, "syncs": syncs,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
            "max_ms": latencies[-1] * 1000}


def measure_families(n: int, endpoints: int, rounds: int, *, dual: bool) -> dict[str, Any]:
    """Full sync and one endpoint change of an IPv4-only or a dual-stack cluster of ``n``
    Services, one proxier per family (see the module docstring)."""
    services, slices = cluster(n, endpoints, dual=dual)
    families = ("IPv4", "IPv6") if dual else ("IPv4",)
    configs = [ProxyConfig(family=f, cluster_cidrs=CLUSTER_CIDRS[f]) for f in families]
    with gc_paused():
        start = time.perf_counter()
        src = StaticSource(services, slices)
        tables = []
        for config in configs:
            index = TableIndex(NODE, config)
            index.commit(index.compute(src, src.keys()))
            tables.append(index.ruleset())
        build = time.perf_counter() - start
        start = time.perf_counter()
        text = "".join(plan_sync(None, t).render() for t in tables)
        render = time.perf_counter() - start
    result: dict[str, Any] = {"services": n, "dual": dual, "build_s": build, "render_s": render,
                              "bytes": len(text),
                              "elements": sum(t.stats()["elements"] for t in tables)}
    with fresh_netns("d" if dual else "4") as netns:
        result["load_s"], _ = nft_apply(netns, text)
        del text
        runner = NodeNft(netns)
        proxiers = [Proxier(runner, config) for config in configs]
        source = StaticSource(services, slices)
        for proxier in proxiers:
            assert proxier.sync_source(source, NODE).adopted
        victim = f"bench/svc-{n // 2}"
        removed: list[Obj] = []
        changes = []
        for r in range(rounds * 2):
            for s in source.slices_by_key[victim]:
                if r % 2 == 0:
                    removed.append(s["endpoints"].pop())
                else:
                    s["endpoints"].append(removed.pop(0))
            start = time.perf_counter()
            done = [p.sync_source(source, NODE, {victim}) for p in proxiers]
            changes.append(time.perf_counter() - start)
            assert all(d.fast and d.changed and not d.full for d in done)
        runner.close()
    result.update(change_s=statistics.median(changes), change_max_s=max(changes))
    return result


def print_families(four: dict[str, Any], dual: dict[str, Any]) -> None:
    print()
    print(f"| {four['services']} Services × eps | elements | script MB | build + render (s) "
          "| `nft -f` load (s) | full sync total (s) | one endpoint change, median / max (ms) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in (("IPv4 only (`ip svcnet`)", four),
                    ("dual stack (`ip` + `ip6 svcnet`)", dual)):
        r["total_s"] = r["build_s"] + r["render_s"] + r["load_s"]
        print(f"| {name} | {r['elements']} | {r['bytes'] / 1e6:.1f} | {r['build_s']:.2f} + "
              f"{r['render_s']:.2f} | {r['load_s']:.2f} | {r['total_s']:.2f} "
              f"| {r['change_s'] * 1000:.2f} / {r['change_max_s'] * 1000:.2f} |")
    print(f"\ndual stack / IPv4 only: full sync {dual['total_s'] / four['total_s']:.2f}×, "
          f"one endpoint change (both families) {dual['change_s'] / four['change_s']:.2f}×")


def measure_kube_proxy(n: int, endpoints: int) -> dict[str, Any]:
    services, slices = cluster(n, endpoints)
    ruleset = kube_proxy_style(services, slices)
    text = plan_sync(None, ruleset).render()
    with fresh_netns("k") as netns:
        seconds, peak = nft_apply(netns, text)
    return {"services": n, "endpoints": endpoints, **ruleset.stats(), "bytes": len(text),
            "load_s": seconds, "load_rss_kib": peak}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,5000,10000,30000")
    ap.add_argument("--endpoints", type=int, default=5)
    ap.add_argument("--kube-proxy-sizes", default="1000,5000")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--latency-size", type=int, default=10000)
    ap.add_argument("--latency-rate", type=float, default=20.0)
    ap.add_argument("--latency-seconds", type=float, default=15.0)
    ap.add_argument("--dual-size", type=int, default=0,
                    help="also compare IPv4-only and dual-stack tables at this size")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/proxy.py needs root (it creates network namespaces)")
    ours = [measure(int(n), args.endpoints, args.rounds, latency_size=args.latency_size,
                    latency_rate=args.latency_rate, latency_seconds=args.latency_seconds)
            for n in args.sizes.split(",") if n]
    theirs = [measure_kube_proxy(int(n), args.endpoints)
              for n in args.kube_proxy_sizes.split(",") if n]
    families = [measure_families(args.dual_size, args.endpoints, args.rounds, dual=d)
                for d in (False, True)] if args.dual_size else []
    if args.json:
        print(json.dumps({"svcnet": ours, "kube_proxy_style": theirs,
                          "families": families}, indent=2))
        return
    nft_version = subprocess.run(["nft", "--version"], capture_output=True, text=True,
                                 check=False).stdout
    print(f"machine: {os.cpu_count()} cores, kernel {platform.release()}, "
          f"{nft_version.strip()}, Python {platform.python_version()}")
    print()
    print("| full sync | Services × eps | chains | elements | script MB | Python build + render "
          "(s) | `nft -f` load (s) | total (s) | nft peak RSS (MiB) | Python RSS growth (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in ours:
        total = r["build_s"] + r["render_s"] + r["load_s"]
        print(f"| svcnet | {r['services']} × {r['endpoints']} | {r['chains']} "
              f"| {r['elements']} | {r['bytes'] / 1e6:.1f} | {r['build_s']:.2f} + "
              f"{r['render_s']:.2f} | {r['load_s']:.2f} | {total:.2f} "
              f"| {r['load_rss_kib'] / 1024:.0f} | {r['python_rss_mib']:.0f} |")
    for r in theirs:
        print(f"| kube-proxy style | {r['services']} × {r['endpoints']} | {r['chains']} "
              f"| {r['elements']} | {r['bytes'] / 1e6:.1f} | – | {r['load_s']:.2f} | – "
              f"| {r['load_rss_kib'] / 1024:.0f} | – |")
    by_size = {r["services"]: r for r in ours}
    for r in theirs:
        if r["services"] in by_size:
            ratio = r["load_s"] / by_size[r["services"]]["load_s"]
            print(f"\nkube-proxy-style load at {r['services']} Services: {ratio:.1f}× ours")
    print()
    print("| one change, rule live (plan + libnftables apply) | median (ms) | max (ms) "
          "| agent restart: adopt the table (s) |")
    print("|---|---|---|---|")
    for r in ours:
        print(f"| {r['services']} Services: one endpoint removed/added "
              f"| {r['endpoint_change_s'] * 1000:.2f} | {r['endpoint_change_max_s'] * 1000:.2f} "
              f"| {r['adopt_s']:.2f} |")
        print(f"| {r['services']} Services: one Service added "
              f"| {r['service_add_s'] * 1000:.2f} | {r['service_add_max_s'] * 1000:.2f} | |")
    if families:
        print_families(*families)
    for r in ours:
        p = r.get("programming")
        if p:
            print(f"\nnetwork programming latency, {r['services']} Services, "
                  f"{p['rate']:.0f} changes/s for {p['changes']} changes ({p['syncs']} syncs): "
                  f"p50 {p['p50_ms']:.1f} ms, p99 {p['p99_ms']:.1f} ms, max {p['max_ms']:.1f} ms")


if __name__ == "__main__":
    main()
