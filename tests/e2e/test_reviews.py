"""Who am I, and what may I do: the reviews through the real server, kubectl and the client.

The answers must agree with what the server then does: a reader asked "can I create
services?" hears no, and its create is a 403; a node hears yes for its own Lease only.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from svcnet.apiserver.auth import NODES_GROUP, READERS_GROUP, TokenFile, User
from tests.e2e.conftest import Cluster
from tests.e2e.test_http_errors import request


@pytest.fixture(scope="module")
def identities(cluster: Cluster) -> dict[str, str]:
    """Tokens for a reader and a node, added the way `svcnet up` provisions them."""
    tokens = TokenFile(cluster.data_dir / "tokens.csv")
    made = {"reader": secrets.token_hex(16), "node": secrets.token_hex(16)}
    tokens.add(made["reader"], User("svcnet:reviews-reader", "r-1", (READERS_GROUP,)))
    tokens.add(made["node"], User("system:node:rev-node", "n-1", (NODES_GROUP,)))
    return made


@pytest.fixture
def apis(cluster: Cluster) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()


def ssar(cluster: Cluster, token: str | None, **attrs: Any) -> dict[str, Any]:
    code, body = request(cluster, "POST",
                         "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                         _json({"apiVersion": "authorization.k8s.io/v1",
                                "kind": "SelfSubjectAccessReview",
                                "spec": {"resourceAttributes": attrs}}), token=token)
    assert code == 201, body
    return body


def _json(obj: Any) -> bytes:
    import json
    return json.dumps(obj).encode()


def test_self_subject_access_review_agrees_with_the_server(
        cluster: Cluster, identities: dict[str, str]) -> None:
    admin = ssar(cluster, None, verb="create", resource="services", namespace="default")
    assert admin["status"]["allowed"] is True
    assert admin["spec"]["resourceAttributes"]["resource"] == "services"
    assert admin["metadata"] == {"creationTimestamp": None}

    reader = ssar(cluster, identities["reader"], verb="create", resource="services",
                  namespace="default")
    assert reader["status"]["allowed"] is False
    code, _ = request(cluster, "POST", "/api/v1/namespaces/default/services",
                      _json({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "r"},
                             "spec": {"ports": [{"port": 80}]}}), token=identities["reader"])
    assert code == 403
    assert ssar(cluster, identities["reader"], verb="list", resource="pods",
                namespace="kube-system")["status"]["allowed"] is True

    lease = {"verb": "update", "group": "coordination.k8s.io", "resource": "leases",
             "namespace": "kube-node-lease"}
    assert ssar(cluster, identities["node"], name="rev-node", **lease)["status"]["allowed"]
    assert not ssar(cluster, identities["node"], name="other", **lease)["status"]["allowed"]


def test_invalid_reviews_get_upstreams_422(cluster: Cluster) -> None:
    code, body = request(cluster, "POST",
                         "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                         _json({"spec": {}}))
    assert code == 422, body
    assert body["message"] == (
        'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes: '
        'Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes '
        "must be specified")
    code, body = request(cluster, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                         _json({"spec": {"resourceAttributes": {"verb": "get"},
                                         "nonResourceAttributes": {"path": "/x"}}}))
    assert code == 422, body
    assert [c["field"] for c in body["details"]["causes"]] == ["spec.nonResourceAttributes",
                                                              "spec.user"]
    code, body = request(cluster, "POST",
                         "/apis/authorization.k8s.io/v1/namespaces/default/"
                         "localsubjectaccessreviews",
                         _json({"spec": {"user": "u", "resourceAttributes": {
                             "verb": "get", "namespace": "other"}}}))
    assert code == 422, body
    assert "spec.resourceAttributes.namespace: Invalid value: \"other\": must match " \
           "metadata.namespace" in body["message"]
    code, body = request(cluster, "POST", "/apis/authorization.k8s.io/v1/"
                         "selfsubjectrulesreviews", _json({"spec": {}}))
    assert (code, body["message"]) == (400, "no namespace on request")
    code, _ = request(cluster, "GET", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
    assert code == 405


def test_only_the_admin_may_review_others(cluster: Cluster, identities: dict[str, str]) -> None:
    spec = {"user": "system:node:rev-node", "groups": [NODES_GROUP],
            "resourceAttributes": {"verb": "delete", "resource": "nodes", "name": "rev-node"}}
    code, body = request(cluster, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                         _json({"spec": spec}))
    assert code == 201 and body["status"]["allowed"] is True, body
    code, body = request(cluster, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                         _json({"spec": spec}), token=identities["reader"])
    assert code == 403, body


def test_token_review_and_whoami(cluster: Cluster, identities: dict[str, str]) -> None:
    code, body = request(cluster, "POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                         _json({"spec": {"token": identities["node"]}}))
    assert code == 201, body
    assert body["status"]["authenticated"] is True
    assert body["status"]["user"] == {"username": "system:node:rev-node", "uid": "n-1",
                                      "groups": [NODES_GROUP, "system:authenticated"]}
    code, body = request(cluster, "POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                         _json({"spec": {"token": "not-a-token"}}))
    assert code == 201 and body["status"] == {"user": {}}, body
    code, body = request(cluster, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                         _json({}), token=identities["reader"])
    assert code == 201, body
    assert body["status"]["userInfo"]["username"] == "svcnet:reviews-reader"


def test_rules_review_lists_what_authorize_allows(
        cluster: Cluster, identities: dict[str, str]) -> None:
    code, body = request(cluster, "POST",
                         "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                         _json({"spec": {"namespace": "default"}}), token=identities["reader"])
    assert code == 201, body
    rules = body["status"]["resourceRules"]
    assert {"verbs": ["get", "list", "watch"], "apiGroups": ["*"], "resources": ["*"]} in rules
    assert body["status"]["incomplete"] is False
    code, body = request(cluster, "POST",
                         "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                         _json({"spec": {"namespace": "default"}}), token=identities["node"])
    assert body["status"]["incomplete"] is True
    assert body["status"]["evaluationError"] == \
        "node authorizer does not support user rule resolution"


def test_kubectl_auth(cluster: Cluster, identities: dict[str, str]) -> None:
    """kubectl sends its reviews as protobuf: can-i, can-i --list and whoami."""
    assert cluster.kubectl("auth", "can-i", "create", "services").stdout.strip() == "yes"
    reader = ("--token", identities["reader"])
    no = cluster.kubectl("auth", "can-i", "create", "services", *reader, check=False)
    assert (no.returncode, no.stdout.strip()) == (1, "no")
    assert cluster.kubectl("auth", "can-i", "list", "pods", *reader).stdout.strip() == "yes"
    rows = [r.split() for r in cluster.kubectl("auth", "can-i", "--list", "-n", "default",
                                               *reader).stdout.splitlines()]
    assert rows[0][:2] == ["Resources", "Non-Resource"]
    assert ["*.*", "[]", "[]", "[get", "list", "watch]"] in rows
    who = cluster.kubectl("auth", "whoami", *reader).stdout
    assert "svcnet:reviews-reader" in who


def test_python_client_reviews(apis: client.ApiClient) -> None:
    authz = client.AuthorizationV1Api(apis)
    review = authz.create_self_subject_access_review(client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            non_resource_attributes=client.V1NonResourceAttributes(path="/healthz",
                                                                   verb="get"))))
    assert review.status.allowed is True
    with pytest.raises(ApiException) as err:
        authz.create_self_subject_access_review(client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec()))
    assert err.value.status == 422
    who = client.AuthenticationV1Api(apis).create_self_subject_review(
        client.V1SelfSubjectReview())
    assert "system:masters" in who.status.user_info.groups

