"""`svcnet server --store etcd://...`: the API server on a real etcd keeps Services and their
allocations across a restart, and the next server on that etcd allocates around them."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.e2e.conftest import Cluster, start_server, stop_server
from tests.etcd_server import EtcdServer


def service(name: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"type": "NodePort", "selector": {"app": name},
                 "ports": [{"port": 80, "targetPort": 8080}]}})


def test_server_on_etcd_keeps_services_across_a_restart(tmp_path: Path,
                                                        etcd: EtcdServer) -> None:
    store = f"etcd://{etcd.endpoint}/svcnet-e2e/"
    proc = start_server(tmp_path, "--store", store)
    try:
        cluster = Cluster(tmp_path, tmp_path / "kubeconfig", proc, tmp_path / "kcache")
        cluster.kubectl("apply", "-f", "-", stdin=service("keep"))
        before = json.loads(cluster.kubectl("get", "svc", "keep", "-o", "json").stdout)
    finally:
        assert stop_server(proc) == 0
    # A second server on the same etcd (another data dir: its own certificates and tokens).
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    proc = start_server(other_dir, "--store", store)
    try:
        cluster = Cluster(other_dir, other_dir / "kubeconfig", proc, other_dir / "kcache")
        after = json.loads(cluster.kubectl("get", "svc", "keep", "-o", "json").stdout)
        assert after["metadata"]["uid"] == before["metadata"]["uid"]
        assert after["spec"]["clusterIP"] == before["spec"]["clusterIP"]
        assert after["spec"]["ports"][0]["nodePort"] == before["spec"]["ports"][0]["nodePort"]
        cluster.kubectl("apply", "-f", "-", stdin=service("fresh"))
        fresh = json.loads(cluster.kubectl("get", "svc", "fresh", "-o", "json").stdout)
        assert fresh["spec"]["clusterIP"] != before["spec"]["clusterIP"]
        assert fresh["spec"]["ports"][0]["nodePort"] != before["spec"]["ports"][0]["nodePort"]
    finally:
        assert stop_server(proc) == 0


def test_server_on_etcd_refuses_what_etcd_cannot_store_and_lists_past_grpcs_limit(
        tmp_path: Path, etcd: EtcdServer) -> None:
    """An object under the API's 3 MiB but over etcd's 1.5 MiB request limit is a 413 (was
    a 500), and nothing is stored; ConfigMaps that list to more than gRPC's default
    4 MiB message (the watch cache's fill at start) are served after a restart."""
    store = f"etcd://{etcd.endpoint}/svcnet-e2e-big/"
    proc = start_server(tmp_path, "--store", store)
    try:
        cluster = Cluster(tmp_path, tmp_path / "kubeconfig", proc, tmp_path / "kcache")
        # A pod (no kind-specific size limit, unlike a ConfigMap's 1 MiB) of 2 MB.
        big = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big"},
               "spec": {"containers": [{"name": "main", "image": "python", "env": [
                   {"name": "BLOB", "value": "x" * 2_000_000}]}]}}
        refused = cluster.kubectl("create", "-f", "-", stdin=json.dumps(big), check=False)
        assert refused.returncode != 0
        assert "Request entity too large" in refused.stderr, refused.stderr
        assert "--max-request-bytes" in refused.stderr, refused.stderr
        missing = cluster.kubectl("get", "pod", "big", check=False)
        assert missing.returncode != 0 and "NotFound" in missing.stderr, missing.stderr
        # 24 ConfigMaps of 250 KB: 6 MB in one list from etcd.
        items = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i:02d}"},
                  "data": {"blob": "y" * 250_000}} for i in range(24)]
        cluster.kubectl("apply", "-f", "-",
                        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    finally:
        assert stop_server(proc) == 0
    proc = start_server(tmp_path, "--store", store)
    try:
        cluster = Cluster(tmp_path, tmp_path / "kubeconfig", proc, tmp_path / "kcache")
        listed = json.loads(cluster.kubectl("get", "configmaps", "-o", "json").stdout)
        names = sorted(i["metadata"]["name"] for i in listed["items"]
                       if i["metadata"]["name"].startswith("cm-"))
        assert names == [f"cm-{i:02d}" for i in range(24)]
    finally:
        assert stop_server(proc) == 0
