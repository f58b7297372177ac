"""Parse a Kubernetes API path into what it addresses (apiserver's RequestInfo), purely.

    /api/v1/namespaces/{ns}/{resource}[/{name}[/{subresource}]]
    /api/v1/{resource}[/{name}[/{subresource}]]            cluster-scoped, or all namespaces
    /apis/{group}/{version}/...                               the same below a group
    /api/v1/namespaces/{name}[/status|/finalize]              namespaces themselves

``namespaces/{x}/status`` and ``namespaces/{x}/finalize`` address the namespace's own
subresources; any other third segment is a resource inside the namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(frozen=True, slots=True)
class RequestInfo:
    group: str
    version: str
    resource: str
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    #: What follows ``nodes/{name}/proxy/`` (upstream's ``Parts`` after the subresource).
    path: str = ""


def parse_path(path: str) -> RequestInfo | None:
    """None when the path is not a resource path (discovery, /version, unknown...)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None
    if rest[0] == "namespaces" and group == "":
        if len(rest) == 1:
            return RequestInfo(group, version, "namespaces")
        if len(rest) == 2:
            return RequestInfo(group, version, "namespaces", name=rest[1])
        if len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES:
            return RequestInfo(group, version, "namespaces", name=rest[1], subresource=rest[2])
    if rest[0] == "namespaces" and len(rest) >= 3:
        ns, rest = rest[1], rest[2:]
    else:
        ns = ""
    if len(rest) > 3 and rest[0] == "nodes" and rest[2] == "proxy" and not ns:
        return RequestInfo(group, version, "nodes", name=rest[1], subresource="proxy",
                           path="/".join(rest[3:]))
    if len(rest) > 3:
        return None
    return RequestInfo(group, version, rest[0], namespace=ns,
                       name=rest[1] if len(rest) > 1 else "",
                       subresource=rest[2] if len(rest) > 2 else "")
