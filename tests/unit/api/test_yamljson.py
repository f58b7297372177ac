"""Request body decoding and query conversion, as kube-apiserver's codecs do them."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.api.yamljson import MAX_DEPTH, decode_bytes
from svcnet.apiserver.query import decode_continue, encode_continue, parse_int64


@pytest.mark.parametrize(("raw", "yaml_ok", "expected"), [
    pytest.param(b'{"a":1}', False, {"a": 1}, id="json"),
    pytest.param(b"apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n"
                 b"  annotations:\n    when: 2024-01-01T00:00:00Z\n", True,
                 {"apiVersion": "v1", "kind": "Service",
                  "metadata": {"name": "x", "annotations": {"when": "2024-01-01T00:00:00Z"}}},
                 id="yaml keeps timestamps as strings"),
    pytest.param(b'{"apiVersion":"v1"}', True, {"apiVersion": "v1"}, id="json as yaml"),
    pytest.param(b'{"a":"x\\ud800","\\udc00":"\\ud83d\\ude00"}', False,
                 {"a": "x\ufffd", "\ufffd": "\U0001F600"}, id="lone surrogates"),
    pytest.param(b'{"a":"\xff"}', False, {"a": "\ufffd"}, id="invalid utf-8"),
    pytest.param(b'# yaml\n{"a": "\\ud800\\udc00", "b": "\\ud800"}', True,
                 {"a": "\U00010000", "b": "\ufffd"}, id="yaml surrogate pair and lone one"),
    pytest.param(b"2: a\ntrue: b\n~: c\n1.5: d\n", True,
                 {"2": "a", "true": "b", "null": "c", "1.5": "d"}, id="yaml scalar keys"),
    pytest.param(b"a: &x {b: [1]}\nc: *x\n", True, {"a": {"b": [1]}, "c": {"b": [1]}},
                 id="yaml alias"),
    pytest.param(b"{a: 1, b: [x, y]}", True, {"a": 1, "b": ["x", "y"]},
                 id="yaml flow style that is not JSON"),
])
def test_decode(raw: bytes, yaml_ok: bool, expected: Any) -> None:
    assert decode_bytes(raw, yaml_ok=yaml_ok) == expected


def test_yaml_aliases_become_independent_copies() -> None:
    doc = decode_bytes(b"a: &x {b: [1]}\nc: *x\n", yaml_ok=True)
    doc["a"]["b"].append(2)
    assert doc["c"] == {"b": [1]}


@pytest.mark.parametrize(("raw", "yaml_ok", "message"), [
    pytest.param(b"{", False, "Expecting", id="truncated"),
    pytest.param(b'{"a":NaN}', False, "invalid character 'N'", id="NaN"),
    pytest.param(b'{"a":-Infinity}', False, "invalid character '-'", id="-Infinity"),
    pytest.param(b"a: .nan\n", True, "unsupported value", id="yaml nan"),
    pytest.param(b"a: [", True, "error converting YAML to JSON", id="yaml syntax"),
    pytest.param(b"a: !!binary aGk=\n", True, "unsupported value of type bytes", id="binary"),
    pytest.param(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), False,
                 f"exceeded max depth of {MAX_DEPTH}", id="one too deep"),
    pytest.param(b"[" * 50_000 + b"]" * 50_000, False, "exceeded max depth", id="very deep"),
    pytest.param(b"[" * 50_000, True, "exceeded max depth", id="very deep yaml"),
    pytest.param(b"a: &a [x,x,x,x,x,x,x,x,x]\n" + b"".join(
        b"%c: &%c [%s]\n" % (98 + i, 98 + i, b",".join([b"*%c" % (97 + i)] * 9))
        for i in range(9)), True, "excessive aliasing", id="billion laughs"),
])
def test_decode_refuses(raw: bytes, yaml_ok: bool, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_bytes(raw, yaml_ok=yaml_ok)


def test_max_depth_is_accepted() -> None:
    depth = MAX_DEPTH
    assert decode_bytes(b"[" * depth + b"]" * depth) is not None


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("+5", 5), ("-5", -5),
                                             ("9223372036854775807", 2**63 - 1),
                                             ("-9223372036854775808", -(2**63))])
def test_parse_int64(text: str, value: int) -> None:
    assert parse_int64(text) == value


@pytest.mark.parametrize(("text", "why"), [
    ("", "invalid syntax"), (" 5", "invalid syntax"), ("5_0", "invalid syntax"),
    ("５", "invalid syntax"), ("1e3", "invalid syntax"), ("0x10", "invalid syntax"),
    ("9223372036854775808", "value out of range"), ("-9223372036854775809", "value out of range"),
])
def test_parse_int64_refuses(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=f'strconv.ParseInt: parsing "{text}": {why}'):
        parse_int64(text)


PREFIX = "/registry/services/default/"


def test_continue_round_trip_is_relative_to_the_prefix() -> None:
    token = encode_continue(42, PREFIX + "web", PREFIX)
    assert "=" not in token
    doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert doc == {"v": "meta.k8s.io/v1", "rv": 42, "start": "web"}
    assert decode_continue(token, PREFIX) == (42, PREFIX + "web")


def raw_token(doc: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


@pytest.mark.parametrize(("doc", "message"), [
    ({"v": "meta.k8s.io/v1", "rv": 0, "start": "a"}, "incorrect encoded start resourceVersion"),
    ({"v": "meta.k8s.io/v1", "rv": 5, "start": ""}, "encoded start key empty"),
    ({"v": "meta.k8s.io/v9", "rv": 5, "start": "a"}, "does not recognize this encoded version"),
    ({"v": "meta.k8s.io/v1", "rv": 5, "start": "../x"}, "continue key is not valid: ../x"),
    ({"v": "meta.k8s.io/v1", "rv": 5, "start": "a//b"}, "continue key is not valid: a//b"),
    ({"v": "meta.k8s.io/v1", "rv": 2**63, "start": "a"}, "of type int64"),
    ({"v": "meta.k8s.io/v1", "rv": 1.5, "start": "a"}, "of type int64"),
    ({"v": "meta.k8s.io/v1", "rv": True, "start": "a"}, "of type int64"),
    ([1], "cannot unmarshal"),
])
def test_continue_refusals(doc: Any, message: str) -> None:
    with pytest.raises(StatusError) as ei:
        decode_continue(raw_token(doc), PREFIX)
    assert ei.value.code == 400
    assert ei.value.message.startswith("invalid continue token: continue key is not valid")
    assert message in ei.value.message


def test_continue_negative_revision_means_latest() -> None:
    assert decode_continue(raw_token({"v": "meta.k8s.io/v1", "rv": -3, "start": "a"}),
                           PREFIX) == (0, PREFIX + "a")
