"""Go's slice idioms behind strategic merge patch (svcnet.apiserver.patch.golists), and that a
patch of many list items costs O(n log n), not the O(n²)..O(n³) of a literal port.

The ``sort.SliceStable`` permutations below were produced by Go 1.19's ``sort.SliceStable``
with normalizeSliceOrder's comparator (items with no place sort "less" than anything); the
naive ``deduplicateScalars`` here is upstream's nested loop, the reference for the indexed one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.apiserver.patch import strategic_merge_patch
from svcnet.apiserver.patch.golists import (
    GoPanic,
    Positions,
    deduplicate,
    slice_stable,
    sort_by_position,
)

GO_SLICE_STABLE = [
    # (place of each item, -1 when missing from the order list) → Go's permutation
    ([4, 1, 5, 9, -1, 0, 7, 0, 4, 8, -1, 7, 2, -1, 0, 5, 5, 0, 2, 0, 7, 5, -1, 8, 0, 2, 9, 9,
      8, -1, 8, 8, 5, -1, 2, -1, 7, 1, 3, 5, 1, 7, 0, 8, 3, 7, 9, 1, 0, 8],
     [35, 33, 29, 13, 10, 5, 7, 14, 17, 19, 24, 42, 48, 37, 40, 4, 1, 47, 12, 18, 25, 34, 38,
      44, 41, 22, 0, 8, 2, 15, 16, 21, 32, 39, 6, 11, 20, 36, 45, 9, 23, 28, 30, 31, 43, 49, 3,
      26, 27, 46]),
    ([0, 37, 14, -1, 28, 5, 42, 19, 56, 33, -1, 47, 24, 1, 38, 15, 52, -1, 6, 43, 20, 57, 34,
      11, -1, 25, 2, 39, 16, 53, 30, -1, 44, 21, 58, 35, 12, 49, -1, 3, 40, 17, 54, 31, 8, -1,
      22, 59, 36, 13, 50, 27, -1, 41, 18, 55, 32, 9, 46, -1],
     [59, 52, 45, 38, 31, 26, 39, 44, 57, 24, 23, 36, 49, 28, 41, 20, 33, 17, 10, 3, 0, 13, 5,
      18, 2, 15, 54, 7, 46, 12, 25, 51, 4, 30, 43, 56, 9, 22, 35, 48, 1, 14, 27, 40, 53, 6, 19,
      32, 58, 11, 37, 50, 16, 29, 42, 55, 8, 21, 34, 47]),
    ([-1] * 45, list(range(44, -1, -1))),
]


@pytest.mark.parametrize(("places", "expected"), GO_SLICE_STABLE)
def test_sort_by_position_is_go_slice_stable_even_for_an_inconsistent_comparator(
        places: list[int], expected: list[int]) -> None:
    assert sort_by_position(list(range(len(places))), places) == expected


def test_slice_stable_with_a_strict_weak_order_is_a_stable_sort() -> None:
    rng = random.Random(3)
    for n in (0, 1, 19, 20, 21, 40, 41, 333):
        keys = [rng.randrange(7) for _ in range(n)]
        items = list(range(n))

        def less(a: int, b: int, k: list[int] = keys) -> bool:
            return k[a] < k[b]

        assert slice_stable(items, less) == sorted(items, key=keys.__getitem__)
        assert sort_by_position(items, keys) == sorted(items, key=keys.__getitem__)


def test_sort_by_position_raises_the_panic_where_go_evaluates_it() -> None:
    panic = GoPanic("runtime error: comparing uncomparable type map[string]interface {}")
    # One item: Go's sort compares nothing, so nothing panics.
    assert sort_by_position(["a"], [panic]) == ["a"]
    with pytest.raises(GoPanic):
        sort_by_position(["a", "b"], [0, panic])


def _go_deduplicate(s: list[Any]) -> list[Any]:
    """Upstream's deduplicateScalars, literally (the quadratic reference)."""
    s = list(s)
    length = len(s) - 1
    i = 0
    while i < length:
        j = i + 1
        while j <= length:
            if s[i] == s[j]:
                s[j] = s[length]
                s = s[:length]
                length -= 1
                j -= 1
            j += 1
        i += 1
    return s


def test_deduplicate_matches_upstreams_loop() -> None:
    rng = random.Random(5)
    for _ in range(3000):
        s = [rng.randrange(rng.choice([2, 5, 40])) for _ in range(rng.randrange(50))]
        assert deduplicate(s, lambda v: v) == _go_deduplicate(s)


def test_positions_answer_like_a_first_match_scan_with_go_equality() -> None:
    at = Positions(enumerate(["a", 1, 1.0, True, {"k": 1}, "a", None]))
    assert at.first("a") == 0
    assert at.first(1) == 1  # int64(1)
    assert at.first(1.0) == 2  # float64(1) is another value
    assert at.first(True) == 3
    assert at.first(None) == 6
    assert at.first("z") == -1
    assert at.first([1]) == -1  # a slice among no slices: merely unequal
    with pytest.raises(GoPanic, match="comparing uncomparable type map"):
        at.first({"k": 1})
    assert at.take("a") == [0, 5]
    assert at.first("a") == -1


def _ports(n: int, target: int) -> list[dict[str, Any]]:
    return [{"name": f"p{i}", "port": i % 65535 + 1,
             "protocol": "TCP" if i < 65535 else "UDP", "targetPort": target}
            for i in range(n)]


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def test_strategic_merge_of_a_long_list_is_not_quadratic() -> None:
    """20,000 Service ports, each patched, some deleted, reordered by $setElementOrder: a
    literal port needed ~10^12 steps for this (hours); linear work takes well under a second.
    The bound is loose on purpose (a loaded CI machine)."""
    n = 20_000
    live = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": _ports(n, 80)}}
    ports = _ports(n, 8080)
    order = [{"port": p["port"], "protocol": p["protocol"]} for p in reversed(ports)]
    patch = {"spec": {"$setElementOrder/ports": order,
                      "ports": [*ports[::-1][:n - 10],
                                *({"$patch": "delete", "port": p["port"]}
                                  for p in ports[:10])]}}
    out, seconds = _timed(lambda: strategic_merge_patch(live, patch, "v1", "Service"))
    got = out["spec"]["ports"]
    assert len(got) == n - 10
    assert got[0]["name"] == f"p{n - 1}" and got[-1]["name"] == "p10"
    assert {p["targetPort"] for p in got} == {8080}
    assert seconds < 30, f"{seconds:.1f} s for {n} items"


def test_strategic_merge_of_many_duplicate_scalars_is_not_quadratic() -> None:
    n = 100_000
    live = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p",
                                                             "finalizers": ["a/x"]}}
    patch = {"metadata": {"finalizers": [f"a/{i % 1000}" for i in range(n)]}}
    out, seconds = _timed(lambda: strategic_merge_patch(live, patch, "v1", "Pod"))
    assert sorted(out["metadata"]["finalizers"]) == sorted(
        {"a/x", *(f"a/{i}" for i in range(1000))})
    assert seconds < 30, f"{seconds:.1f} s for {n} items"


def test_strategic_merge_still_reports_an_uncomparable_merge_key() -> None:
    live = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": {"a": 1}, "image": "x"}]}}
    with pytest.raises(StatusError) as e:
        strategic_merge_patch(live, {"spec": {"containers": [{"name": {"b": 2}}]}}, "v1",
                              "Pod")
    assert (e.value.code, e.value.message) == (
        500, "runtime error: comparing uncomparable type map[string]interface {}")
