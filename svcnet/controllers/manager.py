"""The controller manager: every control-plane controller, built over one API client.

As kube-controller-manager, it is a client of the API server like any other (DESIGN §1): the
controllers read through informers and write over HTTPS. The one thing it is handed besides a
client is the LoadBalancer address bookkeeping (:class:`~.lb_ipam.AddressManager`), whose
allocations are store-arbitrated by the API server's registry so that no address is handed out
twice, whichever server's controllers run. Keeping the wiring here, apart from the API server,
is what lets one process run the controllers only while it holds a leadership lease.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from svcnet.client.rest import RESTClient
from svcnet.controllers.clusterroleaggregation import ClusterRoleAggregationController
from svcnet.controllers.cronjob import CronJobController
from svcnet.controllers.daemonset import DaemonSetController
from svcnet.controllers.deployment import DeploymentController
from svcnet.controllers.endpoints import EndpointsController
from svcnet.controllers.endpointslice import EndpointSliceController
from svcnet.controllers.gc import GarbageCollector
from svcnet.controllers.job import JobController
from svcnet.controllers.lb_ipam import AddressManager, LoadBalancerIPController
from svcnet.controllers.namespace import NamespaceController
from svcnet.controllers.nodes import DEFAULT_GRACE, NodeIPAMController, NodeLifecycleController
from svcnet.controllers.replicaset import ReplicaSetController
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


class ControllerManager:
    """Builds, starts and stops the controllers, in that order (stopped in reverse)."""

    def __init__(self, client: RESTClient, lb_addresses: AddressManager,
                 config: ControllerConfig | None = None, *, clock: Clock | None = None) -> None:
        config = config or ControllerConfig()
        clock = clock or RealClock()
        self.client = client
        self.controllers: list[Runnable] = [
            LoadBalancerIPController.from_client(client, lb_addresses, clock=clock),
            Scheduler.from_client(client, clock=clock),
            NodeIPAMController(client, config.cluster_cidr, clock=clock),
            NodeLifecycleController(client, grace=config.node_grace, clock=clock),
            EndpointSliceController.from_client(client, clock=clock),
            EndpointsController.from_client(client, clock=clock),
            ReplicaSetController.from_client(client, clock=clock),
            DeploymentController.from_client(client, clock=clock),
            ReplicaSetController.for_replication_controllers(client, clock=clock),
            DaemonSetController.from_client(client, clock=clock),
            StatefulSetController.from_client(client, clock=clock),
            JobController.from_client(client, clock=clock),
            CronJobController.from_client(client, clock=clock),
            GarbageCollector.from_client(client, clock=clock),
            ClusterRoleAggregationController.from_client(client, clock=clock),
            *([RootCACertPublisher(client, config.root_ca_pem, clock=clock)]
              if config.root_ca_pem else []),
            ServiceAccountsController.from_client(client, clock=clock),
            NamespaceController.from_client(client, clock=clock),
            PersistentVolumeBinder.from_client(client, clock=clock),
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
