"""apps/v1 StatefulSets on a whole `svcnet up` cluster, with the real kubectl: a headless Service
and a StatefulSet ``web`` of 2 ``process`` pods serving HTTP behind a readiness probe. web-0 is
Ready before web-1 exists (OrderedReady), ``web-0.<svc>.<ns>.svc.cluster.local`` resolves from
the other pod to web-0's IP (the EndpointSlice hostname served by the cluster DNS), and
``kubectl scale`` to 1 removes web-1 (the highest ordinal) while ``kubectl get sts`` shows 1/1;
deleting the set has the garbage collector remove its last pod.

Needs root (a cluster); cluster name "ss" plus random hex, on the first free node network,
always removed by `svcnet down`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.local_clusters import LocalCluster, local_cluster
from tests.waiting import wait_for

pytestmark = pytest.mark.root

MANIFEST = """apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: web, port: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: nginx
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      runtimeClassName: process
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: python
        command: ["python3", "-m", "http.server", "8080"]
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 1
"""
RESOLVE = """import socket
try:
    print(socket.gethostbyname("web-0.nginx.default.svc.cluster.local"))
except OSError as e:
    print(e)
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path_factory, "ss", "--nodes", "1") as cluster:
        yield cluster


def pods(home: LocalCluster) -> dict[str, dict[str, Any]]:
    items = json.loads(home.kubectl("get", "pods", "-l", "app=web", "-o", "json"))["items"]
    return {p["metadata"]["name"]: p for p in items}


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod.get("status", {}).get("conditions") or [])


def test_ordered_pods_with_stable_dns_names_scale_down_from_the_top(home: LocalCluster) -> None:
    home.kubectl("apply", "-f", "-", stdin=MANIFEST)
    seen: list[tuple[bool, bool]] = []  # (web-0 ready, web-1 exists) at every look

    def both_ready() -> bool:
        now = pods(home)
        seen.append((ready(now["web-0"]) if "web-0" in now else False, "web-1" in now))
        return len(now) == 2 and all(ready(p) for p in now.values())

    wait_for(both_ready, timeout=45, what="web-0 and web-1 Ready")
    assert all(web0_ready for web0_ready, web1_exists in seen if web1_exists), (
        f"web-1 existed before web-0 was Ready: {seen}")
    now = pods(home)
    web0 = now["web-0"]
    assert web0["spec"]["hostname"] == "web-0" and web0["spec"]["subdomain"] == "nginx"
    assert web0["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "web-0"
    assert web0["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "0"
    assert web0["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    web1_started = now["web-1"]["metadata"]["creationTimestamp"]
    web0_ready_at = next(c["lastTransitionTime"] for c in web0["status"]["conditions"]
                         if c["type"] == "Ready")
    assert web0_ready_at <= web1_started

    def resolves() -> bool:
        out = home.kubectl("exec", "web-1", "--", "python3", "-c", RESOLVE)
        return bool(out.strip() == web0["status"]["podIP"])

    wait_for(resolves, timeout=20, what="web-0.nginx resolving to web-0's IP from web-1")

    home.kubectl("scale", "sts", "web", "--replicas=1")
    wait_for(lambda: list(pods(home)) == ["web-0"], timeout=20, what="web-1 removed")

    def one_of_one() -> bool:
        header, row = home.kubectl("get", "sts", "web").splitlines()
        assert header.split() == ["NAME", "READY", "AGE"]
        return row.split()[:2] == ["web", "1/1"]

    wait_for(one_of_one, timeout=10, what="kubectl get sts showing 1/1")
    status = json.loads(home.kubectl("get", "sts", "web", "-o", "json"))["status"]
    assert status["currentRevision"] == status["updateRevision"]
    assert status["currentRevision"].startswith("web-")

    # A new template, its history, and a rollback to the first one (ControllerRevisions).
    first = status["currentRevision"]
    home.kubectl("set", "env", "sts/web", "MODE=two")
    home.kubectl("rollout", "status", "sts/web", "--timeout=60s")
    env = pods(home)["web-0"]["spec"]["containers"][0].get("env")
    assert env == [{"name": "MODE", "value": "two"}], env
    history = home.kubectl("rollout", "history", "sts/web").split()
    assert history[history.index("REVISION"):] == [
        "REVISION", "CHANGE-CAUSE", "1", "<none>", "2", "<none>"], history
    revisions = home.kubectl("get", "controllerrevisions").splitlines()
    assert revisions[0].split() == ["NAME", "CONTROLLER", "REVISION", "AGE"]
    assert sorted(r.split()[1:3] for r in revisions[1:]) == [
        ["statefulset.apps/web", "1"], ["statefulset.apps/web", "2"]], revisions
    home.kubectl("rollout", "undo", "sts/web")
    home.kubectl("rollout", "status", "sts/web", "--timeout=60s")
    wait_for(lambda: "env" not in pods(home)["web-0"]["spec"]["containers"][0], timeout=30,
             what="web-0 back at the first template")
    status = json.loads(home.kubectl("get", "sts", "web", "-o", "json"))["status"]
    assert status["currentRevision"] == status["updateRevision"] == first
    numbers = json.loads(home.kubectl("get", "controllerrevisions", "-o", "json"))["items"]
    assert {r["metadata"]["name"]: r["revision"] for r in numbers}[first] == 3

    # Deleting the set (kubectl cascades in the background): the garbage collector takes web-0
    # and the set's revisions.
    home.kubectl("delete", "sts", "web")
    wait_for(lambda: not pods(home), timeout=20, what="web-0 collected")
    wait_for(lambda: not json.loads(home.kubectl("get", "controllerrevisions", "-o", "json"))[
        "items"], timeout=20, what="the revisions collected")
