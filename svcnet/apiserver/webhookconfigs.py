"""Each serving process's view of the webhook configurations: what the admission webhook
dispatcher reads on every write instead of the store.

Theory of operation, after ``k8s.io/apiserver/pkg/admission/configuration``
(``mutating_webhook_manager.go``, ``validating_webhook_manager.go``): upstream keeps the
ValidatingWebhookConfigurations and MutatingWebhookConfigurations in informers and hands the
dispatcher the configurations sorted by name. Here each serving process (a server, each of
its ``--workers``, each server on one etcd) follows the store itself, as the quota
admission's index does (:meth:`svcnet.apiserver.quota.QuotaAdmission.run`): per kind a list,
then a watch from the list's revision; ADDED and MODIFIED put an object in by name, DELETED
takes it out. Configurations written through any process reach every process's view by its
own watch.

:attr:`WebhookConfigurations.ready` is False until both kinds' lists are in and again while a
watch that ended (compaction, store trouble, a closed store) is being replaced by a new list,
so a view that may be stale is never used: the caller reads the registries instead. Once
ready, :meth:`~WebhookConfigurations.validating` and :meth:`~WebhookConfigurations.mutating`
answer without touching the store, and :attr:`~WebhookConfigurations.empty` (nothing of
either kind, the usual case) lets a write skip the dispatcher in one attribute read. The
objects handed out are the view's own: callers must not change them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from svcnet.registry.generic import Registry
from svcnet.storage.interface import EventType
from svcnet.util.clock import Clock

__all__ = ["WebhookConfigurations"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

#: Seconds between a watch ending and the next list.
RELIST_DELAY = 1.0


class _Index:
    """One kind's configurations by name, or None while not known."""

    def __init__(self, kind: str, registry: Callable[[], Registry]) -> None:
        self.kind = kind
        self.registry = registry
        self.by_name: dict[str, Obj] | None = None
        self._sorted: list[Obj] | None = None

    def reset(self, objs: list[Obj] | None) -> None:
        self.by_name = None if objs is None else {o["metadata"]["name"]: o for o in objs}
        self._sorted = None

    def apply(self, kind: EventType, obj: Obj) -> None:
        assert self.by_name is not None
        name = obj["metadata"]["name"]
        if kind == EventType.DELETED:
            self.by_name.pop(name, None)
        else:
            self.by_name[name] = obj
        self._sorted = None

    def sorted(self) -> list[Obj]:
        if self.by_name is None:
            return []
        if self._sorted is None:
            self._sorted = [self.by_name[n] for n in sorted(self.by_name)]
        return list(self._sorted)


class WebhookConfigurations:
    """Both kinds of webhook configuration, kept from the store by :meth:`run`."""

    def __init__(self, validating: Callable[[], Registry], mutating: Callable[[], Registry],
                 clock: Clock) -> None:
        # The registries are looked up late: the server builds them with the others.
        self._validating = _Index("ValidatingWebhookConfiguration", validating)
        self._mutating = _Index("MutatingWebhookConfiguration", mutating)
        self._clock = clock

    @property
    def ready(self) -> bool:
        """Whether both kinds are known (listed, and their watches still running)."""
        return self._validating.by_name is not None and self._mutating.by_name is not None

    @property
    def empty(self) -> bool:
        """Ready, and no configuration of either kind exists."""
        return (self._validating.by_name == {} and self._mutating.by_name == {})

    def validating(self) -> list[Obj]:
        """The ValidatingWebhookConfigurations by name ([] while not :attr:`ready`)."""
        return self._validating.sorted()

    def mutating(self) -> list[Obj]:
        """The MutatingWebhookConfigurations by name ([] while not :attr:`ready`)."""
        return self._mutating.sorted()

    async def run(self) -> None:
        """Follow both kinds until cancelled."""
        try:
            await asyncio.gather(self._follow(self._validating), self._follow(self._mutating))
        finally:
            self._validating.reset(None)
            self._mutating.reset(None)

    async def _follow(self, index: _Index) -> None:
        while True:
            try:
                registry = index.registry()
                page = await registry.list("")
                index.reset(page.items)
                async for kind, obj, _prev in registry.watch("", int(page.resource_version)):
                    index.apply(kind, obj)
            except asyncio.CancelledError:
                raise
            except Exception:  # the watch ended (compaction, store trouble): list again
                log.debug("%s view: watch ended; listing again", index.kind, exc_info=True)
            index.reset(None)
            await self._clock.sleep(RELIST_DELAY)
