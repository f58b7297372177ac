"""A packet tracer for the rulesets the proxy builds (kube-proxy's ``nftablesTracer`` idea).

It follows a virtual packet through a :class:`Ruleset` — the nat hook for the packet's origin
(``prerouting`` for packets arriving from a pod or the network, ``output`` for the node's own),
then ``postrouting`` — and reports every possible outcome: each endpoint the DNAT may choose
(random choices are explored exhaustively), whether the packet is masqueraded, or that it was
rejected/dropped/left alone. This tests *behaviour* ("an outside client reaches only the local
endpoint, unmasqueraded") without pinning every rule, and without root.

It understands exactly the rule shapes :mod:`svcnet.proxy.ruleset` emits, by regular expression,
and fails loudly on anything else, so a new rule shape forces the tracer (and its own tests) to
be extended. Affinity sets are dynamic: the tracer starts with them empty (a first connection)
unless ``affinity`` pre-fills them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from svcnet.proxy.nft.objects import Element, Map, Rule, Ruleset

__all__ = ["Outcome", "Packet", "trace"]

FRONTEND = "ip daddr . meta l4proto . th dport"


@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    dport: int
    proto: str = "tcp"
    #: The packet comes from a process on the node itself (output hook; ``fib saddr type
    #: local`` is true); otherwise it arrives on an interface (prerouting).
    from_host: bool = False


@dataclass(frozen=True)
class Outcome:
    verdict: str                 # "dnat", "reject", "drop", "accept" (untouched)
    endpoint: str | None = None  # "ip:port" for dnat
    masquerade: bool = False


@dataclass
class _State:
    packet: Packet
    mark: int = 0
    dst: str = ""
    dport: int = 0
    dnat: bool = False
    affinity_updates: list[str] = field(default_factory=list)

    def copy(self) -> _State:
        return _State(self.packet, self.mark, self.dst, self.dport, self.dnat,
                      list(self.affinity_updates))


class _Done(Exception):
    def __init__(self, verdict: str) -> None:
        self.verdict = verdict


class UnknownRule(AssertionError):
    """The tracer met a rule shape it does not understand."""


def _ip_in(value: str, element: str) -> bool:
    if "/" in element:
        return ipaddress.IPv4Address(value) in ipaddress.IPv4Network(element)
    return value == element


class _Tracer:
    def __init__(self, ruleset: Ruleset, affinity: Mapping[str, set[str]]) -> None:
        self.ruleset = ruleset
        self.affinity = {name: set(ips) for name, ips in affinity.items()}

    # -- lookups ------------------------------------------------------------------------

    def _elements(self, name: str) -> tuple[Element, ...]:
        s = self.ruleset.set_by_name.get(name)
        if s is None:
            raise UnknownRule(f"unknown set @{name}")
        return s.elements

    def _member(self, name: str, key: tuple[str, ...]) -> bool:
        if name in self.affinity or name.startswith("affinity-"):
            return key[0] in self.affinity.get(name, set())
        for element in self._elements(name):
            if len(element.key) == len(key) and all(
                    _ip_in(k, e) if "." in k and k.count(".") == 3 else k == e
                    for k, e in zip(key, element.key, strict=True)):
                return True
        return False

    def _lookup(self, name: str, key: tuple[str, ...]) -> tuple[str, ...] | None:
        s = self.ruleset.set_by_name[name]
        assert isinstance(s, Map), name
        for element in s.elements:
            if element.key == key:
                return element.value
        return None

    # -- evaluation ---------------------------------------------------------------------

    def run_chain(self, name: str, st: _State) -> list[tuple[_State, str]]:
        """Run chain ``name``; each result is (state, "continue"|"return"|terminal verdict)."""
        chain = self.ruleset.chain_by_name.get(name)
        if chain is None:
            raise UnknownRule(f"unknown chain {name}")
        return self._rules(list(chain.rules), st)

    def _rules(self, rules: list[Rule], st: _State) -> list[tuple[_State, str]]:
        if not rules:
            return [(st, "continue")]
        results: list[tuple[_State, str]] = []
        for new_st, verdict in self._rule(rules[0].text, st):
            if verdict == "next":
                results.extend(self._rules(rules[1:], new_st))
            else:
                results.append((new_st, verdict))
        return results

    def _rule(self, text: str, st: _State) -> list[tuple[_State, str]]:
        """One rule: "next" to go on with the chain, or a verdict ending the chain."""
        p = st.packet
        frontend = (st.dst, p.proto, str(st.dport))
        rest = text
        while True:
            m = re.match(rf"{re.escape(FRONTEND)} @(\S+) ", rest)
            if m:
                if not self._member(m.group(1), frontend):
                    return [(st, "next")]
                rest = rest[m.end():]
                continue
            m = re.match(rf"{re.escape(FRONTEND)} \. ip saddr != @(\S+) ", rest)
            if m:
                if self._member(m.group(1), (*frontend, p.src)):
                    return [(st, "next")]
                rest = rest[m.end():]
                continue
            m = re.match(r"ip daddr @(\S+) meta l4proto \. th dport @(\S+) ", rest)
            if m:
                if not (self._member(m.group(1), (st.dst,))
                        and self._member(m.group(2), frontend[1:])):
                    return [(st, "next")]
                rest = rest[m.end():]
                continue
            m = re.match(r"ip daddr @(\S+) meta l4proto \. th dport vmap @(\S+)$", rest)
            if m:
                if not self._member(m.group(1), (st.dst,)):
                    return [(st, "next")]
                return self._verdict(self._lookup(m.group(2), frontend[1:]), st)
            m = re.match(rf"{re.escape(FRONTEND)} vmap @(\S+)$", rest)
            if m:
                return self._verdict(self._lookup(m.group(1), frontend), st)
            m = re.match(r"ip daddr @(\S+) ", rest)
            if m:
                if not self._member(m.group(1), (st.dst,)):
                    return [(st, "next")]
                rest = rest[m.end():]
                continue
            m = re.match(r"ip saddr (!= )?@(\S+) ", rest)
            if m:
                if self._member(m.group(2), (p.src,)) == bool(m.group(1)):
                    return [(st, "next")]
                rest = rest[m.end():]
                continue
            m = re.match(r"fib saddr type (!= )?local ", rest)
            if m:
                if p.from_host == bool(m.group(1)):
                    return [(st, "next")]
                rest = rest[m.end():]
                continue
            m = re.match(r"ct status dnat ip saddr \. ip daddr @(\S+) ", rest)
            if m:
                if not (st.dnat and self._member(m.group(1), (p.src, st.dst))):
                    return [(st, "next")]
                rest = rest[m.end():]
                continue
            m = re.match(r"meta mark & (0x[0-9a-f]+) == 0x00000000 ", rest)
            if m:
                if st.mark & int(m.group(1), 16):
                    return [(st, "next")]
                rest = rest[m.end():]
                continue
            m = re.match(r"numgen random mod (\d+) == 0 ", rest)
            if m:
                # Either outcome is possible: explore both.
                skipped = (st.copy(), "next")
                return [skipped, *self._rule(rest[m.end():], st.copy())]
            return self._action(rest, st)

    def _verdict(self, value: tuple[str, ...] | None, st: _State) -> list[tuple[_State, str]]:
        if value is None:
            return [(st, "next")]
        return self._action(value[0], st)

    def _action(self, text: str, st: _State) -> list[tuple[_State, str]]:
        m = re.fullmatch(r"(jump|goto) (\S+)", text)
        if m:
            results: list[tuple[_State, str]] = []
            for new_st, verdict in self.run_chain(m.group(2), st.copy()):
                if verdict in ("continue", "return"):
                    results.append((new_st, "next" if m.group(1) == "jump" else "return"))
                else:
                    results.append((new_st, verdict))
            return results
        if text in ("drop", "reject", "accept", "return"):
            return [(st, text)]
        m = re.fullmatch(r"meta mark set meta mark ([|^]) (0x[0-9a-f]+)", text)
        if m:
            bit = int(m.group(2), 16)
            st.mark = st.mark | bit if m.group(1) == "|" else st.mark ^ bit
            return [(st, "next")]
        m = re.fullmatch(r"update @(\S+) \{ ip saddr \} meta l4proto (\w+) dnat ip to "
                         r"([\d.]+):(\d+)", text)
        if m:
            assert m.group(2) == st.packet.proto, text
            st.affinity_updates.append(m.group(1))
            return [self._dnat(st, m.group(3), int(m.group(4)))]
        m = re.fullmatch(rf"dnat ip to {re.escape(FRONTEND)} \. numgen random mod (\d+) "
                         r"map @(\S+)", text)
        if m:
            outcomes = []
            for slot in range(int(m.group(1))):
                key = (st.dst, st.packet.proto, str(st.dport), str(slot))
                value = self._lookup(m.group(2), key)
                assert value is not None, f"no backend for {key} in @{m.group(2)}"
                outcomes.append(self._dnat(st.copy(), value[0], int(value[1])))
            return outcomes
        if text == "masquerade fully-random":
            return [(st, "masquerade")]
        raise UnknownRule(f"tracer does not understand {text!r}")

    @staticmethod
    def _dnat(st: _State, ip: str, port: int) -> tuple[_State, str]:
        st.dst, st.dport, st.dnat = ip, port, True
        return st, "dnat"


def trace(ruleset: Ruleset, packet: Packet, *,
          affinity: Mapping[str, set[str]] | None = None) -> set[Outcome]:
    """Every possible outcome of ``packet`` through ``ruleset`` (nat, then postrouting)."""
    tracer = _Tracer(ruleset, affinity or {})
    hook = "nat-output" if packet.from_host else "nat-prerouting"
    start = _State(packet, dst=packet.dst, dport=packet.dport)
    outcomes: set[Outcome] = set()
    for st, verdict in tracer.run_chain(hook, start):
        if verdict in ("drop", "reject"):
            outcomes.add(Outcome(verdict))
            continue
        masq = False
        for post, post_verdict in tracer.run_chain("nat-postrouting", replace(st)):
            masq = post_verdict == "masquerade"
            assert post.mark & 0x4000 == 0, "the masquerade mark must not leak"
        if st.dnat:
            outcomes.add(Outcome("dnat", f"{st.dst}:{st.dport}", masq))
        else:
            outcomes.add(Outcome("accept", None, masq))
    return outcomes
