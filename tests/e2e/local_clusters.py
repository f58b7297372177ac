"""Names and networks for the `svcnet up` clusters of the root tests, so that two copies of the
suite, or a test next to a developer's own cluster, never share a name or kernel names.

A cluster's host-global kernel names carry a 2-character tag (svcnet/node/names.py): a
random name is checked against the tags of the bridges and network namespaces on the machine,
so a test cluster cannot take another cluster's names. The networks need no help: without
``--node-network`` each cluster gets the first free one (svcnet/cluster/networks.py), which
the tests read back from the cluster's record.
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

from svcnet.cluster.networks import ClusterNetwork, read_network
from svcnet.cluster.state import Paths
from svcnet.node.names import PREFIX, cluster_tag


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


def network_of(home: Path, name: str) -> ClusterNetwork:
    """The networks cluster ``name`` (state under ``home``) recorded when it came up."""
    network = read_network(Paths(home / name).network)
    assert network is not None, f"cluster {name} recorded no network under {home}"
    return network
