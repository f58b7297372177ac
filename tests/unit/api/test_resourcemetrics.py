"""The kubelet's /metrics/resource text (svcnet/api/resourcemetrics.py), metrics-server's
storage and rates (svcnet/api/metricsstorage.py), and quantities as Quantity.String() writes
them (svcnet/api/resourcelists.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from svcnet.api.metricsstorage import (
    MetricsStorage,
    ResourceUsage,
    node_metrics,
    pod_metrics,
    usage_between,
)
from svcnet.api.resourcelists import parse_quantity, quantity_binary, quantity_decimal
from svcnet.api.resourcemetrics import (
    ContainerUsage,
    MetricsBatch,
    PodRef,
    ResourceSample,
    Usage,
    format_resource_metrics,
    parse_resource_metrics,
)

WEB = PodRef("default", "web")
T0 = 1_700_000_000.0


@pytest.mark.parametrize(("value", "scale", "text"), [
    (0, -9, "0"), (12345, -9, "12345n"), (1_500_000, -9, "1500u"), (250_000_000, -9, "250m"),
    (1_000_000_000, -9, "1"), (2_000, -3, "2"), (1_200, 0, "1200"), (5, 3, "5k"),
    (-7_000, -9, "-7u")])
def test_quantity_decimal_is_the_canonical_form(value: int, scale: int, text: str) -> None:
    assert quantity_decimal(value, scale) == text
    assert parse_quantity(text) == parse_quantity(f"{value}e{scale}")


@pytest.mark.parametrize(("value", "text"), [
    (0, "0"), (1000, "1k"), (1_500_000, "1500000"), (1024, "1Ki"), (1_262_592, "1233Ki"), (2_097_152, "2Mi"),
    (12_345_678, "12345678"), (3 << 30, "3Gi")])
def test_quantity_binary_takes_the_largest_exact_suffix(value: int, text: str) -> None:
    assert quantity_binary(value) == text
    assert parse_quantity(text) == value


def _sample() -> ResourceSample:
    return ResourceSample(Usage(3_500_000_000, 200 << 20, T0 + 0.25), (
        ContainerUsage(WEB, "app", Usage(1_250_000_000, 10 << 20, T0 + 0.125, T0 - 100)),
        ContainerUsage(WEB, "side", Usage(250_000_000, 2 << 20, T0 + 0.125, T0 - 50)),
        ContainerUsage(PodRef("kube-system", 'o"dd'), "c", Usage(1, 4096, T0, None))))


def test_text_is_the_kubelets() -> None:
    text = format_resource_metrics(_sample()).decode()
    lines = text.splitlines()
    assert "# TYPE node_cpu_usage_seconds_total counter" in lines
    assert f"node_cpu_usage_seconds_total 3.5 {int((T0 + 0.25) * 1000)}" in lines
    # Floats as Go's client writes them ('g' format).
    assert f"node_memory_working_set_bytes 2.097152e+08 {int((T0 + 0.25) * 1000)}" in lines
    assert ('container_cpu_usage_seconds_total{container="app",namespace="default",pod="web"} '
            f"1.25 {int((T0 + 0.125) * 1000)}") in lines
    assert ('container_start_time_seconds{container="app",namespace="default",pod="web"} '
            "1.6999999e+09") in lines  # no timestamp, as upstream
    # The pod's figures are its containers' sums.
    assert ('pod_cpu_usage_seconds_total{namespace="default",pod="web"} 1.5 '
            f"{int((T0 + 0.125) * 1000)}") in lines
    assert any(line.startswith('pod_memory_working_set_bytes{namespace="default",pod="web"} '
                               "1.2582912e+07 ") for line in lines)
    assert 'pod="o\\"dd"' in text  # label values escaped
    assert "scrape_error 0.0" in lines and "resource_scrape_error 0.0" in lines


def test_text_reads_back_as_metrics_server_decodes_it() -> None:
    batch = parse_resource_metrics(format_resource_metrics(_sample()).decode(), T0 + 99)
    assert batch.node == Usage(3_500_000_000, 200 << 20, T0 + 0.25)
    assert batch.pods[WEB] == {
        "app": Usage(1_250_000_000, 10 << 20, T0 + 0.125, T0 - 100),
        "side": Usage(250_000_000, 2 << 20, T0 + 0.125, T0 - 50)}
    assert batch.pods[PodRef("kube-system", 'o"dd')]["c"].cpu_ns == 1


def test_a_failed_sample_has_no_node_and_says_so() -> None:
    text = format_resource_metrics(ResourceSample(None, (), error=True)).decode()
    assert "scrape_error 1.0" in text.splitlines()
    assert parse_resource_metrics(text, T0) == MetricsBatch()


def test_zero_figures_drop_the_node_or_the_whole_pod() -> None:
    text = (
        "node_cpu_usage_seconds_total 0 1000\n"
        "node_memory_working_set_bytes 4096 1000\n"
        'container_cpu_usage_seconds_total{container="a",namespace="n",pod="p"} 0 1000\n'
        'container_memory_working_set_bytes{container="a",namespace="n",pod="p"} 4096 1000\n'
        'container_cpu_usage_seconds_total{container="b",namespace="n",pod="p"} 1 1000\n'
        'container_memory_working_set_bytes{container="b",namespace="n",pod="p"} 4096 1000\n'
        'container_cpu_usage_seconds_total{container="a",namespace="n",pod="q"} 2\n'
        'container_memory_working_set_bytes{container="a",namespace="n",pod="q"} 8192\n')
    batch = parse_resource_metrics(text, 55.0)
    assert batch.node is None
    assert list(batch.pods) == [PodRef("n", "q")]
    assert batch.pods[PodRef("n", "q")]["a"] == Usage(2_000_000_000, 8192, 55.0)  # scrape time


def test_non_finite_or_negative_figures_are_not_usage() -> None:
    text = (
        "node_cpu_usage_seconds_total +Inf 1000\n"
        "node_memory_working_set_bytes 4096 1000\n"
        'container_cpu_usage_seconds_total{container="a",namespace="n",pod="p"} NaN 1000\n'
        'container_memory_working_set_bytes{container="a",namespace="n",pod="p"} 4096 1000\n'
        'container_cpu_usage_seconds_total{container="a",namespace="n",pod="q"} 2 1000\n'
        'container_memory_working_set_bytes{container="a",namespace="n",pod="q"} -1 1000\n')
    assert parse_resource_metrics(text, T0) == MetricsBatch()


def test_garbage_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_resource_metrics("this is { not prometheus\n", T0)


def _batch(t: float, cpu: int, mem: int = 8 << 20, start: float | None = T0 - 3600,
           node_cpu: int | None = None) -> MetricsBatch:
    return MetricsBatch(
        Usage(node_cpu if node_cpu is not None else cpu * 2, 100 << 20, t),
        {WEB: {"app": Usage(cpu, mem, t, start)}})


def test_usage_is_the_rate_between_the_last_two_points() -> None:
    storage = MetricsStorage(15)
    storage.store({"n1": _batch(T0, 1_000_000_000)})
    assert storage.pod(WEB) is None and storage.node("n1") is None  # one point only
    storage.store({"n1": _batch(T0 + 15, 4_000_000_000, 9 << 20)})
    found = storage.pod(WEB)
    assert found is not None
    info, [(name, usage)] = found
    assert name == "app" and usage == ResourceUsage(200_000_000, 9 << 20, T0 + 15, 15)
    assert info == usage
    assert storage.node("n1") == ResourceUsage(400_000_000, 100 << 20, T0 + 15, 15)
    # A repeated point keeps the stored prev; a newer one moves last to prev.
    storage.store({"n1": _batch(T0 + 15, 4_000_000_000, 9 << 20)})
    assert storage.node("n1") == ResourceUsage(400_000_000, 100 << 20, T0 + 15, 15)
    storage.store({"n1": _batch(T0 + 20, 4_500_000_000)})
    assert storage.node("n1") == ResourceUsage(200_000_000, 100 << 20, T0 + 20, 5)
    # A node that did not answer takes its pods with it.
    storage.store({})
    assert storage.pod(WEB) is None and storage.node("n1") is None and storage.pods() == []


def test_a_restart_or_a_counter_going_back_gives_no_usage() -> None:
    storage = MetricsStorage(15)
    storage.store({"n1": _batch(T0, 5_000_000_000)})
    # Restarted 5 s before the point (10 s or more would count from the start: fresh).
    storage.store({"n1": _batch(T0 + 15, 1_000_000_000, start=T0 + 10)})
    assert storage.pod(WEB) is None
    storage.store({"n1": _batch(T0 + 30, 2_000_000_000, start=T0 + 10)})
    assert storage.pod(WEB) is not None
    assert usage_between(Usage(1, 1, T0 + 1), Usage(2, 1, T0)) is None  # counter went back
    assert usage_between(Usage(2, 1, T0), Usage(1, 1, T0)) is None  # no time between
    assert usage_between(Usage(9, 1, T0 + 1, T0 - 9), Usage(1, 1, T0, T0)) is None


def test_a_fresh_container_counts_from_its_start() -> None:
    storage = MetricsStorage(15)
    storage.store({"n1": _batch(T0, 1_200_000_000, start=T0 - 12)})
    found = storage.pod(WEB)
    assert found is not None
    assert found[1][0][1] == ResourceUsage(100_000_000, 8 << 20, T0, 12)
    storage2 = MetricsStorage(15)
    storage2.store({"n1": _batch(T0, 1_200_000_000, start=T0 - 5)})  # under 10 s: wait
    assert storage2.pod(WEB) is None


def test_a_pod_waits_for_every_container() -> None:
    storage = MetricsStorage(15)
    storage.store({"n1": _batch(T0, 1_000)})
    later = _batch(T0 + 15, 2_000)
    later.pods[WEB]["side"] = Usage(5, 5, T0 + 15, T0)
    storage.store({"n1": later})
    assert storage.pod(WEB) is None


def test_objects_are_metrics_servers() -> None:
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    usage = ResourceUsage(12_345, 1_262_592, T0 + 0.5, 15.004)
    node = node_metrics({"metadata": {"name": "n1", "labels": {"a": "b"}, "uid": "x"}},
                        usage, now)
    assert node == {"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                    "metadata": {"name": "n1", "creationTimestamp": "2025-01-02T03:04:05Z",
                                 "labels": {"a": "b"}},
                    "timestamp": "2023-11-14T22:13:20Z", "window": "15.004s",
                    "usage": {"cpu": "12345n", "memory": "1233Ki"}}
    pod = pod_metrics({"metadata": {"name": "web", "namespace": "default"}}, usage,
                      [("app", usage)], now)
    assert pod["kind"] == "PodMetrics" and "labels" not in pod["metadata"]
    assert pod["metadata"]["namespace"] == "default"
    assert pod["containers"] == [{"name": "app",
                                  "usage": {"cpu": "12345n", "memory": "1233Ki"}}]
