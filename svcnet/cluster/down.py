"""`svcnet down`: remove every trace of a local cluster, also after a crash or ``kill -9``.

It does not trust that ``up`` finished or that anything is still running: it stops the
supervisor, then the recorded processes (by pid *and* start time; the supervisor records each
start, so this holds after the supervisor crashed too), kills what still runs inside the
cluster's own network namespaces (pods), deletes those namespaces (recognised by exact name
patterns, so another cluster's are never touched) with their ``/etc/netns`` files, deletes the
cluster's links in the root namespace (the bridge; the host routes go with it), and removes the
state directory, with the record of the cluster's networks (which frees them for the next
``svcnet up``). Running it twice is harmless.

Names are per tag, and two clusters may have the same tag: the same name under two
``SVCNET_HOME``, or two names that hash to the same 2-character tag (names.py). The bridge's
alias names the state directory of the cluster that made the names (topology.py): when it is
another's, ``down`` leaves the namespaces, links and cgroups alone and removes only this
cluster's processes and state.

A name of the cluster's pattern may stand for a namespace that is no cluster's own: `svcnet
join` names the machine's own namespace ``svcnet-<tag>-n<i>`` (node/join.py). ``down`` kills
nothing in a namespace that is this process's or the host's (pid 1's), and deleting such a name
only removes the name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from svcnet.cluster import runtimes
from svcnet.cluster.networks import ClusterNetwork, read_network
from svcnet.cluster.state import Paths, cluster_dir, live_processes, stop_processes
from svcnet.cluster.topology import BRIDGE_ALIAS_PREFIX
from svcnet.node.names import ClusterNames


@dataclass
class DownReport:
    processes: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    state_removed: bool = False
    network: ClusterNetwork | None = None
    """The networks the cluster had recorded (now free)."""
    foreign_owner: str | None = None
    """The state directory of the cluster that owns the names of this one's tag, when it is
    another (nothing of its network was touched)."""


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False).stdout


def cluster_namespaces(names: ClusterNames) -> list[str]:
    out = []
    for line in _ip("netns", "list").splitlines():
        if line.strip() and names.owns_netns(ns := line.split()[0]):
            out.append(ns)
    return sorted(out)


def is_host_netns(name: str, run_dir: Path = Path("/run/netns")) -> bool:
    """Whether the name stands for this process's network namespace or pid 1's."""
    try:
        bound = os.stat(run_dir / name)
    except OSError:
        return False
    for own in ("/proc/self/ns/net", "/proc/1/ns/net"):
        with contextlib.suppress(OSError):
            st = os.stat(own)
            if (st.st_dev, st.st_ino) == (bound.st_dev, bound.st_ino):
                return True
    return False


def cluster_links(names: ClusterNames) -> list[str]:
    links = []
    for line in _ip("-o", "link", "show").splitlines():
        parts = line.split(":")
        if len(parts) < 2:
            continue
        link = parts[1].strip().split("@")[0]
        if link == names.node_bridge or names.owns_netns(link):
            links.append(link)
    return sorted(links)


def bridge_owner(names: ClusterNames) -> str | None:
    """The state directory in the alias of the bridge of ``names``' tag, if there is such a
    bridge with such an alias (a bridge made before aliases were set has none)."""
    try:
        alias = Path(f"/sys/class/net/{names.node_bridge}/ifalias").read_text().strip()
    except OSError:
        return None
    return alias.removeprefix(BRIDGE_ALIAS_PREFIX) if alias.startswith(BRIDGE_ALIAS_PREFIX) \
        else None


def owner(paths: Paths) -> str:
    """What the bridge's alias says for the cluster whose state is ``paths``."""
    return str(paths.root.resolve())


def foreign_owner(name: str) -> str | None:
    """The state directory of another cluster that owns the host-global names of ``name``'s
    tag (the same name under another ``SVCNET_HOME``, or a name with the same tag), or None."""
    found = bridge_owner(ClusterNames.for_cluster(name))
    return found if found not in (None, owner(Paths(cluster_dir(name)))) else None


def down(name: str) -> DownReport:
    paths = Paths(cluster_dir(name))
    report = DownReport(foreign_owner=foreign_owner(name))
    names = None if report.foreign_owner else ClusterNames.for_cluster(name)
    # The supervisor first (so nobody restarts what follows), then the agents (so nobody
    # restarts pods), then the pods (processes the agents started, in the cluster's
    # namespaces), then the API server: no pod keeps a watch open on it then.
    report.processes = stop_processes(paths, names={"supervisor"})
    recorded = set(live_processes(paths))
    report.processes += stop_processes(paths, names=recorded - {"server"})
    namespaces = cluster_namespaces(names) if names is not None else []
    for ns in namespaces:
        if is_host_netns(ns):
            continue
        for pid in _ip("netns", "pids", ns).split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
    report.processes += stop_processes(paths)
    for f in paths.pids.glob("*.json") if paths.pids.is_dir() else []:
        f.unlink(missing_ok=True)
    for ns in namespaces:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
    report.namespaces = namespaces
    for link in cluster_links(names) if names is not None else []:
        subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)
        report.links.append(link)
    report.processes += runtimes.remove_traces(paths.root, names)
    report.network = read_network(paths.network)
    if paths.root.exists():
        shutil.rmtree(paths.root, ignore_errors=True)
        report.state_removed = True
    return report
