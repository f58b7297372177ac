"""util/jsoncopy: the copies the write path makes."""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from typing import Any

import pytest

from svcnet.util.jsoncopy import json_copy, object_copy


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


def test_json_copy_is_deep_and_keeps_order_and_values() -> None:
    obj: dict[str, Any] = {"z": 1, "a": [{"b": [1.5, -0.0, 2**63, -(2**63), True, None, "é"]}],
                           "m": {}}
    out = json_copy(obj)
    assert out == obj and list(out) == ["z", "a", "m"]
    assert out["a"][0]["b"][1] == 0.0 and str(out["a"][0]["b"][1]) == "-0.0"
    assert [type(v) for v in out["a"][0]["b"]] == [float, float, int, int, bool, type(None),
                                                   str]
    out["a"][0]["b"].append(3)
    out["m"]["n"] = 1
    assert obj["a"][0]["b"][-1] == "é" and obj["m"] == {}


@pytest.mark.parametrize("odd", [2**64, -(2**64), "\ud800", dt.datetime(2026, 1, 1),
                                 OrderedDict(a=1), 1])
def test_json_copy_of_what_orjson_refuses_copies_it_as_it_is(odd: object) -> None:
    """Values orjson would refuse: the copy falls back to a walk that shares scalars (and
    copies what is a dict or list exactly)."""
    obj: dict[Any, Any] = {"k": [odd], "n": {"x": 1}}
    if odd == 1:
        obj = {1: [odd], "n": {"x": 1}}  # a key that is not a string
    out = json_copy(obj)
    assert out == obj
    (key,) = [k for k in obj if k != "n"]
    assert out[key][0] is odd and out[key] is not obj[key] and out["n"] is not obj["n"]


def test_json_copy_of_a_scalar_is_itself() -> None:
    for value in ("s", 1, None, 2.5):
        assert json_copy(value) is value
