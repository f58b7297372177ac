"""Text layout as kubectl prints it: Go's text/tabwriter, Tables, ``-o json`` and ``-o yaml``.

Expected texts are what kubectl 1.32 printed for the same objects against ``svcnet server``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from svcnet.apiserver.tables import table_for
from svcnet.cli.printing import dump_json, dump_yaml, render_table, tabwrite

Obj = dict[str, Any]
NOW = datetime(2025, 11, 27, 17, 0, 0, tzinfo=UTC)

# ============================================================================== tabwrite


@pytest.mark.parametrize(("text", "minwidth", "padding", "expected"), [
    pytest.param("a\tb\n", 0, 2, "a  b\n", id="one-cell"),
    pytest.param("a\tb\nccc\td\n", 0, 2, "a    b\nccc  d\n", id="column-width"),
    pytest.param("a\tb\nccc\td\n", 6, 3, "a     b\nccc   d\n", id="minwidth"),
    pytest.param("aaaaaa\tb\n", 6, 3, "aaaaaa   b\n", id="padding-beyond-minwidth"),
    pytest.param("a\tb\nno tabs\nccc\td\n", 0, 2, "a  b\nno tabs\nccc  d\n",
                 id="line-without-tab-ends-block"),
    pytest.param("a\tb\tc\nd\te\n", 0, 1, "a b c\nd e\n", id="last-cell-not-a-column"),
    pytest.param("a\tbbbb\tc\nd\te\tf\n", 0, 1, "a bbbb c\nd e    f\n", id="nested-column"),
    pytest.param("Endpoints:\t\nName:\tx\n", 0, 2, "Endpoints:  \nName:       x\n",
                 id="empty-last-cell-still-padded"),
    pytest.param("  Type\tAge\n  ----\t---\n", 0, 2, "  Type  Age\n  ----  ---\n",
                 id="indent-is-part-of-cell"),
    pytest.param("", 0, 2, "", id="empty"),
    pytest.param("no newline\tat end", 0, 1, "no newline at end", id="no-trailing-newline"),
])
def test_tabwrite(text: str, minwidth: int, padding: int, expected: str) -> None:
    assert tabwrite(text, minwidth=minwidth, padding=padding) == expected


# ================================================================================= tables


def service(name: str, namespace: str = "default", **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": namespace,
                         "creationTimestamp": "2025-11-27T16:55:00Z"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1",
                     "ports": [{"port": 443, "protocol": "TCP"}], **spec}}


def services_table(*objs: Obj) -> Obj:
    return table_for(list(objs), api_version="v1", kind="Service", now=NOW,
                     resource_version="9")


KUBERNETES = service("kubernetes")
WEB = service("web", "shop", clusterIP="10.108.77.83", selector={"app": "web"},
              ports=[{"port": 80, "protocol": "TCP"}])


@pytest.mark.parametrize(("wide", "with_namespace", "expected"), [
    (False, False,
     "NAME         TYPE        CLUSTER-IP     EXTERNAL-IP   PORT(S)   AGE\n"
     "kubernetes   ClusterIP   10.96.0.1      <none>        443/TCP   5m\n"
     "web          ClusterIP   10.108.77.83   <none>        80/TCP    5m\n"),
    (True, False,
     "NAME         TYPE        CLUSTER-IP     EXTERNAL-IP   PORT(S)   AGE   SELECTOR\n"
     "kubernetes   ClusterIP   10.96.0.1      <none>        443/TCP   5m    <none>\n"
     "web          ClusterIP   10.108.77.83   <none>        80/TCP    5m    app=web\n"),
    (False, True,
     "NAMESPACE   NAME         TYPE        CLUSTER-IP     EXTERNAL-IP   PORT(S)   AGE\n"
     "default     kubernetes   ClusterIP   10.96.0.1      <none>        443/TCP   5m\n"
     "shop        web          ClusterIP   10.108.77.83   <none>        80/TCP    5m\n"),
])
def test_render_service_table(wide: bool, with_namespace: bool, expected: str) -> None:
    table = services_table(KUBERNETES, WEB)
    assert render_table([table], wide=wide, with_namespace=with_namespace) == expected


def test_render_tables_of_several_requests_share_one_header() -> None:
    text = render_table([services_table(KUBERNETES), services_table(), services_table(WEB)])
    assert [line.split()[0] for line in text.splitlines()] == ["NAME", "kubernetes", "web"]


@pytest.mark.parametrize("tables", [[], [services_table()], [services_table(), {}]])
def test_render_no_rows_prints_nothing(tables: list[Obj]) -> None:
    assert render_table(tables) == ""


def raw_table(*cells: Any) -> Obj:
    return {"kind": "Table", "columnDefinitions": [
        {"name": "Name", "type": "string", "priority": 0},
        {"name": "Value", "type": "string", "priority": 0},
        {"name": "Detail", "type": "string", "priority": 1}],
        "rows": [{"cells": ["x", cell, "d"]} for cell in cells]}


@pytest.mark.parametrize(("cell", "text"), [
    ("plain", "plain"),
    ("two\nlines", "two..."),
    ("cr\rhere", "cr..."),
    (3, "3"),
    (2.0, "2"),
    (2.5, "2.5"),
    (True, "true"),
    (False, "false"),
    (None, ""),
    ({"a": 1}, '{"a":1}'),
])
def test_cells_print_as_go_prints_them(cell: Any, text: str) -> None:
    lines = render_table([raw_table(cell)]).splitlines()
    assert lines[0].split() == ["NAME", "VALUE"], "priority-1 column hidden"
    assert lines[1] == f"x      {text}"


def test_short_rows_and_missing_namespace_are_blank() -> None:
    table = raw_table()
    table["rows"] = [{"cells": ["only-name"]}]
    assert render_table([table], with_namespace=True, wide=True) == (
        "NAMESPACE   NAME        VALUE   DETAIL\n"
        "            only-name           \n")


# ============================================================================ json / yaml


def test_dump_json_is_go_shaped() -> None:
    obj = {"kind": "Service", "apiVersion": "v1",
           "metadata": {"name": "web", "annotations": {"note": "<a> & é\u2028"}},
           "spec": {"ports": [], "selector": {}, "n": 1, "ok": True, "none": None}}
    assert dump_json(obj) == """{
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "annotations": {
            "note": "\\u003ca\\u003e \\u0026 é\\u2028"
        },
        "name": "web"
    },
    "spec": {
        "n": 1,
        "none": null,
        "ok": true,
        "ports": [],
        "selector": {}
    }
}
"""


def test_dump_yaml_quotes_as_go_yaml() -> None:
    obj = {"metadata": {
        "annotations": {"last": '{"a":1}\n', "empty": "", "plain": "hello <world> & more"},
        "resourceVersion": "9", "creationTimestamp": "2026-11-27T18:28:06Z",
        "labels": {"on": "true"}},
        "spec": {"ports": [{"port": 80, "targetPort": "web"}], "clusterIPs": ["10.0.0.1"]},
        "status": {"loadBalancer": {}}}
    text = dump_yaml(obj)
    assert text == """metadata:
  annotations:
    empty: ""
    last: |
      {"a":1}
    plain: hello <world> & more
  creationTimestamp: "2026-11-27T18:28:06Z"
  labels:
    "on": "true"
  resourceVersion: "9"
spec:
  clusterIPs:
  - 10.0.0.1
  ports:
  - port: 80
    targetPort: web
status:
  loadBalancer: {}
"""
    assert yaml.safe_load(text) == obj


def test_dump_yaml_never_folds_long_lines() -> None:
    long = "word " * 40
    assert dump_yaml({"a": long.strip()}) == f"a: {long.strip()}\n"
