"""RBAC's pure rules: rule matching, subjects, the escalation comparator, validation."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.api import rbac
from svcnet.api.rbac import Attributes, applies_to, covers, rule_allows
from svcnet.controllers.clusterroleaggregation import aggregate

PODS_READ = {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}


@pytest.mark.parametrize(("rule", "attrs", "allowed"), [
    (PODS_READ, Attributes("get", "", "pods", namespace="ns", name="a"), True),
    (PODS_READ, Attributes("get", "", "pods", "log", "ns", "a"), True),
    (PODS_READ, Attributes("get", "", "pods", "exec", "ns", "a"), False),
    (PODS_READ, Attributes("delete", "", "pods", namespace="ns"), False),
    (PODS_READ, Attributes("get", "apps", "pods"), False),
    ({"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["*"]},
     Attributes("update", "apps", "deployments", "scale"), True),
    ({"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["*"]},
     Attributes("update", "apps", "deployments"), False),
    ({"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s"], "verbs": ["get"]},
     Attributes("get", "", "secrets", name="s"), True),
    ({"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s"], "verbs": ["get"]},
     Attributes("list", "", "secrets"), False),
    ({"nonResourceURLs": ["/healthz", "/api/*"], "verbs": ["get"]},
     Attributes("get", path="/api/v1"), True),
    ({"nonResourceURLs": ["/healthz"], "verbs": ["get"]}, Attributes("get", path="/metrics"),
     False),
])
def test_rule_allows(rule: dict[str, list[str]], attrs: Attributes, allowed: bool) -> None:
    assert rule_allows(rule, attrs) is allowed


def test_subjects() -> None:
    sa = {"kind": "ServiceAccount", "name": "builder"}
    assert applies_to(sa, "system:serviceaccount:ci:builder", (), "ci")
    assert not applies_to(sa, "system:serviceaccount:ci:builder", (), "other")
    assert applies_to({**sa, "namespace": "ci"}, "system:serviceaccount:ci:builder", (), "")
    assert applies_to({"kind": "Group", "name": "devs"}, "u", ("devs",), "")
    assert not applies_to({"kind": "User", "name": "devs"}, "u", ("devs",), "")


def test_covers_reports_what_is_not_held() -> None:
    owned = [PODS_READ, {"apiGroups": ["apps"], "resources": ["*"], "verbs": ["*"]}]
    assert covers(owned, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]) == []
    assert covers(owned, [{"apiGroups": ["apps"], "resources": ["deployments"],
                           "verbs": ["delete"]}]) == []
    wider = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "delete"]}
    assert covers(owned, [wider]) == [wider]
    star = {"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}
    assert covers(owned, [star]) == [star], "a * request is covered only by a * rule"


def test_validation_paths() -> None:
    errs = rbac.validate_binding({"metadata": {"name": "a/b"},
                                  "roleRef": {"apiGroup": "x", "kind": "Role", "name": ""},
                                  "subjects": [{"kind": "ServiceAccount", "name": "s"},
                                               {"kind": "Robot", "name": "r"}]},
                                 namespaced=False)
    assert [e.field for e in errs] == ["metadata.name", "roleRef.apiGroup", "roleRef.kind",
                                       "roleRef.name", "subjects[0].namespace",
                                       "subjects[1].kind"]


def test_aggregate_unions_selected_roles_in_name_order() -> None:
    agg = {"metadata": {"name": "view"}, "aggregationRule": {"clusterRoleSelectors": [
        {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]}}
    label = {"rbac.authorization.k8s.io/aggregate-to-view": "true"}
    b = {"metadata": {"name": "b", "labels": label}, "rules": [PODS_READ]}
    a: dict[str, Any] = {"metadata": {"name": "a", "labels": label}, "rules": [
        {"apiGroups": [""], "resources": ["services"], "verbs": ["get"]}, PODS_READ]}
    other = {"metadata": {"name": "c"}, "rules": [{"apiGroups": ["x"], "resources": ["y"],
                                                   "verbs": ["z"]}]}
    assert aggregate(agg, [b, other, a, agg]) == [a["rules"][0], PODS_READ]
