"""The Deployment controller: rolls a Deployment's pod template out through ReplicaSets.

Theory of operation (after ``pkg/controller/deployment/``: ``deployment_controller.go``,
``sync.go``, ``rolling.go``, ``recreate.go``, ``progress.go``, ``rollback.go`` and
``util/deployment_util.go``)
-------------------------------------------------------------------------------------------
A Deployment owns ReplicaSets, one per pod template it has had. The **new** ReplicaSet is the
one whose template equals the Deployment's, ignoring the ``pod-template-hash`` label
(:func:`equal_ignore_hash`); every other owned ReplicaSet is **old**. A new ReplicaSet is named
``<deployment>-<hash>`` where the hash is :func:`compute_hash` of the template (FNV-32a, plus
``status.collisionCount`` when a name collision forced a bump), rendered with Kubernetes' safe
alphabet; the hash is also added to the ReplicaSet's labels, selector and template labels, so
its pods carry it and the ReplicaSets of one Deployment never select each other's pods.

Each ReplicaSet carries annotations: ``deployment.kubernetes.io/revision`` (1 + the highest
revision among the old ones when it becomes the new one again; a re-used ReplicaSet records its
previous revisions in ``revision-history``), ``desired-replicas`` and ``max-replicas`` (the
Deployment's replicas and replicas + maxSurge when it was last scaled: how a later scaling
event is recognised and shared out). The Deployment gets the revision annotation too.

Three informers feed a queue of Deployment keys: Deployment events; ReplicaSet events mapped
to their controller (orphans to every Deployment whose selector matches them); and, for
Recreate Deployments, the deletion of their last pod (the signal to start the new pods).

:meth:`DeploymentController.sync` follows ``syncDeployment``:

1. the Deployment from the cache (gone → nothing); an empty selector selects everything and is
   refused with a ``SelectingAll`` warning;
2. claim ReplicaSets (adopt matching orphans, release those that stopped matching, as the
   ReplicaSet controller claims pods) and map pods to them;
3. being deleted → only the status is synced; then the ``Progressing`` condition records a
   pause or resume; paused → only scaling (and history cleanup); a ``deprecated.deployment.
   rollback.to`` annotation → roll back to that revision (today ``kubectl rollout undo`` does
   the same client-side by patching the template back from an old ReplicaSet, which this
   controller then sees as an ordinary template change to an existing ReplicaSet); a
   **scaling event** (an active ReplicaSet's ``desired-replicas`` differs from
   ``spec.replicas``) → scaling only;
4. otherwise roll out with the strategy:

   * **RollingUpdate** (:func:`new_rs_new_replicas`, :func:`plan_old_scale_down`): scale the new
     ReplicaSet up as far as ``replicas + maxSurge`` total pods allow; if nothing was scaled
     up, scale old ReplicaSets down, first their unavailable pods, then as far as keeping
     ``replicas - maxUnavailable`` available allows, counting the new ReplicaSet's unavailable
     pods against the budget. maxSurge rounds up and maxUnavailable down
     (:func:`resolve_fenceposts`; if both round to 0, maxUnavailable is 1). Availability is the
     ReplicaSets' ``status.availableReplicas``, so the rollout advances as the ReplicaSet
     controller reports pods Ready for ``minReadySeconds``;
   * **Recreate**: scale every old ReplicaSet to 0, wait until none of their pods is running
     (not Succeeded/Failed), then create the new ReplicaSet at full size;

   and, once complete, delete the oldest old ReplicaSets with no pods beyond
   ``revisionHistoryLimit``;
5. write the status (:func:`calculate_status`, :func:`rollout_status`): observedGeneration,
   replicas, updatedReplicas, readyReplicas, availableReplicas, unavailableReplicas, and the
   conditions ``Available`` (``MinimumReplicasAvailable``/``MinimumReplicasUnavailable``) and
   ``Progressing`` (``NewReplicaSetCreated``, ``FoundNewReplicaSet``, ``ReplicaSetUpdated``,
   ``NewReplicaSetAvailable``, ``ProgressDeadlineExceeded``, ``DeploymentPaused``/
   ``DeploymentResumed``). A rollout that stops progressing is looked at again when its
   ``progressDeadlineSeconds`` would expire.

Scaling (:func:`plan_proportional_scale`, ``DeploymentController.scale``): a single active
ReplicaSet (or none: the newest) is simply set to ``spec.replicas``; a saturated new one means
the old ones go to 0; during a rollout the difference to ``replicas + maxSurge`` is shared out
in proportion to each ReplicaSet's size (newer first when growing, older first when
shrinking), leftovers going to the largest.

Writes are upstream's: ReplicaSet updates are conditional on the cached resourceVersion (a 409
means the cache was stale: retry later); new ReplicaSets have deterministic names, so a
duplicate creation is an AlreadyExists that resolves to the existing one (or, if its template
differs, a hash collision that bumps ``status.collisionCount``). Status writes go through
``/status`` carrying the Deployment's annotations (the revision), which the status endpoint
accepts. Unlike upstream, the Deployment's resourceVersion is refreshed after each of its own
writes in a sync, so a second status write in the same sync does not conflict with the first.
"""

from __future__ import annotations

from svcnet.controllers.deployment.controller import (
    DeploymentController,
)
from svcnet.controllers.deployment.status import (
    calculate_status,
    deployment_complete,
    deployment_progressing,
    deployment_timed_out,
    rollout_status,
)
from svcnet.controllers.deployment.util import (
    COMPONENT,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    ROLLBACK_TO_ANNOTATION,
    cleanable_replica_sets,
    compute_hash,
    equal_ignore_hash,
    find_new_replica_set,
    find_old_replica_sets,
    fnv32a,
    get_proportion,
    last_revision,
    max_revision,
    max_surge,
    max_unavailable,
    new_replica_set,
    new_rs_new_replicas,
    plan_old_scale_down,
    plan_proportional_scale,
    resolve_fenceposts,
    safe_encode_string,
    scaled_value_from_int_or_percent,
    set_new_replica_set_annotations,
)

__all__ = [
    "COMPONENT",
    "DESIRED_REPLICAS_ANNOTATION",
    "MAX_REPLICAS_ANNOTATION",
    "REVISION_ANNOTATION",
    "REVISION_HISTORY_ANNOTATION",
    "ROLLBACK_TO_ANNOTATION",
    "DeploymentController",
    "calculate_status",
    "cleanable_replica_sets",
    "compute_hash",
    "deployment_complete",
    "deployment_progressing",
    "deployment_timed_out",
    "equal_ignore_hash",
    "find_new_replica_set",
    "find_old_replica_sets",
    "fnv32a",
    "get_proportion",
    "last_revision",
    "max_revision",
    "max_surge",
    "max_unavailable",
    "new_replica_set",
    "new_rs_new_replicas",
    "plan_old_scale_down",
    "plan_proportional_scale",
    "resolve_fenceposts",
    "rollout_status",
    "safe_encode_string",
    "scaled_value_from_int_or_percent",
    "set_new_replica_set_annotations",
]
