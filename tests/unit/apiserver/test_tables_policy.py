"""Tables of PodDisruptionBudgets: kubectl's columns and cells (printPodDisruptionBudget in
pkg/printers/internalversion): the int-or-percent bounds, N/A when unset, the allowance."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.apiserver.test_tables import cells, column_names, meta

V1 = "policy/v1"


def test_columns() -> None:
    assert column_names(V1, "PodDisruptionBudget") == [
        ("Name", 0), ("Min Available", 0), ("Max Unavailable", 0),
        ("Allowed Disruptions", 0), ("Age", 0)]


@pytest.mark.parametrize(("spec", "status", "want"), [
    ({"minAvailable": 2}, {"disruptionsAllowed": 1}, ["2", "N/A", 1]),
    ({"maxUnavailable": "25%"}, {}, ["N/A", "25%", 0]),
    ({}, {"disruptionsAllowed": 0}, ["N/A", "N/A", 0]),
])
def test_rows(spec: dict[str, Any], status: dict[str, Any], want: list[Any]) -> None:
    obj = {"metadata": meta("web"), "spec": spec, "status": status}
    assert cells(V1, "PodDisruptionBudget", obj) == ["web", *want, "5m"]
