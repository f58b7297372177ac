"""Field errors and API status errors, shaped exactly as Kubernetes reports them.

Validation never raises: it returns a list of :class:`FieldError`, each naming the field path
(``spec.ports[0].port``), the error type, the offending value and a detail. The API server turns
such a list into a 422 ``Status`` whose ``details.causes`` carry one entry per error, and whose
message is what ``kubectl`` prints after ``The Service "x" is invalid:``.

Error tree (everything the API layer raises is a :class:`StatusError`)::

    StatusError                 a Kubernetes Status: code, reason, message, details
    ├── invalid(kind, name, errs)   422 Invalid, causes from FieldErrors
    ├── bad_request(msg)            400 BadRequest
    ├── not_found(res, name)        404 NotFound
    ├── already_exists(res, name)   409 AlreadyExists
    ├── conflict(res, name, msg)    409 Conflict
    ├── store_unavailable(msg)      503 ServiceUnavailable / 504 Timeout (store outage)
    └── internal(msg)               500 InternalError (never for bad input)

Values in messages are rendered the way Go's ``%#v``/``%q`` print them, because clients and
humans compare these strings with what a real cluster says.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final


class ErrorType(StrEnum):
    """The wire names of field.ErrorType (``causes[].reason``)."""

    NOT_FOUND = "FieldValueNotFound"
    REQUIRED = "FieldValueRequired"
    DUPLICATE = "FieldValueDuplicate"
    INVALID = "FieldValueInvalid"
    NOT_SUPPORTED = "FieldValueNotSupported"
    FORBIDDEN = "FieldValueForbidden"
    TOO_LONG = "FieldValueTooLong"
    TOO_MANY = "FieldValueTooMany"
    INTERNAL = "InternalError"
    TYPE_INVALID = "FieldValueTypeInvalid"


_PREFIX: Final = {
    ErrorType.NOT_FOUND: "Not found",
    ErrorType.REQUIRED: "Required value",
    ErrorType.DUPLICATE: "Duplicate value",
    ErrorType.INVALID: "Invalid value",
    ErrorType.NOT_SUPPORTED: "Unsupported value",
    ErrorType.FORBIDDEN: "Forbidden",
    ErrorType.TOO_LONG: "Too long",
    ErrorType.TOO_MANY: "Too many",
    ErrorType.INTERNAL: "Internal error",
    ErrorType.TYPE_INVALID: "Invalid value",
}


class _Omit:
    """Marker for 'no bad value to print' (Go's field.OmitValueType)."""

    def __repr__(self) -> str:
        return "OMIT"


OMIT: Final = _Omit()


def go_quote(s: str) -> str:
    """Go's %q for a string: JSON escaping matches it for everything we print."""
    return json.dumps(s, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class GoRaw:
    """A bad value already rendered the way Go prints it, emitted verbatim.

    For values whose Go rendering depends on the Go type rather than the JSON shape, e.g. a nil
    slice (``[]string(nil)``), a typed list (``[]core.IPFamily{"IPv4"}``) or a struct key
    (``core.ServicePort{...}``).
    """

    text: str

    def __str__(self) -> str:
        return self.text


def go_value(value: object) -> str:
    """Render a bad value as Kubernetes' field.Error does (``%#v`` for composites)."""
    if isinstance(value, GoRaw):
        return value.text
    if value is None:
        # field.Error.ErrorBody replaces a nil (or nil pointer) value by the *string* "null",
        # which it then prints with %q: `Invalid value: "null": ...`.
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(go_quote(v) for v in value) + "}"
    if isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return "map[string]string{" + ", ".join(
            f"{go_quote(k)}:{go_quote(v)}" for k, v in sorted(value.items())
        ) + "}"
    return json.dumps(value, sort_keys=True, default=str)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One validation failure at one field path."""

    type: ErrorType
    field: str
    value: object = OMIT
    detail: str = ""

    def body(self) -> str:
        """The message without the field path: what ``causes[].message`` carries."""
        prefix = _PREFIX[self.type]
        if self.type in (ErrorType.REQUIRED, ErrorType.FORBIDDEN, ErrorType.TOO_LONG,
                         ErrorType.INTERNAL):
            return f"{prefix}: {self.detail}" if self.detail else prefix
        text = prefix if isinstance(self.value, _Omit) else f"{prefix}: {go_value(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"


class Path:
    """An immutable field path builder: ``Path("spec").child("ports").index(0)``."""

    __slots__ = ("_text",)

    def __init__(self, *names: str) -> None:
        self._text = ".".join(names)

    @classmethod
    def _raw(cls, text: str) -> Path:
        p = cls()
        p._text = text
        return p

    def child(self, name: str, *more: str) -> Path:
        text = f"{self._text}.{name}" if self._text else name
        for m in more:
            text = f"{text}.{m}"
        return Path._raw(text)

    def index(self, i: int) -> Path:
        return Path._raw(f"{self._text}[{i}]")

    def key(self, k: str) -> Path:
        return Path._raw(f"{self._text}[{k}]")

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Path({self._text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Path) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)


PathLike = Path | str


def required(path: PathLike, detail: str = "") -> FieldError:
    return FieldError(ErrorType.REQUIRED, str(path), OMIT, detail)


def invalid(path: PathLike, value: object, detail: str = "") -> FieldError:
    return FieldError(ErrorType.INVALID, str(path), value, detail)


def duplicate(path: PathLike, value: object) -> FieldError:
    return FieldError(ErrorType.DUPLICATE, str(path), value)


def not_supported(path: PathLike, value: object, supported: Iterable[str]) -> FieldError:
    choices = ", ".join(go_quote(s) for s in supported)
    detail = f"supported values: {choices}" if choices else ""
    return FieldError(ErrorType.NOT_SUPPORTED, str(path), value, detail)


def forbidden(path: PathLike, detail: str) -> FieldError:
    return FieldError(ErrorType.FORBIDDEN, str(path), OMIT, detail)


def too_long(path: PathLike, value: object, max_length: int) -> FieldError:
    detail = f"may not be more than {max_length} bytes" if max_length >= 0 else "value is too long"
    return FieldError(ErrorType.TOO_LONG, str(path), value, detail)


def too_many(path: PathLike, actual: int, max_items: int) -> FieldError:
    return FieldError(ErrorType.TOO_MANY, str(path), actual,
                      f"must have at most {max_items} items")


def internal(path: PathLike, detail: str) -> FieldError:
    return FieldError(ErrorType.INTERNAL, str(path), OMIT, detail)


def aggregate_message(errors: Sequence[FieldError]) -> str:
    """utilerrors.NewAggregate(...).Error(): one error bare, several in brackets, de-duplicated
    (first occurrence kept, in order; a dict, so thousands of errors take linear time)."""
    seen = dict.fromkeys(str(e) for e in errors)
    if len(seen) == 1:
        return next(iter(seen))
    return "[" + ", ".join(seen) + "]"


@dataclass
class StatusError(Exception):
    """A failure the API answers with a Kubernetes ``Status`` object."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    def to_status(self) -> dict[str, Any]:
        """The ``metav1.Status``, its fields in the Go struct's order (what clients that compare
        bodies see from Kubernetes): kind, apiVersion, metadata, status, message, reason,
        details (name, group, kind, uid, causes, retryAfterSeconds), code."""
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:
            status["reason"] = self.reason
        if self.details:
            status["details"] = _ordered(self.details, _DETAIL_FIELDS)
            if "causes" in status["details"]:
                status["details"]["causes"] = [
                    _ordered(c, _CAUSE_FIELDS) if isinstance(c, dict) else c
                    for c in status["details"]["causes"]]
        status["code"] = self.code
        return status


_DETAIL_FIELDS: Final = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")
_CAUSE_FIELDS: Final = ("reason", "message", "field")


def _ordered(d: dict[str, Any], order: Sequence[str]) -> dict[str, Any]:
    """``d`` with the keys of ``order`` first, in that order (then any others as they were)."""
    out = {k: d[k] for k in order if k in d}
    out.update((k, v) for k, v in d.items() if k not in out)
    return out


MAX_REPORTED_ERRORS: Final = 1000
"""The most validation errors one 422 reports (svcnet's bound; see :func:`invalid_error`)."""


def invalid_error(kind: str, name: str, errors: Sequence[FieldError],
                  group: str = "") -> StatusError:
    """422 Invalid, as apierrors.NewInvalid builds it: one cause per error, the message the
    errors' aggregate.

    Up to :data:`MAX_REPORTED_ERRORS` errors, that is all. Kubernetes reports every error,
    however many: a 3 MiB body of nameless Service ports yields about a million, which would
    make a 200 MB answer (and Go's aggregate builds its message by repeated concatenation,
    quadratic in the errors). Here the first errors are reported and the message says how many
    more there were: ``... is invalid: [<the first 1000>] (and 798999 more errors)``.
    """
    shown = errors[:MAX_REPORTED_ERRORS]
    causes = [{"reason": e.type.value, "message": e.body(), "field": e.field} for e in shown]
    # StatusDetails' name, group and kind are omitempty: a patch's 422 names no object.
    details: dict[str, Any] = {k: v for k, v in (("name", name), ("group", group),
                                                 ("kind", kind)) if v}
    details["causes"] = causes
    qualified = f"{kind}.{group}" if group else kind
    message = f"{qualified} {go_quote(name)} is invalid: {aggregate_message(shown)}"
    if len(errors) > len(shown):
        message += f" (and {len(errors) - len(shown)} more errors)"
    return StatusError(422, "Invalid", message, details)


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def not_found(resource: str, name: str, group: str = "") -> StatusError:
    qualified = f"{resource}.{group}" if group else resource
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return StatusError(404, "NotFound", f"{qualified} {go_quote(name)} not found", details)


def already_exists(resource: str, name: str, group: str = "") -> StatusError:
    qualified = f"{resource}.{group}" if group else resource
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return StatusError(409, "AlreadyExists", f"{qualified} {go_quote(name)} already exists",
                       details)


def conflict(resource: str, name: str, reason: str, group: str = "") -> StatusError:
    qualified = f"{resource}.{group}" if group else resource
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return StatusError(
        409, "Conflict",
        f"Operation cannot be fulfilled on {qualified} {go_quote(name)}: {reason}", details)


def forbidden_error(resource: str, name: str, reason: str, group: str = "") -> StatusError:
    """apierrors.NewForbidden: ``<resource> "<name>" is forbidden: <reason>``, 403."""
    qualified = f"{resource}.{group}" if group else resource
    details: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        details["group"] = group
    return StatusError(403, "Forbidden", f"{qualified} {go_quote(name)} is forbidden: {reason}",
                       details)


NAMESPACE_TERMINATING_CAUSE = "NamespaceTerminating"
"""``v1.NamespaceTerminatingCause``: the cause type (``reason`` in JSON) of the 403 below."""


def namespace_terminating_error(resource: str, name: str, namespace: str,
                                group: str = "") -> StatusError:
    """The NamespaceLifecycle admission plugin's answer to a create in a namespace being
    deleted (``plugin/pkg/admission/namespace/lifecycle/admission.go``): an
    ``admission.NewForbidden`` carrying a ``NamespaceTerminating`` cause."""
    qualified = f"{resource}.{group}" if group else resource
    target = f"{qualified} {go_quote(name)}" if name else qualified
    details: dict[str, Any] = {"kind": resource}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["causes"] = [{"reason": NAMESPACE_TERMINATING_CAUSE,
                          "message": f"namespace {namespace} is being terminated",
                          "field": "metadata.namespace"}]
    return StatusError(403, "Forbidden",
                       f"{target} is forbidden: unable to create new content in namespace "
                       f"{namespace} because it is being terminated", details)


def is_namespace_terminating(e: StatusError) -> bool:
    """Whether ``e`` is :func:`namespace_terminating_error`'s answer (controllers stop writing
    into such a namespace instead of retrying)."""
    causes = (e.details or {}).get("causes") or []
    return e.code == 403 and any(
        isinstance(c, dict) and c.get("reason") == NAMESPACE_TERMINATING_CAUSE for c in causes)


def internal_error(message: str) -> StatusError:
    return StatusError(500, "InternalError", f"Internal error occurred: {message}",
                       {"causes": [{"message": message}]})


RETRY_AFTER_SECONDS: Final = 1
"""What a 503/504 for a store outage asks clients to wait (``Retry-After``)."""


def store_too_large(message: str) -> StatusError:
    """413 RequestEntityTooLarge (apierrors.NewRequestEntityTooLargeError) when the store
    refused a write as too large for it (etcd's --max-request-bytes): the client's object is
    what is too large, and nothing was written."""
    return StatusError(413, "RequestEntityTooLarge", f"Request entity too large: {message}")


def store_unavailable(message: str, *, timeout: bool = False) -> StatusError:
    """503 ServiceUnavailable (apierrors.NewServiceUnavailable) when the store refused the
    request, or 504 Timeout (apierrors.NewTimeoutError: a write may have been applied) when it
    ran out of time; both carry ``details.retryAfterSeconds``, which the server also sends as
    the ``Retry-After`` header, as kube-apiserver's responsewriters do."""
    details = {"retryAfterSeconds": RETRY_AFTER_SECONDS}
    if timeout:
        return StatusError(504, "Timeout", f"Timeout: {message}", details)
    return StatusError(503, "ServiceUnavailable", message, details)
