"""The ServiceAccounts controller: a ``default`` ServiceAccount in every active namespace.

Theory of operation, after kube-controller-manager's ``serviceaccount-controller``
(``pkg/controller/serviceaccount/serviceaccounts_controller.go``): the work key is a namespace
name. A namespace is queued when it is added or updated, and when one of the managed
ServiceAccounts in it is deleted, so a deleted ``default`` comes back. ``sync`` reads both
caches and, for a namespace that exists and is ``Active``, creates each managed ServiceAccount
the cache does not have: ``{"metadata": {"name": "default"}}``, nothing else. An
AlreadyExists answer (the cache was behind) is success, and so is NamespaceLifecycle's 403 for
a namespace that began terminating meanwhile. Like every controller it reads through informers
and writes over the API (:mod:`svcnet.client`), never the store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final, Protocol

from svcnet.api.access import mapping_of, name_of, namespace_of, str_of
from svcnet.api.errors import StatusError, is_namespace_terminating
from svcnet.client.controller import Controller
from svcnet.client.informer import EventHandler, Informer, InformerFactory, ListerWatcher
from svcnet.client.rest import GVR, NAMESPACES, SERVICEACCOUNTS
from svcnet.util.clock import Clock, RealClock

__all__ = ["COMPONENT", "DEFAULT_SERVICE_ACCOUNTS", "ServiceAccountsController"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
COMPONENT: Final = "serviceaccount-controller"
#: ``DefaultServiceAccountsControllerOptions``: the accounts every namespace gets.
DEFAULT_SERVICE_ACCOUNTS: Final = ("default",)


class AccountsClient(ListerWatcher, Protocol):
    """Reads and the one write the controller makes (RESTClient fits)."""

    async def create(self, gvr: GVR, obj: Obj, *, namespace: str | None = None,
                     dry_run: bool = False, field_manager: str = "") -> Obj: ...


class ServiceAccountsController:
    """Ensures the managed ServiceAccounts exist in every active namespace (module doc)."""

    def __init__(self, client: AccountsClient, *, names: Sequence[str] = DEFAULT_SERVICE_ACCOUNTS,
                 clock: Clock | None = None, namespaces: Informer | None = None,
                 accounts: Informer | None = None,
                 informers: InformerFactory | None = None) -> None:
        self._client = client
        self._clock: Clock = clock or RealClock()
        self.names = tuple(names)
        factory = InformerFactory.of(informers, client, clock=self._clock)
        self.namespaces = namespaces or factory.informer(NAMESPACES, name="namespaces")
        self.accounts = accounts or factory.informer(SERVICEACCOUNTS, name="serviceaccounts")
        self.controller = Controller(COMPONENT, self.sync,
                                     informers=[self.namespaces, self.accounts],
                                     clock=self._clock)
        self.namespaces.add_handler(EventHandler(
            on_add=self._namespace_changed, on_update=lambda _old, new: self._namespace_changed(
                new)))
        self.accounts.add_handler(EventHandler(on_delete=self._account_deleted))

    @classmethod
    def from_client(cls, client: AccountsClient, *, clock: Clock | None = None,
                    informers: InformerFactory | None = None) -> ServiceAccountsController:
        return cls(client, clock=clock, informers=informers)

    def start(self) -> None:
        self.namespaces.start()
        self.accounts.start()
        self.controller.start()

    async def stop(self) -> None:
        await self.controller.stop()
        await self.accounts.stop()
        await self.namespaces.stop()

    def _namespace_changed(self, ns: Obj) -> None:
        self.controller.queue.add(name_of(ns))

    def _account_deleted(self, sa: Obj) -> None:
        if name_of(sa) in self.names:
            self.controller.queue.add(namespace_of(sa))

    async def sync(self, namespace: str) -> None:
        """syncNamespace: create the managed accounts the namespace lacks."""
        ns = self.namespaces.get(namespace)
        if ns is None or str_of(mapping_of(ns, "status"), "phase") != "Active":
            return
        for name in self.names:
            if self.accounts.get(f"{namespace}/{name}") is not None:
                continue
            try:
                await self._client.create(SERVICEACCOUNTS, {
                    "apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": name, "namespace": namespace}}, namespace=namespace)
            except StatusError as e:
                if e.code == 409 and e.reason == "AlreadyExists":
                    continue
                if is_namespace_terminating(e):
                    return
                raise
            log.debug("created ServiceAccount %s/%s", namespace, name)
