"""ConfigMaps and Secrets: defaulting, preparation and validation, as Kubernetes does them.

Theory of operation. Mirrors:

* ``pkg/apis/core/v1/defaults.go`` — ``SetDefaults_Secret`` (an empty ``type`` is ``Opaque``);
* ``pkg/apis/core/v1/conversion.go`` — ``Convert_v1_Secret_To_core_Secret``: ``stringData``
  is merged into ``data`` (a ``stringData`` key wins over the same ``data`` key) and is then
  gone, since the internal type has no such field; nothing stored or returned carries it;
* ``pkg/registry/core/{configmap,secret}/strategy.go`` — nothing to prepare on create; an
  update that leaves ``type`` empty keeps the stored one;
* ``pkg/apis/core/validation/validation.go`` (1.33) — ``ValidateConfigMap``,
  ``ValidateConfigMapUpdate``, ``ValidateSecret``, ``ValidateSecretUpdate``, and
  ``IsConfigMapKey`` from ``apimachinery/pkg/util/validation``.

Objects are JSON dicts after schema decoding (:mod:`svcnet.api.schema`): ``Secret.data`` and
``ConfigMap.binaryData`` values are canonical base64 strings (:mod:`svcnet.api.gobase64`), so
sizes count decoded bytes, as upstream counts ``len([]byte)``. Error paths and messages are
upstream's, quirks included: the basic-auth and ssh-auth required keys are reported under the
literal path ``data[%s][<key>]``, as ``field.NewPath("data[%s]").Key(...)`` spells them.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Mapping
from typing import Any, Final

from svcnet.api.access import map_of
from svcnet.api.errors import FieldError, Path, forbidden, invalid, required, too_long
from svcnet.api.gobase64 import decoded_length
from svcnet.api.gojsonscan import unmarshal_object_error
from svcnet.api.keypair import key_pair_error
from svcnet.api.meta import (
    FIELD_IMMUTABLE_ERROR_MSG,
    validate_object_meta,
    validate_object_meta_update,
)
from svcnet.api.names import max_len_error, name_is_dns_subdomain, regex_error

__all__ = [
    "MAX_SECRET_SIZE",
    "SECRET_TYPE_OPAQUE",
    "is_config_map_key",
    "prepare_secret_for_update",
    "set_defaults_secret",
    "validate_config_map",
    "validate_config_map_update",
    "validate_secret",
    "validate_secret_update",
]

Obj = dict[str, Any]

#: core.MaxSecretSize: the total of a Secret's data, and of a ConfigMap's data and binaryData.
MAX_SECRET_SIZE: Final = 1 * 1024 * 1024
_DNS1123_SUBDOMAIN_MAX: Final = 253
_CONFIG_MAP_KEY_FMT: Final = "[-._a-zA-Z0-9]+"
_CONFIG_MAP_KEY_RE: Final = re.compile(_CONFIG_MAP_KEY_FMT)
_CONFIG_MAP_KEY_MSG: Final = ("a valid config key must consist of alphanumeric characters, "
                              "'-', '_' or '.'")
_IMMUTABLE_SET: Final = "field is immutable when `immutable` is set"

SECRET_TYPE_OPAQUE: Final = "Opaque"
_SA_TOKEN: Final = "kubernetes.io/service-account-token"
_SA_NAME_KEY: Final = "kubernetes.io/service-account.name"
_DOCKERCFG: Final = "kubernetes.io/dockercfg"
_DOCKERCFG_KEY: Final = ".dockercfg"
_DOCKER_CONFIG_JSON: Final = "kubernetes.io/dockerconfigjson"
_DOCKER_CONFIG_JSON_KEY: Final = ".dockerconfigjson"
_BASIC_AUTH: Final = "kubernetes.io/basic-auth"
_SSH_AUTH: Final = "kubernetes.io/ssh-auth"
_TLS: Final = "kubernetes.io/tls"
_REDACTED: Final = "<secret contents redacted>"

_META: Final = Path("metadata")
_DATA: Final = Path("data")
# Upstream's literal (buggy) parent path for the basic-auth and ssh-auth keys.
_DATA_FMT: Final = Path("data[%s]")


def is_config_map_key(key: str) -> list[str]:
    """IsConfigMapKey: length, the key alphabet, and no ``.``/``..`` (or ``..`` prefix)."""
    errs: list[str] = []
    if len(key.encode()) > _DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(_DNS1123_SUBDOMAIN_MAX))
    if not _CONFIG_MAP_KEY_RE.fullmatch(key):
        errs.append(regex_error(_CONFIG_MAP_KEY_MSG, _CONFIG_MAP_KEY_FMT,
                                "key.name", "KEY_NAME", "key-name"))
    if key == ".":
        errs.append("must not be '.'")
    elif key == "..":
        errs.append("must not be '..'")
    elif key.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def _bool(obj: Mapping[str, Any], key: str) -> bool:
    return obj.get(key) is True


def _raw(value: object) -> bytes:
    """A stored ``[]byte`` value (canonical base64) as bytes."""
    return base64.b64decode(value) if isinstance(value, str) and value else b""


# =============================================================================================
# ConfigMap


def validate_config_map(cm: Mapping[str, Any]) -> list[FieldError]:
    """ValidateConfigMap: metadata, keys of both maps, no key in both, 1 MiB in total."""
    errs = validate_object_meta(map_of(cm, "metadata"), requires_namespace=True,
                                name_fn=name_is_dns_subdomain, path=_META)
    data, binary = map_of(cm, "data"), map_of(cm, "binaryData")
    total = 0
    for key, value in data.items():
        errs.extend(invalid(_DATA.key(key), key, m) for m in is_config_map_key(key))
        if key in binary:
            errs.append(invalid(_DATA.key(key), key, "duplicate of key present in binaryData"))
        total += len(value.encode()) if isinstance(value, str) else 0
    binary_path = Path("binaryData")
    for key, value in binary.items():
        errs.extend(invalid(binary_path.key(key), key, m) for m in is_config_map_key(key))
        total += decoded_length(value) if isinstance(value, str) else 0
    if total > MAX_SECRET_SIZE:
        # Upstream passes the path "" for "the whole object".
        errs.append(too_long(Path(""), "", MAX_SECRET_SIZE))
    return errs


def _immutable_errors(new: Mapping[str, Any], old: Mapping[str, Any],
                      fields: tuple[str, ...]) -> list[FieldError]:
    """Once ``immutable: true`` is stored, it and the data fields may not change."""
    if not _bool(old, "immutable"):
        return []
    errs: list[FieldError] = []
    if not _bool(new, "immutable"):
        errs.append(forbidden(Path("immutable"), _IMMUTABLE_SET))
    for f in fields:
        if map_of(new, f) != map_of(old, f):
            errs.append(forbidden(Path(f), _IMMUTABLE_SET))
    return errs


def validate_config_map_update(new: Mapping[str, Any], old: Mapping[str, Any],
                               ) -> list[FieldError]:
    """ValidateConfigMapUpdate: metadata rules, immutability, then ValidateConfigMap."""
    errs = validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"), _META)
    errs.extend(_immutable_errors(new, old, ("data", "binaryData")))
    errs.extend(validate_config_map(new))
    return errs


# =============================================================================================
# Secret


def set_defaults_secret(secret: Mapping[str, Any]) -> Obj:
    """Decoding a v1 Secret: ``stringData`` merged into ``data`` (and dropped), then
    SetDefaults_Secret (``type`` defaults to ``Opaque``). Returns a new dict."""
    out = copy.deepcopy(dict(secret))
    string_data = out.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = out.get("data")
        if not isinstance(data, dict):
            data = out["data"] = {}
        for key, value in string_data.items():
            text = value if isinstance(value, str) else ""
            data[key] = base64.b64encode(text.encode("utf-8", "surrogatepass")).decode("ascii")
    if not out.get("type"):
        out["type"] = SECRET_TYPE_OPAQUE
    return out


def prepare_secret_for_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> Obj:
    """secretStrategy.PrepareForUpdate: an empty ``type`` keeps the stored one."""
    out = copy.deepcopy(dict(new))
    if not out.get("type") and old.get("type"):
        out["type"] = old["type"]
    return out


def _json_error(data: Mapping[str, Any], key: str) -> list[FieldError]:
    """The secret key's content must be a JSON object (json.Unmarshal into a map)."""
    if key not in data:
        return [required(_DATA.key(key))]
    message = unmarshal_object_error(_raw(data[key]))
    return [] if message is None else [invalid(_DATA.key(key), _REDACTED, message)]


def _type_errors(secret: Mapping[str, Any], data: Mapping[str, Any]) -> list[FieldError]:
    """The keys each built-in Secret type requires."""
    secret_type = secret.get("type")
    if secret_type == _SA_TOKEN:
        annotations = map_of(map_of(secret, "metadata"), "annotations")
        if not annotations.get(_SA_NAME_KEY):
            return [required(_META.child("annotations").key(_SA_NAME_KEY))]
    elif secret_type == _DOCKERCFG:
        return _json_error(data, _DOCKERCFG_KEY)
    elif secret_type == _DOCKER_CONFIG_JSON:
        return _json_error(data, _DOCKER_CONFIG_JSON_KEY)
    elif secret_type == _BASIC_AUTH:
        if "username" not in data and "password" not in data:
            return [required(_DATA_FMT.key("username")), required(_DATA_FMT.key("password"))]
    elif secret_type == _SSH_AUTH:
        if not _raw(data.get("ssh-privatekey")):
            return [required(_DATA_FMT.key("ssh-privatekey"))]
    elif secret_type == _TLS:
        return [required(_DATA.key(k)) for k in ("tls.crt", "tls.key") if k not in data]
    return []


def validate_secret(secret: Mapping[str, Any]) -> list[FieldError]:
    """ValidateSecret: metadata, keys, 1 MiB of data in total, and the type's required keys."""
    errs = validate_object_meta(map_of(secret, "metadata"), requires_namespace=True,
                                name_fn=name_is_dns_subdomain, path=_META)
    data = map_of(secret, "data")
    total = 0
    for key, value in data.items():
        errs.extend(invalid(_DATA.key(key), key, m) for m in is_config_map_key(key))
        total += decoded_length(value) if isinstance(value, str) else 0
    if total > MAX_SECRET_SIZE:
        errs.append(too_long(_DATA, "", MAX_SECRET_SIZE))
    errs.extend(_type_errors(secret, data))
    return errs


def secret_warnings(secret: Mapping[str, Any]) -> list[str]:
    """warningsForSecret: a ``kubernetes.io/tls`` Secret whose ``tls.crt`` and ``tls.key``
    are not a key pair is stored, with Go's ``tls.X509KeyPair`` error as a warning."""
    if secret.get("type") != _TLS:
        return []
    data = map_of(secret, "data")
    problem = key_pair_error(_raw(data.get("tls.crt")), _raw(data.get("tls.key")))
    return [] if problem is None else [problem]


def validate_secret_update(new: Mapping[str, Any], old: Mapping[str, Any],
                           ) -> list[FieldError]:
    """ValidateSecretUpdate: metadata rules, ``type`` immutable, immutability of ``data``,
    then ValidateSecret."""
    errs = validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"), _META)
    new_type, old_type = new.get("type") or "", old.get("type") or ""
    if new_type != old_type:
        errs.append(invalid(Path("type"), new_type, FIELD_IMMUTABLE_ERROR_MSG))
    errs.extend(_immutable_errors(new, old, ("data",)))
    errs.extend(validate_secret(new))
    return errs
