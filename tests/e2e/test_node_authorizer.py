"""The Node authorizer's rule for ConfigMaps, Secrets, PersistentVolumeClaims and
PersistentVolumes, against the real server with the official Python client: a node reads one
only when a pod bound to it names it (a volume: when its claimRef names such a claim), and
lists or watches only that one object."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from svcnet.apiserver.auth import NODES_GROUP, TokenFile, User
from tests.e2e.conftest import Cluster

NS = "nodeauthz"


def api_as(cluster: Cluster, token: str | None, tmp: Path) -> client.CoreV1Api:
    cfg = yaml.safe_load(cluster.kubeconfig.read_text())
    if token is not None:
        cfg["users"][0]["user"]["token"] = token
    path = tmp / f"kubeconfig-{token or 'admin'}"
    path.write_text(yaml.safe_dump(cfg))
    return client.CoreV1Api(config.new_client_from_config(config_file=str(path)))


@pytest.fixture
def namespace() -> str:
    """The test's namespace (a test that needs another parametrizes it)."""
    return NS


@pytest.fixture
def apis(cluster: Cluster, tmp_path: Path, namespace: str) -> Iterator[tuple[
        client.CoreV1Api, client.CoreV1Api]]:
    TokenFile(cluster.data_dir / "tokens.csv").add(
        "authz-node-token", User("system:node:authz-n1", "", (NODES_GROUP,)))
    admin = api_as(cluster, None, tmp_path)
    node = api_as(cluster, "authz-node-token", tmp_path)
    admin.create_namespace({"metadata": {"name": namespace}})
    try:
        yield admin, node
    finally:
        admin.delete_namespace(namespace)
        admin.api_client.close()
        node.api_client.close()


def test_a_node_reads_only_the_config_maps_and_secrets_its_pods_name(
        apis: tuple[client.CoreV1Api, client.CoreV1Api]) -> None:
    admin, node = apis
    for name in ("used", "unused"):
        admin.create_namespaced_config_map(NS, {"metadata": {"name": name}, "data": {"k": "v"}})
        admin.create_namespaced_secret(NS, {"metadata": {"name": name},
                                            "string_data": {"k": "v"}})
    admin.create_namespaced_pod(NS, {"metadata": {"name": "p"}, "spec": {
        "nodeName": "authz-n1", "containers": [{
            "name": "c", "image": "x",
            "envFrom": [{"configMapRef": {"name": "used"}}]}],
        "volumes": [{"name": "s", "secret": {"secretName": "used"}}]}})
    admin.create_namespaced_pod(NS, {"metadata": {"name": "elsewhere"}, "spec": {
        "nodeName": "authz-n2", "containers": [{"name": "c", "image": "x", "envFrom": [
            {"configMapRef": {"name": "unused"}}]}]}})

    assert node.read_namespaced_config_map("used", NS).data == {"k": "v"}
    assert node.read_namespaced_secret("used", NS).data == {"k": "dg=="}
    one = node.list_namespaced_config_map(NS, field_selector="metadata.name=used")
    assert [c.metadata.name for c in one.items] == ["used"]
    watched = node.list_namespaced_secret(NS, field_selector="metadata.name=used", watch=True,
                                          timeout_seconds=1, _preload_content=False)
    assert watched.status == 200
    watched.release_conn()

    with pytest.raises(client.ApiException) as err:
        node.read_namespaced_secret("unused", NS)  # named only by another node's pod
    assert err.value.status == 403
    assert json.loads(err.value.body)["message"] == (
        'secrets "unused" is forbidden: User "system:node:authz-n1" cannot get resource '
        '"secrets" in API group "" in the namespace "nodeauthz": no relationship found '
        "between node 'authz-n1' and this object")
    for call in (lambda: node.list_namespaced_config_map(NS),
                 node.list_secret_for_all_namespaces,
                 lambda: node.list_namespaced_config_map(
                     NS, field_selector="metadata.name=unused")):
        with pytest.raises(client.ApiException) as err:
            call()
        assert err.value.status == 403
    with pytest.raises(client.ApiException) as err:
        node.create_namespaced_config_map(NS, {"metadata": {"name": "mine"}})
    assert err.value.status == 403
    # Everything else stays readable, as before.
    assert {p.metadata.name for p in node.list_namespaced_pod(NS).items} == {"p", "elsewhere"}


@pytest.mark.parametrize("namespace", ["nodeauthz-pv"])
def test_a_node_reads_the_claims_its_pods_name_and_the_volumes_bound_to_them(
        apis: tuple[client.CoreV1Api, client.CoreV1Api], namespace: str) -> None:
    """upstream's ``node <- pod <- pvc <- pv``: a claim a pod bound to the node names, and a
    volume whose claimRef names such a claim; one object at a time."""
    admin, node = apis
    ns = namespace
    suffix = uuid.uuid4().hex[:8]
    mine, theirs = f"authz-mine-{suffix}", f"authz-theirs-{suffix}"
    for pv, claim in ((mine, "used"), (theirs, "unused")):
        admin.create_persistent_volume({"metadata": {"name": pv}, "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "storageClassName": f"authz-{suffix}", "hostPath": {"path": f"/tmp/{pv}"},
            "claimRef": {"namespace": ns, "name": claim}}})
    try:
        for claim in ("used", "unused"):
            admin.create_namespaced_persistent_volume_claim(ns, {
                "metadata": {"name": claim}, "spec": {
                    "accessModes": ["ReadWriteOnce"], "storageClassName": f"authz-{suffix}",
                    "resources": {"requests": {"storage": "1Gi"}}}})
        for name, node_name, claim in (("p", "authz-n1", "used"),
                                       ("elsewhere", "authz-n2", "unused")):
            admin.create_namespaced_pod(ns, {"metadata": {"name": name}, "spec": {
                "nodeName": node_name, "containers": [{"name": "c", "image": "x"}],
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]}})

        assert node.read_namespaced_persistent_volume_claim("used", ns).metadata.name == "used"
        assert node.read_persistent_volume(mine).spec.host_path.path == f"/tmp/{mine}"
        one = node.list_persistent_volume(field_selector=f"metadata.name={mine}")
        assert [v.metadata.name for v in one.items] == [mine]
        watched = node.list_namespaced_persistent_volume_claim(
            ns, field_selector="metadata.name=used", watch=True, timeout_seconds=1,
            _preload_content=False)
        assert watched.status == 200
        watched.release_conn()

        with pytest.raises(client.ApiException) as err:
            node.read_persistent_volume(theirs)  # its claim is another node's pod's
        assert err.value.status == 403
        assert json.loads(err.value.body)["message"] == (
            f'persistentvolumes "{theirs}" is forbidden: User "system:node:authz-n1" cannot '
            'get resource "persistentvolumes" in API group "" at the cluster scope: no '
            "relationship found between node 'authz-n1' and this object")
        for call in (lambda: node.read_namespaced_persistent_volume_claim("unused", ns),
                     lambda: node.list_namespaced_persistent_volume_claim(ns),
                     node.list_persistent_volume,
                     lambda: node.read_namespaced_persistent_volume_claim_status("used", ns),
                     lambda: node.delete_namespaced_persistent_volume_claim("used", ns)):
            with pytest.raises(client.ApiException) as err:
                call()
            assert err.value.status == 403
    finally:
        for pv in (mine, theirs):
            with contextlib.suppress(client.ApiException):
                admin.delete_persistent_volume(pv)
