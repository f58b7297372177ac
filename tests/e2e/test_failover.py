"""A node goes away: after the grace period its LoadBalancer IP moves to another node.

Own cluster ("e8" plus random hex, on the first free node network) with a 15 s node grace
period. The node that announces the LoadBalancer IP
loses its uplink and its agent (as a crashed machine would); the other node must take the
address over (gratuitous ARP) and the host keeps reaching the Service.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from svcnet.node.names import ClusterNames
from tests.conftest import require_root
from tests.e2e.local_clusters import unique_name
from tests.waiting import run, wait_for

ROOT = Path(__file__).resolve().parents[2]
NAME = unique_name("e8")
SVCNET = [sys.executable, "-m", "svcnet.cli.main"]
pytestmark = pytest.mark.root

MANIFEST = "\n---\n".join(json.dumps(d) for d in [
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
     "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
              "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
    *({"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": f"web-{n}", "labels": {"app": "web"}},
       "spec": {"nodeName": f"node-{n}", "runtimeClassName": "process", "containers": [{
           "name": "web", "image": "python",
           "command": ["python3", "-m", "http.server", "8080"],
           "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}
      for n in (1, 2))])


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    require_root()
    env = dict(os.environ, SVCNET_HOME=str(tmp_path))
    manifest = tmp_path / "web.yaml"
    manifest.write_text(MANIFEST)
    r = subprocess.run([*SVCNET, "up", "--name", NAME, "--detach", "--node-grace-period", "15",
                        "-f", str(manifest)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=180, check=False)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        yield tmp_path
    finally:
        subprocess.run([*SVCNET, "down", "--name", NAME], cwd=ROOT, env=env,
                       capture_output=True, timeout=60, check=False)


def announces(names: ClusterNames, node: int, ip: str) -> bool:
    out = subprocess.run(["ip", "-n", names.node_netns(node), "-o", "-4", "addr", "show",
                          "dev", "eth0"], capture_output=True, text=True, check=False).stdout
    return f" {ip}/32 " in out


def announcer(names: ClusterNames, ip: str) -> int | None:
    return next((i for i in (1, 2) if announces(names, i, ip)), None)


def ready_nodes(env: dict[str, str]) -> set[str]:
    """The nodes of the ready endpoints of Service ``web``."""
    slices = json.loads(run(["kubectl", "get", "endpointslices", "-l",
                             "kubernetes.io/service-name=web", "-o", "json"], env=env).stdout)
    return {str(ep.get("nodeName")) for s in slices["items"] for ep in s.get("endpoints") or []
            if (ep.get("conditions") or {}).get("ready")}


def reachable(ip: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{ip}/", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def test_lb_ip_fails_over_when_its_node_goes_away(home: Path) -> None:
    names = ClusterNames.for_cluster(NAME)
    env = dict(os.environ, KUBECONFIG=str(home / NAME / "kubeconfig"),
               KUBECACHEDIR=str(home / "kcache"))
    svc = json.loads(run(["kubectl", "get", "svc", "web", "-o", "json"], env=env).stdout)
    ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    deadline = time.monotonic() + 20
    while (first := announcer(names, ip)) is None or not reachable(ip):
        assert time.monotonic() < deadline, "LB IP never announced"
        time.sleep(0.2)
    # The announcing node "crashes": its agent freezes (SIGSTOP: a killed one would be
    # restarted by the cluster's supervisor, as a crashed kubelet is) and its uplink goes down.
    pid = json.loads((home / NAME / "pids" / f"node-{first}.json").read_text())["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        run(["ip", "-n", names.node_netns(first), "link", "set", "eth0", "down"])
        down_at = time.monotonic()
        other = 3 - first
        deadline = down_at + 60
        # (The dead node keeps the address on its downed uplink, as a powered-off machine
        # would.)
        while not (announces(names, other, ip) and reachable(ip)):
            assert time.monotonic() < deadline, "the LB IP did not move to the surviving node"
            time.sleep(0.5)
        took = time.monotonic() - down_at
        assert took > 10, "not before the node was declared NotReady"
        # The same NotReady takes the dead node's pod out of the Service's endpoints (node
        # lifecycle marks it not ready, then the EndpointSlice follows), which may land just
        # after the address moved: from then on every request is answered.
        wait_for(lambda: ready_nodes(env) == {f"node-{other}"},
                 "the dead node's endpoint to leave the EndpointSlice", timeout=30)
        for _ in range(5):
            assert reachable(ip)
    finally:
        os.kill(pid, signal.SIGCONT)  # let `svcnet down` stop it as usual
