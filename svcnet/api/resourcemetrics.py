"""The kubelet's resource metrics (``/metrics/resource``): samples as data, their Prometheus
text, and that text read back.

Theory of operation
-------------------
Followed: kubernetes pkg/kubelet/metrics/collectors/resource_metrics.go (what a node serves)
and metrics-server pkg/scraper/client/resource/decode.go (how it is read).

A node answers one :class:`ResourceSample`: its own cumulative CPU (core-seconds) and working
set, and per container the same plus the container's start time, each figure with the time it
was measured. :func:`format_resource_metrics` writes it as the kubelet does, in the Prometheus
text format (prometheus_client's exposition, the one writer in the project): the STABLE
families ``node_cpu_usage_seconds_total`` and ``container_cpu_usage_seconds_total`` (counters),
``node_memory_working_set_bytes``, ``container_memory_working_set_bytes``,
``pod_cpu_usage_seconds_total``, ``pod_memory_working_set_bytes`` (a pod's figures are its
containers' sums), ``container_start_time_seconds`` (no timestamp, as upstream), and
``scrape_error``/``resource_scrape_error`` (1 when the runtime could not be read: the node's
figures are then left out). Container series carry the labels ``container``, ``namespace``
and ``pod``; every usage sample carries its timestamp in milliseconds.

:func:`parse_resource_metrics` is metrics-server's decoder: it reads the node and container
series (the pod series are ignored: metrics-server sums containers itself), takes each
sample's timestamp (the scrape time when there is none), and, as upstream, drops the node when
its CPU, memory or timestamp is missing or zero, and a whole pod when one of its containers
has a zero CPU or memory figure (an incomplete point would give a wrong rate).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

__all__ = [
    "CONTENT_TYPE",
    "ContainerUsage",
    "MetricsBatch",
    "PodRef",
    "ResourceSample",
    "Usage",
    "format_resource_metrics",
    "parse_resource_metrics",
]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

_NS: Final = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Usage:
    """One measurement: cumulative CPU in nanocore-seconds and the working set in bytes, at
    ``timestamp`` (Unix seconds); ``start_time`` is when the counter started (None: unknown)."""

    cpu_ns: int
    memory: int
    timestamp: float
    start_time: float | None = None


@dataclass(frozen=True, slots=True, order=True)
class PodRef:
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class ContainerUsage:
    pod: PodRef
    container: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class ResourceSample:
    """What a node serves at ``/metrics/resource``; ``node`` None with ``error`` set when its
    usage could not be read."""

    node: Usage | None
    containers: tuple[ContainerUsage, ...] = ()
    error: bool = False


def _families(sample: ResourceSample) -> Iterator[Metric]:
    node_cpu = CounterMetricFamily("node_cpu_usage_seconds_total",
                                   "Cumulative cpu time consumed by the node in core-seconds")
    node_mem = GaugeMetricFamily("node_memory_working_set_bytes",
                                 "Current working set of the node in bytes")
    if sample.node is not None:
        node_cpu.add_metric([], sample.node.cpu_ns / _NS, timestamp=sample.node.timestamp)
        node_mem.add_metric([], float(sample.node.memory), timestamp=sample.node.timestamp)
    labels = ["container", "namespace", "pod"]  # sorted, as Go's client writes them
    start = GaugeMetricFamily("container_start_time_seconds",
                              "Start time of the container since unix epoch in seconds",
                              labels=labels)
    c_cpu = CounterMetricFamily("container_cpu_usage_seconds_total",
                                "Cumulative cpu time consumed by the container in core-seconds",
                                labels=labels)
    c_mem = GaugeMetricFamily("container_memory_working_set_bytes",
                              "Current working set of the container in bytes", labels=labels)
    p_cpu = CounterMetricFamily("pod_cpu_usage_seconds_total",
                                "Cumulative cpu time consumed by the pod in core-seconds",
                                labels=["namespace", "pod"])
    p_mem = GaugeMetricFamily("pod_memory_working_set_bytes",
                              "Current working set of the pod in bytes",
                              labels=["namespace", "pod"])
    pods: dict[PodRef, list[Usage]] = {}
    for c in sample.containers:
        u, values = c.usage, [c.container, c.pod.namespace, c.pod.name]
        if u.start_time is not None and u.start_time > 0:
            start.add_metric(values, u.start_time)
        c_cpu.add_metric(values, u.cpu_ns / _NS, timestamp=u.timestamp)
        c_mem.add_metric(values, float(u.memory), timestamp=u.timestamp)
        pods.setdefault(c.pod, []).append(u)
    for ref, usages in pods.items():
        when = max(u.timestamp for u in usages)
        p_cpu.add_metric([ref.namespace, ref.name], sum(u.cpu_ns for u in usages) / _NS,
                         timestamp=when)
        p_mem.add_metric([ref.namespace, ref.name], float(sum(u.memory for u in usages)),
                         timestamp=when)
    error = 1.0 if sample.error else 0.0
    yield from (node_cpu, node_mem, start, c_cpu, c_mem, p_cpu, p_mem)
    yield GaugeMetricFamily("scrape_error", "1 if there was an error while getting container "
                            "metrics, 0 otherwise", value=error)
    yield GaugeMetricFamily("resource_scrape_error", "1 if there was an error while getting "
                            "container metrics, 0 otherwise", value=error)


class _Collector:
    def __init__(self, sample: ResourceSample) -> None:
        self.sample = sample

    def collect(self) -> Iterator[Metric]:
        return _families(self.sample)


def format_resource_metrics(sample: ResourceSample) -> bytes:
    """The Prometheus text of ``sample``, as the kubelet's ``/metrics/resource`` answers."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(sample))
    return generate_latest(registry)


@dataclass(slots=True)
class MetricsBatch:
    """One node's scrape, decoded: its own point and its pods' container points."""

    node: Usage | None = None
    pods: dict[PodRef, dict[str, Usage]] = field(default_factory=dict)


@dataclass(slots=True)
class _Partial:
    cpu_ns: int = 0
    memory: int = 0
    timestamp: float = 0.0
    start_time: float | None = None

    def usage(self) -> Usage:
        return Usage(self.cpu_ns, self.memory, self.timestamp, self.start_time)


def parse_resource_metrics(text: str, default_time: float) -> MetricsBatch:
    """metrics-server's ``decodeBatch``: the node's and containers' points of one scrape.
    Raises ValueError on text that is not the Prometheus format."""
    node = _Partial()
    containers: dict[PodRef, dict[str, _Partial]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if not math.isfinite(s.value) or s.value < 0:
                continue  # not a usage (metrics-server's decoder drops such points too)
            when = float(s.timestamp) if s.timestamp is not None else default_time
            if s.name in ("node_cpu_usage_seconds_total", "node_memory_working_set_bytes"):
                if s.name.startswith("node_cpu"):
                    node.cpu_ns = int(s.value * _NS)
                else:
                    node.memory = int(s.value)
                node.timestamp = when
                continue
            if s.name not in ("container_cpu_usage_seconds_total",
                              "container_memory_working_set_bytes",
                              "container_start_time_seconds"):
                continue
            labels: Mapping[str, str] = s.labels
            ref = PodRef(labels.get("namespace", ""), labels.get("pod", ""))
            point = containers.setdefault(ref, {}).setdefault(labels.get("container", ""),
                                                              _Partial())
            if s.name == "container_start_time_seconds":
                point.start_time = float(s.value)
                continue
            if s.name == "container_cpu_usage_seconds_total":
                point.cpu_ns = int(s.value * _NS)
            else:
                point.memory = int(s.value)
            point.timestamp = when
    batch = MetricsBatch()
    if node.timestamp and node.cpu_ns and node.memory:
        batch.node = node.usage()
    for ref, points in containers.items():
        if any(p.cpu_ns == 0 or p.memory == 0 for p in points.values()):
            continue  # upstream's checkContainerMetrics: the whole pod waits for a full point
        batch.pods[ref] = {name: p.usage() for name, p in points.items()}
    return batch
