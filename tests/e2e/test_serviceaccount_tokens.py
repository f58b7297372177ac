"""ServiceAccount credentials through the real server: TokenRequest, bound tokens used as
credentials (authenticated, RBAC-governed, dead with their pod), and kube-root-ca.crt."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config

from tests.e2e.conftest import Cluster
from tests.e2e.test_http_errors import request
from tests.waiting import wait_for


def _body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


@pytest.fixture(scope="module")
def namespace(cluster: Cluster) -> str:
    code, body = request(cluster, "POST", "/api/v1/namespaces", _body(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sa-tokens"}}))
    assert code == 201, body
    wait_for(lambda: request(cluster, "GET",
                             "/api/v1/namespaces/sa-tokens/serviceaccounts/default")[0] == 200,
             what="the default ServiceAccount")
    return "sa-tokens"


def token_for(cluster: Cluster, namespace: str, spec: dict[str, Any] | None = None,
              account: str = "default") -> tuple[int, dict[str, Any]]:
    return request(cluster, "POST",
                   f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
                   _body({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                          "spec": spec or {}}))


def test_root_ca_is_published_in_every_namespace(cluster: Cluster, namespace: str) -> None:
    ca = (cluster.data_dir / "pki" / "ca.crt").read_text()
    path = f"/api/v1/namespaces/{namespace}/configmaps/kube-root-ca.crt"

    def published() -> bool:
        code, cm = request(cluster, "GET", path)
        return code == 200 and cm["data"] == {"ca.crt": ca}
    wait_for(published, what="kube-root-ca.crt")
    code, cm = request(cluster, "GET", path)
    assert code == 200
    cm["data"]["ca.crt"] = "tampered"
    assert request(cluster, "PUT", path, _body(cm))[0] == 200
    wait_for(published, what="kube-root-ca.crt restored")
    assert request(cluster, "DELETE", path)[0] == 200
    wait_for(published, what="kube-root-ca.crt recreated")


def test_token_request_gives_a_working_rbac_governed_credential(
        cluster: Cluster, namespace: str) -> None:
    code, answer = token_for(cluster, namespace)
    assert code == 201, answer
    assert answer["kind"] == "TokenRequest"
    assert answer["spec"]["expirationSeconds"] == 3600
    assert answer["spec"]["audiences"] == ["https://kubernetes.default.svc.cluster.local"]
    token = answer["status"]["token"]
    code, who = request(cluster, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                        _body({}), token=token)
    assert code == 201, who
    assert who["status"]["userInfo"]["username"] == "system:serviceaccount:sa-tokens:default"
    assert who["status"]["userInfo"]["groups"] == [
        "system:serviceaccounts", "system:serviceaccounts:sa-tokens", "system:authenticated"]
    services = f"/api/v1/namespaces/{namespace}/services"
    assert request(cluster, "GET", services, token=token)[0] == 403
    code, body = request(cluster, "POST",
                         f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
                         _body({"metadata": {"name": "default-view"},
                                "roleRef": {"kind": "ClusterRole", "name": "view"},
                                "subjects": [{"kind": "ServiceAccount", "name": "default"}]}))
    assert code == 201, body
    assert request(cluster, "GET", services, token=token)[0] == 200
    code, review = request(cluster, "POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                           _body({"spec": {"token": token}}))
    assert code == 201
    assert review["status"]["authenticated"] is True
    assert review["status"]["user"]["username"] == "system:serviceaccount:sa-tokens:default"


def test_invalid_token_requests(cluster: Cluster, namespace: str) -> None:
    code, body = token_for(cluster, namespace, {"expirationSeconds": 599})
    assert code == 422, body
    assert body["message"] == ('TokenRequest.authentication.k8s.io "" is invalid: '
                               "spec.expirationSeconds: Invalid value: 599: may not specify a "
                               "duration less than 10 minutes")
    code, body = token_for(cluster, namespace, account="nobody")
    assert (code, body["message"]) == (404, 'serviceaccounts "nobody" not found')
    code, body = token_for(cluster, namespace, {"boundObjectRef": {
        "kind": "ConfigMap", "apiVersion": "v1", "name": "kube-root-ca.crt"}})
    assert (code, body["message"]) == (400, "cannot bind token to object of type ConfigMap")


def test_a_pod_bound_token_dies_with_its_pod(cluster: Cluster, namespace: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "holder"},
           "spec": {"containers": [{"name": "c", "image": "x"}]}}
    code, created = request(cluster, "POST", f"/api/v1/namespaces/{namespace}/pods",
                            _body(pod))
    assert code == 201, created
    assert created["spec"]["serviceAccountName"] == "default"
    volume = created["spec"]["volumes"][0]
    assert volume["name"].startswith("kube-api-access-"), "the ServiceAccount admission"
    assert created["spec"]["containers"][0]["volumeMounts"] == [{
        "name": volume["name"], "readOnly": True,
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
    ref = {"kind": "Pod", "apiVersion": "v1", "name": "holder"}
    code, body = token_for(cluster, namespace, {"boundObjectRef": {**ref, "uid": "other"}})
    assert code == 409, body
    code, answer = token_for(cluster, namespace, {"boundObjectRef": ref})
    assert code == 201, answer
    token = answer["status"]["token"]
    whoami = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
    assert request(cluster, "POST", whoami, _body({}), token=token)[0] == 201
    # Grace 0: gone at once even if the scheduler bound it to a node meanwhile (a pod being
    # deleted gracefully keeps its tokens for 60 s, as upstream's do).
    assert request(cluster, "DELETE",
                   f"/api/v1/namespaces/{namespace}/pods/holder?gracePeriodSeconds=0")[0] == 200
    wait_for(lambda: request(cluster, "POST", whoami, _body({}), token=token)[0] == 401,
             what="the pod's token to stop authenticating")


@pytest.fixture
def core(cluster: Cluster) -> Iterator[client.CoreV1Api]:
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield client.CoreV1Api(api_client)
    finally:
        api_client.close()


def test_python_client_token_request(core: client.CoreV1Api, namespace: str) -> None:
    answer = core.create_namespaced_service_account_token(
        "default", namespace, client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=["vault"], expiration_seconds=1200)))
    assert answer.status.token.count(".") == 2
    assert answer.spec.audiences == ["vault"]


def test_token_review_checks_the_audiences_asked_about(cluster: Cluster, namespace: str) -> None:
    review = "/apis/authentication.k8s.io/v1/tokenreviews"
    api_token = token_for(cluster, namespace)[1]["status"]["token"]
    code, body = request(cluster, "POST", review, _body(
        {"spec": {"token": api_token, "audiences": ["vault"]}}))
    assert code == 201 and body["status"] == {"user": {}}, body
    vault_token = token_for(cluster, namespace, {"audiences": ["vault"]})[1]["status"]["token"]
    code, body = request(cluster, "POST", review, _body(
        {"spec": {"token": vault_token, "audiences": ["vault", "other"]}}))
    assert body["status"]["authenticated"] is True
    assert body["status"]["audiences"] == ["vault"]
    code, body = request(cluster, "POST", review, _body({"spec": {"token": cluster.token,
                                                                  "audiences": ["vault"]}}))
    assert body["status"] == {"user": {}}, "a static token is for the API server only"
    code, body = token_for(cluster, namespace, {"audiences": [1]})
    assert code == 400, body


def test_a_secret_bound_token_dies_with_its_secret(cluster: Cluster, namespace: str) -> None:
    code, secret = request(cluster, "POST", f"/api/v1/namespaces/{namespace}/secrets", _body(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "anchor"}}))
    assert code == 201, secret
    code, answer = token_for(cluster, namespace, {"boundObjectRef": {
        "kind": "Secret", "apiVersion": "v1", "name": "anchor"}})
    assert code == 201, answer
    token = answer["status"]["token"]
    whoami = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
    assert request(cluster, "POST", whoami, _body({}), token=token)[0] == 201
    assert request(cluster, "DELETE", f"/api/v1/namespaces/{namespace}/secrets/anchor")[0] == 200
    assert request(cluster, "POST", whoami, _body({}), token=token)[0] == 401
