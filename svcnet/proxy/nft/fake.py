"""FakeNft: an in-memory nftables for the commands this package emits, with kernel semantics.

Theory of operation
-------------------
:meth:`FakeNft.apply` parses an ``nft -f`` script made of the commands
:class:`~svcnet.proxy.nft.transaction.Transaction` renders (``add``/``create``/``delete``/
``flush`` of tables, chains, rules, sets, maps and elements), applies them one by one to a
*copy* of its state, and swaps the copy in only if every command succeeded — the kernel's
all-or-nothing transaction. It enforces what the kernel enforces (each checked against
``nft`` 1.0.6 on Linux 6.18 in a scratch namespace):

* ``add`` of an existing table/chain/set with the same definition is a no-op; ``create`` of an
  existing one fails ("File exists"); a set re-added with a different definition fails.
* ``delete`` or ``flush`` of something missing fails ("No such file or directory"), including
  ``delete table`` of a missing table (hence ``add table`` + ``delete table`` for full syncs).
* ``delete chain`` fails while anything refers to it ("Device or resource busy"); its own rules
  go with it. ``delete set`` fails while a rule refers to it.
* ``add rule`` fails if its chain, a ``jump``/``goto`` target or an ``@set`` is missing.
* ``add element``: an existing key is fine with the same value and fails with a different one;
  ``create element`` fails on any existing key; ``delete element`` fails on a missing key; a
  verdict element must name an existing chain; every key and value must fit the set's type.

Not modelled: rule handles, interval-overlap checks, counters, and the data path (dynamic sets
stay empty). :meth:`FakeNft.dump` renders the state in the same canonical text as
:meth:`Ruleset.render <svcnet.proxy.nft.objects.Ruleset.render>`, so a test can compare "what
the kernel would hold after these transactions" with "what the builder wanted".
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from svcnet.proxy.nft.nft import NftError
from svcnet.proxy.nft.objects import (
    Chain,
    Element,
    Map,
    Rule,
    Ruleset,
    Set,
    SetLike,
    Table,
    rule_references,
)

__all__ = ["FakeNft"]

ENOENT = "No such file or directory"
EEXIST = "File exists"
EBUSY = "Device or resource busy"

_HEAD_RE = re.compile(r"(add|create|delete|flush) (table|chain|rule|set|map|element) (\S+) (\S+)"
                      r"(?: (.*))?$")
_COMMENT_TAIL_RE = re.compile(r'^(.*?) comment "([^"]*)"$')
_ELEMENT_COMMENT_RE = re.compile(r' comment "([^"]*)"')
_TIMEOUT_RE = re.compile(r"(\d+)s")


class _Fail(Exception):
    pass


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _braced(text: str) -> str:
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise _Fail(f"syntax error: expected {{ ... }}, got {text!r}")
    return text[1:-1].strip()


def _json_component(text: str) -> object:
    if text.isdigit():
        return int(text)
    if "/" in text:
        addr, _, length = text.partition("/")
        host = "128" if ":" in addr else "32"
        return addr if length == host else {"prefix": {"addr": addr, "len": int(length)}}
    return text


def _json_value(components: tuple[str, ...]) -> object:
    values = [_json_component(c) for c in components]
    return values[0] if len(values) == 1 else {"concat": values}


def _json_element(element: Element, definition: SetLike) -> object:
    key = _json_value(element.key)
    if element.comment is not None:
        key = {"elem": {"val": key, "comment": element.comment}}
    if not isinstance(definition, Map):
        return key
    if definition.is_vmap:
        verb, _, target = element.value[0].partition(" ")
        return [key, {verb: {"target": target} if target else None}]
    return [key, _json_value(element.value)]


@dataclass
class _FakeSet:
    definition: SetLike
    elements: dict[tuple[str, ...], Element] = field(default_factory=dict)


@dataclass
class _FakeTable:
    table: Table
    chains: dict[str, Chain] = field(default_factory=dict)  # headers
    rules: dict[str, list[Rule]] = field(default_factory=dict)
    sets: dict[str, _FakeSet] = field(default_factory=dict)

    def clone(self) -> _FakeTable:
        return _FakeTable(
            self.table, dict(self.chains), {k: list(v) for k, v in self.rules.items()},
            {k: _FakeSet(v.definition, dict(v.elements)) for k, v in self.sets.items()})

    def chain_referrers(self, name: str) -> Iterator[str]:
        for chain, rules in self.rules.items():
            for rule in rules:
                if name in rule_references(rule.text)[0]:
                    yield f"rule in chain {chain}"
        for s in self.sets.values():
            if isinstance(s.definition, Map) and s.definition.is_vmap:
                for element in s.elements.values():
                    if element.value[0].partition(" ")[2] == name:
                        yield f"element of map {s.definition.name}"

    def set_referrers(self, name: str) -> Iterator[str]:
        for chain, rules in self.rules.items():
            for rule in rules:
                if name in rule_references(rule.text)[1]:
                    yield f"rule in chain {chain}"

    def ruleset(self) -> Ruleset:
        chains = tuple(Chain(h.name, tuple(self.rules[h.name]), h.type, h.hook, h.priority,
                             h.policy, h.comment) for h in self.chains.values())
        sets = tuple(s.definition.with_elements(s.elements.values())
                     for s in self.sets.values() if isinstance(s.definition, Set))
        maps = tuple(s.definition.with_elements(s.elements.values())
                     for s in self.sets.values() if isinstance(s.definition, Map))
        return Ruleset(self.table, chains, sets, maps)


class FakeNft:
    """In-memory nftables: implements :class:`~svcnet.proxy.nft.nft.NftRunner`."""

    def __init__(self) -> None:
        self.tables: dict[tuple[str, str], _FakeTable] = {}
        self.transactions: list[str] = []
        self.fail_next: str | None = None  # test hook: reject the next apply with this message

    # -- public API ---------------------------------------------------------------------

    def apply(self, text: str) -> None:
        if self.fail_next is not None:
            message, self.fail_next = self.fail_next, None
            raise NftError("injected failure", stderr=message)
        state = {key: table.clone() for key, table in self.tables.items()}
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                self._command(state, line)
            except (_Fail, ValueError) as err:
                raise NftError("nft -f - failed", stderr=f"line {number}: {line[:200]}: {err}"
                               ) from None
        self.tables = state
        self.transactions.append(text)

    def ruleset(self, family: str = "ip", name: str = "svcnet") -> Ruleset | None:
        table = self.tables.get((family, name))
        return None if table is None else table.ruleset()

    def dump(self) -> str:
        """Every table, in canonical block form (sorted; see :meth:`Ruleset.render`)."""
        return "".join(self.tables[key].ruleset().render() for key in sorted(self.tables))

    def list_table_json(self, family: str, name: str) -> str | None:
        """What ``nft -j list table`` prints for the parts :mod:`~svcnet.proxy.nft.adopt`
        reads: set and map definitions and elements (ports as numbers, prefixes and
        concatenations as objects, a host prefix as the bare address, element comments),
        chains, and rules with their comments (expressions left empty). Like the kernel, it
        lists neither the ``dynamic`` flag nor (here) the data path's elements."""
        table = self.tables.get((family, name))
        if table is None:
            return None
        out: list[dict[str, object]] = [{"table": {"family": family, "name": name}}]
        where = {"family": family, "table": name}
        for fake in table.sets.values():
            d = fake.definition
            body: dict[str, object] = {**where, "name": d.name, "type": list(d.key_types)}
            flags = [f for f in d.flags if f != "dynamic"]
            if flags:
                body["flags"] = flags
            if d.timeout is not None:
                body["timeout"] = d.timeout
            if d.comment is not None:
                body["comment"] = d.comment
            if fake.elements and not d.dynamic:
                body["elem"] = [_json_element(e, d) for e in fake.elements.values()]
            out.append({d.kind: body})
        for chain in table.chains.values():
            out.append({"chain": {**where, "name": chain.name}})
            for rule in table.rules[chain.name]:
                rule_body: dict[str, object] = {**where, "chain": chain.name, "expr": []}
                if rule.comment is not None:
                    rule_body["comment"] = rule.comment
                out.append({"rule": rule_body})
        return json.dumps({"nftables": out})

    @property
    def last_transaction(self) -> str | None:
        return self.transactions[-1] if self.transactions else None

    # -- commands -----------------------------------------------------------------------

    def _command(self, state: dict[tuple[str, str], _FakeTable], line: str) -> None:
        match = _HEAD_RE.match(line)
        if match is None:
            raise _Fail("syntax error: unsupported command")
        verb, kind, family, table_name, rest = match.groups()
        rest = rest or ""
        key = (family, table_name)
        if kind == "table":
            self._table(state, verb, key, rest)
            return
        table = state.get(key)
        if table is None:
            raise _Fail(f"table {family} {table_name}: {ENOENT}")
        name, _, rest = rest.partition(" ")
        if kind == "chain":
            self._chain(table, verb, name, rest)
        elif kind == "rule":
            self._rule(table, verb, name, rest)
        elif kind in ("set", "map"):
            self._set(table, verb, kind, name, rest)
        else:
            self._elements(table, verb, name, rest)

    @staticmethod
    def _table(state: dict[tuple[str, str], _FakeTable], verb: str, key: tuple[str, str],
               rest: str) -> None:
        exists = key in state
        if verb in ("add", "create"):
            if exists:
                if verb == "create":
                    raise _Fail(f"table: {EEXIST}")
                return
            comment = None
            if rest:
                found = _ELEMENT_COMMENT_RE.search(" " + _braced(rest))
                comment = found.group(1) if found else None
            state[key] = _FakeTable(Table(key[0], key[1], comment))
        elif verb == "delete":
            if not exists:
                raise _Fail(f"table: {ENOENT}")
            del state[key]
        else:  # flush table: drop rules, keep objects
            if not exists:
                raise _Fail(f"table: {ENOENT}")
            for rules in state[key].rules.values():
                rules.clear()

    @staticmethod
    def _chain_header(name: str, rest: str) -> Chain:
        if not rest:
            return Chain(name)
        kwargs: dict[str, str | int | None] = {}
        for raw in _split_outside_quotes(_braced(rest), ";"):
            part = raw.strip()
            if not part:
                continue
            words = part.split()
            if words[0] == "type" and len(words) == 6 and words[2] == "hook":
                kwargs.update(type=words[1], hook=words[3], priority=int(words[5]))
            elif words[0] == "policy" and len(words) == 2:
                kwargs["policy"] = words[1]
            elif words[0] == "comment":
                kwargs["comment"] = part[len("comment "):].strip('"')
            else:
                raise _Fail(f"syntax error in chain spec: {part!r}")
        return Chain(name, (), **kwargs)  # type: ignore[arg-type]

    def _chain(self, table: _FakeTable, verb: str, name: str, rest: str) -> None:
        exists = name in table.chains
        if verb in ("add", "create"):
            header = self._chain_header(name, rest)
            if exists:
                if verb == "create":
                    raise _Fail(f"chain {name}: {EEXIST}")
                old = table.chains[name]
                if (old.type, old.hook, old.priority) != (header.type, header.hook,
                                                          header.priority) and rest:
                    raise _Fail(f"chain {name}: {EEXIST} (different definition)")
                return
            table.chains[name] = header
            table.rules[name] = []
            return
        if not exists:
            raise _Fail(f"chain {name}: {ENOENT}")
        if verb == "flush":
            table.rules[name].clear()
            return
        referrers = list(table.chain_referrers(name))
        if referrers:
            raise _Fail(f"chain {name}: {EBUSY} (referenced by {referrers[0]})")
        del table.chains[name]
        del table.rules[name]

    @staticmethod
    def _rule(table: _FakeTable, verb: str, chain: str, rest: str) -> None:
        if verb != "add":
            raise _Fail(f"unsupported: {verb} rule")
        if chain not in table.chains:
            raise _Fail(f"chain {chain}: {ENOENT}")
        found = _COMMENT_TAIL_RE.match(rest)
        rule = Rule(found.group(1), found.group(2)) if found else Rule(rest)
        chains, sets = rule_references(rule.text)
        for target in sorted(chains):
            if target not in table.chains:
                raise _Fail(f"jump/goto {target}: {ENOENT}")
        for target in sorted(sets):
            if target not in table.sets:
                raise _Fail(f"set @{target}: {ENOENT}")
        table.rules[chain].append(rule)

    @staticmethod
    def _set_definition(kind: str, name: str, rest: str) -> SetLike:
        key = value = None
        typeof = False
        flags: tuple[str, ...] = ()
        timeout = size = None
        comment = None
        counter = False
        for raw in _split_outside_quotes(_braced(rest), ";"):
            part = raw.strip()
            if not part:
                continue
            word, _, arg = part.partition(" ")
            if word in ("type", "typeof"):
                typeof = word == "typeof"
                key, sep, value = arg.partition(" : ")
                if kind == "map" and not sep:
                    raise _Fail("syntax error: a map needs key : value")
                if kind == "set" and sep:
                    raise _Fail("syntax error: a set has no value type")
            elif word == "flags":
                flags = tuple(f.strip() for f in arg.split(","))
            elif word == "timeout":
                found = _TIMEOUT_RE.fullmatch(arg)
                if found is None:
                    raise _Fail(f"syntax error: timeout {arg!r}")
                timeout = int(found.group(1))
            elif word == "size":
                size = int(arg)
            elif word == "counter" and not arg:
                counter = True
            elif word == "comment":
                comment = arg.strip('"')
            else:
                raise _Fail(f"syntax error in {kind} spec: {part!r}")
        if key is None:
            raise _Fail(f"{kind} {name}: no type")
        if kind == "map":
            return Map(name, key, typeof, flags, timeout, size, comment, (), counter,
                       value or "verdict")
        return Set(name, key, typeof, flags, timeout, size, comment, (), counter)

    def _set(self, table: _FakeTable, verb: str, kind: str, name: str, rest: str) -> None:
        existing = table.sets.get(name)
        if existing is not None and existing.definition.kind != kind:
            raise _Fail(f"{kind} {name}: {EEXIST} (is a {existing.definition.kind})")
        if verb in ("add", "create"):
            definition = self._set_definition(kind, name, rest)
            if existing is not None:
                if verb == "create" or existing.definition != definition:
                    raise _Fail(f"{kind} {name}: {EEXIST}")
                return
            table.sets[name] = _FakeSet(definition)
            return
        if existing is None:
            raise _Fail(f"{kind} {name}: {ENOENT}")
        if verb == "flush":
            existing.elements.clear()
            return
        referrers = list(table.set_referrers(name))
        if referrers:
            raise _Fail(f"{kind} {name}: {EBUSY} (referenced by {referrers[0]})")
        del table.sets[name]

    @staticmethod
    def _parse_element(text: str) -> Element:
        text = text.strip()
        comment = None
        found = _ELEMENT_COMMENT_RE.search(text)
        if found is not None:
            comment = found.group(1)
            text = text[:found.start()] + text[found.end():]
        key, _, value = text.partition(" : ")
        return Element(tuple(p.strip() for p in key.split(" . ")),
                       tuple(p.strip() for p in value.split(" . ")) if value else (), comment)

    def _elements(self, table: _FakeTable, verb: str, name: str, rest: str) -> None:
        s = table.sets.get(name)
        if s is None:
            raise _Fail(f"set {name}: {ENOENT}")
        definition = s.definition
        for raw in _split_outside_quotes(_braced(rest), ","):
            element = self._parse_element(raw)
            old = s.elements.get(element.key)
            if verb == "delete":
                if old is None:
                    raise _Fail(f"element {element.render_key()}: {ENOENT}")
                del s.elements[element.key]
                continue
            definition.check_element(element)
            if isinstance(definition, Map) and definition.is_vmap:
                verb_word, _, target = element.value[0].partition(" ")
                if verb_word in ("jump", "goto") and target not in table.chains:
                    raise _Fail(f"element {element.render()}: chain {target}: {ENOENT}")
            if old is not None:
                if verb == "create" or old.value != element.value:
                    raise _Fail(f"element {element.render_key()}: {EEXIST}")
                continue
            s.elements[element.key] = element
