"""Control-plane node controllers against a real server: scheduling, pod CIDRs, lifecycle.

No node agent runs here: the test writes the Node and its Lease itself, as an agent would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Cluster, start_server, stop_server
from tests.waiting import wait_for


def get(cluster: Cluster, *args: str) -> Any:
    r = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


NODE = """apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels: {{disk: {disk}}}
status:
  conditions:
  - {{type: Ready, status: "True", reason: KubeletReady, lastHeartbeatTime: "{now}"}}
"""

POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeSelector: {selector}
  containers:
  - name: c
    image: none
    command: [sleep, "3600"]
"""


def test_pods_are_scheduled_and_nodes_get_pod_cidrs(cluster: Cluster) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for name, disk in (("sched-a", "hdd"), ("sched-b", "ssd")):
        cluster.kubectl("apply", "-f", "-", stdin=NODE.format(name=name, disk=disk, now=now))
        # The node agent's Node status write; apply can't set status, the status endpoint can.
        node = get(cluster, "node", name)
        node["status"]["conditions"] = [{"type": "Ready", "status": "True",
                                         "reason": "KubeletReady", "lastHeartbeatTime": now}]
        cluster.kubectl("replace", "--subresource=status", "-f", "-", stdin=json.dumps(node))
    def pod_cidr(name: str) -> Callable[[], Any]:
        return lambda: (get(cluster, "node", name) or {}).get("spec", {}).get("podCIDR")

    cidrs = {wait_for(pod_cidr(n)) for n in ("sched-a", "sched-b")}
    assert len(cidrs) == 2 and all(c.startswith("10.244.") and c.endswith("/24")
                                   for c in cidrs)
    assert "10.244.0.0/24" not in cidrs

    cluster.kubectl("apply", "-f", "-", stdin=POD.format(name="on-ssd", selector="{disk: ssd}"))

    def bound_pod() -> Any:
        p = get(cluster, "pod", "on-ssd")
        return p if p and p["spec"].get("nodeName") else None

    pod = wait_for(bound_pod)
    assert pod["spec"]["nodeName"] == "sched-b"
    assert any(c["type"] == "PodScheduled" and c["status"] == "True"
               for c in pod["status"]["conditions"])

    cluster.kubectl("apply", "-f", "-",
                    stdin=POD.format(name="nowhere", selector="{disk: tape}"))
    events = wait_for(lambda: [e for e in (get(cluster, "events") or {"items": []})["items"]
                               if e["involvedObject"]["name"] == "nowhere"
                               and e["reason"] == "FailedScheduling"])
    assert "didn't match Pod's node affinity/selector" in events[0]["message"]
    assert not get(cluster, "pod", "nowhere")["spec"].get("nodeName"), "stays Pending"


def test_pod_bound_to_a_missing_node_stays_pending(cluster: Cluster) -> None:
    manifest = POD.format(name="ghost-bound", selector="{}").replace(
        "spec:\n", "spec:\n  nodeName: no-such-node\n")
    cluster.kubectl("apply", "-f", "-", stdin=manifest)
    time.sleep(2)
    pod = get(cluster, "pod", "ghost-bound")
    assert pod["spec"]["nodeName"] == "no-such-node"
    assert pod["status"]["phase"] == "Pending"
    assert not pod["status"].get("containerStatuses")


def pod_cidr_of(cluster: Cluster, name: str) -> Callable[[], Any]:
    return lambda: (get(cluster, "node", name) or {}).get("spec", {}).get("podCIDR")


def test_pod_cidrs_survive_a_restart_and_a_claimed_one_is_refused(tmp_path: Path) -> None:
    """The CIDR set lives in the controller's memory, rebuilt from the Nodes: after a restart
    a new Node never gets a subnet an existing Node has, and a Node that registers claiming
    another's subnet gets a CIDRNotAvailable warning."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    proc = start_server(tmp_path)
    try:
        cluster = Cluster(tmp_path, tmp_path / "kubeconfig", proc, tmp_path / "kcache")
        for name in ("keep-1", "keep-2"):
            cluster.kubectl("apply", "-f", "-", stdin=NODE.format(name=name, disk="x", now=now))
        before = {n: wait_for(pod_cidr_of(cluster, n)) for n in ("keep-1", "keep-2")}
    finally:
        assert stop_server(proc) == 0
    proc = start_server(tmp_path)
    try:
        cluster = Cluster(tmp_path, tmp_path / "kubeconfig", proc, tmp_path / "kcache")
        cluster.kubectl("apply", "-f", "-", stdin=NODE.format(name="new", disk="x", now=now))
        fresh = wait_for(pod_cidr_of(cluster, "new"))
        assert fresh not in before.values()
        claimed = NODE.format(name="thief", disk="x", now=now).replace(
            "\nstatus:\n", f"\nspec:\n  podCIDR: {before['keep-1']}\n  podCIDRs: "
                         f"[{before['keep-1']}]\nstatus:\n", 1)
        cluster.kubectl("apply", "-f", "-", stdin=claimed)
        events = wait_for(lambda: [e for e in (get(cluster, "events", "-A") or {"items": []})[
            "items"] if e["involvedObject"]["name"] == "thief"
            and e["reason"] == "CIDRNotAvailable"])
        assert "already used by node keep-1" in events[0]["message"]
    finally:
        assert stop_server(proc) == 0
