"""The ServiceAccount admission of new pods (plugin/pkg/admission/serviceaccount)."""

from __future__ import annotations

import random
from typing import Any

from svcnet.api.podaccount import MOUNT_PATH, admit_pod_service_account


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "a"}, {"name": "b", "volumeMounts": [
                {"name": "mine", "mountPath": "/data"}]}], **spec}}


def test_default_account_and_api_access_volume() -> None:
    out = admit_pod_service_account(pod(), None, random.Random(1))
    spec = out["spec"]
    assert (spec["serviceAccountName"], spec["serviceAccount"]) == ("default", "default")
    [volume] = spec["volumes"]
    assert volume["name"].startswith("kube-api-access-") and len(volume["name"]) == 21
    assert volume["projected"] == {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt",
                                                               "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}
    mount = {"name": volume["name"], "readOnly": True, "mountPath": MOUNT_PATH}
    assert spec["containers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][1]["volumeMounts"] == [{"name": "mine", "mountPath": "/data"},
                                                     mount]
    assert "volumes" not in pod()["spec"], "the input is not changed"


def test_opting_out() -> None:
    assert "volumes" not in admit_pod_service_account(
        pod(automountServiceAccountToken=False), None)["spec"]
    assert "volumes" not in admit_pod_service_account(
        pod(serviceAccountName="bot"), {"automountServiceAccountToken": False})["spec"]
    forced = admit_pod_service_account(pod(automountServiceAccountToken=True),
                                       {"automountServiceAccountToken": False})
    assert len(forced["spec"]["volumes"]) == 1, "the pod's own setting wins"


def test_a_container_with_its_own_credentials_keeps_them() -> None:
    own = {"name": "creds", "mountPath": MOUNT_PATH}
    spec = pod()["spec"]
    spec["containers"] = [{"name": "a", "volumeMounts": [own]}]
    out = admit_pod_service_account({"metadata": {}, "spec": spec}, None)
    assert out["spec"]["containers"][0]["volumeMounts"] == [own]
    assert "volumes" not in out["spec"]


def test_the_accounts_image_pull_secrets_unless_the_pod_names_some() -> None:
    account = {"imagePullSecrets": [{"name": "regcred"}]}
    assert admit_pod_service_account(pod(), account)["spec"]["imagePullSecrets"] == [
        {"name": "regcred"}]
    own = admit_pod_service_account(pod(imagePullSecrets=[{"name": "mine"}]), account)
    assert own["spec"]["imagePullSecrets"] == [{"name": "mine"}]
    assert "imagePullSecrets" not in admit_pod_service_account(pod(), {})["spec"]
