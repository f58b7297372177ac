"""The OpenAPI documents: generated schemas, paths from the catalogue, v2 and protobuf."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import models

from svcnet.apiserver import openapi, openapi_descriptor, openapi_spec, openapi_v2, resources
from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _fresh_documents() -> Iterator[None]:
    openapi.group_version_documents.cache_clear()
    openapi.v2_document.cache_clear()
    yield
    openapi.group_version_documents.cache_clear()
    openapi.v2_document.cache_clear()


def _v3_docs() -> dict[str, dict[str, Any]]:
    return {path: json.loads(doc.body)
            for path, doc in openapi.group_version_documents().items()}


def _v2() -> dict[str, Any]:
    return dict(json.loads(openapi.v2_document().json_body))


def _schemas() -> dict[str, Any]:
    return dict(openapi_spec.schema_data()["definitions"])


# ================================================================================= closure

def test_ref_closure_follows_refs_transitively_and_stops_at_cycles() -> None:
    doc = {"components": {"schemas": {
        "A": {"properties": {"b": {"$ref": "#/components/schemas/B"}}},
        "B": {"items": {"allOf": [{"$ref": "#/components/schemas/A"}]}},
        "C": {"type": "string"}}}}
    reached = openapi_spec.ref_closure({"$ref": "#/components/schemas/A"}, doc)
    assert reached == {"schemas": {"A", "B"}}


def test_ref_closure_rejects_dangling_and_foreign_refs() -> None:
    doc: dict[str, Any] = {"components": {"schemas": {}}}
    with pytest.raises(KeyError):
        openapi_spec.ref_closure({"$ref": "#/components/schemas/Missing"}, doc)
    with pytest.raises(KeyError):
        openapi_spec.ref_closure({"$ref": "other.json#/X"}, doc)


def test_every_v3_document_is_closed_and_holds_nothing_unreachable() -> None:
    for path, doc in _v3_docs().items():
        reached = openapi_spec.ref_closure(doc["paths"], doc)["schemas"]
        assert reached == set(doc["components"]["schemas"]), path


def test_v2_document_is_closed_and_holds_nothing_unreachable() -> None:
    doc = _v2()
    reached = openapi_spec.ref_closure(doc["paths"], doc, prefixes=("#/definitions/",))
    assert reached["definitions"] == set(doc["definitions"])


# ============================================================================ the package data

def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_openapi", ROOT / "tools/gen_openapi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_schemas_are_what_the_generator_writes() -> None:
    # Deterministic, and regenerated whenever the catalogue or the patch schema changes (run
    # tools/gen_openapi.py). The texts are the installed client's: with another release of it
    # than the data was made from, only what does not depend on the client is compared.
    generated = _generator().generate()
    committed = openapi_spec.schema_data()
    assert generated == _generator().generate()
    if generated["client"] == committed["client"]:
        assert generated == committed
    else:
        assert set(generated["operations"]) == set(committed["operations"])
        assert {n for n, d in committed["definitions"].items()
                if "x-kubernetes-group-version-kind" in d} <= set(generated["definitions"])


def test_every_catalogue_kind_has_a_definition_with_its_group_version_kind() -> None:
    schemas = _schemas()
    for res in resources.CATALOGUE:
        if not res.in_openapi:
            continue  # metrics.k8s.io: not described, as in kube-apiserver's own document
        gvks = [(res.group, res.version, res.kind)]
        if "list" in res.verbs:
            gvks.append((res.group, res.version, res.list_kind))
        gvks += [res.subresource_gvk(sub) for sub in res.subresources
                 if sub.name not in openapi_spec.CONNECT_QUERY]  # options: query only
        for group, version, kind in gvks:
            name = openapi_spec.definition_name(group, version, kind)
            assert {"group": group, "version": version, "kind": kind} in schemas[name][
                "x-kubernetes-group-version-kind"], name


def test_descriptions_and_required_fields_are_the_clients() -> None:
    schemas = _schemas()
    spec = schemas["io.k8s.api.core.v1.ServiceSpec"]
    assert spec["properties"]["type"]["description"] == (
        models.V1ServiceSpec.model_fields["type"].description)
    assert spec["description"].startswith("ServiceSpec describes the attributes")
    assert schemas["io.k8s.api.core.v1.ServicePort"]["required"] == ["port"]
    assert schemas["io.k8s.api.core.v1.Container"]["required"] == ["name"]
    for name, schema in schemas.items():
        assert "Attributes:" not in schema.get("description", ""), name


def test_formats_follow_the_go_types() -> None:
    schemas = _schemas()
    port = schemas["io.k8s.api.core.v1.ServicePort"]["properties"]
    assert port["port"] == {"type": "integer", "format": "int32",
                            "description": port["port"]["description"]}
    assert port["targetPort"]["$ref"].endswith("intstr.IntOrString")
    meta = schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]
    assert meta["generation"]["format"] == "int64"
    assert meta["creationTimestamp"]["$ref"].endswith("meta.v1.Time")
    limits = schemas["io.k8s.api.core.v1.ResourceRequirements"]["properties"]["limits"]
    assert limits["additionalProperties"]["$ref"].endswith("resource.Quantity")
    lease = schemas["io.k8s.api.coordination.v1.LeaseSpec"]["properties"]
    assert lease["renewTime"]["$ref"].endswith("meta.v1.MicroTime")
    secret = schemas["io.k8s.api.core.v1.Secret"]["properties"]["data"]
    assert secret["additionalProperties"] == {"type": "string", "format": "byte"}
    # Types land in their Go packages: the pod template is core's, the selector meta's.
    deploy = schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]
    assert deploy["template"]["$ref"].endswith("io.k8s.api.core.v1.PodTemplateSpec")
    assert deploy["selector"]["$ref"].endswith("io.k8s.apimachinery.pkg.apis.meta.v1."
                                               "LabelSelector")


def test_patch_extensions_are_svcnets_patch_schema() -> None:
    schemas = _schemas()
    ports = schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"]
    assert ports["x-kubernetes-patch-merge-key"] == "port"
    assert ports["x-kubernetes-patch-strategy"] == "merge"
    assert ports["x-kubernetes-list-type"] == "map"
    assert ports["x-kubernetes-list-map-keys"] == ["port", "protocol"]
    pod = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]
    assert pod["containers"]["x-kubernetes-patch-merge-key"] == "name"
    assert pod["volumes"]["x-kubernetes-patch-strategy"] == "merge,retainKeys"
    assert schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"][
        "x-kubernetes-patch-strategy"] == "retainKeys"
    assert schemas["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"][
        "x-kubernetes-map-type"] == "atomic"
    assert schemas["io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference"][
        "x-kubernetes-map-type"] == "atomic"
    assert schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]["selector"][
        "x-kubernetes-map-type"] == "atomic"


# ==================================================================================== paths

def _operations(paths: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in paths.items():
        for method in ("get", "put", "post", "delete", "patch"):
            if method in item:
                yield path, method, item[method]


def _actions(doc: dict[str, Any], suffix: str) -> set[tuple[str, str]]:
    return {(op["x-kubernetes-action"], op["x-kubernetes-group-version-kind"]["kind"])
            for path, _, op in _operations(doc["paths"]) if path.endswith(suffix)}


@pytest.mark.parametrize("res", [r for r in resources.RESOURCES if r.in_openapi],
                         ids=lambda r: f"{r.api_version}/{r.kind}")
def test_every_served_verb_has_an_operation(res: resources.Resource) -> None:
    doc = _v3_docs()[openapi.group_version_path(res.group, res.version)]
    own = _actions(doc, f"/{res.resource}") | _actions(doc, f"/{res.resource}/{{name}}")
    for verb in res.verbs:
        assert any((action, res.kind) in own for action in openapi_spec.VERB_ACTIONS[verb]), verb
    for sub in res.subresources:
        kind = res.subresource_gvk(sub)[2]
        path = f"/{res.resource}/{{name}}/{sub.name}"
        found = _actions(doc, path)
        for verb in sub.verbs:
            if sub.name in openapi_spec.CONNECT_QUERY:  # exec, attach, portforward
                item = next(i for p, i in doc["paths"].items() if p.endswith(path))
                method = "post" if verb == "create" else verb
                assert item[method]["x-kubernetes-action"] == "connect", (sub.name, verb)
                assert item[method]["x-kubernetes-group-version-kind"]["kind"] == kind
            else:
                assert (openapi_spec.VERB_ACTIONS[verb][0], kind) in found, (sub.name, verb)


def test_operation_texts_are_the_client_api_methods() -> None:
    from kubernetes import client

    doc = _v3_docs()["api/v1"]["paths"]
    item = doc["/api/v1/namespaces/{namespace}/services/{name}"]
    assert item["patch"]["description"] == "partially update the specified Service"
    method_doc = str(client.CoreV1Api.patch_namespaced_service.__doc__)
    params = {p["name"]: p["description"] for p in item["patch"]["parameters"]}
    assert " ".join(method_doc.split()).count(params["fieldValidation"]) == 1
    assert {p["name"]: p["description"] for p in item["parameters"]}["name"] == (
        "name of the Service")
    binding = doc["/api/v1/namespaces/{namespace}/pods/{name}/binding"]
    assert binding["post"]["description"] == "create binding of a Pod"
    assert binding["parameters"][0]["description"] == "name of the Binding"
    # Every served operation has the client's text (operationIds are the client's methods).
    assert set(openapi_spec.schema_data()["operations"]) == {
        op["operationId"] for _, _, op in _operations(openapi_spec.paths())}


def test_only_served_verbs_are_documented() -> None:
    core = _v3_docs()["api/v1"]["paths"]
    assert "delete" not in core["/api/v1/namespaces"]  # no deletecollection of namespaces
    assert set(core["/api/v1/namespaces/{namespace}/pods/{name}/binding"]) == {
        "parameters", "post"}
    assert set(core["/api/v1/namespaces/{name}/finalize"]) == {"parameters", "put"}
    assert core["/api/v1/namespaces/{namespace}/services"]["delete"][
        "x-kubernetes-action"] == "deletecollection"
    token = core["/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"]["post"]
    assert token["x-kubernetes-group-version-kind"] == {
        "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"}
    reviews = _v3_docs()["apis/authorization.k8s.io/v1"]["paths"]
    assert set(reviews["/apis/authorization.k8s.io/v1/subjectaccessreviews"]) == {
        "parameters", "post"}
    # events.k8s.io is not served yet: no document.
    assert "apis/events.k8s.io/v1" not in _v3_docs()


def test_a_kind_added_to_the_catalogue_is_documented_without_code(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "RESOURCES", resources.CATALOGUE)
    doc = openapi_spec.v3_document("events.k8s.io", "v1", "v1.33.0")
    item = doc["paths"]["/apis/events.k8s.io/v1/namespaces/{namespace}/events/{name}"]
    assert item["patch"]["x-kubernetes-group-version-kind"]["kind"] == "Event"
    assert "fieldValidation" in [p["name"] for p in item["patch"]["parameters"]]
    schema = doc["components"]["schemas"]["io.k8s.api.events.v1.Event"]
    assert schema["properties"]["note"]["description"]


def test_patch_operations_take_the_four_patch_types_and_name_their_kind() -> None:
    doc = _v3_docs()["api/v1"]
    patch = doc["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]["patch"]
    assert patch["x-kubernetes-action"] == "patch"
    assert patch["operationId"] == "patchCoreV1NamespacedService"
    assert set(patch["requestBody"]["content"]) == {
        "application/apply-patch+yaml", "application/json-patch+json",
        "application/merge-patch+json", "application/strategic-merge-patch+json"}
    ok = patch["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Service"}
    assert doc["info"] == {"title": "Kubernetes", "version": "v1.33.0"}
    # A $ref with its own description is wrapped in allOf, as builder3 does; the client keeps
    # no description for a field whose type is a single object, which gets its type's.
    schemas = doc["components"]["schemas"]
    time = schemas["io.k8s.api.core.v1.PodCondition"]["properties"]["lastTransitionTime"]
    assert time["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Time"}]
    assert time["description"]
    spec = schemas["io.k8s.api.core.v1.Service"]["properties"]["spec"]
    assert spec["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.core.v1.ServiceSpec"}]
    assert spec["description"] == schemas["io.k8s.api.core.v1.ServiceSpec"]["description"]
    port = doc["components"]["schemas"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert port["x-kubernetes-int-or-string"] is True


# ==================================================================================== v2

def test_v2_document_shape() -> None:
    doc = _v2()
    assert doc["swagger"] == "2.0"
    assert doc["info"]["version"] == "v1.33.0"
    svc = doc["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in svc["consumes"]
    assert svc["parameters"][0] == {"name": "body", "in": "body", "required": True, "schema": {
        "$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}}
    assert "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale" in doc["paths"]
    assert doc["security"] == [{"BearerToken": []}]


def test_descriptor_is_found_in_go_binaries_bytes() -> None:
    from google.protobuf import descriptor_pb2

    fields = descriptor_pb2.FileDescriptorProto(
        name="openapiv2/OpenAPIv2.proto", package="openapi.v2", syntax="proto3")
    fields.message_type.add(name="Document")
    raw = fields.SerializeToString()
    assert raw.startswith(openapi_descriptor.MARKER)
    # What follows in a binary is other data: here a field number lower than syntax's (12).
    assert openapi_descriptor.extract(b"\x00junk" + raw + b"\x0a\x03abc") == raw
    assert openapi_descriptor.extract(b"no descriptor here") is None


def test_descriptor_comes_from_kubectl_and_is_cached(tmp_path: Path) -> None:
    kubectl = require_binary("kubectl")
    raw = openapi_descriptor.descriptor_bytes(tmp_path, kubectl)
    assert raw is not None
    assert (tmp_path / openapi_descriptor.CACHE_NAME).read_bytes() == raw
    assert openapi_descriptor.descriptor_bytes(tmp_path, "/nonexistent") == raw


def test_without_the_descriptor_protobuf_is_not_available(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no kubectl, and an empty cache
    openapi_v2.use_data_dir(tmp_path)
    try:
        assert openapi_v2.document_class() is None
        assert openapi.v2_document().protobuf_body is None
    finally:
        monkeypatch.undo()
        openapi_v2._data_dir.clear()
        openapi_v2._pool.cache_clear()


def test_a_damaged_descriptor_cache_means_no_protobuf(tmp_path: Path) -> None:
    (tmp_path / openapi_descriptor.CACHE_NAME).write_bytes(openapi_descriptor.MARKER + b"\xff")
    openapi_v2.use_data_dir(tmp_path)
    try:
        assert openapi_v2.document_class() is None
    finally:
        openapi_v2._data_dir.clear()
        openapi_v2._pool.cache_clear()


def test_v2_protobuf_decodes_as_gnostics_document() -> None:
    require_binary("kubectl")
    served = openapi.v2_document()
    doc = json.loads(served.json_body)
    assert served.protobuf_body is not None
    msg = openapi_v2.document_class().FromString(served.protobuf_body)
    assert msg.swagger == "2.0" and msg.info.version == "v1.33.0"
    assert [p.name for p in msg.paths.path] == list(doc["paths"])
    assert [d.name for d in msg.definitions.additional_properties] == list(doc["definitions"])
    assert msg.security_definitions.additional_properties[0].value.api_key_security.name == (
        "authorization")

    definitions = {d.name: d.value for d in msg.definitions.additional_properties}
    spec = definitions["io.k8s.api.core.v1.ServiceSpec"]
    props = {p.name: p.value for p in spec.properties.additional_properties}
    assert list(props["ports"].type.value) == ["array"]
    assert props["ports"].items.schema[0]._ref == "#/definitions/io.k8s.api.core.v1.ServicePort"
    ext = {e.name: yaml.safe_load(e.value.yaml) for e in props["ports"].vendor_extension}
    assert ext["x-kubernetes-patch-merge-key"] == "port"
    assert ext["x-kubernetes-list-map-keys"] == ["port", "protocol"]
    assert props["selector"].additional_properties.schema.type.value == ["string"]

    paths = {p.name: p.value for p in msg.paths.path}
    patch = paths["/api/v1/namespaces/{namespace}/services/{name}"].patch
    params = [p.parameter for p in patch.parameters]
    assert params[0].body_parameter.schema._ref.endswith("meta.v1.Patch")
    query = [p.non_body_parameter.query_parameter_sub_schema.name for p in params[1:]]
    assert "fieldValidation" in query
    ok = {r.name: r.value for r in patch.responses.response_code}["200"]
    assert ok.response.schema.schema._ref == "#/definitions/io.k8s.api.core.v1.Service"
    gvk = {e.name: yaml.safe_load(e.value.yaml) for e in patch.vendor_extension}
    assert gvk["x-kubernetes-group-version-kind"] == {"group": "", "kind": "Service",
                                                      "version": "v1"}


def test_protobuf_is_deterministic_and_etag_follows_the_json() -> None:
    require_binary("kubectl")
    doc = openapi_spec.v2_document("v1.33.0")
    assert openapi_v2.to_protobuf(doc) == openapi.v2_document().protobuf_body
    served = openapi.v2_document()
    assert served.etag == openapi.compute_etag(served.json_body)
    assert served.etag_header == f'"{served.etag}"'


@pytest.mark.parametrize(("accept", "expected"), [
    (None, openapi_v2.CONTENT_TYPE_JSON),
    ("*/*", openapi_v2.CONTENT_TYPE_JSON),
    ("application/json", openapi_v2.CONTENT_TYPE_JSON),
    ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
     openapi_v2.CONTENT_TYPE_PROTOBUF),
    ("application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
     openapi_v2.CONTENT_TYPE_PROTOBUF),
    ("application/json;q=0.5, application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
     openapi_v2.CONTENT_TYPE_PROTOBUF),
    ("text/html, application/*;q=0.1", openapi_v2.CONTENT_TYPE_JSON),
    ("text/html", None),
    ("application/yaml", None),
    ("application/json;q=0", None),
])
def test_negotiation_follows_kube_openapi(accept: str | None, expected: str | None) -> None:
    chosen = openapi_v2.negotiate(accept)
    assert (chosen.content_type if chosen else None) == expected
    if chosen is not None:
        assert chosen.protobuf == (expected == openapi_v2.CONTENT_TYPE_PROTOBUF)


@pytest.mark.parametrize(("header", "expected"), [
    (None, False), ("", False), ('"ABC"', True), ('W/"ABC"', True), ('"X", "ABC"', True),
    ("*", True), ('"ABD"', False),
])
def test_if_none_match(header: str | None, expected: bool) -> None:
    assert openapi.not_modified(header, '"ABC"') is expected


def test_documents_are_frozen_values() -> None:
    doc = openapi.v2_document()
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.etag = "x"  # type: ignore[misc]


# ================================================================================== routes

async def test_routes_redirect_revalidate_and_refuse() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    app = web.Application()
    openapi.add_routes(app.router)
    async with TestClient(TestServer(app)) as http:
        doc = openapi.document_for("api/v1")
        assert doc is not None
        moved = await http.get("/openapi/v3/api/v1?hash=0123", allow_redirects=False)
        assert moved.status == 301
        assert moved.headers["Location"] == doc.server_relative_url
        fresh = await http.get(doc.server_relative_url)
        assert fresh.headers["Cache-Control"] == "public, immutable"
        assert await fresh.read() == doc.body
        same = await http.get("/openapi/v3/api/v1", headers={"If-None-Match": doc.etag_header})
        assert same.status == 304
        assert (await http.get("/openapi/v3/apis/flowcontrol.apiserver.k8s.io/v1")).status == 404
        v2 = await http.get("/openapi/v2", headers={"Accept": "text/html"})
        assert v2.status == 406
        root = await http.get("/openapi/v3")
        again = await http.get("/openapi/v3", headers={"If-None-Match": root.headers["ETag"]})
        assert again.status == 304
