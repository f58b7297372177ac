"""Kinds as the CLI's users type them (``svc``, ``deployments.apps``, ``eps``), resolved to the
resources the server serves, as kubectl's RESTMapper does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from svcnet.api.errors import go_quote
from svcnet.apiserver.resources import RESOURCES, Resource
from svcnet.client.rest import GVR

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


def gvr_of(r: Resource) -> GVR:
    return GVR(r.group, r.version, r.resource, r.kind, r.namespaced)
