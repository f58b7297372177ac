"""Generate svcnet/apiserver/openapi_schemas.json: OpenAPI v2 definitions of every served kind.

Theory of operation. kube-apiserver's OpenAPI definitions come from its Go types
(kube-openapi's ``openapi-gen`` over ``staging/src/k8s.io/api``, served by
``staging/src/k8s.io/apiserver/pkg/server/routes/openapi.go``). svcnet has no Go types; the
official ``kubernetes`` Python client is generated from those same definitions and keeps, for
every model, each field's JSON name, type, description and whether it is required (pydantic
``model_fields``), and the type's own description (the class docstring). This script turns the
models reachable from the catalogue (:mod:`svcnet.apiserver.resources`) back into Swagger 2.0
definitions named as upstream names them (``io.k8s.api.core.v1.ServiceSpec``):

* integer widths, IntOrString, Quantity and bytes follow ``tools/gen_schema.py``'s heuristics
  (its ``INT32``, ``INT64``, ``INT_OR_STRING``, ``QUANTITY_MAPS`` sets), ``datetime`` is
  ``Time`` (or ``MicroTime`` for the fields in :data:`MICRO_TIME`);
* a field whose type is one object has no description in the client (``Service.spec``); it
  gets its type's description instead, so ``kubectl explain`` never says "<no description>";
* a type's Go package is that of the first kind (catalogue order, core first) that reaches it,
  except apimachinery's ``meta/v1`` types (:data:`META`), which the client cannot tell apart;
* the merge keys, patch strategies, list types and atomic maps/structs
  (``x-kubernetes-patch-merge-key``, ``x-kubernetes-patch-strategy``, ``x-kubernetes-list-type``,
  ``x-kubernetes-list-map-keys``, ``x-kubernetes-map-type``) are svcnet's own patch schema
  (:mod:`svcnet.apiserver.patch.schema`), the same facts strategic merge patch uses;
* ``x-kubernetes-group-version-kind`` names the kind of each top-level type;
* each served operation's description and its parameters' (``operations``, keyed by
  ``operationId``) are the docstrings of the client's API methods (``CoreV1Api.
  patch_namespaced_service`` for ``patchCoreV1NamespacedService``).

The output is deterministic (sorted keys) and committed; the server reads it as package data and
builds paths itself (:mod:`svcnet.apiserver.openapi_spec`). Run after upgrading the client or
changing the catalogue: ``.venv/bin/python tools/gen_openapi.py``.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes import client
from kubernetes.client import models

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_schema import INT32, INT64, INT_OR_STRING, QUANTITY_MAPS

from svcnet.apiserver import openapi_spec, resources
from svcnet.apiserver.openapi_spec import definition_name
from svcnet.apiserver.patch.schema import PATCH_META, ListMeta, MapMeta

Obj = dict[str, Any]
OUT = Path(__file__).resolve().parent.parent / "svcnet" / "apiserver" / "openapi_schemas.json"

META_PACKAGE = "io.k8s.apimachinery.pkg.apis.meta.v1"
#: apimachinery's meta/v1 types among the client's models.
META = {"ObjectMeta", "ListMeta", "LabelSelector", "LabelSelectorRequirement",
        "ManagedFieldsEntry", "OwnerReference", "Status", "StatusDetails", "StatusCause",
        "DeleteOptions", "Preconditions", "Condition"}
#: ``datetime`` fields that are ``metav1.MicroTime`` rather than ``metav1.Time``.
MICRO_TIME = {"eventTime", "lastObservedTime", "acquireTime", "renewTime"}
#: Scalar definitions upstream names and the client inlines (descriptions are svcnet's words).
SCALARS: dict[str, Obj] = {
    f"{META_PACKAGE}.Time": {"type": "string", "format": "date-time",
                             "description": "Time is an RFC 3339 date and time."},
    f"{META_PACKAGE}.MicroTime": {
        "type": "string", "format": "date-time",
        "description": "MicroTime is an RFC 3339 date and time with microsecond precision."},
    f"{META_PACKAGE}.FieldsV1": {
        "type": "object", "description": "FieldsV1 stores a set of fields in a data structure "
                                         "like a Trie, in JSON format."},
    f"{META_PACKAGE}.Patch": {
        "type": "object", "description": "Patch is the body of a PATCH request: a JSON patch, "
                                         "a merge patch, a strategic merge patch or an apply "
                                         "configuration, as its content type says."},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "type": "string", "description": "Quantity is a fixed-point representation of a "
                                         "number, such as 100m or 1Gi."},
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "type": "string", "format": "int-or-string",
        "description": "IntOrString is a type that can hold an int32 or a string."},
}
_REF = "#/definitions/"


def client_class(group: str, kind: str, version: str = "v1") -> str:
    """The client's model for a kind: ``V1Service``, ``CoreV1Event``, ``AuthenticationV1...``,
    ``V2HorizontalPodAutoscaler``."""
    prefix = (group.split(".", maxsplit=1)[0] or "core").capitalize()
    v = version.capitalize()
    for name in (f"{prefix}{v}{kind}", f"{v}{kind}"):
        if hasattr(models, name):
            return name
    raise KeyError(f"no client model for {group}/{version}/{kind}")


_VERSIONED = re.compile(r"^[A-Za-z]*?V(\d+)(?=[A-Z])")


def go_name(cls_name: str) -> str:
    """``V1ServiceSpec`` → ``ServiceSpec``; ``CoreV1EventSeries`` → ``EventSeries``."""
    return _VERSIONED.sub("", cls_name)


def version_of(cls_name: str) -> str:
    """The API version a model's package has: ``V2MetricSpec`` → ``v2``."""
    m = _VERSIONED.match(cls_name)
    return f"v{m.group(1)}" if m else "v1"


def roots() -> list[tuple[str, str]]:
    """(client class, group) of every top-level type, in package-tagging order."""
    out: list[tuple[str, str]] = []
    for res in sorted(resources.CATALOGUE, key=lambda r: r.group != ""):
        if not res.in_openapi:
            continue  # metrics.k8s.io: the client has no models for it
        out.append((client_class(res.group, res.kind, res.version), res.group))
        if "list" in res.verbs:
            out.append((client_class(res.group, res.list_kind, res.version), res.group))
        if res.group == "":
            out.append(("V1PodTemplate", ""))  # tags PodTemplateSpec core before apps
        for sub in res.subresources:
            if sub.name in openapi_spec.CONNECT_QUERY:
                continue  # its options kind is only a query: no definition
            group, _, kind = res.subresource_gvk(sub)
            out.append((client_class(group, kind), group))
    return out + [(f"V1{name}", "") for name in ("Status", "DeleteOptions")]


class Generator:
    def __init__(self) -> None:
        self.names: dict[str, str] = {}  # client class -> definition name
        self.definitions: dict[str, Obj] = {}

    def name(self, cls_name: str, group: str) -> str:
        if cls_name not in self.names:
            short = go_name(cls_name)
            self.names[cls_name] = (f"{META_PACKAGE}.{short}" if short in META
                                    else definition_name(group, version_of(cls_name), short))
            self.definitions[self.names[cls_name]] = self.definition(cls_name, group)
        return self.names[cls_name]

    def definition(self, cls_name: str, group: str) -> Obj:
        cls = getattr(models, cls_name)
        doc = (cls.__doc__ or "").split("Attributes:")[0]
        out: Obj = {"type": "object", "description": " ".join(doc.split())}
        props: Obj = {}
        required: list[str] = []
        fields = {f.serialization_alias or f.alias or n: f for n, f in cls.model_fields.items()}
        for attr, type_name in cls.openapi_types.items():
            json_name = cls.attribute_map[attr]
            field = fields[json_name]
            prop = self.convert(type_name, json_name, group)
            if (cls_name, json_name) in INT32:
                prop["format"] = "int32"
            if field.description:
                prop["description"] = field.description
            elif "$ref" in prop and prop["$ref"].removeprefix(_REF) in self.definitions:
                # The client drops the description of a field whose type is one object
                # (``spec``, ``metadata``); the type's own says what it holds.
                prop["description"] = self.definitions[prop["$ref"].removeprefix(_REF)][
                    "description"]
            props[json_name] = prop
            if field.is_required():
                required.append(json_name)
        out["properties"] = props
        if required:
            out["required"] = sorted(required)
        return out

    def convert(self, type_name: str, field: str, group: str) -> Obj:
        t = type_name.strip()
        m = re.fullmatch(r"List\[(.+)\]", t)
        if m:
            return {"type": "array", "items": self.convert(m.group(1), field, group)}
        m = re.fullmatch(r"Dict\[str, (.+)\]", t)
        if m:
            value = ({"$ref": _REF + "io.k8s.apimachinery.pkg.api.resource.Quantity"}
                     if field in QUANTITY_MAPS else self.convert(m.group(1), field, group))
            return {"type": "object", "additionalProperties": value}
        scalar = _scalar(t, field)
        if scalar is not None:
            return scalar
        return {"$ref": _REF + self.name(t, group)}


def _scalar(t: str, field: str) -> Obj | None:
    if t == "int":
        return {"type": "integer", "format": "int64" if field in INT64 else "int32"}
    if t == "datetime":
        return {"$ref": f"{_REF}{META_PACKAGE}.{'MicroTime' if field in MICRO_TIME else 'Time'}"}
    if t == "object":
        if field in INT_OR_STRING:
            return {"$ref": _REF + "io.k8s.apimachinery.pkg.util.intstr.IntOrString"}
        if field == "fieldsV1":
            return {"$ref": f"{_REF}{META_PACKAGE}.FieldsV1"}
        return {"type": "object"}
    return {"str": {"type": "string"}, "bool": {"type": "boolean"},
            "float": {"type": "number", "format": "double"},
            "bytes": {"type": "string", "format": "byte"}}.get(t)


def _target(definitions: dict[str, Obj], root: str, path: tuple[str, ...]
            ) -> tuple[Obj, str] | None:
    """The definition holding the last field of ``path`` (from ``root``), and that field."""
    schema = definitions[root]
    for segment in path[:-1]:
        if segment == "[]":
            continue
        prop = schema.get("properties", {}).get(segment)
        if prop is None:
            return None
        while prop.get("type") in ("array", "object") and ("items" in prop
                                                            or "additionalProperties" in prop):
            prop = prop.get("items") or prop["additionalProperties"]
        if "$ref" not in prop:
            return None
        schema = definitions[prop["$ref"].removeprefix(_REF)]
    return schema, path[-1]


def _list_extensions(meta: ListMeta) -> Obj:
    ext: Obj = {"x-kubernetes-list-type": meta.list_type}
    if meta.list_type == "map":
        ext["x-kubernetes-list-map-keys"] = list(meta.map_keys)
    strategy = ",".join(filter(None, (meta.patch_strategy,
                                      "retainKeys" if meta.retain_keys else "")))
    if strategy:
        ext["x-kubernetes-patch-strategy"] = strategy
    if meta.merge_key:
        ext["x-kubernetes-patch-merge-key"] = meta.merge_key
    return ext


def apply_patch_meta(definitions: dict[str, Obj], kinds: dict[str, str]) -> None:
    """svcnet's patch schema as upstream's ``x-kubernetes-*`` extensions."""
    for (api_version, kind), schema in sorted(PATCH_META.items()):
        root = kinds[f"{api_version}/{kind}" if "/" in api_version else f"/{api_version}/{kind}"]
        for path, meta in sorted(schema.items()):
            found = _target(definitions, root, path)
            if found is None:
                continue
            holder, field = found
            prop = holder["properties"].get(field)
            if prop is None:
                continue
            ref = (prop.get("items") or {}).get("$ref") or prop.get("$ref")
            if isinstance(meta, ListMeta):
                prop.update(_list_extensions(meta))
                if meta.atomic_items and ref:
                    definitions[ref.removeprefix(_REF)]["x-kubernetes-map-type"] = "atomic"
                continue
            assert isinstance(meta, MapMeta)
            if meta.atomic:
                target = definitions[ref.removeprefix(_REF)] if "$ref" in prop else prop
                target["x-kubernetes-map-type"] = "atomic"
            if meta.retain_keys:
                prop["x-kubernetes-patch-strategy"] = "retainKeys"


def _client_method(operation_id: str) -> Any:
    """The client's API method for an operation: ``patchCoreV1NamespacedService`` is
    ``CoreV1Api.patch_namespaced_service`` (the client is generated from the same ids)."""
    match = re.fullmatch(r"([a-z]+)([A-Z]\w*?V\d+)(\w*)", operation_id)
    assert match is not None, operation_id
    verb, api, rest = match.groups()
    # A run of capitals is one word (``listIPAddress`` is ``list_ip_address``).
    words = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", verb + rest)
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", words).lower()
    return getattr(getattr(client, f"{api}Api"), name)


def _camel(snake: str) -> str:
    head, *tail = snake.lstrip("_").split("_")
    return head + "".join(part.capitalize() for part in tail)


def operations() -> Obj:
    """Each served operation's description and parameter descriptions, from the client's API
    methods' docstrings (``<name>`` line, the description paragraph, ``:param x: text``).

    A parameter's most common text is kept once (``parameters``); an operation lists only the
    texts that differ from it (``name of the Pod``)."""
    ops: Obj = {}
    texts: dict[tuple[str, str], str] = {}
    for item in openapi_spec.paths(described=False).values():
        shared = [p["name"] for p in item["parameters"]]
        for key, op in item.items():
            if key == "parameters":
                continue
            doc = _client_method(op["operationId"]).__doc__ or ""
            paragraphs = [" ".join(p.split()) for p in doc.split("\n\n") if p.strip()]
            ops[op["operationId"]] = {"description": paragraphs[1]}
            found = {_camel(k): re.sub(r"\s*\(required\)$", "", v.strip())
                     for k, v in re.findall(r":param (\w+): ([^\n]*)", doc)}
            for name in [*shared, *(p["name"] for p in op["parameters"])]:
                if found.get(name):
                    texts[(op["operationId"], name)] = found[name]
    by_name: dict[str, Counter[str]] = {}
    for (_, name), text in texts.items():
        by_name.setdefault(name, Counter())[text] += 1
    common = {name: min(c, key=lambda t: (-c[t], t)) for name, c in sorted(by_name.items())}
    for (op_id, name), text in sorted(texts.items()):
        if text != common[name]:
            ops[op_id].setdefault("parameters", {})[name] = text
    return {"operations": dict(sorted(ops.items())), "parameters": common}


def generate() -> Obj:
    gen = Generator()
    kinds: dict[str, str] = {}
    for cls_name, group in roots():
        kinds.setdefault(f"{group}/{version_of(cls_name)}/{go_name(cls_name)}",
                         gen.name(cls_name, group))
    gen.definitions.update(SCALARS)
    for key, name in kinds.items():
        group, version, kind = key.split("/")
        gvk = {"group": group, "version": version, "kind": kind}
        if kind == "PodTemplate":
            continue  # a tagging root only: not served
        gvks = gen.definitions[name].setdefault("x-kubernetes-group-version-kind", [])
        if kind == "DeleteOptions":  # registered in every group version (Status in core only)
            gvks += [{"group": g, "version": v, "kind": kind}
                     for g, v in dict.fromkeys((r.group, r.version) for r in resources.CATALOGUE
                                                   if r.in_openapi)]
        else:
            gvks.append(gvk)
    apply_patch_meta(gen.definitions, kinds)
    return {"client": kubernetes.__version__, "definitions": dict(sorted(gen.definitions.items())),
            **operations()}


def main() -> None:
    OUT.write_text(json.dumps(generate(), indent=0, sort_keys=True) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
