"""`svcnet server` restarted on the same data directory keeps everything, credentials included,
and serves its Prometheus metrics."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Cluster, start_server, stop_server


def test_restart_keeps_objects_allocations_and_kubeconfig(tmp_path: Path) -> None:
    proc = start_server(tmp_path)
    cache = tmp_path / "kcache"
    try:
        cluster = Cluster(tmp_path, tmp_path / "kubeconfig", proc, cache)
        cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "keep"},
            "spec": {"type": "NodePort", "selector": {"app": "keep"},
                     "ports": [{"port": 80, "targetPort": 8080}]}}))
        before = json.loads(cluster.kubectl("get", "svc", "keep", "-o", "json").stdout)
        token = cluster.token
    finally:
        assert stop_server(proc) == 0
    proc = start_server(tmp_path)
    try:
        cluster = Cluster(tmp_path, tmp_path / "kubeconfig", proc, cache)
        assert cluster.token == token, "the admin token survives a restart"
        after = json.loads(cluster.kubectl("get", "svc", "keep", "-o", "json").stdout)
        assert after["metadata"]["uid"] == before["metadata"]["uid"]
        assert after["spec"]["clusterIP"] == before["spec"]["clusterIP"]
        assert after["spec"]["ports"][0]["nodePort"] == before["spec"]["ports"][0]["nodePort"]
        ctx = ssl.create_default_context(cafile=str(tmp_path / "pki" / "ca.crt"))
        req = urllib.request.Request(cluster.url + "/metrics",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            metrics = resp.read().decode()
        assert 'apiserver_request_total{code="200",resource="services",verb="get"}' in metrics
        assert "apiserver_request_duration_seconds_bucket" in metrics
        with urllib.request.urlopen(cluster.url + "/healthz", context=ctx, timeout=10) as resp:
            assert resp.read() == b"ok"
        # Metrics need a token (health checks do not).
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(cluster.url + "/metrics", context=ctx, timeout=10)
        assert denied.value.code == 401
        assert json.loads(denied.value.read())["reason"] == "Unauthorized"
    finally:
        assert stop_server(proc) == 0
