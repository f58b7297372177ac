"""ServiceAccounts: preparation and validation, as Kubernetes does them.

Theory of operation. Mirrors:

* ``pkg/registry/core/serviceaccount/strategy.go`` — ``cleanSecretReferences`` on create and
  update: each ``secrets[]`` reference keeps only its ``name``;
* ``pkg/apis/core/validation/validation.go`` (1.33) — ``ValidateServiceAccount`` (ObjectMeta,
  the name a DNS subdomain) and ``ValidateServiceAccountUpdate``.

Nothing is defaulted (``automountServiceAccountToken`` stays unset unless given).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from svcnet.api.access import map_of
from svcnet.api.errors import FieldError, Path
from svcnet.api.meta import validate_object_meta, validate_object_meta_update
from svcnet.api.names import name_is_dns_subdomain

__all__ = [
    "prepare_service_account",
    "validate_service_account",
    "validate_service_account_update",
]

_META: Final = Path("metadata")


def prepare_service_account(sa: Mapping[str, Any]) -> dict[str, Any]:
    """cleanSecretReferences (PrepareForCreate and PrepareForUpdate): names only."""
    out = copy.deepcopy(dict(sa))
    secrets = out.get("secrets")
    if isinstance(secrets, list):
        out["secrets"] = [{"name": s["name"]} if isinstance(s, dict) and s.get("name") else {}
                          for s in secrets]
    return out


def validate_service_account(sa: Mapping[str, Any]) -> list[FieldError]:
    """ValidateServiceAccount: ObjectMeta only, the name a DNS subdomain."""
    return validate_object_meta(map_of(sa, "metadata"), requires_namespace=True,
                                name_fn=name_is_dns_subdomain, path=_META)


def validate_service_account_update(new: Mapping[str, Any], old: Mapping[str, Any],
                                   ) -> list[FieldError]:
    """ValidateServiceAccountUpdate: metadata update rules, then ValidateServiceAccount."""
    errs = validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"), _META)
    errs.extend(validate_service_account(new))
    return errs
