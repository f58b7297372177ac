"""A pod talks to the API server as its ServiceAccount, with the official Python client's
``config.load_incluster_config()`` run by the pod's own process, through a real `svcnet node`
agent and a real `svcnet server`.

The pod has the volume ServiceAccount admission injects (``kube-api-access-<5>``: a
``serviceAccountToken`` source, the ``kube-root-ca.crt`` ConfigMap's ``ca.crt``, the
namespace from the downward API) mounted read-only at
/var/run/secrets/kubernetes.io/serviceaccount; the test writes that volume into the pod itself
and creates ``kube-root-ca.crt`` (the server alone runs neither the admission nor the
publisher).

How the pod reaches the API server: the server listens on 127.0.0.1 of the host, which no pod
netns can reach, and this test runs no service proxy. So the test gives the node's netns
(``svcnet-e4-n1``, the pods' gateway side) the ``kubernetes`` Service's ClusterIP 10.96.0.1
on its loopback and relays 10.96.0.1:443 there to the server's listen address, from a socket
it made inside that netns. The pod then uses what the agent put in its environment
(``KUBERNETES_SERVICE_HOST=10.96.0.1``, ``KUBERNETES_SERVICE_PORT=443``) and the server's
certificate, which names 10.96.0.1, verifies against the projected ``ca.crt``.

Cluster name "e4" (as test_node_agent.py, whose agent helpers this reuses); everything made
here is removed at the end, and only processes started here are stopped.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from svcnet.util.nsthread import NetnsThread
from tests.e2e.conftest import Cluster
from tests.integration.test_node_agent import NAMES, NODE, Agent, cleanup_namespaces, get, ready
from tests.integration.test_pod_config import apply, report
from tests.waiting import run, wait_for

pytestmark = pytest.mark.root

POD = "e4-sa-pod"
ACCOUNT = "e4-reader"
BINDING = "e4-reader-view"
VOLUME = "kube-api-access-e4x7k"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
CLUSTER_IP = "10.96.0.1"

# Every 0.5 s: the mounted files, and what listing Services as the pod's ServiceAccount gives.
CLIENT = """
import json, os, time
from kubernetes import client, config
from kubernetes.client.rest import ApiException
SA = "/var/run/secrets/kubernetes.io/serviceaccount"
while True:
    files = {}
    for name in ("token", "ca.crt", "namespace"):
        with open(f"{SA}/{name}") as f:
            files[name] = f.read()
    out = {"files": files,
           "modes": {n: oct(os.stat(f"{SA}/{n}").st_mode & 0o777) for n in files},
           "env": {k: os.environ.get(k) for k in ("KUBERNETES_SERVICE_HOST",
                                                  "KUBERNETES_SERVICE_PORT")}}
    try:
        config.load_incluster_config()
        items = client.CoreV1Api().list_namespaced_service(files["namespace"]).items
        out["list"] = {"code": 200, "services": sorted(s.metadata.name for s in items)}
    except ApiException as e:
        out["list"] = {"code": e.status}
    except Exception as e:
        out["list"] = {"error": repr(e)}
    print(json.dumps(out), flush=True)
    time.sleep(0.5)
"""


class Relay:
    """TCP from ``ip:port`` inside a netns to ``target`` (host side), one thread pair a
    connection. The listening socket is made inside the netns and lives there."""

    def __init__(self, netns: str, ip: str, port: int, target: tuple[str, int]) -> None:
        thread = NetnsThread(netns)
        try:
            self.listener = thread.call_sync(lambda: socket.create_server((ip, port)))
        finally:
            thread.close()  # the socket keeps its netns; no thread stays inside it
        self.target = target
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                conn.close()
                continue
            upstream.settimeout(None)
            threading.Thread(target=self._serve, args=(conn, upstream), daemon=True).start()

    def _serve(self, conn: socket.socket, upstream: socket.socket) -> None:
        with conn, upstream:
            back = threading.Thread(target=self._pump, args=(upstream, conn), daemon=True)
            back.start()
            self._pump(conn, upstream)
            back.join()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


@pytest.fixture
def agent(cluster: Cluster, tmp_path: Path) -> Iterator[Agent]:
    cleanup_namespaces()
    a = Agent(cluster, tmp_path)
    a.start()
    created_ca = get(cluster, "configmap", "kube-root-ca.crt") is None
    try:
        yield a
    finally:
        cluster.kubectl("delete", "pod", POD, "--grace-period=0", "--force",
                        "--ignore-not-found", "--wait=false", check=False)
        cluster.kubectl("delete", "rolebinding", BINDING, "--ignore-not-found", check=False)
        cluster.kubectl("delete", "serviceaccount", ACCOUNT, "--ignore-not-found", check=False)
        if created_ca:
            cluster.kubectl("delete", "configmap", "kube-root-ca.crt", "--ignore-not-found",
                            check=False)
        a.stop()
        cleanup_namespaces()
        print(a.log.read_text()[-3000:])


@pytest.fixture
def relay(cluster: Cluster, agent: Agent) -> Iterator[Relay]:
    netns = NAMES.node_netns(1)
    wait_for(lambda: netns in run(["ip", "netns", "list"]).stdout, what=f"netns {netns}")
    run(["ip", "-n", netns, "addr", "add", f"{CLUSTER_IP}/32", "dev", "lo"])
    server = urlsplit(cluster.url)
    assert server.hostname is not None and server.port is not None
    r = Relay(netns, CLUSTER_IP, 443, (server.hostname, server.port))
    try:
        yield r
    finally:
        r.close()


def kube_api_access_pod() -> dict[str, Any]:
    """A pod as ServiceAccount admission leaves it (the volume and mount it injects)."""
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": POD},
        "spec": {
            "nodeName": NODE, "serviceAccountName": ACCOUNT,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": "python",
                            "command": [sys.executable, "-c", CLIENT],
                            "volumeMounts": [{"name": VOLUME, "readOnly": True,
                                              "mountPath": SA_DIR}]}],
            "volumes": [{"name": VOLUME, "projected": {"defaultMode": 0o644, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt",
                               "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                    "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}]}}


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def failed_mount(cluster: Cluster) -> list[str]:
    out = cluster.kubectl("get", "events", "--field-selector",
                          f"reason=FailedMount,involvedObject.name={POD}", "-o", "json").stdout
    return [e["message"] for e in json.loads(out)["items"]]


def test_pod_lists_services_with_its_projected_token_once_rbac_allows(
        cluster: Cluster, agent: Agent, relay: Relay) -> None:
    wait_for(lambda: ready(get(cluster, "node", NODE)), what="node Ready")
    ca_pem = base64.b64decode(
        cluster.config["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    if get(cluster, "configmap", "kube-root-ca.crt") is None:
        apply(cluster, {"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": ca_pem}})
    apply(cluster, kube_api_access_pod())

    # No such ServiceAccount yet: no token, the container waits with the kubelet's message.
    message = (f'MountVolume.SetUp failed for volume "{VOLUME}" : failed to fetch token: '
               f'serviceaccounts "{ACCOUNT}" not found')
    wait_for(lambda: message in failed_mount(cluster), what="the FailedMount event",
             detail=lambda: str(failed_mount(cluster)))
    pod = get(cluster, "pod", POD)
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == \
        "ContainerCreating"

    # Once it exists, the token comes and the container starts; RBAC grants it nothing yet.
    apply(cluster, {"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": ACCOUNT}})
    seen = wait_for(lambda: (r := report(cluster, POD)) and "code" in r["list"] and r,
                    what="the pod's first API answer", timeout=60,
                    detail=lambda: str(report(cluster, POD)))
    assert seen["list"] == {"code": 403}
    assert seen["env"] == {"KUBERNETES_SERVICE_HOST": CLUSTER_IP,
                           "KUBERNETES_SERVICE_PORT": "443"}
    files = seen["files"]
    assert files["ca.crt"] == ca_pem
    assert files["namespace"] == "default"
    assert seen["modes"] == {"token": "0o644", "ca.crt": "0o644", "namespace": "0o644"}
    claims = jwt_claims(files["token"])
    account = get(cluster, "serviceaccount", ACCOUNT)
    pod = get(cluster, "pod", POD)
    assert claims["sub"] == f"system:serviceaccount:default:{ACCOUNT}"
    assert claims["exp"] - claims["iat"] == 3607
    assert claims["kubernetes.io"]["serviceaccount"] == {
        "name": ACCOUNT, "uid": account["metadata"]["uid"]}
    assert claims["kubernetes.io"]["pod"] == {"name": POD, "uid": pod["metadata"]["uid"]}
    assert claims["kubernetes.io"]["node"]["name"] == NODE

    # A RoleBinding to `view` lets the same token list Services.
    apply(cluster, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": BINDING},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                "name": "view"},
                    "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT,
                                  "namespace": "default"}]})
    allowed = wait_for(lambda: (r := report(cluster, POD)) and r["list"].get("code") == 200
                       and r, what="the list allowed", timeout=30,
                       detail=lambda: str(report(cluster, POD)))
    assert "kubernetes" in allowed["list"]["services"]
    assert allowed["files"]["token"] == files["token"], "a fresh token is not renewed"
