"""The PersistentVolume binder: static binding of claims to volumes, release of volumes whose
claim is gone, handing claims of a class with a provisioner to that provisioner, and the
storage-object-in-use protection finalizers.

Theory of operation, after kube-controller-manager's ``persistentvolume-binder-controller``
(``pkg/controller/volume/persistentvolume/pv_controller.go``: ``syncUnboundClaim``,
``assignDefaultStorageClass``, ``provisionClaim``/``setClaimProvisioner``; ``index.go``'s
``findMatchingVolume``) and the ``pvc-protection`` / ``pv-protection`` controllers
(``pkg/controller/volume/{pvc,pv}protection``). Work keys are ``pvc:<ns>/<name>`` and
``pv:<name>``; every change of a claim queues it, every change of a volume queues the volume
and the claim it names, a pod's change queues the claims it mounts (protection), and a new or
changed StorageClass queues the Pending claims.

Planning is pure (:func:`find_matching_volume`, :func:`unbound_claim_action`,
:func:`claim_ref`, :func:`volume_phase`); the controller applies the plan with ordinary API
writes, in upstream's order, each step re-reading nothing but the informers:

* a Pending claim (not being deleted) without a ``volumeName`` gets the smallest volume that
  is not bound elsewhere (no ``claimRef``, or one naming this claim), not being deleted, of the
  claim's class (``storageClassName``, or the beta annotation; none means ``""``) and volume
  mode, with every requested access mode, at least the requested ``storage`` and labels
  matching the claim's selector; a volume pre-bound to the claim by ``claimRef`` wins over
  size. A claim with ``volumeName`` binds to that volume only. A claim whose class binds
  ``WaitForFirstConsumer`` (delayed binding) binds a volume pre-bound to it, or, once the
  scheduler has written the node of its first pod into ``volume.kubernetes.io/selected-node``,
  the smallest matching volume whose node affinity admits that node (upstream's scheduler
  chooses that volume in its VolumeBinding plugin; svcnet's scheduler only chooses the node,
  and the binder the volume). Binding writes the
  volume's ``spec.claimRef`` (and ``pv.kubernetes.io/bound-by-controller``), its
  ``status.phase: Bound``, the claim's ``spec.volumeName`` (and ``bind-completed`` /
  ``bound-by-controller``), then the claim's status (``Bound``, the volume's access modes and
  capacity);
* a claim that found no volume (:func:`unbound_claim_action`): one that asks for no class at
  all gets the default StorageClass, if there is one (the retroactive default, for claims made
  before a default class existed); one of a delayed-binding class whose pod has not been
  placed (no ``volume.kubernetes.io/selected-node``) waits; one of an existing class with a
  provisioner is left to that provisioner, marked with ``volume.kubernetes.io/
  storage-provisioner`` and its beta twin, as upstream marks a claim for an external
  provisioner (which then creates a volume pre-bound to the claim, and the binder binds it).
  svcnet has no in-tree volume plugins: a class whose provisioner is ``kubernetes.io/...``
  (``kubernetes.io/no-provisioner`` for local volumes) is never marked. Any other claim stays
  Pending until a matching volume appears. The binder itself never creates nor deletes
  volumes;
* a volume is ``Available`` without a claim, ``Bound`` while its claim exists with its UID
  and ``Released`` once that claim is gone, whatever its reclaim policy: the binder neither
  recycles nor deletes storage (a provisioner deletes the volumes of ``Delete`` it made);
* a claim being deleted loses ``kubernetes.io/pvc-protection`` once no running pod of its
  namespace mounts it; a volume being deleted loses ``kubernetes.io/pv-protection`` once it is
  not ``Bound``.

Not done as upstream: no Events (``WaitForFirstConsumer``, ``ExternalProvisioning``,
``FailedBinding``) and no periodic resync (the informers' events drive every sync).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any, Final

from svcnet.api.access import list_of, map_of, str_of
from svcnet.api.errors import StatusError
from svcnet.api.labels import SelectorError, selector_from_label_selector
from svcnet.api.podrefs import pod_claim_names
from svcnet.api.resourcelists import parse_quantity
from svcnet.api.storageclasses import (
    ANN_BETA_STORAGE_PROVISIONER,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    WAIT_FOR_FIRST_CONSUMER,
    claim_class,
    claim_has_class,
    default_storage_class,
)
from svcnet.api.volumes import PROTECTION_PV, PROTECTION_PVC
from svcnet.client.controller import Controller, RequeueError
from svcnet.client.informer import EventHandler, Informer, InformerFactory, object_key
from svcnet.client.rest import (
    NODES,
    PERSISTENTVOLUMECLAIMS,
    PERSISTENTVOLUMES,
    PODS,
    STORAGECLASSES,
    RESTClient,
)
from svcnet.controllers.scheduler import volume_node_affinity_matches
from svcnet.util.clock import Clock, RealClock

__all__ = ["COMPONENT", "PersistentVolumeBinder", "claim_ref", "find_matching_volume",
           "is_delay_binding", "unbound_claim_action", "volume_phase"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
COMPONENT: Final = "persistentvolume-binder-controller"
ANN_BOUND_BY_CONTROLLER: Final = "pv.kubernetes.io/bound-by-controller"
ANN_BIND_COMPLETED: Final = "pv.kubernetes.io/bind-completed"


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    return map_of(obj, "metadata")


def _storage(resources: Mapping[str, Any]) -> Fraction:
    return parse_quantity(resources.get("storage")) or Fraction(0)


def _claim_key(ref: Mapping[str, Any]) -> str:
    return f"{str_of(ref, 'namespace')}/{str_of(ref, 'name')}"


def _refers_to(ref: Mapping[str, Any], claim: Mapping[str, Any]) -> bool:
    """The claimRef names this claim (and, when it has a UID, this incarnation of it)."""
    meta = _meta(claim)
    uid = str_of(ref, "uid")
    return (_claim_key(ref) == f"{str_of(meta, 'namespace')}/{str_of(meta, 'name')}"
            and uid in ("", str_of(meta, "uid")))


def _matches(claim: Mapping[str, Any], pv: Mapping[str, Any]) -> bool:
    """checkVolumeSatisfyClaim, plus the selector and class filters of findMatchingVolume."""
    spec, pv_spec = map_of(claim, "spec"), map_of(pv, "spec")
    if claim_class(pv) != claim_class(claim):
        return False
    if (str_of(pv_spec, "volumeMode") or "Filesystem") != (str_of(spec, "volumeMode")
                                                            or "Filesystem"):
        return False
    if not set(list_of(spec, "accessModes")) <= set(list_of(pv_spec, "accessModes")):
        return False
    if _storage(map_of(pv_spec, "capacity")) < _storage(
            map_of(map_of(spec, "resources"), "requests")):
        return False
    selector = spec.get("selector")
    if isinstance(selector, dict):
        try:
            if not selector_from_label_selector(selector).matches(
                    map_of(_meta(pv), "labels")):
                return False
        except SelectorError:
            return False
    return True


def find_matching_volume(claim: Mapping[str, Any], volumes: Iterable[Mapping[str, Any]],
                         *, delay_binding: bool = False,
                         node: Mapping[str, Any] | None = None) -> Mapping[str, Any] | None:
    """The volume a claim binds to (index.go's findMatchingVolume). With ``delay_binding``,
    a volume pre-bound to the claim, or, once the scheduler chose the claim's ``node`` (its
    selected-node annotation), the smallest matching volume whose node affinity admits that
    node (what upstream's scheduler picks in its VolumeBinding plugin)."""
    wanted = str_of(map_of(claim, "spec"), "volumeName")
    smallest: Mapping[str, Any] | None = None
    for pv in sorted(volumes, key=lambda v: str_of(_meta(v), "name")):
        if _meta(pv).get("deletionTimestamp"):
            continue
        ref = map_of(map_of(pv, "spec"), "claimRef")
        if ref and not _refers_to(ref, claim):
            continue
        if wanted and str_of(_meta(pv), "name") != wanted:
            continue
        if delay_binding and not ref and not wanted and (
                node is None or not volume_node_affinity_matches(pv, node)):
            continue  # no node chosen yet, or not a volume of that node
        if not _matches(claim, pv):
            continue
        if ref or wanted:
            return pv  # pre-bound either way: it wins over size
        if smallest is None or _storage(map_of(map_of(pv, "spec"), "capacity")) < _storage(
                map_of(map_of(smallest, "spec"), "capacity")):
            smallest = pv
    return smallest


def is_delay_binding(claim: Mapping[str, Any],
                     classes: Mapping[str, Mapping[str, Any]]) -> bool:
    """IsDelayBindingMode: the claim's class exists and binds ``WaitForFirstConsumer``."""
    found = classes.get(claim_class(claim)) if claim_class(claim) else None
    return found is not None and found.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER


def unbound_claim_action(claim: Mapping[str, Any],
                         classes: Mapping[str, Mapping[str, Any]]) -> tuple[str, str]:
    """What syncUnboundClaim does with a claim no volume matched, by class name:
    ``("assign-class", <default class>)``, ``("wait", "")`` (delayed binding, no node yet),
    ``("provision", <provisioner>)`` (mark it for that provisioner, if not yet) or
    ``("pending", "")``."""
    if not claim_has_class(claim):
        found = default_storage_class(classes.values())
        if found is not None:
            return "assign-class", str_of(_meta(found), "name")
    if is_delay_binding(claim, classes) and ANN_SELECTED_NODE not in map_of(
            _meta(claim), "annotations"):
        return "wait", ""
    name = claim_class(claim)
    sc = classes.get(name) if name else None
    provisioner = str_of(sc, "provisioner") if sc is not None else ""
    if provisioner and not provisioner.startswith("kubernetes.io/"):
        return "provision", provisioner
    return "pending", ""


def claim_ref(claim: Mapping[str, Any]) -> Obj:
    """The ObjectReference a bound volume keeps (GetReference of the claim)."""
    meta = _meta(claim)
    return {"kind": "PersistentVolumeClaim", "namespace": str_of(meta, "namespace"),
            "name": str_of(meta, "name"), "uid": str_of(meta, "uid"), "apiVersion": "v1",
            "resourceVersion": str_of(meta, "resourceVersion")}


def volume_phase(pv: Mapping[str, Any], claims: Mapping[str, Mapping[str, Any]]) -> str:
    """What a volume's phase should be, given the claims by ``ns/name`` (syncVolume)."""
    ref = map_of(map_of(pv, "spec"), "claimRef")
    if not ref:
        return "Available"
    claim = claims.get(_claim_key(ref))
    if claim is None or (str_of(ref, "uid") and str_of(ref, "uid") != str_of(
            _meta(claim), "uid")):
        return "Released" if str_of(ref, "uid") else "Available"
    if str_of(map_of(claim, "spec"), "volumeName") == str_of(_meta(pv), "name"):
        return "Bound"
    # Pre-bound by a user, the claim not yet bound to it: still to be bound.
    return "Available"


def _claims_of_pod(pod: Mapping[str, Any]) -> list[str]:
    namespace = str_of(_meta(pod), "namespace")
    return [f"{namespace}/{name}" for name in pod_claim_names(pod)]


def _without(finalizers: list[Any], name: str) -> list[Any]:
    return [f for f in finalizers if f != name]


class PersistentVolumeBinder:
    """Binds claims to volumes and keeps volumes' phases (module doc)."""

    def __init__(self, client: RESTClient, *, clock: Clock | None = None,
                 volumes: Informer | None = None, claims: Informer | None = None,
                 pods: Informer | None = None, classes: Informer | None = None,
                 nodes: Informer | None = None,
                 informers: InformerFactory | None = None) -> None:
        self._client = client
        clock = clock or RealClock()
        factory = InformerFactory.of(informers, client, clock=clock)
        self.volumes = volumes or factory.informer(PERSISTENTVOLUMES, name="persistentvolumes")
        self.claims = claims or factory.informer(PERSISTENTVOLUMECLAIMS,
                                                 name="persistentvolumeclaims")
        self.pods = pods or factory.informer(PODS, name="pods")
        self.classes = classes or factory.informer(STORAGECLASSES, name="storageclasses")
        self.nodes = nodes or factory.informer(NODES, name="nodes")
        self.controller = Controller(COMPONENT, self.sync,
                                     informers=[self.volumes, self.claims, self.pods,
                                                self.classes, self.nodes],
                                     clock=clock)
        self.claims.add_handler(EventHandler.for_keys(lambda k: self._add("pvc", k)))
        self.volumes.add_handler(EventHandler(
            on_add=self._volume_changed, on_update=lambda _o, new: self._volume_changed(new),
            on_delete=self._volume_changed))
        self.pods.add_handler(EventHandler(
            on_update=lambda _o, new: self._pod_changed(new), on_delete=self._pod_changed))
        self.classes.add_handler(EventHandler(
            on_add=lambda _c: self._queue_pending_claims(),
            on_update=lambda _o, _n: self._queue_pending_claims()))

    @classmethod
    def from_client(cls, client: RESTClient, *, clock: Clock | None = None,
                    informers: InformerFactory | None = None) -> PersistentVolumeBinder:
        return cls(client, clock=clock, informers=informers)

    def start(self) -> None:
        for informer in (self.volumes, self.claims, self.pods, self.classes, self.nodes):
            informer.start()
        self.controller.start()

    async def stop(self) -> None:
        await self.controller.stop()
        for informer in (self.nodes, self.classes, self.pods, self.claims, self.volumes):
            await informer.stop()

    def _add(self, kind: str, key: str) -> None:
        self.controller.queue.add(f"{kind}:{key}")

    def _volume_changed(self, pv: Obj) -> None:
        self._add("pv", object_key(pv))
        ref = map_of(map_of(pv, "spec"), "claimRef")
        if ref:
            self._add("pvc", _claim_key(ref))
        else:
            # A volume became available: pending claims may bind now.
            self._queue_pending_claims()

    def _queue_pending_claims(self) -> None:
        for claim in self.claims.list():
            if str_of(map_of(claim, "status"), "phase") == "Pending":
                self._add("pvc", object_key(claim))

    def _pod_changed(self, pod: Obj) -> None:
        for key in _claims_of_pod(pod):
            self._add("pvc", key)

    def _claims_by_key(self) -> dict[str, Obj]:
        return {object_key(c): c for c in self.claims.list()}

    async def sync(self, key: str) -> None:
        kind, _, name = key.partition(":")
        try:
            if kind == "pv":
                await self._sync_volume(name)
            else:
                await self._sync_claim(name)
        except StatusError as e:
            if e.code == 409:
                raise RequeueError(f"{key} changed meanwhile") from None
            if e.code != 404:
                raise

    # -- volumes ------------------------------------------------------------------------------

    async def _sync_volume(self, name: str) -> None:
        pv = self.volumes.get(name)
        if pv is None:
            return
        meta = _meta(pv)
        phase = volume_phase(pv, self._claims_by_key())
        if meta.get("deletionTimestamp") and PROTECTION_PV in list_of(meta, "finalizers") and \
                phase != "Bound" and str_of(map_of(pv, "status"), "phase") != "Bound":
            updated = {**pv, "metadata": {**meta, "finalizers": _without(
                list_of(meta, "finalizers"), PROTECTION_PV)}}
            await self._client.update(PERSISTENTVOLUMES, updated)
            return
        if str_of(map_of(pv, "status"), "phase") != phase:
            await self._client.update(
                PERSISTENTVOLUMES, {**pv, "status": {**map_of(pv, "status"), "phase": phase}},
                subresource="status")

    # -- claims -------------------------------------------------------------------------------

    async def _sync_claim(self, key: str) -> None:
        claim = self.claims.get(key)
        if claim is None:
            # Gone: the volumes it held are released.
            for held in self.volumes.list():
                if _claim_key(map_of(map_of(held, "spec"), "claimRef")) == key:
                    self._add("pv", object_key(held))
            return
        meta = _meta(claim)
        if meta.get("deletionTimestamp"):
            await self._unprotect_claim(claim)
            return
        spec = map_of(claim, "spec")
        if str_of(map_of(claim, "status"), "phase") == "Bound":
            return
        volume = str_of(spec, "volumeName")
        pv: Mapping[str, Any] | None
        classes = {str_of(_meta(c), "name"): c for c in self.classes.list()}
        if volume and map_of(meta, "annotations").get(ANN_BIND_COMPLETED):
            pv = self.volumes.get(volume)
        else:
            selected = str(map_of(meta, "annotations").get(ANN_SELECTED_NODE) or "")
            pv = find_matching_volume(claim, self.volumes.list(),
                                      delay_binding=is_delay_binding(claim, classes),
                                      node=self.nodes.get(selected) if selected else None)
        if pv is not None:
            await self._bind(claim, pv)
        elif not volume:
            await self._no_volume(claim, classes)

    async def _no_volume(self, claim: Obj, classes: Mapping[str, Mapping[str, Any]]) -> None:
        """syncUnboundClaim without a volume: the default class, or the provisioner's turn."""
        action, value = unbound_claim_action(claim, classes)
        meta = _meta(claim)
        if action == "assign-class":
            await self._client.update(PERSISTENTVOLUMECLAIMS, {
                **claim, "spec": {**map_of(claim, "spec"), "storageClassName": value}})
        elif action == "provision" and map_of(meta, "annotations").get(
                ANN_BETA_STORAGE_PROVISIONER) != value:
            annotations = {**map_of(meta, "annotations"), ANN_BETA_STORAGE_PROVISIONER: value,
                           ANN_STORAGE_PROVISIONER: value}
            await self._client.update(PERSISTENTVOLUMECLAIMS, {
                **claim, "metadata": {**meta, "annotations": annotations}})
        # "wait" and "pending": stays Pending until a volume or a pod's node comes

    async def _bind(self, claim: Obj, pv: Mapping[str, Any]) -> None:
        """bindVolumeToClaim, bindClaimToVolume and updateClaimStatus, in that order."""
        pv_meta, pv_spec = _meta(pv), map_of(pv, "spec")
        if map_of(pv_spec, "claimRef") != claim_ref(claim) or \
                str_of(map_of(pv, "status"), "phase") != "Bound":
            annotations = dict(map_of(pv_meta, "annotations"))
            if not map_of(pv_spec, "claimRef"):
                annotations[ANN_BOUND_BY_CONTROLLER] = "yes"
            written = await self._client.update(PERSISTENTVOLUMES, {
                **pv, "metadata": {**pv_meta, "annotations": annotations},
                "spec": {**pv_spec, "claimRef": claim_ref(claim)}})
            await self._client.update(PERSISTENTVOLUMES, {
                **written, "status": {**map_of(written, "status"), "phase": "Bound"}},
                subresource="status")
        meta, spec = _meta(claim), map_of(claim, "spec")
        name = str_of(pv_meta, "name")
        annotations = {**map_of(meta, "annotations"), ANN_BIND_COMPLETED: "yes"}
        if str_of(spec, "volumeName") != name:
            annotations[ANN_BOUND_BY_CONTROLLER] = "yes"
        written = await self._client.update(PERSISTENTVOLUMECLAIMS, {
            **claim, "metadata": {**meta, "annotations": annotations},
            "spec": {**spec, "volumeName": name}})
        await self._client.update(PERSISTENTVOLUMECLAIMS, {
            **written, "status": {**map_of(written, "status"), "phase": "Bound",
                                  "accessModes": list_of(pv_spec, "accessModes"),
                                  "capacity": dict(map_of(pv_spec, "capacity"))}},
            subresource="status")

    async def _unprotect_claim(self, claim: Obj) -> None:
        """The pvc-protection controller: the finalizer goes once no running pod uses it."""
        meta = _meta(claim)
        if PROTECTION_PVC not in list_of(meta, "finalizers"):
            return
        key = object_key(claim)
        for pod in self.pods.list():
            phase = str_of(map_of(pod, "status"), "phase")
            if phase not in ("Succeeded", "Failed") and key in _claims_of_pod(pod):
                return
        await self._client.update(PERSISTENTVOLUMECLAIMS, {
            **claim, "metadata": {**meta, "finalizers": _without(list_of(meta, "finalizers"),
                                                                 PROTECTION_PVC)}})
