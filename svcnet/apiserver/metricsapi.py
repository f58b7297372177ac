"""``metrics.k8s.io/v1beta1``: the resource metrics API (``kubectl top``, autoscalers), served
by the API server itself as metrics-server would serve it behind the aggregator.

Theory of operation
-------------------
Followed: metrics-server pkg/scraper (scraper.go: every node's ``/metrics/resource`` once per
``--metric-resolution``, in parallel, each within 90 % of it), pkg/storage (kept in
:mod:`svcnet.api.metricsstorage`) and pkg/api (the NodeMetrics and PodMetrics REST storage:
objects only for nodes and Running pods that exist, label and field selectors applied to
those, a pod or node without usage left out of a list and a 404 on get).

**Where it runs.** Upstream, metrics-server is a Deployment of its own that scrapes the kubelets
with its own credentials and is reached through kube-apiserver's aggregation layer. svcnet has
no aggregator, and the credentials a scraper needs, the kubelet client certificate, are the API
server's (:mod:`.nodeclient`): so the scraper runs inside the API server, in every serving
process (each server of an HA control plane, each API worker of ``--workers``), each for
itself, as each replica of an HA metrics-server Deployment scrapes every node for itself:
whichever process a request (or the autoscaler's, over the loopback socket) reaches answers
from its own memory, and the nodes are asked once per resolution per process. A process
whose scraper is not running (stopping) answers 503 ``the server is currently unable to
handle the request``, what kube-apiserver answers while the metrics APIService is
unavailable.

**Scrape.** Every node whose ``Ready`` condition is True, through the node client (the same
mutually authenticated HTTPS as logs and exec), decoded by
:func:`svcnet.api.resourcemetrics.parse_resource_metrics`. A node that fails (unreachable, an
error answer, bad text) is logged and missing from that round: its pods and itself disappear
until it answers again, as in metrics-server.

**Requests.** GET only (``get``, ``list``; a watch is refused as metrics-server refuses it),
authorized by RBAC on ``metrics.k8s.io`` ``nodes``/``pods`` (``system:aggregated-metrics-reader``
aggregates that into ``view``, ``edit`` and ``admin``, as metrics-server's manifest does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from aiohttp import web

from svcnet.api import errors
from svcnet.api.errors import StatusError
from svcnet.api.metricsstorage import (
    API_VERSION,
    GROUP,
    MetricsStorage,
    node_metrics,
    pod_metrics,
)
from svcnet.api.rbac import Attributes
from svcnet.api.resourcemetrics import MetricsBatch, PodRef, parse_resource_metrics
from svcnet.apiserver.auth import forbidden
from svcnet.apiserver.common import json_response, matches, query_bool, selectors_of
from svcnet.apiserver.nodeclient import NodeClient
from svcnet.apiserver.requestinfo import RequestInfo
from svcnet.storage.interface import StorageError
from svcnet.util.clock import Clock

if TYPE_CHECKING:
    from svcnet.apiserver.auth import User
    from svcnet.apiserver.handlers import Handlers

__all__ = ["DEFAULT_RESOLUTION", "MetricsScraper", "is_metrics_request", "serve_metrics"]

log = logging.getLogger(__name__)

DEFAULT_RESOLUTION: Final = 15.0
"""Seconds between scrapes (metrics-server's ``--metric-resolution``)."""
MAX_BODY: Final = 64 << 20

Obj = dict[str, Any]


def _ready(node: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or ())


class MetricsScraper:
    """Scrapes every Ready node into ``storage`` once per ``storage.resolution``."""

    def __init__(self, storage: MetricsStorage, nodes: Callable[[], Awaitable[list[Obj]]],
                 client: NodeClient, clock: Clock) -> None:
        self.storage = storage
        self.nodes = nodes
        self.client = client
        self.clock = clock

    async def scrape_node(self, node: Obj) -> MetricsBatch | None:
        name = (node.get("metadata") or {}).get("name", "")
        timeout = aiohttp.ClientTimeout(total=self.storage.resolution * 0.9)
        try:
            url = self.client.url(node, "metrics", "resource")
            async with self.client.session.get(url, timeout=timeout) as answer:
                body = await answer.content.read(MAX_BODY)
                if answer.status != 200:
                    raise ValueError(f"answered {answer.status}: {body[:200]!r}")
            return parse_resource_metrics(body.decode("utf-8", "replace"), time.time())
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, StatusError) as e:
            log.warning("scraping node %s failed: %s", name, e)
            return None
        except Exception:  # one node's odd answer must not cost the others' round
            log.exception("scraping node %s failed", name)
            return None

    async def scrape_once(self) -> None:
        nodes = [n for n in await self.nodes() if _ready(n)]
        results = await asyncio.gather(*(self.scrape_node(n) for n in nodes))
        self.storage.store({n["metadata"]["name"]: batch
                            for n, batch in zip(nodes, results, strict=True)
                            if batch is not None})

    async def run(self) -> None:
        """Scrape now and every resolution until cancelled; the storage says it is fed
        meanwhile."""
        self.storage.active = True
        try:
            while True:
                started = self.clock.monotonic()
                try:
                    await self.scrape_once()
                except StatusError as e:  # the store could not list the nodes
                    log.warning("listing nodes to scrape failed: %s", e.message)
                except StorageError as e:  # the store, unavailable or slow: next round
                    log.warning("listing nodes to scrape failed: %s", e)
                except Exception:  # a bug: said loudly, and the scraper goes on
                    log.exception("scraping the nodes failed")
                await self.clock.sleep(max(0.0, self.storage.resolution
                                           - (self.clock.monotonic() - started)))
        finally:
            self.storage.active = False
            self.storage.store({})


def is_metrics_request(info: RequestInfo) -> bool:
    return info.group == GROUP and info.version == "v1beta1" and \
        info.resource in ("nodes", "pods")


async def serve_metrics(handlers: Handlers, request: web.Request, info: RequestInfo,
                        user: User, storage: MetricsStorage | None) -> tuple[str,
                                                                            web.Response]:
    """GET ``nodes``/``pods`` of ``metrics.k8s.io/v1beta1``: (verb, answer)."""
    pods = info.resource == "pods"
    if (info.namespace and not pods) or info.subresource:
        raise errors.StatusError(404, "NotFound",
                                 "the server could not find the requested resource")
    if request.method != "GET" or query_bool(request, "watch"):
        raise errors.StatusError(405, "MethodNotAllowed",
                                 "the server does not allow this method on the requested "
                                 "resource")
    verb = "get" if info.name else "list"
    if not await handlers.ctx.rbac.allowed(user, Attributes(
            verb, GROUP, info.resource, namespace=info.namespace, name=info.name)):
        raise forbidden(user, verb, info.resource, GROUP, info.namespace, info.name)
    if storage is None or not storage.active:
        raise errors.StatusError(503, "ServiceUnavailable",
                                 "the server is currently unable to handle the request")
    served = handlers.ctx.served[("", "v1", info.resource)]
    now = handlers.ctx.clock.now()
    kind = "PodMetrics" if pods else "NodeMetrics"

    def metrics_of(obj: Obj) -> Obj | None:
        meta = obj.get("metadata") or {}
        if not pods:
            usage = storage.node(meta.get("name", ""))
            return None if usage is None else node_metrics(obj, usage, now)
        if (obj.get("status") or {}).get("phase") != "Running":
            return None
        found = storage.pod(PodRef(meta.get("namespace", ""), meta.get("name", "")))
        return None if found is None else pod_metrics(obj, *found, now)

    if info.name:
        try:
            obj = await served.registry.get(info.namespace, info.name)
        except StatusError as e:
            if e.code == 404:
                raise errors.not_found(info.resource, info.name) from None
            raise
        answer = metrics_of(obj)
        if answer is None:
            shown = f"{info.namespace}/{info.name}" if pods else info.name
            raise errors.not_found(kind.lower(), shown, GROUP)
        return verb, json_response(answer)
    label_sel, field_sel = selectors_of(request, served)
    page = await served.registry.list(info.namespace)
    items = [m for obj in page.items if matches(obj, served, label_sel, field_sel)
             and (m := metrics_of(obj)) is not None]
    return verb, json_response({"kind": f"{kind}List", "apiVersion": API_VERSION,
                                "metadata": {}, "items": items})
