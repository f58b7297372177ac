"""Data-plane figures: loading and updating the proxy's nftables ruleset in a real kernel.

For each size (default 1k and 10k Services × 5 endpoints, a NodePort on every tenth):

* building the desired ruleset (pure Python) and rendering the full-sync transaction;
* ``nft -f`` of that transaction into a fresh, empty network namespace: wall time and the
  peak RSS of the ``nft`` process (from ``wait4``);
* one-Service changes applied incrementally (an endpoint removed, then added back, several
  rounds): planning time, transaction size, ``nft -f`` time and peak RSS. The median is shown.

In the same run, a kube-proxy-style ruleset (per service: a chain with an anonymous
``numgen ... vmap``, a chain per endpoint; kube-proxy's nftables layout) is loaded for the
kube-proxy sizes (default 1k) and compared with ours at the same size.

Everything happens in namespaces named ``svcnet-t5-b…``, created here and always deleted.
Needs root.

Run: .venv/bin/python bench/proxy.py [--sizes 1000,10000] [--endpoints 5]
     [--kube-proxy-sizes 1000] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from svcnet.proxy.model import NodeInfo
from svcnet.proxy.nft.objects import Chain, Element, Map, Rule, Ruleset, Table
from svcnet.proxy.nft.transaction import plan_sync
from svcnet.proxy.ruleset import ProxyConfig, build_ruleset

NODE = NodeInfo("node-1", ("172.20.0.11",))
Obj = dict[str, Any]


def cluster(n: int, endpoints: int) -> tuple[list[Obj], list[Obj]]:
    """``n`` Services (every tenth a NodePort) with ``endpoints`` endpoints each."""
    services: list[Obj] = []
    slices: list[Obj] = []
    for i in range(n):
        name = f"svc-{i}"
        ip = f"10.{96 + i // 65536}.{i // 256 % 256}.{i % 256}"
        port: Obj = {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}
        svc_type = "ClusterIP"
        if i % 10 == 0:
            svc_type = "NodePort"
            port["nodePort"] = 30000 + i // 10 % 2768
        services.append({"metadata": {"namespace": "bench", "name": name},
                         "spec": {"type": svc_type, "clusterIP": ip, "clusterIPs": [ip],
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


def measure(n: int, endpoints: int, rounds: int) -> dict[str, Any]:
    services, slices = cluster(n, endpoints)
    config = ProxyConfig()
    start = time.perf_counter()
    desired = build_ruleset(services, slices, NODE, config)
    build = time.perf_counter() - start
    start = time.perf_counter()
    text = plan_sync(None, desired).render()
    render = time.perf_counter() - start
    result: dict[str, Any] = {"services": n, "endpoints": endpoints, **desired.stats(),
                              "build_s": build, "render_s": render, "bytes": len(text)}
    with fresh_netns("o") as netns:
        result["load_s"], result["load_rss_kib"] = nft_apply(netns, text)
        applied = desired
        plans, applies, rss, sizes = [], [], [], []
        victim = n // 2
        for r in range(rounds * 2):
            changed = copy.deepcopy(slices)
            if r % 2 == 0:
                changed[victim]["endpoints"].pop()
            start = time.perf_counter()
            wanted = build_ruleset(services, changed, NODE, config)
            tx = plan_sync(applied, wanted)
            delta = tx.render()
            plans.append(time.perf_counter() - start)
            assert not tx.full, "a one-service change must be incremental"
            seconds, peak = nft_apply(netns, delta)
            applies.append(seconds)
            rss.append(peak)
            sizes.append(sum(tx.counts().values()))
            applied = wanted
        result.update(update_plan_s=statistics.median(plans),
                      update_apply_s=statistics.median(applies),
                      update_rss_kib=statistics.median(rss),
                      update_ops=statistics.median(sizes))
    return result


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
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--endpoints", type=int, default=5)
    ap.add_argument("--kube-proxy-sizes", default="1000")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/proxy.py needs root (it creates network namespaces)")
    ours = [measure(int(n), args.endpoints, args.rounds) for n in args.sizes.split(",") if n]
    theirs = [measure_kube_proxy(int(n), args.endpoints)
              for n in args.kube_proxy_sizes.split(",") if n]
    if args.json:
        print(json.dumps({"svcnet": ours, "kube_proxy_style": theirs}, indent=2))
        return
    nft_version = subprocess.run(["nft", "--version"], capture_output=True, text=True,
                                 check=False).stdout
    print(f"machine: {os.cpu_count()} cores, kernel {platform.release()}, "
          f"{nft_version.strip()}, Python {platform.python_version()}")
    print()
    print("| layout | Services × eps | chains | elements | script MB | build + render (s) "
          "| `nft -f` load (s) | nft peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in ours:
        print(f"| svcnet grouped | {r['services']} × {r['endpoints']} | {r['chains']} "
              f"| {r['elements']} | {r['bytes'] / 1e6:.1f} | {r['build_s']:.2f} + "
              f"{r['render_s']:.2f} | {r['load_s']:.2f} | {r['load_rss_kib'] / 1024:.0f} |")
    for r in theirs:
        print(f"| kube-proxy style | {r['services']} × {r['endpoints']} | {r['chains']} "
              f"| {r['elements']} | {r['bytes'] / 1e6:.1f} | – | {r['load_s']:.2f} "
              f"| {r['load_rss_kib'] / 1024:.0f} |")
    print()
    print("| one-Service change | plan (ms) | element ops | `nft -f` apply (ms) "
          "| nft peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    for r in ours:
        print(f"| {r['services']} Services | {r['update_plan_s'] * 1000:.0f} "
              f"| {r['update_ops']:.0f} | {r['update_apply_s'] * 1000:.1f} "
              f"| {r['update_rss_kib'] / 1024:.0f} |")
    by_size = {r["services"]: r for r in ours}
    for r in theirs:
        if r["services"] in by_size:
            ratio = r["load_s"] / by_size[r["services"]]["load_s"]
            print(f"\nkube-proxy-style load at {r['services']} Services: {ratio:.1f}× ours")


if __name__ == "__main__":
    main()
