"""The cluster identity shared through the store: published by the first server, adopted by
the next, one winner when two start at once, and token lines exchanged both ways."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cryptography import x509

from svcnet.apiserver.certs import ensure_ca, ensure_tls, ensure_token
from svcnet.apiserver.identity import (
    IDENTITY_KEY,
    SHARED_FILES,
    IdentityConflict,
    join_cluster,
    merge_tokens,
    plan_adoption,
    sync_tokens,
)
from svcnet.storage.interface import KeyValue
from svcnet.storage.memory import MemoryStore


def contents(data_dir: Path) -> dict[str, str]:
    return {name: (data_dir / name).read_text() for name in SHARED_FILES}


async def test_the_first_server_publishes_its_existing_files_unchanged(tmp_path: Path) -> None:
    first = tmp_path / "first"
    ensure_ca(first)
    token = ensure_token(first / "admin.token")
    before = {n: (first / n).read_text() for n in ("pki/ca.crt", "pki/ca.key")}
    store = MemoryStore()
    await join_cluster(store, first)
    assert {n: (first / n).read_text() for n in before} == before
    assert (first / "admin.token").read_text().strip() == token
    assert await store.get(IDENTITY_KEY) is not None

    joiner = tmp_path / "joiner"
    await join_cluster(store, joiner)
    assert contents(joiner) == contents(first)
    assert (joiner / "pki" / "ca.key").stat().st_mode & 0o077 == 0


async def test_a_data_directory_of_another_cluster_is_refused_untouched(tmp_path: Path) -> None:
    store = MemoryStore()
    await join_cluster(store, tmp_path / "a")
    other = tmp_path / "other"
    ensure_ca(other)
    ca = (other / "pki" / "ca.crt").read_text()
    with pytest.raises(IdentityConflict, match=r"pki/ca\.crt"):
        await join_cluster(store, other)
    assert (other / "pki" / "ca.crt").read_text() == ca


class RacyStore(MemoryStore):
    """Both starting servers read "no identity" before either writes it."""

    def __init__(self) -> None:
        super().__init__()
        self.barrier = asyncio.Barrier(2)
        self.first_reads = 0

    async def get(self, key: str) -> KeyValue | None:
        if key == IDENTITY_KEY and self.first_reads < 2:
            self.first_reads += 1
            await self.barrier.wait()
        return await super().get(key)


async def test_two_servers_starting_at_once_end_with_one_ca(tmp_path: Path) -> None:
    store = RacyStore()
    a, b = tmp_path / "a", tmp_path / "b"
    await asyncio.gather(join_cluster(store, a), join_cluster(store, b))
    assert contents(a) == contents(b)
    for d in (a, b):
        files = ensure_tls(d, ["127.0.0.1"])
        ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
        x509.load_pem_x509_certificate(files.cert.read_bytes()).verify_directly_issued_by(ca)


def test_only_files_made_in_this_start_may_be_replaced() -> None:
    stored = {"pki/ca.crt": "A", "admin.token": "t"}
    assert plan_adoption(stored, {"pki/ca.crt": None, "admin.token": "t"},
                         frozenset()) == {"pki/ca.crt": "A"}
    assert plan_adoption(stored, {"pki/ca.crt": "B", "admin.token": "t"},
                         frozenset({"pki/ca.crt"})) == {"pki/ca.crt": "A"}
    with pytest.raises(IdentityConflict):
        plan_adoption(stored, {"pki/ca.crt": "B", "admin.token": "t"}, frozenset())


def test_merge_tokens_keeps_order_and_adds_only() -> None:
    merged, missing = merge_tokens(("a", "b"), ["b", "c", "c"])
    assert merged == ("a", "b", "c")
    assert missing == ["a"]


async def test_token_lines_reach_every_server(tmp_path: Path) -> None:
    store = MemoryStore()
    a, b = tmp_path / "a", tmp_path / "b"
    await join_cluster(store, a)
    await join_cluster(store, b)
    (a / "tokens.csv").write_text("admin-token,admin,admin,system:masters\r\nnode1,n1,n1,\r\n")
    (b / "tokens.csv").write_text("node2,n2,n2,")  # no final newline
    for d in (a, b, a):
        await sync_tokens(store, d / "tokens.csv")
    lines_a = (a / "tokens.csv").read_text().splitlines()
    lines_b = (b / "tokens.csv").read_text().splitlines()
    assert sorted(lines_a) == sorted(lines_b) == sorted(
        ["admin-token,admin,admin,system:masters", "node1,n1,n1,", "node2,n2,n2,"])
