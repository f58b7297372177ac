"""The namespace controller's pure parts: its conditions (status_condition_utils.go), the pod
grace estimate, and discovery as a client reads it."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.client.discovery import (
    GroupVersionParseError,
    parse_group_version,
    server_preferred_namespaced_resources,
    to_gvr,
)
from svcnet.client.rest import GVR, PODS, SERVICES
from svcnet.controllers.namespace import (
    CONDITION_TYPES,
    DeletionReport,
    deletion_conditions,
    pod_grace_estimate,
    update_conditions,
)

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"
DEPLOYMENTS = GVR("apps", "v1", "deployments", "Deployment")


def by_type(conditions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in conditions}


def test_a_clean_pass_sets_every_success_condition() -> None:
    conditions, changed = update_conditions([], deletion_conditions(DeletionReport(), T0), T0)
    assert changed
    assert [c["type"] for c in conditions] == list(CONDITION_TYPES)
    assert by_type(conditions) == {
        "NamespaceDeletionDiscoveryFailure": {
            "type": "NamespaceDeletionDiscoveryFailure", "status": "False",
            "lastTransitionTime": T0, "reason": "ResourcesDiscovered",
            "message": "All resources successfully discovered"},
        "NamespaceDeletionGroupVersionParsingFailure": {
            "type": "NamespaceDeletionGroupVersionParsingFailure", "status": "False",
            "lastTransitionTime": T0, "reason": "ParsedGroupVersions",
            "message": "All legacy kube types successfully parsed"},
        "NamespaceDeletionContentFailure": {
            "type": "NamespaceDeletionContentFailure", "status": "False",
            "lastTransitionTime": T0, "reason": "ContentDeleted",
            "message": "All content successfully deleted, may be waiting on finalization"},
        "NamespaceContentRemaining": {
            "type": "NamespaceContentRemaining", "status": "False", "lastTransitionTime": T0,
            "reason": "ContentRemoved", "message": "All content successfully removed"},
        "NamespaceFinalizersRemaining": {
            "type": "NamespaceFinalizersRemaining", "status": "False",
            "lastTransitionTime": T0, "reason": "ContentHasNoFinalizers",
            "message": "All content-preserving finalizers finished"},
    }


def test_failures_say_what_remains_sorted() -> None:
    report = DeletionReport(
        discovery_error="Discovery failed for some groups, 1 failing: boom",
        group_version_error="unexpected GroupVersion string: a/b/c",
        content_errors=["z failed", "a failed"],
        remaining={SERVICES: 1, PODS: 3, DEPLOYMENTS: 2},
        finalizers={"example.com/b": 1, "example.com/a": 2})
    got = by_type(deletion_conditions(report, T0))
    assert {k: (v["status"], v["reason"], v["message"]) for k, v in got.items()} == {
        "NamespaceDeletionDiscoveryFailure": (
            "True", "DiscoveryFailed", "Discovery failed for some groups, 1 failing: boom"),
        "NamespaceDeletionGroupVersionParsingFailure": (
            "True", "GroupVersionParsingFailed", "unexpected GroupVersion string: a/b/c"),
        "NamespaceDeletionContentFailure": (
            "True", "ContentDeletionFailed",
            "Failed to delete all resource types, 2 remaining: a failed, z failed"),
        "NamespaceContentRemaining": (
            "True", "SomeResourcesRemain",
            "Some resources are remaining: deployments.apps has 2 resource instances, "
            "pods. has 3 resource instances, services. has 1 resource instances"),
        "NamespaceFinalizersRemaining": (
            "True", "SomeFinalizersRemain",
            "Some content in the namespace has finalizers remaining: example.com/a in 2 "
            "resource instances, example.com/b in 1 resource instances"),
    }


def test_transition_time_moves_only_when_the_status_flips() -> None:
    first, _ = update_conditions([], deletion_conditions(
        DeletionReport(remaining={PODS: 2}), T0), T0)
    # Same failure, other count: the message changes, the transition time does not.
    second, changed = update_conditions(first, deletion_conditions(
        DeletionReport(remaining={PODS: 1}), T1), T1)
    assert changed
    pods = by_type(second)["NamespaceContentRemaining"]
    assert (pods["status"], pods["lastTransitionTime"]) == ("True", T0)
    assert pods["message"].endswith("pods. has 1 resource instances")
    # Nothing left: the condition flips to its success, at the new time.
    third, changed = update_conditions(second, deletion_conditions(DeletionReport(), T1), T1)
    assert changed
    cleared = by_type(third)["NamespaceContentRemaining"]
    assert (cleared["status"], cleared["reason"], cleared["lastTransitionTime"]) == (
        "False", "ContentRemoved", T1)
    # The same pass again changes nothing (no status write).
    again, changed = update_conditions(third, deletion_conditions(DeletionReport(), T1), T1)
    assert (again, changed) == (third, False)


def test_conditions_of_other_types_are_kept() -> None:
    other = {"type": "example.com/Other", "status": "True"}
    conditions, _ = update_conditions([other], [], T0)
    assert conditions[0] == other and len(conditions) == 6


def test_pod_grace_estimate_ignores_finished_pods() -> None:
    pods: list[dict[str, Any]] = [{"spec": {"terminationGracePeriodSeconds": 30}, "status": {"phase": "Running"}},
            {"spec": {"terminationGracePeriodSeconds": 90}, "status": {"phase": "Succeeded"}},
            {"spec": {"terminationGracePeriodSeconds": 45}, "status": {"phase": "Pending"}},
            {"spec": {}, "status": {"phase": "Running"}}]
    assert pod_grace_estimate(pods) == 45
    assert pod_grace_estimate([]) == 0


@pytest.mark.parametrize(("gv", "parsed"), [("v1", ("", "v1")), ("apps/v1", ("apps", "v1")),
                                            ("", ("", ""))])
def test_parse_group_version(gv: str, parsed: tuple[str, str]) -> None:
    assert parse_group_version(gv) == parsed


def test_parse_group_version_refuses_more_slashes() -> None:
    with pytest.raises(GroupVersionParseError, match="unexpected GroupVersion string: a/b/c"):
        parse_group_version("a/b/c")


class FakeDiscovery:
    def __init__(self, docs: dict[str, Any]) -> None:
        self.docs = docs

    async def request(self, method: str, path: str, **_: Any) -> Any:
        doc = self.docs.get(path)
        if isinstance(doc, Exception):
            raise doc
        if doc is None:
            raise StatusError(404, "NotFound", "the server could not find the requested resource")
        return doc


async def test_discovery_keeps_preferred_namespaced_resources_and_reports_failures() -> None:
    api = FakeDiscovery({
        "/api": {"versions": ["v1"]},
        "/apis": {"groups": [
            {"name": "apps", "versions": [{"groupVersion": "apps/v1"},
                                          {"groupVersion": "apps/v1beta1"}],
             "preferredVersion": {"groupVersion": "apps/v1"}},
            {"name": "broken", "versions": [{"groupVersion": "broken/v1"}],
             "preferredVersion": {"groupVersion": "broken/v1"}}]},
        "/api/v1": {"resources": [
            {"name": "pods", "namespaced": True, "kind": "Pod", "verbs": ["delete", "list"]},
            {"name": "pods/status", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
            {"name": "nodes", "namespaced": False, "kind": "Node", "verbs": ["delete"]}]},
        "/apis/apps/v1": {"resources": [
            {"name": "deployments", "namespaced": True, "kind": "Deployment",
             "verbs": ["deletecollection", "delete", "list"]}]},
        "/apis/broken/v1": StatusError(503, "ServiceUnavailable", "down"),
    })
    found, failed = await server_preferred_namespaced_resources(api)
    assert [(r.group_version, r.name, r.kind) for r in found] == [
        ("v1", "pods", "Pod"), ("apps/v1", "deployments", "Deployment")]
    assert [to_gvr(r) for r in found] == [PODS, DEPLOYMENTS]
    assert found[1].verbs == {"deletecollection", "delete", "list"}
    assert failed is not None and set(failed.groups) == {"broken/v1"}
    assert str(failed) == ("unable to retrieve the complete list of server APIs: "
                           "broken/v1: down")
