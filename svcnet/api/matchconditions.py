"""Admission webhooks' ``matchConditions`` (CEL): compiled at configuration write, evaluated
before a webhook is called.

Theory of operation
-------------------
Follows k8s.io/apiserver ``pkg/admission/plugin/cel`` (``compile.go``: the environment and
the checks of a compiled expression; ``filter.go``: evaluation and its error text),
``pkg/admission/plugin/webhook/matchconditions/matcher.go`` (what a set of results means) and
``pkg/apis/admissionregistration/validation/validation.go`` (``validateMatchCondition``). The
CEL runtime and Kubernetes' libraries are :mod:`svcnet.api.cellib`.

* The environment declares ``object`` and ``oldObject`` (``dyn``), ``request`` (a map of
  ``dyn``: upstream types it as an AdmissionRequest, so a misspelt field of ``request`` is a
  compile error there and an evaluation error here; its one bool field, ``request.dryRun``,
  is declared as a ``bool`` variable of that qualified name so that it may be a condition by
  itself), ``namespaceObject`` (``dyn``, always
  null for webhooks), ``authorizer`` and ``authorizer.requestResource`` with the authorizer
  library (declared so that expressions compile; svcnet's authorizer is asynchronous and
  cannot be called from inside an evaluation, so a condition that names ``authorizer`` is
  not evaluated and counts as true: the webhook is called unless another condition is false,
  which is what happened before conditions were evaluated, rather than refusing every
  matched write under ``failurePolicy: Fail``).
* :func:`validate_expression` is the write-time check: a compile error is ``Invalid value:
  "<expression>": compilation failed: ERROR: <input>:1:3: ...``, a result type other than
  ``bool`` (``dyn`` included, as upstream compares the output type with ``bool`` exactly) is
  ``must evaluate to bool``.
* :func:`compile_conditions` turns a webhook's conditions into :class:`MatchCondition` values;
  programs of expressions up to 4 KiB are cached by text (256 of them), so a configuration's
  conditions compile once however often configurations are re-read; the write-time check
  compiles without the cache, so refused and dry-run configurations leave nothing behind.
  A stored expression that no longer compiles evaluates to
  the error ``compilation error: ...``, as upstream's filter reports it.
* :func:`match` is the matcher: any condition false, the webhook is skipped (errors or not);
  otherwise any error follows the webhook's ``failurePolicy``: ``Fail`` returns the error (the
  dispatcher refuses the request with upstream's 403), ``Ignore`` skips the webhook; all true
  calls it. An evaluation error reads ``expression '<expression>' resulted in error: <error>``;
  several are joined as Go's aggregate error prints them (``[e1, e2]``, each message once).

Bound: the runtime stops an expression after 10,000 comprehension iterations (upstream's cost
budget is in cost units); that is an evaluation error.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from svcnet.api.cellib import (
    AUTHORIZER_TYPE,
    BudgetExceeded,
    cel,
    compile_issues,
    environment,
    evaluate,
)
from svcnet.api.errors import FieldError, PathLike, invalid

__all__ = ["MatchCondition", "MatchResult", "compile_conditions", "match",
           "validate_expression"]

_COST_EXCEEDED: Final = "operation cancelled: actual cost limit exceeded"
_DRY_RUN: Final = "request.dryRun"  # request's one bool field, typed (module docstring)


class CompileError(ValueError):
    """An expression that does not compile for match conditions (its text is upstream's
    detail: ``compilation failed: ...`` or ``must evaluate to bool``)."""


@functools.cache
def _environment() -> Any:
    return environment({"object": cel.Type.DYN, "oldObject": cel.Type.DYN,
                        "request": cel.Type.Map(cel.Type.STRING, cel.Type.DYN),
                        _DRY_RUN: cel.Type.BOOL,
                        "namespaceObject": cel.Type.DYN,
                        "authorizer": AUTHORIZER_TYPE,
                        "authorizer.requestResource": AUTHORIZER_TYPE}, authorizer=True)


_CACHED_UP_TO: Final = 4096
"""Expressions up to this long are compiled once and cached (:func:`_cached`); a longer one (a
compiled program of a large literal takes megabytes) is compiled each time it is needed."""


@functools.lru_cache(maxsize=256)
def _cached(expression: str) -> Any:
    return _compile(expression)


def _compile(expression: str) -> Any:
    """The program of ``expression``; raises :class:`CompileError` (CompileCELExpression)."""
    try:
        program = _environment().compile(expression)
    except RuntimeError as e:
        raise CompileError(f"compilation failed: {compile_issues(e)}") from e
    if program.return_type() != cel.Type.BOOL:
        raise CompileError("must evaluate to bool")
    return program


def validate_expression(expression: str, path: PathLike) -> list[FieldError]:
    """validateMatchConditionsExpression: ``expression`` (already trimmed) compiles to a
    bool, or the field error at ``path``."""
    try:
        _compile(expression)
    except CompileError as e:
        return [invalid(path, expression, str(e))]
    return []


@dataclass(frozen=True, slots=True)
class MatchCondition:
    """One compiled condition (``program`` None: ``error`` says why it did not compile)."""

    name: str
    expression: str
    program: Any = None
    error: str = ""
    #: It calls the authorizer library, which svcnet cannot evaluate: taken as true, so the
    #: webhook is called (as before conditions were evaluated) unless another one is false.
    uses_authorizer: bool = False


def compile_conditions(raw: Iterable[Any]) -> tuple[MatchCondition, ...]:
    """A webhook's ``matchConditions`` (as stored), compiled."""
    out = []
    for item in raw:
        condition: Mapping[str, Any] = item if isinstance(item, Mapping) else {}
        name = str(condition.get("name") or "")
        expression = str(condition.get("expression") or "").strip()
        try:
            compiled = _cached if len(expression) <= _CACHED_UP_TO else _compile
            out.append(MatchCondition(name, expression, compiled(expression),
                                      uses_authorizer="authorizer" in expression))
        except CompileError as e:
            out.append(MatchCondition(name, expression, error=f"compilation error: {e}"))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class MatchResult:
    """Whether to call the webhook; ``error`` set: refuse the request with it."""

    matches: bool
    error: str = ""
    failed_condition: str = ""


def _one(condition: MatchCondition, data: dict[str, Any]) -> tuple[bool | None, str]:
    """A condition's value (None: an error, whose text is second)."""
    if condition.program is None:
        return None, condition.error
    if condition.uses_authorizer:
        return True, ""
    try:
        result, error = evaluate(condition.program, data)
    except BudgetExceeded:
        result, error = None, _COST_EXCEEDED
    if error is None and not isinstance(result, bool):
        error = "no such overload"
    if error is not None:
        return None, f"expression '{condition.expression}' resulted in error: {error}"
    return bool(result), ""


def match(conditions: Sequence[MatchCondition], *, obj: Any, old: Any,
          request: Mapping[str, Any], failure_policy: str) -> MatchResult:
    """The matcher's verdict for one request (module docstring); ``obj`` and ``old`` are the
    objects at the version the webhook is called at (None when absent)."""
    data = {"object": obj, "oldObject": old, "request": dict(request),
            _DRY_RUN: bool(request.get("dryRun")), "namespaceObject": None,
            "authorizer": {}, "authorizer.requestResource": {}}
    errors: list[str] = []
    for condition in conditions:
        value, error = _one(condition, data)
        if error:
            errors.append(error)
        elif value is False:
            return MatchResult(False, failed_condition=condition.name)
    if errors:
        errors = list(dict.fromkeys(errors))  # Go's aggregate prints each message once
        if failure_policy == "Ignore":
            return MatchResult(False)
        return MatchResult(False, error=errors[0] if len(errors) == 1
                           else "[" + ", ".join(errors) + "]")
    return MatchResult(True)
