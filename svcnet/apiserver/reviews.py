"""The reviews: ask the server who you are and what you (or someone) may do.

Theory of operation
-------------------
These resources are created and answered, never stored, as kube-apiserver's REST types for
them do (pkg/registry/authentication/{selfsubjectreview,tokenreview}/rest.go and
pkg/registry/authorization/{selfsubjectaccessreview,localsubjectaccessreview,
subjectaccessreview,selfsubjectrulesreview}/rest.go):

* ``SelfSubjectAccessReview`` (``kubectl auth can-i``): may the requester do this? Every
  authenticated user may ask (upstream's ``system:basic-user``).
* ``SelfSubjectRulesReview`` (``kubectl auth can-i --list``): everything the requester may do
  in a namespace, from :func:`svcnet.apiserver.auth.rules_for`.
* ``SubjectAccessReview`` / ``LocalSubjectAccessReview``: may *that* user do this? For those
  allowed to create them (the admin).
* ``SelfSubjectReview`` (``kubectl auth whoami``) and ``TokenReview``: who a token is.

Every answer comes from the one authorizer the request path uses (:mod:`svcnet.apiserver.auth`),
so ``can-i`` cannot disagree with what the server then does. Validation follows
pkg/apis/authorization/validation/validation.go with its field paths and messages; the answer
is 201 with the request echoed and ``status`` filled in, ``metadata.creationTimestamp: null``
as Go serialises an empty ObjectMeta.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from svcnet.api import errors
from svcnet.api.access import as_dict, as_str
from svcnet.api.errors import FieldError, bad_request, invalid
from svcnet.api.rbac import Attributes
from svcnet.apiserver.auth import User, forbidden, rules_for
from svcnet.apiserver.body import read_body
from svcnet.apiserver.common import Obj, json_response
from svcnet.apiserver.rbac import effective_groups
from svcnet.apiserver.requestinfo import RequestInfo
from svcnet.apiserver.satokens import API_AUDIENCES

if TYPE_CHECKING:
    from svcnet.apiserver.handlers import Handlers

__all__ = ["REVIEWS", "serve_review", "user_info"]



def user_info(user: User) -> Obj:
    """``authentication.k8s.io/v1 UserInfo`` of an authenticated user."""
    info: Obj = {"username": user.name}
    if user.uid:
        info["uid"] = user.uid
    info["groups"] = list(effective_groups(user))
    return info


def _spec_errors(spec: Mapping[str, Any], *, self_review: bool) -> list[FieldError]:
    """ValidateSubjectAccessReviewSpec / ValidateSelfSubjectAccessReviewSpec."""
    errs: list[FieldError] = []
    has_res, has_non = "resourceAttributes" in spec, "nonResourceAttributes" in spec
    if has_res and has_non:
        errs.append(invalid("spec.nonResourceAttributes", spec["nonResourceAttributes"],
                            "cannot be specified in combination with resourceAttributes"))
    if not has_res and not has_non:
        errs.append(invalid("spec.resourceAttributes", None,
                            "exactly one of nonResourceAttributes or resourceAttributes must be "
                            "specified"))
    if not self_review and not spec.get("user") and not spec.get("groups"):
        errs.append(invalid("spec.user", as_str(spec.get("user")),
                            "at least one of user or group must be specified"))
    return errs


async def _decide(handlers: Handlers, user: User, spec: Mapping[str, Any]) -> Obj:
    """SubjectAccessReviewStatus for ``user`` and the attributes in ``spec``."""
    if "resourceAttributes" in spec:
        a = as_dict(spec["resourceAttributes"])
        attrs = Attributes(as_str(a.get("verb")), as_str(a.get("group")),
                           as_str(a.get("resource")), as_str(a.get("subresource")),
                           as_str(a.get("namespace")), as_str(a.get("name")))
    else:
        a = as_dict(spec.get("nonResourceAttributes"))
        attrs = Attributes(as_str(a.get("verb")), path=as_str(a.get("path")) or "/")
    return {"allowed": await handlers.ctx.rbac.allowed(user, attrs)}


def _echo(kind: str, group: str, body: Obj, status: Obj, namespace: str = "") -> Obj:
    metadata: Obj = {"creationTimestamp": None}
    if namespace:
        metadata = {"namespace": namespace, "creationTimestamp": None}
    return {"kind": kind, "apiVersion": f"{group}/v1", "metadata": metadata,
            "spec": as_dict(body.get("spec")), "status": status}


def _check_metadata(body: Obj, kind: str, group: str, namespace: str | None) -> None:
    """The reviews' ObjectMeta must be empty (LocalSubjectAccessReview: but its namespace)."""
    meta = {k: v for k, v in as_dict(body.get("metadata")).items()
            if v not in (None, "", {}, []) and k != "managedFields"}
    if namespace is not None:
        meta.pop("namespace", None)
    if meta:
        detail = "must be empty except for namespace" if namespace is not None else "must be empty"
        raise errors.invalid_error(kind, "", [invalid("metadata", meta, detail)], group)


async def _self_access(handlers: Handlers, user: User, body: Obj, info: RequestInfo) -> Obj:
    spec = as_dict(body.get("spec"))
    errs = _spec_errors(spec, self_review=True)
    if errs:
        raise errors.invalid_error("SelfSubjectAccessReview", "", errs, "authorization.k8s.io")
    return _echo("SelfSubjectAccessReview", "authorization.k8s.io", body,
                 await _decide(handlers, user, spec))


def _subject(spec: Mapping[str, Any]) -> User:
    groups = tuple(as_str(g) for g in spec.get("groups") or [] if as_str(g))
    return User(as_str(spec.get("user")), as_str(spec.get("uid")), groups)


async def _access(handlers: Handlers, user: User, body: Obj, info: RequestInfo) -> Obj:
    spec = as_dict(body.get("spec"))
    errs = _spec_errors(spec, self_review=False)
    if errs:
        raise errors.invalid_error("SubjectAccessReview", "", errs, "authorization.k8s.io")
    return _echo("SubjectAccessReview", "authorization.k8s.io", body,
                 await _decide(handlers, _subject(spec), spec))


async def _local_access(handlers: Handlers, user: User, body: Obj, info: RequestInfo) -> Obj:
    spec = as_dict(body.get("spec"))
    errs = _spec_errors(spec, self_review=False)
    res_ns = as_dict(spec.get("resourceAttributes")).get("namespace", "")
    if "resourceAttributes" in spec and res_ns != info.namespace:
        errs.append(invalid("spec.resourceAttributes.namespace", as_str(res_ns),
                            "must match metadata.namespace"))
    if "nonResourceAttributes" in spec:
        errs.append(invalid("spec.nonResourceAttributes", spec["nonResourceAttributes"],
                            "disallowed on this kind of request"))
    if errs:
        raise errors.invalid_error("LocalSubjectAccessReview", "", errs,
                                   "authorization.k8s.io")
    return _echo("LocalSubjectAccessReview", "authorization.k8s.io", body,
                 await _decide(handlers, _subject(spec), spec), info.namespace)


async def _self_rules(handlers: Handlers, user: User, body: Obj, info: RequestInfo) -> Obj:
    namespace = as_str(as_dict(body.get("spec")).get("namespace"))
    if not namespace:
        raise bad_request("no namespace on request")
    rules = rules_for(user)
    granted = [dict(r) for r in await handlers.ctx.rbac.rules_for(user, namespace)]
    status: Obj = {"resourceRules": rules.resource_rules + [
                       r for r in granted if not r.get("nonResourceURLs")],
                   "nonResourceRules": rules.non_resource_rules + [
                       r for r in granted if r.get("nonResourceURLs")],
                   "incomplete": rules.incomplete}
    if rules.evaluation_error:
        status["evaluationError"] = rules.evaluation_error
    return {"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None}, "spec": {}, "status": status}


async def _whoami(handlers: Handlers, user: User, body: Obj, info: RequestInfo) -> Obj:
    return {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "status": {"userInfo": user_info(user)}}


async def _token(handlers: Handlers, user: User, body: Obj, info: RequestInfo) -> Obj:
    spec = as_dict(body.get("spec"))
    token = as_str(spec.get("token"))
    if not token:
        raise errors.invalid_error("TokenReview", "", [errors.required("spec.token")],
                                   "authentication.k8s.io")
    status: Obj = {"user": {}}
    wanted = [as_str(a) for a in spec.get("audiences") or []] or list(API_AUDIENCES)
    subject, audiences = await handlers.ctx.authn.review(token, wanted)
    if subject is not None:
        status = {"authenticated": True, "user": user_info(subject), "audiences": audiences}
    return {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}


_Answer = Callable[["Handlers", User, Obj, RequestInfo], Awaitable[Obj]]

#: (group, resource) → (kind, answer, whether its metadata may carry a namespace).
REVIEWS: dict[tuple[str, str], tuple[str, _Answer, bool]] = {
    ("authorization.k8s.io", "selfsubjectaccessreviews"):
        ("SelfSubjectAccessReview", _self_access, False),
    ("authorization.k8s.io", "subjectaccessreviews"): ("SubjectAccessReview", _access, False),
    ("authorization.k8s.io", "localsubjectaccessreviews"):
        ("LocalSubjectAccessReview", _local_access, True),
    ("authorization.k8s.io", "selfsubjectrulesreviews"):
        ("SelfSubjectRulesReview", _self_rules, False),
    ("authentication.k8s.io", "selfsubjectreviews"): ("SelfSubjectReview", _whoami, False),
    ("authentication.k8s.io", "tokenreviews"): ("TokenReview", _token, False),
}


async def serve_review(handlers: Handlers, request: web.Request, info: RequestInfo,
                       user: User) -> web.Response:
    """``POST`` a review: authorize, validate, answer 201. Other verbs are 405."""
    kind, answer, namespaced = REVIEWS[(info.group, info.resource)]
    if request.method != "POST" or info.name or info.subresource:
        raise errors.StatusError(405, "MethodNotAllowed",
                                 "the server does not allow this method on the requested "
                                 "resource")
    if namespaced != bool(info.namespace):
        raise errors.StatusError(404, "NotFound",
                                 "the server could not find the requested resource")
    if not await handlers.ctx.rbac.allowed(user, Attributes(
            "create", info.group, info.resource, namespace=info.namespace)):
        raise forbidden(user, "create", info.resource, info.group, info.namespace, "")
    body = await read_body(request)
    if not isinstance(body, dict):
        raise bad_request(f"not a {kind}: the body must be a JSON object")
    api_version = f"{info.group}/v1"
    if body.get("apiVersion", api_version) != api_version or body.get("kind", kind) != kind:
        raise bad_request(f"not a {kind}: got {body.get('apiVersion')}/{body.get('kind')}")
    _check_metadata(body, kind, info.group, info.namespace if namespaced else None)
    return json_response(await answer(handlers, user, body, info), 201)

