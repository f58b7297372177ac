"""Machines out of network namespaces, for testing `svcnet join` on one host.

Each "machine" is a network namespace ``svcnet-<tag>-m<i>`` with one interface (``eth0``, a
veth into a LAN bridge in the root namespace) and one address on a private /24 chosen free
(svcnet/cluster/networks.py's choice, under its machine-wide lock, so no `svcnet up` picks it
meanwhile). No machine has a default route: nothing leaves the host. With ``routed=True`` the
machines alternate between two LANs joined by a router namespace ``svcnet-<tag>-r`` (each
machine routes the other LAN via the router), so they share no L2 segment.

Programs run "on" a machine through ``nsenter --net``: the machine's network stack, the host's
file system and mount table (so the network namespaces the agents create are visible to the
test and to teardown, as ``ip netns`` names, like any other).

:meth:`Machines.close` removes everything even after a failure: the processes started here
(by pid: servers and agents), the processes in the agents' pod namespaces, every namespace and
link of the tag and of the agents' cluster, the state directories.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path

from svcnet.cluster import networks
from svcnet.cluster.down import cluster_namespaces
from svcnet.node.names import ClusterNames
from tests.e2e.local_clusters import tags_in_use, unique_name

ROOT = Path(__file__).resolve().parents[2]
SVCNET = [sys.executable, "-m", "svcnet.cli.main"]


def ip(*args: str, check: bool = True, stdin: str | None = None) -> str:
    r = subprocess.run(["ip", *args], capture_output=True, text=True, input=stdin, check=False)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


@dataclass
class Machine:
    index: int
    netns: str
    address: str
    lan: IPv4Network

    def argv(self, *args: str) -> list[str]:
        """``args`` as a command run on this machine (its network namespace)."""
        return ["nsenter", f"--net=/run/netns/{self.netns}", *args]

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), capture_output=True, text=True,
                              timeout=timeout, check=False, cwd=ROOT)


@dataclass
class Machines:
    tag: str
    """``jn<3 hex>``: the machines' names are ``svcnet-<tag>-...``."""
    cluster: str
    """The agents' cluster name (their pod namespaces are ``svcnet-<its tag>-p...``)."""
    workdir: Path
    machines: list[Machine] = field(default_factory=list)
    bridges: list[str] = field(default_factory=list)
    extra_netns: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    pod_network: IPv4Network = field(default_factory=lambda: IPv4Network("10.244.0.0/16"))

    def spawn(self, machine: Machine, name: str, *args: str) -> subprocess.Popen[bytes]:
        """``svcnet ARGS`` on ``machine``, logging to ``NAME.log``."""
        return self.start(machine, name, [*SVCNET, *args])

    def start(self, machine: Machine, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """Any program on ``machine`` (in its own session), stopped by :meth:`close`."""
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it
        with log:
            proc = subprocess.Popen(machine.argv(*argv), stdout=log, stderr=log,
                                    stdin=subprocess.DEVNULL, cwd=ROOT,
                                    start_new_session=True)
        self.processes.append(proc)
        return proc

    def logs(self) -> str:
        out = []
        for f in sorted(self.workdir.glob("*.log")):
            out.append(f"--- {f.name}\n" + "\n".join(f.read_text().splitlines()[-40:]))
        return "\n".join(out)

    def close(self) -> None:
        for proc in self.processes:  # servers and agents: a clean stop first
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in self.processes:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        ours = [*cluster_namespaces(ClusterNames.for_cluster(self.cluster)),
                *(m.netns for m in self.machines), *self.extra_netns]
        for ns in ours:  # the pods the agents left running, in namespaces made here
            for pid in ip("netns", "pids", ns, check=False).split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        for ns in ours:
            ip("netns", "del", ns, check=False)
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
        for link in [*self.bridges, *(f"svcnet-{self.tag}{m.index}" for m in self.machines),
                     f"svcnet-{self.tag}ra", f"svcnet-{self.tag}rb"]:
            ip("link", "del", link, check=False)


def _free_lans(count: int) -> list[IPv4Network]:
    """``count`` free /24s for the LANs (called under the machine lock)."""
    in_use = networks.machine_in_use()
    lans: list[IPv4Network] = []
    for _ in range(count):
        plan = networks.plan_network(None, in_use, {})
        lans.append(plan.nodes)
        in_use.append(networks.InUse(plan.nodes, "a LAN of this test"))
    return lans


def _machine_tag() -> str:
    taken = tags_in_use()
    while True:
        tag = f"jn{secrets.token_hex(2)[:3]}"
        if tag not in taken:
            return tag


def _lan(m: Machines, lan: IPv4Network, bridge: str) -> None:
    ip("link", "add", bridge, "type", "bridge")
    m.bridges.append(bridge)
    # The host's address on the LAN: it marks the /24 as used for other clusters (networks.py)
    # and lets the test reach the machines.
    ip("addr", "add", f"{lan.network_address + 1}/24", "dev", bridge)
    ip("link", "set", bridge, "up")


def _plug(netns: str, host_end: str, bridge: str, address: str, ifname: str = "eth0") -> None:
    ip("link", "add", host_end, "type", "veth", "peer", "name", ifname, "netns", netns)
    ip("link", "set", host_end, "master", bridge, "up")
    ip("-n", netns, "-batch", "-", stdin=f"link set lo up\naddr add {address} dev {ifname}\n"
       f"link set {ifname} up\n")


@contextlib.contextmanager
def machines(workdir: Path, count: int, *, routed: bool = False) -> Iterator[Machines]:
    """``count`` machines on one LAN, or (``routed``) alternating over two LANs joined by a
    router; always removed."""
    m = Machines(_machine_tag(), unique_name("jn"), workdir)
    try:
        with networks.machine_lock():
            lans = _free_lans(2 if routed else 1)
            for i, lan in enumerate(lans):
                _lan(m, lan, f"svcnet-{m.tag}-{'ab'[i]}")
        if routed:
            router = f"svcnet-{m.tag}-r"
            ip("netns", "add", router)
            m.extra_netns.append(router)
            for i, lan in enumerate(lans):
                _plug(router, f"svcnet-{m.tag}r{'ab'[i]}", m.bridges[i],
                      f"{lan.network_address + 254}/24", f"eth{i}")
            ip("netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for i in range(1, count + 1):
            lan_index = (i - 1) % len(lans)
            lan = lans[lan_index]
            netns = f"svcnet-{m.tag}-m{i}"
            ip("netns", "add", netns)
            machine = Machine(i, netns, str(lan.network_address + 10 + i), lan)
            m.machines.append(machine)
            _plug(netns, f"svcnet-{m.tag}{i}", m.bridges[lan_index], f"{machine.address}/24")
            for j, other in enumerate(lans):
                if j != lan_index:
                    ip("-n", netns, "route", "add", str(other), "via",
                       str(lan.network_address + 254))
        yield m
    finally:
        m.close()


def wait_for(what: str, check: object, timeout: float, m: Machines) -> None:
    """Poll ``check()`` (truthy: done) until ``timeout``; the failure shows the logs."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return
        except Exception as e:  # shown below if it persists
            last = e
        time.sleep(0.3)
    raise AssertionError(f"{what}: not after {timeout}s (last: {last!r})\n{m.logs()}")


def join_args(servers: Sequence[Machine], token_file: Path, machine: Machine, mode: str,
              state: Path, m: Machines) -> Sequence[str]:
    urls = ",".join(f"https://{s.address}:6443" for s in servers)
    return ("join", urls, "--token-file", str(token_file),
            "--node-name", f"m{machine.index}", "--node-ip", machine.address,
            "--pod-network-mode", mode, "--state-dir", str(state), "--cluster", m.cluster,
            "--node-index", str(machine.index), "--cluster-cidr", str(m.pod_network),
            "--port", "10250", "-v")


def silence(machine: Machine) -> None:
    """The machine vanishes from the network, as with a pulled cable: every packet into, out
    of or through its namespace (its pods'), and every ARP frame, is dropped (tables
    ``svcnet-silent`` in that namespace, gone with it), so its peers' connections neither
    answer nor fail and nobody resolves its addresses any more. Its processes keep running."""
    chains = {"inet": (("inbound", "input"), ("passing", "forward"), ("outbound", "output")),
              "arp": (("inbound", "input"), ("outbound", "output"))}
    ruleset = "".join(
        f"table {family} svcnet-silent {{\n" + "".join(
            f"  chain {name} {{ type filter hook {hook} priority -400; policy drop; }}\n"
            for name, hook in hooks) + "}\n"
        for family, hooks in chains.items())
    r = subprocess.run(machine.argv("nft", "-f", "-"), capture_output=True, text=True,
                       check=False, input=ruleset)
    if r.returncode != 0:
        raise RuntimeError(f"nft on {machine.netns}: {r.stderr.strip()}")


def lan_host(m: Machines, name: str = "c") -> Machine:
    """A plain host on the first LAN, running no svcnet part (a client of the LAN): the
    namespace ``svcnet-<tag>-<name>`` at the LAN's ``.100``; removed by :meth:`Machines.close`
    (deleting the namespace deletes its veth pair)."""
    lan = m.machines[0].lan
    host = Machine(0, f"svcnet-{m.tag}-{name}", str(lan.network_address + 100), lan)
    ip("netns", "add", host.netns)
    m.extra_netns.append(host.netns)
    _plug(host.netns, f"svcnet-{m.tag}{name}", m.bridges[0], f"{host.address}/24")
    return host


def run_in_netns(netns: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``args`` in the network namespace ``netns`` (e.g. a pod's), as :meth:`Machine.run`."""
    return subprocess.run(["nsenter", f"--net=/run/netns/{netns}", *args], capture_output=True,
                          text=True, timeout=timeout, check=False, cwd=ROOT)
