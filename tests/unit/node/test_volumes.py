"""Volume payloads (configMap, secret, downwardAPI, projected), the atomic writer's layout, and
container mounts: pure planning over dicts, and the writer over a temporary directory."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from svcnet.node.atomicwriter import DATA_DIR, read_payload, write_payload
from svcnet.node.volumes import (
    FileProjection,
    Mount,
    TokenKey,
    VolumeError,
    container_mounts,
    pod_token_keys,
    volume_dir,
    volume_payload,
)

Obj = dict[str, Any]

OBJECTS: dict[tuple[str, str, str], Obj] = {
    ("ConfigMap", "ns", "cm"): {"data": {"a.conf": "A", "b.conf": "B"},
                                "binaryData": {"blob": base64.b64encode(b"\x00\x01").decode()}},
    ("Secret", "ns", "sec"): {"data": {"user": base64.b64encode(b"admin").decode()}},
}
POD: Obj = {"metadata": {"name": "web-1", "namespace": "ns", "uid": "u-1",
                         "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "resources": {"limits": {"cpu": "500m"}}}]}}


def lookup(kind: str, namespace: str, name: str) -> Obj | None:
    return OBJECTS.get((kind, namespace, name))


def files(volume: Obj) -> dict[str, tuple[bytes, int]] | None:
    payload = volume_payload(POD, {"name": "v", **volume}, lookup, {"cpu": "4"})
    return None if payload is None else {k: (v.data, v.mode) for k, v in payload.items()}


def test_config_map_all_keys_with_default_mode() -> None:
    assert files({"configMap": {"name": "cm"}}) == {
        "a.conf": (b"A", 0o644), "b.conf": (b"B", 0o644), "blob": (b"\x00\x01", 0o644)}
    assert files({"configMap": {"name": "cm", "defaultMode": 0o400}})["a.conf"] == (  # type: ignore[index]
        b"A", 0o400)


def test_config_map_items_paths_and_modes() -> None:
    assert files({"configMap": {"name": "cm", "defaultMode": 0o440, "items": [
        {"key": "a.conf", "path": "conf/app.conf", "mode": 0o600},
        {"key": "b.conf", "path": "b"}]}}) == {
        "conf/app.conf": (b"A", 0o600), "b": (b"B", 0o440)}


@pytest.mark.parametrize(("volume", "message"), [
    ({"configMap": {"name": "nope"}}, 'configmap "nope" not found'),
    ({"configMap": {"name": "cm", "items": [{"key": "zz", "path": "z"}]}},
     "configmap references non-existent config key: zz"),
    ({"secret": {"secretName": "nope"}}, 'secret "nope" not found'),
    ({"secret": {"secretName": "sec", "items": [{"key": "zz", "path": "z"}]}},
     "references non-existent secret key: zz"),
    ({"downwardAPI": {"items": [{"path": "x", "fieldRef": {"fieldPath": "spec.nodeName"}}]}},
     "unsupported fieldPath: spec.nodeName"),
    ({"projected": {"sources": [{"configMap": {"name": "nope"}},
                                {"secret": {"name": "gone"}}]}},
     '[configmap "nope" not found, secret "gone" not found]'),
    ({"projected": {"sources": [{"clusterTrustBundle": {"path": "ca.crt"}}]}},
     "projected clusterTrustBundle sources are not supported by svcnet"),
])
def test_volume_errors(volume: Obj, message: str) -> None:
    with pytest.raises(VolumeError) as err:
        files(volume)
    assert str(err.value) == message


def test_optional_missing_objects_and_keys_give_what_exists() -> None:
    assert files({"configMap": {"name": "nope", "optional": True}}) == {}
    assert files({"secret": {"secretName": "sec", "optional": True, "items": [
        {"key": "user", "path": "u"}, {"key": "zz", "path": "z"}]}}) == {"u": (b"admin", 0o644)}


def test_downward_api_and_projected() -> None:
    assert files({"downwardAPI": {"defaultMode": 0o444, "items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}, "mode": 0o400},
        {"path": "cpu", "resourceFieldRef": {"containerName": "app",
                                             "resource": "limits.cpu", "divisor": "1m"}},
    ]}}) == {"labels": (b'app="web"', 0o444), "name": (b"web-1", 0o400), "cpu": (b"500", 0o444)}
    assert files({"projected": {"defaultMode": 0o400, "sources": [
        {"configMap": {"name": "cm", "items": [{"key": "a.conf", "path": "x"}]}},
        {"secret": {"name": "sec"}},
        {"downwardAPI": {"items": [{"path": "x", "fieldRef": {
            "fieldPath": "metadata.namespace"}}]}},
    ]}}) == {"x": (b"ns", 0o400), "user": (b"admin", 0o400)}  # later sources win


KUBE_API_ACCESS: Obj = {"name": "kube-api-access-x7k2p", "projected": {
    "defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt",
                                                              "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}
SA_POD: Obj = {**POD, "spec": {**POD["spec"], "serviceAccountName": "robot",
                               "volumes": [KUBE_API_ACCESS]}}


def test_service_account_token_projection_with_the_token_the_lookup_gives() -> None:
    asked: list[TokenKey] = []

    def tokens(key: TokenKey) -> str:
        asked.append(key)
        return f"jwt-for-{key.service_account}"

    OBJECTS[("ConfigMap", "ns", "kube-root-ca.crt")] = {"data": {"ca.crt": "PEM"}}
    try:
        payload = volume_payload(SA_POD, KUBE_API_ACCESS, lookup, tokens=tokens)
    finally:
        del OBJECTS[("ConfigMap", "ns", "kube-root-ca.crt")]
    assert payload == {"token": FileProjection(b"jwt-for-robot", 0o644),
                       "ca.crt": FileProjection(b"PEM", 0o644),
                       "namespace": FileProjection(b"ns", 0o644)}
    key = TokenKey("ns", "robot", "web-1", "u-1", "", 3607)
    assert asked == [key]
    assert pod_token_keys(SA_POD) == {key}


def test_service_account_token_defaults_and_mode() -> None:
    source = {"serviceAccountToken": {"path": "t", "audience": "vault"}}
    pod: Obj = {**POD, "spec": {**POD["spec"], "volumes": [
        {"name": "v", "projected": {"defaultMode": 0o440, "sources": [source]}}]}}
    # No serviceAccountName: "default"; no expirationSeconds: 3600.
    assert pod_token_keys(pod) == {TokenKey("ns", "default", "web-1", "u-1", "vault", 3600)}
    payload = volume_payload(pod, pod["spec"]["volumes"][0], lookup, tokens=lambda _k: "x")
    assert payload == {"t": FileProjection(b"x", 0o440)}
    # With an fsGroup, or one runAsUser for every container, the token file is 0600.
    for spec in ({"securityContext": {"fsGroup": 2000}},
                 {"securityContext": {"runAsUser": 1000}},
                 {"containers": [{"name": "a", "securityContext": {"runAsUser": 7}}]}):
        owned = {**pod, "spec": {**pod["spec"], **spec}}
        assert volume_payload(owned, pod["spec"]["volumes"][0], lookup,
                              tokens=lambda _k: "x") == {"t": FileProjection(b"x", 0o600)}
    # Containers that disagree (or one without a user) give no fsUser.
    mixed = {**pod, "spec": {**pod["spec"], "containers": [
        {"name": "a", "securityContext": {"runAsUser": 7}}, {"name": "b"}]}}
    assert volume_payload(mixed, pod["spec"]["volumes"][0], lookup,
                          tokens=lambda _k: "x") == {"t": FileProjection(b"x", 0o440)}


def test_service_account_token_failure_joins_the_other_sources_errors() -> None:
    def tokens(_key: TokenKey) -> str:
        raise VolumeError('failed to fetch token: serviceaccounts "robot" not found')

    with pytest.raises(VolumeError) as err:
        volume_payload(SA_POD, KUBE_API_ACCESS, lookup, tokens=tokens)
    assert str(err.value) == ('[failed to fetch token: serviceaccounts "robot" not found, '
                              'configmap "kube-root-ca.crt" not found]')
    # A runner given no token source says so.
    with pytest.raises(VolumeError, match="kube client is not configured"):
        volume_payload(SA_POD, {"name": "t", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token"}}]}}, lookup)


def test_empty_dir_has_no_payload() -> None:
    assert files({"emptyDir": {}}) is None


def test_container_mounts_sorted_read_only_and_sub_paths() -> None:
    pod = {**POD, "spec": {"volumes": [
        {"name": "conf", "configMap": {"name": "cm"}}, {"name": "data", "emptyDir": {}}]}}
    mounts = container_mounts(pod, {"name": "app", "volumeMounts": [
        {"name": "conf", "mountPath": "/etc/app/conf.d/a.conf", "subPath": "a.conf"},
        {"name": "data", "mountPath": "/data"},
        {"name": "data", "mountPath": "/srv/ro", "readOnly": True}]}, Path("/s/pods/u-1"))
    conf = "/s/pods/u-1/volumes/kubernetes.io~configmap/conf"
    data = "/s/pods/u-1/volumes/kubernetes.io~empty-dir/data"
    assert mounts == [Mount(data, "/data", False, data), Mount(data, "/srv/ro", True, data),
                      Mount(f"{conf}/a.conf", "/etc/app/conf.d/a.conf", True, conf)]
    by_env = container_mounts(pod, {"name": "app", "volumeMounts": [
        {"name": "data", "mountPath": "/d", "subPathExpr": "$(POD_NAME)/logs"}]},
        Path("/s/pods/u-1"), {"POD_NAME": "web-1"})
    assert by_env[0].source == f"{data}/web-1/logs"
    assert volume_dir(Path("/p"), {"name": "x", "secret": {}}) == Path(
        "/p/volumes/kubernetes.io~secret/x")
    with pytest.raises(VolumeError, match=r"must not contain '\.\.'"):
        container_mounts(pod, {"name": "app", "volumeMounts": [
            {"name": "data", "mountPath": "/d", "subPath": "../x"}]}, Path("/p"))
    with pytest.raises(VolumeError, match='volume "n": nfs volumes are not supported'):
        container_mounts({"spec": {"volumes": [
            {"name": "n", "nfs": {"server": "s", "path": "/"}}]}},
            {"name": "app", "volumeMounts": [{"name": "n", "mountPath": "/n"}]}, Path("/p"))


# --- the atomic writer ------------------------------------------------------------------------


def p(**files: bytes) -> dict[str, FileProjection]:
    return {k.replace("__", "/"): FileProjection(v, 0o644) for k, v in files.items()}


def test_atomic_writer_layout_update_and_cleanup(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    assert write_payload(target, {**p(a=b"1"), "dir/b": FileProjection(b"2", 0o600)})
    data = os.readlink(target / DATA_DIR)
    assert data.startswith("..") and (target / data).is_dir()
    assert os.readlink(target / "a") == "..data/a"
    assert os.readlink(target / "dir") == "..data/dir"
    assert (target / "dir" / "b").read_bytes() == b"2"
    assert (target / "dir" / "b").stat().st_mode & 0o777 == 0o600

    assert not write_payload(target, {**p(a=b"1"), "dir/b": FileProjection(b"2", 0o600)})
    assert os.readlink(target / DATA_DIR) == data, "unchanged: nothing rewritten"

    assert write_payload(target, p(a=b"changed", c=b"3"))
    assert os.readlink(target / DATA_DIR) != data
    assert not (target / data).exists(), "the old version is removed"
    assert (target / "a").read_bytes() == b"changed"
    assert not (target / "dir").is_symlink(), "paths that are gone lose their symlinks"
    assert sorted(os.listdir(target)) == sorted(
        [DATA_DIR, os.readlink(target / DATA_DIR), "a", "c"])
    assert read_payload(target) == p(a=b"changed", c=b"3")

    assert write_payload(target, {**p(a=b"changed", c=b"3"),
                                  "a": FileProjection(b"changed", 0o400)}), "a mode change"


@pytest.mark.parametrize("path", ["/abs", "../up", "x/../y", "..hidden", ""])
def test_atomic_writer_refuses_bad_paths(tmp_path: Path, path: str) -> None:
    with pytest.raises(VolumeError, match="invalid path"):
        write_payload(tmp_path / "vol", {path: FileProjection(b"", 0o644)})
