"""The ``svcnet-cni`` executable for real, run the way containerd runs it.

Each test builds a node-like netns ``svcnet-<tag>-n1`` (a random two-character tag, so parallel
runs and the ``t4`` tests never share a name) holding the pod bridge ``svcnet0`` with
10.244.1.1/24, from the agent's own planner. Pod namespaces are made the way a CRI runtime
makes them: ``unshare --net=PATH`` at a path outside ``/run/netns`` (as containerd's
``/var/run/netns/cni-<uuid>``), named ``svcnet-pod-*`` under the test's tmp dir. The plugin
then runs inside the node netns with ``nsenter --net=`` (the network namespace only: under
``ip netns exec`` its bind mount of the alias would stay in a private mount namespace), with
the CNI environment and the configuration on standard input, as libcni hands it over.

Nothing is added to the root namespace, and nothing routes off the machine (the node netns has
no uplink). The ``node`` fixture's finalizer runs even when a test fails: it unmounts every
alias ``/run/netns/svcnet-<tag>-p*``, unmounts and removes every pod netns file, and deletes
the node netns (which takes the bridge and every host veth with it).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from svcnet.node.cni import alias, plugin
from svcnet.node.cni.config import BridgeConf, conflist, netconf_from_conflist
from svcnet.node.cni.spec import CNIArgs, version_info
from svcnet.node.names import ClusterNames, pod_host_veth
from svcnet.node.netns import Batch, apply_sync, mac_for, plan_node_network, query_sync
from svcnet.util.nsthread import NETNS_RUN_DIR
from tests.conftest import require, require_binary
from tests.e2e.local_clusters import unique_name

pytestmark = pytest.mark.root

CNI = Path(sys.executable).parent / "svcnet-cni"
GATEWAY = IPv4Interface("10.244.1.1/24")
Obj = dict[str, Any]


@dataclass
class Node:
    tmp: Path
    names: ClusterNames
    conflist: str
    pod_netns: list[Path] = field(default_factory=list)

    @property
    def netns(self) -> str:
        return self.names.node_netns(1)

    @property
    def conf(self) -> Obj:
        """The plugin's configuration as libcni hands it over (name, cniVersion copied in)."""
        data = json.loads(self.conflist)
        return {**data["plugins"][0], "cniVersion": data["cniVersion"], "name": data["name"]}

    def make_pod_netns(self, label: str) -> str:
        """A namespace at a path outside /run/netns, as a CRI runtime makes one."""
        path = self.tmp / f"svcnet-pod-{label}"
        path.touch()
        self.pod_netns.append(path)
        subprocess.run(["unshare", f"--net={path}", "true"], check=True)
        return str(path)

    def env(self, command: str, netns: str, container_id: str,
            pod_uid: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
        cni_args = f"K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-{container_id[:6]};" \
                   f"K8S_POD_INFRA_CONTAINER_ID={container_id}"
        if pod_uid is not None:
            cni_args += f";K8S_POD_UID={pod_uid}"
        env.update(CNI_COMMAND=command, CNI_CONTAINERID=container_id, CNI_NETNS=netns,
                   CNI_IFNAME="eth0", CNI_ARGS=cni_args, CNI_PATH=str(CNI.parent))
        return env

    def start(self, command: str, netns: str, container_id: str, pod_uid: str | None = None, *,
              conf: Obj | None = None, program: Path = CNI) -> subprocess.Popen[str]:
        stdin = self.tmp / f"stdin-{secrets.token_hex(8)}.json"
        stdin.write_text(json.dumps(conf if conf is not None else self.conf))
        with stdin.open() as f:
            return subprocess.Popen(
                ["nsenter", f"--net={NETNS_RUN_DIR / self.netns}", str(program)],
                env=self.env(command, netns, container_id, pod_uid), stdin=f,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def cni(self, command: str, netns: str, container_id: str, pod_uid: str | None = None, *,
            conf: Obj | None = None, program: Path = CNI) -> tuple[int, Obj | None]:
        proc = self.start(command, netns, container_id, pod_uid, conf=conf, program=program)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode in (0, 1), err
        return proc.returncode, json.loads(out) if out.strip() else None

    def ok(self, command: str, netns: str, container_id: str, pod_uid: str | None = None,
           **kwargs: Any) -> Obj | None:
        rc, out = self.cni(command, netns, container_id, pod_uid, **kwargs)
        assert rc == 0, out
        return out

    def ipam(self) -> dict[str, str]:
        path = self.tmp / "data" / "ipam.json"
        return dict(json.loads(path.read_text())["allocations"]) if path.exists() else {}

    def host_links(self) -> list[Obj]:
        out = subprocess.run(["ip", "-d", "-j", "-n", self.netns, "link", "show", "type", "veth"],
                             capture_output=True, text=True, check=True).stdout
        return list(json.loads(out))


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    for binary in ("ip", "nsenter", "unshare", "umount", "ping"):
        require_binary(binary)
    require(CNI.exists(), f"{CNI} is not installed (pip install -e .)")
    names = ClusterNames.for_cluster(unique_name("cn"))
    text = conflist("svcnet", GATEWAY.network, None, "svcnet0", tmp_path / "data", names.prefix)
    node = Node(tmp_path, names, text)
    try:
        subprocess.run(["ip", "netns", "add", node.netns], check=True)
        apply_sync(plan_node_network(node.netns, GATEWAY))
        yield node
    finally:
        for name in os.listdir(NETNS_RUN_DIR):
            if name.startswith(names.prefix + "p"):
                alias.detach(name)
        for path in node.pod_netns:
            subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)
            path.unlink(missing_ok=True)
        subprocess.run(["ip", "netns", "del", node.netns], check=False, capture_output=True)


def ping(netns: str, address: str) -> bool:
    return subprocess.run(["nsenter", f"--net={netns}", "ping", "-c", "1", "-W", "2", address],
                          capture_output=True, check=False).returncode == 0


def ip_of(result: Obj | None) -> IPv4Interface:
    assert result is not None
    return IPv4Interface(result["ips"][0]["address"])


# --- tests ------------------------------------------------------------------------------------


def test_version(node: Node) -> None:
    proc = subprocess.run([str(CNI)], env={**os.environ, "CNI_COMMAND": "VERSION"},
                          input='{"cniVersion": "1.0.0"}', capture_output=True, text=True,
                          check=False)
    assert (proc.returncode, json.loads(proc.stdout)) == (0, version_info())


def test_add_check_del(node: Node) -> None:
    netns_a, netns_b = node.make_pod_netns("a"), node.make_pod_netns("b")
    uid_a, uid_b = "uid-a-" + secrets.token_hex(4), "uid-b-" + secrets.token_hex(4)
    cid_a, cid_b = secrets.token_hex(32), secrets.token_hex(32)

    result = node.ok("ADD", netns_a, cid_a, uid_a)
    assert result is not None
    ip_a = ip_of(result)
    assert ip_a in GATEWAY.network and ip_a.ip != GATEWAY.ip
    host, pod = result["interfaces"]
    assert host["name"] == pod_host_veth(uid_a) and len(host["mac"]) == 17
    assert pod == {"name": "eth0", "mac": mac_for(ip_a.ip), "sandbox": netns_a}
    assert result["ips"] == [{"address": ip_a.with_prefixlen, "gateway": "10.244.1.1",
                              "interface": 1}]
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}]
    assert result["cniVersion"] == "1.0.0" and result["dns"] == {}
    # The host end: on the bridge, hairpin on, up.
    (link,) = [lk for lk in node.host_links() if lk["ifname"] == host["name"]]
    assert link["address"] == host["mac"] and "UP" in link["flags"]
    assert link["master"] == "svcnet0"
    assert link["linkinfo"]["info_slave_data"]["hairpin"] is True
    # The contract name in /run/netns names the runtime's namespace.
    alias_a = NETNS_RUN_DIR / node.names.pod_netns(uid_a)
    assert alias.same_netns(alias_a, netns_a)
    assert node.ipam() == {str(ip_a.ip): cid_a}

    assert node.ok("ADD", netns_a, cid_a, uid_a) == result  # idempotent
    result_b = node.ok("ADD", netns_b, cid_b, uid_b)
    ip_b = ip_of(result_b)
    assert ip_b != ip_a
    assert ping(netns_a, "10.244.1.1")
    assert ping(str(alias_a), str(ip_b.ip))
    assert ping(netns_b, str(ip_a.ip))

    assert node.ok("CHECK", netns_a, cid_a, uid_a, conf={**node.conf, "prevResult": result}) \
        is None
    # CHECK notices a pod network that is no longer what ADD made.
    subprocess.run(["nsenter", f"--net={netns_b}", "ip", "route", "del", "default"], check=True)
    rc, err = node.cni("CHECK", netns_b, cid_b, uid_b, conf={**node.conf, "prevResult": result_b})
    assert rc == 1 and err is not None and err["code"] == 104
    assert "no default route" in err["details"]

    for _ in range(2):  # DEL is idempotent
        assert node.ok("DEL", netns_a, cid_a, uid_a, conf={**node.conf, "prevResult": result}) \
            is None
    assert not alias_a.exists()
    assert node.ipam() == {str(ip_b.ip): cid_b}
    assert host["name"] not in {lk["ifname"] for lk in node.host_links()}
    assert alias.is_netns(netns_a)  # the runtime's namespace is the runtime's to remove
    (links,) = query_sync(netns_a, ["link show"])
    assert [lk["ifname"] for lk in links] == ["lo"]

    # A new ADD after the DEL gets the network back (a fresh address: next-fit).
    again = node.ok("ADD", netns_a, cid_a, uid_a)
    assert ip_of(again) not in (ip_a, ip_b)
    assert ping(netns_a, "10.244.1.1")


def test_del_after_the_namespace_is_gone(node: Node) -> None:
    """containerd may call DEL without CNI_NETNS once its namespace is gone; the alias must
    not keep the namespace alive then."""
    netns = node.make_pod_netns("gone")
    uid, cid = "uid-" + secrets.token_hex(4), secrets.token_hex(32)
    node.ok("ADD", netns, cid, uid)
    alias_path = NETNS_RUN_DIR / node.names.pod_netns(uid)
    assert alias.same_netns(alias_path, netns)
    subprocess.run(["umount", netns], check=True)
    assert node.ok("DEL", "", cid, uid) is None
    assert not alias_path.exists()
    assert node.ipam() == {}
    assert node.ok("DEL", "", cid, uid) is None


def test_concurrent_adds_get_distinct_addresses(node: Node) -> None:
    pods = [(node.make_pod_netns(f"c{i}"), secrets.token_hex(32), f"uid-c{i}-{secrets.token_hex(3)}")
            for i in range(10)]
    procs = [node.start("ADD", netns, cid, uid) for netns, cid, uid in pods]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (out, err)
        results.append(json.loads(out))
    addresses = {ip_of(r) for r in results}
    assert len(addresses) == 10
    assert set(node.ipam().values()) == {cid for _, cid, _ in pods}
    assert ping(pods[0][0], str(ip_of(results[-1]).ip))
    procs = [node.start("DEL", netns, cid, uid) for netns, cid, uid in pods]
    for proc in procs:
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    assert node.ipam() == {}
    assert not any(n.startswith(node.names.prefix + "p") for n in os.listdir(NETNS_RUN_DIR))


def test_loopback(node: Node, tmp_path: Path) -> None:
    """containerd's CRI runs ``<bin_dir>/loopback`` for every pod: a link to our script."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "loopback").symlink_to(CNI)
    netns = node.make_pod_netns("lo")
    conf = {"cniVersion": "0.3.1", "name": "cni-loopback", "type": "loopback"}
    (lo,) = query_sync(netns, ["link show dev lo"])[0]
    assert "UP" not in lo["flags"]
    result = node.ok("ADD", netns, secrets.token_hex(32), conf=conf, program=bin_dir / "loopback")
    assert result is not None and result["cniVersion"] == "0.3.1"
    assert result["ips"] == [{"version": "4", "address": "127.0.0.1/8", "interface": 0}]
    (lo,) = query_sync(netns, ["link show dev lo"])[0]
    assert "UP" in lo["flags"]
    assert node.ok("DEL", netns, secrets.token_hex(32), conf=conf,
                   program=bin_dir / "loopback") is None
    assert node.ipam() == {}


async def test_in_process_api_on_a_named_netns(node: Node) -> None:
    """The process runtime's path: the agent (in the root netns) calls the library with the
    pod netns it made with ``ip netns add`` under its contract name, and the node netns named
    in the configuration."""
    uid = "uid-p-" + secrets.token_hex(4)
    name = node.names.pod_netns(uid)
    conf = netconf_from_conflist(node.conflist)
    assert isinstance(conf, BridgeConf)
    conf = replace(conf, node_netns=node.netns)
    args = CNIArgs(uid, str(NETNS_RUN_DIR / name), "eth0", {"K8S_POD_UID": uid})
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        result = await plugin.add(conf, args)
        assert result.ip is not None and result.ip in IPv4Network("10.244.1.0/24")
        assert result.interfaces[0].name == pod_host_veth(uid)
        assert ping(str(NETNS_RUN_DIR / name), "10.244.1.1")
        await plugin.check(conf, args)
        assert node.ipam() == {str(result.ip.ip): uid}
        await plugin.delete(conf, args)
        await plugin.delete(conf, args)
        assert (NETNS_RUN_DIR / name).exists()  # its own netns is the runtime's to delete
        assert node.ipam() == {}
    finally:
        with contextlib.suppress(OSError):
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def test_add_rebuilds_a_half_built_network(node: Node) -> None:
    """An ADD interrupted after ``link add`` (no record yet), or a pod network broken since, is
    rebuilt by the next ADD with the same address."""
    netns = node.make_pod_netns("half")
    uid, cid = "uid-h-" + secrets.token_hex(4), secrets.token_hex(32)
    first = node.ok("ADD", netns, cid, uid)
    (node.tmp / "data" / "attachments" / f"{cid}.json").unlink()  # as if ADD died before it
    again = node.ok("ADD", netns, cid, uid)  # link add: File exists, removed, retried
    assert again is not None and first is not None
    assert ip_of(again) == ip_of(first) and again["interfaces"][1] == first["interfaces"][1]
    subprocess.run(["nsenter", f"--net={netns}", "ip", "link", "del", "eth0"], check=True)
    rebuilt = node.ok("ADD", netns, cid, uid)  # the record's network fails CHECK: rebuilt
    assert ip_of(rebuilt) == ip_of(first)
    assert ping(netns, "10.244.1.1")
    assert node.ok("CHECK", netns, cid, uid, conf={**node.conf, "prevResult": rebuilt}) is None


def test_dual_stack_add_gives_the_derived_ipv6_address_and_route(node: Node) -> None:
    apply_sync([Batch(node.netns, ("addr add fd00:10:244:1::1/64 dev svcnet0 nodad",))])
    conf = {**node.conf, "subnet6": "fd00:10:244:1::/64"}
    netns_a, netns_b = node.make_pod_netns("a"), node.make_pod_netns("b")
    results = [node.ok("ADD", netns, secrets.token_hex(32), "uid-" + secrets.token_hex(4),
                       conf=conf) for netns in (netns_a, netns_b)]
    six = []
    for result in results:
        assert result is not None
        ip4 = ip_of(result)
        offset = int(ip4.ip) - int(ip4.network.network_address)
        assert result["ips"][1] == {"address": f"fd00:10:244:1::{offset:x}/64",
                                    "gateway": "fd00:10:244:1::1", "interface": 1}
        assert result["routes"][1] == {"dst": "::/0", "gw": "fd00:10:244:1::1"}
        six.append(result["ips"][1]["address"].split("/")[0])
    assert ping(netns_a, "fd00:10:244:1::1")  # usable at once: no duplicate address detection
    assert ping(netns_a, six[1]) and ping(netns_b, six[0])
