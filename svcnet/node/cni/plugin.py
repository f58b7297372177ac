"""ADD, DEL, CHECK and GC for ``svcnet-cni`` and ``loopback``: the one pod network code path.

Theory of operation
-------------------
containerd runs the ``svcnet-cni`` executable (:mod:`.main`) for CRI pods; the agent's process
runtime calls the same functions in-process (:func:`add`, :func:`delete`, :func:`check`,
:func:`gc`, which run the synchronous ``cmd_*`` on a worker thread) with ``CNI_NETNS`` a
namespace it made with ``ip netns add``. Either way a pod gets what the process runtime built
before CNI (docs/DESIGN.md §3), from the same planners in :mod:`svcnet.node.netns`: a veth pair
created by ``plan_veth(pod_veth_spec(...))`` and applied by ``apply_sync`` (the host end on the
bridge, hairpin on, up; the pod end ``CNI_IFNAME`` with the MAC derived from its address,
``lo`` up, the address, the default route via the gateway), an address from
:class:`~svcnet.node.ipam.PodIPAM` keyed by the container ID (the pod UID, for the process
runtime), and, when ``CNI_ARGS`` has ``K8S_POD_UID`` and the configuration a ``netnsPrefix``,
the contract name ``/run/netns/<prefix>p<hash>`` (:mod:`.alias`). The host end is
``veth<hash>`` of the pod UID (:func:`~svcnet.node.names.pod_host_veth`), of the container ID
without one.

Ordering, as the runner's "IP before namespace" rule: ADD allocates the address (persisted)
before it builds anything and writes its record (``<dataDir>/attachments/<id>.json``: the
namespace path, the alias it made, the result) last; DEL removes the interface, then the
alias, then the record, and releases the address last. A failed ADD undoes what it did
(the runtime calls DEL after a failed ADD anyway). So after any crash the address of a
half-built pod is still allocated, and DEL or :func:`gc` (the agent's start, with the live
sandbox IDs) frees it.

* **ADD is idempotent.** A container with a record for the same namespace and interface, whose
  address the IPAM still holds and whose network passes CHECK, gets the recorded result back.
  Anything else is rebuilt with the same address (allocation is idempotent per owner): an
  interface left by an interrupted ADD (or a host veth of the pod's previous sandbox, which
  Kubernetes no longer runs once it creates a new one) makes ``link add`` fail with "File
  exists", and is deleted before one retry.
* **DEL is tolerant**, as the spec requires: a missing namespace, interface, alias, record or
  address is no error, so DEL twice succeeds. If the namespace still exists the pod's
  interface is deleted there (its host end goes with it); otherwise the kernel removed both
  with the namespace. DEL deletes by the pod-side name only, never a host veth by name: the
  pod's next sandbox may already have one with the same name. An alias is removed only if
  this container's record says ADD made it, or it names ``CNI_NETNS``.
* **CHECK** reads ``ip -j addr``/``route`` in the namespace: the interface up with the address
  (``prevResult``'s, else the IPAM's) and its MAC, the default route via the gateway, and the
  alias if there should be one.
* ``loopback`` (the network containerd's CRI adds to every pod, running ``<bin_dir>/loopback``)
  sets ``lo`` up on ADD and does nothing on DEL, as the reference loopback plugin's ADD does.

Every failure leaves here as a :class:`~svcnet.node.cni.spec.CNIError`: iproute2's refusals as
code 100, a full subnet 101, an unusable IPAM file 102, a taken alias 103, CHECK findings 104,
a missing namespace on ADD/CHECK 3, file-system errors 5.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface, IPv6Network
from pathlib import Path
from typing import Any, Final, TypeVar

from svcnet.node.cni import alias
from svcnet.node.cni.config import BridgeConf, NetConf
from svcnet.node.cni.spec import (
    CNIArgs,
    CNIError,
    Code,
    Interface,
    IPConfig,
    Result,
    Route,
    check_version,
)
from svcnet.node.files import atomic_write
from svcnet.node.ipam import IPAMExhausted, IPAMStateError, PodIPAM, pod_ipv6
from svcnet.node.names import PodNetworkNames, pod_host_veth
from svcnet.node.netns import (
    SELF_NETNS,
    Batch,
    LinkExists,
    LinkNotFound,
    NetnsNotFound,
    NetworkError,
    apply_sync,
    mac_for,
    plan_veth,
    pod_veth_spec,
    query_sync,
)

__all__ = [
    "IPAM_FILE",
    "add",
    "check",
    "check_problems",
    "cmd_add",
    "cmd_check",
    "cmd_del",
    "cmd_gc",
    "delete",
    "gc",
    "run",
]

T = TypeVar("T")

IPAM_FILE: Final = "ipam.json"
_RECORDS: Final = "attachments"
_DEFAULT_ROUTE: Final = IPv4Network("0.0.0.0/0")
_DEFAULT_ROUTE6: Final = IPv6Network("::/0")
_LOOPBACK_MAC: Final = "00:00:00:00:00:00"


# --- the library API (asyncio) ----------------------------------------------------------------


async def _on_thread(fn: Callable[..., T], *args: Any) -> T:
    import asyncio  # not at the top: the executable must not pay for it (see .main)

    return await asyncio.to_thread(fn, *args)


async def add(conf: NetConf, args: CNIArgs) -> Result:
    return await _on_thread(cmd_add, conf, args)


async def delete(conf: NetConf, args: CNIArgs) -> None:
    await _on_thread(cmd_del, conf, args)


async def check(conf: NetConf, args: CNIArgs) -> None:
    await _on_thread(cmd_check, conf, args)


async def gc(conf: BridgeConf, live: Iterable[str]) -> list[str]:
    return await _on_thread(cmd_gc, conf, list(live))


def run(command: str, conf: NetConf, args: CNIArgs) -> Result | None:
    """One CNI command (ADD, DEL, CHECK), as the executable dispatches it."""
    if command == "ADD":
        return cmd_add(conf, args)
    if command == "DEL":
        cmd_del(conf, args)
    elif command == "CHECK":
        cmd_check(conf, args)
    else:
        raise CNIError(Code.INVALID_ENV, "unknown CNI_COMMAND", command)
    return None


# --- errors -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _as_cni_errors() -> Iterator[None]:
    try:
        yield
    except CNIError:
        raise
    except IPAMExhausted as exc:
        raise CNIError(Code.IPAM_EXHAUSTED, "no free pod address", str(exc)) from exc
    except IPAMStateError as exc:
        raise CNIError(Code.IPAM_STATE, "IPAM state unusable", str(exc)) from exc
    except alias.AliasTaken as exc:
        raise CNIError(Code.ALIAS_TAKEN, "pod netns name taken", str(exc)) from exc
    except NetworkError as exc:
        raise CNIError(Code.NETWORK_FAILED, "network setup failed", str(exc)) from exc
    except OSError as exc:
        raise CNIError(Code.IO_FAILURE, "I/O failure", str(exc)) from exc


def _require_netns(args: CNIArgs) -> None:
    if not alias.is_netns(args.netns):
        raise CNIError(Code.UNKNOWN_CONTAINER, "network namespace not found",
                       f"CNI_NETNS {args.netns!r} is not a network namespace")


# --- commands -----------------------------------------------------------------------------------


def cmd_add(conf: NetConf, args: CNIArgs) -> Result:
    check_version(conf.cni_version, "ADD")
    with _as_cni_errors():
        _require_netns(args)
        if isinstance(conf, BridgeConf):
            return _bridge_add(conf, args)
        apply_sync([Batch(args.netns, ("link set lo up",))])
        return Result(interfaces=(Interface(args.ifname, _LOOPBACK_MAC, args.netns),),
                      ips=(IPConfig(IPv4Interface("127.0.0.1/8"), interface=0),))


def cmd_del(conf: NetConf, args: CNIArgs) -> None:
    check_version(conf.cni_version, "DEL")
    if not isinstance(conf, BridgeConf):
        return
    with _as_cni_errors():
        _bridge_del(conf, args)


def cmd_check(conf: NetConf, args: CNIArgs) -> None:
    check_version(conf.cni_version, "CHECK")
    with _as_cni_errors():
        _require_netns(args)
        if isinstance(conf, BridgeConf):
            _bridge_check(conf, args)
            return
        try:
            (links,) = query_sync(args.netns, ["link show dev lo"])
        except LinkNotFound:
            links = []
        if not any("UP" in link.get("flags", ()) for link in links):
            raise CNIError(Code.CHECK_FAILED, "pod network is not as ADD left it", "lo is down")


def cmd_gc(conf: BridgeConf, live: Iterable[str]) -> list[str]:
    """Release every address, record and alias whose owner is not in ``live`` (every live
    owner sharing the IPAM file: sandbox IDs and the process runtime's pod UIDs); returns the
    owners released."""
    keep = set(live)
    with _as_cni_errors():
        for path in sorted(_records_dir(conf).glob("*.json")):
            if path.stem not in keep:
                record = _load_record(conf, path.stem)
                if record is not None and record.alias is not None:
                    _drop_alias(record.alias, record.netns)
                path.unlink(missing_ok=True)
        return _ipam(conf).retain_only(keep)


# --- svcnet-cni -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Record:
    """What ADD made for one container (``<dataDir>/attachments/<id>.json``)."""

    netns: str
    ifname: str
    alias: str | None
    result: Result


def _ipam(conf: BridgeConf) -> PodIPAM:
    return PodIPAM(conf.subnet, conf.data_dir / IPAM_FILE, gateway=conf.gateway_ip)


def _records_dir(conf: BridgeConf) -> Path:
    return conf.data_dir / _RECORDS


def _load_record(conf: BridgeConf, container_id: str) -> _Record | None:
    try:
        obj = json.loads((_records_dir(conf) / f"{container_id}.json").read_text())
        return _Record(str(obj["netns"]), str(obj["ifname"]), obj.get("alias"),
                       Result.from_json(obj["result"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, CNIError):
        return None  # unreadable: as if ADD had not finished (it is rebuilt or torn down)


def _save_record(conf: BridgeConf, container_id: str, record: _Record) -> None:
    atomic_write(_records_dir(conf) / f"{container_id}.json", json.dumps({
        "netns": record.netns, "ifname": record.ifname, "alias": record.alias,
        "result": record.result.to_json()}) + "\n")


def _host_netns(conf: BridgeConf) -> str:
    return conf.node_netns or SELF_NETNS


def _alias_name(conf: BridgeConf, args: CNIArgs) -> str | None:
    """The pod netns's contract name, if it needs one: not when the runtime's namespace is
    that very file (the process runtime's ``ip netns add``)."""
    names = conf.names
    if names is None or args.pod_uid is None:
        return None
    name = names.pod_netns(args.pod_uid)
    return None if _same_file(alias.alias_path(name), args.netns) else name


def _same_file(a: str | Path, b: str | Path) -> bool:
    return bool(b) and os.path.realpath(a) == os.path.realpath(b)


def _bridge_add(conf: BridgeConf, args: CNIArgs) -> Result:
    ipam = _ipam(conf)
    record = _load_record(conf, args.container_id)
    if (record is not None and (record.netns, record.ifname) == (args.netns, args.ifname)
            and ipam.get(args.container_id) == record.result.ip):
        with contextlib.suppress(CNIError):
            _bridge_check(conf, args, record.result)
            return record.result
    ip = ipam.allocate(args.container_id)
    name = _alias_name(conf, args)
    made_alias = False
    host_veth = pod_host_veth(args.pod_uid or args.container_id)
    try:
        if name is not None:
            made_alias = alias.attach(args.netns, name)
        ip6 = _create_veth(conf, args, ip, host_veth)
        (links,) = query_sync(_host_netns(conf), [f"link show dev {host_veth}"])
        gateway, gateway6 = conf.gateway_ip, conf.gateway6_ip
        six_ips = () if ip6 is None else (IPConfig(ip6, gateway6, interface=1),)
        six_routes = () if gateway6 is None else (Route(_DEFAULT_ROUTE6, gateway6),)
        result = Result(
            interfaces=(Interface(host_veth, str(links[0].get("address", ""))),
                        Interface(args.ifname, mac_for(ip.ip), args.netns)),
            ips=(IPConfig(ip, gateway, interface=1), *six_ips),
            routes=(Route(_DEFAULT_ROUTE, gateway), *six_routes),
        )
        _save_record(conf, args.container_id, _Record(args.netns, args.ifname, name, result))
        return result
    except BaseException:
        with contextlib.suppress(NetworkError, OSError):
            _delete_pod_link(args.netns, args.ifname)
        if made_alias and name is not None:
            with contextlib.suppress(OSError):
                alias.detach(name)
        with contextlib.suppress(OSError, IPAMStateError):
            ipam.release(args.container_id)
        raise


def _create_veth(conf: BridgeConf, args: CNIArgs, ip: IPv4Interface,
                 host_veth: str) -> IPv6Interface | None:
    """The pod's veth; returns its IPv6 address on a dual-stack network."""
    names = PodNetworkNames(node_netns=_host_netns(conf), bridge=conf.bridge,
                            pod_netns=args.netns, host_veth=host_veth, pod_veth=args.ifname)
    ip6 = None if conf.subnet6 is None else pod_ipv6(ip, conf.subnet, conf.subnet6)
    spec = pod_veth_spec(ip, conf.gateway_ip, names, pod_ip6=ip6, gateway6=conf.gateway6_ip)
    batches = plan_veth(replace(spec, hairpin=conf.hairpin, mtu=conf.mtu))
    try:
        apply_sync(batches)
    except LinkExists:
        # Left by an interrupted ADD (or the pod's previous sandbox): remove, try once more.
        _delete_pod_link(args.netns, args.ifname)
        with contextlib.suppress(LinkNotFound):
            apply_sync([Batch(names.node_netns, (f"link del {host_veth}",))])
        apply_sync(batches)
    return ip6


def _delete_pod_link(netns: str, ifname: str) -> None:
    if alias.is_netns(netns):
        with contextlib.suppress(LinkNotFound, NetnsNotFound):
            apply_sync([Batch(netns, (f"link del {ifname}",))])


def _drop_alias(name: str, netns: str) -> None:
    """Remove alias ``name`` made for ``netns``, unless it now names another namespace."""
    path = alias.alias_path(name)
    if _same_file(path, netns):
        return
    if not alias.is_netns(netns) or alias.same_netns(path, netns) or not alias.is_netns(path):
        alias.detach(name)


def _bridge_del(conf: BridgeConf, args: CNIArgs) -> None:
    record = _load_record(conf, args.container_id)
    netns = args.netns or (record.netns if record is not None else "")
    if netns:
        _delete_pod_link(netns, args.ifname)
    if record is not None and record.alias is not None:
        _drop_alias(record.alias, record.netns)
    elif ((name := _alias_name(conf, args)) is not None and netns
          and alias.same_netns(alias.alias_path(name), netns)):
        alias.detach(name)
    (_records_dir(conf) / f"{args.container_id}.json").unlink(missing_ok=True)
    _ipam(conf).release(args.container_id)


def _bridge_check(conf: BridgeConf, args: CNIArgs, prev: Result | None = None) -> None:
    prev = prev or conf.prev_result
    ip = _prev_ip(prev, args) if prev is not None else _ipam(conf).get(args.container_id)
    if ip is None:
        raise CNIError(Code.CHECK_FAILED, "pod network is not as ADD left it",
                       f"no address for container {args.container_id}")
    try:
        addrs, routes = query_sync(args.netns, [f"addr show dev {args.ifname}",
                                                "route show default"])
    except LinkNotFound:
        addrs, routes = [], []
    problems = check_problems(addrs, routes, args.ifname, ip, conf.gateway_ip)
    name = _alias_name(conf, args)
    if name is not None and not alias.same_netns(alias.alias_path(name), args.netns):
        problems.append(f"{alias.alias_path(name)} does not name {args.netns}")
    if problems:
        raise CNIError(Code.CHECK_FAILED, "pod network is not as ADD left it",
                       "; ".join(problems))


def _prev_ip(prev: Result, args: CNIArgs) -> IPv4Interface | None:
    for ip in prev.ips:
        if not isinstance(ip.address, IPv4Interface):
            continue
        if ip.interface is None or (
                0 <= ip.interface < len(prev.interfaces)
                and prev.interfaces[ip.interface].name == args.ifname
                and prev.interfaces[ip.interface].sandbox):
            return ip.address
    return None


def check_problems(addrs: list[Any], routes: list[Any], ifname: str, ip: IPv4Interface,
                   gateway: IPv4Address) -> list[str]:
    """What CHECK finds wrong, from ``ip -j addr show dev IFNAME`` and ``ip -j route show
    default`` in the pod netns (empty: nothing)."""
    if not addrs:
        return [f"no interface {ifname}"]
    link = addrs[0]
    problems = []
    if "UP" not in link.get("flags", ()):
        problems.append(f"{ifname} is down")
    if link.get("address") != mac_for(ip.ip):
        problems.append(f"{ifname} has MAC {link.get('address')}, not {mac_for(ip.ip)}")
    held = {(a.get("local"), a.get("prefixlen")) for a in link.get("addr_info", ())
            if a.get("family") == "inet"}
    if (str(ip.ip), ip.network.prefixlen) not in held:
        problems.append(f"{ifname} lacks {ip.with_prefixlen}")
    if not any(r.get("dst") == "default" and r.get("gateway") == str(gateway)
               and r.get("dev") == ifname for r in routes):
        problems.append(f"no default route via {gateway} dev {ifname}")
    return problems
