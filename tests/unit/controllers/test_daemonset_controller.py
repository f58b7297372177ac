"""DaemonSetController against the in-process API (never-started informers, ``sync`` called
directly) and its pure planner: one pod per eligible node, pinned by node affinity, default
tolerations, status counts, duplicates and vanished nodes, and the rolling update."""

from __future__ import annotations

import copy
from typing import Any

from svcnet.client.rest import NODES, PODS
from svcnet.controllers.daemonset import DaemonSetController, daemon_pod, plan, template_hash
from svcnet.controllers.ownership import CONTROLLERREVISIONS, DAEMONSETS
from svcnet.controllers.scheduler import choose_node
from tests.unit.controllers.test_replicaset_helpers import T0, Obj, World

Taint = dict[str, str]


def make_node(name: str, *, labels: dict[str, str] | None = None,
              taints: list[Taint] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  **(labels or {})}},
            "spec": {"taints": taints or []},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def make_ds(**spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "ns"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"containers": [{"name": "a", "image": "agent:1"}]}},
                     **spec}}


class Env(World):
    def __init__(self) -> None:
        super().__init__((PODS, DAEMONSETS, NODES, CONTROLLERREVISIONS))
        self.ctrl = DaemonSetController(self.api, daemonsets=self.informers[DAEMONSETS],
                                        pods=self.informers[PODS], nodes=self.informers[NODES],
                                        revisions=self.informers[CONTROLLERREVISIONS],
                                        clock=self.clock)

    async def ds(self) -> Obj:
        return await self.api.get(DAEMONSETS, "ns", "agent")

    async def bind_all(self) -> None:
        """The scheduler: bind each pending pod to the node its affinity pins it to."""
        nodes = await self.api.items(NODES)
        for pod in await self.pods():
            if pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                continue
            decision = choose_node(pod, nodes, {})
            assert decision.node is not None, decision.reason
            node: str = decision.node

            def bound(o: Obj, n: str = node) -> Obj:
                return {**o, "spec": {**o["spec"], "nodeName": n}}

            await self.api.registries[PODS].guaranteed_update("ns", pod["metadata"]["name"],
                                                              bound)

    async def live_pods(self) -> list[Obj]:
        return [p for p in await self.pods() if not p["metadata"].get("deletionTimestamp")]


async def _nodes(env: Env) -> None:
    await env.create(NODES, make_node("n1"))
    await env.create(NODES, make_node("n2", labels={"disk": "ssd"}))
    await env.create(NODES, make_node("n3", taints=[{"key": "gpu", "value": "yes",
                                                     "effect": "NoSchedule"}]))


async def test_one_pod_per_eligible_node_pinned_by_affinity() -> None:
    env = Env()
    await _nodes(env)
    await env.create(DAEMONSETS, make_ds())
    await env.ctrl.sync("ns/agent")
    pods = await env.pods()
    assert len(pods) == 2, "the tainted node n3 is not eligible"
    pinned = sorted(p["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchFields"][0]["values"][0] for p in pods)
    assert pinned == ["n1", "n2"]
    ds = await env.ds()
    for p in pods:
        assert p["metadata"]["labels"]["controller-revision-hash"] == template_hash(ds)
        assert p["metadata"]["labels"]["pod-template-generation"] == "1"
        assert {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                "effect": "NoExecute"} in p["spec"]["tolerations"]
        assert p["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    await env.bind_all()
    assert sorted(p["spec"]["nodeName"] for p in await env.pods()) == ["n1", "n2"]
    await env.catch_up(notify=True)
    await env.mark_ready()
    await env.catch_up(notify=True)
    await env.ctrl.sync("ns/agent")
    assert (await env.ds())["status"] == {
        "desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 2,
        "numberAvailable": 2, "updatedNumberScheduled": 2, "observedGeneration": 1,
        "numberMisscheduled": 0}  # non-omitempty: stored at zero, as Go writes it


async def test_node_selector_and_tolerations_choose_the_nodes() -> None:
    env = Env()
    await _nodes(env)
    ds = make_ds()
    ds["spec"]["template"]["spec"]["tolerations"] = [{"key": "gpu", "operator": "Exists"}]
    await env.create(DAEMONSETS, ds)
    await env.ctrl.sync("ns/agent")
    assert len(await env.pods()) == 3, "tolerating the taint makes n3 eligible"
    only_ssd = make_ds()
    only_ssd["metadata"]["name"] = "ssd"
    only_ssd["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    only_ssd["spec"]["selector"] = {"matchLabels": {"app": "ssd"}}
    only_ssd["spec"]["template"]["metadata"]["labels"] = {"app": "ssd"}
    await env.create(DAEMONSETS, only_ssd)
    await env.ctrl.sync("ns/ssd")
    ssd_pods = [p for p in await env.pods() if p["metadata"]["labels"]["app"] == "ssd"]
    assert len(ssd_pods) == 1


async def test_rolling_update_replaces_at_most_max_unavailable() -> None:
    env = Env()
    await _nodes(env)
    await env.create(DAEMONSETS, make_ds())
    await env.ctrl.sync("ns/agent")
    await env.bind_all()
    await env.mark_ready()
    await env.catch_up(notify=True)
    ds = await env.ds()
    ds["spec"]["template"]["spec"]["containers"][0]["image"] = "agent:2"
    await env.api.update(DAEMONSETS, ds)
    await env.catch_up(notify=True)
    await env.ctrl.sync("ns/agent")
    assert len(await env.live_pods()) == 1, "maxUnavailable 1: one old pod goes first"
    await env.catch_up(notify=True)
    await env.ctrl.sync("ns/agent")  # its node has none: a new pod, of the new revision
    new_hash = template_hash(await env.ds())
    hashes = sorted(p["metadata"]["labels"]["controller-revision-hash"]
                    for p in await env.live_pods())
    assert len(hashes) == 2 and new_hash in hashes
    assert (await env.ds())["metadata"]["annotations"][
        "deprecated.daemonset.template.generation"] == "2"


def test_plan_removes_duplicates_failed_pods_and_pods_of_vanished_nodes() -> None:
    ds = make_ds()
    ds["metadata"]["uid"] = "u1"
    nodes = [make_node("n1"), make_node("n2")]

    def pod(name: str, node: str, created: str, phase: str = "Running") -> Obj:
        p = copy.deepcopy(daemon_pod(ds, node))
        p["metadata"].update(name=name, creationTimestamp=created)
        p["spec"]["nodeName"] = node
        p["status"] = {"phase": phase}
        return p

    pods = [pod("old", "n1", "2026-01-01T00:00:00Z"), pod("dup", "n1", "2026-01-02T00:00:00Z"),
            pod("failed", "n2", "2026-01-01T00:00:00Z", "Failed"),
            pod("gone", "n9", "2026-01-01T00:00:00Z")]
    result = plan(ds, nodes, pods, T0)
    assert sorted(p["metadata"]["name"] for p in result.delete) == ["dup", "failed", "gone"]
    assert result.create_on == ["n2"]
    assert result.status["desiredNumberScheduled"] == 2
    assert result.status["numberUnavailable"] == 2


def test_a_heartbeat_is_no_reason_to_look_at_every_daemonset() -> None:
    from svcnet.controllers.daemonset import node_update_ignorable

    def node(rv: str, beat: str, ready: str = "True", **labels: str) -> dict[str, Any]:
        return {"metadata": {"name": "n1", "resourceVersion": rv, "labels": labels},
                "status": {"conditions": [{"type": "Ready", "status": ready,
                                           "lastHeartbeatTime": beat}]}}

    old = node("1", "2026-12-07T00:00:00Z")
    assert node_update_ignorable(old, node("2", "2026-12-07T00:00:10Z"))
    assert not node_update_ignorable(old, node("2", "2026-12-07T00:00:10Z", ready="False"))
    assert not node_update_ignorable(old, node("2", "2026-12-07T00:00:10Z", disk="ssd"))


async def test_each_template_gets_a_revision_whose_hash_the_pods_carry() -> None:
    env = Env()
    await _nodes(env)
    await env.create(DAEMONSETS, make_ds())
    await env.ctrl.sync("ns/agent")
    first = await env.api.items(CONTROLLERREVISIONS, "ns")
    assert [(r["revision"], r["metadata"]["labels"]["controller-revision-hash"]) for r in first] \
        == [(1, template_hash(await env.ds()))]
    assert {p["metadata"]["labels"]["controller-revision-hash"] for p in await env.pods()} == {
        first[0]["metadata"]["labels"]["controller-revision-hash"]}
    ds = await env.ds()
    ds["spec"]["template"]["spec"]["containers"][0]["image"] = "agent:2"
    await env.api.update(DAEMONSETS, ds)
    await env.catch_up(notify=True)
    await env.ctrl.sync("ns/agent")
    revisions = sorted(await env.api.items(CONTROLLERREVISIONS, "ns"),
                       key=lambda r: r["revision"])
    assert [r["revision"] for r in revisions] == [1, 2]
    assert revisions[1]["metadata"]["name"] == f"agent-{template_hash(await env.ds())}"
    assert revisions[1]["data"]["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "agent:2")


def test_plan_with_max_surge_starts_new_pods_beside_old_ones_before_removing_them() -> None:
    """upstream's surge mode (maxSurge 1, maxUnavailable 0): never fewer available pods."""
    ds = make_ds(updateStrategy={"type": "RollingUpdate",
                                 "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    ds["metadata"]["uid"] = "u1"
    old_ds = copy.deepcopy(ds)
    old_ds["spec"]["template"]["spec"]["containers"][0]["image"] = "agent:0"
    nodes = [make_node("n1"), make_node("n2"), make_node("n3")]
    ready = {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}

    def pod(name: str, node: str, *, new: bool = False, available: bool = True) -> Obj:
        p = copy.deepcopy(daemon_pod(ds if new else old_ds, node))
        p["metadata"].update(name=name, creationTimestamp=f"2026-01-0{1 + new}T00:00:00Z")
        p["spec"]["nodeName"] = node
        p["status"] = copy.deepcopy(ready) if available else {"phase": "Pending"}
        return p

    olds = [pod(f"old-{n}", n) for n in ("n1", "n2", "n3")]
    first = plan(ds, nodes, olds, T0)
    assert (first.create_on, first.delete) == (["n1"], []), "one surge pod, nothing deleted"
    waiting = plan(ds, nodes, [*olds, pod("new-n1", "n1", new=True, available=False)], T0)
    assert (waiting.create_on, waiting.delete) == ([], []), "the surge pod is not available"
    progressed = plan(ds, nodes, [*olds, pod("new-n1", "n1", new=True)], T0)
    assert [p["metadata"]["name"] for p in progressed.delete] == ["old-n1"]
    assert progressed.create_on == [], "the rolling step waits for this deletion"
    assert progressed.status["numberAvailable"] == 3 and "numberUnavailable" not in (
        progressed.status)
    next_node = plan(ds, nodes, [*olds[1:], pod("new-n1", "n1", new=True)], T0)
    assert (next_node.create_on, next_node.delete) == (["n2"], []), "then n2's surge starts"
    unready_old = [pod("old-n1", "n1", available=False), pod("new-n1", "n1", new=True,
                                                            available=False), *olds[1:]]
    assert [p["metadata"]["name"] for p in plan(ds, nodes, unready_old, T0).delete] == [
        "old-n1"], "an old pod that is not ready goes at once beside its successor"
    broken = plan(ds, nodes, [pod("old-n1", "n1"), pod("old-n2", "n2", available=False),
                              pod("old-n3", "n3")], T0)
    assert broken.create_on == ["n2", "n1"], "an unavailable old pod is replaced at once"
    extra = [*olds, pod("new-n1", "n1", new=True, available=False),
             pod("new2-n1", "n1", new=True, available=False)]
    pruned = plan(ds, nodes, extra, T0)
    assert [p["metadata"]["name"] for p in pruned.delete] == ["new2-n1"], (
        "surge keeps the oldest new and the oldest old pod on a node")
