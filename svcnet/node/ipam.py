"""Per-node pod IP allocation, persisted so a restarted agent keeps every pod's address.

Theory of operation
-------------------
Each node owns one pod CIDR (``10.244.<i>.0/24``). The network address, the broadcast address
and the gateway (by default the first host address, ``.1``, held by the node's pod bridge) are
never handed out, which leaves ``.2``-``.254`` for pods.

Allocation is **next-fit**, as CNI's host-local plugin does: the search starts after the last
address handed out and wraps around, so an address just released (whose old owner may still
sit in a peer's conntrack table or ARP cache, or in an EndpointSlice an informer has not
updated yet) is reused as late as possible. Allocation is **idempotent per owner**: asking
again for an owner that has an address returns the same address, which is what makes a sync
(or a CNI ADD) after a crash safe to repeat. An owner is an opaque ID: the pod UID for the
process runtime, the sandbox (container) ID for pods that containerd runs through the CNI
plugin (:mod:`svcnet.node.cni`); both kinds share one file per node.

**Dual stack**: a node with an IPv6 pod CIDR (a /64) gives every pod an IPv6 address too,
derived from its IPv4 one rather than allocated (:func:`pod_ipv6`): the same host offset in
the IPv6 subnet (``10.244.1.7`` -> ``fd00:10:244:1::7``), the gateway likewise (``::1``). So the
IPv4 allocation, persisted here, is the only state: the IPv6 address is unique, survives
restarts and is released with it, and the CNI plugin, the runner and a restarted agent all
compute the same address without sharing anything more.

**IPv6 single stack** (svcnet/util/ipfamily.py ``ipv6``) keeps that arrangement: the IPv4
address is still allocated and configured in the pod, as its internal address, but only the
derived IPv6 one is shown (:func:`api_pod_ips`), so Services, EndpointSlices and DNS see IPv6
only.

State lives in one small JSON file in the agent's state directory::

    {"version": 1, "cidr": "10.244.1.0/24", "last": "10.244.1.7",
     "allocations": {"10.244.1.5": "<owner>", "10.244.1.7": "<owner>"}}

Every change is written **before** the method returns, atomically (temporary file, fsync,
rename, fsync of the directory), so after a crash the file is either the old or the new
state, never a torn mix; and an address is never in use without being on disk (the other
order could hand one address to two pods after a crash). A file that cannot be read, or that
belongs to a different CIDR, is an error rather than a fresh start: silently starting over
would double-allocate the addresses of every running pod.

**Several processes** write the file: the agent, and a CNI plugin process per pod that
containerd sets up or tears down, several at once. Every change is a read-modify-write under
an exclusive ``flock(2)`` on ``<file>.lock`` (as host-local locks its directory): the state is
re-read from disk under the lock, changed, and written before the lock is dropped, so no two
owners ever get one address and no change is lost. The lock dies with its holder (a crashed
plugin never leaves it held). Queries need no lock (a rename replaces the file whole); they
re-read the file when its identity (inode, size, mtime, ctime) has changed since the last read.
``flock`` locks belong to an open file, so two instances in one process exclude each other
too; one instance is not meant to be shared between threads.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface, IPv6Network
from pathlib import Path
from typing import Any, Final

from svcnet.node.files import atomic_write
from svcnet.util.ipfamily import IPFamilies

__all__ = ["IPAMError", "IPAMExhausted", "IPAMStateError", "PodIPAM", "api_pod_ips", "pod_ipv6"]

_VERSION: Final = 1


def pod_ipv6(ip: IPv4Interface | IPv4Address, ipv4_subnet: IPv4Network,
             ipv6_subnet: IPv6Network) -> IPv6Interface:
    """The IPv6 address that goes with a pod's (or the gateway's) IPv4 address: the same host
    offset in the node's IPv6 pod subnet (see the module docstring)."""
    address = ip.ip if isinstance(ip, IPv4Interface) else ip
    offset = int(address) - int(ipv4_subnet.network_address)
    if not 0 < offset < min(ipv4_subnet.num_addresses, ipv6_subnet.num_addresses):
        raise ValueError(f"{address} is not a host address of {ipv4_subnet}")
    return IPv6Interface((int(ipv6_subnet.network_address) + offset, ipv6_subnet.prefixlen))


def api_pod_ips(ip: IPv4Interface, ipv6_subnet: IPv6Network | None,
                families: IPFamilies) -> list[str]:
    """A pod's addresses as its status shows them (``podIPs``, the primary first): of the
    allocated IPv4 address and the IPv6 one derived from it, those of the families the API
    sees. On an IPv6 single-stack node the IPv4 address is the pod's internal one only."""
    six = [] if ipv6_subnet is None else [str(pod_ipv6(ip, ip.network, ipv6_subnet).ip)]
    return families.pick([str(ip.ip), *six]) or [str(ip.ip)]


class IPAMError(Exception):
    pass


class IPAMExhausted(IPAMError):
    """Every pod address of the node is taken."""


class IPAMStateError(IPAMError):
    """The state file is unreadable or belongs to another CIDR."""


_Stamp = tuple[int, int, int, int]


class PodIPAM:
    def __init__(self, cidr: IPv4Network | str, state_file: Path, *,
                 gateway: IPv4Address | str | None = None) -> None:
        self.cidr = IPv4Network(cidr)
        if self.cidr.prefixlen > 30:
            raise ValueError(f"pod CIDR {self.cidr} leaves no addresses for pods")
        gateway_ip = self.cidr.network_address + 1 if gateway is None else IPv4Address(gateway)
        if gateway_ip not in self.cidr or gateway_ip in (self.cidr.network_address,
                                                         self.cidr.broadcast_address):
            raise ValueError(f"gateway {gateway_ip} is not a host address of {self.cidr}")
        self.gateway = IPv4Interface(f"{gateway_ip}/{self.cidr.prefixlen}")
        self._file = state_file
        self._lock_file = state_file.with_name(state_file.name + ".lock")
        self._by_ip: dict[IPv4Address, str] = {}
        self._by_uid: dict[str, IPv4Address] = {}
        self._last: IPv4Address | None = None
        self._stamp: _Stamp | None = None
        self._load()

    # --- queries -------------------------------------------------------------------------

    def get(self, owner: str) -> IPv4Interface | None:
        self._refresh()
        ip = self._by_uid.get(owner)
        return None if ip is None else self._iface(ip)

    def allocations(self) -> Mapping[str, IPv4Interface]:
        """Owner → address, a snapshot."""
        self._refresh()
        return {uid: self._iface(ip) for uid, ip in self._by_uid.items()}

    @property
    def capacity(self) -> int:
        return self.cidr.num_addresses - 3

    # --- changes -------------------------------------------------------------------------

    def allocate(self, uid: str) -> IPv4Interface:
        """The owner's address: the one it already has, else the next free one (persisted)."""
        if not uid:
            raise ValueError("owner must not be empty")
        with self._locked():
            return self._allocate(uid)

    def _allocate(self, uid: str) -> IPv4Interface:
        if (ip := self._by_uid.get(uid)) is not None:
            return self._iface(ip)
        first = int(self.cidr.network_address) + 1
        last = int(self.cidr.broadcast_address) - 1
        size = last - first + 1
        start = first if self._last is None else int(self._last) + 1
        for step in range(size):
            candidate = IPv4Address(first + (start - first + step) % size)
            if candidate not in self._by_ip and candidate != self.gateway.ip:
                self._by_ip[candidate] = uid
                self._by_uid[uid] = candidate
                previous_last, self._last = self._last, candidate
                try:
                    self._save()
                except BaseException:
                    # Not on disk means not allocated: undo, so memory matches the file.
                    del self._by_ip[candidate], self._by_uid[uid]
                    self._last = previous_last
                    raise
                return self._iface(candidate)
        raise IPAMExhausted(f"no free pod address in {self.cidr} ({self.capacity} in use)")

    def release(self, uid: str) -> IPv4Interface | None:
        """Free the owner's address (persisted); returns it, or None if it had none."""
        with self._locked():
            ip = self._by_uid.pop(uid, None)
            if ip is None:
                return None
            del self._by_ip[ip]
            self._save()
            return self._iface(ip)

    def retain_only(self, uids: Iterable[str]) -> list[str]:
        """Release every allocation whose owner is not in ``uids`` (garbage collection after a
        restart: pass every live owner, of every kind, that shares the file); returns the
        released owners."""
        keep = set(uids)
        with self._locked():
            gone = sorted(uid for uid in self._by_uid if uid not in keep)
            if gone:
                for uid in gone:
                    del self._by_ip[self._by_uid.pop(uid)]
                self._save()
            return gone

    # --- persistence ---------------------------------------------------------------------

    def _iface(self, ip: IPv4Address) -> IPv4Interface:
        return IPv4Interface(f"{ip}/{self.cidr.prefixlen}")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the file lock, with the state re-read from disk under it."""
        self._lock_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._load()
            yield
        finally:
            os.close(fd)  # drops the lock

    def _current_stamp(self) -> _Stamp | None:
        try:
            st = os.stat(self._file)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _refresh(self) -> None:
        if self._current_stamp() != self._stamp:
            self._load()

    def _load(self) -> None:
        """Replace the in-memory state with the file's (empty if there is none)."""
        self._by_ip.clear()
        self._by_uid.clear()
        self._last = None
        self._stamp = None  # until the file has been read whole: a bad file is read again
        stamp = self._current_stamp()
        try:
            raw = self._file.read_text()
        except FileNotFoundError:
            return
        try:
            data: Any = json.loads(raw)
            if data.get("version") != _VERSION:
                raise IPAMStateError(f"{self._file}: unknown version {data.get('version')!r}")
            if IPv4Network(data["cidr"]) != self.cidr:
                raise IPAMStateError(
                    f"{self._file} holds allocations from {data['cidr']}, not {self.cidr}; "
                    "move it away only once no pod of the old range runs")
            for ip_text, uid in data["allocations"].items():
                ip = IPv4Address(ip_text)
                if not isinstance(uid, str) or not self._allocatable(ip) or uid in self._by_uid:
                    raise IPAMStateError(f"{self._file}: bad allocation {ip_text}: {uid!r}")
                self._by_ip[ip] = uid
                self._by_uid[uid] = ip
            if data.get("last") is not None:
                self._last = IPv4Address(data["last"])
            self._stamp = stamp
        except IPAMStateError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IPAMStateError(f"{self._file} is not a valid IPAM state file: {exc}") from exc

    def _allocatable(self, ip: IPv4Address) -> bool:
        return (ip in self.cidr and ip not in (self.cidr.network_address, self.gateway.ip,
                                               self.cidr.broadcast_address))

    def _save(self) -> None:
        data = {
            "version": _VERSION,
            "cidr": str(self.cidr),
            "last": None if self._last is None else str(self._last),
            "allocations": {str(ip): self._by_ip[ip] for ip in sorted(self._by_ip)},
        }
        atomic_write(self._file, json.dumps(data, indent=1, sort_keys=True) + "\n")
        self._stamp = self._current_stamp()

