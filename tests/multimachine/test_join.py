"""`svcnet join` across machines (network namespaces standing in for hosts: machines.py).

A `svcnet server` on machine 1, listening on its LAN address; `svcnet join` on machines 1 and
2 with the token the server wrote, given a list of servers whose first is down. A backend pod on machine 2, a client pod on machine 1:

* pod to pod across machines (the pod network: routes or VXLAN, svcnet/node/nodenet.py);
* the client through a ClusterIP Service to the backend on the other machine;
* machine 2 (the host itself, not a pod) through machine 1's NodePort to the backend.

In routes mode both machines share a LAN. In VXLAN mode they are on two LANs joined by a
router, so a route via the other machine's address could not even be added: the traffic can
only take the VXLAN device, which the test also checks the route goes through, with the
pods' MTU 50 bytes under the link's. Needs root; everything is removed whatever happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from svcnet.node.names import ClusterNames
from tests.conftest import require_binary
from tests.multimachine.machines import ROOT, SVCNET, Machines, join_args, machines, wait_for

pytestmark = pytest.mark.root

BACKEND = ("import http.server\n"
           "class H(http.server.BaseHTTPRequestHandler):\n"
           "    def do_GET(self):\n"
           "        body = b'hello from the backend'\n"
           "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
           "        self.end_headers(); self.wfile.write(body)\n"
           "    def log_message(self, *a): pass\n"
           "http.server.ThreadingHTTPServer(('', 8080), H).serve_forever()\n")
WANT = "hello from the backend"
FETCH = ("import sys, urllib.request\n"
         "print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())\n")


def _pod(name: str, node: str, command: list[str], ready_port: int | None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "python", "command": command}
    if ready_port:
        container["readinessProbe"] = {"tcpSocket": {"port": ready_port}, "periodSeconds": 1}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"nodeName": node, "runtimeClassName": "process", "hostname": name,
                     "terminationGracePeriodSeconds": 1, "containers": [container]}}


MANIFEST = {"apiVersion": "v1", "kind": "List", "items": [
    _pod("backend", "m2", ["python3", "-c", BACKEND], 8080),
    _pod("client", "m1", ["sleep", "3600"], None),
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "backend"},
     "spec": {"type": "NodePort", "selector": {"app": "backend"},
              "ports": [{"port": 80, "targetPort": 8080}]}},
]}


class Cluster:
    def __init__(self, m: Machines, data_dir: Path) -> None:
        self.m, self.data_dir = m, data_dir

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        env = dict(os.environ, KUBECONFIG=str(self.data_dir / "kubeconfig"),
                   KUBECACHEDIR=str(self.m.workdir / "kcache"))
        r = subprocess.run([require_binary("kubectl"), *args], capture_output=True, text=True,
                           env=env, input=stdin, timeout=30, check=False)
        assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
        return r.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def in_pod(self, pod: str, url: str) -> str:
        r = subprocess.run([*SVCNET, "exec", pod, "--kubeconfig",
                            str(self.data_dir / "kubeconfig"), "--", sys.executable, "-c",
                            FETCH, url], capture_output=True, text=True, timeout=20,
                           check=False, cwd=ROOT)
        return r.stdout.strip() if r.returncode == 0 else f"failed: {r.stderr.strip()}"


def _ready(obj: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def _start(m: Machines, mode: str) -> Cluster:
    server = m.machines[0]
    data_dir = m.workdir / "server"
    m.spawn(server, "server", "server", "--data-dir", str(data_dir), "--listen",
            f"{server.address}:6443", "--cluster-cidr", str(m.pod_network),
            "--node-monitor-grace-period", "20")
    token = data_dir / "join-token"
    wait_for("the server's kubeconfig and join token",
             lambda: (data_dir / "kubeconfig").exists() and token.exists(), 30, m)
    # The servers' list starts with one that is down (machine 2 serves nothing on 6443): the
    # join moves on to the next, and the agent keeps it as the server to fail over to.
    for machine in m.machines:
        m.spawn(machine, f"agent-m{machine.index}",
                *join_args([m.machines[-1], server], token, machine, mode,
                           m.workdir / f"node-m{machine.index}", m))
    cluster = Cluster(m, data_dir)

    def nodes_ready() -> bool:
        nodes = cluster.get("nodes")["items"]
        return len(nodes) == len(m.machines) and all(
            _ready(n) and n["spec"].get("podCIDR") for n in nodes)

    wait_for("both machines Ready as nodes with pod CIDRs", nodes_ready, 40, m)
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(MANIFEST))

    def pods_ready() -> bool:
        pods = cluster.get("pods")["items"]
        return len(pods) == 2 and all(p["status"].get("phase") == "Running" for p in pods) \
            and _ready(next(p for p in pods if p["metadata"]["name"] == "backend"))

    wait_for("backend and client pods running", pods_ready, 40, m)
    return cluster


def _until(what: str, fetch: Any, want: str, m: Machines, timeout: float = 20) -> None:
    def check() -> str | None:
        got = str(fetch())
        if want in got:
            return got
        raise AssertionError(got)  # shown by wait_for if it is the last

    wait_for(what, check, timeout, m)


@pytest.mark.parametrize("mode", ["routes", "vxlan"])
def test_pods_and_services_across_machines(tmp_path: Path, mode: str) -> None:
    require_binary("nsenter")
    t0 = time.monotonic()
    with machines(tmp_path, 2, routed=mode == "vxlan") as m:
        cluster = _start(m, mode)
        pods = {p["metadata"]["name"]: p for p in cluster.get("pods")["items"]}
        backend_ip = pods["backend"]["status"]["podIP"]
        assert pods["backend"]["spec"]["nodeName"] == "m2"
        svc = cluster.get("service", "backend")
        cluster_ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]

        _until("pod to pod across machines",
               lambda: cluster.in_pod("client", f"http://{backend_ip}:8080/"),
               WANT, m)
        _until("a ClusterIP Service to the other machine",
               lambda: cluster.in_pod("client", f"http://{cluster_ip}/"),
               WANT, m)
        m1, m2 = m.machines

        def node_port_from_m2() -> str:
            r = m2.run(sys.executable, "-c", FETCH, f"http://{m1.address}:{node_port}/")
            return r.stdout.strip() or r.stderr.strip()

        _until("machine 2 through machine 1's NodePort", node_port_from_m2,
               WANT, m)

        route = m1.run("ip", "-j", "route", "get", backend_ip).stdout
        (got,) = json.loads(route)
        if mode == "vxlan":
            assert m1.lan != m2.lan  # no shared segment: only the overlay can carry it
            assert got["dev"] == "svcnet.vx", route
            node = cluster.get("node", "m2")
            assert node["metadata"]["annotations"]["svcnet.io/vtep-mac"].startswith("0e:58:")
            links = subprocess.run(
                ["ip", "-j", "-n", _pod_netns(m, pods["client"]), "link", "show",
                 "eth0"], capture_output=True, text=True, check=True).stdout
            assert json.loads(links)[0]["mtu"] == 1450
        else:
            assert got["gateway"] == m2.address and got["dev"] == "eth0", route
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                          check=True).stdout
    names = ClusterNames.for_cluster(m.cluster)
    assert not [n for n in left.split() if n.startswith(f"svcnet-{m.tag}-") or
                names.owns_netns(n)], left
    assert time.monotonic() - t0 < 90


def _pod_netns(m: Machines, pod: dict[str, Any]) -> str:
    return ClusterNames.for_cluster(m.cluster).pod_netns(pod["metadata"]["uid"])
