"""The cost of the data plane's traffic counters: new connections/s through a ClusterIP with
``ProxyConfig.traffic_counters`` on vs off, in one run.

The topology, server, client, load generator and Service sets are bench/dataplane.py's (a node
netns with the Proxier's table, a server pod and a client pod on its bridge; nginx; ``wrk`` with
``Connection: close``, so every request is a new connection and goes through the nat hook and
the ``@backends`` lookup whose element carries the counter); see its docstring. Here the
Proxier is switched between the two configurations (a full sync each time: the table's layout
differs) in ABBA order, ``--rounds`` times each, and the figure is the median of the
per-round ratios on/off (a round's two runs are adjacent in time). After each counted run the
bench's own backends element is read back (``nft -j list map``, svcnet.proxy.counters) and
compared with the requests wrk completed, to show the counters count what they should.

Needs root, ``ip``, ``nft``, ``taskset``, ``wrk`` (and nginx-light for the nginx server), as
bench/dataplane.py does; namespaces ``svcnet-t5-d...`` are created here and always deleted.

Run: .venv/bin/python bench/counters.py [--services 1000] [--seconds 2] [--rounds 8]
     [--connections 32] [--client auto|pod|netns] [--server auto|nginx|python] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import time
from typing import Any

from dataplane import (  # bench/dataplane.py (this directory is first on sys.path)
    SERVER_IP,
    SERVICE_IP,
    SERVICE_PORT,
    SETTLE_S,
    BenchError,
    Topology,
    machine,
    service_set,
    sh,
    topology,
)
from proxy import NODE, Obj  # bench/proxy.py

from svcnet.proxy.counters import counter_rows
from svcnet.proxy.nft.nft import SubprocessNft
from svcnet.proxy.proxier import Proxier
from svcnet.proxy.ruleset import BACKENDS, ProxyConfig


def program(topo: Topology, counters: bool, services: list[Obj], slices: list[Obj]) -> float:
    """Program the table with counters on or off; the sync's seconds."""
    proxier = Proxier(SubprocessNft(topo.node), ProxyConfig(traffic_counters=counters),
                      stale_chain_delay=0.0)
    result = proxier.sync(services, slices, NODE)
    time.sleep(SETTLE_S)
    probe = topo.latency(SERVICE_IP, SERVICE_PORT, count=3, warmup=0)
    if probe["error_count"]:
        raise BenchError(f"the ClusterIP does not answer (counters {counters}): "
                         f"{probe['errors']}")
    return float(result.duration)


def counted(topo: Topology) -> int:
    """The bench Service's connections counted in @backends so far."""
    listing = sh("ip", "netns", "exec", topo.node, "nft", "-j", "list", "map", "ip", "svcnet",
                 BACKENDS).stdout
    return sum(row[5] for row in counter_rows([listing])
               if (row[0], row[2], row[3]) == (SERVICE_IP, str(SERVICE_PORT), SERVER_IP))


def run(topo: Topology, services: list[Obj], slices: list[Obj], rounds: int, seconds: float,
        connections: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    syncs: list[float] = []
    checks: list[tuple[int, int]] = []
    current: str | None = None
    for r in range(rounds):
        for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
            if mode != current:
                syncs.append(program(topo, mode == "on", services, slices))
                topo.wrk(SERVICE_IP, SERVICE_PORT, seconds=1, connections=connections,
                         close=True)  # warm-up, not recorded
                current = mode
            before = counted(topo) if mode == "on" else 0
            result = topo.wrk(SERVICE_IP, SERVICE_PORT, seconds=seconds,
                              connections=connections, close=True)
            runs[mode].append(result)
            if mode == "on":
                checks.append((counted(topo) - before, result["requests"]))
    paired = [a["rps"] / b["rps"] for a, b in zip(runs["on"], runs["off"], strict=True)]
    return {"on_rps": statistics.median(r["rps"] for r in runs["on"]),
            "off_rps": statistics.median(r["rps"] for r in runs["off"]),
            "ratio": statistics.median(paired), "paired_ratios": paired,
            "errors": sum(r["errors"] for rs in runs.values() for r in rs),
            "foreign_cores_mean": statistics.fmean(r["foreign_cores"] for rs in runs.values()
                                                   for r in rs),
            "full_sync_seconds_median": statistics.median(syncs),
            "counted_vs_requests": checks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--endpoints", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--client", choices=("auto", "pod", "netns"), default="auto")
    ap.add_argument("--server", choices=("auto", "nginx", "python"), default="auto")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/counters.py needs root (it creates network namespaces)")
    missing = [t for t in ("ip", "nft", "taskset", "wrk") if shutil.which(t) is None]
    if missing:
        sys.exit(f"bench/counters.py needs {', '.join(missing)} (Debian: apt-get install -y "
                 "wrk nginx-light)")
    server_kind = args.server
    if server_kind == "auto":
        server_kind = "nginx" if shutil.which("nginx") else "python"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    services, slices = service_set(args.services, args.endpoints)
    with topology(args.client, server_kind) as topo:
        result = run(topo, services, slices, args.rounds, args.seconds, args.connections)
        client = topo.client_mode
    report = {"machine": machine(server_kind),
              "config": {"services": len(services), "seconds": args.seconds,
                         "rounds": args.rounds, "connections": args.connections,
                         "client": client, "server": server_kind},
              **result}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    m, cfg = report["machine"], report["config"]
    print(f"machine: {m['cores']} cores, kernel {m['kernel']}, nftables {m['nft']}, "
          f"Python {m['python']}; wrk {m['wrk']}, server {m['server']}; client: {client}")
    print(f"| {k_services(cfg['services'])} Services; {cfg['rounds']} × {cfg['seconds']:g} s "
          "runs per cell, ABBA | counters on (median) | counters off (median) | ratio | aim |")
    print("|---|---|---|---|---|")
    print(f"| new connections/s through a ClusterIP: connect, 1 request, close "
          f"({cfg['connections']} conns) | {report['on_rps']:,.0f} | {report['off_rps']:,.0f} "
          f"| {report['ratio']:.3f} | ≥ 0.97 |")
    print("per-round ratios: " + " ".join(f"{x:.3f}" for x in report["paired_ratios"]))
    print("counted by @backends vs requests wrk completed, per counted run: "
          + ", ".join(f"{c}/{r}" for c, r in report["counted_vs_requests"]))
    print(f"errors: {report['errors']}; other work on the machine, cores (mean): "
          f"{report['foreign_cores_mean']:.2f}; full sync on a switch (median): "
          f"{report['full_sync_seconds_median']:.2f} s")


def k_services(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (namespaces deleted)")
