"""libnftables in-process: scripts land in the right network namespace, errors are reported,
and the node's runner sends small scripts in-process and big ones to an ``nft`` process."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from svcnet.proxy.nft.libnft import LibNft, NodeNft
from svcnet.proxy.nft.nft import NftError, SubprocessNft
from tests.conftest import require_root

pytestmark = pytest.mark.root

TABLE = "add table ip svcnet\nadd set ip svcnet s { type ipv4_addr ; }\n"


def root_has_our_table() -> bool:
    done = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                          check=False)
    return "table ip svcnet" in done.stdout


def test_scripts_land_in_the_namespace_not_the_host(netns: str) -> None:
    before = root_has_our_table()
    lib = LibNft(netns)
    try:
        lib.apply(TABLE)
        lib.apply("add element ip svcnet s { 10.96.0.1, 10.96.0.2 }\n")
        listed = SubprocessNft(netns).list_table("ip", "svcnet")
        assert "10.96.0.1" in listed and "10.96.0.2" in listed
        assert "10.96.0.2" in lib.list_table("ip", "svcnet")
        assert root_has_our_table() == before  # nothing was written in the root namespace
    finally:
        lib.close()


def test_rejected_scripts_raise_with_nfts_message_and_change_nothing(netns: str) -> None:
    lib = LibNft(netns)
    try:
        lib.apply(TABLE)
        with pytest.raises(NftError, match="No such file or directory") as err:
            lib.apply("add element ip svcnet s { 10.0.0.1 }\nadd rule ip svcnet nope accept\n")
        assert err.value.stderr.startswith("Error: Could not process rule")
        # Atomic: the element of the rejected script is not there either.
        assert "10.0.0.1" not in lib.list_table("ip", "svcnet")
        lib.check("add element ip svcnet s { 10.0.0.2 }\n")  # dry run: validated only
        assert "10.0.0.2" not in lib.list_table("ip", "svcnet")
    finally:
        lib.close()
    with pytest.raises(NftError, match="closed"):
        lib.apply(TABLE)


def test_missing_namespace_is_an_nft_error() -> None:
    require_root()
    lib = LibNft("svcnet-t5-lnone")
    with pytest.raises(NftError, match="cannot enter network namespace"):
        lib.apply(TABLE)
    lib.close()


def test_node_runner_routes_by_size(netns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = NodeNft(netns, small_script_bytes=200)
    calls: list[str] = []
    assert runner.library is not None
    for name, target in (("library", runner.library), ("process", runner.process)):
        def recorded(text: str, name: str = name, apply: Callable[[str], None] = target.apply
                     ) -> None:
            calls.append(name)
            apply(text)
        monkeypatch.setattr(target, "apply", recorded)
    try:
        runner.apply(TABLE)
        big = ", ".join(f"10.1.{i // 256}.{i % 256}" for i in range(100))
        runner.apply(f"add element ip svcnet s {{ {big} }}\n")
        assert calls == ["library", "process"]
        assert "10.1.0.99" in runner.list_table("ip", "svcnet")
    finally:
        runner.close()


def test_without_the_library_everything_goes_through_the_process(netns: str) -> None:
    runner = NodeNft(netns, library="libsvcnet-no-such-library.so.1")
    assert runner.library is None
    runner.apply(TABLE)
    assert "set s" in runner.list_table("ip", "svcnet")
    runner.close()
