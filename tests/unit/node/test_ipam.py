"""Pod IP allocation: reserved addresses, next-fit, idempotence, persistence, bad state.

Test address plan: a node's pod CIDR is 10.244.1.0/24 (gateway .1), or the tiny
10.244.9.0/29 (.2-.6 usable) when exhaustion matters.
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import threading
from ipaddress import IPv4Interface, IPv6Network
from pathlib import Path
from typing import Any

import pytest

from svcnet.node.ipam import IPAMExhausted, IPAMStateError, PodIPAM, api_pod_ips
from svcnet.util.ipfamily import IPFamilies


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "node" / "ipam.json"


def test_first_address_skips_network_and_gateway(state: Path) -> None:
    ipam = PodIPAM("10.244.1.0/24", state)
    assert ipam.gateway == IPv4Interface("10.244.1.1/24")
    assert ipam.allocate("a") == IPv4Interface("10.244.1.2/24")
    assert ipam.capacity == 253


def test_allocate_is_idempotent_per_uid(state: Path) -> None:
    ipam = PodIPAM("10.244.1.0/24", state)
    first = ipam.allocate("a")
    assert ipam.allocate("a") == first
    assert ipam.allocations() == {"a": first}


def test_next_fit_delays_reuse_of_released_addresses(state: Path) -> None:
    ipam = PodIPAM("10.244.9.0/29", state)
    got = [ipam.allocate(u) for u in "abc"]
    assert [str(i.ip) for i in got] == ["10.244.9.2", "10.244.9.3", "10.244.9.4"]
    assert ipam.release("a") == IPv4Interface("10.244.9.2/29")
    # .2 is free again, but the search continues after the last address handed out.
    assert str(ipam.allocate("d").ip) == "10.244.9.5"
    assert str(ipam.allocate("e").ip) == "10.244.9.6"
    assert str(ipam.allocate("f").ip) == "10.244.9.2"  # wrapped around
    with pytest.raises(IPAMExhausted):
        ipam.allocate("g")


def test_release_unknown_is_none(state: Path) -> None:
    assert PodIPAM("10.244.1.0/24", state).release("nobody") is None


def test_restart_keeps_addresses_and_cursor(state: Path) -> None:
    ipam = PodIPAM("10.244.1.0/24", state)
    a, b = ipam.allocate("a"), ipam.allocate("b")
    ipam.release("a")
    again = PodIPAM("10.244.1.0/24", state)
    assert again.allocations() == {"b": b}
    assert again.get("a") is None
    assert again.allocate("a") != a  # the cursor survived too: no immediate reuse of .2
    assert json.loads(state.read_text())["version"] == 1
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    assert not list(state.parent.glob(".*.tmp"))


def test_retain_only_releases_the_rest(state: Path) -> None:
    ipam = PodIPAM("10.244.1.0/24", state)
    for uid in "abc":
        ipam.allocate(uid)
    assert ipam.retain_only({"b", "z"}) == ["a", "c"]
    assert set(PodIPAM("10.244.1.0/24", state).allocations()) == {"b"}


@pytest.mark.parametrize(("content", "match"), [
    pytest.param("{not json", "not a valid IPAM state", id="garbage"),
    pytest.param('{"version": 2}', "unknown version", id="future-version"),
    pytest.param('{"version": 1, "cidr": "10.244.2.0/24", "allocations": {}}',
                 "not 10.244.1.0/24", id="other-cidr"),
    pytest.param('{"version": 1, "cidr": "10.244.1.0/24", "allocations": {"10.244.1.1": "a"}}',
                 "bad allocation", id="gateway-allocated"),
    pytest.param('{"version": 1, "cidr": "10.244.1.0/24", '
                 '"allocations": {"10.244.1.2": "a", "10.244.1.3": "a"}}',
                 "bad allocation", id="uid-twice"),
    pytest.param('{"version": 1, "cidr": "10.244.1.0/24", "allocations": {"x": "a"}}',
                 "not a valid IPAM state", id="bad-address"),
])
def test_bad_state_is_an_error_not_a_fresh_start(state: Path, content: str, match: str) -> None:
    state.parent.mkdir(parents=True)
    state.write_text(content)
    with pytest.raises(IPAMStateError, match=match):
        PodIPAM("10.244.1.0/24", state)


def test_failed_write_allocates_nothing(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ipam = PodIPAM("10.244.1.0/24", state)

    def broken(path: Path, text: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("svcnet.node.ipam.atomic_write", broken)
    with pytest.raises(OSError):
        ipam.allocate("a")
    assert ipam.allocations() == {}
    monkeypatch.undo()
    assert str(ipam.allocate("a").ip) == "10.244.1.2"


def test_tiny_cidr_refused(state: Path) -> None:
    with pytest.raises(ValueError):
        PodIPAM("10.244.1.0/31", state)


def test_other_gateway_is_never_handed_out(state: Path) -> None:
    ipam = PodIPAM("10.244.9.0/29", state, gateway="10.244.9.2")
    assert ipam.gateway == IPv4Interface("10.244.9.2/29")
    got = {str(ipam.allocate(u).ip) for u in "abcde"}
    assert got == {"10.244.9.1", "10.244.9.3", "10.244.9.4", "10.244.9.5", "10.244.9.6"}
    with pytest.raises(ValueError):
        PodIPAM("10.244.9.0/29", state, gateway="10.244.9.7")  # broadcast


# --- several writers --------------------------------------------------------------------------


def test_instances_share_the_file(state: Path) -> None:
    """Each change re-reads the file under the lock; queries notice a newer file."""
    a, b = PodIPAM("10.244.1.0/24", state), PodIPAM("10.244.1.0/24", state)
    ip_a = a.allocate("sandbox-a")
    ip_b = b.allocate("sandbox-b")  # b had not seen a's allocation
    assert ip_a != ip_b
    assert a.get("sandbox-b") == ip_b
    assert a.release("sandbox-b") == ip_b
    assert b.get("sandbox-b") is None
    b.allocate("pod-uid-c")
    assert a.retain_only(["sandbox-a", "pod-uid-c"]) == []  # a keeps what b added
    assert set(PodIPAM("10.244.1.0/24", state).allocations()) == {"sandbox-a", "pod-uid-c"}
    # Next-fit continues from the last address anyone handed out.
    assert int(a.allocate("d").ip) == int(b.get("pod-uid-c").ip) + 1  # type: ignore[union-attr]


def test_changes_wait_for_the_lock(state: Path) -> None:
    ipam = PodIPAM("10.244.1.0/24", state)
    state.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(state.with_name("ipam.json.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process, as far as flock is concerned
    done = threading.Event()

    def allocate() -> None:
        ipam.allocate("a")
        done.set()

    worker = threading.Thread(target=allocate)
    worker.start()
    try:
        assert not done.wait(0.3)
        assert not state.exists()
    finally:
        os.close(fd)
    worker.join(5)
    assert done.is_set() and ipam.get("a") is not None


def _allocate_many(state: str, prefix: str, count: int, start: Any) -> list[str]:
    ipam = PodIPAM("10.244.1.0/24", Path(state))
    start.wait()
    return [str(ipam.allocate(f"{prefix}-{i}").ip) for i in range(count)]


def test_concurrent_processes_never_share_an_address(state: Path) -> None:
    workers, each = 4, 25
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(workers) as pool:
            pending = [pool.apply_async(_allocate_many, (str(state), f"p{w}", each, start))
                       for w in range(workers)]
            start.set()
            results = [r.get(timeout=60) for r in pending]
    addresses = [ip for result in results for ip in result]
    assert len(addresses) == len(set(addresses)) == workers * each
    on_disk = json.loads(state.read_text())["allocations"]
    assert set(on_disk) == set(addresses)
    assert len(set(on_disk.values())) == workers * each


def test_api_pod_ips_per_family() -> None:
    ip, cidr6 = IPv4Interface("10.244.1.7/24"), IPv6Network("fd00:10:244:1::/64")
    assert api_pod_ips(ip, cidr6, IPFamilies("dual")) == ["10.244.1.7", "fd00:10:244:1::7"]
    assert api_pod_ips(ip, cidr6, IPFamilies("ipv6")) == ["fd00:10:244:1::7"]
    assert api_pod_ips(ip, cidr6, IPFamilies("ipv4")) == ["10.244.1.7"]
    assert api_pod_ips(ip, None, IPFamilies("dual")) == ["10.244.1.7"]
    # An IPv6 node without an IPv6 subnet (misconfigured) still shows the only address.
    assert api_pod_ips(ip, None, IPFamilies("ipv6")) == ["10.244.1.7"]
