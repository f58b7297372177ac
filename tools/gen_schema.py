"""Generate svcnet/api/schema.json from the official `kubernetes` client's models.

The client's models carry, for every API type, each field's JSON name and type. We keep only the
types reachable from the kinds svcnet serves, in a compact form the decoder reads at start-up:

    {"types": {"V1ServicePort": {"port": "int32", "targetPort": "intorstring",
                                 "ports": {"list": "V1ServicePort"}, ...}},
     "kinds": {"v1/Service": "V1Service", ...}}

Run after upgrading the client: `.venv/bin/python tools/gen_schema.py`. The output is committed so
that the server does not depend on the client package at run time.

It also writes svcnet/api/required.json: per type, the JSON names of the fields the client's
model requires (``{"V1ServicePort": ["port"], ...}``). Kubernetes' OpenAPI marks a field required
exactly when its Go JSON tag has no ``omitempty`` and it is not ``+optional``; the protobuf codec
uses that as its reading of ``omitempty`` (svcnet/api/kubectl_descriptors.py).
`--required-only` writes just that file from the committed schema.json's types.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from kubernetes.client import models

KINDS = {
    "v1/Service": "V1Service",
    "v1/Pod": "V1Pod",
    "v1/Node": "V1Node",
    "v1/Namespace": "V1Namespace",
    "v1/LimitRange": "V1LimitRange",
    "v1/ResourceQuota": "V1ResourceQuota",
    "v1/Endpoints": "V1Endpoints",
    "v1/Event": "CoreV1Event",
    "v1/Binding": "V1Binding",
    "v1/DeleteOptions": "V1DeleteOptions",
    "discovery.k8s.io/v1/EndpointSlice": "V1EndpointSlice",
    "apps/v1/Deployment": "V1Deployment",
    "apps/v1/ControllerRevision": "V1ControllerRevision",
    "apps/v1/ReplicaSet": "V1ReplicaSet",
    "apps/v1/DaemonSet": "V1DaemonSet",
    "apps/v1/StatefulSet": "V1StatefulSet",
    "v1/ReplicationController": "V1ReplicationController",
    "autoscaling/v1/Scale": "V1Scale",
    "autoscaling/v1/HorizontalPodAutoscaler": "V1HorizontalPodAutoscaler",
    "autoscaling/v2/HorizontalPodAutoscaler": "V2HorizontalPodAutoscaler",
    "coordination.k8s.io/v1/Lease": "V1Lease",
    "events.k8s.io/v1/Event": "EventsV1Event",
    "rbac.authorization.k8s.io/v1/Role": "V1Role",
    "rbac.authorization.k8s.io/v1/ClusterRole": "V1ClusterRole",
    "rbac.authorization.k8s.io/v1/RoleBinding": "V1RoleBinding",
    "rbac.authorization.k8s.io/v1/ClusterRoleBinding": "V1ClusterRoleBinding",
    "v1/ConfigMap": "V1ConfigMap",
    "v1/Secret": "V1Secret",
    "v1/ServiceAccount": "V1ServiceAccount",
    "node.k8s.io/v1/RuntimeClass": "V1RuntimeClass",
    "scheduling.k8s.io/v1/PriorityClass": "V1PriorityClass",
    "storage.k8s.io/v1/StorageClass": "V1StorageClass",
    "admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration":
        "V1ValidatingWebhookConfiguration",
    "admissionregistration.k8s.io/v1/MutatingWebhookConfiguration":
        "V1MutatingWebhookConfiguration",
    "apiextensions.k8s.io/v1/CustomResourceDefinition": "V1CustomResourceDefinition",
    "certificates.k8s.io/v1/CertificateSigningRequest": "V1CertificateSigningRequest",
    "networking.k8s.io/v1/Ingress": "V1Ingress",
    "networking.k8s.io/v1/IngressClass": "V1IngressClass",
    "networking.k8s.io/v1/NetworkPolicy": "V1NetworkPolicy",
    "networking.k8s.io/v1/ServiceCIDR": "V1ServiceCIDR",
    "networking.k8s.io/v1/IPAddress": "V1IPAddress",
    "v1/PersistentVolume": "V1PersistentVolume",
    "v1/PersistentVolumeClaim": "V1PersistentVolumeClaim",
    "batch/v1/Job": "V1Job",
    "batch/v1/CronJob": "V1CronJob",
    "policy/v1/PodDisruptionBudget": "V1PodDisruptionBudget",
    "policy/v1/Eviction": "V1Eviction",
}

# Kinds served outside the schema decoder (reviews, TokenRequest): required.json describes them
# too, for the protobuf codec.
OTHER_KINDS = {
    "authentication.k8s.io/v1/TokenRequest": "AuthenticationV1TokenRequest",
    "authentication.k8s.io/v1/TokenReview": "V1TokenReview",
    "authentication.k8s.io/v1/SelfSubjectReview": "V1SelfSubjectReview",
    "authorization.k8s.io/v1/SubjectAccessReview": "V1SubjectAccessReview",
    "authorization.k8s.io/v1/SelfSubjectAccessReview": "V1SelfSubjectAccessReview",
    "authorization.k8s.io/v1/LocalSubjectAccessReview": "V1LocalSubjectAccessReview",
    "authorization.k8s.io/v1/SelfSubjectRulesReview": "V1SelfSubjectRulesReview",
}

# Fields the client types as a bare 'object' that Kubernetes declares as IntOrString.
INT_OR_STRING = {"targetPort", "port", "maxSurge", "maxUnavailable", "minAvailable"}
# Resource lists: values are Quantities, which JSON may spell as a string or a number.
QUANTITY_MAPS = {"limits", "requests", "capacity", "allocatable", "overhead", "podFixed"}
# ResourceList fields whose names say nothing alone (a LimitRange item's bounds, a quota's).
TYPED_QUANTITY_MAPS = {("V1ResourceQuotaSpec", "hard"), ("V1ResourceQuotaStatus", "hard"),
                       ("V1ResourceQuotaStatus", "used")} | {
    ("V1LimitRangeItem", f) for f in ("min", "max", "default", "defaultRequest",
                                      "maxLimitRequestRatio")}
# map[string][]byte fields, which JSON carries as base64 strings (the client types them str).
BYTE_MAPS = {("V1Secret", "data"), ("V1ConfigMap", "binaryData")}
# int32 fields whose name is an int64 elsewhere (a CSR's expirationSeconds is *int32, a
# TokenRequest's int64).
INT32 = {("V1CertificateSigningRequestSpec", "expirationSeconds")}
# int64 fields (everything else that is an integer is int32 in the Go types we serve).
INT64 = {"generation", "observedGeneration", "deletionGracePeriodSeconds",
         "terminationGracePeriodSeconds", "activeDeadlineSeconds", "runAsUser", "runAsGroup",
         "fsGroup", "count", "seconds", "expirationSeconds", "sizeLimit",
         "startingDeadlineSeconds",
         # JSONSchemaProps' bounds (a CRD's schemas).
         "maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties"}


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
    if t == "bytes":  # []byte (a conversion webhook's caBundle): base64 in JSON
        return "bytes"
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
        if (name, json_name) in TYPED_QUANTITY_MAPS:
            fields[json_name] = {"map": "quantity"}
            continue
        if (name, json_name) in INT32:
            fields[json_name] = "int32"
            continue
        fields[json_name] = convert(t, json_name, out)
    out[name] = fields


def write_required(type_names: list[str], api_dir: Path) -> None:
    """The client's required fields of each type, by JSON name, and the types of
    :data:`OTHER_KINDS` as schema.json has its own (required.json)."""
    others: dict[str, Any] = {}
    for cls_name in OTHER_KINDS.values():
        walk(cls_name, others)
    others = {k: v for k, v in others.items() if k not in type_names}
    out: dict[str, list[str]] = {}
    for name in sorted([*type_names, *others]):
        cls = getattr(models, name)
        names = [cls.attribute_map[attr] for attr, f in cls.model_fields.items()
                 if f.is_required()]
        if names:
            out[name] = sorted(names)
    path = api_dir / "required.json"
    doc = {"kinds": OTHER_KINDS, "types": dict(sorted(others.items())), "required": out}
    path.write_text(json.dumps(doc, indent=0, sort_keys=True) + "\n")
    print(f"wrote {path} ({len(out)} types with required fields)")


def main() -> None:
    api_dir = Path(__file__).resolve().parent.parent / "svcnet" / "api"
    path = api_dir / "schema.json"
    if "--required-only" in sys.argv:
        write_required(list(json.loads(path.read_text())["types"]), api_dir)
        return
    types: dict[str, Any] = {}
    for cls_name in KINDS.values():
        walk(cls_name, types)
    doc = {"kinds": KINDS, "types": dict(sorted(types.items()))}
    path.write_text(json.dumps(doc, indent=0, sort_keys=True) + "\n")
    print(f"wrote {path} ({len(types)} types)")
    write_required(list(types), api_dir)


if __name__ == "__main__":
    main()
