"""Server-side Tables: Age formatting ported from apimachinery's duration_test.go, and each
printer's columns and cells checked against what pkg/printers/internalversion/printers.go
prints for the same object.

Conventions: every object is created ``AGE`` (5m) before ``NOW``; pods and services live in
namespace ``default``; addresses come from 10.96.0.0/12 (ClusterIPs), 10.244.0.0/16 (pods),
172.20.0.0/24 (nodes) and 192.0.2.0/24 (LoadBalancer/external IPs).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from svcnet.apiserver import resources
from svcnet.apiserver.tables import (
    columns_for,
    human_duration,
    negotiate_table,
    set_custom_columns,
    table_accepted,
    table_for,
)

Obj = dict[str, Any]

NOW = datetime(2025, 11, 27, 17, 0, 0, tzinfo=UTC)
AGE = "5m"


def ts(seconds_ago: float) -> str:
    """An RFC 3339 timestamp ``seconds_ago`` before NOW, as the API stores it."""
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, namespace: str | None = "default", **extra: Any) -> Obj:
    m: Obj = {"name": name, "uid": f"uid-{name}", "resourceVersion": "7",
              "creationTimestamp": ts(300), **extra}
    if namespace is not None:
        m["namespace"] = namespace
    return m


def cells(api_version: str, kind: str, obj: Obj) -> list[Any]:
    table = table_for([obj], api_version=api_version, kind=kind, now=NOW,
                      resource_version="7")
    row_cells: list[Any] = table["rows"][0]["cells"]
    return row_cells


def column_names(api_version: str, kind: str) -> list[tuple[str, int]]:
    return [(c.name, c.priority) for c in columns_for(api_version, kind)]


# =========================================================================== human_duration

NS = 1
MS = 1_000_000
SEC = 1_000_000_000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR

# (nanoseconds, expected): TestHumanDuration then TestHumanDurationBoundaries, upstream verbatim.
HUMAN_DURATION_CASES = [
    (SEC, "1s"),
    (70 * SEC, "70s"),
    (190 * SEC, "3m10s"),
    (70 * MIN, "70m"),
    (47 * HOUR, "47h"),
    (49 * HOUR, "2d1h"),
    ((8 * 24 + 2) * HOUR, "8d"),
    ((367 * 24) * HOUR, "367d"),
    ((365 * 2 * 24 + 25) * HOUR, "2y1d"),
    ((365 * 8 * 24 + 2) * HOUR, "8y"),
    (-2 * SEC, "<invalid>"),
    (-2 * SEC + NS, "0s"),
    (0, "0s"),
    (SEC - MS, "0s"),
    (2 * MIN - MS, "119s"),
    (2 * MIN, "2m"),
    (2 * MIN + SEC, "2m1s"),
    (10 * MIN - MS, "9m59s"),
    (10 * MIN, "10m"),
    (10 * MIN + SEC, "10m"),
    (3 * HOUR - MS, "179m"),
    (3 * HOUR, "3h"),
    (3 * HOUR + MIN, "3h1m"),
    (8 * HOUR - MS, "7h59m"),
    (8 * HOUR, "8h"),
    (8 * HOUR + 59 * MIN, "8h"),
    (2 * DAY - MS, "47h"),
    (2 * DAY, "2d"),
    (2 * DAY + HOUR, "2d1h"),
    (8 * DAY - MS, "7d23h"),
    (8 * DAY, "8d"),
    (8 * DAY + 23 * HOUR, "8d"),
    (2 * 365 * DAY - MS, "729d"),
    (2 * 365 * DAY, "2y"),
    (2 * 365 * DAY + 23 * HOUR, "2y"),
    (2 * 365 * DAY + 23 * HOUR + 59 * MIN, "2y"),
    (2 * 365 * DAY + DAY - MS, "2y"),
    (2 * 365 * DAY + DAY, "2y1d"),
    (3 * 365 * DAY, "3y"),
    (4 * 365 * DAY, "4y"),
    (5 * 365 * DAY, "5y"),
    (6 * 365 * DAY, "6y"),
    (7 * 365 * DAY, "7y"),
    (8 * 365 * DAY - MS, "7y364d"),
    (8 * 365 * DAY, "8y"),
    (8 * 365 * DAY + 364 * DAY, "8y"),
    (9 * 365 * DAY, "9y"),
]


@pytest.mark.parametrize(("nanos", "want"), HUMAN_DURATION_CASES,
                         ids=[f"{n}ns->{w}" for n, w in HUMAN_DURATION_CASES])
def test_human_duration_from_seconds(nanos: int, want: str) -> None:
    assert human_duration(nanos / SEC) == want


@pytest.mark.parametrize(("nanos", "want"),
                         [c for c in HUMAN_DURATION_CASES if c[0] % 1000 == 0],
                         ids=[f"{n}ns->{w}" for n, w in HUMAN_DURATION_CASES if n % 1000 == 0])
def test_human_duration_from_timedelta(nanos: int, want: str) -> None:
    assert human_duration(timedelta(microseconds=nanos // 1000)) == want


def test_age_of_missing_timestamp_is_unknown() -> None:
    svc = {"metadata": {"name": "x", "namespace": "default"}, "spec": {"type": "ClusterIP"}}
    assert cells("v1", "Service", svc)[5] == "<unknown>"


def test_age_of_future_timestamp_beyond_skew_is_invalid() -> None:
    svc = {"metadata": {"name": "x", "creationTimestamp": ts(-10)}, "spec": {}}
    assert cells("v1", "Service", svc)[5] == "<invalid>"


# ================================================================================= Service

SERVICE_COLUMNS = [("Name", 0), ("Type", 0), ("Cluster-IP", 0), ("External-IP", 0),
                   ("Port(s)", 0), ("Age", 0), ("Selector", 1)]


def service(name: str, **spec: Any) -> Obj:
    spec.setdefault("type", "ClusterIP")
    status = spec.pop("status", {"loadBalancer": {}})
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(name), "spec": spec,
            "status": status}


SERVICE_CASES = [
    pytest.param(
        service("backend", clusterIP="10.96.0.11", clusterIPs=["10.96.0.11"],
                ports=[{"port": 80, "protocol": "TCP", "targetPort": 8080}],
                selector={"app": "backend"}),
        ["backend", "ClusterIP", "10.96.0.11", "<none>", "80/TCP", AGE, "app=backend"],
        id="clusterip"),
    pytest.param(
        service("multi", clusterIPs=["10.96.0.12"],
                ports=[{"port": 80, "protocol": "TCP"}, {"port": 9100, "protocol": "TCP"},
                       {"port": 53, "protocol": "UDP"}],
                selector={"tier": "web", "app": "multi"}),
        ["multi", "ClusterIP", "10.96.0.12", "<none>", "80/TCP,9100/TCP,53/UDP", AGE,
         "app=multi,tier=web"],
        id="clusterip-several-ports-selector-sorted"),
    pytest.param(
        service("only-clusterip", clusterIP="10.96.0.13", ports=[{"port": 443}]),
        ["only-clusterip", "ClusterIP", "10.96.0.13", "<none>", "443/TCP", AGE, "<none>"],
        id="clusterip-without-clusterips-and-defaulted-protocol"),
    pytest.param(
        service("ext", clusterIPs=["10.96.0.14"], externalIPs=["192.0.2.1", "192.0.2.2"],
                ports=[{"port": 80, "protocol": "TCP"}]),
        ["ext", "ClusterIP", "10.96.0.14", "192.0.2.1,192.0.2.2", "80/TCP", AGE, "<none>"],
        id="clusterip-with-external-ips"),
    pytest.param(
        service("headless", clusterIP="None", clusterIPs=["None"],
                ports=[{"port": 5432, "protocol": "TCP"}], selector={"app": "db"}),
        ["headless", "ClusterIP", "None", "<none>", "5432/TCP", AGE, "app=db"],
        id="headless"),
    pytest.param(
        service("headless-noports", clusterIP="None", clusterIPs=["None"]),
        ["headless-noports", "ClusterIP", "None", "<none>", "<none>", AGE, "<none>"],
        id="headless-without-ports"),
    pytest.param(
        service("np", type="NodePort", clusterIPs=["10.96.0.15"],
                ports=[{"port": 80, "protocol": "TCP", "nodePort": 30080},
                       {"port": 443, "protocol": "TCP", "nodePort": 30443}]),
        ["np", "NodePort", "10.96.0.15", "<none>", "80:30080/TCP,443:30443/TCP", AGE,
         "<none>"],
        id="nodeport"),
    pytest.param(
        service("lb", type="LoadBalancer", clusterIPs=["10.96.0.16"],
                ports=[{"port": 80, "protocol": "TCP", "nodePort": 31000}]),
        ["lb", "LoadBalancer", "10.96.0.16", "<pending>", "80:31000/TCP", AGE, "<none>"],
        id="loadbalancer-pending"),
    pytest.param(
        service("lb-ip", type="LoadBalancer", clusterIPs=["10.96.0.17"],
                ports=[{"port": 80, "protocol": "TCP", "nodePort": 31001}],
                status={"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}),
        ["lb-ip", "LoadBalancer", "10.96.0.17", "192.0.2.10", "80:31001/TCP", AGE, "<none>"],
        id="loadbalancer-with-ingress-ip"),
    pytest.param(
        service("lb-many", type="LoadBalancer", clusterIPs=["10.96.0.18"],
                ports=[{"port": 80, "protocol": "TCP", "nodePort": 31002}],
                status={"loadBalancer": {"ingress": [
                    {"ip": "192.0.2.20"}, {"hostname": "lb.example.com"}, {"ip": "192.0.2.3"},
                    {"ip": "192.0.2.20"}]}}),
        # A sorted set, hostnames only when there is no IP, and never clipped (server = wide).
        ["lb-many", "LoadBalancer", "10.96.0.18", "192.0.2.20,192.0.2.3,lb.example.com",
         "80:31002/TCP", AGE, "<none>"],
        id="loadbalancer-ingress-sorted-unique-unclipped"),
    pytest.param(
        service("lb-ext", type="LoadBalancer", clusterIPs=["10.96.0.19"],
                externalIPs=["192.0.2.99"], ports=[{"port": 80, "protocol": "TCP"}],
                status={"loadBalancer": {"ingress": [{"ip": "192.0.2.30"}]}}),
        ["lb-ext", "LoadBalancer", "10.96.0.19", "192.0.2.30,192.0.2.99", "80/TCP", AGE,
         "<none>"],
        id="loadbalancer-ingress-plus-external-ips"),
    pytest.param(
        service("lb-ext-pending", type="LoadBalancer", clusterIPs=["10.96.0.20"],
                externalIPs=["192.0.2.98"], ports=[{"port": 80, "protocol": "TCP"}]),
        ["lb-ext-pending", "LoadBalancer", "10.96.0.20", "192.0.2.98", "80/TCP", AGE,
         "<none>"],
        id="loadbalancer-pending-with-external-ips"),
    pytest.param(
        service("db", type="ExternalName", externalName="db.example.com"),
        ["db", "ExternalName", "<none>", "db.example.com", "<none>", AGE, "<none>"],
        id="externalname"),
    pytest.param(
        service("dual", clusterIP="10.96.0.21", clusterIPs=["10.96.0.21", "fd00::21"],
                ports=[{"port": 80, "protocol": "SCTP"}]),
        ["dual", "ClusterIP", "10.96.0.21", "<none>", "80/SCTP", AGE, "<none>"],
        id="dual-stack-shows-primary-ip"),
]


def test_service_columns() -> None:
    assert column_names("v1", "Service") == SERVICE_COLUMNS


@pytest.mark.parametrize(("svc", "want"), SERVICE_CASES)
def test_service_rows(svc: Obj, want: list[Any]) -> None:
    assert cells("v1", "Service", svc) == want


# ===================================================================================== Pod

POD_COLUMNS = [("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0),
               ("IP", 1), ("Node", 1), ("Nominated Node", 1), ("Readiness Gates", 1)]


def pod(name: str, *, containers: int = 1, init: list[Obj] | None = None,
        phase: str = "Running", statuses: list[Obj] | None = None,
        init_statuses: list[Obj] | None = None, conditions: list[Obj] | None = None,
        deleting: bool = False, reason: str | None = None, **status_extra: Any) -> Obj:
    m = meta(name)
    if deleting:
        m["deletionTimestamp"] = ts(1)
    status: Obj = {"phase": phase, **status_extra}
    if statuses is not None:
        status["containerStatuses"] = statuses
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    if conditions is not None:
        status["conditions"] = conditions
    if reason is not None:
        status["reason"] = reason
    spec: Obj = {"containers": [{"name": f"c{i}", "image": "busybox"}
                                for i in range(containers)]}
    if init is not None:
        spec["initContainers"] = init
    return {"apiVersion": "v1", "kind": "Pod", "metadata": m, "spec": spec, "status": status}


def running(name: str = "c0", ready: bool = True, restarts: int = 0,
            last_finished: float | None = None) -> Obj:
    cs: Obj = {"name": name, "ready": ready, "restartCount": restarts,
               "state": {"running": {"startedAt": ts(60)}}}
    if last_finished is not None:
        cs["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error",
                                          "finishedAt": ts(last_finished)}}
    return cs


def waiting(reason: str, name: str = "c0", restarts: int = 0,
            last_finished: float | None = None) -> Obj:
    cs: Obj = {"name": name, "ready": False, "restartCount": restarts,
               "state": {"waiting": {"reason": reason}}}
    if last_finished is not None:
        cs["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error",
                                          "finishedAt": ts(last_finished)}}
    return cs


def terminated(reason: str = "", exit_code: int = 0, signal: int = 0, name: str = "c0") -> Obj:
    term: Obj = {"exitCode": exit_code, "finishedAt": ts(10)}
    if reason:
        term["reason"] = reason
    if signal:
        term["signal"] = signal
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": term}}


READY = {"type": "Ready", "status": "True"}
INITIALIZED = {"type": "Initialized", "status": "True"}

# (pod, ready, status, restarts)
POD_CASES = [
    pytest.param(pod("pending", phase="Pending"), "0/1", "Pending", "0", id="pending"),
    pytest.param(pod("creating", phase="Pending", statuses=[waiting("ContainerCreating")]),
                 "0/1", "ContainerCreating", "0", id="container-creating"),
    pytest.param(pod("web", statuses=[running()], conditions=[READY]), "1/1", "Running", "0",
                 id="running-1-of-1"),
    pytest.param(pod("web2", containers=2, statuses=[running("c0"), running("c1", False)]),
                 "1/2", "Running", "0", id="running-1-of-2"),
    pytest.param(pod("crash", statuses=[waiting("CrashLoopBackOff", restarts=5,
                                                last_finished=123)]),
                 "0/1", "CrashLoopBackOff", "5 (2m3s ago)", id="crashloopbackoff"),
    pytest.param(pod("image", phase="Pending", statuses=[waiting("ImagePullBackOff")]),
                 "0/1", "ImagePullBackOff", "0", id="imagepullbackoff"),
    pytest.param(pod("restarted", statuses=[running(restarts=3, last_finished=7200)],
                     conditions=[READY]),
                 "1/1", "Running", "3 (120m ago)", id="running-with-restart-age"),
    pytest.param(pod("restart-no-date", statuses=[{**running(), "restartCount": 2}]),
                 "1/1", "Running", "2", id="restarts-without-last-state"),
    pytest.param(pod("done", phase="Succeeded", statuses=[terminated("Completed")]),
                 "0/1", "Completed", "0", id="completed"),
    pytest.param(pod("failed", phase="Failed", statuses=[terminated("Error", exit_code=1)]),
                 "0/1", "Error", "0", id="error"),
    pytest.param(pod("exit", phase="Failed", statuses=[terminated(exit_code=137)]),
                 "0/1", "ExitCode:137", "0", id="exit-code-without-reason"),
    pytest.param(pod("sig", phase="Failed", statuses=[terminated(exit_code=1, signal=9)]),
                 "0/1", "Signal:9", "0", id="signal-without-reason"),
    pytest.param(pod("mixed", containers=2, conditions=[READY],
                     statuses=[running("c0"), terminated("Completed", name="c1")]),
                 "1/2", "Running", "0", id="completed-but-other-running-and-ready"),
    pytest.param(pod("mixed-nr", containers=2,
                     statuses=[running("c0"), terminated("Completed", name="c1")]),
                 "1/2", "NotReady", "0", id="completed-but-other-running-not-ready"),
    pytest.param(pod("term", statuses=[running()], deleting=True), "1/1", "Terminating", "0",
                 id="terminating"),
    pytest.param(pod("term-done", phase="Succeeded", statuses=[terminated("Completed")],
                     deleting=True),
                 "0/1", "Completed", "0", id="terminating-but-terminal-keeps-status"),
    pytest.param(pod("lost", statuses=[running()], deleting=True, reason="NodeLost"),
                 "1/1", "Unknown", "0", id="node-lost"),
    pytest.param(pod("evicted", phase="Failed", reason="Evicted"), "0/1", "Evicted", "0",
                 id="status-reason"),
    pytest.param(pod("gated", phase="Pending",
                     conditions=[{"type": "PodScheduled", "status": "False",
                                  "reason": "SchedulingGated"}]),
                 "0/1", "SchedulingGated", "0", id="scheduling-gated"),
    pytest.param(pod("init", phase="Pending", init=[{"name": "setup", "image": "busybox"}],
                     init_statuses=[waiting("PodInitializing", name="setup")],
                     statuses=[waiting("PodInitializing")]),
                 "0/1", "Init:0/1", "0", id="init-0-of-1"),
    pytest.param(pod("init2", phase="Pending",
                     init=[{"name": "a", "image": "x"}, {"name": "b", "image": "x"}],
                     init_statuses=[terminated("Completed", name="a"),
                                    {"name": "b", "ready": False, "restartCount": 0,
                                     "state": {"running": {}}}]),
                 "0/1", "Init:1/2", "0", id="init-1-of-2"),
    pytest.param(pod("initcrash", phase="Pending", init=[{"name": "setup", "image": "x"}],
                     init_statuses=[waiting("CrashLoopBackOff", name="setup", restarts=4,
                                            last_finished=30)],
                     statuses=[waiting("PodInitializing")]),
                 "0/1", "Init:CrashLoopBackOff", "4 (30s ago)", id="init-crashloopbackoff"),
    pytest.param(pod("initerr", phase="Pending", init=[{"name": "setup", "image": "x"}],
                     init_statuses=[terminated("Error", exit_code=1, name="setup")]),
                 "0/1", "Init:Error", "0", id="init-error"),
    pytest.param(pod("initexit", phase="Pending", init=[{"name": "setup", "image": "x"}],
                     init_statuses=[terminated(exit_code=2, name="setup")]),
                 "0/1", "Init:ExitCode:2", "0", id="init-exit-code"),
    pytest.param(pod("initsig", phase="Pending", init=[{"name": "setup", "image": "x"}],
                     init_statuses=[terminated(exit_code=2, signal=15, name="setup")]),
                 "0/1", "Init:Signal:15", "0", id="init-signal"),
    pytest.param(pod("sidecar", init=[{"name": "proxy", "image": "x", "restartPolicy": "Always"}],
                     init_statuses=[{**running("proxy", restarts=1, last_finished=600),
                                     "started": True}],
                     statuses=[running()], conditions=[INITIALIZED, READY]),
                 "2/2", "Running", "1 (10m ago)", id="sidecar-counts-as-container"),
    pytest.param(pod("sidecar-starting", phase="Pending",
                     init=[{"name": "proxy", "image": "x", "restartPolicy": "Always"}],
                     init_statuses=[{**waiting("ContainerCreating", name="proxy"),
                                     "started": False}],
                     statuses=[waiting("PodInitializing")]),
                 "0/2", "Init:ContainerCreating", "0", id="sidecar-not-started"),
    pytest.param(pod("init-restarts-done", init=[{"name": "setup", "image": "x"}],
                     init_statuses=[{**terminated("Completed", name="setup"),
                                     "restartCount": 3}],
                     statuses=[running()], conditions=[INITIALIZED, READY]),
                 "1/1", "Running", "0", id="init-restarts-forgotten-once-initialized"),
]


def test_pod_columns() -> None:
    assert column_names("v1", "Pod") == POD_COLUMNS


@pytest.mark.parametrize(("obj", "ready", "status", "restarts"), POD_CASES)
def test_pod_rows(obj: Obj, ready: str, status: str, restarts: str) -> None:
    row = cells("v1", "Pod", obj)
    assert row[:5] == [obj["metadata"]["name"], ready, status, restarts, AGE]


def test_pod_wide_cells() -> None:
    p = pod("wide", statuses=[running()], podIPs=[{"ip": "10.244.0.5"}, {"ip": "fd00::5"}],
            podIP="10.244.0.5", nominatedNodeName="node-2",
            conditions=[READY, {"type": "example.com/gate", "status": "True"},
                        {"type": "example.com/other", "status": "False"}])
    p["spec"]["nodeName"] = "node-1"
    p["spec"]["readinessGates"] = [{"conditionType": "example.com/gate"},
                                   {"conditionType": "example.com/other"},
                                   {"conditionType": "example.com/absent"}]
    assert cells("v1", "Pod", p)[5:] == ["10.244.0.5", "node-1", "node-2", "1/3"]


def test_pod_wide_cells_unset() -> None:
    assert cells("v1", "Pod", pod("bare", phase="Pending"))[5:] == [
        "<none>", "<none>", "<none>", "<none>"]


def test_pod_ip_from_pod_ip_when_pod_ips_absent() -> None:
    assert cells("v1", "Pod", pod("old", podIP="10.244.1.1"))[5] == "10.244.1.1"


@pytest.mark.parametrize(("phase", "conditions"), [
    ("Succeeded", [{"type": "Completed", "status": "True", "reason": "Succeeded",
                    "message": "The pod has completed successfully."}]),
    ("Failed", [{"type": "Completed", "status": "True", "reason": "Failed",
                 "message": "The pod failed."}]),
    ("Running", None),
], ids=["succeeded", "failed", "running-has-none"])
def test_pod_row_conditions(phase: str, conditions: list[Obj] | None) -> None:
    table = table_for([pod("p", phase=phase)], api_version="v1", kind="Pod", now=NOW,
                      resource_version="1")
    assert table["rows"][0].get("conditions") == conditions


# ==================================================================================== Node

NODE_COLUMNS = [("Name", 0), ("Status", 0), ("Roles", 0), ("Age", 0), ("Version", 0),
                ("Internal-IP", 1), ("External-IP", 1), ("OS-Image", 1),
                ("Kernel-Version", 1), ("Container-Runtime", 1)]


def node(name: str, *, ready: str | None = "True", unschedulable: bool = False,
         labels: dict[str, str] | None = None, addresses: list[Obj] | None = None,
         info: Obj | None = None) -> Obj:
    conditions = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    obj: Obj = {"apiVersion": "v1", "kind": "Node",
                "metadata": meta(name, None, labels=labels or {}),
                "spec": {"unschedulable": True} if unschedulable else {},
                "status": {"conditions": conditions, "addresses": addresses or [],
                           "nodeInfo": info if info is not None
                           else {"kubeletVersion": "v1.33.0"}}}
    return obj


NODE_CASES = [
    pytest.param(node("n1"), ["n1", "Ready", "<none>", AGE, "v1.33.0"], id="ready"),
    pytest.param(node("n2", ready="False"), ["n2", "NotReady", "<none>", AGE, "v1.33.0"],
                 id="not-ready"),
    pytest.param(node("n3", ready="Unknown"), ["n3", "NotReady", "<none>", AGE, "v1.33.0"],
                 id="ready-unknown-is-not-ready"),
    pytest.param(node("n4", ready=None), ["n4", "Unknown", "<none>", AGE, "v1.33.0"],
                 id="no-ready-condition"),
    pytest.param(node("n5", unschedulable=True),
                 ["n5", "Ready,SchedulingDisabled", "<none>", AGE, "v1.33.0"],
                 id="cordoned"),
    pytest.param(node("n6", labels={"node-role.kubernetes.io/control-plane": "",
                                    "node-role.kubernetes.io/": "ignored",
                                    "kubernetes.io/role": "worker",
                                    "node-role.kubernetes.io/etcd": "x"}),
                 ["n6", "Ready", "control-plane,etcd,worker", AGE, "v1.33.0"], id="roles"),
    pytest.param(node("n7", info={}), ["n7", "Ready", "<none>", AGE, ""],
                 id="no-kubelet-version"),
]


def test_node_columns() -> None:
    assert column_names("v1", "Node") == NODE_COLUMNS


@pytest.mark.parametrize(("obj", "want"), NODE_CASES)
def test_node_rows(obj: Obj, want: list[Any]) -> None:
    assert cells("v1", "Node", obj)[:5] == want


def test_node_wide_cells() -> None:
    n = node("wide", addresses=[{"type": "Hostname", "address": "node-1"},
                                {"type": "InternalIP", "address": "172.20.0.11"},
                                {"type": "ExternalIP", "address": "192.0.2.11"},
                                {"type": "InternalIP", "address": "172.20.0.99"}],
             info={"kubeletVersion": "v1.33.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                   "kernelVersion": "6.1.0-18-amd64",
                   "containerRuntimeVersion": "svcnet://0.1.0"})
    assert cells("v1", "Node", n)[5:] == ["172.20.0.11", "192.0.2.11",
                                          "Debian GNU/Linux 12 (bookworm)", "6.1.0-18-amd64",
                                          "svcnet://0.1.0"]
    assert cells("v1", "Node", node("bare"))[5:] == ["<none>", "<none>", "<unknown>",
                                                     "<unknown>", "<unknown>"]


# =============================================================================== Namespace


def test_namespace_rows() -> None:
    assert [(c.name, c.priority) for c in columns_for("v1", "Namespace")] == [
        ("Name", 0), ("Status", 0), ("Age", 0)]
    active = {"metadata": meta("default", None), "status": {"phase": "Active"}}
    terminating = {"metadata": meta("old", None), "status": {"phase": "Terminating"}}
    assert cells("v1", "Namespace", active) == ["default", "Active", AGE]
    assert cells("v1", "Namespace", terminating) == ["old", "Terminating", AGE]


# =============================================================================== Endpoints


def endpoints(*subsets: Obj) -> Obj:
    obj: Obj = {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta("ep")}
    if subsets:
        obj["subsets"] = list(subsets)
    return obj


def addrs(*ips: str) -> list[Obj]:
    return [{"ip": ip} for ip in ips]


ENDPOINTS_CASES = [
    pytest.param(endpoints(), "<none>", id="no-subsets"),
    pytest.param(endpoints({"addresses": addrs("10.244.0.5", "10.244.0.6"),
                            "ports": [{"port": 8080, "protocol": "TCP"}]}),
                 "10.244.0.5:8080,10.244.0.6:8080", id="two-addresses"),
    pytest.param(endpoints({"addresses": addrs(*(f"10.244.0.{i}" for i in range(1, 6))),
                            "ports": [{"port": 80}]}),
                 "10.244.0.1:80,10.244.0.2:80,10.244.0.3:80 + 2 more...", id="first-three"),
    pytest.param(endpoints({"addresses": addrs("10.244.0.1", "10.244.0.2"),
                            "ports": [{"name": "http", "port": 80},
                                      {"name": "https", "port": 443}]}),
                 "10.244.0.1:80,10.244.0.2:80,10.244.0.1:443 + 1 more...",
                 id="every-port-of-every-address"),
    pytest.param(endpoints({"addresses": addrs("10.244.0.7")}), "10.244.0.7",
                 id="headless-without-ports"),
    pytest.param(endpoints({"addresses": addrs("fd00::7"), "ports": [{"port": 53}]}),
                 "[fd00::7]:53", id="ipv6-bracketed"),
    pytest.param(endpoints({"notReadyAddresses": addrs("10.244.0.8"), "ports": [{"port": 80}]}),
                 "", id="only-not-ready"),
    pytest.param(endpoints({"addresses": addrs("10.244.0.1", "10.244.0.2"),
                            "ports": [{"port": 80}]},
                           {"addresses": addrs("10.244.1.1", "10.244.1.2"),
                            "ports": [{"port": 81}]}),
                 "10.244.0.1:80,10.244.0.2:80,10.244.1.1:81 + 1 more...", id="across-subsets"),
]


@pytest.mark.parametrize(("obj", "want"), ENDPOINTS_CASES)
def test_endpoints_rows(obj: Obj, want: str) -> None:
    assert [c.name for c in columns_for("v1", "Endpoints")] == ["Name", "Endpoints", "Age"]
    assert cells("v1", "Endpoints", obj) == ["ep", want, AGE]


# =========================================================================== EndpointSlice


def slice_(ports: list[Obj] | None, *endpoint_addresses: list[str],
           address_type: str = "IPv4") -> Obj:
    obj: Obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": meta("web-abc12"), "addressType": address_type,
                "endpoints": [{"addresses": a} for a in endpoint_addresses]}
    if ports is not None:
        obj["ports"] = ports
    return obj


SLICE_CASES = [
    pytest.param(slice_([{"name": "http", "port": 8080, "protocol": "TCP"}],
                        ["10.244.0.5"], ["10.244.0.6"]),
                 ["web-abc12", "IPv4", "8080", "10.244.0.5,10.244.0.6", AGE], id="simple"),
    pytest.param(slice_(None), ["web-abc12", "IPv4", "<unset>", "<unset>", AGE],
                 id="no-ports-no-endpoints"),
    pytest.param(slice_([{"name": "dns"}, {}], ["10.244.0.5"]),
                 ["web-abc12", "IPv4", "dns,*", "10.244.0.5", AGE], id="port-name-or-star"),
    pytest.param(slice_([{"port": p} for p in (80, 443, 8080, 9090)],
                        *[[f"10.244.0.{i}"] for i in range(1, 6)]),
                 ["web-abc12", "IPv4", "80,443,8080 + 1 more...",
                  "10.244.0.1,10.244.0.2,10.244.0.3 + 2 more...", AGE], id="first-three"),
    pytest.param(slice_([{"port": 53}], ["fd00::1", "fd00::2"], address_type="IPv6"),
                 ["web-abc12", "IPv6", "53", "fd00::1,fd00::2", AGE], id="ipv6"),
]


@pytest.mark.parametrize(("obj", "want"), SLICE_CASES)
def test_endpointslice_rows(obj: Obj, want: list[Any]) -> None:
    assert [c.name for c in columns_for("discovery.k8s.io/v1", "EndpointSlice")] == [
        "Name", "AddressType", "Ports", "Endpoints", "Age"]
    assert cells("discovery.k8s.io/v1", "EndpointSlice", obj) == want


# ================================================================== Deployment, ReplicaSet

TEMPLATE = {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"},
                                    {"name": "sidecar", "image": "envoy:1.30"}]}}


def test_deployment_columns_and_rows() -> None:
    assert column_names("apps/v1", "Deployment") == [
        ("Name", 0), ("Ready", 0), ("Up-to-date", 0), ("Available", 0), ("Age", 0),
        ("Containers", 1), ("Images", 1), ("Selector", 1)]
    deploy = {"metadata": meta("web"),
              "spec": {"replicas": 3, "template": TEMPLATE,
                       "selector": {"matchLabels": {"app": "web"},
                                    "matchExpressions": [{"key": "tier", "operator": "In",
                                                          "values": ["fe", "be"]}]}},
              "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    assert cells("apps/v1", "Deployment", deploy) == [
        "web", "2/3", 3, 2, AGE, "web,sidecar", "nginx:1.27,envoy:1.30",
        "app=web,tier in (be,fe)"]


@pytest.mark.parametrize(("spec", "want"), [
    ({}, ["fresh", "0/1", 0, 0, AGE, "", "", ""]),
    ({"replicas": 0, "selector": {}}, ["fresh", "0/0", 0, 0, AGE, "", "", ""]),
    ({"selector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}},
     ["fresh", "0/1", 0, 0, AGE, "", "", "<invalid>"]),
], ids=["defaults-and-nil-selector", "zero-replicas-empty-selector", "invalid-selector"])
def test_deployment_edge_rows(spec: Obj, want: list[Any]) -> None:
    assert cells("apps/v1", "Deployment", {"metadata": meta("fresh"), "spec": spec}) == want


def test_replicaset_columns_and_rows() -> None:
    assert column_names("apps/v1", "ReplicaSet") == [
        ("Name", 0), ("Desired", 0), ("Current", 0), ("Ready", 0), ("Age", 0),
        ("Containers", 1), ("Images", 1), ("Selector", 1)]
    assert [c.type for c in columns_for("apps/v1", "ReplicaSet")][1:4] == ["integer"] * 3
    rs = {"metadata": meta("web-5d4f"),
          "spec": {"replicas": 3, "template": TEMPLATE,
                   "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d4f"}}},
          "status": {"replicas": 3, "readyReplicas": 1}}
    assert cells("apps/v1", "ReplicaSet", rs) == [
        "web-5d4f", 3, 3, 1, AGE, "web,sidecar", "nginx:1.27,envoy:1.30",
        "app=web,pod-template-hash=5d4f"]
    bare = {"metadata": meta("bare"), "spec": {"selector": {}}}
    assert cells("apps/v1", "ReplicaSet", bare) == ["bare", 1, 0, 0, AGE, "", "", "<none>"]
    invalid = {"metadata": meta("bad"),
               "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "X"}]}}}
    assert cells("apps/v1", "ReplicaSet", invalid)[-1] == "<error>"


# =================================================================================== Event

EVENT_COLUMNS = [("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0),
                 ("Subobject", 1), ("Source", 1), ("Message", 0), ("First Seen", 1),
                 ("Count", 1), ("Name", 1)]

EVENT_CASES = [
    pytest.param(
        {"metadata": meta("backend.1"), "type": "Normal", "reason": "Scheduled",
         "involvedObject": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{web}"},
         "message": "  Successfully assigned default/web-0 to node-1\n",
         "source": {"component": "default-scheduler"},
         "firstTimestamp": ts(600), "lastTimestamp": ts(30), "count": 4},
        ["30s", "Normal", "Scheduled", "pod/web-0", "spec.containers{web}",
         "default-scheduler", "Successfully assigned default/web-0 to node-1", "10m", 4,
         "backend.1"],
        id="classic"),
    pytest.param(
        {"metadata": meta("new.1"), "type": "Warning", "reason": "BackOff",
         "involvedObject": {"kind": "Pod", "name": "web-1"}, "message": "Back-off",
         "eventTime": "2025-11-27T16:58:00.123456Z", "reportingComponent": "kubelet",
         "reportingInstance": "node-1"},
        # MicroTime keeps the fraction: 119.88s ago is still "119s", not "2m".
        ["119s", "Warning", "BackOff", "pod/web-1", "", "kubelet, node-1", "Back-off", "119s",
         1, "new.1"],
        id="new-api-singleton-uses-event-time-and-count-1"),
    pytest.param(
        {"metadata": meta("series.1"), "type": "Warning", "reason": "Unhealthy",
         "involvedObject": {"kind": "Pod", "name": "web-2"}, "message": "probe failed",
         "eventTime": ts(3600), "series": {"count": 17, "lastObservedTime": ts(5)},
         "source": {"component": "kubelet", "host": "node-2"}},
        ["5s", "Warning", "Unhealthy", "pod/web-2", "", "kubelet, node-2", "probe failed",
         "60m", 17, "series.1"],
        id="series"),
    pytest.param(
        {"metadata": meta("ns.1"), "type": "Normal", "reason": "Created",
         "involvedObject": {"kind": "Namespace"}, "message": "x"},
        ["<unknown>", "Normal", "Created", "namespace", "", "", "x", "<unknown>", 1, "ns.1"],
        id="no-times-no-name"),
]


def test_event_columns() -> None:
    assert column_names("v1", "Event") == EVENT_COLUMNS
    assert column_names("events.k8s.io/v1", "Event") == EVENT_COLUMNS


@pytest.mark.parametrize(("obj", "want"), EVENT_CASES)
def test_event_rows(obj: Obj, want: list[Any]) -> None:
    assert cells("v1", "Event", obj) == want


def test_events_k8s_io_event_printed_as_core_event() -> None:
    event = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": meta("e.1"),
             "type": "Normal", "reason": "Pulled", "note": "Pulled image",
             "regarding": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{w}"},
             "eventTime": ts(90), "reportingController": "kubelet",
             "reportingInstance": "node-1", "deprecatedCount": 2,
             "deprecatedFirstTimestamp": ts(400), "deprecatedLastTimestamp": ts(20)}
    assert cells("events.k8s.io/v1", "Event", event) == [
        "20s", "Normal", "Pulled", "pod/web-0", "spec.containers{w}", "kubelet, node-1",
        "Pulled image", "6m40s", 2, "e.1"]


# =================================================================================== Lease


def test_lease_rows() -> None:
    assert [c.name for c in columns_for("coordination.k8s.io/v1", "Lease")] == [
        "Name", "Holder", "Age"]
    held = {"metadata": meta("svcnet-controller", "kube-system"),
            "spec": {"holderIdentity": "server-1_abc"}}
    free = {"metadata": meta("free", "kube-system"), "spec": {}}
    assert cells("coordination.k8s.io/v1", "Lease", held) == ["svcnet-controller",
                                                              "server-1_abc", AGE]
    assert cells("coordination.k8s.io/v1", "Lease", free) == ["free", "", AGE]


# ================================================================================= default


def test_default_table_for_unknown_kind() -> None:
    # A kind no test serves: in-process servers of other test modules (CRD tests serve
    # example.com's Widget) register their custom resources' columns process-wide.
    version, kind = "unprinted.example/v1", "Unprinted"
    cols = columns_for(version, kind)
    assert [(c.name, c.type, c.format) for c in cols] == [("Name", "string", "name"),
                                                          ("Created At", "date", "")]
    widget = {"metadata": {"name": "w", "creationTimestamp": "2025-11-27T18:00:00+01:00"}}
    assert cells(version, kind, widget) == ["w", "2025-11-27T17:00:00Z"]
    assert cells(version, kind, {"metadata": {"name": "z"}}) == ["z", "0001-01-01T00:00:00Z"]


# ======================================================================== Table structure


@pytest.mark.parametrize("res", resources.RESOURCES, ids=lambda r: f"{r.api_version}/{r.kind}")
def test_every_printer_fills_every_column(res: resources.Resource) -> None:
    table = table_for([{"metadata": meta("x")}], api_version=res.api_version, kind=res.kind,
                      now=NOW, resource_version="1")
    assert len(table["rows"][0]["cells"]) == len(table["columnDefinitions"])
    names = table["columnDefinitions"]
    # The name column carries format "name": that is what gives kubectl its "service/" prefix.
    assert any(c["name"] == "Name" and c["format"] == "name" for c in names)
    for col in names:
        assert set(col) == {"name", "type", "format", "description", "priority"}
        # Upstream describes RuntimeClass's Handler with ObjectMeta's doc of "handler": none.
        assert col["description"] or (res.kind, col["name"]) == ("RuntimeClass", "Handler")


def test_list_table_shape_with_partial_object_metadata() -> None:
    svc = service("backend", clusterIPs=["10.96.0.11"], ports=[{"port": 80}])
    svc["metadata"]["labels"] = {"app": "backend"}
    svc["metadata"]["annotations"] = {"note": "x"}
    table = table_for([svc, service("other")], api_version="v1", kind="Service", now=NOW,
                      resource_version="107")
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "107"}
    assert table["columnDefinitions"][0] == {
        "name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace.", "priority": 0}
    assert len(table["rows"]) == 2
    first = table["rows"][0]["object"]
    assert first == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                     "metadata": svc["metadata"]}
    assert first["metadata"] is not svc["metadata"]


def test_include_object_full_sets_type_and_copies() -> None:
    svc = service("backend")
    del svc["apiVersion"], svc["kind"]  # stored objects may lack their type
    table = table_for([svc], api_version="v1", kind="Service", include_object="Object",
                      now=NOW, resource_version="1")
    obj = table["rows"][0]["object"]
    assert obj["apiVersion"] == "v1"
    assert obj["kind"] == "Service"
    assert obj["spec"] == svc["spec"]
    obj["spec"]["type"] = "mutated"
    assert svc["spec"]["type"] == "ClusterIP"
    assert "apiVersion" not in svc


def test_include_object_none_and_invalid() -> None:
    table = table_for([service("a")], api_version="v1", kind="Service", include_object="None",
                      now=NOW, resource_version="1")
    assert table["rows"][0]["object"] is None
    with pytest.raises(ValueError, match="includeObject"):
        table_for([], api_version="v1", kind="Service", include_object="All", now=NOW,
                  resource_version="1")


def test_watch_event_table_without_column_definitions() -> None:
    table = table_for([service("a")], api_version="v1", kind="Service", now=NOW,
                      resource_version="108", with_column_definitions=False)
    assert "columnDefinitions" not in table
    assert table["metadata"] == {"resourceVersion": "108"}
    assert len(table["rows"]) == 1


def test_table_v1beta1_and_list_meta() -> None:
    table = table_for([service("a")], api_version="v1", kind="Service", now=NOW,
                      resource_version="9", table_version="v1beta1", continue_token="abc",
                      remaining_item_count=4)
    assert table["apiVersion"] == "meta.k8s.io/v1beta1"
    assert table["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"
    assert table["metadata"] == {"resourceVersion": "9", "continue": "abc",
                                 "remainingItemCount": 4}
    empty = table_for([], api_version="v1", kind="Service", now=NOW, resource_version="")
    assert empty["metadata"] == {}
    assert empty["rows"] == []


def test_naive_now_is_taken_as_utc() -> None:
    naive = NOW.replace(tzinfo=None)
    table = table_for([service("a")], api_version="v1", kind="Service", now=naive,
                      resource_version="1")
    assert table["rows"][0]["cells"][5] == AGE


def test_input_objects_are_not_mutated() -> None:
    objs = [pod("p", statuses=[running()]), service("s")]
    before = copy.deepcopy(objs)
    table_for(objs[:1], api_version="v1", kind="Pod", include_object="Object", now=NOW,
              resource_version="1")
    table_for(objs[1:], api_version="v1", kind="Service", now=NOW, resource_version="1")
    assert objs == before


# ============================================================================ negotiation

KUBECTL_TABLE_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                        "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")

NEGOTIATION_CASES = [
    pytest.param(KUBECTL_TABLE_ACCEPT, "v1", id="kubectl-get"),
    pytest.param("application/json;as=Table;v=v1beta1;g=meta.k8s.io", "v1beta1",
                 id="v1beta1-only"),
    pytest.param("application/json; as=Table; g=meta.k8s.io; v=v1", "v1", id="spaces"),
    pytest.param("application/json", None, id="plain-json"),
    pytest.param("", None, id="empty"),
    pytest.param(None, None, id="absent"),
    pytest.param("*/*", None, id="wildcard"),
    pytest.param("application/json, " + KUBECTL_TABLE_ACCEPT, None, id="json-first-wins"),
    pytest.param("application/json;q=0.9," + KUBECTL_TABLE_ACCEPT, "v1", id="quality-order"),
    pytest.param("application/json;as=Table;v=v1;g=meta.k8s.io;q=0,application/json", None,
                 id="q-zero-refused"),
    pytest.param("application/json;as=Table;v=v2;g=meta.k8s.io", None, id="unknown-version"),
    pytest.param("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,"
                 "application/json;as=Table;v=v1;g=meta.k8s.io", "v1",
                 id="other-as-skipped"),
    pytest.param("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,"
                 "application/json", None, id="protobuf-table-skipped"),
]


@pytest.mark.parametrize(("accept", "version"), NEGOTIATION_CASES)
def test_table_negotiation(accept: str | None, version: str | None) -> None:
    assert negotiate_table(accept) == version
    assert table_accepted(accept) is (version is not None)


def test_custom_resource_printer_columns() -> None:
    """additionalPrinterColumns (svcnet/apiserver/tables.py set_custom_columns): NAME, then
    each column; a date as an age; nothing found is an empty cell; no columns is Age."""
    now = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)
    obj = {"metadata": {"name": "w", "creationTimestamp": "2026-01-01T00:00:00Z"},
           "spec": {"size": 3, "tags": ["a"]},
           "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    set_custom_columns("x.example.com/v1", "Widget", [
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
        {"name": "Ready", "type": "string",
         "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Tags", "type": "string", "jsonPath": ".spec.tags", "priority": 1},
        {"name": "Missing", "type": "string", "jsonPath": ".spec.none"},
        {"name": "Created", "type": "date", "jsonPath": ".metadata.creationTimestamp"}])
    try:
        table = table_for([obj], api_version="x.example.com/v1", kind="Widget", now=now,
                          resource_version="1")
        assert [(c["name"], c["type"], c["priority"]) for c in table["columnDefinitions"]] == [
            ("Name", "string", 0), ("Size", "integer", 0), ("Ready", "string", 0),
            ("Tags", "string", 1), ("Missing", "string", 0), ("Created", "date", 0)]
        assert table["rows"][0]["cells"] == ["w", 3, "True", '["a"]', None, "60m"]
        set_custom_columns("x.example.com/v1", "Widget", [])
        table = table_for([obj], api_version="x.example.com/v1", kind="Widget", now=now,
                          resource_version="1")
        assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    finally:
        set_custom_columns("x.example.com/v1", "Widget", None)
    default = table_for([obj], api_version="x.example.com/v1", kind="Widget", now=now,
                        resource_version="1")
    assert [c["name"] for c in default["columnDefinitions"]] == ["Name", "Created At"]
