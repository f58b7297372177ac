"""apps/v1 Deployments through the real kubectl against a real `svcnet server`.

No node agent runs in this cluster, so pods never become Ready: the assertions are about
objects (ReplicaSets, pods, owner references, labels, revisions), not readiness. The pod
template selects a node label no node has, so the pods also stay unscheduled whatever nodes
other tests registered, and are deleted at once rather than gracefully.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import Cluster
from tests.waiting import wait_for

NAME = "wl"
DEPLOYMENT = f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {NAME}
spec:
  replicas: 3
  selector:
    matchLabels: {{app: {NAME}}}
  template:
    metadata:
      labels: {{app: {NAME}}}
    spec:
      nodeSelector: {{svcnet.test/nowhere: "true"}}
      containers:
      - name: app
        image: app:1
"""
REVISION = "deployment.kubernetes.io/revision"


def items(cluster: Cluster, kind: str, app: str = NAME) -> list[dict[str, Any]]:
    r = cluster.kubectl("get", kind, "-l", f"app={app}", "-o", "json")
    found: list[dict[str, Any]] = json.loads(r.stdout)["items"]
    return found


def active_pods(cluster: Cluster) -> list[dict[str, Any]]:
    return [p for p in items(cluster, "pods") if not p["metadata"].get("deletionTimestamp")]


def deployment(cluster: Cluster) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(cluster.kubectl("get", "deployment", NAME, "-o",
                                                     "json").stdout)
    return doc


def replicasets_by_image(cluster: Cluster) -> dict[str, dict[str, Any]]:
    return {rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs
            for rs in items(cluster, "replicasets")}


def n_pods(cluster: Cluster, n: int) -> Callable[[], bool]:
    return lambda: len(active_pods(cluster)) == n


def test_deployment_lifecycle(cluster: Cluster) -> None:
    assert "deployments" in cluster.kubectl("api-resources", "--api-group=apps").stdout
    r = cluster.kubectl("apply", "-f", "-", stdin=DEPLOYMENT)
    assert r.stdout.strip() == f"deployment.apps/{NAME} created"

    # Three pods, owned by one ReplicaSet, owned by the Deployment; hashes everywhere.
    wait_for(n_pods(cluster, 3), "3 pods")
    d = deployment(cluster)
    (rs,) = items(cluster, "replicasets")
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"{NAME}-{pod_hash}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": NAME, "pod-template-hash": pod_hash}
    assert rs["metadata"]["annotations"][REVISION] == "1"
    (rs_owner,) = rs["metadata"]["ownerReferences"]
    assert (rs_owner["kind"], rs_owner["name"], rs_owner["uid"], rs_owner["controller"]) == (
        "Deployment", NAME, d["metadata"]["uid"], True)
    for pod in active_pods(cluster):
        meta = pod["metadata"]
        assert meta["name"].startswith(f"{rs['metadata']['name']}-")
        assert meta["labels"] == {"app": NAME, "pod-template-hash": pod_hash}
        (owner,) = meta["ownerReferences"]
        assert owner == {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                         "name": rs["metadata"]["name"], "uid": rs["metadata"]["uid"],
                         "controller": True, "blockOwnerDeletion": True}
        assert pod["status"]["phase"] == "Pending"

    wait_for(lambda: deployment(cluster).get("status", {}).get("updatedReplicas") == 3,
             "the Deployment's status")
    d = deployment(cluster)
    assert d["metadata"]["annotations"][REVISION] == "1"
    assert d["status"]["observedGeneration"] == d["metadata"]["generation"]
    assert d["status"]["unavailableReplicas"] == 3
    available = {c["type"]: c for c in d["status"]["conditions"]}["Available"]
    assert (available["status"], available["reason"]) == ("False",
                                                          "MinimumReplicasUnavailable")
    row = cluster.kubectl("get", "deployment", NAME).stdout.splitlines()
    assert row[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert row[1].split()[:4] == [NAME, "0/3", "3", "0"]

    # kubectl scale goes through the scale subresource.
    scale = json.loads(cluster.kubectl("get", "--raw", f"/apis/apps/v1/namespaces/default/"
                                                       f"deployments/{NAME}/scale").stdout)
    assert (scale["kind"], scale["spec"]["replicas"], scale["status"]["selector"]) == (
        "Scale", 3, f"app={NAME}")
    for replicas in (5, 1):
        r = cluster.kubectl("scale", "deployment", NAME, f"--replicas={replicas}")
        assert r.stdout.strip() == f"deployment.apps/{NAME} scaled"
        wait_for(n_pods(cluster, replicas), f"{replicas} pods")
        (rs,) = items(cluster, "replicasets")
        assert rs["spec"]["replicas"] == replicas

    # A new template: a second ReplicaSet, revision 2.
    r = cluster.kubectl("set", "image", f"deployment/{NAME}", "app=app:2")
    assert r.stdout.strip() == f"deployment.apps/{NAME} image updated"
    def two_replicasets() -> dict[str, dict[str, Any]] | None:
        found = replicasets_by_image(cluster)
        return found if len(found) == 2 else None

    by_image = wait_for(two_replicasets, "a second ReplicaSet")
    new = by_image["app:2"]
    assert new["metadata"]["annotations"][REVISION] == "2"
    assert new["metadata"]["name"] != rs["metadata"]["name"]
    wait_for(lambda: any(p["spec"]["containers"][0]["image"] == "app:2"
                         for p in active_pods(cluster)), "a pod of the new template")
    wait_for(lambda: deployment(cluster)["metadata"]["annotations"][REVISION] == "2",
             "the Deployment's revision")

    # rollout undo: the template comes back from the first ReplicaSet, which is re-used.
    r = cluster.kubectl("rollout", "undo", f"deployment/{NAME}")
    assert r.stdout.strip() == f"deployment.apps/{NAME} rolled back"
    assert deployment(cluster)["spec"]["template"]["spec"]["containers"][0]["image"] == "app:1"

    def restored() -> Any:
        first = replicasets_by_image(cluster)["app:1"]
        return first if first["metadata"]["annotations"].get(REVISION) == "3" else None

    first = wait_for(restored, "the first ReplicaSet at revision 3")
    assert first["metadata"]["name"] == rs["metadata"]["name"]
    assert first["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert len(replicasets_by_image(cluster)) == 2
    history = cluster.kubectl("rollout", "history", f"deployment/{NAME}").stdout
    revisions = [line.split()[0] for line in history.splitlines()[2:] if line.strip()]
    assert revisions == ["2", "3"]

    # rollout restart changes a template annotation: one more ReplicaSet, revision 4.
    r = cluster.kubectl("rollout", "restart", f"deployment/{NAME}")
    assert r.stdout.strip() == f"deployment.apps/{NAME} restarted"
    restarted = wait_for(lambda: [x for x in items(cluster, "replicasets") if x["metadata"]
                                  ["annotations"].get(REVISION) == "4"], "a restart")
    assert "kubectl.kubernetes.io/restartedAt" in restarted[0]["spec"]["template"]["metadata"][
        "annotations"]
    assert len(items(cluster, "replicasets")) == 3

    # Deleting the Deployment takes its ReplicaSets and pods with it (garbage collection).
    r = cluster.kubectl("delete", "deployment", NAME)
    assert r.stdout.strip() == f'deployment.apps "{NAME}" deleted'
    wait_for(lambda: not items(cluster, "replicasets"), "the ReplicaSets to go")
    wait_for(lambda: not items(cluster, "pods"), "the pods to go")


def test_invalid_deployment_prints_what_kubernetes_prints(cluster: Cluster) -> None:
    bad = DEPLOYMENT.replace(f"name: {NAME}", "name: bad-wl").replace(
        "matchLabels: {app: wl}", "matchLabels: {app: other}")
    r = cluster.kubectl("apply", "-f", "-", stdin=bad, check=False)
    assert r.returncode == 1
    assert r.stderr == (
        'The Deployment "bad-wl" is invalid: spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"wl"}: `selector` does not match template `labels`\n')


def test_a_replica_set_on_its_own(cluster: Cluster) -> None:
    manifest = DEPLOYMENT.replace("kind: Deployment", "kind: ReplicaSet").replace(
        NAME, "solo")
    r = cluster.kubectl("apply", "-f", "-", stdin=manifest)
    assert r.stdout.strip() == "replicaset.apps/solo created"
    wait_for(lambda: json.loads(cluster.kubectl("get", "rs", "solo", "-o", "json").stdout)
             .get("status", {}).get("replicas") == 3, "three replicas")
    pods = items(cluster, "pods", "solo")
    assert len(pods) == 3
    assert all(p["metadata"]["ownerReferences"][0]["name"] == "solo" for p in pods)
    r = cluster.kubectl("scale", "rs", "solo", "--replicas=0")
    assert r.stdout.strip() == "replicaset.apps/solo scaled"
    wait_for(lambda: not items(cluster, "pods", "solo"), "no pods")
    cluster.kubectl("delete", "rs", "solo")


def test_foreground_and_orphan_cascades(cluster: Cluster) -> None:
    fg = DEPLOYMENT.replace(NAME, "fg")
    cluster.kubectl("apply", "-f", "-", stdin=fg)
    wait_for(lambda: len(items(cluster, "pods", "fg")) == 3, "3 pods")
    # Foreground: the Deployment waits (deletionTimestamp + finalizer) for its ReplicaSet,
    # which waits for its pods; kubectl waits for the Deployment to be gone.
    r = cluster.kubectl("delete", "deployment", "fg", "--cascade=foreground")
    assert r.stdout.strip() == 'deployment.apps "fg" deleted'
    wait_for(lambda: cluster.kubectl("get", "deployment", "fg", check=False).returncode == 1,
             "the Deployment to go")
    assert items(cluster, "replicasets", "fg") == [] and items(cluster, "pods", "fg") == []

    orphan = DEPLOYMENT.replace("kind: Deployment", "kind: ReplicaSet").replace(NAME, "orph")
    cluster.kubectl("apply", "-f", "-", stdin=orphan)
    wait_for(lambda: len(items(cluster, "pods", "orph")) == 3, "3 pods")
    r = cluster.kubectl("delete", "rs", "orph", "--cascade=orphan")
    assert r.stdout.strip() == 'replicaset.apps "orph" deleted'
    wait_for(lambda: cluster.kubectl("get", "rs", "orph", check=False).returncode == 1,
             "the ReplicaSet to go")
    def orphaned() -> list[dict[str, Any]] | None:
        pods = items(cluster, "pods", "orph")
        return pods if all(not p["metadata"].get("ownerReferences") for p in pods) else None

    pods = wait_for(orphaned, "the pods to be orphaned")
    assert len(pods) == 3, "orphaned pods stay"
    cluster.kubectl("delete", "pods", "-l", "app=orph")
