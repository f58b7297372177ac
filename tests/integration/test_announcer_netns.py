"""The announcer for real, in a node namespace the way the agent runs it (a
:class:`NetnsThread`, no remounted sysfs): its gratuitous ARP and unsolicited neighbour
advertisement carry the MAC of the node's uplink, not that of the host's interface of the
same name (``/sys/class/net`` shows the host's whatever thread reads it), and the uplink is
the interface holding the node's address, whatever its name (a joined machine's ``ens3``).

Two namespaces ``svcnet-<tag>-n1`` and ``-n2`` joined by a veth pair, n1's end ``ens3`` with
192.0.2.1/24, n2's ``eth0``; the frames sent in n1 are captured in n2. Everything is removed
whatever happens.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from svcnet.node.announcer import Announcer, _gratuitous_arp, _unsolicited_na
from svcnet.node.names import ClusterNames
from svcnet.util.nsthread import NetnsThread
from tests.conftest import require_binary, require_root
from tests.e2e.local_clusters import unique_name

pytestmark = pytest.mark.root

MAC = "02:53:76:63:6e:01"  # n1's uplink: not any interface of the host
ETH_P_ALL = 0x0003


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    require_root()
    require_binary("ip")
    names = ClusterNames.for_cluster(unique_name("ga"))
    n1, n2 = names.node_netns(1), names.node_netns(2)
    try:
        for ns in (n1, n2):
            _ip("netns", "add", ns)
        _ip("-n", n1, "link", "add", "ens3", "address", MAC, "type", "veth", "peer", "name",
            "eth0", "netns", n2)
        _ip("-n", n1, "link", "set", "ens3", "up")
        _ip("-n", n2, "link", "set", "eth0", "up")
        _ip("-n", n1, "addr", "add", "192.0.2.1/24", "dev", "ens3")
        _ip("-n", n1, "addr", "add", "2001:db8::1/64", "dev", "ens3", "nodad")  # a source
        yield n1, n2
    finally:
        for ns in (n1, n2):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def _capture(thread: NetnsThread) -> socket.socket:
    """A packet socket on n2's eth0 (created in n2: a socket keeps its namespace)."""
    def make() -> socket.socket:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind(("eth0", 0))
        s.settimeout(0.2)
        return s
    return thread.call_sync(make)


def _frames(s: socket.socket, ethertype: bytes, seconds: float = 3) -> Iterator[bytes]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            frame = s.recv(2048)
        except TimeoutError:
            continue
        if frame[12:14] == ethertype:
            yield frame


def test_gratuitous_arp_carries_the_uplinks_mac(pair: tuple[str, str]) -> None:
    n1, n2 = pair
    sender, receiver = NetnsThread(n1), NetnsThread(n2)
    try:
        with _capture(receiver) as s:
            sender.call_sync(functools.partial(_gratuitous_arp, "ens3", "192.0.2.9"))
            frame = next(_frames(s, b"\x08\x06"))
    finally:
        sender.close()
        receiver.close()
    mac = bytes.fromhex(MAC.replace(":", ""))
    assert frame[6:12] == mac  # the Ethernet source
    assert frame[22:28] == mac and frame[28:32] == socket.inet_aton("192.0.2.9")  # sha, spa


def test_neighbour_advertisement_carries_the_uplinks_mac(pair: tuple[str, str]) -> None:
    n1, n2 = pair
    sender, receiver = NetnsThread(n1), NetnsThread(n2)
    try:
        with _capture(receiver) as s:
            sender.call_sync(functools.partial(_unsolicited_na, "ens3", "2001:db8::9"))
            # ICMPv6 type 136 (the node's own router solicitations etc. are skipped).
            frame = next(f for f in _frames(s, b"\x86\xdd") if f[20] == 58 and f[54] == 136)
    finally:
        sender.close()
        receiver.close()
    mac = bytes.fromhex(MAC.replace(":", ""))
    assert frame[6:12] == mac
    assert frame[62:78] == socket.inet_pton(socket.AF_INET6, "2001:db8::9")  # the target
    assert frame[78:80] == b"\x02\x01" and frame[80:86] == mac  # target link-layer address


def test_the_elected_node_announces_on_the_interface_holding_its_address(
        pair: tuple[str, str]) -> None:
    n1, n2 = pair
    svc = {"metadata": {"name": "web", "namespace": "default"}, "spec": {"type": "LoadBalancer"},
           "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}]}}}
    node = {"metadata": {"name": "m1"}, "status": {"conditions": [
        {"type": "Ready", "status": "True"}]}}
    announcer, receiver = Announcer(n1, "m1", "192.0.2.1"), NetnsThread(n2)
    try:
        with _capture(receiver) as s:
            asyncio.run(announcer.sync([svc], [], [node]))
            frame = next(_frames(s, b"\x08\x06"))
    finally:
        announcer.close()
        receiver.close()
    assert announcer.ifname == "ens3" and announcer.announced == {"192.0.2.9"}
    out = subprocess.run(["ip", "-n", n1, "-o", "addr", "show", "dev", "ens3"], check=True,
                         capture_output=True, text=True).stdout
    assert " 192.0.2.9/32 " in out
    assert frame[22:28] == bytes.fromhex(MAC.replace(":", ""))
    assert frame[28:32] == socket.inet_aton("192.0.2.9")
