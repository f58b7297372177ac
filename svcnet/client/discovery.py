"""Discovery as a client reads it: the server's preferred namespaced resources.

Theory of operation (client-go ``discovery/discovery_client.go``: ``ServerGroups``,
``ServerPreferredNamespacedResources``, ``ErrGroupDiscoveryFailed``, and ``helper.go``'s
``GroupVersionResources``)
--------------------------------------------------------------------------------------------
Legacy discovery: ``GET /api`` names the core versions, ``GET /apis`` every group with its
preferred version; one ``APIResourceList`` per (group, preferred version) then lists its
resources. Subresources (``pods/status``) and cluster-scoped resources are dropped. A group
whose list cannot be read does not spoil the others: what was found is returned together with
a :class:`GroupDiscoveryFailed` naming the failed group versions, as client-go returns
``ErrGroupDiscoveryFailed`` next to a partial result; callers decide whether that is fatal (the
namespace controller goes on with what it has, and says so in a condition).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from svcnet.api.errors import StatusError
from svcnet.client.rest import GVR, TransportError

__all__ = ["DiscoveredResource", "GroupDiscoveryFailed", "GroupVersionParseError", "Requester",
           "parse_group_version", "resource_for_kind", "server_preferred_namespaced_resources",
           "to_gvr"]

Obj = dict[str, Any]


class Requester(Protocol):
    async def request(self, method: str, path: str, *,
                      params: Mapping[str, str] | None = None, body: Any = None,
                      content_type: str = "application/json") -> Any: ...


@dataclass(frozen=True, slots=True)
class DiscoveredResource:
    """One resource of an ``APIResourceList``: where it is and what it answers."""

    group_version: str
    """As the list spelled it (``v1``, ``apps/v1``): parsed by :func:`parse_group_version`."""
    name: str
    kind: str
    verbs: frozenset[str]


class GroupDiscoveryFailed(Exception):
    """ErrGroupDiscoveryFailed: some group versions could not be listed."""

    def __init__(self, groups: Mapping[str, BaseException]) -> None:
        self.groups = dict(groups)
        parts = [f"{gv}: {err}" for gv, err in sorted(self.groups.items())]
        super().__init__("unable to retrieve the complete list of server APIs: "
                         + ", ".join(parts))


class GroupVersionParseError(ValueError):
    """schema.ParseGroupVersion's error."""


def parse_group_version(gv: str) -> tuple[str, str]:
    """schema.ParseGroupVersion: ``v1`` → ("", "v1"), ``apps/v1`` → ("apps", "v1")."""
    if not gv or gv == "/":
        return "", ""
    parts = gv.split("/")
    if len(parts) == 1:
        return "", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise GroupVersionParseError(f"unexpected GroupVersion string: {gv}")


def to_gvr(res: DiscoveredResource) -> GVR:
    """The REST client's address of a discovered (namespaced) resource."""
    group, version = parse_group_version(res.group_version)
    return GVR(group, version, res.name, res.kind)


def _resources(doc: Any, group_version: str) -> list[DiscoveredResource]:
    out = []
    for r in (doc or {}).get("resources") or []:
        name = str(r.get("name") or "")
        if not name or "/" in name or not r.get("namespaced"):
            continue
        out.append(DiscoveredResource(group_version, name, str(r.get("kind") or ""),
                                      frozenset(str(v) for v in r.get("verbs") or [])))
    return out


async def server_preferred_namespaced_resources(
        client: Requester) -> tuple[list[DiscoveredResource], GroupDiscoveryFailed | None]:
    """Every namespaced resource of each group's preferred version, core first, and the
    failure of the group versions that could not be listed (None if all were).

    The roots (``/api``, ``/apis``) failing is not partial: that raises.
    """
    core = await client.request("GET", "/api")
    groups = await client.request("GET", "/apis")
    wanted = [str(v) for v in (core or {}).get("versions") or []][:1]
    for g in (groups or {}).get("groups") or []:
        preferred = (g.get("preferredVersion") or {}).get("groupVersion") or next(
            (v.get("groupVersion") for v in g.get("versions") or []), "")
        if preferred:
            wanted.append(str(preferred))
    found: list[DiscoveredResource] = []
    failed: dict[str, BaseException] = {}
    for gv in wanted:
        path = f"/api/{gv}" if "/" not in gv else f"/apis/{gv}"
        try:
            found.extend(_resources(await client.request("GET", path), gv))
        except (StatusError, TransportError) as e:  # reported; the other groups still count
            failed[gv] = e
    return found, (GroupDiscoveryFailed(failed) if failed else None)


async def resource_for_kind(client: Requester, api_version: str, kind: str) -> GVR | None:
    """The resource whose objects are ``api_version``/``kind`` (a RESTMapper's one lookup),
    from that group version's ``APIResourceList``; None when the server serves no such kind
    (the group version is not served, or does not have it)."""
    group, version = parse_group_version(api_version)
    path = f"/apis/{group}/{version}" if group else f"/api/{version}"
    try:
        doc = await client.request("GET", path)
    except StatusError as e:
        if e.code == 404:
            return None
        raise
    for r in (doc or {}).get("resources") or []:
        name = str(r.get("name") or "")
        if name and "/" not in name and r.get("kind") == kind:
            return GVR(group, version, name, kind, namespaced=bool(r.get("namespaced")))
    return None
