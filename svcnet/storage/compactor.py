"""Periodic compaction of the store's history, as kube-apiserver compacts etcd.

Theory of operation (after staging/src/k8s.io/apiserver/pkg/storage/etcd3/compact.go)
------------------------------------------------------------------------------------
Every write adds a revision to the store's history (SQLite's log table keeps each version's
value; etcd keeps every version until compacted), and nothing else ever forgets it: without
compaction the history grows with every write for as long as the cluster lives: the SQLite
file without bound, etcd until its space quota (2 GiB by default) makes it refuse every write.
History is only needed by watches and lists that start in the past, and clients whose revision
is gone relist (410 Gone).

So each server runs a :class:`Compactor`. Every ``interval`` (kube-apiserver's
``--etcd-compaction-interval``, 5 minutes), it tries to take the round: it writes
:data:`COMPACT_KEY` on the condition that the key is at the revision it saw there in its last
round (a compare-and-swap: upstream compares the key's version, which every write bumps, as
every write moves our revision). The one that succeeds compacts the store to the revision it
noted in its previous round, so what goes is at least one interval old, and every read or
watch within the last interval keeps working. The others see that someone else took the round,
note the key's revision and the store's, and try again next interval: however many servers
(and API workers) share the store, it is compacted at most once per interval. A compactor's
first round compacts nothing (upstream: "we don't compact on bootstrap"): it has noted no
revision yet, and a restarted server must not compact history younger than an interval.

A round that fails (the store unavailable) is logged and tried again next interval, with what
was known before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from svcnet.storage.interface import Conflict, KeyExists, KeyValue, StorageError, Store
from svcnet.util.clock import Clock, RealClock

__all__ = ["COMPACT_KEY", "DEFAULT_INTERVAL", "Compactor"]

log = logging.getLogger(__name__)

COMPACT_KEY = "compact_rev_key"
"""The store key whose revision says who compacted last (upstream's name; outside every
registry prefix, ``/registry/...``)."""

DEFAULT_INTERVAL = 300.0
"""Seconds between compactions (kube-apiserver's ``--etcd-compaction-interval``: 5m)."""


@dataclass
class Compactor:
    """Compacts ``store`` once per ``interval`` among all that share it (module doc)."""

    store: Store
    interval: float = DEFAULT_INTERVAL
    clock: Clock | None = None
    #: The revision of COMPACT_KEY at this compactor's last look (0: absent).
    seen: int = 0
    #: The store revision noted in the last round this compactor took part in (0: none yet).
    noted: int = 0

    async def run(self) -> None:
        """Compact every ``interval`` until cancelled."""
        clock = self.clock or RealClock()
        while True:
            await clock.sleep(self.interval)
            try:
                await self.round()
            except StorageError as e:
                log.warning("compaction: %s; trying again in %g s", e, self.interval)

    async def round(self) -> int | None:
        """One round; the revision compacted to, or None when nothing was compacted (another
        server took the round, or this is the first)."""
        current = await self.store.get(COMPACT_KEY)
        at = current.mod_revision if current is not None else 0
        if at != self.seen:
            await self._lost(current)
            return None
        try:
            value = str(self.noted).encode()
            written = (await self.store.create(COMPACT_KEY, value) if current is None
                       else await self.store.update(COMPACT_KEY, value, at))
        except (KeyExists, Conflict):
            await self._lost(await self.store.get(COMPACT_KEY))
            return None
        target, self.seen, self.noted = self.noted, written.mod_revision, written.mod_revision
        if not target:
            return None
        await self.store.compact(target)
        log.info("compaction: history at or below revision %d compacted", target)
        return target

    async def _lost(self, current: KeyValue | None) -> None:
        """Someone else took this round: note where the key (``current``, as just read) and
        the store are now."""
        self.seen = current.mod_revision if current is not None else 0
        self.noted = await self.store.current_revision()

