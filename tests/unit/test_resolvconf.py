"""resolv.conf as the kubelet reads it (svcnet/util/resolvconf.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from svcnet.util.resolvconf import ResolvConf, is_loopback, parse, read


@pytest.mark.parametrize(("text", "want"), [
    ("", ResolvConf()),
    (" \n\t\n", ResolvConf()),
    ("#comment\n #comment\n", ResolvConf()),
    ("nameserver 1.2.3.4 #comment", ResolvConf(("1.2.3.4",))),
    ("\tnameserver \t 1.2.3.4\nnameserver 5.6.7.8", ResolvConf(("1.2.3.4", "5.6.7.8"))),
    ("search foo\nsearch bar baz", ResolvConf((), ("bar", "baz"))),
    ("search corp. . lab", ResolvConf((), ("corp", "lab"))),
    ("options ndots:1\noptions ndots:5 attempts:3", ResolvConf((), (), ("ndots:5",
                                                                       "attempts:3"))),
    ("nameserver 1.2.3.4\nsearch foo\nnameserver 5.6.7.8\nsearch bar\noptions edns0",
     ResolvConf(("1.2.3.4", "5.6.7.8"), ("bar",), ("edns0",))),
    # The kubelet does not treat ';' as a comment (glibc does): the word is kept.
    (";nameserver 9.9.9.9\nnameserver not-an-ip", ResolvConf(("not-an-ip",))),
])
def test_parse(text: str, want: ResolvConf) -> None:
    got = parse(text)
    assert got == want and got.errors == ()


def test_empty_nameserver_is_an_error_but_the_rest_is_read() -> None:
    got = parse("nameserver\nnameserver 1.2.3.4\nsearch x")
    assert (got.nameservers, got.searches) == (("1.2.3.4",), ("x",))
    assert got.errors == ("nameserver list is empty ",)


def test_read(tmp_path: Path) -> None:
    f = tmp_path / "resolv.conf"
    f.write_text("nameserver 192.0.2.53\n")
    assert read(f).nameservers == ("192.0.2.53",)
    with pytest.raises(OSError):
        read(tmp_path / "missing")


@pytest.mark.parametrize(("address", "want"), [
    ("127.0.0.53", True), ("127.0.0.1", True), ("::1", True), ("10.0.0.2", False),
    ("2001:db8::1", False), ("fe80::1%eth0", False), ("bogus", False),
])
def test_is_loopback(address: str, want: bool) -> None:
    assert is_loopback(address) is want
