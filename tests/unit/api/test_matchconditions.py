"""Admission webhooks' matchConditions (svcnet/api/matchconditions.py): compilation and the
matcher's verdicts (matcher.go), true/false/error against each failurePolicy."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.api.matchconditions import MatchResult, compile_conditions, match, validate_expression

REQUEST: dict[str, Any] = {"uid": "", "operation": "CREATE", "namespace": "web", "name": "p",
                           "userInfo": {"username": "alice", "groups": ["dev"]},
                           "dryRun": False, "options": None}
POD: dict[str, Any] = {"metadata": {"name": "p", "labels": {"app": "web"}}, "spec": {}}
ERROR = "object.spec.nosuch == 1"
ERROR_TEXT = f"expression '{ERROR}' resulted in error: no such key: nosuch"


def verdict(*expressions: str, policy: str = "Fail", obj: Any = POD, old: Any = None,
            request: dict[str, Any] | None = None) -> MatchResult:
    conditions = compile_conditions({"name": f"c{i}", "expression": e}
                                    for i, e in enumerate(expressions))
    return match(conditions, obj=obj, old=old, request=request or REQUEST,
                 failure_policy=policy)


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
def test_all_true_calls(policy: str) -> None:
    assert verdict("object.metadata.labels.app == 'web'", "oldObject == null",
                   "request.userInfo.username != 'system:kube-scheduler'",
                   "'dev' in request.userInfo.groups", "!request.dryRun",
                   policy=policy) == MatchResult(True)


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
def test_a_false_condition_skips_whatever_the_errors(policy: str) -> None:
    assert verdict("true", ERROR, "request.operation == 'DELETE'", policy=policy) == \
        MatchResult(False, failed_condition="c2")


def test_an_error_under_fail_refuses() -> None:
    assert verdict("true", ERROR) == MatchResult(False, error=ERROR_TEXT)


def test_several_errors_are_aggregated() -> None:
    result = verdict(ERROR, "object.metadata.labels.x == 'y'")
    assert result.error == (f"[{ERROR_TEXT}, expression 'object.metadata.labels.x == 'y'' "
                            "resulted in error: no such key: x]")


def test_an_error_under_ignore_skips() -> None:
    assert verdict("true", ERROR, policy="Ignore") == MatchResult(False)


def test_a_delete_has_no_object() -> None:
    assert verdict("object == null && oldObject.metadata.name == 'p'", obj=None,
                   old=POD) == MatchResult(True)


def test_authorizer_conditions_count_as_true_and_others_still_decide() -> None:
    # svcnet cannot run authorizer checks inside an evaluation: such a condition is not a
    # refusal of every matched write, it lets the webhook be called (module docstring).
    check = "authorizer.requestResource.check('get').allowed()"
    assert verdict(check) == MatchResult(True)
    assert verdict(check, "request.operation == 'DELETE'") == \
        MatchResult(False, failed_condition="c1")


def test_the_same_error_twice_is_printed_once() -> None:
    assert verdict(ERROR, ERROR).error == ERROR_TEXT


def test_a_stored_expression_that_no_longer_compiles_is_an_error() -> None:
    result = verdict("object.x")
    assert result.error == "compilation error: must evaluate to bool"
    assert verdict("object.x", policy="Ignore") == MatchResult(False)


def test_compiled_once_per_expression() -> None:
    (a,) = compile_conditions([{"name": "a", "expression": " request.dryRun "}])
    (b,) = compile_conditions([{"name": "b", "expression": "request.dryRun"}])
    assert a.program is b.program and a.expression == "request.dryRun"
    # A long one (a compiled large literal takes megabytes) is not kept.
    long = "request.name in [" + ", ".join(f"'n{i}'" for i in range(600)) + "]"
    (c,) = compile_conditions([{"name": "c", "expression": long}])
    (d,) = compile_conditions([{"name": "d", "expression": long}])
    assert c.program is not None and c.program is not d.program


def test_validate_expression() -> None:
    assert validate_expression("request.dryRun || object.spec.x > 2", "p") == []
    (e,) = validate_expression("request.name", "p")
    assert (e.field, e.value, e.detail) == ("p", "request.name", "must evaluate to bool")
