"""The resource metrics API's memory: the last two points of every node and container, the
usage computed from them, and ``metrics.k8s.io/v1beta1`` NodeMetrics and PodMetrics.

Theory of operation
-------------------
Followed: metrics-server pkg/storage (storage.go, node.go, pod.go, types.go: what is kept and
how usage is computed) and pkg/api (nodemetrics/podmetrics reststorage: the objects).

Each scrape round gives one :class:`~svcnet.api.resourcemetrics.MetricsBatch` per node;
:meth:`MetricsStorage.store` takes all of them at once and keeps, per node and per container,
the newest point (*last*) and the one before it (*prev*), as metrics-server does:

* a new point moves the stored one to *prev* when it is newer and its container has not
  restarted meanwhile (its start time is before the stored point's timestamp); a repeated
  point (same timestamp) keeps the stored *prev*; after a restart there is no *prev* until the
  next scrape;
* a container that started between 10 s and one resolution before its point gets a *prev* of
  its own start (zero CPU at the start time), so a fresh pod shows after one scrape rather
  than two (``freshContainerMinMetricsResolution``);
* what a round does not report (a node that did not answer, a pod that is gone) is forgotten.

Usage from two points: CPU is the rate between them, in nanocores (``(cpu₂ - cpu₁) / (t₂ -
t₁)``, truncated to an integer), memory is the last working set; ``timestamp`` is the last
point's time and ``window`` the time between the two. A counter that went down (a reset) gives
no usage. A pod is shown only when every container it reported has two points; its timestamp
and window are those of its earliest container. CPU is rendered as a DecimalSI quantity of
nanocores (``12345n``), memory as a BinarySI quantity of bytes (``1232Ki``), exactly as
metrics-server renders them (:mod:`svcnet.api.resourcelists`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from svcnet.api.goduration import go_duration
from svcnet.api.resourcelists import quantity_binary, quantity_decimal
from svcnet.api.resourcemetrics import MetricsBatch, PodRef, Usage
from svcnet.util.clock import rfc3339

__all__ = [
    "API_VERSION",
    "FRESH_CONTAINER_MIN",
    "GROUP",
    "MetricsStorage",
    "ResourceUsage",
    "node_metrics",
    "pod_metrics",
    "usage_between",
]

GROUP: Final = "metrics.k8s.io"
API_VERSION: Final = f"{GROUP}/v1beta1"
FRESH_CONTAINER_MIN: Final = 10.0
"""Seconds a container must have run for its start to stand in as its first point."""

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ResourceUsage:
    """Usage over a window: CPU in nanocores, memory in bytes, measured up to ``timestamp``
    (Unix seconds) over ``window`` seconds."""

    cpu_nanocores: int
    memory: int
    timestamp: float
    window: float

    def usage(self) -> Obj:
        return {"cpu": quantity_decimal(self.cpu_nanocores, -9),
                "memory": quantity_binary(self.memory)}


def usage_between(last: Usage, prev: Usage) -> ResourceUsage | None:
    """metrics-server's ``resourceUsage``: None when the points cannot be compared (a start
    time gone back, a counter gone down, no time between them)."""
    if (last.start_time is not None and prev.start_time is not None
            and last.start_time < prev.start_time):
        return None
    window = last.timestamp - prev.timestamp
    if last.cpu_ns < prev.cpu_ns or window <= 0:
        return None
    return ResourceUsage(int((last.cpu_ns - prev.cpu_ns) / window), last.memory,
                         last.timestamp, window)


def _previous(new: Usage, last: Usage | None, prev: Usage | None,
              resolution: float) -> Usage | None:
    """The point kept as *prev* once ``new`` arrives (see the module docstring)."""
    start = new.start_time
    if start is not None and start < new.timestamp and \
            FRESH_CONTAINER_MIN <= new.timestamp - start < resolution:
        return replace(new, timestamp=start, cpu_ns=0)
    if last is None or (start is not None and start >= last.timestamp):
        return None  # first seen, or restarted since the stored point
    if new.timestamp > last.timestamp:
        return last
    if prev is not None and prev.timestamp < new.timestamp:
        return prev
    return None


class MetricsStorage:
    """The last two points of every node and container (metrics-server's storage)."""

    def __init__(self, resolution: float) -> None:
        self.resolution = resolution
        self._nodes: dict[str, tuple[Usage, Usage | None]] = {}
        self._pods: dict[PodRef, dict[str, tuple[Usage, Usage | None]]] = {}
        self.active = False
        """Whether a scraper feeds this storage (a server that does not scrape says so)."""

    def store(self, batches: Mapping[str, MetricsBatch]) -> None:
        nodes: dict[str, tuple[Usage, Usage | None]] = {}
        pods: dict[PodRef, dict[str, tuple[Usage, Usage | None]]] = {}
        for name, batch in batches.items():
            if batch.node is not None:
                last, prev = self._nodes.get(name, (None, None))
                nodes[name] = (batch.node, _previous(batch.node, last, prev, self.resolution))
            for ref, containers in batch.pods.items():
                if ref in pods:
                    continue  # reported by two nodes: the first wins, as upstream
                stored = self._pods.get(ref, {})
                kept: dict[str, tuple[Usage, Usage | None]] = {}
                for c, point in containers.items():
                    last, prev = stored.get(c, (None, None))
                    kept[c] = (point, _previous(point, last, prev, self.resolution))
                pods[ref] = kept
        self._nodes, self._pods = nodes, pods

    def node(self, name: str) -> ResourceUsage | None:
        last, prev = self._nodes.get(name, (None, None))
        return usage_between(last, prev) if last is not None and prev is not None else None

    def pod(self, ref: PodRef) -> tuple[ResourceUsage, list[tuple[str, ResourceUsage]]] | None:
        """The pod's time info (its earliest container's) and each container's usage, or None
        until every container has two points."""
        containers = self._pods.get(ref)
        if not containers:
            return None
        out: list[tuple[str, ResourceUsage]] = []
        for name, (last, prev) in sorted(containers.items()):
            if prev is None:
                return None
            usage = usage_between(last, prev)
            if usage is not None:  # upstream skips that container alone
                out.append((name, usage))
        if not out:
            return None
        return min((u for _, u in out), key=lambda u: u.timestamp), out

    def pods(self) -> list[PodRef]:
        return sorted(self._pods)


def _meta(obj: Mapping[str, Any], now: datetime, namespaced: bool) -> Obj:
    meta = obj.get("metadata") or {}
    out: Obj = {"name": meta.get("name", "")}
    if namespaced:
        out["namespace"] = meta.get("namespace", "")
    out["creationTimestamp"] = rfc3339(now)
    if meta.get("labels"):
        out["labels"] = dict(meta["labels"])
    return out


def _time(seconds: float) -> str:
    return rfc3339(datetime.fromtimestamp(seconds, UTC))


def node_metrics(node: Mapping[str, Any], usage: ResourceUsage, now: datetime) -> Obj:
    """A ``NodeMetrics`` for ``node`` (metadata: its name and labels)."""
    return {"kind": "NodeMetrics", "apiVersion": API_VERSION,
            "metadata": _meta(node, now, False), "timestamp": _time(usage.timestamp),
            "window": go_duration(round(usage.window * 1e9)), "usage": usage.usage()}


def pod_metrics(pod: Mapping[str, Any], info: ResourceUsage,
                containers: list[tuple[str, ResourceUsage]], now: datetime) -> Obj:
    """A ``PodMetrics`` for ``pod`` (metadata: its name, namespace and labels)."""
    return {"kind": "PodMetrics", "apiVersion": API_VERSION,
            "metadata": _meta(pod, now, True), "timestamp": _time(info.timestamp),
            "window": go_duration(round(info.window * 1e9)),
            "containers": [{"name": name, "usage": u.usage()} for name, u in containers]}
