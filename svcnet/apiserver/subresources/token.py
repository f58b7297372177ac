"""``serviceaccounts/token``: TokenREST (pkg/registry/core/serviceaccount/storage/token.go).

A TokenRequest (authentication.k8s.io/v1) asks for a token of the ServiceAccount named in the
URL, for some audiences, for some seconds, optionally bound to a Pod or Secret so that it dies
with that object. The answer echoes the request with ``status.token`` and
``status.expirationTimestamp``. Nothing is stored.

Nodes may ask only for tokens bound to a pod that runs on them with that ServiceAccount (the
Node authorizer and NodeRestriction together); that is how a node agent fills a pod's
projected ``serviceAccountToken`` volume.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from svcnet.api import errors
from svcnet.api.access import as_dict, as_int, as_list, as_str
from svcnet.api.errors import StatusError, bad_request, go_quote
from svcnet.apiserver.body import read_body
from svcnet.apiserver.common import Obj, Served, json_response
from svcnet.apiserver.requestinfo import RequestInfo
from svcnet.apiserver.satokens import API_AUDIENCES, Bound
from svcnet.util.clock import rfc3339

if TYPE_CHECKING:
    from svcnet.apiserver.auth import User
    from svcnet.apiserver.handlers import Handlers

DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600
MAX_EXPIRATION = 1 << 32
_KIND = "TokenRequest"
_GROUP = "authentication.k8s.io"


def _decode_spec(body: Obj) -> Obj:
    """TokenRequestSpec as Go's decoder takes it: a wrongly typed field is a 400."""
    spec = body.get("spec") or {}
    audiences = spec.get("audiences") if isinstance(spec, dict) else None
    seconds = spec.get("expirationSeconds") if isinstance(spec, dict) else None
    field = ""
    if not isinstance(spec, dict):
        field, go_type = "spec", "v1.TokenRequestSpec"
    elif audiences is not None and (not isinstance(audiences, list)
                                    or not all(isinstance(a, str) for a in audiences)):
        field, go_type = "spec.audiences", "[]string"
    elif not isinstance(spec.get("boundObjectRef") or {}, dict):
        field, go_type = "spec.boundObjectRef", "v1.BoundObjectReference"
    elif seconds is not None and (not isinstance(seconds, int) or isinstance(seconds, bool)):
        field, go_type = "spec.expirationSeconds", "int64"
    if field:
        raise bad_request('TokenRequest in version "v1" cannot be handled as a TokenRequest: '
                          f"json: cannot unmarshal into Go struct field TokenRequest.{field} "
                          f"of type {go_type}")
    return dict(spec)


def _validate(spec: Obj) -> None:
    """ValidateTokenRequest."""
    seconds = as_int(spec.get("expirationSeconds"))
    detail = ""
    if seconds < MIN_EXPIRATION:
        detail = "may not specify a duration less than 10 minutes"
    elif seconds > MAX_EXPIRATION:
        detail = "may not specify a duration larger than 2^32 seconds"
    if detail:
        raise errors.invalid_error(_KIND, "", [errors.invalid("spec.expirationSeconds", seconds,
                                                              detail)], _GROUP)


async def _bound(handlers: Handlers, namespace: str, account: Obj, ref: Obj,
                 ) -> tuple[Bound | None, Bound | None, Bound | None]:
    """The pod (with its node) or secret a token is bound to, checked as upstream does."""
    if not ref:
        return None, None, None
    kind, name, uid = as_str(ref.get("kind")), as_str(ref.get("name")), as_str(ref.get("uid"))
    resource = {"Pod": "pods", "Secret": "secrets"}.get(kind)
    served = handlers.ctx.served.get(("", "v1", resource or ""))
    if served is None:
        raise bad_request(f"cannot bind token to object of type {kind}")
    obj = await served.registry.get(namespace, name)
    meta = as_dict(obj.get("metadata"))
    if uid and uid != meta.get("uid"):
        raise errors.StatusError(409, "Conflict", (
            f"the UID in the bound object reference ({uid}) does not match the UID in record. "
            "The object might have been deleted and then recreated"))
    bound = Bound(kind, name, as_str(meta.get("uid")))
    if kind == "Secret":
        return None, None, bound
    spec = as_dict(obj.get("spec"))
    account_name = as_str(as_dict(account.get("metadata")).get("name"))
    if (as_str(spec.get("serviceAccountName")) or "default") != account_name:
        raise bad_request(f"cannot bind token for serviceaccount {go_quote(account_name)} to "
                          "pod running with different serviceaccount name.")
    node = None
    if spec.get("nodeName"):
        try:
            node_obj = await handlers.ctx.served[("", "v1", "nodes")].registry.get(
                "", as_str(spec["nodeName"]))
            node = Bound("Node", as_str(spec["nodeName"]),
                         as_str(as_dict(node_obj.get("metadata")).get("uid")))
        except StatusError:
            node = None
    return bound, node, None


def _node_may_request(user: User, pod: Bound | None, node: Bound | None) -> bool:
    """A node asks only for tokens of pods bound to it (Node authorizer + NodeRestriction)."""
    return pod is not None and node is not None and node.name == user.node_name


async def serve_token(handlers: Handlers, request: web.Request, info: RequestInfo,
                      served: Served, user: User) -> web.Response:
    """``POST serviceaccounts/<name>/token``: a signed, bound ServiceAccount token."""
    if user.node_name is None:
        await handlers.authorize(user, "create", info, served)
    body = await read_body(request)
    if not isinstance(body, dict):
        raise bad_request("TokenRequest must be a JSON object")
    request_ns = as_str(as_dict(body.get("metadata")).get("namespace"))
    if request_ns and request_ns != info.namespace:
        raise bad_request("the namespace of the provided object does not match the namespace "
                          "sent on the request")
    spec = _decode_spec(body)
    if spec.get("expirationSeconds") is None:  # absent, or null as Go writes a nil *int64
        spec["expirationSeconds"] = DEFAULT_EXPIRATION
    if not as_list(spec.get("audiences")):
        spec["audiences"] = list(API_AUDIENCES)
    _validate(spec)
    account = await served.registry.get(info.namespace, info.name)
    pod, node, secret = await _bound(handlers, info.namespace, account,
                                     as_dict(spec.get("boundObjectRef")))
    if user.node_name is not None and not _node_may_request(user, pod, node):
        raise errors.StatusError(403, "Forbidden", (
            f'serviceaccounts "{info.name}" is forbidden: User "{user.name}" cannot create '
            f'resource "serviceaccounts/token" in API group "" in the namespace '
            f'"{info.namespace}": no relationship found between node '
            f"'{user.node_name}' and this object"))
    now = handlers.ctx.clock.now()
    token, expires = handlers.ctx.authn.issuer.issue(
        namespace=info.namespace, name=info.name,
        uid=as_str(as_dict(account.get("metadata")).get("uid")),
        audiences=tuple(as_str(a) for a in spec["audiences"]), now=now,
        expiration_seconds=as_int(spec["expirationSeconds"]), pod=pod, node=node,
        secret=secret)
    answer: Obj = {"kind": _KIND, "apiVersion": f"{_GROUP}/v1",
                   "metadata": {**as_dict(body.get("metadata")), "name": info.name,
                                "namespace": info.namespace, "creationTimestamp": None},
                   "spec": spec,
                   "status": {"token": token, "expirationTimestamp": rfc3339(
                       datetime.fromtimestamp(expires, UTC))}}
    return json_response(answer, 201)
