"""Local-path volumes (svcnet/controllers/localpath.py and the scheduler's volume binding in
svcnet/controllers/scheduler.py): what the scheduler asks of a node for a pod's claims, the
volume made for a claim on its node, and the helper pod that removes a released one."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.api.storageclasses import LOCAL_PATH_ROOT_ANNOTATION
from svcnet.controllers.localpath import (
    ProvisionError,
    deletable_path,
    helper_pod,
    volume_for,
    volume_node,
)
from svcnet.controllers.scheduler import PodVolumes, choose_node, pod_volumes
from tests.unit.controllers.test_scheduler_nodes import node

Obj = dict[str, Any]

STANDARD: Obj = {"metadata": {"name": "standard"}, "provisioner": "svcnet.io/local-path",
                 "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"}
IMMEDIATE: Obj = {"metadata": {"name": "fast"}, "provisioner": "example.com/x",
                  "volumeBindingMode": "Immediate"}


def claim(name: str, *, cls: str = "standard", volume: str = "", deleting: bool = False) -> Obj:
    meta: Obj = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "7"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    spec: Obj = {"storageClassName": cls, "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}}
    if volume:
        spec["volumeName"] = volume
    return {"metadata": meta, "spec": spec}


def pv_on(name: str, host: str) -> Obj:
    return {"metadata": {"name": name}, "spec": {"nodeAffinity": {"required": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}]}}}}


def pod_with(*claims: str) -> Obj:
    return {"metadata": {"name": "p", "namespace": "ns"}, "status": {"phase": "Pending"},
            "spec": {"volumes": [{"name": c, "persistentVolumeClaim": {"claimName": c}}
                                 for c in claims] + [{"name": "tmp", "emptyDir": {}}]}}


def lookups(claims: list[Obj], volumes: list[Obj]) -> tuple[Any, Any, Any]:
    by_key = {f"ns/{c['metadata']['name']}": c for c in claims}
    by_name = {v["metadata"]["name"]: v for v in volumes}
    classes = {"standard": STANDARD, "fast": IMMEDIATE}
    return by_key.get, by_name.get, classes.get


def test_claims_decide_which_nodes_may_take_the_pod() -> None:
    claims = [claim("bound", volume="pv-1"), claim("later")]
    got = pod_volumes(pod_with("bound", "later"), *lookups(claims, [pv_on("pv-1", "b")]))
    assert got.error == "" and [c["metadata"]["name"] for c in got.delayed] == ["later"]
    decision = choose_node(pod_with("bound"), [node("a", labels={"kubernetes.io/hostname": "a"}),
                                               node("b", labels={"kubernetes.io/hostname": "b"})],
                           {"b": 9}, got)
    assert decision.node == "b", "the bound volume's node, however busy"
    only_a = [node("a", labels={"kubernetes.io/hostname": "a"})]
    assert choose_node(pod_with("bound"), only_a, {}, got).reason == (
        "0/1 nodes are available: 1 node(s) had volume node affinity conflict.")


@pytest.mark.parametrize(("claims", "error"), [
    ([], 'persistentvolumeclaim "c" not found'),
    ([claim("c", deleting=True)], 'persistentvolumeclaim "c" is being deleted'),
    ([claim("c", cls="fast")], "pod has unbound immediate PersistentVolumeClaims"),
    ([claim("c", cls="")], "pod has unbound immediate PersistentVolumeClaims"),
    ([claim("c", volume="gone")], "pvc c bound to non-existent pv gone"),
])
def test_claims_that_keep_the_pod_pending(claims: list[Obj], error: str) -> None:
    got = pod_volumes(pod_with("c"), *lookups(claims, []))
    assert got == PodVolumes(error=error)
    assert choose_node(pod_with("c"), [node("a")], {}, got).reason == (
        f"0/1 nodes are available: {error}.")


def test_volume_for_a_claim_on_its_node() -> None:
    host = node("n1")
    host["metadata"]["annotations"] = {LOCAL_PATH_ROOT_ANNOTATION: "/state/local-path/"}
    pv = volume_for(claim("data"), {**STANDARD, "mountOptions": ["noatime"]}, host)
    assert pv["metadata"] == {"name": "pvc-uid-data", "annotations": {
        "pv.kubernetes.io/provisioned-by": "svcnet.io/local-path"}}
    spec = pv["spec"]
    assert spec["hostPath"] == {"path": "/state/local-path/pvc-uid-data_ns_data",
                                "type": "DirectoryOrCreate"}
    assert spec["capacity"] == {"storage": "1Gi"} and spec["accessModes"] == ["ReadWriteOnce"]
    assert (spec["persistentVolumeReclaimPolicy"], spec["storageClassName"],
            spec["volumeMode"], spec["mountOptions"]) == ("Delete", "standard", "Filesystem",
                                                          ["noatime"])
    assert spec["claimRef"] == {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                "namespace": "ns", "name": "data", "uid": "uid-data",
                                "resourceVersion": "7"}
    assert volume_node(pv) == "n1"
    assert deletable_path(pv, host) == "/state/local-path/pvc-uid-data_ns_data"
    helper = helper_pod(pv, deletable_path(pv, host))
    assert helper["metadata"]["name"] == "delete-pvc-uid-data"
    assert helper["spec"]["nodeName"] == "n1"
    assert helper["spec"]["runtimeClassName"] == "process"
    assert helper["spec"]["containers"][0]["command"] == [
        "rm", "-rf", "--", "/state/local-path/pvc-uid-data_ns_data"]


def test_volume_for_refuses_what_it_cannot_make() -> None:
    with pytest.raises(ProvisionError, match="does not say where its local volumes go"):
        volume_for(claim("data"), STANDARD, node("n1"))
    host = node("n1")
    host["metadata"]["annotations"] = {LOCAL_PATH_ROOT_ANNOTATION: "/r"}
    block = claim("data")
    block["spec"]["volumeMode"] = "Block"
    with pytest.raises(ProvisionError, match="Filesystem volumes only"):
        volume_for(block, STANDARD, host)


def test_only_the_provisioners_own_directory_is_ever_deleted() -> None:
    host = node("n1")
    host["metadata"]["annotations"] = {LOCAL_PATH_ROOT_ANNOTATION: "/state/local-path"}
    pv = volume_for(claim("data"), STANDARD, host)
    edited = {**pv, "spec": {**pv["spec"], "hostPath": {"path": "/home"}}}
    with pytest.raises(ProvisionError, match="refusing to delete '/home'"):
        deletable_path(edited, host)
    unpinned = {**pv, "spec": {k: v for k, v in pv["spec"].items() if k != "nodeAffinity"}}
    with pytest.raises(ProvisionError, match="on node ''"):
        deletable_path(unpinned, None)
    with pytest.raises(ProvisionError):
        deletable_path(pv, node("n1"))  # a node that no longer says where its volumes go


def test_a_claim_whose_node_was_chosen_stays_on_it() -> None:
    chosen = claim("later")
    chosen["metadata"]["annotations"] = {"volume.kubernetes.io/selected-node": "b"}
    got = pod_volumes(pod_with("later"), *lookups([chosen], []))
    nodes = [node("a"), node("b")]
    assert choose_node(pod_with("later"), nodes, {"b": 9}, got).node == "b"
    assert choose_node(pod_with("later"), nodes[:1], {}, got).reason == (
        "0/1 nodes are available: 1 node(s) didn't find available persistent volumes to "
        "bind.")


def test_the_beta_class_annotation_counts() -> None:
    beta = claim("old", cls="")
    del beta["spec"]["storageClassName"]
    beta["metadata"]["annotations"] = {"volume.beta.kubernetes.io/storage-class": "standard"}
    got = pod_volumes(pod_with("old"), *lookups([beta], []))
    assert got.error == "" and len(got.delayed) == 1
