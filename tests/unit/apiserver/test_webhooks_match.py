"""Which admission webhooks a write calls, and what they are sent and answer: the pure part
(svcnet/apiserver/webhooks.py), after upstream's predicates tests (rules_test.go,
namespace/matcher_test.go, object/matcher_test.go) and request/admissionreview_test.go.

Conventions: a write is ``attrs(...)`` (group ``g``, version ``v``, resource ``r`` in namespace
``ns`` unless said); a webhook is ``hook(rules, **fields)`` built from a defaulted
configuration dict, as the registry stores it."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.apiserver.auth import User
from svcnet.apiserver.webhooks import (
    AdmissionResponse,
    GroupVersionKind,
    GroupVersionResource,
    InvalidResponse,
    Invocation,
    ServedEquivalents,
    UndecodableResponse,
    Webhook,
    WebhookAttributes,
    admission_review,
    convert_served,
    denied,
    find_invocation,
    is_exempt,
    match_conditions,
    namespace_selector_matches,
    needs_namespace_labels,
    object_selector_matches,
    parse_webhooks,
    rule_matches,
    verify_response,
)
from svcnet.registry.generic import AdmissionAttributes

Obj = dict[str, Any]


def attrs(group: str = "g", version: str = "v", resource: str = "r", subresource: str = "",
          operation: str = "CREATE", namespace: str = "ns", name: str = "name",
          obj: Obj | None = None, old: Obj | None = None, kind: str = "",
          dry_run: bool = False) -> WebhookAttributes:
    return WebhookAttributes(operation, GroupVersionResource(group, version, resource),
                             subresource, GroupVersionKind(group, version, kind or "k" + resource),
                             namespace, name, obj, old, dry_run)


def rule(operations: tuple[str, ...] = ("*",), groups: tuple[str, ...] = ("*",),
         versions: tuple[str, ...] = ("*",), resources: tuple[str, ...] = ("*",),
         scope: str = "*") -> Obj:
    return {"operations": list(operations), "apiGroups": list(groups),
            "apiVersions": list(versions), "resources": list(resources), "scope": scope}


def hook(*rules: Obj, mutating: bool = False, **fields: Any) -> Webhook:
    raw: Obj = {"name": "hook.example.com", "rules": list(rules) or [rule()],
                "clientConfig": {"url": "https://127.0.0.1/"}, "failurePolicy": "Fail",
                "matchPolicy": "Equivalent", "namespaceSelector": {}, "objectSelector": {},
                "sideEffects": "None", "timeoutSeconds": 10,
                "admissionReviewVersions": ["v1"]}
    raw.update(fields)
    config = {"metadata": {"name": "config"}, "webhooks": [raw]}
    return parse_webhooks(config, mutating=mutating)[0]


def no_equivalents(resource: GroupVersionResource, subresource: str
                   ) -> list[tuple[GroupVersionResource, GroupVersionKind]]:
    return []


def labelled(**labels: str) -> Obj:
    return {"metadata": {"labels": labels}}


# -- rules ------------------------------------------------------------------------------------

RULE_CASES: list[tuple[str, Obj, list[WebhookAttributes], list[WebhookAttributes]]] = [
    ("group wildcard", rule(), [attrs(group="g")], []),
    ("group exact", rule(groups=("g1", "g2")), [attrs(group="g1"), attrs(group="g2")],
     [attrs(group="g3"), attrs(group="")]),
    ("version exact", rule(versions=("v1", "v2")), [attrs(version="v1"), attrs(version="v2")],
     [attrs(version="v3")]),
    ("operation wildcard", rule(), [attrs(operation=o) for o in
                                    ("CREATE", "UPDATE", "DELETE", "CONNECT")], []),
    ("operation create", rule(operations=("CREATE",)), [attrs(operation="CREATE")],
     [attrs(operation=o) for o in ("UPDATE", "DELETE", "CONNECT")]),
    ("operations update and delete", rule(operations=("UPDATE", "DELETE")),
     [attrs(operation="UPDATE"), attrs(operation="DELETE")],
     [attrs(operation="CREATE"), attrs(operation="CONNECT")]),
    ("resource * has no subresources", rule(resources=("*",)),
     [attrs(resource="r"), attrs(resource="r2")],
     [attrs(subresource="exec"), attrs(resource="r2", subresource="proxy")]),
    ("r/* is r and its subresources", rule(resources=("r/*",)),
     [attrs(), attrs(subresource="exec")],
     [attrs(resource="r2"), attrs(resource="r2", subresource="proxy")]),
    ("r/* or r2", rule(resources=("r/*", "r2")),
     [attrs(), attrs(subresource="exec"), attrs(resource="r2")],
     [attrs(resource="r2", subresource="proxy")]),
    ("*/proxy or */exec", rule(resources=("*/proxy", "*/exec")),
     [attrs(subresource="exec"), attrs(resource="r2", subresource="proxy")],
     [attrs(), attrs(resource="r4", subresource="scale")]),
    ("*/* is everything", rule(resources=("*/*",)),
     [attrs(), attrs(subresource="status")], []),
    ("*/status", rule(resources=("*/status",)),
     [attrs(subresource="status"), attrs(resource="pods", subresource="status")],
     [attrs(), attrs(subresource="scale")]),
    ("pods/* is pods and its subresources", rule(resources=("pods/*",)),
     [attrs(resource="pods"), attrs(resource="pods", subresource="exec")],
     [attrs(resource="services")]),
    ("cluster scope", rule(resources=("*/*",), scope="Cluster"),
     [attrs(namespace=""), attrs(namespace="", subresource="exec"),
      attrs("", "v1", "namespaces", namespace="", name="ns"),
      attrs("", "v1", "namespaces", "finalize", namespace="ns", name="ns"),
      attrs("", "v1", "namespaces", namespace="ns", name="ns")],
     [attrs(), attrs(subresource="exec")]),
    ("namespaced scope", rule(resources=("*/*",), scope="Namespaced"),
     [attrs(), attrs(subresource="exec")],
     [attrs(namespace=""), attrs("", "v1", "namespaces", namespace="", name="ns"),
      attrs("", "v1", "namespaces", namespace="ns", name="ns"),
      attrs("", "v1", "namespaces", "finalize", namespace="ns", name="ns")]),
    ("all scopes", rule(scope="*"),
     [attrs(), attrs(namespace=""), attrs("", "v1", "namespaces", namespace="ns", name="ns")],
     []),
]


@pytest.mark.parametrize(("raw", "matching", "other"),
                         [c[1:] for c in RULE_CASES], ids=[c[0] for c in RULE_CASES])
def test_rule(raw: Obj, matching: list[WebhookAttributes],
              other: list[WebhookAttributes]) -> None:
    parsed = hook(raw).rules[0]
    for a in matching:
        assert rule_matches(parsed, a), a
    for a in other:
        assert not rule_matches(parsed, a), a


def test_exact_match_policy_calls_only_the_named_version() -> None:
    served = ServedEquivalents()
    v1 = attrs("autoscaling", "v1", "horizontalpodautoscalers", kind="HorizontalPodAutoscaler")
    only_v2 = rule(groups=("autoscaling",), versions=("v2",),
                   resources=("horizontalpodautoscalers",))
    assert find_invocation(hook(only_v2, matchPolicy="Exact"), v1, served) is None
    invocation = find_invocation(hook(only_v2), v1, served)
    assert invocation is not None
    assert invocation.resource == GroupVersionResource("autoscaling", "v2",
                                                       "horizontalpodautoscalers")
    assert invocation.kind == GroupVersionKind("autoscaling", "v2", "HorizontalPodAutoscaler")


def test_a_rule_naming_the_request_version_wins_over_an_earlier_equivalent() -> None:
    served = ServedEquivalents()
    v1 = attrs("autoscaling", "v1", "horizontalpodautoscalers", kind="HorizontalPodAutoscaler")
    both = hook(rule(groups=("autoscaling",), versions=("v2",)),
                rule(groups=("autoscaling",), versions=("v1",)))
    invocation = find_invocation(both, v1, served)
    assert invocation is not None and invocation.resource.version == "v1"


def test_equivalents_of_a_subresource_keep_its_kind() -> None:
    served = ServedEquivalents()
    status = served(GroupVersionResource("autoscaling", "v1", "horizontalpodautoscalers"),
                    "status")
    assert [(gvr.version, gvk.kind) for gvr, gvk in status] == [
        ("v2", "HorizontalPodAutoscaler"), ("v1", "HorizontalPodAutoscaler")]
    scale = served(GroupVersionResource("apps", "v1", "deployments"), "scale")
    assert [gvk for _, gvk in scale] == [GroupVersionKind("autoscaling", "v1", "Scale")]
    assert served(GroupVersionResource("apps", "v1", "deployments"), "nosuch") == []


def test_custom_resources_are_equivalent_across_their_served_versions() -> None:
    from svcnet.apiserver.resources import Resource

    crs = [Resource("example.com", v, "Widget", "widgets", "widget", True)
           for v in ("v2", "v1")]
    served = ServedEquivalents(lambda: crs)
    v1 = attrs("example.com", "v1", "widgets", kind="Widget",
               obj={"apiVersion": "example.com/v1", "kind": "Widget"})
    invocation = find_invocation(hook(rule(versions=("v2",))), v1, served)
    assert invocation is not None and invocation.kind.api_version == "example.com/v2"
    assert convert_served({"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"a": 1}},
                          invocation.kind) == {"apiVersion": "example.com/v2",
                                               "kind": "Widget", "spec": {"a": 1}}


def test_hpa_objects_are_converted_between_v2_and_v1() -> None:
    v2 = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
          "metadata": {"name": "h"},
          "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d",
                                      "apiVersion": "apps/v1"},
                   "minReplicas": 1, "maxReplicas": 3,
                   "metrics": [{"type": "Resource", "resource": {
                       "name": "cpu", "target": {"type": "Utilization",
                                                 "averageUtilization": 50}}}]}}
    v1 = convert_served(v2, GroupVersionKind("autoscaling", "v1", "HorizontalPodAutoscaler"))
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 50
    back = convert_served(v1, GroupVersionKind("autoscaling", "v2", "HorizontalPodAutoscaler"))
    assert back["spec"]["metrics"] == v2["spec"]["metrics"]  # type: ignore[index]


def test_admission_configurations_are_exempt() -> None:
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
                 "ValidatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"):
        assert is_exempt(attrs("admissionregistration.k8s.io", "v1", "x", kind=kind,
                               namespace=""))
    assert not is_exempt(attrs(kind="Pod"))


# -- selectors --------------------------------------------------------------------------------

SELECTOR: Obj = {"matchExpressions": [{"key": "runlevel", "operator": "NotIn",
                                       "values": ["0", "1"]}]}


def test_namespace_selector_against_the_namespace_labels() -> None:
    h = hook(namespaceSelector=SELECTOR)
    a = attrs()
    assert needs_namespace_labels(h, a)
    assert namespace_selector_matches(h, a, {"runlevel": "2"})
    assert namespace_selector_matches(h, a, {})
    assert not namespace_selector_matches(h, a, {"runlevel": "1"})


def test_namespace_selector_match_labels() -> None:
    h = hook(namespaceSelector={"matchLabels": {"team": "a"}})
    assert namespace_selector_matches(h, attrs(), {"team": "a", "x": "y"})
    assert not namespace_selector_matches(h, attrs(), {"team": "b"})


def test_cluster_scoped_objects_skip_the_namespace_selector() -> None:
    h = hook(namespaceSelector={"matchLabels": {"team": "a"}})
    a = attrs("", "v1", "nodes", namespace="", name="n1")
    assert not needs_namespace_labels(h, a)
    assert namespace_selector_matches(h, a, None)


def test_a_namespace_write_is_matched_by_its_own_labels() -> None:
    h = hook(namespaceSelector={"matchLabels": {"team": "a"}})
    create = attrs("", "v1", "namespaces", namespace="", name="n",
                   obj=labelled(team="a"))
    assert not needs_namespace_labels(h, create)
    assert namespace_selector_matches(h, create, None)
    update = attrs("", "v1", "namespaces", operation="UPDATE", namespace="n", name="n",
                   obj=labelled(team="b"), old=labelled(team="a"))
    assert not namespace_selector_matches(h, update, None)
    # A delete has no new object: the stored namespace's labels decide.
    delete = attrs("", "v1", "namespaces", operation="DELETE", namespace="n", name="n",
                   old=labelled(team="a"))
    assert needs_namespace_labels(h, delete)
    assert namespace_selector_matches(h, delete, {"team": "a"})


def test_an_unknown_namespace_is_its_404() -> None:
    h = hook(namespaceSelector={"matchLabels": {"team": "a"}})
    with pytest.raises(StatusError) as e:
        namespace_selector_matches(h, attrs(namespace="gone"), None)
    assert (e.value.code, e.value.message) == (404, 'namespaces "gone" not found')


def test_an_empty_namespace_selector_needs_no_lookup() -> None:
    assert not needs_namespace_labels(hook(), attrs())


def test_object_selector_matches_the_new_or_the_old_object() -> None:
    h = hook(objectSelector={"matchLabels": {"app": "web"}})
    assert object_selector_matches(h, attrs(obj=labelled(app="web")))
    assert object_selector_matches(h, attrs(operation="UPDATE", obj=labelled(app="db"),
                                            old=labelled(app="web")))
    assert object_selector_matches(h, attrs(operation="DELETE", old=labelled(app="web")))
    assert not object_selector_matches(h, attrs(obj=labelled(app="db")))
    assert not object_selector_matches(h, attrs(obj={"metadata": {}}))
    assert object_selector_matches(hook(), attrs(obj={}))


def test_a_selector_that_does_not_parse_is_an_internal_error() -> None:
    h = hook(objectSelector={"matchExpressions": [{"key": "a", "operator": "Near"}]})
    with pytest.raises(StatusError) as e:
        object_selector_matches(h, attrs(obj={}))
    assert e.value.code == 500
    assert '"Near" is not a valid pod selector operator' in e.value.message


# -- configurations ---------------------------------------------------------------------------

def test_parse_webhooks_keeps_order_and_identity() -> None:
    config = {"metadata": {"name": "c"}, "webhooks": [
        {"name": "a.example.com", "clientConfig": {
            "service": {"namespace": "ns", "name": "svc", "path": "/m", "port": 8443},
            "caBundle": base64.b64encode(b"PEM").decode()},
         "reinvocationPolicy": "IfNeeded", "sideEffects": "NoneOnDryRun",
         "matchConditions": [{"name": "x", "expression": "true"}]},
        {"name": "b.example.com", "clientConfig": {"url": "https://h/"},
         "failurePolicy": "Ignore"}]}
    a, b = parse_webhooks(config, mutating=True)
    assert (a.uid, b.uid) == ("c/a.example.com/0", "c/b.example.com/1")
    assert a.client.is_service and a.client.service_port == 8443
    assert a.client.ca_bundle == b"PEM"
    assert a.reinvoke_if_needed and [c.name for c in a.match_conditions] == ["x"]
    assert b.match_conditions == ()
    assert b.ignores_failures and not b.reinvoke_if_needed
    # Validating webhooks are never reinvoked.
    assert not parse_webhooks(config, mutating=False)[0].reinvoke_if_needed


# -- the AdmissionReview ----------------------------------------------------------------------

def test_review_of_an_update() -> None:
    admission = AdmissionAttributes("update", "apps", "deployments", "", "web", "d",
                                    {"metadata": {"name": "d"}},
                                    {"metadata": {"name": "d", "labels": {"a": "1"}}})
    a = WebhookAttributes.of(admission, version="v1", kind="Deployment", dry_run=True,
                             options={"fieldManager": "kubectl"},
                             user=User("alice", "u-1", ("devs", "system:authenticated")))
    h = hook()
    invocation = find_invocation(h, a, no_equivalents)
    assert invocation is not None
    review = admission_review(invocation, a, "uid-1", "v1", a.object, a.old_object)
    assert review == {
        "kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": "uid-1",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "d", "namespace": "web", "operation": "UPDATE",
            "userInfo": {"username": "alice", "uid": "u-1",
                         "groups": ["devs", "system:authenticated"]},
            "object": {"metadata": {"name": "d", "labels": {"a": "1"}}},
            "oldObject": {"metadata": {"name": "d"}},
            "dryRun": True,
            "options": {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1",
                        "fieldManager": "kubectl"}}}


def test_review_of_a_create_by_the_server_on_a_subresource_at_an_equivalent() -> None:
    a = attrs("autoscaling", "v1", "horizontalpodautoscalers", "status",
              kind="HorizontalPodAutoscaler", obj={"kind": "HorizontalPodAutoscaler"})
    invocation = find_invocation(hook(rule(versions=("v2",), resources=("*/*",))), a,
                                 ServedEquivalents())
    assert invocation is not None
    request = admission_review(invocation, a, "u", "v1beta1", {}, None)["request"]
    assert request["kind"]["version"] == "v2" and request["requestKind"]["version"] == "v1"
    assert request["subResource"] == request["requestSubResource"] == "status"
    assert request["userInfo"] == {"username": "system:apiserver",
                                   "groups": ["system:masters"]}
    assert request["oldObject"] is None and request["options"] is None
    assert request["dryRun"] is False


def test_namespace_update_names_its_own_namespace() -> None:
    admission = AdmissionAttributes("update", "", "namespaces", "", "", "team-a", {}, {})
    assert WebhookAttributes.of(admission, version="v1", kind="Namespace").namespace == "team-a"


# -- answers ----------------------------------------------------------------------------------

def answer(version: str = "v1", **response: Any) -> Obj:
    return {"apiVersion": f"admission.k8s.io/{version}", "kind": "AdmissionReview",
            "response": response}


def test_an_allowed_answer() -> None:
    r = verify_response("v1", "u", False, answer(uid="u", allowed=True, warnings=["w"]))
    assert r == AdmissionResponse(True, warnings=("w",))


def test_a_patch_answer() -> None:
    patch = base64.b64encode(b"[]").decode()
    r = verify_response("v1", "u", True, answer(uid="u", allowed=True, patch=patch,
                                                patchType="JSONPatch"))
    assert (r.patch, r.patch_type) == (b"[]", "JSONPatch")


INVALID: list[tuple[str, str, bool, Obj, str]] = [
    ("absent", "v1", False, {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
     "webhook response was absent"),
    ("wrong uid", "v1", False, answer(uid="other", allowed=True),
     'expected response.uid="u", got "other"'),
    ("wrong version", "v1", False, answer("v1beta1", uid="u", allowed=True),
     "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got "
     "admission.k8s.io/v1beta1, Kind=AdmissionReview"),
    ("patch without type", "v1", True, answer(uid="u", allowed=True, patch="W10="),
     "webhook returned response.patch but not response.patchType"),
    ("type without patch", "v1", True, answer(uid="u", allowed=True, patchType="JSONPatch"),
     "webhook returned response.patchType but not response.patch"),
    ("validating patch", "v1", False, answer(uid="u", allowed=True, patch="W10=",
                                             patchType="JSONPatch"),
     "validating webhook may not return response.patch"),
    ("validating patch type", "v1", False, answer(uid="u", allowed=True,
                                                  patchType="JSONPatch"),
     "validating webhook may not return response.patchType"),
]


@pytest.mark.parametrize(("version", "mutating", "review", "message"),
                         [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_answers(version: str, mutating: bool, review: Obj, message: str) -> None:
    with pytest.raises(InvalidResponse) as e:
        verify_response(version, "u", mutating, review)
    assert str(e.value) == message


def test_v1beta1_answers_are_not_checked_for_uid_and_patch_type() -> None:
    r = verify_response("v1beta1", "u", True, answer("v1beta1", uid="x", allowed=True,
                                                     patch="W10="))
    assert (r.allowed, r.patch, r.patch_type) == (True, b"[]", "JSONPatch")


def test_undecodable_answers() -> None:
    with pytest.raises(UndecodableResponse, match="illegal base64 data at input byte 0"):
        verify_response("v1", "u", True, answer(uid="u", allowed=True, patch="!!!!",
                                                patchType="JSONPatch"))
    with pytest.raises(UndecodableResponse, match="Object 'Kind' is missing"):
        verify_response("v1", "u", True, {"response": {}})
    with pytest.raises(UndecodableResponse, match="of type bool"):
        verify_response("v1", "u", True, answer(uid="u", allowed="yes"))


DENIALS: list[tuple[str, Obj | None, int, str, str]] = [
    ("message and code", {"code": 403, "message": "no thanks", "reason": "Forbidden"}, 403,
     "Forbidden", 'admission webhook "w" denied the request: no thanks'),
    ("reason only", {"reason": "Because"}, 400, "Because",
     'admission webhook "w" denied the request: Because'),
    ("a code below 400 is 400", {"code": 200, "message": "m"}, 400, "",
     'admission webhook "w" denied the request: m'),
    ("no status", None, 400, "", 'admission webhook "w" denied the request without explanation'),
    ("a 500", {"code": 500}, 500, "", 'admission webhook "w" denied the request without '
     "explanation"),
]


@pytest.mark.parametrize(("result", "code", "reason", "message"),
                         [c[1:] for c in DENIALS], ids=[c[0] for c in DENIALS])
def test_denied(result: Obj | None, code: int, reason: str, message: str) -> None:
    e = denied("w", result)
    assert (e.code, e.reason, e.message) == (code, reason, message)
    status = e.to_status()
    assert status["status"] == "Failure" and status["code"] == code


def test_denied_keeps_the_details() -> None:
    details = {"causes": [{"field": "spec.x", "message": "bad"}]}
    assert denied("w", {"code": 422, "details": details}).to_status()["details"] == details


def test_review_round_trips_through_json() -> None:
    a = attrs(obj={"a": 1})
    invocation = find_invocation(hook(), a, no_equivalents)
    assert invocation is not None
    review = admission_review(invocation, a, "u", "v1", a.object, None)
    assert json.loads(json.dumps(review)) == review


# -- matchConditions --------------------------------------------------------------------------

def test_match_conditions_see_the_invocation_and_the_request() -> None:
    """``request`` carries the version the webhook is called at as ``kind``/``resource`` and
    the client's as ``requestKind``/``requestResource``, as the review does."""
    h = hook(matchConditions=[
        {"name": "a", "expression": "request.kind.version == 'v2' && "
                                    "request.requestKind.version == 'v' && "
                                    "request.resource.version == 'v2' && request.uid == ''"},
        {"name": "b", "expression": "request.userInfo.username == 'system:apiserver' && "
                                    "object.spec.x == 1 && request.operation == 'CREATE'"}])
    a = attrs(obj={"spec": {"x": 1}})
    invocation = Invocation(h, GroupVersionResource("g", "v2", "r"), "",
                            GroupVersionKind("g", "v2", "kr"))
    assert match_conditions(invocation, a, a.object, None)
    assert not match_conditions(invocation, a, {"spec": {"x": 2}}, None)
    with pytest.raises(StatusError) as e:
        match_conditions(invocation, a, {"spec": {}}, None)
    assert (e.value.code, e.value.message) == (
        403, "r.g \"name\" is forbidden: expression 'request.userInfo.username == "
             "'system:apiserver' && object.spec.x == 1 && request.operation == 'CREATE'' "
             "resulted in error: no such key: x")
