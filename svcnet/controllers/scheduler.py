"""The scheduler: binds pods without ``spec.nodeName`` to a Ready node.

A deliberately small version of kube-scheduler's default profile, enough for Services to have
somewhere to run: filter nodes (Ready, schedulable unless the pod tolerates the
``node.kubernetes.io/unschedulable`` taint, ``nodeSelector`` labels and the required node
affinity match — ``matchExpressions`` on labels and ``matchFields`` on ``metadata.name``, which is
how DaemonSet pods are pinned to their node —, no NoSchedule/NoExecute taint the pod does not
tolerate, and the volume binding below), then pick the node running the fewest
pods (ties by name, so placement is predictable). The decision is the pure
:func:`choose_node`; :class:`Scheduler` feeds it from informers and writes the decision through
the ``pods/binding`` subresource, as kube-scheduler does. A pod no node can take stays Pending
with a ``FailedScheduling`` Warning event and is retried with back-off, and at once whenever a
node, a claim or a volume changes.

Volume binding (upstream's VolumeBinding plugin, cut down; :func:`pod_volumes`): every
``persistentVolumeClaim`` the pod names must exist and not be being deleted; a bound claim's
volume restricts the pod to the nodes its ``nodeAffinity`` allows ("node(s) had volume node
affinity conflict"); an unbound claim of a class that binds ``Immediate`` (or of no class)
keeps the pod Pending ("pod has unbound immediate PersistentVolumeClaims") until the PV binder
binds it; an unbound claim of a ``WaitForFirstConsumer`` class is decided by the pod's node:
before binding the pod, the scheduler writes that node into the claim's
``volume.kubernetes.io/selected-node`` annotation, which the class's provisioner waits for
(svcnet/controllers/localpath.py). Upstream also waits, before binding the pod, until such
claims are bound; here the pod is bound at once and its node agent waits for the claim.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from svcnet.api.errors import StatusError
from svcnet.api.podrefs import pod_claim_names
from svcnet.api.storageclasses import ANN_SELECTED_NODE, WAIT_FOR_FIRST_CONSUMER, claim_class
from svcnet.client.controller import Controller, RequeueError
from svcnet.client.events import EventRecorder
from svcnet.client.informer import EventHandler, Informer, InformerFactory, object_key, split_key
from svcnet.client.rest import (
    NODES,
    PERSISTENTVOLUMECLAIMS,
    PERSISTENTVOLUMES,
    PODS,
    STORAGECLASSES,
    PatchType,
    RESTClient,
)
from svcnet.util.clock import Clock, RealClock

log = logging.getLogger(__name__)

Obj = dict[str, Any]
COMPONENT: Final = "default-scheduler"
_TERMINAL_PHASES: Final = frozenset({"Succeeded", "Failed"})


def node_ready(node: Mapping[str, Any]) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def tolerates(pod: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Whether one of the pod's tolerations tolerates ``taint``."""
    for t in (pod.get("spec") or {}).get("tolerations") or []:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t.get("key") == taint.get(
                "key")):
            return True
        if t.get("key") == taint.get("key") and t.get("value", "") == taint.get("value", ""):
            return True
    return False


UNSCHEDULABLE_TAINT: Final = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


def _requirement_matches(req: Mapping[str, Any], value: str | None) -> bool:
    """One NodeSelectorRequirement against a label's (or field's) value (None: absent)."""
    op, values = req.get("operator"), [str(v) for v in req.get("values") or []]
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            have, want = int(value), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def _term_matches(term: Mapping[str, Any], labels: Mapping[str, str], name: str) -> bool:
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches no node
    return all(_requirement_matches(r, labels.get(str(r.get("key")))) for r in exprs) and all(
        r.get("key") == "metadata.name" and _requirement_matches(r, name) for r in fields)


def node_affinity_matches(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """The pod's ``nodeSelector`` and required node affinity (any of its terms) hold for the
    node (upstream's NodeAffinity filter, ``GetRequiredNodeAffinity``)."""
    spec = pod.get("spec") or {}
    meta = node.get("metadata") or {}
    labels: Mapping[str, str] = meta.get("labels") or {}
    selector: Mapping[str, str] = spec.get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms")
    if not terms:
        return True
    return any(_term_matches(t or {}, labels, str(meta.get("name", ""))) for t in terms)


@dataclass(frozen=True, slots=True)
class PodVolumes:
    """What a pod's claims ask of its node (:func:`pod_volumes`)."""

    error: str = ""
    """Why no node can take the pod now ("" if some may)."""
    bound: tuple[Mapping[str, Any], ...] = ()
    """The volumes of its bound claims: their node affinity must hold."""
    delayed: tuple[Mapping[str, Any], ...] = ()
    """Its unbound claims of WaitForFirstConsumer classes: told the chosen node."""


Lookup = Callable[[str], "Mapping[str, Any] | None"]


def pod_volumes(pod: Mapping[str, Any], claim_of: Lookup, volume_of: Lookup,
                class_of: Lookup) -> PodVolumes:
    """The pod's claims (``claim_of`` takes ``namespace/name``), their volumes and classes
    (by name): upstream's VolumeBinding PreFilter. Pure."""
    namespace = str((pod.get("metadata") or {}).get("namespace") or "")
    bound: list[Mapping[str, Any]] = []
    delayed: list[Mapping[str, Any]] = []
    for name in pod_claim_names(pod):
        claim = claim_of(f"{namespace}/{name}")
        if claim is None:
            return PodVolumes(error=f'persistentvolumeclaim "{name}" not found')
        if (claim.get("metadata") or {}).get("deletionTimestamp"):
            return PodVolumes(error=f'persistentvolumeclaim "{name}" is being deleted')
        volume_name = str((claim.get("spec") or {}).get("volumeName") or "")
        if volume_name:
            pv = volume_of(volume_name)
            if pv is None:
                return PodVolumes(error=f'pvc {name} bound to non-existent pv {volume_name}')
            bound.append(pv)
            continue
        class_name = claim_class(claim)
        storage_class = class_of(class_name) if class_name else None
        if storage_class is None or storage_class.get("volumeBindingMode") != \
                WAIT_FOR_FIRST_CONSUMER:
            return PodVolumes(error="pod has unbound immediate PersistentVolumeClaims")
        delayed.append(claim)
    return PodVolumes(bound=tuple(bound), delayed=tuple(delayed))


def volume_node_affinity_matches(pv: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """The volume's required node affinity holds for ``node`` (CheckNodeAffinity)."""
    meta = node.get("metadata") or {}
    labels: Mapping[str, str] = meta.get("labels") or {}
    terms = ((((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {})
             .get("nodeSelectorTerms"))
    return not terms or any(_term_matches(t or {}, labels, str(meta.get("name", "")))
                            for t in terms)


def volumes_fit(volumes: PodVolumes, node: Mapping[str, Any]) -> bool:
    """Every bound volume's node affinity holds for ``node`` (VolumeBinding Filter's
    ``checkBoundClaims``)."""
    return all(volume_node_affinity_matches(pv, node) for pv in volumes.bound)


def selected_node_fits(volumes: PodVolumes, node: Mapping[str, Any]) -> bool:
    """Every delayed claim that a node was chosen for already is on ``node``
    (FindPodVolumes' fast path)."""
    name = str((node.get("metadata") or {}).get("name", ""))
    return all(str(((c.get("metadata") or {}).get("annotations") or {}).get(
        ANN_SELECTED_NODE) or name) == name for c in volumes.delayed)


@dataclass(frozen=True, slots=True)
class Decision:
    node: str | None
    reason: str
    """Why no node fits (kube-scheduler's "0/N nodes are available: ..."), or ""."""


def needs_scheduling(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    return (not spec.get("nodeName") and not meta.get("deletionTimestamp")
            and (pod.get("status") or {}).get("phase", "Pending") not in _TERMINAL_PHASES
            and spec.get("schedulerName", COMPONENT) == COMPONENT)


def choose_node(pod: Mapping[str, Any], nodes: Iterable[Mapping[str, Any]],
                pods_per_node: Mapping[str, int],
                volumes: PodVolumes | None = None) -> Decision:
    """The node to bind ``pod`` to, or why there is none. Pure."""
    reasons: dict[str, int] = {}
    candidates: list[tuple[int, str]] = []
    all_nodes = list(nodes)
    if volumes is not None and volumes.error:
        return Decision(None, f"0/{len(all_nodes)} nodes are available: {volumes.error}.")
    for node in all_nodes:
        name = str((node.get("metadata") or {}).get("name", ""))
        spec = node.get("spec") or {}
        if not node_ready(node):
            why = "node(s) were not ready"
        elif spec.get("unschedulable") and not tolerates(pod, UNSCHEDULABLE_TAINT):
            why = "node(s) were unschedulable"
        elif not node_affinity_matches(pod, node):
            why = "node(s) didn't match Pod's node affinity/selector"
        elif any(t.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(pod, t)
                 for t in spec.get("taints") or []):
            why = "node(s) had untolerated taint"
        elif volumes is not None and not volumes_fit(volumes, node):
            why = "node(s) had volume node affinity conflict"
        elif volumes is not None and not selected_node_fits(volumes, node):
            why = "node(s) didn't find available persistent volumes to bind"
        else:
            candidates.append((pods_per_node.get(name, 0), name))
            continue
        reasons[why] = reasons.get(why, 0) + 1
    if candidates:
        return Decision(min(candidates)[1], "")
    detail = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
    text = f"0/{len(all_nodes)} nodes are available"
    return Decision(None, f"{text}: {detail}." if detail else f"{text}.")


class Scheduler:
    def __init__(self, client: RESTClient, pods: Informer, nodes: Informer, *,
                 clock: Clock | None = None,
                 storage: tuple[Informer, Informer, Informer] | None = None) -> None:
        """``storage``: the claims, volumes and StorageClasses informers (none: pods' claims
        are not looked at)."""
        self._client = client
        self.pods = pods
        self.nodes = nodes
        self.storage = storage
        self._clock: Clock = clock or RealClock()
        self.recorder = EventRecorder(client, COMPONENT, clock=self._clock)
        self.controller = Controller(COMPONENT, self.sync,
                                     informers=[pods, nodes, *(storage or ())],
                                     clock=self._clock)
        self._bound: dict[str, str] = {}
        """pod key → node we bound it to, until the cache shows the binding."""
        self._selected: dict[str, str] = {}
        """claim key → node we chose for it, until the cache shows the annotation."""
        pods.add_handler(EventHandler(on_add=self._on_pod, on_update=lambda _o, n:
                                      self._on_pod(n)))
        nodes.add_handler(EventHandler(on_add=self._on_node, on_update=lambda _o, n:
                                       self._on_node(n)))
        for informer in storage or ():  # a claim, volume or class came or changed
            informer.add_handler(EventHandler(on_add=self._on_node, on_update=lambda _o, n:
                                              self._on_node(n)))

    @classmethod
    def from_client(cls, client: RESTClient, *, clock: Clock | None = None,
                    informers: InformerFactory | None = None) -> Scheduler:
        factory = InformerFactory.of(informers, client, clock=clock)
        storage = (factory.informer(PERSISTENTVOLUMECLAIMS, name="persistentvolumeclaims"),
                   factory.informer(PERSISTENTVOLUMES, name="persistentvolumes"),
                   factory.informer(STORAGECLASSES, name="storageclasses"))
        return cls(client, factory.informer(PODS, name="pods"),
                   factory.informer(NODES, name="nodes"), clock=clock, storage=storage)

    def start(self) -> None:
        for informer in (self.pods, self.nodes, *(self.storage or ())):
            informer.start()
        self.controller.start()

    async def stop(self) -> None:
        await self.controller.stop()
        for informer in (self.pods, self.nodes, *(self.storage or ())):
            await informer.stop()

    def _pod_volumes(self, pod: Obj) -> PodVolumes | None:
        if self.storage is None:
            return None
        claims, volumes, classes = self.storage

        def claim_of(key: str) -> Mapping[str, Any] | None:
            """The cached claim, with the node this scheduler chose for it until the cache
            shows that choice (as ``_bound`` does for pods)."""
            claim = claims.get(key)
            chosen = self._selected.get(key)
            if claim is None or chosen is None:
                return claim
            meta = claim.get("metadata") or {}
            if (meta.get("annotations") or {}).get(ANN_SELECTED_NODE):
                self._selected.pop(key, None)
                return claim
            return {**claim, "metadata": {**meta, "annotations": {
                **(meta.get("annotations") or {}), ANN_SELECTED_NODE: chosen}}}
        return pod_volumes(pod, claim_of, volumes.get, classes.get)

    def _on_pod(self, pod: Obj) -> None:
        if needs_scheduling(pod):
            self.controller.queue.add(object_key(pod))
        else:
            self._bound.pop(object_key(pod), None)  # the cache caught up with our binding

    def _on_node(self, _node: Obj) -> None:
        # A node appeared or changed: pending pods may fit now.
        for pod in self.pods.list():
            self._on_pod(pod)

    def _pods_per_node(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for pod in self.pods.list():
            node = (pod.get("spec") or {}).get("nodeName") or self._bound.get(object_key(pod))
            if node and (pod.get("status") or {}).get("phase") not in _TERMINAL_PHASES:
                counts[node] = counts.get(node, 0) + 1
        return counts

    async def sync(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or not needs_scheduling(pod):
            self._bound.pop(key, None)
            return
        if key in self._bound:
            raise RequeueError("waiting for the cache to show the binding")
        volumes = self._pod_volumes(pod)
        decision = choose_node(pod, self.nodes.list(), self._pods_per_node(), volumes)
        if decision.node is None:
            await self.recorder.warning(pod, "FailedScheduling", decision.reason)
            raise RequeueError(decision.reason)
        namespace, name = split_key(key)
        for claim in volumes.delayed if volumes is not None else ():
            await self._select_node(claim, decision.node)
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": name, "namespace": namespace},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": decision.node}}
        try:
            await self._client.request("POST", PODS.path(namespace, name, "binding"),
                                       body=binding)
        except StatusError as e:
            if e.code == 404:
                return  # deleted meanwhile
            if e.code == 409:
                return  # bound by someone else (or being deleted): nothing left to do
            raise
        self._bound[key] = decision.node
        await self.recorder.normal(
            pod, "Scheduled", f"Successfully assigned {namespace}/{name} to {decision.node}")

    async def _select_node(self, claim: Mapping[str, Any], node: str) -> None:
        """VolumeBinding's PreBind for a delayed claim: its provisioner's node."""
        meta = claim.get("metadata") or {}
        if (meta.get("annotations") or {}).get(ANN_SELECTED_NODE) == node:
            return
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        await self._client.patch(
            PERSISTENTVOLUMECLAIMS, namespace, name,
            {"metadata": {"annotations": {ANN_SELECTED_NODE: node}}},
            patch_type=PatchType.MERGE)
        self._selected[f"{namespace}/{name}"] = node
