"""Change tracking: the table kept as per-Service pieces, so that one change costs one Service.

Theory of operation
-------------------
:func:`~svcnet.proxy.ruleset.build_ruleset` is the reference: a pure function of *all*
Services and EndpointSlices. Rebuilding it on every change costs time in proportion to the
cluster (2 s at 10k Services), which is what kube-proxy's change trackers avoid. Here the same
table is kept as the sum of one :class:`~svcnet.proxy.ruleset.Contribution` per Service (its
elements, sticky chains and affinity sets, computed by the same builder on that Service alone)
around a fixed skeleton. A change to Services ``K`` recomputes only their contributions and
yields the *delta*: the table's elements, chains and sets that those Services touch, before and
after. :func:`~svcnet.proxy.nft.transaction.plan_sync` turns that pair of partial rulesets
into the same commands it would pick for the whole table.

That sum equals the reference as long as no two Services claim one key (a frontend, a
backend slot...) with *different* values: there the reference lets the first Service in
(namespace, name) order win and skips the loser's dependent elements, a decision that needs
the whole cluster. So :class:`TableIndex` keeps, for every key, who claims it with what
(``claims``), and the set of keys in conflict. While there is a conflict anywhere, or a change
would create one, or a change alters the skeleton (the number of ``lb-<k>`` chains), the delta
is refused and the caller rebuilds with the reference (still an incremental transaction, just
computed from whole rulesets). Conflicts are misconfigurations (two Services on one external
IP and port); a healthy cluster always takes the fast path. The equivalence is checked by a
property test that replays random changes both ways.

Inputs come through a :class:`ProxySource` (the node agent's informer caches, indexed by
Service; or plain lists) plus the keys that changed, as kube-proxy's ``ServiceChangeTracker``
and ``EndpointsChangeTracker`` collect them from informer events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from svcnet.proxy.model import LABEL_SERVICE_NAME, NodeInfo
from svcnet.proxy.nft.objects import Chain, Element, Map, Ruleset, Set, SetLike
from svcnet.proxy.ruleset import (
    CLAIM,
    EMPTY_CONTRIBUTION,
    Contribution,
    ProxyConfig,
    assemble_contributions,
    build_ruleset,
    contribution,
    lb_chain_count,
    skeleton,
)

__all__ = ["Delta", "ProxySource", "StaticSource", "TableIndex", "service_key",
           "slice_service_key"]

Obj = Mapping[str, Any]
Claim = tuple[str, tuple[str, ...]]  # (set or map name, element key)


def service_key(service: Obj) -> str:
    meta = service.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name') or ''}"


def slice_service_key(endpoint_slice: Obj) -> str | None:
    """The key of the Service an EndpointSlice belongs to (its service-name label)."""
    meta = endpoint_slice.get("metadata") or {}
    name = (meta.get("labels") or {}).get(LABEL_SERVICE_NAME)
    if not name:
        return None
    return f"{meta.get('namespace') or 'default'}/{name}"


class ProxySource(Protocol):
    """The current Services and EndpointSlices, by Service key ("namespace/name")."""

    def service(self, key: str) -> Obj | None:
        """The Service, or None if there is none (its slices may still exist)."""
        ...

    def slices(self, key: str) -> Sequence[Obj]:
        """The EndpointSlices labelled with this Service's name."""
        ...

    def keys(self) -> Iterable[str]:
        """Every key that has a Service or EndpointSlices."""
        ...


class StaticSource:
    """A :class:`ProxySource` over plain lists (tests, benchmarks, level-triggered syncs).

    ``services_by_key`` and ``slices_by_key`` may be edited in place (as informer caches are),
    so that a benchmark can change one Service without rebuilding the source.
    """

    def __init__(self, services: Iterable[Obj], endpoint_slices: Iterable[Obj]) -> None:
        self.services_by_key: dict[str, Obj] = {}
        self.slices_by_key: dict[str, list[Obj]] = {}
        for svc in services:
            self.services_by_key.setdefault(service_key(svc), svc)
        for s in endpoint_slices:
            key = slice_service_key(s)
            if key is not None:
                self.slices_by_key.setdefault(key, []).append(s)

    def service(self, key: str) -> Obj | None:
        return self.services_by_key.get(key)

    def slices(self, key: str) -> Sequence[Obj]:
        return self.slices_by_key.get(key, ())

    def keys(self) -> Iterable[str]:
        return self.services_by_key.keys() | self.slices_by_key.keys()


@dataclass(frozen=True)
class Delta:
    """What a change does to the table: the touched part of it before and after."""

    before: Ruleset
    after: Ruleset
    warnings: tuple[str, ...]


def _single(claimants: Mapping[str, Element]) -> Element | None:
    """The one value every claimant agrees on (None: no claimant); raises on a conflict."""
    values = set(claimants.values())
    if len(values) > 1:
        raise _Conflict
    return next(iter(values)) if values else None


class _Conflict(Exception):
    pass


class TableIndex:
    """The applied table as per-Service contributions, with who claims which key."""

    def __init__(self, node: NodeInfo, config: ProxyConfig) -> None:
        self.node = node
        self.config = config
        self.pieces: dict[str, Contribution] = {}
        self.claims: dict[Claim, dict[str, Element]] = {}
        self.conflicts: set[Claim] = set()
        self.chain_owners: dict[str, str] = {}
        self.set_owners: dict[str, str] = {}
        #: Objects named the same by two Services (a hash collision; never seen in practice).
        self.name_clashes = 0
        self.lb_counts: Counter[int] = Counter()
        self._definitions: dict[int, Ruleset] = {}

    # -- inputs ---------------------------------------------------------------------------

    def compute(self, source: ProxySource, keys: Iterable[str]) -> dict[str, Contribution]:
        """The current contributions of ``keys`` (pure; the index is not changed)."""
        return {key: contribution(source.service(key), source.slices(key), self.node,
                                  self.config) for key in keys}

    def changed(self, updates: Mapping[str, Contribution]) -> dict[str, Contribution]:
        """``updates`` without those equal to what is applied (nothing to do for them)."""
        return {k: c for k, c in updates.items()
                if self.pieces.get(k, EMPTY_CONTRIBUTION) != c}

    @property
    def clean(self) -> bool:
        """No key in conflict and no name clash: the sum of pieces is the reference table."""
        return not self.conflicts and not self.name_clashes

    @property
    def largest(self) -> int:
        return max((k for k, n in self.lb_counts.items() if n > 0), default=0)

    # -- the fast path --------------------------------------------------------------------

    def delta(self, updates: Mapping[str, Contribution]) -> Delta | None:  # noqa: C901
        """The touched part of the table before and after ``updates``; None when only the
        reference builder can tell (a conflict now or after, a skeleton change)."""
        if not self.clean:
            return None
        counts = self.lb_counts.copy()
        for key, new in updates.items():
            counts.subtract(self.pieces.get(key, EMPTY_CONTRIBUTION).lb_counts)
            counts.update(new.lb_counts)
        new_largest = max((k for k, n in counts.items() if n > 0), default=0)
        if lb_chain_count(new_largest) != lb_chain_count(self.largest):
            return None
        touched: dict[Claim, dict[str, Element]] = {}
        for key, new in updates.items():
            for target, bucket in self.pieces.get(key, EMPTY_CONTRIBUTION).elements.items():
                for k in bucket:
                    touched.setdefault((target, k), {})
            for target, bucket in new.elements.items():
                for k, element in bucket.items():
                    touched.setdefault((target, k), {})[key] = element
        before_elements: dict[str, list[Element]] = {}
        after_elements: dict[str, list[Element]] = {}
        try:
            for claim, new_claims in touched.items():
                claimants = self.claims.get(claim, {})
                before = _single(claimants)
                after = _single({**{k: e for k, e in claimants.items() if k not in updates},
                                 **new_claims})
                if before == after:
                    continue
                if before is not None:
                    before_elements.setdefault(claim[0], []).append(before)
                if after is not None:
                    after_elements.setdefault(claim[0], []).append(after)
        except _Conflict:
            return None
        chains_before: list[Chain] = []
        chains_after: list[Chain] = []
        sets_before: list[Set] = []
        sets_after: list[Set] = []
        for key, new in updates.items():
            old = self.pieces.get(key, EMPTY_CONTRIBUTION)
            for name in (*new.chains, *new.sets):
                owner = self.chain_owners.get(name, self.set_owners.get(name))
                if owner is not None and owner != key and owner not in updates:
                    return None  # a name clash: let the reference decide
            chains_before.extend(old.chains.values())
            chains_after.extend(new.chains.values())
            sets_before.extend(old.sets.values())
            sets_after.extend(new.sets.values())
        warnings = tuple(w for c in updates.values() for w in c.warnings)
        # A touched set or map appears on both sides (maybe empty on one): missing from one
        # side would read as "delete it".
        for name in [*before_elements, *after_elements]:
            before_elements.setdefault(name, [])
            after_elements.setdefault(name, [])
        try:
            return Delta(self._partial(before_elements, chains_before, sets_before),
                         self._partial(after_elements, chains_after, sets_after), warnings)
        except ValueError:
            return None  # duplicate names across the updated Services (a clash)

    def _partial(self, elements: Mapping[str, list[Element]], chains: list[Chain],
                 sets: list[Set]) -> Ruleset:
        """A ruleset of the skeleton's sets and maps named in ``elements`` (with just those
        elements), plus ``chains`` and ``sets``."""
        definitions = self.definitions()
        fixed: list[SetLike] = [definitions.set_by_name[name].with_elements(found)
                                for name, found in elements.items()
                                if not name.startswith(CLAIM)]  # (claims: never rendered)
        return Ruleset(definitions.table, tuple(chains),
                       (*sets, *(s for s in fixed if isinstance(s, Set))),
                       tuple(s for s in fixed if isinstance(s, Map)))

    def definitions(self) -> Ruleset:
        largest = self.largest
        if largest not in self._definitions:
            self._definitions = {largest: skeleton(self.node, self.config, largest)}
        return self._definitions[largest]

    # -- bookkeeping ----------------------------------------------------------------------

    def commit(self, updates: Mapping[str, Contribution]) -> None:
        """Make ``updates`` the applied contributions."""
        for key, new in updates.items():
            old = self.pieces.pop(key, EMPTY_CONTRIBUTION)
            self._forget(key, old)
            if new != EMPTY_CONTRIBUTION:
                self.pieces[key] = new
                self._remember(key, new)

    def _forget(self, key: str, piece: Contribution) -> None:
        for target, bucket in piece.elements.items():
            for k in bucket:
                claim = (target, k)
                claimants = self.claims.get(claim)
                if claimants is None:
                    continue
                claimants.pop(key, None)
                if not claimants:
                    del self.claims[claim]
                if len(set(claimants.values())) <= 1:
                    self.conflicts.discard(claim)
        for owners, names in ((self.chain_owners, piece.chains), (self.set_owners, piece.sets)):
            for name in names:
                if owners.get(name) == key:
                    del owners[name]
                else:
                    self.name_clashes -= 1
        self.lb_counts.subtract(piece.lb_counts)

    def _remember(self, key: str, piece: Contribution) -> None:
        for target, bucket in piece.elements.items():
            for k, element in bucket.items():
                claim = (target, k)
                claimants = self.claims.setdefault(claim, {})
                claimants[key] = element
                if len(claimants) > 1 and len(set(claimants.values())) > 1:
                    self.conflicts.add(claim)
        for owners, names in ((self.chain_owners, piece.chains), (self.set_owners, piece.sets)):
            for name in names:
                if name in owners:
                    self.name_clashes += 1
                else:
                    owners[name] = key
        self.lb_counts.update(piece.lb_counts)

    # -- the whole table ------------------------------------------------------------------

    def ruleset(self, source: ProxySource | None = None) -> Ruleset:
        """The whole table: the sum of pieces when clean, else the reference built from
        ``source`` (which must then be given and match the committed pieces)."""
        if self.clean:
            return assemble_contributions((self.pieces[k] for k in sorted(self.pieces, key=_order)),
                                          self.node, self.config)
        if source is None:
            raise ValueError("a table with conflicts can only be rebuilt from its source")
        keys = list(source.keys())
        services = [s for k in keys if (s := source.service(k)) is not None]
        slices = [s for k in keys for s in source.slices(k)]
        return build_ruleset(services, slices, self.node, self.config)


def _order(key: str) -> tuple[str, str]:
    namespace, _, name = key.partition("/")
    return namespace, name

