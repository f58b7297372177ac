"""API discovery documents and ``/version``, as pure builders over :mod:`resources`.

Two discovery protocols exist, and kubectl 1.32/1.33 speaks both:

* **Aggregated discovery** (``apidiscovery.k8s.io/v2``): ``GET /api`` and ``GET /apis`` each
  return one ``APIGroupDiscoveryList`` holding every resource, so a client needs two requests.
  kubectl asks for it first, with an Accept header listing
  ``application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList``, then ``v2beta1``,
  then plain ``application/json``. The response **must** carry the aggregated media type as its
  Content-Type: kubectl decides how to parse the body from that header alone, and reads an
  aggregated body served as ``application/json`` as an empty legacy document (every command then
  fails with ``the server doesn't have a resource type "svc"``).
* **Legacy discovery**: ``/api`` → ``APIVersions``, ``/apis`` → ``APIGroupList``, then one
  ``APIResourceList`` per group version (``/api/v1``, ``/apis/apps/v1``, ...). The official
  Python client and older tools use only this.

:func:`negotiate_discovery` picks between them from the Accept header, the way the apiserver's
negotiation does (clauses ordered by quality, then specificity, first acceptable one wins).

What kubectl needs from either form (found by experiment: docs/KUBECTL.md):
``shortNames`` (``kubectl get svc``), ``categories: ["all"]`` (``kubectl get all``) and
``verbs``; subresources are listed as ``services/status`` entries (legacy) or nested
``subresources`` (aggregated).

``/version`` reports Kubernetes 1.33 because the gcloud ``kubectl`` dispatcher runs the
``kubectl.1.<minor>`` binary matching the server's minor version.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from svcnet.apiserver import resources
from svcnet.apiserver.resources import Resource

__all__ = [
    "AGGREGATED_V2",
    "AGGREGATED_V2BETA1",
    "GIT_VERSION",
    "DiscoveryFormat",
    "MediaRange",
    "aggregated_discovery",
    "api_group",
    "api_group_list",
    "api_resource_list",
    "api_versions",
    "negotiate_discovery",
    "parse_accept",
    "version_info",
]

Obj = dict[str, Any]

#: The exact response Content-Types of aggregated discovery (kubectl compares them literally).
AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
_AGGREGATED: dict[str, str] = {"v2": AGGREGATED_V2, "v2beta1": AGGREGATED_V2BETA1}

MAJOR = "1"
MINOR = "33"
GIT_VERSION = f"v{MAJOR}.{MINOR}.0+svcnet"


# -------------------------------------------------------------------------- Accept parsing


@dataclass(frozen=True, slots=True)
class MediaRange:
    """One clause of an Accept header: ``type/subtype;param=value;q=0.5``."""

    type: str
    subtype: str
    params: tuple[tuple[str, str], ...] = ()
    q: float = 1.0

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None

    def matches(self, type_: str, subtype: str) -> bool:
        """Whether this range accepts ``type_/subtype`` (``*`` wildcards allowed)."""
        return self.type in (type_, "*") and self.subtype in (subtype, "*")


def parse_accept(header: str | None) -> list[MediaRange]:
    """Parse an Accept header into clauses, best first.

    Ordered as goautoneg (used by the apiserver) orders them: by ``q`` descending, then concrete
    types before wildcards; otherwise the client's order is kept. Malformed clauses are skipped
    rather than rejected, and ``q=0`` clauses ("not acceptable") are dropped.
    """
    ranges: list[MediaRange] = []
    for clause in (header or "").split(","):
        parts = [p.strip() for p in clause.split(";")]
        media_type, _, subtype = parts[0].partition("/")
        media_type, subtype = media_type.strip().lower(), subtype.strip().lower()
        if not media_type or not subtype:
            continue
        q = 1.0
        params: list[tuple[str, str]] = []
        for part in parts[1:]:
            key, sep, value = part.partition("=")
            if not sep:
                continue
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
            else:
                params.append((key, value))
        if q > 0:
            ranges.append(MediaRange(media_type, subtype, tuple(params), q))
    # sorted() is stable, so equal clauses keep the client's order.
    return sorted(ranges, key=lambda r: (-r.q, r.type == "*", r.subtype == "*"))


@dataclass(frozen=True, slots=True)
class DiscoveryFormat:
    """The outcome of discovery negotiation.

    ``version`` is ``"v2"`` or ``"v2beta1"`` for aggregated discovery, ``None`` for legacy;
    ``content_type`` is the exact Content-Type to send with the body.
    """

    version: str | None
    content_type: str

    @property
    def aggregated(self) -> bool:
        return self.version is not None


_LEGACY = DiscoveryFormat(None, "application/json")


def negotiate_discovery(accept: str | None) -> DiscoveryFormat:
    """Choose aggregated (v2 or v2beta1) or legacy discovery for ``/api`` and ``/apis``.

    The first acceptable clause wins: an aggregated clause (``as=APIGroupDiscoveryList;
    g=apidiscovery.k8s.io;v=v2|v2beta1``) selects aggregated discovery of that version; a plain
    JSON clause or a wildcard selects legacy. Clauses asking for something else (protobuf, an
    unknown ``as=``) are skipped; if nothing fits, legacy JSON is served rather than a 406, which
    is what every client of this server can read.
    """
    for clause in parse_accept(accept):
        if not clause.matches("application", "json"):
            continue
        as_kind, group, version = clause.param("as"), clause.param("g"), clause.param("v")
        if as_kind is None and group is None and version is None:
            return _LEGACY
        if (as_kind == "APIGroupDiscoveryList" and group == "apidiscovery.k8s.io"
                and version in _AGGREGATED):
            return DiscoveryFormat(version, _AGGREGATED[version])
    return _LEGACY


# ------------------------------------------------------------------------ legacy discovery


def api_versions(server_address: str | None = None) -> Obj:
    """``GET /api`` (legacy): the core group's versions.

    ``serverAddressByClientCIDRs`` is always present: the official Python client rejects an
    ``APIVersions`` without that list. With ``server_address`` (``host:port``) it holds one
    ``0.0.0.0/0`` entry, as upstream reports its advertised address.
    """
    cidrs = ([{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
             if server_address else [])
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": cidrs}


def _group_entry(group: str, extra: Sequence[Resource]) -> Obj:
    versions = [{"groupVersion": f"{group}/{v}", "version": v}
                for g, v in resources.group_versions(extra) if g == group]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list(extra: Sequence[Resource] = ()) -> Obj:
    """``GET /apis`` (legacy): every named group with its versions and preferred version;
    ``extra``: the custom resources served now."""
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group_entry(g, extra) for g in resources.group_order(extra)]}


def api_group(group: str, extra: Sequence[Resource] = ()) -> Obj | None:
    """``GET /apis/<group>``: one ``APIGroup``, or None when the group is not served."""
    if group not in resources.group_order(extra):
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, extra)}


def _legacy_entries(res: Resource) -> list[Obj]:
    entry: Obj = {"name": res.resource, "singularName": res.singular,
                  "namespaced": res.namespaced, "kind": res.kind, "verbs": list(res.verbs)}
    if res.short_names:
        entry["shortNames"] = list(res.short_names)
    if res.categories:
        entry["categories"] = list(res.categories)
    if res.persisted:
        entry["storageVersionHash"] = res.storage_version_hash
    entries = [entry]
    for sub in res.subresources:
        sub_entry: Obj = {"name": f"{res.resource}/{sub.name}", "singularName": "",
                          "namespaced": res.namespaced}
        group, version, kind = res.subresource_gvk(sub)
        # Upstream names group/version only when they differ from the list's group version.
        if (group, version) != (res.group, res.version):
            sub_entry["group"] = group
            sub_entry["version"] = version
        sub_entry["kind"] = kind
        sub_entry["verbs"] = list(sub.verbs)
        entries.append(sub_entry)
    return entries


def api_resource_list(group: str, version: str, extra: Sequence[Resource] = ()) -> Obj | None:
    """``GET /api/v1`` or ``GET /apis/<group>/<version>``; None when not served.

    Subresources follow their resource as ``<resource>/<subresource>`` entries with an empty
    ``singularName``, exactly as upstream lists ``services/status``.
    """
    served = list(resources.resources_in(group, version, extra))
    if not served:
        return None
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": [e for r in served for e in _legacy_entries(r)]}


# -------------------------------------------------------------------- aggregated discovery


def _gvk(group: str, version: str, kind: str) -> Obj:
    return {"group": group, "version": version, "kind": kind}


def _aggregated_resource(res: Resource) -> Obj:
    entry: Obj = {"resource": res.resource,
                  "responseKind": _gvk(res.group, res.version, res.kind),
                  "scope": res.scope,
                  "singularResource": res.singular,
                  "verbs": list(res.verbs)}
    if res.short_names:
        entry["shortNames"] = list(res.short_names)
    if res.categories:
        entry["categories"] = list(res.categories)
    if res.subresources:
        entry["subresources"] = [
            {"subresource": sub.name, "responseKind": _gvk(*res.subresource_gvk(sub)),
             "verbs": list(sub.verbs)}
            for sub in res.subresources]
    return entry


def _aggregated_group(group: str, extra: Sequence[Resource]) -> Obj:
    # The core group's metadata has no name; named groups carry theirs.
    metadata: Obj = {"name": group} if group else {}
    versions = [{"version": v, "resources": [_aggregated_resource(r)
                                             for r in resources.resources_in(group, v, extra)],
                 "freshness": "Current"}
                for g, v in resources.group_versions(extra) if g == group]
    return {"metadata": metadata, "versions": versions}


def aggregated_discovery(root: str, version: str = "v2",
                         extra: Sequence[Resource] = ()) -> Obj:
    """The ``APIGroupDiscoveryList`` for ``/api`` (``root="api"``) or ``/apis`` (``"apis"``).

    ``version`` is the negotiated ``apidiscovery.k8s.io`` version (``v2`` or ``v2beta1``, whose
    bodies are identical apart from ``apiVersion``). Serve it with
    :attr:`DiscoveryFormat.content_type` as the Content-Type.
    """
    if root not in ("api", "apis"):
        raise ValueError(f"aggregated discovery root must be 'api' or 'apis', not {root!r}")
    if version not in _AGGREGATED:
        raise ValueError(f"unknown aggregated discovery version {version!r}")
    groups = [""] if root == "api" else list(resources.group_order(extra))
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version}",
            "metadata": {}, "items": [_aggregated_group(g, extra) for g in groups]}


# ---------------------------------------------------------------------------------- version


def _default_platform() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)
    return f"linux/{arch}"


def version_info(*, git_commit: str = "0" * 40, build_date: str = "2025-04-23T00:00:00Z",
                 go_version: str = "go1.24.2", plat: str | None = None) -> Obj:
    """The ``GET /version`` body: Kubernetes 1.33 (``major "1"``, ``minor "33"``).

    Serve it with ``Cache-Control: no-cache, private``: the kubectl dispatcher asks with
    ``max-age=3600`` and would otherwise keep a stale answer on disk for an hour. The
    ``emulation*``/``minCompatibility*`` fields are the ones a 1.33 apiserver adds.
    """
    return {"major": MAJOR, "minor": MINOR,
            "emulationMajor": MAJOR, "emulationMinor": MINOR,
            "minCompatibilityMajor": MAJOR, "minCompatibilityMinor": str(int(MINOR) - 1),
            "gitVersion": GIT_VERSION, "gitCommit": git_commit, "gitTreeState": "clean",
            "buildDate": build_date, "goVersion": go_version, "compiler": "gc",
            "platform": plat or _default_platform()}
