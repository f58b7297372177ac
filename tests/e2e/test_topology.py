"""Topology-aware routing on a real cluster: `svcnet up --zones a,b`, trafficDistribution.

Two nodes in zones a and b, one backend pinned to each, a Service with ``trafficDistribution:
PreferClose``: the EndpointSlice controller hints each endpoint for its own zone, so a client
in zone a reaches only zone a's backend. When that backend is deleted no ready endpoint is
hinted for zone a any more, the proxy ignores the hints, and the client reaches zone b's.
Needs root; the cluster is always removed.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.e2e.local_clusters import LocalCluster, local_cluster, write_manifest
from tests.e2e.traffic import SERVER, pod

pytestmark = pytest.mark.root

MANIFEST = [
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "zonal"},
     "spec": {"selector": {"app": "zonal"}, "trafficDistribution": "PreferClose",
              "ports": [{"port": 80, "targetPort": 8080}]}},
    pod("zonal-a", "node-1", ["python3", "-c", SERVER, "zone-a"], {"app": "zonal"}),
    pod("zonal-b", "node-2", ["python3", "-c", SERVER, "zone-b"], {"app": "zonal"}),
    pod("client", "node-1", ["sleep", "3600"], {}),
]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    manifest = write_manifest(tmp_path_factory.mktemp("zonal"), MANIFEST)
    with local_cluster(tmp_path_factory, "tz", "--zones", "a,b", "--container-runtime",
                       "process", "-f", str(manifest)) as cluster:
        yield cluster


def hits(home: LocalCluster, cluster_ip: str, count: int = 30) -> Counter[str]:
    """Which backend answered each of ``count`` requests from the client pod (zone a)."""
    code = ("import urllib.request\n"
            f"for _ in range({count}):\n"
            f"    print(urllib.request.urlopen('http://{cluster_ip}/', timeout=5).read()"
            ".decode())\n")
    out = home.svcnet("exec", "client", "--kubeconfig", str(home.kubeconfig),
                 "--", sys.executable, "-c", code, timeout=60).stdout
    return Counter(out.split())


def until(home: LocalCluster, cluster_ip: str, want: str, seconds: float = 20) -> Counter[str]:
    """Poll until all 30 requests reach ``want``; the last counts."""
    deadline = time.monotonic() + seconds
    while True:
        seen = hits(home, cluster_ip)
        if seen == Counter({want: 30}) or time.monotonic() > deadline:
            return seen
        time.sleep(1)


def test_prefer_close_stays_in_zone_then_falls_back(home: LocalCluster) -> None:
    nodes = json.loads(home.kubectl("get", "nodes", "-o", "json"))["items"]
    assert {n["metadata"]["name"]: n["metadata"]["labels"]["topology.kubernetes.io/zone"]
            for n in nodes} == {"node-1": "a", "node-2": "b"}
    cluster_ip = json.loads(home.kubectl("get", "svc", "zonal", "-o", "json"))[
        "spec"]["clusterIP"]

    # The controller hints every endpoint for its own zone.
    slices = json.loads(home.kubectl("get", "endpointslices", "-l",
                                "kubernetes.io/service-name=zonal", "-o", "json"))["items"]
    hinted = {ep["zone"]: [z["name"] for z in ep["hints"]["forZones"]]
              for s in slices for ep in s["endpoints"]}
    assert hinted == {"a": ["a"], "b": ["b"]}

    assert until(home, cluster_ip, "zone-a") == Counter({"zone-a": 30})
    explained = home.svcnet("explain", "zonal", "--node", "node-1", "--kubeconfig",
                       str(home.kubeconfig)).stdout
    assert "zone hints followed for zone a" in explained, explained

    home.kubectl("delete", "pod", "zonal-a", "--wait=false")
    assert until(home, cluster_ip, "zone-b") == Counter({"zone-b": 30})
