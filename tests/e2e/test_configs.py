"""ConfigMaps, Secrets and ServiceAccounts through a real `svcnet server`, the real kubectl and
the official Python client.

``kubectl create configmap|secret|serviceaccount`` send their object as protobuf (decoded with
the descriptors of the installed kubectl, svcnet/api/kubectl_descriptors.py); the generators
are driven here as ``--dry-run=client -o yaml`` piped into ``kubectl apply``/``create -f -``
(JSON on the wire) and directly (protobuf); tests/e2e/test_protobuf.py covers every generator.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.e2e.conftest import Cluster
from tests.e2e.test_cli import ok
from tests.waiting import wait_for

IMMUTABLE = "field is immutable when `immutable` is set"


def _namespace(cluster: Cluster) -> str:
    name = f"cfg-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("apply", "-f", "-", stdin=f"apiVersion: v1\nkind: Namespace\n"
                                               f"metadata: {{name: {name}}}\n")
    return name


def _generated(cluster: Cluster, ns: str, *args: str) -> str:
    """``kubectl create ARGS --dry-run=client -o yaml`` piped into ``kubectl apply``."""
    manifest = cluster.kubectl("create", *args, "-n", ns, "--dry-run=client", "-o", "yaml").stdout
    return cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=manifest).stdout.strip()


def _get(cluster: Cluster, ns: str, *what: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(cluster.kubectl("get", "-n", ns, *what, "-o", "json").stdout)
    return obj


def _decoded(data: dict[str, str]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def _rows(cluster: Cluster, ns: str, kind: str) -> list[list[str]]:
    return [line.split() for line in cluster.kubectl("get", kind, "-n", ns).stdout.splitlines()]


# ----------------------------------------------------------------------- kubectl create ...


def test_create_configmap_from_literal_and_file(cluster: Cluster, tmp_path: Path) -> None:
    ns = _namespace(cluster)
    (tmp_path / "app.properties").write_text("color=blue\nsize=2\n")
    assert _generated(cluster, ns, "configmap", "lit", "--from-literal=a=1",
                      "--from-literal=b=two") == "configmap/lit created"
    assert _generated(cluster, ns, "configmap", "files",
                      f"--from-file={tmp_path / 'app.properties'}") == "configmap/files created"
    assert _get(cluster, ns, "cm", "lit")["data"] == {"a": "1", "b": "two"}
    assert _get(cluster, ns, "cm", "files")["data"] == {"app.properties": "color=blue\nsize=2\n"}
    rows = _rows(cluster, ns, "cm")
    assert rows[0] == ["NAME", "DATA", "AGE"]
    # Every namespace also holds the cluster CA (the root CA publisher's kube-root-ca.crt).
    assert [r[:2] for r in rows[1:]] == [["files", "1"], ["kube-root-ca.crt", "1"],
                                         ["lit", "2"]]
    desc = cluster.kubectl("describe", "configmap", "lit", "-n", ns).stdout
    # kubectl ranges over the data map in Go's random order: one block per key.
    assert "a:\n----\n1\n\n" in desc and "b:\n----\ntwo\n\n" in desc
    assert cluster.kubectl("delete", "cm", "lit", "-n", ns).stdout.strip() == (
        'configmap "lit" deleted')
    r = cluster.kubectl("get", "cm", "lit", "-n", ns, check=False)
    assert 'configmaps "lit" not found' in r.stderr


def test_create_secrets_generic_tls_docker_registry(cluster: Cluster) -> None:
    ns = _namespace(cluster)
    # The server's own serving certificate and key make a valid pair (kubectl checks it).
    pki = cluster.data_dir / "pki"
    assert _generated(cluster, ns, "secret", "generic", "gen", "--from-literal=user=me",
                      "--from-literal=pass=pw") == "secret/gen created"
    assert _generated(cluster, ns, "secret", "tls", "tls", f"--cert={pki / 'apiserver.crt'}",
                      f"--key={pki / 'apiserver.key'}") == "secret/tls created"
    assert _generated(cluster, ns, "secret", "docker-registry", "reg",
                      "--docker-server=registry.example", "--docker-username=u",
                      "--docker-password=p") == "secret/reg created"

    gen = _get(cluster, ns, "secret", "gen")
    assert gen["type"] == "Opaque" and _decoded(gen["data"]) == {"user": "me", "pass": "pw"}
    reg = _get(cluster, ns, "secret", "reg")
    assert reg["type"] == "kubernetes.io/dockerconfigjson"
    auths = json.loads(_decoded(reg["data"])[".dockerconfigjson"])["auths"]
    assert auths["registry.example"]["username"] == "u"
    rows = _rows(cluster, ns, "secrets")
    assert rows[0] == ["NAME", "TYPE", "DATA", "AGE"]
    assert [r[:3] for r in rows[1:]] == [["gen", "Opaque", "2"],
                                         ["reg", "kubernetes.io/dockerconfigjson", "1"],
                                         ["tls", "kubernetes.io/tls", "2"]]
    by_type = cluster.kubectl("get", "secrets", "-n", ns, "--field-selector",
                              "type=kubernetes.io/tls", "-o", "name").stdout.split()
    assert by_type == ["secret/tls"]
    desc = cluster.kubectl("describe", "secret", "gen", "-n", ns).stdout
    assert "Type:  Opaque" in desc and "pass:  2 bytes" in desc and "pw" not in desc
    cluster.kubectl("delete", "secret", "gen", "reg", "-n", ns)
    assert [r[0] for r in _rows(cluster, ns, "secrets")[1:]] == ["tls"]


def test_create_serviceaccount(cluster: Cluster) -> None:
    ns = _namespace(cluster)
    assert _generated(cluster, ns, "serviceaccount", "builder") == (
        "serviceaccount/builder created")
    cluster.kubectl("patch", "sa", "builder", "-n", ns, "-p",
                    '{"secrets": [{"name": "gone", "namespace": "x", "uid": "u"}]}')
    sa = _get(cluster, ns, "sa", "builder")
    assert sa["secrets"] == [{"name": "gone"}]  # cleanSecretReferences: names only
    rows = _rows(cluster, ns, "sa")
    assert rows[0] == ["NAME", "SECRETS", "AGE"]
    assert [r[:2] for r in rows[1:]] == [["builder", "1"], ["default", "0"]]
    desc = cluster.kubectl("describe", "sa", "builder", "-n", ns).stdout
    assert "Mountable secrets:   gone (not found)" in desc
    cluster.kubectl("delete", "sa", "builder", "-n", ns)
    assert [r[0] for r in _rows(cluster, ns, "sa")[1:]] == ["default"]


def test_kubectl_create_generators_directly(cluster: Cluster) -> None:
    ns = _namespace(cluster)
    r = cluster.kubectl("create", "configmap", "direct", "--from-literal=a=b", "-n", ns,
                        check=False)
    assert r.returncode == 0, r.stderr
    assert _get(cluster, ns, "configmap", "direct")["data"] == {"a": "b"}


# --------------------------------------------------------------------------- manifests


_APP = """\
apiVersion: v1
kind: ServiceAccount
metadata: {name: app, labels: {app: x}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config, labels: {app: x}}
data: {LOG_LEVEL: info}
---
apiVersion: v1
kind: Secret
metadata: {name: app-secret, labels: {app: x}}
stringData: {password: PASSWORD}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app, labels: {app: x}}
spec:
  replicas: 1
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec:
      serviceAccountName: app
      containers:
      - name: app
        image: busybox
        envFrom: [{configMapRef: {name: app-config}}, {secretRef: {name: app-secret}}]
---
apiVersion: v1
kind: Service
metadata: {name: app, labels: {app: x}}
spec:
  selector: {app: x}
  ports: [{port: 80}]
"""
_KINDS = ("serviceaccount/app", "configmap/app-config", "secret/app-secret",
          "deployment.apps/app", "service/app")


def _password(cluster: Cluster, ns: str) -> str:
    return _decoded(_get(cluster, ns, "secret", "app-secret")["data"])["password"]


@pytest.mark.parametrize("server_side", [False, True], ids=["client-side", "server-side"])
def test_multi_document_manifest(cluster: Cluster, server_side: bool) -> None:
    ns = _namespace(cluster)
    flags = ["--server-side"] if server_side else []
    first = cluster.kubectl("apply", *flags, "-n", ns, "-f", "-",
                            stdin=_APP.replace("PASSWORD", "s3cret")).stdout.split("\n")
    verb = "serverside-applied" if server_side else "created"
    assert first == [f"{k} {verb}" for k in _KINDS] + [""]
    assert _password(cluster, ns) == "s3cret"
    secret = _get(cluster, ns, "secret", "app-secret")
    assert "stringData" not in secret and secret["type"] == "Opaque"
    cluster.kubectl("apply", *flags, "-n", ns, "-f", "-", stdin=_APP.replace("PASSWORD", "n3w"))
    assert _password(cluster, ns) == "n3w"
    assert _get(cluster, ns, "cm", "app-config")["data"] == {"LOG_LEVEL": "info"}
    assert _get(cluster, ns, "sa", "app")["metadata"]["labels"] == {"app": "x"}


def _left(cluster: Cluster, ns: str) -> list[str]:
    """What prune may have left (the root CA publisher's ConfigMap is no one's to prune)."""
    names = cluster.kubectl("get", "cm,secret,svc,deploy", "-n", ns, "-o", "name").stdout
    return [n for n in names.split() if n != "configmap/kube-root-ca.crt"]


def test_apply_prune_by_label(cluster: Cluster) -> None:
    ns = _namespace(cluster)
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=_APP.replace("PASSWORD", "p"))
    only = _APP.split("---\n")[:2]
    # kubectl's default allowlist: every kind on it is served, so kubectl can map them all
    out = cluster.kubectl("apply", "-n", ns, "--prune", "-l", "app=x", "-f", "-",
                          stdin="---\n".join(only)).stdout.splitlines()
    assert out == ["serviceaccount/app unchanged", "configmap/app-config unchanged",
                   "secret/app-secret pruned", "service/app pruned", "deployment.apps/app pruned"]
    assert _left(cluster, ns) == ["configmap/app-config"]


def test_apply_prune_with_an_applyset(cluster: Cluster) -> None:
    """ApplySet pruning (KEP-3659) keeps its parent record in a Secret."""
    ns = _namespace(cluster)
    env = {"KUBECTL_APPLYSET": "true"}
    cluster.kubectl("apply", "-n", ns, "--prune", "--applyset=app-set", "-f", "-",
                    stdin=_APP.replace("PASSWORD", "p"), env=env)
    parent = _get(cluster, ns, "secret", "app-set")
    assert parent["metadata"]["labels"]["applyset.kubernetes.io/id"].startswith("applyset-")
    out = cluster.kubectl("apply", "-n", ns, "--prune", "--applyset=app-set", "-f", "-",
                          stdin="---\n".join(_APP.split("---\n")[:2]), env=env).stdout
    assert "secret/app-secret pruned" in out and "service/app pruned" in out
    assert _left(cluster, ns) == ["configmap/app-config", "secret/app-set"]


# -------------------------------------------------------------------------- validation


def _apply_error(cluster: Cluster, ns: str, manifest: str) -> str:
    r = cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=manifest, check=False)
    assert r.returncode == 1, r.stdout
    return r.stderr


def test_validation_errors_show_upstreams_messages(cluster: Cluster) -> None:
    ns = _namespace(cluster)
    err = _apply_error(cluster, ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\n"
                                    "data: {'a*b': '1', '..': '2', dup: '3'}\n"
                                    "binaryData: {dup: eQ==}\n")
    assert err == (
        'The ConfigMap "bad" is invalid: \n'
        "* data[..]: Invalid value: \"..\": must not be '..'\n"
        '* data[a*b]: Invalid value: "a*b": a valid config key must consist of alphanumeric '
        "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex "
        "used for validation is '[-._a-zA-Z0-9]+')\n"
        '* data[dup]: Invalid value: "dup": duplicate of key present in binaryData\n')
    err = _apply_error(cluster, ns, "apiVersion: v1\nkind: Secret\nmetadata: {name: b64}\n"
                                    "data: {a: 'not base64!'}\n")
    assert err == ('Error from server (BadRequest): error when creating "STDIN": Secret in '
                   'version "v1" cannot be handled as a Secret: illegal base64 data at input '
                   "byte 3\n")
    err = _apply_error(cluster, ns, "apiVersion: v1\nkind: Secret\nmetadata: {name: t}\n"
                                    "type: kubernetes.io/tls\n")
    assert err == ('The Secret "t" is invalid: \n* data[tls.crt]: Required value\n'
                   "* data[tls.key]: Required value\n")
    err = _apply_error(cluster, ns, "apiVersion: v1\nkind: Secret\nmetadata: {name: d}\n"
                                    "type: kubernetes.io/dockerconfigjson\n"
                                    "stringData: {.dockerconfigjson: '{nope'}\n")
    assert err == ('The Secret "d" is invalid: data[.dockerconfigjson]: Invalid value: '
                   "\"<secret contents redacted>\": invalid character 'n' looking for beginning "
                   "of object key string\n")
    err = _apply_error(cluster, ns, "apiVersion: v1\nkind: Secret\nmetadata: {name: sat}\n"
                                    "type: kubernetes.io/service-account-token\n")
    assert err == ('The Secret "sat" is invalid: metadata.annotations[kubernetes.io/'
                   "service-account.name]: Required value\n")
    cluster.kubectl("apply", "-n", ns, "-f", "-",
                    stdin="apiVersion: v1\nkind: Secret\nmetadata: {name: o}\n")
    err = _apply_error(cluster, ns, "apiVersion: v1\nkind: Secret\nmetadata: {name: o}\n"
                                    "type: kubernetes.io/basic-auth\n"
                                    "stringData: {username: u}\n")
    assert err == ('The Secret "o" is invalid: type: Invalid value: "kubernetes.io/basic-auth": '
                   "field is immutable\n")
    err = _apply_error(cluster, ns, "apiVersion: v1\nkind: Pod\nmetadata: {name: tok}\n"
                                    "spec:\n  containers: [{name: c, image: busybox}]\n"
                                    "  volumes: [{name: t, projected: {sources: ["
                                    "{serviceAccountToken: {expirationSeconds: 60}}]}}]\n")
    assert err == (
        'The Pod "tok" is invalid: \n'
        "* spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds: Invalid "
        "value: 60: may not specify a duration less than 10 minutes\n"
        "* spec.volumes[0].projected.path: Required value\n")


def test_immutable_config_map_refuses_updates(cluster: Cluster) -> None:
    ns = _namespace(cluster)
    frozen = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\nimmutable: true\n"
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=frozen + "data: {a: '1'}\n")
    err = _apply_error(cluster, ns, frozen + "data: {a: '2'}\n")
    assert err == f'The ConfigMap "frozen" is invalid: data: Forbidden: {IMMUTABLE}\n'
    r = cluster.kubectl("patch", "cm", "frozen", "-n", ns, "-p", '{"immutable": false}',
                        check=False)
    assert r.stderr == f'The ConfigMap "frozen" is invalid: immutable: Forbidden: {IMMUTABLE}\n'
    # Metadata still changes, and the ConfigMap can be deleted and recreated.
    cluster.kubectl("label", "cm", "frozen", "-n", ns, "tier=gold")
    cluster.kubectl("delete", "cm", "frozen", "-n", ns)
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=frozen + "data: {a: '2'}\n")
    assert _get(cluster, ns, "cm", "frozen")["data"] == {"a": "2"}


# ------------------------------------------------------------ the ServiceAccounts controller


def test_default_service_account_appears_and_comes_back(cluster: Cluster) -> None:
    ns = _namespace(cluster)

    def default_uid() -> str | None:
        r = cluster.kubectl("get", "sa", "default", "-n", ns, "-o",
                            "jsonpath={.metadata.uid}", check=False)
        return r.stdout or None

    first = wait_for(default_uid, "the default ServiceAccount", timeout=20)
    cluster.kubectl("delete", "sa", "default", "-n", ns)
    second = wait_for(lambda: (uid := default_uid()) != first and uid,
                      "the default ServiceAccount to come back", timeout=20)
    assert second and second != first


# ------------------------------------------------------------------ the Python client


@pytest.fixture
def core(cluster: Cluster) -> Iterator[client.CoreV1Api]:
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield client.CoreV1Api(api_client)
    finally:
        api_client.close()


def test_python_client_config_map(cluster: Cluster, core: client.CoreV1Api) -> None:
    ns = _namespace(cluster)
    created = core.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="py"), data={"a": "1"},
        binary_data={"bin": base64.b64encode(b"\x00\xff").decode()}))
    assert created.metadata.uid and created.binary_data == {"bin": "AP8="}
    got = core.read_namespaced_config_map("py", ns)
    assert got.data == {"a": "1"}
    patched = core.patch_namespaced_config_map("py", ns, {"data": {"b": "2"}})
    assert patched.data == {"a": "1", "b": "2"}
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map(ns, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="big"), data={"a": "x" * (1024 * 1024 + 1)}))
    assert e.value.status == 422
    status = json.loads(e.value.body)
    assert status["message"] == ('ConfigMap "big" is invalid: : Too long: may not be more than '
                                 "1048576 bytes")
    core.delete_namespaced_config_map("py", ns)
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("py", ns)
    assert e.value.status == 404


def test_python_client_secret(cluster: Cluster, core: client.CoreV1Api) -> None:
    ns = _namespace(cluster)
    created = core.create_namespaced_secret(ns, client.V1Secret(
        metadata=client.V1ObjectMeta(name="py"), string_data={"token": "t0"},
        data={"token": base64.b64encode(b"lost").decode(), "kept": "a2VwdA=="}))
    assert created.type == "Opaque" and created.string_data is None
    assert _decoded(created.data) == {"token": "t0", "kept": "kept"}
    patched = core.patch_namespaced_secret("py", ns, {"stringData": {"token": "t1"}})
    assert _decoded(patched.data) == {"token": "t1", "kept": "kept"}
    read = core.read_namespaced_secret("py", ns)
    assert read.data == patched.data
    with pytest.raises(ApiException) as e:
        core.create_namespaced_secret(ns, {"metadata": {"name": "b"}, "data": {"a": "YQ"}})
    assert e.value.status == 400
    assert json.loads(e.value.body)["message"] == (
        'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input '
        "byte 0")
    core.delete_namespaced_secret("py", ns)
    assert [s.metadata.name for s in core.list_namespaced_secret(ns).items] == []


def test_python_client_service_account(cluster: Cluster, core: client.CoreV1Api) -> None:
    ns = _namespace(cluster)
    created = core.create_namespaced_service_account(ns, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="py"), automount_service_account_token=False,
        image_pull_secrets=[client.V1LocalObjectReference(name="pull")]))
    assert created.automount_service_account_token is False
    patched = core.patch_namespaced_service_account(
        "py", ns, {"metadata": {"labels": {"team": "a"}}})
    assert patched.metadata.labels == {"team": "a"}
    assert patched.image_pull_secrets[0].name == "pull"
    names = {sa.metadata.name for sa in core.list_namespaced_service_account(ns).items}
    assert "py" in names
    core.delete_namespaced_service_account("py", ns)
    with pytest.raises(ApiException) as e:
        core.read_namespaced_service_account("py", ns)
    assert e.value.status == 404


# ------------------------------------------------------------------ svcnet's own CLI


def test_svcnet_get_and_describe_match_kubectl(cluster: Cluster) -> None:
    ns = _namespace(cluster)
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\ndata: {only: value}\n"
        "binaryData: {blob: AAEC}\n---\n"
        "apiVersion: v1\nkind: Secret\nmetadata: {name: one}\nstringData: {only: value}\n---\n"
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: one}\n"
        "secrets: [{name: one}, {name: missing}]\n"))
    for kind in ("cm", "secret", "sa"):
        # One key each: kubectl orders map keys at random, svcnet sorts them.
        assert ok(cluster, "describe", kind, "one", "-n", ns) == cluster.kubectl(
            "describe", kind, "one", "-n", ns).stdout
        # All but the age, which may tick between the two commands.
        assert ok(cluster, "get", kind, "one", "-n", ns).split()[:-1] == cluster.kubectl(
            "get", kind, "one", "-n", ns).stdout.split()[:-1]


def test_owned_config_objects_are_garbage_collected(cluster: Cluster) -> None:
    """A ConfigMap, Secret and ServiceAccount owned by a Deployment go with it."""
    ns = _namespace(cluster)
    cluster.kubectl("-n", ns, "create", "-f", "-", stdin=json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "owner"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "owner"}},
                 "template": {"metadata": {"labels": {"app": "owner"}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}}}))
    uid = _get(cluster, ns, "deployment", "owner")["metadata"]["uid"]
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "owner", "uid": uid}
    for kind in ("ConfigMap", "Secret", "ServiceAccount"):
        cluster.kubectl("-n", ns, "create", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": kind,
            "metadata": {"name": "owned", "ownerReferences": [ref]}}))
    cluster.kubectl("-n", ns, "delete", "deployment", "owner")

    def gone() -> bool:
        out = cluster.kubectl("-n", ns, "get", "configmap,secret,serviceaccount", "-o",
                              "name").stdout
        return "/owned" not in out
    wait_for(gone, what="owned ConfigMap, Secret and ServiceAccount collected")


def test_a_tls_secret_whose_key_does_not_match_is_stored_with_a_warning(
        cluster: Cluster) -> None:
    """warningsForSecret: Go's tls.X509KeyPair error comes back as a Warning header (kubectl
    prints it), on create and on update; the Secret is stored all the same."""
    ns = _namespace(cluster)
    pki = cluster.data_dir / "pki"
    crt = base64.b64encode((pki / "apiserver.crt").read_bytes()).decode()
    ca_key = base64.b64encode((pki / "ca.key").read_bytes()).decode()
    own_key = base64.b64encode((pki / "apiserver.key").read_bytes()).decode()

    def apply(key: str) -> str:
        doc = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
               "metadata": {"name": "mismatched", "namespace": ns},
               "data": {"tls.crt": crt, "tls.key": key}}
        return cluster.kubectl("apply", "-f", "-", stdin=json.dumps(doc)).stderr

    warning = "Warning: tls: private key does not match public key"
    assert warning in apply(ca_key)
    assert _get(cluster, ns, "secret", "mismatched")["data"]["tls.key"] == ca_key
    assert warning not in apply(own_key)
    assert warning in apply(ca_key)
