"""``svcnet describe`` for ConfigMaps, Secrets and ServiceAccounts: kubectl's describers.

Theory of operation: ``ConfigMapDescriber``, ``SecretDescriber`` and
``ServiceAccountDescriber`` of ``k8s.io/kubectl/pkg/describe/describe.go`` (1.33), line for
line, on the :class:`~svcnet.cli.describe._Describer` writer. A Secret's values are never
printed, only their sizes (a service-account token's ``token`` excepted, as upstream). Keys are
listed sorted (Go ranges over the maps in random order). The ServiceAccount describer is given
the Secrets of its namespace to find its tokens and mark references to missing Secrets.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from svcnet.api.access import as_dict as _dict, as_list as _list, as_text as _str
from svcnet.cli.describe import _Describer

__all__ = ["describe_config_map", "describe_secret", "describe_service_account"]

Obj = dict[str, Any]

_SA_TOKEN: Final = "kubernetes.io/service-account-token"
_SA_NAME: Final = "kubernetes.io/service-account.name"
_SA_UID: Final = "kubernetes.io/service-account.uid"


def _bytes(value: object) -> bytes:
    try:
        return base64.b64decode(_str(value))
    except (binascii.Error, ValueError):
        return b""


def _header(w: _Describer, obj: Obj) -> None:
    meta = _dict(obj.get("metadata"))
    w.write(0, f"Name:\t{_str(meta.get('name'))}\n")
    w.write(0, f"Namespace:\t{_str(meta.get('namespace'))}\n")
    w.labels("Labels", _dict(meta.get("labels")))
    w.annotations("Annotations", _dict(meta.get("annotations")))


def describe_config_map(cm: Obj, events: Sequence[Obj] | None, now: datetime) -> str:
    """``kubectl describe configmap``: each value in full, binary values by size."""
    w = _Describer()
    _header(w, cm)
    w.write(0, "\nData\n====\n")
    data = _dict(cm.get("data"))
    for key in sorted(data):
        w.write(0, f"{key}:\n----\n{_str(data[key])}\n\n")
    w.write(0, "\nBinaryData\n====\n")
    binary = _dict(cm.get("binaryData"))
    for key in sorted(binary):
        w.write(0, f"{key}: {len(_bytes(binary[key]))} bytes\n")
    w.write(0, "\n")
    w.events(events, now)
    return w.text()


def describe_secret(secret: Obj) -> str:
    """``kubectl describe secret``: the type and each key's size (no values, no events)."""
    w = _Describer()
    _header(w, secret)
    secret_type = _str(secret.get("type"))
    w.write(0, f"\nType:\t{secret_type}\n")
    w.write(0, "\nData\n====\n")
    data = _dict(secret.get("data"))
    for key in sorted(data):
        raw = _bytes(data[key])
        if key == "token" and secret_type == _SA_TOKEN:
            w.write(0, f"{key}:\t{raw.decode('utf-8', 'replace')}\n")
        else:
            w.write(0, f"{key}:\t{len(raw)} bytes\n")
    return w.text()


def describe_service_account(sa: Obj, secrets: Sequence[Obj] | None,
                             events: Sequence[Obj] | None, now: datetime) -> str:
    """``kubectl describe serviceaccount``: pull secrets, mountable secrets, tokens.

    ``secrets`` are the namespace's Secrets (None when they could not be listed: then no
    token is found and no reference is marked missing, as upstream tolerates the error).
    """
    w = _Describer()
    _header(w, sa)
    meta = _dict(sa.get("metadata"))
    name, uid = _str(meta.get("name")), _str(meta.get("uid"))
    tokens: list[str] = []
    existing: set[str] = set()
    for s in secrets or ():
        annotations = _dict(_dict(s.get("metadata")).get("annotations"))
        if (_str(s.get("type")) == _SA_TOKEN and _str(annotations.get(_SA_NAME)) == name
                and _str(annotations.get(_SA_UID)) == uid):
            tokens.append(_str(_dict(s.get("metadata")).get("name")))
        existing.add(_str(_dict(s.get("metadata")).get("name")))
    pull = [_str(_dict(r).get("name")) for r in _list(sa.get("imagePullSecrets"))]
    mount = [_str(_dict(r).get("name")) for r in _list(sa.get("secrets"))]
    missing = set() if secrets is None else {n for n in pull + mount if n not in existing}
    for header, names in (("Image pull secrets:", pull), ("Mountable secrets: ", mount),
                          ("Tokens:            ", tokens)):
        if not names:
            w.write(0, f"{header}\t<none>\n")
            continue
        prefix = header
        for n in names:
            w.write(0, f"{prefix}\t{n}{' (not found)' if n in missing else ''}\n")
            prefix = " " * len(header)
    w.events(events, now)
    return w.text()
