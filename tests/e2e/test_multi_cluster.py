"""Two local clusters on one machine at once (issue 13, item 4).

Two ``svcnet up`` run at the same time, both without ``--node-network``, in one
``SVCNET_HOME``: each must get its own node network and pod network (the first free ones,
networks.py), serve a NodePort of its own pod on its own node addresses, and ``svcnet down``
of one must leave the other working. Then both are removed with nothing left behind.

Needs root (network namespaces, bridges). The names are random (local_clusters.py), so the
test can run next to any other cluster, another copy of itself included.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from svcnet.cluster.down import cluster_links, cluster_namespaces
from svcnet.cluster.networks import ClusterNetwork
from svcnet.node.names import ClusterNames
from tests.conftest import require, require_root
from tests.e2e.local_clusters import network_of, unique_names

ROOT = Path(__file__).resolve().parents[2]
SVCNET = [sys.executable, "-m", "svcnet.cli.main"]
pytestmark = pytest.mark.root

WEB = """\
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  runtimeClassName: process
  containers:
  - name: web
    image: python
    command:
    - python3
    - -c
    - |
      import http.server, os
      class Handler(http.server.BaseHTTPRequestHandler):
          def do_GET(self):
              body = os.environ["WHO"].encode()
              self.send_response(200)
              self.send_header("Content-Length", str(len(body)))
              self.end_headers()
              self.wfile.write(body)
      http.server.ThreadingHTTPServer(("", 8080), Handler).serve_forever()
    env: [{name: WHO, value: %s}]
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


@dataclass
class Local:
    name: str
    home: Path

    def env(self) -> dict[str, str]:
        return dict(os.environ, SVCNET_HOME=str(self.home))

    def svcnet(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([*SVCNET, *args], capture_output=True, text=True, cwd=ROOT,
                           env=self.env(), timeout=120, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"svcnet {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
        return r

    @property
    def network(self) -> ClusterNetwork:
        return network_of(self.home, self.name)

    def node_port_url(self) -> str:
        svc = json.loads(self.svcnet("get", "svc", "web", "-o", "json", "--kubeconfig",
                                     str(self.home / self.name / "kubeconfig")).stdout)
        return f"http://{self.network.node_ip(1)}:{svc['spec']['ports'][0]['nodePort']}/"

    def leftovers(self) -> list[str]:
        names = ClusterNames.for_cluster(self.name)
        return cluster_namespaces(names) + cluster_links(names)


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Local, Local]]:
    require_root()
    require(shutil.which("nft") is not None, "nft is not installed")
    a, b = (Local(n, tmp_path) for n in unique_names("mc", 2))
    ups = []
    try:
        for c in (a, b):
            manifest = tmp_path / f"{c.name}.yaml"
            manifest.write_text(WEB % c.name)
            ups.append(subprocess.Popen(
                [*SVCNET, "up", "--name", c.name, "--detach", "--nodes", "1",
                 "--container-runtime", "process", "-f", str(manifest)],
                cwd=ROOT, env=c.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True))
        for c, up in zip((a, b), ups, strict=True):
            out, err = up.communicate(timeout=90)
            assert up.returncode == 0, f"{c.name}:\n{out}\n{err}"
            (tmp_path / f"{c.name}.stdout").write_text(out)
        yield a, b
    finally:
        for up in ups:
            if up.poll() is None:
                up.kill()
                up.communicate()
        for c in (a, b):
            c.svcnet("down", "--name", c.name, check=False)


def test_two_clusters_at_once_each_with_its_own_networks(two: tuple[Local, Local]) -> None:
    a, b = two
    na, nb = a.network, b.network
    assert not na.nodes.overlaps(nb.nodes) and not na.pods.overlaps(nb.pods), (na, nb)
    for c, other in ((a, nb), (b, na)):
        summary = (c.home / f"{c.name}.stdout").read_text()
        assert f"Network: {c.network.describe()}" in summary
        assert f"node-1   {c.network.node_ip(1)}" in summary
        assert c.network.pod_cidr(1) in summary and other.pod_cidr(1) not in summary
    urls = {c.name: c.node_port_url() for c in (a, b)}
    for c in (a, b):
        assert get(urls[c.name]) == c.name
        status = c.svcnet("status", "--name", c.name)
        assert f"network: {c.network.describe()}" in status.stdout

    # The same name under another SVCNET_HOME would take the same kernel names: refused, and
    # its `down` leaves the running cluster alone.
    twin = Local(a.name, a.home / "elsewhere")
    r = twin.svcnet("up", "--name", a.name, "--nodes", "1", "--detach", check=False)
    assert r.returncode == 1 and r.stderr.startswith(
        f"error: the kernel names of cluster {a.name!r} (svcnet-"), r.stderr
    assert f"belong to the cluster whose state is in {a.home / a.name}; choose another name" \
        in r.stderr
    r = twin.svcnet("down", "--name", a.name)
    assert "0 namespace(s), 0 link(s)" in r.stdout and "left alone" in r.stderr
    assert get(urls[a.name]) == a.name

    down = a.svcnet("down", "--name", a.name)
    assert f"; network {na.nodes} and pods {na.pods} free again" in down.stdout
    assert a.leftovers() == [] and not (a.home / a.name).exists()
    assert get(urls[b.name]) == b.name
    assert b.svcnet("status", "--name", b.name).returncode == 0
    assert b.leftovers(), "the second cluster's namespaces and bridge are still there"

    b.svcnet("down", "--name", b.name)
    assert b.leftovers() == [] and not (b.home / b.name).exists()
    again = b.svcnet("down", "--name", b.name)
    assert "0 process(es), 0 namespace(s), 0 link(s)" in again.stdout
