"""`svcnet node` against a real `svcnet server`: pods run in network namespaces, report status,
feed EndpointSlices, terminate gracefully, and survive an agent restart.

Cluster name "e4" plus random hex (local_clusters.py): every namespace and link this test makes
starts with its ``svcnet-<tag>-``; they are all removed at the end, and only processes started
here are stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from svcnet.apiserver.auth import NODES_GROUP, TokenFile, User
from svcnet.node.names import POD_BRIDGE, ClusterNames
from tests.conftest import require_binary, require_root
from tests.e2e.conftest import ROOT, Cluster
from tests.e2e.local_clusters import unique_name
from tests.waiting import run, wait_for

pytestmark = pytest.mark.root

CLUSTER = unique_name("e4")
NAMES = ClusterNames.for_cluster(CLUSTER)
NODE = "e4-node-1"


def netns_list() -> list[str]:
    """This test cluster's namespaces (other tests may be running their own meanwhile)."""
    out = run(["ip", "netns", "list"]).stdout
    return [ns for line in out.splitlines() if line.strip()
            if NAMES.owns_netns(ns := line.split()[0])]


def cleanup_namespaces() -> None:
    """Stop what runs in our namespaces (only processes in netns this test made), delete them."""
    for ns in netns_list():
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                              check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", ns], check=False)


class Agent:
    def __init__(self, cluster: Cluster, tmp: Path, *, proxy: bool = False) -> None:
        self.cluster = cluster
        self.proxy = proxy
        self.state = tmp / "node-state"
        token = "e4-node-token"
        TokenFile(cluster.data_dir / "tokens.csv").add(
            token, User(f"system:node:{NODE}", "", (NODES_GROUP,)))
        cfg = cluster.config
        cfg["users"][0]["user"]["token"] = token
        self.kubeconfig = tmp / "node.kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump(cfg))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "agent.log"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "svcnet.cli.main", "node", "--kubeconfig",
                 str(self.kubeconfig), "--name", NODE, "--cluster", CLUSTER, "--node-index", "1",
                 "--node-ip", "172.20.0.11", "--pod-cidr", "10.244.1.0/24", "--state-dir",
                 str(self.state), *(() if self.proxy else ("--no-proxy",)), "-v"],
                cwd=ROOT, stdout=log, stderr=log)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _run_agent(cluster: Cluster, tmp_path: Path, *, proxy: bool) -> Iterator[Agent]:
    require_root()
    cleanup_namespaces()
    a = Agent(cluster, tmp_path, proxy=proxy)
    a.start()
    try:
        yield a
    finally:
        for name in ("e4-web-1", "e4-web-2", "e4-broken"):
            cluster.kubectl("delete", "pod", name, "--grace-period=0", "--force",
                            "--ignore-not-found", "--wait=false", check=False)
        cluster.kubectl("delete", "service", "e4-web", "--ignore-not-found", check=False)
        a.stop()
        cleanup_namespaces()
        print((a.log.read_text())[-3000:])


@pytest.fixture
def agent(cluster: Cluster, tmp_path: Path) -> Iterator[Agent]:
    yield from _run_agent(cluster, tmp_path, proxy=False)


@pytest.fixture
def proxy_agent(cluster: Cluster, tmp_path: Path) -> Iterator[Agent]:
    require_binary("nft")
    yield from _run_agent(cluster, tmp_path, proxy=True)


def get(cluster: Cluster, *args: str) -> Any:
    r = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def pod_manifest(name: str, port: int, command: list[str] | None = None) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "e4-web"}},
        "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 5, "containers": [{
            "name": "web", "image": "python",
            "command": command or [sys.executable, "-m", "http.server", str(port)],
            "ports": [{"name": "http", "containerPort": port}],
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"},
                               "periodSeconds": 1}}]}})


def ready(pod: Any) -> bool:
    return bool(pod) and any(c["type"] == "Ready" and c["status"] == "True"
                             for c in (pod.get("status") or {}).get("conditions", []))


def ready_pod(cluster: Cluster, name: str) -> Callable[[], Any]:
    def check() -> Any:
        pod = get(cluster, "pod", name)
        return pod if ready(pod) else None
    return check


def events(cluster: Cluster, pod: str) -> list[tuple[str, str, str, str]]:
    """The pod's Events: (type, reason, message, fieldPath), oldest first."""
    items = (get(cluster, "events", "--field-selector", f"involvedObject.name={pod}")
             or {"items": []})["items"]
    items.sort(key=lambda e: (e.get("firstTimestamp") or "", e["metadata"]["name"]))
    return [(e.get("type", ""), e.get("reason", ""), e.get("message", ""),
             e["involvedObject"].get("fieldPath", "")) for e in items]


def http_from_node(ip: str, port: int) -> int:
    code = ("import urllib.request,sys;"
            f"print(urllib.request.urlopen('http://{ip}:{port}/', timeout=5).status)")
    r = subprocess.run(["ip", "netns", "exec", NAMES.node_netns(1), sys.executable, "-c", code],
                       capture_output=True, text=True, timeout=20, check=False)
    return int(r.stdout.strip() or 0)


def test_pods_run_report_status_and_feed_endpointslices(cluster: Cluster, agent: Agent) -> None:
    node = wait_for(lambda: (n := get(cluster, "node", NODE)) and ready(n) and n,
                    what="node Ready")
    assert node["spec"]["podCIDR"] == "10.244.1.0/24"
    assert {"type": "InternalIP", "address": "172.20.0.11"} in node["status"]["addresses"]

    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "e4-web"},
        "spec": {"selector": {"app": "e4-web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}))
    cluster.kubectl("apply", "-f", "-", stdin=pod_manifest("e4-web-1", 8081))
    cluster.kubectl("apply", "-f", "-", stdin=pod_manifest("e4-web-2", 8082))
    pods = [wait_for(ready_pod(cluster, n), what=f"{n} Ready")
            for n in ("e4-web-1", "e4-web-2")]
    ips = [p["status"]["podIP"] for p in pods]
    assert all(ip.startswith("10.244.1.") for ip in ips) and len(set(ips)) == 2
    assert pods[0]["status"]["hostIP"] == "172.20.0.11"
    assert pods[0]["status"]["containerStatuses"][0]["ready"] is True
    assert http_from_node(ips[0], 8081) == 200
    web = "spec.containers{web}"
    assert [e for e in events(cluster, "e4-web-1") if e[0] == "Normal"] == [
        ("Normal", "Created", "Created container: web", web),
        ("Normal", "Started", "Started container web", web)]

    def slice_endpoints() -> Any:
        slices = get(cluster, "endpointslices", "-l", "kubernetes.io/service-name=e4-web")
        eps = [(e["addresses"][0], e["conditions"]["ready"], p["port"])
               for s in (slices or {"items": []})["items"]
               for e in s.get("endpoints") or [] for p in s.get("ports") or []]
        return sorted(eps) if len(eps) == 2 else None

    # Named targetPort resolved per pod: each pod declares "http" on its own port.
    assert wait_for(slice_endpoints, what="slice") == sorted(
        [(ips[0], True, 8081), (ips[1], True, 8082)])

    # Graceful deletion: terminating first, then gone, and its namespace with it.
    netns_before = set(netns_list())
    cluster.kubectl("delete", "pod", "e4-web-2", "--wait=false")
    wait_for(lambda: get(cluster, "pod", "e4-web-2") is None, what="pod deleted")
    wait_for(lambda: len(set(netns_list()) - {NAMES.node_netns(1)}) == len(
        netns_before - {NAMES.node_netns(1)}) - 1, what="pod netns removed")
    assert ("Normal", "Killing", "Stopping container web", web) in events(cluster, "e4-web-2")


def test_agent_kill_9_adopts_pods(cluster: Cluster, agent: Agent) -> None:
    wait_for(lambda: ready(get(cluster, "node", NODE)), what="node Ready")
    cluster.kubectl("apply", "-f", "-", stdin=pod_manifest("e4-web-1", 8081))
    pod = wait_for(lambda: (p := get(cluster, "pod", "e4-web-1")) and ready(p) and p,
                   what="pod Ready")
    netns = set(netns_list())
    agent.kill9()
    agent.start()
    time.sleep(3)
    again = wait_for(lambda: (p := get(cluster, "pod", "e4-web-1")) and ready(p) and p,
                     what="pod Ready after restart")
    assert again["status"]["podIP"] == pod["status"]["podIP"]
    assert again["status"]["containerStatuses"][0]["restartCount"] == 0, "adopted, not restarted"
    assert set(netns_list()) == netns, "no namespace leaked or duplicated"
    assert http_from_node(pod["status"]["podIP"], 8081) == 200


def test_missing_command_waits_with_a_reason(cluster: Cluster, agent: Agent) -> None:
    wait_for(lambda: ready(get(cluster, "node", NODE)), what="node Ready")
    cluster.kubectl("apply", "-f", "-",
                    stdin=pod_manifest("e4-broken", 8083, ["/nonexistent/server"]).replace(
                        "e4-web", "e4-broken"))

    def waiting_reason() -> Any:
        pod = get(cluster, "pod", "e4-broken")
        statuses = (pod or {}).get("status", {}).get("containerStatuses") or []
        state = statuses[0].get("state", {}) if statuses else {}
        last = statuses[0].get("lastState", {}) if statuses else {}
        return (state.get("waiting") or {}).get("reason") or (
            last.get("terminated") or {}).get("reason")

    reason = wait_for(waiting_reason, what="waiting reason")
    assert reason in ("StartError", "RunContainerError", "CrashLoopBackOff",
                      "ContainerCannotRun")
    assert agent.proc is not None and agent.proc.poll() is None, "the agent keeps running"


def table_handle() -> str:
    """The kernel's handle of the node's service table: a recreated table gets a new one."""
    r = run(["ip", "netns", "exec", NAMES.node_netns(1), "nft", "-a", "list",
             "table", "ip", "svcnet"])
    first = r.stdout.splitlines()[0]
    assert "# handle" in first, first
    return first.rsplit("# handle", 1)[1].strip()


def test_agent_restart_keeps_and_adopts_the_service_table(cluster: Cluster,
                                                          proxy_agent: Agent) -> None:
    wait_for(lambda: ready(get(cluster, "node", NODE)), what="node Ready")
    cluster.kubectl("apply", "-f", "-", stdin=pod_manifest("e4-web-1", 8081))
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "e4-web"},
        "spec": {"selector": {"app": "e4-web"},
                 "ports": [{"port": 80, "targetPort": "http"}]}}))
    wait_for(ready_pod(cluster, "e4-web-1"), what="pod Ready")
    cluster_ip = get(cluster, "service", "e4-web")["spec"]["clusterIP"]
    # A node made by a bare agent has no route towards the service CIDR (in `svcnet up` the
    # pods are the clients); this test's own node namespace gets one, so that the node
    # itself can be the client. Output-hook DNAT then re-routes to the pod.
    run(["ip", "-n", NAMES.node_netns(1), "route", "replace", "10.96.0.0/12",
         "dev", POD_BRIDGE])
    wait_for(lambda: http_from_node(cluster_ip, 80) == 200, what="ClusterIP answering")
    handle = table_handle()
    proxy_agent.kill9()
    # The agent is gone, its rules are not: the Service keeps answering meanwhile.
    assert http_from_node(cluster_ip, 80) == 200
    proxy_agent.start()
    wait_for(lambda: "adopted the table in the kernel" in proxy_agent.log.read_text(),
             what="the restarted agent adopting its table")
    assert table_handle() == handle, "the table was recreated, not adopted"
    # (The restarted agent probes the pod afresh; as the kubelet's, its readiness starts
    # unknown, so the endpoint may blink out and back: wait rather than assert at once.)
    wait_for(lambda: http_from_node(cluster_ip, 80) == 200, what="ClusterIP after restart")
