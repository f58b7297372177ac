"""Pods consume ConfigMaps, Secrets and the downward API through a real `svcnet node` agent and a
real `svcnet server`: the container's own process reports what it sees (environment and
mounted files) on stdout, read back with kubectl logs.

Cluster name "e4" (as test_node_agent.py, whose agent helpers this reuses): every namespace is
removed at the end, and only processes started here are stopped. Nothing is written into the
host's filesystem outside the agent's state directory: the test checks that too.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from svcnet.node.pods import log_files
from tests.e2e.conftest import Cluster
from tests.integration.test_node_agent import NODE, Agent, cleanup_namespaces, get, ready
from tests.waiting import wait_for

pytestmark = pytest.mark.root

PODS = ("e4-cfg-pod", "e4-late")
OBJECTS = (("configmap", "e4-cfg"), ("secret", "e4-sec"), ("configmap", "e4-late"))

# Prints, every 0.3 s, one JSON line: the environment it got and the files it can read.
REPORTER = """
import json, os, sys, time
paths = sys.argv[1:]
def read(p):
    try:
        with open(p) as f:
            return f.read()
    except OSError as e:
        return f"<{e.strerror}>"
while True:
    files = {p: read(p) for p in paths}
    modes = {p: oct(os.stat(p).st_mode & 0o777) for p in paths if os.path.exists(p)}
    print(json.dumps({"env": dict(os.environ), "files": files, "modes": modes,
                      "cwd": os.getcwd()}), flush=True)
    time.sleep(0.3)
"""
FILES = ["/etc/e4cfg/app.conf", "/etc/e4cfg/greeting", "/e4/secret/password",
         "/e4/podinfo/labels", "/e4/podinfo/name", "/etc/e4cfg-proj/conf",
         "/etc/e4cfg-proj/pw", "/etc/e4cfg-proj/ns", "/etc/e4-greeting", "/e4/scratch/x",
         "/etc/resolv.conf", "/etc/hosts"]


@pytest.fixture
def agent(cluster: Cluster, tmp_path: Path) -> Iterator[Agent]:
    cleanup_namespaces()
    a = Agent(cluster, tmp_path)
    a.start()
    try:
        yield a
    finally:
        for name in PODS:
            cluster.kubectl("delete", "pod", name, "--grace-period=0", "--force",
                            "--ignore-not-found", "--wait=false", check=False)
        for kind, name in OBJECTS:
            cluster.kubectl("delete", kind, name, "--ignore-not-found", check=False)
        a.stop()
        cleanup_namespaces()
        print(a.log.read_text()[-3000:])


def apply(cluster: Cluster, obj: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(obj))


def report(cluster: Cluster, pod: str, agent: Agent) -> Any:
    """The last line the pod's container printed, read from the node's log file (this bare
    agent has no address the API server could reach for ``kubectl logs``)."""
    uid = (get(cluster, "pod", pod) or {}).get("metadata", {}).get("uid", "")
    files = log_files(agent.state, uid, "app") if uid else []
    lines = files[-1].read_text().strip().splitlines() if files else []
    return json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None


def config_pod() -> dict[str, Any]:
    container = {
        "name": "app", "image": "python", "workingDir": "/e4/podinfo",
        "command": [sys.executable, "-c", REPORTER, *FILES],
        "resources": {"limits": {"memory": "64Mi"}},
        # Exec probes run where the container's volumes are.
        "readinessProbe": {"exec": {"command": ["cat", "/e4/secret/password"]},
                           "periodSeconds": 1},
        "envFrom": [{"configMapRef": {"name": "e4-cfg"}, "prefix": "CFG_"},
                    {"configMapRef": {"name": "e4-cfg"}}],
        "env": [
            {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "e4-cfg",
                                                                   "key": "greeting"}}},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "e4-sec",
                                                                "key": "password"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                                  "divisor": "1Mi"}}},
            {"name": "SAID", "value": "$(GREETING) from $(POD_NAME)"},
        ],
        "volumeMounts": [
            {"name": "cfg", "mountPath": "/etc/e4cfg"},
            {"name": "sec", "mountPath": "/e4/secret"},
            {"name": "info", "mountPath": "/e4/podinfo"},
            {"name": "proj", "mountPath": "/etc/e4cfg-proj"},
            {"name": "cfg", "mountPath": "/etc/e4-greeting", "subPath": "greeting"},
            {"name": "scratch", "mountPath": "/e4/scratch"},
        ]}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "e4-cfg-pod", "labels": {"app": "e4-cfg"}},
            "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1,
                     "hostname": "e4-host", "subdomain": "e4-sub",
                     "hostAliases": [{"ip": "192.0.2.7", "hostnames": ["e4-a.test", "e4-b"]}],
                     "dnsPolicy": "None", "dnsConfig": {"nameservers": ["10.96.0.10"],
                                                        "searches": ["e4.test"]},
                     "containers": [container],
                     "volumes": [
                         {"name": "cfg", "configMap": {"name": "e4-cfg"}},
                         {"name": "sec", "secret": {"secretName": "e4-sec",
                                                    "defaultMode": 0o400}},
                         {"name": "info", "downwardAPI": {"items": [
                             {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                             {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                         {"name": "proj", "projected": {"sources": [
                             {"configMap": {"name": "e4-cfg", "items": [
                                 {"key": "app.conf", "path": "conf"}]}},
                             {"secret": {"name": "e4-sec", "items": [
                                 {"key": "password", "path": "pw"}]}},
                             {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {
                                 "fieldPath": "metadata.namespace"}}]}}]}},
                         {"name": "scratch", "emptyDir": {}},
                     ]}}


def test_env_and_volumes_from_config_maps_secrets_and_the_downward_api(
        cluster: Cluster, agent: Agent) -> None:
    wait_for(lambda: ready(get(cluster, "node", NODE)), what="node Ready")
    apply(cluster, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "e4-cfg"},
                    "data": {"greeting": "hello", "app.conf": "v1", "1st": "x"}})
    apply(cluster, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "e4-sec"},
                    "stringData": {"password": "s3cret"}})
    apply(cluster, config_pod())

    seen = wait_for(lambda: report(cluster, "e4-cfg-pod", agent), what="the pod's report")
    env, files = seen["env"], seen["files"]
    assert (env["GREETING"], env["PASSWORD"], env["POD_NAME"]) == ("hello", "s3cret",
                                                                    "e4-cfg-pod")
    assert env["CFG_greeting"] == "hello" and env["CFG_app.conf"] == "v1"
    assert env["CFG_1st"] == "x" and env["greeting"] == "hello" and "1st" not in env
    assert env["MEM_MI"] == "64"
    assert env["SAID"] == "hello from e4-cfg-pod"
    # The pod's resolv.conf (bound over /etc/resolv.conf by `ip netns exec`) survives the
    # overlay put over /etc.
    assert files.pop("/etc/resolv.conf") == "search e4.test\nnameserver 10.96.0.10\n"
    # So does the kubelet-managed hosts file: its own name at its IP, the host aliases.
    pod_ip = (get(cluster, "pod", "e4-cfg-pod") or {})["status"]["podIP"]
    hosts = files.pop("/etc/hosts")
    assert hosts.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert hosts.endswith(
        f"{pod_ip}\te4-host.e4-sub.default.svc.cluster.local\te4-host\n"
        "\n# Entries added by HostAliases.\n192.0.2.7\te4-a.test\te4-b\n"), hosts
    assert env["HOSTNAME"] == "e4-host"
    assert files == {
        "/etc/e4cfg/app.conf": "v1", "/etc/e4cfg/greeting": "hello",
        "/e4/secret/password": "s3cret", "/e4/podinfo/labels": 'app="e4-cfg"',
        "/e4/podinfo/name": "e4-cfg-pod", "/etc/e4cfg-proj/conf": "v1",
        "/etc/e4cfg-proj/pw": "s3cret", "/etc/e4cfg-proj/ns": "default",
        "/etc/e4-greeting": "hello", "/e4/scratch/x": "<No such file or directory>"}
    assert seen["modes"]["/e4/secret/password"] == "0o400"
    assert seen["cwd"] == "/e4/podinfo"
    # Nothing of it exists on the host.
    for path in ("/e4", "/etc/e4cfg", "/etc/e4cfg-proj", "/etc/e4-greeting"):
        assert not os.path.lexists(path), path

    events = cluster.kubectl("get", "events", "--field-selector",
                             "reason=InvalidEnvironmentVariableNames", "-o", "json").stdout
    assert any("Keys [1st] from the EnvFrom configMap default/e4-cfg" in
               e["message"] for e in json.loads(events)["items"])

    # An update of the ConfigMap reaches the mounted file (not the environment).
    cluster.kubectl("patch", "configmap", "e4-cfg", "--type=merge", "-p",
                    json.dumps({"data": {"app.conf": "v2"}}))
    updated = wait_for(lambda: (r := report(cluster, "e4-cfg-pod", agent))
                       and r["files"]["/etc/e4cfg/app.conf"] == "v2"
                       and r["files"]["/etc/e4cfg-proj/conf"] == "v2" and r,
                       what="the updated files in the container",
                       detail=lambda: str(report(cluster, "e4-cfg-pod", agent)["files"]))
    assert updated["files"]["/etc/e4-greeting"] == "hello"
    assert updated["env"]["CFG_app.conf"] == "v1"
    pod = wait_for(lambda: (p := get(cluster, "pod", "e4-cfg-pod")) and ready(p) and p,
                   what="the exec probe passing")
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0


def test_missing_key_waits_with_create_container_config_error_then_starts(
        cluster: Cluster, agent: Agent) -> None:
    wait_for(lambda: ready(get(cluster, "node", NODE)), what="node Ready")
    apply(cluster, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "e4-late"},
                    "data": {"other": "x"}})
    apply(cluster, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "e4-late"},
                    "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1,
                             "containers": [{
                                 "name": "app", "image": "python",
                                 "command": [sys.executable, "-c", REPORTER],
                                 "env": [{"name": "K", "valueFrom": {"configMapKeyRef": {
                                     "name": "e4-late", "key": "k"}}}]}]}})

    def waiting() -> Any:
        pod = get(cluster, "pod", "e4-late")
        statuses = (pod or {}).get("status", {}).get("containerStatuses") or []
        return statuses and statuses[0]["state"].get("waiting", {}).get("message") and \
            statuses[0]["state"]["waiting"]

    state = wait_for(waiting, what="the container waiting")
    assert state == {"reason": "CreateContainerConfigError",
                     "message": "couldn't find key k in ConfigMap default/e4-late"}

    cluster.kubectl("patch", "configmap", "e4-late", "--type=merge", "-p",
                    json.dumps({"data": {"k": "at last"}}))
    seen = wait_for(lambda: report(cluster, "e4-late", agent), what="the pod running")
    assert seen["env"]["K"] == "at last"
    assert ready(get(cluster, "pod", "e4-late"))
