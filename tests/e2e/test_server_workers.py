"""`svcnet server --workers 2`: a server and an API worker on one store and one socket.

* the worker serves: new connections reach both processes (the worker's CPU time grows
  while they are served), and kubectl works against the one address;
* writes through both processes at once: every Service gets a distinct ClusterIP, and the
  controllers (the primary's) see the worker's writes: every Service gets its EndpointSlice;
  on SQLite and on etcd;
* ``/metrics`` answers for every process, whichever process a scrape reaches, and so does
  ``metrics.k8s.io``;
* every process authenticates client certificates of the cluster CA;
* a worker that dies is started again; the workers stop with their server, and die with it
  when it is SIGKILLed.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from svcnet.apiserver.certs import issue_client
from tests.e2e.conftest import Cluster, start_server, stop_server
from tests.etcd_server import EtcdServer
from tests.waiting import wait_for

SVC_PATH = "/api/v1/namespaces/default/services"


def workers_of(pid: int) -> list[int]:
    """The API worker processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"--worker-index" in cmdline:
            found.append(int(entry))
    return found


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class API:
    """Requests to the server, each on a new connection (so each is accepted anew)."""

    def __init__(self, cluster: Cluster) -> None:
        self.url = cluster.url
        self.token = cluster.token
        self.ssl = ssl.create_default_context(cafile=str(cluster.data_dir / "pki" / "ca.crt"))

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(
            self.url + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type})
        try:
            with urllib.request.urlopen(req, context=self.ssl, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def created_services(self) -> float:
        """``apiserver_request_total`` of Service creates answered 201, from /metrics."""
        req = urllib.request.Request(self.url + "/metrics",
                                     headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, context=self.ssl, timeout=30) as resp:
            text = resp.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("apiserver_request_total{") and 'verb="create"' in line
                   and 'resource="services"' in line and 'code="201"' in line)


@pytest.fixture(params=["sqlite", "etcd"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """A server with one API worker, on the default SQLite store or on etcd."""
    store: list[str] = []
    if request.param == "etcd":
        etcd: EtcdServer = request.getfixturevalue("etcd")
        store = ["--store", f"etcd://{etcd.endpoint}/svcnet-workers-{uuid.uuid4().hex}/"]
    proc = start_server(tmp_path, "--workers", "2", *store)
    try:
        yield Cluster(tmp_path, tmp_path / "kubeconfig", proc, tmp_path / "kcache")
    finally:
        workers = workers_of(proc.pid)
        stop_server(proc)
        for pid in workers:  # the server stops its workers before it exits
            assert not alive(pid), f"API worker {pid} outlived its server"


def service(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"w-{i}", "labels": {"app": f"a{i % 7}"}},
            "spec": {"selector": {"app": f"a{i % 7}"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def test_the_worker_serves_and_the_controllers_see_its_writes(server: Cluster) -> None:
    [worker] = workers_of(server.process.pid)
    api = API(server)
    assert server.kubectl("get", "ns", "default", "-o", "name").stdout.strip() \
        == "namespace/default"

    # 320 creates from 16 threads, each on a connection of its own: both processes accept.
    before = cpu_seconds(worker)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: api.call("POST", SVC_PATH, service(i)), range(320)))
    assert [code for code, _ in answers] == [201] * 320, [a for a in answers if a[0] != 201]
    assert cpu_seconds(worker) - before > 0.2, "the API worker served (almost) nothing"

    ips = [doc["spec"]["clusterIP"] for _, doc in answers]
    assert len(set(ips)) == 320, "a ClusterIP was handed out twice"

    # /metrics answers for both processes, whichever answers: every scrape counts all 320
    # creates, though each process served only some of them.
    for _ in range(6):
        assert api.created_services() == 320
    [shared] = server.data_dir.glob("metrics-*")
    assert {f"counter_{pid}.db" for pid in (server.process.pid, worker)} <= {
        f.name for f in shared.iterdir()}
    code, listed = api.call("GET", SVC_PATH)
    assert code == 200
    assert {s["metadata"]["name"] for s in listed["items"]} >= {f"w-{i}" for i in range(320)}

    # metrics.k8s.io too: each process scrapes the nodes for itself (here there are none),
    # so no new connection meets a 503.
    for _ in range(8):
        code, doc = api.call("GET", "/apis/metrics.k8s.io/v1beta1/nodes")
        assert (code, doc["kind"], doc["items"]) == (200, "NodeMetricsList", []), doc

    # The controllers run in the primary, and reach every Service, wherever it was written.
    def slices_for_all() -> bool:
        code, doc = api.call(
            "GET", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices")
        assert code == 200
        owners = {s["metadata"]["labels"].get("kubernetes.io/service-name")
                  for s in doc["items"]}
        return owners >= {f"w-{i}" for i in range(320)}

    wait_for(slices_for_all, "an EndpointSlice for each Service", timeout=60)

    # A merge patch through either process, and a read of it on a new connection.
    for i in range(20):
        code, doc = api.call("PATCH", f"{SVC_PATH}/w-{i}",
                             {"metadata": {"labels": {"u": str(i)}}},
                             content_type="application/merge-patch+json")
        assert code == 200, doc
        code, doc = api.call("GET", f"{SVC_PATH}/w-{i}")
        assert (code, doc["metadata"]["labels"]["u"]) == (200, str(i))

    # A ResourceQuota holds across both processes: 12 pods created at once, each on a
    # connection of its own, against pods: 5; the quota's resourceVersion precondition lets
    # exactly 5 through, whichever process admitted them.
    ns = f"quota-{uuid.uuid4().hex[:8]}"
    assert api.call("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
    quotas = f"/api/v1/namespaces/{ns}/resourcequotas"
    assert api.call("POST", quotas, {"metadata": {"name": "q"},
                                     "spec": {"hard": {"pods": "5"}}})[0] == 201
    wait_for(lambda: api.call("GET", f"{quotas}/q")[1].get("status", {}).get("used")
             == {"pods": "0"}, "the quota controller's status", timeout=30)
    pod = {"metadata": {"generateName": "p-"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: api.call("POST", f"/api/v1/namespaces/{ns}/pods",
                                                   pod), range(12)))
    assert sorted(code for code, _ in answers) == [201] * 5 + [403] * 7, answers
    assert all("exceeded quota: q, requested: pods=1, used: pods=5, limited: pods=5"
               in doc["message"] for code, doc in answers if code == 403), answers
    assert api.call("GET", f"{quotas}/q")[1]["status"]["used"] == {"pods": "5"}

    _custom_resources_served_everywhere(api)
    _client_certificates_everywhere(server)


def _client_certificates_everywhere(server: Cluster) -> None:
    """16 connections at once with a client certificate and no token, spread over both
    processes (as the creates above): each is the certificate's user."""
    pair = server.data_dir / "client-jane"
    pair.mkdir(exist_ok=True)
    cert_pem, key_pem = issue_client(server.data_dir, "jane", ["dev"])
    (pair / "tls.crt").write_bytes(cert_pem)
    (pair / "tls.key").write_bytes(key_pem)
    ctx = ssl.create_default_context(cafile=str(server.data_dir / "pki" / "ca.crt"))
    ctx.load_cert_chain(pair / "tls.crt", pair / "tls.key")
    review = json.dumps({"apiVersion": "authentication.k8s.io/v1",
                         "kind": "SelfSubjectReview"}).encode()

    def whoami(_: int) -> str:
        req = urllib.request.Request(
            server.url + "/apis/authentication.k8s.io/v1/selfsubjectreviews", data=review,
            method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return str(json.loads(resp.read())["status"]["userInfo"]["username"])

    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(whoami, range(16))) == ["jane"] * 16


def test_a_dead_worker_is_replaced_and_workers_die_with_their_server(tmp_path: Path) -> None:
    proc = start_server(tmp_path, "--workers", "2")
    try:
        [worker] = workers_of(proc.pid)
        os.kill(worker, signal.SIGKILL)
        wait_for(lambda: len([p for p in workers_of(proc.pid) if p != worker]) == 1,
                 "a new API worker", timeout=30)
        [replacement] = [p for p in workers_of(proc.pid) if p != worker]
        api = API(Cluster(tmp_path, tmp_path / "kubeconfig", proc, tmp_path / "kcache"))
        before = cpu_seconds(replacement)
        wait_for(lambda: api.call("GET", "/api/v1/namespaces")[0] == 200
                 and cpu_seconds(replacement) - before > 0.05,
                 "the new API worker serving", timeout=30)
        log = (tmp_path / "server.log").read_text()
        assert "API worker 1" in log and "exited with status" in log, log[-2000:]

        # SIGKILL the server itself: its worker goes too (it cannot be stopped politely).
        proc.kill()
        proc.wait()
        wait_for(lambda: not alive(replacement), "the API worker to die with its server",
                 timeout=10)
    finally:
        if proc.poll() is None:
            stop_server(proc)
        for pid in workers_of(proc.pid):
            os.kill(pid, signal.SIGKILL)


def test_workers_need_a_shared_store(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "svcnet.cli.main", "server", "--data-dir", str(tmp_path),
         "--listen", "127.0.0.1:0", "--store", "memory://", "--workers", "2"],
        capture_output=True, text=True, timeout=60, check=False,
        cwd=Path(__file__).resolve().parents[2])
    assert result.returncode != 0
    assert "--workers needs a store that processes share" in result.stderr, result.stderr
    assert not (tmp_path / "kubeconfig").exists()


def _custom_resources_served_everywhere(api: API) -> None:
    """Each process learns of CRDs from its own watch of the store: a CRD written through
    one is served by both, and stops being served by both when it goes."""
    group = f"w{uuid.uuid4().hex[:8]}.example.com"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"gizmos.{group}"},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": "gizmos", "kind": "Gizmo"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                        "openAPIV3Schema": {"type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True}}}]}}
    code, doc = api.call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert code == 201, doc
    path = f"/apis/{group}/v1/namespaces/default/gizmos"

    def served_by_all() -> bool:  # new connections: both processes answer in turn
        return all(api.call("GET", path)[0] == 200 for _ in range(8))

    wait_for(served_by_all, "both processes to serve the custom resource", timeout=20)
    for i in range(8):
        code, doc = api.call("POST", path, {"apiVersion": f"{group}/v1", "kind": "Gizmo",
                                            "metadata": {"name": f"g{i}"}, "spec": {"i": i}})
        assert code == 201, doc
    code, listed = api.call("GET", path)
    assert {g["metadata"]["name"] for g in listed["items"]} == {f"g{i}" for i in range(8)}
    code, doc = api.call("DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                                   f"gizmos.{group}")
    assert code == 200, doc
    wait_for(lambda: all(api.call("GET", path)[0] == 404 for _ in range(8)),
             "both processes to stop serving it", timeout=30)
