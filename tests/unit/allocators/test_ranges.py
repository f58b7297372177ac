"""Ranges and bands. Test addresses: service CIDRs 10.96.0.0/12 (kubeadm's) and small ones."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, strategies as st

from svcnet.allocators.bitmap import DENSE_LIMIT, Bitmap, SparseBitmap, new_bitmap
from svcnet.allocators.ranges import (
    AddressPool,
    PortRange,
    ServiceCIDR,
    node_port_static_size,
    parse_pools,
    service_cidr_static_size,
)


@pytest.mark.parametrize(
    ("cidr", "size", "static", "first", "last"),
    [
        pytest.param("10.96.0.0/12", 1048574, 256, "10.96.0.1", "10.111.255.254", id="kubeadm-/12"),
        pytest.param("10.0.0.0/16", 65534, 256, "10.0.0.1", "10.0.255.254", id="/16"),
        pytest.param("10.0.0.0/20", 4094, 256, "10.0.0.1", "10.0.15.254", id="/20"),
        pytest.param("10.0.0.0/24", 254, 16, "10.0.0.1", "10.0.0.254", id="/24"),
        pytest.param("10.0.0.0/25", 126, 16, "10.0.0.1", "10.0.0.126", id="/25"),
        pytest.param("10.0.0.0/28", 14, 0, "10.0.0.1", "10.0.0.14", id="/28-no-static-band"),
        # IPv6 keeps its all-ones address (upstream's IPAddress allocator, hostsPerNetwork).
        pytest.param("fd00::/108", (1 << 20) - 1, 256, "fd00::1", "fd00::f:ffff", id="ipv6-/108"),
        pytest.param("fd00::/120", 255, 16, "fd00::1", "fd00::ff", id="ipv6-/120"),
        pytest.param("fd00:10:96::/64", (1 << 64) - 1, 256, "fd00:10:96::1",
                     "fd00:10:96:0:ffff:ffff:ffff:ffff", id="ipv6-/64-whole"),
    ],
)
def test_service_cidr_sizes_and_bands(cidr: str, size: int, static: int, first: str,
                                      last: str) -> None:
    r = ServiceCIDR.parse(cidr)
    assert (r.size, r.static_size) == (size, static)
    assert r.item_at(0) == first
    assert r.item_at(r.size - 1) == last
    assert r.offset_of(first) == 0


def test_ipv6_service_cidr_shorter_than_64_refused() -> None:
    with pytest.raises(ValueError, match="shortest allowed prefix length for service CIDR is 64"):
        ServiceCIDR.parse("fd00::/63")


@pytest.mark.parametrize(
    ("item", "offset"),
    [
        pytest.param("10.96.0.0", None, id="network-address"),
        pytest.param("10.111.255.255", None, id="broadcast"),
        pytest.param("10.96.0.1", 0, id="first"),
        pytest.param("10.96.0.10", 9, id="dns"),
        pytest.param("10.112.0.1", None, id="outside"),
        pytest.param("fd00::1", None, id="other-family"),
        pytest.param("not-an-ip", None, id="garbage"),
    ],
)
def test_service_cidr_offsets(item: str, offset: int | None) -> None:
    assert ServiceCIDR.parse("10.96.0.0/12").offset_of(item) == offset


@pytest.mark.parametrize(
    ("size", "expected"),
    [(16, 0), (17, 16), (256, 16), (4096, 256), (1 << 20, 256)],
)
def test_kep3070_static_band(size: int, expected: int) -> None:
    assert service_cidr_static_size(size) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [(16, 0), (17, 16), (2768, 86), (10000, 128)],
)
def test_kep3668_static_band(size: int, expected: int) -> None:
    assert node_port_static_size(size) == expected


def test_default_node_port_range() -> None:
    r = PortRange.parse("30000-32767")
    assert (r.size, r.static_size) == (2768, 86)
    assert r.offset_of("30000") == 0 and r.offset_of("32767") == 2767
    assert r.offset_of("29999") is None and r.offset_of("32768") is None
    assert r.describe() == "30000-32767"


@pytest.mark.parametrize("text", ["30000", "3-2", "0-10", "1-70000", "a-b"])
def test_bad_port_ranges(text: str) -> None:
    with pytest.raises(ValueError):
        PortRange.parse(text)


def test_address_pool_ranges_and_cidrs() -> None:
    pool = AddressPool.parse("lan=172.20.0.200-172.20.0.202,192.168.9.0/31")
    assert pool.name == "lan"
    assert pool.size == 5
    assert [pool.item_at(i) for i in range(5)] == [
        "172.20.0.200", "172.20.0.201", "172.20.0.202", "192.168.9.0", "192.168.9.1"]
    assert pool.offset_of("192.168.9.1") == 4
    assert pool.offset_of("172.20.0.203") is None
    assert list(pool.family_spans("IPv4")) == [range(0, 3), range(3, 5)]
    assert list(pool.family_spans("IPv6")) == []


@pytest.mark.parametrize(
    "specs",
    [
        pytest.param(["a=10.0.0.1-10.0.0.9", "b=10.0.0.5-10.0.0.20"], id="overlap"),
        pytest.param(["a=10.0.0.1-10.0.0.9", "a=10.0.1.1-10.0.1.9"], id="duplicate-name"),
        pytest.param(["10.0.0.9-10.0.0.1"], id="reversed"),
        pytest.param(["10.0.0.1-fd00::1"], id="mixed-family"),
    ],
)
def test_bad_pools(specs: list[str]) -> None:
    with pytest.raises(ValueError):
        parse_pools(specs)


BITMAPS = [pytest.param(Bitmap, id="dense"), pytest.param(SparseBitmap, id="sparse")]


@pytest.mark.parametrize("make", BITMAPS)
def test_bitmap_prefers_dynamic_band_then_static(make: type[Bitmap | SparseBitmap]) -> None:
    rng = random.Random(1)
    bm = make(32)
    got = []
    for _ in range(32):
        off = bm.next_free(16, rng)
        assert off is not None
        bm.set(off)
        got.append(off)
    assert sorted(got[:16]) == list(range(16, 32)), "dynamic band first"
    assert sorted(got[16:]) == list(range(16)), "static band only when dynamic is full"
    assert bm.next_free(16, rng) is None
    assert bm.free() == 0 and len(bm) == 32


@pytest.mark.parametrize("make", BITMAPS)
def test_bitmap_lowest_first_and_allowed_span(make: type[Bitmap | SparseBitmap]) -> None:
    bm = make(10)
    bm.set(0)
    assert bm.next_free(0, random.Random(), lowest_first=True) == 1
    assert bm.next_free(0, random.Random(), allowed=range(5, 7)) == 5
    bm.set(5)
    bm.set(6)
    assert bm.next_free(0, random.Random(), allowed=range(5, 7)) is None
    assert sorted(bm) == [0, 5, 6]
    assert bm.clear(5) and not bm.clear(5)


@pytest.mark.parametrize("make", BITMAPS)
def test_bitmap_random_start_spreads(make: type[Bitmap | SparseBitmap]) -> None:
    rng = random.Random(7)
    firsts = {make(1000).next_free(16, rng) for _ in range(50)}
    assert len(firsts) > 40, "random start inside the dynamic band"
    assert all(f is not None and f >= 16 for f in firsts)


@given(size=st.integers(1, 70), static=st.integers(0, 70), seed=st.integers(0, 2**32),
       ops=st.lists(st.tuples(st.sampled_from(["set", "clear", "next", "allowed"]),
                              st.integers(0, 69), st.integers(0, 69)), max_size=80))
def test_dense_and_sparse_bitmaps_answer_alike(size: int, static: int, seed: int,
                                               ops: list[tuple[str, int, int]]) -> None:
    """The bytearray bit string and the set agree on every answer, across byte edges and
    partial last bytes (sizes not a multiple of 8), with the same random choices."""
    dense, sparse = Bitmap(size), SparseBitmap(size)
    rd, rs = random.Random(seed), random.Random(seed)
    static = min(static, size)
    for op, a, b in ops:
        if op == "set" and a < size:
            assert dense.set(a) == sparse.set(a)
        elif op == "clear":
            assert dense.clear(a) == sparse.clear(a)
        elif op == "next":
            assert dense.next_free(static, rd) == sparse.next_free(static, rs)
        elif op == "allowed":
            lo, hi = min(a, b, size), min(max(a, b), size)
            assert (dense.next_free(0, rd, allowed=range(lo, hi))
                    == sparse.next_free(0, rs, allowed=range(lo, hi)))
        assert len(dense) == len(sparse) and dense.free() == sparse.free()
    assert list(dense) == list(sparse)
    assert [dense.has(o) for o in range(-1, size + 1)] == [sparse.has(o)
                                                           for o in range(-1, size + 1)]
    assert list(dense.copy()) == list(dense)


def test_sparse_bitmap_for_a_whole_ipv6_64() -> None:
    """A /64 (2^64 - 1 offsets) is served whole: random offsets over the dynamic band, the
    taken ones skipped, the copy independent; a bit string is only used for small ranges."""
    size = ServiceCIDR.parse("fd00::/64").size
    bm = new_bitmap(size)
    assert isinstance(bm, SparseBitmap) and isinstance(new_bitmap(DENSE_LIMIT), Bitmap)
    rng = random.Random(5)
    offsets = [bm.next_free(256, rng) for _ in range(20)]
    assert all(o is not None and 256 <= o < size for o in offsets)
    assert max(o for o in offsets if o is not None) > 1 << 60, "spread over the whole /64"
    bm.set(size - 1)
    copy = bm.copy()
    copy.set(size - 2)
    assert bm.has(size - 1) and not bm.has(size - 2) and bm.free() == size - 1
    # The scan wraps from the top of the band to its bottom.
    assert copy._scan(size - 2, size, size - 2) is None
    assert copy._scan(size - 3, size, size - 2) == size - 3
