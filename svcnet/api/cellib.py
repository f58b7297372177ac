"""Kubernetes' CEL libraries for CRD validation rules and webhooks' match conditions, on the
CEL C++ runtime (cel-expr-python).

Theory of operation
-------------------
kube-apiserver compiles ``x-kubernetes-validations`` rules in a CEL environment that adds its
own libraries (``k8s.io/apiserver/pkg/cel/library``) to the standard one. :func:`environment`
builds the same kind of environment here: the standard library of the CEL C++ runtime (the
reference implementation, with the same type checker and RE2 ``matches``), its extensions that
Kubernetes also loads (strings version 2: ``charAt``, ``indexOf``, ``lastIndexOf``,
``lowerAscii``, ``upperAscii``, ``replace``, ``split``, ``join``, ``substring``, ``trim``,
``format``, ``quote``, ``reverse``; optional values; ``cel.bind``), and these Kubernetes
libraries, written here as Python overloads the runtime calls:

* lists (``lists.go``): ``isSorted``, ``sum``, ``min``, ``max``, ``indexOf``,
  ``lastIndexOf``;
* regex (``regex.go``): ``find``, ``findAll`` (RE2, through google-re2);
* URLs (``urls.go``): ``url``, ``isURL``, ``getScheme``, ``getHost``, ``getHostname``,
  ``getPort``, ``getEscapedPath``, ``getQuery`` (accepted as Go's url.ParseRequestURI accepts,
  through :mod:`svcnet.api.gourl`);
* quantities (``quantity.go``): ``quantity``, ``isQuantity``, ``sign``, ``isInteger``,
  ``asInteger``, ``asApproximateFloat``, ``add``, ``sub``, ``isLessThan``,
  ``isGreaterThan``, ``compareTo`` (values read by :mod:`svcnet.api.resourcelists`);
* IPs and CIDRs (``ip.go``, ``cidr.go``): ``ip``, ``isIP``, ``family``, ``isLoopback``,
  ``isUnspecified``, ``isLinkLocalMulticast``, ``isLinkLocalUnicast``, ``isGlobalUnicast``,
  ``cidr``, ``isCIDR``, ``containsIP``, ``containsCIDR``, ``prefixLength``, ``masked``.

The runtime cannot hold an opaque Python value, so a URL, a quantity, an IP and a CIDR are CEL
maps with one marker key (``{"kubernetes.URL": "https://x"}``): the functions above take and
return them, ``==`` compares their canonical text, and ``type()`` says ``map``, not
``kubernetes.URL``. The authorizer library (``authz.go``: ``authorizer.group(...)``,
``.resource(...)``, ``.check(...)``, ``.allowed()``...) is declared when asked for
(``environment(..., authorizer=True)``, admission webhooks' ``matchConditions``) so that
expressions using it compile, but every call is an evaluation error: svcnet's authorizer reads
RBAC objects asynchronously and cannot be called from inside an evaluation (matchConditions
do not evaluate such an expression: :mod:`svcnet.api.matchconditions`). Shared here:
:func:`compile_issues` and :func:`evaluate` (errors worded as cel-go's). Not here: ``format.*``
(named formats), ``sets.*``, two-variable comprehensions, semver, cross-type numeric ordering
of two literals (``1 < 1.5`` is a compile error; a rule that orders a value of the schema
against a number of the other type compiles with that value typed ``dyn``:
:mod:`svcnet.api.crcel`), and upstream's cost model: the runtime's own bound is 10,000
comprehension iterations per evaluation (see :mod:`svcnet.api.crcel`).
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import re
import urllib.parse
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any, Final

import re2
from cel_expr_python import cel
from cel_expr_python.ext import ext_bindings, ext_optional, ext_strings

from svcnet.api.errors import go_quote
from svcnet.api.gourl import GoURL, URLError, parse_url
from svcnet.api.resourcelists import format_quantity, is_binary_quantity, parse_quantity

__all__ = ["BudgetExceeded", "CelLibraryError", "cel", "compile_issues", "environment",
           "evaluate", "go_error"]

_URL: Final = "kubernetes.URL"
_QUANTITY: Final = "kubernetes.Quantity"
_IP: Final = "net.IP"
_CIDR: Final = "net.CIDR"

_S, _I, _B, _D, _F = cel.Type.STRING, cel.Type.INT, cel.Type.BOOL, cel.Type.DYN, cel.Type.DOUBLE
_L = cel.Type.List(_D)
_OBJ = cel.Type.Map(_S, _S)  # a URL, quantity, IP or CIDR (see the module docstring)


class CelLibraryError(ValueError):
    """A library call's error value (its text is what the rule's error reports)."""


def _text(value: Any, marker: str) -> str:
    if isinstance(value, dict) and marker in value:
        return str(value[marker])
    raise CelLibraryError(f"no such overload: expected a {marker}")


# ------------------------------------------------------------------------------------- lists


def _comparable(items: Sequence[Any]) -> list[Any]:
    values = list(items)
    kinds = {type(v) for v in values}
    if len(kinds) > 1 and not kinds <= {int, float}:
        raise CelLibraryError("no such overload")
    return values


def _is_sorted(items: Sequence[Any]) -> bool:
    values = _comparable(items)
    return all(a <= b for a, b in itertools.pairwise(values))


def _sum(items: Sequence[Any]) -> Any:
    values = _comparable(items)
    return sum(values) if values else 0


def _extreme(name: str, pick: Callable[[list[Any]], Any]) -> Callable[[Sequence[Any]], Any]:
    def call(items: Sequence[Any]) -> Any:
        values = _comparable(items)
        if not values:
            raise CelLibraryError(f"{name} called on empty list")
        return pick(values)
    return call


def _index_of(items: Sequence[Any], value: Any) -> int:
    for i, item in enumerate(items):
        if item == value and type(item) is type(value):
            return i
    return -1


def _last_index_of(items: Sequence[Any], value: Any) -> int:
    values = list(items)
    for i in range(len(values) - 1, -1, -1):
        if values[i] == value and type(values[i]) is type(value):
            return i
    return -1


# ------------------------------------------------------------------------------------- regex

_RE2_OPTIONS: Final = re2.Options()
_RE2_OPTIONS.log_errors = False


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as e:
        raise CelLibraryError(f"Illegal regular expression: {pattern}") from e


def _find(text: str, pattern: str) -> str:
    m = _regex(pattern).search(text)
    return "" if m is None else str(m.group(0))


def _find_all(text: str, pattern: str, limit: int = -1) -> list[str]:
    if limit == 0:
        return []
    found: list[str] = []
    for m in _regex(pattern).finditer(text):
        found.append(str(m.group(0)))
        if 0 < limit <= len(found):
            break
    return found


# -------------------------------------------------------------------------------------- URLs


def _parse_url(text: str) -> tuple[GoURL, urllib.parse.SplitResult] | None:
    """url.ParseRequestURI's acceptance (Go's url.Parse, :mod:`svcnet.api.gourl`, of an
    absolute URI or an absolute path), with the path and query split apart."""
    try:
        url = parse_url(text)
        parts = urllib.parse.urlsplit(text, allow_fragments=False)
    except (URLError, ValueError):
        return None
    if not url.scheme and not text.startswith("/"):
        return None
    return url, parts


def _url(text: str) -> dict[str, str]:
    if _parse_url(text) is None:
        raise CelLibraryError("URL parse error during conversion from string: parse "
                              f"{go_quote(text)}: invalid URI for request")
    return {_URL: text}


def _url_part(part: Callable[[GoURL, urllib.parse.SplitResult], Any]) -> Callable[[Any], Any]:
    def call(value: Any) -> Any:
        parsed = _parse_url(_text(value, _URL))
        if parsed is None:  # (only url() makes these)
            raise CelLibraryError("invalid URL")
        return part(*parsed)
    return call


def _host(url: GoURL, _: urllib.parse.SplitResult) -> str:
    return url.host


def _hostname(url: GoURL, _: urllib.parse.SplitResult) -> str:
    host = url.host
    if host.startswith("["):
        return host[1:host.find("]")]
    return host.rpartition(":")[0] if ":" in host else host


def _port(url: GoURL, _: urllib.parse.SplitResult) -> str:
    host = url.host
    tail = host[host.find("]") + 1:] if host.startswith("[") else host
    return tail.rpartition(":")[2] if ":" in tail else ""


def _query(url: GoURL, _: urllib.parse.SplitResult) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(url.raw_query, keep_blank_values=True)


# -------------------------------------------------------------------------------- quantities


def _quantity_value(value: Any) -> Fraction:
    q = parse_quantity(_text(value, _QUANTITY))
    if q is None:
        raise CelLibraryError("invalid quantity")
    return q


def _quantity(text: str) -> dict[str, str]:
    q = parse_quantity(text)
    if q is None:
        raise CelLibraryError("quantities must match the regular expression "
                              "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    return {_QUANTITY: format_quantity(q, binary=is_binary_quantity(text))}


def _quantity_of(q: Fraction) -> dict[str, str]:
    return {_QUANTITY: format_quantity(q)}


def _as_integer(value: Any) -> int:
    q = _quantity_value(value)
    if q.denominator != 1 or not -(2**63) <= q < 2**63:
        raise CelLibraryError("cannot convert value to integer")
    return int(q)


def _operand(value: Any) -> Fraction:
    return Fraction(value) if isinstance(value, int) else _quantity_value(value)


def _compare(a: Any, b: Any) -> int:
    x, y = _quantity_value(a), _quantity_value(b)
    return (x > y) - (x < y)


# ------------------------------------------------------------------------------- IPs, CIDRs


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Upstream's strict parsing: no leading zeros, no IPv4-mapped IPv6, no zones."""
    if "%" in text:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return None
    return ip


def _ip(text: str) -> dict[str, str]:
    ip = _parse_ip(text)
    if ip is None:
        raise CelLibraryError(f"IP Address {text!r} parse error during conversion from "
                              "string: ParseAddr(" + repr(text) + "): unable to parse IP")
    return {_IP: str(ip)}


def _ip_value(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = _parse_ip(_text(value, _IP))
    if ip is None:
        raise CelLibraryError("invalid IP")
    return ip


def _parse_cidr(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    address, slash, _ = text.partition("/")
    if not slash or _parse_ip(address) is None:
        return None
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        return None


def _cidr(text: str) -> dict[str, str]:
    if _parse_cidr(text) is None:
        raise CelLibraryError(f"network address {text!r} parse error during conversion from "
                              "string: netip.ParsePrefix(" + repr(text) + "): bad prefix")
    return {_CIDR: text}


def _cidr_value(value: Any) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    network = _parse_cidr(_text(value, _CIDR))
    if network is None:
        raise CelLibraryError("invalid CIDR")
    return network


def _contains_ip(value: Any, other: Any) -> bool:
    network = _cidr_value(value).network
    ip = _parse_ip(other) if isinstance(other, str) else _ip_value(other)
    return ip is not None and ip.version == network.version and ip in network


def _contains_cidr(value: Any, other: Any) -> bool:
    network = _cidr_value(value).network
    inner = _parse_cidr(other) if isinstance(other, str) else _cidr_value(other)
    return (inner is not None and inner.version == network.version
            and inner.network.subnet_of(network))  # type: ignore[arg-type]


def _masked(value: Any) -> dict[str, str]:
    return {_CIDR: str(_cidr_value(value).network)}


# ------------------------------------------------------------------------------ declarations


def _overload(oid: str, result: Any, params: list[Any], impl: Callable[..., Any], *,
              member: bool = True) -> Any:
    return cel.Overload(oid, result, params, is_member=member, impl=impl)


def _functions() -> list[Any]:
    f = cel.FunctionDecl
    o = _overload
    ip_bool = [("isLoopback", "is_loopback"), ("isUnspecified", "is_unspecified"),
               ("isLinkLocalMulticast", "is_link_local_multicast"),
               ("isLinkLocalUnicast", "is_link_local_unicast")]
    decls = [
        # lists
        f("isSorted", [o("list_is_sorted", _B, [_L], _is_sorted)]),
        f("sum", [o("list_sum", _D, [_L], _sum)]),
        f("min", [o("list_min", _D, [_L], _extreme("min", min))]),
        f("max", [o("list_max", _D, [_L], _extreme("max", max))]),
        f("indexOf", [o("list_index_of", _I, [_L, _D], _index_of)]),
        f("lastIndexOf", [o("list_last_index_of", _I, [_L, _D], _last_index_of)]),
        # regex
        f("find", [o("string_find_string", _S, [_S, _S], _find)]),
        f("findAll", [o("string_find_all_string", cel.Type.List(_S), [_S, _S], _find_all),
                      o("string_find_all_string_int", cel.Type.List(_S), [_S, _S, _I],
                        _find_all)]),
        # URLs
        f("url", [o("string_to_url", _OBJ, [_S], _url, member=False)]),
        f("isURL", [o("is_url_string", _B, [_S], lambda s: _parse_url(s) is not None,
                      member=False)]),
        f("getScheme", [o("url_get_scheme", _S, [_OBJ], _url_part(lambda u, _: u.scheme))]),
        f("getHost", [o("url_get_host", _S, [_OBJ], _url_part(_host))]),
        f("getHostname", [o("url_get_hostname", _S, [_OBJ], _url_part(_hostname))]),
        f("getPort", [o("url_get_port", _S, [_OBJ], _url_part(_port))]),
        f("getEscapedPath", [o("url_get_escaped_path", _S, [_OBJ],
                               _url_part(lambda _, p: p.path))]),
        f("getQuery", [o("url_get_query", cel.Type.Map(_S, cel.Type.List(_S)), [_OBJ],
                         _url_part(_query))]),
        # quantities
        f("quantity", [o("string_to_quantity", _OBJ, [_S], _quantity, member=False)]),
        f("isQuantity", [o("is_quantity_string", _B, [_S],
                           lambda s: parse_quantity(s) is not None, member=False)]),
        f("sign", [o("quantity_sign", _I, [_OBJ],
                     lambda q: (_quantity_value(q) > 0) - (_quantity_value(q) < 0))]),
        f("isInteger", [o("quantity_is_integer", _B, [_OBJ],
                          lambda q: _quantity_value(q).denominator == 1)]),
        f("asInteger", [o("quantity_get_int", _I, [_OBJ], _as_integer)]),
        f("asApproximateFloat", [o("quantity_get_float", _F, [_OBJ],
                                   lambda q: float(_quantity_value(q)))]),
        f("add", [o("quantity_add", _OBJ, [_OBJ, _OBJ],
                    lambda a, b: _quantity_of(_operand(a) + _operand(b))),
                  o("quantity_add_int", _OBJ, [_OBJ, _I],
                    lambda a, b: _quantity_of(_operand(a) + _operand(b)))]),
        f("sub", [o("quantity_sub", _OBJ, [_OBJ, _OBJ],
                    lambda a, b: _quantity_of(_operand(a) - _operand(b))),
                  o("quantity_sub_int", _OBJ, [_OBJ, _I],
                    lambda a, b: _quantity_of(_operand(a) - _operand(b)))]),
        f("isLessThan", [o("quantity_less", _B, [_OBJ, _OBJ],
                           lambda a, b: _compare(a, b) < 0)]),
        f("isGreaterThan", [o("quantity_greater", _B, [_OBJ, _OBJ],
                              lambda a, b: _compare(a, b) > 0)]),
        f("compareTo", [o("quantity_compare_to", _I, [_OBJ, _OBJ], _compare)]),
        # IPs and CIDRs
        f("ip", [o("string_to_ip", _OBJ, [_S], _ip, member=False),
                 o("cidr_ip", _OBJ, [_OBJ], lambda c: {_IP: str(_cidr_value(c).ip)})]),
        f("isIP", [o("is_ip_string", _B, [_S], lambda s: _parse_ip(s) is not None,
                     member=False)]),
        f("family", [o("ip_family", _I, [_OBJ], lambda v: _ip_value(v).version)]),
        *[f(name, [o(f"ip_{attr}", _B, [_OBJ], _ip_test(attr))]) for name, attr in ip_bool],
        f("isGlobalUnicast", [o("ip_is_global_unicast", _B, [_OBJ], _is_global_unicast)]),
        f("cidr", [o("string_to_cidr", _OBJ, [_S], _cidr, member=False)]),
        f("isCIDR", [o("is_cidr_string", _B, [_S], lambda s: _parse_cidr(s) is not None,
                       member=False)]),
        f("containsIP", [o("cidr_contains_ip_string", _B, [_OBJ, _S], _contains_ip),
                         o("cidr_contains_ip_ip", _B, [_OBJ, _OBJ], _contains_ip)]),
        f("containsCIDR", [o("cidr_contains_cidr_string", _B, [_OBJ, _S], _contains_cidr),
                           o("cidr_contains_cidr", _B, [_OBJ, _OBJ], _contains_cidr)]),
        f("prefixLength", [o("cidr_prefix_length", _I, [_OBJ],
                             lambda c: _cidr_value(c).network.prefixlen)]),
        f("masked", [o("cidr_masked", _OBJ, [_OBJ], _masked)]),
    ]
    return decls


def _ip_test(attr: str) -> Callable[[Any], bool]:
    """One of netip.Addr's classifications (``is_loopback``...), with Python's names."""
    def call(value: Any) -> bool:
        ip = _ip_value(value)
        if attr == "is_link_local_multicast":
            return ip.is_multicast and ip.is_link_local if ip.version == 6 else (
                ip in ipaddress.ip_network("224.0.0.0/24"))
        if attr == "is_link_local_unicast":
            return ip.is_link_local and not ip.is_multicast
        return bool(getattr(ip, attr))
    return call


def _is_global_unicast(value: Any) -> bool:
    """netip.Addr.IsGlobalUnicast: not unspecified, loopback, link-local, multicast, or the
    IPv4 broadcast address (private addresses are global unicast)."""
    ip = _ip_value(value)
    broadcast = isinstance(ip, ipaddress.IPv4Address) and int(ip) == 2**32 - 1
    return not (ip.is_unspecified or ip.is_loopback or ip.is_link_local or ip.is_multicast
                or broadcast)


_KUBERNETES: Final = cel.CelExtension("kubernetes", _functions())

#: The authorizer library's receivers (an Authorizer, a PathCheck, a GroupCheck, a
#: ResourceCheck, a Decision) are all this type: see the module docstring.
AUTHORIZER_TYPE: Final = _OBJ
AUTHORIZER_UNSUPPORTED: Final = "authorizer checks are not supported by svcnet"


def _no_authorizer(*_: Any) -> Any:
    raise CelLibraryError(AUTHORIZER_UNSUPPORTED)


def _authorizer_functions() -> list[Any]:
    f = cel.FunctionDecl
    o = _overload
    one_string = [("path", "authorizer_path"), ("group", "authorizer_group"),
                  ("resource", "groupcheck_resource"), ("subresource", "resourcecheck_subresource"),
                  ("namespace", "resourcecheck_namespace"), ("name", "resourcecheck_name"),
                  ("check", "authorizer_check"), ("fieldSelector", "resourcecheck_field_selector"),
                  ("labelSelector", "resourcecheck_label_selector")]
    no_argument = [("allowed", "decision_allowed", _B), ("errored", "decision_errored", _B),
                   ("reason", "decision_reason", _S), ("error", "decision_error", _S)]
    return [
        *[f(name, [o(oid, _OBJ, [_OBJ, _S], _no_authorizer)]) for name, oid in one_string],
        f("serviceAccount", [o("authorizer_serviceaccount", _OBJ, [_OBJ, _S, _S],
                               _no_authorizer)]),
        *[f(name, [o(oid, result, [_OBJ], _no_authorizer)]) for name, oid, result in no_argument],
    ]


_AUTHORIZER: Final = cel.CelExtension("kubernetes.authz", _authorizer_functions())


def environment(variables: dict[str, Any], *, authorizer: bool = False) -> Any:
    """A CEL environment with Kubernetes' libraries and ``variables`` (name to cel.Type);
    ``authorizer``: with the authorizer library's functions (module docstring)."""
    # Kubernetes' libraries last: an extension adds overloads to a function an earlier one
    # declared (the lists' indexOf beside the strings').
    extensions = [ext_strings.ExtStrings(version=2), ext_optional.ExtOptional(),
                  ext_bindings.ExtBindings(), _KUBERNETES]
    if authorizer:
        extensions.append(_AUTHORIZER)
    return cel.NewEnv(variables=variables, extensions=extensions)


# ------------------------------------------------------------------------ compile, evaluate


def compile_issues(e: Exception) -> str:
    """A failed compilation's text without the status code around it (cel-go's
    issues.String(): ``ERROR: <input>:1:3: ...``)."""
    text = str(e)
    text = re.sub(r"^[A-Z_]+: ", "", text)
    return re.sub(r" \[[A-Z_]+\]$", "", text)


class BudgetExceeded(Exception):
    """An evaluation went past the runtime's bound of comprehension iterations (upstream's
    exhausted cost budget)."""


_GO_ERRORS: Final = (
    (re.compile(r'^Key not found in map : "?(.*?)"?$'), r"no such key: \1"),
    (re.compile(r"^divide by zero$"), "division by zero"),
    (re.compile(r"^Index error: index=(-?\d+) size=\d+$"), r"index out of bounds: \1"),
    (re.compile(r"^No matching overloads found.*$"), "no such overload"),
)


def go_error(text: str) -> str:
    """A runtime error's text as cel-go words it, where they differ."""
    text = re.sub(r"^[A-Z_]+: ", "", text)
    for pattern, replacement in _GO_ERRORS:
        if pattern.match(text):
            return pattern.sub(replacement, text)
    return text


def evaluate(program: Any, data: dict[str, Any]) -> tuple[Any, str | None]:
    """(result, None) or (None, the error's text as cel-go words it); raises
    :class:`BudgetExceeded` past the iteration bound."""
    try:
        result = program.eval(data=data)
    except RuntimeError as e:
        if "Iteration budget exceeded" in str(e):
            raise BudgetExceeded from e
        return None, go_error(str(e))
    except Exception as e:  # a value or an overload the runtime could not handle: no 500
        return None, str(e) or type(e).__name__
    if result.type() == cel.Type.ERROR:
        text = str(result.value())
        if "Iteration budget exceeded" in text:
            raise BudgetExceeded
        return None, go_error(text)
    return result.value(), None

