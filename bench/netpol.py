"""The cost of NetworkPolicy enforcement's control path: planning a node's table and loading it
into the kernel, as the cluster grows.

The cluster: ``--pods`` pods over ``--namespaces`` namespaces and 2 nodes (this node holds
half), each namespace with the three policies a typical application carries: deny all
ingress, allow ingress from its own namespace on a named port, and allow egress to DNS only
(through svcnet's DNS server as the kube-dns peer). So every pod of this node is isolated both
ways and its ingress peers are its namespace's pods. Per size the bench prints:

* ``plan ms``: :func:`svcnet.netpol.plan.plan_table` (pure; median of ``--rounds``);
* ``script KiB``: the size of the ``nft -f`` script;
* ``load ms``: applying it to a scratch network namespace with ``nft -f`` (the whole table
  replaced in one transaction, as every sync does; median of ``--rounds``);
* ``one pod ms``: the sync after one pod of the cluster changes (plan and load again).

Needs root, ``ip`` and ``nft``; the namespace ``svcnet-t6-b...`` is created here and always
deleted.

Run: .venv/bin/python bench/netpol.py [--sizes 100,1000,5000] [--namespaces 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import time
from typing import Any

from svcnet.netpol.plan import dns_peers, plan_table
from svcnet.proxy.nft.nft import SubprocessNft

Obj = dict[str, Any]
NODE = "node-1"
DNS_SLICE: Obj = {"metadata": {"namespace": "kube-system", "name": "kube-dns", "labels": {
    "endpointslice.kubernetes.io/managed-by": "svcnet-dns"}},
    "endpoints": [{"addresses": ["172.20.0.1"]}],
    "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}


def cluster(pods: int, namespaces: int) -> tuple[list[Obj], list[Obj], dict[str, dict[str, str]]]:
    out = []
    for i in range(pods):
        ns = f"app-{i % namespaces}"
        out.append({
            "metadata": {"namespace": ns, "name": f"pod-{i}", "labels": {"app": ns}},
            "spec": {"nodeName": f"node-{1 + i % 2}", "containers": [
                {"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running",
                       "podIPs": [{"ip": f"10.{244 + i // 65536}.{i // 256 % 256}.{i % 256}"}]}})
    policies = []
    for n in range(namespaces):
        ns = f"app-{n}"
        policies += [
            {"metadata": {"namespace": ns, "name": "deny"},
             "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}},
            {"metadata": {"namespace": ns, "name": "same-namespace"},
             "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [
                 {"from": [{"podSelector": {}}], "ports": [{"port": "http"}]}]}},
            {"metadata": {"namespace": ns, "name": "dns-only"},
             "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
                 {"to": [{"namespaceSelector": {}, "podSelector": {
                     "matchLabels": {"k8s-app": "kube-dns"}}}],
                  "ports": [{"port": 53, "protocol": "UDP"}]}]}}]
    return out, policies, {f"app-{n}": {} for n in range(namespaces)}


def median_ms(fn: Any, rounds: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def measure(nft: SubprocessNft, size: int, namespaces: int, rounds: int) -> str:
    """One row: plan, script size, load, and the sync after one pod changes."""
    pods, policies, labels = cluster(size, namespaces)
    peers = dns_peers([DNS_SLICE])

    def plan() -> str:
        return plan_table(policies, pods, labels, NODE, extra_peers=peers)

    plan_ms, script = median_ms(plan, rounds)
    load_ms, _ = median_ms(lambda: nft.apply(script), rounds)
    pods[0]["metadata"]["labels"] = {"app": "moved"}
    change_ms, _ = median_ms(lambda: nft.apply(plan()), rounds)
    return (f"{size:>6} {len(policies):>8} {plan_ms:>9.1f} {len(script) / 1024:>10.1f} "
            f"{load_ms:>9.1f} {change_ms:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    netns = f"svcnet-t6-b{secrets.token_hex(2)}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        nft = SubprocessNft(netns)
        print(f"{'pods':>6} {'policies':>8} {'plan ms':>9} {'script KiB':>10} {'load ms':>9} "
              f"{'one pod ms':>10}")
        for size in (int(s) for s in args.sizes.split(",") if s):
            print(measure(nft, size, args.namespaces, args.rounds), flush=True)
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)


if __name__ == "__main__":
    main()
