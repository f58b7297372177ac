"""StorageClasses (storage.k8s.io/v1) through a real `svcnet server`, the real kubectl and the
official Python client; the DefaultStorageClass admission of PersistentVolumeClaims.

The server seeds ``standard`` (the default class) at start. The session cluster is shared: each
test makes classes and namespaces of its own (random names), none of them a default class, so
no other test's claims change class.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.e2e.conftest import Cluster
from tests.e2e.test_runtimeclasses import _get, _name


def _class(name: str, extra: str = "", provisioner: str = "example.com/fast") -> str:
    return (f"apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {{name: {name}}}\n"
            f"provisioner: {provisioner}\n{extra}")


def _claim(name: str, extra: str = "") -> str:
    return (f"apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}}}\nspec:\n"
            f"  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n"
            f"{extra}")


@pytest.fixture(scope="module")
def storage_api(cluster: Cluster) -> Iterator[client.StorageV1Api]:
    api = config.new_client_from_config(str(cluster.kubeconfig))
    try:
        yield client.StorageV1Api(api)
    finally:
        api.close()


def test_the_default_class_exists_after_start(cluster: Cluster) -> None:
    lines = cluster.kubectl("get", "sc").stdout.splitlines()
    assert lines[0].split() == ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE",
                                "ALLOWVOLUMEEXPANSION", "AGE"]
    rows = {line.split("  ")[0].strip(): line.split() for line in lines[1:]}
    assert rows["standard (default)"][2:6] == ["svcnet.io/local-path", "Delete",
                                               "WaitForFirstConsumer", "false"]
    resources = cluster.kubectl("api-resources",
                                "--api-group=storage.k8s.io").stdout.splitlines()
    assert resources[1].split() == ["storageclasses", "sc", "storage.k8s.io/v1", "false",
                                    "StorageClass"]
    seeded = _get(cluster, "storageclass", "standard")
    assert seeded["metadata"]["annotations"] == {
        "storageclass.kubernetes.io/is-default-class": "true"}


def test_apply_get_and_validation(cluster: Cluster) -> None:
    name = _name("fast")
    out = cluster.kubectl("apply", "-f", "-", stdin=_class(
        name, "reclaimPolicy: Retain\nallowVolumeExpansion: true\nparameters: {type: ssd}\n"
              "mountOptions: [noatime]\n")).stdout
    assert out.strip() == f"storageclass.storage.k8s.io/{name} created"
    row = cluster.kubectl("get", "sc", name, "--no-headers").stdout.split()
    assert row[:5] == [name, "example.com/fast", "Retain", "Immediate", "true"]
    # A label may change (apply again); parameters may not.
    out = cluster.kubectl("apply", "-f", "-", stdin=_class(
        name, "reclaimPolicy: Retain\nallowVolumeExpansion: false\nparameters: {type: ssd}\n"
              "mountOptions: [noatime]\n")).stdout
    assert out.strip() == f"storageclass.storage.k8s.io/{name} configured"
    r = cluster.kubectl("apply", "-f", "-", stdin=_class(
        name, "reclaimPolicy: Retain\nparameters: {type: hdd}\nmountOptions: [noatime]\n"),
        check=False)
    assert r.returncode != 0
    assert (f'The StorageClass "{name}" is invalid: parameters: Forbidden: updates to '
            "parameters are forbidden.") in r.stderr
    bad = cluster.kubectl("create", "-f", "-", stdin=_class(
        _name("bad"), "reclaimPolicy: Recycle\nvolumeBindingMode: Later\n"), check=False)
    assert 'reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain"' \
        in bad.stderr
    assert ('volumeBindingMode: Unsupported value: "Later": supported values: "Immediate", '
            '"WaitForFirstConsumer"') in bad.stderr
    cluster.kubectl("delete", "sc", name)


def test_a_claim_without_a_class_gets_the_default(cluster: Cluster) -> None:
    ns = _name("sc")
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=_claim("plain") + "---\n" + _claim(
        "none", "  storageClassName: ''\n"))
    plain = _get(cluster, "pvc", "-n", ns, "plain")
    assert plain["spec"]["storageClassName"] == "standard"
    assert _get(cluster, "pvc", "-n", ns, "none")["spec"]["storageClassName"] == ""
    # WaitForFirstConsumer: the binder leaves it Pending for the provisioner (no pod yet).
    assert plain["status"]["phase"] == "Pending"
    assert "volume.kubernetes.io/storage-provisioner" not in plain["metadata"].get(
        "annotations", {})
    row = cluster.kubectl("get", "pvc", "-n", ns, "plain", "--no-headers").stdout.split()
    assert row[1] == "Pending" and "standard" in row
    cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_the_python_client(cluster: Cluster, storage_api: client.StorageV1Api) -> None:
    name = _name("py")
    made = storage_api.create_storage_class(client.V1StorageClass(
        metadata=client.V1ObjectMeta(name=name), provisioner="example.com/py",
        volume_binding_mode="WaitForFirstConsumer",
        allowed_topologies=[client.V1TopologySelectorTerm(match_label_expressions=[
            client.V1TopologySelectorLabelRequirement(key="topology.kubernetes.io/zone",
                                                      values=["a"])])]))
    assert (made.reclaim_policy, made.volume_binding_mode) == ("Delete", "WaitForFirstConsumer")
    read = storage_api.read_storage_class(name)
    assert read.provisioner == "example.com/py"
    assert read.allowed_topologies[0].match_label_expressions[0].values == ["a"]
    assert name in [c.metadata.name for c in storage_api.list_storage_class().items]
    with pytest.raises(ApiException) as err:
        storage_api.create_storage_class(client.V1StorageClass(
            metadata=client.V1ObjectMeta(name=_name("bad")), provisioner="Bad Provisioner"))
    assert err.value.status == 422
    causes = json.loads(err.value.body)["details"]["causes"]
    assert [c["field"] for c in causes] == ["provisioner"]
    storage_api.delete_storage_class(name)
    with pytest.raises(ApiException) as err:
        storage_api.read_storage_class(name)
    assert err.value.status == 404
