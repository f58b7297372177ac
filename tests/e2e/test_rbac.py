"""RBAC through the real server: default roles, aggregation, bindings enforced, escalation.

A user from the token file with no special group stands for any identity RBAC governs (the
ServiceAccounts' tokens authenticate the same way once issued).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from svcnet.apiserver.auth import TokenFile, User
from tests.e2e.conftest import Cluster
from tests.e2e.test_http_errors import request
from tests.waiting import wait_for

RBAC = "/apis/rbac.authorization.k8s.io/v1"


def _body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


@pytest.fixture(scope="module")
def jane(cluster: Cluster) -> str:
    token = secrets.token_hex(16)
    TokenFile(cluster.data_dir / "tokens.csv").add(token, User("jane", "jane-1"))
    return token


def binding(name: str, role_kind: str, role: str, user: str) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"kind": role_kind, "name": role},
            "subjects": [{"kind": "User", "name": user}]}


def test_default_roles_and_aggregation(cluster: Cluster) -> None:
    roles = cluster.kubectl("get", "clusterroles", "-o", "name").stdout.split()
    for name in ("cluster-admin", "admin", "edit", "view", "system:basic-user"):
        assert f"clusterrole.rbac.authorization.k8s.io/{name}" in roles

    def view_rules() -> list[dict[str, Any]]:
        code, role = request(cluster, "GET", f"{RBAC}/clusterroles/view")
        assert code == 200
        rules: list[dict[str, Any]] = role.get("rules") or []
        return rules

    wait_for(lambda: any("services" in r.get("resources", []) for r in view_rules()),
             what="view aggregates system:aggregate-to-view")
    code, admin = request(cluster, "GET", f"{RBAC}/clusterroles/admin")
    assert code == 200
    assert any("roles" in r["resources"] for r in admin["rules"]), admin["rules"]
    assert any("services" in r["resources"] and "create" in r["verbs"] for r in admin["rules"])

    widget_role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": "widget-viewer", "labels": {
                       "rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                   "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"],
                              "verbs": ["get"]}]}
    code, body = request(cluster, "POST", f"{RBAC}/clusterroles", _body(widget_role))
    assert code == 201, body
    wait_for(lambda: any("widgets" in r.get("resources", []) for r in view_rules()),
             what="a user's aggregate-to-view role extends view")
    table = cluster.kubectl("get", "clusterrolebinding", "cluster-admin", "-o", "wide").stdout
    assert "ClusterRole/cluster-admin" in table and "system:masters" in table


def test_bindings_grant_what_their_role_allows(cluster: Cluster, jane: str) -> None:
    code, _ = request(cluster, "GET", "/api/v1/namespaces/default/services", token=jane)
    assert code == 403
    code, body = request(cluster, "POST", f"{RBAC}/namespaces/default/rolebindings",
                         _body(binding("jane-view", "ClusterRole", "view", "jane")))
    assert code == 201, body
    assert body["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"  # defaulted
    assert body["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io"
    code, _ = request(cluster, "GET", "/api/v1/namespaces/default/services", token=jane)
    assert code == 200
    code, _ = request(cluster, "GET", "/api/v1/namespaces/kube-system/services", token=jane)
    assert code == 403, "a RoleBinding grants in its own namespace only"
    code, _ = request(cluster, "POST", "/api/v1/namespaces/default/services", _body(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "j"},
         "spec": {"ports": [{"port": 80}]}}), token=jane)
    assert code == 403, "view does not create"
    code, review = request(cluster, "POST",
                           "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                           _body({"spec": {"resourceAttributes": {
                               "verb": "list", "resource": "services",
                               "namespace": "default"}}}), token=jane)
    assert review["status"]["allowed"] is True
    code, rules = request(cluster, "POST",
                          "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                          _body({"spec": {"namespace": "default"}}), token=jane)
    assert any("services" in r["resources"] for r in rules["status"]["resourceRules"])


def test_validation_follows_upstream(cluster: Cluster) -> None:
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "bad"},
            "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}, {"verbs": []}]}
    code, body = request(cluster, "POST", f"{RBAC}/namespaces/default/roles", _body(role))
    assert code == 422, body
    assert body["message"] == (
        'Role.rbac.authorization.k8s.io "bad" is invalid: [rules[0].nonResourceURLs: Invalid '
        'value: []string{"/healthz"}: namespaced rules cannot apply to non-resource URLs, '
        "rules[1].verbs: Required value: verbs must contain at least one value, "
        "rules[1].apiGroups: Required value: resource rules must supply at least one api "
        "group, rules[1].resources: Required value: resource rules must supply at least one "
        "resource]")
    code, body = request(cluster, "POST", f"{RBAC}/namespaces/default/rolebindings",
                         _body(binding("moving", "Role", "a", "bob")))
    assert code == 201, body
    body["roleRef"]["name"] = "b"
    code, body = request(cluster, "PUT", f"{RBAC}/namespaces/default/rolebindings/moving",
                         _body(body))
    assert code == 422, body
    assert "roleRef: Invalid value: " in body["message"]
    assert body["message"].endswith(": cannot change roleRef")


def test_no_escalation_through_roles_or_bindings(cluster: Cluster) -> None:
    token = secrets.token_hex(16)
    TokenFile(cluster.data_dir / "tokens.csv").add(token, User("nsadmin", "nsadmin-1"))
    code, _ = request(cluster, "POST", "/api/v1/namespaces", _body(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rbac-esc"}}))
    assert code == 201
    code, body = request(cluster, "POST", f"{RBAC}/namespaces/rbac-esc/rolebindings",
                         _body(binding("ns-admin", "ClusterRole", "admin", "nsadmin")))
    assert code == 201, body

    def admin_has_roles() -> bool:
        _code, admin = request(cluster, "GET", f"{RBAC}/clusterroles/admin")
        return any("roles" in r.get("resources", []) for r in admin.get("rules") or [])
    wait_for(admin_has_roles, what="admin aggregated")

    within = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
              "metadata": {"name": "svc-reader"},
              "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["get"]}]}
    code, body = request(cluster, "POST", f"{RBAC}/namespaces/rbac-esc/roles", _body(within),
                         token=token)
    assert code == 201, body
    beyond = {**within, "metadata": {"name": "node-reader"},
              "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]}
    code, body = request(cluster, "POST", f"{RBAC}/namespaces/rbac-esc/roles", _body(beyond),
                         token=token)
    assert code == 403, body
    assert "is attempting to grant RBAC permissions not currently held" in body["message"]
    assert '{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}' in body["message"]
    code, body = request(cluster, "POST", f"{RBAC}/namespaces/rbac-esc/rolebindings",
                         _body(binding("up", "ClusterRole", "cluster-admin", "nsadmin")),
                         token=token)
    assert code == 403, body


def test_only_cluster_admins_set_an_aggregation_rule(cluster: Cluster) -> None:
    """An aggregation rule grants what the roles it selects grant: a user who may update
    its own ClusterRole must not turn it into an aggregate of cluster-admin's rules."""
    token = secrets.token_hex(16)
    TokenFile(cluster.data_dir / "tokens.csv").add(token, User("bob", "bob-1"))
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "bob-self"},
            "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                       "resourceNames": ["bob-self"], "verbs": ["get", "update", "patch"]}]}
    assert request(cluster, "POST", f"{RBAC}/clusterroles", _body(role))[0] == 201
    code, body = request(cluster, "POST", f"{RBAC}/clusterrolebindings", _body({
        "metadata": {"name": "bob-self"},
        "roleRef": {"kind": "ClusterRole", "name": "bob-self"},
        "subjects": [{"kind": "User", "name": "bob"}]}))
    assert code == 201, body
    code, current = request(cluster, "GET", f"{RBAC}/clusterroles/bob-self", token=token)
    assert code == 200, current
    current["aggregationRule"] = {"clusterRoleSelectors": [
        {"matchLabels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}]}
    code, body = request(cluster, "PUT", f"{RBAC}/clusterroles/bob-self", _body(current),
                         token=token)
    assert code == 403, body
    assert body["message"].endswith("must have cluster-admin privileges to use the "
                                    "aggregationRule")


def test_an_apply_that_creates_needs_create(cluster: Cluster) -> None:
    token = secrets.token_hex(16)
    TokenFile(cluster.data_dir / "tokens.csv").add(token, User("carol", "carol-1"))
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "patch-only"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"]}]}
    assert request(cluster, "POST", f"{RBAC}/namespaces/default/roles", _body(role))[0] == 201
    code, body = request(cluster, "POST", f"{RBAC}/namespaces/default/rolebindings",
                         _body(binding("carol-patch", "Role", "patch-only", "carol")))
    assert code == 201, body
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "via-apply"},
          "data": {"a": "b"}}
    code, body = request(cluster, "PATCH",
                         "/api/v1/namespaces/default/configmaps/via-apply?fieldManager=carol",
                         _body(cm), content_type="application/apply-patch+yaml", token=token)
    assert code == 403, body
    assert request(cluster, "GET", "/api/v1/namespaces/default/configmaps/via-apply")[0] == 404
