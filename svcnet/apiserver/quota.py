"""The ResourceQuota admission's charge: a write's usage added to its namespace's quotas in
the store before the write itself is stored.

Theory of operation, after ``plugin/pkg/admission/resourcequota/controller.go``: the
pure check (:func:`svcnet.api.resourcequotas.charge`) runs over the namespace's quotas as
read now; when it admits the write and the write counts against some of them, each such
quota's new ``status.used`` is written with the quota's resourceVersion as a precondition.
Another write that charged the quota in between (in this process, another API worker of
``--workers`` or another server on the same store) makes that write fail on the store's
compare-and-swap; the quotas are then read again and the check repeated, so two writes never
both take the last unit of a quota. The object is stored only after its charge is; a write
that then fails leaves the quota over-counted until the quota controller recalculates it,
as upstream. A dry run is checked and charges nothing. Events are never counted, so their
creates read no quota. Status updates, subresources and
cluster-scoped objects are not charged; of updates only Services' and claims' are (a pod's
resources cannot change, and object counts only grow on create), as upstream's evaluators
handle them, and only those that count for more than the object they replace: the quotas are
not read for the others (upstream reads them from an informer, and would still refuse such an
update when a matching quota's usage is unknown; here it passes).

When some quotas took the charge and another's write conflicted, only the ones not yet charged
are read and checked again (upstream's ``updatedFailedQuotas``), so no quota is charged twice.

Namespaces without quotas (most of them) cost nothing: each serving process keeps the count of
quotas per namespace from its own watch of the store (:meth:`QuotaAdmission.run`, the
counterpart of upstream's quota informer), and a write in a namespace that has none is not
charged without reading the store. Until that index is complete (start-up, a broken watch) the
quotas are read for every write, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

from svcnet.api import errors, resourcequotas
from svcnet.api.errors import StatusError
from svcnet.registry.generic import AdmissionAttributes, Registry
from svcnet.util import offload
from svcnet.util.clock import Clock

__all__ = ["QuotaAdmission"]

log = logging.getLogger(__name__)

_RETRIES = 10
#: Resources whose updates are charged (the evaluators that handle updates).
_CHARGED_UPDATES = frozenset({("", "services"), ("", "persistentvolumeclaims")})


class QuotaAdmission:
    def __init__(self, quotas: Callable[[], Registry], clock: Clock) -> None:
        #: The ResourceQuota registry (looked up late: it is built with the others).
        self._quotas = quotas
        self._clock = clock
        #: Quotas per namespace, from the watch (None: not known now; read the store).
        self._counts: Counter[str] | None = None

    async def run(self) -> None:
        """Keep the per-namespace count of quotas from a list and a watch of the store."""
        while True:
            try:
                registry = self._quotas()
                page = await registry.list("")
                counts = Counter(str(q["metadata"].get("namespace") or "") for q in page.items)
                self._counts = counts
                async for kind, obj, _prev in registry.watch("", int(page.resource_version)):
                    namespace = str(obj["metadata"].get("namespace") or "")
                    if kind == "ADDED":
                        counts[namespace] += 1
                    elif kind == "DELETED":
                        counts[namespace] -= 1
            except asyncio.CancelledError:
                self._counts = None
                raise
            except Exception:  # the watch ended (compaction, store trouble): list again
                log.debug("quota index: watch ended; listing again", exc_info=True)
                self._counts = None
                await self._clock.sleep(1)

    def _may_have_quotas(self, namespace: str) -> bool:
        return self._counts is None or self._counts[namespace] > 0

    async def charge(self, attrs: AdmissionAttributes, dry_run: bool) -> None:
        if (not attrs.namespace or attrs.subresource
                or not resourcequotas.is_counted(attrs.group, attrs.resource)):
            return
        if attrs.operation == "update" and (
                (attrs.group, attrs.resource) not in _CHARGED_UPDATES or attrs.old is None
                or not resourcequotas.increases_usage(attrs.group, attrs.resource, attrs.new,
                                                      attrs.old, self._clock.now())):
            return  # e.g. a Service patched without a new port or type: nothing to charge
        if not self._may_have_quotas(attrs.namespace):
            return
        registry = self._quotas()
        charged: set[str] = set()
        for _ in range(_RETRIES):
            quotas = [q for q in (await registry.list(attrs.namespace)).items
                      if q["metadata"]["name"] not in charged]
            if not quotas:
                return
            result = await offload.run(resourcequotas.charge, quotas, attrs.group,
                                       attrs.resource, attrs.name, attrs.new, attrs.old,
                                       self._clock.now())
            if dry_run or not result.used:
                return
            by_name = {q["metadata"]["name"]: q for q in quotas}
            try:
                for name, used in result.used.items():
                    await registry.update(attrs.namespace, name,
                                          resourcequotas.with_used(by_name[name], used),
                                          status_only=True)
                    charged.add(name)
            except StatusError as e:
                if e.code in (404, 409):
                    continue  # charged (or deleted) meanwhile: read and check again
                raise
            return
        raise errors.conflict("resourcequotas", attrs.namespace,
                              "the quotas of the namespace kept changing while this write was "
                              "charged; please try again")
