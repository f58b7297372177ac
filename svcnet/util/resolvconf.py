"""resolv.conf(5), read the way the kubelet reads it: the one parser for the node agent (the
"host" DNS settings that pods with ``dnsPolicy: Default`` inherit) and cluster DNS (its
upstream resolvers).

Theory of operation
-------------------
Follows the kubelet's ``parseResolvConf`` (kubernetes ``pkg/kubelet/network/dns/dns.go``):

* a line whose first non-blank character is ``#`` is a comment; otherwise the line is split
  on white space and only its first word matters (a trailing ``# comment`` after a nameserver's
  address is therefore ignored, as the address is the second word);
* ``nameserver ADDR`` lines accumulate; a ``nameserver`` line without an address is an error
  (``nameserver list is empty``), reported with the result rather than instead of it;
* the last ``search`` line wins; each domain loses one trailing dot (so ``corp.`` and ``corp``
  count once against the search limits) and the root domain ``.`` is dropped;
* the last ``options`` line wins, each option kept as written (``ndots:2``);
* at most 10 MiB are read (the kubelet's ``maxResolvConfLength``).

glibc itself also treats ``;`` as a comment character and stops at three nameservers; the
kubelet does neither, and neither do we: the limits are applied later, where the kubelet
applies them (svcnet/node/dnsconfig.py), with its Event messages.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = ["MAX_RESOLV_CONF_BYTES", "ResolvConf", "is_loopback", "parse", "read"]

MAX_RESOLV_CONF_BYTES: Final = 10 << 20


@dataclass(frozen=True, slots=True)
class ResolvConf:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    errors: tuple[str, ...] = field(default=(), compare=False)
    """What the kubelet would have returned as an error (the lists are complete anyway)."""


def parse(text: str) -> ResolvConf:
    """The nameservers, search domains and options of a resolv.conf's text (module doc)."""
    nameservers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    errors: list[str] = []
    for line in text.split("\n"):
        trimmed = line.strip()
        if trimmed.startswith("#"):
            continue
        fields = trimmed.split()
        if not fields:
            continue
        match fields[0]:
            case "nameserver":
                if len(fields) >= 2:
                    nameservers.append(fields[1])
                else:
                    errors.append("nameserver list is empty ")
            case "search":
                searches = [s.removesuffix(".") for s in fields[1:] if s != "."]
            case "options":
                options = fields[1:]
    return ResolvConf(tuple(nameservers), tuple(searches), tuple(options), tuple(errors))


def read(path: str | Path) -> ResolvConf:
    """:func:`parse` of the file at ``path`` (its first 10 MiB); OSError if unreadable."""
    with open(path, "rb") as f:
        data = f.read(MAX_RESOLV_CONF_BYTES + 1)
    if len(data) > MAX_RESOLV_CONF_BYTES:
        raise OSError(f"{path}: larger than {MAX_RESOLV_CONF_BYTES} bytes")
    return parse(data.decode("utf-8", "replace"))


def is_loopback(address: str) -> bool:
    """Whether a nameserver address is on loopback (``127.0.0.53``, systemd-resolved's stub;
    ``::1``): reachable on the host itself, never from a pod's or node's network namespace.
    Addresses that are not IP addresses count as not loopback."""
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False
