"""Controller history (svcnet/controllers/history.py): the pure plan after upstream's
constructHistory/getStatefulSetRevisions and cleanupHistory/truncateHistory, and the name
collision handling of CreateControllerRevision against the real registries."""

from __future__ import annotations

from typing import Any

from svcnet.controllers.history import (
    HASH_LABEL,
    live_names,
    new_revision,
    plan_history,
    revision_data,
    revision_name,
    sync_history,
    template_hash,
    template_of,
)
from svcnet.controllers.ownership import CONTROLLERREVISIONS, STATEFULSETS
from tests.unit.controllers.test_replicaset_helpers import Obj, World


def owner(image: str = "web:1", *, limit: int | None = None, **meta: Any) -> Obj:
    spec: Obj = {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "a", "image": image}]}}}
    if limit is not None:
        spec["revisionHistoryLimit"] = limit
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1", **meta},
            "spec": spec}


def revision(image: str, number: int) -> Obj:
    return new_revision(owner(image), STATEFULSETS, number)


def test_a_revision_holds_the_template_as_a_replacing_patch() -> None:
    o = owner(annotations={"kubernetes.io/change-cause": "first"})
    rev = new_revision(o, STATEFULSETS, 1)
    assert rev["metadata"]["name"] == f"web-{template_hash(o)}" == revision_name(o)
    assert rev["metadata"]["labels"] == {"app": "web", HASH_LABEL: template_hash(o)}
    assert rev["metadata"]["annotations"] == {"kubernetes.io/change-cause": "first"}
    assert rev["metadata"]["ownerReferences"] == [{
        "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "u1",
        "controller": True, "blockOwnerDeletion": True}]
    assert rev["data"] == {"spec": {"template": {**o["spec"]["template"], "$patch": "replace"}}}
    assert rev["revision"] == 1
    assert template_of(rev) == o["spec"]["template"]
    # A collision count changes the hash (and so the name); none keeps it.
    bumped = {**o, "status": {"collisionCount": 1}}
    assert template_hash(bumped) != template_hash(o)
    assert template_hash({**o, "status": {"collisionCount": 0}}) == template_hash(o)
    assert revision_name({**o, "metadata": {"name": "x" * 300}}).startswith("x" * 223 + "-")


def test_the_first_revision_is_created_then_kept() -> None:
    first = plan_history(owner(), STATEFULSETS, [], set())
    assert first.create and first.current["revision"] == 1 and not first.delete
    again = plan_history(owner(), STATEFULSETS, [first.current], set())
    assert not again.create and not again.renumber and not again.delete
    assert again.current == first.current


def test_a_new_template_is_numbered_one_past_the_highest() -> None:
    out = plan_history(owner("web:3"), STATEFULSETS, [revision("web:1", 1),
                                                      revision("web:2", 4)], set())
    assert out.create and out.current["revision"] == 5
    assert out.current["data"] == revision_data(owner("web:3"))


def test_going_back_to_an_old_template_renumbers_its_revision() -> None:
    old, new = revision("web:1", 1), revision("web:2", 2)
    out = plan_history(owner("web:1"), STATEFULSETS, [old, new], set())
    assert not out.create and out.renumber
    assert out.current["metadata"]["name"] == old["metadata"]["name"]
    assert out.current["revision"] == 3


def test_duplicates_of_the_current_template_are_deleted_keeping_the_highest() -> None:
    a, b = revision("web:1", 1), revision("web:1", 3)
    a["metadata"]["name"] = "web-dup"
    out = plan_history(owner("web:1"), STATEFULSETS, [a, b, revision("web:2", 2)], set())
    assert out.current["revision"] == 3 and not out.renumber
    assert [r["metadata"]["name"] for r in out.delete] == ["web-dup"]


def test_history_beyond_the_limit_goes_oldest_first_sparing_live_revisions() -> None:
    revs = [revision(f"web:{i}", i) for i in range(1, 6)]
    live = {revs[0]["metadata"]["name"]}  # a pod still runs revision 1
    out = plan_history(owner("web:6", limit=2), STATEFULSETS, revs, live)
    assert out.create and out.current["revision"] == 6
    assert [r["revision"] for r in out.delete] == [2, 3], "1 is live; 4 and 5 are kept"
    none_kept = plan_history(owner("web:5", limit=0), STATEFULSETS, revs, set())
    assert sorted(r["revision"] for r in none_kept.delete) == [1, 2, 3, 4]
    default = plan_history(owner("web:99"), STATEFULSETS,
                           [revision(f"web:{i}", i) for i in range(1, 13)], set())
    assert [r["revision"] for r in default.delete] == [1, 2], "10 kept by default"


def test_live_names_reads_pod_labels_as_names_or_as_hashes() -> None:
    pods: list[Obj] = [{"metadata": {"labels": {HASH_LABEL: "abc"}}},
                       {"metadata": {"labels": {}}}]
    assert live_names(owner(), pods, label_is_name=True) == {"abc"}
    assert live_names(owner(), pods, label_is_name=False) == {"web-abc"}


async def test_a_taken_name_counts_a_collision_and_takes_the_next() -> None:
    world = World((CONTROLLERREVISIONS, STATEFULSETS))
    sts = await world.create(STATEFULSETS, {**owner(), "metadata": {"name": "web",
                                                                    "namespace": "ns"}})
    squatter = new_revision(sts, STATEFULSETS, 7)
    squatter["data"] = {"something": "else"}
    squatter["metadata"].pop("ownerReferences")
    squatter["metadata"]["labels"] = {"other": "app"}  # not adopted: the selector does not match
    await world.create(CONTROLLERREVISIONS, squatter)
    informer = world.informers[CONTROLLERREVISIONS]
    history = await sync_history(world.api, informer, sts, STATEFULSETS, set())
    assert history.collision_count == 1 == sts["status"]["collisionCount"]
    assert history.current["metadata"]["name"] == revision_name(sts) != revision_name(
        owner())
    assert history.current["revision"] == 1
    stored = {r["metadata"]["name"] for r in await world.api.items(CONTROLLERREVISIONS, "ns")}
    assert stored == {squatter["metadata"]["name"], history.current["metadata"]["name"]}
    # The cache had not seen our own revision yet: its name is taken by equal data, so it is
    # used as it is (no second collision).
    again = await sync_history(world.api, informer, sts, STATEFULSETS, set())
    assert again.current["metadata"]["name"] == history.current["metadata"]["name"]
    assert sts["status"]["collisionCount"] == 1
