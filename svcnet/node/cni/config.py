"""The plugin's network configuration: parsing and checking it, and the conflist the agent
writes.

Theory of operation
-------------------
containerd reads ``<conf_dir>/*.conflist`` (the first file by name) and hands each plugin of
the list its own object on standard input, with the list's ``name`` and ``cniVersion``
copied in (and, for the second plugin on, ``prevResult``), as libcni does. Ours has one
plugin, of type ``svcnet-cni``::

    {"cniVersion": "1.0.0", "name": "svcnet",
     "plugins": [{"type": "svcnet-cni", "bridge": "svcnet0", "subnet": "10.244.1.0/24",
                  "gateway": "10.244.1.1", "dataDir": "/var/lib/svcnet/node-1",
                  "netnsPrefix": "svcnet-t4-", "hairpin": true}]}

Fields (:class:`BridgeConf`): ``subnet`` (the node's podCIDR, required), ``gateway`` (default:
its first host address, which the node's bridge holds), ``bridge`` (default ``svcnet0``),
``dataDir`` (required: the directory of the IPAM file ``ipam.json``, shared with the agent's
process runtime), ``netnsPrefix`` (the cluster's ``svcnet-<tag>-``: with a pod UID in
``CNI_ARGS`` the plugin names the pod netns ``<prefix>p<hash>`` in ``/run/netns``, see
:mod:`.alias`; absent, no alias), ``hairpin`` (default true) and ``nodeNetns`` (the namespace
holding the bridge, a name or a path; default: the plugin's own, which is right when the
runtime runs inside the node netns). A configuration of type ``loopback`` (the network
containerd's CRI always adds) has no fields of its own.

A bad configuration is error 7 (invalid network configuration) naming the field; JSON that
does not parse is error 6. Unknown fields are ignored, as the spec allows (``ipam``,
``capabilities``, ``runtimeConfig`` included: this plugin is its own IPAM).

``subnet6`` (optional, the node's IPv6 podCIDR, a /64 or longer) makes the network dual
stack: every pod also gets the IPv6 address with its IPv4 address's host offset
(:func:`~svcnet.node.ipam.pod_ipv6`) and an IPv6 default route via the bridge's address of
the same offset as the IPv4 gateway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path
from typing import Any, Final

from svcnet.node.cni.spec import CNIError, Code, Result
from svcnet.node.names import POD_BRIDGE, ClusterNames, InvalidName, check_name

__all__ = [
    "LOOPBACK_TYPE",
    "PLUGIN_TYPE",
    "BridgeConf",
    "NetConf",
    "conflist",
    "netconf_from_conflist",
    "parse_netconf",
]

PLUGIN_TYPE: Final = "svcnet-cni"
LOOPBACK_TYPE: Final = "loopback"


@dataclass(frozen=True, slots=True, kw_only=True)
class NetConf:
    """What every plugin configuration has."""

    cni_version: str
    name: str
    type: str
    prev_result: Result | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeConf(NetConf):
    """A ``svcnet-cni`` configuration (see the module docstring)."""

    type: str = PLUGIN_TYPE
    subnet: IPv4Network
    data_dir: Path
    gateway: IPv4Address | None = None
    bridge: str = POD_BRIDGE
    netns_prefix: str | None = None
    hairpin: bool = True
    node_netns: str | None = None
    """None: the namespace the plugin runs in."""
    mtu: int | None = None
    """The pods' veth MTU (the CNI bridge plugin's ``mtu``); None: the kernel's default."""
    subnet6: IPv6Network | None = None
    """The node's IPv6 pod subnet (dual stack), None: IPv4 only."""

    @property
    def gateway_ip(self) -> IPv4Address:
        return self.gateway if self.gateway is not None else self.subnet.network_address + 1

    @property
    def gateway6_ip(self) -> IPv6Address | None:
        """The bridge's IPv6 address (the IPv4 gateway's offset in ``subnet6``)."""
        if self.subnet6 is None:
            return None
        offset = int(self.gateway_ip) - int(self.subnet.network_address)
        return self.subnet6.network_address + offset

    @property
    def names(self) -> ClusterNames | None:
        return None if self.netns_prefix is None else ClusterNames.for_prefix(self.netns_prefix)


def _invalid(field_name: str, why: str) -> CNIError:
    return CNIError(Code.INVALID_CONFIG, "invalid network configuration", f"{field_name}: {why}")


def _string(obj: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise _invalid(key, "missing")
        return None
    if not isinstance(value, str) or not value:
        raise _invalid(key, f"{value!r} is not a non-empty string")
    return value


def parse_netconf(data: bytes | str) -> NetConf:
    """A plugin configuration from standard input: a :class:`BridgeConf` for ``svcnet-cni``, a
    plain :class:`NetConf` for ``loopback``. Raises :class:`CNIError` (6, 7)."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CNIError(Code.DECODING_FAILURE, "network configuration is not JSON",
                       str(exc)) from None
    if not isinstance(obj, dict):
        raise CNIError(Code.DECODING_FAILURE, "network configuration is not a JSON object")
    version = _string(obj, "cniVersion", required=True)
    name = _string(obj, "name", required=True)
    kind = _string(obj, "type", required=True)
    assert version is not None and name is not None and kind is not None
    prev = obj.get("prevResult")
    prev_result = None if prev is None else Result.from_json(prev)
    if kind == LOOPBACK_TYPE:
        return NetConf(cni_version=version, name=name, type=kind, prev_result=prev_result)
    if kind != PLUGIN_TYPE:
        raise _invalid("type", f"{kind!r} is neither {PLUGIN_TYPE!r} nor {LOOPBACK_TYPE!r}")
    return _bridge_conf(obj, version, name, prev_result)


def _bridge_conf(obj: dict[str, Any], version: str, name: str,
                 prev_result: Result | None) -> BridgeConf:
    try:
        subnet = IPv4Network(_string(obj, "subnet", required=True))
    except ValueError as exc:
        raise _invalid("subnet", str(exc)) from None
    if subnet.prefixlen > 30:
        raise _invalid("subnet", f"{subnet} leaves no addresses for pods")
    gateway = None
    if (text := _string(obj, "gateway")) is not None:
        try:
            gateway = IPv4Address(text)
        except ValueError as exc:
            raise _invalid("gateway", str(exc)) from None
        if gateway not in subnet or gateway in (subnet.network_address,
                                                subnet.broadcast_address):
            raise _invalid("gateway", f"{gateway} is not a host address of {subnet}")
    data_dir = _string(obj, "dataDir", required=True)
    assert data_dir is not None
    if not data_dir.startswith("/"):
        raise _invalid("dataDir", f"{data_dir!r} is not an absolute path")
    bridge = _string(obj, "bridge") or POD_BRIDGE
    prefix = _string(obj, "netnsPrefix")
    node_netns = _string(obj, "nodeNetns")
    try:
        check_name(bridge)
        if prefix is not None:
            ClusterNames.for_prefix(prefix)
        if node_netns is not None and not node_netns.startswith("/"):
            check_name(node_netns)
    except InvalidName as exc:
        raise _invalid("bridge/netnsPrefix/nodeNetns", str(exc)) from None
    hairpin = obj.get("hairpin", True)
    if not isinstance(hairpin, bool):
        raise _invalid("hairpin", f"{hairpin!r} is not a boolean")
    mtu = obj.get("mtu")
    if mtu is not None and (isinstance(mtu, bool) or not isinstance(mtu, int)
                            or not 576 <= mtu <= 65535):
        raise _invalid("mtu", f"{mtu!r} is not an MTU (576-65535)")
    subnet6 = None
    if (text6 := _string(obj, "subnet6")) is not None:
        try:
            subnet6 = IPv6Network(text6)
        except ValueError as exc:
            raise _invalid("subnet6", str(exc)) from None
        if subnet6.num_addresses < subnet.num_addresses:
            raise _invalid("subnet6", f"{subnet6} is smaller than {subnet}")
    return BridgeConf(cni_version=version, name=name, prev_result=prev_result, subnet=subnet,
                      gateway=gateway, data_dir=Path(data_dir), bridge=bridge,
                      netns_prefix=prefix, hairpin=hairpin, node_netns=node_netns,
                      subnet6=subnet6, mtu=mtu)


def netconf_from_conflist(text: str, *, plugin_type: str = PLUGIN_TYPE) -> NetConf:
    """The configuration libcni would hand the plugin of type ``plugin_type`` in a conflist
    (``name`` and ``cniVersion`` copied in): how an in-process caller reads the file the agent
    wrote, so both paths use one configuration."""
    try:
        obj = json.loads(text)
        plugins = obj["plugins"]
        plugin = next(p for p in plugins if p.get("type") == plugin_type)
    except (ValueError, KeyError, TypeError, AttributeError, StopIteration) as exc:
        raise CNIError(Code.INVALID_CONFIG, "invalid network configuration list",
                       f"no plugin of type {plugin_type!r}: {exc!r}") from None
    return parse_netconf(json.dumps(
        {**plugin, "cniVersion": obj.get("cniVersion"), "name": obj.get("name")}))


def conflist(name: str, subnet: IPv4Network | str, gateway: IPv4Address | str | None,
             bridge: str, data_dir: Path | str, netns_prefix: str | None, *,
             node_netns: str | None = None, mtu: int | None = None,
             subnet6: IPv6Network | str | None = None) -> str:
    """The conflist the agent writes into containerd's CNI conf dir (CNI 1.0.0). Checked by
    the same parser the plugin uses, so a bad argument fails here, not at the first pod."""
    plugin: dict[str, Any] = {"type": PLUGIN_TYPE, "bridge": bridge,
                              "subnet": str(IPv4Network(subnet))}
    if gateway is not None:
        plugin["gateway"] = str(gateway)
    plugin["dataDir"] = str(data_dir)
    if netns_prefix is not None:
        plugin["netnsPrefix"] = netns_prefix
    plugin["hairpin"] = True
    if node_netns is not None:
        plugin["nodeNetns"] = node_netns
    if mtu is not None:
        plugin["mtu"] = mtu
    if subnet6 is not None:
        plugin["subnet6"] = str(IPv6Network(subnet6))
    text = json.dumps({"cniVersion": "1.0.0", "name": name, "plugins": [plugin]}, indent=2)
    netconf_from_conflist(text)
    return text + "\n"
