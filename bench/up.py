"""Local-cluster figures: `svcnet up` to all-ready, `svcnet down`, DNS from inside a pod.

* `svcnet up --detach -f examples/frontend-backend.yaml` (2 nodes) until every pod is ready and
  every NodePort answers, and `svcnet down`, over several runs;
* DNS queries/s for in-cluster names from a pod (several concurrent UDP clients inside the
  frontend pod's network namespace, asking for the backend Service's A record);
* DNS programming latency: a Service created through the API until its name resolves from a
  pod, p50/p99 over many Services.

Needs root. Run: .venv/bin/python bench/up.py [--runs 3] [--dns-seconds 5] [--services 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SVCNET = [sys.executable, "-m", "svcnet.cli.main"]


def run(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([*SVCNET, *args], cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


DNS_LOAD = r"""
import socket, struct, sys, threading, time
name, seconds, clients = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
def query(qid):
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack("!HH", 1, 1)
counts, lat = [0] * clients, []
def worker(i):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    s.connect(("10.96.0.10", 53))
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        t = time.perf_counter()
        s.send(query(n & 0xFFFF))
        s.recv(512)
        lat.append(time.perf_counter() - t)
        n += 1
    counts[i] = n
threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
lat.sort()
print(sum(counts) / seconds, lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000)
"""

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dns-seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--services", type=int, default=30)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/up.py needs root")
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, SVCNET_HOME=home)
        ups, downs = [], []
        for i in range(args.runs):
            ups.append(run(["up", "--detach", "-f", "examples/frontend-backend.yaml"], env))
            if i < args.runs - 1:
                downs.append(run(["down"], env))
        kcfg = Path(home) / "svcnet" / "kubeconfig"
        try:
            load = subprocess.run(
                [*SVCNET, "exec", "frontend", "--kubeconfig", str(kcfg), "--", sys.executable,
                 "-c", DNS_LOAD, "backend.default.svc.cluster.local", str(args.dns_seconds),
                 str(args.clients)], cwd=ROOT, env=env, check=True, capture_output=True,
                text=True).stdout.split()
            qps, p50, p99 = (float(x) for x in load)
            latencies = dns_programming(kcfg, env, args.services)
        finally:
            downs.append(run(["down"], env))
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")
    print()
    print("| figure | value |")
    print("|---|---|")
    print(f"| `svcnet up` to all-ready, example (a), 2 nodes ({args.runs} runs) | "
          f"median {statistics.median(ups):.2f} s (min {min(ups):.2f}, max {max(ups):.2f}) |")
    print(f"| `svcnet down` ({len(downs)} runs) | median {statistics.median(downs):.2f} s |")
    print(f"| DNS from a pod, {args.clients} UDP clients, in-cluster A record | "
          f"{qps:,.0f} queries/s (p50 {p50:.2f} ms, p99 {p99:.2f} ms) |")
    lat = sorted(latencies)
    print(f"| DNS programming: Service created -> resolvable from a pod ({len(lat)} Services) "
          f"| p50 {lat[len(lat) // 2] * 1000:.0f} ms, p99 {lat[int(len(lat) * .99)] * 1000:.0f}"
          " ms |")


def dns_programming(kcfg: Path, env: dict[str, str], count: int) -> list[float]:
    """Create Services one by one through the API; a resolver loop in a pod reports when each
    name resolves. Latency = resolved - create acknowledged (the create's round trip is a few
    ms, so this is a slight underestimate of create-start to resolvable)."""
    import base64
    import json
    import ssl
    import urllib.request

    import yaml

    cfg = yaml.safe_load(kcfg.read_text())
    server = cfg["clusters"][0]["cluster"]["server"]
    ctx = ssl.create_default_context(cadata=base64.b64decode(
        cfg["clusters"][0]["cluster"]["certificate-authority-data"]).decode())
    token = cfg["users"][0]["user"]["token"]
    results = []
    for i in range(count):
        name = f"dnsbench-{i}"
        waiter = subprocess.Popen(
            [*SVCNET, "exec", "frontend", "--kubeconfig", str(kcfg), "--", sys.executable,
             "-c", "import socket,sys,time\n"
                   "while True:\n"
                   "    try:\n"
                   "        socket.gethostbyname(sys.argv[1]); break\n"
                   "    except OSError: time.sleep(0.002)\n"
                   "print(time.time())", f"{name}.default.svc.cluster.local"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)  # the waiter is polling (and getting NXDOMAIN) before the create
        body = json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                           "spec": {"ports": [{"port": 80}]}}).encode()
        req = urllib.request.Request(f"{server}/api/v1/namespaces/default/services",
                                     data=body, method="POST", headers={
                                         "Authorization": f"Bearer {token}",
                                         "Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=ctx, timeout=10):
            created = time.time()
        out, _ = waiter.communicate(timeout=30)
        results.append(max(float(out.strip()) - created, 0.0))
    return results


if __name__ == "__main__":
    main()
