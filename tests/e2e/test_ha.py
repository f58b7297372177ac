"""An HA control plane: three `svcnet server` processes on a three-member etcd cluster.

* the three start at once on an empty store and end up one cluster: one CA and admin token
  (the first server's kubeconfig works on every server), each its own serving certificate;
* exactly one holds kube-system/kube-controller-manager; SIGKILLing its process hands the
  lease to another within 20 s, and a Deployment scaled during the failover converges;
* one etcd member SIGKILLed: writes go on; two: the API answers 503/504 with the store's
  message within the request timeout (never 500, never a hang), and recovers when they are
  back.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Cluster, start_server, stop_server
from tests.etcd_server import EtcdCluster

STORE_TIMEOUT = 3
TAKEOVER_SECONDS = 20.0
CM_PATH = "/api/v1/namespaces/default/configmaps"


@dataclass
class Server:
    data_dir: Path
    proc: subprocess.Popen[bytes]

    @property
    def cluster(self) -> Cluster:
        return Cluster(self.data_dir, self.data_dir / "kubeconfig", self.proc,
                       self.data_dir / "kcache")

    @property
    def url(self) -> str:
        return self.cluster.url

    @property
    def identity(self) -> str:
        return f"{socket.gethostname()}_{(self.data_dir / 'server-id').read_text().strip()}"


@pytest.fixture
def etcd_cluster() -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(3)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def servers(tmp_path: Path, etcd_cluster: EtcdCluster) -> Iterator[list[Server]]:
    store = f"etcd://{etcd_cluster.endpoints}/svcnet-ha/?timeout={STORE_TIMEOUT}"
    dirs = [tmp_path / f"s{i}" for i in range(3)]
    for d in dirs:
        d.mkdir()
    # All three at once on the empty store: they race to publish the cluster's identity.
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(start_server, d, "--store", store, "-v") for d in dirs]
    procs = []
    try:
        for f in futures:
            procs.append(f.result())
        yield [Server(d, p) for d, p in zip(dirs, procs, strict=True)]
    finally:
        for p in procs:
            if p.poll() is None:
                stop_server(p)


def trust(first: Server) -> ssl.SSLContext:
    """Trusting the cluster's CA, from the *first* server's kubeconfig."""
    config = first.cluster.config
    ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"])
    return ssl.create_default_context(cadata=ca.decode())


def request(first: Server, method: str, url: str, body: dict[str, Any] | None = None,
            timeout: float = 15) -> tuple[int, dict[str, Any]]:
    """One request with the *first* server's kubeconfig (CA, token) to ``url``."""
    context = trust(first)
    req = urllib.request.Request(url, method=method, headers={
        "Authorization": f"Bearer {first.cluster.token}", "Content-Type": "application/json"},
        data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def watch_events(first: Server, url: str) -> list[dict[str, Any]]:
    """The events of a watch the server ends by itself (its timeoutSeconds)."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {first.cluster.token}"})
    with urllib.request.urlopen(req, timeout=15, context=trust(first)) as resp:
        return [json.loads(line) for line in resp.read().splitlines() if line.strip()]


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"k": "v"}}


def write_with_retry(first: Server, url: str, name: str, seconds: float) -> None:
    """Create a ConfigMap, retrying 503/504 (an etcd leader election) for ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        code, status = request(first, "POST", f"{url}/api/v1/namespaces/default/configmaps",
                               configmap(name))
        if code in (201, 409):
            return
        assert code in (503, 504), (code, status)
        assert time.monotonic() < deadline, f"writes did not resume: {status}"
        time.sleep(0.2)


def lease_holder(server: Server) -> str:
    out = server.cluster.kubectl("get", "lease", "-n", "kube-system",
                                 "kube-controller-manager", "-o", "json").stdout
    return str(json.loads(out)["spec"].get("holderIdentity", ""))


def deployment(replicas: int) -> str:
    return yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "python"}]}}}})


def pods_of_web(server: Server) -> int:
    out = server.cluster.kubectl("get", "pods", "-l", "app=web", "-o", "name").stdout
    return len(out.split())


def wait_for(what: str, check: Any, seconds: float) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"{what}: not within {seconds:g} s"
        time.sleep(0.25)
    return time.monotonic() - started


def test_ha_control_plane(servers: list[Server], etcd_cluster: EtcdCluster) -> None:
    first = servers[0]
    # One cluster: the same CA and admin token everywhere, a serving certificate each.
    configs = [s.cluster.config for s in servers]
    assert len({c["users"][0]["user"]["token"] for c in configs}) == 1
    assert len({c["clusters"][0]["cluster"]["certificate-authority-data"]
                for c in configs}) == 1
    assert len({(s.data_dir / "pki" / "apiserver.crt").read_bytes() for s in servers}) == 3
    for s in servers:  # kubectl with the first server's kubeconfig, on each server
        out = first.cluster.kubectl("--server", s.url, "get", "ns", "kube-system",
                                    "-o", "name").stdout
        assert out.strip() == "namespace/kube-system"

    # A client's watch resumes on another server from the resourceVersion of a list that
    # the first server answered: each server watches etcd itself, on one revision counter.
    code, listed = request(first, "GET", f"{servers[0].url}{CM_PATH}")
    assert code == 200, listed
    write_with_retry(first, servers[0].url, "after-list", 10)
    rv = listed["metadata"]["resourceVersion"]
    events = watch_events(first, f"{servers[1].url}{CM_PATH}?watch=1&resourceVersion={rv}"
                                 "&timeoutSeconds=2")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "after-list")], events

    # Exactly one leads.
    holder = lease_holder(first)
    leaders = [s for s in servers if s.identity == holder]
    assert len(leaders) == 1, (holder, [s.identity for s in servers])
    leader = leaders[0]
    survivors = [s for s in servers if s is not leader]

    first.cluster.kubectl("apply", "-f", "-", stdin=deployment(2))
    wait_for("2 pods", lambda: pods_of_web(survivors[0]) == 2, 15)

    # The leader dies; the Deployment is scaled on a survivor during the failover.
    leader.proc.kill()
    leader.proc.wait()
    killed = time.monotonic()
    survivors[0].cluster.kubectl("scale", "deployment/web", "--replicas", "4")
    took = wait_for("a new leader", lambda: lease_holder(survivors[1]) in {
        s.identity for s in survivors}, TAKEOVER_SECONDS + 5)
    assert time.monotonic() - killed < TAKEOVER_SECONDS, f"takeover took {took:.1f} s"
    wait_for("4 pods after the failover", lambda: pods_of_web(survivors[1]) == 4, 15)

    # One etcd member gone (the first of the servers' endpoints): writes go on.
    etcd_cluster.kill(0)
    for i in range(3):
        write_with_retry(first, survivors[i % 2].url, f"one-down-{i}", 10)

    # Two gone: no quorum. A clear 503/504 within the request timeout, never a 500.
    etcd_cluster.kill(1)
    for method, path, body in (
            ("POST", "/api/v1/namespaces/default/configmaps", configmap("no-quorum")),
            ("GET", "/api/v1/namespaces/default/configmaps", None)):
        started = time.monotonic()
        code, status = request(first, method, survivors[0].url + path, body, timeout=20)
        elapsed = time.monotonic() - started
        assert code in (503, 504), (method, code, status)
        assert status.get("kind") == "Status" and status.get("message"), status
        assert elapsed < STORE_TIMEOUT + 5, f"{method} took {elapsed:.1f} s"

    etcd_cluster.restart(0, 1)
    write_with_retry(first, survivors[1].url, "back", 20)
