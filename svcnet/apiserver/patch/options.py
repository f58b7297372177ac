"""Patch media types, request options, and the dispatch to the three patch formats."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any, Final

from svcnet.api.errors import (
    FieldError,
    Path,
    StatusError,
    forbidden,
    invalid,
    invalid_error,
    not_supported,
    required,
    too_long,
)
from svcnet.apiserver.patch.gofmt import go_fmt

JSON = Any
Obj = dict[str, Any]




class PatchType(StrEnum):
    """The four PATCH media types; compare with the short names (``== "apply"``)."""

    JSON = "json"
    MERGE = "merge"
    STRATEGIC = "strategic"
    APPLY = "apply"

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self]


_CONTENT_TYPES: Final = {
    PatchType.JSON: "application/json-patch+json",
    PatchType.MERGE: "application/merge-patch+json",
    PatchType.STRATEGIC: "application/strategic-merge-patch+json",
    PatchType.APPLY: "application/apply-patch+yaml",
}
_BY_CONTENT_TYPE: Final = {v: k for k, v in _CONTENT_TYPES.items()}


def apply_patch_type(content_type: str | None, *, strategic: bool = True) -> PatchType:
    """Map a PATCH ``Content-Type`` to its patch type, or raise 415 UnsupportedMediaType.

    Like ``PatchResource``, parameters after the first ``;`` are dropped and the rest is
    compared exactly; the message lists the types in the order the route declares them.
    ``strategic=False``: a kind without strategic merge metadata (custom resources), whose
    route does not list that type.
    """
    ct = content_type or ""
    if (idx := ct.find(";")) > 0:
        ct = ct[:idx]
    pt = _BY_CONTENT_TYPE.get(ct)
    if pt is None or (pt == PatchType.STRATEGIC and not strategic):
        accepted = ", ".join(_CONTENT_TYPES[t] for t in PatchType
                             if strategic or t != PatchType.STRATEGIC)
        raise StatusError(415, "UnsupportedMediaType",
                          "the body of the request was in an unknown format - accepted media "
                          f"types include: {accepted}")
    return pt


#: The name the HTTP layer uses.
patch_type_of = apply_patch_type

MAX_JSON_PATCH_OPERATIONS: Final = 10000
MAX_JSON_PATCH_COPY_BYTES: Final = 3 * 1024 * 1024
"""kube-apiserver's ``JSONPatchMaxCopyBytes`` (3 MiB), armed as evanphx's
``AccumulatedCopySizeLimit``: how much a JSON patch's ``copy`` operations may add in all."""
FIELD_MANAGER_MAX_LENGTH: Final = 128


def validate_patch_options(patch_type: PatchType | str, field_manager: str, *,
                           force: bool | None = None, dry_run: Iterable[str] = (),
                           field_validation: str = "") -> None:
    """``ValidatePatchOptions``: 422 ``PatchOptions.meta.k8s.io "" is invalid: ...``.

    ``force`` is ``None`` when the query parameter is absent (it may only be given for apply).
    """
    errs: list[FieldError] = []
    if patch_type != PatchType.APPLY:
        if force is not None:
            errs.append(forbidden("force", "may not be specified for non-apply patch"))
    elif field_manager == "":
        errs.append(required("fieldManager", "is required for apply patch"))
    if len(field_manager.encode()) > FIELD_MANAGER_MAX_LENGTH:
        errs.append(too_long("fieldManager", field_manager, FIELD_MANAGER_MAX_LENGTH))
    pos = 0
    for ch in field_manager:
        if not ch.isprintable():
            errs.append(invalid("fieldManager", field_manager,
                                f"invalid character U+{ord(ch):04X} (at position {pos})"))
        pos += len(ch.encode())
    dry = list(dry_run)
    if any(d != "All" for d in dry):
        errs.append(not_supported("dryRun", dry, ["All"]))
    if field_validation not in ("", "Ignore", "Warn", "Strict"):
        errs.append(not_supported("fieldValidation", field_validation,
                                  ["", "Ignore", "Strict", "Warn"]))
    if errs:
        raise invalid_error("PatchOptions", "", errs, group="meta.k8s.io")


GENERIC_422: Final = "the server rejected our request due to an error in our request"
"""The message of ``NewGenericServerResponse``'s 422, which drops the patch error's own."""


def strict_patch_error(patch: JSON, detail: str) -> StatusError:
    """fieldValidation=Strict refusing the result of a strategic merge patch.

    Upstream's ``applyPatchToObject`` (endpoints/handlers/patch.go) answers 422 Invalid on the
    field ``patch``, whose value is the patch as Go's ``%+v`` prints a map, with no kind or name:
    kubectl shows ``The request is invalid: patch: Invalid value: "map[...]": strict decoding
    error: unknown field "spec.foo"``.
    """
    return invalid_error("", "", [invalid(Path("patch"), go_fmt(patch), detail)])
