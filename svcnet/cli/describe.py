"""``svcnet describe``: kubectl's describers for Services, Namespaces, EndpointSlices, and its
generic describer for every other kind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from svcnet.api.access import (
    as_dict as _dict,
    as_int as _int,
    as_list as _list,
    as_text as _str,
)
from svcnet.api.resourcelists import quantity_string
from svcnet.apiserver.tables import since as _since
from svcnet.cli.printing import _cell_text, tabwrite
from svcnet.util.clock import parse_time

Obj = dict[str, Any]

LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"


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


_QUOTA_SCOPE_HELP = {
    "Terminating": "Matches all pods that have an active deadline. These pods have a limited "
                   "lifespan on a node before being actively terminated by the system.",
    "NotTerminating": "Matches all pods that do not have an active deadline. These pods usually "
                      "include long running pods whose container command is not expected to "
                      "terminate.",
    "BestEffort": "Matches all pods that do not have resource requirements set. These pods "
                  "have a best effort quality of service.",
    "NotBestEffort": "Matches all pods that have at least one resource requirement set. These "
                     "pods have a burstable or guaranteed quality of service.",
}
_LIMIT_RANGE_FIELDS = ("min", "max", "defaultRequest", "default", "maxLimitRequestRatio")


def _describe_quotas(w: _Describer, quotas: list[Obj]) -> None:
    """DescribeResourceQuotas: each quota's scopes and its used/hard per resource."""
    if not quotas:
        w.write(0, "No resource quota.\n")
        return
    w.write(0, "Resource Quotas\n")
    for q in sorted(quotas, key=lambda q: _str(_dict(q.get("metadata")).get("name"))):
        w.write(1, f"Name:\t{_str(_dict(q.get('metadata')).get('name'))}\n")
        scopes = sorted(_str(s) for s in _list(_dict(q.get("spec")).get("scopes")))
        if scopes:
            w.write(1, f"Scopes:\t{', '.join(scopes)}\n")
            for scope in scopes:
                if scope in _QUOTA_SCOPE_HELP:
                    w.write(1, f"* {_QUOTA_SCOPE_HELP[scope]}\n")
        w.write(1, "Resource\tUsed\tHard\n")
        w.write(1, "--------\t---\t---\n")
        status = _dict(q.get("status"))
        hard, used = _dict(status.get("hard")), _dict(status.get("used"))
        for name in sorted(hard):
            shown = quantity_string(used[name]) if name in used else "0"
            w.write(1, f"{name}\t{shown}\t{quantity_string(hard[name])}\n")


def _describe_limit_ranges(w: _Describer, limit_ranges: list[Obj]) -> None:
    """DescribeLimitRanges: one row per limit type and resource, ``-`` where unset (kubectl
    walks a Go map, in no fixed order; here by resource name)."""
    if not limit_ranges:
        w.write(0, "No LimitRange resource.\n")
        return
    w.write(0, "Resource Limits\n Type\tResource\tMin\tMax\tDefault Request\t"
               "Default Limit\tMax Limit/Request Ratio\n")
    w.write(0, " ----\t--------\t---\t---\t---------------\t-------------\t"
               "-----------------------\n")
    for limit_range in limit_ranges:
        for item in map(_dict, _list(_dict(limit_range.get("spec")).get("limits"))):
            values = [_dict(item.get(f)) for f in _LIMIT_RANGE_FIELDS]
            for name in sorted({k for v in values for k in v}):
                cells = "\t".join(quantity_string(v[name]) if name in v else "-"
                                  for v in values)
                w.write(0, f" {_str(item.get('type'))}\t{name}\t{cells}\n")


def describe_namespace(ns: Obj, quotas: list[Obj] | None = None,
                       limit_ranges: list[Obj] | None = None) -> str:
    """``kubectl describe namespace``: with the namespace's ResourceQuotas and LimitRanges
    when they were read (None: left out, as kubectl does when it cannot list them)."""
    meta = _dict(ns.get("metadata"))
    w = _Describer()
    w.write(0, f"Name:\t{_str(meta.get('name'))}\n")
    w.labels("Labels", _dict(meta.get("labels")))
    w.annotations("Annotations", _dict(meta.get("annotations")))
    status = _dict(ns.get("status"))
    w.write(0, f"Status:\t{_str(status.get('phase'))}\n")
    conditions = [_dict(c) for c in _list(status.get("conditions"))]
    if conditions:
        w.write(0, "Conditions:\n")
        w.write(1, "Type\tStatus\tLastTransitionTime\tReason\tMessage\n")
        w.write(1, "----\t------\t------------------\t------\t-------\n")
        for c in conditions:
            w.write(1, f"{_str(c.get('type'))}\t{_str(c.get('status'))}\t"
                       f"{_rfc1123z(c.get('lastTransitionTime'))}\t{_str(c.get('reason'))}\t"
                       f"{_str(c.get('message'))}\n")
    if quotas is not None:
        w.write(0, "\n")
        _describe_quotas(w, quotas)
    if limit_ranges is not None:
        w.write(0, "\n")
        _describe_limit_ranges(w, limit_ranges)
    return w.text()


def _rfc1123z(value: Any) -> str:
    """Go's ``time.RFC1123Z`` of a metav1.Time (kubectl reads times into local time); Go's
    zero time when unset."""
    when = parse_time(value)
    if when is None:
        return "Mon, 01 Jan 0001 00:00:00 +0000"
    return when.astimezone().strftime("%a, %d %b %Y %H:%M:%S %z")


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




# -- the API session ------------------------------------------------------------------------
