"""apps/v1 ControllerRevision validation (ValidateControllerRevision and
ValidateControllerRevisionUpdate: upstream's field paths and messages) and its Table
(printControllerRevision)."""

from __future__ import annotations

from typing import Any

from svcnet.api.controllerrevisions import (
    validate_controller_revision,
    validate_controller_revision_update,
)
from svcnet.api.errors import FieldError
from tests.unit.apiserver.test_tables import cells, column_names, meta

Obj = dict[str, Any]


def revision(**over: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": "web-5d8f", "namespace": "default", "resourceVersion": "3"},
            "data": {"spec": {"template": {"$patch": "replace"}}}, "revision": 1, **over}


def messages(errs: list[FieldError]) -> list[str]:
    return [str(e) for e in errs]


def test_a_revision_with_data_and_a_number_is_valid() -> None:
    assert validate_controller_revision(revision()) == []
    assert validate_controller_revision(revision(revision=0)) == []


def test_data_is_mandatory_and_the_number_not_negative() -> None:
    bad = revision(revision=-1)
    del bad["data"]
    assert messages(validate_controller_revision(bad)) == [
        "data: Required value: data is mandatory",
        "revision: Invalid value: -1: must be greater than or equal to 0"]


def test_the_name_is_a_dns_subdomain_and_the_namespace_required() -> None:
    bad = revision(metadata={"name": "Web_1"})
    assert [e.field for e in validate_controller_revision(bad)] == [
        "metadata.name", "metadata.namespace"]


def test_data_is_immutable_but_the_number_may_change() -> None:
    old = revision()
    assert validate_controller_revision_update(revision(revision=7), old) == []
    changed = revision(data={"spec": {}})
    assert [(e.field, e.value, e.detail)
            for e in validate_controller_revision_update(changed, old)] == [
        ("data", {"spec": {}}, "field is immutable")]


def test_table_columns_and_the_controller_cell() -> None:
    assert column_names("apps/v1", "ControllerRevision") == [
        ("Name", 0), ("Controller", 0), ("Revision", 0), ("Age", 0)]
    owned = {"metadata": {**meta("web-5d8f"), "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "u",
         "controller": True}]}, "revision": 3}
    assert cells("apps/v1", "ControllerRevision", owned) == [
        "web-5d8f", "statefulset.apps/web", 3, "5m"]
    assert cells("apps/v1", "ControllerRevision", {"metadata": meta("orphan")}) == [
        "orphan", "<none>", 0, "5m"]
