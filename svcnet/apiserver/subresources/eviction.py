"""``pods/eviction``: EvictionREST (pkg/registry/core/pod/storage/eviction.go), what ``kubectl
drain`` and node-pressure tools use to delete a pod only when its PodDisruptionBudget allows.

Theory of operation. A ``policy/v1`` (or ``v1beta1``) ``Eviction`` names the pod and may carry
``deleteOptions``. The pod is read; one that is Pending, Succeeded, Failed or already being
deleted is simply deleted (a live one only at the version read). Otherwise the budgets of its
namespace that select it decide (:mod:`svcnet.api.policy`):

* none: the pod is deleted;
* more than one: refused (upstream answers a Failure Status with code 500, in a 201);
* one: an unready pod goes without taking a disruption when the budget allows that
  (``AlwaysAllow``, or ``IfHealthyBudget`` while the budget is met), deleted at the version
  read so that it cannot become Ready meanwhile (a conflict is a 429: try again). Otherwise
  the eviction takes one disruption (:func:`~svcnet.api.policy.take_disruption`: 429 while the
  controller has not observed the budget's spec or none is allowed), writes the budget's
  status (the pod recorded in ``disruptedPods``, so that the controller does not count it as
  healthy until it is gone), retrying on conflicts, and then deletes the pod.

A dry run goes through every check and writes nothing. The answer is a ``Status`` of
``Success``, 201.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from svcnet.api import policy
from svcnet.api.access import map_of, name_of, str_of
from svcnet.api.errors import StatusError, bad_request, go_quote
from svcnet.api.schema import decode
from svcnet.apiserver.body import read_body
from svcnet.apiserver.common import Obj, Served, created_status, dry_run_of, encoded_response
from svcnet.apiserver.deleteoptions import DeleteOptions, apply_body
from svcnet.apiserver.requestinfo import RequestInfo
from svcnet.registry.generic import Preconditions, Registry

if TYPE_CHECKING:
    from svcnet.apiserver.auth import User
    from svcnet.apiserver.handlers import Handlers

__all__ = ["serve_eviction"]

#: EvictionsRetry: conflicts on the budget are retried this often, this far apart.
RETRIES: Final = 20
RETRY_INTERVAL: Final = 0.5
_VERSIONS: Final = ("policy/v1", "policy/v1beta1")
_BUDGETS: Final = (policy.GROUP, "v1", "poddisruptionbudgets")


async def serve_eviction(handlers: Handlers, request: web.Request, info: RequestInfo,
                         served: Served, user: User) -> web.Response:
    """Evict one pod: delete it if no PodDisruptionBudget forbids it now."""
    await handlers.authorize(user, "create", info, served)
    await handlers.require_namespace(info, served, creating=False)
    body = await read_body(request)
    if not isinstance(body, dict):
        raise bad_request("Eviction must be a JSON object")
    api_version = str(body.get("apiVersion") or policy.API_VERSION)
    if api_version not in _VERSIONS:
        raise bad_request(f"the API version in the data ({api_version}) does not match the "
                          f"expected API version ({policy.API_VERSION})")
    eviction = decode({**body, "apiVersion": policy.API_VERSION}, api_version=policy.API_VERSION,
                      kind="Eviction").obj
    if name_of(eviction) != info.name:
        raise bad_request("name in URL does not match name in Eviction object")
    options = DeleteOptions(Preconditions(), dry_run_of(request), None, "")
    raw_options = eviction.get("deleteOptions")
    if isinstance(raw_options, dict) and raw_options:
        options = apply_body(options, raw_options)
    result = await _evict(handlers, served.registry, info, options)
    return encoded_response(request, result, "v1", "Status", 201)


async def _evict(handlers: Handlers, pods: Registry, info: RequestInfo,
                 options: DeleteOptions) -> Obj:
    for attempt in range(RETRIES):
        if attempt:
            await asyncio.sleep(RETRY_INTERVAL)
        pod = await pods.get(info.namespace, info.name)
        if not policy.can_ignore_budgets(pod):
            break
        try:
            await _delete(pods, pod, options, pin=policy.enforces_resource_version(pod))
        except StatusError as e:
            # Changed since it was read: look again, unless the client pinned a version.
            if e.code == 409 and not options.preconditions.resource_version:
                continue
            raise
        return created_status()
    else:
        raise _conflicts("pods", info.name)

    budgets_registry = handlers.ctx.served[_BUDGETS].registry
    page = await budgets_registry.list(info.namespace)
    budgets = policy.covering_budgets(page.items, pod)
    if len(budgets) > 1:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "This pod has more than one PodDisruptionBudget, which the eviction "
                           "subresource does not support.", "code": 500}
    if not budgets:
        await _delete(pods, pod, options, pin=False)
        return created_status()

    budget = budgets[0]
    if policy.may_evict_unready(budget, pod):
        try:
            await _delete(pods, pod, options, pin=True)
        except StatusError as e:
            if e.code == 409 and not options.preconditions.resource_version:
                raise policy.still_processing(name_of(budget)) from None
            raise
        return created_status()

    await _take_disruption(handlers, budgets_registry, dict(budget), info.name, options)
    await _delete(pods, pod, options, pin=False)
    return created_status()


async def _take_disruption(handlers: Handlers, budgets: Registry, budget: dict[str, Any],
                           pod_name: str, options: DeleteOptions) -> None:
    """Check and decrement the budget, written through ``/status``; retried on conflicts."""
    namespace, name = str_of(map_of(budget, "metadata"), "namespace"), name_of(budget)
    for attempt in range(RETRIES):
        if attempt:
            await asyncio.sleep(RETRY_INTERVAL)
            budget = await budgets.get(namespace, name)
        granted = policy.take_disruption(budget, pod_name, handlers.ctx.clock.now(),
                                         dry_run=options.dry_run)
        if options.dry_run:
            return
        try:
            await budgets.update(namespace, name, granted, status_only=True)
            return
        except StatusError as e:
            if e.code != 409:
                raise
    raise _conflicts("PodDisruptionBudget", name)


def _conflicts(what: str, name: str) -> StatusError:
    """errors.NewTimeoutError after the retries: 504, try again in 10 s."""
    return StatusError(504, "Timeout",
                       f"Timeout: couldn't update {what} {go_quote(name)} due to conflicts",
                       {"retryAfterSeconds": 10})


async def _delete(pods: Registry, pod: Obj, options: DeleteOptions, *, pin: bool) -> None:
    """Delete the pod with the eviction's options; ``pin``: at the version read unless the
    client gave a version of its own."""
    pre = options.preconditions
    if pin and not pre.resource_version:
        pre = Preconditions(pre.uid, str_of(map_of(pod, "metadata"), "resourceVersion"))
    await pods.delete(str_of(map_of(pod, "metadata"), "namespace"), name_of(pod),
                      preconditions=pre, dry_run=options.dry_run, grace_period=options.grace,
                      propagation_policy=options.policy)
