"""Adopting a table that is already in the kernel (an agent restart, a periodic full resync).

Why: recreating the table atomically (``delete table`` + everything, one transaction) leaves no
moment without rules, but it drops what the data path wrote into the table: the ClientIP
affinity sets, i.e. every client's stickiness, on every agent restart and every hourly resync.
kube-proxy keeps its table too. So a sync that does not know the kernel's state lists the table
once (``nft -j list table``), reads it back as a :class:`~svcnet.proxy.nft.objects.Ruleset`,
and plans an ordinary incremental transaction from it: elements that differ are deleted and
added, stale chains and sets removed, nothing else touched.

What can be read back, and how the rest is trusted:

* **Set and map elements** are plain values in the JSON listing (addresses, protocol names,
  port numbers, prefixes, verdicts, element comments) and are read exactly. A ``/32`` source
  range comes back as a bare address; such elements are matched to the wanted ones in
  canonical form.
* **Rules** come back as expression trees that cannot be compared with our text. The fixed
  chains (everything but the per-Service sticky chains) are a function of the configuration and
  the number of ``lb-<k>`` chains alone, so their fingerprint — a hash of those chains and every
  set's definition — is written in the comment of the first rule of ``nat-prerouting``
  (:func:`svcnet.proxy.ruleset.assemble`). If the listed fingerprint is the wanted one, the
  fixed chains are taken as wanted; otherwise the table is not adopted and the caller recreates
  it atomically. Sticky chains are always flushed and refilled (they only refer to affinity
  sets, so this is allowed incrementally, and the affinity sets — the state — stay).
* **Affinity sets** (written by the data path) keep their elements; a changed timeout
  re-creates the set.

Anything unexpected in the listing makes :func:`adopt` return None: recreate, never guess.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

from svcnet.proxy.nft.objects import Chain, Element, Map, Rule, Ruleset, Set, SetLike

__all__ = ["FINGERPRINT_PREFIX", "UNKNOWN_RULES", "adopt", "fingerprint_of"]

FINGERPRINT_PREFIX = "svcnet layout "
#: Stands for rules that are in the kernel but unknown here (never equal to a wanted rule).
UNKNOWN_RULES = (Rule("accept", "adopted; contents unknown"),)


class _Unreadable(Exception):
    pass


def fingerprint_of(listing: Mapping[str, Any], chain: str) -> str | None:
    for obj in listing.get("nftables", []):
        rule = obj.get("rule")
        if isinstance(rule, dict) and rule.get("chain") == chain:
            comment = rule.get("comment")
            if isinstance(comment, str) and comment.startswith(FINGERPRINT_PREFIX):
                return comment[len(FINGERPRINT_PREFIX):]
    return None


def _component(value: Any) -> str:
    if isinstance(value, bool):
        raise _Unreadable(f"unexpected value {value!r}")
    if isinstance(value, (str, int)):
        return str(value)
    if isinstance(value, dict) and "prefix" in value:
        prefix = value["prefix"]
        return f"{prefix['addr']}/{prefix['len']}"
    if isinstance(value, dict) and "range" in value:
        low, high = value["range"]
        return f"{_component(low)}-{_component(high)}"
    raise _Unreadable(f"unexpected value {value!r}")


def _components(value: Any) -> tuple[str, ...]:
    if isinstance(value, dict) and "concat" in value:
        return tuple(_component(v) for v in value["concat"])
    return (_component(value),)


def _verdict(value: Any) -> tuple[str, ...]:
    if isinstance(value, dict) and len(value) == 1:
        verb, arg = next(iter(value.items()))
        if verb in ("goto", "jump") and isinstance(arg, dict):
            return (f"{verb} {arg['target']}",)
        if verb in ("drop", "accept", "return", "continue") and arg is None:
            return (verb,)
    raise _Unreadable(f"unexpected verdict {value!r}")


def _element(raw: Any, *, vmap: bool, is_map: bool) -> Element:
    comment = None
    value: tuple[str, ...] = ()
    if is_map:
        if not (isinstance(raw, list) and len(raw) == 2):
            raise _Unreadable(f"unexpected map element {raw!r}")
        raw, data = raw
        value = _verdict(data) if vmap else _components(data)
    if isinstance(raw, dict) and "elem" in raw:
        comment = raw["elem"].get("comment")
        raw = raw["elem"]["val"]
    return Element(_components(raw), value, comment)


def _canonical(element: Element) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
    """How the kernel lists an element: a host prefix (/32, /128) is listed as the bare
    address."""
    return (tuple(_bare(c) for c in element.key), element.value, element.comment)


def _bare(component: str) -> str:
    return component.removesuffix("/128" if ":" in component else "/32")


def adopt(listing_json: str, desired: Ruleset, fixed_chains: Collection[str],
          fingerprint: str) -> Ruleset | None:
    """The listed table as a :class:`Ruleset` to plan from, or None if it cannot be adopted
    (missing, not ours, another layout, or unreadable)."""
    try:
        listing = json.loads(listing_json)
        if fingerprint_of(listing, "nat-prerouting") != fingerprint:
            return None
        return _read(listing, desired, fixed_chains)
    except (ValueError, KeyError, TypeError, _Unreadable):
        return None


def _read(listing: Mapping[str, Any], desired: Ruleset,
          fixed_chains: Collection[str]) -> Ruleset:
    table = desired.table
    rule_counts: dict[str, int] = {}
    chain_names: list[str] = []
    sets: list[Set] = []
    maps: list[Map] = []
    for obj in listing["nftables"]:
        kind, body = next(iter(obj.items()))
        if kind == "metainfo" or not isinstance(body, dict):
            continue
        if kind != "table" and (body.get("table"), body.get("family")) != (
                table.name, table.family):
            continue
        if kind == "chain":
            chain_names.append(body["name"])
        elif kind == "rule":
            rule_counts[body["chain"]] = rule_counts.get(body["chain"], 0) + 1
        elif kind in ("set", "map"):
            found = _read_set(kind, body, desired.set_by_name.get(body["name"]))
            (sets if isinstance(found, Set) else maps).append(found)  # type: ignore[arg-type]
    chains = []
    for name in chain_names:
        wanted = desired.chain_by_name.get(name)
        if wanted is not None and name in fixed_chains:
            chains.append(wanted)
            continue
        if wanted is None and name in fixed_chains:
            raise _Unreadable(f"fixed chain {name} is not wanted")
        rules = UNKNOWN_RULES if rule_counts.get(name) else ()
        chains.append(replace(wanted, rules=rules) if wanted is not None else Chain(name, rules))
    return Ruleset(table, tuple(chains), tuple(sets), tuple(maps))


def _read_set(kind: str, body: Mapping[str, Any], wanted: SetLike | None) -> SetLike:
    name = body["name"]
    if wanted is None or wanted.kind != kind:
        # Not ours any more: any definition will do, the plan deletes it by name.
        return Map(name, "ipv4_addr") if kind == "map" else Set(name, "ipv4_addr")
    if wanted.dynamic:
        if body.get("timeout") == wanted.timeout:
            return wanted  # the data path's elements stay
        return replace(wanted, comment="adopted; another definition")  # re-created
    vmap = isinstance(wanted, Map) and wanted.is_vmap
    by_canonical = {_canonical(e): e for e in wanted.elements}
    elements = []
    for raw in body.get("elem", []):
        found = _element(raw, vmap=vmap, is_map=kind == "map")
        elements.append(by_canonical.get(_canonical(found), found))
    # The kernel held them, so they fit; those we want are our own (checked) objects.
    return wanted.with_checked_elements(elements)
