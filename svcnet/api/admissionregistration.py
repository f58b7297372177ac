"""admissionregistration.k8s.io/v1 ValidatingWebhookConfigurations and
MutatingWebhookConfigurations: defaulting and validation as Kubernetes does them.

Theory of operation
-------------------
A webhook configuration (cluster-scoped) lists ``webhooks``: each names a remote admission
webhook (``clientConfig``: a ``url``, or a ``service`` in the cluster with its port and path),
the requests it wants (``rules``: operations, API groups, versions, resources and their
subresources, scope; ``namespaceSelector``, ``objectSelector``, ``matchPolicy`` and CEL
``matchConditions``), what happens when it cannot be reached (``failurePolicy``), how long to
wait (``timeoutSeconds``), whether calling it has side effects (``sideEffects``: a dry run
may only call one without) and which ``AdmissionReview`` versions it speaks. A mutating
webhook may also ask to be called again after later mutations (``reinvocationPolicy``). The
two kinds differ only in that field; one code path serves both (``mutating``).

Mirrors:

* ``pkg/apis/admissionregistration/v1/defaults.go`` (and the generated ``SetObjectDefaults``
  that walks to each webhook, its service and its rules):
  :func:`set_defaults_validating_webhook_configuration` and
  :func:`set_defaults_mutating_webhook_configuration` give each webhook ``failurePolicy:
  Fail``, ``matchPolicy: Equivalent``, empty ``namespaceSelector`` and ``objectSelector``,
  ``timeoutSeconds: 10`` and (mutating) ``reinvocationPolicy: Never``; each rule ``scope:
  "*"``; a service reference ``port: 443``. ``sideEffects`` and ``admissionReviewVersions``
  have no default in v1: they are required;
* ``pkg/apis/admissionregistration/validation/validation.go`` —
  ``ValidateValidatingWebhookConfiguration`` / ``ValidateMutatingWebhookConfiguration``:
  apimachinery's ObjectMeta rules (not namespaced, a DNS-subdomain name); per webhook, in
  upstream's order: the name a fully qualified name (a DNS subdomain of at least three
  segments), each rule (operations required, ``*`` alone, each one of ``*``, ``CONNECT``,
  ``CREATE``, ``DELETE``, ``UPDATE``; API groups and versions required, ``*`` alone, no empty
  version; resources required, none empty, ``*/*`` alone, ``*`` beside no other resource
  without a subresource, ``x/*`` beside no ``x/y``, ``*/y`` beside no ``x/y``; the scope one of
  ``*``, ``Cluster``, ``Namespaced``), ``failurePolicy``, ``matchPolicy``, ``sideEffects``
  required and ``None`` or ``NoneOnDryRun``, ``timeoutSeconds`` from 1 to 30, both label
  selectors, (mutating) ``reinvocationPolicy``, ``clientConfig`` (exactly one of ``url`` and
  ``service``: the URL by ``webhook.ValidateWebhookURL``, https only, a host, no user
  information, fragment or query, parsed by Go's rules, :mod:`svcnet.api.gourl`; the service
  by ``webhook.ValidateWebhookService``, name, namespace, a valid port and a path of
  DNS-subdomain segments), ``matchConditions`` (at most 64, each a qualified ``name``, unique in
  the webhook, and a non-empty ``expression`` that compiles to a bool in upstream's
  environment for webhooks, :mod:`svcnet.api.matchconditions`); then
  ``admissionReviewVersions`` (required, DNS-1035 labels, no duplicates, at least one of
  ``v1``, ``v1beta1``) and the webhook's name unique in the configuration;
* the ``...Update`` validators: the same rules, relaxed where the stored object already broke
  them, so an old object can still be updated: side effects ``Some`` and ``Unknown`` stay
  allowed if a stored webhook had them, unrecognized review versions if a stored webhook had
  only those, duplicate names if the stored ones were duplicated, invalid label values in the
  selectors if a stored selector had them, and the match conditions are not checked again
  when no webhook's changed; the ObjectMeta update rules come first (the generic registry's
  ``BeforeUpdate``);
* ``pkg/registry/admissionregistration/{validating,mutating}webhookconfiguration/strategy.go``
  — generation 1 on create, bumped when ``webhooks`` change (:func:`webhooks_changed`).

Not done: upstream's typing of ``request`` (a misspelt field of it compiles here). The
``.static.k8s.io`` name suffix of the alpha manifest-based admission configuration is neither
refused nor warned about. Objects are JSON dicts as on the wire; inputs are never mutated.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from svcnet.api.access import list_of, map_of, str_of
from svcnet.api.errors import (
    FieldError,
    GoRaw,
    Path,
    duplicate,
    go_quote,
    invalid,
    not_supported,
    required,
    too_many,
)
from svcnet.api.gourl import URLError, parse_url
from svcnet.api.labels import validate_label_selector
from svcnet.api.matchconditions import validate_expression
from svcnet.api.meta import validate_object_meta, validate_object_meta_update
from svcnet.api.names import (
    is_dns1035_label,
    is_dns1123_subdomain,
    is_valid_port_num,
    name_is_dns_subdomain,
)
from svcnet.api.pods import validate_qualified_name

__all__ = [
    "ACCEPTED_ADMISSION_REVIEW_VERSIONS",
    "API_VERSION",
    "GROUP",
    "MUTATING_KIND",
    "VALIDATING_KIND",
    "set_defaults_mutating_webhook_configuration",
    "set_defaults_validating_webhook_configuration",
    "validate_mutating_webhook_configuration",
    "validate_mutating_webhook_configuration_update",
    "validate_validating_webhook_configuration",
    "validate_validating_webhook_configuration_update",
    "webhooks_changed",
]

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

GROUP: Final = "admissionregistration.k8s.io"
API_VERSION: Final = f"{GROUP}/v1"
VALIDATING_KIND: Final = "ValidatingWebhookConfiguration"
MUTATING_KIND: Final = "MutatingWebhookConfiguration"

#: The AdmissionReview versions the server speaks; a webhook must accept one of them.
ACCEPTED_ADMISSION_REVIEW_VERSIONS: Final = ("v1", "v1beta1")
_SUPPORTED_FAILURE_POLICIES: Final = ("Fail", "Ignore")
_SUPPORTED_MATCH_POLICIES: Final = ("Equivalent", "Exact")
_SUPPORTED_OPERATIONS: Final = ("*", "CONNECT", "CREATE", "DELETE", "UPDATE")
_SUPPORTED_REINVOCATION_POLICIES: Final = ("IfNeeded", "Never")
_VALID_SCOPES: Final = ("*", "Cluster", "Namespaced")
_ALL_SIDE_EFFECT_CLASSES: Final = ("None", "NoneOnDryRun", "Some", "Unknown")
_NO_SIDE_EFFECT_CLASSES: Final = ("None", "NoneOnDryRun")
_MAX_MATCH_CONDITIONS: Final = 64
_URL_FORM: Final = "; desired format: https://host[/path]"

_META: Final = Path("metadata")
_WEBHOOKS: Final = Path("webhooks")


# ----------------------------------------------------------------------------- defaulting


def set_defaults_validating_webhook_configuration(obj: ObjMap) -> Obj:
    """SetObjectDefaults_ValidatingWebhookConfiguration (a copy)."""
    return _set_defaults(obj, mutating=False)


def set_defaults_mutating_webhook_configuration(obj: ObjMap) -> Obj:
    """SetObjectDefaults_MutatingWebhookConfiguration (a copy)."""
    return _set_defaults(obj, mutating=True)


def _set_defaults(obj: ObjMap, *, mutating: bool) -> Obj:
    out = copy.deepcopy(dict(obj))
    for hook in out.get("webhooks") or ():
        if not isinstance(hook, dict):
            continue
        _default(hook, "failurePolicy", "Fail")
        _default(hook, "matchPolicy", "Equivalent")
        _default(hook, "namespaceSelector", {})
        _default(hook, "objectSelector", {})
        _default(hook, "timeoutSeconds", 10)
        if mutating:
            _default(hook, "reinvocationPolicy", "Never")
        service = map_of(hook.get("clientConfig"), "service")
        if service:
            _default(service, "port", 443)
        for rule in hook.get("rules") or ():
            if isinstance(rule, dict):
                _default(rule, "scope", "*")
    return out


def _default(d: Obj, key: str, value: object) -> None:
    if d.get(key) is None:
        d[key] = value


# ----------------------------------------------------------------------------- validation


@dataclass(frozen=True, slots=True)
class _Options:
    """validationOptions: what a create requires, and what an update of an object stored
    before a rule existed may keep."""

    check_match_conditions: bool = True
    require_no_side_effects: bool = True
    require_recognized_review_version: bool = True
    require_unique_names: bool = True
    allow_invalid_label_value: bool = False


def validate_validating_webhook_configuration(obj: ObjMap) -> list[FieldError]:
    """ValidateValidatingWebhookConfiguration."""
    return _validate_configuration(obj, _Options(), mutating=False)


def validate_mutating_webhook_configuration(obj: ObjMap) -> list[FieldError]:
    """ValidateMutatingWebhookConfiguration."""
    return _validate_configuration(obj, _Options(), mutating=True)


def validate_validating_webhook_configuration_update(new: ObjMap, old: ObjMap,
                                                     ) -> list[FieldError]:
    """The ObjectMeta update rules, then ValidateValidatingWebhookConfigurationUpdate."""
    return _validate_update(new, old, mutating=False)


def validate_mutating_webhook_configuration_update(new: ObjMap, old: ObjMap,
                                                   ) -> list[FieldError]:
    """The ObjectMeta update rules, then ValidateMutatingWebhookConfigurationUpdate."""
    return _validate_update(new, old, mutating=True)


def webhooks_changed(new: ObjMap, old: ObjMap) -> bool:
    """Whether an update bumps the generation (the strategies' PrepareForUpdate)."""
    return (new.get("webhooks") or []) != (old.get("webhooks") or [])


def _webhooks(obj: ObjMap | None) -> list[ObjMap]:
    return [h for h in list_of(obj, "webhooks") if isinstance(h, Mapping)]


def _validate_update(new: ObjMap, old: ObjMap, *, mutating: bool) -> list[FieldError]:
    errs = validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"), _META,
                                       kube_finalizers=False)
    old_hooks, new_hooks = _webhooks(old), _webhooks(new)
    opts = _Options(
        check_match_conditions=len(new_hooks) != len(old_hooks) or any(
            n.get("matchConditions") != o.get("matchConditions")
            for n, o in zip(new_hooks, old_hooks, strict=True)),
        require_no_side_effects=all(
            h.get("sideEffects") in _NO_SIDE_EFFECT_CLASSES for h in old_hooks),
        require_recognized_review_version=all(
            _has_accepted_version(h) or not list_of(h, "admissionReviewVersions")
            for h in old_hooks),
        require_unique_names=len({str_of(h, "name") for h in old_hooks}) == len(old_hooks),
        allow_invalid_label_value=any(_has_invalid_label_value(h) for h in old_hooks),
    )
    errs.extend(_validate_configuration(new, opts, mutating=mutating))
    return errs


def _has_accepted_version(hook: ObjMap) -> bool:
    return any(v in ACCEPTED_ADMISSION_REVIEW_VERSIONS
               for v in list_of(hook, "admissionReviewVersions"))


def _has_invalid_label_value(hook: ObjMap) -> bool:
    return any(bool(validate_label_selector(hook[key], Path(key)))
               for key in ("namespaceSelector", "objectSelector")
               if isinstance(hook.get(key), Mapping))


def _validate_configuration(obj: ObjMap, opts: _Options, *, mutating: bool,
                            ) -> list[FieldError]:
    errs = validate_object_meta(map_of(obj, "metadata"), requires_namespace=False,
                                name_fn=name_is_dns_subdomain, path=_META,
                                kube_finalizers=False)
    names: set[str] = set()
    for i, item in enumerate(list_of(obj, "webhooks")):
        hook: ObjMap = item if isinstance(item, Mapping) else {}
        path = _WEBHOOKS.index(i)
        errs.extend(_validate_webhook(hook, opts, path, mutating=mutating))
        errs.extend(_validate_admission_review_versions(
            list_of(hook, "admissionReviewVersions"), opts, path.child("admissionReviewVersions")))
        name = str_of(hook, "name")
        if opts.require_unique_names and name:
            if name in names:
                errs.append(duplicate(path.child("name"), name))
            names.add(name)
    return errs


def _validate_webhook(hook: ObjMap, opts: _Options, path: Path, *, mutating: bool,
                      ) -> list[FieldError]:
    """validateValidatingWebhook / validateMutatingWebhook (the same but for
    ``reinvocationPolicy``)."""
    errs = _validate_fully_qualified_name(str_of(hook, "name"), path.child("name"))
    for i, rule in enumerate(list_of(hook, "rules")):
        errs.extend(_validate_rule_with_operations(rule if isinstance(rule, Mapping) else {},
                                                   path.child("rules").index(i)))
    errs.extend(_one_of(hook, "failurePolicy", _SUPPORTED_FAILURE_POLICIES, path))
    errs.extend(_one_of(hook, "matchPolicy", _SUPPORTED_MATCH_POLICIES, path))
    allowed = (_NO_SIDE_EFFECT_CLASSES if opts.require_no_side_effects
               else _ALL_SIDE_EFFECT_CLASSES)
    if hook.get("sideEffects") is None:
        errs.append(required(path.child("sideEffects"),
                             f"must specify one of {', '.join(allowed)}"))
    errs.extend(_one_of(hook, "sideEffects", allowed, path))
    timeout = hook.get("timeoutSeconds")
    if isinstance(timeout, int) and not 1 <= timeout <= 30:
        errs.append(invalid(path.child("timeoutSeconds"), timeout,
                            "the timeout value must be between 1 and 30 seconds"))
    for key in ("namespaceSelector", "objectSelector"):
        selector = hook.get(key)
        if isinstance(selector, Mapping):
            errs.extend(validate_label_selector(
                selector, path.child(key),
                allow_invalid_label_value=opts.allow_invalid_label_value))
    if mutating:
        errs.extend(_one_of(hook, "reinvocationPolicy", _SUPPORTED_REINVOCATION_POLICIES, path))
    errs.extend(_validate_client_config(map_of(hook, "clientConfig"), path.child("clientConfig")))
    if opts.check_match_conditions:
        errs.extend(_validate_match_conditions(list_of(hook, "matchConditions"),
                                               path.child("matchConditions")))
    return errs


def _one_of(d: ObjMap, key: str, supported: Sequence[str], path: Path) -> list[FieldError]:
    """A set optional enum field that is not one of ``supported`` (sorted, as upstream's
    sets list them)."""
    value = d.get(key)
    if value is None or value in supported:
        return []
    return [not_supported(path.child(key), value, supported)]


def _validate_fully_qualified_name(name: str, path: Path) -> list[FieldError]:
    """IsFullyQualifiedName: a DNS subdomain with at least three segments."""
    if not name:
        return [required(path)]
    if problems := is_dns1123_subdomain(name):
        return [invalid(path, name, ",".join(problems))]
    if len(name.split(".")) < 3:
        return [invalid(path, name,
                        "should be a domain with at least three segments separated by dots")]
    return []


def _strings(rule: ObjMap, key: str) -> list[str]:
    return [v if isinstance(v, str) else "" for v in list_of(rule, key)]


def _validate_rule_with_operations(rule: ObjMap, path: Path) -> list[FieldError]:
    """validateRuleWithOperations, then validateRule with subresources allowed."""
    errs: list[FieldError] = []
    operations = _strings(rule, "operations")
    ops_path = path.child("operations")
    if not operations:
        errs.append(required(ops_path))
    if len(operations) > 1 and "*" in operations:
        typed = GoRaw("[]admissionregistration.OperationType{"
                      + ", ".join(go_quote(o) for o in operations) + "}")
        errs.append(invalid(ops_path, typed,
                            "if '*' is present, must not specify other operations"))
    for i, op in enumerate(operations):
        if op not in _SUPPORTED_OPERATIONS:
            errs.append(not_supported(ops_path.index(i), op, _SUPPORTED_OPERATIONS))
    groups, versions = _strings(rule, "apiGroups"), _strings(rule, "apiVersions")
    if not groups:
        errs.append(required(path.child("apiGroups")))
    if len(groups) > 1 and "*" in groups:
        errs.append(invalid(path.child("apiGroups"), groups,
                            "if '*' is present, must not specify other API groups"))
    # A group may be empty (the core group); a version may not.
    if not versions:
        errs.append(required(path.child("apiVersions")))
    if len(versions) > 1 and "*" in versions:
        errs.append(invalid(path.child("apiVersions"), versions,
                            "if '*' is present, must not specify other API versions"))
    for i, version in enumerate(versions):
        if not version:
            errs.append(required(path.child("apiVersions").index(i)))
    errs.extend(_validate_resources(_strings(rule, "resources"), path.child("resources")))
    scope = rule.get("scope")
    if scope is not None and scope not in _VALID_SCOPES:
        errs.append(not_supported(path.child("scope"), scope, _VALID_SCOPES))
    return errs


def _validate_resources(resources: list[str], path: Path) -> list[FieldError]:
    """validateResources: ``resource[/subresource]`` entries and their wildcards."""
    errs: list[FieldError] = []
    if not resources:
        errs.append(required(path))
    all_subresources_of: set[str] = set()  # x/*
    subresource_of_all: set[str] = set()  # */x
    double_wildcard = single_wildcard = without_subresource = False
    for i, entry in enumerate(resources):
        if not entry:
            errs.append(required(path.index(i)))
            continue
        double_wildcard = double_wildcard or entry == "*/*"
        single_wildcard = single_wildcard or entry == "*"
        resource, slash, sub = entry.partition("/")
        if not slash:
            # Upstream keeps only the last plain entry's verdict here.
            without_subresource = entry != "*"
            continue
        if resource in all_subresources_of:
            errs.append(invalid(path.index(i), entry,
                                f"if '{resource}/*' is present, must not specify {entry}"))
        if sub in subresource_of_all:
            errs.append(invalid(path.index(i), entry,
                                f"if '*/{sub}' is present, must not specify {entry}"))
        if sub == "*":
            all_subresources_of.add(resource)
        if resource == "*":
            subresource_of_all.add(sub)
    if len(resources) > 1 and double_wildcard:
        errs.append(invalid(path, resources,
                            "if '*/*' is present, must not specify other resources"))
    if single_wildcard and without_subresource:
        errs.append(invalid(path, resources, "if '*' is present, must not specify other "
                                             "resources without subresources"))
    return errs


def _validate_admission_review_versions(versions: list[Any], opts: _Options, path: Path,
                                        ) -> list[FieldError]:
    if not versions:
        return [required(path, "must specify one of "
                               + ", ".join(ACCEPTED_ADMISSION_REVIEW_VERSIONS))]
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, item in enumerate(versions):
        version = item if isinstance(item, str) else ""
        if version in seen:
            errs.append(invalid(path.index(i), version, "duplicate version"))
            continue
        seen.add(version)
        errs.extend(invalid(path.index(i), version, m) for m in is_dns1035_label(version))
    if opts.require_recognized_review_version and not seen & set(
            ACCEPTED_ADMISSION_REVIEW_VERSIONS):
        errs.append(invalid(path, versions, "must include at least one of "
                                            + ", ".join(ACCEPTED_ADMISSION_REVIEW_VERSIONS)))
    return errs


def _validate_client_config(config: ObjMap, path: Path) -> list[FieldError]:
    url, service = config.get("url"), config.get("service")
    if (url is None) == (service is None):
        return [required(path, "exactly one of url or service is required")]
    if url is not None:
        return _validate_webhook_url(url if isinstance(url, str) else "", path.child("url"))
    return _validate_webhook_service(service if isinstance(service, Mapping) else {},
                                     path.child("service"))


def _validate_webhook_url(url: str, path: Path) -> list[FieldError]:
    """webhook.ValidateWebhookURL with https forced."""
    try:
        u = parse_url(url)
    except URLError as e:
        return [required(path, f"url must be a valid URL: {e}{_URL_FORM}")]
    errs: list[FieldError] = []
    if u.scheme != "https":
        errs.append(invalid(path, u.scheme, "'https' is the only allowed URL scheme" + _URL_FORM))
    if not u.host:
        errs.append(invalid(path, u.host, "host must be specified" + _URL_FORM))
    if u.user is not None:
        errs.append(invalid(path, u.user, "user information is not permitted in the URL"))
    if u.fragment:
        errs.append(invalid(path, u.fragment, "fragments are not permitted in the URL"))
    if u.raw_query:
        errs.append(invalid(path, u.raw_query, "query parameters are not permitted in the URL"))
    return errs


def _validate_webhook_service(service: ObjMap, path: Path) -> list[FieldError]:
    """webhook.ValidateWebhookService."""
    errs: list[FieldError] = []
    if not str_of(service, "name"):
        errs.append(required(path.child("name"), "service name is required"))
    if not str_of(service, "namespace"):
        errs.append(required(path.child("namespace"), "service namespace is required"))
    port = service.get("port")
    port = port if isinstance(port, int) and not isinstance(port, bool) else 0
    if problems := is_valid_port_num(port):
        errs.append(invalid(path.child("port"), port,
                            "port is not valid: " + ", ".join(problems)))
    url_path = service.get("path")
    if not isinstance(url_path, str) or url_path in ("", "/"):
        return errs
    path = path.child("path")
    if url_path == "//":
        return [*errs, invalid(path, url_path, "segment[0] may not be empty")]
    if not url_path.startswith("/"):
        errs.append(invalid(path, url_path, "must start with a '/'"))
    steps = url_path[1:]
    if steps.endswith("/"):
        steps = steps[:-1]
    for i, step in enumerate(steps.split("/")):
        if not step:
            errs.append(invalid(path, url_path, f"segment[{i}] may not be empty"))
            continue
        errs.extend(invalid(path, url_path, f"segment[{i}]: {m}")
                    for m in is_dns1123_subdomain(step))
    return errs


def _validate_match_conditions(conditions: list[Any], path: Path) -> list[FieldError]:
    """validateMatchConditions: each expression compiled (:mod:`svcnet.api.matchconditions`)."""
    errs: list[FieldError] = []
    if len(conditions) > _MAX_MATCH_CONDITIONS:
        errs.append(too_many(path, len(conditions), _MAX_MATCH_CONDITIONS))
    names: set[str] = set()
    for i, item in enumerate(conditions):
        condition: ObjMap = item if isinstance(item, Mapping) else {}
        expression = str_of(condition, "expression").strip()
        if not expression:
            errs.append(required(path.index(i).child("expression")))
        else:
            errs.extend(validate_expression(expression, path.index(i).child("expression")))
        name = str_of(condition, "name")
        if not name:
            errs.append(required(path.index(i).child("name")))
            continue
        errs.extend(validate_qualified_name(name, path.index(i).child("name")))
        if name in names:
            errs.append(duplicate(path.index(i).child("name"), name))
        names.add(name)
    return errs
