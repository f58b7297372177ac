"""Generate svcnet/api/schema.json from the official `kubernetes` client's models.

The client's models carry, for every API type, each field's JSON name and type. We keep only the
types reachable from the kinds svcnet serves, in a compact form the decoder reads at start-up:

    {"types": {"V1ServicePort": {"port": "int32", "targetPort": "intorstring",
                                 "ports": {"list": "V1ServicePort"}, ...}},
     "kinds": {"v1/Service": "V1Service", ...}}

Run after upgrading the client: `.venv/bin/python tools/gen_schema.py`. The output is committed so
that the server does not depend on the client package at run time.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from kubernetes.client import models

KINDS = {
    "v1/Service": "V1Service",
    "v1/Pod": "V1Pod",
    "v1/Node": "V1Node",
    "v1/Namespace": "V1Namespace",
    "v1/Endpoints": "V1Endpoints",
    "v1/Event": "CoreV1Event",
    "v1/Binding": "V1Binding",
    "v1/DeleteOptions": "V1DeleteOptions",
    "discovery.k8s.io/v1/EndpointSlice": "V1EndpointSlice",
    "apps/v1/Deployment": "V1Deployment",
    "apps/v1/ReplicaSet": "V1ReplicaSet",
    "autoscaling/v1/Scale": "V1Scale",
    "coordination.k8s.io/v1/Lease": "V1Lease",
    "events.k8s.io/v1/Event": "EventsV1Event",
    "v1/ConfigMap": "V1ConfigMap",
    "v1/Secret": "V1Secret",
    "v1/ServiceAccount": "V1ServiceAccount",
}

# Fields the client types as a bare 'object' that Kubernetes declares as IntOrString.
INT_OR_STRING = {"targetPort", "port", "maxSurge", "maxUnavailable", "minAvailable"}
# Resource lists: values are Quantities, which JSON may spell as a string or a number.
QUANTITY_MAPS = {"limits", "requests", "capacity", "allocatable", "overhead"}
# map[string][]byte fields, which JSON carries as base64 strings (the client types them str).
BYTE_MAPS = {("V1Secret", "data"), ("V1ConfigMap", "binaryData")}
# int64 fields (everything else that is an integer is int32 in the Go types we serve).
INT64 = {"generation", "observedGeneration", "deletionGracePeriodSeconds",
         "terminationGracePeriodSeconds", "activeDeadlineSeconds", "runAsUser", "runAsGroup",
         "fsGroup", "count", "seconds", "expirationSeconds", "sizeLimit"}


def convert(type_name: str, field: str, out: dict[str, Any]) -> Any:
    t = type_name.strip()
    m = re.fullmatch(r"(?:list|List)\[(.+)\]", t)
    if m:
        return {"list": convert(m.group(1), field, out)}
    m = re.fullmatch(r"(?:dict|Dict)\(?\[?str, (.+?)\)?\]?", t)
    if m:
        if field in QUANTITY_MAPS:
            return {"map": "quantity"}
        return {"map": convert(m.group(1), field, out)}
    if t == "str":
        return "string"
    if t == "int":
        return "int64" if field in INT64 else "int32"
    if t == "bool":
        return "boolean"
    if t == "float":
        return "number"
    if t == "datetime":
        return "time"
    if t == "object":
        return "intorstring" if field in INT_OR_STRING else "any"
    walk(t, out)
    return t


def walk(name: str, out: dict[str, Any]) -> None:
    if name in out:
        return
    cls = getattr(models, name)
    out[name] = {}
    fields: dict[str, Any] = {}
    for attr, t in cls.openapi_types.items():
        json_name = cls.attribute_map[attr]
        if (name, json_name) in BYTE_MAPS:
            fields[json_name] = {"map": "bytes"}
            continue
        fields[json_name] = convert(t, json_name, out)
    out[name] = fields


def main() -> None:
    types: dict[str, Any] = {}
    for cls_name in KINDS.values():
        walk(cls_name, types)
    doc = {"kinds": KINDS, "types": dict(sorted(types.items()))}
    path = Path(__file__).resolve().parent.parent / "svcnet" / "api" / "schema.json"
    path.write_text(json.dumps(doc, indent=0, sort_keys=True) + "\n")
    print(f"wrote {path} ({len(types)} types)")


if __name__ == "__main__":
    main()
