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
