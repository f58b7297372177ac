"""networking.k8s.io/v1 Ingresses and IngressClasses: defaulting, validation and the
DefaultIngressClass admission, as Kubernetes 1.33 does them.

Theory of operation
-------------------
An Ingress routes HTTP(S) by host and path to Services (or to any object through a typed
``resource`` reference); an IngressClass names the controller that implements a class of
them. Core Kubernetes serves both kinds but runs no Ingress controller, and neither does
svcnet: these objects are stored, validated and listed, and an Ingress controller installed in
the cluster reads them and writes ``status.loadBalancer``.

Mirrors:

* ``pkg/apis/networking/v1/defaults.go`` — ``SetDefaults_IngressClass``: a ``parameters``
  reference without a ``scope`` is ``Cluster``. Nothing in an Ingress is defaulted: v1 has no
  default ``pathType`` (validation requires one);
* ``pkg/apis/networking/validation/validation.go`` — ``ValidateIngressCreate`` /
  ``ValidateIngressUpdate`` (core's ObjectMeta rules, the name a DNS subdomain; a spec with
  rules or a default backend; rules' hosts DNS-1123 subdomains, or wildcards ``*.example.com``,
  and no IP; each HTTP path with a ``pathType`` among Exact, ImplementationSpecific and
  Prefix, absolute and free of ``//``, ``/./``... for Exact and Prefix; each backend exactly
  one of ``service`` (a DNS-1035 name, a port by name or by number, not both) and
  ``resource``; TLS hosts and secret names; ``ingressClassName`` a DNS subdomain, and equal to
  the deprecated ``kubernetes.io/ingress.class`` annotation on create when both are set), with
  the update's grandfathering of invalid secret names and wildcard-host rules the stored
  object already had; ``ValidateIngressStatusUpdate`` (load balancer IPs and hostnames);
  ``ValidateIngressClass`` / ``ValidateIngressClassUpdate`` (``controller`` required, at most
  250 bytes, a domain-prefixed path, immutable; ``parameters`` a kind and name that are path
  segments, an API group that is a DNS subdomain, a scope of Cluster or Namespace with a
  namespace exactly when Namespace);
* ``pkg/registry/networking/ingress/strategy.go`` and ``.../ingressclass/strategy.go`` —
  both have a generation (spec changes bump it); an Ingress's status is reset on create and
  kept by spec updates; its ``/status`` endpoint keeps the spec;
* ``plugin/pkg/admission/network/defaultingressclass/admission.go`` — a new Ingress with
  neither ``ingressClassName`` nor the ``kubernetes.io/ingress.class`` annotation gets the
  name of the IngressClass annotated ``ingressclass.kubernetes.io/is-default-class: "true"``
  (the newest one when several are, ties broken by name): :func:`admit_default_ingress_class`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from svcnet.api.access import list_of, map_of, str_of
from svcnet.api.errors import (
    FieldError,
    GoRaw,
    Path,
    forbidden,
    invalid,
    not_supported,
    required,
    too_long,
)
from svcnet.api.meta import (
    FIELD_IMMUTABLE_ERROR_MSG,
    validate_object_meta,
    validate_object_meta_update,
)
from svcnet.api.names import (
    is_dns1123_subdomain,
    is_valid_ip,
    is_valid_port_name,
    is_valid_port_num,
    max_len_error,
    name_is_dns1035_label,
    name_is_dns_subdomain,
    parse_ip_sloppy,
    regex_error,
    validate_namespace_name,
)
from svcnet.api.rbac import is_valid_path_segment_name
from svcnet.util.clock import parse_time

__all__ = [
    "ANNOTATION_INGRESS_CLASS",
    "ANNOTATION_IS_DEFAULT_CLASS",
    "API_VERSION",
    "GROUP",
    "admit_default_ingress_class",
    "default_ingress_class",
    "prepare_ingress_for_create",
    "prepare_ingress_for_status_update",
    "prepare_ingress_for_update",
    "set_defaults_ingress_class",
    "validate_ingress",
    "validate_ingress_class",
    "validate_ingress_class_update",
    "validate_ingress_status_update",
    "validate_ingress_update",
]

Obj = dict[str, Any]
GROUP: Final = "networking.k8s.io"
API_VERSION: Final = f"{GROUP}/v1"
#: The deprecated way to choose a class (networking/v1beta1 AnnotationIngressClass).
ANNOTATION_INGRESS_CLASS: Final = "kubernetes.io/ingress.class"
#: networking/v1 AnnotationIsDefaultIngressClass.
ANNOTATION_IS_DEFAULT_CLASS: Final = "ingressclass.kubernetes.io/is-default-class"

_META: Final = Path("metadata")
_SPEC: Final = Path("spec")
PATH_TYPES: Final = ("Exact", "ImplementationSpecific", "Prefix")
_INVALID_PATH_SEQUENCES: Final = ("//", "/./", "/../", "%2f", "%2F")
_INVALID_PATH_SUFFIXES: Final = ("/..", "/.")
_SCOPES: Final = ("Cluster", "Namespace")
_MAX_CONTROLLER_LEN: Final = 250

_WILDCARD_FMT: Final = r"\*\." + "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_WILDCARD_RE: Final = re.compile(_WILDCARD_FMT)
_WILDCARD_ERR_MSG: Final = (
    "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, "
    "which must consist of lower case alphanumeric characters, '-' or '.' and end with an "
    "alphanumeric character")
_HTTP_PATH_FMT: Final = r"[A-Za-z0-9/\-._~%!$&'()*+,;=:]+"
_HTTP_PATH_RE: Final = re.compile(_HTTP_PATH_FMT)


# ------------------------------------------------------------------------- string formats


def is_wildcard_dns1123_subdomain(value: str) -> list[str]:
    """IsWildcardDNS1123Subdomain: ``*.`` then a DNS-1123 subdomain, at most 253 bytes."""
    errs: list[str] = []
    if len(value.encode()) > 253:
        errs.append(max_len_error(253))
    if not _WILDCARD_RE.fullmatch(value):
        errs.append(regex_error(_WILDCARD_ERR_MSG, _WILDCARD_FMT, "*.example.com"))
    return errs


def validate_domain_prefixed_path(value: str, path: Path) -> list[FieldError]:
    """IsDomainPrefixedPath: ``<DNS subdomain>/<HTTP path characters>``."""
    if not value:
        return [required(path)]
    host, sep, rest = value.partition("/")
    if not sep or not host or not rest:
        return [invalid(path, value, 'must be a domain-prefixed path (such as "acme.io/foo")')]
    errs = [invalid(path, host, m) for m in is_dns1123_subdomain(host)]
    if not _HTTP_PATH_RE.fullmatch(rest):
        errs.append(invalid(path, rest, regex_error("Invalid path", _HTTP_PATH_FMT)))
    return errs


def _host_errors(host: str, path: Path) -> list[FieldError]:
    if "*" in host:
        return [invalid(path, host, m) for m in is_wildcard_dns1123_subdomain(host)]
    return [invalid(path, host, m) for m in is_dns1123_subdomain(host)]


# ------------------------------------------------------------------------- defaulting


def set_defaults_ingress_class(obj: Mapping[str, Any]) -> Obj:
    """SetDefaults_IngressClass: ``spec.parameters.scope`` defaults to ``Cluster``."""
    out = copy.deepcopy(dict(obj))
    spec = out.get("spec")
    params = spec.get("parameters") if isinstance(spec, dict) else None
    if isinstance(params, dict) and params.get("scope") is None:
        params["scope"] = "Cluster"
    return out


def prepare_ingress_for_create(obj: Mapping[str, Any]) -> Obj:
    """ingressStrategy.PrepareForCreate: status is the server's (an empty one, which Go
    encodes with its ``loadBalancer`` struct: ``{"loadBalancer": {}}``)."""
    out = copy.deepcopy(dict(obj))
    out["status"] = {"loadBalancer": {}}
    return out


def prepare_ingress_for_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> Obj:
    """ingressStrategy.PrepareForUpdate: the main endpoint cannot change status."""
    out = copy.deepcopy(dict(new))
    out["status"] = copy.deepcopy(old.get("status") or {"loadBalancer": {}})
    return out


def prepare_ingress_for_status_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> Obj:
    """ingressStatusStrategy.PrepareForUpdate: the status endpoint cannot change the spec."""
    out = copy.deepcopy(dict(new))
    out["spec"] = copy.deepcopy(old.get("spec") or {})
    status = out.get("status")
    if not isinstance(status, dict) or not isinstance(status.get("loadBalancer"), dict):
        out["status"] = {**(status if isinstance(status, dict) else {}), "loadBalancer": {}}
    return out


# ------------------------------------------------------------------------- Ingress


def _validate_backend_reference(ref: Mapping[str, Any], path: Path) -> list[FieldError]:
    """validateIngressTypedLocalObjectReference (a backend's ``resource``)."""
    errs: list[FieldError] = []
    group = ref.get("apiGroup")
    if isinstance(group, str):
        errs.extend(invalid(path.child("apiGroup"), group, m)
                    for m in is_dns1123_subdomain(group))
    for key in ("kind", "name"):
        value = str_of(ref, key)
        if not value:
            errs.append(required(path.child(key)))
        else:
            errs.extend(invalid(path.child(key), value, m)
                        for m in is_valid_path_segment_name(value))
    return errs


def _validate_backend(backend: Mapping[str, Any], path: Path) -> list[FieldError]:
    """validateIngressBackend: exactly one of ``service`` and ``resource``."""
    service, resource = backend.get("service"), backend.get("resource")
    if isinstance(service, dict) and isinstance(resource, dict):
        return [invalid(path, "", "cannot set both resource and service backends")]
    if isinstance(resource, dict):
        return _validate_backend_reference(resource, path.child("resource"))
    if not isinstance(service, dict):
        return [invalid(path, "", "resource or service backend is required")]
    errs: list[FieldError] = []
    name = str_of(service, "name")
    name_path = path.child("service", "name")
    if not name:
        errs.append(required(name_path))
    else:
        errs.extend(invalid(name_path, name, m) for m in name_is_dns1035_label(name, False))
    port = map_of(service, "port")
    port_name = str_of(port, "name")
    number = port.get("number")
    port_number = number if isinstance(number, int) else 0
    if port_name and port_number:
        errs.append(invalid(path, "", "cannot set both port name & port number"))
    elif port_name:
        errs.extend(invalid(path.child("service", "port", "name"), port_name, m)
                    for m in is_valid_port_name(port_name))
    elif port_number:
        errs.extend(invalid(path.child("service", "port", "number"), port_number, m)
                    for m in is_valid_port_num(port_number))
    else:
        errs.append(required(path, "port name or number is required"))
    return errs


def _validate_http_path(item: Mapping[str, Any], path: Path) -> list[FieldError]:
    """validateHTTPIngressPath."""
    path_type = item.get("pathType")
    if path_type is None:
        return [required(path.child("pathType"), "pathType must be specified")]
    value = str_of(item, "path")
    errs: list[FieldError] = []
    if path_type in ("Exact", "Prefix"):
        if not value.startswith("/"):
            errs.append(invalid(path.child("path"), value, "must be an absolute path"))
        errs.extend(invalid(path.child("path"), value, f"must not contain '{seq}'")
                    for seq in _INVALID_PATH_SEQUENCES if seq in value)
        errs.extend(invalid(path.child("path"), value, f"cannot end with '{suffix}'")
                    for suffix in _INVALID_PATH_SUFFIXES if value.endswith(suffix))
    elif path_type == "ImplementationSpecific":
        if value and not value.startswith("/"):
            errs.append(invalid(path.child("path"), value, "must be an absolute path"))
    else:
        errs.append(not_supported(path.child("pathType"), path_type, PATH_TYPES))
    errs.extend(_validate_backend(map_of(item, "backend"), path.child("backend")))
    return errs


def _validate_rule_value(rule: Mapping[str, Any], path: Path) -> list[FieldError]:
    """validateIngressRuleValue: an ``http`` value needs at least one path."""
    http = rule.get("http")
    if not isinstance(http, dict):
        return []
    paths = list_of(http, "paths")
    errs: list[FieldError] = []
    if not paths:
        errs.append(required(path.child("http", "paths")))
    for i, item in enumerate(paths):
        errs.extend(_validate_http_path(item if isinstance(item, dict) else {},
                                        path.child("http", "paths").index(i)))
    return errs


def _validate_rules(rules: Sequence[Any], path: Path, *,
                    allow_invalid_wildcard_rule: bool) -> list[FieldError]:
    """validateIngressRules."""
    errs: list[FieldError] = []
    for i, raw in enumerate(rules):
        rule = raw if isinstance(raw, dict) else {}
        host = str_of(rule, "host")
        host_path = path.index(i).child("host")
        if host:
            if parse_ip_sloppy(host) is not None:
                errs.append(invalid(host_path, host, "must be a DNS name, not an IP address"))
            errs.extend(_host_errors(host, host_path))
        if "*" not in host or not allow_invalid_wildcard_rule:
            errs.extend(_validate_rule_value(rule, path.index(i)))
    return errs


def _validate_tls(tls: Sequence[Any], path: Path, *,
                  allow_invalid_secret_name: bool) -> list[FieldError]:
    """validateIngressTLS."""
    errs: list[FieldError] = []
    for i, raw in enumerate(tls):
        item = raw if isinstance(raw, dict) else {}
        for j, host in enumerate(list_of(item, "hosts")):
            errs.extend(_host_errors(str(host), path.index(i).child("hosts").index(j)))
        secret = str_of(item, "secretName")
        if not allow_invalid_secret_name and secret:
            errs.extend(invalid(path.index(i).child("secretName"), secret, m)
                        for m in name_is_dns_subdomain(secret, False))
    return errs


def _validate_ingress_spec(spec: Mapping[str, Any], *, allow_invalid_secret_name: bool = False,
                           allow_invalid_wildcard_rule: bool = False) -> list[FieldError]:
    """ValidateIngressSpec."""
    errs: list[FieldError] = []
    rules = list_of(spec, "rules")
    default_backend = spec.get("defaultBackend")
    if not rules and not isinstance(default_backend, dict):
        shown = "[]networking.IngressRule{}" if isinstance(spec.get("rules"), list) \
            else "[]networking.IngressRule(nil)"
        errs.append(invalid(_SPEC, GoRaw(shown),
                            "either `defaultBackend` or `rules` must be specified"))
    if isinstance(default_backend, dict):
        errs.extend(_validate_backend(default_backend, _SPEC.child("defaultBackend")))
    if rules:
        errs.extend(_validate_rules(rules, _SPEC.child("rules"),
                                    allow_invalid_wildcard_rule=allow_invalid_wildcard_rule))
    tls = list_of(spec, "tls")
    if tls:
        errs.extend(_validate_tls(tls, _SPEC.child("tls"),
                                  allow_invalid_secret_name=allow_invalid_secret_name))
    class_name = spec.get("ingressClassName")
    if isinstance(class_name, str):
        errs.extend(invalid(_SPEC.child("ingressClassName"), class_name, m)
                    for m in name_is_dns_subdomain(class_name, False))
    return errs


def validate_ingress(ingress: Mapping[str, Any]) -> list[FieldError]:
    """ValidateIngressCreate."""
    meta = map_of(ingress, "metadata")
    spec = map_of(ingress, "spec")
    errs = validate_object_meta(meta, requires_namespace=True, name_fn=name_is_dns_subdomain,
                                path=_META)
    errs.extend(_validate_ingress_spec(spec))
    annotations = map_of(meta, "annotations")
    class_name = spec.get("ingressClassName")
    if ANNOTATION_INGRESS_CLASS in annotations and isinstance(class_name, str) and \
            annotations[ANNOTATION_INGRESS_CLASS] != class_name:
        errs.append(invalid(Path("annotations").child(ANNOTATION_INGRESS_CLASS),
                            annotations[ANNOTATION_INGRESS_CLASS],
                            "must match `ingressClassName` when both are specified"))
    return errs


def _has_invalid_secret_name(old: Mapping[str, Any]) -> bool:
    """allowInvalidSecretName: the stored object already had one."""
    return any(name_is_dns_subdomain(str_of(t, "secretName"), False)
               for t in list_of(map_of(old, "spec"), "tls")
               if isinstance(t, dict) and str_of(t, "secretName"))


def _has_invalid_wildcard_rule(old: Mapping[str, Any]) -> bool:
    """allowInvalidWildcardHostRule: the stored object already had one."""
    return any("*" in str_of(r, "host") and _validate_rule_value(r, Path("x"))
               for r in list_of(map_of(old, "spec"), "rules") if isinstance(r, dict))


def validate_ingress_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[FieldError]:
    """ValidateIngressUpdate: the ObjectMeta update rules, then the create rules on the new
    object (with what the stored object already got away with allowed)."""
    errs = validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"), _META)
    errs.extend(validate_object_meta(map_of(new, "metadata"), requires_namespace=True,
                                     name_fn=name_is_dns_subdomain, path=_META))
    errs.extend(_validate_ingress_spec(
        map_of(new, "spec"), allow_invalid_secret_name=_has_invalid_secret_name(old),
        allow_invalid_wildcard_rule=_has_invalid_wildcard_rule(old)))
    return errs


def validate_ingress_status_update(new: Mapping[str, Any],
                                   old: Mapping[str, Any]) -> list[FieldError]:
    """ValidateIngressStatusUpdate: ``status.loadBalancer.ingress[]``'s IPs (those already
    stored are grandfathered) and hostnames."""
    errs = validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"), _META)
    old_ips = [str_of(i, "ip") for i in list_of(map_of(map_of(old, "status"), "loadBalancer"),
                                               "ingress") if isinstance(i, dict)]
    path = Path("status", "loadBalancer", "ingress")
    for i, raw in enumerate(list_of(map_of(map_of(new, "status"), "loadBalancer"), "ingress")):
        item = raw if isinstance(raw, dict) else {}
        ip, hostname = str_of(item, "ip"), str_of(item, "hostname")
        if ip and ip not in old_ips:
            errs.extend(invalid(path.index(i).child("ip"), ip, m) for m in is_valid_ip(ip))
        if hostname:
            errs.extend(invalid(path.index(i).child("hostname"), hostname, m)
                        for m in is_dns1123_subdomain(hostname))
            if parse_ip_sloppy(hostname) is not None:
                errs.append(invalid(path.index(i).child("hostname"), hostname,
                                    "must be a DNS name, not an IP address"))
    return errs


# ------------------------------------------------------------------------- IngressClass


def _validate_parameters(params: Mapping[str, Any], path: Path) -> list[FieldError]:
    """validateIngressClassParametersReference."""
    errs: list[FieldError] = []
    group = params.get("apiGroup")
    if isinstance(group, str):
        errs.extend(invalid(path.child("apiGroup"), group, m)
                    for m in is_dns1123_subdomain(group))
    for key in ("kind", "name"):
        value = str_of(params, key)
        if not value:
            errs.append(required(path.child(key)))
        else:
            errs.extend(invalid(path.child(key), value, m)
                        for m in is_valid_path_segment_name(value))
    scope = params.get("scope")
    if scope is None:
        errs.append(required(path.child("scope")))
        return errs
    namespace = params.get("namespace")
    if scope not in _SCOPES:
        errs.append(not_supported(path.child("scope"), scope, _SCOPES))
    elif scope == "Namespace":
        if namespace is None:
            errs.append(required(path.child("namespace"),
                                 "`parameters.scope` is set to 'Namespace'"))
        else:
            errs.extend(invalid(path.child("namespace"), namespace, m)
                        for m in validate_namespace_name(str(namespace), False))
    elif namespace is not None:
        errs.append(forbidden(path.child("namespace"), "`parameters.scope` is set to 'Cluster'"))
    return errs


def validate_ingress_class(ic: Mapping[str, Any]) -> list[FieldError]:
    """ValidateIngressClass."""
    errs = validate_object_meta(map_of(ic, "metadata"), requires_namespace=False,
                                name_fn=name_is_dns_subdomain, path=_META)
    spec = map_of(ic, "spec")
    controller = str_of(spec, "controller")
    path = _SPEC.child("controller")
    if not controller:
        errs.append(required(path))
    else:
        if len(controller.encode()) > _MAX_CONTROLLER_LEN:
            errs.append(too_long(path, "", _MAX_CONTROLLER_LEN))
        errs.extend(validate_domain_prefixed_path(controller, path))
    params = spec.get("parameters")
    if isinstance(params, dict):
        errs.extend(_validate_parameters(params, _SPEC.child("parameters")))
    return errs


def validate_ingress_class_update(new: Mapping[str, Any],
                                  old: Mapping[str, Any]) -> list[FieldError]:
    """ValidateIngressClassUpdate: ObjectMeta update rules, an immutable controller, then
    the create rules."""
    errs = validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata"), _META)
    controller = str_of(map_of(new, "spec"), "controller")
    if controller != str_of(map_of(old, "spec"), "controller"):
        errs.append(invalid(_SPEC.child("controller"), controller, FIELD_IMMUTABLE_ERROR_MSG))
    errs.extend(validate_ingress_class(new))
    return errs


# ------------------------------------------------------------------------- admission


def default_ingress_class(classes: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """getDefaultClass: among the classes annotated as default, the newest (then the first
    by name); None when there is none."""
    defaults = [c for c in classes
                if map_of(map_of(c, "metadata"), "annotations").get(
                    ANNOTATION_IS_DEFAULT_CLASS) == "true"]
    if not defaults:
        return None

    def key(c: Mapping[str, Any]) -> tuple[float, str]:
        meta = map_of(c, "metadata")
        created = parse_time(meta.get("creationTimestamp"))
        return (-(created.timestamp() if created is not None else 0.0), str_of(meta, "name"))

    return min(defaults, key=key)


def admit_default_ingress_class(ingress: Mapping[str, Any],
                                classes: Iterable[Mapping[str, Any]]) -> Obj:
    """The DefaultIngressClass admission of a new Ingress (a copy; unchanged when it names a
    class, by field or by the deprecated annotation, or when no class is the default)."""
    out = copy.deepcopy(dict(ingress))
    spec = out.get("spec")
    if isinstance(spec, dict) and spec.get("ingressClassName") is not None:
        return out
    if ANNOTATION_INGRESS_CLASS in map_of(map_of(out, "metadata"), "annotations"):
        return out
    found = default_ingress_class(classes)
    if found is None:
        return out
    if not isinstance(spec, dict):
        spec = out["spec"] = {}
    spec["ingressClassName"] = str_of(map_of(found, "metadata"), "name")
    return out
