"""Names and networks for the `svcnet up` clusters of the root tests, so that two copies of the
suite, or a test next to a developer's own cluster, never share a name or kernel names.

A cluster's host-global kernel names carry a 2-character tag (svcnet/node/names.py): a
random name is checked against the tags of the bridges and network namespaces on the machine,
so a test cluster cannot take another cluster's names. The networks need no help: without
``--node-network`` each cluster gets the first free one (svcnet/cluster/networks.py), which
the tests read back from the cluster's record.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from svcnet.cluster.networks import ClusterNetwork, read_network
from svcnet.cluster.state import Paths
from svcnet.node.names import PREFIX, cluster_tag
from tests.conftest import require, require_root

ROOT = Path(__file__).resolve().parents[2]
SVCNET = [sys.executable, "-m", "svcnet.cli.main"]


def _ip(*args: str) -> list[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True,
                          check=False).stdout.splitlines()


def tags_in_use() -> set[str]:
    """Tags of the svcnet bridges, uplinks and network namespaces on the machine."""
    links = [line.split(":")[1].strip().split("@")[0] for line in _ip("-o", "link", "show")
             if line.count(":") >= 2]
    netns = [line.split()[0] for line in _ip("netns", "list") if line.strip()]
    return {n[len(PREFIX):].split("-")[0] for n in [*links, *netns] if n.startswith(PREFIX)}


def unique_names(prefix: str, count: int = 1) -> list[str]:
    """``count`` cluster names ``<prefix><6 random hex>`` whose tags differ from each other
    and from every tag in use on the machine."""
    taken = tags_in_use()
    out: list[str] = []
    while len(out) < count:
        name = f"{prefix}{secrets.token_hex(3)}"
        if cluster_tag(name) not in taken:
            taken.add(cluster_tag(name))
            out.append(name)
    return out


def unique_name(prefix: str) -> str:
    return unique_names(prefix)[0]


def free_node_port() -> int:
    """A NodePort (30000-32767) that nothing listens on at the host's loopback now.

    `svcnet up` forwards each TCP NodePort from ``127.0.0.1`` (svcnet/cluster/forwarder.py),
    so two clusters of one example on one machine would fight for ``127.0.0.1:30080``."""
    while True:
        port = 30000 + secrets.randbelow(2768)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def write_manifest(directory: Path, docs: Iterable[Mapping[str, Any]]) -> Path:
    """``docs`` as one multi-document manifest in ``directory``, for ``svcnet up -f``."""
    path = directory / "manifest.yaml"
    path.write_text("\n---\n".join(json.dumps(doc) for doc in docs))
    return path


def example_on_node_port(dest_dir: Path, port: int) -> Path:
    """examples/frontend-backend.yaml with its frontend's NodePort (30080) moved to ``port``."""
    text = (ROOT / "examples" / "frontend-backend.yaml").read_text()
    assert text.count("nodePort: 30080") == 1, "the example's NodePort moved: update the tests"
    out = dest_dir / "frontend-backend.yaml"
    out.write_text(text.replace("nodePort: 30080", f"nodePort: {port}"))
    return out


def network_of(home: Path, name: str) -> ClusterNetwork:
    """The networks cluster ``name`` (state under ``home``) recorded when it came up."""
    network = read_network(Paths(home / name).network)
    assert network is not None, f"cluster {name} recorded no network under {home}"
    return network


@dataclass(frozen=True)
class LocalCluster:
    """A `svcnet up` cluster a test module brought up (:func:`local_cluster`): its state
    under ``home``, its name, and the commands that reach it."""

    home: Path
    name: str

    @property
    def kubeconfig(self) -> Path:
        return self.home / self.name / "kubeconfig"

    def svcnet(self, *args: str, check: bool = True, timeout: float = 120
               ) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([*SVCNET, *args], capture_output=True, text=True, cwd=ROOT,
                           env=dict(os.environ, SVCNET_HOME=str(self.home)), timeout=timeout,
                           check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"svcnet {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
        return r

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        """kubectl's output; its stderr is the failure message."""
        r = self.kubectl_run(*args, stdin=stdin)
        assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
        return r.stdout

    def kubectl_run(self, *args: str, stdin: str | None = None
                    ) -> subprocess.CompletedProcess[str]:
        """kubectl, whatever its exit code (for the failures a test expects)."""
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig),
                   KUBECACHEDIR=str(self.home / "kcache"))
        return subprocess.run(["kubectl", *args], capture_output=True, text=True, env=env,
                              input=stdin, timeout=60, check=False)


@contextlib.contextmanager
def local_cluster(tmp_path_factory: pytest.TempPathFactory, prefix: str,
                  *up_args: str) -> Iterator[LocalCluster]:
    """A cluster named ``<prefix><random hex>`` (root needed), ``svcnet up --detach
    UP_ARGS...``, always removed by ``svcnet down``."""
    require_root()
    require(shutil.which("nft") is not None, "nft is not installed")
    require(shutil.which("kubectl") is not None, "kubectl is not installed")
    cluster = LocalCluster(tmp_path_factory.mktemp("svcnet-home"), unique_name(prefix))
    r = cluster.svcnet("up", "--name", cluster.name, "--detach", *up_args, check=False,
                       timeout=180)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        yield cluster
    finally:
        cluster.svcnet("down", "--name", cluster.name, check=False)
