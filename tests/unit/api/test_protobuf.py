"""The protobuf codec over kubectl's descriptors: round trips, JSON shape as Go writes it,
well-known types, bad input."""

from __future__ import annotations

import json
import struct
from typing import Any, cast

import pytest

from svcnet.api.kubectl_descriptors import find_kubectl, load, shapes
from svcnet.api.protobuf import (
    MAGIC,
    Codec,
    NotRegistered,
    ProtobufError,
    message_name,
)
from tests.kubectl_codec import kubectl_codec, require_codec

META = "k8s.io.apimachinery.pkg.apis.meta.v1"
CODEC = cast(Codec, kubectl_codec())


@pytest.fixture(autouse=True)
def _kubectl() -> None:
    require_codec()


def _odd_types_codec() -> Codec | None:
    """kubectl's descriptors plus a made-up kind ``odd.k8s.io/v1 Odd`` with the rarer shapes."""
    binary = find_kubectl()
    if binary is None:
        return None
    found = load(binary, None)
    files = found.files
    f = files.file.add(name="odd.proto", package="k8s.io.api.odd.v1", syntax="proto2",
                       dependency=["k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto",
                                   "k8s.io/apimachinery/pkg/runtime/generated.proto"])
    inner = f.message_type.add(name="Inner")
    inner.field.add(name="a", number=1, label=1, type=9)
    odd = f.message_type.add(name="Odd")
    for name, number, type_name in (("renew", 1, f".{META}.MicroTime"),
                                    ("wait", 2, f".{META}.Duration"),
                                    ("inner", 3, ".k8s.io.api.odd.v1.Inner"),
                                    ("ext", 4, ".k8s.io.apimachinery.pkg.runtime.RawExtension"),
                                    ("count", 6, "")):
        if type_name:
            odd.field.add(name=name, number=number, label=1, type=11, type_name=type_name)
        else:
            odd.field.add(name=name, number=number, label=1, type=3)
    odd.field.add(name="blob", number=5, label=1, type=12)
    return Codec(files, {**shapes(found), "k8s.io.api.odd.v1.Odd": {
        "renew": "po", "wait": "o", "inner": "i", "ext": "o", "blob": "", "count": "o:total"}})


ODD = cast(Codec, _odd_types_codec())

SERVICE: dict[str, Any] = {
    "kind": "Service", "apiVersion": "v1",
    "metadata": {
        "name": "web", "namespace": "default", "uid": "u-1", "resourceVersion": "7",
        "creationTimestamp": "2025-03-01T10:20:30Z", "labels": {"app": "web"},
        "annotations": {"a": ""}, "finalizers": ["x"],
        "deletionTimestamp": "2025-03-01T11:00:00Z", "deletionGracePeriodSeconds": 0,
        "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                           "time": "2025-03-01T10:20:30Z", "fieldsType": "FieldsV1",
                           "fieldsV1": {"f:spec": {"f:ports": {}}}}]},
    "spec": {"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http",
                        "nodePort": 30080},
                       {"protocol": "UDP", "port": 53, "targetPort": 5353}],
             "selector": {"app": "web"}, "clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"],
             "type": "NodePort", "sessionAffinity": "None", "externalTrafficPolicy": "Cluster",
             "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
             "allocateLoadBalancerNodePorts": False, "internalTrafficPolicy": "Cluster"},
    "status": {"loadBalancer": {}},
}


def test_message_names_follow_the_package_layout() -> None:
    assert message_name("v1", "Service") == "k8s.io.api.core.v1.Service"
    assert message_name("apps/v1", "Deployment") == "k8s.io.api.apps.v1.Deployment"
    assert message_name("discovery.k8s.io/v1", "EndpointSliceList") == \
        "k8s.io.api.discovery.v1.EndpointSliceList"
    assert message_name("v1", "Status") == "k8s.io.apimachinery.pkg.apis.meta.v1.Status"
    assert message_name("v1", "DeleteOptions").endswith("meta.v1.DeleteOptions")
    assert message_name("rbac.authorization.k8s.io/v1", "Role") == "k8s.io.api.rbac.v1.Role"
    assert message_name("coordination.k8s.io/v1", "Lease") == \
        "k8s.io.api.coordination.v1.Lease"


def test_a_go_shaped_object_round_trips_exactly() -> None:
    data = CODEC.encode(SERVICE)
    assert data.startswith(MAGIC + b"\x0a\x0d\x0a\x02v1\x12\x07Service")
    assert CODEC.decode(data) == SERVICE


@pytest.mark.parametrize(("sent", "as_go_writes_it"), [
    # Absent non-pointer structs come back as their zero value; the zero time is null.
    ({"metadata": {"name": "n"}},
     {"metadata": {"name": "n", "creationTimestamp": None}, "spec": {}, "status": {}}),
    # omitempty drops empty strings, lists and maps; a pointer keeps its zero.
    ({"metadata": {"name": "n", "labels": {}, "namespace": ""},
      "spec": {"finalizers": []}, "status": {"phase": ""}},
     {"metadata": {"name": "n", "creationTimestamp": None}, "spec": {}, "status": {}}),
])
def test_zero_values_as_go_json_writes_them(sent: dict[str, Any],
                                            as_go_writes_it: dict[str, Any]) -> None:
    out = CODEC.decode(CODEC.encode({"apiVersion": "v1", "kind": "Namespace", **sent}))
    assert out == {"kind": "Namespace", "apiVersion": "v1", **as_go_writes_it}


def test_pointer_zero_and_non_omitempty_fields() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "p"},
           "spec": {"ports": [{"port": 0}], "allocateLoadBalancerNodePorts": False}}
    out = CODEC.decode(CODEC.encode(svc))
    # port has no omitempty: its zero is written; targetPort is a struct: always written.
    assert out["spec"]["ports"] == [{"port": 0, "targetPort": 0}]
    assert out["spec"]["allocateLoadBalancerNodePorts"] is False
    assert "ipFamilyPolicy" not in out["spec"]  # a nil pointer with omitempty


def test_lists_with_no_items_are_null_as_go_writes_them() -> None:
    out = CODEC.decode(CODEC.encode({"apiVersion": "v1", "kind": "ServiceList",
                                     "metadata": {"resourceVersion": "3"}, "items": []}))
    assert out == {"kind": "ServiceList", "apiVersion": "v1",
                   "metadata": {"resourceVersion": "3"}, "items": None}


def test_bytes_maps_are_base64() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "c", "creationTimestamp": None},
          "data": {"k": "v"}, "binaryData": {"b": "AAEC/w=="}, "immutable": True}
    assert CODEC.decode(CODEC.encode(cm)) == {**cm}
    msg = CODEC.message(cm)
    assert msg.binaryData["b"] == b"\x00\x01\x02\xff"


@pytest.mark.parametrize(("text", "back"), [
    ("2025-03-01T10:20:30Z", "2025-03-01T10:20:30Z"),
    ("2025-03-01T12:20:30+02:00", "2025-03-01T10:20:30Z"),
    ("2025-03-01T10:20:30.123456789Z", "2025-03-01T10:20:30Z"),  # Time keeps seconds
    ("1969-12-31T23:59:59Z", "1969-12-31T23:59:59Z"),
])
def test_times(text: str, back: str) -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace",
          "metadata": {"name": "t", "creationTimestamp": text}}
    assert CODEC.decode(CODEC.encode(ns))["metadata"]["creationTimestamp"] == back


def test_status_and_watch_frames() -> None:
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": "nope", "reason": "NotFound", "code": 404,
              "details": {"name": "x", "kind": "services",
                          "causes": [{"reason": "FieldValueInvalid", "field": "spec"}]}}
    assert CODEC.decode(CODEC.encode(status)) == status
    frames = CODEC.watch_frame("ADDED", SERVICE) + CODEC.watch_frame("ERROR", status)
    (size,) = struct.unpack(">I", frames[:4])
    assert frames[4 + size:].startswith(struct.pack(">I", len(frames) - 8 - size))
    assert list(CODEC.read_frames(frames)) == [("ADDED", SERVICE), ("ERROR", status)]


def test_int_or_string_and_raw_json() -> None:
    port = CODEC.decode(CODEC.encode(SERVICE))["spec"]["ports"]
    assert [p["targetPort"] for p in port] == ["http", 5353]
    fields = CODEC.decode(CODEC.encode(SERVICE))["metadata"]["managedFields"][0]["fieldsV1"]
    assert fields == {"f:spec": {"f:ports": {}}}


@pytest.mark.parametrize("data", [
    b"", b"{}", b"k8s", MAGIC + b"\xff", MAGIC + b"\x0a\x05\x0a\x02v1",
    MAGIC + b"\x0a\x0d\x0a\x02v1\x12\x07Service\x12\x03\x0a\xff\xff",
    MAGIC + b"\x12\x00",  # no kind
    MAGIC + b"\x0a\x0d\x0a\x02v1\x12\x07Service\x1a\x04gzip",
    MAGIC + b"\x0a\x0d\x0a\x02v1\x12\x07Service\x22\x10application/json",
])
def test_malformed_input_is_a_protobuf_error(data: bytes) -> None:
    with pytest.raises(ProtobufError):
        CODEC.decode(data)


def test_a_kind_without_a_message_is_not_registered() -> None:
    assert CODEC.has("apps/v1", "ReplicaSet")
    assert not CODEC.has("apps/v1", "Nonesuch")
    with pytest.raises(NotRegistered):
        CODEC.decode(MAGIC + b"\x0a\x13\x0a\x07apps/v1\x12\x08Nonesuch")
    with pytest.raises(NotRegistered):
        CODEC.encode({"apiVersion": "meta.k8s.io/v1", "kind": "Table"})


@pytest.mark.parametrize("bad", [
    {"metadata": {"name": 5}}, {"metadata": {"labels": ["a"]}}, {"spec": {"ports": {"a": 1}}},
    {"spec": {"ports": [{"port": "80"}]}}, {"metadata": {"creationTimestamp": "yesterday"}},
    {"spec": {"ports": [{"port": 80, "targetPort": 1.5}]}},
])
def test_values_of_the_wrong_type_cannot_be_encoded(bad: dict[str, Any]) -> None:
    with pytest.raises(ProtobufError):
        CODEC.encode({"apiVersion": "v1", "kind": "Service", **bad})


def test_a_generator_body_decodes_to_the_json_kubectl_sends() -> None:
    """``kubectl create deployment web --image=x``: the JSON Go's encoder writes for it."""
    sent = ('{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"web",'
            '"creationTimestamp":null,"labels":{"app":"web"}},"spec":{"replicas":1,'
            '"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":'
            '{"creationTimestamp":null,"labels":{"app":"web"}},"spec":{"containers":'
            '[{"name":"x","image":"x","resources":{}}]}},"strategy":{}},"status":{}}')
    as_json = json.loads(sent)
    assert CODEC.decode(CODEC.encode(as_json)) == as_json


@pytest.mark.parametrize(("sent", "back"), [
    ({"renewTime": None}, {}),
    ({"renew": "2025-03-01T10:20:30.123456789Z"}, {"renew": "2025-03-01T10:20:30.123456Z"}),
    ({"renew": "2025-03-01T10:20:30Z"}, {"renew": "2025-03-01T10:20:30.000000Z"}),
    ({"wait": "1h0m0s"}, {"wait": "1h0m0s"}),
    ({"wait": "90s"}, {"wait": "1m30s"}),
    ({"wait": "1.5s"}, {"wait": "1.5s"}),
    ({"wait": "-250ms"}, {"wait": "-250ms"}),
    ({"wait": "2us"}, {"wait": "2µs"}),
    ({"a": "inlined"}, {"a": "inlined"}),
    ({"ext": {"any": ["json", 1]}}, {"ext": {"any": ["json", 1]}}),
    ({"blob": "AQI="}, {"blob": "AQI="}),
    ({"total": 7}, {"total": 7}),
    ({"total": 0}, {}),
])
def test_rarer_shapes(sent: dict[str, Any], back: dict[str, Any]) -> None:
    """MicroTime, Duration as Go prints it, inline fields, raw JSON, bytes, renamed fields.

    Non-pointer fields absent from the wire read back as Go's zero values: ``wait`` "0s",
    ``blob`` null (no omitempty), ``ext`` null (an empty RawExtension).
    """
    zero = {"wait": "0s", "blob": None, "ext": None}
    obj = {"apiVersion": "odd.k8s.io/v1", "kind": "Odd", **sent}
    assert ODD.decode(ODD.encode(obj)) == {"kind": "Odd", "apiVersion": "odd.k8s.io/v1",
                                           **zero, **back}


@pytest.mark.parametrize("bad", [{"wait": "soon"}, {"wait": 5}, {"renew": "2025-13-01"},
                                 {"blob": "not base64!"}, {"ext": float("nan")}])
def test_rarer_shapes_refuse_bad_values(bad: dict[str, Any]) -> None:
    with pytest.raises(ProtobufError):
        ODD.encode({"apiVersion": "odd.k8s.io/v1", "kind": "Odd", **bad})
