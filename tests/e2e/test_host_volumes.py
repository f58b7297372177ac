"""hostPath and persistentVolumeClaim volumes on a real `svcnet up` cluster, process runtime
(svcnet/node/volumes.py, hostpath.py; docs/DESIGN.md §4a).

* A pod with a ``hostPath`` volume (``DirectoryOrCreate``, under this test's own temporary
  directory) writes a file the test then reads on the host; the same directory mounted
  ``readOnly`` refuses writes. A ``Directory`` that does not exist keeps a pod waiting with a
  ``FailedMount`` Event in the kubelet's words.
* A static PersistentVolume (``hostPath``, under the same directory) and a claim bound to it by
  svcnet's PV binder: a pod that names the claim before it exists waits (``FailedMount``),
  starts once the claim binds (the node watches the claim and then its volume: the node
  authorizer lets it), and writes; that pod is deleted and a new one, on whichever node,
  reads the same file through a read-only claim (a simulated node's host is the machine).

Needs root; the cluster and the temporary directory are always removed.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.local_clusters import LocalCluster, local_cluster, write_manifest
from tests.waiting import wait_for

pytestmark = pytest.mark.root

Obj = dict[str, Any]
WRITE_AND_TRY_READ_ONLY = (
    "import sys\n"
    "open('/data/' + sys.argv[1], 'w').write(sys.argv[2])\n"
    "try:\n"
    "    open('/ro/' + sys.argv[1] + '.ro', 'w')\n"
    "    print('read-only mount was writable')\n"
    "except OSError as e:\n"
    "    print('read-only:', e.strerror)\n")


@pytest.fixture(scope="module")
def host_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("svcnet-hostvolumes")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path_factory, "hv", "--container-runtime", "process") as c:
        yield c


def _pod(name: str, command: list[str], volumes: list[Obj], mounts: list[Obj]) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "runtimeClassName": "process", "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 1, "volumes": volumes,
        "containers": [{"name": "main", "image": "python", "command": command,
                        "volumeMounts": mounts}]}}


def _apply(cluster: LocalCluster, docs: list[Obj]) -> None:
    cluster.kubectl("apply", "-f", str(write_manifest(cluster.home, docs)))


def _phase(cluster: LocalCluster, pod: str) -> str:
    return str(json.loads(cluster.kubectl("get", "pod", pod, "-o", "json"))["status"].get(
        "phase"))


def _succeeded(cluster: LocalCluster, pod: str) -> None:
    wait_for(lambda: _phase(cluster, pod) == "Succeeded", f"pod {pod} to succeed",
             timeout=60, interval=0.5)


def _events(cluster: LocalCluster, pod: str, reason: str) -> list[str]:
    events = json.loads(cluster.kubectl(
        "get", "events", "--field-selector", f"involvedObject.name={pod}", "-o", "json"))
    return [e["message"] for e in events["items"] if e["reason"] == reason]


def _failed_mounts(cluster: LocalCluster, pod: str) -> list[str]:
    return _events(cluster, pod, "FailedMount")


def _waiting_reason(cluster: LocalCluster, pod: str) -> str:
    pod_obj = json.loads(cluster.kubectl("get", "pod", pod, "-o", "json"))
    statuses = pod_obj["status"].get("containerStatuses") or [{}]
    return str((statuses[0].get("state") or {}).get("waiting", {}).get("reason"))


def test_a_host_path_volume_is_the_hosts_directory(cluster: LocalCluster,
                                                   host_dir: Path) -> None:
    shared = host_dir / "shared" / "made"
    _apply(cluster, [_pod(
        "hp-writer", ["python3", "-c", WRITE_AND_TRY_READ_ONLY, "out.txt", "from the pod"],
        [{"name": "data", "hostPath": {"path": str(shared), "type": "DirectoryOrCreate"}}],
        [{"name": "data", "mountPath": "/data"},
         {"name": "data", "mountPath": "/ro", "readOnly": True}])])
    _succeeded(cluster, "hp-writer")
    assert (shared / "out.txt").read_text() == "from the pod"
    assert shared.stat().st_mode & 0o777 == 0o755
    assert cluster.kubectl("logs", "hp-writer").strip() == (
        "read-only: Read-only file system")
    assert not (shared / "out.txt.ro").exists()

    missing = host_dir / "no-such-dir"
    _apply(cluster, [_pod(
        "hp-missing", ["python3", "-c", "pass"],
        [{"name": "data", "hostPath": {"path": str(missing), "type": "Directory"}}],
        [{"name": "data", "mountPath": "/data"}])])
    message = f'MountVolume.SetUp failed for volume "data" : hostPath {missing} doesn\'t exist'
    wait_for(lambda: message in _failed_mounts(cluster, "hp-missing"),
             "the FailedMount event", timeout=30, interval=0.5)
    assert _waiting_reason(cluster, "hp-missing") == "ContainerCreating"
    assert not missing.exists()
    missing.mkdir()  # the next pod sync (within 5 s) finds it and starts the container
    _succeeded(cluster, "hp-missing")
    cluster.kubectl("delete", "pod", "hp-writer", "hp-missing", "--wait=false")


def test_a_claim_bound_to_a_static_volume_outlives_its_pods(cluster: LocalCluster,
                                                            host_dir: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    pv_name, cls, claim = f"hv-pv-{suffix}", f"hv-{suffix}", "data"
    pv_path = host_dir / "pv"
    _apply(cluster, [{"apiVersion": "v1", "kind": "PersistentVolume",
                      "metadata": {"name": pv_name}, "spec": {
                          "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                          "storageClassName": cls,
                          "hostPath": {"path": str(pv_path), "type": "DirectoryOrCreate"}}}])
    claim_volume = {"name": "data", "persistentVolumeClaim": {"claimName": claim}}
    # The scheduler keeps a pod whose claim is missing Pending (VolumeBinding)...
    _apply(cluster, [_pod("pvc-pending", ["true"], [claim_volume],
                          [{"name": "data", "mountPath": "/data"}])])
    scheduling = '0/2 nodes are available: persistentvolumeclaim "data" not found.'
    wait_for(lambda: scheduling in _events(cluster, "pvc-pending", "FailedScheduling"),
             "the FailedScheduling event of the missing claim", timeout=30, interval=0.5)
    assert not json.loads(cluster.kubectl("get", "pod", "pvc-pending", "-o", "json"))[
        "spec"].get("nodeName")
    cluster.kubectl("delete", "pod", "pvc-pending", "--wait=false")
    # ...and a pod bound to a node by its spec reaches the node, which waits for the claim.
    writer = _pod("pvc-writer", ["python3", "-c", WRITE_AND_TRY_READ_ONLY, "kept.txt",
                                 "written by the first pod"],
                  [claim_volume, {"name": "ro", "persistentVolumeClaim": {
                      "claimName": claim, "readOnly": True}}],
                  [{"name": "data", "mountPath": "/data"}, {"name": "ro", "mountPath": "/ro"}])
    writer["spec"]["nodeName"] = "node-1"
    _apply(cluster, [writer])
    not_found = ('error processing PVC default/data: failed to fetch PVC from API server: '
                 'persistentvolumeclaims "data" not found')
    wait_for(lambda: any(not_found in m for m in _failed_mounts(cluster, "pvc-writer")),
             "the FailedMount event of the missing claim", timeout=30, interval=0.5)
    assert _waiting_reason(cluster, "pvc-writer") == "ContainerCreating"

    _apply(cluster, [{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                      "metadata": {"name": claim}, "spec": {
                          "accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                          "resources": {"requests": {"storage": "1Gi"}}}}])
    _succeeded(cluster, "pvc-writer")
    pvc = json.loads(cluster.kubectl("get", "pvc", claim, "-o", "json"))
    assert pvc["status"]["phase"] == "Bound" and pvc["spec"]["volumeName"] == pv_name
    assert (pv_path / "kept.txt").read_text() == "written by the first pod"
    assert cluster.kubectl("logs", "pvc-writer").strip() == "read-only: Read-only file system"

    cluster.kubectl("delete", "pod", "pvc-writer", "--timeout=60s")
    _apply(cluster, [_pod("pvc-reader", ["python3", "-c",
                                         "print(open('/data/kept.txt').read())"],
                          [claim_volume], [{"name": "data", "mountPath": "/data",
                                            "readOnly": True}])])
    _succeeded(cluster, "pvc-reader")
    assert cluster.kubectl("logs", "pvc-reader").strip() == "written by the first pod"
    cluster.kubectl("delete", "pod", "pvc-reader", "--wait=false")
