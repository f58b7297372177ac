"""RuntimeClasses (node.k8s.io/v1) through a real `svcnet server`, the real kubectl, the
official Python client and raw protobuf requests; the RuntimeClass admission of pods.

The server seeds ``process`` and ``runc`` at start; the session cluster is shared, so each test
makes classes and namespaces of its own (random names) and looks only at those, and at the
seeded two.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from svcnet.api.protobuf import MEDIA_TYPE, STREAM_MEDIA_TYPE
from svcnet.apiserver.auth import NODES_GROUP, TokenFile, User
from tests.e2e.conftest import Cluster, start_server, stop_server
from tests.e2e.test_cli import ok
from tests.e2e.test_protobuf import raw
from tests.kubectl_codec import require_codec

Obj = dict[str, Any]
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
             "or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  "
             "or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _sandbox(name: str, handler: str = "runsc") -> str:
    return (f"apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {{name: {name}}}\n"
            f"handler: {handler}\n"
            "overhead: {podFixed: {cpu: 250m, memory: 64Mi}}\n"
            f"scheduling:\n  nodeSelector: {{sandbox: {name}}}\n"
            "  tolerations: [{key: sandbox, operator: Exists, effect: NoSchedule}]\n")


def _pod(name: str, runtime_class: str, extra: str = "") -> str:
    return (f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n"
            f"  runtimeClassName: {runtime_class}\n"
            f"  containers: [{{name: c, image: busybox, command: [sleep, '60']}}]\n{extra}")


def _namespace(cluster: Cluster) -> str:
    name = _name("rtc")
    cluster.kubectl("create", "namespace", name)
    return name


def _get(cluster: Cluster, *what: str) -> Obj:
    obj: Obj = json.loads(cluster.kubectl("get", *what, "-o", "json").stdout)
    return obj


@pytest.fixture(scope="module")
def node_api(cluster: Cluster) -> Iterator[client.NodeV1Api]:
    api = config.new_client_from_config(str(cluster.kubeconfig))
    try:
        yield client.NodeV1Api(api)
    finally:
        api.close()


# ------------------------------------------------------------------------- kubectl


def test_seeded_classes_are_listed_with_their_handlers(cluster: Cluster) -> None:
    for args in ((), ("-o", "wide")):
        lines = cluster.kubectl("get", "runtimeclasses", *args).stdout.splitlines()
        assert lines[0].split() == ["NAME", "HANDLER", "AGE"]
        rows = {line.split()[0]: line.split()[1] for line in lines[1:]}
        assert rows["process"] == "process" and rows["runc"] == "runc"
    resources = cluster.kubectl("api-resources", "--api-group=node.k8s.io").stdout.splitlines()
    assert resources[1].split() == ["runtimeclasses", "node.k8s.io/v1", "false", "RuntimeClass"]
    seeded = _get(cluster, "runtimeclass", "runc")
    assert seeded["handler"] == "runc" and "labels" not in seeded["metadata"]


def test_create_from_a_manifest_get_describe_delete(cluster: Cluster) -> None:
    name = _name("gvisor")
    out = cluster.kubectl("create", "-f", "-", stdin=_sandbox(name)).stdout
    assert out.strip() == f"runtimeclass.node.k8s.io/{name} created"
    rc = _get(cluster, "runtimeclass", name)
    assert rc["handler"] == "runsc"
    assert rc["overhead"] == {"podFixed": {"cpu": "250m", "memory": "64Mi"}}
    assert rc["scheduling"]["nodeSelector"] == {"sandbox": name}
    assert "namespace" not in rc["metadata"]
    desc = cluster.kubectl("describe", "runtimeclass", name).stdout
    assert "Handler:      runsc" in desc and "Pod Fixed:" in desc
    # svcnet's own CLI knows the kind and prints what kubectl prints.
    assert ok(cluster, "describe", "runtimeclass", name) == desc
    assert ok(cluster, "get", "runtimeclasses", name).split()[:-1] == cluster.kubectl(
        "get", "runtimeclasses", name).stdout.split()[:-1]
    again = cluster.kubectl("create", "-f", "-", stdin=_sandbox(name), check=False)
    assert f'runtimeclasses.node.k8s.io "{name}" already exists' in again.stderr
    assert cluster.kubectl("delete", "runtimeclass", name).stdout.strip() == (
        f'runtimeclass.node.k8s.io "{name}" deleted')


def test_explain_handler(cluster: Cluster) -> None:
    out = cluster.kubectl("explain", "runtimeclass.handler").stdout
    assert "GROUP:      node.k8s.io" in out and "KIND:       RuntimeClass" in out
    assert "FIELD: handler <string>" in out
    assert "handler specifies the underlying runtime and configuration that the CRI" in out
    fields = cluster.kubectl("explain", "runtimeclass.scheduling").stdout
    assert "tolerations\t<[]Toleration>" in fields


def test_an_invalid_handler_is_a_422_on_its_field(cluster: Cluster,
                                                  node_api: client.NodeV1Api) -> None:
    name = _name("bad")
    r = cluster.kubectl("create", "-f", "-", stdin=_sandbox(name, "Not_A_Label"), check=False)
    assert r.returncode != 0
    assert r.stderr.strip() == (f'The RuntimeClass "{name}" is invalid: handler: Invalid value: '
                                f'"Not_A_Label": {LABEL_MSG}')
    with pytest.raises(ApiException) as err:
        node_api.create_runtime_class({"metadata": {"name": name}, "handler": ""})
    assert err.value.status == 422
    status = json.loads(err.value.body)
    assert status["reason"] == "Invalid"
    assert status["details"] == {"name": name, "group": "node.k8s.io", "kind": "RuntimeClass",
                                 "causes": [{"reason": "FieldValueInvalid",
                                             "message": f'Invalid value: "": {LABEL_MSG}',
                                             "field": "handler"}]}
    assert cluster.kubectl("get", "runtimeclass", name, check=False).returncode != 0


def test_the_handler_is_immutable(cluster: Cluster) -> None:
    name = _name("fixed")
    cluster.kubectl("create", "-f", "-", stdin=_sandbox(name))
    r = cluster.kubectl("patch", "runtimeclass", name, "--type=merge", "-p",
                        '{"handler": "other"}', check=False)
    assert r.stderr.strip() == (f'The RuntimeClass "{name}" is invalid: handler: Invalid value: '
                                '"other": field is immutable')
    # The rest may change; server-side apply owns nodeSelector as one atomic map.
    cluster.kubectl("label", "runtimeclass", name, "tier=sandbox")
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=(
        f"apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {{name: {name}}}\n"
        "handler: runsc\nscheduling: {nodeSelector: {zone: a}}\n"))
    rc = _get(cluster, "runtimeclass", name)
    assert rc["metadata"]["labels"] == {"tier": "sandbox"}
    assert rc["scheduling"]["nodeSelector"] == {"zone": "a"}
    cluster.kubectl("delete", "runtimeclass", name)


# ------------------------------------------------------------------------- admission


def test_a_pod_naming_an_unknown_class_is_forbidden(cluster: Cluster) -> None:
    ns = _namespace(cluster)
    r = cluster.kubectl("create", "-n", ns, "-f", "-", stdin=_pod("p", "no-such-class"),
                        check=False)
    assert r.returncode != 0
    assert r.stderr.strip() == ('Error from server (Forbidden): error when creating "STDIN": '
                                'pods "p" is forbidden: pod rejected: RuntimeClass '
                                '"no-such-class" not found')
    core = client.CoreV1Api(config.new_client_from_config(str(cluster.kubeconfig)))
    body = {"metadata": {"generateName": "gen-"},
            "spec": {"runtimeClassName": "no-such-class",
                     "containers": [{"name": "c", "image": "busybox"}]}}
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(ns, body)
    assert err.value.status == 403
    status = json.loads(err.value.body)
    assert status["reason"] == "Forbidden"
    # Admission runs before the name is generated, so the pod is named by its generateName.
    assert status["message"] == ('pods "gen-" is forbidden: pod rejected: RuntimeClass '
                                 '"no-such-class" not found')
    assert cluster.kubectl("get", "pods", "-n", ns, "-o", "name").stdout == ""


def test_a_pod_takes_its_class_overhead_and_scheduling(cluster: Cluster) -> None:
    name, ns = _name("sandboxed"), _namespace(cluster)
    cluster.kubectl("create", "-f", "-", stdin=_sandbox(name))
    cluster.kubectl("create", "-n", ns, "-f", "-", stdin=_pod("p", name, (
        "  nodeSelector: {disk: ssd}\n")))
    spec = _get(cluster, "pod", "p", "-n", ns)["spec"]
    assert spec["runtimeClassName"] == name
    assert spec["overhead"] == {"cpu": "250m", "memory": "64Mi"}
    assert spec["nodeSelector"] == {"disk": "ssd", "sandbox": name}
    assert {"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"]
    conflict = cluster.kubectl("create", "-n", ns, "-f", "-", stdin=_pod("q", name, (
        "  nodeSelector: {sandbox: elsewhere}\n")), check=False)
    assert (f"pods \"q\" is forbidden: conflict: runtimeClass.scheduling.nodeSelector[sandbox] "
            f"= {name}; pod.spec.nodeSelector[sandbox] = elsewhere") in conflict.stderr
    stray = cluster.kubectl("create", "-n", ns, "-f", "-", stdin=_pod("r", "runc", (
        "  overhead: {cpu: '1'}\n")), check=False)
    assert ('pods "r" is forbidden: pod rejected: Pod Overhead set without corresponding '
            "RuntimeClass defined Overhead") in stray.stderr
    cluster.kubectl("delete", "pod", "p", "-n", ns, "--wait=false")
    cluster.kubectl("delete", "runtimeclass", name)


# ----------------------------------------------------------------- the Python client


def test_python_client_node_v1_api(node_api: client.NodeV1Api) -> None:
    names = {rc.metadata.name: rc.handler for rc in node_api.list_runtime_class().items}
    assert names["process"] == "process" and names["runc"] == "runc"
    name = _name("kata")
    made = node_api.create_runtime_class(client.V1RuntimeClass(
        metadata=client.V1ObjectMeta(name=name), handler="kata",
        overhead=client.V1Overhead(pod_fixed={"cpu": "100m"})))
    assert made.overhead.pod_fixed == {"cpu": "100m"}
    assert node_api.read_runtime_class(name).handler == "kata"
    node_api.patch_runtime_class(name, {"metadata": {"labels": {"a": "b"}}})
    assert node_api.read_runtime_class(name).metadata.labels == {"a": "b"}
    node_api.delete_runtime_class(name)
    assert name not in {rc.metadata.name for rc in node_api.list_runtime_class().items}


def test_a_node_reads_runtime_classes_and_writes_none(cluster: Cluster,
                                                     tmp_path: Path) -> None:
    node_name = _name("rtc-node")
    token = f"{node_name}-token"
    TokenFile(cluster.data_dir / "tokens.csv").add(
        token, User(f"system:node:{node_name}", "", (NODES_GROUP,)))
    cfg = yaml.safe_load(cluster.kubeconfig.read_text())
    cfg["users"][0]["user"]["token"] = token
    path = tmp_path / "node-kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    api_client = config.new_client_from_config(config_file=str(path))
    try:
        node = client.NodeV1Api(api_client)
        assert node.read_runtime_class("runc").handler == "runc"
        assert {"process", "runc"} <= {rc.metadata.name for rc in
                                       node.list_runtime_class().items}
        watched = node.list_runtime_class(watch=True, timeout_seconds=1,
                                          _preload_content=False)
        assert watched.status == 200
        watched.read()  # to its end (timeoutSeconds), so the connection can serve again
        watched.release_conn()
        with pytest.raises(ApiException) as err:
            node.create_runtime_class({"metadata": {"name": node_name}, "handler": "x"})
        assert err.value.status == 403
        message = json.loads(err.value.body)["message"]
        assert message.startswith("runtimeclasses.node.k8s.io ")
        assert message.endswith(
            f'is forbidden: User "system:node:{node_name}" cannot create resource '
            '"runtimeclasses" in API group "node.k8s.io" at the cluster scope')
    finally:
        api_client.close()


# ------------------------------------------------------------------------- protobuf


def test_protobuf_create_get_list_and_watch(cluster: Cluster) -> None:
    codec = require_codec()
    name = _name("pb")
    body = codec.encode({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                         "metadata": {"name": name}, "handler": "runsc",
                         "scheduling": {"tolerations": [{"operator": "Exists"}]}})
    path = "/apis/node.k8s.io/v1/runtimeclasses"
    code, ctype, answer = raw(cluster, "POST", path, body)
    assert (code, ctype) == (201, MEDIA_TYPE)
    made = codec.decode(answer)
    assert (made["kind"], made["handler"]) == ("RuntimeClass", "runsc")
    assert made["scheduling"] == {"tolerations": [{"operator": "Exists"}]}
    assert _get(cluster, "runtimeclass", name)["handler"] == "runsc", "stored as sent"

    code, _, answer = raw(cluster, "GET", f"{path}/{name}")
    assert code == 200 and codec.decode(answer)["metadata"]["uid"] == made["metadata"]["uid"]
    code, _, answer = raw(cluster, "GET", path)
    listed = codec.decode(answer)
    assert listed["kind"] == "RuntimeClassList"
    assert {"process", "runc", name} <= {i["metadata"]["name"] for i in listed["items"]}

    bad = codec.encode({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                        "metadata": {"name": _name("pb")}, "handler": "a.b"})
    code, _, answer = raw(cluster, "POST", path, bad)
    status = codec.decode(answer)
    assert code == 422 and status["details"]["causes"][0]["field"] == "handler"

    code, ctype, frames = raw(cluster, "GET", f"{path}?watch=1&timeoutSeconds=1"
                              f"&fieldSelector=metadata.name%3D{name}",
                              accept=STREAM_MEDIA_TYPE)
    assert (code, ctype) == (200, STREAM_MEDIA_TYPE)
    assert [(t, o["kind"], o["metadata"]["name"], o["handler"])
            for t, o in codec.read_frames(frames)] == [("ADDED", "RuntimeClass", name, "runsc")]
    code, _, _ = raw(cluster, "DELETE", f"{path}/{name}")
    assert code == 200


# -------------------------------------------------------------- seeding across restarts


def test_seeding_is_idempotent_and_keeps_a_users_changes(tmp_path: Path) -> None:
    data_dir = tmp_path / "server"
    data_dir.mkdir()
    proc = start_server(data_dir)
    try:
        first = Cluster(data_dir, data_dir / "kubeconfig", proc, tmp_path / "cache")
        uid = _get(first, "runtimeclass", "runc")["metadata"]["uid"]
        first.kubectl("label", "runtimeclass", "runc", "owner=me")
        first.kubectl("delete", "runtimeclass", "process")
    finally:
        assert stop_server(proc) == 0
    proc = start_server(data_dir)
    try:
        second = Cluster(data_dir, data_dir / "kubeconfig", proc, tmp_path / "cache")
        runc = _get(second, "runtimeclass", "runc")
        assert runc["metadata"]["uid"] == uid, "an existing class is never recreated"
        assert runc["metadata"]["labels"] == {"owner": "me"}, "nor changed"
        assert _get(second, "runtimeclass", "process")["handler"] == "process", (
            "a missing one comes back at the next start")
        names = [line.split()[0] for line in
                 second.kubectl("get", "runtimeclasses", "--no-headers").stdout.splitlines()]
        assert names == ["process", "runc"]
    finally:
        assert stop_server(proc) == 0
