"""A pod's network attachment, as the pod runner asks for it: the CNI plugin, or its fake.

Theory of operation
-------------------
There is one pod network code path: svcnet's CNI plugin (:mod:`svcnet.node.cni`). containerd
runs it as an executable for the sandboxes it creates; for the pods of the process runtime, the
runner calls the same plugin functions in-process (:class:`CNIPodNetwork`) on the namespace it
made with ``ip netns add``, with the same configuration: the conflist the agent writes for
containerd (:func:`node_conflist`) is parsed back for the in-process calls, so both paths agree
on the bridge, the subnet, the IPAM file and the node namespace.

:class:`FakePodNetwork` does what the plugin does to :class:`~svcnet.node.netns.FakeNetwork`'s
model (an address from the same :class:`~svcnet.node.ipam.PodIPAM` keyed by the owner, the veth
from the same planner spec), so the runner's unit tests see the plugin's effects and errors.
"""

from __future__ import annotations

from ipaddress import IPv6Network
from pathlib import Path
from typing import Protocol

from svcnet.node.cni import plugin
from svcnet.node.cni.config import BridgeConf, conflist, netconf_from_conflist
from svcnet.node.cni.spec import CNIArgs, CNIError, Result
from svcnet.node.ipam import IPAMError, PodIPAM
from svcnet.node.names import POD_BRIDGE, POD_VETH, ClusterNames, PodNetworkNames
from svcnet.node.netns import FakeNetwork, NetworkError, pod_veth_spec
from svcnet.util.nsthread import NETNS_RUN_DIR

__all__ = [
    "CONFLIST_NAME",
    "CNIPodNetwork",
    "FakePodNetwork",
    "PodNetwork",
    "PodNetworkError",
    "node_conflist",
]

CONFLIST_NAME = "10-svcnet.conflist"
"""The agent's conflist in the runtime's CNI configuration directory."""


class PodNetworkError(Exception):
    """ADD or DEL failed; the message is the plugin's."""


class PodNetwork(Protocol):
    async def add(self, owner: str, netns: str, pod_uid: str) -> Result:
        """Attach the pod in netns (a name under /run/netns) to the node's pod network."""
        ...

    async def delete(self, owner: str, netns: str, pod_uid: str) -> None:
        """Detach it (tolerant: nothing there is no error); its address is released."""
        ...

    async def gc(self, live: set[str]) -> list[str]:
        """Release every attachment whose owner is not in ``live``."""
        ...


def node_conflist(names: ClusterNames, node_netns: str, subnet: str, data_dir: Path, *,
                  mtu: int | None = None, subnet6: IPv6Network | None = None) -> str:
    """The node's conflist: the CNI plugin on the node's bridge, its IPAM file in the agent's
    state directory (shared with the in-process calls); ``subnet6``: dual stack."""
    return conflist("svcnet", subnet, None, POD_BRIDGE, data_dir, names.prefix,
                    node_netns=node_netns, mtu=mtu, subnet6=subnet6)


def _args(owner: str, netns: str, pod_uid: str) -> CNIArgs:
    return CNIArgs(container_id=owner, netns=str(NETNS_RUN_DIR / netns), ifname=POD_VETH,
                   args={"K8S_POD_UID": pod_uid})


class CNIPodNetwork:
    """The plugin, in-process (see the module docstring)."""

    def __init__(self, conflist_text: str) -> None:
        conf = netconf_from_conflist(conflist_text)
        assert isinstance(conf, BridgeConf)
        self.conf = conf

    async def add(self, owner: str, netns: str, pod_uid: str) -> Result:
        try:
            return await plugin.add(self.conf, _args(owner, netns, pod_uid))
        except CNIError as exc:
            raise PodNetworkError(str(exc)) from None

    async def delete(self, owner: str, netns: str, pod_uid: str) -> None:
        try:
            await plugin.delete(self.conf, _args(owner, netns, pod_uid))
        except CNIError as exc:
            raise PodNetworkError(str(exc)) from None

    async def gc(self, live: set[str]) -> list[str]:
        try:
            return await plugin.gc(self.conf, live)
        except CNIError as exc:
            raise PodNetworkError(str(exc)) from None


class FakePodNetwork:
    """The plugin's effects on a :class:`FakeNetwork` (see the module docstring)."""

    def __init__(self, network: FakeNetwork, ipam: PodIPAM, names: ClusterNames,
                 node_netns: str) -> None:
        self.network, self.ipam = network, ipam
        self.names, self.node_netns = names, node_netns

    async def add(self, owner: str, netns: str, pod_uid: str) -> Result:
        from svcnet.node.cni.spec import IPConfig

        try:
            ip = self.ipam.allocate(owner)
        except IPAMError as exc:
            raise PodNetworkError(str(exc)) from None
        names = PodNetworkNames(node_netns=self.node_netns, bridge=POD_BRIDGE,
                                pod_netns=netns, host_veth=self.names.pod_network(
                                    1, pod_uid).host_veth, pod_veth=POD_VETH)
        try:
            await self.network.create_veth(pod_veth_spec(ip, self.ipam.gateway.ip, names))
        except NetworkError as exc:
            self.ipam.release(owner)
            raise PodNetworkError(str(exc)) from None
        return Result(ips=(IPConfig(ip, self.ipam.gateway.ip, interface=1),))

    async def delete(self, owner: str, netns: str, pod_uid: str) -> None:
        self.ipam.release(owner)

    async def gc(self, live: set[str]) -> list[str]:
        return self.ipam.retain_only(live)
