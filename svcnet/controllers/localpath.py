"""The local-path provisioner: a PersistentVolume on the node's disk for each claim of the
default ``standard`` StorageClass (provisioner ``svcnet.io/local-path``).

Theory of operation, after the local-path provisioner that kind and k3s install as their
default class (rancher/local-path-provisioner over kubernetes-sigs'
sig-storage-lib-external-provisioner):

* **when**: a claim is provisioned once it is unbound, its class names this provisioner, and
  the scheduler has chosen the node of its first consumer (the class binds
  ``WaitForFirstConsumer``: the scheduler writes the node into the claim's
  ``volume.kubernetes.io/selected-node`` annotation when it places a pod using the claim,
  upstream's VolumeBinding plugin). A class binding ``Immediate`` cannot tell on which node's
  disk the volume should be: such a claim gets a ``ProvisioningFailed`` Event, as the
  upstream provisioner's "configuration error, no node was specified";
* **what**: a volume named ``pvc-<claim uid>`` of the claim's size, access modes and class,
  the class's reclaim policy and mount options, a ``hostPath`` directory
  (``DirectoryOrCreate``) under the node's root, ``<root>/pvc-<uid>_<namespace>_<claim>``, a
  required node affinity to that node (``kubernetes.io/hostname``), and a ``claimRef`` to the
  claim, so that the PV binder binds exactly that pair. The node's root is where its agent
  says its local volumes go (the Node's ``svcnet.io/local-path-root`` annotation: under the
  agent's state directory, so that ``svcnet down`` removes them with the cluster). Only
  ``Filesystem`` claims: a ``Block`` claim is refused with an Event;
* **deletion**: a volume this provisioner made that is ``Released`` with reclaim policy
  ``Delete`` has its directory removed on its node by a helper pod (as upstream's provisioner
  does: ``kube-system/delete-pvc-<uid>``, runtime class ``process``, so that it runs ``rm``
  on the node's filesystem whatever the node's container runtime), then the volume itself is
  deleted. Only the directory this provisioner would have made for the volume on its node is
  ever removed (:func:`deletable_path`: a volume edited or made by hand with the
  provisioner's annotation gets a ``VolumeFailedDelete`` Event instead). A failed helper is
  reported on the volume and retried with the controller's back-off (15 tries);
* the Events (``Provisioning``, ``ProvisioningSucceeded``, ``ProvisioningFailed``,
  ``VolumeFailedDelete``) say what happened, with the library's texts.

The volume is a pure function of the claim, the class and the node (:func:`volume_for`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from svcnet.api.access import annotations_of, map_of, meta_of, name_of, namespace_of, str_of
from svcnet.api.errors import StatusError
from svcnet.api.runtimeclasses import HANDLER_PROCESS
from svcnet.api.storageclasses import (
    ANN_SELECTED_NODE,
    LOCAL_PATH_PROVISIONER,
    LOCAL_PATH_ROOT_ANNOTATION,
    WAIT_FOR_FIRST_CONSUMER,
    claim_class,
)
from svcnet.client.controller import Controller, InformerController, RequeueError
from svcnet.client.events import EventRecorder
from svcnet.client.informer import EventHandler, Informer, InformerFactory
from svcnet.client.rest import (
    NODES,
    PERSISTENTVOLUMECLAIMS,
    PERSISTENTVOLUMES,
    PODS,
    STORAGECLASSES,
    RESTClient,
)
from svcnet.util.clock import Clock, RealClock

__all__ = ["COMPONENT", "LocalPathProvisioner", "ProvisionError", "deletable_path", "helper_pod",
           "volume_for", "volume_path"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ObjMap = Mapping[str, Any]

COMPONENT: Final = LOCAL_PATH_PROVISIONER
PROVISIONED_BY: Final = "pv.kubernetes.io/provisioned-by"
HOSTNAME_LABEL: Final = "kubernetes.io/hostname"
HELPER_NAMESPACE: Final = "kube-system"


class ProvisionError(Exception):
    """The claim cannot be provisioned; the message is the ``ProvisioningFailed`` Event's."""


def volume_name(claim: ObjMap) -> str:
    return f"pvc-{meta_of(claim).get('uid', '')}"


def volume_path(root: str, volume: str, namespace: str, claim: str) -> str:
    """Where a volume's directory is: ``<root>/<volume>_<namespace>_<claim>``."""
    return f"{root.rstrip('/')}/{volume}_{namespace}_{claim}"


def deletable_path(volume: ObjMap, node: ObjMap | None) -> str:
    """The directory a helper pod may remove for ``volume``: the one this provisioner would
    have made for it on its node. Raises :class:`ProvisionError` for anything else (a volume
    edited, or made by hand with the provisioner's annotation), so that a helper never runs
    ``rm -rf`` on a path it did not make."""
    spec = map_of(volume, "spec")
    ref = map_of(spec, "claimRef")
    path = str_of(map_of(spec, "hostPath"), "path")
    root = str(annotations_of(node).get(LOCAL_PATH_ROOT_ANNOTATION) or "") if node else ""
    expected = volume_path(root, name_of(volume), str_of(ref, "namespace"),
                           str_of(ref, "name")) if root else ""
    if not expected or path != expected or not path.startswith("/") or ".." in path.split("/"):
        raise ProvisionError(f"refusing to delete {path!r}: not a directory this "
                             f"provisioner made on node {volume_node(volume)!r}")
    return path


def volume_for(claim: ObjMap, storage_class: ObjMap, node: ObjMap) -> Obj:
    """The PersistentVolume for ``claim`` on ``node``. Raises :class:`ProvisionError`."""
    spec = map_of(claim, "spec")
    if spec.get("volumeMode") == "Block":
        raise ProvisionError(f"{LOCAL_PATH_PROVISIONER} provides Filesystem volumes only")
    root = str(annotations_of(node).get(LOCAL_PATH_ROOT_ANNOTATION) or "")
    if not root:
        raise ProvisionError(f"node {name_of(node)} does not say where its local volumes go "
                             f"(annotation {LOCAL_PATH_ROOT_ANNOTATION})")
    size = map_of(map_of(spec, "resources"), "requests").get("storage")
    if size is None:
        raise ProvisionError("the claim requests no storage")
    name = volume_name(claim)
    meta = meta_of(claim)
    pv_spec: Obj = {
        "capacity": {"storage": size},
        "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
        "persistentVolumeReclaimPolicy": str_of(storage_class, "reclaimPolicy") or "Delete",
        "storageClassName": name_of(storage_class),
        "volumeMode": "Filesystem",
        "hostPath": {"path": volume_path(root, name, namespace_of(claim), name_of(claim)),
                     "type": "DirectoryOrCreate"},
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": HOSTNAME_LABEL, "operator": "In", "values": [name_of(node)]}]}]}},
        "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                     "namespace": namespace_of(claim), "name": name_of(claim),
                     "uid": meta.get("uid", ""), "resourceVersion":
                         meta.get("resourceVersion", "")},
    }
    if storage_class.get("mountOptions"):
        pv_spec["mountOptions"] = list(storage_class["mountOptions"])
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {PROVISIONED_BY: LOCAL_PATH_PROVISIONER}},
            "spec": pv_spec}


def volume_node(volume: ObjMap) -> str:
    """The node of a volume this provisioner made (its node affinity's one hostname)."""
    for term in map_of(map_of(map_of(volume, "spec"), "nodeAffinity"), "required").get(
            "nodeSelectorTerms") or []:
        for req in (term or {}).get("matchExpressions") or []:
            if req.get("key") == HOSTNAME_LABEL and req.get("values"):
                return str(req["values"][0])
    return ""


def helper_pod(volume: ObjMap, path: str) -> Obj:
    """The pod that removes a released volume's directory (``path``, from
    :func:`deletable_path`) on its node."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"delete-{name_of(volume)}", "namespace": HELPER_NAMESPACE,
                         "labels": {"app": "local-path-helper"}},
            "spec": {"nodeName": volume_node(volume), "restartPolicy": "Never",
                     "runtimeClassName": HANDLER_PROCESS,
                     "tolerations": [{"operator": "Exists"}],
                     "containers": [{"name": "delete", "image": "svcnet/local-path-helper",
                                     "command": ["rm", "-rf", "--", path]}]}}


class LocalPathProvisioner(InformerController):
    def __init__(self, client: RESTClient, *, clock: Clock | None = None,
                 informers: InformerFactory | None = None,
                 recorder: EventRecorder | None = None) -> None:
        self._client = client
        self._clock: Clock = clock or RealClock()
        factory = InformerFactory.of(informers, client, clock=self._clock)
        self.claims = factory.informer(PERSISTENTVOLUMECLAIMS, name="persistentvolumeclaims")
        self.volumes = factory.informer(PERSISTENTVOLUMES, name="persistentvolumes")
        self.classes = factory.informer(STORAGECLASSES, name="storageclasses")
        self.nodes = factory.informer(NODES, name="nodes")
        self.pods = factory.informer(PODS, name="pods")
        self.recorder = recorder or EventRecorder(client, COMPONENT, clock=self._clock)
        self.controller = Controller("local-path-provisioner", self.sync, clock=self._clock,
                                     informers=[self.claims, self.volumes, self.classes,
                                                self.nodes, self.pods])
        queue = self.controller.queue
        self.claims.add_handler(EventHandler.for_keys(lambda k: queue.add(f"claim:{k}")))
        self.volumes.add_handler(EventHandler.for_keys(lambda k: queue.add(f"volume:{k}")))
        self.pods.add_handler(EventHandler(
            on_update=lambda _old, new: self._helper_changed(new)))
        self.nodes.add_handler(EventHandler(  # a node that says where its volumes go
            on_add=self._node_changed, on_update=lambda _old, new: self._node_changed(new)))

    @classmethod
    def from_client(cls, client: RESTClient, *, clock: Clock | None = None,
                    informers: InformerFactory | None = None) -> LocalPathProvisioner:
        return cls(client, clock=clock, informers=informers)

    @property
    def informers(self) -> tuple[Informer, ...]:
        return (self.claims, self.volumes, self.classes, self.nodes, self.pods)

    def _node_changed(self, node: ObjMap) -> None:
        for claim in self.claims.list():
            if annotations_of(claim).get(ANN_SELECTED_NODE) == name_of(node) and not map_of(
                    claim, "spec").get("volumeName"):
                self.controller.queue.add(f"claim:{namespace_of(claim)}/{name_of(claim)}")

    def _helper_changed(self, pod: ObjMap) -> None:
        name = name_of(pod)
        if namespace_of(pod) == HELPER_NAMESPACE and name.startswith("delete-pvc-"):
            self.controller.queue.add(f"volume:{name.removeprefix('delete-')}")

    async def sync(self, key: str) -> None:
        kind, _, name = key.partition(":")
        if kind == "claim":
            await self._sync_claim(name)
        else:
            await self._sync_volume(name)

    # -- provisioning ------------------------------------------------------------------------

    async def _sync_claim(self, key: str) -> None:
        claim = self.claims.get(key)
        if claim is None or map_of(claim, "spec").get("volumeName") or meta_of(claim).get(
                "deletionTimestamp"):
            return
        class_name = claim_class(claim)
        storage_class = self.classes.get(class_name) if class_name else None
        if storage_class is None or storage_class.get("provisioner") != LOCAL_PATH_PROVISIONER:
            return
        if self.volumes.get(volume_name(claim)) is not None:
            return  # made already: the PV binder binds the pair
        if storage_class.get("volumeBindingMode") != WAIT_FOR_FIRST_CONSUMER:
            await self.recorder.warning(claim, "ProvisioningFailed",
                                        "configuration error, no node was specified")
            return
        node_name = str(annotations_of(claim).get(ANN_SELECTED_NODE) or "")
        if not node_name:
            return  # the scheduler has not placed a consumer yet
        node = self.nodes.get(node_name)
        if node is None:
            await self.recorder.warning(claim, "ProvisioningFailed",
                                        f'failed to provision volume with StorageClass '
                                        f'"{class_name}": node "{node_name}" not found')
            return
        try:
            volume = volume_for(claim, storage_class, node)
        except ProvisionError as e:
            await self.recorder.warning(claim, "ProvisioningFailed",
                                        f'failed to provision volume with StorageClass '
                                        f'"{class_name}": {e}')
            return
        await self.recorder.normal(claim, "Provisioning", "External provisioner is "
                                   f'provisioning volume for claim "{key}"')
        try:
            await self._client.create(PERSISTENTVOLUMES, volume)
        except StatusError as e:
            if e.code != 409:  # 409: made by an earlier try whose answer was lost
                raise
        await self.recorder.normal(claim, "ProvisioningSucceeded",
                                   f"Successfully provisioned volume {name_of(volume)}")

    # -- deletion ---------------------------------------------------------------------------

    async def _sync_volume(self, name: str) -> None:
        volume = self.volumes.get(name)
        helper_key = f"{HELPER_NAMESPACE}/delete-{name}"
        helper = self.pods.get(helper_key)
        if volume is None:
            if helper is not None:
                await self._delete_helper(name)
            return
        spec, status = map_of(volume, "spec"), map_of(volume, "status")
        if (annotations_of(volume).get(PROVISIONED_BY) != LOCAL_PATH_PROVISIONER
                or status.get("phase") != "Released"
                or spec.get("persistentVolumeReclaimPolicy") != "Delete"
                or meta_of(volume).get("deletionTimestamp")):
            return
        if helper is None:
            node = self.nodes.get(volume_node(volume)) if volume_node(volume) else None
            try:
                path = deletable_path(volume, node)
            except ProvisionError as e:
                await self.recorder.warning(volume, "VolumeFailedDelete", str(e))
                return
            try:
                await self._client.create(PODS, helper_pod(volume, path))
            except StatusError as e:
                if e.code != 409:
                    raise
            return  # the helper's updates bring us back
        phase = str_of(map_of(helper, "status"), "phase")
        if phase == "Succeeded":
            try:
                await self._client.delete(PERSISTENTVOLUMES, "", name)
            except StatusError as e:
                if e.code != 404:
                    raise
            await self._delete_helper(name)
        elif phase == "Failed":
            await self.recorder.warning(volume, "VolumeFailedDelete",
                                        f"failed to delete volume {name}: the helper pod "
                                        f"{helper_key} failed")
            await self._delete_helper(name)
            raise RequeueError(f"deleting the directory of {name} failed")

    async def _delete_helper(self, name: str) -> None:
        try:
            await self._client.delete(PODS, HELPER_NAMESPACE, f"delete-{name}")
        except StatusError as e:
            if e.code != 404:
                raise

