"""Resource lists (``cpu: 250m``, ``memory: 64Mi``): their names and quantities, validated.

Theory of operation. Mirrors ``pkg/apis/core/validation/validation.go`` (1.33) and the name
helpers of ``pkg/apis/core/helper/helpers.go``:

* ``ValidateResourceQuantityValue``: a quantity is not negative, and is whole for the integer
  resources (``pods``, ``services``, ... and every extended resource). A Node's capacity and
  allocatable are checked with it (``ValidateNodeResources``, :mod:`svcnet.api.nodes`);
* ``validateContainerResourceName`` (after ``validateResourceName``): a qualified name; an
  unprefixed one must be a standard resource (``must be a standard resource type or fully
  qualified``) and one a container may ask for (``cpu``, ``memory``, ``ephemeral-storage``,
  ``hugepages-<size>``: ``must be a standard resource for containers``), a prefixed one outside
  ``kubernetes.io/`` an extended resource name;
* ``ValidateContainerResourceRequirements`` for a list given as *limits* only, which is how
  upstream validates an overhead (a RuntimeClass's ``overhead.podFixed`` and a pod's
  ``spec.overhead``): :func:`validate_overhead`. Errors are reported under
  ``<path>.limits[<name>]``, the path upstream builds for them.

Quantities are compared and checked by value (:func:`parse_quantity`: ``resource.ParseQuantity``
as an exact fraction); the decoder already refused text that is no quantity. Where upstream
prints a quantity with ``Quantity.String()`` (its canonical form: ``0.5`` is ``500m``) the text
is printed as given. Go ranges over a map in random order; errors here come in the order of
sorted names.

Quantities the server computes itself (the resource metrics API's usage) are written in
``Quantity.String()``'s canonical form (apimachinery's ``CanonicalizeBytes``): a DecimalSI
quantity without trailing zeros, its exponent a multiple of 3 with its SI suffix
(:func:`quantity_decimal`: 12345 nanocores is ``12345n``, 250000000 is ``250m``), a BinarySI
quantity as its largest exact power of 1024 (:func:`quantity_binary`: ``1232Ki``), in
decimal when no binary suffix divides it exactly or it is under 1024.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any, Final

from svcnet.api.errors import FieldError, GoRaw, Path, forbidden, invalid
from svcnet.api.meta import IS_NEGATIVE_ERROR_MSG
from svcnet.api.names import is_qualified_name

__all__ = [
    "format_quantity",
    "is_binary_quantity",
    "is_extended_resource_name",
    "is_integer_resource_name",
    "milli_value",
    "parse_quantity",
    "quantities_equal",
    "quantity_binary",
    "quantity_decimal",
    "quantity_string",
    "validate_container_resource_name",
    "validate_overhead",
    "validate_resource_name",
    "validate_resource_quantity_value",
]

IS_NOT_INTEGER_ERROR_MSG: Final = "must be an integer"
HUGE_PAGES_PREFIX: Final = "hugepages-"
_REQUESTS_PREFIX: Final = "requests."
_NATIVE_PREFIX: Final = "kubernetes.io/"

#: helper's standardResources.
_STANDARD_RESOURCES: Final = frozenset({
    "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory",
    "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage",
    "pods", "resourcequotas", "services", "replicationcontrollers", "secrets", "configmaps",
    "persistentvolumeclaims", "storage", "requests.storage", "services.nodeports",
    "services.loadbalancers",
})
#: helper's standardContainerResources.
_STANDARD_CONTAINER_RESOURCES: Final = frozenset({"cpu", "memory", "ephemeral-storage"})
#: helper's integerResources (the rest of IsIntegerResourceName is extended resources).
_INTEGER_RESOURCES: Final = frozenset({
    "pods", "resourcequotas", "services", "replicationcontrollers", "secrets", "configmaps",
    "persistentvolumeclaims", "services.nodeports", "services.loadbalancers",
})
_CPU_OR_MEMORY: Final = frozenset({"cpu", "memory"})

_QUANTITY_RE: Final = re.compile(
    r"([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?")
_BINARY_SUFFIX: Final = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL_SUFFIX: Final = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15,
                          "E": 18}


def parse_quantity(value: object) -> Fraction | None:
    """resource.ParseQuantity's value, exactly, as a Fraction (None when unparsable)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(value)
    if not isinstance(value, str):
        return None
    m = _QUANTITY_RE.fullmatch(value)
    if m is None:
        return None
    sign, number, suffix = m.group(1), m.group(2), m.group(3) or ""
    q = Fraction(number)
    if suffix in _BINARY_SUFFIX:
        q *= 1024 ** _BINARY_SUFFIX[suffix]
    elif suffix in _DECIMAL_SUFFIX:
        q *= Fraction(10) ** _DECIMAL_SUFFIX[suffix]
    elif suffix:
        q *= Fraction(10) ** int(suffix[1:])
    return -q if sign == "-" else q


_SI_SUFFIX: Final = {exp: suffix for suffix, exp in _DECIMAL_SUFFIX.items()}


def quantity_decimal(value: int, scale: int = 0) -> str:
    """``resource.NewScaledQuantity(value, scale)`` in DecimalSI, as ``String()`` writes it:
    ``quantity_decimal(12345, -9)`` is ``12345n``, ``quantity_decimal(1500000, -9)`` is
    ``1500u``, ``quantity_decimal(2000, -3)`` is ``2``."""
    if value == 0:
        return "0"
    sign, n = ("-", -value) if value < 0 else ("", value)
    while n % 10 == 0:  # int64Amount.AsCanonicalBytes: drop the factors of ten, then
        n //= 10        # come back down to an exponent that is a multiple of 3
        scale += 1
    n *= 10 ** (scale % 3)
    scale -= scale % 3
    if scale in _SI_SUFFIX or scale == 0:
        return f"{sign}{n}{_SI_SUFFIX.get(scale, '')}"
    return f"{sign}{n}e{scale}"  # beyond the SI suffixes: DecimalExponent's form


def quantity_binary(value: int) -> str:
    """An integer BinarySI quantity (bytes) as ``String()`` writes it (CanonicalizeBytes):
    below 1024 in DecimalSI (``1000`` is ``1k``), else the largest power of 1024 that divides
    it (``1262592`` is ``1233Ki``, ``2097152`` is ``2Mi``), or plain digits (``1500000``)."""
    if -1024 < value < 1024:
        return quantity_decimal(value)
    n, power = abs(value), 0
    while n % 1024 == 0 and power < 6:
        n //= 1024
        power += 1
    suffix = {v: k for k, v in _BINARY_SUFFIX.items()}.get(power, "")
    return f"{'-' if value < 0 else ''}{n}{suffix}"


def format_quantity(value: Fraction, *, binary: bool = False) -> str:
    """A quantity's value as ``Quantity.String()`` writes it: a whole number of bytes in
    BinarySI (:func:`quantity_binary`) when ``binary``, else DecimalSI to the nano, rounded up
    as apimachinery rounds (:func:`quantity_decimal`)."""
    if binary and value.denominator == 1:
        return quantity_binary(int(value))
    return quantity_decimal(math.ceil(value * 10**9), -9)


def is_binary_quantity(raw: object) -> bool:
    """Whether a quantity's text is in BinarySI (``64Mi``): the format its sums keep."""
    return isinstance(raw, str) and raw.rstrip("0123456789.").endswith("i")


def quantity_string(raw: object) -> str:
    """``Quantity.String()`` of a quantity as given: its canonical form (``2000m`` is ``2``,
    ``1024Mi`` is ``1Gi``); text that is no quantity is returned as it is."""
    q = parse_quantity(raw)
    if q is None:
        return _shown(raw)
    return format_quantity(q, binary=is_binary_quantity(raw))


def milli_value(q: Fraction) -> int:
    """Quantity.MilliValue: thousandths, rounded up (``12345n`` is ``1``)."""
    return math.ceil(q * 1000)


def _is_native_resource(name: str) -> bool:
    """IsNativeResource: no domain, or in ``kubernetes.io/``."""
    return "/" not in name or _NATIVE_PREFIX in name


def is_extended_resource_name(name: str) -> bool:
    """IsExtendedResourceName: prefixed outside ``kubernetes.io/``, not ``requests.``, and a
    qualified name once prefixed with ``requests.`` (its quota name)."""
    if _is_native_resource(name) or name.startswith(_REQUESTS_PREFIX):
        return False
    return not is_qualified_name(_REQUESTS_PREFIX + name)


def is_integer_resource_name(name: str) -> bool:
    """IsIntegerResourceName: the fixed set, plus extended resources."""
    return name in _INTEGER_RESOURCES or is_extended_resource_name(name)


def _is_huge_page(name: str) -> bool:
    return name.startswith(HUGE_PAGES_PREFIX)


def _is_standard_resource_name(name: str) -> bool:
    """IsStandardResourceName (hugepages count, with or without ``requests.``)."""
    return (name in _STANDARD_RESOURCES or _is_huge_page(name)
            or name.startswith(_REQUESTS_PREFIX + HUGE_PAGES_PREFIX))


def _shown(raw: object) -> str:
    return raw if isinstance(raw, str) else str(raw)


def validate_resource_quantity_value(name: str, raw: object, path: Path) -> list[FieldError]:
    """ValidateResourceQuantityValue: not negative; whole for integer resources."""
    q = parse_quantity(raw)
    if q is None:  # the decoder refuses what is not a quantity before validation runs
        return []
    errs: list[FieldError] = []
    if q < 0:
        errs.append(invalid(path, _shown(raw), IS_NEGATIVE_ERROR_MSG))
    # Quantity.MilliValue() rounds up; the value must be whole.
    if is_integer_resource_name(name) and math.ceil(q * 1000) % 1000 != 0:
        # Upstream prints the Quantity struct here (%#v); its text is what matters.
        errs.append(invalid(path, GoRaw(_shown(raw)), IS_NOT_INTEGER_ERROR_MSG))
    return errs


def validate_resource_name(name: str, path: Path) -> list[FieldError]:
    """validateResourceName: a qualified name; an unprefixed one a standard resource."""
    errs = [invalid(path, name, m) for m in is_qualified_name(name)]  # ValidateQualifiedName
    if errs:
        return errs
    if "/" not in name and not _is_standard_resource_name(name):
        errs.append(invalid(path, name, "must be a standard resource type or fully qualified"))
    return errs


def validate_container_resource_name(name: str, path: Path) -> list[FieldError]:
    """validateContainerResourceName, after validateResourceName."""
    errs = [invalid(path, name, m) for m in is_qualified_name(name)]
    if errs:
        return errs
    errs = validate_resource_name(name, path)
    if "/" not in name:
        if name not in _STANDARD_CONTAINER_RESOURCES and not _is_huge_page(name):
            errs.append(invalid(path, name, "must be a standard resource for containers"))
    elif not _is_native_resource(name) and not is_extended_resource_name(name):
        errs.append(invalid(path, name, "doesn't follow extended resource name standard"))
    return errs


def _huge_page_value_error(name: str, raw: object, q: Fraction, path: Path
                           ) -> list[FieldError]:
    """validateResourceQuantityHugePageValue: a whole number of pages of the named size."""
    page = parse_quantity(name[len(HUGE_PAGES_PREFIX):])
    # Quantity.Value() rounds up to a whole number.
    divisible = (page is not None and page > 0 and math.ceil(page * 1000) % 1000 == 0
                 and math.ceil(q) % math.ceil(page) == 0)
    if divisible:
        return []
    return [invalid(path, _shown(raw), f"{_shown(raw)} is not positive integer multiple of "
                                       f"{name}")]


def validate_overhead(resources: Mapping[str, Any], path: Path) -> list[FieldError]:
    """ValidateContainerResourceRequirements of ``{limits: resources}`` (validateOverhead)."""
    errs: list[FieldError] = []
    limits = path.child("limits")
    cpu_or_memory = huge_pages = False
    for name in sorted(resources):
        raw = resources[name]
        key_path = limits.key(name)
        errs.extend(validate_container_resource_name(name, key_path))
        errs.extend(validate_resource_quantity_value(name, raw, key_path))
        q = parse_quantity(raw)
        if _is_huge_page(name):
            huge_pages = True
            if q is not None:
                errs.extend(_huge_page_value_error(name, raw, q, key_path))
        if name in _CPU_OR_MEMORY:
            cpu_or_memory = True
    if huge_pages and not cpu_or_memory:
        errs.append(forbidden(path, "HugePages require cpu or memory"))
    return errs


def quantities_equal(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """``apiequality.Semantic.DeepEqual`` of two resource lists: the same names with equal
    quantities (``1`` equals ``1000m``); a missing list equals an empty one."""
    a, b = a or {}, b or {}
    if a.keys() != b.keys():
        return False
    return all(parse_quantity(a[k]) == parse_quantity(b[k]) for k in a)
