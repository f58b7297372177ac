"""The controller manager: every control-plane controller, built over one API client.

As kube-controller-manager, it is a client of the API server like any other (DESIGN §1): the
controllers read through informers, one shared informer per resource for all of them
(:class:`~svcnet.client.informer.InformerFactory`), and write over HTTPS. The one thing it
is handed besides a client is the LoadBalancer address bookkeeping
(:class:`~.lb_ipam.AddressManager`), whose allocations are store-arbitrated by the API
server's registry so that no address is handed out twice, whichever server's controllers run.
Keeping the wiring here, apart from the API server, is what lets one process run the
controllers only while it holds a leadership lease.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from svcnet.client.informer import InformerFactory
from svcnet.client.rest import RESTClient
from svcnet.controllers.certificates import CertificateAuthority, CSRCleaner, CSRSigner
from svcnet.controllers.clusterroleaggregation import ClusterRoleAggregationController
from svcnet.controllers.crd import CustomResourceDefinitionController
from svcnet.controllers.cronjob import CronJobController
from svcnet.controllers.daemonset import DaemonSetController
from svcnet.controllers.deployment import DeploymentController
from svcnet.controllers.disruption import DisruptionController
from svcnet.controllers.endpoints import EndpointsController
from svcnet.controllers.endpointslice import EndpointSliceController
from svcnet.controllers.gc import GarbageCollector
from svcnet.controllers.job import JobController
from svcnet.controllers.lb_ipam import AddressManager, LoadBalancerIPController
from svcnet.controllers.localpath import LocalPathProvisioner
from svcnet.controllers.namespace import NamespaceController
from svcnet.controllers.nodes import DEFAULT_GRACE, NodeIPAMController, NodeLifecycleController
from svcnet.controllers.podautoscaler import HorizontalController
from svcnet.controllers.podautoscaler.horizontal import SYNC_PERIOD
from svcnet.controllers.podautoscaler.normalize import DOWNSCALE_STABILIZATION
from svcnet.controllers.replicaset import ReplicaSetController
from svcnet.controllers.resourcequota import (
    SYNC_PERIOD as QUOTA_SYNC_PERIOD,
    ResourceQuotaController,
)
from svcnet.controllers.rootcacert import RootCACertPublisher
from svcnet.controllers.scheduler import Scheduler
from svcnet.controllers.serviceaccounts import ServiceAccountsController
from svcnet.controllers.statefulset import StatefulSetController
from svcnet.controllers.volumebinder import PersistentVolumeBinder
from svcnet.util.clock import Clock, RealClock

log = logging.getLogger(__name__)

USER_AGENT = "svcnet-controller-manager/0.1.0"


class Runnable(Protocol):
    def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class ControllerConfig:
    cluster_cidr: str = "10.244.0.0/16"
    node_grace: timedelta = DEFAULT_GRACE
    #: The cluster CA bundle published as ``kube-root-ca.crt`` (none: not published).
    root_ca_pem: str = ""
    #: --horizontal-pod-autoscaler-sync-period and -downscale-stabilization.
    hpa_sync_period: float = SYNC_PERIOD
    hpa_downscale_stabilization: timedelta = DOWNSCALE_STABILIZATION
    #: --resource-quota-sync-period.
    quota_sync_period: float = QUOTA_SYNC_PERIOD
    #: The CA that signs approved CertificateSigningRequests of the built-in signers
    #: (--cluster-signing-cert-file/-key-file; none: requests are approved but not issued).
    signing_authority: CertificateAuthority | None = None


ENDPOINT_SYNCS = 5
"""Workers of the EndpointSlice and Endpoints controllers (upstream's defaults)."""


class ControllerManager:
    """Builds, starts and stops the controllers, in that order (stopped in reverse)."""

    def __init__(self, client: RESTClient, lb_addresses: AddressManager,
                 config: ControllerConfig | None = None, *, clock: Clock | None = None) -> None:
        config = config or ControllerConfig()
        clock = clock or RealClock()
        self.client = client
        #: One informer per resource for every controller (client-go's SharedInformerFactory):
        #: each Service or Pod change reaches this process once, not once per controller.
        self.informers = informers = InformerFactory(client, clock=clock)
        self.controllers: list[Runnable] = [
            LoadBalancerIPController.from_client(client, lb_addresses, clock=clock,
                                                 informers=informers),
            Scheduler.from_client(client, clock=clock, informers=informers),
            NodeIPAMController(client, config.cluster_cidr, clock=clock, informers=informers),
            NodeLifecycleController(client, grace=config.node_grace, clock=clock,
                                    informers=informers),
            # kube-controller-manager's --concurrent-service-endpoint-syncs and
            # --concurrent-endpoint-syncs: 5 Services synced at once by each.
            EndpointSliceController.from_client(client, clock=clock, informers=informers,
                                                workers=ENDPOINT_SYNCS),
            EndpointsController.from_client(client, clock=clock, informers=informers,
                                            workers=ENDPOINT_SYNCS),
            ReplicaSetController.from_client(client, clock=clock, informers=informers),
            DeploymentController.from_client(client, clock=clock, informers=informers),
            ReplicaSetController.for_replication_controllers(client, clock=clock,
                                                             informers=informers),
            DaemonSetController.from_client(client, clock=clock, informers=informers),
            StatefulSetController.from_client(client, clock=clock, informers=informers),
            JobController.from_client(client, clock=clock, informers=informers),
            CronJobController.from_client(client, clock=clock, informers=informers),
            DisruptionController.from_client(client, clock=clock, informers=informers),
            HorizontalController.from_client(
                client, clock=clock, informers=informers, sync_period=config.hpa_sync_period,
                downscale_stabilization=config.hpa_downscale_stabilization),
            GarbageCollector.from_client(client, clock=clock, informers=informers),
            ClusterRoleAggregationController.from_client(client, clock=clock,
                                                         informers=informers),
            *([RootCACertPublisher(client, config.root_ca_pem, clock=clock,
                                   informers=informers)]
              if config.root_ca_pem else []),
            ServiceAccountsController.from_client(client, clock=clock, informers=informers),
            *([CSRSigner(client, config.signing_authority, clock=clock, informers=informers)]
              if config.signing_authority is not None else []),
            CSRCleaner(client, clock=clock, informers=informers),
            NamespaceController.from_client(client, clock=clock, informers=informers),
            ResourceQuotaController.from_client(client, clock=clock, informers=informers,
                                                sync_period=config.quota_sync_period),
            PersistentVolumeBinder.from_client(client, clock=clock, informers=informers),
            LocalPathProvisioner.from_client(client, clock=clock, informers=informers),
            CustomResourceDefinitionController.from_client(client, clock=clock,
                                                           informers=informers),
        ]

    def start(self) -> None:
        for controller in self.controllers:
            controller.start()

    async def stop(self) -> None:
        for controller in reversed(self.controllers):
            try:
                await controller.stop()
            except Exception:
                log.exception("stopping %s failed", type(controller).__name__)
