"""Discovery (legacy and aggregated), Accept negotiation, /version, the resource catalogue and
the OpenAPI v3 documents: checked for what kubectl needs (docs/KUBECTL.md §2 and §5) and for
the exact values a real 1.33 apiserver reports where they are known (storage version hashes).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

import pytest

from svcnet.apiserver import discovery, openapi, openapi_spec, resources
from svcnet.apiserver.discovery import (
    AGGREGATED_V2,
    AGGREGATED_V2BETA1,
    negotiate_discovery,
    parse_accept,
)

Obj = dict[str, Any]

KUBECTL_DISCOVERY_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json")

# (resource, shortNames, categories) kubectl depends on.
KUBECTL_NAMES = [
    ("", "services", ["svc"], ["all"]),
    ("", "pods", ["po"], ["all"]),
    ("", "endpoints", ["ep"], []),
    ("", "namespaces", ["ns"], []),
    ("", "nodes", ["no"], []),
    ("", "events", ["ev"], []),
    ("apps", "deployments", ["deploy"], ["all"]),
    ("apps", "replicasets", ["rs"], ["all"]),
    ("apps", "daemonsets", ["ds"], ["all"]),
    ("apps", "statefulsets", ["sts"], ["all"]),
    ("", "replicationcontrollers", ["rc"], ["all"]),
    ("", "limitranges", ["limits"], []),
    ("", "resourcequotas", ["quota"], []),
    ("events.k8s.io", "events", ["ev"], []),
    ("discovery.k8s.io", "endpointslices", [], []),
    ("coordination.k8s.io", "leases", [], []),
    ("node.k8s.io", "runtimeclasses", [], []),
    ("scheduling.k8s.io", "priorityclasses", ["pc"], []),
    ("storage.k8s.io", "storageclasses", ["sc"], []),
    ("networking.k8s.io", "ingresses", ["ing"], []),
    ("networking.k8s.io", "ingressclasses", [], []),
    ("networking.k8s.io", "networkpolicies", ["netpol"], []),
    ("", "persistentvolumes", ["pv"], []),
    ("", "persistentvolumeclaims", ["pvc"], []),
    ("batch", "jobs", [], ["all"]),
    ("batch", "cronjobs", ["cj"], ["all"]),
]


@pytest.fixture(autouse=True)
def _whole_catalogue(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The builders are generic over the catalogue; test them over all of it, including the
    resources the server does not serve yet (see test_unserved_resources_are_not_advertised)."""
    monkeypatch.setattr(resources, "RESOURCES", resources.CATALOGUE)
    monkeypatch.setattr(resources, "GROUP_ORDER", tuple(dict.fromkeys(
        r.group for r in resources.CATALOGUE if r.group)))
    openapi.group_version_documents.cache_clear()
    yield
    openapi.group_version_documents.cache_clear()


def test_unserved_resources_are_not_advertised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()
    openapi.group_version_documents.cache_clear()
    served = {(r.group, r.resource) for r in resources.RESOURCES}
    assert not served & resources.NOT_SERVED_YET
    assert ("", "services") in served and ("discovery.k8s.io", "endpointslices") in served
    assert "events.k8s.io" not in [g["name"] for g in discovery.api_group_list()["groups"]]
    assert discovery.api_resource_list("events.k8s.io", "v1") is None
    assert "apis/events.k8s.io/v1" not in openapi.root_document()["paths"]


# =============================================================================== catalogue


def test_catalogue_lookups() -> None:
    svc = resources.by_resource("", "v1", "services")
    assert svc is not None
    assert (svc.kind, svc.singular, svc.list_kind, svc.scope) == (
        "Service", "service", "ServiceList", "Namespaced")
    assert resources.by_resource("", "v1", "services/status") is svc
    assert svc.subresource("status") is not None
    assert svc.subresource("proxy") is None
    assert resources.by_kind("v1", "Service") is svc
    deploy = resources.by_kind("apps/v1", "Deployment")
    assert deploy is not None
    assert deploy.path_prefix == "/apis/apps/v1"
    assert deploy.qualified_name == "deployments.apps"
    scale = deploy.subresource("scale")
    assert scale is not None
    assert deploy.subresource_gvk(scale) == ("autoscaling", "v1", "Scale")
    status = deploy.subresource("status")
    assert status is not None
    assert deploy.subresource_gvk(status) == ("apps", "v1", "Deployment")
    assert resources.by_kind("events.k8s.io/v1", "Event") is not resources.by_kind("v1", "Event")
    assert resources.by_resource("", "v1", "podtemplates") is None
    quota = resources.by_resource("", "v1", "resourcequotas")
    assert quota is not None and quota.short_names == ("quota",)
    assert quota.subresource("status") is not None
    sts = resources.by_kind("apps/v1", "StatefulSet")
    assert sts is not None and sts.subresource("scale") is not None
    ds = resources.by_kind("apps/v1", "DaemonSet")
    assert ds is not None and ds.subresource("scale") is None  # DaemonSets have no /scale
    rc = resources.by_kind("v1", "ReplicationController")
    assert rc is not None and rc.path_prefix == "/api/v1" and rc.subresource("scale") is not None
    revisions = resources.by_kind("apps/v1", "ControllerRevision")
    assert revisions is not None and not revisions.subresources and revisions.namespaced
    assert resources.by_kind("v1", "PodTemplate") is None  # not served


def test_catalogue_is_consistent() -> None:
    keys = [(r.group, r.version, r.resource) for r in resources.RESOURCES]
    assert len(keys) == len(set(keys))
    kinds = [(r.api_version, r.kind) for r in resources.RESOURCES]
    assert len(kinds) == len(set(kinds))
    assert resources.group_versions() == [
        ("", "v1"), ("apps", "v1"), ("events.k8s.io", "v1"), ("authentication.k8s.io", "v1"),
        ("authorization.k8s.io", "v1"), ("autoscaling", "v2"), ("autoscaling", "v1"),
        ("batch", "v1"), ("certificates.k8s.io", "v1"), ("networking.k8s.io", "v1"),
        ("policy", "v1"), ("rbac.authorization.k8s.io", "v1"), ("storage.k8s.io", "v1"),
        ("admissionregistration.k8s.io", "v1"), ("apiextensions.k8s.io", "v1"),
        ("scheduling.k8s.io", "v1"),
        ("coordination.k8s.io", "v1"), ("node.k8s.io", "v1"), ("discovery.k8s.io", "v1"),
        ("metrics.k8s.io", "v1beta1")]
    for group, version in resources.group_versions():
        names = [r.resource for r in resources.resources_in(group, version)]
        assert names == sorted(names), "upstream lists resources by name"


@pytest.mark.parametrize(("res", "hash_"), [
    ("services", "0/CO1lhkEBI="), ("pods", "xPOwRZ+Yhw8="), ("nodes", "XwShjMxG9Fs="),
    ("endpoints", "fWeeMqaN/OA="), ("events", "r2yiGXH7wu8="),
], ids=["services", "pods", "nodes", "endpoints", "events"])
def test_storage_version_hash_matches_upstream(res: str, hash_: str) -> None:
    r = resources.by_resource("", "v1", res)
    assert r is not None
    assert r.storage_version_hash == hash_


def test_storage_version_hash_of_events_k8s_io_is_core_event() -> None:
    # events.k8s.io/v1 Events are stored as core v1 Events, and upstream reports that hash.
    ev = resources.by_kind("events.k8s.io/v1", "Event")
    assert ev is not None
    assert ev.storage_version_hash == "r2yiGXH7wu8="
    deploy = resources.by_kind("apps/v1", "Deployment")
    assert deploy is not None
    assert deploy.storage_version_hash == "8aSe+NMegvE="
    # kube-apiserver 1.33's /apis/batch/v1 reports these.
    job, cronjob = resources.by_kind("batch/v1", "Job"), resources.by_kind("batch/v1", "CronJob")
    assert job is not None and job.storage_version_hash == "mudhfqk/qZY="
    assert cronjob is not None and cronjob.storage_version_hash == "sd5LIXh4Fjs="


# ======================================================================= legacy discovery


def test_api_versions() -> None:
    # The list is required by the official Python client even when empty.
    assert discovery.api_versions() == {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": []}
    with_addr = discovery.api_versions("127.0.0.1:6443")
    assert with_addr["serverAddressByClientCIDRs"] == [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]


def test_api_group_list() -> None:
    doc = discovery.api_group_list()
    assert doc["kind"] == "APIGroupList"
    assert doc["apiVersion"] == "v1"
    assert [g["name"] for g in doc["groups"]] == [
        "apps", "events.k8s.io", "authentication.k8s.io", "authorization.k8s.io",
        "autoscaling", "batch", "certificates.k8s.io", "networking.k8s.io", "policy",
        "rbac.authorization.k8s.io",
        "storage.k8s.io", "admissionregistration.k8s.io", "apiextensions.k8s.io",
        "scheduling.k8s.io", "coordination.k8s.io", "node.k8s.io",
        "discovery.k8s.io",
        "metrics.k8s.io"]
    slices = doc["groups"][-2]
    assert slices == {"name": "discovery.k8s.io",
                      "versions": [{"groupVersion": "discovery.k8s.io/v1", "version": "v1"}],
                      "preferredVersion": {"groupVersion": "discovery.k8s.io/v1",
                                           "version": "v1"}}


def test_api_group() -> None:
    apps = discovery.api_group("apps")
    assert apps is not None
    assert apps["kind"] == "APIGroup"
    assert apps["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    assert discovery.api_group("flowcontrol.apiserver.k8s.io") is None
    # Two versions: the preferred (storage) one first, as kube-apiserver lists them.
    autoscaling = discovery.api_group("autoscaling")
    assert autoscaling is not None
    assert autoscaling["versions"] == [{"groupVersion": "autoscaling/v2", "version": "v2"},
                                       {"groupVersion": "autoscaling/v1", "version": "v1"}]
    assert autoscaling["preferredVersion"] == {"groupVersion": "autoscaling/v2",
                                               "version": "v2"}


def test_autoscaling_versions_share_the_storage_version_hash() -> None:
    v2, v1 = (_legacy_entry("autoscaling", v, "horizontalpodautoscalers") for v in ("v2", "v1"))
    assert v1["storageVersionHash"] == v2["storageVersionHash"] == \
        resources.storage_version_hash("autoscaling", "v2", "HorizontalPodAutoscaler")
    assert v2["shortNames"] == v1["shortNames"] == ["hpa"]
    assert v2["categories"] == ["all"]
    status = _legacy_entry("autoscaling", "v1", "horizontalpodautoscalers/status")
    assert status["kind"] == "HorizontalPodAutoscaler" and "group" not in status
    doc = discovery.aggregated_discovery("apis")
    group = next(i for i in doc["items"] if i["metadata"]["name"] == "autoscaling")
    assert [v["version"] for v in group["versions"]] == ["v2", "v1"]
    assert group["versions"][1]["resources"][0]["responseKind"] == {
        "group": "autoscaling", "version": "v1", "kind": "HorizontalPodAutoscaler"}


def _legacy_entry(group: str, version: str, name: str) -> Obj:
    doc = discovery.api_resource_list(group, version)
    assert doc is not None
    entries: dict[str, Obj] = {e["name"]: e for e in doc["resources"]}
    return entries[name]


@pytest.mark.parametrize(("group", "res", "short", "cats"), KUBECTL_NAMES,
                         ids=[f"{g or 'core'}/{r}" for g, r, _, _ in KUBECTL_NAMES])
def test_legacy_resource_entries(group: str, res: str, short: list[str],
                                 cats: list[str]) -> None:
    entry = _legacy_entry(group, "v1", res)
    r = resources.by_resource(group, "v1", res)
    assert r is not None
    assert entry["kind"] == r.kind
    assert entry["singularName"] == r.singular
    assert entry["namespaced"] is r.namespaced
    assert entry.get("shortNames", []) == short
    assert entry.get("categories", []) == cats
    assert {"get", "list", "watch", "create", "update", "patch", "delete"} <= set(entry["verbs"])


def test_legacy_core_resource_list_shape() -> None:
    doc = discovery.api_resource_list("", "v1")
    assert doc is not None
    assert (doc["kind"], doc["apiVersion"], doc["groupVersion"]) == (
        "APIResourceList", "v1", "v1")
    assert [e["name"] for e in doc["resources"]] == [
        "configmaps", "endpoints", "events", "limitranges", "namespaces", "namespaces/finalize",
        "namespaces/status", "nodes", "nodes/status", "persistentvolumeclaims",
        "persistentvolumeclaims/status", "persistentvolumes", "persistentvolumes/status",
        "pods", "pods/attach", "pods/binding", "pods/eviction", "pods/exec", "pods/log",
            "pods/portforward",
        "pods/status", "replicationcontrollers", "replicationcontrollers/scale",
        "replicationcontrollers/status", "resourcequotas", "resourcequotas/status", "secrets",
        "serviceaccounts", "serviceaccounts/token", "services", "services/status"]
    assert _legacy_entry("", "v1", "services") == {
        "name": "services", "singularName": "service", "namespaced": True, "kind": "Service",
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update",
                  "watch"],
        "shortNames": ["svc"], "categories": ["all"], "storageVersionHash": "0/CO1lhkEBI="}
    assert _legacy_entry("", "v1", "services/status") == {
        "name": "services/status", "singularName": "", "namespaced": True, "kind": "Service",
        "verbs": ["get", "patch", "update"]}
    assert _legacy_entry("", "v1", "pods/binding")["kind"] == "Binding"
    # kubectl drain evicts only when it finds this entry, naming policy/v1 Eviction.
    assert _legacy_entry("", "v1", "pods/eviction") == {
        "name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy",
        "version": "v1", "kind": "Eviction", "verbs": ["create"]}
    assert _legacy_entry("", "v1", "pods/log")["verbs"] == ["get"]
    for sub, kind in (("exec", "PodExecOptions"), ("attach", "PodAttachOptions"),
                      ("portforward", "PodPortForwardOptions")):
        assert _legacy_entry("", "v1", f"pods/{sub}") == {
            "name": f"pods/{sub}", "singularName": "", "namespaced": True, "kind": kind,
            "verbs": ["create", "get"]}
    assert "deletecollection" not in _legacy_entry("", "v1", "namespaces")["verbs"]


def test_legacy_scale_subresource_names_its_group() -> None:
    assert _legacy_entry("apps", "v1", "deployments/scale") == {
        "name": "deployments/scale", "singularName": "", "namespaced": True,
        "group": "autoscaling", "version": "v1", "kind": "Scale",
        "verbs": ["get", "patch", "update"]}
    status = _legacy_entry("apps", "v1", "replicasets/status")
    assert "group" not in status
    assert status["kind"] == "ReplicaSet"


def test_unknown_group_version_has_no_resource_list() -> None:
    assert discovery.api_resource_list("autoscaling", "v2beta2") is None
    assert discovery.api_resource_list("flowcontrol.apiserver.k8s.io", "v1") is None
    assert discovery.api_resource_list("apps", "v1beta1") is None


# =================================================================== aggregated discovery


def _aggregated_resource(root: str, group: str, res: str) -> Obj:
    doc = discovery.aggregated_discovery(root)
    for item in doc["items"]:
        if item["metadata"].get("name", "") == group:
            for r in item["versions"][0]["resources"]:
                if r["resource"] == res:
                    found: Obj = r
                    return found
    raise AssertionError(f"{group}/{res} not in aggregated {root}")


def test_aggregated_api_has_only_the_core_group_without_a_name() -> None:
    doc = discovery.aggregated_discovery("api")
    assert doc["kind"] == "APIGroupDiscoveryList"
    assert doc["apiVersion"] == "apidiscovery.k8s.io/v2"
    assert doc["metadata"] == {}
    assert len(doc["items"]) == 1
    core = doc["items"][0]
    assert core["metadata"] == {}
    assert [v["version"] for v in core["versions"]] == ["v1"]
    assert core["versions"][0]["freshness"] == "Current"
    assert [r["resource"] for r in core["versions"][0]["resources"]] == [
        "configmaps", "endpoints", "events", "limitranges", "namespaces", "nodes",
        "persistentvolumeclaims", "persistentvolumes", "pods", "replicationcontrollers",
        "resourcequotas", "secrets", "serviceaccounts", "services"]


def test_aggregated_apis_lists_named_groups_in_order() -> None:
    doc = discovery.aggregated_discovery("apis")
    assert [i["metadata"]["name"] for i in doc["items"]] == [
        "apps", "events.k8s.io", "authentication.k8s.io", "authorization.k8s.io",
        "autoscaling", "batch", "certificates.k8s.io", "networking.k8s.io", "policy",
        "rbac.authorization.k8s.io",
        "storage.k8s.io", "admissionregistration.k8s.io", "apiextensions.k8s.io",
        "scheduling.k8s.io", "coordination.k8s.io", "node.k8s.io",
        "discovery.k8s.io",
        "metrics.k8s.io"]


@pytest.mark.parametrize(("group", "res", "short", "cats"), KUBECTL_NAMES,
                         ids=[f"{g or 'core'}/{r}" for g, r, _, _ in KUBECTL_NAMES])
def test_aggregated_resource_entries(group: str, res: str, short: list[str],
                                     cats: list[str]) -> None:
    entry = _aggregated_resource("apis" if group else "api", group, res)
    r = resources.by_resource(group, "v1", res)
    assert r is not None
    assert entry["responseKind"] == {"group": group, "version": "v1", "kind": r.kind}
    assert entry["scope"] == ("Namespaced" if r.namespaced else "Cluster")
    assert entry["singularResource"] == r.singular
    assert entry.get("shortNames", []) == short
    assert entry.get("categories", []) == cats
    assert entry["verbs"] == list(r.verbs)


def test_aggregated_subresources() -> None:
    svc = _aggregated_resource("api", "", "services")
    assert svc["subresources"] == [
        {"subresource": "status",
         "responseKind": {"group": "", "version": "v1", "kind": "Service"},
         "verbs": ["get", "patch", "update"]}]
    deploy = _aggregated_resource("apis", "apps", "deployments")
    assert [(s["subresource"], s["responseKind"]["group"], s["responseKind"]["kind"])
            for s in deploy["subresources"]] == [("scale", "autoscaling", "Scale"),
                                                 ("status", "apps", "Deployment")]
    assert "subresources" not in _aggregated_resource("apis", "discovery.k8s.io",
                                                      "endpointslices")


def test_aggregated_v2beta1_differs_only_in_api_version() -> None:
    for root in ("api", "apis"):
        v2 = discovery.aggregated_discovery(root, "v2")
        beta = discovery.aggregated_discovery(root, "v2beta1")
        assert beta["apiVersion"] == "apidiscovery.k8s.io/v2beta1"
        assert {**beta, "apiVersion": v2["apiVersion"]} == v2


def test_aggregated_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="root"):
        discovery.aggregated_discovery("apis/apps")
    with pytest.raises(ValueError, match="version"):
        discovery.aggregated_discovery("api", "v3")


def test_discovery_documents_are_json_serialisable() -> None:
    docs = [discovery.api_versions(), discovery.api_group_list(),
            discovery.aggregated_discovery("api"), discovery.aggregated_discovery("apis"),
            *(discovery.api_resource_list(g, v) for g, v in resources.group_versions())]
    for doc in docs:
        assert json.loads(json.dumps(doc)) == doc


# ============================================================================ negotiation

NEGOTIATION_CASES = [
    pytest.param(KUBECTL_DISCOVERY_ACCEPT, "v2", AGGREGATED_V2, id="kubectl"),
    pytest.param("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
                 "v2beta1", AGGREGATED_V2BETA1, id="v2beta1-only"),
    pytest.param("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
                 "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
                 "v2beta1", AGGREGATED_V2BETA1, id="client-order-kept"),
    pytest.param("application/json; as=APIGroupDiscoveryList; v=v2; g=apidiscovery.k8s.io",
                 "v2", AGGREGATED_V2, id="spaces-and-param-order"),
    pytest.param("application/json", None, "application/json", id="plain-json-legacy"),
    pytest.param("application/json, */*", None, "application/json", id="kubectl-legacy-gv"),
    pytest.param("", None, "application/json", id="empty"),
    pytest.param(None, None, "application/json", id="absent"),
    pytest.param("*/*", None, "application/json", id="wildcard"),
    pytest.param("application/json," + KUBECTL_DISCOVERY_ACCEPT, None, "application/json",
                 id="json-first-wins"),
    pytest.param("application/json;q=0.5," + KUBECTL_DISCOVERY_ACCEPT, "v2", AGGREGATED_V2,
                 id="quality-order"),
    pytest.param("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0,"
                 "application/json", None, "application/json", id="q-zero-refused"),
    pytest.param("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList",
                 None, "application/json", id="unknown-version-falls-back"),
    pytest.param("application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;"
                 "as=APIGroupDiscoveryList,application/json", None, "application/json",
                 id="protobuf-skipped"),
    pytest.param("application/json;as=Table;v=v1;g=meta.k8s.io,application/json", None,
                 "application/json", id="table-accept-gets-legacy"),
    pytest.param("text/html, */*;q=0.1", None, "application/json", id="browser"),
]


@pytest.mark.parametrize(("accept", "version", "content_type"), NEGOTIATION_CASES)
def test_negotiate_discovery(accept: str | None, version: str | None,
                             content_type: str) -> None:
    result = negotiate_discovery(accept)
    assert result.version == version
    assert result.aggregated is (version is not None)
    assert result.content_type == content_type


def test_aggregated_content_type_is_exact() -> None:
    # kubectl compares the response Content-Type literally; any other spelling breaks it.
    assert AGGREGATED_V2 == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def test_parse_accept() -> None:
    ranges = parse_accept('text/*;q=0.5, application/json;as="Table";v=v1, */*;q=0.1, bad, '
                          "application/yaml;q=zero, image/png")
    assert [(r.type, r.subtype, r.q) for r in ranges] == [
        ("application", "json", 1.0), ("image", "png", 1.0), ("text", "*", 0.5),
        ("*", "*", 0.1)]
    assert ranges[0].param("as") == "Table"
    assert ranges[0].param("g") is None
    assert ranges[2].matches("text", "plain")
    assert not ranges[2].matches("application", "json")


# ================================================================================ version


def test_version_info_reports_1_33() -> None:
    info = discovery.version_info(plat="linux/amd64")
    assert info["major"] == "1"
    assert info["minor"] == "33"
    assert info["gitVersion"].startswith("v1.33.")
    assert info["platform"] == "linux/amd64"
    assert set(info) >= {"gitCommit", "gitTreeState", "buildDate", "goVersion", "compiler"}
    assert discovery.version_info()["platform"].startswith("linux/")


# ================================================================================ OpenAPI


def _patch_ops(doc: Obj) -> list[tuple[str, Obj]]:
    return [(path, item["patch"]) for path, item in doc["paths"].items() if "patch" in item]


def _supports_field_validation(doc: Obj, gvk: Obj, order: list[str]) -> bool:
    """cli-runtime's supportsQueryParamV3, walking the paths in ``order``: the first PATCH
    operation for the kind decides."""
    for path in order:
        op = doc["paths"][path].get("patch")
        if op is None or op.get("x-kubernetes-group-version-kind") != gvk:
            continue
        return any(p["name"] == "fieldValidation" for p in op["parameters"])
    return False


def test_root_lists_every_group_version_with_matching_hash() -> None:
    root = openapi.root_document()
    paths = root["paths"]
    assert set(paths) == {openapi.group_version_path(g, v)
                          for g, v in resources.group_versions() if g != "metrics.k8s.io"}
    assert set(paths) >= {"api/v1", "apis/discovery.k8s.io/v1", "apis/apps/v1"}
    for path, entry in paths.items():
        doc = openapi.document_for(path)
        assert doc is not None
        expected_hash = hashlib.sha512(doc.body).hexdigest().upper()
        assert doc.etag == expected_hash
        assert entry["serverRelativeURL"] == f"/openapi/v3/{path}?hash={expected_hash}"
        assert doc.server_relative_url == entry["serverRelativeURL"]
        assert doc.etag_header == f'"{expected_hash}"'
    assert json.loads(openapi.root_document_bytes()) == root


def test_document_lookup() -> None:
    assert openapi.document_for("/api/v1") is openapi.document_for("api/v1")
    assert openapi.document_for("apis/flowcontrol.apiserver.k8s.io/v1") is None
    assert openapi.document_for("apis/autoscaling/v2") is not None


@pytest.mark.parametrize("res", [r for r in resources.RESOURCES if "patch" in r.verbs],
                         ids=lambda r: f"{r.api_version}/{r.kind}")
def test_every_kind_passes_kubectls_field_validation_probe(res: resources.Resource) -> None:
    doc_entry = openapi.document_for(openapi.group_version_path(res.group, res.version))
    assert doc_entry is not None
    doc = json.loads(doc_entry.body)
    gvk = {"group": res.group, "version": res.version, "kind": res.kind}
    patch_paths = [p for p, op in _patch_ops(doc)
                   if op["x-kubernetes-group-version-kind"] == gvk]
    assert patch_paths, f"no PATCH operation for {gvk}"
    # Go map order is random: every order of the candidate paths must pass.
    for order in itertools.permutations(patch_paths):
        assert _supports_field_validation(doc, gvk, list(order))


def test_patch_operations_advertise_upstreams_request_body() -> None:
    # With complete schemas kubectl computes client-side-apply patches from OpenAPI v3, which
    # it does only when the PATCH operation lists the strategic merge patch content type.
    for doc_entry in openapi.group_version_documents().values():
        doc = json.loads(doc_entry.body)
        for path, item in doc["paths"].items():
            for method in ("get", "put", "post", "patch", "delete"):
                if method in item:
                    assert "x-kubernetes-group-version-kind" in item[method], (path, method)
            if "patch" in item:
                content = item["patch"]["requestBody"]["content"]
                assert "application/strategic-merge-patch+json" in content, path


def test_every_patch_operation_has_field_validation() -> None:
    for doc_entry in openapi.group_version_documents().values():
        for path, op in _patch_ops(json.loads(doc_entry.body)):
            assert "fieldValidation" in [p["name"] for p in op["parameters"]], path


def test_openapi_document_shape_and_refs_resolve() -> None:
    doc = json.loads(openapi.group_version_documents()["api/v1"].body)
    assert doc["openapi"].startswith("3.")
    svc = doc["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]
    assert {"get", "put", "patch", "delete", "parameters"} <= set(svc)
    patch = svc["patch"]
    assert patch["operationId"] == "patchCoreV1NamespacedService"
    assert patch["x-kubernetes-action"] == "patch"
    assert patch["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1",
                                                        "kind": "Service"}
    assert [p["name"] for p in svc["parameters"]] == ["name", "namespace", "pretty"]
    assert doc["paths"]["/api/v1/services"]["get"]["operationId"] == (
        "listCoreV1ServiceForAllNamespaces")
    assert doc["paths"]["/api/v1/nodes/{name}/status"]["patch"]["operationId"] == (
        "patchCoreV1NodeStatus")
    assert "post" in doc["paths"]["/api/v1/namespaces/{namespace}/services"]
    schemas = doc["components"]["schemas"]
    for doc_entry in openapi.group_version_documents().values():
        d = json.loads(doc_entry.body)
        for ref in openapi_spec.iter_refs(d["paths"]):
            assert ref.removeprefix("#/components/schemas/") in d["components"]["schemas"]
    assert schemas["io.k8s.api.core.v1.Service"]["x-kubernetes-group-version-kind"] == [
        {"group": "", "version": "v1", "kind": "Service"}]
    apps = json.loads(openapi.group_version_documents()["apis/apps/v1"].body)
    scale = apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["patch"]["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert scale["patch"]["operationId"] == "patchAppsV1NamespacedDeploymentScale"


def test_hash_follows_content() -> None:
    # The served bytes are a pure function of the catalogue, so the hash is stable across
    # builds, and any change to the document changes it.
    doc = openapi.build_group_version_document("", "v1")
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert openapi.compute_etag(body) == openapi.group_version_documents()["api/v1"].etag
    doc["info"]["version"] = "v9.99.0"
    changed = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert openapi.compute_etag(changed) != openapi.compute_etag(body)
    hashes = [d.etag for d in openapi.group_version_documents().values()]
    assert len(set(hashes)) == len(hashes)


def test_unknown_group_version_document_is_empty() -> None:
    assert openapi.build_group_version_document(
        "flowcontrol.apiserver.k8s.io", "v1")["paths"] == {}


def test_custom_resources_join_discovery_after_the_built_in_groups() -> None:
    """CRDs' resources (svcnet/apiserver/customresources.py): their groups after the built-in
    ones, by name; their versions in Kubernetes' order (GA, beta, alpha); the preferred one
    first; aggregated discovery too; and /openapi/v3 documents for them."""
    extra = [resources.Resource("b.example.com", v, "Widget", "widgets", "widget", True,
                                short_names=("wd",), categories=("all",),
                                storage_group_version="b.example.com/v1")
             for v in ("v1alpha1", "v1", "v2beta1")]
    extra.append(resources.Resource("a.example.com", "v1", "Gadget", "gadgets", "gadget",
                                    False))
    groups = [g["name"] for g in discovery.api_group_list(extra)["groups"]]
    assert groups[-2:] == ["a.example.com", "b.example.com"]
    group = discovery.api_group("b.example.com", extra)
    assert group is not None
    assert [v["version"] for v in group["versions"]] == ["v1", "v2beta1", "v1alpha1"]
    assert group["preferredVersion"]["version"] == "v1"
    listed = discovery.api_resource_list("b.example.com", "v2beta1", extra)
    assert listed is not None and listed["resources"][0]["shortNames"] == ["wd"]
    agg = discovery.aggregated_discovery("apis", "v2", extra)
    assert agg["items"][-1]["metadata"]["name"] == "b.example.com"
    docs = openapi.custom_documents([(extra[1], {"type": "object", "properties": {
        "spec": {"type": "object"}}})])
    doc = json.loads(docs["apis/b.example.com/v1"].body)
    schema = doc["components"]["schemas"]["io.k8s.api.b.v1.Widget"]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "b.example.com", "kind": "Widget", "version": "v1"}]
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec"}
    patch = doc["paths"]["/apis/b.example.com/v1/namespaces/{namespace}/widgets/{name}"][
        "patch"]
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in doc["components"]["schemas"]
