"""Strategies for the workload kinds: apps/v1 Deployments, ReplicaSets, DaemonSets and
StatefulSets and core/v1 ReplicationControllers; wiring of :mod:`svcnet.api.workloads`,
:mod:`svcnet.api.daemonsets`, :mod:`svcnet.api.statefulsets` and
:mod:`svcnet.api.replicationcontrollers` into the generic registry.

All these kinds have a generation (``metadata.generation``, bumped by the registry when
:meth:`generation_changed` says so) that their controllers echo in ``status.observedGeneration``.
For a Deployment an annotation change counts as a new generation too (upstream's
deploymentStrategy does this because the Deployment controller copies annotations onto the
ReplicaSet it runs). Deletion is immediate: dependents (ReplicaSets, pods) are removed by the
garbage collector (:mod:`svcnet.controllers.gc`) in the background, which is upstream's default
for apps/v1 (``DefaultGarbageCollectionPolicy`` = DeleteDependents).
"""

from __future__ import annotations

from typing import Any, ClassVar

from svcnet.api import (
    controllerrevisions,
    daemonsets,
    replicationcontrollers,
    statefulsets,
    workloads,
)
from svcnet.api.errors import FieldError
from svcnet.registry.generic import BaseStrategy

Obj = dict[str, Any]

__all__ = ["ControllerRevisionStrategy", "DaemonSetStrategy", "DeploymentStrategy",
           "ReplicaSetStrategy", "ReplicationControllerStrategy", "StatefulSetStrategy"]


class DeploymentStrategy(BaseStrategy):
    kind: ClassVar[str] = "Deployment"
    resource: ClassVar[str] = "deployments"
    group: ClassVar[str] = "apps"
    api_version: ClassVar[str] = "apps/v1"
    has_generation: ClassVar[bool] = True

    def default(self, obj: Obj) -> Obj:
        return workloads.set_defaults_deployment(obj)

    def prepare_for_create(self, obj: Obj) -> Obj:
        return workloads.prepare_deployment_for_create(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return workloads.prepare_deployment_for_update(new, old)

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        return workloads.deployment_generation_changed(new, old)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return workloads.validate_deployment(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return workloads.validate_deployment_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        return workloads.prepare_deployment_for_status_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return workloads.validate_deployment_status_update(new, old)


class ReplicaSetStrategy(BaseStrategy):
    kind: ClassVar[str] = "ReplicaSet"
    resource: ClassVar[str] = "replicasets"
    group: ClassVar[str] = "apps"
    api_version: ClassVar[str] = "apps/v1"
    has_generation: ClassVar[bool] = True

    def default(self, obj: Obj) -> Obj:
        return workloads.set_defaults_replicaset(obj)

    def prepare_for_create(self, obj: Obj) -> Obj:
        return workloads.prepare_replicaset_for_create(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return workloads.prepare_replicaset_for_update(new, old)

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        return workloads.replicaset_generation_changed(new, old)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return workloads.validate_replicaset(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return workloads.validate_replicaset_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        return workloads.prepare_replicaset_for_status_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return workloads.validate_replicaset_status_update(new, old)


class DaemonSetStrategy(BaseStrategy):
    kind: ClassVar[str] = "DaemonSet"
    resource: ClassVar[str] = "daemonsets"
    group: ClassVar[str] = "apps"
    api_version: ClassVar[str] = "apps/v1"
    has_generation: ClassVar[bool] = True

    def default(self, obj: Obj) -> Obj:
        return daemonsets.set_defaults_daemonset(obj)

    def prepare_for_create(self, obj: Obj) -> Obj:
        return daemonsets.prepare_daemonset_for_create(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return daemonsets.prepare_daemonset_for_update(new, old)

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        return workloads.replicaset_generation_changed(new, old)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return daemonsets.validate_daemonset(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return daemonsets.validate_daemonset_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        return daemonsets.prepare_daemonset_for_status_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return daemonsets.validate_daemonset_status_update(new, old)


class StatefulSetStrategy(BaseStrategy):
    kind: ClassVar[str] = "StatefulSet"
    resource: ClassVar[str] = "statefulsets"
    group: ClassVar[str] = "apps"
    api_version: ClassVar[str] = "apps/v1"
    has_generation: ClassVar[bool] = True

    def default(self, obj: Obj) -> Obj:
        return statefulsets.set_defaults_statefulset(obj)

    def prepare_for_create(self, obj: Obj) -> Obj:
        return statefulsets.prepare_statefulset_for_create(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return statefulsets.prepare_statefulset_for_update(new, old)

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        return workloads.replicaset_generation_changed(new, old)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return statefulsets.validate_statefulset(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return statefulsets.validate_statefulset_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        return statefulsets.prepare_statefulset_for_status_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return statefulsets.validate_statefulset_status_update(new, old)


class ControllerRevisionStrategy(BaseStrategy):
    """No defaulting, no generation, no status: only validation (upstream's strategy)."""

    kind: ClassVar[str] = "ControllerRevision"
    resource: ClassVar[str] = "controllerrevisions"
    group: ClassVar[str] = "apps"
    api_version: ClassVar[str] = "apps/v1"

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return controllerrevisions.validate_controller_revision(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return controllerrevisions.validate_controller_revision_update(new, old)


class ReplicationControllerStrategy(BaseStrategy):
    kind: ClassVar[str] = "ReplicationController"
    resource: ClassVar[str] = "replicationcontrollers"
    has_generation: ClassVar[bool] = True

    def default(self, obj: Obj) -> Obj:
        return replicationcontrollers.set_defaults_rc(obj)

    def prepare_for_create(self, obj: Obj) -> Obj:
        return replicationcontrollers.prepare_rc_for_create(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> Obj:
        return replicationcontrollers.prepare_rc_for_update(new, old)

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        return workloads.replicaset_generation_changed(new, old)

    def validate_create(self, obj: Obj) -> list[FieldError]:
        return replicationcontrollers.validate_rc(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return replicationcontrollers.validate_rc_update(new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        return replicationcontrollers.prepare_rc_for_status_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return replicationcontrollers.validate_rc_status_update(new, old)
