"""Pod and node network plans (golden), the fake network's kernel rules, and the iproute2
applier's plumbing against a stand-in ``ip`` script.

Test address plan: node 1's pod CIDR is 10.244.1.0/24 with the gateway 10.244.1.1 on bridge
``svcnet0``; pods get 10.244.1.5 and up. Cluster ``t4``.
"""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from pathlib import Path

import pytest

from svcnet.node.names import ClusterNames, PodNetworkNames
from svcnet.node.netns import (
    SELF_NETNS,
    Batch,
    CommandFailed,
    FakeNetwork,
    InvalidName,
    IPBatchNetwork,
    LinkExists,
    LinkNotFound,
    NetnsExists,
    NetnsNotFound,
    NetworkError,
    Route,
    apply_sync,
    batch_command,
    mac_for,
    plan_node_network,
    plan_pod_network,
    plan_veth,
    pod_veth_spec,
    query_sync,
    render,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("SVCNET_UPDATE_GOLDEN") == "1"
GW = IPv4Address("10.244.1.1")
NAMES = ClusterNames.for_cluster("t4")
POD_UID = "0f8e3c1a-2b9d-4c8e-9a51-7d2f1e0b6c3a"


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text()


def pod_names(uid: str = POD_UID) -> PodNetworkNames:
    return NAMES.pod_network(1, uid)


# --- plans ------------------------------------------------------------------------------------


def test_plan_pod_network_golden() -> None:
    batches = plan_pod_network(IPv4Interface("10.244.1.5/24"), GW, pod_names())
    assert [b.netns for b in batches] == ["svcnet-t4-n1", "svcnet-t4-pdk3z"]
    golden("pod_network.ip", render(batches))


def test_plan_node_network_golden() -> None:
    golden("node_network.ip", render(plan_node_network("svcnet-t4-n1",
                                                       IPv4Interface("10.244.1.1/24"))))


def test_plan_cni_pod_network_golden() -> None:
    """The CNI plugin's plan: the host end in the plugin's own netns, the pod end in the
    namespace the runtime passed by path (CNI_NETNS)."""
    names = PodNetworkNames(SELF_NETNS, "svcnet0", "/var/run/netns/cni-7c1e2f3a", "vethdk3ztyamwgm",
                            "eth0")
    spec = pod_veth_spec(IPv4Interface("10.244.1.5/24"), GW, names)
    golden("cni_pod_network.ip", render(plan_veth(spec)))
    dual = render(plan_veth(pod_veth_spec(
        IPv4Interface("10.244.1.5/24"), GW, names, pod_ip6=IPv6Interface("fd00:10:244:1::5/64"),
        gateway6=IPv6Address("fd00:10:244:1::1"))))
    assert dual.splitlines()[-4:] == [
        "addr add fd00:10:244:1::5/64 dev eth0 nodad", "link set eth0 up",
        "route add default via 10.244.1.1 dev eth0",
        "route add ::/0 via fd00:10:244:1::1 dev eth0"]
    no_hairpin = render(plan_veth(replace(spec, hairpin=False)))
    assert "hairpin" not in no_hairpin and "master svcnet0" in no_hairpin


@pytest.mark.parametrize(("netns", "json_output", "command"), [
    ("svcnet-t4-n1", False, ["ip", "-n", "svcnet-t4-n1", "-batch", "-"]),
    ("svcnet-t4-n1", True, ["ip", "-j", "-n", "svcnet-t4-n1", "-batch", "-"]),
    (SELF_NETNS, False, ["ip", "-batch", "-"]),
    ("/var/run/netns/cni-1", True,
     ["nsenter", "--net=/var/run/netns/cni-1", "ip", "-j", "-batch", "-"]),
])
def test_batch_command(netns: str, json_output: bool, command: list[str]) -> None:
    assert batch_command(netns, json_output=json_output) == command


@pytest.mark.parametrize("netns", ["/run/netns/../../etc/passwd", "/tmp/a b", "relative/path",
                                   "svcnet-t4-n1234567"])
def test_batch_command_refuses_unusable_references(netns: str) -> None:
    with pytest.raises(InvalidName):
        batch_command(netns)


@pytest.mark.parametrize(("pod_ip", "gateway"), [
    pytest.param("10.244.2.5/24", "10.244.1.1", id="gateway-outside-subnet"),
    pytest.param("10.244.1.1/24", "10.244.1.1", id="pod-is-gateway"),
])
def test_plan_pod_network_rejects_bad_gateway(pod_ip: str, gateway: str) -> None:
    with pytest.raises(ValueError, match="not a neighbour"):
        plan_pod_network(IPv4Interface(pod_ip), IPv4Address(gateway), pod_names())


def test_plan_rejects_long_names() -> None:
    bad = PodNetworkNames("svcnet-t4-n1", "svcnet0", "svcnet-t4-p1234567", "veth1", "eth0")
    with pytest.raises(InvalidName):
        plan_pod_network(IPv4Interface("10.244.1.5/24"), GW, bad)


@pytest.mark.parametrize(("ip", "mac"), [
    ("10.244.1.5", "0a:58:0a:f4:01:05"),
    ("10.244.255.254", "0a:58:0a:f4:ff:fe"),
])
def test_mac_for(ip: str, mac: str) -> None:
    assert mac_for(IPv4Address(ip)) == mac


# --- the fake ---------------------------------------------------------------------------------


async def fake_node() -> FakeNetwork:
    net = FakeNetwork()
    await net.create_netns("svcnet-t4-n1")
    await net.loopback_up("svcnet-t4-n1")
    await net.create_bridge("svcnet-t4-n1", "svcnet0", IPv4Interface("10.244.1.1/24"))
    return net


async def test_fake_pod_network_end_to_end() -> None:
    net = await fake_node()
    names = pod_names()
    await net.create_netns(names.pod_netns)
    await net.create_veth(pod_veth_spec(IPv4Interface("10.244.1.5/24"), GW, names))
    node, pod = net.ns("svcnet-t4-n1"), net.ns(names.pod_netns)
    host = node.links[names.host_veth]
    assert (host.master, host.hairpin, host.up) == ("svcnet0", True, True)
    eth0 = pod.links["eth0"]
    assert eth0.addresses == [IPv4Interface("10.244.1.5/24")]
    assert eth0.mac == "0a:58:0a:f4:01:05"
    assert pod.links["lo"].up
    assert pod.routes == [Route("default", GW)]
    # Deleting the pod netns takes the host end of the veth with it.
    await net.delete_netns(names.pod_netns)
    assert names.host_veth not in node.links


@pytest.mark.parametrize(("action", "error"), [
    pytest.param("dup-netns", NetnsExists, id="duplicate-netns"),
    pytest.param("missing-netns", NetnsNotFound, id="veth-into-missing-netns"),
    pytest.param("dup-veth", LinkExists, id="duplicate-veth"),
    pytest.param("missing-bridge", LinkNotFound, id="missing-bridge"),
    pytest.param("long-name", InvalidName, id="sixteen-char-netns"),
    pytest.param("delete-missing", NetnsNotFound, id="delete-missing-netns"),
    pytest.param("bad-gateway", CommandFailed, id="gateway-not-connected"),
    pytest.param("dup-bridge", LinkExists, id="duplicate-bridge"),
    pytest.param("bad-sysctl", ValueError, id="non-net-sysctl"),
])
async def test_fake_refuses_like_the_kernel(action: str, error: type[Exception]) -> None:
    net = await fake_node()
    names = pod_names()
    spec = pod_veth_spec(IPv4Interface("10.244.1.5/24"), GW, names)
    if action != "missing-netns":
        await net.create_netns(names.pod_netns)
    with pytest.raises(error):
        if action == "dup-netns":
            await net.create_netns(names.pod_netns)
        elif action in ("missing-netns", "dup-veth"):
            await net.create_veth(spec)
            await net.create_veth(spec)
        elif action == "missing-bridge":
            await net.create_veth(replace(spec, bridge="nope0"))
        elif action == "long-name":
            await net.create_netns("svcnet-t4-p123456")
        elif action == "delete-missing":
            await net.delete_netns("svcnet-t4-pzzzz")
        elif action == "bad-gateway":
            await net.create_veth(replace(spec, routes=(Route("default",
                                                              IPv4Address("10.9.9.9")),)))
        elif action == "dup-bridge":
            await net.create_bridge("svcnet-t4-n1", "svcnet0", IPv4Interface("10.244.1.1/24"))
        elif action == "bad-sysctl":
            await net.set_sysctl("svcnet-t4-n1", "kernel.pid_max", "1")


async def test_fake_records_calls_and_injects_failures() -> None:
    net = await fake_node()
    net.fail_next["create_netns"] = CommandFailed("boom")
    with pytest.raises(CommandFailed):
        await net.create_netns("svcnet-t4-pabcd")
    await net.create_netns("svcnet-t4-pabcd")  # the injected failure is used up
    assert ("create_netns", "svcnet-t4-pabcd") in net.calls
    assert await net.list_netns("svcnet-t4-p") == ["svcnet-t4-pabcd"]
    await net.set_sysctl("svcnet-t4-n1", "net.ipv4.ip_forward", "1")
    assert net.ns("svcnet-t4-n1").sysctls == {"net.ipv4.ip_forward": "1"}


def test_invalid_name_is_both_kinds_of_error() -> None:
    assert issubclass(InvalidName, NetworkError)
    assert issubclass(InvalidName, ValueError)


# --- the iproute2 applier, against a stand-in ``ip`` ----------------------------------------

FAKE_IP = """#!/bin/sh
# Records its arguments and stdin; fails like iproute2 when FAKE_IP_FAIL names a stderr text.
{{ echo "ARGS $*"; if [ "$1" = "-batch" ] || [ "$2" = "-batch" ] || [ "$3" = "-batch" ] || [ "$4" = "-batch" ]; then cat; fi; }} >> {log}
if [ -f {fail} ]; then cat {fail} >&2; exit 1; fi
exit 0
"""


@pytest.fixture
def stand_in(tmp_path: Path) -> tuple[IPBatchNetwork, Path, Path, Path]:
    log, fail = tmp_path / "ip.log", tmp_path / "fail"
    script = tmp_path / "ip"
    script.write_text(FAKE_IP.format(log=log, fail=fail))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    run_dir, etc_dir = tmp_path / "run", tmp_path / "etc"
    run_dir.mkdir()
    net = IPBatchNetwork(ip=str(script), run_dir=run_dir, etc_dir=etc_dir)
    return net, log, fail, run_dir


async def test_applier_runs_one_batch_per_netns(
        stand_in: tuple[IPBatchNetwork, Path, Path, Path]) -> None:
    net, log, _, run_dir = stand_in
    names = pod_names()
    for ns in ("svcnet-t4-n1", names.pod_netns):
        (run_dir / ns).touch()
    await net.create_veth(pod_veth_spec(IPv4Interface("10.244.1.5/24"), GW, names))
    text = log.read_text()
    assert text.count("ARGS") == 2
    assert "ARGS -n svcnet-t4-n1 -batch -\nlink add vethdk3ztyamwgm type veth" in text
    assert f"ARGS -n {names.pod_netns} -batch -\nlink set lo up\n" in text


async def test_applier_checks_netns_first(
        stand_in: tuple[IPBatchNetwork, Path, Path, Path]) -> None:
    net, log, _, run_dir = stand_in
    with pytest.raises(NetnsNotFound):
        await net.loopback_up("svcnet-t4-n1")
    (run_dir / "svcnet-t4-n1").touch()
    with pytest.raises(NetnsExists):
        await net.create_netns("svcnet-t4-n1")
    assert await net.list_netns("svcnet-t4-") == ["svcnet-t4-n1"]
    assert not log.exists()  # iproute2 was never asked


@pytest.mark.parametrize(("stderr", "error"), [
    pytest.param("RTNETLINK answers: File exists\nCommand failed -:1\n", LinkExists,
                 id="link-exists"),
    pytest.param('Cannot find device "eth9"\nCommand failed -:2\n', LinkNotFound,
                 id="no-device"),
    pytest.param("Error: Attribute failed policy validation.\nCommand failed -:1\n",
                 InvalidName, id="name-too-long"),
    pytest.param('Cannot open network namespace "x": No such file or directory\n',
                 NetnsNotFound, id="netns-vanished"),
    pytest.param("Error: Nexthop has invalid gateway.\nCommand failed -:4\n", CommandFailed,
                 id="other"),
])
async def test_applier_classifies_errors(
        stand_in: tuple[IPBatchNetwork, Path, Path, Path], stderr: str,
        error: type[NetworkError]) -> None:
    net, _, fail, run_dir = stand_in
    (run_dir / "svcnet-t4-n1").touch()
    fail.write_text(stderr)
    batch = Batch("svcnet-t4-n1", ("link add x type bridge", "addr add 1.2.3.4/24 dev eth9",
                                   "link set x up", "route add default via 9.9.9.9"))
    with pytest.raises(error) as info:
        await net.apply([batch])
    if "-:2" in stderr:
        assert "addr add 1.2.3.4/24 dev eth9" in str(info.value)  # the failing line


async def test_applier_etc_files_and_delete(
        stand_in: tuple[IPBatchNetwork, Path, Path, Path], tmp_path: Path) -> None:
    net, log, _, run_dir = stand_in
    (run_dir / "svcnet-t4-pabcd").touch()
    await net.write_etc_file("svcnet-t4-pabcd", "resolv.conf", "nameserver 10.96.0.10\n")
    path = tmp_path / "etc" / "svcnet-t4-pabcd" / "resolv.conf"
    assert path.read_text() == "nameserver 10.96.0.10\n"
    with pytest.raises(ValueError):
        await net.write_etc_file("svcnet-t4-pabcd", "../passwd", "x")
    await net.delete_netns("svcnet-t4-pabcd")
    assert "ARGS netns del svcnet-t4-pabcd" in log.read_text()
    assert not path.parent.exists()


def test_sync_applier(stand_in: tuple[IPBatchNetwork, Path, Path, Path], tmp_path: Path) -> None:
    """apply_sync/query_sync: the asyncio applier's command lines and error classification,
    with plain subprocesses (for the CNI plugin process)."""
    _, log, fail, _ = stand_in
    ip = str(tmp_path / "ip")
    apply_sync([Batch(SELF_NETNS, ("link set lo up", "link set eth0 up"))], ip=ip)
    assert log.read_text() == "ARGS -batch -\nlink set lo up\nlink set eth0 up\n"
    with pytest.raises(NetnsNotFound):
        apply_sync([Batch(str(tmp_path / "no-such-netns"), ("link set lo up",))], ip=ip)
    fail.write_text('Cannot find device "eth0"\nCommand failed -:2\n')
    with pytest.raises(LinkNotFound, match="link set eth0 up"):
        apply_sync([Batch(SELF_NETNS, ("link set lo up", "link set eth0 up"))], ip=ip)


def test_query_sync_parses_one_json_value_per_command(tmp_path: Path) -> None:
    script = tmp_path / "ip"
    script.write_text('#!/bin/sh\ncat >/dev/null\necho \'[{"ifname":"eth0"}]\'\necho \'[]\'\n')
    script.chmod(0o755)
    assert query_sync(SELF_NETNS, ["addr show dev eth0", "route show default"],
                      ip=str(script)) == [[{"ifname": "eth0"}], []]
