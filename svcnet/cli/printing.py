"""What the CLI prints, as kubectl prints it: Status errors in kubectl's words, tab-aligned
Tables, JSON and YAML without managedFields."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiohttp
import yaml

from svcnet.api.access import as_dict as _dict
from svcnet.api.errors import StatusError, go_quote
from svcnet.api.gojson import go_dumps
from svcnet.client.rest import TransportError

Obj = dict[str, Any]



def format_status_error(e: StatusError) -> str:
    """kubectl's wording for a failure Status (``cmdutil.CheckErr``), without the newline.

    A 422 Invalid becomes ``The Kind "name" is invalid: field: message``, or with several
    distinct causes a ``* field: message`` line each; anything else becomes
    ``Error from server (Reason): message``.
    """
    if e.code == 422 and e.reason == "Invalid":
        details = e.details
        if not details:
            return "The request is invalid" + (f": {e.message}" if e.message else "")
        kind, name = str(details.get("kind") or ""), str(details.get("name") or "")
        causes = [c for c in details.get("causes") or [] if isinstance(c, Mapping)]
        head = "The request is invalid"
        if kind or name:
            head = f"The {kind} {go_quote(name)} is invalid"
        elif e.message and not causes:
            head += f": {e.message}"
        # statusCausesToAggrError: "field: message", duplicates dropped, order kept.
        lines = list(dict.fromkeys(f"{c.get('field', '')}: {c.get('message', '')}"
                                   for c in causes))
        if not lines:
            return head
        if len(lines) == 1:
            return f"{head}: {lines[0]}"
        return f"{head}: \n" + "\n".join(f"* {line}" for line in lines)
    if e.reason == "Unauthorized":
        return f"error: You must be logged in to the server ({e.message})"
    if e.reason:
        return f"Error from server ({e.reason}): {e.message}"
    return f"Error from server: {e.message}"


def format_transport_error(e: TransportError, server: str) -> str:
    """One line saying why the server could not be reached (never an object repr)."""
    cause = e.__cause__
    if isinstance(cause, aiohttp.ClientConnectorCertificateError):
        detail = f"TLS certificate verification failed: {cause.certificate_error}"
    elif isinstance(cause, aiohttp.ClientConnectorError):
        # asyncio's strerror ("Connect call failed (...)") hides the errno's plain meaning.
        os_error = cause.os_error
        detail = (os.strerror(os_error.errno) if os_error.errno
                  else str(os_error) or type(os_error).__name__)
    elif isinstance(cause, TimeoutError):
        detail = "timed out"
    elif cause is not None:
        detail = str(cause) or type(cause).__name__
    else:
        detail = str(e)
    detail = " ".join(detail.split())
    return f"error: cannot reach the API server at {server}: {detail}"


def _apply_conflict_message(e: StatusError) -> str:
    return (f"error: {e.message.rstrip()} (run again with --force-conflicts to take these "
            "fields over, or remove them from the manifest)")


# -- text layout ----------------------------------------------------------------------------


def tabwrite(text: str, *, minwidth: int, padding: int) -> str:
    """Lay out tab-separated text as Go's ``text/tabwriter`` does (padchar ' ', no flags).

    A cell is text ended by a tab; the last cell of a line is not part of any column. A column
    block is a run of consecutive lines that all have a cell in that column, and each block is
    as wide as its widest cell plus ``padding`` (at least ``minwidth``). So a line without tabs
    ends every block, which is what keeps kubectl's sections aligned separately.
    """
    rows = [line.split("\t") for line in text.split("\n")]
    widths: list[list[int]] = [[0] * (len(cells) - 1) for cells in rows]

    def layout(first: int, last: int, column: int) -> None:
        line = first
        while line < last:
            if column >= len(rows[line]) - 1:
                line += 1
                continue
            start, width = line, minwidth
            while line < last and column < len(rows[line]) - 1:
                width = max(width, len(rows[line][column]) + padding)
                line += 1
            for i in range(start, line):
                widths[i][column] = width
            layout(start, line, column + 1)

    layout(0, len(rows), 0)
    return "\n".join(
        "".join(cell.ljust(width) for cell, width in zip(cells, row_widths, strict=False))
        + cells[-1] for cells, row_widths in zip(rows, widths, strict=True))


def _cell_text(cell: Any) -> str:
    """A Table cell as kubectl prints it: Go's ``%v``, strings cut at their first line break."""
    if cell is None:
        return ""
    if isinstance(cell, str):
        cut = min((i for i in (cell.find(c) for c in "\f\n\r") if i >= 0), default=-1)
        return cell if cut < 0 else cell[:cut] + "..."
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float) and cell.is_integer() and abs(cell) < 1e21:
        return str(int(cell))
    if isinstance(cell, int | float):
        return str(cell)
    return json.dumps(cell, separators=(",", ":"), sort_keys=True)


def render_table(tables: Sequence[Mapping[str, Any]], *, wide: bool = False,
                 with_namespace: bool = False) -> str:
    """``meta.k8s.io`` Tables (one per request, same columns) as kubectl prints them.

    Empty string when there is no row (kubectl then prints no header either). With
    ``with_namespace``, a NAMESPACE column comes first, read from each row's object metadata.
    """
    definitions = tables[0].get("columnDefinitions") if tables else None
    columns = [c for c in definitions or [] if isinstance(c, Mapping)]
    shown = [i for i, c in enumerate(columns) if wide or not c.get("priority")]
    rows = [row for t in tables for row in t.get("rows") or [] if isinstance(row, Mapping)]
    if not rows:
        return ""
    header = [str(columns[i].get("name", "")).upper() for i in shown]
    lines = [(["NAMESPACE"] if with_namespace else []) + header]
    for row in rows:
        cells = row.get("cells") or []
        texts = [_cell_text(cells[i]) if i < len(cells) else "" for i in shown]
        if with_namespace:
            meta = _dict(_dict(row.get("object")).get("metadata"))
            texts.insert(0, str(meta.get("namespace") or ""))
        lines.append(texts)
    return tabwrite("\n".join("\t".join(cells) for cells in lines) + "\n",
                    minwidth=6, padding=3)


# -- object output --------------------------------------------------------------------------


def _without_managed_fields(obj: Obj) -> Obj:
    """The object as ``kubectl get -o yaml|json`` shows it: managedFields left out."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return obj


def _as_list(items: Iterable[Obj]) -> Obj:
    """A collection as kubectl prints it: a ``v1 List`` whatever the kind."""
    return {"apiVersion": "v1", "items": list(items), "kind": "List",
            "metadata": {"resourceVersion": ""}}


def dump_json(obj: Any) -> str:
    """``-o json``: 4-space indent, sorted keys, Go's escaping; ends with a newline."""
    return go_dumps(obj, sort_keys=True, indent=4) + "\n"


class _KubectlDumper(yaml.SafeDumper):
    """PyYAML with go-yaml's quoting habits: double quotes, ``|`` blocks for multi-line text."""

    def choose_scalar_style(self) -> str:
        style: str = super().choose_scalar_style()
        return '"' if style == "'" else style


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_KubectlDumper.add_representer(str, _represent_str)


def dump_yaml(obj: Any) -> str:
    """``-o yaml``: block style, sorted keys, no line folding."""
    return yaml.dump(obj, Dumper=_KubectlDumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True, width=1 << 30)


# -- describe -------------------------------------------------------------------------------
