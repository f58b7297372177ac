"""The 422 Invalid Status a validation error list becomes (apierrors.NewInvalid), at any size.

Its message is ``errs.ToAggregate()``'s: every distinct error once, in order of first
occurrence, bracketed when there are several; its causes keep every error, up to svcnet's
bound of MAX_REPORTED_ERRORS (Kubernetes has none): a 3 MiB body of nameless ports yields about
a million errors, and the answer must stay small and quick to build.
"""

from __future__ import annotations

import time

from svcnet.api.errors import MAX_REPORTED_ERRORS, aggregate_message, invalid_error, required


def test_aggregate_keeps_the_first_occurrence_of_each_distinct_error_in_order() -> None:
    a, b = required("spec.a"), required("spec.b")
    assert aggregate_message([a]) == "spec.a: Required value"
    assert aggregate_message([a, a]) == "spec.a: Required value"
    assert aggregate_message([b, a, b, a]) == "[spec.b: Required value, spec.a: Required value]"


def test_up_to_the_bound_every_error_is_reported() -> None:
    errs = [required(f"spec.ports[{i}].name") for i in range(MAX_REPORTED_ERRORS)] + [
        required("spec.ports[0].name")]
    err = invalid_error("Service", "s", errs)
    assert err.code == 422 and len(err.details["causes"]) == MAX_REPORTED_ERRORS
    assert err.details["causes"][0] == {"reason": "FieldValueRequired",
                                        "message": "Required value",
                                        "field": "spec.ports[0].name"}
    assert err.message.startswith('Service "s" is invalid: [spec.ports[0].name: Required value, '
                                  "spec.ports[1].name: Required value, ")
    assert err.message.endswith(f"spec.ports[{MAX_REPORTED_ERRORS - 1}].name: Required value]"
                                " (and 1 more errors)")


def test_a_million_errors_make_a_bounded_answer_quickly() -> None:
    n = 1_000_000
    errs = [required(f"spec.containers[{i}].name") for i in range(n)]
    start = time.perf_counter()
    err = invalid_error("Pod", "p", errs)
    seconds = time.perf_counter() - start
    assert len(err.details["causes"]) == MAX_REPORTED_ERRORS
    assert err.message.endswith(f" (and {n - MAX_REPORTED_ERRORS} more errors)")
    assert len(err.message) < 100_000
    assert seconds < 5, f"{seconds:.1f} s"
