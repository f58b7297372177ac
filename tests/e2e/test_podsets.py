"""DaemonSets and ReplicationControllers through the real kubectl against a real
`svcnet server` (no node agents: the nodes are Node objects registered here, never Ready, so
the daemon pods stay Pending; the assertions are about the objects the controllers make)."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.conftest import Cluster
from tests.waiting import wait_for

LABEL = "svcnet.test/podsets"
NODES = "\n---\n".join(f"""apiVersion: v1
kind: Node
metadata:
  name: ps-node-{i}
  labels: {{{LABEL}: "yes"}}""" for i in (1, 2))
DAEMONSET = f"""apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: ps-agent
spec:
  selector:
    matchLabels: {{app: ps-agent}}
  template:
    metadata:
      labels: {{app: ps-agent}}
    spec:
      nodeSelector: {{{LABEL}: "yes"}}
      containers:
      - name: agent
        image: agent:1
"""
RC = """apiVersion: v1
kind: ReplicationController
metadata:
  name: ps-rc
spec:
  replicas: 2
  template:
    metadata:
      labels: {app: ps-rc}
    spec:
      nodeSelector: {svcnet.test/nowhere: "true"}
      containers:
      - name: app
        image: app:1
"""


def pods(cluster: Cluster, app: str) -> list[dict[str, Any]]:
    r = cluster.kubectl("get", "pods", "-l", f"app={app}", "-o", "json")
    return [p for p in json.loads(r.stdout)["items"]
            if not p["metadata"].get("deletionTimestamp")]


def test_daemonset_and_replication_controller(cluster: Cluster) -> None:
    try:
        cluster.kubectl("apply", "-f", "-", stdin=NODES)
        r = cluster.kubectl("apply", "-f", "-", stdin=DAEMONSET)
        assert r.stdout.strip() == "daemonset.apps/ps-agent created"
        wait_for(lambda: len(pods(cluster, "ps-agent")) == 2, "one daemon pod per node")
        pinned = sorted(p["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
            "matchFields"][0]["values"][0] for p in pods(cluster, "ps-agent"))
        assert pinned == ["ps-node-1", "ps-node-2"]
        wait_for(lambda: json.loads(cluster.kubectl("get", "ds", "ps-agent", "-o", "json").stdout)[
            "status"].get("currentNumberScheduled") == 2, "the DaemonSet's status",
            detail=lambda: cluster.kubectl("get", "ds", "ps-agent", "-o", "yaml").stdout)
        row = cluster.kubectl("get", "ds", "ps-agent", "--no-headers").stdout.split()
        assert row[:7] == ["ps-agent", "2", "2", "0", "2", "0", f"{LABEL}=yes"]
        header = cluster.kubectl("get", "ds").stdout.splitlines()[0].split()
        assert header == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE",
                          "NODE", "SELECTOR", "AGE"]
        bad = cluster.kubectl("patch", "ds", "ps-agent", "--type=merge", "-p",
                              '{"spec":{"selector":{"matchLabels":{"app":"x"}}}}', check=False)
        assert bad.returncode != 0 and "field is immutable" in bad.stderr

        # History (ControllerRevisions): a new image is revision 2, undo goes back to 1's.
        cluster.kubectl("set", "image", "ds/ps-agent", "agent=agent:2")

        def history() -> list[str]:
            out = cluster.kubectl("rollout", "history", "ds/ps-agent").stdout.split()
            return out[out.index("REVISION") + 2::2]

        wait_for(lambda: history() == ["1", "2"], "revisions 1 and 2", detail=lambda: str(
            cluster.kubectl("get", "controllerrevisions", "-o", "wide").stdout))
        r = cluster.kubectl("rollout", "undo", "ds/ps-agent")
        assert r.stdout.strip() == "daemonset.apps/ps-agent rolled back", r.stdout
        image = json.loads(cluster.kubectl("get", "ds", "ps-agent", "-o", "json").stdout)[
            "spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == "agent:1"
        wait_for(lambda: history() == ["2", "3"], "revision 1 renumbered 3")

        r = cluster.kubectl("apply", "-f", "-", stdin=RC)
        assert r.stdout.strip() == "replicationcontroller/ps-rc created"
        wait_for(lambda: len(pods(cluster, "ps-rc")) == 2, "2 RC pods")
        for p in pods(cluster, "ps-rc"):
            assert p["metadata"]["ownerReferences"][0]["kind"] == "ReplicationController"
        cluster.kubectl("scale", "rc", "ps-rc", "--replicas=1")
        wait_for(lambda: len(pods(cluster, "ps-rc")) == 1, "scaled down to 1")
        assert "ps-rc" in cluster.kubectl("get", "rc").stdout
    finally:
        cluster.kubectl("delete", "ds", "ps-agent", "--ignore-not-found", check=False)
        cluster.kubectl("delete", "rc", "ps-rc", "--ignore-not-found", check=False)
        cluster.kubectl("delete", "node", "ps-node-1", "ps-node-2", "--ignore-not-found",
                        check=False)
