"""The pod runner for real: a node netns, pods as processes in their own netns, probes.

Everything lives in namespaces these tests create, all named ``svcnet-<tag>-*`` (a cluster
``t4`` plus random hex, whose tag no other cluster on the machine has: local_clusters.py): the
node netns ``svcnet-<tag>-n1`` holds the pod bridge ``svcnet0`` with 10.244.1.1/24, and each
pod gets a ``svcnet-<tag>-p<hash>`` netns with one address from 10.244.1.0/24. Nothing
is added to the root namespace (no link, no address, no route), and nothing in these
namespaces routes off the machine: the node netns has no default route at all.

The ``node`` fixture's finalizer runs even when a test fails: it kills the processes the
test's runtime started (by pid, after checking each pid still has the recorded start time),
and deletes every ``svcnet-<tag>-*`` namespace that did not exist before the test, together
with its ``/etc/netns`` directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest

from svcnet.node.names import ClusterNames
from svcnet.node.probes import ProbeKind
from svcnet.node.runner import NodeConfig, PodRunner
from svcnet.node.runtime import ContainerKey, Running, read_proc_stat
from svcnet.util.nsthread import NETNS_RUN_DIR
from tests.conftest import require_binary
from tests.e2e.local_clusters import unique_name

pytestmark = pytest.mark.root

Obj = dict[str, Any]
CLUSTER = unique_name("t4")
NAMES = ClusterNames.for_cluster(CLUSTER)
NODE_NETNS = NAMES.node_netns(1)
ETC_NETNS = Path("/etc/netns")


def our_netns() -> set[str]:
    try:
        return {n for n in os.listdir(NETNS_RUN_DIR) if NAMES.owns_netns(n)}
    except FileNotFoundError:
        return set()


def delete_netns(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
    shutil.rmtree(ETC_NETNS / name, ignore_errors=True)


def kill_recorded_processes(state_dir: Path) -> None:
    """SIGKILL (and reap, if ours) every process the runtime recorded as started, but only
    if its pid still belongs to the process that was started (same start time)."""
    for path in state_dir.glob("containers/*/*.json"):
        record = json.loads(path.read_text())
        pid, ticks = record.get("pid"), record.get("start_ticks")
        if pid is None:
            continue
        stat = read_proc_stat(pid)
        if stat is None or stat.start_ticks != ticks:
            continue
        with contextlib.suppress(ProcessLookupError):
            fd = os.pidfd_open(pid)
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            finally:
                os.close(fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


@dataclass
class Node:
    tmp: Path
    runner: PodRunner | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def config(self) -> NodeConfig:
        return NodeConfig(cluster=CLUSTER, node_name="node-1", node_index=1,
                          pod_cidr=IPv4Network("10.244.1.0/24"), host_ip="172.20.0.11",
                          state_dir=self.tmp / "state", cluster_dns=("10.96.0.10",))

    async def boot(self) -> PodRunner:
        """Start an agent; calling it again simulates an agent restart."""
        if self.runner is not None:
            await self.runner.close()
        self.runner = PodRunner.create(self.config, on_change=lambda uid: self.changed.set())
        await self.runner.start()
        return self.runner

    async def sync_until(self, pods: list[Obj], done: Callable[[], bool],
                         timeout: float = 30.0) -> None:
        """Sync on every change (and at least every 0.2 s) until ``done()``."""
        assert self.runner is not None
        async with asyncio.timeout(timeout):
            while True:
                self.changed.clear()
                await self.runner.sync(pods)
                if done():
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await self.changed.wait()

    def status(self, pod: Obj) -> Obj:
        assert self.runner is not None
        return self.runner.status(pod)

    def ready(self, *pods: Obj) -> bool:
        return all(next(c for c in self.status(p)["conditions"] if c["type"] == "Ready")
                   ["status"] == "True" for p in pods)

    def pid(self, pod: Obj) -> int:
        assert self.runner is not None
        proc = self.runner.runtime.get(ContainerKey(pod["metadata"]["uid"], "server"))
        assert proc is not None and isinstance(proc.state, Running)
        return proc.state.pid


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    require_binary("ip")
    for leftover in our_netns():
        delete_netns(leftover)
    before = our_netns()
    harness = Node(tmp_path)
    try:
        yield harness
    finally:
        if harness.runner is not None:
            await harness.runner.close()
        kill_recorded_processes(harness.config.state_dir)
        for name in our_netns() - before:
            delete_netns(name)


def web_pod(name: str, tmp: Path, **extra: Any) -> Obj:
    """``python3 -m http.server 8080`` serving a directory whose /who says the pod's name."""
    root = tmp / "www" / name
    root.mkdir(parents=True, exist_ok=True)
    (root / "who").write_text(name)
    container: Obj = {
        "name": "server", "image": "python:3",
        "command": ["python3", "-m", "http.server", "8080", "--bind", "0.0.0.0"],
        "workingDir": str(root),
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"port": "http", "path": "/who"}, "periodSeconds": 1},
    }
    container.update(extra)
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"t4-uid-{name}"},
        "spec": {"containers": [container], "restartPolicy": "Always",
                 "terminationGracePeriodSeconds": 2},
        "status": {"phase": "Pending"},
    }


async def netns_exec(netns: str, *argv: str) -> tuple[int, str]:
    """What ``svcnet exec`` does: run a command inside the pod's network namespace."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, *argv, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


FETCH = ("import sys, urllib.request; "
         "print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())")


def processes_in(netns: str) -> list[int]:
    inode = os.stat(NETNS_RUN_DIR / netns).st_ino
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino == inode:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


async def test_two_pods_talk_and_get_ready(node: Node, tmp_path: Path) -> None:
    root_forwarding = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    t0 = time.monotonic()
    runner = await node.boot()
    t_node = time.monotonic()
    # Readiness over HTTP proves probes come from the node netns (the root namespace has no
    # route to 10.244.1.0/24); an exec liveness probe that only passes inside the pod's
    # netns proves exec probes run there.
    a = web_pod("a", tmp_path, livenessProbe={"periodSeconds": 1, "failureThreshold": 1,
                                              "exec": {"command": [
                                                  "sh", "-c", "ip -4 -o addr show dev eth0 "
                                                  "| grep -q 10.244.1. && test -f who"]}})
    b = web_pod("b", tmp_path)
    await runner.sync([a, b])
    t_started = time.monotonic()
    await node.sync_until([a, b], lambda: node.ready(a, b))
    t_ready = time.monotonic()
    print(f"\nnode network {1000 * (t_node - t0):.1f} ms; two pods netns+veth+IP+process "
          f"{1000 * (t_started - t_node):.1f} ms; to Ready {1000 * (t_ready - t_node):.0f} ms")

    ip_a, ip_b = node.status(a)["podIP"], node.status(b)["podIP"]
    assert {ip_a, ip_b} == {"10.244.1.2", "10.244.1.3"}
    assert node.status(a)["phase"] == "Running"
    netns_a = runner.pod_netns(a)
    assert netns_a == NAMES.pod_netns("t4-uid-a")
    # Pod-to-pod across the node's bridge, both ways.
    code, out = await netns_exec(netns_a, "python3", "-c", FETCH, f"http://{ip_b}:8080/who")
    assert (code, out.strip()) == (0, "b")
    netns_b = runner.pod_netns(b)
    assert netns_b is not None
    code, out = await netns_exec(netns_b, "python3", "-c", FETCH, f"http://{ip_a}:8080/who")
    assert (code, out.strip()) == (0, "a")
    # The pod's view: its own address on eth0, a default route via the node, cluster DNS.
    code, out = await netns_exec(netns_a, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
    assert code == 0 and f"inet {ip_a}/24" in out
    code, out = await netns_exec(netns_a, "ip", "route")
    assert "default via 10.244.1.1 dev eth0" in out
    code, out = await netns_exec(netns_a, "cat", "/etc/resolv.conf")
    assert "nameserver 10.96.0.10" in out and "options ndots:5" in out
    # The node forwards, has no way off the machine, and its pod ports hairpin; the root
    # namespace's forwarding setting is untouched.
    code, out = await netns_exec(NODE_NETNS, "ip", "route")
    assert "default" not in out
    code, out = await netns_exec(NODE_NETNS, "cat", "/proc/sys/net/ipv4/ip_forward")
    assert out.strip() == "1"
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == root_forwarding
    code, out = await netns_exec(NODE_NETNS, "ip", "-d", "link", "show",
                                 NAMES.pod_network(1, "t4-uid-a").host_veth)
    assert "master svcnet0" in out and "hairpin on" in out
    # A few more liveness periods: the exec probe keeps passing, nothing restarts.
    await asyncio.sleep(2.2)
    await runner.sync([a, b])
    assert node.status(a)["containerStatuses"][0]["restartCount"] == 0
    assert node.ready(a, b)
    liveness = runner.probes.tracker(ContainerKey("t4-uid-a", "server"), ProbeKind.LIVENESS)
    assert liveness is not None and liveness.probes >= 2 and liveness.result


async def test_killed_process_is_detected_and_restarted(node: Node, tmp_path: Path) -> None:
    runner = await node.boot()
    pods = [web_pod("a", tmp_path), web_pod("b", tmp_path)]
    pods[1]["spec"]["restartPolicy"] = "Never"
    await node.sync_until(pods, lambda: node.ready(*pods))
    pid_a, pid_b = node.pid(pods[0]), node.pid(pods[1])
    os.kill(pid_a, signal.SIGKILL)
    os.kill(pid_b, signal.SIGTERM)

    def restarted() -> bool:
        cs = node.status(pods[0])["containerStatuses"][0]
        return cs["restartCount"] == 1 and "running" in cs["state"]

    await node.sync_until(pods, lambda: restarted() and node.status(pods[1])["phase"] == "Failed")
    cs = node.status(pods[0])["containerStatuses"][0]
    assert cs["lastState"]["terminated"]["exitCode"] == 137
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert node.pid(pods[0]) != pid_a
    failed = node.status(pods[1])["containerStatuses"][0]["state"]["terminated"]
    assert (failed["exitCode"], failed["signal"]) == (143, signal.SIGTERM)
    # The failed pod's network is torn down and its address freed; the status keeps it.
    assert runner.pod_netns(pods[1]) is None
    assert runner.ipam.get("t4-uid-b") is None
    await node.sync_until(pods, lambda: node.ready(pods[0]))


async def test_agent_restart_adopts_running_pods(node: Node, tmp_path: Path) -> None:
    await node.boot()
    pods = [web_pod("a", tmp_path), web_pod("b", tmp_path)]
    await node.sync_until(pods, lambda: node.ready(*pods))
    pids = [node.pid(p) for p in pods]

    runner = await node.boot()  # the old agent closes; a new one starts over its state
    result = await runner.sync(pods)
    assert result.plan.start == () and result.plan.setup_network == ()
    assert [node.pid(p) for p in pods] == pids
    for pod, pid in zip(pods, pids, strict=True):
        netns = runner.pod_netns(pod)
        assert netns is not None
        assert processes_in(netns) == [pid]  # no duplicate server
    await node.sync_until(pods, lambda: node.ready(*pods))
    # Adopted processes are still watched: a kill is noticed and the pod restarted.
    os.kill(pids[0], signal.SIGKILL)
    await node.sync_until(pods, lambda: node.status(pods[0])["containerStatuses"][0]
                          ["restartCount"] == 1 and node.ready(pods[0]))
    last = node.status(pods[0])["containerStatuses"][0]["lastState"]["terminated"]
    # Not our child any more, so the code is unknown; shown as the kubelet shows it.
    assert (last["reason"], last["exitCode"]) == ("ContainerStatusUnknown", 137)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pids[0], 0)  # in a real restart init reaps it; here the test process does


async def test_missing_executable_does_not_stop_the_agent(node: Node, tmp_path: Path) -> None:
    runner = await node.boot()
    good = web_pod("a", tmp_path)
    bad = web_pod("bad", tmp_path, command=["no-such-server"])
    bad["spec"]["restartPolicy"] = "Never"
    await node.sync_until([good, bad], lambda: node.ready(good)
                          and node.status(bad)["phase"] == "Failed")
    term = node.status(bad)["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "StartError"
    assert 'exec: "no-such-server": executable file not found in $PATH' in term["message"]
    assert runner.pod_netns(good) is not None


async def test_deleted_pod_is_stopped_and_cleaned_up(node: Node, tmp_path: Path) -> None:
    runner = await node.boot()
    pod = web_pod("a", tmp_path)
    await node.sync_until([pod], lambda: node.ready(pod))
    netns = runner.pod_netns(pod)
    pid = node.pid(pod)
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    finished: list[str] = []

    async def sync_deleted() -> None:
        finished.extend((await runner.sync([pod])).plan.finished)

    async with asyncio.timeout(10):
        while not finished:
            await sync_deleted()
            await asyncio.sleep(0.1)
    gone = read_proc_stat(pid)
    assert gone is None or gone.state == "Z"
    assert netns not in our_netns()
    assert runner.ipam.get("t4-uid-a") is None
    # Then the API object goes away and the pod is forgotten (records, logs).
    assert (await runner.sync([])).plan.forget == ("t4-uid-a",)
    assert not (node.config.state_dir / "pods" / "t4-uid-a").exists()
