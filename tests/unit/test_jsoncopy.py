"""util/jsoncopy: the copies the write path makes."""

from __future__ import annotations

from svcnet.util.jsoncopy import object_copy


def test_object_copy_shares_only_managed_fields() -> None:
    managed = [{"manager": "m", "fieldsV1": {"f:spec": {}}}]
    obj = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "a", "labels": {"x": "1"}, "managedFields": managed,
                        "annotations": {"y": "2"}},
           "spec": {"ports": [{"port": 80}]}, "status": {}}
    out = object_copy(obj)
    assert out == obj
    assert list(out) == list(obj) and list(out["metadata"]) == list(obj["metadata"])
    assert out["metadata"]["managedFields"] is managed
    out["metadata"]["labels"]["x"] = "changed"
    out["spec"]["ports"][0]["port"] = 81
    out["metadata"]["name"] = "b"
    assert obj["metadata"] == {"name": "a", "labels": {"x": "1"}, "managedFields": managed,
                               "annotations": {"y": "2"}}
    assert obj["spec"] == {"ports": [{"port": 80}]}


def test_object_copy_without_managed_fields_is_a_deep_copy() -> None:
    obj = {"metadata": {"name": "a"}, "data": {"k": ["v"]}}
    out = object_copy(obj)
    out["data"]["k"].append("w")
    out["metadata"]["name"] = "b"
    assert obj == {"metadata": {"name": "a"}, "data": {"k": ["v"]}}
