"""Which upstreams cluster DNS gets (svcnet/dns/upstreams.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from svcnet.dns.upstreams import (
    choose_upstreams,
    explicit_upstreams,
    format_upstream,
    host_upstreams,
    parse_upstream,
)
from svcnet.util.resolvconf import ResolvConf


@pytest.mark.parametrize(("text", "want"), [
    ("192.0.2.53", ("192.0.2.53", 53)),
    ("192.0.2.53:5353", ("192.0.2.53", 5353)),
    ("2001:db8::53", ("2001:db8::53", 53)),
    ("[2001:db8::53]:5353", ("2001:db8::53", 5353)),
    ("[2001:db8::53]", ("2001:db8::53", 53)),
])
def test_parse_upstream(text: str, want: tuple[str, int]) -> None:
    assert parse_upstream(text) == want
    assert parse_upstream(format_upstream(want)) == want


@pytest.mark.parametrize("text", ["dns.example", "192.0.2.53:0", "192.0.2.53:x",
                                  "192.0.2.53:70000", "[2001:db8::53", "[::1]x", ""])
def test_parse_upstream_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"ADDR|PORT|port|IPV6"):
        parse_upstream(text)


def test_explicit_upstreams_keep_loopback() -> None:
    assert explicit_upstreams(["127.0.0.1:5353"]).servers == (("127.0.0.1", 5353),)


def test_host_nameservers_without_loopback() -> None:
    got = choose_upstreams(ResolvConf(("10.0.0.2", "127.0.0.53", "bogus", "2001:db8::1")), None)
    assert got.servers == (("10.0.0.2", 53), ("2001:db8::1", 53))
    assert "127.0.0.53" in got.notes[0]


def test_systemd_resolved_stub_is_replaced_by_its_upstreams() -> None:
    got = choose_upstreams(ResolvConf(("127.0.0.53",)),
                           ResolvConf(("192.0.2.1", "127.0.0.1", "192.0.2.2")))
    assert got.servers == (("192.0.2.1", 53), ("192.0.2.2", 53))
    assert "/run/systemd/resolve/resolv.conf" in got.notes[0]


def test_only_loopback_and_no_systemd_file_means_no_upstreams() -> None:
    got = choose_upstreams(ResolvConf(("127.0.0.1",)), None)
    assert got.servers == () and "SERVFAIL" in got.notes[-1]


def test_host_upstreams_reads_files(tmp_path: Path) -> None:
    host, resolved = tmp_path / "resolv.conf", tmp_path / "resolved.conf"
    host.write_text("nameserver 127.0.0.53\noptions edns0 trust-ad\n")
    resolved.write_text("nameserver 198.51.100.7\n")
    assert host_upstreams(host, resolved).servers == (("198.51.100.7", 53),)
    assert host_upstreams(tmp_path / "missing", tmp_path / "missing").servers == ()
