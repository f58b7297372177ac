"""Integration tests share the e2e API-server fixture (a real `svcnet server` process), and a
scratch network namespace for nftables (``svcnet-t5-l<random>``, always deleted)."""

import secrets
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import require_binary, require_root
from tests.e2e.conftest import cluster
from tests.waiting import run

__all__ = ["cluster", "netns"]


@pytest.fixture
def netns() -> Iterator[str]:
    require_root()
    require_binary("nft")
    name = f"svcnet-t5-l{secrets.token_hex(2)}"
    run(["ip", "netns", "add", name])
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
