"""Ingress and IngressClass validation (pkg/apis/networking/validation, the cases of its
validation_test.go), IngressClass defaulting and the DefaultIngressClass admission."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from svcnet.api import kinds
from svcnet.api.errors import StatusError
from svcnet.api.ingresses import (
    admit_default_ingress_class,
    default_ingress_class,
    prepare_ingress_for_status_update,
    prepare_ingress_for_update,
    set_defaults_ingress_class,
    validate_ingress,
    validate_ingress_class,
    validate_ingress_class_update,
    validate_ingress_status_update,
    validate_ingress_update,
)

Obj = dict[str, Any]

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character "
                 "(e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
WILDCARD_MSG = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS "
                "subdomain, which must consist of lower case alphanumeric characters, '-' or "
                "'.' and end with an alphanumeric character (e.g. '*.example.com', regex used "
                "for validation is "
                "'\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
               "start with an alphabetic character, and end with an alphanumeric character "
               "(e.g. 'my-name',  or 'abc-123', regex used for validation is "
               "'[a-z]([-a-z0-9]*[a-z0-9])?')")
RULES_PATH = "spec.rules[0].http.paths[0]"


def backend(name: str = "default-backend", number: int = 80) -> Obj:
    return {"service": {"name": name, "port": {"number": number}}}


def ingress(**spec: Any) -> Obj:
    base: Obj = {
        "defaultBackend": backend(),
        "rules": [{"host": "foo.bar.com",
                   "http": {"paths": [{"path": "/foo", "pathType": "Prefix",
                                       "backend": backend()}]}}],
    }
    base.update(spec)
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "foo", "namespace": "default"}, "spec": base}


def with_path(**path: Any) -> Obj:
    obj = ingress()
    obj["spec"]["rules"][0]["http"]["paths"][0].update(path)
    return obj


def errors(errs: list[Any]) -> list[str]:
    return [str(e) for e in errs]


CASES: list[tuple[str, Obj, list[str]]] = [
    ("valid", ingress(), []),
    ("no rules nor default backend", ingress(defaultBackend=None, rules=None),
     ["spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` "
      "must be specified"]),
    ("default backend only", ingress(rules=None), []),
    ("rules only", ingress(defaultBackend=None), []),
    ("missing pathType", with_path(pathType=None),
     [f"{RULES_PATH}.pathType: Required value: pathType must be specified"]),
    ("unknown pathType", with_path(pathType="Regex"),
     [f'{RULES_PATH}.pathType: Unsupported value: "Regex": supported values: "Exact", '
      '"ImplementationSpecific", "Prefix"']),
    ("relative Prefix path", with_path(path="foo"),
     [f'{RULES_PATH}.path: Invalid value: "foo": must be an absolute path']),
    ("empty Exact path", with_path(path="", pathType="Exact"),
     [f'{RULES_PATH}.path: Invalid value: "": must be an absolute path']),
    ("Prefix path with //", with_path(path="/foo//bar"),
     [f"{RULES_PATH}.path: Invalid value: \"/foo//bar\": must not contain '//'"]),
    ("Exact path ending with /..", with_path(path="/foo/..", pathType="Exact"),
     [f"{RULES_PATH}.path: Invalid value: \"/foo/..\": cannot end with '/..'"]),
    ("Prefix path with %2F", with_path(path="/a%2Fb"),
     [f"{RULES_PATH}.path: Invalid value: \"/a%2Fb\": must not contain '%2F'"]),
    ("ImplementationSpecific empty path", with_path(path="", pathType="ImplementationSpecific"),
     []),
    ("ImplementationSpecific relative path",
     with_path(path="foo", pathType="ImplementationSpecific"),
     [f'{RULES_PATH}.path: Invalid value: "foo": must be an absolute path']),
    ("ImplementationSpecific path with //",
     with_path(path="/foo//bar", pathType="ImplementationSpecific"), []),
    ("both backends", with_path(backend={**backend(), "resource": {
        "apiGroup": "example.com", "kind": "foo", "name": "bar"}}),
     [f'{RULES_PATH}.backend: Invalid value: "": cannot set both resource and service '
      "backends"]),
    ("no backend", with_path(backend={}),
     [f'{RULES_PATH}.backend: Invalid value: "": resource or service backend is required']),
    ("resource backend", with_path(backend={"resource": {
        "apiGroup": "example.com", "kind": "StorageBucket", "name": "static"}}), []),
    ("resource backend without kind nor name", with_path(backend={"resource": {}}),
     [f"{RULES_PATH}.backend.resource.kind: Required value",
      f"{RULES_PATH}.backend.resource.name: Required value"]),
    ("resource backend name with /", with_path(backend={"resource": {"kind": "k",
                                                                     "name": "a/b"}}),
     [f"{RULES_PATH}.backend.resource.name: Invalid value: \"a/b\": may not contain '/'"]),
    ("service name not DNS-1035", with_path(backend=backend("1-svc")),
     [f'{RULES_PATH}.backend.service.name: Invalid value: "1-svc": {DNS1035_MSG}']),
    ("service without name", with_path(backend={"service": {"port": {"number": 80}}}),
     [f"{RULES_PATH}.backend.service.name: Required value"]),
    ("port name and number", with_path(backend={"service": {
        "name": "svc", "port": {"name": "http", "number": 80}}}),
     [f'{RULES_PATH}.backend: Invalid value: "": cannot set both port name & port number']),
    ("no port", with_path(backend={"service": {"name": "svc"}}),
     [f"{RULES_PATH}.backend: Required value: port name or number is required"]),
    ("port number out of range", with_path(backend=backend(number=70000)),
     [f"{RULES_PATH}.backend.service.port.number: Invalid value: 70000: must be between 1 and "
      "65535, inclusive"]),
    ("port name invalid", with_path(backend={"service": {"name": "svc",
                                                         "port": {"name": "HTTP"}}}),
     [f'{RULES_PATH}.backend.service.port.name: Invalid value: "HTTP": must contain only '
      "alpha-numeric characters (a-z, 0-9), and hyphens (-)",
      f'{RULES_PATH}.backend.service.port.name: Invalid value: "HTTP": must contain at least '
      "one letter (a-z)"]),
    ("host is an IP", ingress(rules=[{"host": "127.0.0.1"}]),
     ['spec.rules[0].host: Invalid value: "127.0.0.1": must be a DNS name, not an IP address']),
    ("host not a subdomain", ingress(rules=[{"host": "Foo.com"}]),
     [f'spec.rules[0].host: Invalid value: "Foo.com": {SUBDOMAIN_MSG}']),
    ("wildcard host", ingress(rules=[{"host": "*.bar.com"}]), []),
    ("bad wildcard host", ingress(rules=[{"host": "*.*.bar.com"}]),
     [f'spec.rules[0].host: Invalid value: "*.*.bar.com": {WILDCARD_MSG}']),
    ("http without paths", ingress(rules=[{"host": "a.com", "http": {"paths": []}}]),
     ["spec.rules[0].http.paths: Required value"]),
    ("tls hosts", ingress(tls=[{"hosts": ["a.com", "*.b.com", "*x.com"],
                                "secretName": "s"}]),
     [f'spec.tls[0].hosts[2]: Invalid value: "*x.com": {WILDCARD_MSG}']),
    ("tls secret name", ingress(tls=[{"secretName": "Bad_Secret"}]),
     [f'spec.tls[0].secretName: Invalid value: "Bad_Secret": {SUBDOMAIN_MSG}']),
    ("ingressClassName", ingress(ingressClassName="Bad"),
     [f'spec.ingressClassName: Invalid value: "Bad": {SUBDOMAIN_MSG}']),
]


@pytest.mark.parametrize(("obj", "want"), [(c[1], c[2]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_validate_ingress(obj: Obj, want: list[str]) -> None:
    obj = copy.deepcopy(obj)
    obj["spec"] = {k: v for k, v in obj["spec"].items() if v is not None}
    for item in obj["spec"].get("rules") or []:
        for p in (item.get("http") or {}).get("paths") or []:
            if p.get("pathType") is None:
                p.pop("pathType", None)
    assert errors(validate_ingress(obj)) == want


def test_empty_rules_list_is_printed_as_go_does() -> None:
    obj = ingress(rules=[])
    del obj["spec"]["defaultBackend"]
    assert errors(validate_ingress(obj)) == [
        "spec: Invalid value: []networking.IngressRule{}: either `defaultBackend` or `rules` "
        "must be specified"]


def test_class_annotation_must_match_class_name_on_create() -> None:
    obj = ingress(ingressClassName="a")
    obj["metadata"]["annotations"] = {"kubernetes.io/ingress.class": "b"}
    obj["metadata"]["resourceVersion"] = "1"
    assert errors(validate_ingress(obj)) == [
        'annotations.kubernetes.io/ingress.class: Invalid value: "b": must match '
        "`ingressClassName` when both are specified"]
    # Only on create: an update does not compare them.
    assert validate_ingress_update(obj, obj) == []


def test_update_grandfathers_what_the_stored_object_had() -> None:
    old = ingress(tls=[{"secretName": "Bad_Secret"}],
                  rules=[{"host": "*.a.com", "http": {"paths": [{"path": "rel",
                                                                 "pathType": "Prefix",
                                                                 "backend": backend()}]}}])
    old["metadata"]["resourceVersion"] = "1"
    assert validate_ingress_update(copy.deepcopy(old), old) == []
    # Without them in the stored object, the same object is refused.
    assert len(validate_ingress(old)) == 2


def test_status_update() -> None:
    old = ingress()
    old["metadata"]["resourceVersion"] = "1"
    new = copy.deepcopy(old)
    new["status"] = {"loadBalancer": {"ingress": [
        {"ip": "10.0.0.1"}, {"ip": "010.0.0.1"}, {"hostname": "10.0.0.2"},
        {"hostname": "lb.example.com"}]}}
    assert errors(validate_ingress_status_update(new, old)) == [
        'status.loadBalancer.ingress[1].ip: Invalid value: "010.0.0.1": must not have leading '
        "0s",
        'status.loadBalancer.ingress[2].hostname: Invalid value: "10.0.0.2": must be a DNS '
        "name, not an IP address"]


def test_status_and_spec_endpoints_keep_each_others_half() -> None:
    old = ingress()
    old["status"] = {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}
    new = ingress(ingressClassName="x")
    new["status"] = {"loadBalancer": {}}
    assert prepare_ingress_for_update(new, old)["status"] == old["status"]
    assert prepare_ingress_for_update(new, old)["spec"]["ingressClassName"] == "x"
    through_status = prepare_ingress_for_status_update(new, old)
    assert through_status["spec"] == old["spec"] and through_status["status"] == new["status"]


def test_create_through_kinds_refuses_a_bad_path_type() -> None:
    with pytest.raises(StatusError) as caught:
        kinds.check_object(with_path(pathType="Regex"))
    assert caught.value.code == 422
    assert caught.value.message.startswith('Ingress.networking.k8s.io "foo" is invalid: ')


# ------------------------------------------------------------------------- IngressClass


def ingress_class(**spec: Any) -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "test123"},
            "spec": {"controller": "foo.co/bar", **spec}}


CLASS_CASES: list[tuple[str, Obj, list[str]]] = [
    ("valid", ingress_class(), []),
    ("valid with parameters", ingress_class(parameters={
        "apiGroup": "example.com", "kind": "foo", "name": "bar", "scope": "Cluster"}), []),
    ("valid with namespaced parameters", ingress_class(parameters={
        "kind": "foo", "name": "bar", "scope": "Namespace", "namespace": "ns"}), []),
    ("no controller", ingress_class(controller=""), ["spec.controller: Required value"]),
    ("controller without a path", ingress_class(controller="foo.co"),
     ['spec.controller: Invalid value: "foo.co": must be a domain-prefixed path (such as '
      '"acme.io/foo")']),
    ("controller with a bad host", ingress_class(controller="Foo.co/bar"),
     [f'spec.controller: Invalid value: "Foo.co": {SUBDOMAIN_MSG}']),
    ("controller with a bad path", ingress_class(controller="foo.co/b a r"),
     ['spec.controller: Invalid value: "b a r": Invalid path (regex used for validation is '
      "'[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')"]),
    ("controller too long", ingress_class(controller="foo.co/" + "a" * 244),
     ["spec.controller: Too long: may not be more than 250 bytes"]),
    ("parameters without kind, name, scope", ingress_class(parameters={}),
     ["spec.parameters.kind: Required value", "spec.parameters.name: Required value",
      "spec.parameters.scope: Required value"]),
    ("parameters with a bad scope", ingress_class(parameters={
        "kind": "k", "name": "n", "scope": "Global"}),
     ['spec.parameters.scope: Unsupported value: "Global": supported values: "Cluster", '
      '"Namespace"']),
    ("namespace scope without namespace", ingress_class(parameters={
        "kind": "k", "name": "n", "scope": "Namespace"}),
     ["spec.parameters.namespace: Required value: `parameters.scope` is set to 'Namespace'"]),
    ("cluster scope with namespace", ingress_class(parameters={
        "kind": "k", "name": "n", "scope": "Cluster", "namespace": "ns"}),
     ["spec.parameters.namespace: Forbidden: `parameters.scope` is set to 'Cluster'"]),
    ("bad api group", ingress_class(parameters={
        "apiGroup": "no_group", "kind": "k", "name": "n", "scope": "Cluster"}),
     [f'spec.parameters.apiGroup: Invalid value: "no_group": {SUBDOMAIN_MSG}']),
]


@pytest.mark.parametrize(("obj", "want"), [(c[1], c[2]) for c in CLASS_CASES],
                         ids=[c[0] for c in CLASS_CASES])
def test_validate_ingress_class(obj: Obj, want: list[str]) -> None:
    assert errors(validate_ingress_class(obj)) == want


def test_ingress_class_controller_is_immutable() -> None:
    old = ingress_class()
    old["metadata"]["resourceVersion"] = "1"
    new = copy.deepcopy(old)
    new["spec"]["controller"] = "foo.co/baz"
    assert errors(validate_ingress_class_update(new, old)) == [
        'spec.controller: Invalid value: "foo.co/baz": field is immutable']
    new = copy.deepcopy(old)
    new["spec"]["parameters"] = {"kind": "k", "name": "n", "scope": "Cluster"}
    assert validate_ingress_class_update(new, old) == []


def test_parameters_scope_defaults_to_cluster() -> None:
    obj = ingress_class(parameters={"kind": "k", "name": "n"})
    assert set_defaults_ingress_class(obj)["spec"]["parameters"]["scope"] == "Cluster"
    assert "scope" not in obj["spec"]["parameters"], "the input is not changed"
    assert "parameters" not in set_defaults_ingress_class(ingress_class())["spec"]


# ------------------------------------------------------------------------- admission


def cls(name: str, default: str | None, created: str = "2026-01-01T00:00:00Z") -> Obj:
    meta: Obj = {"name": name, "creationTimestamp": created}
    if default is not None:
        meta["annotations"] = {"ingressclass.kubernetes.io/is-default-class": default}
    return {"metadata": meta, "spec": {"controller": "example.com/c"}}


def test_default_class_is_set_on_ingresses_without_one() -> None:
    classes = [cls("a", None), cls("b", "true"), cls("c", "false"), cls("d", "")]
    obj = ingress()
    assert admit_default_ingress_class(obj, classes)["spec"]["ingressClassName"] == "b"
    assert "ingressClassName" not in obj["spec"], "the input is not changed"


def test_named_class_or_annotation_is_left_alone() -> None:
    classes = [cls("b", "true")]
    named = ingress(ingressClassName="")
    assert admit_default_ingress_class(named, classes)["spec"]["ingressClassName"] == ""
    annotated = ingress()
    annotated["metadata"]["annotations"] = {"kubernetes.io/ingress.class": "nginx"}
    assert "ingressClassName" not in admit_default_ingress_class(annotated, classes)["spec"]
    assert "ingressClassName" not in admit_default_ingress_class(ingress(), [cls("a", None)])[
        "spec"]


def test_newest_default_wins_then_first_name() -> None:
    older, newer = cls("z", "true", "2026-01-01T00:00:00Z"), cls("y", "true",
                                                               "2026-02-01T00:00:00Z")
    found = default_ingress_class([older, newer])
    assert found is not None and found["metadata"]["name"] == "y"
    tie = default_ingress_class([cls("b", "true"), cls("a", "true")])
    assert tie is not None and tie["metadata"]["name"] == "a"
