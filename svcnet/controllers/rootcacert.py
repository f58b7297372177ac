"""The root CA publisher: a ``kube-root-ca.crt`` ConfigMap with the cluster's CA in every namespace.

Theory of operation, after kube-controller-manager's ``root-ca-certificate-publisher-controller``
(pkg/controller/certificates/rootcacertpublisher/publisher.go): the work key is a namespace
name, queued when a namespace is added or updated and when its ``kube-root-ca.crt`` changes or
is deleted. ``sync`` creates the ConfigMap (``ca.crt``: the CA bundle, and upstream's
description annotation) in a namespace that exists and is not terminating, or puts the data and
annotation back if someone changed them. Pods read it through their ``kube-api-access``
volume to verify the API server (``kubernetes.default.svc``).
"""

from __future__ import annotations

from typing import Any, Final

from svcnet.api.access import mapping_of, name_of, namespace_of, str_of
from svcnet.api.errors import StatusError, is_namespace_terminating
from svcnet.api.podaccount import ROOT_CA_CONFIG_MAP
from svcnet.client.controller import Controller, RequeueError
from svcnet.client.informer import EventHandler, InformerFactory
from svcnet.client.rest import CONFIGMAPS, NAMESPACES, RESTClient
from svcnet.util.clock import Clock, RealClock

__all__ = ["DESCRIPTION", "RootCACertPublisher"]

Obj = dict[str, Any]
COMPONENT: Final = "root-ca-certificate-publisher"
DESCRIPTION_KEY: Final = "kubernetes.io/description"
DESCRIPTION: Final = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters.")


class RootCACertPublisher:
    def __init__(self, client: RESTClient, ca_pem: str, *, clock: Clock | None = None,
                 informers: InformerFactory | None = None) -> None:
        self._client = client
        self._ca = ca_pem
        clock = clock or RealClock()
        factory = InformerFactory.of(informers, client, clock=clock)
        self.namespaces = factory.informer(NAMESPACES, name="namespaces")
        self.config_maps = factory.informer(
            CONFIGMAPS, name="kube-root-ca.crt",
            field_selector=f"metadata.name={ROOT_CA_CONFIG_MAP}")
        self.controller = Controller(COMPONENT, self.sync,
                                     informers=[self.namespaces, self.config_maps], clock=clock)
        self.namespaces.add_handler(EventHandler(
            on_add=lambda ns: self.controller.queue.add(name_of(ns)),
            on_update=lambda _old, ns: self.controller.queue.add(name_of(ns))))
        self.config_maps.add_handler(EventHandler(
            on_update=lambda _old, cm: self.controller.queue.add(namespace_of(cm)),
            on_delete=lambda cm: self.controller.queue.add(namespace_of(cm))))

    def start(self) -> None:
        self.namespaces.start()
        self.config_maps.start()
        self.controller.start()

    async def stop(self) -> None:
        await self.controller.stop()
        await self.config_maps.stop()
        await self.namespaces.stop()

    def _wanted(self, namespace: str, current: Obj | None) -> Obj:
        meta: Obj = dict(mapping_of(current or {}, "metadata")) or {
            "name": ROOT_CA_CONFIG_MAP, "namespace": namespace}
        meta["annotations"] = {**mapping_of(meta, "annotations"), DESCRIPTION_KEY: DESCRIPTION}
        return {**(current or {"apiVersion": "v1", "kind": "ConfigMap"}), "metadata": meta,
                "data": {"ca.crt": self._ca}}

    async def sync(self, namespace: str) -> None:
        ns = self.namespaces.get(namespace)
        if ns is None or str_of(mapping_of(ns, "status"), "phase") == "Terminating" or \
                mapping_of(ns, "metadata").get("deletionTimestamp"):
            return
        current = self.config_maps.get(f"{namespace}/{ROOT_CA_CONFIG_MAP}")
        wanted = self._wanted(namespace, current)
        if current is not None and current.get("data") == wanted["data"] and mapping_of(
                mapping_of(current, "metadata"), "annotations").get(DESCRIPTION_KEY) == \
                DESCRIPTION:
            return
        try:
            if current is None:
                await self._client.create(CONFIGMAPS, wanted, namespace=namespace)
            else:
                await self._client.update(CONFIGMAPS, wanted)
        except StatusError as e:
            if is_namespace_terminating(e) or e.code == 404:
                return
            if e.code == 409:
                raise RequeueError("kube-root-ca.crt changed meanwhile") from None
            raise
