"""ClusterRole aggregation: an aggregated role's rules are the union of the roles it selects.

Theory of operation
-------------------
pkg/controller/clusterroleaggregation/clusterroleaggregation_controller.go: a ClusterRole with
an ``aggregationRule`` owns its ``rules``. For each such role the controller gathers the
ClusterRoles matching any of its ``clusterRoleSelectors`` (itself excluded), in name order,
appends each of their rules not already present (semantic equality), and writes the result
when it differs. Any ClusterRole change re-queues every aggregated role, since a label or a
rule of any role may change what an aggregate holds (upstream does the same). This is how
``admin`` ⊇ ``edit`` ⊇ ``view`` come to hold the ``system:aggregate-to-*`` rules, and how a
user's own ClusterRole labelled ``rbac.authorization.k8s.io/aggregate-to-view: "true"`` extends
``view``. :func:`aggregate` is the pure part.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final

from svcnet.api.access import as_dict, as_list, as_str
from svcnet.api.errors import StatusError
from svcnet.api.labels import selector_from_label_selector
from svcnet.client.controller import Controller, RequeueError
from svcnet.client.informer import EventHandler, Informer, InformerFactory, object_key
from svcnet.client.rest import GVR, RESTClient
from svcnet.util.clock import Clock

log = logging.getLogger(__name__)

Obj = dict[str, Any]
COMPONENT: Final = "clusterrole-aggregation-controller"
CLUSTER_ROLES: Final = GVR("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole",
                           namespaced=False)


def aggregate(role: Mapping[str, Any], roles: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """The rules an aggregated ClusterRole should hold, given every ClusterRole. Pure."""
    name = as_dict(role.get("metadata")).get("name")
    selectors = [selector_from_label_selector(as_dict(s)) for s in
                 as_list(as_dict(role.get("aggregationRule")).get("clusterRoleSelectors"))]
    rules: list[Obj] = []
    for other in sorted(roles, key=lambda r: as_str(as_dict(r.get("metadata")).get("name"))):
        meta = as_dict(other.get("metadata"))
        if meta.get("name") == name:
            continue
        labels = {k: as_str(v) for k, v in as_dict(meta.get("labels")).items()}
        if not any(sel.matches(labels) for sel in selectors):
            continue
        for rule in as_list(other.get("rules")):
            if rule not in rules:
                rules.append(as_dict(rule))
    return rules


class ClusterRoleAggregationController:
    def __init__(self, client: RESTClient, roles: Informer, *,
                 clock: Clock | None = None) -> None:
        self._client = client
        self.roles = roles
        self.controller = Controller(COMPONENT, self.sync, informers=[roles], clock=clock)
        roles.add_handler(EventHandler(on_add=self._enqueue_all,
                                       on_update=lambda _o, n: self._enqueue_all(n),
                                       on_delete=self._enqueue_all))

    @classmethod
    def from_client(cls, client: RESTClient, *, clock: Clock | None = None,
                    informers: InformerFactory | None = None
                    ) -> ClusterRoleAggregationController:
        factory = InformerFactory.of(informers, client, clock=clock)
        return cls(client, factory.informer(CLUSTER_ROLES, name="clusterroles"), clock=clock)

    def start(self) -> None:
        self.roles.start()
        self.controller.start()

    async def stop(self) -> None:
        await self.controller.stop()
        await self.roles.stop()

    def _enqueue_all(self, _changed: Obj) -> None:
        for role in self.roles.list():
            if role.get("aggregationRule"):
                self.controller.queue.add(object_key(role))

    async def sync(self, key: str) -> None:
        role = self.roles.get(key)
        if role is None or not role.get("aggregationRule"):
            return
        rules = aggregate(role, self.roles.list())
        if rules == as_list(role.get("rules")):
            return
        updated = {**role, "rules": rules}
        try:
            await self._client.update(CLUSTER_ROLES, updated)
        except StatusError as e:
            if e.code == 404:
                return
            if e.code == 409:
                raise RequeueError("clusterrole changed meanwhile") from None
            raise
