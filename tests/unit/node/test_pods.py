"""Pod planning (tables of named cases) and pod status (golden + tables).

Conventions: ``NOW`` is 2026-01-01T00:10:00Z; pods live in namespace ``default`` with UID
``uid-<name>``; node 1's pod CIDR is 10.244.1.0/24 and its host IP 172.20.0.11. A container
record is built with ``run(...)`` (running) or ``ended(...)`` (exited ``ago`` seconds before
``NOW``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Interface, IPv6Network
from pathlib import Path
from typing import Any

import pytest

from svcnet.node.pods import (
    ActualPod,
    BackoffEntry,
    ConfigError,
    NodeState,
    PodPlan,
    StartContainer,
    StopContainer,
    Waiting,
    container_process_spec,
    expand_vars,
    log_path,
    plan_pods,
    pod_status,
)
from svcnet.node.probes import ContainerProbeStatus
from svcnet.node.runtime import ContainerKey, ContainerProcess, Exited, Running
from svcnet.util.ipfamily import IPFamilies

Obj = dict[str, Any]
NOW = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
IP = IPv4Interface("10.244.1.5/24")
HOST_IP = "172.20.0.11"
GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("SVCNET_UPDATE_GOLDEN") == "1"


def make_pod(name: str = "web", fn: Callable[[Obj], None] | None = None) -> Obj:
    pod: Obj = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {"containers": [{"name": "app", "image": "python:3",
                                 "command": ["python3", "-m", "http.server"]}],
                 "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                 "nodeName": "node-1"},
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }
    if fn is not None:
        fn(pod)
    return pod


def policy(p: str) -> Callable[[Obj], None]:
    return lambda pod: pod["spec"].update(restartPolicy=p)


def deleted(grace: int | None = 5) -> Callable[[Obj], None]:
    def mark(pod: Obj) -> None:
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:09:00Z"
        if grace is not None:
            pod["metadata"]["deletionGracePeriodSeconds"] = grace
    return mark


def init_containers(*names: str) -> Callable[[Obj], None]:
    return lambda pod: pod["spec"].update(initContainers=[
        {"name": n, "image": "busybox", "command": ["true"]} for n in names])


def both(*fns: Callable[[Obj], None]) -> Callable[[Obj], None]:
    def apply(pod: Obj) -> None:
        for fn in fns:
            fn(pod)
    return apply


def run(name: str = "app", *, attempt: int = 0, ago: float = 60, pod: str = "web",
        previous: Exited | None = None) -> ContainerProcess:
    return ContainerProcess(ContainerKey(f"uid-{pod}", name), attempt,
                            Running(4242, NOW - timedelta(seconds=ago)), previous)


def ended(code: int | None, name: str = "app", *, attempt: int = 0, ago: float = 1,
          pod: str = "web", reason: str | None = None, message: str = "",
          previous: Exited | None = None) -> ContainerProcess:
    if reason is None:
        reason = "Unknown" if code is None else "Completed" if code == 0 else "Error"
    return ContainerProcess(ContainerKey(f"uid-{pod}", name), attempt, exit_state(
        code, ago=ago, reason=reason, message=message), previous)


def exit_state(code: int | None, *, ago: float = 1, ran: float = 30, reason: str = "Error",
               message: str = "") -> Exited:
    finished = NOW - timedelta(seconds=ago)
    return Exited(code, finished, reason, finished - timedelta(seconds=ran), message)


def actual(*procs: ContainerProcess, pod: str = "web", network: bool = True,
           probes: dict[str, ContainerProbeStatus] | None = None) -> ActualPod:
    return ActualPod(f"uid-{pod}", IP if network else None,
                     {p.key.container: p for p in procs}, probes or {})


def state(*pods: ActualPod, backoff: dict[ContainerKey, BackoffEntry] | None = None
          ) -> NodeState:
    return NodeState({p.uid: p for p in pods}, backoff or {})


APP = ContainerKey("uid-web", "app")
FINISHED = NOW - timedelta(seconds=1)


# --- planning ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("pod", "node", "expected"), [
    pytest.param(make_pod(), state(), PodPlan(
        setup_network=("uid-web",), start=(StartContainer("uid-web", "app", 0),)),
        id="new-pod-network-and-start"),
    pytest.param(make_pod(), state(actual()), PodPlan(
        start=(StartContainer("uid-web", "app", 0),)), id="network-ready-start"),
    pytest.param(make_pod(), state(actual(run())), PodPlan(), id="running-nothing-to-do"),
    pytest.param(make_pod(fn=lambda p: p["spec"].update(hostNetwork=True)),
                 state(actual(network=False)),
                 PodPlan(start=(StartContainer("uid-web", "app", 0),)),
                 id="host-network-needs-no-setup"),
    pytest.param(make_pod(), state(actual(ended(1))), PodPlan(
        start=(StartContainer("uid-web", "app", 1),),
        backoff={APP: BackoffEntry(10, FINISHED)}), id="first-crash-restarts-at-once"),
    pytest.param(make_pod(), state(actual(ended(1, attempt=1, ago=3)),
                                   backoff={APP: BackoffEntry(10, NOW - timedelta(seconds=40))}),
                 PodPlan(waiting=(Waiting(
                     "uid-web", "app", NOW + timedelta(seconds=7), "CrashLoopBackOff",
                     "back-off 10s restarting failed container=app pod=web_default(uid-web)"),),
                     backoff={APP: BackoffEntry(10, NOW - timedelta(seconds=40))}),
                 id="second-crash-waits-10s"),
    pytest.param(make_pod(), state(actual(ended(1, attempt=1, ago=10)),
                                   backoff={APP: BackoffEntry(10, NOW - timedelta(seconds=40))}),
                 PodPlan(start=(StartContainer("uid-web", "app", 2),),
                         backoff={APP: BackoffEntry(20, NOW - timedelta(seconds=10))}),
                 id="back-off-over-doubles"),
    pytest.param(make_pod(), state(actual(ended(1, attempt=9, ago=200)),
                                   backoff={APP: BackoffEntry(300, NOW - timedelta(seconds=500))}),
                 PodPlan(waiting=(Waiting(
                     "uid-web", "app", NOW + timedelta(seconds=100), "CrashLoopBackOff",
                     "back-off 5m0s restarting failed container=app pod=web_default(uid-web)"),),
                     backoff={APP: BackoffEntry(300, NOW - timedelta(seconds=500))}),
                 id="capped-at-five-minutes"),
    pytest.param(make_pod(), state(actual(ended(1, attempt=9, ago=1)),
                                   backoff={APP: BackoffEntry(300, NOW - timedelta(seconds=700))}),
                 PodPlan(start=(StartContainer("uid-web", "app", 10),),
                         backoff={APP: BackoffEntry(10, FINISHED)}),
                 id="stale-entry-forgotten-after-10-minutes"),
    pytest.param(make_pod(), state(actual(ended(128, reason="StartError"))), PodPlan(
        start=(StartContainer("uid-web", "app", 1),), backoff={APP: BackoffEntry(10, FINISHED)}),
        id="start-error-restarts-like-a-crash"),
    pytest.param(make_pod(fn=policy("OnFailure")), state(actual(ended(None))), PodPlan(
        start=(StartContainer("uid-web", "app", 1),), backoff={APP: BackoffEntry(10, FINISHED)}),
        id="on-failure-unknown-exit-restarts"),
    pytest.param(make_pod(fn=policy("OnFailure")), state(actual(ended(0))),
                 PodPlan(teardown_network=("uid-web",)), id="on-failure-success-is-final"),
    pytest.param(make_pod(fn=policy("Never")), state(actual(ended(1))),
                 PodPlan(teardown_network=("uid-web",)), id="never-failure-is-final"),
    pytest.param(make_pod(fn=policy("Never")), state(actual(ended(1), network=False)),
                 PodPlan(), id="final-without-network"),
    pytest.param(make_pod(fn=lambda p: p["status"].update(phase="Failed")),
                 state(actual(ended(1))), PodPlan(teardown_network=("uid-web",)),
                 id="reported-terminal-phase-sticks"),
    pytest.param(make_pod(), state(actual(run(), probes={"app": ContainerProbeStatus(
        ready=False, started=True, liveness_failed=True)})),
        PodPlan(stop=(StopContainer(
            "uid-web", "app", 30, "Container app failed liveness probe, will be restarted"),)),
        id="liveness-failure-kills"),
    pytest.param(make_pod(fn=policy("Never")), state(actual(run(), probes={
        "app": ContainerProbeStatus(ready=False, started=True, liveness_failed=True)})),
        PodPlan(stop=(StopContainer("uid-web", "app", 30,
                                    "Container app failed liveness probe"),)),
        id="liveness-failure-kills-for-good-with-policy-never"),
    pytest.param(make_pod(fn=lambda p: p["spec"]["containers"][0].update(
        startupProbe={"exec": {"command": ["x"]}, "terminationGracePeriodSeconds": 3})),
        state(actual(run(), probes={"app": ContainerProbeStatus(
            ready=False, started=False, startup_failed=True)})),
        PodPlan(stop=(StopContainer(
            "uid-web", "app", 3, "Container app failed startup probe, will be restarted"),)),
        id="startup-failure-kills-with-probe-grace"),
    pytest.param(make_pod(fn=deleted(5)), state(actual(run())),
                 PodPlan(stop=(StopContainer("uid-web", "app", 5, "Stopping container app"),)),
                 id="deleted-stops-with-deletion-grace"),
    pytest.param(make_pod(fn=both(deleted(None), lambda p: p["spec"].pop(
        "terminationGracePeriodSeconds"))), state(actual(run())),
        PodPlan(stop=(StopContainer("uid-web", "app", 30, "Stopping container app"),)),
        id="deleted-default-grace"),
    pytest.param(make_pod(fn=deleted()), state(actual(ended(143))),
                 PodPlan(teardown_network=("uid-web",), finished=("uid-web",)),
                 id="deleted-and-stopped-is-finished"),
    pytest.param(make_pod(fn=init_containers("i1", "i2")), state(), PodPlan(
        setup_network=("uid-web",), start=(StartContainer("uid-web", "i1", 0, init=True),)),
        id="init-first"),
    pytest.param(make_pod(fn=init_containers("i1", "i2")), state(actual(run("i1"))), PodPlan(),
                 id="init-running-blocks"),
    pytest.param(make_pod(fn=init_containers("i1", "i2")), state(actual(ended(0, "i1"))),
                 PodPlan(start=(StartContainer("uid-web", "i2", 0, init=True),)),
                 id="init-next"),
    pytest.param(make_pod(fn=init_containers("i1")), state(actual(ended(0, "i1"))),
                 PodPlan(start=(StartContainer("uid-web", "app", 0),)), id="init-done-app"),
    pytest.param(make_pod(fn=init_containers("i1")), state(actual(ended(2, "i1"))), PodPlan(
        start=(StartContainer("uid-web", "i1", 1, init=True),),
        backoff={ContainerKey("uid-web", "i1"): BackoffEntry(10, FINISHED)}),
        id="init-failure-restarts"),
    pytest.param(make_pod(fn=both(init_containers("i1"), policy("Never"))),
                 state(actual(ended(2, "i1"))), PodPlan(teardown_network=("uid-web",)),
                 id="init-failure-never-fails-pod"),
])
def test_plan(pod: Obj, node: NodeState, expected: PodPlan) -> None:
    assert plan_pods([pod], node, NOW) == expected


def test_plan_forgets_pods_no_longer_bound() -> None:
    gone = actual(run(pod="old"), pod="old")
    plan = plan_pods([make_pod()], state(actual(run()), gone), NOW)
    assert plan.forget == ("uid-old",)
    assert plan.start == ()


def test_plan_is_level_triggered() -> None:
    """Applying a plan's starts and planning again plans nothing more."""
    pod = make_pod(fn=init_containers("i1"))
    first = plan_pods([pod], state(actual(ended(0, "i1"))), NOW)
    assert first.start == (StartContainer("uid-web", "app", 0),)
    after = state(actual(ended(0, "i1"), run()), backoff=dict(first.backoff))
    assert plan_pods([pod], after, NOW).empty


def test_plan_next_wakeup_is_the_earliest_back_off() -> None:
    pods = [make_pod("a"), make_pod("b")]
    node = state(
        actual(ended(1, attempt=3, pod="a", ago=1), pod="a"),
        actual(ended(1, attempt=3, pod="b", ago=5), pod="b"),
        backoff={ContainerKey("uid-a", "app"): BackoffEntry(40, NOW - timedelta(seconds=60)),
                 ContainerKey("uid-b", "app"): BackoffEntry(40, NOW - timedelta(seconds=60))})
    plan = plan_pods(pods, node, NOW)
    assert plan.next_wakeup == NOW + timedelta(seconds=35)


# --- status -------------------------------------------------------------------------------------

READY = ContainerProbeStatus(ready=True, started=True)
UNREADY = ContainerProbeStatus(ready=False, started=True, message="connection refused")

STATUS_CASES: dict[str, tuple[Obj, ActualPod | None, dict[str, tuple[str, str]]]] = {
    "new-pod": (make_pod(), None, {}),
    "running-ready": (make_pod(), actual(run(),
                                         probes={"app": READY}), {}),
    "running-unready": (make_pod(), actual(run(), probes={"app": UNREADY}), {}),
    "crash-loop": (make_pod(), actual(ended(1, attempt=2, previous=exit_state(1, ago=30))),
                   {"app": ("CrashLoopBackOff", "back-off 20s restarting failed container=app "
                                                "pod=web_default(uid-web)")}),
    "restarted-running": (make_pod(), actual(run(attempt=1, ago=5,
                                                 previous=exit_state(137, ago=6)),
                                             probes={"app": READY}), {}),
    "never-failed": (make_pod(fn=policy("Never")), actual(ended(2), network=False), {}),
    "on-failure-succeeded": (make_pod(fn=policy("OnFailure")), actual(ended(0)), {}),
    "start-error-never": (make_pod(fn=policy("Never")), actual(ended(
        128, reason="StartError",
        message='failed to start container process: exec: "nope": executable file not '
                "found in $PATH")), {}),
    "start-error-always": (make_pod(), actual(ended(
        128, reason="StartError",
        message='failed to start container process: exec: "nope": executable file not '
                "found in $PATH")), {}),
    "unknown-exit": (make_pod(fn=policy("Never")), actual(ended(None, message="lost")), {}),
    "config-error": (make_pod(), actual(), {"app": ("CreateContainerConfigError",
                                                    "secretKeyRef is not supported")}),
    "init-running": (make_pod(fn=init_containers("i1", "i2")), actual(run("i1")), {}),
    "init-done": (make_pod(fn=init_containers("i1")), actual(ended(0, "i1"), run(),
                                                               probes={"app": READY}), {}),
    "deleted-stopped": (make_pod(fn=deleted()), actual(ended(143)), {}),
    "host-network": (make_pod(fn=lambda p: p["spec"].update(hostNetwork=True)),
                     actual(run(), network=False), {}),
}


def test_pod_status_golden() -> None:
    out = {name: pod_status(pod, ap, now=NOW, host_ip=HOST_IP, waiting=waiting)
           for name, (pod, ap, waiting) in STATUS_CASES.items()}
    text = json.dumps(out, indent=1, sort_keys=True) + "\n"
    path = GOLDEN / "pod_status.json"
    if UPDATE:
        path.write_text(text)
    assert json.loads(text) == json.loads(path.read_text())


@pytest.mark.parametrize(("case", "phase", "ready", "reason"), [
    ("new-pod", "Pending", "False", "ContainersNotReady"),
    ("running-ready", "Running", "True", None),
    ("running-unready", "Running", "False", "ContainersNotReady"),
    ("crash-loop", "Running", "False", "ContainersNotReady"),
    ("never-failed", "Failed", "False", "PodFailed"),
    ("on-failure-succeeded", "Succeeded", "False", "PodCompleted"),
    ("start-error-never", "Failed", "False", "PodFailed"),
    ("start-error-always", "Running", "False", "ContainersNotReady"),
    ("config-error", "Pending", "False", "ContainersNotReady"),
    ("init-running", "Pending", "False", "ContainersNotReady"),
    ("init-done", "Running", "True", None),
    ("deleted-stopped", "Failed", "False", "PodFailed"),
    ("host-network", "Running", "True", None),
])
def test_pod_status_phase_and_ready(case: str, phase: str, ready: str, reason: str | None
                                    ) -> None:
    pod, ap, waiting = STATUS_CASES[case]
    status = pod_status(pod, ap, now=NOW, host_ip=HOST_IP, waiting=waiting)
    assert status["phase"] == phase
    cond = {c["type"]: c for c in status["conditions"]}
    assert [c["type"] for c in status["conditions"]] == [
        "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    assert cond["Ready"]["status"] == ready
    assert cond["Ready"].get("reason") == reason


def test_status_keeps_transition_times_and_foreign_conditions() -> None:
    pod = make_pod()
    first = pod_status(pod, actual(run(), probes={"app": READY}), now=NOW, host_ip=HOST_IP)
    pod["status"] = {**first, "conditions": [*first["conditions"], {
        "type": "example.com/gate", "status": "True"}]}
    later = NOW + timedelta(minutes=5)
    second = pod_status(pod, actual(run(), probes={"app": UNREADY}), now=later, host_ip=HOST_IP)
    cond = {c["type"]: c for c in second["conditions"]}
    assert cond["PodScheduled"]["lastTransitionTime"] == "2026-01-01T00:10:00Z"
    assert cond["Ready"]["lastTransitionTime"] == "2026-01-01T00:15:00Z"
    assert cond["example.com/gate"]["status"] == "True"
    assert second["startTime"] == "2026-01-01T00:10:00Z"


def test_status_keeps_pod_ip_after_teardown_and_terminal_phase() -> None:
    pod = make_pod(fn=policy("Never"))
    pod["status"] = {"phase": "Failed", "podIP": "10.244.1.5"}
    status = pod_status(pod, actual(ended(1), network=False), now=NOW, host_ip=HOST_IP)
    assert (status["phase"], status["podIP"]) == ("Failed", "10.244.1.5")


def test_dual_stack_pod_ips_follow_the_ipv4_address() -> None:
    pod = make_pod()
    cidr6 = IPv6Network("fd00:10:244:1::/64")
    status = pod_status(pod, actual(run()), now=NOW, host_ip=HOST_IP, pod_cidr6=cidr6)
    assert status["podIP"] == str(IP.ip)
    offset = int(IP.ip) - int(IP.network.network_address)
    assert status["podIPs"] == [{"ip": str(IP.ip)}, {"ip": f"fd00:10:244:1::{offset:x}"}]
    # After teardown the last reported pair stays; single stack never gets a second one.
    pod["status"] = status
    kept = pod_status(pod, actual(ended(0), network=False), now=NOW, host_ip=HOST_IP,
                      pod_cidr6=cidr6)
    assert kept["podIPs"] == status["podIPs"]
    single = pod_status(make_pod(), actual(run()), now=NOW, host_ip=HOST_IP)
    assert single["podIPs"] == [{"ip": str(IP.ip)}]


def test_ipv6_single_stack_pod_shows_only_its_ipv6_address() -> None:
    pod = make_pod()
    cidr6 = IPv6Network("fd00:10:244:1::/64")
    offset = int(IP.ip) - int(IP.network.network_address)
    status = pod_status(pod, actual(run()), now=NOW, host_ip="fd00:172:20::11",
                        pod_cidr6=cidr6, families=IPFamilies("ipv6"))
    # The IPv4 address stays the pod's internal one: neither podIP nor podIPs names it.
    assert status["podIP"] == f"fd00:10:244:1::{offset:x}"
    assert status["podIPs"] == [{"ip": status["podIP"]}]
    assert (status["hostIP"], status["hostIPs"]) == ("fd00:172:20::11",
                                                     [{"ip": "fd00:172:20::11"}])
    pod["status"] = status
    kept = pod_status(pod, actual(ended(0), network=False), now=NOW,
                      host_ip="fd00:172:20::11", pod_cidr6=cidr6, families=IPFamilies("ipv6"))
    assert kept["podIPs"] == status["podIPs"]


def test_readiness_gates() -> None:
    pod = make_pod(fn=lambda p: p["spec"].update(readinessGates=[
        {"conditionType": "example.com/lb"}]))
    status = pod_status(pod, actual(run(), probes={"app": READY}), now=NOW, host_ip=HOST_IP)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ReadinessGatesNotReady"
    assert ready["message"] == ('corresponding condition of pod readiness gate "example.com/lb" '
                                "does not exist.")


# --- process specs, logs, DNS ----------------------------------------------------------------


@pytest.mark.parametrize(("text", "env", "out"), [
    ("$(A)-$(B)", {"A": "1"}, "1-$(B)"),
    ("$$(A) $$", {"A": "1"}, "$(A) $"),
    ("$(A", {"A": "1"}, "$(A"),
    ("x$(A)y", {"A": "$(B)"}, "x$(B)y"),
])
def test_expand_vars(text: str, env: dict[str, str], out: str) -> None:
    assert expand_vars(text, env) == out


def test_container_process_spec() -> None:
    pod = make_pod(fn=lambda p: p["metadata"].update(labels={"app": "web"}))
    container = {"name": "app", "command": ["sh", "-c"], "args": ["echo $(GREETING) $(POD_IP)"],
                 "workingDir": "/srv",
                 "env": [{"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                         {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                         {"name": "GREETING", "value": "hello-$(NAME)"},
                         {"name": "APP", "valueFrom": {"fieldRef": {
                             "fieldPath": "metadata.labels['app']"}}},
                         {"name": "OPT", "valueFrom": {"secretKeyRef": {
                             "name": "s", "key": "k", "optional": True}}}]}
    spec = container_process_spec(
        pod, container, netns="svcnet-t4-pabcd", log_file=Path("/l/0.log"), attempt=3,
        pod_ip="10.244.1.5", host_ip=HOST_IP, node_name="node-1",
        service_env={"KUBERNETES_SERVICE_HOST": "10.96.0.1"})
    assert spec.argv == ("sh", "-c", "echo hello-web 10.244.1.5")
    assert spec.env["HOSTNAME"] == "web"
    assert spec.env["APP"] == "web"
    assert spec.env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert "OPT" not in spec.env
    assert (spec.netns, spec.working_dir, spec.attempt) == ("svcnet-t4-pabcd", "/srv", 3)


@pytest.mark.parametrize("env", [
    pytest.param([{"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                 id="secret"),
    pytest.param([{"name": "F", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}],
                 id="bad-field"),
])
def test_container_process_spec_config_errors(env: list[Obj]) -> None:
    with pytest.raises(ConfigError):
        container_process_spec(make_pod(), {"name": "app", "command": ["x"], "env": env},
                               netns=None, log_file=Path("/l"), attempt=0, pod_ip="",
                               host_ip=HOST_IP, node_name="node-1")


def test_log_path() -> None:
    assert log_path(Path("/s"), "uid-web", "app", 2) == Path("/s/pods/uid-web/app/2.log")
    with pytest.raises(ValueError):
        log_path(Path("/s"), "..", "app", 0)
