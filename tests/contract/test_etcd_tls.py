"""The etcd store over TLS, against real etcd members that require client certificates
(certificates from `svcnet etcd-certs`, as docs/HA.md sets a cluster up).

Each member's certificate names its own loopback address only (127.0.0.2, .3, .4), so a
store that checked a member against another member's name, as one gRPC channel over every
address does (storage/etcd.py, "Endpoints"), would be refused by every member but the
first: losing the first member would lose the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from svcnet.apiserver.certs import EtcdMember, ensure_etcd_pki
from svcnet.storage import EtcdTLS, open_store
from svcnet.storage.etcd import EtcdStore
from svcnet.storage.interface import EventType, StorageError, Unavailable
from tests.conftest import require_binary
from tests.etcd_server import EtcdCluster

TIMEOUT = 10.0


@pytest.fixture
def cluster() -> Iterator[EtcdCluster]:
    require_binary("etcd")
    members = EtcdCluster(3, tls=True)
    members.start()
    try:
        yield members
    finally:
        members.stop()


def etcd_store(url: str, tls: EtcdTLS | None) -> EtcdStore:
    store = open_store(url, etcd_tls=tls)
    assert isinstance(store, EtcdStore)
    return store


def tls_of(cluster: EtcdCluster) -> EtcdTLS:
    assert cluster.tls is not None
    return cluster.tls


async def until_served(store: EtcdStore, key: str) -> int:
    """Create ``key``, retrying while the store moves off a failed member; the failures."""
    failures = 0
    while True:
        try:
            await store.create(key, b"x")
            return failures
        except Unavailable:
            failures += 1
            assert failures < 5, "the store did not move on to a live member"


async def test_tls_store_reads_writes_watches_and_moves_past_a_dead_member(
        cluster: EtcdCluster) -> None:
    store = etcd_store(f"etcd://{cluster.endpoints}/svcnet-tls?timeout=2", tls_of(cluster))
    try:
        first = await store.create("svc/a", b"1")
        assert await store.get("svc/a") == first
        watch = store.watch("svc/", first.mod_revision)
        await store.create("svc/b", b"2")
        event = await asyncio.wait_for(anext(watch), TIMEOUT)
        assert (event.type, event.kv.key) == (EventType.ADDED, "svc/b")

        cluster.kill(0)  # the member the store talks to: the next go to 127.0.0.3's
        with pytest.raises(Unavailable):
            await asyncio.wait_for(anext(watch), TIMEOUT)  # a watch ends, not resumed silently
        await asyncio.wait_for(until_served(store, "svc/c"), TIMEOUT * 5)
        assert [kv.key for kv in (await store.list("svc/")).items] == ["svc/a", "svc/b", "svc/c"]
        rewatch = store.watch("svc/", await store.current_revision())
        await store.create("svc/d", b"4")
        event = await asyncio.wait_for(anext(rewatch), TIMEOUT)
        assert (event.type, event.kv.key) == (EventType.ADDED, "svc/d")
        await rewatch.aclose()
    finally:
        await store.close()

    # A store opened while the first member is down tries the next ones.
    late = etcd_store(f"etcd://{cluster.endpoints}/svcnet-tls?timeout=2", tls_of(cluster))
    try:
        await asyncio.wait_for(late.open(), TIMEOUT)
        assert [kv.key for kv in (await late.list("svc/")).items] == [
            "svc/a", "svc/b", "svc/c", "svc/d"]
    finally:
        await late.close()


async def refused(cluster: EtcdCluster, tls: EtcdTLS | None) -> str:
    """Opening a store on the first member with ``tls`` fails as Unavailable: its message."""
    endpoint = cluster.endpoints.split(",")[0]
    store = etcd_store(f"etcd://{endpoint}/svcnet-tls?timeout=2", tls)
    try:
        with pytest.raises(Unavailable) as info:
            await asyncio.wait_for(store.open(), TIMEOUT)
        return str(info.value)
    finally:
        await store.close()


async def test_members_refuse_a_store_without_the_client_certificate(
        cluster: EtcdCluster) -> None:
    message = await refused(cluster, EtcdTLS(ca_file=tls_of(cluster).ca_file))
    assert message.startswith(f"cannot reach etcd at {cluster.endpoints.split(',')[0]}")
    assert "no client certificate given" in message  # gRPC's own reason names no cause
    # Plain gRPC to a TLS member: refused the same way.
    message = await refused(cluster, None)
    assert message.startswith("cannot reach etcd") and "--etcd-cafile" in message


async def test_a_member_whose_certificate_another_ca_signed_is_refused(
        cluster: EtcdCluster, tmp_path: Path) -> None:
    ensure_etcd_pki(tmp_path / "other", [EtcdMember("x", ("127.0.0.2",))])
    message = await refused(cluster, replace(tls_of(cluster), ca_file=tmp_path / "other/ca.crt"))
    assert "cannot reach etcd" in message and "certificate" in message


async def test_unreadable_tls_files_are_a_clear_error(tmp_path: Path) -> None:
    store = etcd_store("etcd://127.0.0.1:1/svcnet", EtcdTLS(ca_file=tmp_path / "missing.crt"))
    try:
        with pytest.raises(StorageError, match=r"cannot read the etcd CA file .*missing\.crt"):
            await store.open()
    finally:
        await store.close()


def test_tls_flags_are_for_etcd_stores_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="etcd:// store"):
        open_store(f"sqlite:///{tmp_path}/state.db", etcd_tls=EtcdTLS(ca_file=tmp_path / "ca"))
    with pytest.raises(ValueError, match="go together"):
        EtcdTLS(cert_file=tmp_path / "c.crt")
    assert EtcdTLS.from_flags(None, None, None) is None
