"""admissionregistration.k8s.io/v1 webhook configurations: defaulting
(pkg/apis/admissionregistration/v1/defaults.go), validation after upstream's
validation_test.go (TestValidateValidatingWebhookConfiguration and its Update and Mutating
twins: full messages and paths), Go's URL parsing where it shows in messages, the generation
through a registry, and the Tables (printValidatingWebhook, printMutatingWebhook)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.api import kinds
from svcnet.api.admissionregistration import (
    set_defaults_mutating_webhook_configuration,
    set_defaults_validating_webhook_configuration,
    validate_mutating_webhook_configuration,
    validate_mutating_webhook_configuration_update,
    validate_validating_webhook_configuration,
    validate_validating_webhook_configuration_update,
)
from svcnet.api.errors import StatusError
from svcnet.api.gourl import URLError, parse_url
from svcnet.registry.admissionregistration import (
    MutatingWebhookConfigurationStrategy,
    ValidatingWebhookConfigurationStrategy,
)
from svcnet.registry.generic import Registry
from svcnet.storage.memory import MemoryStore
from tests.unit.apiserver.test_tables import cells, column_names, meta

Obj = dict[str, Any]

API_VERSION = "admissionregistration.k8s.io/v1"
DNS1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
           "with an alphabetic character, and end with an alphanumeric character (e.g. "
           "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
             "'-' or '.', and must start and end with an alphanumeric character (e.g. "
             "'example.com', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
QUALIFIED = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
             "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
             "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
FORM = "; desired format: https://host[/path]"
OPS = 'supported values: "*", "CONNECT", "CREATE", "DELETE", "UPDATE"'
W0 = "webhooks[0]"


def hook(name: str = "webhook.k8s.io", **fields: Any) -> Obj:
    """A valid webhook (before defaulting) with ``fields`` replaced; None removes a field."""
    h: Obj = {"name": name, "clientConfig": {"url": "https://example.com"},
              "sideEffects": "None", "admissionReviewVersions": ["v1"], **fields}
    return {k: v for k, v in h.items() if v is not None}


def config(*hooks: Obj, kind: str = "ValidatingWebhookConfiguration", **meta_: Any) -> Obj:
    return {"apiVersion": API_VERSION, "kind": kind,
            "metadata": {k: v for k, v in {"name": "config", "resourceVersion": "5",
                                           **meta_}.items() if v is not None},
            "webhooks": list(hooks)}


def rule(**fields: Any) -> Obj:
    r: Obj = {"operations": ["CREATE"], "apiGroups": ["a"], "apiVersions": ["a"],
              "resources": ["a"], **fields}
    return {k: v for k, v in r.items() if v is not None}


def service(**fields: Any) -> Obj:
    s: Obj = {"namespace": "ns", "name": "n", "port": 443, **fields}
    return {"clientConfig": {"service": {k: v for k, v in s.items() if v is not None}}}


def errors_of(obj: Obj) -> list[str]:
    return [str(e) for e in validate_validating_webhook_configuration(
        set_defaults_validating_webhook_configuration(obj))]


CASES: list[tuple[str, list[Obj], list[str]]] = [
    ("valid", [hook()], []),
    ("admission review versions are required", [hook(admissionReviewVersions=None)],
     [f"{W0}.admissionReviewVersions: Required value: must specify one of v1, v1beta1"]),
    ("a bad admission review version", [hook(admissionReviewVersions=["0v"])],
     [f'{W0}.admissionReviewVersions[0]: Invalid value: "0v": {DNS1035}',
      f'{W0}.admissionReviewVersions: Invalid value: []string{{"0v"}}: must include at least '
      "one of v1, v1beta1"]),
    ("accepted and unknown review versions mixed",
     [hook(admissionReviewVersions=["v1beta1", "invalid-version"])], []),
    ("no accepted review version", [hook(admissionReviewVersions=["invalidVersion"])],
     [f'{W0}.admissionReviewVersions[0]: Invalid value: "invalidVersion": {DNS1035}',
      f'{W0}.admissionReviewVersions: Invalid value: []string{{"invalidVersion"}}: must '
      "include at least one of v1, v1beta1"]),
    ("a duplicate review version", [hook(admissionReviewVersions=["v1beta1", "v1beta1"])],
     [f'{W0}.admissionReviewVersions[1]: Invalid value: "v1beta1": duplicate version']),
    ("webhook names are fully qualified", [hook(), hook("k8s.io"), hook("")],
     ['webhooks[1].name: Invalid value: "k8s.io": should be a domain with at least three '
      "segments separated by dots",
      "webhooks[2].name: Required value"]),
    ("a webhook name is a DNS subdomain", [hook("Web_hook.k8s.io")],
     [f'{W0}.name: Invalid value: "Web_hook.k8s.io": {SUBDOMAIN}']),
    ("webhook names are unique", [hook(), hook()],
     ['webhooks[1].name: Duplicate value: "webhook.k8s.io"']),
    ("operations are required",
     [hook(rules=[rule(operations=[]), rule(operations=None)])],
     [f"{W0}.rules[0].operations: Required value",
      f"{W0}.rules[1].operations: Required value"]),
    ('"" is not an operation', [hook(rules=[rule(operations=["CREATE", ""])])],
     [f'{W0}.rules[0].operations[1]: Unsupported value: "": {OPS}']),
    ("PATCH is not an operation", [hook(rules=[rule(operations=["PATCH"])])],
     [f'{W0}.rules[0].operations[0]: Unsupported value: "PATCH": {OPS}']),
    ("the wildcard operation stands alone", [hook(rules=[rule(operations=["CREATE", "*"])])],
     [f'{W0}.rules[0].operations: Invalid value: []admissionregistration.OperationType'
      '{"CREATE", "*"}: if \'*\' is present, must not specify other operations']),
    ('"*" may go with subresources',
     [hook(rules=[rule(resources=["*", "a/b", "a/*", "*/b"])])], []),
    ('"*" may not go with resources without subresources',
     [hook(rules=[rule(resources=["*", "a"])])],
     [f'{W0}.rules[0].resources: Invalid value: []string{{"*", "a"}}: if \'*\' is present, '
      "must not specify other resources without subresources"]),
    ("a/* may not go with a/x", [hook(rules=[rule(resources=["a/*", "a/x"])])],
     [f'{W0}.rules[0].resources[1]: Invalid value: "a/x": if \'a/*\' is present, must not '
      "specify a/x"]),
    ("a/* may go with a", [hook(rules=[rule(resources=["a/*", "a"])])], []),
    ("*/a may not go with x/a", [hook(rules=[rule(resources=["*/a", "x/a"])])],
     [f'{W0}.rules[0].resources[1]: Invalid value: "x/a": if \'*/a\' is present, must not '
      "specify x/a"]),
    ("*/* stands alone", [hook(rules=[rule(resources=["*/*", "a"])])],
     [f'{W0}.rules[0].resources: Invalid value: []string{{"*/*", "a"}}: if \'*/*\' is '
      "present, must not specify other resources"]),
    ("groups, versions and resources are required",
     [hook(rules=[rule(apiGroups=None, apiVersions=["v1", ""], resources=[""])])],
     [f"{W0}.rules[0].apiGroups: Required value",
      f"{W0}.rules[0].apiVersions[1]: Required value",
      f"{W0}.rules[0].resources[0]: Required value"]),
    ("the wildcard group and version stand alone",
     [hook(rules=[rule(apiGroups=["", "*"], apiVersions=["*", "v1"])])],
     [f'{W0}.rules[0].apiGroups: Invalid value: []string{{"", "*"}}: if \'*\' is present, '
      "must not specify other API groups",
      f'{W0}.rules[0].apiVersions: Invalid value: []string{{"*", "v1"}}: if \'*\' is present, '
      "must not specify other API versions"]),
    ("a scope is one of three", [hook(rules=[rule(scope="Global")])],
     [f'{W0}.rules[0].scope: Unsupported value: "Global": supported values: "*", "Cluster", '
      '"Namespaced"']),
    ("failure policy Ignore or Fail", [hook(failurePolicy="other")],
     [f'{W0}.failurePolicy: Unsupported value: "other": supported values: "Fail", "Ignore"']),
    ("match policy Exact or Equivalent", [hook(matchPolicy="Loose")],
     [f'{W0}.matchPolicy: Unsupported value: "Loose": supported values: "Equivalent", '
      '"Exact"']),
    ("side effects are required", [hook(sideEffects=None)],
     [f"{W0}.sideEffects: Required value: must specify one of None, NoneOnDryRun"]),
    ("new side effects are None or NoneOnDryRun", [hook(sideEffects="Some")],
     [f'{W0}.sideEffects: Unsupported value: "Some": supported values: "None", '
      '"NoneOnDryRun"']),
    ("neither url nor service", [hook(clientConfig={})],
     [f"{W0}.clientConfig: Required value: exactly one of url or service is required"]),
    ("both url and service",
     [hook(clientConfig={"url": "example.com/k8s/webhook",
                         "service": {"namespace": "ns", "name": "n"}})],
     [f"{W0}.clientConfig: Required value: exactly one of url or service is required"]),
    ("a blank url", [hook(clientConfig={"url": ""})],
     [f'{W0}.clientConfig.url: Invalid value: "": \'https\' is the only allowed URL scheme'
      + FORM,
      f'{W0}.clientConfig.url: Invalid value: "": host must be specified' + FORM]),
    ("http", [hook(clientConfig={"url": "http://example.com"})],
     [f'{W0}.clientConfig.url: Invalid value: "http": \'https\' is the only allowed URL '
      "scheme" + FORM]),
    ("no host", [hook(clientConfig={"url": "https:///fancy/webhook"})],
     [f'{W0}.clientConfig.url: Invalid value: "": host must be specified' + FORM]),
    ("a fragment", [hook(clientConfig={"url": "https://example.com/#bookmark"})],
     [f'{W0}.clientConfig.url: Invalid value: "bookmark": fragments are not permitted in the '
      "URL"]),
    ("a query", [hook(clientConfig={"url": "https://example.com?arg=value"})],
     [f'{W0}.clientConfig.url: Invalid value: "arg=value": query parameters are not permitted '
      "in the URL"]),
    ("user information", [hook(clientConfig={"url": "https://harry.potter@example.com/"})],
     [f'{W0}.clientConfig.url: Invalid value: "harry.potter": user information is not '
      "permitted in the URL"]),
    ("just totally wrong",
     [hook(clientConfig={"url": "arg#backwards=thisis?html.index/port:host//:https"})],
     [f'{W0}.clientConfig.url: Invalid value: "": \'https\' is the only allowed URL scheme'
      + FORM,
      f'{W0}.clientConfig.url: Invalid value: "": host must be specified' + FORM,
      f'{W0}.clientConfig.url: Invalid value: "backwards=thisis?html.index/port:host//:https":'
      " fragments are not permitted in the URL"]),
    ("a url Go cannot parse", [hook(clientConfig={"url": "https://example.com:https/"})],
     [f'{W0}.clientConfig.url: Required value: url must be a valid URL: parse '
      '"https://example.com:https/": invalid port ":https" after host' + FORM]),
    ("a service path starts with a slash", [hook(**service(path="foo/"))],
     [f'{W0}.clientConfig.service.path: Invalid value: "foo/": must start with a \'/\'']),
    ("a service path of / or /foo", [hook(**service(path="/")), hook("b.k8s.io",
                                                                        **service(path="/foo"))],
     []),
    ("a service path //", [hook(**service(path="//"))],
     [f'{W0}.clientConfig.service.path: Invalid value: "//": segment[0] may not be empty']),
    ("no empty step", [hook(**service(path="/foo//bar/")), hook("b.k8s.io",
                                                                 **service(path="/foo/bar//"))],
     [f'{W0}.clientConfig.service.path: Invalid value: "/foo//bar/": segment[1] may not be '
      "empty",
      'webhooks[1].clientConfig.service.path: Invalid value: "/foo/bar//": segment[2] may not '
      "be empty"]),
    ("steps are subdomains", [hook(**service(path="/apis/foo.bar/v1alpha1/--bad"))],
     [f'{W0}.clientConfig.service.path: Invalid value: "/apis/foo.bar/v1alpha1/--bad": '
      f"segment[3]: {SUBDOMAIN}"]),
    ("ports 0 and 65536", [hook(**service(port=0)), hook("b.k8s.io", **service(port=65536))],
     [f"{W0}.clientConfig.service.port: Invalid value: 0: port is not valid: must be between "
      "1 and 65535, inclusive",
      "webhooks[1].clientConfig.service.port: Invalid value: 65536: port is not valid: must be "
      "between 1 and 65535, inclusive"]),
    ("a service names its name and namespace", [hook(**service(name=None, namespace=None))],
     [f"{W0}.clientConfig.service.name: Required value: service name is required",
      f"{W0}.clientConfig.service.namespace: Required value: service namespace is required"]),
    ("timeouts from 1 to 30",
     [hook(timeoutSeconds=31), hook("b.k8s.io", timeoutSeconds=0),
      hook("c.k8s.io", timeoutSeconds=-1), hook("d.k8s.io", timeoutSeconds=1),
      hook("e.k8s.io", timeoutSeconds=30)],
     [f"{W0}.timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 "
      "seconds",
      "webhooks[1].timeoutSeconds: Invalid value: 0: the timeout value must be between 1 and "
      "30 seconds",
      "webhooks[2].timeoutSeconds: Invalid value: -1: the timeout value must be between 1 and "
      "30 seconds"]),
    ("selectors are label selectors",
     [hook(namespaceSelector={"matchExpressions": [{"key": "a", "operator": "Has"}]},
           objectSelector={"matchLabels": {"a": "b c"}})],
     [f'{W0}.namespaceSelector.matchExpressions[0].operator: Invalid value: "Has": not a '
      "valid selector operator",
      f'{W0}.objectSelector.matchLabels: Invalid value: "b c": a valid label must be an empty '
      "string or consist of alphanumeric characters, '-', '_' or '.', and must start and end "
      "with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex "
      "used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]),
    ("match conditions have names",
     [hook(matchConditions=[{"expression": "true"}, {"expression": "true"}]),
      hook("b.k8s.io", matchConditions=[{"name": "", "expression": "true"}])],
     [f"{W0}.matchConditions[0].name: Required value",
      f"{W0}.matchConditions[1].name: Required value",
      "webhooks[1].matchConditions[0].name: Required value"]),
    ("match condition names are qualified names",
     [hook(matchConditions=[{"name": ".io", "expression": "true"},
                            {"name": "thing.test.com", "expression": "true"}]),
      hook("b.k8s.io", matchConditions=[{"name": "some name", "expression": "true"}])],
     [f'{W0}.matchConditions[0].name: Invalid value: ".io": {QUALIFIED}',
      f'webhooks[1].matchConditions[0].name: Invalid value: "some name": {QUALIFIED}']),
    ("a match condition has an expression",
     [hook(matchConditions=[{"name": "a"}, {"name": "b", "expression": "  \n"}])],
     [f"{W0}.matchConditions[0].expression: Required value",
      f"{W0}.matchConditions[1].expression: Required value"]),
    ("match condition names are unique in a webhook, not across them",
     [hook(matchConditions=[{"name": "x", "expression": "true"},
                            {"name": "x", "expression": "true"}]),
      hook("b.k8s.io", matchConditions=[{"name": "x", "expression": "true"}])],
     [f'{W0}.matchConditions[1].name: Duplicate value: "x"']),
    ("at most 64 match conditions",
     [hook(matchConditions=[{"name": f"c{i}", "expression": "true"} for i in range(65)])],
     [f"{W0}.matchConditions: Too many: 65: must have at most 64 items"]),
    ("a match condition that does not compile (trimmed, as upstream shows it)",
     [hook(matchConditions=[{"name": "x", "expression": "object.x in [1, 2, "}])],
     [f'{W0}.matchConditions[0].expression: Invalid value: "object.x in [1, 2,": compilation '
      "failed: ERROR: <input>:1:19: Syntax error: missing ']' at '<EOF>'\n"
      " | object.x in [1, 2,\n | ..................^"]),
    ("a match condition of an undeclared variable",
     [hook(matchConditions=[{"name": "x", "expression": "params == null"}])],
     [f'{W0}.matchConditions[0].expression: Invalid value: "params == null": compilation '
      "failed: ERROR: <input>:1:1: undeclared reference to 'params' (in container '')\n"
      " | params == null\n | ^"]),
    ("a match condition must be a bool (dyn is not)",
     [hook(matchConditions=[{"name": "a", "expression": "object.metadata.name"},
                            {"name": "b", "expression": "object.spec.enabled"},
                            {"name": "c", "expression": "request.operation"}])],
     [f'{W0}.matchConditions[0].expression: Invalid value: "object.metadata.name": '
      "must evaluate to bool",
      f'{W0}.matchConditions[1].expression: Invalid value: "object.spec.enabled": '
      "must evaluate to bool",
      f'{W0}.matchConditions[2].expression: Invalid value: "request.operation": '
      "must evaluate to bool"]),
    ("match conditions in upstream's environment compile",
     [hook(matchConditions=[
         {"name": "a", "expression": "!(request.userInfo.username == 'system:kube-scheduler')"},
         {"name": "b", "expression": "has(object.metadata.labels) && "
                                     "object.metadata.labels['app'] == 'web'"},
         {"name": "c", "expression": "oldObject == null || request.operation == 'UPDATE'"},
         {"name": "d", "expression": "request.dryRun"},
         {"name": "e", "expression": "'system:masters' in request.userInfo.groups"},
         {"name": "f", "expression": "authorizer.group('').resource('pods')"
                                     ".namespace('default').check('create').allowed()"},
         {"name": "g", "expression": "authorizer.requestResource.check('get').allowed()"},
         {"name": "h", "expression": "object.metadata.name.startsWith('x') && "
                                     "quantity('1Gi').isGreaterThan(quantity('1Mi'))"}])],
     []),
]


@pytest.mark.parametrize(("hooks", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_validate_validating_webhook_configuration(hooks: list[Obj],
                                                   expected: list[str]) -> None:
    assert errors_of(config(*hooks)) == expected


def test_the_configuration_name_is_a_subdomain_and_not_namespaced() -> None:
    assert errors_of(config(hook(), name="Bad_Name")) == [
        f'metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN}']
    assert errors_of(config(name="empty-is-fine")) == []


def test_defaults() -> None:
    given = config(hook(rules=[rule()], **service()),
                   hook("b.k8s.io", clientConfig={"service": {"namespace": "ns", "name": "n"}},
                        timeoutSeconds=3, failurePolicy="Ignore"))
    before = copy.deepcopy(given)
    out = set_defaults_validating_webhook_configuration(given)
    assert given == before, "the input is not changed"
    first, second = out["webhooks"]
    assert first == {**hook(rules=[{**rule(), "scope": "*"}], **service()),
                     "failurePolicy": "Fail", "matchPolicy": "Equivalent",
                     "namespaceSelector": {}, "objectSelector": {}, "timeoutSeconds": 10}
    assert second["clientConfig"]["service"]["port"] == 443
    assert (second["timeoutSeconds"], second["failurePolicy"]) == (3, "Ignore")
    assert "reinvocationPolicy" not in first and "sideEffects" in first
    mutating = set_defaults_mutating_webhook_configuration(
        config(hook(), hook("b.k8s.io", reinvocationPolicy="IfNeeded"),
               kind="MutatingWebhookConfiguration"))
    assert [h["reinvocationPolicy"] for h in mutating["webhooks"]] == ["Never", "IfNeeded"]
    # No default for what v1 requires.
    bare = set_defaults_validating_webhook_configuration(config({"name": "a.b.c"}))
    assert "sideEffects" not in bare["webhooks"][0]
    assert "admissionReviewVersions" not in bare["webhooks"][0]


def test_mutating_webhooks_have_a_reinvocation_policy() -> None:
    bad = config(hook(reinvocationPolicy="Always"), kind="MutatingWebhookConfiguration")
    assert [str(e) for e in validate_mutating_webhook_configuration(
        set_defaults_mutating_webhook_configuration(bad))] == [
        f'{W0}.reinvocationPolicy: Unsupported value: "Always": supported values: "IfNeeded", '
        '"Never"']
    # The same webhook rules apply (one code path): a short name, a duplicate.
    assert [str(e) for e in validate_mutating_webhook_configuration(
        config(hook("a.b"), hook("a.b"), kind="MutatingWebhookConfiguration"))] == [
        f'{W0}.name: Invalid value: "a.b": should be a domain with at least three segments '
        "separated by dots",
        'webhooks[1].name: Invalid value: "a.b": should be a domain with at least three '
        "segments separated by dots",
        'webhooks[1].name: Duplicate value: "a.b"']


# ---------------------------------------------------------------------------------- updates

def update_errors(new: Obj, old: Obj, *, mutating: bool = False) -> list[str]:
    if mutating:
        return [str(e) for e in validate_mutating_webhook_configuration_update(new, old)]
    return [str(e) for e in validate_validating_webhook_configuration_update(new, old)]


UPDATE_CASES: list[tuple[str, Obj, Obj, list[str]]] = [
    ("a valid update", config(hook(timeoutSeconds=5)), config(hook()), []),
    ("side effects Some stay allowed when stored",
     config(hook(sideEffects="Unknown")), config(hook(sideEffects="Some")), []),
    ("the stored side effects allow all four classes",
     config(hook(sideEffects=None)), config(hook(sideEffects="Some")),
     [f"{W0}.sideEffects: Required value: must specify one of None, NoneOnDryRun, Some, "
      "Unknown"]),
    ("side effects Some are refused when none were stored",
     config(hook(sideEffects="Some")), config(hook()),
     [f'{W0}.sideEffects: Unsupported value: "Some": supported values: "None", '
      '"NoneOnDryRun"']),
    ("unknown review versions stay allowed when stored",
     config(hook(admissionReviewVersions=["invalid-v1", "invalid-v2"])),
     config(hook(admissionReviewVersions=["invalid-v1"])), []),
    ("unknown review versions are refused when the stored ones were known",
     config(hook(admissionReviewVersions=["invalid-v1"])), config(hook()),
     [f'{W0}.admissionReviewVersions: Invalid value: []string{{"invalid-v1"}}: must include '
      "at least one of v1, v1beta1"]),
    ("duplicate names stay allowed when stored",
     config(hook(), hook(), hook()), config(hook(), hook()), []),
    ("duplicate names are refused when the stored ones were unique",
     config(hook(), hook()), config(hook()),
     ['webhooks[1].name: Duplicate value: "webhook.k8s.io"']),
    ("unchanged match conditions are not checked again",
     config(hook(matchConditions=[{"name": "-x", "expression": "true"}], timeoutSeconds=5)),
     config(hook(matchConditions=[{"name": "-x", "expression": "true"}])), []),
    ("changed match conditions are checked",
     config(hook(matchConditions=[{"name": "-y", "expression": "true"}])),
     config(hook(matchConditions=[{"name": "-x", "expression": "true"}])),
     [f'{W0}.matchConditions[0].name: Invalid value: "-y": {QUALIFIED}']),
    ("invalid label values stay allowed when a stored selector had one",
     config(hook(objectSelector={"matchLabels": {"a": "b c"}}, timeoutSeconds=5)),
     config(hook(objectSelector={"matchLabels": {"a": "b c"}})),
     [f'{W0}.objectSelector.matchLabels: Invalid value: "b c": a valid label must be an empty '
      "string or consist of alphanumeric characters, '-', '_' or '.', and must start and end "
      "with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex "
      "used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]),
    ("expression values stay allowed when a stored selector had one",
     config(hook(objectSelector={"matchExpressions": [
         {"key": "a", "operator": "In", "values": ["b c"]}]}, timeoutSeconds=5)),
     config(hook(objectSelector={"matchExpressions": [
         {"key": "a", "operator": "In", "values": ["b c"]}]})), []),
    ("the metadata update rules come first",
     config(hook(sideEffects="Some"), resourceVersion=""), config(hook()),
     ['metadata.resourceVersion: Invalid value: "": must be specified for an update',
      f'{W0}.sideEffects: Unsupported value: "Some": supported values: "None", '
      '"NoneOnDryRun"']),
]


@pytest.mark.parametrize(("new", "old", "expected"), [c[1:] for c in UPDATE_CASES],
                         ids=[c[0] for c in UPDATE_CASES])
@pytest.mark.parametrize("mutating", [False, True], ids=["validating", "mutating"])
def test_validate_update(new: Obj, old: Obj, expected: list[str], mutating: bool) -> None:
    assert update_errors(new, old, mutating=mutating) == expected


# ------------------------------------------------------------------------------ Go's URLs

@pytest.mark.parametrize(("url", "expected"), [
    ("https://example.com/a?b=c#d", ("https", "example.com", None, "b=c", "d")),
    ("HTTPS://u:p@[::1]:8443/x", ("https", "[::1]:8443", "u:p", "", "")),
    ("example.com/k8s/webhook", ("", "", None, "", "")),
    ("mailto:someone@example.com", ("mailto", "", None, "", "")),
    ("https://example.com/%41#%62", ("https", "example.com", None, "", "b")),
])
def test_go_url_parts(url: str, expected: tuple[str, str, str | None, str, str]) -> None:
    u = parse_url(url)
    assert (u.scheme, u.host, u.user, u.raw_query, u.fragment) == expected


@pytest.mark.parametrize(("url", "message"), [
    (":foo", 'parse ":foo": missing protocol scheme'),
    ("1http://x", 'parse "1http://x": first path segment in URL cannot contain colon'),
    ("https://exa mple.com", 'parse "https://exa mple.com": invalid character " " in host name'),
    ("https://[::1/", "parse \"https://[::1/\": missing ']' in host"),
    ("https://a%zz/", 'parse "https://a%zz/": invalid URL escape "%zz"'),
    ("https://a/#%x", 'parse "https://a/#%x": invalid URL escape "%x"'),
    ("https://a{b@c/", 'parse "https://a{b@c/": net/url: invalid userinfo'),
])
def test_go_url_errors(url: str, message: str) -> None:
    with pytest.raises(URLError) as err:
        parse_url(url)
    assert str(err.value) == message


def test_go_url_refuses_control_characters() -> None:
    with pytest.raises(URLError, match=r"net/url: invalid control character in URL$"):
        parse_url("https://a\x7f/")


# ------------------------------------------------------------- registry, kinds and Tables

async def test_generation_moves_when_webhooks_change() -> None:
    for strategy, kind in ((ValidatingWebhookConfigurationStrategy(),
                            "ValidatingWebhookConfiguration"),
                           (MutatingWebhookConfigurationStrategy(),
                            "MutatingWebhookConfiguration")):
        registry = Registry(MemoryStore(), strategy)
        made = await registry.create("", config(hook(), kind=kind, resourceVersion=None))
        assert made["metadata"]["generation"] == 1 and "namespace" not in made["metadata"]
        assert made["webhooks"][0]["timeoutSeconds"] == 10, "defaulted on create"
        made["metadata"]["labels"] = {"app": "x"}
        relabelled = await registry.update("", "config", made)
        assert relabelled["metadata"]["generation"] == 1
        relabelled["webhooks"][0]["failurePolicy"] = "Ignore"
        del relabelled["webhooks"][0]["timeoutSeconds"]
        changed = await registry.update("", "config", relabelled)
        assert changed["metadata"]["generation"] == 2
        assert changed["webhooks"][0]["timeoutSeconds"] == 10, "defaulted on update"
        with pytest.raises(StatusError) as err:
            await registry.create("", {**config(hook("short")), "metadata": {"name": "x"},
                                       "kind": kind})
        assert err.value.code == 422
        assert str(err.value) == (
            f'{kind}.admissionregistration.k8s.io "x" is invalid: webhooks[0].name: Invalid '
            'value: "short": should be a domain with at least three segments separated by '
            "dots")


def test_offline_check_defaults_and_validates() -> None:
    checked = kinds.check_object(config(hook()))
    assert checked["webhooks"][0]["matchPolicy"] == "Equivalent"
    with pytest.raises(StatusError):
        kinds.check_object(config(hook(sideEffects=None), kind="MutatingWebhookConfiguration"))


@pytest.mark.parametrize("kind", ["ValidatingWebhookConfiguration",
                                  "MutatingWebhookConfiguration"])
def test_table_counts_the_webhooks(kind: str) -> None:
    assert column_names(API_VERSION, kind) == [("Name", 0), ("Webhooks", 0), ("Age", 0)]
    two = {"metadata": meta("cert-manager-webhook", None), "webhooks": [hook(), hook("b.c.d")]}
    assert cells(API_VERSION, kind, two) == ["cert-manager-webhook", 2, "5m"]
    assert cells(API_VERSION, kind, {"metadata": meta("none", None)}) == ["none", 0, "5m"]
