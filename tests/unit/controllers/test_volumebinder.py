"""PersistentVolumeBinder against the in-memory API: static binding (smallest fitting volume,
class, access modes, selector, pre-binding), phases, release and the protection finalizers
(conventions of ``test_serviceaccounts_controller``)."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.api.storageclasses import DEFAULT_STORAGE_CLASS
from svcnet.client.informer import Informer
from svcnet.client.rest import GVR, PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, PODS, STORAGECLASSES
from svcnet.controllers.volumebinder import (
    PersistentVolumeBinder,
    find_matching_volume,
    unbound_claim_action,
    volume_phase,
)
from svcnet.util.clock import FakeClock
from tests.unit.controllers.test_endpointslice_helpers import T0, FakeAPI, Obj, sync_cache


def _pv(name: str, size: str, modes: tuple[str, ...] = ("ReadWriteOnce",), *,
        cls: str = "", labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"capacity": {"storage": size}, "accessModes": list(modes),
                     "storageClassName": cls, "hostPath": {"path": f"/data/{name}"},
                     "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem",
                     **spec},
            "status": {"phase": "Available"}}


def _pvc(name: str, size: str, modes: tuple[str, ...] = ("ReadWriteOnce",), *,
         ns: str = "app", **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}"},
            "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": size}},
                     "volumeMode": "Filesystem", **spec},
            "status": {"phase": "Pending"}}


def _names(found: Obj | Any) -> str | None:
    return None if found is None else str(found["metadata"]["name"])


def test_smallest_fitting_volume_is_chosen() -> None:
    volumes = [_pv("big", "10Gi"), _pv("small", "1Gi"), _pv("mid", "5Gi"),
               _pv("rwx", "2Gi", ("ReadWriteMany",))]
    assert _names(find_matching_volume(_pvc("c", "2Gi"), volumes)) == "mid"
    assert _names(find_matching_volume(_pvc("c", "500Mi"), volumes)) == "small"
    assert _names(find_matching_volume(_pvc("c", "1Gi", ("ReadWriteMany",)), volumes)) == "rwx"
    assert find_matching_volume(_pvc("c", "20Gi"), volumes) is None


def test_class_selector_and_claimed_volumes_filter() -> None:
    taken = _pv("taken", "1Gi", claimRef={"namespace": "other", "name": "x", "uid": "u"})
    gold = _pv("gold", "5Gi", labels={"tier": "gold"})
    fast = _pv("fast", "2Gi", cls="fast")
    volumes = [taken, gold, fast]
    assert _names(find_matching_volume(_pvc("c", "1Gi"), volumes)) == "gold"
    assert _names(find_matching_volume(_pvc("c", "1Gi", storageClassName="fast"),
                                       volumes)) == "fast"
    assert find_matching_volume(_pvc("c", "1Gi", storageClassName="slow"), volumes) is None
    assert find_matching_volume(
        _pvc("c", "1Gi", selector={"matchLabels": {"tier": "silver"}}), volumes) is None
    block = _pvc("c", "1Gi", volumeMode="Block")
    assert find_matching_volume(block, volumes) is None


def test_prebound_volume_wins_over_size() -> None:
    claim = _pvc("c", "1Gi")
    prebound = _pv("pre", "10Gi", claimRef={"namespace": "app", "name": "c"})
    assert _names(find_matching_volume(claim, [_pv("small", "1Gi"), prebound])) == "pre"
    named = _pvc("c", "1Gi", volumeName="big")
    assert _names(find_matching_volume(named, [_pv("small", "1Gi"), _pv("big", "9Gi")])) == \
        "big"


def test_volume_phase() -> None:
    claims = {"app/c": {**_pvc("c", "1Gi", volumeName="v")}}
    assert volume_phase(_pv("v", "1Gi"), claims) == "Available"
    bound = _pv("v", "1Gi", claimRef={"namespace": "app", "name": "c", "uid": "uid-c"})
    assert volume_phase(bound, claims) == "Bound"
    assert volume_phase(bound, {}) == "Released"
    other = _pv("v", "1Gi", claimRef={"namespace": "app", "name": "c", "uid": "old-uid"})
    assert volume_phase(other, claims) == "Released"


class Env:
    def __init__(self) -> None:
        self.clock = FakeClock(T0)
        self.api = FakeAPI()
        self.informers = {gvr: Informer(self.api, gvr, clock=self.clock)
                          for gvr in (PERSISTENTVOLUMES, PERSISTENTVOLUMECLAIMS, PODS,
                                      STORAGECLASSES)}
        self.ctrl = PersistentVolumeBinder(
            self.api, clock=self.clock, volumes=self.informers[PERSISTENTVOLUMES],  # type: ignore[arg-type]
            claims=self.informers[PERSISTENTVOLUMECLAIMS], pods=self.informers[PODS],
            classes=self.informers[STORAGECLASSES])

    def put(self, gvr: GVR, *objs: Obj) -> None:
        for obj in objs:
            self.api.seed(gvr, obj)
        self.refresh()

    def refresh(self) -> None:
        for g, informer in self.informers.items():
            sync_cache(informer, self.api.items(g))

    def get(self, gvr: GVR, key: str) -> Obj:
        found = self.api.get(gvr, key)
        assert found is not None
        return found


@pytest.fixture
def env() -> Env:
    return Env()


async def test_a_pending_claim_binds_both_ways(env: Env) -> None:
    env.put(PERSISTENTVOLUMES, _pv("small", "1Gi"), _pv("big", "5Gi"))
    env.put(PERSISTENTVOLUMECLAIMS, _pvc("data", "2Gi", ("ReadWriteOnce",)))
    claim_uid = env.get(PERSISTENTVOLUMECLAIMS, "app/data")["metadata"]["uid"]
    await env.ctrl.sync("pvc:app/data")
    pv, pvc = env.get(PERSISTENTVOLUMES, "big"), env.get(PERSISTENTVOLUMECLAIMS, "app/data")
    assert pv["spec"]["claimRef"]["name"] == "data"
    assert pv["spec"]["claimRef"]["namespace"] == "app"
    assert pv["spec"]["claimRef"]["uid"] == claim_uid
    assert pv["status"]["phase"] == "Bound"
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"
    assert pvc["spec"]["volumeName"] == "big"
    assert pvc["status"] == {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                             "capacity": {"storage": "5Gi"}}
    assert pvc["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
    assert env.get(PERSISTENTVOLUMES, "small")["status"]["phase"] == "Available"


async def test_a_claim_with_an_unmatched_class_stays_pending(env: Env) -> None:
    env.put(PERSISTENTVOLUMES, _pv("v", "5Gi"))
    env.put(PERSISTENTVOLUMECLAIMS, _pvc("data", "1Gi", storageClassName="standard"))
    await env.ctrl.sync("pvc:app/data")
    assert env.api.writes("persistentvolumeclaims") == []
    assert env.api.writes("persistentvolumes") == []


async def test_volume_phases_follow_their_claims(env: Env) -> None:
    env.put(PERSISTENTVOLUMES, {**_pv("new", "1Gi"), "status": {"phase": "Pending"}})
    await env.ctrl.sync("pv:new")
    assert env.get(PERSISTENTVOLUMES, "new")["status"]["phase"] == "Available"
    env.put(PERSISTENTVOLUMECLAIMS, _pvc("data", "1Gi"))
    await env.ctrl.sync("pvc:app/data")
    assert env.get(PERSISTENTVOLUMES, "new")["status"]["phase"] == "Bound"
    env.api.remove(PERSISTENTVOLUMECLAIMS, "app/data")
    env.refresh()
    await env.ctrl.sync("pvc:app/data")  # the deleted claim queues its volume...
    assert len(env.ctrl.controller.queue) == 1
    await env.ctrl.sync("pv:new")  # ...which is released
    assert env.get(PERSISTENTVOLUMES, "new")["status"]["phase"] == "Released"


async def test_protection_finalizers_go_when_unused(env: Env) -> None:
    claim = {**_pvc("data", "1Gi"), "metadata": {
        **_pvc("data", "1Gi")["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z",
        "finalizers": ["kubernetes.io/pvc-protection"]}}
    pod = {"metadata": {"name": "p", "namespace": "app"}, "status": {"phase": "Running"},
           "spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}
    env.put(PODS, pod)
    env.put(PERSISTENTVOLUMECLAIMS, claim)
    await env.ctrl.sync("pvc:app/data")
    assert env.get(PERSISTENTVOLUMECLAIMS, "app/data")["metadata"]["finalizers"] == [
        "kubernetes.io/pvc-protection"], "a running pod still uses it"
    env.api.remove(PODS, "app/p")
    env.refresh()
    await env.ctrl.sync("pvc:app/data")
    assert env.get(PERSISTENTVOLUMECLAIMS, "app/data")["metadata"]["finalizers"] == []
    volume = _pv("v", "1Gi")
    volume["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z",
                              finalizers=["kubernetes.io/pv-protection"])
    env.put(PERSISTENTVOLUMES, volume)
    await env.ctrl.sync("pv:v")
    assert env.get(PERSISTENTVOLUMES, "v")["metadata"]["finalizers"] == []


# -- StorageClasses: delayed binding, provisioners, the retroactive default -------------------

WAIT: Obj = {"metadata": {"name": "local"}, "provisioner": "svcnet.io/local-path",
             "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete"}
NOW: Obj = {"metadata": {"name": "fast"}, "provisioner": "example.com/fast",
            "volumeBindingMode": "Immediate", "reclaimPolicy": "Delete"}
NO_PROVISIONER: Obj = {"metadata": {"name": "manual"}, "provisioner": "kubernetes.io/no-provisioner",
                       "volumeBindingMode": "WaitForFirstConsumer"}
CLASSES: dict[str, Obj] = {c["metadata"]["name"]: c for c in (WAIT, NOW, NO_PROVISIONER)}


def test_delayed_binding_only_takes_a_prebound_volume() -> None:
    claim = _pvc("c", "1Gi", storageClassName="local")
    free = _pv("free", "1Gi", cls="local")
    assert _names(find_matching_volume(claim, [free])) == "free"
    assert find_matching_volume(claim, [free], delay_binding=True) is None
    prebound = _pv("made", "1Gi", cls="local", claimRef={"namespace": "app", "name": "c"})
    assert _names(find_matching_volume(claim, [free, prebound], delay_binding=True)) == "made"


def test_delayed_binding_takes_a_volume_of_the_selected_node() -> None:
    """Once the scheduler chose the claim's node, a static volume that node may use binds
    (the local PVs of a no-provisioner class); one pinned elsewhere does not."""
    claim = _pvc("c", "1Gi", storageClassName="local")
    def pinned(name: str, host: str) -> Obj:
        return {**_pv(name, "1Gi", cls="local"), "spec": {
            **_pv(name, "1Gi", cls="local")["spec"], "nodeAffinity": {"required": {
                "nodeSelectorTerms": [{"matchExpressions": [{
                    "key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}]}}}}
    node_1 = {"metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}}}
    volumes = [pinned("on-2", "node-2"), pinned("on-1", "node-1")]
    assert _names(find_matching_volume(claim, volumes, delay_binding=True,
                                       node=node_1)) == "on-1"
    assert find_matching_volume(claim, volumes[:1], delay_binding=True, node=node_1) is None


@pytest.mark.parametrize(("claim", "action"), [
    (_pvc("c", "1Gi", storageClassName="local"), ("wait", "")),
    ({**_pvc("c", "1Gi", storageClassName="local"), "metadata": {
        "name": "c", "namespace": "app",
        "annotations": {"volume.kubernetes.io/selected-node": "node-1"}}},
     ("provision", "svcnet.io/local-path")),
    (_pvc("c", "1Gi", storageClassName="fast"), ("provision", "example.com/fast")),
    (_pvc("c", "1Gi", storageClassName="missing"), ("pending", "")),
    (_pvc("c", "1Gi", storageClassName=""), ("pending", "")),
    (_pvc("c", "1Gi", storageClassName="manual"), ("wait", "")),
    ({**_pvc("c", "1Gi", storageClassName="manual"), "metadata": {
        "name": "c", "namespace": "app",
        "annotations": {"volume.kubernetes.io/selected-node": "node-1"}}}, ("pending", "")),
    (_pvc("c", "1Gi"), ("pending", "")),  # no class, and no default class here
], ids=["wait-for-node", "node-selected", "immediate", "unknown-class", "no-class",
        "no-provisioner-waits", "no-provisioner-never-marked", "no-default"])
def test_unbound_claim_action(claim: Obj, action: tuple[str, str]) -> None:
    assert unbound_claim_action(claim, CLASSES) == action


def test_a_claim_without_a_class_gets_the_default_one() -> None:
    classes = {**CLASSES, "standard": DEFAULT_STORAGE_CLASS}
    assert unbound_claim_action(_pvc("c", "1Gi"), classes) == ("assign-class", "standard")
    assert unbound_claim_action(_pvc("c", "1Gi", storageClassName=""), classes) == (
        "pending", "")


async def test_claims_are_left_to_their_provisioner(env: Env) -> None:
    env.put(STORAGECLASSES, WAIT, NOW, DEFAULT_STORAGE_CLASS)
    env.put(PERSISTENTVOLUMES, _pv("free", "5Gi", cls="local"))
    env.put(PERSISTENTVOLUMECLAIMS, _pvc("waits", "1Gi", storageClassName="local"),
            _pvc("now", "1Gi", storageClassName="fast"), _pvc("none", "1Gi"))
    await env.ctrl.sync("pvc:app/waits")
    assert env.api.writes("persistentvolumeclaims") == []
    assert env.api.writes("persistentvolumes") == [], "delayed binding: the free volume waits"
    await env.ctrl.sync("pvc:app/now")
    annotations = env.get(PERSISTENTVOLUMECLAIMS, "app/now")["metadata"]["annotations"]
    assert annotations == {"volume.beta.kubernetes.io/storage-provisioner": "example.com/fast",
                           "volume.kubernetes.io/storage-provisioner": "example.com/fast"}
    writes = len(env.api.writes("persistentvolumeclaims"))
    env.refresh()
    await env.ctrl.sync("pvc:app/now")
    assert len(env.api.writes("persistentvolumeclaims")) == writes, "marked once"
    await env.ctrl.sync("pvc:app/none")
    assert env.get(PERSISTENTVOLUMECLAIMS, "app/none")["spec"]["storageClassName"] == "standard"
    # The provisioner's volume, pre-bound to the claim, is bound by the binder.
    env.put(PERSISTENTVOLUMES, _pv("pvc-made", "1Gi", cls="fast", claimRef={
        "namespace": "app", "name": "now",
        "uid": env.get(PERSISTENTVOLUMECLAIMS, "app/now")["metadata"]["uid"]}))
    await env.ctrl.sync("pvc:app/now")
    assert env.get(PERSISTENTVOLUMECLAIMS, "app/now")["spec"]["volumeName"] == "pvc-made"
    assert env.get(PERSISTENTVOLUMES, "pvc-made")["status"]["phase"] == "Bound"


async def test_a_new_class_queues_pending_claims(env: Env) -> None:
    env.put(PERSISTENTVOLUMECLAIMS, _pvc("data", "1Gi"))
    env.ctrl.classes._notify_add(DEFAULT_STORAGE_CLASS)
    assert len(env.ctrl.controller.queue) == 1
