"""Which resolvers cluster DNS forwards other names to: ``--upstream`` values, or the host's.

Theory of operation
-------------------
CoreDNS's default Corefile forwards every name outside the cluster domain with ``forward .
/etc/resolv.conf``: the resolvers of the machine the DNS pod runs on. In a local cluster the DNS
pod runs in its own network namespace, so two kinds of host resolver cannot work there:

* **loopback stubs**: ``127.0.0.53`` (systemd-resolved), ``127.0.0.1`` (dnsmasq, unbound),
  ``::1``. A pod's ``127.0.0.53`` is its own loopback, where nobody listens. They are skipped.
  When *every* nameserver of ``/etc/resolv.conf`` is such a stub and systemd-resolved's own
  list of real upstreams, ``/run/systemd/resolve/resolv.conf``, exists, its non-loopback
  nameservers are used instead. That is what kubeadm does for the kubelet (it sets the
  kubelet's ``resolvConf`` to that file when systemd-resolved is active), and what CoreDNS's
  documentation recommends against forwarding loops.
* everything else is kept, in order: whether packets to it get anywhere depends on egress
  (docs/EGRESS.md); with egress off ``svcnet up`` gives DNS no upstreams at all.

``--upstream ADDR[:PORT]`` (repeatable) replaces the host's list; explicit values are used as
given, loopback included (the user may run a resolver where the pod can reach it).
:func:`choose_upstreams` is the pure decision, :func:`host_upstreams` reads the files.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from svcnet.util import resolvconf
from svcnet.util.resolvconf import ResolvConf

__all__ = [
    "HOST_RESOLV_CONF",
    "SYSTEMD_RESOLV_CONF",
    "Upstreams",
    "choose_upstreams",
    "explicit_upstreams",
    "format_upstream",
    "host_upstreams",
    "parse_upstream",
]

HOST_RESOLV_CONF: Final = Path("/etc/resolv.conf")
SYSTEMD_RESOLV_CONF: Final = Path("/run/systemd/resolve/resolv.conf")

Address = tuple[str, int]


def parse_upstream(text: str, default_port: int = 53) -> Address:
    """``ADDR``, ``ADDR:PORT``, ``[V6]:PORT`` or ``V6`` → (address, port); ValueError with a
    one-line reason otherwise."""
    text = text.strip()
    host, port = text, default_port
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: expected [IPV6]:PORT")
        if rest:
            port = _port(text, rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(text, port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: not an IP address (ADDR[:PORT])") from None
    return host, port


def _port(text: str, port: str) -> int:
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: the port must be 1-65535")
    return int(port)


def format_upstream(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class Upstreams:
    servers: tuple[Address, ...]
    notes: tuple[str, ...] = ()
    """What was skipped or substituted, and why (for the user)."""


def _ip_servers(conf: ResolvConf) -> list[str]:
    out = []
    for s in conf.nameservers:
        try:
            ipaddress.ip_address(s.split("%", 1)[0])
        except ValueError:
            continue
        out.append(s)
    return out


def choose_upstreams(host: ResolvConf, systemd: ResolvConf | None, *,
                     host_path: str = str(HOST_RESOLV_CONF),
                     systemd_path: str = str(SYSTEMD_RESOLV_CONF)) -> Upstreams:
    """The upstreams a local cluster's DNS gets from the host (module doc). Pure."""
    servers = _ip_servers(host)
    usable = [s for s in servers if not resolvconf.is_loopback(s)]
    skipped = [s for s in servers if resolvconf.is_loopback(s)]
    notes: list[str] = []
    if skipped and not usable and systemd is not None:
        usable = [s for s in _ip_servers(systemd) if not resolvconf.is_loopback(s)]
        notes.append(f"{host_path} names only the loopback stub {', '.join(skipped)}, "
                     f"which pods cannot reach: using {systemd_path} instead")
    elif skipped:
        notes.append(f"skipped loopback nameserver(s) {', '.join(skipped)} of {host_path}: "
                     f"pods cannot reach the host's loopback")
    if not usable:
        notes.append("no upstream resolver usable from pods: names outside the cluster get "
                     "SERVFAIL (give one with --upstream ADDR[:PORT])")
    return Upstreams(tuple((s, 53) for s in usable), tuple(notes))


def host_upstreams(host_path: Path = HOST_RESOLV_CONF,
                   systemd_path: Path = SYSTEMD_RESOLV_CONF) -> Upstreams:
    """:func:`choose_upstreams` over the machine's files (a missing file counts as empty)."""
    def load(path: Path) -> ResolvConf | None:
        try:
            return resolvconf.read(path)
        except OSError:
            return None

    return choose_upstreams(load(host_path) or ResolvConf(), load(systemd_path),
                            host_path=str(host_path), systemd_path=str(systemd_path))


def explicit_upstreams(values: Sequence[str]) -> Upstreams:
    """``--upstream`` values, parsed (ValueError on the first bad one)."""
    return Upstreams(tuple(parse_upstream(v) for v in values))
