"""Topology-aware routing on a real cluster: `svcnet up --zones a,b`, trafficDistribution.

Two nodes in zones a and b, one backend pinned to each, a Service with ``trafficDistribution:
PreferClose``: the EndpointSlice controller hints each endpoint for its own zone, so a client
in zone a reaches only zone a's backend. When that backend is deleted no ready endpoint is
hinted for zone a any more, the proxy ignores the hints, and the client reaches zone b's.
Needs root; the cluster is always removed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require, require_root
from tests.e2e.local_clusters import unique_name

ROOT = Path(__file__).resolve().parents[2]
NAME = unique_name("tz")
SVCNET = [sys.executable, "-m", "svcnet.cli.main"]
pytestmark = pytest.mark.root

SERVER = ("import http.server, sys\n"
          "class H(http.server.BaseHTTPRequestHandler):\n"
          "    def do_GET(self):\n"
          "        body = sys.argv[1].encode()\n"
          "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
          "        self.end_headers(); self.wfile.write(body)\n"
          "    def log_message(self, *a): pass\n"
          "http.server.ThreadingHTTPServer(('', 8080), H).serve_forever()\n")


def _pod(name: str, node: str, command: list[str], labels: dict[str, str]) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "python", "command": command}
    if labels:
        container["readinessProbe"] = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": node, "runtimeClassName": "process",
                     "terminationGracePeriodSeconds": 1, "containers": [container]}}


MANIFEST = [
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "zonal"},
     "spec": {"selector": {"app": "zonal"}, "trafficDistribution": "PreferClose",
              "ports": [{"port": 80, "targetPort": 8080}]}},
    _pod("zonal-a", "node-1", ["python3", "-c", SERVER, "zone-a"], {"app": "zonal"}),
    _pod("zonal-b", "node-2", ["python3", "-c", SERVER, "zone-b"], {"app": "zonal"}),
    _pod("client", "node-1", ["sleep", "3600"], {}),
]


def svcnet(home: Path, *args: str, check: bool = True, timeout: float = 120
           ) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([*SVCNET, *args], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, SVCNET_HOME=str(home)), timeout=timeout,
                       check=False)
    if check and r.returncode != 0:
        raise AssertionError(f"svcnet {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r


def kubectl(home: Path, *args: str) -> str:
    r = subprocess.run(["kubectl", "--kubeconfig", str(home / NAME / "kubeconfig"), *args],
                       capture_output=True, text=True, timeout=60, check=False,
                       env=dict(os.environ, KUBECACHEDIR=str(home / "kcache")))
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_root()
    require(shutil.which("nft") is not None, "nft is not installed")
    require(shutil.which("kubectl") is not None, "kubectl is not installed")
    h = tmp_path_factory.mktemp("svcnet-home")
    manifest = h / "zonal.yaml"
    manifest.write_text("\n---\n".join(json.dumps(doc) for doc in MANIFEST))
    r = svcnet(h, "up", "--name", NAME, "--detach", "--zones", "a,b", "--container-runtime",
               "process", "-f", str(manifest), check=False, timeout=180)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        yield h
    finally:
        svcnet(h, "down", "--name", NAME, check=False)


def hits(home: Path, cluster_ip: str, count: int = 30) -> Counter[str]:
    """Which backend answered each of ``count`` requests from the client pod (zone a)."""
    code = ("import urllib.request\n"
            f"for _ in range({count}):\n"
            f"    print(urllib.request.urlopen('http://{cluster_ip}/', timeout=5).read()"
            ".decode())\n")
    out = svcnet(home, "exec", "client", "--kubeconfig", str(home / NAME / "kubeconfig"),
                 "--", sys.executable, "-c", code, timeout=60).stdout
    return Counter(out.split())


def until(home: Path, cluster_ip: str, want: str, seconds: float = 20) -> Counter[str]:
    """Poll until all 30 requests reach ``want``; the last counts."""
    deadline = time.monotonic() + seconds
    while True:
        seen = hits(home, cluster_ip)
        if seen == Counter({want: 30}) or time.monotonic() > deadline:
            return seen
        time.sleep(1)


def test_prefer_close_stays_in_zone_then_falls_back(home: Path) -> None:
    nodes = json.loads(kubectl(home, "get", "nodes", "-o", "json"))["items"]
    assert {n["metadata"]["name"]: n["metadata"]["labels"]["topology.kubernetes.io/zone"]
            for n in nodes} == {"node-1": "a", "node-2": "b"}
    cluster_ip = json.loads(kubectl(home, "get", "svc", "zonal", "-o", "json"))[
        "spec"]["clusterIP"]

    # The controller hints every endpoint for its own zone.
    slices = json.loads(kubectl(home, "get", "endpointslices", "-l",
                                "kubernetes.io/service-name=zonal", "-o", "json"))["items"]
    hinted = {ep["zone"]: [z["name"] for z in ep["hints"]["forZones"]]
              for s in slices for ep in s["endpoints"]}
    assert hinted == {"a": ["a"], "b": ["b"]}

    assert until(home, cluster_ip, "zone-a") == Counter({"zone-a": 30})
    explained = svcnet(home, "explain", "zonal", "--node", "node-1", "--kubeconfig",
                       str(home / NAME / "kubeconfig")).stdout
    assert "zone hints followed for zone a" in explained, explained

    kubectl(home, "delete", "pod", "zonal-a", "--wait=false")
    assert until(home, cluster_ip, "zone-b") == Counter({"zone-b": 30})
