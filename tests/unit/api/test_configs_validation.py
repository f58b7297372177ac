"""ConfigMap, Secret and ServiceAccount rules, with upstream's validation test cases
(pkg/apis/core/validation/validation_test.go: TestValidateConfigMap,
TestValidateConfigMapUpdate, TestValidateSecret, TestValidateSecretUpdate,
TestValidateServiceAccount...) and Go's base64 and JSON decoding errors."""

from __future__ import annotations

import base64
import random
from typing import Any

import pytest

from svcnet.api import configs, gobase64, serviceaccounts
from svcnet.api.errors import StatusError, aggregate_message
from svcnet.api.gobase64 import Base64Error, canonical_base64, decoded_length
from svcnet.api.gojsonscan import unmarshal_object_error
from svcnet.api.kinds import check_object

Obj = dict[str, Any]


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def cm(data: dict[str, str] | None = None, binary: dict[str, str] | None = None,
       name: str = "valid", namespace: str = "validns", **extra: Any) -> Obj:
    out: Obj = {"metadata": {"name": name, "namespace": namespace}}
    if data is not None:
        out["data"] = data
    if binary is not None:
        out["binaryData"] = binary
    return {**out, **extra}


def secret(data: dict[str, str] | None = None, secret_type: str = "Opaque",
           name: str = "valid", namespace: str = "validns", annotations: dict[str, str] | None = None,
           **extra: Any) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"metadata": meta, "type": secret_type,
            "data": data if data is not None else {"data-1": _b64("bar")}, **extra}


def _errors(errs: list[Any]) -> list[tuple[str, str]]:
    return [(e.field, e.body()) for e in errs]


# -------------------------------------------------------------------------------- keys

@pytest.mark.parametrize("key", ["key1", ".a.b", "a..b", "A_B-c.d", "a" * 253, "-", "_", ".a"])
def test_valid_config_map_keys(key: str) -> None:
    assert configs.is_config_map_key(key) == []
    assert configs.validate_config_map(cm({key: "v"})) == []


@pytest.mark.parametrize(("key", "messages"), [
    ("a*b", ["a valid config key"]),
    ("", ["a valid config key"]),
    (".", ["must not be '.'"]),
    ("..", ["must not be '..'"]),
    ("..a", ["must not start with '..'"]),
    ("a" * 254, ["must be no more than 253 characters"]),
    ("a b", ["a valid config key"]),
    ("ä", ["a valid config key"]),
])
def test_invalid_config_map_keys(key: str, messages: list[str]) -> None:
    got = configs.is_config_map_key(key)
    assert [m for want in messages for m in got if m.startswith(want)] != []
    assert len(got) == len(messages)


def test_config_map_key_message_is_upstreams() -> None:
    errs = configs.validate_config_map(cm({"a*b": "value"}))
    assert len(errs) == 1
    assert str(errs[0]) == (
        'data[a*b]: Invalid value: "a*b": a valid config key must consist of alphanumeric '
        "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex "
        "used for validation is '[-._a-zA-Z0-9]+')")


# ---------------------------------------------------------------------------- ConfigMap


@pytest.mark.parametrize(("case", "obj", "fields"), [
    ("valid", cm({"key1": "value1"}), []),
    ("valid binaryData", cm(binary={"bin": _b64(b"\x00\x01")}), []),
    ("empty name", cm({"key1": "value1"}, name=""), ["metadata.name"]),
    ("invalid name", cm({"key1": "value1"}, name="NoUppercaseOrSpecialCharsLike=Equals"),
     ["metadata.name"]),
    ("empty namespace", cm({"key1": "value1"}, namespace=""), ["metadata.namespace"]),
    ("invalid namespace", cm({"key1": "value1"}, namespace="NoUppercaseOrSpecialCharsLike=Eq"),
     ["metadata.namespace"]),
    ("invalid key", cm({"a*b": "value"}), ["data[a*b]"]),
    ("invalid binaryData key", cm(binary={"a*b": _b64("x")}), ["binaryData[a*b]"]),
    ("dot key", cm({".": "value"}), ["data[.]"]),
    ("double dot key", cm({"..": "value"}), ["data[..]"]),
    ("overlapping key", cm({"..a": "value"}), ["data[..a]"]),
    ("duplicate key", cm({"key": "a"}, {"key": _b64("b")}), ["data[key]"]),
])
def test_validate_config_map(case: str, obj: Obj, fields: list[str]) -> None:
    assert [e.field for e in configs.validate_config_map(obj)] == fields, case


def test_config_map_duplicate_key_message() -> None:
    errs = configs.validate_config_map(cm({"key": "a"}, {"key": _b64("b")}))
    assert _errors(errs) == [
        ("data[key]", 'Invalid value: "key": duplicate of key present in binaryData')]


def test_config_map_total_size_counts_both_maps_in_bytes() -> None:
    half = configs.MAX_SECRET_SIZE // 2
    exact = cm({"a": "x" * half}, {"b": _b64(b"\xff" * (configs.MAX_SECRET_SIZE - half))})
    assert configs.validate_config_map(exact) == []
    over = cm({"a": "é" * (half // 2 + 1)}, {"b": _b64(b"\xff" * half)})  # é is 2 bytes
    errs = configs.validate_config_map(over)
    assert _errors(errs) == [("", "Too long: may not be more than 1048576 bytes")]
    assert aggregate_message(errs) == ": Too long: may not be more than 1048576 bytes"


def test_config_map_immutable_update() -> None:
    old = cm({"key": "v"}, immutable=True)
    old["metadata"]["resourceVersion"] = "1"
    same = cm({"key": "v"}, immutable=True)
    same["metadata"]["resourceVersion"] = "1"
    assert configs.validate_config_map_update(same, old) == []
    changed = cm({"key": "w"}, {"bin": _b64("x")})
    changed["metadata"]["resourceVersion"] = "1"
    assert _errors(configs.validate_config_map_update(changed, old)) == [
        ("immutable", "Forbidden: field is immutable when `immutable` is set"),
        ("data", "Forbidden: field is immutable when `immutable` is set"),
        ("binaryData", "Forbidden: field is immutable when `immutable` is set"),
    ]
    # A mutable ConfigMap may change, and may become immutable.
    mutable = cm({"key": "v"})
    mutable["metadata"]["resourceVersion"] = "1"
    assert configs.validate_config_map_update(changed, mutable) == []
    freeze = cm({"key": "x"}, immutable=True)
    freeze["metadata"]["resourceVersion"] = "1"
    assert configs.validate_config_map_update(freeze, mutable) == []


# ------------------------------------------------------------------------------- Secrets


def test_secret_defaulting_and_string_data() -> None:
    out = configs.set_defaults_secret({"metadata": {"name": "s"},
                                       "data": {"a": _b64("old"), "b": _b64("kept")},
                                       "stringData": {"a": "new", "c": "ünï"}})
    assert out["type"] == "Opaque"
    assert "stringData" not in out
    assert out["data"] == {"a": _b64("new"), "b": _b64("kept"), "c": _b64("ünï")}
    typed = configs.set_defaults_secret({"type": "kubernetes.io/tls", "stringData": {"x": ""}})
    assert typed == {"type": "kubernetes.io/tls", "data": {"x": ""}}


def test_secret_update_keeps_the_stored_type_when_none_is_given() -> None:
    old = secret(secret_type="kubernetes.io/tls")
    assert configs.prepare_secret_for_update({"metadata": {}}, old)["type"] == (
        "kubernetes.io/tls")


_REQ = "Required value"


@pytest.mark.parametrize(("case", "obj", "errors"), [
    ("valid", secret(), []),
    ("empty name", secret(name=""), [("metadata.name",
                                      "Required value: name or generateName is required")]),
    ("empty namespace", secret(namespace=""), [("metadata.namespace", _REQ)]),
    ("sa token without the name annotation",
     secret(secret_type="kubernetes.io/service-account-token"),
     [("metadata.annotations[kubernetes.io/service-account.name]", _REQ)]),
    ("sa token with the annotation",
     secret(secret_type="kubernetes.io/service-account-token",
            annotations={"kubernetes.io/service-account.name": "foo"}), []),
    ("empty dockercfg", secret(secret_type="kubernetes.io/dockercfg", data={}),
     [("data[.dockercfg]", _REQ)]),
    ("invalid dockercfg",
     secret(secret_type="kubernetes.io/dockercfg", data={".dockercfg": _b64("bogus")}),
     [("data[.dockercfg]", 'Invalid value: "<secret contents redacted>": invalid character '
                           "'b' looking for beginning of value")]),
    ("valid dockerconfigjson",
     secret(secret_type="kubernetes.io/dockerconfigjson",
            data={".dockerconfigjson": _b64('{"auths":{"r":{"auth":"eDp5"}}}')}), []),
    ("dockerconfigjson not an object",
     secret(secret_type="kubernetes.io/dockerconfigjson", data={".dockerconfigjson": _b64("[]")}),
     [("data[.dockerconfigjson]", 'Invalid value: "<secret contents redacted>": json: cannot '
                                  "unmarshal array into Go value of type map[string]interface "
                                  "{}")]),
    ("empty dockerconfigjson", secret(secret_type="kubernetes.io/dockerconfigjson", data={}),
     [("data[.dockerconfigjson]", _REQ)]),
    ("basic-auth missing both", secret(secret_type="kubernetes.io/basic-auth", data={}),
     [("data[%s][username]", _REQ), ("data[%s][password]", _REQ)]),
    ("basic-auth one key is enough",
     secret(secret_type="kubernetes.io/basic-auth", data={"password": ""}), []),
    ("ssh-auth empty key",
     secret(secret_type="kubernetes.io/ssh-auth", data={"ssh-privatekey": ""}),
     [("data[%s][ssh-privatekey]", _REQ)]),
    ("tls missing both", secret(secret_type="kubernetes.io/tls", data={}),
     [("data[tls.crt]", _REQ), ("data[tls.key]", _REQ)]),
    ("tls", secret(secret_type="kubernetes.io/tls", data={"tls.crt": "", "tls.key": ""}), []),
    ("leading dot key", secret(data={".dotfile": _b64("x")}), []),
    ("dot key", secret(data={".": _b64("x")}),
     [("data[.]", "Invalid value: \".\": must not be '.'")]),
    ("double dot key", secret(data={"..": _b64("x")}),
     [("data[..]", "Invalid value: \"..\": must not be '..'")]),
    ("overlapping key", secret(data={"..dotfile": _b64("x")}),
     [("data[..dotfile]", "Invalid value: \"..dotfile\": must not start with '..'")]),
    ("unknown type", secret(secret_type="example.com/custom"), []),
])
def test_validate_secret(case: str, obj: Obj, errors: list[tuple[str, str]]) -> None:
    assert _errors(configs.validate_secret(obj)) == errors, case


def test_secret_size_limit() -> None:
    assert configs.validate_secret(secret({"a": _b64(b"x" * configs.MAX_SECRET_SIZE)})) == []
    errs = configs.validate_secret(secret({"a": _b64(b"x" * configs.MAX_SECRET_SIZE),
                                           "b": _b64(b"y")}))
    assert [str(e) for e in errs] == ["data: Too long: may not be more than 1048576 bytes"]


def _versioned(obj: Obj) -> Obj:
    obj["metadata"]["resourceVersion"] = "1"
    return obj


def test_validate_secret_update() -> None:
    old = _versioned(secret())
    assert configs.validate_secret_update(_versioned(secret({"x": _b64("y")})), old) == []
    retyped = _versioned(secret(secret_type="kubernetes.io/tls",
                                data={"tls.crt": "", "tls.key": ""}))
    assert _errors(configs.validate_secret_update(retyped, old)) == [
        ("type", 'Invalid value: "kubernetes.io/tls": field is immutable')]
    frozen = _versioned(secret(immutable=True))
    thawed = _versioned(secret(immutable=False))
    assert _errors(configs.validate_secret_update(thawed, frozen)) == [
        ("immutable", "Forbidden: field is immutable when `immutable` is set")]
    changed = _versioned(secret({"x": _b64("z")}, immutable=True))
    assert _errors(configs.validate_secret_update(changed, frozen)) == [
        ("data", "Forbidden: field is immutable when `immutable` is set")]
    relabelled = _versioned(secret(immutable=True))
    relabelled["metadata"]["labels"] = {"a": "b"}
    assert configs.validate_secret_update(relabelled, frozen) == []


# ------------------------------------------------------------------------ ServiceAccounts


def test_service_account_rules() -> None:
    sa = {"metadata": {"name": "sa", "namespace": "ns"},
          "secrets": [{"name": "s1", "namespace": "other", "uid": "u"}, {"kind": "Secret"}]}
    prepared = serviceaccounts.prepare_service_account(sa)
    assert prepared["secrets"] == [{"name": "s1"}, {}]
    assert serviceaccounts.validate_service_account(prepared) == []
    bad = {"metadata": {"name": "Bad_Name", "namespace": "ns"}}
    assert [e.field for e in serviceaccounts.validate_service_account(bad)] == ["metadata.name"]
    old = _versioned({"metadata": {"name": "sa", "namespace": "ns"}})
    renamed = _versioned({"metadata": {"name": "sb", "namespace": "ns"}})
    assert [e.field for e in serviceaccounts.validate_service_account_update(renamed, old)] == [
        "metadata.name"]


# -------------------------------------------------------------------- Go base64 and JSON


@pytest.mark.parametrize(("text", "canonical"), [
    ("", ""), ("YQ==", "YQ=="), ("YWJj", "YWJj"), ("YR==", "YQ=="),
    ("YW\nJj\r\n", "YWJj"), ("\nYQ=\n=\n", "YQ=="), ("YWI=", "YWI="),
])
def test_go_base64_accepts(text: str, canonical: str) -> None:
    assert canonical_base64(text) == canonical


@pytest.mark.parametrize(("text", "offset"), [
    ("YQ", 0), ("YWJjZ", 4), ("not base64!", 3), ("YQ==YQ==", 4), ("YQ=", 3), ("Y===", 1),
    ("YQ=x", 2), ("YW J", 2), ("=", 0), ("YQ-_", 2),
])
def test_go_base64_refuses_with_gos_offset(text: str, offset: int) -> None:
    with pytest.raises(Base64Error) as e:
        canonical_base64(text)
    assert str(e.value) == f"illegal base64 data at input byte {offset}"


def test_decoded_length() -> None:
    for raw in (b"", b"a", b"ab", b"abc", b"abcd"):
        assert decoded_length(_b64(raw)) == len(raw)


@pytest.mark.parametrize(("data", "message"), [
    (b"{}", None), (b' {"a": [1, 2.5e3, "x\\u00e9", true, null]} ', None), (b"null", None),
    (b"", "unexpected end of JSON input"),
    (b"{", "unexpected end of JSON input"),
    (b"{a", "invalid character 'a' looking for beginning of object key string"),
    (b'{"a" 1}', "invalid character '1' after object key"),
    (b'{"a":1 "b":2}', "invalid character '\"' after object key:value pair"),
    (b'{"a":[1 2]}', "invalid character '2' after array element"),
    (b"[1]", "json: cannot unmarshal array into Go value of type map[string]interface {}"),
    (b'"x"', "json: cannot unmarshal string into Go value of type map[string]interface {}"),
    (b"1", "json: cannot unmarshal number into Go value of type map[string]interface {}"),
    (b"true", "json: cannot unmarshal bool into Go value of type map[string]interface {}"),
    (b"{} x", "invalid character 'x' after top-level value"),
    (b"trx", "invalid character 'x' in literal true (expecting 'u')"),
    (b"nul", "unexpected end of JSON input"),
    (b'"\x01"', "invalid character '\\x01' in string literal"),
    (b'"\\q"', "invalid character 'q' in string escape code"),
    (b'"\\u12x4"', "invalid character 'x' in \\u hexadecimal character escape"),
    (b"-x", "invalid character 'x' in numeric literal"),
    (b"1.x", "invalid character 'x' after decimal point in numeric literal"),
    (b"1ex", "invalid character 'x' in exponent of numeric literal"),
    (b"01", "invalid character '1' after top-level value"),
    (b"'a'", "invalid character '\\'' looking for beginning of value"),
])
def test_go_json_unmarshal_errors(data: bytes, message: str | None) -> None:
    assert unmarshal_object_error(data) == message


# ------------------------------------------------------------- offline (svcnet validate)


def test_offline_check_of_the_three_kinds() -> None:
    out = check_object({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                        "stringData": {"a": "b"}})
    assert out["type"] == "Opaque" and out["data"] == {"a": "Yg=="}
    assert check_object({"apiVersion": "v1", "kind": "ServiceAccount",
                         "metadata": {"name": "sa"}})["metadata"]["namespace"] == "default"
    with pytest.raises(StatusError) as e:
        check_object({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                      "data": {"..": "x"}})
    assert e.value.message == ('ConfigMap "c" is invalid: data[..]: Invalid value: "..": '
                               "must not be '..'")


def test_go_base64_shortcut_agrees_with_a_full_replay() -> None:
    """The fast paths (strip line breaks; jump to the first odd byte) give the answer of
    replaying Go's decodeQuantum over the whole input, on many small random inputs."""
    def replay(src: bytes) -> int | None:
        si = 0
        try:
            while si < len(src):
                si = gobase64._quantum(src, si)
        except Base64Error as e:
            return e.offset
        return None

    rng = random.Random(7)
    for _ in range(20000):
        text = "".join(rng.choice("AB+/=\n\r!a") for _ in range(rng.randint(0, 14)))
        try:
            canonical_base64(text)
            got = None
        except Base64Error as e:
            got = e.offset
        assert got == replay(text.encode()), repr(text)
