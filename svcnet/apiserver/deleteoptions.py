"""A delete's options (metav1.DeleteOptions), from the query and a body.

kube-apiserver reads them from the query and then from the body, which wins
(``staging/src/k8s.io/apiserver/pkg/endpoints/handlers/delete.go``); an eviction carries them
inside its ``deleteOptions`` (``pkg/registry/core/pod/storage/eviction.go``), read the same way
by :func:`apply_body`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from svcnet.api import errors
from svcnet.api.errors import bad_request
from svcnet.api.schema import decode
from svcnet.apiserver.body import read_body
from svcnet.apiserver.common import dry_run_of
from svcnet.apiserver.query import int64_param
from svcnet.registry.generic import PROPAGATION_POLICIES, Preconditions

__all__ = ["DeleteOptions", "apply_body", "delete_options"]


@dataclass(frozen=True, slots=True)
class DeleteOptions:
    preconditions: Preconditions
    dry_run: bool
    grace: int | None
    policy: str


def apply_body(base: DeleteOptions, body: dict[str, Any], *,
               policy: str | None = None, orphan: bool | None = None) -> DeleteOptions:
    """``base`` (from the query) overridden by a DeleteOptions object's fields.

    ``policy``/``orphan`` are the query's propagationPolicy and orphanDependents, checked
    together with the body's (both set is an error, as ValidateDeleteOptions says)."""
    # Decoding checks every field's type and range (gracePeriodSeconds: int64).
    opts = decode(body, api_version="v1", kind="DeleteOptions").obj
    p = opts.get("preconditions") or {}
    pre = Preconditions(str(p.get("uid") or ""), str(p.get("resourceVersion") or ""))
    grace = base.grace
    if opts.get("gracePeriodSeconds") is not None:
        grace = int(opts["gracePeriodSeconds"])
    if opts.get("propagationPolicy") is not None:
        policy = str(opts["propagationPolicy"])
    if opts.get("orphanDependents") is not None:
        orphan = bool(opts["orphanDependents"])
    return replace(base, preconditions=pre, grace=grace,
                   dry_run=base.dry_run or "All" in (opts.get("dryRun") or []),
                   policy=_propagation(policy, orphan) if (policy, orphan) != (None, None)
                   else base.policy)


async def delete_options(request: web.Request) -> DeleteOptions:
    """A delete's options, from the query and the DeleteOptions body (the body wins)."""
    grace = int64_param(request.query, "gracePeriodSeconds")
    policy: str | None = request.query.get("propagationPolicy")
    orphan: bool | None = None
    if "orphanDependents" in request.query:
        orphan = request.query["orphanDependents"].lower() == "true"
    base = DeleteOptions(Preconditions(), dry_run_of(request), grace,
                         _propagation(policy, orphan))
    body = await read_body(request) if request.can_read_body else None
    if not body:
        return base
    if not isinstance(body, dict):
        raise bad_request("DeleteOptions must be a JSON object")
    return apply_body(base, body, policy=policy, orphan=orphan)


def _propagation(policy: str | None, orphan: bool | None) -> str:
    """ValidateDeleteOptions, and the deprecated orphanDependents as a policy."""
    errs = []
    if policy is not None and orphan is not None:
        errs.append(errors.invalid("propagationPolicy", policy,
                                   "orphanDependents and deletionPropagation cannot be both set"))
    if policy is not None and policy not in PROPAGATION_POLICIES:
        errs.append(errors.not_supported("propagationPolicy", policy,
                                         ["Foreground", "Background", "Orphan", "nil"]))
    if errs:
        raise errors.invalid_error("DeleteOptions", "", errs, "meta.k8s.io")
    if policy is not None:
        return policy
    if orphan is not None:
        return "Orphan" if orphan else "Background"
    return ""
