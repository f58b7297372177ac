"""Pure decisions of the scheduler and the node controllers (lifecycle, pod CIDR set)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from svcnet.controllers.nodes import CIDRSet, pods_to_mark_not_ready, stale_nodes
from svcnet.controllers.scheduler import choose_node, needs_scheduling

Obj = dict[str, Any]
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def node(name: str, *, ready: str = "True", labels: dict[str, str] | None = None,
         unschedulable: bool = False, taints: list[Obj] | None = None,
         heartbeat: datetime | None = None) -> Obj:
    cond: Obj = {"type": "Ready", "status": ready}
    if heartbeat is not None:
        cond["lastHeartbeatTime"] = heartbeat.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"metadata": {"name": name, "labels": labels or {},
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"unschedulable": unschedulable, "taints": taints or []},
            "status": {"conditions": [cond]}}


def pod(selector: dict[str, str] | None = None, tolerations: list[Obj] | None = None,
        **spec: Any) -> Obj:
    return {"metadata": {"name": "p", "namespace": "default"},
            "spec": {"nodeSelector": selector or {}, "tolerations": tolerations or [], **spec},
            "status": {"phase": "Pending"}}


@pytest.mark.parametrize(
    ("the_pod", "nodes", "counts", "expected", "reason"),
    [
        pytest.param(pod(), [node("a"), node("b")], {"a": 2, "b": 1}, "b", "",
                     id="fewest-pods"),
        pytest.param(pod(), [node("b"), node("a")], {}, "a", "", id="tie-by-name"),
        pytest.param(pod(), [node("a", ready="False"), node("b")], {"b": 9}, "b", "",
                     id="skips-not-ready"),
        pytest.param(pod({"disk": "ssd"}), [node("a"), node("b", labels={"disk": "ssd"})],
                     {"b": 5}, "b", "", id="node-selector"),
        pytest.param(pod(), [node("a", unschedulable=True)], {}, None,
                     "0/1 nodes are available: 1 node(s) were unschedulable.",
                     id="unschedulable"),
        pytest.param(pod(), [node("a", taints=[{"key": "k", "effect": "NoSchedule"}])], {},
                     None, "0/1 nodes are available: 1 node(s) had untolerated taint.",
                     id="taint"),
        pytest.param(pod(tolerations=[{"key": "k", "operator": "Exists"}]),
                     [node("a", taints=[{"key": "k", "effect": "NoSchedule"}])], {}, "a", "",
                     id="tolerated-taint"),
        pytest.param(pod({"x": "y"}), [node("a"), node("b", ready="Unknown")], {}, None,
                     "0/2 nodes are available: 1 node(s) didn't match Pod's node "
                     "affinity/selector, 1 node(s) were not ready.", id="reasons-counted"),
        pytest.param(pod(), [], {}, None, "0/0 nodes are available.", id="no-nodes"),
    ],
)
def test_choose_node(the_pod: Obj, nodes: list[Obj], counts: dict[str, int],
                     expected: str | None, reason: str) -> None:
    decision = choose_node(the_pod, nodes, counts)
    assert (decision.node, decision.reason) == (expected, reason)


@pytest.mark.parametrize(
    ("the_pod", "expected"),
    [
        pytest.param(pod(), True, id="pending-unbound"),
        pytest.param(pod(nodeName="a"), False, id="bound"),
        pytest.param({**pod(), "status": {"phase": "Succeeded"}}, False, id="terminal"),
        pytest.param({**pod(), "metadata": {"name": "p", "deletionTimestamp": "x"}}, False,
                     id="terminating"),
        pytest.param(pod(schedulerName="other"), False, id="other-scheduler"),
    ],
)
def test_needs_scheduling(the_pod: Obj, expected: bool) -> None:
    assert needs_scheduling(the_pod) is expected


def lease(name: str, renew: datetime) -> Obj:
    return {"metadata": {"name": name},
            "spec": {"renewTime": renew.strftime("%Y-%m-%dT%H:%M:%S.000000Z")}}


@pytest.mark.parametrize(
    ("nodes", "leases", "expected"),
    [
        pytest.param([node("a")], {"a": lease("a", NOW - timedelta(seconds=10))}, [],
                     id="fresh-lease"),
        pytest.param([node("a")], {"a": lease("a", NOW - timedelta(seconds=41))}, ["a"],
                     id="stale-lease"),
        pytest.param([node("a", ready="Unknown")], {"a": lease("a", NOW - timedelta(hours=1))},
                     [], id="already-unknown"),
        pytest.param([node("a", heartbeat=NOW - timedelta(seconds=50))], {}, ["a"],
                     id="no-lease-uses-heartbeat"),
        pytest.param([node("a", heartbeat=NOW - timedelta(seconds=5))], {}, [],
                     id="no-lease-fresh-heartbeat"),
    ],
)
def test_stale_nodes(nodes: list[Obj], leases: dict[str, Obj], expected: list[str]) -> None:
    assert stale_nodes(nodes, leases, NOW, timedelta(seconds=40)) == expected


def test_cidr_set_indexes() -> None:
    r = CIDRSet("10.244.0.0/16")
    assert r.size == 256
    assert r.subnet(1) == "10.244.1.0/24" and r.subnet(255) == "10.244.255.0/24"
    assert r.index_of("10.244.7.0/24") == 7
    assert r.index_of("10.244.0.0/24") is None, "node i owns 10.244.i.0/24; no node 0"
    for outside in ("10.245.0.0/24", "10.244.1.0/25", "10.244.1.1/24", "junk"):
        assert r.index_of(outside) is None
    with pytest.raises(ValueError):
        CIDRSet("10.244.0.0/24", 16)


def test_cidr_set_hands_out_each_subnet_once_and_wraps() -> None:
    r = CIDRSet("10.244.0.0/22")  # subnets 1..3 can be handed out
    assert r.occupy("10.244.2.0/24")
    assert not r.occupy("10.245.0.0/24")
    assert [r.allocate_next(), r.allocate_next()] == ["10.244.1.0/24", "10.244.3.0/24"]
    assert r.allocate_next() is None
    r.release("10.244.1.0/24")
    assert r.allocate_next() == "10.244.1.0/24"
    assert r.allocate_next() is None


def test_pods_on_lost_nodes_are_marked_not_ready_again() -> None:
    def node(name: str, ready: str) -> Obj:
        return {"metadata": {"name": name},
                "status": {"conditions": [{"type": "Ready", "status": ready}]}}

    def pod(name: str, node_name: str, ready: str) -> Obj:
        return {"metadata": {"name": name}, "spec": {"nodeName": node_name},
                "status": {"conditions": [{"type": "Ready", "status": ready}]}}

    nodes = [node("lost", "Unknown"), node("going", "True"), node("fine", "True")]
    pods = [pod("a", "lost", "True"),      # turned Ready again on a lost node: marked again
            pod("b", "lost", "False"),     # already marked: no write
            pod("c", "going", "True"),     # its node is being marked in this pass
            pod("d", "fine", "True"),
            {"metadata": {"name": "e"}, "spec": {"nodeName": "lost"}}]  # no status yet
    marked = pods_to_mark_not_ready(nodes, pods, ["going"])
    assert [p["metadata"]["name"] for p in marked] == ["a", "c"]
