"""Transactions (ordered ``nft`` commands, sticky first error) and the sync planner.

Theory of operation
-------------------
A :class:`Transaction` is an ordered list of commands against one table. Each method validates
what it is given (objects validate themselves; elements are checked against their set's type)
and the *first* failure sticks: later calls are ignored and :meth:`Transaction.render` raises it,
so a caller can build a whole transaction without checking every step, exactly like knftables.
The rendered text is one ``nft -f`` script, which the kernel applies atomically: either every
command takes effect or none does.

:func:`plan_sync` turns "what was applied last" and "what is wanted now" into a transaction:

* **Full sync** (nothing known to be applied): ``add table`` + ``delete table`` + the whole
  table. ``delete table`` of a table that does not exist fails, so the script first adds it
  (a no-op when it exists) and then deletes it; all in one transaction, so there is no moment
  without rules.
* **Incremental sync**: only the differences, computed from the two in-memory rulesets — the
  kernel is never listed (``nft list ruleset`` takes 21 s at 110k chains; reading state back is
  also not needed, since we own the table). Map and set elements are added and deleted one by
  one; a chain whose rules changed is flushed and refilled (diffing rules would need rule
  handles, and our chains are short); a set whose definition changed is deleted and re-created
  (after the chains that refer to it are flushed). A changed chain *header* (type, hook,
  priority, comment) only comes from a configuration change and makes the sync a full one.
  So does a new or changed rule that uses a map nft 1.0.6 cannot read back
  (:attr:`Map.rules_need_full_sync <svcnet.proxy.nft.objects.Map.rules_need_full_sync>`);
  the ruleset builder keeps such rules in chains that (almost) never change.

The order of commands inside an incremental transaction matters, because the kernel checks
references as each command is applied::

    add set/map (new)            rules and elements added below may refer to them
    add chain (new, empty)       verdict elements and jumps added below may refer to them
    flush chain (changed/gone)   drops the rules' references to sets and chains
    delete element (gone/changed)  drops verdict elements' references to chains
    delete set/map (gone/redefined) now unreferenced
    delete chain (gone)          now unreferenced (unless deferred, below)
    add set/map (redefined) + their elements
    add element (new/changed)
    add rule (changed/new chains)

Kernel quirk: before Linux 6.2, deleting a verdict-map element does not release its reference to
the target chain until a moment after the transaction, so deleting the chain in the same
transaction fails with EBUSY. kube-proxy therefore flushes stale chains at once and deletes them
about a second later; ``plan_sync(..., defer_chain_deletion=True)`` does the same and lists the
chains in :attr:`Transaction.stale_chains` for the caller to delete later.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from svcnet.proxy.nft.objects import (
    Chain,
    Element,
    Map,
    Rule,
    Ruleset,
    SetLike,
    Table,
    rule_references,
    validate_name,
)

__all__ = ["ELEMENTS_PER_COMMAND", "Op", "Transaction", "plan_sync"]

# Elements per `add element` command: one enormous line works, but chunks keep nft's error
# messages (which quote the offending line) readable.
ELEMENTS_PER_COMMAND = 1000


@dataclass(frozen=True, slots=True)
class Op:
    """One command: ``verb`` (add/create/delete/flush), object ``kind`` and name, its text."""

    verb: str
    kind: str
    name: str
    text: str
    count: int = 1


#: A well-formed value of each datatype (see Transaction._value_stub).
_STUBS: Final = {"ipv4_addr": "0.0.0.0", "ipv6_addr": "::", "inet_proto": "tcp"}


class Transaction:
    """Ordered commands against one table; renders to one atomic ``nft -f`` script."""

    def __init__(self, table: Table, *, full: bool = False) -> None:
        self.table = table
        self.full = full
        self.ops: list[Op] = []
        self.error: Exception | None = None
        self.stale_chains: tuple[str, ...] = ()

    # -- recording -----------------------------------------------------------------------

    def _record(self, verb: str, kind: str, name: str, text: str, count: int = 1) -> None:
        self.ops.append(Op(verb, kind, name, text, count))

    def _guard(self) -> bool:
        return self.error is None

    def _fail(self, err: Exception) -> None:
        if self.error is None:
            self.error = err

    def add_table(self) -> None:
        if self._guard():
            spec = "" if self.table.comment is None else f' {{ comment "{self.table.comment}" ; }}'
            self._record("add", "table", self.table.name, f"add table {self.table.ref}{spec}")

    def delete_table(self) -> None:
        if self._guard():
            self._record("delete", "table", self.table.name, f"delete table {self.table.ref}")

    def add_chain(self, chain: Chain) -> None:
        """``add chain`` (header only; rules go through :meth:`add_rule`)."""
        if self._guard():
            spec = chain.spec()
            text = f"add chain {self.table.ref} {chain.name}" + (f" {spec}" if spec else "")
            self._record("add", "chain", chain.name, text)

    def flush_chain(self, name: str) -> None:
        self._chain_verb("flush", name)

    def delete_chain(self, name: str) -> None:
        self._chain_verb("delete", name)

    def _chain_verb(self, verb: str, name: str) -> None:
        if not self._guard():
            return
        try:
            validate_name(name, "chain name")
        except ValueError as err:
            self._fail(err)
            return
        self._record(verb, "chain", name, f"{verb} chain {self.table.ref} {name}")

    def add_rule(self, chain: str, rule: Rule | str) -> None:
        if not self._guard():
            return
        try:
            validate_name(chain, "chain name")
            rule = Rule(rule) if isinstance(rule, str) else rule
        except ValueError as err:
            self._fail(err)
            return
        self._record("add", "rule", chain, f"add rule {self.table.ref} {chain} {rule.render()}")

    def add_set(self, s: SetLike, *, with_elements: bool = True) -> None:
        """``add set``/``add map`` with its definition, then (optionally) its elements."""
        if not self._guard():
            return
        self._record("add", s.kind, s.name, f"add {s.kind} {self.table.ref} {s.name} {s.spec()}")
        if with_elements and s.elements and not s.dynamic:
            self.add_elements(s, s.elements, checked=True)

    def delete_set(self, s: SetLike) -> None:
        if self._guard():
            self._record("delete", s.kind, s.name, f"delete {s.kind} {self.table.ref} {s.name}")

    def add_elements(self, s: SetLike, elements: Iterable[Element], *,
                     checked: bool = False) -> None:
        """``add element``; ``checked``: the elements come from ``s`` itself (a Set checks
        its elements when it is made), so they are not checked again."""
        self._elements("add", s, elements, keys_only=False, checked=checked)

    def create_elements(self, s: SetLike, elements: Iterable[Element]) -> None:
        """Like add, but the kernel fails if an element already exists."""
        self._elements("create", s, elements, keys_only=False)

    def delete_elements(self, s: SetLike, elements: Iterable[Element], *,
                        checked: bool = False) -> None:
        self._elements("delete", s, elements, keys_only=True, checked=checked)

    def _elements(self, verb: str, s: SetLike, elements: Iterable[Element], *,
                  keys_only: bool, checked: bool = False) -> None:
        if not self._guard():
            return
        items: list[Element] = list(elements)
        try:
            for element in () if checked else items:
                if keys_only:
                    # A delete names the key only; the value does not have to match.
                    s.check_element(Element(element.key, self._value_stub(s, element)))
                else:
                    s.check_element(element)
        except ValueError as err:
            self._fail(err)
            return
        for start in range(0, len(items), ELEMENTS_PER_COMMAND):
            chunk: Sequence[Element] = items[start:start + ELEMENTS_PER_COMMAND]
            body = ", ".join(e.render_key() if keys_only else e.render() for e in chunk)
            self._record(verb, "element", s.name,
                         f"{verb} element {self.table.ref} {s.name} {{ {body} }}", len(chunk))

    @staticmethod
    def _value_stub(s: SetLike, element: Element) -> tuple[str, ...]:
        if isinstance(s, Map) and not element.value:
            # Borrow a well-formed value so the key can be checked on its own.
            return ("drop",) if s.is_vmap else tuple(
                _STUBS.get(t, "0") for t in s.value_types)
        return element.value

    # -- output --------------------------------------------------------------------------

    def render(self) -> str:
        """The ``nft -f`` script; raises the first error recorded while building."""
        if self.error is not None:
            raise self.error
        return "".join(op.text + "\n" for op in self.ops)

    def counts(self) -> Counter[str]:
        """How many of each ``verb kind`` (elements counted one by one)."""
        result: Counter[str] = Counter()
        for op in self.ops:
            result[f"{op.verb} {op.kind}"] += op.count
        return result

    def __len__(self) -> int:
        return len(self.ops)

    def __bool__(self) -> bool:
        return bool(self.ops) or self.error is not None


def _full(desired: Ruleset) -> Transaction:
    tx = Transaction(desired.table, full=True)
    tx.add_table()
    tx.delete_table()
    tx.add_table()
    all_sets: list[SetLike] = [*desired.sets, *desired.maps]
    for s in all_sets:
        tx.add_set(s, with_elements=False)
    for chain in desired.chains:
        tx.add_chain(chain)
    for s in all_sets:
        if s.elements and not s.dynamic:
            tx.add_elements(s, s.elements, checked=True)
    for chain in desired.chains:
        for rule in chain.rules:
            tx.add_rule(chain.name, rule)
    return tx


def plan_sync(previous: Ruleset | None, desired: Ruleset, *,  # noqa: C901
              defer_chain_deletion: bool = False) -> Transaction:
    """The transaction that turns ``previous`` (as applied) into ``desired``.

    ``previous`` None (or a different table) means the kernel state is unknown: full sync.
    With ``defer_chain_deletion`` chains that are no longer wanted are only flushed, and listed
    in the result's ``stale_chains`` (see the module docstring for the kernel quirk).
    """
    if previous is None or previous.table != desired.table:
        return _full(desired)
    tx = Transaction(desired.table)
    old_chains, new_chains = previous.chain_by_name, desired.chain_by_name
    old_sets, new_sets = previous.set_by_name, desired.set_by_name

    added_sets = [s for name, s in new_sets.items() if name not in old_sets]
    redefined_sets = [s for name, s in new_sets.items()
                      if name in old_sets and old_sets[name].definition() != s.definition()]
    removed_sets = [s for name, s in old_sets.items() if name not in new_sets]
    kept_sets = [(old_sets[name], s) for name, s in new_sets.items()
                 if name in old_sets and old_sets[name].definition() == s.definition()]

    added_chains = [c for name, c in new_chains.items() if name not in old_chains]
    if any(old_chains[name].header() != c.header()
           for name, c in new_chains.items() if name in old_chains):
        # A chain's type, hook, priority or comment changed: only configuration does that.
        # Re-creating a chain that verdict elements point at is not possible in place, so
        # start over with a full sync (atomic all the same).
        return _full(desired)
    # Rules referring to a set that is re-created must go before the set can be deleted; they
    # come back unchanged afterwards.
    redefined_names = {s.name for s in redefined_sets}
    changed_chains = [c for name, c in new_chains.items()
                      if name in old_chains and (
                          old_chains[name].rules != c.rules
                          or any(rule_references(r.text)[1] & redefined_names for r in c.rules))]
    removed_chains = [c for name, c in old_chains.items() if name not in new_chains]
    fragile = {m.name for m in desired.maps if m.rules_need_full_sync}
    if any(rule_references(rule.text)[1] & fragile
           for chain in (*added_chains, *changed_chains) for rule in chain.rules):
        return _full(desired)  # see Map.rules_need_full_sync: an nft 1.0.6 limitation

    for s in added_sets:
        tx.add_set(s, with_elements=False)
    for chain in added_chains:
        tx.add_chain(chain)
    for chain in (*changed_chains, *removed_chains):
        if old_chains[chain.name].rules:
            tx.flush_chain(chain.name)
    element_adds: list[tuple[SetLike, list[Element]]] = []
    for old, new in kept_sets:
        if new.dynamic:
            continue  # the data path owns these elements
        old_elements = {e.key: e for e in old.elements}
        new_elements = {e.key: e for e in new.elements}
        gone = [e for key, e in old_elements.items() if new_elements.get(key) != e]
        if gone:  # old's elements, checked when old was made; new has the same definition
            tx.delete_elements(new, gone, checked=True)
        fresh = [e for key, e in new_elements.items() if old_elements.get(key) != e]
        if fresh:
            element_adds.append((new, fresh))
    for s in (*removed_sets, *redefined_sets):
        tx.delete_set(old_sets[s.name])
    if defer_chain_deletion:
        tx.stale_chains = tuple(c.name for c in removed_chains)
    else:
        for chain in removed_chains:
            tx.delete_chain(chain.name)
    for s in redefined_sets:
        tx.add_set(s)
    for s in added_sets:
        if s.elements and not s.dynamic:
            tx.add_elements(s, s.elements, checked=True)
    for s, elements in element_adds:
        tx.add_elements(s, elements, checked=True)
    for chain in (*added_chains, *changed_chains):
        for rule in chain.rules:
            tx.add_rule(chain.name, rule)
    return tx
