"""rbac.authorization.k8s.io/v1: Roles, ClusterRoles and their bindings, as pure rules.

Theory of operation
-------------------
Defaulting follows pkg/apis/rbac/v1/defaults.go (a binding's ``roleRef.apiGroup`` and a User or
Group subject's ``apiGroup`` default to ``rbac.authorization.k8s.io``), validation
pkg/apis/rbac/validation/validation.go with its paths and messages (names are path segments;
a namespaced rule cannot name URLs; ``roleRef`` cannot change).

Evaluation follows plugin/pkg/auth/authorizer/rbac/rbac.go and
pkg/registry/rbac/validation/rule.go: a request is allowed when some binding that applies to the
user (by user name, by group, or as ``system:serviceaccount:<ns>:<name>``) refers to a role with
a rule that covers it. ClusterRoleBindings apply everywhere; RoleBindings in their namespace
only, whether they refer to a Role or a ClusterRole. RBAC never denies: no rule, no permission.

:func:`covers` is the escalation check (pkg/registry/rbac/validation/policy_comparator.go): a
user may write a role, or bind one, only with permissions it holds itself (or with the
``escalate`` / ``bind`` verbs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from svcnet.api.access import as_dict, as_list, as_str
from svcnet.api.errors import FieldError, Path, invalid, not_supported, required
from svcnet.api.labels import validate_label_selector
from svcnet.api.meta import validate_object_meta, validate_object_meta_update
from svcnet.api.names import is_dns1123_subdomain

__all__ = [
    "GROUP",
    "Attributes",
    "applies_to",
    "breakdown",
    "covers",
    "rule_allows",
    "service_account_user",
    "set_defaults_binding",
    "validate_binding",
    "validate_binding_update",
    "validate_role",
    "validate_role_update",
]

Obj = dict[str, Any]
GROUP = "rbac.authorization.k8s.io"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
_META = Path("metadata")


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a request asks (authorizer.Attributes): a resource request or a URL."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # set for non-resource requests only

    @property
    def is_resource(self) -> bool:
        return not self.path


def service_account_user(namespace: str, name: str) -> str:
    """``system:serviceaccount:<namespace>:<name>``, the user a ServiceAccount's token is."""
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


# ------------------------------------------------------------------------------ defaulting


def set_defaults_binding(obj: Obj) -> Obj:
    """SetDefaults_RoleRef and SetDefaults_Subject for (Cluster)RoleBindings."""
    ref = obj.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = GROUP
    for subject in obj.get("subjects") or []:
        if isinstance(subject, dict) and not subject.get("apiGroup") and \
                subject.get("kind") in ("User", "Group"):
            subject["apiGroup"] = GROUP
    return obj


# ------------------------------------------------------------------------------ validation


def is_valid_path_segment_name(name: str, prefix: bool = False) -> list[str]:
    """apimachinery's path.IsValidPathSegmentName (ValidateRBACName)."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def _validate_rule(rule: Mapping[str, Any], namespaced: bool, path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    if not rule.get("verbs"):
        errs.append(required(path.child("verbs"), "verbs must contain at least one value"))
    urls = as_list(rule.get("nonResourceURLs"))
    if urls:
        if namespaced:
            errs.append(invalid(path.child("nonResourceURLs"), urls,
                                "namespaced rules cannot apply to non-resource URLs"))
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            errs.append(invalid(path.child("nonResourceURLs"), urls,
                                "rules cannot apply to both regular resources and non-resource "
                                "URLs"))
        return errs
    if not rule.get("apiGroups"):
        errs.append(required(path.child("apiGroups"),
                             "resource rules must supply at least one api group"))
    if not rule.get("resources"):
        errs.append(required(path.child("resources"),
                             "resource rules must supply at least one resource"))
    return errs


def validate_role(obj: Mapping[str, Any], namespaced: bool) -> list[FieldError]:
    """ValidateRole / ValidateClusterRole."""
    errs = validate_object_meta(obj.get("metadata"), requires_namespace=namespaced,
                                name_fn=is_valid_path_segment_name, path=_META)
    for i, rule in enumerate(as_list(obj.get("rules"))):
        errs.extend(_validate_rule(as_dict(rule), namespaced, Path("rules").index(i)))
    aggregation = obj.get("aggregationRule")
    if not namespaced and isinstance(aggregation, dict):
        selectors = as_list(aggregation.get("clusterRoleSelectors"))
        sel_path = Path("aggregationRule").child("clusterRoleSelectors")
        if not selectors:
            errs.append(required(sel_path, "at least one clusterRoleSelector required if "
                                           "aggregationRule is non-nil"))
        for i, selector in enumerate(selectors):
            errs.extend(validate_label_selector(as_dict(selector), sel_path.index(i)))
    return errs


def validate_role_update(new: Mapping[str, Any], old: Mapping[str, Any],
                         namespaced: bool) -> list[FieldError]:
    return [*validate_role(new, namespaced),
            *validate_object_meta_update(new.get("metadata"), old.get("metadata"), _META)]


def _validate_subject(subject: Mapping[str, Any], namespaced: bool,
                      path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    name, kind, group = (as_str(subject.get("name")), as_str(subject.get("kind")),
                         as_str(subject.get("apiGroup")))
    if not name:
        errs.append(required(path.child("name")))
    if kind == "ServiceAccount":
        if name:
            errs.extend(invalid(path.child("name"), name, msg)
                        for msg in is_dns1123_subdomain(name))
        if group:
            errs.append(not_supported(path.child("apiGroup"), group, [""]))
        if not namespaced and not subject.get("namespace"):
            errs.append(required(path.child("namespace")))
    elif kind in ("User", "Group"):
        if group != GROUP:
            errs.append(not_supported(path.child("apiGroup"), group, [GROUP]))
    else:
        errs.append(not_supported(path.child("kind"), kind, ["ServiceAccount", "User", "Group"]))
    return errs


def validate_binding(obj: Mapping[str, Any], namespaced: bool) -> list[FieldError]:
    """ValidateRoleBinding / ValidateClusterRoleBinding."""
    errs = validate_object_meta(obj.get("metadata"), requires_namespace=namespaced,
                                name_fn=is_valid_path_segment_name, path=_META)
    ref = as_dict(obj.get("roleRef"))
    ref_path = Path("roleRef")
    if ref.get("apiGroup") != GROUP:
        errs.append(not_supported(ref_path.child("apiGroup"), as_str(ref.get("apiGroup")),
                                  [GROUP]))
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if ref.get("kind") not in kinds:
        errs.append(not_supported(ref_path.child("kind"), as_str(ref.get("kind")), kinds))
    ref_name = as_str(ref.get("name"))
    if not ref_name:
        errs.append(required(ref_path.child("name")))
    errs.extend(invalid(ref_path.child("name"), ref_name, msg)
                for msg in is_valid_path_segment_name(ref_name) if ref_name)
    for i, subject in enumerate(as_list(obj.get("subjects"))):
        errs.extend(_validate_subject(as_dict(subject), namespaced, Path("subjects").index(i)))
    return errs


def validate_binding_update(new: Mapping[str, Any], old: Mapping[str, Any],
                            namespaced: bool) -> list[FieldError]:
    errs = [*validate_binding(new, namespaced),
            *validate_object_meta_update(new.get("metadata"), old.get("metadata"), _META)]
    if as_dict(new.get("roleRef")) != as_dict(old.get("roleRef")):
        errs.append(invalid("roleRef", as_dict(new.get("roleRef")), "cannot change roleRef"))
    return errs


# ------------------------------------------------------------------------------ evaluation


def applies_to(subject: Mapping[str, Any], user: str, groups: Sequence[str],
               binding_namespace: str) -> bool:
    """appliesToUser (rule.go): whether a binding's subject names this user."""
    kind, name = subject.get("kind"), as_str(subject.get("name"))
    if kind == "User":
        return user == name
    if kind == "Group":
        return name in groups
    if kind == "ServiceAccount":
        namespace = as_str(subject.get("namespace")) or binding_namespace
        return bool(namespace) and user == service_account_user(namespace, name)
    return False


def _has(values: Iterable[Any], wanted: str, *, wildcard: bool = True) -> bool:
    values = list(values)
    return wanted in values or (wildcard and "*" in values)


def _resource_matches(rule: Mapping[str, Any], resource: str, subresource: str) -> bool:
    """ResourceMatches: ``*``, ``pods``, ``pods/log`` or ``*/scale``."""
    combined = f"{resource}/{subresource}" if subresource else resource
    for r in as_list(rule.get("resources")):
        if r in ("*", combined):
            return True
        if subresource and r == f"*/{subresource}":
            return True
    return False


def _url_matches(rule: Mapping[str, Any], path: str) -> bool:
    for url in as_list(rule.get("nonResourceURLs")):
        if url in ("*", path) or (url.endswith("*") and path.startswith(url[:-1])):
            return True
    return False


def rule_allows(rule: Mapping[str, Any], attrs: Attributes) -> bool:
    """RuleAllows (rbac.go): one PolicyRule against one request."""
    if not _has(as_list(rule.get("verbs")), attrs.verb):
        return False
    if not attrs.is_resource:
        return _url_matches(rule, attrs.path)
    if not _has(as_list(rule.get("apiGroups")), attrs.group):
        return False
    if not _resource_matches(rule, attrs.resource, attrs.subresource):
        return False
    names = as_list(rule.get("resourceNames"))
    return not names or attrs.name in names


def breakdown(rule: Mapping[str, Any], namespace: str) -> Iterable[Attributes]:
    """BreakdownRule: one request per (group, resource, name, verb) or (URL, verb)."""
    for verb in as_list(rule.get("verbs")):
        for url in as_list(rule.get("nonResourceURLs")):
            yield Attributes(verb, path=url)
        for group in as_list(rule.get("apiGroups")):
            for resource in as_list(rule.get("resources")):
                base, _, sub = as_str(resource).partition("/")
                for name in as_list(rule.get("resourceNames")) or [""]:
                    yield Attributes(verb, group, base, sub, namespace, as_str(name))


def _atom_covered(owned: Sequence[Mapping[str, Any]], atom: Attributes) -> bool:
    for rule in owned:
        if not atom.is_resource:
            if _has(as_list(rule.get("verbs")), atom.verb) and _url_matches(rule, atom.path):
                return True
            continue
        verbs, groups = as_list(rule.get("verbs")), as_list(rule.get("apiGroups"))
        if not (_has(verbs, atom.verb) and _has(groups, atom.group)):
            continue
        if atom.verb == "*" and "*" not in verbs:
            continue
        if atom.group == "*" and "*" not in groups:
            continue
        resources = as_list(rule.get("resources"))
        if atom.resource == "*" and "*" not in resources:
            continue
        if not _resource_matches(rule, atom.resource, atom.subresource):
            continue
        names = as_list(rule.get("resourceNames"))
        if not names or (atom.name and atom.name in names):
            return True
    return False


def covers(owned: Sequence[Mapping[str, Any]], requested: Sequence[Mapping[str, Any]],
           namespace: str = "") -> list[Mapping[str, Any]]:
    """Covers (policy_comparator.go): the requested rules that ``owned`` does not cover."""
    return [rule for rule in requested
            if not all(_atom_covered(owned, atom) for atom in breakdown(rule, namespace))]
