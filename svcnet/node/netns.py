"""Network namespaces, bridges and veths: pure ``ip -batch`` plans, a thin applier, a fake.

Theory of operation
-------------------
What a node looks like (DESIGN.md §3), everything below the root namespace::

    netns svcnet-<tag>-n<i>                      netns svcnet-<tag>-p<id>   (one per pod)
    ┌──────────────────────────────────┐         ┌───────────────────────┐
    │ lo up, net.ipv4.ip_forward=1     │         │ lo up                 │
    │ svcnet0 (bridge) 10.244.<i>.1/24 │         │ eth0 10.244.<i>.N/24  │
    │   └─ veth<hash> (hairpin on) ────┼── veth ─┼─ default via .1       │
    └──────────────────────────────────┘         └───────────────────────┘

Planners (:func:`plan_node_network`, :func:`plan_pod_network`, :func:`plan_veth`,
:func:`plan_bridge`) are pure: they turn names and addresses into :class:`Batch` es, lists of
iproute2 batch lines for one namespace each, and are golden-tested. An applier runs each batch
as one ``ip -n NS -batch -`` process: measured at 4-5 ms per pod against 20-30 ms for pyroute2,
which forks a helper per namespace anyway (docs/MEASURED.md §1). ``ip -batch`` cannot
switch namespace per line, and a veth's bridge port can only be configured from the bridge's
namespace, so a pod costs three processes: ``ip netns add``, the node-side batch (create the
pair with the pod end already in the pod netns, enslave, hairpin, up), the pod-side batch (lo,
address, up, default route).

**Which namespace.** A batch's namespace is given by name (``svcnet-t4-n1``: a file in
``/run/netns``, run as ``ip -n NAME -batch -``) or by absolute path (what a CNI runtime hands
a plugin as ``CNI_NETNS``, e.g. ``/var/run/netns/cni-…``: ``ip -n`` only takes names, so such a
batch runs as ``nsenter --net=PATH ip -batch -``, measured as fast as ``ip -n``). The path
:data:`SELF_NETNS` is the applier's own namespace (``ip -batch -``, no switch): where a CNI
plugin finds the pod bridge. In ``link add … netns X`` iproute2 takes names and paths alike.
The appliers are :class:`IPBatchNetwork` (asyncio, for the agent) and :func:`apply_sync` /
:func:`query_sync` (plain ``subprocess``, for the CNI plugin process, which must not pay for
importing asyncio on every pod start: that is also why asyncio is imported lazily here); both
build the same command line (:func:`batch_command`) and classify errors the same way.

Choices that are not obvious:

* **MAC addresses derived from IPs** (``0a:58:`` + the four address bytes, as OVN-Kubernetes
  does). When a pod IP is reused, the neighbours' ARP caches still hold the right MAC; and the
  bridge's MAC, set explicitly, no longer follows its lowest-numbered port as pods come and go.
* **hairpin on every pod port**: a pod that reaches its own Service and is picked as the
  backend gets its packet sent back out of the port it came in on; without hairpin mode the
  bridge drops it (measured: the connection times out).
* ``ip netns del`` only unmounts the namespace; the kernel frees it (and the veth pair with
  it) once the last process in it is gone. Deleting a pod's netns therefore also removes its
  host-side veth, with no separate ``link del``.

:class:`Network` is the side-effect boundary. :class:`IPBatchNetwork` is the real one;
:class:`FakeNetwork` models the same objects in memory and raises the same errors, so the pod
runner's tests catch ordering mistakes (a veth before its netns, a route before its address)
that a mock would not.

Errors::

    NetworkError
     ├── InvalidName        (also a ValueError: > 15 characters, illegal characters)
     ├── NetnsExists
     ├── NetnsNotFound
     ├── LinkExists
     ├── LinkNotFound
     └── CommandFailed      (anything else iproute2 refused; carries its stderr)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface
from pathlib import Path
from typing import Any, Final, Protocol

from svcnet.node import names as _names
from svcnet.node.names import PodNetworkNames, check_name
from svcnet.util.nsthread import NETNS_RUN_DIR, run_in_netns

__all__ = [
    "ETC_NETNS_DIR",
    "SELF_NETNS",
    "Batch",
    "CommandFailed",
    "FakeLink",
    "FakeNetns",
    "FakeNetwork",
    "IPBatchNetwork",
    "InvalidName",
    "LinkExists",
    "LinkNotFound",
    "NetnsExists",
    "NetnsNotFound",
    "Network",
    "NetworkError",
    "Route",
    "VethSpec",
    "apply_sync",
    "batch_command",
    "mac_for",
    "plan_bridge",
    "plan_node_network",
    "plan_pod_network",
    "plan_veth",
    "pod_veth_spec",
    "query_sync",
    "render",
]

ETC_NETNS_DIR: Final = Path("/etc/netns")
"""``ip netns exec NS`` bind-mounts every file in ``/etc/netns/NS/`` over ``/etc/<file>``."""

SELF_NETNS: Final = "/proc/self/ns/net"
"""The namespace of the process that applies a batch (and, in ``link add … netns``, of the
``ip`` process: the same one)."""

NSENTER: Final = "nsenter"

_NETNS_PATH_RE: Final = re.compile(r"/[A-Za-z0-9._@+=:/-]*")


class NetworkError(Exception):
    """Base of every error a :class:`Network` raises."""


class InvalidName(NetworkError, _names.InvalidName):
    pass


class NetnsExists(NetworkError):
    pass


class NetnsNotFound(NetworkError):
    pass


class LinkExists(NetworkError):
    pass


class LinkNotFound(NetworkError):
    pass


class CommandFailed(NetworkError):
    def __init__(self, message: str, *, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


def _check(name: str) -> str:
    try:
        return check_name(name)
    except _names.InvalidName as exc:
        raise InvalidName(str(exc)) from None


def _check_netns(netns: str) -> str:
    """A namespace reference: a name (:func:`check_name`) or an absolute path that an iproute2
    batch line can hold (no white space)."""
    if netns.startswith("/"):
        if not _NETNS_PATH_RE.fullmatch(netns) or "/../" in f"{netns}/":
            raise InvalidName(f"network namespace path {netns!r} is not usable")
        return netns
    return _check(netns)


# --- plans (pure) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Batch:
    """iproute2 batch lines to run in one namespace (a name or a path: see the module
    docstring)."""

    netns: str
    commands: tuple[str, ...]


def batch_command(netns: str, *, ip: str = "ip", json_output: bool = False,
                  ipv6: bool = False) -> list[str]:
    """The command line that runs a batch (on standard input) in ``netns``; ``ipv6``: ``ip -6``
    (``route show`` lists IPv4 routes only otherwise, and a batch line takes no options)."""
    json_flag = [*(["-6"] if ipv6 else []), *(["-j"] if json_output else [])]
    if netns == SELF_NETNS:
        return [ip, *json_flag, "-batch", "-"]
    if _check_netns(netns).startswith("/"):
        path = Path(netns)
        if path.parent == NETNS_RUN_DIR:  # a named one: ip enters it itself, no nsenter
            return [ip, *json_flag, "-n", path.name, "-batch", "-"]
        return [NSENTER, f"--net={netns}", ip, *json_flag, "-batch", "-"]
    return [ip, *json_flag, "-n", netns, "-batch", "-"]


def render(batches: Sequence[Batch]) -> str:
    """Batches as text, one ``# <command line>`` header per batch (golden files, logs)."""
    out: list[str] = []
    for batch in batches:
        out.append("# " + " ".join(batch_command(batch.netns)))
        out.extend(batch.commands)
    return "\n".join(out) + "\n"


@dataclass(frozen=True, slots=True)
class Route:
    """A route in the peer namespace: ``destination`` is ``default`` or a CIDR (``::/0``: the
    IPv6 default route)."""

    destination: str
    via: IPv4Address | IPv6Address | None = None


@dataclass(frozen=True, slots=True)
class VethSpec:
    """A veth pair: one end in ``host_netns`` (optionally a bridge port), the other end moved
    into ``peer_netns`` with an address and routes. Either namespace is a name or a path."""

    host_netns: str
    host_name: str
    peer_netns: str
    peer_name: str
    peer_address: IPv4Interface
    routes: tuple[Route, ...] = ()
    peer_address6: IPv6Interface | None = None
    """A dual-stack pod's IPv6 address (without duplicate address detection: the node
    derived it, nobody else holds it, and the pod can use it at once)."""
    bridge: str | None = None
    hairpin: bool = False
    peer_mac: str | None = None
    peer_loopback_up: bool = False
    mtu: int | None = None
    """Both ends' MTU (the pod network's, e.g. a VXLAN overlay's); None: the kernel's."""


def mac_for(ip: IPv4Address) -> str:
    """A locally administered unicast MAC that encodes ``ip`` (``0a:58:a:b:c:d``)."""
    return "0a:58:" + ":".join(f"{b:02x}" for b in ip.packed)


def plan_bridge(netns: str, name: str, address: IPv4Interface, *,
                mac: str | None = None, address6: IPv6Interface | None = None) -> Batch:
    mac_part = f" address {mac}" if mac else ""
    six = () if address6 is None else (f"addr add {address6.with_prefixlen} dev {name} nodad",)
    return Batch(netns, (
        f"link add {_check(name)}{mac_part} type bridge",
        f"addr add {address.with_prefixlen} dev {name}",
        *six,
        f"link set {name} up",
    ))


def plan_node_network(netns: str, gateway: IPv4Interface, *,
                      bridge: str = _names.POD_BRIDGE) -> list[Batch]:
    """A node netns's insides: loopback up, the pod bridge holding the pod gateway.

    ``ip_forward`` is a sysctl, not an ``ip`` command; :meth:`Network.set_sysctl` sets it.
    """
    bridge_batch = plan_bridge(netns, bridge, gateway, mac=mac_for(gateway.ip))
    return [Batch(_check(netns), ("link set lo up", *bridge_batch.commands))]


def plan_veth(spec: VethSpec) -> list[Batch]:
    """The host-side batch (create with the peer already in its netns, enslave, hairpin, up),
    then the peer-side batch (loopback, address, up, routes in the given order)."""
    host, peer = _check(spec.host_name), _check(spec.peer_name)
    _check_netns(spec.host_netns)
    _check_netns(spec.peer_netns)
    mac_part = f" address {spec.peer_mac}" if spec.peer_mac else ""
    mtu_part = f" mtu {spec.mtu}" if spec.mtu else ""
    host_cmds = [f"link add {host}{mtu_part} type veth peer name {peer}{mac_part}{mtu_part} "
                 f"netns {spec.peer_netns}"]
    if spec.bridge is not None:
        host_cmds.append(f"link set {host} master {_check(spec.bridge)}")
        if spec.hairpin:
            host_cmds.append(f"link set {host} type bridge_slave hairpin on")
    host_cmds.append(f"link set {host} up")
    peer_cmds = ["link set lo up"] if spec.peer_loopback_up else []
    peer_cmds.append(f"addr add {spec.peer_address.with_prefixlen} dev {peer}")
    if spec.peer_address6 is not None:
        peer_cmds.append(f"addr add {spec.peer_address6.with_prefixlen} dev {peer} nodad")
    peer_cmds.append(f"link set {peer} up")
    for route in spec.routes:
        via = f" via {route.via}" if route.via is not None else ""
        peer_cmds.append(f"route add {route.destination}{via} dev {peer}")
    return [Batch(spec.host_netns, tuple(host_cmds)), Batch(spec.peer_netns, tuple(peer_cmds))]


def pod_veth_spec(pod_ip: IPv4Interface, gateway: IPv4Address,
                  names: PodNetworkNames, *, pod_ip6: IPv6Interface | None = None,
                  gateway6: IPv6Address | None = None) -> VethSpec:
    """A pod's veth: its address and default route, and on a dual-stack node its IPv6
    address and IPv6 default route via the bridge's IPv6 gateway too."""
    six = (Route("::/0", gateway6),) if pod_ip6 is not None and gateway6 is not None else ()
    return VethSpec(
        host_netns=names.node_netns, host_name=names.host_veth, bridge=names.bridge,
        hairpin=True, peer_netns=names.pod_netns, peer_name=names.pod_veth,
        peer_address=pod_ip, peer_mac=mac_for(pod_ip.ip), peer_loopback_up=True,
        routes=(Route("default", gateway), *six), peer_address6=pod_ip6 if six else None,
    )


def plan_pod_network(pod_ip: IPv4Interface, gateway: IPv4Address,
                     names: PodNetworkNames) -> list[Batch]:
    """Everything after ``ip netns add <pod netns>``: the pod's veth, address and default
    route via the node's pod gateway (which must be inside ``pod_ip``'s network)."""
    if gateway not in pod_ip.network or gateway == pod_ip.ip:
        raise ValueError(f"gateway {gateway} is not a neighbour of {pod_ip}")
    return plan_veth(pod_veth_spec(pod_ip, gateway, names))


# --- the side-effect boundary ---------------------------------------------------------------


class Network(Protocol):
    async def create_netns(self, name: str) -> None:
        """Raises :class:`NetnsExists` if it exists."""
        ...

    async def delete_netns(self, name: str) -> None:
        """Unmount the netns and drop its ``/etc/netns`` files. Raises :class:`NetnsNotFound`."""
        ...

    async def list_netns(self, prefix: str = "") -> list[str]:
        """Sorted names of existing namespaces that start with ``prefix``."""
        ...

    async def loopback_up(self, netns: str) -> None: ...

    async def create_bridge(self, netns: str, name: str, address: IPv4Interface, *,
                            mac: str | None = None,
                            address6: IPv6Interface | None = None) -> None: ...

    async def create_veth(self, spec: VethSpec) -> None: ...

    async def set_sysctl(self, netns: str, key: str, value: str) -> None:
        """Set a per-netns ``net.*`` sysctl, e.g. ``net.ipv4.ip_forward``."""
        ...

    async def write_etc_file(self, netns: str, filename: str, content: str) -> None:
        """Write ``/etc/netns/NETNS/FILENAME``, which processes started with
        ``ip netns exec NETNS`` see as ``/etc/FILENAME`` (e.g. ``resolv.conf``)."""
        ...


def _sysctl_path(key: str) -> str:
    if not re.fullmatch(r"net(\.[A-Za-z0-9_-]+)+", key):
        raise ValueError(f"{key!r} is not a per-netns sysctl (net.*)")
    return "/proc/sys/" + key.replace(".", "/")


def _check_etc_filename(filename: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*", filename):
        raise ValueError(f"bad /etc file name {filename!r}")


class IPBatchNetwork:
    """:class:`Network` through iproute2: one ``ip`` process per batch.

    Namespace existence is checked on the file system first (cheap, and gives the same errors
    as :class:`FakeNetwork`); the rest of iproute2's refusals are classified from its stderr.
    """

    def __init__(self, *, ip: str = "ip", run_dir: Path = NETNS_RUN_DIR,
                 etc_dir: Path = ETC_NETNS_DIR) -> None:
        self._ip = ip
        self._run_dir = run_dir
        self._etc_dir = etc_dir

    def _exists(self, netns: str) -> bool:
        return _netns_exists(netns, self._run_dir)

    def _require(self, netns: str) -> None:
        if not self._exists(netns):
            raise NetnsNotFound(f"network namespace {netns!r} does not exist")

    async def _run(self, args: Sequence[str], stdin: str | None = None) -> None:
        await self._exec([self._ip, *args], stdin)

    async def _exec(self, argv: Sequence[str], stdin: str | None = None) -> None:
        import asyncio  # not at the top: see the module docstring

        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err_bytes = await proc.communicate(stdin.encode() if stdin is not None else None)
        if proc.returncode != 0:
            raise _command_error(argv, stdin, err_bytes.decode(errors="replace"))

    async def apply(self, batches: Sequence[Batch]) -> None:
        """Run each batch in its namespace, in order; stop at the first failure."""
        for batch in batches:
            self._require(batch.netns)
            await self._exec(batch_command(batch.netns, ip=self._ip), _batch_input(batch))

    async def create_netns(self, name: str) -> None:
        if self._exists(_check(name)):
            raise NetnsExists(f"network namespace {name!r} exists")
        await self._run(["netns", "add", name])

    async def delete_netns(self, name: str) -> None:
        self._require(name)
        await self._run(["netns", "del", name])
        shutil.rmtree(self._etc_dir / name, ignore_errors=True)

    async def list_netns(self, prefix: str = "") -> list[str]:
        try:
            entries = os.listdir(self._run_dir)
        except FileNotFoundError:
            return []
        return sorted(e for e in entries if e.startswith(prefix))

    async def loopback_up(self, netns: str) -> None:
        await self.apply([Batch(netns, ("link set lo up",))])

    async def create_bridge(self, netns: str, name: str, address: IPv4Interface, *,
                            mac: str | None = None,
                            address6: IPv6Interface | None = None) -> None:
        await self.apply([plan_bridge(netns, name, address, mac=mac, address6=address6)])

    async def create_veth(self, spec: VethSpec) -> None:
        self._require(spec.peer_netns)
        await self.apply(plan_veth(spec))

    async def set_sysctl(self, netns: str, key: str, value: str) -> None:
        path = _sysctl_path(key)
        self._require(netns)

        def write() -> None:
            with open(path, "w") as f:
                f.write(value)

        await run_in_netns(netns, write, run_dir=self._run_dir)

    async def write_etc_file(self, netns: str, filename: str, content: str) -> None:
        _check_etc_filename(filename)
        self._require(netns)
        directory = self._etc_dir / netns
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{filename}.tmp"
        tmp.write_text(content)
        os.replace(tmp, directory / filename)


def _netns_exists(netns: str, run_dir: Path = NETNS_RUN_DIR) -> bool:
    if netns == SELF_NETNS:
        return True
    if _check_netns(netns).startswith("/"):
        return os.path.exists(netns)
    return (run_dir / netns).exists()


def _batch_input(batch: Batch) -> str:
    return "\n".join(batch.commands) + "\n"


def _command_error(argv: Sequence[str], stdin: str | None, stderr: str) -> NetworkError:
    command = " ".join(["ip", *argv[1:]] if argv and argv[0] != NSENTER else argv)
    # In batch mode iproute2 names the failing line ("Command failed -:3").
    if stdin is not None and (m := re.search(r"Command failed -:(\d+)", stderr)):
        lines = stdin.splitlines()
        if 0 < int(m[1]) <= len(lines):
            command = f"{command}: {lines[int(m[1]) - 1]}"
    return _classify(command, stderr)


def _run_sync(argv: Sequence[str], stdin: str) -> str:
    proc = subprocess.run(argv, input=stdin.encode(), capture_output=True, check=False)
    if proc.returncode != 0:
        raise _command_error(argv, stdin, proc.stderr.decode(errors="replace"))
    return proc.stdout.decode()


def apply_sync(batches: Sequence[Batch], *, ip: str = "ip") -> None:
    """:meth:`IPBatchNetwork.apply` without asyncio, for a short-lived process (the CNI
    plugin): each batch in its namespace, in order; stop at the first failure."""
    for batch in batches:
        if not _netns_exists(batch.netns):
            raise NetnsNotFound(f"network namespace {batch.netns!r} does not exist")
        _run_sync(batch_command(batch.netns, ip=ip), _batch_input(batch))


def query_sync(netns: str, commands: Sequence[str], *, ip: str = "ip",
               ipv6: bool = False) -> list[Any]:
    """Run ``show`` commands in ``netns`` as one ``ip -j -batch -`` (``ipv6``: ``ip -6 -j``);
    one parsed JSON value per command (iproute2 prints one JSON array per line)."""
    if not _netns_exists(netns):
        raise NetnsNotFound(f"network namespace {netns!r} does not exist")
    out = _run_sync(batch_command(netns, ip=ip, json_output=True, ipv6=ipv6),
                    "\n".join(commands) + "\n")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _classify(command: str, stderr: str) -> NetworkError:
    text = stderr.strip()
    message = f"{command}: {text or 'failed'}"
    if "Cannot open network namespace" in text or re.search(
            r"nsenter: (cannot open|reassociate to namespace)", text):
        return NetnsNotFound(message)
    if "Cannot create namespace file" in text and "File exists" in text:
        return NetnsExists(message)
    if "Cannot remove namespace file" in text:
        return NetnsNotFound(message)
    if re.search(r'Cannot find device|Device does not exist|does not exist', text):
        return LinkNotFound(message)
    if "File exists" in text and re.search(r"\blink add\b", command):
        return LinkExists(message)
    if "Attribute failed policy validation" in text:
        return InvalidName(message)
    return CommandFailed(message, stderr=text)


# --- the fake -------------------------------------------------------------------------------


@dataclass
class FakeLink:
    name: str
    kind: str  # "loopback" | "bridge" | "veth"
    up: bool = False
    addresses: list[IPv4Interface] = field(default_factory=list)
    mac: str | None = None
    master: str | None = None
    hairpin: bool = False
    peer: tuple[str, str] | None = None  # (netns, link) of the other end of a veth


@dataclass
class FakeNetns:
    links: dict[str, FakeLink] = field(
        default_factory=lambda: {"lo": FakeLink("lo", "loopback")})
    routes: list[Route] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    etc: dict[str, str] = field(default_factory=dict)

    def connected(self, ip: IPv4Address) -> FakeLink | None:
        """The up link whose subnet holds ``ip`` (what the kernel needs for a gateway)."""
        for link in self.links.values():
            if link.up and any(ip in a.network for a in link.addresses):
                return link
        return None


class FakeNetwork:
    """An in-memory :class:`Network` with the kernel's refusals; ``calls`` records every call."""

    def __init__(self) -> None:
        self.namespaces: dict[str, FakeNetns] = {}
        self.calls: list[tuple[str, ...]] = []
        self.fail_next: dict[str, NetworkError] = {}
        """Method name → error to raise on its next call (then forgotten)."""

    def _enter(self, method: str, *args: str) -> None:
        self.calls.append((method, *args))
        if (err := self.fail_next.pop(method, None)) is not None:
            raise err

    def ns(self, name: str) -> FakeNetns:
        _check(name)
        try:
            return self.namespaces[name]
        except KeyError:
            raise NetnsNotFound(f"network namespace {name!r} does not exist") from None

    def _link(self, netns: str, name: str) -> FakeLink:
        try:
            return self.ns(netns).links[name]
        except KeyError:
            raise LinkNotFound(f'Cannot find device "{name}" in {netns}') from None

    def _add_link(self, netns: str, link: FakeLink) -> None:
        _check(link.name)
        links = self.ns(netns).links
        if link.name in links:
            raise LinkExists(f"RTNETLINK answers: File exists ({link.name} in {netns})")
        links[link.name] = link

    def _add_address(self, netns: str, name: str, address: IPv4Interface) -> None:
        link = self._link(netns, name)
        if any(a.ip == address.ip for a in link.addresses):
            raise CommandFailed("Error: ipv4: Address already assigned.")
        link.addresses.append(address)

    async def create_netns(self, name: str) -> None:
        self._enter("create_netns", name)
        if _check(name) in self.namespaces:
            raise NetnsExists(f"network namespace {name!r} exists")
        self.namespaces[name] = FakeNetns()

    async def delete_netns(self, name: str) -> None:
        self._enter("delete_netns", name)
        self.ns(name)
        gone = self.namespaces.pop(name)
        # Destroying a namespace destroys its veths, and with them their peers elsewhere.
        for link in gone.links.values():
            if link.peer is not None and link.peer[0] in self.namespaces:
                self.namespaces[link.peer[0]].links.pop(link.peer[1], None)

    async def list_netns(self, prefix: str = "") -> list[str]:
        self._enter("list_netns", prefix)
        return sorted(n for n in self.namespaces if n.startswith(prefix))

    async def loopback_up(self, netns: str) -> None:
        self._enter("loopback_up", netns)
        self._link(netns, "lo").up = True

    async def create_bridge(self, netns: str, name: str, address: IPv4Interface, *,
                            mac: str | None = None,
                            address6: IPv6Interface | None = None) -> None:
        self._enter("create_bridge", netns, name, str(address))
        self._add_link(netns, FakeLink(name, "bridge", mac=mac))
        self._add_address(netns, name, address)
        self._link(netns, name).up = True

    async def create_veth(self, spec: VethSpec) -> None:
        self._enter("create_veth", spec.host_netns, spec.host_name, spec.peer_netns,
                    spec.peer_name, str(spec.peer_address))
        host_ns, peer_ns = self.ns(spec.host_netns), self.ns(spec.peer_netns)
        _check(spec.peer_name)
        if spec.host_name in host_ns.links or spec.peer_name in peer_ns.links:
            raise LinkExists("RTNETLINK answers: File exists")
        if spec.bridge is not None and self._link(spec.host_netns, spec.bridge).kind != "bridge":
            raise CommandFailed(f"{spec.bridge} is not a bridge")
        self._add_link(spec.host_netns, FakeLink(
            spec.host_name, "veth", up=True, master=spec.bridge,
            hairpin=spec.hairpin and spec.bridge is not None,
            peer=(spec.peer_netns, spec.peer_name)))
        self._add_link(spec.peer_netns, FakeLink(
            spec.peer_name, "veth", up=True, mac=spec.peer_mac,
            peer=(spec.host_netns, spec.host_name)))
        if spec.peer_loopback_up:
            peer_ns.links["lo"].up = True
        self._add_address(spec.peer_netns, spec.peer_name, spec.peer_address)
        for route in spec.routes:
            if isinstance(route.via, IPv6Address):
                peer_ns.routes.append(route)  # (IPv6 is not modelled beyond being asked for)
                continue
            if route.via is not None and peer_ns.connected(route.via) is None:
                raise CommandFailed("Error: Nexthop has invalid gateway.")
            if any(r.destination == route.destination for r in peer_ns.routes):
                raise CommandFailed("RTNETLINK answers: File exists")
            if route.destination != "default":
                IPv4Network(route.destination)
            peer_ns.routes.append(route)

    async def set_sysctl(self, netns: str, key: str, value: str) -> None:
        self._enter("set_sysctl", netns, key, value)
        _sysctl_path(key)
        self.ns(netns).sysctls[key] = value

    async def write_etc_file(self, netns: str, filename: str, content: str) -> None:
        self._enter("write_etc_file", netns, filename)
        _check_etc_filename(filename)
        self.ns(netns).etc[filename] = content
