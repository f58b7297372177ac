"""Admission webhooks, the pure part: which webhooks a write calls, what they are sent, what
their answers mean.

Theory of operation
-------------------
Followed: k8s.io/apiserver/pkg/admission/plugin/webhook/ — ``generic/webhook.go``
(``ShouldCallHook``, ``Dispatch``), ``predicates/rules/rules.go``, ``predicates/namespace/
matcher.go``, ``predicates/object/matcher.go``, ``request/admissionreview.go``
(``CreateAdmissionObjects``, ``VerifyAdmissionResponse``), ``errors/statuserror.go``
(``ToStatusErr``, ``NewDryRunUnsupportedErr``) and ``pkg/util/webhook/error.go``
(``ErrCallingWebhook``). The HTTP call is :mod:`svcnet.apiserver.webhookclient`; the order of
calls, failure policies, patches and reinvocation are :mod:`svcnet.apiserver.webhookdispatch`.

The inputs are plain dicts: Mutating/ValidatingWebhookConfigurations as the registry stores
them, *already defaulted* (failurePolicy Fail, matchPolicy Equivalent, selectors ``{}``, scope
``*``, timeoutSeconds 10, reinvocationPolicy Never, service port 443). :func:`parse_webhooks`
turns one configuration into :class:`Webhook` values once (selectors parsed), ordered as
upstream's webhook sources order them: configurations by name, then each one's webhooks in
order; a webhook's identity is ``<configuration>/<webhook>/<index>``.

Whether a webhook is called for a write (:class:`WebhookAttributes`):

* never for the admission configuration kinds themselves
  (:func:`is_exempt`: Validating/MutatingWebhookConfigurations and the admission policies and
  their bindings), so that a broken webhook cannot lock its own configuration;
* a rule matches (:func:`rule_matches`): operation (``*`` for all), apiGroups, apiVersions,
  resources (``pods``, ``pods/status``, ``*``, ``*/*``, ``pods/*``, ``*/status``; a bare
  ``pods`` never matches a subresource) and scope (``Namespaced`` requires a namespace and is
  never a Namespace object; ``Cluster`` is the opposite; ``*`` is both);
* with ``matchPolicy: Equivalent``, when no rule names the request's own group/version/resource,
  the first rule (in rule order) naming another served version of the same resource does, and
  the webhook is sent the object converted to that version (:func:`find_invocation`).
  Equivalent versions come from an injected :data:`EquivalentResources`: in svcnet a built-in
  group/resource is served at one version, except HorizontalPodAutoscalers (``autoscaling/v2``
  and ``v1``) and custom resources (each served version of their CRD); see
  :class:`ServedEquivalents`. Upstream also counts the same storage in another group as
  equivalent (``extensions/v1beta1`` Deployments); svcnet serves no such pair;
* ``namespaceSelector`` matches the labels of the request's namespace (for a Namespace itself,
  the object's labels on create and update, the stored namespace's on delete); a
  cluster-scoped object other than a Namespace always passes; an unknown namespace is the
  namespace's 404 (upstream's backwards-compatible answer);
* ``objectSelector`` matches the labels of the new object or of the old one;
* ``matchConditions`` (CEL, compiled once when a configuration is parsed:
  :mod:`svcnet.api.matchconditions`) hold, evaluated last as upstream's ShouldCallHook does
  (:func:`match_conditions`), with ``object`` and ``oldObject`` at the version the webhook is
  called at and ``request`` the AdmissionRequest the review would carry (without ``uid``,
  ``object`` and ``oldObject``, as upstream's ``CreateAdmissionRequest``). A false condition
  skips the webhook; an evaluation error under ``failurePolicy: Fail`` refuses the request
  with upstream's 403 (``<resource> "<name>" is forbidden: expression '...' resulted in
  error: ...``), under ``Ignore`` skips it. ``authorizer`` checks are evaluation errors.

Rules are checked before the selectors here (upstream checks the selectors first): the result
is the same, as upstream reports a selector error only for a webhook whose rules match, and
this way a namespace is only looked up for a webhook that would be called.

The request is an ``admission.k8s.io/v1`` AdmissionReview, or ``v1beta1`` when that comes first
in the webhook's ``admissionReviewVersions`` (:func:`admission_review`), with upstream's
fields and omissions (``object``/``oldObject``/``options`` are ``null`` when absent). The answer
is checked by :func:`verify_response` with upstream's messages. Errors (:class:`CallFailed`) are
upstream's ``ErrCallingWebhook``: failures to talk to the webhook, which ``failurePolicy``
decides about; a refusal is :func:`denied` (``ToStatusErr``: the webhook's own Status, its code
at least 400, its message prefixed with ``admission webhook "NAME" denied the request``).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from svcnet.api import autoscaling, autoscalingv1
from svcnet.api.errors import (
    StatusError,
    bad_request,
    forbidden_error,
    go_quote,
    internal_error,
    not_found,
)
from svcnet.api.gobase64 import canonical_base64
from svcnet.api.labels import EVERYTHING, Selector, SelectorError, selector_from_label_selector
from svcnet.api.matchconditions import MatchCondition, compile_conditions, match
from svcnet.apiserver.auth import User
from svcnet.apiserver.resources import RESOURCES, Resource
from svcnet.registry.generic import AdmissionAttributes

log = logging.getLogger(__name__)

__all__ = [
    "ADMISSION_GROUP",
    "LOOPBACK_USER",
    "OPERATIONS",
    "REVIEW_VERSIONS",
    "AdmissionResponse",
    "CallFailed",
    "ClientConfig",
    "EquivalentResources",
    "GroupVersionKind",
    "GroupVersionResource",
    "InvalidResponse",
    "Invocation",
    "Rule",
    "ServedEquivalents",
    "UndecodableResponse",
    "Webhook",
    "WebhookAttributes",
    "admission_review",
    "convert_served",
    "denied",
    "dry_run_unsupported",
    "find_invocation",
    "is_exempt",
    "match_conditions",
    "namespace_selector_matches",
    "needs_namespace_labels",
    "object_selector_matches",
    "operation_options",
    "parse_webhooks",
    "review_version",
    "rule_matches",
    "user_info",
    "verify_response",
]

Obj = dict[str, Any]

ADMISSION_GROUP: Final = "admissionregistration.k8s.io"
_EXEMPT_KINDS: Final = frozenset({
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"})
OPERATIONS: Final = ("CREATE", "UPDATE", "DELETE", "CONNECT")
REVIEW_VERSIONS: Final = ("v1", "v1beta1")
"""The AdmissionReview versions svcnet sends, as kube-apiserver."""
LOOPBACK_USER: Final = User("system:apiserver", groups=("system:masters",))
"""Who a write the server makes itself is from (upstream's loopback identity)."""


# =============================================================================================
# Names


@dataclass(frozen=True, slots=True)
class GroupVersionResource:
    group: str
    version: str
    resource: str

    def to_json(self) -> Obj:
        return {"group": self.group, "version": self.version, "resource": self.resource}


@dataclass(frozen=True, slots=True)
class GroupVersionKind:
    group: str
    version: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def to_json(self) -> Obj:
        return {"group": self.group, "version": self.version, "kind": self.kind}


# =============================================================================================
# The write


@dataclass(frozen=True, slots=True)
class WebhookAttributes:
    """One request as admission webhooks see it (admission.Attributes at the served version).

    ``operation`` is upstream's: CREATE, UPDATE, DELETE or CONNECT. ``resource`` and ``kind``
    are what the client asked for (the AdmissionReview's ``requestResource`` and
    ``requestKind``). ``object`` is None for DELETE (``old_object`` is the object being
    deleted), ``old_object`` None for CREATE; for CONNECT, ``object`` is the connect options
    (e.g. a PodExecOptions). The objects may be at any served version of the kind: each webhook
    is sent them converted to the version it is called at. ``options`` is the operation's
    CreateOptions/UpdateOptions/DeleteOptions (see :func:`operation_options`); ``user`` who
    makes the request (None: the server itself).
    """

    operation: str
    resource: GroupVersionResource
    subresource: str
    kind: GroupVersionKind
    namespace: str
    name: str
    object: Obj | None
    old_object: Obj | None
    dry_run: bool = False
    options: Obj | None = None
    user: User | None = None

    @classmethod
    def of(cls, attrs: AdmissionAttributes, *, version: str, kind: str,
           dry_run: bool = False, options: Mapping[str, Any] | None = None,
           user: User | None = None) -> WebhookAttributes:
        """The registry's admission attributes (create or update), served at ``version`` as
        ``kind``. For a Namespace, ``namespace`` is its own name, as upstream's request info
        has it (and its create handler sets it for a create)."""
        operation = attrs.operation.upper()
        namespace = attrs.namespace
        if attrs.group == "" and attrs.resource == "namespaces":
            namespace = attrs.name
        return cls(operation, GroupVersionResource(attrs.group, version, attrs.resource),
                   attrs.subresource, GroupVersionKind(attrs.group, version, kind), namespace,
                   attrs.name, attrs.new if operation != "DELETE" else None, attrs.old,
                   dry_run, operation_options(operation, options), user)

    @property
    def is_namespace(self) -> bool:
        """A write of a Namespace object itself (a cluster-scoped object with a namespace)."""
        return self.resource.group == "" and self.resource.resource == "namespaces"


_OPTIONS_KINDS: Final = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions",
                         "DELETE": "DeleteOptions"}


def operation_options(operation: str, options: Mapping[str, Any] | None) -> Obj | None:
    """The ``options`` an AdmissionReview carries: the request's CreateOptions, UpdateOptions
    or DeleteOptions (``meta.k8s.io/v1``, kind and apiVersion first, then the fields given, as
    the client sent them: ``dryRun``, ``fieldManager``, ``propagationPolicy``...); CONNECT's
    options are the connect options object itself, passed as it is."""
    if options is None:
        return None
    kind = _OPTIONS_KINDS.get(operation)
    if kind is None:
        return dict(options)
    out: Obj = {"kind": kind, "apiVersion": "meta.k8s.io/v1"}
    out.update((k, v) for k, v in options.items() if k not in ("kind", "apiVersion"))
    return out


def user_info(user: User | None) -> Obj:
    """authentication/v1 UserInfo (every field omitempty); no user is the server itself
    (:data:`LOOPBACK_USER`)."""
    u = LOOPBACK_USER if user is None else user
    out: Obj = {}
    if u.name:
        out["username"] = u.name
    if u.uid:
        out["uid"] = u.uid
    if u.groups:
        out["groups"] = list(u.groups)
    return out  # svcnet's users carry no ``extra``


def is_exempt(attrs: WebhookAttributes) -> bool:
    """IsExemptAdmissionConfigurationResource: the admission configuration kinds are never
    sent to webhooks."""
    return attrs.kind.group == ADMISSION_GROUP and attrs.kind.kind in _EXEMPT_KINDS


# =============================================================================================
# Configurations


@dataclass(frozen=True, slots=True)
class Rule:
    """admissionregistration/v1 RuleWithOperations."""

    operations: tuple[str, ...]
    api_groups: tuple[str, ...]
    api_versions: tuple[str, ...]
    resources: tuple[str, ...]
    scope: str = "*"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where a webhook is called: ``url``, or the Service ``service_namespace/service_name`` on
    ``service_port`` at ``service_path``; ``ca_bundle`` the PEM to trust (empty: the system's
    roots)."""

    url: str = ""
    service_namespace: str = ""
    service_name: str = ""
    service_path: str = ""
    service_port: int = 443
    ca_bundle: bytes = b""

    @property
    def is_service(self) -> bool:
        return bool(self.service_name)


@dataclass(frozen=True, slots=True)
class Webhook:
    """One webhook of a configuration, parsed once (see the module docstring)."""

    uid: str
    configuration: str
    name: str
    mutating: bool
    rules: tuple[Rule, ...]
    client: ClientConfig
    failure_policy: str = "Fail"
    match_policy: str = "Equivalent"
    namespace_selector: Selector = EVERYTHING
    object_selector: Selector = EVERYTHING
    side_effects: str | None = "None"
    timeout_seconds: int = 10
    admission_review_versions: tuple[str, ...] = ("v1",)
    reinvoke_if_needed: bool = False
    match_conditions: tuple[MatchCondition, ...] = ()
    #: A selector that does not parse (upstream's GetParsed*Selector error): reported as an
    #: internal error when the webhook's rules match.
    selector_error: str = ""

    @property
    def ignores_failures(self) -> bool:
        return self.failure_policy == "Ignore"


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _selector(raw: object) -> Selector:
    if not isinstance(raw, dict):
        return EVERYTHING
    return selector_from_label_selector(raw)


def _client_config(raw: Mapping[str, Any]) -> ClientConfig:
    bundle = raw.get("caBundle") or ""
    try:
        ca = base64.b64decode(bundle) if isinstance(bundle, str) else b""
    except (binascii.Error, ValueError):
        ca = b""
    service = raw.get("service")
    if isinstance(service, dict):
        return ClientConfig(service_namespace=str(service.get("namespace") or ""),
                            service_name=str(service.get("name") or ""),
                            service_path=str(service.get("path") or ""),
                            service_port=int(service.get("port") or 443), ca_bundle=ca)
    return ClientConfig(url=str(raw.get("url") or ""), ca_bundle=ca)


def parse_webhooks(configuration: Mapping[str, Any], *, mutating: bool) -> list[Webhook]:
    """The webhooks of one (defaulted) configuration, in order."""
    config_name = str((configuration.get("metadata") or {}).get("name") or "")
    out = []
    for i, raw in enumerate(configuration.get("webhooks") or []):
        name = str(raw.get("name") or "")
        rules = tuple(Rule(_strings(r.get("operations")), _strings(r.get("apiGroups")),
                           _strings(r.get("apiVersions")), _strings(r.get("resources")),
                           str(r.get("scope") or "*"))
                      for r in raw.get("rules") or [] if isinstance(r, dict))
        selector_error = ""
        try:
            namespace_selector = _selector(raw.get("namespaceSelector"))
            object_selector = _selector(raw.get("objectSelector"))
        except SelectorError as e:
            namespace_selector = object_selector = EVERYTHING
            selector_error = str(e)
        side_effects = raw.get("sideEffects")
        out.append(Webhook(
            uid=f"{config_name}/{name}/{i}", configuration=config_name, name=name,
            mutating=mutating, rules=rules,
            client=_client_config(raw.get("clientConfig") or {}),
            failure_policy=str(raw.get("failurePolicy") or "Fail"),
            match_policy=str(raw.get("matchPolicy") or "Equivalent"),
            namespace_selector=namespace_selector, object_selector=object_selector,
            side_effects=None if side_effects is None else str(side_effects),
            timeout_seconds=int(raw.get("timeoutSeconds") or 10),
            admission_review_versions=_strings(raw.get("admissionReviewVersions")),
            reinvoke_if_needed=mutating and raw.get("reinvocationPolicy") == "IfNeeded",
            match_conditions=compile_conditions(raw.get("matchConditions") or ()),
            selector_error=selector_error))
    return out


# =============================================================================================
# Matching


def _exact_or_wildcard(items: Iterable[str], requested: str) -> bool:
    return any(item in ("*", requested) for item in items)


def _scope_matches(scope: str, resource: GroupVersionResource, namespace: str) -> bool:
    is_namespace = resource == GroupVersionResource("", "v1", "namespaces")
    if scope == "Namespaced":
        return not is_namespace and namespace != ""
    if scope == "Cluster":
        return is_namespace or namespace == ""
    return scope == "*"


def _resource_matches(patterns: Iterable[str], resource: str, subresource: str) -> bool:
    for pattern in patterns:
        res, _, sub = pattern.partition("/")
        if res in ("*", resource) and sub in ("*", subresource):
            return True
    return False


def rule_matches(rule: Rule, attrs: WebhookAttributes,
                 resource: GroupVersionResource | None = None) -> bool:
    """rules.Matcher.Matches, for the request or for ``resource`` standing in for its
    group/version/resource (an equivalent)."""
    gvr = attrs.resource if resource is None else resource
    return (_scope_matches(rule.scope, gvr, attrs.namespace)
            and _exact_or_wildcard(rule.operations, attrs.operation)
            and _exact_or_wildcard(rule.api_groups, gvr.group)
            and _exact_or_wildcard(rule.api_versions, gvr.version)
            and _resource_matches(rule.resources, gvr.resource, attrs.subresource))


EquivalentResources = Callable[[GroupVersionResource, str],
                               Sequence[tuple[GroupVersionResource, GroupVersionKind]]]
"""The served versions of a resource (and its subresource, ``""`` for the main resource):
each group/version/resource with the kind it takes there, the request's own included, in
discovery order (the preferred version first). EquivalentResourceMapper's
EquivalentResourcesFor and KindFor together."""


@dataclass(frozen=True, slots=True)
class Invocation:
    """A webhook to call, and the version it is called at (upstream's WebhookInvocation)."""

    webhook: Webhook
    resource: GroupVersionResource
    subresource: str
    kind: GroupVersionKind


def find_invocation(hook: Webhook, attrs: WebhookAttributes,
                    equivalents: EquivalentResources) -> Invocation | None:
    """The rules half of ShouldCallHook: the version ``hook`` is called at, or None.

    A rule naming the request's own version wins; with ``matchPolicy: Equivalent`` the rules
    are then tried in order against the other served versions of the resource.
    """
    if any(rule_matches(r, attrs) for r in hook.rules):
        return Invocation(hook, attrs.resource, attrs.subresource, attrs.kind)
    if hook.match_policy != "Equivalent":
        return None
    others = [(gvr, gvk) for gvr, gvk in equivalents(attrs.resource, attrs.subresource)
              if gvr != attrs.resource]
    for rule in hook.rules:
        for gvr, gvk in others:
            if rule_matches(rule, attrs, gvr):
                return Invocation(hook, gvr, attrs.subresource, gvk)
    return None


def needs_namespace_labels(hook: Webhook, attrs: WebhookAttributes) -> bool:
    """Whether deciding ``hook`` for this write needs the namespace's labels."""
    if not attrs.namespace and not attrs.is_namespace:
        return False  # cluster-scoped and not a Namespace: never exempted
    if hook.namespace_selector.empty():
        return False
    # A Namespace being created or updated carries its own labels.
    return not (attrs.is_namespace and not attrs.subresource
                and attrs.operation in ("CREATE", "UPDATE"))


def _labels(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def namespace_selector_matches(hook: Webhook, attrs: WebhookAttributes,
                               namespace_labels: Mapping[str, str] | None) -> bool:
    """MatchNamespaceSelector, given the labels of the request's namespace as the server
    knows them (only read when :func:`needs_namespace_labels`; None: no such namespace, the
    namespace's 404)."""
    if hook.selector_error:
        raise internal_error(hook.selector_error)
    if not attrs.namespace and not attrs.is_namespace:
        return True
    if hook.namespace_selector.empty():
        return True
    if not needs_namespace_labels(hook, attrs):
        return hook.namespace_selector.matches(_labels(attrs.object))
    if namespace_labels is None:
        raise not_found("namespaces", attrs.namespace or attrs.name)
    return hook.namespace_selector.matches(namespace_labels)


def object_selector_matches(hook: Webhook, attrs: WebhookAttributes) -> bool:
    """MatchObjectSelector: the new object's labels or the old object's match."""
    if hook.selector_error:
        raise internal_error(hook.selector_error)
    selector = hook.object_selector
    if selector.empty():
        return True
    return any(obj is not None and selector.matches(_labels(obj))
               for obj in (attrs.object, attrs.old_object))


# =============================================================================================
# Served versions and conversion


class ServedEquivalents:
    """:data:`EquivalentResources` from svcnet's catalogue (:data:`RESOURCES`) plus the
    resources ``extra`` returns when asked (the custom resources of established CRDs, each
    served version one :class:`~svcnet.apiserver.resources.Resource`).

    Versions of one group and resource are equivalent; a subresource's kind is the one the
    catalogue gives it (``*/scale`` is an ``autoscaling/v1`` Scale at every version).
    """

    def __init__(self, extra: Callable[[], Sequence[Resource]] = lambda: ()) -> None:
        self._extra = extra
        self._builtin: dict[tuple[str, str], list[Resource]] = {}
        for r in RESOURCES:
            self._builtin.setdefault((r.group, r.resource), []).append(r)

    def __call__(self, resource: GroupVersionResource, subresource: str
                 ) -> list[tuple[GroupVersionResource, GroupVersionKind]]:
        key = (resource.group, resource.resource)
        served = self._builtin.get(key)
        if served is None:
            served = [r for r in self._extra() if (r.group, r.resource) == key]
        out = []
        for r in served:
            gvr = GroupVersionResource(r.group, r.version, r.resource)
            if not subresource:
                out.append((gvr, GroupVersionKind(r.group, r.version, r.kind)))
                continue
            sub = r.subresource(subresource)
            if sub is not None:
                out.append((gvr, GroupVersionKind(*r.subresource_gvk(sub))))
        return out


def convert_served(obj: Obj, target: GroupVersionKind) -> Obj:
    """``obj`` at ``target``'s version: the HorizontalPodAutoscaler conversion between
    ``autoscaling/v2`` and ``v1`` (svcnet/api/autoscalingv1.py); any other kind keeps its
    fields and takes the target's apiVersion (custom resources, whose CRDs convert with
    ``None``; Scale, which is ``autoscaling/v1`` at every version)."""
    if obj.get("apiVersion") == target.api_version:
        return obj
    if obj.get("kind") == autoscaling.KIND and target.group == "autoscaling":
        if target.version == "v1":
            return autoscalingv1.to_v1(obj)
        if target.version == "v2":
            return autoscalingv1.to_v2(obj)
    out = dict(obj)
    out["apiVersion"] = target.api_version
    return out


# =============================================================================================
# The AdmissionReview


def review_version(hook: Webhook) -> str | None:
    """The first of the webhook's ``admissionReviewVersions`` that svcnet sends."""
    for version in hook.admission_review_versions:
        if version in REVIEW_VERSIONS:
            return version
    return None


def admission_review(invocation: Invocation, attrs: WebhookAttributes, uid: str,
                     version: str, obj: Obj | None, old: Obj | None) -> Obj:
    """CreateV1AdmissionReview / CreateV1beta1AdmissionReview: the request for
    ``invocation``, with ``obj`` and ``old`` already at the invocation's version."""
    request = _admission_request(invocation, attrs, uid)
    request["object"] = obj
    request["oldObject"] = old
    request["dryRun"] = attrs.dry_run
    request["options"] = attrs.options
    return {"kind": "AdmissionReview", "apiVersion": f"admission.k8s.io/{version}",
            "request": request}


def match_conditions(invocation: Invocation, attrs: WebhookAttributes, obj: Obj | None,
                     old: Obj | None) -> bool:
    """Whether the webhook's ``matchConditions`` let it be called (matcher.go), with ``obj``
    and ``old`` at the invocation's version; raises upstream's 403 when an evaluation error
    meets ``failurePolicy: Fail``. A webhook without conditions matches."""
    hook = invocation.webhook
    if not hook.match_conditions:
        return True
    request = _admission_request(invocation, attrs, "")
    request["dryRun"] = attrs.dry_run
    request["options"] = attrs.options
    result = match(hook.match_conditions, obj=obj, old=old, request=request,
                   failure_policy=hook.failure_policy)
    if result.error:
        raise forbidden_error(attrs.resource.resource, attrs.name, result.error,
                              attrs.resource.group)
    if result.failed_condition:
        log.debug("webhook %s not called: its matchCondition %r is false", hook.name,
                  result.failed_condition)
    return result.matches


def _admission_request(invocation: Invocation, attrs: WebhookAttributes, uid: str) -> Obj:
    """An AdmissionRequest's fields up to ``userInfo``, in upstream's order."""
    request: Obj = {
        "uid": uid,
        "kind": invocation.kind.to_json(),
        "resource": invocation.resource.to_json(),
    }
    if invocation.subresource:
        request["subResource"] = invocation.subresource
    request["requestKind"] = attrs.kind.to_json()
    request["requestResource"] = attrs.resource.to_json()
    if attrs.subresource:
        request["requestSubResource"] = attrs.subresource
    if attrs.name:
        request["name"] = attrs.name
    if attrs.namespace:
        request["namespace"] = attrs.namespace
    request["operation"] = attrs.operation
    request["userInfo"] = user_info(attrs.user)
    return request


@dataclass(frozen=True, slots=True)
class AdmissionResponse:
    """What VerifyAdmissionResponse keeps of an answer."""

    allowed: bool
    patch: bytes = b""
    patch_type: str = ""
    result: Obj | None = None
    warnings: tuple[str, ...] = ()


class CallFailed(Exception):
    """Upstream's ``ErrCallingWebhook``: the webhook could not be talked to, or answered
    nothing usable. ``failurePolicy`` decides: Ignore lets the write through, Fail makes it a
    500 (:meth:`status_error`)."""

    def __init__(self, webhook: str, reason: str) -> None:
        super().__init__(f"failed calling webhook {go_quote(webhook)}: {reason}")
        self.webhook = webhook
        self.reason = reason

    def status_error(self) -> StatusError:
        """``apierrors.NewInternalError(err)``: upstream's one answer to a failed call."""
        return internal_error(str(self))


class UndecodableResponse(ValueError):
    """The answer is not an AdmissionReview Go would decode (the client's error: upstream
    reports it as ``failed to call webhook: <error>``)."""


class InvalidResponse(ValueError):
    """The answer decoded but does not hold (VerifyAdmissionResponse's errors: upstream reports
    them as ``received invalid webhook response: <error>``)."""


def _go_gvk(api_version: object, kind: object) -> str:
    """schema.GroupVersionKind.String(): ``admission.k8s.io/v1, Kind=AdmissionReview``."""
    av = api_version if isinstance(api_version, str) else ""
    group, _, version = av.rpartition("/")
    return f"{group}/{version}, Kind={kind if isinstance(kind, str) else ''}"


def _decode_patch(raw: object) -> bytes:
    """``response.patch`` as Go's JSON decodes a ``[]byte``: standard base64 (its error is
    the decode's, a failure to call)."""
    if raw is None:
        return b""
    if not isinstance(raw, str):
        raise UndecodableResponse("json: cannot unmarshal " + _json_type(raw)
                              + " into Go struct field AdmissionResponse.response.patch of "
                              "type []uint8")
    try:
        return base64.b64decode(canonical_base64(raw))
    except ValueError as e:  # gobase64.Base64Error: Go's message
        raise UndecodableResponse(str(e)) from e


def _json_type(v: object) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _typed(response: Mapping[str, Any], key: str, kind: type, go_type: str) -> Any:
    value = response.get(key)
    if value is not None and not isinstance(value, kind):
        raise UndecodableResponse(f"json: cannot unmarshal {_json_type(value)} into Go struct "
                              f"field AdmissionResponse.response.{key} of type {go_type}")
    return value


def verify_response(version: str, uid: str, mutating: bool, review: object) -> AdmissionResponse:
    """The answer to a ``version`` review (its JSON, decoded) as Go decodes it, then
    VerifyAdmissionResponse: raises :class:`UndecodableResponse` or :class:`InvalidResponse`
    with upstream's message."""
    if not isinstance(review, dict):
        raise UndecodableResponse(f"json: cannot unmarshal {_json_type(review)} into Go "
                                  "value of type struct")
    if not review.get("kind"):
        raise UndecodableResponse(f"Object 'Kind' is missing in '{json.dumps(review)}'")
    response = review.get("response")
    if response is not None and not isinstance(response, dict):
        raise UndecodableResponse(f"json: cannot unmarshal {_json_type(response)} into Go struct "
                              "field AdmissionReview.response of type "
                              f"{version}.AdmissionResponse")
    if response is None:
        raise InvalidResponse("webhook response was absent")
    allowed = bool(_typed(response, "allowed", bool, "bool"))
    patch = _decode_patch(response.get("patch"))
    patch_type = _typed(response, "patchType", str, "string")
    result = _typed(response, "status", dict, "v1.Status")
    warnings = _typed(response, "warnings", list, "[]string") or []
    # Audit annotations are checked as upstream decodes them; svcnet keeps no audit log.
    _typed(response, "auditAnnotations", dict, "map[string]string")
    if version == "v1beta1":
        # Neither the kind nor the uid were verified in v1beta1; a patch is a JSON patch.
        return AdmissionResponse(allowed, patch if mutating else b"",
                                 "JSONPatch" if mutating and patch else "", result,
                                 tuple(str(w) for w in warnings))
    got_uid = _typed(response, "uid", str, "types.UID") or ""
    if got_uid != uid:
        raise InvalidResponse(f"expected response.uid={go_quote(uid)}, got {go_quote(got_uid)}")
    if review.get("apiVersion") != "admission.k8s.io/v1" or review.get("kind") != \
            "AdmissionReview":
        raise InvalidResponse("expected webhook response of admission.k8s.io/v1, "
                              "Kind=AdmissionReview, got "
                              + _go_gvk(review.get("apiVersion"), review.get("kind")))
    if mutating:
        if patch and patch_type is None:
            raise InvalidResponse("webhook returned response.patch but not response.patchType")
        if not patch and patch_type is not None:
            raise InvalidResponse("webhook returned response.patchType but not response.patch")
        if patch_type is not None and not patch_type:
            raise InvalidResponse(f"webhook returned invalid response.patchType of "
                                  f"{go_quote(patch_type)}")
    else:
        if patch:
            raise InvalidResponse("validating webhook may not return response.patch")
        if patch_type is not None:
            raise InvalidResponse("validating webhook may not return response.patchType")
        patch = b""
    return AdmissionResponse(allowed, patch, patch_type or "", result,
                             tuple(str(w) for w in warnings))


def denied(webhook: str, result: Mapping[str, Any] | None) -> StatusError:
    """ToStatusErr: the webhook's Status as the request's answer, its code at least 400, its
    message ``admission webhook "NAME" denied the request: MSG`` (the reason when there is no
    message; ``... denied the request without explanation`` when neither)."""
    status = dict(result or {})
    code = status.get("code")
    # Upstream keeps a code past 599 (Go's http server then refuses to write it); an HTTP
    # status it is not, so it is a 400 here.
    if not isinstance(code, int) or isinstance(code, bool) or not 400 <= code <= 599:
        code = 400
    denied_by = f"admission webhook {go_quote(webhook)} denied the request"
    message = status.get("message") if isinstance(status.get("message"), str) else ""
    reason = status.get("reason") if isinstance(status.get("reason"), str) else ""
    if message:
        text = f"{denied_by}: {message}"
    elif reason:
        text = f"{denied_by}: {reason}"
    else:
        text = f"{denied_by} without explanation"
    details = status.get("details")
    return StatusError(code, reason or "", text, dict(details) if isinstance(details, dict)
                       else {})


def dry_run_unsupported(webhook: str) -> StatusError:
    """NewDryRunUnsupportedErr: a dry run reaching a webhook with side effects (400)."""
    return bad_request(f"admission webhook {go_quote(webhook)} does not support dry run")
