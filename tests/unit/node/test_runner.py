"""The pod runner over fakes: FakeNetwork, FakeRuntime, a scripted probe executor, a real
IPAM in a temporary directory, and a FakeClock.

Conventions as in test_pods: cluster ``t4``, node 1 (netns ``svcnet-t4-n1``, pod CIDR
10.244.1.0/24, host IP 172.20.0.11); pods ``web`` and ``api`` in namespace ``default`` with
UID ``uid-<name>``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from svcnet.node.ipam import PodIPAM
from svcnet.node.netns import CommandFailed, FakeNetwork
from svcnet.node.podnetwork import FakePodNetwork
from svcnet.node.probes import ProbeAction, ProbeContext, ProbeManager, ProbeOutcome
from svcnet.node.resourceusage import ResourceCollector
from svcnet.node.runner import NodeConfig, PodRunner
from svcnet.node.runtime import ContainerKey, Exited, FakeRuntime, Running
from svcnet.node.volumes import TokenKey, VolumeError
from svcnet.util.clock import FakeClock
from tests.fakecri import FakeCri, FakeCriState

Obj = dict[str, Any]
NODE_NETNS = "svcnet-t4-n1"


async def settle() -> None:
    for _ in range(30):
        await asyncio.sleep(0)


class Prober:
    """Every probe succeeds unless its port is in ``failing``."""

    def __init__(self) -> None:
        self.failing: set[int] = set()
        self.calls: list[tuple[ProbeAction, ProbeContext]] = []

    async def run(self, action: ProbeAction, ctx: ProbeContext) -> ProbeOutcome:
        self.calls.append((action, ctx))
        port = getattr(action, "port", 0)
        return ProbeOutcome(port not in self.failing, "refused" if port in self.failing else "")

    async def close(self) -> None:
        pass


@dataclass
class Node:
    tmp: Path
    clock: FakeClock = field(default_factory=FakeClock)
    network: FakeNetwork = field(default_factory=FakeNetwork)
    prober: Prober = field(default_factory=Prober)
    changes: list[str] = field(default_factory=list)
    objects: dict[tuple[str, str, str], Obj] = field(default_factory=dict)
    """ConfigMaps and Secrets by (kind, namespace, name): what the runner's lookup sees."""
    tokens: dict[TokenKey, str] = field(default_factory=dict)
    """ServiceAccount tokens: what the runner's token lookup sees."""
    runtime: FakeRuntime | None = None
    runner: PodRunner | None = None
    cri_state: FakeCriState | None = None
    """Set: pods run on a (fake) CRI runtime."""
    cri: FakeCri | None = None
    resolv_conf: Path | None = None
    """The node's resolv.conf (NodeConfig.resolv_conf)."""

    def token(self, key: TokenKey) -> str:
        if key not in self.tokens:
            raise VolumeError(f'failed to fetch token: serviceaccounts "{key.service_account}" '
                              "not found")
        return self.tokens[key]

    @property
    def config(self) -> NodeConfig:
        return NodeConfig(cluster="t4", node_name="node-1", node_index=1,
                          pod_cidr=IPv4Network("10.244.1.0/24"), host_ip="172.20.0.11",
                          state_dir=self.tmp / "state", cluster_dns=("10.96.0.10",),
                          resolv_conf=self.resolv_conf)

    async def boot(self) -> PodRunner:
        """Start an agent; a second call is an agent restart over the same machine."""
        if self.runner is not None:
            await self.runner.close()
        self.runtime = (FakeRuntime(self.clock) if self.runtime is None
                        else self.runtime.restarted())
        ipam = PodIPAM(self.config.pod_cidr, self.config.state_dir / "ipam.json")
        if self.cri_state is not None:
            self.cri = FakeCri(self.clock, self.cri_state)
        self.runner = PodRunner(
            self.config, network=self.network, runtime=self.runtime,
            probes=ProbeManager(self.prober, self.clock), ipam=ipam,
            clock=self.clock, on_change=self.changes.append,
            objects=lambda kind, ns, name: self.objects.get((kind, ns, name)),
            tokens=self.token, cri=self.cri,
            pod_network=FakePodNetwork(self.network, ipam, self.config.names,
                                       self.config.node_netns))
        await self.runner.start()
        return self.runner

    async def advance(self, seconds: float, step: float = 0.5) -> None:
        await settle()
        for _ in range(int(seconds / step)):
            self.clock.advance(step)
            await settle()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    n = Node(tmp_path)
    await n.boot()
    yield n
    assert n.runner is not None
    await n.runner.close()


@pytest.fixture
async def cri_node(tmp_path: Path) -> AsyncIterator[Node]:
    n = Node(tmp_path, cri_state=FakeCriState())
    await n.boot()
    yield n
    assert n.runner is not None
    await n.runner.close()


def make_pod(name: str = "web", fn: Callable[[Obj], None] | None = None) -> Obj:
    pod: Obj = {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {"containers": [{
            "name": "app", "image": "python:3",
            "command": ["python3", "-m", "http.server", "8080"],
            "env": [{"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"port": "http"}, "periodSeconds": 1},
        }], "restartPolicy": "Always", "terminationGracePeriodSeconds": 30},
        "status": {"phase": "Pending"},
    }
    if fn is not None:
        fn(pod)
    return pod


def key(pod: str = "web", container: str = "app") -> ContainerKey:
    return ContainerKey(f"uid-{pod}", container)


def told(runner: PodRunner, event_type: str = "") -> list[tuple[str, str, str, str]]:
    """The events the runner queued (of one type): (type, reason, message, fieldPath)."""
    return [(e.type, e.reason, e.message, e.field_path) for e in runner.events
            if e.type == event_type or not event_type]


def cstatus(node: Node, pod: Obj) -> Obj:
    assert node.runner is not None
    status: Obj = node.runner.status(pod)
    return status["containerStatuses"][0]  # type: ignore[no-any-return]


async def test_pod_dns_from_the_nodes_resolv_conf_with_the_kubelets_warnings(
        tmp_path: Path) -> None:
    host = tmp_path / "node-resolv.conf"
    host.write_text("search corp.example\nnameserver 192.0.2.53\noptions edns0\n")
    node = Node(tmp_path, resolv_conf=host)
    runner = await node.boot()
    try:
        default = make_pod("web", lambda p: p["spec"].update(dnsPolicy="Default"))
        crowded = make_pod("api", lambda p: p["spec"].update(
            dnsConfig={"nameservers": ["1.1.1.1", "8.8.8.8", "9.9.9.9"]}))
        await runner.sync([default, crowded])

        def resolv(uid: str) -> str:
            return str(node.network.ns(node.config.pod_names(uid).pod_netns).etc[
                "resolv.conf"])

        assert resolv("uid-web") == host.read_text()
        assert resolv("uid-api") == (
            "search default.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
            "nameserver 10.96.0.10\nnameserver 1.1.1.1\nnameserver 8.8.8.8\n"
            "options ndots:5\n")
        assert told(runner, "Warning") == [
            ("Warning", "DNSConfigForming", "Nameserver limits were exceeded, some nameservers "
             "have been omitted, the applied nameserver line is: 10.96.0.10 1.1.1.1 8.8.8.8",
             "")]
        # A node resolv.conf the kubelet cannot parse holds new pods' networks back.
        host.write_text("nameserver\n")
        db = make_pod("db")
        await runner.sync([default, crowded, db])
        assert node.config.pod_names("uid-db").pod_netns not in node.network.namespaces
        assert node.runtime is not None and key("db") not in node.runtime.specs
    finally:
        await runner.close()


async def test_two_pods_get_network_process_and_readiness(node: Node) -> None:
    runner, runtime = node.runner, node.runtime
    assert runner is not None and runtime is not None
    node_ns = node.network.ns(NODE_NETNS)
    assert node_ns.links["svcnet0"].addresses == [IPv4Interface("10.244.1.1/24")]
    # Forwarding, and bridged packets through the inet hooks (Service NAT, NetworkPolicies).
    assert node_ns.sysctls == {"net.ipv4.ip_forward": "1",
                               "net.bridge.bridge-nf-call-iptables": "1",
                               "net.bridge.bridge-nf-call-ip6tables": "1"}

    web, api = make_pod("web"), make_pod("api")
    result = await runner.sync([web, api])
    assert result.retry_after is None
    names = {uid: node.config.pod_names(uid) for uid in ("uid-web", "uid-api")}
    eth0 = node.network.ns(names["uid-web"].pod_netns).links["eth0"]
    assert eth0.addresses == [IPv4Interface("10.244.1.2/24")]
    assert node.network.ns(names["uid-api"].pod_netns).links["eth0"].addresses == [
        IPv4Interface("10.244.1.3/24")]
    assert "nameserver 10.96.0.10" in node.network.ns(names["uid-web"].pod_netns).etc[
        "resolv.conf"]
    spec = runtime.specs[key("web")]
    assert spec.argv == ("python3", "-m", "http.server", "8080")
    assert spec.netns == names["uid-web"].pod_netns
    assert spec.env["MY_IP"] == "10.244.1.2"
    assert spec.log_path == node.config.state_dir / "pods/uid-web/app/0.log"

    assert runner.status(web)["conditions"][2] | {"lastTransitionTime": ""} == {
        "type": "Ready", "status": "False", "reason": "ContainersNotReady",
        "message": "containers with unready status: [app]", "lastProbeTime": None,
        "lastTransitionTime": ""}
    await node.advance(0.5)
    status = runner.status(web)
    assert status["phase"] == "Running" and status["podIP"] == "10.244.1.2"
    assert cstatus(node, web)["ready"] is True
    assert "uid-web" in node.changes  # the readiness flip woke the agent
    action, ctx = node.prober.calls[0]
    assert (getattr(action, "port", None), ctx.pod_ip) == (8080, "10.244.1.2")
    assert (await runner.sync([web, api])).plan.empty  # level-triggered: nothing more


async def test_a_kernel_without_br_netfilter_is_a_warning_not_a_failure(
        node: Node, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Without br_netfilter (no /proc/sys/net/bridge) the node still runs pods; the agent says
    what is lost."""
    runner = node.runner
    assert runner is not None
    real = node.network.set_sysctl

    async def no_bridge(netns: str, key: str, value: str) -> None:
        if key.startswith("net.bridge."):
            raise FileNotFoundError(2, "No such file or directory", key)
        await real(netns, key, value)

    monkeypatch.setattr(node.network, "set_sysctl", no_bridge)
    await runner.ensure_node_network()
    assert "is br_netfilter loaded?" in caplog.text
    assert node.network.ns(NODE_NETNS).sysctls["net.ipv4.ip_forward"] == "1"


async def test_crash_loop_back_off(node: Node) -> None:
    runner, runtime = node.runner, node.runtime
    assert runner is not None and runtime is not None
    web = make_pod()
    await runner.sync([web])
    runtime.exit(key(), 1)
    assert node.changes[-1] == "uid-web"
    await runner.sync([web])  # first restart: at once
    proc = runtime.get(key())
    assert proc is not None and proc.running and proc.attempt == 1
    runtime.exit(key(), 1)
    result = await runner.sync([web])
    assert result.retry_after == 10
    state = cstatus(node, web)
    assert state["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert state["lastState"]["terminated"]["exitCode"] == 1
    assert state["restartCount"] == 1
    await node.advance(10)
    await runner.sync([web])
    proc = runtime.get(key())
    assert proc is not None and proc.running and proc.attempt == 2
    assert cstatus(node, web)["restartCount"] == 2


async def test_liveness_failure_restarts_the_container(node: Node) -> None:
    runner, runtime = node.runner, node.runtime
    assert runner is not None and runtime is not None
    web = make_pod(fn=lambda p: p["spec"]["containers"][0].update(
        livenessProbe={"tcpSocket": {"port": 9999}, "periodSeconds": 1, "failureThreshold": 2}))
    node.prober.failing.add(9999)
    await runner.sync([web])
    await node.advance(1.5)
    result = await runner.sync([web])
    assert [s.message for s in result.plan.stop] == [
        "Container app failed liveness probe, will be restarted"]
    await runner.wait_stopped()
    await runner.sync([web])
    proc = runtime.get(key())
    assert proc is not None and proc.running and proc.attempt == 1
    assert proc.previous is not None and proc.previous.exit_code == 143


APP = "spec.containers{app}"
CREATED_STARTED = [("Normal", "Created", "Created container: app", APP),
                   ("Normal", "Started", "Started container app", APP)]


async def test_events_of_a_crash_loop(node: Node) -> None:
    runner, runtime = node.runner, node.runtime
    assert runner is not None and runtime is not None
    web = make_pod()
    await runner.sync([web])
    assert told(runner) == CREATED_STARTED
    runner.events.clear()
    runtime.exit(key(), 1)
    await runner.sync([web])  # the first restart is immediate: no back-off
    assert told(runner) == CREATED_STARTED
    runner.events.clear()
    runtime.exit(key(), 1)
    backoff = ("Warning", "BackOff",
               "Back-off restarting failed container app in pod web_default(uid-web)", APP)
    await runner.sync([web])
    await node.advance(5)
    await runner.sync([web])  # once per back-off step, not per sync
    assert told(runner) == [backoff]
    runner.events.clear()
    await node.advance(5)
    await runner.sync([web])
    assert told(runner) == CREATED_STARTED
    runner.events.clear()
    runtime.exit(key(), 1)
    await runner.sync([web])  # the next step (20 s): told again
    assert told(runner) == [backoff]


async def test_events_of_a_liveness_failure(node: Node) -> None:
    runner, runtime = node.runner, node.runtime
    assert runner is not None and runtime is not None
    web = make_pod(fn=lambda p: p["spec"]["containers"][0].update(
        livenessProbe={"tcpSocket": {"port": 9999}, "periodSeconds": 1, "failureThreshold": 2}))
    node.prober.failing.add(9999)
    await runner.sync([web])
    await node.advance(1.5)
    await runner.sync([web])
    await runner.wait_stopped()
    await runner.sync([web])
    unhealthy = ("Warning", "Unhealthy", "Liveness probe failed: refused", APP)
    assert told(runner) == [
        *CREATED_STARTED, unhealthy, unhealthy,
        ("Normal", "Killing", "Container app failed liveness probe, will be restarted", APP),
        *CREATED_STARTED]


async def test_events_of_an_init_container_and_a_start_error(node: Node) -> None:
    runner, runtime = node.runner, node.runtime
    assert runner is not None and runtime is not None
    runtime.missing_executables.add("nope")
    web = make_pod(fn=lambda p: p["spec"].update(initContainers=[
        {"name": "init", "image": "python:3", "command": ["nope"]}]))
    await runner.sync([web])
    init = "spec.initContainers{init}"
    assert told(runner) == [
        ("Normal", "Created", "Created container: init", init),
        ("Warning", "Failed", 'Error: failed to start container process: exec: "nope": '
                              "executable file not found in $PATH", init)]


async def test_deleted_pod_stops_then_finishes(node: Node) -> None:
    runner, runtime = node.runner, node.runtime
    assert runner is not None and runtime is not None
    web = make_pod()
    await runner.sync([web])
    runtime.ignores_sigterm.add(key())
    web["metadata"] |= {"deletionTimestamp": "2026-01-01T00:00:00Z",
                        "deletionGracePeriodSeconds": 5}
    runner.events.clear()
    result = await runner.sync([web])
    assert result.plan.stop[0].grace == 5
    assert told(runner) == [("Normal", "Killing", "Stopping container app", APP)]
    await node.advance(5)
    await runner.wait_stopped()
    proc = runtime.get(key())
    assert proc is not None and isinstance(proc.state, Exited) and proc.state.exit_code == 137
    result = await runner.sync([web])
    assert result.plan.finished == ("uid-web",)
    assert node.config.pod_names("uid-web").pod_netns not in node.network.namespaces
    assert runner.ipam.get("uid-web") is None
    assert runner.status(web)["phase"] == "Failed"


async def test_vanished_pod_is_forgotten(node: Node) -> None:
    runner, runtime = node.runner, node.runtime
    assert runner is not None and runtime is not None
    await runner.sync([make_pod("web"), make_pod("api")])
    assert (node.config.state_dir / "pods" / "uid-web").is_dir()
    result = await runner.sync([make_pod("api")])
    assert result.plan.forget == ("uid-web",)
    assert runtime.get(key()) is None
    assert runner.ipam.get("uid-web") is None
    assert node.config.pod_names("uid-web").pod_netns not in node.network.namespaces
    assert not (node.config.state_dir / "pods" / "uid-web").exists()
    assert runtime.get(key("api")) is not None


async def test_agent_restart_adopts_without_duplicates(node: Node) -> None:
    runner, runtime = node.runner, node.runtime
    assert runner is not None and runtime is not None
    pods = [make_pod("web"), make_pod("api")]
    await runner.sync(pods)
    pids = {k: p.state.pid for p in runtime.containers()
            for k in [p.key] if isinstance(p.state, Running)}
    await node.advance(0.5)

    again = await node.boot()
    result = await again.sync(pods)
    assert result.plan.empty
    assert node.runtime is not None and node.runtime.calls == []  # nothing started
    assert {p.key: p.state.pid for p in node.runtime.containers()
            if isinstance(p.state, Running)} == pids
    assert again.ipam.get("uid-web") == IPv4Interface("10.244.1.2/24")
    await node.advance(0.5)
    assert cstatus(node, pods[0])["ready"] is True  # probes re-attached to adopted runs


async def test_network_failure_is_retried(node: Node) -> None:
    runner, runtime = node.runner, node.runtime
    assert runner is not None and runtime is not None
    node.network.fail_next["create_veth"] = CommandFailed("RTNETLINK answers: boom")
    web = make_pod()
    result = await runner.sync([web])
    assert result.retry_after == 5
    assert runtime.calls == []
    assert node.config.pod_names("uid-web").pod_netns not in node.network.namespaces
    assert cstatus(node, web)["state"] == {"waiting": {"reason": "ContainerCreating"}}
    await runner.sync([web])
    assert runtime.get(key()) is not None


async def test_netns_name_collision_never_touches_the_other(node: Node) -> None:
    runner = node.runner
    assert runner is not None
    other = node.config.pod_names("uid-web").pod_netns
    await node.network.create_netns(other)  # someone else's pod with the same hash
    result = await runner.sync([make_pod()])
    assert result.retry_after == 5
    assert other in node.network.namespaces
    assert runner.ipam.get("uid-web") is None
    assert "already exists" in runner.errors("uid-web")["network"]


async def test_config_error_waits_until_the_object_and_key_exist(node: Node) -> None:
    runner, runtime = node.runner, node.runtime
    assert runner is not None and runtime is not None
    web = make_pod(fn=lambda p: p["spec"]["containers"][0].update(
        env=[{"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]))
    result = await runner.sync([web])
    assert result.retry_after == 5
    assert cstatus(node, web)["state"]["waiting"] == {
        "reason": "CreateContainerConfigError", "message": 'secret "s" not found'}
    assert runner.errors("uid-web") == {"app": 'secret "s" not found'}
    await runner.sync([web])
    assert told(runner) == [
        ("Warning", "Failed", 'Error: secret "s" not found', "spec.containers{app}")]

    node.objects[("Secret", "default", "s")] = {"data": {"other": "eA=="}}
    await runner.sync([web])
    assert runner.errors("uid-web") == {"app": "couldn't find key k in Secret default/s"}
    assert runtime.get(key()) is None

    node.objects[("Secret", "default", "s")] = {"data": {"k": "c2VjcmV0"}}
    result = await runner.sync([web])
    assert runner.errors("uid-web") == {}
    assert runtime.specs[key()].env["S"] == "secret"
    assert cstatus(node, web)["state"].keys() == {"running"}


async def test_env_from_warns_once_about_invalid_names(node: Node) -> None:
    runner, runtime = node.runner, node.runtime
    assert runner is not None and runtime is not None
    node.objects[("ConfigMap", "default", "cm")] = {"data": {"GOOD": "1", "1bad": "2"}}
    web = make_pod(fn=lambda p: p["spec"]["containers"][0].update(
        envFrom=[{"configMapRef": {"name": "cm"}}]))
    await runner.sync([web])
    assert runtime.specs[key()].env["GOOD"] == "1"
    assert "1bad" not in runtime.specs[key()].env
    assert told(runner, "Warning") == [(
        "Warning", "InvalidEnvironmentVariableNames",
        "Keys [1bad] from the EnvFrom configMap default/cm were skipped since they are "
        "considered invalid environment variable names.", "")]


def _with_config_volume(p: Obj) -> None:
    p["spec"]["volumes"] = [{"name": "conf", "configMap": {"name": "cm"}},
                            {"name": "scratch", "emptyDir": {}}]
    p["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": "conf", "mountPath": "/etc/app"}]


async def test_volumes_are_written_before_start_and_updated(node: Node) -> None:
    runner, runtime = node.runner, node.runtime
    assert runner is not None and runtime is not None
    web = make_pod(fn=_with_config_volume)
    await runner.sync([web])
    # No ConfigMap yet: the volume fails, the container waits in ContainerCreating.
    assert runtime.get(key()) is None
    assert cstatus(node, web)["state"]["waiting"]["reason"] == "ContainerCreating"
    failed = ('MountVolume.SetUp failed for volume "conf" : configmap "cm" not found')
    assert runner.errors("uid-web") == {"volume conf": failed}
    assert told(runner) == [("Warning", "FailedMount", failed, "")]

    node.objects[("ConfigMap", "default", "cm")] = {"data": {"a.conf": "one"}}
    await runner.sync([web])
    pod_dir = node.config.state_dir / "pods" / "uid-web" / "volumes"
    conf = pod_dir / "kubernetes.io~configmap" / "conf"
    assert (conf / "a.conf").read_text() == "one"
    assert (conf / "a.conf").is_symlink()
    assert (pod_dir / "kubernetes.io~empty-dir" / "scratch").is_dir()
    plan = runtime.specs[key()].mount_plan
    assert plan is not None
    assert [(m["target"], m["read_only"]) for m in plan["mounts"]] == [
        ("/scratch", False), ("/etc/app", True)]
    assert plan["mounts"][1]["source"] == str(conf)

    node.objects[("ConfigMap", "default", "cm")] = {"data": {"a.conf": "two"}}
    await runner.sync([web])
    assert (conf / "a.conf").read_text() == "two"
    assert runtime.calls.count(("start", key())) == 1, "a volume update restarts nothing"

    # The ConfigMap goes away: the volume keeps its last content, and a crashed container
    # still restarts (its volume is set up), while the failure is reported.
    del node.objects[("ConfigMap", "default", "cm")]
    runtime.exit(key(), 1)
    await runner.sync([web])
    assert (conf / "a.conf").read_text() == "two"
    assert runtime.calls.count(("start", key())) == 2
    assert "volume conf" in runner.errors("uid-web")


async def test_token_volume_waits_for_the_token_and_follows_its_renewals(node: Node) -> None:
    runner, runtime = node.runner, node.runtime
    assert runner is not None and runtime is not None

    def with_token(p: Obj) -> None:
        p["spec"]["volumes"] = [{"name": "kube-api-access-abcde", "projected": {
            "defaultMode": 0o644, "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}}]
        p["spec"]["containers"][0]["volumeMounts"] = [{
            "name": "kube-api-access-abcde", "readOnly": True,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]

    web = make_pod(fn=with_token)
    await runner.sync([web])
    assert runtime.get(key()) is None
    assert cstatus(node, web)["state"]["waiting"]["reason"] == "ContainerCreating"
    failed = ('MountVolume.SetUp failed for volume "kube-api-access-abcde" : failed to fetch '
              'token: serviceaccounts "default" not found')
    assert told(runner) == [("Warning", "FailedMount", failed, "")]

    token_key = TokenKey("default", "default", web["metadata"]["name"], "uid-web", "", 3607)
    node.tokens[token_key] = "jwt-1"
    await runner.sync([web])
    token = (node.config.state_dir / "pods" / "uid-web" / "volumes" /
             "kubernetes.io~projected" / "kube-api-access-abcde" / "token")
    assert token.read_text() == "jwt-1"
    assert token.stat().st_mode & 0o777 == 0o644
    assert runtime.calls.count(("start", key())) == 1

    node.tokens[token_key] = "jwt-2"  # renewed by the token manager
    await runner.sync([web])
    assert token.read_text() == "jwt-2"
    assert runtime.calls.count(("start", key())) == 1, "a renewed token restarts nothing"


async def test_half_built_network_is_rebuilt_after_a_crash(node: Node) -> None:
    runner = node.runner
    assert runner is not None
    # A crash between "IP allocated, netns created" and "network complete".
    runner.ipam.allocate("uid-web")
    netns = node.config.pod_names("uid-web").pod_netns
    await node.network.create_netns(netns)
    again = await node.boot()
    assert netns not in node.network.namespaces
    await again.sync([make_pod()])
    assert node.network.ns(netns).links["eth0"].addresses == [IPv4Interface("10.244.1.2/24")]


async def test_start_error_is_retried_then_backs_off(node: Node) -> None:
    runner, runtime = node.runner, node.runtime
    assert runner is not None and runtime is not None
    runtime.missing_executables.add("python3")
    web = make_pod()
    result = await runner.sync([web])
    assert result.retry_after == 0  # no process exit will come to wake the agent
    state = cstatus(node, web)["state"]
    assert state["waiting"]["reason"] == "RunContainerError"
    assert 'exec: "python3"' in state["waiting"]["message"]
    result = await runner.sync([web])  # the first restart is immediate (and fails again)
    assert result.retry_after == 0
    result = await runner.sync([web])
    assert result.retry_after == 10
    cs = cstatus(node, web)
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["reason"] == "StartError"
    assert cs["restartCount"] == 1


async def test_missing_executable_shows_start_error(node: Node) -> None:
    runner, runtime = node.runner, node.runtime
    assert runner is not None and runtime is not None
    runtime.missing_executables.add("python3")
    web = make_pod(fn=lambda p: p["spec"].update(restartPolicy="Never"))
    await runner.sync([web])
    status = runner.status(web)
    term = status["containerStatuses"][0]["state"]["terminated"]
    assert (term["reason"], term["exitCode"]) == ("StartError", 128)
    assert 'exec: "python3": executable file not found in $PATH' in term["message"]
    assert status["phase"] == "Failed"


# --- events on the CRI path (a fake CRI service behind the real CriRuntime) -----------------


async def test_cri_events_of_a_pull_and_start(cri_node: Node) -> None:
    runner, cri = cri_node.runner, cri_node.cri
    assert runner is not None and cri is not None
    cri.state.registry["python:3"] = 4_269_694
    cri.state.pull_seconds = 1.2345
    await runner.sync([make_pod()])
    assert told(runner) == [
        ("Normal", "Pulling", 'Pulling image "python:3"', APP),
        ("Normal", "Pulled", 'Successfully pulled image "python:3" in 1.234s (1.234s '
                             "including waiting). Image size: 4269694 bytes.", APP),
        *CREATED_STARTED]
    assert cri.state.calls.count("PullImage") == 1


async def test_cri_events_of_an_image_already_present(cri_node: Node) -> None:
    runner, cri = cri_node.runner, cri_node.cri
    assert runner is not None and cri is not None
    cri.state.images["python:3"] = 1
    await runner.sync([make_pod()])
    assert told(runner) == [
        ("Normal", "Pulled", 'Container image "python:3" already present on machine', APP),
        *CREATED_STARTED]
    assert "PullImage" not in cri.state.calls


async def test_cri_events_of_a_crash_loop_and_a_stop(cri_node: Node) -> None:
    runner, cri = cri_node.runner, cri_node.cri
    assert runner is not None and cri is not None
    cri.state.images["python:3"] = 1
    web = make_pod()
    present = ("Normal", "Pulled", 'Container image "python:3" already present on machine',
               APP)
    await runner.sync([web])
    for _ in range(2):
        runner.events.clear()
        cri.exit(key(), 1)
        assert await cri.relist() == [key()]
        await runner.sync([web])
    assert told(runner) == [("Warning", "BackOff", "Back-off restarting failed container app "
                                                   "in pod web_default(uid-web)", APP)]
    runner.events.clear()
    await cri_node.advance(10)
    await runner.sync([web])
    assert told(runner) == [present, *CREATED_STARTED]
    assert cstatus(cri_node, web)["restartCount"] == 2

    runner.events.clear()
    web["metadata"] |= {"deletionTimestamp": "2026-01-01T00:00:00Z",
                        "deletionGracePeriodSeconds": 5}
    await runner.sync([web])
    await runner.wait_stopped()
    assert told(runner) == [("Normal", "Killing", "Stopping container app", APP)]
    assert (await runner.sync([web])).plan.finished == ("uid-web",)


async def test_cri_events_of_a_failed_pull_and_its_back_off(cri_node: Node) -> None:
    runner, cri = cri_node.runner, cri_node.cri
    assert runner is not None and cri is not None
    web = make_pod()
    result = await runner.sync([web])
    assert result.retry_after == 10
    assert told(runner) == [
        ("Normal", "Pulling", 'Pulling image "python:3"', APP),
        ("Warning", "Failed", 'Failed to pull image "python:3": rpc error: code = NotFound '
                              'desc = failed to pull and unpack image "python:3": not found', APP),
        ("Warning", "Failed", "Error: ErrImagePull", APP)]
    assert cstatus(cri_node, web)["state"]["waiting"]["reason"] == "ErrImagePull"
    runner.events.clear()
    await cri_node.advance(1)
    await runner.sync([web])
    await runner.sync([web])  # once per back-off step
    assert told(runner) == [("Normal", "BackOff", 'Back-off pulling image "python:3"', APP),
                            ("Warning", "Failed", "Error: ImagePullBackOff", APP)]
    assert cstatus(cri_node, web)["state"]["waiting"] == {
        "reason": "ImagePullBackOff", "message": 'Back-off pulling image "python:3"'}
    runner.events.clear()
    cri.state.registry["python:3"] = 10
    await cri_node.advance(10)
    await runner.sync([web])
    assert [reason for _type, reason, _message, _path in told(runner)] == [
        "Pulling", "Pulled", "Created", "Started"]


async def test_cri_never_pull_policy_with_the_image_absent(cri_node: Node) -> None:
    runner = cri_node.runner
    assert runner is not None
    web = make_pod(fn=lambda p: p["spec"]["containers"][0].update(imagePullPolicy="Never"))
    await runner.sync([web])
    never = 'Container image "python:3" is not present with pull policy of Never'
    assert told(runner) == [("Warning", "ErrImageNeverPull", never, APP),
                            ("Warning", "Failed", "Error: ErrImageNeverPull", APP)]
    assert cstatus(cri_node, web)["state"]["waiting"] == {
        "reason": "ErrImageNeverPull", "message": never}


async def test_pods_get_the_kubelets_hosts_file(node: Node) -> None:
    runner = node.runner
    assert runner is not None
    web = make_pod("web", lambda p: p["spec"].update(
        hostname="w", subdomain="sub",
        hostAliases=[{"ip": "192.0.2.7", "hostnames": ["alias.test"]}]))
    await runner.sync([web])
    hosts = str(node.network.ns(node.config.pod_names("uid-web").pod_netns).etc["hosts"])
    assert hosts.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert hosts.endswith("10.244.1.2\tw.sub.default.svc.cluster.local\tw\n\n"
                          "# Entries added by HostAliases.\n192.0.2.7\talias.test\n")
    assert node.runtime is not None and node.runtime.specs[key("web")].env["HOSTNAME"] == "w"


async def test_cri_containers_mount_the_kubelets_hosts_file(cri_node: Node) -> None:
    runner, cri = cri_node.runner, cri_node.cri
    assert runner is not None and cri is not None
    cri.state.images["python:3"] = 1
    await runner.sync([make_pod("web", lambda p: p["spec"].update(
        hostAliases=[{"ip": "192.0.2.7", "hostnames": ["alias.test"]}]))])
    (container,) = cri.state.containers.values()
    mounts = {m.container_path: m for m in container.config.mounts}
    source = Path(mounts["/etc/hosts"].host_path)
    assert source == cri_node.config.state_dir / "pods" / "uid-web" / "etc-hosts"
    assert not mounts["/etc/hosts"].readonly
    assert source.read_text().endswith(
        "10.244.1.100\tweb\n\n# Entries added by HostAliases.\n192.0.2.7\talias.test\n")
    assert source.stat().st_mode & 0o777 == 0o644  # read by containers of any user
    assert {e.key: e.value for e in container.config.envs}["HOSTNAME"] == "web"


async def test_a_cri_container_that_mounts_its_own_hosts_file_keeps_it(
        cri_node: Node) -> None:
    runner, cri = cri_node.runner, cri_node.cri
    assert runner is not None and cri is not None
    cri.state.images["python:3"] = 1

    def own_hosts(p: Obj) -> None:
        p["spec"]["volumes"] = [{"name": "h", "emptyDir": {}}]
        p["spec"]["containers"][0]["volumeMounts"] = [{"name": "h", "mountPath": "/etc/hosts"}]

    await runner.sync([make_pod("web", own_hosts)])
    (container,) = cri.state.containers.values()
    targets = [m.container_path for m in container.config.mounts]
    assert targets.count("/etc/hosts") == 1
    assert not (cri_node.config.state_dir / "pods" / "uid-web" / "etc-hosts").exists()


async def test_cri_container_usage_comes_from_list_container_stats(cri_node: Node) -> None:
    """/metrics/resource on the CRI runtime (svcnet/node/resourceusage.py): each running
    container's usage_core_nano_seconds and working_set_bytes; the node's CPU keeps a
    container's last figure once it is gone."""
    runner, cri = cri_node.runner, cri_node.cri
    assert runner is not None and cri is not None
    cri.state.registry["python:3"] = 1
    pod = make_pod()
    await runner.sync([pod])
    [cid] = cri.state.containers
    cri.state.usage[cid] = (7_000_000_000, 3 << 20)
    collector = ResourceCollector(lambda: [pod], runner.runtime_of, lambda: runner.cri)
    sample = await collector.sample()
    [c] = sample.containers
    assert (c.pod.name, c.container, c.usage.cpu_ns, c.usage.memory) == (
        "web", "app", 7_000_000_000, 3 << 20)
    assert c.usage.timestamp == cri_node.clock.now().timestamp()
    assert sample.node is not None and sample.node.cpu_ns > 7_000_000_000
    assert "ListContainerStats" in cri.state.calls
    await runner.sync([])
    await cri_node.advance(5)
    after = await collector.sample()
    assert after.containers == ()
    assert after.node is not None and after.node.cpu_ns >= sample.node.cpu_ns


async def test_a_host_path_volume_is_checked_then_bound_read_only_if_asked(
        node: Node) -> None:
    runner, runtime = node.runner, node.runtime
    assert runner is not None and runtime is not None
    made, logs = node.tmp / "host" / "made", node.tmp / "host" / "logs"

    def with_host_paths(p: Obj) -> None:
        p["spec"]["volumes"] = [
            {"name": "made", "hostPath": {"path": str(made), "type": "DirectoryOrCreate"}},
            {"name": "logs", "hostPath": {"path": str(logs), "type": "Directory"}}]
        p["spec"]["containers"][0]["volumeMounts"] = [
            {"name": "made", "mountPath": "/data"},
            {"name": "logs", "mountPath": "/logs", "readOnly": True}]

    web = make_pod(fn=with_host_paths)
    await runner.sync([web])
    assert made.is_dir()
    assert runtime.get(key()) is None
    assert cstatus(node, web)["state"]["waiting"]["reason"] == "ContainerCreating"
    failed = f'MountVolume.SetUp failed for volume "logs" : hostPath {logs} doesn\'t exist'
    assert runner.errors("uid-web") == {"volume logs": failed}
    await runner.sync([web])
    assert told(runner) == [("Warning", "FailedMount", failed, "")]  # told once

    logs.mkdir()
    await runner.sync([web])
    assert runner.errors("uid-web") == {}
    plan = runtime.specs[key()].mount_plan
    assert plan is not None
    assert [(m["source"], m["target"], m["read_only"]) for m in plan["mounts"]] == [
        (str(made), "/data", False), (str(logs), "/logs", True)]


def _claiming(p: Obj) -> None:
    p["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    p["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]


def _bind(node: Node, path: Path, pv_type: str = "DirectoryOrCreate") -> None:
    node.objects[("PersistentVolumeClaim", "default", "data")] = {
        "metadata": {"name": "data", "namespace": "default", "uid": "c-1"},
        "spec": {"volumeName": "pv-1"}, "status": {"phase": "Bound"}}
    node.objects[("PersistentVolume", "", "pv-1")] = {
        "metadata": {"name": "pv-1"}, "spec": {
            "claimRef": {"namespace": "default", "name": "data", "uid": "c-1"},
            "hostPath": {"path": str(path), "type": pv_type}}}


async def test_a_claim_waits_until_bound_then_mounts_its_volume(node: Node) -> None:
    runner, runtime = node.runner, node.runtime
    assert runner is not None and runtime is not None
    web = make_pod(fn=_claiming)
    await runner.sync([web])
    assert runtime.get(key()) is None
    assert cstatus(node, web)["state"]["waiting"]["reason"] == "ContainerCreating"
    missing = ("Unable to attach or mount volumes: unmounted volumes=[data], unattached "
               "volumes=[], failed to process volumes=[data]: error processing PVC "
               'default/data: failed to fetch PVC from API server: persistentvolumeclaims '
               '"data" not found')
    assert runner.errors("uid-web") == {"volume data": missing}

    node.objects[("PersistentVolumeClaim", "default", "data")] = {
        "metadata": {"name": "data", "namespace": "default", "uid": "c-1"},
        "spec": {}, "status": {"phase": "Pending"}}
    await runner.sync([web])
    pending = missing.split("error processing", maxsplit=1)[0] + \
        "error processing PVC default/data: PVC is not bound"
    assert runner.errors("uid-web") == {"volume data": pending}
    assert runtime.get(key()) is None

    path = node.tmp / "pv" / "one"
    _bind(node, path)
    await runner.sync([web])
    assert runner.errors("uid-web") == {}
    assert path.is_dir(), "the volume's DirectoryOrCreate made it"
    plan = runtime.specs[key()].mount_plan
    assert plan is not None and [(m["source"], m["target"], m["read_only"])
                                 for m in plan["mounts"]] == [(str(path), "/data", False)]
    assert [e[1] for e in told(runner, "Warning")] == ["FailedMount", "FailedMount"]

    # Set up once: a restart mounts the same volume even if the claim went meanwhile.
    del node.objects[("PersistentVolumeClaim", "default", "data")]
    runtime.exit(key(), 1)
    await runner.sync([web])
    assert runtime.calls.count(("start", key())) == 2
    plan = runtime.specs[key()].mount_plan
    assert plan is not None and plan["mounts"][0]["source"] == str(path)


async def test_a_claims_volume_type_check_names_the_persistent_volume(node: Node) -> None:
    runner = node.runner
    assert runner is not None
    _bind(node, node.tmp / "absent", "Directory")
    await runner.sync([make_pod(fn=_claiming)])
    assert runner.errors("uid-web") == {"volume data": (
        f'MountVolume.SetUp failed for volume "pv-1" : hostPath {node.tmp}/absent '
        "doesn't exist")}


async def test_cri_containers_mount_host_paths_and_claims(cri_node: Node) -> None:
    runner, cri = cri_node.runner, cri_node.cri
    assert runner is not None and cri is not None
    cri.state.images["python:3"] = 1
    path = cri_node.tmp / "pv"
    _bind(cri_node, path)

    def volumes(p: Obj) -> None:
        _claiming(p)
        p["spec"]["volumes"][0]["persistentVolumeClaim"]["readOnly"] = True
        p["spec"]["volumes"].append({"name": "sock", "hostPath": {
            "path": str(cri_node.tmp / "f"), "type": "FileOrCreate"}})
        p["spec"]["containers"][0]["volumeMounts"].append(
            {"name": "sock", "mountPath": "/run/f"})

    await runner.sync([make_pod("web", volumes)])
    (container,) = cri.state.containers.values()
    mounts = {m.container_path: (m.host_path, m.readonly) for m in container.config.mounts}
    assert mounts["/data"] == (str(path), True)
    assert mounts["/run/f"] == (str(cri_node.tmp / "f"), False)
    assert (cri_node.tmp / "f").is_file() and path.is_dir()
