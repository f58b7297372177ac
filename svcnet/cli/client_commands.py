"""Client commands: ``svcnet apply``, ``get``, ``delete`` and ``describe``, the kubectl way.

For machines without kubectl. Each command loads a kubeconfig (``--kubeconfig``, else the first
entry of ``$KUBECONFIG``, else the default cluster's ``~/.svcnet/svcnet/kubeconfig``), opens one
:class:`~svcnet.client.rest.RESTClient` inside one ``asyncio.run`` and talks plain Kubernetes
REST, so the commands work against any conformant API server, not only ``svcnet server``.

What is printed follows kubectl 1.3x, to the byte where scripts and people compare it:

* ``get`` asks the server for a ``meta.k8s.io`` Table (as kubectl does: the server owns the
  columns) and lays it out with Go's ``text/tabwriter`` rules and kubectl's settings (minimum
  width 6, padding 3): upper-cased headers, ``priority: 1`` columns only with ``-o wide``, a
  NAMESPACE column with ``-A``. ``-o json`` / ``-o yaml`` print the object, or a ``List`` for a
  collection, without ``managedFields``; ``-o name`` prints ``service/web`` lines.
* ``apply`` is server-side apply (field manager ``svcnet-apply``), which needs no client-side
  merge logic and no last-applied annotation; it reports ``created`` (201), ``unchanged``
  (resourceVersion did not move) or ``configured``.
* ``describe`` ports kubectl's Service, Namespace and generic describers (tabwriter padding 2).
* Errors are worded as kubectl words them: ``The Service "x" is invalid: ...`` from a 422's
  causes, ``Error from server (Reason): message`` for other failure Statuses.

Exit status: 0 on success, 1 on any failure (message on stderr, traceback only with
``svcnet --debug``), 2 for usage errors (click's).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

import aiohttp
import click
import yaml

from svcnet.api.errors import StatusError, go_quote
from svcnet.apiserver.resources import RESOURCES, Resource
from svcnet.apiserver.tables import human_duration
from svcnet.cli.manifests import load_manifests
from svcnet.client.kubeconfig import KubeConfig, KubeconfigError, load_kubeconfig
from svcnet.client.rest import GVR, RESTClient, TransportError
from svcnet.util.clock import parse_time

__all__ = [
    "CommandError",
    "apply",
    "delete",
    "describe",
    "describe_endpoint_slice",
    "describe_generic",
    "describe_namespace",
    "describe_service",
    "dump_json",
    "dump_yaml",
    "format_status_error",
    "format_transport_error",
    "format_warning",
    "get",
    "kind_ref",
    "kubeconfig_path",
    "render_table",
    "resolve_kind",
    "resource_for_object",
    "smart_label",
    "tabwrite",
]

Obj = dict[str, Any]

FIELD_MANAGER: Final = "svcnet-apply"
TABLE_ACCEPT: Final = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                       "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
DEFAULT_KUBECONFIG: Final = Path(".svcnet") / "svcnet" / "kubeconfig"
"""Relative to the home directory: the kubeconfig of ``svcnet up``'s default cluster."""
SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"
OUTPUT_FORMATS: Final = ("wide", "yaml", "json", "name")

#: Names kubectl does not know but svcnet users may type; they resolve to served resources.
_EXTRA_NAMES: Final[Mapping[tuple[str, str], tuple[str, ...]]] = {
    ("discovery.k8s.io", "endpointslices"): ("eps",),
}


class CommandError(Exception):
    """A failure whose message is already worded for the user, printed as is on stderr."""


# -- kinds ----------------------------------------------------------------------------------


def resolve_kind(arg: str, resources: Sequence[Resource] = RESOURCES) -> Resource:
    """The served resource a KIND argument names, matched as kubectl's REST mapper does.

    Case-insensitive plural, singular, kind or short name (``services``, ``service``,
    ``Service``, ``svc``), optionally qualified by group (``endpointslices.discovery.k8s.io``)
    or version and group (``endpointslices.v1.discovery.k8s.io``). When several groups have the
    name, the first in discovery order wins, core first, as with kubectl.
    """
    text = arg.strip().lower()
    name, _, qualifier = text.partition(".")
    for r in resources:
        names = {r.resource, r.singular, r.kind.lower(), *r.short_names,
                 *_EXTRA_NAMES.get((r.group, r.resource), ())}
        if name not in names:
            continue
        if not qualifier or qualifier in (r.group, f"{r.version}.{r.group}".rstrip(".")):
            return r
    raise CommandError(f"error: the server doesn't have a resource type {go_quote(arg)}")


def resource_for_object(obj: Mapping[str, Any],
                        resources: Sequence[Resource] = RESOURCES) -> Resource | None:
    """The served resource of a manifest object, by its ``apiVersion`` and ``kind``."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    for r in resources:
        if r.api_version == api_version and r.kind == kind:
            return r
    return None


def kind_ref(r: Resource) -> str:
    """How kubectl names a kind in output: ``service``, ``endpointslice.discovery.k8s.io``."""
    return f"{r.kind.lower()}.{r.group}" if r.group else r.kind.lower()


def _gvr(r: Resource) -> GVR:
    return GVR(r.group, r.version, r.resource, r.kind, r.namespaced)


# -- errors ---------------------------------------------------------------------------------


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


# Go's encoding/json escapes these even inside an indented document (HTML safety); they only
# ever occur inside strings, so replacing them in the text is exact.
_GO_JSON_ESCAPES: Final = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                           "\u2028": "\\u2028", "\u2029": "\\u2029"}


def dump_json(obj: Any) -> str:
    """``-o json``: 4-space indent, sorted keys, Go's escaping; ends with a newline."""
    text = json.dumps(obj, indent=4, sort_keys=True, ensure_ascii=False)
    for char, escaped in _GO_JSON_ESCAPES.items():
        text = text.replace(char, escaped)
    return text + "\n"


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


class _Describer:
    """kubectl's PrefixWriter: lines with tab-separated cells and two-space levels."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, level: int, text: str) -> None:
        self.parts.append("  " * level + text)

    def labels(self, title: str, labels: Mapping[str, Any] | None) -> None:
        """printLabelsMultiline: ``k=v`` sorted, one per line, values aligned."""
        self.write(0, f"{title}:\t")
        if not labels:
            self.write(0, "<none>\n")
            return
        for i, key in enumerate(sorted(labels)):
            self.write(0, ("" if i == 0 else "\t") + f"{key}={labels[key]}\n")

    def annotations(self, title: str, annotations: Mapping[str, Any] | None) -> None:
        """printAnnotationsMultiline: last-applied left out; long or multi-line values get a
        line of their own, cut at 138 characters."""
        self.write(0, f"{title}:\t")
        annotations = annotations or {}
        keys = sorted(k for k in annotations if k != LAST_APPLIED)
        if not keys:
            self.write(0, "<none>\n")
            return
        limit = 140
        for i, key in enumerate(keys):
            if i:
                self.write(0, "\t")
            value = str(annotations[key]).removesuffix("\n")
            if len(value) + len(key) + 2 > limit or "\n" in value:
                self.write(0, f"{key}:\n")
                for part in value.split("\n"):
                    short = part[:limit - 2] + "..." if len(part) > limit - 2 else part
                    self.write(0, f"\t  {short}\n")
            else:
                self.write(0, f"{key}: {value}\n")

    def events(self, events: Sequence[Obj] | None, now: datetime) -> None:
        """DescribeEvents: ``<none>``, or a Type/Reason/Age/From/Message table."""
        if events is None:
            return
        if not events:
            self.write(0, "Events:\t<none>\n")
            return
        self.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
        self.write(1, "----\t------\t----\t----\t-------\n")
        ordered = sorted(events, key=lambda e: parse_time(e.get("lastTimestamp"))
                         or datetime.min.replace(tzinfo=UTC))
        for e in ordered:
            first = (_since(e.get("eventTime"), now) if parse_time(e.get("eventTime")) is not None
                     else _since(e.get("firstTimestamp"), now))
            series, count = e.get("series"), _int(e.get("count"))
            if isinstance(series, Mapping):
                interval = (f"{_since(series.get('lastObservedTime'), now)} "
                            f"(x{_int(series.get('count'))} over {first})")
            elif count > 1:
                interval = f"{_since(e.get('lastTimestamp'), now)} (x{count} over {first})"
            else:
                interval = first
            source = _str(_dict(e.get("source")).get("component")) or _str(
                e.get("reportingComponent"))
            message = _str(e.get("message")).strip()
            field_path = _str(_dict(e.get("involvedObject")).get("fieldPath"))
            if field_path:
                message = f"{field_path}: {message}"
            self.write(1, f"{_str(e.get('type'))}\t{_str(e.get('reason'))}\t{interval}\t"
                          f"{source}\t{message}\n")

    def text(self) -> str:
        return tabwrite("".join(self.parts), minwidth=0, padding=2)


def _format_endpoint_slices(slices: Sequence[Obj], port_name: str | None) -> str:
    """formatEndpointSlices: up to three ready ``ip:port`` (bare IPs for port-less slices)."""
    if not slices:
        return "<none>"
    shown: list[str] = []
    limit, more, count = 3, False, 0
    for eps in slices:
        ports = [p for p in _list(eps.get("ports")) if isinstance(p, Mapping)]
        endpoints = [e for e in _list(eps.get("endpoints"))
                     if isinstance(e, Mapping) and _list(e.get("addresses"))]
        targets: list[int | None] = [None] if not ports else [
            _int(p.get("port")) for p in ports
            if port_name is None or _str(p.get("name")) == port_name]
        for port in targets:
            for endpoint in endpoints:
                # kubectl checks the limit before readiness, so a not-ready endpoint past the
                # third can print "+ 0 more..."; kept, for identical output.
                if len(shown) == limit:
                    more = True
                # Unknown readiness (no condition) counts as ready, as the API documents.
                if _dict(endpoint.get("conditions")).get("ready") not in (None, True):
                    continue
                if not more:
                    address = _str(_list(endpoint.get("addresses"))[0])
                    if port is not None:
                        address = (f"[{address}]:{port}" if ":" in address
                                   else f"{address}:{port}")
                    shown.append(address)
                count += 1
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if more else text


def _ingress_text(ingress: Sequence[Any]) -> str:
    parts = []
    for item in ingress:
        entry = _dict(item)
        if entry.get("ip"):
            mode = entry.get("ipMode")
            parts.append(_str(entry["ip"]) + (f" ({mode})" if mode else ""))
        else:
            parts.append(_str(entry.get("hostname")))
    return ", ".join(parts)


def _format_labels(labels: Mapping[str, Any] | None) -> str:
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels)) if labels else "<none>"


def describe_service(svc: Obj, slices: Sequence[Obj], events: Sequence[Obj] | None,
                     now: datetime) -> str:
    """``kubectl describe service``: the Service, its EndpointSlices' ready endpoints per port,
    and its events (``None``: leave the Events section out).

    As kubectl 1.33 prints it, the version svcnet serves: no AppProtocol line (kubectl 1.36+).
    """
    meta, spec = _dict(svc.get("metadata")), _dict(svc.get("spec"))
    status = _dict(svc.get("status"))
    w = _Describer()
    w.write(0, f"Name:\t{_str(meta.get('name'))}\n")
    w.write(0, f"Namespace:\t{_str(meta.get('namespace'))}\n")
    w.labels("Labels", _dict(meta.get("labels")))
    w.annotations("Annotations", _dict(meta.get("annotations")))
    w.write(0, f"Selector:\t{_format_labels(_dict(spec.get('selector')))}\n")
    w.write(0, f"Type:\t{_str(spec.get('type'))}\n")
    if spec.get("ipFamilyPolicy") is not None:
        w.write(0, f"IP Family Policy:\t{_str(spec['ipFamilyPolicy'])}\n")
    families = [_str(f) for f in _list(spec.get("ipFamilies"))]
    w.write(0, f"IP Families:\t{','.join(families) or '<none>'}\n")
    w.write(0, f"IP:\t{_str(spec.get('clusterIP'))}\n")
    cluster_ips = [_str(ip) for ip in _list(spec.get("clusterIPs"))]
    w.write(0, f"IPs:\t{','.join(cluster_ips) or '<none>'}\n")
    external_ips = [_str(ip) for ip in _list(spec.get("externalIPs"))]
    if external_ips:
        w.write(0, f"External IPs:\t{','.join(external_ips)}\n")
    if spec.get("loadBalancerIP"):
        w.write(0, f"Desired LoadBalancer IP:\t{_str(spec['loadBalancerIP'])}\n")
    if spec.get("externalName"):
        w.write(0, f"External Name:\t{_str(spec['externalName'])}\n")
    ingress = _list(_dict(status.get("loadBalancer")).get("ingress"))
    if ingress:
        w.write(0, f"LoadBalancer Ingress:\t{_ingress_text(ingress)}\n")
    for item in _list(spec.get("ports")):
        port = _dict(item)
        name = _str(port.get("name")) or "<unset>"
        protocol = _str(port.get("protocol"))
        w.write(0, f"Port:\t{name}\t{_int(port.get('port'))}/{protocol}\n")
        target = port.get("targetPort")
        w.write(0, f"TargetPort:\t{target if isinstance(target, str) else _int(target)}"
                   f"/{protocol}\n")
        if _int(port.get("nodePort")):
            w.write(0, f"NodePort:\t{name}\t{_int(port['nodePort'])}/{protocol}\n")
        endpoints = _format_endpoint_slices(slices, _str(port.get("name")))
        w.write(0, f"Endpoints:\t{endpoints}\n")
    w.write(0, f"Session Affinity:\t{_str(spec.get('sessionAffinity'))}\n")
    if spec.get("externalTrafficPolicy"):
        w.write(0, f"External Traffic Policy:\t{_str(spec['externalTrafficPolicy'])}\n")
    if spec.get("internalTrafficPolicy") is not None:
        w.write(0, f"Internal Traffic Policy:\t{_str(spec['internalTrafficPolicy'])}\n")
    if _int(spec.get("healthCheckNodePort")):
        w.write(0, f"HealthCheck NodePort:\t{_int(spec['healthCheckNodePort'])}\n")
    ranges = [_str(r) for r in _list(spec.get("loadBalancerSourceRanges"))]
    if ranges:
        w.write(0, f"LoadBalancer Source Ranges:\t{','.join(ranges)}\n")
    if spec.get("trafficDistribution") is not None:
        w.write(0, f"Traffic Distribution:\t{_str(spec['trafficDistribution'])}\n")
    w.events(events, now)
    return w.text()


def describe_namespace(ns: Obj) -> str:
    """``kubectl describe namespace`` (svcnet serves no quotas or limit ranges to list)."""
    meta = _dict(ns.get("metadata"))
    w = _Describer()
    w.write(0, f"Name:\t{_str(meta.get('name'))}\n")
    w.labels("Labels", _dict(meta.get("labels")))
    w.annotations("Annotations", _dict(meta.get("annotations")))
    w.write(0, f"Status:\t{_str(_dict(ns.get('status')).get('phase'))}\n")
    return w.text()


def describe_endpoint_slice(eps: Obj, events: Sequence[Obj] | None, now: datetime) -> str:
    """``kubectl describe endpointslice``: ports as a table, then each endpoint's facts."""
    meta = _dict(eps.get("metadata"))
    w = _Describer()
    w.write(0, f"Name:\t{_str(meta.get('name'))}\n")
    w.write(0, f"Namespace:\t{_str(meta.get('namespace'))}\n")
    w.labels("Labels", _dict(meta.get("labels")))
    w.annotations("Annotations", _dict(meta.get("annotations")))
    w.write(0, f"AddressType:\t{_str(eps.get('addressType'))}\n")
    ports = [_dict(p) for p in _list(eps.get("ports"))]
    if not ports:
        w.write(0, "Ports: <unset>\n")
    else:
        w.write(0, "Ports:\n")
        w.write(1, "Name\tPort\tProtocol\n")
        w.write(1, "----\t----\t--------\n")
        for port in ports:
            number = port.get("port")
            w.write(1, f"{_str(port.get('name')) or '<unset>'}\t"
                       f"{number if isinstance(number, int) else '<unset>'}\t"
                       f"{_str(port.get('protocol'))}\n")
    endpoints = [_dict(e) for e in _list(eps.get("endpoints"))]
    if not endpoints:
        w.write(0, "Endpoints: <none>\n")
    else:
        w.write(0, "Endpoints:\n")
        for endpoint in endpoints:
            addresses = ", ".join(_str(a) for a in _list(endpoint.get("addresses")))
            w.write(1, f"- Addresses:\t{addresses or '<none>'}\n")
            w.write(2, "Conditions:\n")
            ready = _dict(endpoint.get("conditions")).get("ready")
            w.write(3, f"Ready:\t{'<unset>' if ready is None else _go_value(ready)}\n")
            hostname = endpoint.get("hostname")
            w.write(2, f"Hostname:\t{'<unset>' if hostname is None else _str(hostname)}\n")
            target = endpoint.get("targetRef")
            if isinstance(target, Mapping):
                w.write(2, f"TargetRef:\t{_str(target.get('kind'))}/{_str(target.get('name'))}\n")
            node = endpoint.get("nodeName")
            w.write(2, f"NodeName:\t{'<unset>' if node is None else _str(node)}\n")
            zone = endpoint.get("zone")
            w.write(2, f"Zone:\t{'<unset>' if zone is None else _str(zone)}\n")
    w.events(events, now)
    return w.text()


_ACRONYMS: Final = frozenset({"API", "URL", "UID", "OSB", "GUID"})


def _camel_split(word: str) -> list[str]:
    """github.com/fatih/camelcase.Split: runs of one character class, with the last capital of
    a capital run moved onto a following lower-case run (``clusterIPs`` → cluster, I, Ps)."""
    def klass(c: str) -> int:
        return 1 if c.islower() else 2 if c.isupper() else 3 if c.isdigit() else 4

    runs: list[str] = []
    for c in word:
        if runs and klass(runs[-1][-1]) == klass(c):
            runs[-1] += c
        else:
            runs.append(c)
    for i in range(len(runs) - 1):
        if runs[i][0].isupper() and runs[i + 1][0].islower():
            runs[i + 1] = runs[i][-1] + runs[i + 1]
            runs[i] = runs[i][:-1]
    return [r for r in runs if r]


def smart_label(field: str) -> str:
    """kubectl's smartLabelFor: ``ipFamilyPolicy`` → ``Ip Family Policy``, ``uid`` → ``UID``;
    keys with anything but letters and '-' stay as they are."""
    if any(not (c.isalpha() or c == "-") for c in field):
        return field
    parts = []
    for part in _camel_split(field):
        if part == "_":
            continue
        parts.append(part.upper() if part.upper() in _ACRONYMS else part[:1].upper() + part[1:])
    return " ".join(parts)


def _go_value(value: Any) -> str:
    """Go's ``%v`` for a decoded JSON scalar."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return _cell_text(value) if isinstance(value, float) else str(value)


_GENERIC_SKIP: Final = frozenset({".metadata.managedFields", ".metadata.name",
                                  ".metadata.namespace", ".metadata.labels",
                                  ".metadata.annotations"})


def _describe_content(w: _Describer, level: int, content: Mapping[str, Any],
                      prefix: str) -> None:
    """printUnstructuredContent: every field, sorted, with smart labels; maps and lists nest."""
    for field in sorted(content):
        value, path = content[field], f"{prefix}.{field}"
        if path in _GENERIC_SKIP:
            continue
        if isinstance(value, Mapping):
            w.write(level, f"{smart_label(field)}:\n")
            _describe_content(w, level + 1, value, path)
        elif isinstance(value, list):
            w.write(level, f"{smart_label(field)}:\n")
            for child in value:
                if isinstance(child, Mapping):
                    _describe_content(w, level + 1, child, path)
                else:
                    w.write(level + 1, f"{_go_value(child)}\n")
        else:
            w.write(level, f"{smart_label(field)}:\t{_go_value(value)}\n")


def describe_generic(obj: Obj, events: Sequence[Obj] | None, now: datetime) -> str:
    """kubectl's generic describer (used for kinds without a describer of their own)."""
    meta = _dict(obj.get("metadata"))
    w = _Describer()
    w.write(0, f"Name:\t{_str(meta.get('name'))}\n")
    w.write(0, f"Namespace:\t{_str(meta.get('namespace'))}\n")
    w.labels("Labels", _dict(meta.get("labels")))
    w.annotations("Annotations", _dict(meta.get("annotations")))
    _describe_content(w, 0, obj, "")
    w.events(events, now)
    return w.text()


# -- small helpers --------------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _since(value: Any, now: datetime) -> str:
    """translateTimestampSince: the age of a timestamp, ``<unknown>`` when unset."""
    when = parse_time(value)
    return "<unknown>" if when is None else human_duration(now - when)


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    return _dict(obj.get("metadata"))


# -- the API session ------------------------------------------------------------------------


def kubeconfig_path(explicit: Path | None, environ: Mapping[str, str] | None = None,
                    home: Path | None = None) -> Path:
    """``--kubeconfig``, else the first entry of ``$KUBECONFIG``, else the default cluster's."""
    if explicit is not None:
        return explicit
    env = (os.environ if environ is None else environ).get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    if first:
        return Path(first)
    if home is None:
        from svcnet.cluster.state import cluster_dir

        return cluster_dir("svcnet") / "kubeconfig"  # honours SVCNET_HOME, like svcnet up
    return home / DEFAULT_KUBECONFIG


class _Client(RESTClient):
    """RESTClient plus the two things these commands need from one request: the HTTP status
    (201 tells ``apply`` it created) and a custom Accept header (Tables for ``get``)."""

    async def send(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                   body: Any = None, content_type: str = "application/json",
                   accept: str = "application/json") -> tuple[int, Obj]:
        answer = await self.exchange(method, path, params=params, body=body,
                                     content_type=content_type, accept=accept)
        for warning in answer.warnings:
            click.echo(f"Warning: {format_warning(warning)}", err=True)
        if not isinstance(answer.body, dict):
            raise TransportError(f"{method} {path}: answer is not a JSON object")
        return answer.status, answer.body

    async def table(self, gvr: GVR, namespace: str, name: str = "", *,
                    label_selector: str = "") -> Obj:
        params = {"labelSelector": label_selector} if label_selector and not name else {}
        _, doc = await self.send("GET", gvr.path(namespace, name), params=params,
                                 accept=TABLE_ACCEPT)
        if doc.get("kind") != "Table":
            # Every Kubernetes API server since 1.15 serves Tables; anything else is not one.
            raise TransportError(f"GET {gvr.path(namespace, name)}: the server did not answer "
                                 "with a Table")
        return doc


_WARNING: Final = re.compile(r'^\d{3} \S+ ("(?:[^"\\]|\\.)*")')


def format_warning(header: str) -> str:
    """The text of an RFC 7234 ``Warning: 299 - "text"`` header, as kubectl prints it."""
    match = _WARNING.match(header)
    if match is None:
        return header
    try:
        return str(json.loads(match.group(1)))
    except ValueError:
        return header


@dataclass
class _Api:
    client: _Client
    config: KubeConfig
    explicit_namespace: str | None

    @property
    def namespace(self) -> str:
        """``-n``, else the kubeconfig context's namespace (itself ``default`` if unset)."""
        return self.explicit_namespace or self.config.namespace

    def namespace_for(self, r: Resource) -> str:
        return self.namespace if r.namespaced else ""


_Work = Callable[[_Api], Awaitable[bool]]


def _run(ctx: click.Context, kubeconfig: Path | None, namespace: str | None,
         work: _Work) -> None:
    """Run ``work`` against the API and exit: 0 if it returns True, else 1.

    Failures are printed here, once, in kubectl's words, and exit through SystemExit.
    """
    server = ""
    try:
        config = load_kubeconfig(kubeconfig_path(kubeconfig))
        server = config.server
        ok = asyncio.run(_session(config, namespace, work))
    except (CommandError, StatusError, TransportError, KubeconfigError) as e:
        if _dict(ctx.find_root().obj).get("debug"):
            traceback.print_exception(e)
        _fail(_message_for(e, server, default_kubeconfig=kubeconfig is None))
    if not ok:
        sys.exit(1)


def _message_for(e: Exception, server: str, *, default_kubeconfig: bool) -> str:
    if isinstance(e, StatusError):
        return format_status_error(e)
    if isinstance(e, TransportError):
        return format_transport_error(e, server)
    if isinstance(e, KubeconfigError):
        hint = (" (start a cluster with `svcnet up`, or pass --kubeconfig)"
                if default_kubeconfig and "cannot read" in str(e) else "")
        return f"error: {e}{hint}"
    return str(e)


def _fail(message: str) -> NoReturn:
    click.echo(message.rstrip("\n"), err=True)
    sys.exit(1)


async def _session(config: KubeConfig, namespace: str | None, work: _Work) -> bool:
    client = _Client(config.server, token=config.token,
                     ssl_context=config.ssl_context() if config.is_tls else None,
                     server_hostname=config.tls_server_name, user_agent="svcnet-cli/0.1.0")
    async with client:
        return await work(_Api(client, config, namespace or None))


_F = TypeVar("_F", bound=Callable[..., Any])


def _client_options(f: _F) -> _F:
    f = click.option("-n", "--namespace", default=None, metavar="NS",
                     help="Namespace (default: the kubeconfig context's, else 'default').")(f)
    return click.option(
        "--kubeconfig", type=click.Path(path_type=Path, dir_okay=False), default=None,
        help="Kubeconfig file (default: $KUBECONFIG, else ~/.svcnet/svcnet/kubeconfig).")(f)


def _kind_and_names(kind: str, names: Sequence[str]) -> tuple[Resource, list[str]]:
    """``KIND NAME...`` or kubectl's ``KIND/NAME`` form; an unknown KIND ends the command."""
    if "/" in kind and not names:
        kind, _, name = kind.partition("/")
        names = [name]
    try:
        return resolve_kind(kind), list(names)
    except CommandError as e:
        _fail(str(e))


def _source_name(path: Path) -> str:
    return "STDIN" if str(path) == "-" else str(path)


def _manifests(files: Sequence[Path]) -> list[tuple[Path, Obj]]:
    """Every object of every file; the first unreadable file fails the command."""
    out: list[tuple[Path, Obj]] = []
    for path in files:
        try:
            out.extend((path, obj) for obj in load_manifests(path))
        except click.ClickException as e:
            _fail(f"error: {e.format_message()}")
    return out


def _object_target(api: _Api, path: Path, obj: Obj) -> tuple[Resource, str, str]:
    """(resource, namespace, name) of a manifest object, checked as kubectl checks them."""
    meta = _meta(obj)
    name = _str(meta.get("name"))
    r = resource_for_object(obj)
    if r is None:
        raise CommandError(
            f"error: resource mapping not found for name: {go_quote(name)} namespace: "
            f"{go_quote(_str(meta.get('namespace')))} from {go_quote(_source_name(path))}: "
            f"no matches for kind {go_quote(_str(obj.get('kind')))} in version "
            f"{go_quote(_str(obj.get('apiVersion')))}")
    if not name:
        raise CommandError(f"error: {_source_name(path)}: {kind_ref(r)} has no metadata.name "
                           "(resource name may not be empty)")
    namespace = ""
    if r.namespaced:
        namespace = _str(meta.get("namespace")) or api.namespace
        if api.explicit_namespace and namespace != api.explicit_namespace:
            raise CommandError(
                f"error: the namespace from the provided object {go_quote(namespace)} does not "
                f"match the namespace {go_quote(api.explicit_namespace)}. You must pass "
                f"'--namespace={namespace}' to perform this operation.")
    return r, namespace, name


# -- apply ----------------------------------------------------------------------------------


@click.command()
@click.option("-f", "--filename", "files", multiple=True, required=True,
              type=click.Path(path_type=Path, allow_dash=True),
              help="Manifest file (YAML or JSON, multi-document); '-' reads stdin.")
@click.option("--force-conflicts", is_flag=True,
              help="Take over fields another manager owns instead of failing.")
@_client_options
@click.pass_context
def apply(ctx: click.Context, files: tuple[Path, ...], force_conflicts: bool,
          kubeconfig: Path | None, namespace: str | None) -> None:
    """Create or update objects from manifests (server-side apply).

    Prints `KIND/NAME created`, `configured` or `unchanged` for each object, as kubectl does.
    Fields this command applied earlier and that a manifest no longer sets are removed;
    fields set by other writers with different values are conflicts unless --force-conflicts.
    """
    manifests = _manifests(files)

    async def work(api: _Api) -> bool:
        ok = True
        for path, obj in manifests:
            try:
                click.echo(await _apply_one(api, path, obj, force_conflicts))
            except CommandError as e:
                click.echo(str(e), err=True)
                ok = False
            except StatusError as e:
                # Field ownership conflicts are 409s too, but need a different remedy than a
                # resourceVersion race: say which.
                ownership = e.code == 409 and e.message.startswith("Apply failed")
                click.echo(_apply_conflict_message(e) if ownership else format_status_error(e),
                           err=True)
                ok = False
        return ok

    _run(ctx, kubeconfig, namespace, work)


async def _apply_one(api: _Api, path: Path, obj: Obj, force: bool) -> str:
    r, namespace, name = _object_target(api, path, obj)
    gvr = _gvr(r)
    body = {**obj, "metadata": {**_meta(obj)}}
    if r.namespaced:
        body["metadata"]["namespace"] = namespace
    before = ""
    try:
        before = _str(_meta(await api.client.get(gvr, namespace, name)).get("resourceVersion"))
    except StatusError as e:
        if e.code != 404:
            raise
    # Strict, as kubectl's default --validate=strict: a misspelt field is an error, not a
    # silently dropped setting.
    params = {"fieldManager": FIELD_MANAGER, "fieldValidation": "Strict",
              **({"force": "true"} if force else {})}
    status, applied = await api.client.send("PATCH", gvr.path(namespace, name), params=params,
                                            body=body, content_type="application/apply-patch+yaml")
    after = _str(_meta(applied).get("resourceVersion"))
    verb = ("created" if status == 201
            else "unchanged" if before and after == before else "configured")
    return f"{kind_ref(r)}/{name} {verb}"


# -- get ------------------------------------------------------------------------------------


@click.command()
@click.argument("kind")
@click.argument("names", nargs=-1)
@click.option("-o", "--output", type=click.Choice(OUTPUT_FORMATS), default=None,
              help="wide: more columns; yaml/json: the objects; name: KIND/NAME lines.")
@click.option("-l", "--selector", default="", metavar="SELECTOR",
              help="Label selector, e.g. app=web,tier!=db.")
@click.option("-A", "--all-namespaces", is_flag=True, help="List across all namespaces.")
@_client_options
@click.pass_context
def get(ctx: click.Context, kind: str, names: tuple[str, ...], output: str | None,
        selector: str, all_namespaces: bool, kubeconfig: Path | None,
        namespace: str | None) -> None:
    """Show objects of KIND as a table, or as YAML, JSON or names.

    KIND is a kind, resource or short name (svc, services, endpointslices, no, ns, po...);
    NAMEs pick objects, else all of them (-l filters). KIND/NAME works too.
    """
    r, wanted = _kind_and_names(kind, names)
    if wanted and all_namespaces:
        _fail("error: a resource cannot be retrieved by name across all namespaces")

    async def work(api: _Api) -> bool:
        ns = "" if all_namespaces else api.namespace_for(r)
        return await _get(api, r, ns, wanted, output, selector,
                          with_namespace=all_namespaces and r.namespaced)

    _run(ctx, kubeconfig, namespace, work)


async def _get(api: _Api, r: Resource, ns: str, names: Sequence[str], output: str | None,
               selector: str, *, with_namespace: bool) -> bool:
    gvr, errors = _gvr(r), []
    if output in (None, "wide"):
        tables = []
        if names:
            for name in names:
                try:
                    tables.append(await api.client.table(gvr, ns, name))
                except StatusError as e:
                    errors.append(format_status_error(e))
        else:
            tables.append(await api.client.table(gvr, ns, label_selector=selector))
        text = render_table(tables, wide=output == "wide", with_namespace=with_namespace)
        click.echo(text, nl=False)
        if not text and not errors:
            click.echo(f"No resources found in {ns} namespace." if ns and r.namespaced
                       else "No resources found", err=True)
    else:
        objects = []
        if names:
            for name in names:
                try:
                    objects.append(await api.client.get(gvr, ns, name))
                except StatusError as e:
                    errors.append(format_status_error(e))
        else:
            objects = (await api.client.list_all(gvr, ns, label_selector=selector)).items
        objects = [_without_managed_fields(o) for o in objects]
        if output == "name":
            for obj in objects:
                click.echo(f"{kind_ref(r)}/{_str(_meta(obj).get('name'))}")
        elif objects or not names:
            doc = objects[0] if len(names) == 1 else _as_list(objects)
            click.echo(dump_json(doc) if output == "json" else dump_yaml(doc), nl=False)
    for message in errors:
        click.echo(message, err=True)
    return not errors


# -- delete ---------------------------------------------------------------------------------


@click.command()
@click.argument("args", nargs=-1, metavar="[KIND NAME...]")
@click.option("-f", "--filename", "files", multiple=True,
              type=click.Path(path_type=Path, allow_dash=True),
              help="Delete the objects a manifest names; '-' reads stdin.")
@click.option("-l", "--selector", default="", metavar="SELECTOR",
              help="Delete every object of KIND matching this label selector.")
@click.option("--ignore-not-found", is_flag=True, help="An absent object is not an error.")
@_client_options
@click.pass_context
def delete(ctx: click.Context, args: tuple[str, ...], files: tuple[Path, ...], selector: str,
           ignore_not_found: bool, kubeconfig: Path | None, namespace: str | None) -> None:
    """Delete objects by name, by label selector or as listed in manifests.

    Prints `KIND "NAME" deleted` for each; an absent object is an error (exit 1) unless
    --ignore-not-found. KIND/NAME works too.
    """
    if files and args:
        _fail("error: there is no need to specify a resource type as a separate argument "
              "when passing arguments in resource/name form or with -f")
    if not files and not args:
        _fail("error: You must provide one or more resources by argument or filename.")
    targets: list[tuple[str, Path | None, Obj | None]] = []
    resource: Resource | None = None
    if files:
        targets = [("", path, obj) for path, obj in _manifests(files)]
    else:
        resource, names = _kind_and_names(args[0], args[1:])
        if not names and not selector:
            _fail("error: resource(s) were provided, but no name was specified")
        targets = [(name, None, None) for name in names]

    async def work(api: _Api) -> bool:
        jobs: list[tuple[Resource, str, str, str]] = []  # resource, namespace, name, context
        for target, path, obj in targets:
            if path is not None and obj is not None:
                r, ns, name = _object_target(api, path, obj)
                jobs.append((r, ns, name, f"error when deleting {go_quote(_source_name(path))}: "))
            elif resource is not None:
                jobs.append((resource, api.namespace_for(resource), target, ""))
        if resource is not None and selector and not targets:
            ns = api.namespace_for(resource)
            found = await api.client.list_all(_gvr(resource), ns, label_selector=selector)
            jobs = [(resource, ns, _str(_meta(o).get("name")), "") for o in found.items]
            if not jobs:
                click.echo("No resources found", err=True)
        ok = True
        for r, ns, name, context in jobs:
            try:
                await api.client.delete(_gvr(r), ns, name)
            except StatusError as e:
                if e.code == 404 and ignore_not_found:
                    continue
                message = format_status_error(e)
                if context and message.startswith("Error from server"):
                    head, _, rest = message.partition(": ")
                    message = f"{head}: {context}{rest}"
                click.echo(message, err=True)
                ok = False
                continue
            click.echo(f"{kind_ref(r)} {go_quote(name)} deleted")
        return ok

    _run(ctx, kubeconfig, namespace, work)


# -- describe -------------------------------------------------------------------------------


@click.command()
@click.argument("kind")
@click.argument("names", nargs=-1)
@click.option("-l", "--selector", default="", metavar="SELECTOR",
              help="Describe every object of KIND matching this label selector.")
@_client_options
@click.pass_context
def describe(ctx: click.Context, kind: str, names: tuple[str, ...], selector: str,
             kubeconfig: Path | None, namespace: str | None) -> None:
    """Show objects of KIND in detail, as kubectl describe does.

    Services show their ports with the ready endpoints behind each (from the EndpointSlices
    labelled kubernetes.io/service-name) and their events.
    """
    r, wanted = _kind_and_names(kind, names)

    async def work(api: _Api) -> bool:
        gvr, ns = _gvr(r), api.namespace_for(r)
        if wanted:
            objects = [await api.client.get(gvr, ns, name) for name in wanted]
        else:
            objects = (await api.client.list_all(gvr, ns, label_selector=selector)).items
            if not objects:
                click.echo(f"No resources found in {ns} namespace." if ns
                           else "No resources found", err=True)
        texts = [await _describe_one(api, r, obj) for obj in objects]
        if texts:
            click.echo("\n\n".join(texts), nl=False)
        return True

    _run(ctx, kubeconfig, namespace, work)


async def _describe_one(api: _Api, r: Resource, obj: Obj) -> str:
    now = datetime.now(UTC)
    meta = _meta(obj)
    name, ns = _str(meta.get("name")), _str(meta.get("namespace"))
    if (r.group, r.kind) == ("", "Namespace"):
        return describe_namespace(obj)
    events = await _events_about(api, r, obj)
    if (r.group, r.kind) == ("", "Service"):
        slices = await _service_slices(api, ns, name)
        return describe_service(obj, slices, events, now)
    if (r.group, r.kind) == ("discovery.k8s.io", "EndpointSlice"):
        return describe_endpoint_slice(obj, events, now)
    return describe_generic(obj, events, now)


async def _service_slices(api: _Api, namespace: str, name: str) -> list[Obj]:
    # Like kubectl, a failed lookup shows as no endpoints rather than failing the describe.
    gvr = GVR("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
    try:
        found = await api.client.list_all(gvr, namespace,
                                          label_selector=f"{SERVICE_NAME_LABEL}={name}")
    except StatusError:
        return []
    return found.items


async def _events_about(api: _Api, r: Resource, obj: Obj) -> list[Obj]:
    """Core v1 events whose involvedObject is ``obj`` (kubectl's searchEvents)."""
    meta = _meta(obj)
    fields = {"involvedObject.name": _str(meta.get("name")),
              "involvedObject.namespace": _str(meta.get("namespace")),
              "involvedObject.kind": r.kind}
    if meta.get("uid"):
        fields["involvedObject.uid"] = _str(meta["uid"])
    selector = ",".join(f"{k}={v}" for k, v in fields.items())
    gvr = GVR("", "v1", "events", "Event")
    try:
        found = await api.client.list_all(gvr, _str(meta.get("namespace")),
                                          field_selector=selector)
    except StatusError:
        return []
    return found.items


# -- exec and logs ----------------------------------------------------------------------------


@click.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.argument("pod")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@_client_options
@click.pass_context
def exec_(ctx: click.Context, pod: str, command: tuple[str, ...], kubeconfig: Path | None,
          namespace: str | None) -> None:
    """Run COMMAND inside POD's network namespace: svcnet exec POD -- CMD [ARGS...].

    The command runs on the host's filesystem (as the pod's containers do), in the pod's
    network namespace, so it sees the pod's IP, routes and cluster DNS.
    """
    import os

    from svcnet.api.podlogs import LABEL_CLUSTER, LABEL_NODE_INDEX
    from svcnet.node.names import ClusterNames

    found: dict[str, str] = {}

    async def locate(api: _Api) -> bool:
        obj = await api.client.get(GVR("", "v1", "pods", "Pod"), api.namespace, pod)
        node_name = _str(_dict(obj.get("spec")).get("nodeName"))
        if not node_name:
            raise CommandError(f"error: pod {pod} is not scheduled to a node yet")
        node = await api.client.get(GVR("", "v1", "nodes", "Node", False), "", node_name)
        labels = _dict(_meta(node).get("labels"))
        if LABEL_CLUSTER not in labels or LABEL_NODE_INDEX not in labels:
            raise CommandError(f"error: node {node_name} is not a svcnet node")
        names = ClusterNames.for_cluster(_str(labels[LABEL_CLUSTER]))
        found["netns"] = names.pod_network(int(_str(labels[LABEL_NODE_INDEX])),
                                           _str(_meta(obj).get("uid"))).pod_netns
        return True

    _run(ctx, kubeconfig, namespace, locate)
    argv = list(command[1:] if command and command[0] == "--" else command)
    if not argv:
        _fail("error: you must specify a command to run")
    if os.geteuid() != 0:
        _fail("error: svcnet exec needs root (it enters a network namespace)")
    # ip netns exec also bind-mounts /etc/netns/<pod>/resolv.conf: the pod's cluster DNS.
    os.execvp("ip", ["ip", "netns", "exec", found["netns"], *argv])


@click.command()
@click.argument("pod")
@click.option("-c", "--container", default="", help="Container (default: the only one).")
@click.option("-f", "--follow", is_flag=True, help="Stream new output.")
@click.option("-p", "--previous", is_flag=True, help="The previous run's log.")
@click.option("--tail", "tail", default=-1, help="Only the last N lines.")
@_client_options
@click.pass_context
def logs(ctx: click.Context, pod: str, container: str, follow: bool, previous: bool,
         tail: int, kubeconfig: Path | None, namespace: str | None) -> None:
    """Print a pod's container log (as kubectl logs does, through the API)."""
    params = {k: v for k, v in (("container", container), ("follow", "true" if follow else ""),
                                ("previous", "true" if previous else ""),
                                ("tailLines", str(tail) if tail >= 0 else "")) if v}

    async def stream(api: _Api) -> bool:
        path = f"{GVR('', 'v1', 'pods', 'Pod').path(api.namespace, pod, 'log')}"
        session = api.client._get_session()
        async with session.get(api.client.server + path, params=params,
                               headers=api.client._headers) as resp:
            if resp.status >= 300:
                from svcnet.client.rest import status_error_from

                raise status_error_from(resp.status, await resp.read())
            async for chunk in resp.content.iter_any():
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
        return True

    _run(ctx, kubeconfig, namespace, stream)


@click.command()
@click.argument("service")
@click.option("--node", "node_name", default="", help="Node to explain for (default: the first).")
@_client_options
@click.pass_context
def explain(ctx: click.Context, service: str, node_name: str, kubeconfig: Path | None,
            namespace: str | None) -> None:
    """Show how SERVICE's traffic is handled on a node: frontends, verdicts, backends."""
    from svcnet.api.podlogs import LABEL_CLUSTER, LABEL_NODE_INDEX
    from svcnet.node.names import ClusterNames
    from svcnet.proxy.explain import explain as explain_service
    from svcnet.proxy.service import node_info

    async def work(api: _Api) -> bool:
        svc_gvr = GVR("", "v1", "services", "Service")
        svc = await api.client.get(svc_gvr, api.namespace, service)
        services = (await api.client.list_all(svc_gvr)).items
        slices = (await api.client.list_all(
            GVR("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"))).items
        nodes_gvr = GVR("", "v1", "nodes", "Node", False)
        nodes = sorted((await api.client.list_all(nodes_gvr)).items,
                       key=lambda n: _str(_meta(n).get("name")))
        node = next((n for n in nodes if _meta(n).get("name") == node_name),
                    None) if node_name else (nodes[0] if nodes else None)
        if node is None:
            raise CommandError(f"error: node {node_name or '(any)'} not found")
        for line in explain_service(svc, services, slices, node_info(node)):
            click.echo(line)
        labels = _dict(_meta(node).get("labels"))
        if LABEL_CLUSTER in labels and LABEL_NODE_INDEX in labels:
            netns = ClusterNames.for_cluster(_str(labels[LABEL_CLUSTER])).node_netns(
                int(_str(labels[LABEL_NODE_INDEX])))
            click.echo(f"  live: ip netns exec {netns} nft list table ip svcnet")
        return True

    _run(ctx, kubeconfig, namespace, work)
