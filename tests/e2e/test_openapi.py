"""The real kubectl and Python client against the OpenAPI documents of a real `svcnet server`.

`kubectl explain` is checked over every field path of every served kind: ``--recursive`` must
list exactly the fields the served schema has; each kind's top level, and each object node of
a Pod and a CRD once per schema, is explained with every child's description compared to the
served text (the official client's, as ``tools/gen_openapi.py`` generated it).
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from svcnet.apiserver import openapi_descriptor, openapi_spec, openapi_v2, resources
from tests.e2e.conftest import Cluster

Schemas = dict[str, Any]

_FIELD = re.compile(r"^(?P<indent> *)(?P<name>[^\s<]+)\t<(?P<type>[^>]*)>( -required-)?$")


@pytest.fixture(scope="module")
def api(cluster: Cluster) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield api_client
    api_client.close()


def get_raw(api: client.ApiClient, path: str, **headers: str) -> Any:
    """A GET through the official client's own request path (auth, TLS); no status raises."""
    resource, _, query = path.partition("?")
    method, url, all_headers, _, _ = api.param_serialize(
        "GET", resource, query_params=[tuple(q.split("=", 1)) for q in query.split("&") if q],
        header_params=headers, auth_settings=["BearerToken"])
    response = api.call_api(method, url, header_params=all_headers)
    response.read()
    return response


def _served_document(cluster: Cluster, res: resources.Resource) -> Schemas:
    gv = f"apis/{res.group}/{res.version}" if res.group else f"api/{res.version}"
    doc = json.loads(cluster.kubectl("get", "--raw", f"/openapi/v3/{gv}").stdout)
    return dict(doc["components"]["schemas"])


def _deref(schema: Schemas, schemas: Schemas) -> tuple[str | None, Schemas]:
    """The schema behind ``$ref``/``allOf`` wrappers, arrays and maps, with its name."""
    name = None
    while True:
        if "$ref" in schema:
            name = schema["$ref"].rpartition("/")[2]
            schema = schemas[name]
        elif len(schema.get("allOf", ())) == 1:
            schema = schema["allOf"][0]
        elif schema.get("type") == "array" and "items" in schema:
            schema = schema["items"]
        else:
            return name, schema


def _kind_schema(schemas: Schemas, res: resources.Resource) -> Schemas:
    gvk = {"group": res.group, "version": res.version, "kind": res.kind}
    found = [s for s in schemas.values() if gvk in s.get("x-kubernetes-group-version-kind", [])]
    assert len(found) == 1, res
    return dict(found[0])


def _walk(schema: Schemas, schemas: Schemas, path: tuple[str, ...] = (),
          above: frozenset[str | None] = frozenset()
          ) -> Iterator[tuple[tuple[str, ...], str | None, Schemas]]:
    """Every object node (path, schema name, schema) below a kind, depth first; a schema that
    contains itself (a CRD's JSONSchemaProps) is not entered again below itself, as kubectl's
    ``--recursive`` stops there."""
    name, schema = _deref(schema, schemas)
    if not schema.get("properties") or (name is not None and name in above):
        return
    yield path, name, schema
    for field, sub in schema["properties"].items():
        yield from _walk(sub, schemas, (*path, field), above | {name})


def _paths(schema: Schemas, schemas: Schemas) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for path, _, node in _walk(schema, schemas):
        out.update((*path, field) for field in node["properties"])
    return out


def _recursive_paths(text: str) -> set[tuple[str, ...]]:
    """The field paths of ``kubectl explain --recursive``, from its indentation."""
    out: set[tuple[str, ...]] = set()
    stack: list[str] = []
    for line in text.partition("FIELDS:\n")[2].splitlines():
        match = _FIELD.match(line)
        if match is None:
            continue
        depth = len(match["indent"]) // 2 - 1
        del stack[depth:]
        stack.append(match["name"])
        out.add(tuple(stack))
    return out


def _explained_fields(text: str) -> dict[str, str]:
    """Each field of an explained node with its description, whitespace normalised."""
    fields: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.partition("\nFIELDS:\n")[2].splitlines():
        match = _FIELD.match(line)
        if match is not None and len(match["indent"]) == 2:
            current = fields.setdefault(match["name"], [])
        elif current is not None and line.startswith("    "):
            current.append(line.strip())
    return {name: " ".join(" ".join(lines).split()) for name, lines in fields.items()}


def _description(schema: Schemas) -> str:
    return " ".join(str(schema.get("description", "")).split())


#: The kinds OpenAPI describes (not metrics.k8s.io's: kube-apiserver's documents do not either).
DESCRIBED = [r for r in resources.RESOURCES if r.in_openapi]


@pytest.mark.parametrize("res", DESCRIBED, ids=lambda r: f"{r.api_version}/{r.kind}")
def test_explain_recursive_lists_every_field_path(cluster: Cluster,
                                                  res: resources.Resource) -> None:
    schemas = _served_document(cluster, res)
    out = cluster.kubectl("explain", res.resource, f"--api-version={res.api_version}",
                          "--recursive").stdout
    assert f"KIND:       {res.kind}\n" in out
    assert _recursive_paths(out) == _paths(_kind_schema(schemas, res), schemas)


#: The kinds whose every node is explained (below): between them, every way a field reaches
#: its schema (``$ref`` behind ``allOf``, arrays and maps of objects, a schema containing
#: itself, fields without a description).
EXPLAINED_THROUGHOUT = {("", "Pod"), ("apiextensions.k8s.io", "CustomResourceDefinition")}


def test_explain_describes_the_fields_of_every_kind_with_the_served_text(
        cluster: Cluster) -> None:
    """Every kind's top-level fields, and every node of the kinds of
    :data:`EXPLAINED_THROUGHOUT`, are explained with the served descriptions (every node of
    every kind is about 400 explains, a minute and a half of CI; the field paths of every
    kind are checked by ``--recursive`` above)."""
    jobs: list[tuple[resources.Resource, tuple[str, ...], Schemas]] = []
    seen: set[str | None] = set()
    for res in DESCRIBED:
        schemas = _served_document(cluster, res)
        throughout = (res.group, res.kind) in EXPLAINED_THROUGHOUT
        for path, name, node in _walk(_kind_schema(schemas, res), schemas):
            # One explain per schema shows every child's description; a schema reached again
            # (ObjectMeta in every kind, PodSpec in templates) has the same children.
            if not path or (throughout and name not in seen):
                seen.add(name)
                jobs.append((res, path, node))

    def explain(job: tuple[resources.Resource, tuple[str, ...], Schemas]) -> None:
        res, path, node = job
        target = ".".join((res.resource, *path))
        out = cluster.kubectl("explain", target, f"--api-version={res.api_version}").stdout
        fields = _explained_fields(out)
        assert set(fields) == set(node["properties"]), target
        for field, sub in node["properties"].items():
            # kubectl's text for a field without one (JSONSchemaProps' $ref, $schema).
            assert fields[field] == (_description(sub) or "<no description>"), \
                f"{target}.{field}"

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(explain, jobs))
    assert len(jobs) > len(DESCRIBED) + 100


def test_every_field_of_service_answers_on_its_own(cluster: Cluster) -> None:
    res = next(r for r in resources.RESOURCES if (r.group, r.kind) == ("", "Service"))
    schemas = _served_document(cluster, res)
    kind = _kind_schema(schemas, res)
    leaves: dict[tuple[str, ...], Schemas] = {}
    for path, _, node in _walk(kind, schemas):
        for field, sub in node["properties"].items():
            leaves[(*path, field)] = sub

    def explain(item: tuple[tuple[str, ...], Schemas]) -> None:
        path, sub = item
        out = cluster.kubectl("explain", ".".join(("services", *path))).stdout
        assert f"\nFIELD: {path[-1]} <" in out, path
        text = " ".join(out.partition("DESCRIPTION:\n")[2].partition("\nFIELDS:")[0].split())
        assert text.startswith(_description(sub)), path

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(explain, leaves.items()))
    assert len(leaves) > 70


def test_explain_leaves(cluster: Cluster) -> None:
    out = cluster.kubectl("explain", "service.spec.type").stdout
    assert out.startswith("KIND:       Service\nVERSION:    v1\n\nFIELD: type <string>\n")
    assert "type determines how the Service is exposed. Defaults to ClusterIP." in out
    # The client's text, as tools/gen_openapi.py recorded it (unit tests tie the two).
    spec = openapi_spec.schema_data()["definitions"]["io.k8s.api.core.v1.ServiceSpec"]
    text = " ".join(out.partition("DESCRIPTION:\n")[2].split())
    assert text == " ".join(spec["properties"]["type"]["description"].split())
    out = cluster.kubectl("explain", "deployments.spec.template.spec.containers.ports."
                          "containerPort").stdout
    assert "GROUP:      apps\nKIND:       Deployment\n" in out
    assert "FIELD: containerPort <integer>" in out
    out = cluster.kubectl("explain", "service.spec.ports", "--output=plaintext-openapiv2").stdout
    assert "RESOURCE: ports <[]Object>" in out and "ServicePort contains information" in out
    r = cluster.kubectl("explain", "service.spec.nosuchfield", check=False)
    assert r.returncode == 1
    assert r.stderr == 'error: field "nosuchfield" does not exist\n'


def test_strict_validation_reports_unknown_fields_as_a_cluster_does(cluster: Cluster) -> None:
    bad = textwrap.dedent("""\
        apiVersion: v1
        kind: Service
        metadata: {name: oa-strict}
        spec:
          selector: {app: oa}
          ports: [{port: 80, bogus: 1}]
          unknownField: 3
        """)
    r = cluster.kubectl("apply", "--validate=strict", "-f", "-", stdin=bad, check=False)
    assert r.returncode == 1
    assert r.stderr == (
        'Error from server (BadRequest): error when creating "STDIN": Service in version "v1" '
        'cannot be handled as a Service: strict decoding error: unknown field '
        '"spec.ports[0].bogus", unknown field "spec.unknownField"\n')


def test_strict_validation_of_an_apply_that_patches(cluster: Cluster) -> None:
    # On an existing object apply sends a strategic merge patch; upstream refuses its result
    # with a 422 on "patch" that names no object, which kubectl prints as "The request is
    # invalid" with the patch as Go prints a map.
    good = textwrap.dedent("""\
        apiVersion: v1
        kind: Service
        metadata: {name: oa-strict-patch}
        spec:
          selector: {app: oa}
          ports: [{port: 80}]
        """)
    cluster.kubectl("apply", "-f", "-", stdin=good)
    bad = good.replace("  selector: {app: oa}\n", "  selector: {app: oa}\n  foo: 1\n")
    r = cluster.kubectl("apply", "--validate=strict", "-f", "-", stdin=bad, check=False)
    assert r.returncode == 1
    applied = json.dumps(yaml.safe_load(bad) | {"metadata": {
        "annotations": {}, "name": "oa-strict-patch", "namespace": "default"}},
        separators=(",", ":"), sort_keys=True)
    assert r.stderr == (
        'The request is invalid: patch: Invalid value: "map[metadata:map[annotations:map['
        "kubectl.kubernetes.io/last-applied-configuration:"
        + applied.replace('"', '\\"') + '\\n]] spec:map[foo:1]]": strict decoding error: '
        'unknown field "spec.foo"\n')
    r = cluster.kubectl("apply", "--validate=warn", "-f", "-", stdin=bad)
    assert 'Warning: unknown field "spec.foo"' in r.stderr


def _list_manifest(name: str, port_extra: str = "") -> str:
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: Service
          metadata: {{name: {name}}}
          spec:
            selector: {{app: {name}}}
            ports: [{{port: 80{port_extra}}}]
        """)


def test_kind_list_is_validated_client_side_against_openapi_v2(cluster: Cluster) -> None:
    # kubectl never asks the server to validate a List (the fieldValidation probe refuses
    # kind List): it validates the items itself against /openapi/v2, which once was a 404.
    r = cluster.kubectl("apply", "-f", "-", stdin=_list_manifest("oa-list"))
    assert r.stdout == "service/oa-list created\n"
    r = cluster.kubectl("apply", "-f", "-", stdin=_list_manifest("oa-list2", ", bogus: 2"),
                        check=False)
    assert r.returncode == 1
    assert r.stderr == (
        'error: error validating "STDIN": error validating data: '
        'ValidationError(Service.spec.ports[0]): unknown field "bogus" in '
        "io.k8s.api.core.v1.ServicePort; if you choose to ignore these errors, turn validation "
        "off with --validate=false\n")
    assert cluster.kubectl("get", "svc", "oa-list2", check=False).returncode == 1


def _patch_body(log: str) -> dict[str, Any]:
    """The strategic merge patch kubectl sent, from its ``-v=8`` log (its only request body:
    the GETs before it have none)."""
    bodies = re.findall(r'"Request Body" body="((?:[^"\\]|\\.)+)"', log)
    assert len(bodies) == 1, log[-3000:]
    parsed: dict[str, Any] = json.loads(json.loads(f'"{bodies[0]}"'))
    return parsed


SVC_BEFORE = textwrap.dedent("""\
    apiVersion: v1
    kind: Service
    metadata: {name: NAME, labels: {tier: web}}
    spec:
      selector: {app: a}
      ports:
      - {name: http, port: 80, targetPort: 8080}
      - {name: metrics, port: 9100}
    """)
SVC_AFTER = textwrap.dedent("""\
    apiVersion: v1
    kind: Service
    metadata: {name: NAME}
    spec:
      selector: {app: b}
      ports:
      - {name: http, port: 80, targetPort: 9090}
    """)


@pytest.mark.parametrize("openapi_source", ["v3", "v2"])
def test_client_side_apply_of_list_changes(cluster: Cluster, openapi_source: str) -> None:
    """kubectl computes the patch from the served schemas (v3, or v2 protobuf when its v3
    patching is turned off); the patch is the one its compiled-in types give."""
    name = f"oa-csa-{openapi_source}"
    env = {"KUBECTL_OPENAPIV3_PATCH": "false"} if openapi_source == "v2" else {}
    cluster.kubectl("apply", "-f", "-", stdin=SVC_BEFORE.replace("NAME", name))
    r = cluster.kubectl("apply", "-f", "-", "-v=8", stdin=SVC_AFTER.replace("NAME", name),
                        env=env)
    assert "service/" + name + " configured" in r.stdout
    assert "error calculating patch" not in r.stderr
    patch = _patch_body(r.stderr)
    patch["metadata"]["annotations"].pop("kubectl.kubernetes.io/last-applied-configuration")
    assert patch == {
        "metadata": {"annotations": {}, "labels": None},
        "spec": {"$setElementOrder/ports": [{"port": 80}],
                 "ports": [{"port": 80, "targetPort": 9090},
                           {"$patch": "delete", "port": 9100}],
                 "selector": {"app": "b"}}}
    obj = json.loads(cluster.kubectl("get", "svc", name, "-o", "json").stdout)
    assert [(p["name"], p["port"], p["targetPort"]) for p in obj["spec"]["ports"]] == [
        ("http", 80, 9090)]
    assert obj["spec"]["selector"] == {"app": "b"} and "labels" not in obj["metadata"]
    if openapi_source == "v2":
        assert "/openapi/v2" in r.stderr


DEPLOY = textwrap.dedent("""\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: oa-deploy}
    spec:
      replicas: 0
      selector: {matchLabels: {app: oa-deploy}}
      template:
        metadata: {labels: {app: oa-deploy}}
        spec:
          containers:
          CONTAINERS
    """)


def test_client_side_apply_merges_containers_by_name(cluster: Cluster) -> None:
    two = ("- {name: web, image: img/web:1, ports: [{containerPort: 80}, {containerPort: 81}]}\n"
           "      - {name: side, image: img/side:1}")
    one = "- {name: web, image: img/web:2, ports: [{containerPort: 80}]}"
    cluster.kubectl("apply", "-f", "-", stdin=DEPLOY.replace("CONTAINERS", two))
    r = cluster.kubectl("apply", "-f", "-", "-v=8", stdin=DEPLOY.replace("CONTAINERS", one))
    assert "deployment.apps/oa-deploy configured" in r.stdout
    patch = _patch_body(r.stderr)
    spec = patch["spec"]["template"]["spec"]
    assert spec["$setElementOrder/containers"] == [{"name": "web"}]
    assert {"$patch": "delete", "name": "side"} in spec["containers"]
    web = next(c for c in spec["containers"] if c.get("name") == "web")
    assert web["image"] == "img/web:2"
    assert {"$patch": "delete", "containerPort": 81} in web["ports"]
    obj = json.loads(cluster.kubectl("get", "deploy", "oa-deploy", "-o", "json").stdout)
    containers = obj["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"], [p["containerPort"] for p in c["ports"]])
            for c in containers] == [("web", "img/web:2", [80])]


def test_openapi_v2_protobuf_json_etag_and_304(cluster: Cluster, api: client.ApiClient) -> None:
    proto = get_raw(api, "/openapi/v2",
                    Accept="application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
    assert proto.status == 200
    assert proto.getheader("Content-Type") == openapi_v2.CONTENT_TYPE_PROTOBUF
    # The server read gnostic's descriptor from kubectl and keeps it in its data directory.
    cached = (cluster.data_dir / openapi_descriptor.CACHE_NAME).read_bytes()
    assert cached.startswith(openapi_descriptor.MARKER)
    doc = openapi_v2.document_class().FromString(proto.data)
    assert doc.swagger == "2.0"
    names = {d.name for d in doc.definitions.additional_properties}
    assert {"io.k8s.api.core.v1.Service", "io.k8s.api.apps.v1.Deployment"} <= names

    js = get_raw(api, "/openapi/v2", Accept="application/json")
    assert js.getheader("Content-Type") == "application/json"
    swagger = json.loads(js.data)
    assert sorted(swagger["definitions"]) == sorted(names)
    assert js.getheader("ETag") == proto.getheader("ETag")
    assert js.getheader("Vary") == "Accept"

    again = get_raw(api, "/openapi/v2", Accept="application/json",
                    **{"If-None-Match": js.getheader("ETag")})
    assert again.status == 304 and again.data == b""


def test_openapi_v3_etag_304_and_unknown_group_version(api: client.ApiClient) -> None:
    root_response = get_raw(api, "/openapi/v3")
    root = json.loads(root_response.data)
    etag = root_response.getheader("ETag")
    assert get_raw(api, "/openapi/v3", **{"If-None-Match": etag}).status == 304
    url = root["paths"]["api/v1"]["serverRelativeURL"]
    first = get_raw(api, url)
    assert first.getheader("Cache-Control") == "public, immutable"
    assert url.endswith("?hash=" + first.getheader("ETag").strip('"'))
    again = get_raw(api, url, **{"If-None-Match": first.getheader("ETag")})
    assert again.status == 304
    bare = get_raw(api, "/openapi/v3/api/v1")
    assert bare.getheader("Cache-Control") == "no-cache, private" and bare.data == first.data
    # An outdated hash is redirected to the current one (urllib3 follows it).
    moved = get_raw(api, "/openapi/v3/api/v1?hash=0123")
    assert moved.status == 200 and moved.data == first.data

    unknown = get_raw(api, "/openapi/v3/apis/flowcontrol.apiserver.k8s.io/v1")
    assert (unknown.status, unknown.data) == (404, b"")
