"""The Proxier: build the desired ruleset, plan the difference, apply it, remember it.

Theory of operation
-------------------
:meth:`Proxier.sync` is level-triggered: it takes the *complete* current Services,
EndpointSlices and Node (the node agent's informer caches), and

1. builds the desired :class:`~svcnet.proxy.nft.objects.Ruleset` (pure, see
   :mod:`svcnet.proxy.ruleset`);
2. plans a transaction against the ruleset it applied last (:func:`plan_sync`): the first sync,
   and any sync after a failure, is *full* (the table is recreated atomically); later syncs
   write only the differences — element adds/deletes, flushed-and-refilled chains — and never
   list the kernel's state;
3. applies it as one ``nft -f`` transaction. On success the desired ruleset becomes the applied
   one; on failure nothing changed in the kernel, but the proxier forgets what it applied so
   the next sync is full (as kube-proxy's ``needFullSync``): whatever went wrong, a full sync
   does not depend on it.

Chains that are no longer needed are flushed at once but deleted in a later sync, at least
``stale_chain_delay`` seconds after (kernels before 6.2 release a verdict map's reference to a
chain only shortly after the element is deleted; see :mod:`svcnet.proxy.nft.transaction`).
Until then they stay in the applied ruleset as empty chains, so the planner knows they exist.

A sync with nothing to change writes nothing. The node agent (a later step) drives ``sync``
from informer events through a bounded-frequency runner, serves health checks, and clears UDP
conntrack entries of removed endpoints; none of that is here.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from svcnet.proxy.model import NodeInfo
from svcnet.proxy.nft.nft import NftError, NftRunner
from svcnet.proxy.nft.objects import Chain, Ruleset, Table
from svcnet.proxy.nft.transaction import Transaction, plan_sync
from svcnet.proxy.ruleset import ProxyConfig, build_ruleset

__all__ = ["Proxier", "SyncResult"]


@dataclass(frozen=True)
class SyncResult:
    """What one sync did."""

    full: bool
    counts: Counter[str] = field(default_factory=Counter)
    duration: float = 0.0
    bytes: int = 0
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.counts)


class Proxier:
    """Keeps one nftables table in step with the cluster's Services and EndpointSlices."""

    def __init__(self, runner: NftRunner, config: ProxyConfig | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 stale_chain_delay: float = 1.0) -> None:
        self.runner = runner
        self.config = config or ProxyConfig()
        self.clock = clock
        self.stale_chain_delay = stale_chain_delay
        self.applied: Ruleset | None = None
        self.stale_chains: dict[str, float] = {}
        self.syncs = 0
        self.failures = 0
        self.last_transaction: Transaction | None = None

    @property
    def needs_full_sync(self) -> bool:
        return self.applied is None

    def sync(self, services: Iterable[Mapping[str, Any]],
             endpoint_slices: Iterable[Mapping[str, Any]], node: NodeInfo) -> SyncResult:
        """Make the kernel match the given objects; raises the runner's error on failure."""
        start = self.clock()
        desired = build_ruleset(services, endpoint_slices, node, self.config)
        self._delete_stale_chains(desired, start)
        tx = plan_sync(self.applied, desired, defer_chain_deletion=True)
        self.last_transaction = tx
        text = tx.render() if tx else ""
        try:
            if text:
                self.runner.apply(text)
        except Exception:
            self.failures += 1
            self.applied = None
            self.stale_chains.clear()
            raise
        self.syncs += 1
        if tx.full:
            self.stale_chains.clear()
        for name in tx.stale_chains:
            self.stale_chains.setdefault(name, start)
        self.applied = self._with_stale(desired)
        return SyncResult(tx.full, tx.counts(), self.clock() - start, len(text),
                          desired.warnings)

    def _with_stale(self, desired: Ruleset) -> Ruleset:
        extra = [Chain(name) for name in self.stale_chains if name not in desired.chain_by_name]
        if not extra:
            return desired
        return replace(desired, chains=(*desired.chains, *extra))

    def _delete_stale_chains(self, desired: Ruleset, now: float) -> None:
        """Delete chains flushed at least ``stale_chain_delay`` ago (own transaction)."""
        for name in [n for n in self.stale_chains if n in desired.chain_by_name]:
            del self.stale_chains[name]  # wanted again: the planner refills it
        due = sorted(n for n, since in self.stale_chains.items()
                     if now - since >= self.stale_chain_delay)
        if not due or self.applied is None:
            return
        tx = Transaction(self.applied.table)
        for name in due:
            tx.delete_chain(name)
        try:
            self.runner.apply(tx.render())
        except NftError:
            return  # harmless leftovers (empty, unreferenced); retried on the next sync
        for name in due:
            del self.stale_chains[name]
        self.applied = replace(self.applied, chains=tuple(
            c for c in self.applied.chains if c.name not in due))

    def cleanup(self) -> None:
        """Remove the table (if it exists) and forget it."""
        tx = Transaction(Table("ip", self.config.table))
        tx.add_table()
        tx.delete_table()
        self.runner.apply(tx.render())
        self.applied = None
        self.stale_chains.clear()
