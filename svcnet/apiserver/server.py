"""`svcnet server`: the API server process, from configuration to a served HTTPS socket.

Start-up order matters and is fixed:

1. open the store; adopt the cluster's CA, ServiceAccount key and tokens from it, or publish
   this server's (generated, or reused from the data directory) when it is the first
   (identity.py); make (or reuse) this server's own serving certificate;
2. build the allocators and one registry per resource;
3. repair allocations against the stored Services (a crash may have leaked some: those this
   data directory's server made in an earlier start are freed at once), then seed what
   every cluster has: the four system namespaces and ``default/kubernetes`` (10.96.0.1:443)
   with endpoints pointing at every live server (endpointreconciler.py, once this one
   listens), the default RBAC policy and, once per start, the
   RuntimeClasses of svcnet's runtimes (``process`` and ``runc``), the system
   PriorityClasses (``system-node-critical``, ``system-cluster-critical``) and the default
   StorageClass (``standard``) that are missing;
4. listen, and only then write ``DATA_DIR/kubeconfig``: its presence means "ready to serve";
5. run the controllers while this server leads (client/leaderelection.py, on the Lease
   ``kube-system/kube-controller-manager``; a lone server takes the free lease at once), and
   on every server the loops kube-apiserver runs in each instance (periodic allocation
   repair, the ServiceCIDR controller, the bootstrap loop; their writes are
   store-arbitrated or idempotent), until SIGTERM/SIGINT; then fail ``/readyz`` (its
   ``shutdown`` check), stop the controllers and release the lease, stop serving, close the
   store.

A server told to listen on a wildcard (``0.0.0.0``, ``::``) answers on every address of the
host: its certificate names all of them, its kubeconfig points at the advertise address (given,
else the address of the default route), and it says in its log that it serves beyond loopback.
Connections are bounded as connections.py explains; health checks as health.py does.

Metrics labels come from bounded sets only (:class:`Metrics`): a label value taken from the URL
or the method of an unauthenticated request would let anyone grow the server's memory, and
``/metrics`` with it, without bound.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import socket
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from svcnet.allocators.allocator import Holder
from svcnet.allocators.ranges import ServiceCIDR
from svcnet.api import (
    admissionregistration,
    autoscaling,
    certificates,
    crds,
    ingresses,
    kubectl_descriptors,
    networkpolicies,
    priorityclasses,
    protobuf,
    rbac,
    runtimeclasses,
    servicecidrs,
    storageclasses,
)
from svcnet.api.errors import StatusError
from svcnet.api.metricsstorage import MetricsStorage
from svcnet.api.names import dual_stack_cidrs
from svcnet.api.rbac import Attributes
from svcnet.apiserver import admission, discovery, health, identity, openapi, resources
from svcnet.apiserver.auth import ADMIN_GROUP, TokenFile, User, current_user, fixed_allows
from svcnet.apiserver.authn import Authenticator
from svcnet.apiserver.bootstrap_policy import CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES
from svcnet.apiserver.certs import (
    ClusterCA,
    TLSFiles,
    ensure_kubelet_client,
    ensure_private_dir,
    ensure_tls,
    ensure_token,
    interface_addresses,
)
from svcnet.apiserver.clientcerts import X509Authenticator, peer_certificate, serving_context
from svcnet.apiserver.common import Context, Served, add_deprecation_warning, status_response
from svcnet.apiserver.connections import (
    MAX_CONNECTIONS,
    READ_HEADER_TIMEOUT,
    ConnectionGate,
    GatedSite,
)
from svcnet.apiserver.customresources import CustomResources
from svcnet.apiserver.endpointreconciler import EndpointReconciler, parse_endpoint
from svcnet.apiserver.handlers import Handlers
from svcnet.apiserver.join import JoinService, ensure_join_token
from svcnet.apiserver.loopback import Loopback
from svcnet.apiserver.metricsapi import DEFAULT_RESOLUTION, MetricsScraper
from svcnet.apiserver.nodeclient import NodeClient
from svcnet.apiserver.quota import QuotaAdmission
from svcnet.apiserver.rbac import RBAC, effective_groups
from svcnet.apiserver.satokens import TokenIssuer
from svcnet.apiserver.webhookadmission import WebhookAdmission, without_webhooks
from svcnet.apiserver.webhookconfigs import WebhookConfigurations
from svcnet.apiserver.workers import (
    Workers,
    metrics_text,
    say_serving,
    share_metrics,
    unshare_metrics,
    worker_holder_server,
)
from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.client.leaderelection import LeaderElector, LeaseLock
from svcnet.client.rest import RESTClient
from svcnet.controllers.manager import USER_AGENT, ControllerConfig, ControllerManager
from svcnet.registry import versions
from svcnet.registry.admissionregistration import (
    MutatingWebhookConfigurationStrategy,
    ValidatingWebhookConfigurationStrategy,
)
from svcnet.registry.autoscaling import HorizontalPodAutoscalerStrategy
from svcnet.registry.batch import CronJobStrategy, JobStrategy
from svcnet.registry.certificates import (
    CertificateSigningRequestRegistry,
    CertificateSigningRequestStrategy,
)
from svcnet.registry.configs import ConfigMapStrategy, SecretStrategy, ServiceAccountStrategy
from svcnet.registry.customresources import (
    CustomResourceDefinitionRegistry,
    CustomResourceDefinitionStrategy,
)
from svcnet.registry.generic import Registry, Strategy
from svcnet.registry.lb_ipam import LoadBalancerIPAM
from svcnet.registry.namespaces import NamespaceRegistry
from svcnet.registry.networking import (
    IngressClassStrategy,
    IngressStrategy,
    IPAddressStrategy,
    NetworkPolicyStrategy,
    ServiceCIDRStrategy,
)
from svcnet.registry.policy import PodDisruptionBudgetStrategy
from svcnet.registry.quotas import LimitRangeStrategy, ResourceQuotaStrategy
from svcnet.registry.rbac import (
    ClusterRoleBindingStrategy,
    ClusterRoleStrategy,
    RoleBindingStrategy,
    RoleStrategy,
)
from svcnet.registry.repair import repair
from svcnet.registry.scheduling import PriorityClassRegistry, PriorityClassStrategy
from svcnet.registry.service_alloc import ServiceAllocators
from svcnet.registry.servicecidrs import ServiceCIDRController, ensure_default_service_cidr
from svcnet.registry.services import ServiceStrategy
from svcnet.registry.strategies import (
    EndpointSliceStrategy,
    EndpointsStrategy,
    EventStrategy,
    LeaseStrategy,
    NamespaceStrategy,
    NodeStrategy,
    PodStrategy,
    RuntimeClassStrategy,
)
from svcnet.registry.volumes import (
    PersistentVolumeClaimStrategy,
    PersistentVolumeStrategy,
    StorageClassStrategy,
)
from svcnet.registry.workloads import (
    ControllerRevisionStrategy,
    DaemonSetStrategy,
    DeploymentStrategy,
    ReplicaSetStrategy,
    ReplicationControllerStrategy,
    StatefulSetStrategy,
)
from svcnet.storage import EtcdTLS, compactor, open_store
from svcnet.storage.interface import Store
from svcnet.util.clock import Clock, RealClock
from svcnet.util.gcpause import PauseWatch

log = logging.getLogger(__name__)

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
CONTROLLER_LEASE = "kube-controller-manager"
"""The kube-system Lease whose holder runs the controllers (kube-controller-manager's)."""


@dataclass
class ServerConfig:
    data_dir: Path
    listen: str = "127.0.0.1:6443"
    store_url: str = ""
    service_cidrs: Sequence[str] = ("10.96.0.0/12",)
    node_port_range: str = "30000-32767"
    lb_pools: Sequence[str] = ()
    advertise_address: str = ""
    extra_sans: Sequence[str] = ()
    cluster_cidr: str = "10.244.0.0/16"
    node_grace: timedelta = timedelta(seconds=40)
    #: The horizontal pod autoscaler's period and downscale window (controllers only).
    hpa_sync_period: float = 15.0
    hpa_downscale_stabilization: timedelta = timedelta(minutes=5)
    #: The resource quota controller's full recalculation period (controllers only).
    quota_sync_period: float = 300.0
    repair_interval: float = 180.0
    #: TLS towards an etcd store (``--etcd-cafile``, ``--etcd-certfile``, ``--etcd-keyfile``).
    etcd_tls: EtcdTLS | None = None
    #: Seconds between compactions of the store's history (0: never; storage/compactor.py).
    compaction_interval: float = compactor.DEFAULT_INTERVAL
    leak_grace: timedelta = timedelta(seconds=60)
    leader_elect: bool = True
    metric_resolution: float = DEFAULT_RESOLUTION
    """Seconds between scrapes of the nodes' resource metrics (metricsapi.py)."""
    read_header_timeout: float = READ_HEADER_TIMEOUT
    max_connections: int = MAX_CONNECTIONS
    workers: int = 1
    """Processes serving the API: this one and ``workers - 1`` API workers (workers.py)."""
    worker_index: int = 0
    """0 for a server; k for its API worker k, which serves the inherited ``listen_fds``."""
    listen_fds: Sequence[int] = ()
    loopback_fd: int | None = None
    """An API worker's inherited loopback socket (loopback.py)."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("--workers must be at least 1")
        if self.etcd_tls is not None and not self.resolved_store_url().startswith("etcd:"):
            raise ValueError("--etcd-cafile, --etcd-certfile and --etcd-keyfile are for an "
                             "etcd:// --store")
        if self.workers > 1 and self.resolved_store_url().startswith("memory:"):
            raise ValueError("--workers needs a store that processes share (sqlite or etcd), "
                             "not memory://")
        # Both take an IPv4,IPv6 pair for dual-stack, primary first (ValueError otherwise).
        self.service_cidrs = tuple(dual_stack_cidrs(self.service_cidrs, "--service-cidr"))
        self.cluster_cidr = ",".join(dual_stack_cidrs([self.cluster_cidr], "--cluster-cidr"))

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)

    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{(self.data_dir / 'state.db').resolve()}"


WILDCARDS = ("0.0.0.0", "::")

METRIC_VERBS = frozenset({"apply", "connect", "create", "delete", "deletecollection", "get",
                          "list", "patch", "post", "proxy", "put", "update", "watch",
                          "watchlist"})
"""Verb label values (kube-apiserver's valid request verbs, lower case); the rest is "other"."""


@dataclass
class Metrics:
    """Request metrics whose label values come from bounded sets: the verbs above and the
    served ``resources`` (else "other"), as kube-apiserver's metrics clean theirs."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    resources: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.requests = Counter("apiserver_request", "Requests by verb, resource and code.",
                                ["verb", "resource", "code"], registry=self.registry)
        self.latency = Histogram(
            "apiserver_request_duration_seconds", "Request latency by verb and resource.",
            ["verb", "resource"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60))
        self.gc_pauses = Histogram(
            "svcnet_gc_pause_seconds", "Cyclic garbage collections of the server's processes "
            "(each stops meanwhile), by generation.", ["generation"],
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        #: Feeds gc_pauses while the server runs (util/gcpause.py).
        self.gc_watch = PauseWatch(
            lambda generation, seconds: self.gc_pauses.labels(str(generation)).observe(seconds))

    def observe(self, verb: str, resource: str, code: int, seconds: float) -> None:
        self.gc_watch.drain()
        verb = verb if verb in METRIC_VERBS else "other"
        resource = resource if resource in self.resources or not resource else "other"
        self.requests.labels(verb, resource, str(code)).inc()
        if verb != "watch":
            self.latency.labels(verb, resource).observe(seconds)


def kubeconfig(server_url: str, ca_pem: bytes, token: str, *, name: str = "svcnet",
               user: str = "admin") -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": {
            "server": server_url,
            "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user,
                                                "namespace": "default"}}],
        "preferences": {},
    }


def write_private_yaml(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    os.replace(tmp, path)


def _requestor() -> certificates.Requestor | None:
    """The writing user as a CSR's requestor (user.Info: its groups as authorizers see them,
    ``system:authenticated`` included); None for the server's own writes."""
    user = current_user()
    if user is None:
        return None
    return certificates.Requestor(user.name, user.uid, effective_groups(user))


class APIServer:
    def __init__(self, config: ServerConfig, *, clock: Clock | None = None,
                 store: Store | None = None) -> None:
        self.config = config
        self.clock = clock or RealClock()
        self._store = store
        self.metrics = Metrics()
        self._metrics_dir: Path | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._quota_admission: QuotaAdmission | None = None
        self.url = ""
        self.registries: dict[str, Registry] = {}
        #: This process's view of the webhook configurations (webhookconfigs.py), for the
        #: admission webhook dispatcher; kept from the store by a task of _start_loops.
        self.webhook_configs = WebhookConfigurations(
            lambda: self.registries[
                f"validatingwebhookconfigurations.{admissionregistration.GROUP}"],
            lambda: self.registries[
                f"mutatingwebhookconfigurations.{admissionregistration.GROUP}"],
            self.clock)
        #: The admission webhooks every registry calls (webhookadmission.py).
        self.webhook_admission = WebhookAdmission(
            self.webhook_configs, lambda key: self.registries[key],
            lambda: self.custom.resources)
        self._controller_client: RESTClient | None = None
        self.loopback = Loopback()
        self.controller_manager: ControllerManager | None = None
        self._lock: IO[bytes] | None = None
        self.connections = ConnectionGate(config.max_connections)
        self._stopping = False
        self.node_client: NodeClient | None = None
        self.elector: LeaderElector | None = None
        self.endpoint_reconciler: EndpointReconciler | None = None
        self.workers: Workers | None = None
        #: The resource metrics (metrics.k8s.io), fed by this process's scraper (metricsapi.py).
        self.resource_metrics = MetricsStorage(config.metric_resolution)

    @property
    def is_worker(self) -> bool:
        """An API worker of another server process (workers.py)."""
        return self.config.worker_index > 0

    @property
    def store(self) -> Store:
        assert self._store is not None
        return self._store

    @property
    def kubeconfig_path(self) -> Path:
        return self.config.data_dir / "kubeconfig"

    async def start(self) -> None:
        cfg = self.config
        ensure_private_dir(cfg.data_dir)
        # One live server per data directory: its certificates, tokens and allocation
        # identity are this process's (and its API workers') until it stops.
        if not self.is_worker:
            self._lock = _lock_data_dir(cfg.data_dir)
            if cfg.workers > 1:  # one /metrics for all the processes (workers.py)
                self._metrics_dir = share_metrics(cfg.data_dir)
                self.metrics = Metrics()
        if self._store is None:
            self._store = open_store(cfg.resolved_store_url(), etcd_tls=cfg.etcd_tls)
        # The cluster's CA, keys and admin token: this server's if it is the first on the
        # store, else adopted from the store (identity.py).
        await identity.join_cluster(self.store, cfg.data_dir)
        host, port = cfg.host_port
        wildcard = host in WILDCARDS
        advertise = cfg.advertise_address or (_primary_ip() if wildcard else host)
        # The `kubernetes` Service's ClusterIP of each family (_seed gives it the first).
        sans = [host, advertise, *(ServiceCIDR.parse(c).item_at(0) for c in cfg.service_cidrs),
                *cfg.extra_sans]
        if wildcard:
            sans = [a for a in sans if a not in WILDCARDS]
            sans += interface_addresses(ipv6=host == "::")
        # A worker serves with its server's certificate and tokens, which that server keeps.
        tls = TLSFiles.of(cfg.data_dir) if self.is_worker else ensure_tls(cfg.data_dir, sans)
        self._ca_pem = tls.ca_pem().decode()
        tokens_path = cfg.data_dir / "tokens.csv"
        admin_token = ensure_token(cfg.data_dir / "admin.token")
        tokens = TokenFile(tokens_path)
        if not self.is_worker:
            if not tokens_path.exists() or admin_token not in tokens_path.read_text():
                tokens.add(admin_token, User("admin", "admin", (ADMIN_GROUP,)))
            await identity.sync_tokens(self.store, tokens_path)

        # Who makes allocations: this data directory's server (a random identity kept there)
        # and this start of it, so that repair can free the leaks of a previous, dead start.
        # (Safe while one process uses the directory: the lock taken first makes sure; its API
        # workers hold in their own names.)
        self.holder = Holder(worker_holder_server(ensure_token(cfg.data_dir / "server-id"),
                                                  cfg.worker_index), uuid.uuid4().hex)
        self.allocators = ServiceAllocators.build(self.store, cfg.service_cidrs,
                                                  cfg.node_port_range, clock=self.clock,
                                                  holder=self.holder)
        self.lb = LoadBalancerIPAM(self.store, cfg.lb_pools, clock=self.clock,
                                   holder=self.holder)
        served = self._serve_resources()
        self.rbac = RBAC(self.registries, fixed_allows)
        self.metrics.resources = frozenset(s.resource for s in served)
        self.service_cidrs = ServiceCIDRController(
            self.registries[f"servicecidrs.{servicecidrs.GROUP}"],
            self.registries[f"ipaddresses.{servicecidrs.GROUP}"], self.allocators, self.clock)
        # The stored ServiceCIDRs, if any, before repair judges what is in range.
        if (await self.service_cidrs.sync_allocators()) == []:
            self.allocators.sync_service_cidrs(
                [servicecidrs.default_service_cidr(cfg.service_cidrs)])
        await repair(self.store, self.allocators, self.lb, clock=self.clock,
                     leak_grace=cfg.leak_grace, holder=self.holder)
        if not self.is_worker:
            await self._seed(port)
            with without_webhooks():  # the server's own objects (webhookadmission.py)
                # Once per start, not in the bootstrap loop: a class a user deletes stays
                # deleted until the next start (api/runtimeclasses.py).
                await self._create_missing(f"runtimeclasses.{runtimeclasses.GROUP}",
                                           runtimeclasses.DEFAULT_RUNTIME_CLASSES)
                # As upstream's scheduling/bootstrap-system-priority-classes start hook.
                await self._create_missing(f"priorityclasses.{priorityclasses.GROUP}",
                                           priorityclasses.SYSTEM_PRIORITY_CLASSES)
                await self._seed_default_storage_class()

        issuer = TokenIssuer(cfg.data_dir / "pki" / "sa.key")
        with without_webhooks():
            join_token = "" if self.is_worker else await ensure_join_token(
                self.registries["secrets"], cfg.data_dir / "join-token", self._ca_pem)
        self.join = JoinService(self.registries["secrets"], cfg.data_dir, self._ca_pem,
                                self.clock.now)
        authn = Authenticator(tokens, issuer, self.registries.get,
                              self.clock.now, extra=self.join.lookup,
                              certificates=X509Authenticator(tls.ca_pem(), self.clock.now))
        # Protobuf speaks with the installed kubectl's descriptors (cached in the data dir).
        protobuf.install(kubectl_descriptors.codec_from_kubectl(cfg.data_dir / "protobuf"))
        # Node agents are reached as kube-apiserver reaches kubelets (nodeclient.py).
        self.node_client = NodeClient(tls.ca_cert, *ensure_kubelet_client(cfg.data_dir))
        ctx = Context(served={(s.group, s.version, s.resource): s for s in served},
                      authn=authn, clock=self.clock, namespaces=self.registries["namespaces"],
                      rbac=self.rbac, on_request=self.metrics.observe,
                      node_client=self.node_client, metrics=self.resource_metrics)
        # The custom resources of the stored CRDs, then of every change to them (each process
        # follows the store itself: customresources.py).
        self.custom = CustomResources(self.store,
                                      self.registries[f"customresourcedefinitions.{crds.GROUP}"],
                                      ctx.served, clock=self.clock, admit=admission.admit,
                                      charge=self._quota_admission.charge
                                      if self._quota_admission is not None else None,
                                      webhooks=self.webhook_admission)
        await self.custom.load()
        app = self._app(Handlers(ctx))
        # Open watches (informers of pods that outlive us) must not hold up a shutdown.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                                     shutdown_timeout=2.0)
        await self._runner.setup()
        self.metrics.gc_watch.start()
        # Clients may present a certificate of the cluster CA (clientcerts.py).
        ssl_ctx = serving_context(tls.cert, tls.key, tls.ca_cert)
        site = GatedSite(self._runner, host, port, ssl_context=ssl_ctx,
                         gate=self.connections, header_timeout=cfg.read_header_timeout,
                         sockets=[socket.socket(fileno=fd) for fd in cfg.listen_fds],
                         shared=cfg.workers > 1)
        await site.start()
        if port == 0:
            port = int(self._runner.addresses[0][1])  # the port the kernel chose
        if self.is_worker:
            await self.loopback.serve(self._runner, inherited=cfg.loopback_fd)
            self._start_loops()
            log.info("API worker %d serving", cfg.worker_index)
            return
        await self.loopback.serve(self._runner, shared=cfg.workers > 1)
        url_host = advertise if wildcard else host
        url_host = f"[{url_host}]" if ":" in url_host else url_host
        self.url = f"https://{url_host}:{port}"
        # default/kubernetes lists every live server (endpointreconciler.py); this one's
        # address is its advertise address (never a wildcard: resolved above; a loopback
        # server keeps no lease, since pods could not reach it).
        self.endpoint_reconciler = EndpointReconciler(
            self.registries, self.holder.server,
            parse_endpoint(f"[{advertise}]:{port}"), self.clock)
        if self.endpoint_reconciler.endpoint is None:
            log.info("listening on loopback only: default/kubernetes gets no endpoint of "
                     "this server")
        await self._reconcile_endpoints()
        if cfg.workers > 1:
            listening = site.listening_fds()
            assert self.loopback.sock is not None
            loopback = self.loopback.sock.fileno()
            self.workers = Workers(lambda k: worker_argv(cfg, k, listening, loopback),
                                   cfg.workers, [*listening, loopback])
            await self.workers.start()
        write_private_yaml(self.kubeconfig_path, kubeconfig(self.url, tls.ca_pem(),
                                                            admin_token))
        print(f"svcnet join {self.url} --token {join_token}", flush=True)
        await self._start_leading()
        self._start_loops()
        if cfg.compaction_interval > 0:  # the primary only: one per server is enough
            self._tasks.append(asyncio.create_task(compactor.Compactor(
                self.store, cfg.compaction_interval, self.clock).run()))
        self._tasks.append(asyncio.create_task(self._bootstrap_loop(port)))
        if not _is_loopback(host):
            log.warning("serving beyond loopback: listening on %s port %d (%s); the kubeconfig "
                        "points at %s", host, port,
                        "every address of this host" if wildcard else "not only 127.0.0.1",
                        self.url)
        log.info("serving on %s", self.url)

    def _start_loops(self) -> None:
        """What every serving process runs beside the API: the OpenAPI documents built now,
        periodic allocation repair, the ServiceCIDR controller, the quota admission's index of
        namespaces with quotas (quota.py), the view of the webhook configurations
        (webhookconfigs.py), and the resource metrics' scraper (metricsapi.py:
        each process scrapes for itself, as each replica of an HA metrics-server does)."""
        self._tasks.append(asyncio.create_task(asyncio.to_thread(openapi.warm,
                                                                 self.config.data_dir)))
        self._tasks.append(asyncio.create_task(self._repair_loop()))
        self._tasks.append(asyncio.create_task(self.service_cidrs.run()))
        assert self._quota_admission is not None
        self._tasks.append(asyncio.create_task(self._quota_admission.run()))
        self._tasks.append(asyncio.create_task(self.webhook_configs.run()))
        self._tasks.append(asyncio.create_task(self.custom.run()))
        assert self.node_client is not None
        nodes = self.registries["nodes"]

        async def list_nodes() -> list[dict[str, Any]]:
            return (await nodes.list("")).items

        self._tasks.append(asyncio.create_task(MetricsScraper(
            self.resource_metrics, list_nodes, self.node_client, self.clock).run()))

    async def stop(self) -> None:
        self._stopping = True  # /readyz fails from now on
        if self.workers is not None:
            await self.workers.stop()
        if self._metrics_dir is not None:
            unshare_metrics(self._metrics_dir)
            self._metrics_dir = None
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self.controller_manager is not None:
            await self.controller_manager.stop()
        if self.endpoint_reconciler is not None:
            # Drop out of default/kubernetes now rather than when the lease expires.
            with contextlib.suppress(Exception), without_webhooks():
                async with asyncio.timeout(3):
                    await self.endpoint_reconciler.remove_lease()
                    await self.endpoint_reconciler.reconcile()
        if self._controller_client is not None:
            await self._controller_client.close()
        await self.webhook_admission.close()
        await self.loopback.close()
        self.metrics.gc_watch.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.node_client is not None:
            await self.node_client.close()
        if self._store is not None:
            await self._store.close()
        if self._lock is not None:
            self._lock.close()  # releases the lock
            self._lock = None

    # -- wiring -----------------------------------------------------------------------------

    def _serve_resources(self) -> list[Served]:
        quota = self._quota_admission = QuotaAdmission(
            lambda: self.registries["resourcequotas"], self.clock)
        strategies: dict[tuple[str, str], Strategy] = {
            ("", "services"): ServiceStrategy(self.allocators, self.lb),
            ("", "pods"): PodStrategy(self._service_account, self._runtime_class,
                                      self._priority_classes, self._limit_ranges),
            ("", "nodes"): NodeStrategy(),
            ("", "namespaces"): NamespaceStrategy(),
            ("", "endpoints"): EndpointsStrategy(),
            ("", "events"): EventStrategy(),
            ("", "configmaps"): ConfigMapStrategy(),
            ("", "secrets"): SecretStrategy(),
            ("", "serviceaccounts"): ServiceAccountStrategy(),
            ("discovery.k8s.io", "endpointslices"): EndpointSliceStrategy(),
            ("coordination.k8s.io", "leases"): LeaseStrategy(),
            ("apps", "deployments"): DeploymentStrategy(),
            ("apps", "replicasets"): ReplicaSetStrategy(),
            ("apps", "controllerrevisions"): ControllerRevisionStrategy(),
            ("apps", "daemonsets"): DaemonSetStrategy(),
            ("apps", "statefulsets"): StatefulSetStrategy(),
            ("", "replicationcontrollers"): ReplicationControllerStrategy(),
            ("batch", "jobs"): JobStrategy(),
            ("batch", "cronjobs"): CronJobStrategy(),
            (runtimeclasses.GROUP, "runtimeclasses"): RuntimeClassStrategy(),
            (priorityclasses.GROUP, "priorityclasses"): PriorityClassStrategy(
                self._priority_classes),
            (ingresses.GROUP, "ingresses"): IngressStrategy(self._ingress_classes),
            (ingresses.GROUP, "ingressclasses"): IngressClassStrategy(),
            (networkpolicies.GROUP, "networkpolicies"): NetworkPolicyStrategy(),
            (servicecidrs.GROUP, "servicecidrs"): ServiceCIDRStrategy(),
            (servicecidrs.GROUP, "ipaddresses"): IPAddressStrategy(),
            ("policy", "poddisruptionbudgets"): PodDisruptionBudgetStrategy(),
            (autoscaling.GROUP, "horizontalpodautoscalers"): HorizontalPodAutoscalerStrategy(),
            ("", "persistentvolumes"): PersistentVolumeStrategy(),
            ("", "persistentvolumeclaims"): PersistentVolumeClaimStrategy(
                self._storage_classes, self._limit_ranges),
            ("", "limitranges"): LimitRangeStrategy(),
            ("", "resourcequotas"): ResourceQuotaStrategy(),
            (storageclasses.GROUP, "storageclasses"): StorageClassStrategy(),
            (certificates.GROUP, "certificatesigningrequests"):
                CertificateSigningRequestStrategy(_requestor, self._authorize_signer,
                                                  self.clock),
            (admissionregistration.GROUP, "validatingwebhookconfigurations"):
                ValidatingWebhookConfigurationStrategy(),
            (admissionregistration.GROUP, "mutatingwebhookconfigurations"):
                MutatingWebhookConfigurationStrategy(),
            (crds.GROUP, "customresourcedefinitions"): CustomResourceDefinitionStrategy(
                {(r.group, r.resource) for r in resources.RESOURCES}),
            (rbac.GROUP, "roles"): RoleStrategy(self._check_escalation),
            (rbac.GROUP, "clusterroles"): ClusterRoleStrategy(self._check_escalation),
            (rbac.GROUP, "rolebindings"): RoleBindingStrategy(self._check_escalation),
            (rbac.GROUP, "clusterrolebindings"): ClusterRoleBindingStrategy(
                self._check_escalation),
        }
        served = []
        for res in resources.RESOURCES:
            strategy = strategies.get((res.group, res.resource))
            if strategy is None:
                continue
            key = res.resource if not res.group else f"{res.resource}.{res.group}"
            converter = versions.CONVERTERS.get((res.api_version, res.kind))
            registry: Registry
            admit, webhooks = admission.admit, self.webhook_admission
            if converter is not None:
                # Another version of a kind stored at the version listed before it.
                registry = versions.VersionedRegistry(self.registries[key], converter)
            else:
                registry = (
                    NamespaceRegistry(self.store, clock=self.clock, admit=admit,
                                      webhooks=webhooks)
                    if isinstance(strategy, NamespaceStrategy) else
                    PriorityClassRegistry(self.store, strategy, clock=self.clock, admit=admit,
                                          webhooks=webhooks)
                    if isinstance(strategy, PriorityClassStrategy) else
                    CustomResourceDefinitionRegistry(self.store, strategy, clock=self.clock,
                                                     admit=admit, webhooks=webhooks)
                    if isinstance(strategy, CustomResourceDefinitionStrategy) else
                    CertificateSigningRequestRegistry(self.store, strategy, clock=self.clock,
                                                      admit=admit, webhooks=webhooks)
                    if isinstance(strategy, CertificateSigningRequestStrategy) else
                    Registry(self.store, strategy, clock=self.clock, admit=admit,
                             webhooks=webhooks,
                             charge=quota.charge if strategy.namespaced else None))
                self.registries[key] = registry
            served.append(Served(res.group, res.version, res.resource, res.kind,
                                 res.namespaced, registry,
                                 {s.name: frozenset(s.verbs) for s in res.subresources}))
        return served

    async def _service_account(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.registries["serviceaccounts"].get(namespace, name)
        except StatusError:
            return None

    async def _runtime_class(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.registries[f"runtimeclasses.{runtimeclasses.GROUP}"].get("", name)
        except StatusError:
            return None

    async def _priority_classes(self) -> list[dict[str, Any]]:
        page = await self.registries[f"priorityclasses.{priorityclasses.GROUP}"].list("")
        return page.items

    async def _limit_ranges(self, namespace: str) -> list[dict[str, Any]]:
        return (await self.registries["limitranges"].list(namespace)).items

    async def _storage_classes(self) -> list[dict[str, Any]]:
        page = await self.registries[f"storageclasses.{storageclasses.GROUP}"].list("")
        return page.items

    async def _ingress_classes(self) -> list[dict[str, Any]]:
        page = await self.registries[f"ingressclasses.{ingresses.GROUP}"].list("")
        return page.items

    async def _authorize_signer(self, verb: str, signer_name: str) -> bool:
        """Whether the writing user may ``verb`` the ``signers`` resource ``signer_name``
        (the certificates admission plugins' authorizer check; the server's own writes
        may)."""
        user = current_user()
        return user is None or await self.rbac.allowed(user, Attributes(
            verb, certificates.GROUP, "signers", name=signer_name))

    async def _check_escalation(self, resource: str, namespace: str, obj: Mapping[str, Any],
                                old: Mapping[str, Any] | None) -> None:
        await self.rbac.check_escalation(resource, namespace, obj, old)

    async def _create_missing(self, key: str, objs: Sequence[Mapping[str, Any]]) -> None:
        """Create each cluster-scoped object of ``objs`` that does not exist; one that does
        is left as it is, whatever a user made of it."""
        registry = self.registries[key]
        for obj in objs:
            try:
                await registry.get("", obj["metadata"]["name"])
            except StatusError:
                with contextlib.suppress(StatusError):  # created meanwhile
                    await registry.create("", dict(obj))

    async def _seed_default_storage_class(self) -> None:
        """svcnet's default class, as kind and k3s ship theirs (api/storageclasses.py), unless
        another class is the default now: a user who replaced it keeps theirs."""
        key = f"storageclasses.{storageclasses.GROUP}"
        if storageclasses.default_storage_class(
                (await self.registries[key].list("")).items) is None:
            await self._create_missing(key, [storageclasses.DEFAULT_STORAGE_CLASS])

    async def _seed_policy(self) -> None:
        """The default ClusterRoles and bindings that are missing (bootstrap_policy.py)."""
        await self._create_missing(f"clusterroles.{rbac.GROUP}", CLUSTER_ROLES)
        await self._create_missing(f"clusterrolebindings.{rbac.GROUP}", CLUSTER_ROLE_BINDINGS)

    async def _seed(self, port: int) -> None:
        """The system namespaces, policy, default ServiceCIDR, ``default/kubernetes`` and its
        endpoints, present; written without webhooks (webhookadmission.py)."""
        with without_webhooks():
            await self._seed_objects(port)

    async def _seed_objects(self, port: int) -> None:
        ns_reg = self.registries["namespaces"]
        for name in SYSTEM_NAMESPACES:
            with contextlib.suppress(StatusError):
                await ns_reg.create("", {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": name}})
        await self._seed_policy()
        # The default ServiceCIDR (defaultservicecidr controller), from the flags.
        await ensure_default_service_cidr(self.registries[f"servicecidrs.{servicecidrs.GROUP}"],
                                          self.config.service_cidrs)
        first_ip = ServiceCIDR.parse(self.config.service_cidrs[0]).item_at(0)
        svc = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "kubernetes", "namespace": "default",
                            "labels": {"component": "apiserver", "provider": "kubernetes"}},
               "spec": {"type": "ClusterIP", "clusterIP": first_ip,
                        "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                   "targetPort": port}]}}
        with contextlib.suppress(StatusError):
            await self.registries["services"].create("default", svc)
        await self._reconcile_endpoints()

    async def _reconcile_endpoints(self) -> None:
        if self.endpoint_reconciler is not None:
            with without_webhooks():
                await self.endpoint_reconciler.renew_lease()
                await self.endpoint_reconciler.reconcile()

    async def _start_leading(self) -> None:
        """Controllers talk to this server through its REST API like any client (DESIGN §1),
        over the private loopback socket (loopback.py), and run only while this server holds
        the controller-manager Lease (``leader_elect``). The first attempt is made here: a
        free lease (a lone server) is acquired at once, and the controllers are running when
        start() returns."""
        token = load_kubeconfig(self.kubeconfig_path).token
        assert token, "the admin kubeconfig carries a token"
        client = self.loopback.client(token, user_agent=USER_AGENT)
        self._controller_client = client
        if not self.config.leader_elect:
            self._start_controllers()
            return
        # One identity per data directory (its lock makes it one live process): a server that
        # restarts after a crash takes its own unexpired lease back at once.
        candidate = f"{socket.gethostname()}_{self.holder.server}"
        self.elector = LeaderElector(LeaseLock(client, "kube-system", CONTROLLER_LEASE),
                                     candidate, clock=self.clock)
        leading = await self.elector.try_acquire_or_renew()
        if leading:
            self._start_controllers()
        self._tasks.append(asyncio.create_task(self.elector.run(self._lead, leading=leading)))

    def _start_controllers(self) -> None:
        assert self._controller_client is not None
        self.controller_manager = ControllerManager(
            self._controller_client, self.lb,
            ControllerConfig(self.config.cluster_cidr, self.config.node_grace, self._ca_pem,
                             hpa_sync_period=self.config.hpa_sync_period,
                             hpa_downscale_stabilization=(
                                 self.config.hpa_downscale_stabilization),
                             quota_sync_period=self.config.quota_sync_period,
                             signing_authority=ClusterCA(self.config.data_dir)),
            clock=self.clock)
        self.controller_manager.start()

    async def _lead(self) -> None:
        """One term as leader: the controllers run until it ends (cancellation)."""
        if self.controller_manager is None:
            log.info("leading: starting the controllers")
            self._start_controllers()
        try:
            await asyncio.Event().wait()
        finally:
            manager, self.controller_manager = self.controller_manager, None
            if manager is not None:
                log.info("no longer leading: stopping the controllers")
                await manager.stop()

    async def _bootstrap_loop(self, port: int) -> None:
        """Keep the system namespaces and default/kubernetes present, as kube-apiserver's
        bootstrap controller does: a user who deletes them gets them back within seconds."""
        while True:
            await self.clock.sleep(10)
            try:
                await self._seed(port)
                await identity.sync_tokens(self.store, self.config.data_dir / "tokens.csv")
            except Exception:
                log.exception("re-seeding system objects failed; retrying")

    async def _repair_loop(self) -> None:
        while True:
            await self.clock.sleep(self.config.repair_interval)
            try:
                result = await repair(self.store, self.allocators, self.lb, clock=self.clock,
                                      leak_grace=self.config.leak_grace, holder=self.holder)
                for ev in result.events:
                    log.warning("repair: %s/%s %s: %s", ev.namespace, ev.name, ev.reason,
                                ev.message)
            except Exception:
                log.exception("allocation repair failed; retrying next period")

    async def _check_shutdown(self) -> None:
        if self._stopping:
            raise RuntimeError("the server is shutting down")

    def _app(self, handlers: Handlers) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.on_response_prepare.append(add_deprecation_warning)

        async def version(request: web.Request) -> web.Response:
            resp = web.json_response(discovery.version_info())
            # kubectl's dispatcher caches /version for an hour unless told not to.
            resp.headers["Cache-Control"] = "no-cache, private"
            return resp

        async def api_root(request: web.Request) -> web.Response:
            return _discovery_response(request, "api",
                                       discovery.api_versions(request.host or None))

        async def apis_root(request: web.Request) -> web.Response:
            return _discovery_response(request, "apis",
                                       discovery.api_group_list(self.custom.resources),
                                       self.custom.resources)

        async def resource_list(request: web.Request) -> web.StreamResponse:
            group, _, version = request.match_info.get("gv", "/v1").rpartition("/")
            doc = discovery.api_resource_list(group, version, self.custom.resources)
            if doc is None:
                return await handlers.dispatch(request)
            return web.json_response(doc)

        async def group_doc(request: web.Request) -> web.StreamResponse:
            doc = discovery.api_group(request.match_info["group"], self.custom.resources)
            if doc is None:
                return await handlers.dispatch(request)
            return web.json_response(doc)

        async def metrics(request: web.Request) -> web.Response:
            # Request counts by resource and code say what the cluster does: for
            # authenticated users only (Kubernetes serves /metrics only to those allowed it).
            try:
                await handlers.ctx.authn.authenticate(request.headers.get("Authorization"),
                                                      peer_certificate(request))
            except StatusError as err:
                return status_response(err)
            self.metrics.gc_watch.drain()
            return web.Response(body=metrics_text(self.metrics.registry),
                                headers={"Content-Type": CONTENT_TYPE_LATEST})

        app.router.add_get("/version", version)
        ping = health.NamedCheck("ping", health.ping)
        store = health.NamedCheck("etcd", health.store_check(lambda: self.store))
        shutdown = health.NamedCheck("shutdown", self._check_shutdown)
        health.add_routes(app.router, "livez", [ping])
        health.add_routes(app.router, "readyz", [ping, store, shutdown])
        health.add_routes(app.router, "healthz", [ping, store])
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/api", api_root)
        app.router.add_get("/api/", api_root)
        app.router.add_get("/apis", apis_root)
        app.router.add_get("/apis/", apis_root)
        app.router.add_get("/api/v1", resource_list)
        app.router.add_get(r"/apis/{gv:[^/]+/[^/]+}", resource_list)
        app.router.add_get(r"/apis/{group:[^/]+}", group_doc)
        openapi.add_routes(app.router, self.custom.openapi_documents)
        self.join.add_routes(app.router)
        app.router.add_route("*", "/{tail:.*}", handlers.dispatch)
        return app


def _discovery_response(request: web.Request, root: str, legacy: dict[str, Any],
                        extra: Sequence[resources.Resource] = ()) -> web.Response:
    fmt = discovery.negotiate_discovery(request.headers.get("Accept"))
    if fmt.version is None:
        return web.json_response(legacy)
    # The exact aggregated Content-Type is required: kubectl reads anything else as legacy.
    body = json.dumps(discovery.aggregated_discovery(root, fmt.version, extra))
    return web.Response(body=body.encode(), headers={"Content-Type": fmt.content_type})


class DataDirInUse(Exception):
    """Another live server holds the data directory."""


def _lock_data_dir(data_dir: Path) -> IO[bytes]:
    """An exclusive lock on ``DATA_DIR/server.lock`` for this process's lifetime (released
    when the file is closed, or by the kernel when the process dies)."""
    lock = open(data_dir / "server.lock", "ab")  # noqa: SIM115 (held until stop())
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise DataDirInUse(f"another svcnet server is running on {data_dir}") from None
    return lock


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to, it is not only loopback


def _primary_ip() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent: this only picks a route
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def worker_argv(config: ServerConfig, index: int, fds: Sequence[int],
                loopback: int) -> list[str]:
    """The command line of API worker ``index`` of a server run with ``config``, serving the
    listening sockets ``fds`` and the loopback socket ``loopback`` it inherits
    (workers.py)."""
    argv = [sys.executable, "-m", "svcnet.cli.main", "server",
            "--data-dir", str(config.data_dir), "--listen", config.listen,
            "--store", config.resolved_store_url(),
            "--service-cidr", ",".join(config.service_cidrs),
            "--node-port-range", config.node_port_range,
            "--advertise-address", config.advertise_address,
            "--cluster-cidr", config.cluster_cidr,
            "--node-monitor-grace-period", str(config.node_grace.total_seconds()),
            "--read-header-timeout", str(config.read_header_timeout),
            "--max-connections", str(config.max_connections),
            "--worker-index", str(index), "--worker-parent", str(os.getpid()),
            "--listen-fds", ",".join(map(str, fds)), "--loopback-fd", str(loopback)]
    for pool in config.lb_pools:
        argv += ["--lb-pool", pool]
    if config.etcd_tls is not None:
        for flag, path in (("--etcd-cafile", config.etcd_tls.ca_file),
                           ("--etcd-certfile", config.etcd_tls.cert_file),
                           ("--etcd-keyfile", config.etcd_tls.key_file)):
            if path is not None:
                argv += [flag, str(path.resolve())]
    if logging.getLogger().isEnabledFor(logging.INFO):
        argv.append("--verbose")
    return argv


async def run_server(config: ServerConfig) -> None:
    """Run until SIGTERM/SIGINT, then shut down cleanly."""
    import signal

    # The handlers go in before start(): the kubeconfig written there tells the world the
    # server is up, and a SIGTERM sent on seeing it must already be a clean shutdown.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = APIServer(config)
    try:
        await server.start()
        if server.is_worker:
            say_serving()
        await stop.wait()
    finally:
        await server.stop()
