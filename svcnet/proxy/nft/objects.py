"""nftables objects as frozen data, validated on construction, rendered deterministically.

Theory of operation
-------------------
Everything the proxy writes to the kernel is built from these classes, and each one refuses to
exist in a state ``nft`` would misread:

* **Names** (chains, sets, maps) must match ``nft``'s identifier grammar,
  ``[A-Za-z_.][A-Za-z0-9_./-]*``, and fit the kernel's 256-byte name limit. Names carry ``/``
  (kube-proxy does the same: ``ns/svc/tcp/http``), which the grammar allows after the first
  character.
* **Element keys and values** are checked against the set's declared type, component by
  component (``ipv4_addr . inet_proto . inet_service``; ``typeof`` expressions are mapped to the
  same datatypes). A malformed IPv4 literal is the dangerous case: ``nft`` does not reject
  ``10.128.256.1``, it *resolves it through DNS* as a hostname (measured in the project's
  dependency evaluation, §2), so a generator bug would turn into a DNS lookup, a long stall
  and finally a bogus address. Every IPv4 component must be in canonical dotted-quad form,
  every IPv6 one (``ipv6_addr``, the ``ip6`` table's sets) in canonical RFC 5952 form.
* **Rules** are text (the ``nft`` statement language is too large to model), but the text may
  not contain ``;``, ``#``, quotes or newlines (so a rule cannot smuggle in a second command),
  and every dotted-quad in it must be a valid IPv4 address or prefix, for the reason above
  (and every bracketed IPv6 literal, ``dnat ip6 to [fd00::5]:80``, a canonical IPv6 address).
* **Comments** are limited to 128 bytes (``nft``'s limit) without quotes or newlines.

Rendering comes in two shapes, both deterministic:

* *commands* (``add chain ip svcnet x { ... }``), used by transactions; and
* the *canonical block form* of a whole :class:`Ruleset` (``table ip svcnet { ... }``), with
  sets, maps and chains sorted by name and elements sorted by key, one per line. This is the
  text of the golden files and of :meth:`FakeNft.dump <svcnet.proxy.nft.fake.FakeNft.dump>`,
  and it is itself a valid ``nft -f`` script (the integration tests load it).

Two ``nft`` text quirks shape the renderer: named priorities (``dstnat``) are only accepted on
some hooks in nft 1.0.6 (``priority dstnat`` on the *output* hook is a syntax error), so
priorities are always numbers; and a rule inside a one-line ``chain x { ... }`` block needs a
``;`` before the ``}``, so chain headers are always rendered with explicit ``;`` separators.

Why this module is long: One class per nftables object kind, each validating itself, as
knftables' objects.go.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from typing import Final, Self

__all__ = [
    "Chain",
    "Element",
    "Map",
    "NftValidationError",
    "Rule",
    "Ruleset",
    "Set",
    "SetLike",
    "Table",
    "element_sort_key",
    "ipv4_value",
    "ipv6_value",
    "key_datatypes",
    "rule_references",
    "validate_name",
]

NAME_MAX: Final = 255
COMMENT_MAX: Final = 128
FAMILIES: Final = frozenset({"ip", "ip6", "inet"})
CHAIN_TYPES: Final = frozenset({"filter", "nat", "route"})
HOOKS: Final = frozenset({"prerouting", "input", "forward", "output", "postrouting"})
SET_FLAGS: Final = frozenset({"constant", "interval", "timeout", "dynamic"})
TERMINAL_VERDICTS: Final = frozenset({"accept", "drop", "continue", "return"})

_NAME_RE: Final = re.compile(r"[A-Za-z_.][A-Za-z0-9_./-]*")
_REF_CHAIN_RE: Final = re.compile(r"\b(?:jump|goto)\s+([A-Za-z_.][A-Za-z0-9_./-]*)")
_REF_SET_RE: Final = re.compile(r"@([A-Za-z_.][A-Za-z0-9_./-]*)")
_REF_ANY_RE: Final = re.compile(r"\b(?:jump|goto)\s+([^\s,}]+)|@([^\s,}]+)")
# A run of digits and dots that nft would read as an address (or, if malformed, a hostname).
_DOTTED_RE: Final = re.compile(r"(?<![\w.])(\d+(?:\.\d+)+)(?:/(\d+))?")
# An IPv6 literal in a rule is always bracketed (nft's form when a port follows).
_BRACKETED_RE: Final = re.compile(r"\[([^\]]*)\]")
_FORBIDDEN_IN_RULE: Final = (";", "#", '"', "\n", "\r", "\t")

# typeof expressions we use, mapped to the datatype of the value they produce.
_TYPEOF_DATATYPES: Final[Mapping[str, str]] = {
    "ip saddr": "ipv4_addr",
    "ip daddr": "ipv4_addr",
    "ip6 saddr": "ipv6_addr",
    "ip6 daddr": "ipv6_addr",
    "meta l4proto": "inet_proto",
    "th dport": "inet_service",
    "th sport": "inet_service",
    "tcp dport": "inet_service",
    "udp dport": "inet_service",
    "meta mark": "mark",
    "ct mark": "mark",
}
_NUMGEN_RE: Final = re.compile(r"numgen (?:random|inc) mod \d+(?: offset \d+)?")
DATATYPES: Final = frozenset(
    {"ipv4_addr", "ipv6_addr", "inet_proto", "inet_service", "integer", "mark",
     "verdict"})
PROTOCOLS: Final = frozenset({"tcp", "udp", "sctp"})


class NftValidationError(ValueError):
    """An object that would be malformed (or dangerous) as ``nft`` text."""


def validate_name(name: str, what: str = "name") -> str:
    """Check an nft identifier; returns it unchanged."""
    if not _NAME_RE.fullmatch(name):
        raise NftValidationError(f"invalid {what} {name!r}: must match [A-Za-z_.][A-Za-z0-9_./-]*")
    if len(name.encode()) > NAME_MAX:
        raise NftValidationError(f"invalid {what} {name!r}: longer than {NAME_MAX} bytes")
    return name


def _validate_comment(comment: str | None) -> None:
    if comment is None:
        return
    if any(c in comment for c in ('"', "\n", "\r", "\\")):
        raise NftValidationError(f"invalid comment {comment!r}: no quotes, backslashes or newlines")
    if len(comment.encode()) > COMMENT_MAX:
        raise NftValidationError(f"invalid comment {comment!r}: longer than {COMMENT_MAX} bytes")


def _comment_text(comment: str | None) -> str:
    return "" if comment is None else f' comment "{comment}"'


_BAD_COMPONENT_RE = re.compile(r"(?:^|\x00)(?:\s|\x00|$)|\s(?:\x00|$)")


@lru_cache(maxsize=1 << 18)
def ipv4_value(text: str) -> int | None:
    """The address as an integer if ``text`` is a *canonical* dotted quad, else None.

    (A fast, cached equivalent of ``str(IPv4Address(text)) == text``: rulesets at scale hold
    hundreds of thousands of addresses, and ``ipaddress`` dominated the build time.)
    """
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        if not (part.isascii() and part.isdigit()) or len(part) > 3 or (
                len(part) > 1 and part[0] == "0"):
            return None
        octet = int(part)
        if octet > 255:
            return None
        value = value << 8 | octet
    return value


@lru_cache(maxsize=1 << 18)
def ipv6_value(text: str) -> int | None:
    """The address as an integer if ``text`` is a *canonical* IPv6 address, else None."""
    if ":" not in text:
        return None
    try:
        addr = ipaddress.IPv6Address(text)
    except ValueError:
        return None
    return int(addr) if str(addr) == text else None


def _check_ip(text: str, prefix: str | None, where: str, version: int) -> None:
    """``text`` (with ``prefix``, if any) must be a canonical address of IP ``version`` and
    a prefix without host bits; else an NftValidationError naming ``where``."""
    value, kind, bits = ((ipv4_value(text), ipaddress.IPv4Address, 32) if version == 4
                         else (ipv6_value(text), ipaddress.IPv6Address, 128))
    if value is None:
        try:
            addr = kind(text)
        except ValueError:
            raise NftValidationError(
                f"{where}: {text!r} is not a valid IPv{version} address") from None
        raise NftValidationError(f"{where}: {text!r} is not in canonical form ({addr})")
    if prefix is not None:
        length = int(prefix)
        if length > bits:
            raise NftValidationError(f"{where}: bad prefix length /{prefix}")
        if value & ((1 << (bits - length)) - 1):
            raise NftValidationError(f"{where}: {text}/{prefix} has host bits set")


def _check_ipv4(text: str, prefix: str | None, where: str) -> None:
    _check_ip(text, prefix, where, 4)


def _check_ipv6(text: str, prefix: str | None, where: str) -> None:
    _check_ip(text, prefix, where, 6)


def check_ipv4_literals(text: str, where: str) -> None:
    """Every dotted number in ``text`` must be a canonical IPv4 address (or prefix), and
    every bracketed literal a canonical IPv6 address."""
    for match in _DOTTED_RE.finditer(text):
        _check_ipv4(match.group(1), match.group(2), where)
    if "[" in text:
        for match in _BRACKETED_RE.finditer(text):
            _check_ipv6(match.group(1), None, where)


def key_datatypes(spec: str, *, typeof: bool) -> tuple[str, ...]:
    """The datatype of each component of a set key or map value declaration."""
    parts = tuple(p.strip() for p in spec.split(" . "))
    result: list[str] = []
    for part in parts:
        if typeof:
            if part in _TYPEOF_DATATYPES:
                result.append(_TYPEOF_DATATYPES[part])
            elif _NUMGEN_RE.fullmatch(part):
                result.append("integer")
            else:
                raise NftValidationError(f"unsupported typeof expression {part!r}")
        else:
            if part not in DATATYPES or part == "integer":
                raise NftValidationError(f"unsupported datatype {part!r}")
            result.append(part)
    if "verdict" in result and len(result) != 1:
        raise NftValidationError("a verdict cannot be part of a concatenation")
    return tuple(result)


@lru_cache(maxsize=1 << 18)
def _component_problem(datatype: str, value: str, interval: bool) -> str | None:
    """What is wrong with one key/value component (None: nothing). Cached: the same ports,
    protocols and addresses recur across a table's elements."""
    try:
        _check_component(datatype, value, interval=interval, where="")
    except NftValidationError as err:
        return str(err).removeprefix(": ")
    return None


def _check_address(datatype: str, value: str, *, interval: bool, where: str) -> None:
    """An ``ipv4_addr``/``ipv6_addr`` component: an address, or in an interval set also a
    prefix or a range."""
    check = _check_ipv4 if datatype == "ipv4_addr" else _check_ipv6
    if interval and "/" in value:
        addr, _, prefix = value.partition("/")
        if not prefix.isdigit():
            raise NftValidationError(f"{where}: bad prefix in {value!r}")
        check(addr, prefix, where)
    elif interval and "-" in value:
        low, _, high = value.partition("-")
        check(low, None, where)
        check(high, None, where)
        if int(ipaddress.ip_address(low)) > int(ipaddress.ip_address(high)):
            raise NftValidationError(f"{where}: empty range {value!r}")
    else:
        check(value, None, where)


def _check_component(datatype: str, value: str, *, interval: bool, where: str) -> None:
    if datatype in ("ipv4_addr", "ipv6_addr"):
        _check_address(datatype, value, interval=interval, where=where)
    elif datatype == "inet_proto":
        if value not in PROTOCOLS:
            raise NftValidationError(f"{where}: unsupported protocol {value!r}")
    elif datatype == "inet_service":
        if not value.isdigit() or not 0 <= int(value) <= 65535 or str(int(value)) != value:
            raise NftValidationError(f"{where}: bad port {value!r}")
    elif datatype in ("integer", "mark"):
        if not value.isdigit() or str(int(value)) != value or int(value) >= 1 << 32:
            raise NftValidationError(f"{where}: bad integer {value!r}")
    elif datatype == "verdict":
        verb, _, target = value.partition(" ")
        if verb in ("jump", "goto"):
            validate_name(target, "chain name")
        elif value not in TERMINAL_VERDICTS:
            raise NftValidationError(f"{where}: bad verdict {value!r}")
    else:  # pragma: no cover - key_datatypes only returns known datatypes
        raise NftValidationError(f"{where}: unknown datatype {datatype!r}")


@lru_cache(maxsize=1 << 18)
def _component_sort_key(value: str) -> tuple[int, int, int, str]:
    head = value.split("/", 1)[0].split("-", 1)[0]
    addr = ipv4_value(head)
    if addr is not None:
        tail = value[len(head):]
        return (0, addr, int(tail[1:]) if tail.startswith("/") else 32, value)
    addr = ipv6_value(head)
    if addr is not None:
        tail = value[len(head):]
        return (0, addr, int(tail[1:]) if tail.startswith("/") else 128, value)
    if value.isdigit():
        return (1, int(value), 0, value)
    return (2, 0, 0, value)


def element_sort_key(element: Element) -> tuple[tuple[int, int, int, str], ...]:
    """Natural order for elements: addresses and numbers numerically, the rest as text."""
    return tuple(_component_sort_key(c) for c in element.key)


def rule_references(text: str) -> tuple[set[str], set[str]]:
    """(chains, sets/maps) a rule refers to through ``jump``/``goto`` and ``@name``."""
    return set(_REF_CHAIN_RE.findall(text)), set(_REF_SET_RE.findall(text))


@dataclass(frozen=True, slots=True)
class Table:
    """An nftables table; the proxy owns exactly one."""

    family: str
    name: str
    comment: str | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise NftValidationError(f"unsupported family {self.family!r}")
        validate_name(self.name, "table name")
        _validate_comment(self.comment)

    @property
    def ref(self) -> str:
        """``family name``, as it appears in every command."""
        return f"{self.family} {self.name}"


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: statement text plus an optional comment."""

    text: str
    comment: str | None = None

    def __post_init__(self) -> None:
        if not self.text.strip() or self.text != self.text.strip():
            raise NftValidationError(f"rule text must be non-empty and trimmed: {self.text!r}")
        for bad in _FORBIDDEN_IN_RULE:
            if bad in self.text:
                raise NftValidationError(f"rule text may not contain {bad!r}: {self.text!r}")
        check_ipv4_literals(self.text, f"rule {self.text!r}")
        for chain, set_name in _REF_ANY_RE.findall(self.text):
            validate_name(chain or set_name, "referenced name")
        _validate_comment(self.comment)

    def render(self) -> str:
        return self.text + _comment_text(self.comment)


@dataclass(frozen=True, slots=True)
class Chain:
    """A chain: regular (jumped to) or base (``type``/``hook``/``priority`` set)."""

    name: str
    rules: tuple[Rule, ...] = ()
    type: str | None = None
    hook: str | None = None
    priority: int | None = None
    policy: str | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        validate_name(self.name, "chain name")
        _validate_comment(self.comment)
        base = (self.type, self.hook, self.priority)
        if any(v is not None for v in base) and any(v is None for v in base):
            raise NftValidationError(f"chain {self.name}: type, hook and priority go together")
        if self.type is not None and self.type not in CHAIN_TYPES:
            raise NftValidationError(f"chain {self.name}: bad type {self.type!r}")
        if self.hook is not None and self.hook not in HOOKS:
            raise NftValidationError(f"chain {self.name}: bad hook {self.hook!r}")
        if self.policy is not None and (self.type is None or self.policy not in ("accept", "drop")):
            raise NftValidationError(f"chain {self.name}: bad policy {self.policy!r}")

    @property
    def is_base(self) -> bool:
        return self.hook is not None

    def header(self) -> Chain:
        """This chain without its rules (what ``add chain`` creates)."""
        return replace(self, rules=())

    def spec(self) -> str:
        """The ``{ ... }`` part of ``add chain`` (empty for a plain uncommented chain)."""
        parts: list[str] = []
        if self.is_base:
            parts.append(f"type {self.type} hook {self.hook} priority {self.priority} ;")
            if self.policy is not None:
                parts.append(f"policy {self.policy} ;")
        if self.comment is not None:
            parts.append(f'comment "{self.comment}" ;')
        return "{ " + " ".join(parts) + " }" if parts else ""

    def render_block(self, indent: str = "\t") -> list[str]:
        lines = [f"{indent}chain {self.name} {{"]
        inner = indent + "\t"
        if self.is_base:
            policy = f" policy {self.policy};" if self.policy is not None else ""
            lines.append(
                f"{inner}type {self.type} hook {self.hook} priority {self.priority};{policy}")
        if self.comment is not None:
            lines.append(f'{inner}comment "{self.comment}"')
        lines.extend(inner + rule.render() for rule in self.rules)
        lines.append(f"{indent}}}")
        return lines


@dataclass(frozen=True, slots=True)
class Element:
    """A set element (``key``) or map element (``key : value``); components joined by ``.``."""

    key: tuple[str, ...]
    value: tuple[str, ...] = ()
    comment: str | None = None

    def __post_init__(self) -> None:
        # One regex over the joined components (a component empty, or with whitespace at an
        # end) instead of a loop: tables at scale hold hundreds of thousands of elements.
        if not self.key or _BAD_COMPONENT_RE.search("\x00".join(self.key + self.value)):
            raise NftValidationError(f"element components must be non-empty: {self!r}")
        if self.comment is not None:
            _validate_comment(self.comment)

    def render_key(self) -> str:
        return " . ".join(self.key)

    def render(self) -> str:
        text = self.render_key() + _comment_text(self.comment)
        if self.value:
            text += " : " + " . ".join(self.value)
        return text


@dataclass(frozen=True)
class _SetBase:
    """What sets and maps share: a typed key, flags, timeout, elements."""

    name: str
    key: str
    typeof: bool = False
    flags: tuple[str, ...] = ()
    timeout: int | None = None
    size: int | None = None
    comment: str | None = None
    elements: tuple[Element, ...] = field(default=(), compare=True)
    #: Every element carries a counter, which the kernel bumps on each lookup that finds it.
    counter: bool = False

    kind = "set"

    def __post_init__(self) -> None:
        validate_name(self.name, f"{self.kind} name")
        _validate_comment(self.comment)
        for flag in self.flags:
            if flag not in SET_FLAGS:
                raise NftValidationError(f"{self.kind} {self.name}: unknown flag {flag!r}")
        if self.timeout is not None and (self.timeout <= 0 or "timeout" not in self.flags):
            raise NftValidationError(f"{self.kind} {self.name}: timeout needs the timeout flag")
        # Validate the declared types eagerly (raises on unknown ones).
        _ = self.key_types, self.value_types
        seen: set[tuple[str, ...]] = set()
        for element in self.elements:
            self.check_element(element)
            if element.key in seen:
                raise NftValidationError(f"{self.kind} {self.name}: duplicate key {element.key}")
            seen.add(element.key)
        # Elements are kept in canonical order, whatever order they were given in.
        object.__setattr__(self, "elements", tuple(sorted(self.elements, key=element_sort_key)))

    @cached_property
    def key_types(self) -> tuple[str, ...]:
        return key_datatypes(self.key, typeof=self.typeof)

    @cached_property
    def value_types(self) -> tuple[str, ...]:
        return ()

    @property
    def interval(self) -> bool:
        return "interval" in self.flags

    @property
    def dynamic(self) -> bool:
        """Elements are written by the data path (``update @set``), not by us."""
        return "dynamic" in self.flags

    def check_element(self, element: Element) -> None:
        """Raise :class:`NftValidationError` unless ``element`` fits this set's type."""
        key_types, value_types = self.key_types, self.value_types
        problem = None
        if len(element.key) != len(key_types):
            problem = f"expected {len(key_types)} key components"
        elif len(element.value) != len(value_types):
            problem = f"expected {len(value_types)} value components"
        else:
            interval = self.interval
            for datatype, value in zip(key_types, element.key, strict=True):
                problem = _component_problem(datatype, value, interval)
                if problem is not None:
                    break
            else:
                for datatype, value in zip(value_types, element.value, strict=True):
                    problem = _component_problem(datatype, value, False)
                    if problem is not None:
                        break
        if problem is not None:
            # Formatted only on failure: tables at scale check hundreds of thousands.
            raise NftValidationError(
                f"{self.kind} {self.name} element {element.render()!r}: {problem}")

    def definition(self) -> Self:
        """This set without elements: what ``add set`` creates; equality = same definition."""
        return replace(self, elements=())

    def with_elements(self, elements: Iterable[Element]) -> Self:
        return replace(self, elements=tuple(elements))

    def with_checked_elements(self, elements: Iterable[Element]) -> Self:
        """Like :meth:`with_elements` for elements known to fit (taken from a set of the
        same definition, or read back from the kernel): only sorted, not checked again."""
        result = copy.copy(self)
        object.__setattr__(result, "elements",
                           tuple(sorted(elements, key=element_sort_key)))
        return result

    def type_decl(self) -> str:
        return ("typeof " if self.typeof else "type ") + self.key

    def _spec_parts(self) -> list[str]:
        parts = [self.type_decl()]
        if self.flags:
            parts.append("flags " + ",".join(self.flags))
        if self.timeout is not None:
            parts.append(f"timeout {self.timeout}s")
        if self.size is not None:
            parts.append(f"size {self.size}")
        if self.counter:
            parts.append("counter")
        if self.comment is not None:
            parts.append(f'comment "{self.comment}"')
        return parts

    def spec(self) -> str:
        """The ``{ ... }`` part of ``add set``/``add map``."""
        return "{ " + " ".join(p + " ;" for p in self._spec_parts()) + " }"

    def render_block(self, indent: str = "\t") -> list[str]:
        inner = indent + "\t"
        lines = [f"{indent}{self.kind} {self.name} {{"]
        lines.extend(inner + part for part in self._spec_parts())
        if self.elements:
            lines.append(f"{inner}elements = {{")
            rendered = [inner + "\t" + e.render() for e in self.elements]
            lines.extend(line + "," for line in rendered[:-1])
            lines.append(rendered[-1])
            lines.append(f"{inner}}}")
        lines.append(f"{indent}}}")
        return lines


@dataclass(frozen=True)
class Set(_SetBase):
    """A named set (``key`` is a type such as ``ipv4_addr . inet_service``, or ``typeof``)."""

    kind = "set"


@dataclass(frozen=True)
class Map(_SetBase):
    """A named map: ``key : value`` (``value`` ``verdict`` makes it a verdict map)."""

    value: str = "verdict"
    kind = "map"

    @cached_property
    def value_types(self) -> tuple[str, ...]:
        if self.value == "verdict":
            return ("verdict",)
        return key_datatypes(self.value, typeof=self.typeof)

    @property
    def is_vmap(self) -> bool:
        return self.value == "verdict"

    @property
    def rules_need_full_sync(self) -> bool:
        """Rules referring to this map can only be added while the map is created too.

        nft 1.0.6 cannot read back from the kernel a ``typeof`` map whose *data* is a
        concatenation such as ``ip daddr . th dport``: any later transaction that adds a rule
        using the map fails with "conflicting protocols specified: ip vs. th" (measured on
        Linux 6.18). Element commands are unaffected. Declaring the port as ``tcp dport``
        instead avoids the error but makes nft add a hidden ``meta l4proto tcp`` match to the
        rule, silently breaking UDP and SCTP. So such rules are written by full syncs only.
        """
        return self.typeof and not self.is_vmap and " . " in self.value

    def type_decl(self) -> str:
        return super().type_decl() + " : " + self.value


SetLike = Set | Map


def _unique(objs: Iterable[Chain | Set | Map], what: str) -> dict[str, Chain | Set | Map]:
    result: dict[str, Chain | Set | Map] = {}
    for obj in objs:
        if obj.name in result:
            raise NftValidationError(f"duplicate {what} {obj.name!r}")
        result[obj.name] = obj
    return result


@dataclass(frozen=True)
class Ruleset:
    """One table's full desired content: plain data, comparable, rendered canonically."""

    table: Table
    chains: tuple[Chain, ...] = ()
    sets: tuple[Set, ...] = ()
    maps: tuple[Map, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        _unique(self.chains, "chain")
        _unique((*self.sets, *self.maps), "set or map")
        object.__setattr__(self, "chains", tuple(sorted(self.chains, key=lambda c: c.name)))
        object.__setattr__(self, "sets", tuple(sorted(self.sets, key=lambda s: s.name)))
        object.__setattr__(self, "maps", tuple(sorted(self.maps, key=lambda m: m.name)))

    @cached_property
    def chain_by_name(self) -> Mapping[str, Chain]:
        return {c.name: c for c in self.chains}

    @cached_property
    def set_by_name(self) -> Mapping[str, SetLike]:
        found: dict[str, SetLike] = {s.name: s for s in self.sets}
        found.update((m.name, m) for m in self.maps)
        return found

    def problems(self) -> list[str]:
        """Dangling references (jump/goto/@set/verdict elements); empty when consistent."""
        found: list[str] = []
        for chain in self.chains:
            for rule in chain.rules:
                chains, sets = rule_references(rule.text)
                found.extend(f"chain {chain.name}: rule refers to missing chain {c}"
                             for c in sorted(chains - self.chain_by_name.keys()))
                found.extend(f"chain {chain.name}: rule refers to missing set {s}"
                             for s in sorted(sets - self.set_by_name.keys()))
        for m in self.maps:
            if not m.is_vmap:
                continue
            for element in m.elements:
                verb, _, target = element.value[0].partition(" ")
                if verb in ("jump", "goto") and target not in self.chain_by_name:
                    found.append(f"map {m.name}: element refers to missing chain {target}")
        return found

    def render(self) -> str:
        """The canonical block form (a valid ``nft -f`` script creating the table)."""
        lines = [f"table {self.table.ref} {{"]
        if self.table.comment is not None:
            lines.append(f'\tcomment "{self.table.comment}"')
        blocks: list[Sequence[str]] = [s.render_block() for s in self.sets]
        blocks += [m.render_block() for m in self.maps]
        blocks += [c.render_block() for c in self.chains]
        for i, block in enumerate(blocks):
            if i or self.table.comment is not None:
                lines.append("")
            lines.extend(block)
        lines.append("}")
        return "\n".join(lines) + "\n"

    def stats(self) -> dict[str, int]:
        """Object counts, for logs and benchmarks."""
        return {
            "chains": len(self.chains),
            "rules": sum(len(c.rules) for c in self.chains),
            "sets": len(self.sets),
            "maps": len(self.maps),
            "elements": sum(len(s.elements) for s in (*self.sets, *self.maps)),
        }
