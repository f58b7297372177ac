"""Path parsing and the authorization rules (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from svcnet.api.errors import StatusError
from svcnet.apiserver.auth import ADMIN_GROUP, NODES_GROUP, TokenFile, User, authorize, forbidden
from svcnet.apiserver.requestinfo import RequestInfo, parse_path


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/api/v1/namespaces/default/services",
                     RequestInfo("", "v1", "services", "default"), id="namespaced-collection"),
        pytest.param("/api/v1/namespaces/default/services/web",
                     RequestInfo("", "v1", "services", "default", "web"), id="namespaced-object"),
        pytest.param("/api/v1/namespaces/default/services/web/status",
                     RequestInfo("", "v1", "services", "default", "web", "status"),
                     id="subresource"),
        pytest.param("/api/v1/services", RequestInfo("", "v1", "services"), id="all-namespaces"),
        pytest.param("/api/v1/namespaces", RequestInfo("", "v1", "namespaces"),
                     id="namespaces"),
        pytest.param("/api/v1/namespaces/kube-system",
                     RequestInfo("", "v1", "namespaces", name="kube-system"), id="namespace"),
        pytest.param("/api/v1/namespaces/foo/status",
                     RequestInfo("", "v1", "namespaces", name="foo", subresource="status"),
                     id="namespace-status"),
        pytest.param("/api/v1/nodes/n1", RequestInfo("", "v1", "nodes", name="n1"),
                     id="cluster-scoped"),
        pytest.param("/apis/discovery.k8s.io/v1/namespaces/a/endpointslices/s",
                     RequestInfo("discovery.k8s.io", "v1", "endpointslices", "a", "s"),
                     id="grouped"),
        pytest.param("/version", None, id="not-a-resource"),
        pytest.param("/api/v1", None, id="discovery"),
        pytest.param("/api/v1/namespaces/a/services/b/status/extra", None, id="too-deep"),
    ],
)
def test_parse_path(path: str, expected: RequestInfo | None) -> None:
    assert parse_path(path) == expected


ADMIN = User("admin", groups=(ADMIN_GROUP,))
NODE = User("system:node:n1", groups=(NODES_GROUP,))
NOBODY = User("someone")


@pytest.mark.parametrize(
    ("user", "verb", "group", "resource", "ns", "name", "sub", "pod_node", "allowed"),
    [
        pytest.param(ADMIN, "delete", "", "services", "default", "web", "", None, True,
                     id="admin-anything"),
        pytest.param(NOBODY, "get", "", "services", "default", "web", "", None, False,
                     id="unknown-user-nothing"),
        pytest.param(NODE, "list", "", "services", "", "", "", None, True, id="node-reads"),
        pytest.param(NODE, "create", "", "services", "default", "web", "", None, False,
                     id="node-cannot-write-services"),
        pytest.param(NODE, "update", "", "nodes", "", "n1", "status", None, True,
                     id="node-own-status"),
        pytest.param(NODE, "update", "", "nodes", "", "n2", "status", None, False,
                     id="node-other-node"),
        pytest.param(NODE, "create", "", "nodes", "", "n1", "", None, True,
                     id="node-registers-itself"),
        pytest.param(NODE, "patch", "", "pods", "default", "p", "status", "n1", True,
                     id="node-own-pod-status"),
        pytest.param(NODE, "patch", "", "pods", "default", "p", "status", "n2", False,
                     id="node-other-pod-status"),
        pytest.param(NODE, "update", "", "pods", "default", "p", "", "n1", False,
                     id="node-cannot-change-pod-spec"),
        pytest.param(NODE, "delete", "", "pods", "default", "p", "", "n1", True,
                     id="node-finishes-own-pod-deletion"),
        pytest.param(NODE, "create", "", "events", "default", "e", "", None, True,
                     id="node-records-events"),
        pytest.param(NODE, "update", "coordination.k8s.io", "leases", "kube-node-lease", "n1",
                     "", None, True, id="node-own-lease"),
        pytest.param(NODE, "update", "coordination.k8s.io", "leases", "kube-node-lease", "n2",
                     "", None, False, id="node-other-lease"),
    ],
)
def test_authorize(user: User, verb: str, group: str, resource: str, ns: str, name: str,
                   sub: str, pod_node: str | None, allowed: bool) -> None:
    assert authorize(user, verb, group=group, resource=resource, namespace=ns, name=name,
                     subresource=sub, pod_node=pod_node) is allowed


@pytest.mark.parametrize("resource", ["secrets", "configmaps"])
@pytest.mark.parametrize(("verb", "related", "allowed"), [
    ("get", True, True), ("list", True, True), ("watch", True, True),
    ("get", False, False), ("list", False, False),
    ("update", True, False), ("create", True, False)])
def test_node_reads_config_objects_only_of_its_pods(resource: str, verb: str, related: bool,
                                                   allowed: bool) -> None:
    assert authorize(NODE, verb, group="", resource=resource, namespace="default", name="x",
                     subresource="", node_related=related) is allowed
    assert authorize(User("admin", "", (ADMIN_GROUP,)), verb, group="", resource=resource,
                     namespace="default", name="x", subresource="") is True


def test_forbidden_message() -> None:
    err = forbidden(NODE, "create", "services", "", "default", "web")
    assert err.code == 403 and err.reason == "Forbidden"
    assert err.message == ('services "web" is forbidden: User "system:node:n1" cannot create '
                           'resource "services" in API group "" in the namespace "default"')


def test_token_file(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "tokens.csv")
    with pytest.raises(StatusError) as e:
        tokens.authenticate("Bearer nope")
    assert e.value.code == 401
    tokens.add("t1", ADMIN)
    assert tokens.authenticate("Bearer t1") == User("admin", "", (ADMIN_GROUP,))
    tokens.add("t2", NODE)
    assert tokens.authenticate("Bearer t2").node_name == "n1"
    for header in (None, "", "Basic dXNlcg==", "Bearer "):
        with pytest.raises(StatusError):
            tokens.authenticate(header)
