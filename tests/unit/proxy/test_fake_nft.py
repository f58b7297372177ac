"""FakeNft behaves like the kernel (each rule below was checked against nft 1.0.6 / Linux 6.18)."""

from __future__ import annotations

import pytest

from svcnet.proxy.nft.fake import FakeNft
from svcnet.proxy.nft.nft import NftError, NftRunner

SETUP = """\
add table ip t
add chain ip t base { type nat hook prerouting priority -100 ; policy accept ; }
add chain ip t target
add chain ip t other { comment "spare" ; }
add map ip t vm { type ipv4_addr . inet_proto . inet_service : verdict ; }
add map ip t data { type ipv4_addr : ipv4_addr . inet_service ; }
add set ip t s { type ipv4_addr ; }
add element ip t vm { 10.96.0.1 . tcp . 80 comment "ns/a" : goto target }
add element ip t data { 1.1.1.1 : 2.2.2.2 . 80 }
add element ip t s { 10.0.0.1 }
add rule ip t base ip daddr . meta l4proto . th dport vmap @vm
add rule ip t base ip saddr @s jump other comment "r2"
"""


@pytest.fixture
def nft() -> FakeNft:
    fake = FakeNft()
    fake.apply(SETUP)
    return fake


def test_is_a_runner(nft: FakeNft) -> None:
    assert isinstance(nft, NftRunner)


@pytest.mark.parametrize("script", [
    "add table ip t",                                      # add of an existing table
    "add chain ip t target",                               # ... chain
    "add set ip t s { type ipv4_addr ; }",                 # ... set, same definition
    "add element ip t data { 1.1.1.1 : 2.2.2.2 . 80 }",    # ... element, same value
    "add element ip t s { 10.0.0.1 }",
    "delete element ip t data { 1.1.1.1 }\nadd element ip t data { 1.1.1.1 : 3.3.3.3 . 81 }",
    "flush chain ip t base\ndelete element ip t vm { 10.96.0.1 . tcp . 80 }\n"
    "delete chain ip t target",                            # unreferenced by now
    "flush chain ip t base\ndelete set ip t s",
    "delete chain ip t base",                              # rules go with the chain
    "add table ip t\ndelete table ip t\nadd table ip t",
    "flush set ip t s\nflush map ip t vm",
    "# a comment\n\nadd element ip t s { 10.0.0.2, 10.0.0.3 }",
])
def test_accepted(nft: FakeNft, script: str) -> None:
    nft.apply(script)


@pytest.mark.parametrize(("script", "error"), [
    ("create table ip t", "File exists"),
    ("create chain ip t target", "File exists"),
    ("add set ip t s { type ipv4_addr . inet_service ; }", "File exists"),
    ("add map ip t s { type ipv4_addr : verdict ; }", "File exists"),
    ("add element ip t data { 1.1.1.1 : 2.2.2.3 . 80 }", "File exists"),
    ("create element ip t s { 10.0.0.1 }", "File exists"),
    ("delete element ip t s { 10.0.0.9 }", "No such file"),
    ("delete table ip nope", "No such file"),
    ("delete chain ip t nope", "No such file"),
    ("flush chain ip t nope", "No such file"),
    ("delete set ip t nope", "No such file"),
    ("add rule ip t nope accept", "No such file"),
    ("add rule ip t target jump nope", "No such file"),
    ("add rule ip t target ip saddr @nope accept", "No such file"),
    ("add element ip t vm { 10.96.0.2 . tcp . 80 : goto nope }", "No such file"),
    ("add element ip t nope { 10.0.0.1 }", "No such file"),
    ("delete chain ip t target", "busy"),                   # a map element points at it
    ("flush chain ip t target\ndelete chain ip t other", "busy"),  # a rule jumps to it
    ("delete set ip t s", "busy"),                          # a rule uses it
    ("add element ip t s { 10.128.256.1 }", "not a valid IPv4"),  # nft: a DNS lookup
    # Stricter than nft: we only ever write these protocols, and never read state back.
    ("add element ip t vm { 10.96.0.2 . icmp . 80 : drop }", "unsupported protocol"),
    ("list ruleset", "syntax error"),
    ("add chain ip t base { type filter hook input priority 0 ; }", "File exists"),
])
def test_refused(nft: FakeNft, script: str, error: str) -> None:
    with pytest.raises(NftError, match=error):
        nft.apply(script)


def test_transactions_are_atomic(nft: FakeNft) -> None:
    before = nft.dump()
    with pytest.raises(NftError, match="line 3"):
        nft.apply("add element ip t s { 10.0.0.5 }\nflush chain ip t base\n"
                  "delete element ip t s { 10.9.9.9 }\n")
    assert nft.dump() == before
    assert nft.last_transaction == SETUP


def test_dump_is_canonical(nft: FakeNft) -> None:
    nft.apply("add element ip t s { 10.0.0.10, 10.0.0.2 }")
    ruleset = nft.ruleset("ip", "t")
    assert ruleset is not None
    assert nft.dump() == ruleset.render()
    text = nft.dump()
    assert text.index("10.0.0.2,") < text.index("10.0.0.10")
    assert 'ip saddr @s jump other comment "r2"' in text
    assert '10.96.0.1 . tcp . 80 comment "ns/a" : goto target' in text
    assert 'comment "spare"' in text
    assert nft.ruleset("ip", "missing") is None


def test_injected_failure(nft: FakeNft) -> None:
    nft.fail_next = "boom"
    with pytest.raises(NftError, match="boom"):
        nft.apply("add element ip t s { 10.0.0.7 }")
    nft.apply("add element ip t s { 10.0.0.7 }")
