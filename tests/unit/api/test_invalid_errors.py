"""The 422 Invalid Status a validation error list becomes (apierrors.NewInvalid), at any size.

Its message is ``errs.ToAggregate()``'s: every distinct error once, in order of first
occurrence, bracketed when there are several; its causes keep every error. Building it must
stay linear: a 3 MiB body of nameless containers yields hundreds of thousands of errors.
"""

from __future__ import annotations

import time

from svcnet.api.errors import aggregate_message, invalid_error, required


def test_aggregate_keeps_the_first_occurrence_of_each_distinct_error_in_order() -> None:
    a, b = required("spec.a"), required("spec.b")
    assert aggregate_message([a]) == "spec.a: Required value"
    assert aggregate_message([a, a]) == "spec.a: Required value"
    assert aggregate_message([b, a, b, a]) == "[spec.b: Required value, spec.a: Required value]"


def test_invalid_error_with_many_errors_is_linear_and_keeps_every_cause() -> None:
    n = 300_000
    errs = [required(f"spec.containers[{i}].name") for i in range(n)] + [
        required("spec.containers[0].name")]
    start = time.perf_counter()
    err = invalid_error("Pod", "p", errs)
    seconds = time.perf_counter() - start
    assert err.code == 422 and len(err.details["causes"]) == n + 1
    assert err.message.startswith('Pod "p" is invalid: [spec.containers[0].name: Required value, ')
    assert err.message.count("spec.containers[0].name") == 1
    assert seconds < 20, f"{seconds:.1f} s"  # quadratic de-duplication took hours
