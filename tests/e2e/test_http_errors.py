"""Bad input over HTTP: always a Status with the right code, never a 500, nothing stored."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.e2e.conftest import Cluster
from tests.kubectl_codec import kubectl_codec


def request(cluster: Cluster, method: str, path: str, body: bytes | None = None,
            content_type: str = "application/json", token: str | None = None,
            ) -> tuple[int, dict[str, Any]]:
    ctx = ssl.create_default_context(cafile=str(cluster.data_dir / "pki" / "ca.crt"))
    req = urllib.request.Request(cluster.url + path, data=body, method=method)
    req.add_header("Content-Type", content_type)
    req.add_header("Authorization", f"Bearer {cluster.token if token is None else token}")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=20) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


SVC = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "h"},
       "spec": {"ports": [{"port": 80}]}}


@pytest.mark.parametrize(
    ("method", "path", "body", "ctype", "code", "reason"),
    [
        pytest.param("POST", "/api/v1/namespaces/default/services", b"{not json", None, 400,
                     "BadRequest", id="malformed-json"),
        pytest.param("POST", "/api/v1/namespaces/default/services", b"[1,2]", None, 400,
                     "BadRequest", id="not-an-object"),
        pytest.param("POST", "/api/v1/namespaces/default/services",
                     json.dumps({**SVC, "apiVersion": "apps/v1"}).encode(), None, 400,
                     "BadRequest", id="wrong-apiversion"),
        pytest.param("POST", "/api/v1/namespaces/default/services",
                     json.dumps({**SVC, "kind": "Pod"}).encode(), None, 400, "BadRequest",
                     id="wrong-kind"),
        pytest.param("POST", "/api/v1/namespaces/default/services?fieldValidation=Strict",
                     json.dumps({**SVC, "spec": {"ports": [{"port": 80}], "bogus": 1}}).encode(),
                     None, 400, "BadRequest", id="unknown-field-strict"),
        pytest.param("POST", "/api/v1/namespaces/default/services",
                     json.dumps({**SVC, "spec": {"ports": [{"port": "80"}]}}).encode(), None,
                     400, "BadRequest", id="wrong-type"),
        pytest.param("POST", "/api/v1/namespaces/default/services",
                     b'{"a":"' + b"x" * (4 * 1024 * 1024) + b'"}', None, 413,
                     "RequestEntityTooLarge", id="too-large"),
        pytest.param("POST", "/api/v1/namespaces/nope/services", json.dumps(SVC).encode(),
                     None, 404, "NotFound", id="missing-namespace"),
        pytest.param("GET", "/api/v1/namespaces/default/widgets", None, None, 404, "NotFound",
                     id="unknown-resource"),
        pytest.param("DELETE", "/api/v1/namespaces/default/nodes", None, None, 404,
                     "NotFound", id="cluster-scoped-under-namespace"),
        pytest.param("POST", "/api/v1/services", json.dumps(SVC).encode(), None, 404,
                     "NotFound", id="namespaced-create-without-namespace"),
        # Not a protobuf envelope (no magic): a 400 with the installed kubectl's descriptors,
        # a 415 without them (no protobuf at all).
        pytest.param("POST", "/api/v1/namespaces/default/services", b"\x08\x01",
                     "application/vnd.kubernetes.protobuf",
                     *((400, "BadRequest") if kubectl_codec() else (415, "UnsupportedMediaType")),
                     id="protobuf"),
        pytest.param("GET", "/api/v1/namespaces/default/services?labelSelector=a%20in%20(",
                     None, None, 400, "BadRequest", id="bad-label-selector"),
        pytest.param("GET", "/api/v1/namespaces/default/services?fieldSelector=spec.nope%3D1",
                     None, None, 400, "BadRequest", id="unsupported-field-selector"),
    ],
)
def test_bad_requests(cluster: Cluster, method: str, path: str, body: bytes | None,
                      ctype: str | None, code: int, reason: str) -> None:
    got, status = request(cluster, method, path, body, ctype or "application/json")
    assert (got, status["kind"], status["reason"], status["code"]) == (
        code, "Status", reason, code), status
    assert request(cluster, "GET", "/api/v1/namespaces/default/services/h")[0] == 404


def test_wrong_token_is_401(cluster: Cluster) -> None:
    code, status = request(cluster, "GET", "/api/v1/namespaces/default/services", token="x")
    assert (code, status["reason"]) == (401, "Unauthorized")


def test_node_token_cannot_write_services(cluster: Cluster) -> None:
    from svcnet.apiserver.auth import NODES_GROUP, TokenFile, User

    TokenFile(cluster.data_dir / "tokens.csv").add(
        "node-token-1", User("system:node:n1", "", (NODES_GROUP,)))
    code, _ = request(cluster, "GET", "/api/v1/namespaces/default/services",
                      token="node-token-1")
    assert code == 200
    code, status = request(cluster, "POST", "/api/v1/namespaces/default/services",
                           json.dumps(SVC).encode(), token="node-token-1")
    assert (code, status["reason"]) == (403, "Forbidden")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=12)
resources = st.sampled_from(["services", "pods", "endpoints", "namespaces", "nodes",
                             "events", "widgets"])


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(method=st.sampled_from(["POST", "PUT", "PATCH", "DELETE", "GET"]),
       namespace=st.sampled_from(["fuzz", "fuzz-missing"]), resource=resources,
       name=st.sampled_from(["", "x", "a/b", "%00", "UPPER"]), body=json_values,
       ctype=st.sampled_from(["application/json", "application/merge-patch+json",
                              "application/strategic-merge-patch+json",
                              "application/json-patch+json", "text/plain"]))
def test_fuzzed_requests_never_500(cluster: Cluster, method: str, namespace: str,
                                   resource: str, name: str,
                                   body: Any, ctype: str) -> None:
    # Fuzzing stays in namespaces of its own: an empty name is a deletecollection.
    request(cluster, "POST", "/api/v1/namespaces",
            json.dumps({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": "fuzz"}}).encode())
    path = f"/api/v1/namespaces/{namespace}/{resource}" + (f"/{name}" if name else "")
    raw = json.dumps(body).encode() if method in ("POST", "PUT", "PATCH", "DELETE") else None
    code, status = request(cluster, method, path, raw, ctype)
    assert code < 500, status
    if code >= 400:
        assert status.get("kind") == "Status" and status.get("code") == code


def raw_request(cluster: Cluster, method: str, path: str, body: bytes | None = None,
                content_type: str = "application/json") -> tuple[int, bytes]:
    ctx = ssl.create_default_context(cafile=str(cluster.data_dir / "pki" / "ca.crt"))
    req = urllib.request.Request(cluster.url + path, data=body, method=method)
    req.add_header("Content-Type", content_type)
    req.add_header("Authorization", f"Bearer {cluster.token}")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=20) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.parametrize(("method", "path", "body", "expected"), [
    pytest.param("GET", "/api/v1/namespaces/default/services/nope", None,
                 b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                 b'"message":"services \\"nope\\" not found","reason":"NotFound",'
                 b'"details":{"name":"nope","kind":"services"},"code":404}\n', id="not-found"),
    pytest.param("GET", "/apis/apps/v1/namespaces/default/deployments/nope", None,
                 b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                 b'"message":"deployments.apps \\"nope\\" not found","reason":"NotFound",'
                 b'"details":{"name":"nope","group":"apps","kind":"deployments"},"code":404}\n',
                 id="not-found-in-a-group"),
    pytest.param("POST", "/api/v1/namespaces/default/services",
                 b'{"apiVersion":"v1","kind":"Service","metadata":{"name":"bad<&>"},'
                 b'"spec":{"ports":[{"port":80}]}}',
                 b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                 b'"message":"Service \\"bad\\u003c\\u0026\\u003e\\" is invalid: metadata.name: '
                 b'Invalid value: \\"bad\\u003c\\u0026\\u003e\\": a DNS-1035 label must consist of '
                 b"lower case alphanumeric characters or '-', start with an alphabetic character, "
                 b"and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex "
                 b"used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')\",\"reason\":\"Invalid\","
                 b'"details":{"name":"bad\\u003c\\u0026\\u003e","kind":"Service","causes":[{'
                 b'"reason":"FieldValueInvalid","message":"Invalid value: \\"bad\\u003c\\u0026'
                 b"\\u003e\\\": a DNS-1035 label must consist of lower case alphanumeric "
                 b"characters or '-', start with an alphabetic character, and end with an "
                 b"alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
                 b"validation is '[a-z]([-a-z0-9]*[a-z0-9])?')\",\"field\":\"metadata.name\"}]},"
                 b'"code":422}\n', id="invalid"),
])
def test_error_bodies_are_kubernetes_bytes(cluster: Cluster, method: str, path: str,
                                           body: bytes | None, expected: bytes) -> None:
    """Compact JSON in metav1.Status's field order, Go's escaping, a trailing newline: what
    kube-apiserver writes, for clients that compare bodies."""
    code, raw = raw_request(cluster, method, path, body)
    assert code == json.loads(expected)["code"]
    assert raw == expected
