"""LimitRanges and ResourceQuotas through a real `svcnet server` and the real kubectl: the
LimitRanger admission defaults a pod, the ResourceQuota admission refuses what a quota does
not allow with upstream's message, the quota controller fills a new quota's status and frees
what a deleted pod used, and ``kubectl describe`` shows both kinds.

The session server is shared: each test works in a namespace of its own (random name).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Cluster
from tests.e2e.test_runtimeclasses import _get, _name


def _pod(name: str, resources: str = "") -> str:
    return (f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n"
            f"  - name: app\n    image: busybox\n{resources}")


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    ns = _name("quota")
    cluster.kubectl("create", "namespace", ns)
    yield ns
    cluster.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found")


def _wait_used(cluster: Cluster, ns: str, name: str, want: dict[str, str]) -> dict[str, object]:
    deadline = time.monotonic() + 20
    quota = _get(cluster, "resourcequota", name, "-n", ns)
    while quota.get("status", {}).get("used") != want:
        assert time.monotonic() < deadline, f"quota status stayed {quota.get('status')}"
        time.sleep(0.2)
        quota = _get(cluster, "resourcequota", name, "-n", ns)
    return quota


def test_limit_range_defaults_and_bounds_a_pod(cluster: Cluster, namespace: str) -> None:
    ns = namespace
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=(
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: limits}\nspec:\n  limits:\n"
        "  - type: Container\n    default: {cpu: 200m, memory: 64Mi}\n"
        "    defaultRequest: {cpu: 100m}\n    min: {cpu: 50m}\n"))
    stored = _get(cluster, "limits", "limits", "-n", ns)["spec"]["limits"][0]
    assert stored["defaultRequest"] == {"cpu": "100m", "memory": "64Mi"}  # from default
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=_pod("web"))
    pod = _get(cluster, "pod", "web", "-n", ns)
    assert pod["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "200m", "memory": "64Mi"},
        "requests": {"cpu": "100m", "memory": "64Mi"}}
    assert pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container app; "
        "cpu, memory limit for container app")
    r = cluster.kubectl("apply", "-n", ns, "-f", "-", check=False, stdin=_pod(
        "small", "    resources: {requests: {cpu: 10m}}\n"))
    assert r.returncode != 0
    assert ('pods "small" is forbidden: minimum cpu usage per Container is 50m, but request '
            'is 10m') in r.stderr
    r = cluster.kubectl("apply", "-n", ns, "-f", "-", check=False, stdin=(
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: bad}\nspec:\n  limits:\n"
        "  - type: Container\n    max: {cpu: '1'}\n    defaultRequest: {cpu: '2'}\n"))
    assert r.returncode != 0
    assert ("spec.limits[0].defaultRequest[cpu]: Invalid value: 2: default request value 2 is "
            "greater than max value 1") in r.stderr


def test_quota_refuses_then_frees_and_describe(cluster: Cluster, namespace: str) -> None:
    ns = namespace
    out = cluster.kubectl("create", "quota", "q", "-n", ns, "--hard=pods=2,services=5")
    assert out.stdout.strip() == "resourcequota/q created"
    _wait_used(cluster, ns, "q", {"pods": "0", "services": "0"})  # the controller's sync
    for name in ("p1", "p2"):
        cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=_pod(name))
    _wait_used(cluster, ns, "q", {"pods": "2", "services": "0"})  # charged by admission
    r = cluster.kubectl("apply", "-n", ns, "-f", "-", check=False, stdin=_pod("p3"))
    assert r.returncode != 0
    assert ('pods "p3" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, '
            'limited: pods=2') in r.stderr

    lines = cluster.kubectl("get", "quota", "-n", ns).stdout.splitlines()
    assert lines[0].split() == ["NAME", "AGE", "REQUEST", "LIMIT"]
    assert "pods: 2/2, services: 0/5" in lines[1]

    cluster.kubectl("delete", "pod", "p1", "-n", ns)
    _wait_used(cluster, ns, "q", {"pods": "1", "services": "0"})  # replenished
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=_pod("p3"))

    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=(
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: limits}\nspec:\n  limits:\n"
        "  - type: Container\n    max: {memory: 1Gi}\n"))
    described = cluster.kubectl("describe", "namespace", ns).stdout
    assert ("Resource Quotas\n  Name:     q\n  Resource  Used  Hard\n  --------  ---   ---\n"
            "  pods      2     2\n  services  0     5\n") in described
    assert " Container  memory    -    1Gi  1Gi              1Gi            -" in described
    quota = cluster.kubectl("describe", "quota", "q", "-n", ns).stdout
    assert quota.splitlines()[2:] == ["Resource    Used  Hard", "--------    ----  ----",
                                      "pods        2     2", "services    0     5"]
    limits = cluster.kubectl("describe", "limits", "limits", "-n", ns).stdout
    assert limits.splitlines()[-1].split() == ["Container", "memory", "-", "1Gi", "1Gi",
                                               "1Gi", "-"]

    # The namespace controller finds both kinds through discovery and deletes them with it.
    cluster.kubectl("delete", "namespace", ns, "--timeout=30s")
    assert cluster.kubectl("get", "namespace", ns, check=False).returncode != 0
