"""Dynamic volumes on a real `svcnet up` cluster: a StatefulSet's claims of the default
``standard`` class get local-path volumes (svcnet/controllers/localpath.py) on the node the
scheduler chose for their first pod, the data outlives the pod, and a released volume's
directory is removed by the helper pod before the volume is deleted. Process runtime (no
images); needs root; the cluster is always removed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.local_clusters import LocalCluster, local_cluster, write_manifest
from tests.waiting import wait_for

pytestmark = pytest.mark.root

WRITER = ("import os, pathlib, time\n"
          "p = pathlib.Path('/data/greeting')\n"
          "if not p.exists(): p.write_text(os.environ['POD_NAME'])\n"
          "pathlib.Path('/data/seen-by-' + os.environ['POD_NAME'] + '-' + "
          "str(len(list(pathlib.Path('/data').iterdir())))).touch()\n"
          "time.sleep(100000)\n")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path_factory, "lp", "--container-runtime", "process") as c:
        yield c


def _get(cluster: LocalCluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json"))


def ready_pod(cluster: LocalCluster, not_uid: str) -> None:
    """Wait until db-0 exists (other than the incarnation ``not_uid``) and is Ready (listed
    by label: a get of the name fails while the set has not made it yet)."""
    def ready() -> bool:
        pods = [p for p in _get(cluster, "pods", "-l", "app=db")["items"]
                if p["metadata"]["name"] == "db-0" and p["metadata"]["uid"] != not_uid]
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for p in pods for c in p["status"].get("conditions") or [])

    wait_for(ready, "db-0 Ready", timeout=90, interval=0.5)


def test_a_statefulset_keeps_its_data_on_a_provisioned_volume(cluster: LocalCluster) -> None:
    classes = _get(cluster, "storageclass")["items"]
    default = [c for c in classes if (c["metadata"].get("annotations") or {}).get(
        "storageclass.kubernetes.io/is-default-class") == "true"]
    assert [c["metadata"]["name"] for c in default] == ["standard"], classes
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
           "spec": {"serviceName": "db", "replicas": 1,
                    "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}}, "spec": {
                        "runtimeClassName": "process", "terminationGracePeriodSeconds": 1,
                        "containers": [{
                            "name": "db", "image": "python",
                            "command": ["python3", "-c", WRITER],
                            "env": [{"name": "POD_NAME", "valueFrom": {
                                "fieldRef": {"fieldPath": "metadata.name"}}}],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}}}}]}}
    cluster.kubectl("apply", "-f", str(write_manifest(cluster.home, [sts])))
    ready_pod(cluster, "")
    claim = _get(cluster, "pvc", "data-db-0")
    assert claim["spec"]["storageClassName"] == "standard", claim
    assert claim["status"]["phase"] == "Bound", claim
    pod = _get(cluster, "pod", "db-0")
    assert claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == \
        pod["spec"]["nodeName"]
    volume = _get(cluster, "pv", claim["spec"]["volumeName"])
    assert volume["spec"]["storageClassName"] == "standard"
    assert volume["spec"]["claimRef"]["name"] == "data-db-0"
    directory = Path(volume["spec"]["hostPath"]["path"])
    assert str(directory).startswith(str(cluster.home)), directory  # removed with the cluster
    wait_for((directory / "greeting").exists, "the pod's first write", timeout=30)
    assert (directory / "greeting").read_text() == "db-0"

    # The pod goes; its successor finds what it wrote.
    first_uid = pod["metadata"]["uid"]
    cluster.kubectl("delete", "pod", "db-0", "--wait=true")
    ready_pod(cluster, first_uid)
    wait_for(lambda: len(list(directory.glob("seen-by-db-0-*"))) == 2,
             "the new pod to see the old pod's files", timeout=30)

    # The set and the claim go: the volume is released, its directory removed, then itself.
    cluster.kubectl("delete", "statefulset", "db", "--wait=true")
    wait_for(lambda: not _get(cluster, "pods", "-l", "app=db")["items"], "db's pods gone",
             timeout=60)
    cluster.kubectl("delete", "pvc", "data-db-0", "--wait=true")

    def volume_gone() -> bool:
        names = {v["metadata"]["name"] for v in _get(cluster, "pv")["items"]}
        return volume["metadata"]["name"] not in names

    wait_for(volume_gone, "the released volume to be deleted", timeout=90)
    assert not directory.exists(), "the helper pod removed the directory"
    wait_for(lambda: not _get(cluster, "pods", "-n", "kube-system", "-l",
                              "app=local-path-helper")["items"],
             "the helper pod to be gone too", timeout=30)
