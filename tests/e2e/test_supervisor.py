"""A local cluster's processes killed one by one (``kill -9``) under traffic: each comes back.

The cluster is a real ``svcnet up --detach`` (frontend -> backend example). While a client on
the host hits the frontend's NodePort (through the localhost forwarder and straight at node 2)
and a client in the frontend pod hits the backend's ClusterIP and asks the cluster DNS, the test
kills the API server, each node agent, the DNS pod's process and the NodePort forwarder in
turn, waiting after each until it runs again and the nodes are Ready. The supervisor restarts
the cluster's processes; the node agent restarts the DNS container (as the kubelet would).

Afterwards the restarted agents must still program the data plane (a scale-up reaches every
new backend), no client may have seen a failure window longer than ``MAX_WINDOW`` seconds, and
``svcnet down`` must remove everything even after the supervisor itself was killed. Last, a
cluster in the foreground (no ``--detach``) is supervised the same way, and Ctrl-C removes it.

These tests need root; the cluster name is ``hs`` plus random hex (local_clusters.py), and the
cluster gets the first free node network, so it can run next to other clusters.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from svcnet.cluster.down import cluster_links, cluster_namespaces
from svcnet.cluster.runtimes import containerd_available
from svcnet.cluster.state import Paths, live_processes
from svcnet.cluster.supervise import read_status
from svcnet.node.names import ClusterNames
from tests import waiting
from tests.conftest import require, require_root
from tests.e2e.local_clusters import (
    example_on_node_port,
    free_node_port,
    network_of,
    unique_name,
)
from tests.waiting import run

ROOT = Path(__file__).resolve().parents[2]
SVCNET = [sys.executable, "-m", "svcnet.cli.main"]
MAX_WINDOW = 6.0
"""Longest time a client may go without an answer while one process is down (seconds)."""
# The example's frontend NodePort, free on this machine's loopback (local_clusters.py).
NODE_PORT = free_node_port()
pytestmark = pytest.mark.root

HOST_CLIENT = r"""
import json, os, sys, time, urllib.request
stop, urls, log = sys.argv[1], sys.argv[2:], []
while not os.path.exists(stop):
    for url in urls:
        t = time.time()
        try:
            urllib.request.urlopen(url, timeout=2).read()
            log.append([t, url, None])
        except Exception as e:
            log.append([t, url, repr(e)[:200]])
    time.sleep(0.05)
print(json.dumps(log))
"""

POD_CLIENT = r"""
import json, os, sys, time, urllib.request
import dns.resolver
stop, started, cluster_ip, log = sys.argv[1], sys.argv[2], sys.argv[3], []
open(started, "w").close()
r = dns.resolver.Resolver(configure=False)
r.nameservers = ["10.96.0.10"]
r.lifetime = 2
while not os.path.exists(stop):
    t = time.time()
    try:
        urllib.request.urlopen(f"http://{cluster_ip}/", timeout=2).read()
        log.append([t, "clusterip", None])
    except Exception as e:
        log.append([t, "clusterip", repr(e)[:200]])
    t = time.time()
    try:
        r.resolve("backend.default.svc.cluster.local", "A")
        log.append([t, "dns", None])
    except Exception as e:
        log.append([t, "dns", repr(e)[:200]])
    time.sleep(0.05)
print(json.dumps(log))
"""


@dataclass
class Cluster:
    name: str
    home: Path

    @property
    def paths(self) -> Paths:
        return Paths(self.home / self.name)

    def env(self, **extra: str) -> dict[str, str]:
        return dict(os.environ, SVCNET_HOME=str(self.home),
                    KUBECONFIG=str(self.paths.kubeconfig),
                    KUBECACHEDIR=str(self.home / "kcache"), **extra)

    def svcnet(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([*SVCNET, *args], capture_output=True, text=True, cwd=ROOT,
                           env=self.env(), timeout=180, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"svcnet {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
        return r

    def kubectl(self, *args: str, check: bool = True) -> Any:
        """``kubectl ... -o json``; without ``check``, None when it fails (a restarting
        server refuses connections for a moment)."""
        r = subprocess.run(["kubectl", *args, "-o", "json"], capture_output=True, text=True,
                           env=self.env(), timeout=60, check=False)
        if r.returncode != 0 and not check:
            return None
        assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
        return json.loads(r.stdout)

    def components(self) -> dict[str, Any]:
        comps: dict[str, Any] = (read_status(self.paths) or {}).get("components") or {}
        return comps

    def dns_pid(self) -> int | None:
        """The DNS container's pid, from its node agent's record (the current run's)."""
        for f in self.paths.root.glob("nodes/*/containers/*/dns.json"):
            rec = json.loads(f.read_text())
            if rec.get("state") is None:  # running
                return int(rec["pid"])
        return None


def _ready(obj: Any) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def wait_for(what: str, cond: Callable[[], bool], timeout: float = 60,
             detail: Callable[[], str] = lambda: "") -> None:
    waiting.wait_for(cond, what, timeout=timeout, detail=detail)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_root()
    require(subprocess.run(["which", "nft"], capture_output=True, check=False).returncode
            == 0, "nft is not installed")
    c = Cluster(unique_name("hs"), tmp_path_factory.mktemp("svcnet-home"))
    try:
        r = c.svcnet("up", "--name", c.name, "--detach", "-f",
                     str(example_on_node_port(tmp_path_factory.mktemp("example"), NODE_PORT)),
                     check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        yield c
    finally:
        c.svcnet("down", "--name", c.name, check=False)


def failure_windows(log: list[list[Any]]) -> list[tuple[str, float, float]]:
    """Per target, each run of failures as (target, last answer before, first answer after);
    a run still failing at the end lasts forever."""
    out: list[tuple[str, float, float]] = []
    last_ok: dict[str, float] = {}
    failing: set[str] = set()
    for t, target, error in sorted(log, key=lambda e: e[0]):
        if error is not None:
            failing.add(target)
            continue
        if target in failing:
            failing.discard(target)
            out.append((target, last_ok.get(target, t), t))
        last_ok[target] = t
    out += [(target, last_ok.get(target, 0.0), float("inf")) for target in failing]
    return out


def test_each_process_killed_in_turn_comes_back_under_traffic(cluster: Cluster,
                                                              tmp_path: Path) -> None:
    backend_ip = cluster.kubectl("get", "svc", "backend")["spec"]["clusterIP"]
    node_2 = f"http://{network_of(cluster.home, cluster.name).node_ip(2)}:{NODE_PORT}/"
    stop, started = tmp_path / "stop", tmp_path / "pod-client-started"
    host = subprocess.Popen([sys.executable, "-c", HOST_CLIENT, str(stop),
                             f"http://127.0.0.1:{NODE_PORT}/", node_2],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pod = subprocess.Popen([*SVCNET, "exec", "frontend", "--", sys.executable, "-c",
                            POD_CLIENT, str(stop), str(started), backend_ip], cwd=ROOT, env=cluster.env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed: dict[str, tuple[int, float]] = {}

    def settle() -> None:
        def all_ready() -> bool:
            nodes = (cluster.kubectl("get", "nodes", check=False) or {}).get("items", [])
            pods = (cluster.kubectl("get", "pods", "-A", check=False) or {}).get("items", [])
            return len(nodes) == 2 and len(pods) == 5 and all(map(_ready, nodes)) and all(map(_ready, pods))

        wait_for("nodes and pods Ready", all_ready)
        time.sleep(2)  # traffic against the recovered cluster before the next kill

    try:
        # `svcnet exec` asks the API server for the pod before it starts the client: kill
        # nothing until it has (on a loaded machine that took more than 2 s).
        wait_for("the client in the pod started", started.exists,
                 detail=lambda: f"svcnet exec exit code: {pod.poll()}")
        time.sleep(2)
        for comp in ("server", "node-1", "node-2", "dns", "nodeport-forwarder"):
            if comp == "dns":
                pid = cluster.dns_pid()
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                killed[comp] = (pid, time.time())

                def dns_back() -> bool:
                    p = cluster.kubectl("get", "pod", "-n", "kube-system", "kube-dns",
                                        check=False) or {}
                    statuses = (p.get("status") or {}).get("containerStatuses") or [{}]
                    return _ready(p) and statuses[0].get("restartCount", 0) >= 1

                wait_for("the DNS pod restarted and Ready", dns_back)
                assert cluster.dns_pid() != pid
            else:
                pid = cluster.components()[comp]["pid"]
                os.kill(pid, signal.SIGKILL)
                killed[comp] = (pid, time.time())

                def back(comp: str = comp, pid: int = pid) -> bool:
                    st = cluster.components().get(comp) or {}
                    return (st.get("state") == "running" and st.get("pid") not in (None, pid)
                            and live_processes(cluster.paths).get(comp) == st["pid"])

                wait_for(f"{comp} restarted", back, timeout=30,
                         detail=lambda: str(cluster.components()))
            settle()
        # The restarted agents still program the data plane: a scale-up reaches every pod.
        run(["kubectl", "scale", "deployment/backend", "--replicas=4"], env=cluster.env())
        wait_for("4 backends available", lambda: cluster.kubectl(
            "get", "deployment", "backend").get("status", {}).get("availableReplicas") == 4)
        names = {p["metadata"]["name"] for p in cluster.kubectl(
            "get", "pods", "-l", "app=backend")["items"]}
        seen: set[str] = set()
        import urllib.request

        for _ in range(200):
            with urllib.request.urlopen(node_2, timeout=5) as resp:
                seen.add(json.loads(resp.read().decode().split(" -> ", 1)[1])["backend"])
            if seen == names:
                break
        assert seen == names
    finally:
        stop.write_text("")
        host_out, host_err = host.communicate(timeout=60)
        pod_out, pod_err = pod.communicate(timeout=60)
    assert host.returncode == 0 and pod.returncode == 0, host_err + pod_err
    log = json.loads(host_out) + json.loads(pod_out.strip().splitlines()[-1])
    assert {e[1] for e in log} == {f"http://127.0.0.1:{NODE_PORT}/", node_2, "clusterip", "dns"}
    windows = failure_windows(log)
    by_kill: dict[str, dict[str, float]] = {}
    for target, start, end in windows:
        cause = max((c for c, (_, t) in killed.items() if t <= end), default="before",
                    key=lambda c: killed[c][1])
        worst = by_kill.setdefault(cause, {})
        worst[target] = round(max(worst.get(target, 0.0), end - start), 2)
    print(f"\nlongest failure window (s) per kill and target: {by_kill}")
    for e in log:
        if e[2] is not None:
            print(f"  {time.strftime('%T', time.localtime(e[0]))} {e[1]}: {e[2]}")
    longest = max((end - start for _, start, end in windows), default=0.0)
    failures = [e for e in log if e[2] is not None]
    assert longest < MAX_WINDOW, (by_kill, failures[:20])
    # Every supervised exit is in the supervisor's log with its cause, and status says so.
    supervisor_log = (cluster.paths.logs / "supervisor.log").read_text()
    for comp in ("server", "node-1", "node-2", "nodeport-forwarder"):
        assert f"{comp} (pid {killed[comp][0]}) killed by signal 9 (SIGKILL) after " \
            in supervisor_log
    r = cluster.svcnet("status", "--name", cluster.name)
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[2:]}
    for comp in ("server", "node-1", "node-2", "nodeport-forwarder"):
        assert rows[comp][1:2] + rows[comp][3:4] == ["running", "1"], r.stdout
        assert " ".join(rows[comp][5:]).startswith("killed by signal 9 (SIGKILL), ")
    # The DNS pod's row: its node agent restarted it; the pid is the new process.
    assert rows["dns"][1:4] == ["running", str(cluster.dns_pid()), "1"], r.stdout


def test_down_after_the_supervisor_was_killed_removes_everything(cluster: Cluster) -> None:
    paths = cluster.paths
    live = live_processes(paths)
    # A containerd per node where it is installed (svcnet up --container-runtime auto).
    runtimes = ({"containerd-node-1", "containerd-node-2"}
                if containerd_available() is None else set())
    assert set(live) == {"supervisor", "server", "node-1", "node-2", "nodeport-forwarder",
                         *runtimes}
    os.kill(live["supervisor"], signal.SIGKILL)
    wait_for("the supervisor gone", lambda: "supervisor" not in live_processes(paths))
    r = cluster.svcnet("status", "--name", cluster.name, check=False)
    assert r.returncode == 1
    assert r.stdout.splitlines()[0] == f"cluster {cluster.name!r}: supervisor not running"
    # Unsupervised now: a component killed stays dead, and status says so.
    os.kill(live["nodeport-forwarder"], signal.SIGKILL)
    wait_for("the forwarder gone", lambda: "nodeport-forwarder" not in live_processes(paths))
    r = cluster.svcnet("status", "--name", cluster.name, check=False)
    assert r.returncode == 1 and "nodeport-forwarder dead" in r.stderr, r.stderr
    pods = [int(json.loads(f.read_text())["pid"])
            for f in paths.root.glob("nodes/*/containers/*/*.json")]
    cluster.svcnet("down", "--name", cluster.name)
    names = ClusterNames.for_cluster(cluster.name)
    assert cluster_namespaces(names) == [] and cluster_links(names) == []
    assert not paths.root.exists()
    for pid in [*live.values(), *pods]:
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z", pid


def test_foreground_mode_supervises_and_ctrl_c_removes_everything(tmp_path: Path) -> None:
    require_root()
    c = Cluster(unique_name("hs"), tmp_path)
    up = subprocess.Popen([*SVCNET, "up", "--name", c.name], cwd=ROOT, env=c.env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for("the foreground cluster up", lambda: (read_status(c.paths) or {}).get(
            "components", {}).get("nodeport-forwarder", {}).get("state") == "running"
            or up.poll() is not None, timeout=120)
        assert up.poll() is None, up.communicate()
        pid = c.components()["node-1"]["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_for("node-1 restarted", lambda: c.components()["node-1"].get("pid")
                 not in (None, pid) and c.components()["node-1"]["state"] == "running",
                 timeout=30, detail=lambda: str(c.components()))
        up.send_signal(signal.SIGINT)
        out, err = up.communicate(timeout=60)
        assert up.returncode == 0, out + err
        assert f"cluster {c.name!r} stopped and removed" in err
        names = ClusterNames.for_cluster(c.name)
        assert cluster_namespaces(names) == [] and cluster_links(names) == []
        assert not c.paths.root.exists()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        c.svcnet("down", "--name", c.name, check=False)
