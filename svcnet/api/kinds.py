"""The catalogue of kinds svcnet serves: names, scope, and their pure defaulting/validation.

One table that the registry strategies, the offline ``svcnet validate`` command and (later) the
API server's discovery read, so a kind is described once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from svcnet.api import (
    admissionregistration,
    autoscaling,
    autoscalingv1,
    batch,
    certificates,
    configs,
    controllerrevisions,
    daemonsets,
    endpointslices,
    errors,
    ingresses,
    limitranges,
    namespaces,
    networkpolicies,
    nodes,
    pods,
    policy,
    priorityclasses,
    replicationcontrollers,
    resourcequotas,
    runtimeclasses,
    serviceaccounts,
    servicecidrs,
    services,
    statefulsets,
    storageclasses,
    volumes,
    workloads,
)
from svcnet.api.errors import FieldError

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Kind:
    api_version: str
    kind: str
    resource: str
    namespaced: bool
    default: Callable[[Obj], Obj]
    validate_create: Callable[[Obj], list[FieldError]]

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]


def _service_offline(svc: Obj) -> Obj:
    """What the server does before validating a new Service, minus allocation."""
    svc = services.prepare_for_create(services.set_defaults_service(svc))
    svc = services.normalize_cluster_ips(svc, None)
    svc, _ = services.init_ip_family_fields(svc, None)
    if services.needs_health_check_node_port(svc) and not svc["spec"].get(
            "healthCheckNodePort"):
        # The server allocates it before validating; stand in for that allocation.
        svc["spec"]["healthCheckNodePort"] = 30000
    return svc


def _pod_offline(pod: Obj) -> Obj:
    return pods.prepare_pod_for_create(pods.set_defaults_pod(pod))


def _namespace_offline(ns: Obj) -> Obj:
    return namespaces.prepare_namespace_for_create(namespaces.set_defaults_namespace(ns))


def _node_offline(node: Obj) -> Obj:
    return nodes.prepare_node_for_create(nodes.set_defaults_node(node))


def _endpointslice_offline(eps: Obj) -> Obj:
    return endpointslices.prepare_endpointslice_for_create(
        endpointslices.set_defaults_endpointslice(eps))


def _as_is(obj: Obj) -> Obj:
    return obj


def _validate_pod(pod: Obj) -> list[FieldError]:
    return pods.validate_pod(pod)


def _deployment_offline(obj: Obj) -> Obj:
    return workloads.prepare_deployment_for_create(workloads.set_defaults_deployment(obj))


def _replicaset_offline(obj: Obj) -> Obj:
    return workloads.prepare_replicaset_for_create(workloads.set_defaults_replicaset(obj))


def _daemonset_offline(obj: Obj) -> Obj:
    return daemonsets.prepare_daemonset_for_create(daemonsets.set_defaults_daemonset(obj))


def _statefulset_offline(obj: Obj) -> Obj:
    return statefulsets.prepare_statefulset_for_create(statefulsets.set_defaults_statefulset(obj))


def _rc_offline(obj: Obj) -> Obj:
    return replicationcontrollers.prepare_rc_for_create(replicationcontrollers.set_defaults_rc(obj))


def _persistent_volume_offline(obj: Obj) -> Obj:
    return volumes.prepare_for_create(volumes.set_defaults_persistent_volume(obj))


def _persistent_volume_claim_offline(obj: Obj) -> Obj:
    return volumes.prepare_for_create(volumes.set_defaults_persistent_volume_claim(obj))


def _job_offline(obj: Obj) -> Obj:
    # The server generates the selector from the uid it assigns; stand in for that uid.
    obj = batch.set_defaults_job(obj)
    obj["metadata"].setdefault("uid", "00000000-0000-0000-0000-000000000000")
    return batch.prepare_job_for_create(obj)


def _cronjob_offline(obj: Obj) -> Obj:
    return batch.prepare_cronjob_for_create(batch.set_defaults_cronjob(obj))


KINDS: dict[tuple[str, str], Kind] = {
    ("apps/v1", "Deployment"): Kind("apps/v1", "Deployment", "deployments", True,
                                    _deployment_offline, workloads.validate_deployment),
    ("apps/v1", "ReplicaSet"): Kind("apps/v1", "ReplicaSet", "replicasets", True,
                                    _replicaset_offline, workloads.validate_replicaset),
    ("apps/v1", "DaemonSet"): Kind("apps/v1", "DaemonSet", "daemonsets", True,
                                   _daemonset_offline, daemonsets.validate_daemonset),
    ("apps/v1", "StatefulSet"): Kind("apps/v1", "StatefulSet", "statefulsets", True,
                                     _statefulset_offline, statefulsets.validate_statefulset),
    ("apps/v1", "ControllerRevision"): Kind("apps/v1", "ControllerRevision",
                                            "controllerrevisions", True, lambda obj: obj,
                                            controllerrevisions.validate_controller_revision),
    ("v1", "ReplicationController"): Kind("v1", "ReplicationController",
                                          "replicationcontrollers", True, _rc_offline,
                                          replicationcontrollers.validate_rc),
    ("batch/v1", "Job"): Kind("batch/v1", "Job", "jobs", True, _job_offline,
                              batch.validate_job),
    ("batch/v1", "CronJob"): Kind("batch/v1", "CronJob", "cronjobs", True, _cronjob_offline,
                                  batch.validate_cronjob),
    ("v1", "Service"): Kind("v1", "Service", "services", True, _service_offline,
                            services.validate_service_create),
    ("v1", "Pod"): Kind("v1", "Pod", "pods", True, _pod_offline, _validate_pod),
    ("v1", "Namespace"): Kind("v1", "Namespace", "namespaces", False, _namespace_offline,
                              namespaces.validate_namespace),
    ("v1", "Node"): Kind("v1", "Node", "nodes", False, _node_offline, nodes.validate_node),
    ("v1", "ConfigMap"): Kind("v1", "ConfigMap", "configmaps", True, _as_is,
                              configs.validate_config_map),
    ("v1", "Secret"): Kind("v1", "Secret", "secrets", True, configs.set_defaults_secret,
                           configs.validate_secret),
    ("v1", "LimitRange"): Kind("v1", "LimitRange", "limitranges", True,
                               limitranges.set_defaults_limit_range,
                               limitranges.validate_limit_range),
    ("v1", "ResourceQuota"): Kind("v1", "ResourceQuota", "resourcequotas", True, _as_is,
                                  resourcequotas.validate_resource_quota),
    ("v1", "ServiceAccount"): Kind("v1", "ServiceAccount", "serviceaccounts", True,
                                   serviceaccounts.prepare_service_account,
                                   serviceaccounts.validate_service_account),
    ("v1", "PersistentVolume"): Kind("v1", "PersistentVolume", "persistentvolumes", False,
                                     _persistent_volume_offline,
                                     volumes.validate_persistent_volume),
    ("v1", "PersistentVolumeClaim"): Kind("v1", "PersistentVolumeClaim",
                                          "persistentvolumeclaims", True,
                                          _persistent_volume_claim_offline,
                                          volumes.validate_persistent_volume_claim),
    ("node.k8s.io/v1", "RuntimeClass"): Kind(
        "node.k8s.io/v1", "RuntimeClass", "runtimeclasses", False, _as_is,
        runtimeclasses.validate_runtime_class),
    (admissionregistration.API_VERSION, admissionregistration.VALIDATING_KIND): Kind(
        admissionregistration.API_VERSION, admissionregistration.VALIDATING_KIND,
        "validatingwebhookconfigurations", False,
        admissionregistration.set_defaults_validating_webhook_configuration,
        admissionregistration.validate_validating_webhook_configuration),
    (admissionregistration.API_VERSION, admissionregistration.MUTATING_KIND): Kind(
        admissionregistration.API_VERSION, admissionregistration.MUTATING_KIND,
        "mutatingwebhookconfigurations", False,
        admissionregistration.set_defaults_mutating_webhook_configuration,
        admissionregistration.validate_mutating_webhook_configuration),
    (certificates.API_VERSION, certificates.KIND): Kind(
        certificates.API_VERSION, certificates.KIND, "certificatesigningrequests", False,
        _as_is, certificates.validate_csr),
    ("scheduling.k8s.io/v1", "PriorityClass"): Kind(
        "scheduling.k8s.io/v1", "PriorityClass", "priorityclasses", False,
        priorityclasses.set_defaults_priority_class, priorityclasses.validate_priority_class),
    ("networking.k8s.io/v1", "Ingress"): Kind(
        "networking.k8s.io/v1", "Ingress", "ingresses", True,
        ingresses.prepare_ingress_for_create, ingresses.validate_ingress),
    ("storage.k8s.io/v1", "StorageClass"): Kind(
        "storage.k8s.io/v1", "StorageClass", "storageclasses", False,
        storageclasses.set_defaults_storage_class, storageclasses.validate_storage_class),
    ("networking.k8s.io/v1", "IngressClass"): Kind(
        "networking.k8s.io/v1", "IngressClass", "ingressclasses", False,
        ingresses.set_defaults_ingress_class, ingresses.validate_ingress_class),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): Kind(
        "autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True,
        autoscaling.set_defaults_hpa, autoscaling.validate_hpa),
    ("autoscaling/v1", "HorizontalPodAutoscaler"): Kind(
        "autoscaling/v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True,
        autoscalingv1.set_defaults_hpa_v1, autoscalingv1.validate_hpa_v1),
    ("networking.k8s.io/v1", "NetworkPolicy"): Kind(
        "networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", True,
        networkpolicies.set_defaults_network_policy, networkpolicies.validate_network_policy),
    ("networking.k8s.io/v1", "ServiceCIDR"): Kind(
        "networking.k8s.io/v1", "ServiceCIDR", "servicecidrs", False, _as_is,
        servicecidrs.validate_service_cidr),
    ("networking.k8s.io/v1", "IPAddress"): Kind(
        "networking.k8s.io/v1", "IPAddress", "ipaddresses", False, _as_is,
        servicecidrs.validate_ip_address),
    ("policy/v1", "PodDisruptionBudget"): Kind(
        "policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", True,
        policy.prepare_pdb_for_create, policy.validate_pdb),
    ("discovery.k8s.io/v1", "EndpointSlice"): Kind(
        "discovery.k8s.io/v1", "EndpointSlice", "endpointslices", True, _endpointslice_offline,
        endpointslices.validate_endpointslice),
}


def lookup(api_version: str, kind: str) -> Kind | None:
    return KINDS.get((api_version, kind))


def check_object(obj: Obj, namespace: str = "default") -> Obj:
    """Default and validate a decoded object as the server would on create (no allocation).

    Returns the defaulted object or raises a 422 StatusError.
    """
    k = lookup(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    if k is None:
        raise errors.bad_request(
            f"no kind {obj.get('kind')!r} is registered for version {obj.get('apiVersion')!r}")
    obj = dict(obj)
    meta = dict(obj.get("metadata") or {})
    if k.namespaced:
        meta.setdefault("namespace", namespace)
    obj["metadata"] = meta
    obj = k.default(obj)
    errs = k.validate_create(obj)
    if errs:
        raise errors.invalid_error(k.kind, str(meta.get("name", "")), errs, k.group)
    return obj
