"""Path parsing and the authorization rules (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from svcnet.api.errors import StatusError
from svcnet.api.rbac import Attributes, rule_allows
from svcnet.apiserver.auth import (
    ADMIN_GROUP,
    NODES_GROUP,
    READERS_GROUP,
    TokenFile,
    User,
    authorize,
    authorize_url,
    forbidden,
    rules_for,
)
from svcnet.apiserver.authn import Authenticator, bearer_token
from svcnet.apiserver.bootstrap_policy import CLUSTER_ROLES
from svcnet.apiserver.requestinfo import RequestInfo, parse_path
from svcnet.apiserver.satokens import TokenIssuer


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
        pytest.param("/api/v1/nodes/n1/proxy/stats/services",
                     RequestInfo("", "v1", "nodes", name="n1", subresource="proxy",
                                 path="stats/services"), id="node-proxy"),
        pytest.param("/api/v1/namespaces/a/nodes/n1/proxy/stats", None,
                     id="node-proxy-in-a-namespace"),
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
        # system:node reads RuntimeClasses (to run its pods), and writes none.
        pytest.param(NODE, "get", "node.k8s.io", "runtimeclasses", "", "runc", "", None, True,
                     id="node-gets-runtimeclasses"),
        pytest.param(NODE, "watch", "node.k8s.io", "runtimeclasses", "", "", "", None, True,
                     id="node-watches-runtimeclasses"),
        pytest.param(NODE, "update", "node.k8s.io", "runtimeclasses", "", "runc", "", None,
                     False, id="node-cannot-write-runtimeclasses"),
        # nodes/proxy reaches any pod's logs on any node: admins (or RBAC) only.
        pytest.param(ADMIN, "get", "", "nodes", "", "n1", "proxy", None, True,
                     id="admin-node-proxy"),
        pytest.param(NODE, "get", "", "nodes", "", "n1", "proxy", None, False,
                     id="node-no-node-proxy"),
        pytest.param(User("dns", groups=(READERS_GROUP,)), "get", "", "nodes", "", "n1",
                     "proxy", None, False, id="reader-no-node-proxy"),
    ],
)
def test_authorize(user: User, verb: str, group: str, resource: str, ns: str, name: str,
                   sub: str, pod_node: str | None, allowed: bool) -> None:
    assert authorize(user, verb, group=group, resource=resource, namespace=ns, name=name,
                     subresource=sub, pod_node=pod_node) is allowed


@pytest.mark.parametrize("resource", ["secrets", "configmaps", "persistentvolumeclaims",
                                      "persistentvolumes"])
@pytest.mark.parametrize(("verb", "related", "allowed"), [
    ("get", True, True), ("list", True, True), ("watch", True, True),
    ("get", False, False), ("list", False, False),
    ("update", True, False), ("create", True, False), ("delete", True, False)])
def test_node_reads_config_objects_only_of_its_pods(resource: str, verb: str, related: bool,
                                                   allowed: bool) -> None:
    assert authorize(NODE, verb, group="", resource=resource, namespace="default", name="x",
                     subresource="", node_related=related) is allowed
    assert authorize(NODE, verb, group="", resource=resource, namespace="default", name="x",
                     subresource="status", node_related=related) is False
    assert authorize(User("admin", "", (ADMIN_GROUP,)), verb, group="", resource=resource,
                     namespace="default", name="x", subresource="") is True


def test_forbidden_message() -> None:
    err = forbidden(NODE, "create", "services", "", "default", "web")
    assert err.code == 403 and err.reason == "Forbidden"
    assert err.message == ('services "web" is forbidden: User "system:node:n1" cannot create '
                           'resource "services" in API group "" in the namespace "default"')
    grouped = forbidden(NODE, "list", "runtimeclasses", "node.k8s.io", "", "")
    assert grouped.message == ('runtimeclasses.node.k8s.io is forbidden: User "system:node:n1" '
                               'cannot list resource "runtimeclasses" in API group "node.k8s.io" '
                               "at the cluster scope")
    assert grouped.details == {"kind": "runtimeclasses", "group": "node.k8s.io"}


def authenticator(tokens: TokenFile, tmp_path: Path) -> Authenticator:
    """The request path's authenticator over ``tokens``, with no ServiceAccounts served."""
    return Authenticator(tokens, TokenIssuer(tmp_path / "sa.key"), lambda _resource: None,
                         lambda: datetime.now(UTC))


async def test_token_file(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "tokens.csv")
    authn = authenticator(tokens, tmp_path)
    with pytest.raises(StatusError) as e:
        await authn.authenticate("Bearer nope")
    assert e.value.code == 401
    tokens.add("t1", ADMIN)
    assert await authn.authenticate("Bearer t1") == User("admin", "", (ADMIN_GROUP,))
    tokens.add("t2", NODE)
    assert (await authn.authenticate("Bearer t2")).node_name == "n1"
    for header in (None, "", "Basic dXNlcg==", "Bearer ", "Bearer a.b.c"):
        with pytest.raises(StatusError):
            await authn.authenticate(header)


_IDENTITIES = [User("admin", groups=(ADMIN_GROUP,)), User("dns", groups=(READERS_GROUP,)),
               User("system:node:n1", groups=(NODES_GROUP,)), User("nobody")]


@pytest.mark.parametrize("user", _IDENTITIES, ids=lambda u: u.name)
def test_listed_rules_are_what_authorize_allows(user: User) -> None:
    """SelfSubjectRulesReview must not promise more, or less, than the authorizer grants."""
    rules = rules_for(user)
    for rule in rules.resource_rules:
        for verb in rule["verbs"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    assert authorize(user, "delete" if verb == "*" else verb,
                                     group="apps" if group == "*" else group,
                                     resource="pods" if resource == "*" else resource,
                                     namespace="default", name="x", subresource="")
    listed_create = any("create" in r["verbs"] or "*" in r["verbs"]
                        for r in rules.resource_rules if "*" in r["resources"])
    assert authorize(user, "create", group="", resource="services", namespace="default",
                     name="x", subresource="") is listed_create
    for rule in rules.non_resource_rules:
        for url in rule["nonResourceURLs"]:
            assert authorize_url(user, "get", url.replace("*", "x"))
    assert authorize_url(user, "get", "/secret-place") is (ADMIN_GROUP in user.groups)
    assert authorize_url(user, "post", "/healthz") is (ADMIN_GROUP in user.groups)
    assert rules.incomplete is (user.node_name is not None)


@pytest.mark.parametrize("user", _IDENTITIES, ids=lambda u: u.name)
def test_everyone_may_review_their_own_access(user: User) -> None:
    for group, resource in (("authorization.k8s.io", "selfsubjectaccessreviews"),
                            ("authorization.k8s.io", "selfsubjectrulesreviews"),
                            ("authentication.k8s.io", "selfsubjectreviews")):
        assert authorize(user, "create", group=group, resource=resource, namespace="",
                         name="", subresource="")
    assert authorize(user, "create", group="authorization.k8s.io",
                     resource="subjectaccessreviews", namespace="", name="",
                     subresource="") is (ADMIN_GROUP in user.groups)


@pytest.mark.parametrize(("header", "token"), [
    ("Bearer abc", "abc"),
    ("bearer abc", "abc"),  # the official Python client's in-cluster config
    ("BEARER abc", "abc"),
    ("  Bearer abc  ", "abc"),
    ("Bearer  abc", None),  # an empty token (upstream: invalid)
    ("Bearer", None),
    ("Basic YWI6Yw==", None),
    ("", None),
    (None, None),
])
def test_bearer_token_scheme_is_case_insensitive(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_a_node_reads_logs_of_its_own_pods_only() -> None:
    node = User("system:node:n1", groups=(NODES_GROUP,))

    def may_read(subresource: str, pod_node: str | None) -> bool:
        return authorize(node, "get", group="", resource="pods", namespace="ns", name="p",
                         subresource=subresource, pod_node=pod_node)
    assert may_read("log", "n1")
    assert not may_read("log", "n2")
    assert not may_read("log", None)
    assert may_read("", "n2"), "the pod object itself stays readable"


@pytest.mark.parametrize("role", ["system:aggregate-to-view", "system:aggregate-to-edit",
                                  "system:aggregate-to-admin"])
@pytest.mark.parametrize(("group", "resource"), [
    ("node.k8s.io", "runtimeclasses"), ("scheduling.k8s.io", "priorityclasses"),
    ("storage.k8s.io", "storageclasses"),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations")])
def test_user_facing_roles_do_not_grant_cluster_classes(role: str, group: str,
                                                        resource: str) -> None:
    # As upstream's: RuntimeClasses, PriorityClasses, StorageClasses and webhook
    # configurations are cluster policy, not an application's (only cluster-admin writes
    # them).
    [found] = [r for r in CLUSTER_ROLES if r["metadata"]["name"] == role]
    for verb in ("get", "list", "create", "update", "delete"):
        attrs = Attributes(verb, group, resource)
        assert not any(rule_allows(rule, attrs) for rule in found["rules"])
