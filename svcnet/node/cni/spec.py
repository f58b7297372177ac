"""The CNI protocol as a plugin sees it (CNI spec 1.0.0, with 0.3.0-0.4.0 input accepted).

Theory of operation
-------------------
A runtime (containerd's CRI plugin, through libcni) runs a plugin executable once per
operation: the operation and the container in environment variables (``CNI_COMMAND``,
``CNI_CONTAINERID``, ``CNI_NETNS``, ``CNI_IFNAME``, ``CNI_ARGS``, ``CNI_PATH``), the network
configuration as JSON on standard input. The plugin answers on standard output: a result
(ADD), nothing (DEL, CHECK) or version information (VERSION), exit status 0; or an error object
``{"cniVersion", "code", "msg", "details"}`` and exit status 1. This module is that contract,
pure: :func:`invocation_from_env` (what libcni's ``skel`` package checks before calling a
plugin: which variables each command needs, a container ID of ``[A-Za-z0-9][A-Za-z0-9_.-]*``,
an interface name the kernel takes, ``CNI_ARGS`` as ``K=V;K=V``), :class:`CNIError` with the
spec's well-known codes, and :class:`Result` rendered for the configuration's version (before
1.0.0 every IP carries ``"version": "4"``; 1.0.0 dropped the field).

Version rules, as the spec's "Version considerations": ADD/DEL/CHECK refuse a configuration
whose ``cniVersion`` the plugin does not speak (code 1), CHECK also refuses versions before
0.4.0, which had no CHECK (code 1, as skel does), and a result carries the configuration's
version. VERSION answers whatever it is given.

Kept light (no asyncio, no svcnet.node.netns): VERSION runs on this module alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_address,
    ip_interface,
    ip_network,
)
from typing import Any, Final

from svcnet.node.names import InvalidName, check_name

__all__ = [
    "COMMANDS",
    "CURRENT_VERSION",
    "SUPPORTED_VERSIONS",
    "CNIArgs",
    "CNIError",
    "Code",
    "IPConfig",
    "Interface",
    "Invocation",
    "Result",
    "Route",
    "check_version",
    "invocation_from_env",
    "parse_cni_args",
    "version_info",
]

SUPPORTED_VERSIONS: Final = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")
CURRENT_VERSION: Final = "1.0.0"
COMMANDS: Final = ("ADD", "DEL", "CHECK", "VERSION")

_CONTAINER_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class Code(IntEnum):
    """The spec's well-known error codes (1-99 are reserved), then this plugin's (100+)."""

    INCOMPATIBLE_VERSION = 1
    UNSUPPORTED_FIELD = 2
    UNKNOWN_CONTAINER = 3
    INVALID_ENV = 4
    IO_FAILURE = 5
    DECODING_FAILURE = 6
    INVALID_CONFIG = 7
    TRY_AGAIN_LATER = 11
    NETWORK_FAILED = 100
    """iproute2 refused a change (the error carries its message)."""
    IPAM_EXHAUSTED = 101
    IPAM_STATE = 102
    """The IPAM state file is unreadable or belongs to another subnet."""
    ALIAS_TAKEN = 103
    """The pod netns's contract name already names another namespace."""
    CHECK_FAILED = 104
    """CHECK found the pod's network not as ADD left it."""


class CNIError(Exception):
    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(f"{msg}: {details}" if details else msg)
        self.code = int(code)
        self.msg = msg
        self.details = details

    def to_json(self, version: str = CURRENT_VERSION) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


def version_info() -> dict[str, Any]:
    """The answer to VERSION."""
    return {"cniVersion": CURRENT_VERSION, "supportedVersions": list(SUPPORTED_VERSIONS)}


def check_version(version: str, command: str) -> None:
    if version not in SUPPORTED_VERSIONS:
        raise CNIError(Code.INCOMPATIBLE_VERSION, "incompatible CNI version",
                       f"cniVersion {version!r} is not one of {', '.join(SUPPORTED_VERSIONS)}")
    if command == "CHECK" and _version_tuple(version) < (0, 4, 0):
        raise CNIError(Code.INCOMPATIBLE_VERSION, "config version does not allow CHECK",
                       f"cniVersion {version} predates CHECK (0.4.0)")


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


# --- the invocation -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CNIArgs:
    """Which container an operation is about: ``CNI_CONTAINERID``, ``CNI_NETNS`` (a path;
    empty on a DEL whose namespace is gone), ``CNI_IFNAME`` and ``CNI_ARGS``."""

    container_id: str
    netns: str
    ifname: str = "eth0"
    args: Mapping[str, str] = field(default_factory=dict)

    @property
    def pod_uid(self) -> str | None:
        return self.args.get("K8S_POD_UID") or None


@dataclass(frozen=True, slots=True)
class Invocation:
    command: str
    args: CNIArgs | None
    """None for VERSION."""


def parse_cni_args(text: str) -> dict[str, str]:
    """``CNI_ARGS``: ``K=V`` pairs separated by ``;`` (an empty string is no pairs)."""
    out: dict[str, str] = {}
    for pair in text.split(";"):
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key or "=" in value:
            raise CNIError(Code.INVALID_ENV, "invalid CNI_ARGS", f"pair {pair!r} is not K=V")
        out[key] = value
    return out


def invocation_from_env(env: Mapping[str, str]) -> Invocation:
    """The operation a runtime asked for, checked as libcni's ``skel`` checks it."""
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CNIError(Code.INVALID_ENV, "unknown CNI_COMMAND",
                       f"{command!r} is not one of {', '.join(COMMANDS)}")
    if command == "VERSION":
        return Invocation(command, None)
    missing = [var for var in ("CNI_CONTAINERID", "CNI_IFNAME")
               + (("CNI_NETNS",) if command != "DEL" else ()) if not env.get(var)]
    if missing:
        raise CNIError(Code.INVALID_ENV, "required environment variables missing",
                       ", ".join(missing))
    container_id, ifname = env["CNI_CONTAINERID"], env["CNI_IFNAME"]
    netns = env.get("CNI_NETNS", "")
    if not _CONTAINER_ID_RE.fullmatch(container_id):
        raise CNIError(Code.INVALID_ENV, "invalid CNI_CONTAINERID",
                       f"{container_id!r} must match {_CONTAINER_ID_RE.pattern}")
    try:
        check_name(ifname)
    except InvalidName as exc:
        raise CNIError(Code.INVALID_ENV, "invalid CNI_IFNAME", str(exc)) from None
    if netns and not netns.startswith("/"):
        raise CNIError(Code.INVALID_ENV, "invalid CNI_NETNS", f"{netns!r} is not an absolute path")
    return Invocation(command, CNIArgs(container_id, netns, ifname,
                                       parse_cni_args(env.get("CNI_ARGS", ""))))


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    mac: str = ""
    sandbox: str = ""
    """The namespace path for an interface inside the container; empty on the host."""


@dataclass(frozen=True, slots=True)
class IPConfig:
    address: IPv4Interface | IPv6Interface
    gateway: IPv4Address | IPv6Address | None = None
    interface: int | None = None
    """Index into :attr:`Result.interfaces`."""


@dataclass(frozen=True, slots=True)
class Route:
    dst: IPv4Network | IPv6Network
    gw: IPv4Address | IPv6Address | None = None


@dataclass(frozen=True, slots=True)
class Result:
    interfaces: tuple[Interface, ...] = ()
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ip(self) -> IPv4Interface | None:
        """The IPv4 address (every pod has one; a dual-stack pod has an IPv6 one too)."""
        return next((c.address for c in self.ips if isinstance(c.address, IPv4Interface)),
                    None)

    @property
    def ip6(self) -> IPv6Interface | None:
        """The IPv6 address of a dual-stack pod (None: IPv4 only)."""
        return next((c.address for c in self.ips if isinstance(c.address, IPv6Interface)),
                    None)

    def to_json(self, version: str = CURRENT_VERSION) -> dict[str, Any]:
        """The result as the spec's JSON for ``version`` (the configuration's)."""
        before_1 = _version_tuple(version) < (1, 0, 0)
        ips = []
        for ip in self.ips:
            entry: dict[str, Any] = {"version": str(ip.address.version)} if before_1 else {}
            entry["address"] = ip.address.with_prefixlen
            if ip.gateway is not None:
                entry["gateway"] = str(ip.gateway)
            if ip.interface is not None:
                entry["interface"] = ip.interface
            ips.append(entry)
        return {
            "cniVersion": version,
            "interfaces": [{k: v for k, v in (("name", i.name), ("mac", i.mac),
                                               ("sandbox", i.sandbox)) if v}
                           for i in self.interfaces],
            "ips": ips,
            "routes": [{"dst": str(r.dst), **({"gw": str(r.gw)} if r.gw else {})}
                       for r in self.routes],
            "dns": dict(self.dns),
        }

    @classmethod
    def from_json(cls, obj: Any) -> Result:
        """A result of any supported version (a ``prevResult``, a cached result). Raises
        :class:`CNIError` (decoding failure) if it is not one."""
        try:
            return cls(
                interfaces=tuple(Interface(str(i["name"]), str(i.get("mac", "")),
                                           str(i.get("sandbox", "")))
                                 for i in obj.get("interfaces") or ()),
                ips=tuple(IPConfig(ip_interface(ip["address"]),
                                   _opt(ip_address, ip.get("gateway")),
                                   _opt(int, ip.get("interface")))
                          for ip in obj.get("ips") or ()),
                routes=tuple(Route(ip_network(r["dst"]), _opt(ip_address, r.get("gw")))
                             for r in obj.get("routes") or ()),
                dns=dict(obj.get("dns") or {}),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise CNIError(Code.DECODING_FAILURE, "invalid result",
                           f"{json.dumps(obj)[:200]}: {exc}") from None


def _opt(kind: Any, value: Any) -> Any:
    return None if value is None else kind(value)
