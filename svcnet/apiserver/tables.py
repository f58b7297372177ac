"""Server-side printing: objects → ``meta.k8s.io/v1`` Table, with Kubernetes' own columns.

kubectl (1.x) never formats built-in kinds itself: ``kubectl get`` asks for
``application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the cells the server computed. A
server without Tables gets only ``NAME AGE``. So the columns and every cell here follow the
upstream printers in ``pkg/printers/internalversion/printers.go`` (``printService``,
``printPod``, ``printNode``, ...) and ``duration.HumanDuration`` for ages, rule for rule.

Things a Table must get right for kubectl (docs/KUBECTL.md §4):

* the name column has ``format: "name"`` (gives the ``service/`` prefix in ``get svc,ep``);
* ``priority: 1`` columns are shown only with ``-o wide``. The server always fills them: the
  apiserver prints with ``Wide: true`` and kubectl hides what it does not want;
* ``rows[].object`` is a ``PartialObjectMetadata`` by default (kubectl reads namespace and
  labels from it for ``-A``, ``--show-labels`` and ``-L``) or the full object with
  ``includeObject=Object`` (``--sort-by``, which panics without it);
* ``metadata.resourceVersion`` is set on list Tables, or ``get -w`` prints rows twice;
* Age and the other durations are computed on the server, from the ``now`` passed in (the
  builders are pure: no clock is read here).

Objects are plain JSON dicts as stored (camelCase). Missing fields read as Go's zero values,
except where the v1 defaulting that every stored object went through guarantees a value
(``Service.spec.type`` → ``ClusterIP``, ``ports[].protocol`` → ``TCP``, ``replicas`` → 1);
those defaults are applied here too so an undefaulted object still prints sensibly.

Why this module is long: One printer per kind, as upstream's printers.go keeps them together;
they share the column and age helpers.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from svcnet.api import autoscalingv1, certificates, crds
from svcnet.api.access import as_dict as _dict, as_int as _int, as_list as _list, as_str as _str
from svcnet.api.labels import SelectorError, selector_from_label_selector
from svcnet.api.resourcelists import quantity_string
from svcnet.api.storageclasses import is_default_class
from svcnet.apiserver.discovery import parse_accept
from svcnet.util.clock import parse_time

__all__ = [
    "INCLUDE_OBJECT_VALUES",
    "TABLE_VERSIONS",
    "Column",
    "columns_for",
    "human_duration",
    "negotiate_table",
    "table_accepted",
    "table_for",
]

Obj = dict[str, Any]
Cell = str | int | bool | None

#: Values of the ``includeObject`` query parameter (metav1.IncludeObjectPolicy).
INCLUDE_OBJECT_VALUES = ("None", "Metadata", "Object")
#: ``meta.k8s.io`` versions a Table may be requested in.
TABLE_VERSIONS = ("v1", "v1beta1")

# ------------------------------------------------------------------------------- durations

_NS_PER_SECOND = 1_000_000_000


def _trunc_div(a: int, b: int) -> int:
    """Integer division truncating toward zero, as Go's ``/`` and ``int(float)`` do."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def human_duration(d: float | timedelta) -> str:
    """``duration.HumanDuration``: a duration with about 2-3 significant figures.

    ``d`` is seconds (a float) or a timedelta. Up to two seconds in the past counts as "now"
    (``0s``) to tolerate clock skew between machines; anything earlier is ``<invalid>``.
    Boundaries are exact: 119s stays ``119s``, 2m is ``2m``, 3h-1ms is ``179m``.
    """
    if isinstance(d, timedelta):
        ns = (d.days * 86_400 + d.seconds) * _NS_PER_SECOND + d.microseconds * 1000
    else:
        ns = round(d * _NS_PER_SECOND)
    seconds = _trunc_div(ns, _NS_PER_SECOND)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if dy == 0 else f"{years}y{dy}d"
    return f"{hours // 24 // 365}y"


def since(value: Any, now: datetime) -> str:
    """``translateTimestampSince``: the age of a timestamp, ``<unknown>`` when unset."""
    then = parse_time(value)
    if then is None:
        return "<unknown>"
    return human_duration(now - then)


# ---------------------------------------------------------------------------------- helpers


def _get(obj: Mapping[str, Any] | None, *path: str) -> Any:
    """Nested lookup that treats a missing or null step as absent."""
    cur: Any = obj
    for key in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(key)
    return cur


def _format_labels(labels: Any) -> str:
    """``labels.FormatLabels``: ``k=v`` pairs sorted by key, or ``<none>``."""
    pairs = _dict(labels)
    if not pairs:
        return "<none>"
    return ",".join(f"{k}={pairs[k]}" for k in sorted(pairs))


def _label_selector_string(selector: Any) -> str | None:
    """``LabelSelectorAsSelector(sel).String()``; None when the selector is invalid."""
    try:
        return str(selector_from_label_selector(selector if isinstance(selector, dict)
                                                else None))
    except SelectorError:
        return None


def _format_label_selector(selector: Any) -> str:
    """``metav1.FormatLabelSelector``: ``<none>`` for empty, ``<error>`` for invalid."""
    text = _label_selector_string(selector)
    if text is None:
        return "<error>"
    return text or "<none>"


def _join_host_port(host: str, port: int) -> str:
    """``net.JoinHostPort``: IPv6 literals get brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _list_with_more(items: list[str], more: bool, count: int, limit: int) -> str:
    """``listWithMoreString``: the first items, ``+ N more...``, or ``<unset>`` if empty."""
    text = ",".join(items)
    if more:
        return f"{text} + {count - limit} more..."
    return text or "<unset>"


def _containers(obj: Obj) -> tuple[str, str]:
    """``layoutContainerCells`` over ``spec.template.spec.containers``: names, images."""
    containers = [_dict(c) for c in _list(_get(obj, "spec", "template", "spec", "containers"))]
    return (",".join(_str(c.get("name")) for c in containers),
            ",".join(_str(c.get("image")) for c in containers))


# ---------------------------------------------------------------------------------- columns


@dataclass(frozen=True, slots=True)
class Column:
    """One ``TableColumnDefinition``."""

    name: str
    type: str = "string"
    format: str = ""
    priority: int = 0
    description: str = ""

    def definition(self) -> Obj:
        # metav1 serialises all five fields, empty or not, in this order.
        return {"name": self.name, "type": self.type, "format": self.format,
                "description": self.description, "priority": self.priority}


# Descriptions: the literal ones are upstream's; those upstream takes from API field docs are
# abbreviated to the field doc's first sentence (kubectl never shows them).
_NAME = Column("Name", format="name", description="Name must be unique within a namespace.")
_AGE = Column("Age", description="CreationTimestamp is a timestamp representing the server "
                                 "time when this object was created.")
_CONTAINERS = Column("Containers", priority=1,
                     description="Names of each container in the template.")
_IMAGES = Column("Images", priority=1,
                 description="Images referenced by each container in the template.")

_SERVICE_COLUMNS = (
    _NAME,
    Column("Type", description="type determines how the Service is exposed."),
    Column("Cluster-IP", description="clusterIP is the IP address of the service."),
    Column("External-IP", description="externalIPs is a list of IP addresses for which nodes "
                                      "in the cluster will also accept traffic for this "
                                      "service."),
    Column("Port(s)", description="The list of ports that are exposed by this service."),
    _AGE,
    Column("Selector", priority=1, description="Route service traffic to pods with label keys "
                                               "and values matching this selector."),
)
_POD_COLUMNS = (
    _NAME,
    Column("Ready", description="The aggregate readiness state of this pod for accepting "
                                "traffic."),
    Column("Status", description="The aggregate status of the containers in this pod."),
    Column("Restarts", description="The number of times the containers in this pod have been "
                                   "restarted and when the last container in this pod has "
                                   "restarted."),
    _AGE,
    Column("IP", priority=1, description="podIP address allocated to the pod."),
    Column("Node", priority=1, description="NodeName indicates in which node this pod is "
                                           "scheduled."),
    Column("Nominated Node", priority=1, description="nominatedNodeName is set only when this "
                                                     "pod preempts other pods on the node."),
    Column("Readiness Gates", priority=1, description="If specified, all readiness gates will "
                                                      "be evaluated for pod readiness."),
)
_NODE_COLUMNS = (
    _NAME,
    Column("Status", description="The status of the node"),
    Column("Roles", description="The roles of the node"),
    _AGE,
    Column("Version", description="Kubelet Version reported by the node."),
    Column("Internal-IP", priority=1, description="List of addresses reachable to the node."),
    Column("External-IP", priority=1, description="List of addresses reachable to the node."),
    Column("OS-Image", priority=1, description="OS Image reported by the node from "
                                               "/etc/os-release."),
    Column("Kernel-Version", priority=1, description="Kernel Version reported by the node "
                                                     "from 'uname -r'."),
    Column("Container-Runtime", priority=1, description="ContainerRuntime Version reported by "
                                                        "the node through runtime remote "
                                                        "API."),
)
_NAMESPACE_COLUMNS = (_NAME, Column("Status", description="The status of the namespace"), _AGE)
_ENDPOINTS_COLUMNS = (
    _NAME,
    Column("Endpoints", description="The set of all endpoints is the union of all subsets."),
    _AGE,
)
_ENDPOINT_SLICE_COLUMNS = (
    _NAME,
    Column("AddressType", description="addressType specifies the type of address carried by "
                                      "this EndpointSlice."),
    Column("Ports", description="ports specifies the list of network ports exposed by each "
                                "endpoint in this slice."),
    Column("Endpoints", description="endpoints is a list of unique endpoints in this slice."),
    _AGE,
)
_DEPLOYMENT_COLUMNS = (
    _NAME,
    Column("Ready", description="Number of the pod with ready state"),
    Column("Up-to-date", description="Total number of non-terminating pods targeted by this "
                                     "deployment that have the desired template spec."),
    Column("Available", description="Total number of available non-terminating pods (ready for "
                                    "at least minReadySeconds) targeted by this deployment."),
    _AGE,
    _CONTAINERS,
    _IMAGES,
    Column("Selector", priority=1, description="Label selector for pods."),
)
_REPLICA_SET_COLUMNS = (
    _NAME,
    Column("Desired", type="integer", description="Replicas is the number of desired pods."),
    Column("Current", type="integer", description="Replicas is the most recently observed "
                                                  "number of non-terminating pods."),
    Column("Ready", type="integer", description="The number of non-terminating pods targeted "
                                                "by this ReplicaSet with a Ready Condition."),
    _AGE,
    _CONTAINERS,
    _IMAGES,
    Column("Selector", priority=1, description="Selector is a label query over pods that "
                                               "should match the replica count."),
)
_EVENT_COLUMNS = (
    Column("Last Seen", description="The time at which the most recent occurrence of this "
                                    "event was recorded."),
    Column("Type", description="Type of this event (Normal, Warning), new types could be "
                               "added in the future"),
    Column("Reason", description="This should be a short, machine understandable string that "
                                 "gives the reason for the transition into the object's "
                                 "current status."),
    Column("Object", description="The object that this event is about."),
    Column("Subobject", priority=1, description="If referring to a piece of an object instead "
                                                "of an entire object, this string should "
                                                "contain a valid JSON/Go field access "
                                                "statement."),
    Column("Source", priority=1, description="The component reporting this event."),
    Column("Message", description="A human-readable description of the status of this "
                                  "operation."),
    Column("First Seen", priority=1, description="The time at which the event was first "
                                                 "recorded."),
    Column("Count", priority=1, description="The number of times this event has occurred."),
    Column("Name", format="name", priority=1, description=_NAME.description),
)
_LEASE_COLUMNS = (
    _NAME,
    Column("Holder", description="holderIdentity contains the identity of the holder of a "
                                 "current lease."),
    _AGE,
)
_BINDING_COLUMNS = (
    _NAME,
    Column("Role", description="RoleRef can reference a Role in the current namespace or a "
                               "ClusterRole in the global namespace. If the RoleRef cannot be "
                               "resolved, the Authorizer must return an error. This field is "
                               "immutable."),
    _AGE,
    Column("Users", priority=1, description="Users in the roleBinding"),
    Column("Groups", priority=1, description="Groups in the roleBinding"),
    Column("ServiceAccounts", priority=1, description="ServiceAccounts in the roleBinding"),
)
_CONFIG_MAP_COLUMNS = (
    _NAME,
    Column("Data", description="Data contains the configuration data."),
    _AGE,
)
_SECRET_COLUMNS = (
    _NAME,
    Column("Type", description="Used to facilitate programmatic handling of secret data."),
    Column("Data", description="Data contains the secret data."),
    _AGE,
)
_SERVICE_ACCOUNT_COLUMNS = (
    _NAME,
    Column("Secrets", description="Secrets is a list of the secrets in the same namespace that "
                                  "pods running using this ServiceAccount are allowed to use."),
    _AGE,
)
_DAEMON_SET_COLUMNS = (
    _NAME,
    Column("Desired", type="integer", description=(
        "The total number of nodes that should be running the daemon pod (including nodes "
        "correctly running the daemon pod). More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/")),
    Column("Current", type="integer", description=(
        "The number of nodes that are running at least 1 daemon pod and are supposed to run "
        "the daemon pod. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/")),
    Column("Ready", type="integer", description=(
        "numberReady is the number of nodes that should be running the daemon pod and have one "
        "or more of the daemon pod running with a Ready Condition.")),
    Column("Up-to-date", type="integer", description=(
        "The total number of nodes that are running updated daemon pod")),
    Column("Available", type="integer", description=(
        "The number of nodes that should be running the daemon pod and have one or more of the "
        "daemon pod running and available (ready for at least spec.minReadySeconds)")),
    Column("Node Selector", description=(
        "NodeSelector is a selector which must be true for the pod to fit on a node. Selector "
        "which must match a node's labels for the pod to be scheduled on that node. More info: "
        "https://kubernetes.io/docs/concepts/configuration/assign-pod-node/")),
    _AGE,
    _CONTAINERS,
    _IMAGES,
    Column("Selector", priority=1, description=(
        "A label query over pods that are managed by the daemon set. Must match in order to be "
        "controlled. It must match the pod template's labels. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/"
        "#label-selectors")),
)
_STATEFUL_SET_COLUMNS = (
    _NAME,
    Column("Ready", description="Number of the pod with ready state"),
    _AGE,
    _CONTAINERS,
    _IMAGES,
)
_CONTROLLER_REVISION_COLUMNS = (
    _NAME,
    Column("Controller", description="Controller of the object"),
    Column("Revision", description="Revision indicates the revision of the state represented "
           "by Data."),
    _AGE,
)
_REPLICATION_CONTROLLER_COLUMNS = (
    _NAME,
    Column("Desired", type="integer", description=(
        "Replicas is the number of desired replicas. This is a pointer to distinguish between "
        "explicit zero and unspecified. Defaults to 1. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller"
        "#what-is-a-replicationcontroller")),
    Column("Current", type="integer", description=(
        "Replicas is the most recently observed number of replicas. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller"
        "#what-is-a-replicationcontroller")),
    Column("Ready", type="integer", description=(
        "The number of ready replicas for this replication controller.")),
    _AGE,
    _CONTAINERS,
    _IMAGES,
    Column("Selector", priority=1, description=(
        "Selector is a label query over pods that should match the Replicas count. If Selector "
        "is empty, it is defaulted to the labels present on the Pod template. Label keys and "
        "values that must match in order to be controlled by this replication controller, if "
        "empty defaulted to labels on Pod template. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/"
        "#label-selectors")),
)
_JOB_SELECTOR = Column("Selector", priority=1, description="A label query over pods that "
                                                          "should match the pod count.")
_JOB_COLUMNS = (
    _NAME,
    Column("Status", description="Status of the job."),
    Column("Completions", description="The number of pods which reached phase Succeeded."),
    Column("Duration", description="Time required to complete the job."),
    _AGE,
    _CONTAINERS,
    _IMAGES,
    _JOB_SELECTOR,
)
_CRON_JOB_COLUMNS = (
    _NAME,
    Column("Schedule", description="The schedule in Cron format, see "
                                   "https://en.wikipedia.org/wiki/Cron."),
    Column("Timezone", description="The time zone name for the given schedule, see "
                                   "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
    Column("Suspend", type="boolean", description="This flag tells the controller to suspend "
                                                  "subsequent executions, it does not apply to "
                                                  "already started executions."),
    Column("Active", type="integer", description="A list of pointers to currently running "
                                                 "jobs."),
    Column("Last Schedule", description="Information when was the last time the job was "
                                        "successfully scheduled."),
    _AGE,
    _CONTAINERS,
    _IMAGES,
    _JOB_SELECTOR,
)
_RUNTIME_CLASS_COLUMNS = (
    _NAME,
    # Upstream describes it with ObjectMeta's (absent) doc of "handler": empty.
    Column("Handler"),
    _AGE,
)
#: printPriorityClass (1.32 added PreemptionPolicy, after Age and not wide).
_PRIORITY_CLASS_COLUMNS = (
    _NAME,
    Column("Value", type="integer",
           description="value represents the integer value of this priority class."),
    Column("Global-Default", type="boolean",
           description="globalDefault specifies whether this PriorityClass should be "
                       "considered as the default priority for pods that do not have any "
                       "priority class."),
    _AGE,
    Column("PreemptionPolicy", description="preemptionPolicy is the Policy for preempting "
                                           "pods with lower priority."),
)
#: printValidatingWebhook and printMutatingWebhook: the number of webhooks.
_WEBHOOK_CONFIGURATION_COLUMNS = (
    _NAME,
    Column("Webhooks", type="integer", description="Webhooks indicates the number of webhooks "
                                                   "registered in this configuration"),
    _AGE,
)
#: printCertificateSigningRequest.
_CSR_COLUMNS = (
    _NAME,
    _AGE,
    Column("SignerName", description=(
        "signerName indicates the requested signer, and is a qualified name.")),
    Column("Requestor", description=(
        'request contains an x509 certificate signing request encoded in a "CERTIFICATE '
        'REQUEST" PEM block. When serialized as JSON or YAML, the data is additionally '
        "base64-encoded.")),
    Column("RequestedDuration", description=(
        "expirationSeconds is the requested duration of validity of the issued certificate.")),
    Column("Condition", description=(
        'conditions applied to the request. Known conditions are "Approved", "Denied", and '
        '"Failed".')),
)
#: printStorageClass (AllowVolumeExpansion is declared a string column but holds a bool).
_STORAGE_CLASS_COLUMNS = (
    _NAME,
    Column("Provisioner", description="provisioner indicates the type of the provisioner."),
    Column("ReclaimPolicy", description="reclaimPolicy controls the reclaimPolicy for "
                                        "dynamically provisioned PersistentVolumes of this "
                                        "storage class. Defaults to Delete."),
    Column("VolumeBindingMode", description="volumeBindingMode indicates how "
                                            "PersistentVolumeClaims should be provisioned and "
                                            "bound.  When unset, VolumeBindingImmediate is "
                                            "used. This field is only honored by servers that "
                                            "enable the VolumeScheduling feature."),
    Column("AllowVolumeExpansion", description="allowVolumeExpansion shows whether the "
                                               "storage class allow volume expand."),
    _AGE,
)
_INGRESS_COLUMNS = (
    _NAME,
    Column("Class", description="The name of the IngressClass resource that should be used "
                                "for additional configuration"),
    Column("Hosts", description="Hosts that incoming requests are matched against before the "
                                "ingress rule"),
    Column("Address", description="Address is a list containing ingress points for the "
                                  "load-balancer"),
    Column("Ports", description="Ports of TLS configurations that open"),
    _AGE,
)
_INGRESS_CLASS_COLUMNS = (
    _NAME,
    Column("Controller", description="Controller that is responsible for handling this class"),
    Column("Parameters", description="A reference to a resource with additional parameters"),
    _AGE,
)
# Upstream describes these with autoscaling/v2beta1's field docs.
_HPA_COLUMNS = (
    _NAME,
    Column("Reference", description="scaleTargetRef points to the target resource to scale, "
                                    "and is used to the pods for which metrics should be "
                                    "collected, as well as to actually change the replica "
                                    "count."),
    Column("Targets", description="metrics contains the specifications for which to use to "
                                  "calculate the desired replica count (the maximum replica "
                                  "count across all metrics will be used)."),
    Column("MinPods", description="minReplicas is the lower limit for the number of replicas "
                                  "to which the autoscaler can scale down."),
    Column("MaxPods", type="integer", description="maxReplicas is the upper limit for the "
                                                  "number of replicas to which the autoscaler "
                                                  "can scale up."),
    Column("Replicas", type="integer", description="currentReplicas is current number of "
                                                   "replicas of pods managed by this "
                                                   "autoscaler, as last seen by the "
                                                   "autoscaler."),
    _AGE,
)
_PDB_COLUMNS = (
    _NAME,
    Column("Min Available", description="The minimum number or percentage of available pods "
                                        "this budget requires."),
    Column("Max Unavailable", description="The maximum number or percentage of unavailable "
                                          "pods this budget requires."),
    Column("Allowed Disruptions", type="integer",
           description="Calculated number of pods that may be disrupted at this time."),
    _AGE,
)
_NETWORK_POLICY_COLUMNS = (
    _NAME,
    # Upstream describes it with extensions/v1beta1's doc of NetworkPolicySpec.podSelector.
    Column("Pod-Selector", description=(
        "Selects the pods to which this NetworkPolicy object applies. The array of ingress "
        "rules is applied to any pods selected by this field. Multiple network policies can "
        "select the same set of pods. In this case, the ingress rules for each are combined "
        "additively. This field is NOT optional and follows standard label selector "
        "semantics. An empty podSelector matches all pods in this namespace.")),
    _AGE,
)
_SERVICE_CIDR_COLUMNS = (
    _NAME,
    Column("CIDRs", description="CIDRs defines the IP blocks in CIDR notation (e.g. "
                                "\"192.168.0.0/24\" or \"2001:db8::/64\") from which to "
                                "assign service cluster IPs. Max of two CIDRs is allowed, one "
                                "of each IP family. This field is immutable."),
    _AGE,
)
_IP_ADDRESS_COLUMNS = (
    _NAME,
    Column("ParentRef", description="ParentRef references the resource that an IPAddress "
                                    "is attached to. An IPAddress must reference a parent "
                                    "object."),
)
_PERSISTENT_VOLUME_COLUMNS = (
    _NAME,
    Column("Capacity", description="capacity is the description of the persistent volume's "
                                   "resources and capacity."),
    Column("Access Modes", description="accessModes contains all ways the volume can be "
                                       "mounted."),
    Column("Reclaim Policy", description="persistentVolumeReclaimPolicy defines what happens "
                                         "to a persistent volume when released from its "
                                         "claim."),
    Column("Status", description="phase indicates if a volume is available, bound to a claim, "
                                 "or released by a claim."),
    Column("Claim", description="claimRef is part of a bi-directional binding between "
                                "PersistentVolume and PersistentVolumeClaim."),
    Column("StorageClass", description="StorageClass of the pv"),
    Column("VolumeAttributesClass", description="VolumeAttributesClass of the pv"),
    Column("Reason", description="reason is a brief CamelCase string that describes any "
                                 "failure and is meant for machine parsing and tidy display in "
                                 "the CLI."),
    _AGE,
    Column("VolumeMode", priority=1, description="volumeMode defines if a volume is intended "
                                                 "to be used with a formatted filesystem or to "
                                                 "remain in raw block state."),
)
_PERSISTENT_VOLUME_CLAIM_COLUMNS = (
    _NAME,
    Column("Status", description="phase represents the current phase of "
                                 "PersistentVolumeClaim."),
    Column("Volume", description="volumeName is the binding reference to the PersistentVolume "
                                 "backing this claim."),
    Column("Capacity", description="capacity represents the actual resources of the "
                                   "underlying volume."),
    Column("Access Modes", description="accessModes contains the actual access modes the "
                                       "volume backing the PVC has."),
    Column("StorageClass", description="StorageClass of the pvc"),
    Column("VolumeAttributesClass", description="VolumeAttributesClass of the pvc"),
    _AGE,
    Column("VolumeMode", priority=1, description="volumeMode defines what type of volume is "
                                                 "required by the claim."),
)
#: printResourceQuota.
_RESOURCE_QUOTA_COLUMNS = (
    _NAME,
    _AGE,
    Column("Request", description="Request represents a minimum amount of cpu/memory that a "
                                  "container may consume."),
    Column("Limit", description="Limits control the maximum amount of cpu/memory that a "
                                "container may use independent of contention on the node."),
)
#: ``rest.DefaultTableConvertor``: what the apiserver prints for kinds without a printer.
_DEFAULT_COLUMNS = (
    _NAME,
    Column("Created At", type="date", description=_AGE.description),
)


# --------------------------------------------------------------------------------- printers


def _service_external_ip(svc: Obj, svc_type: str, wide: bool) -> str:
    """``getServiceExternalIP``."""
    external_ips = [_str(ip) for ip in _list(_get(svc, "spec", "externalIPs"))]
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) if external_ips else "<none>"
    if svc_type == "LoadBalancer":
        lb = _load_balancer_status(_get(svc, "status", "loadBalancer"), wide)
        if external_ips:
            return ",".join([*(lb.split(",") if lb else []), *external_ips])
        return lb or "<pending>"
    if svc_type == "ExternalName":
        return _str(_get(svc, "spec", "externalName"))
    return "<unknown>"


def _load_balancer_status(status: Any, wide: bool) -> str:
    """``loadBalancerStatusStringer``: the sorted set of ingress IPs (or hostnames).

    Clipped to 16 characters when not wide; the server always prints wide, so only direct
    callers see the clipping.
    """
    seen: set[str] = set()
    for ingress in _list(_get(status, "ingress")):
        ip, hostname = _str(_get(ingress, "ip")), _str(_get(ingress, "hostname"))
        if ip:
            seen.add(ip)
        elif hostname:
            seen.add(hostname)
    text = ",".join(sorted(seen))
    if not wide and len(text) > 16:
        text = text[:13] + "..."
    return text


def _port_string(ports: Iterable[Any]) -> str:
    """``makePortString``: ``80/TCP`` or, with a node port, ``80:30080/TCP``."""
    pieces = []
    for port in ports:
        number, protocol = _int(_get(port, "port")), _str(_get(port, "protocol")) or "TCP"
        node_port = _int(_get(port, "nodePort"))
        pieces.append(f"{number}:{node_port}/{protocol}" if node_port > 0
                      else f"{number}/{protocol}")
    return ",".join(pieces)


def _print_service(svc: Obj, now: datetime) -> list[Cell]:
    spec = _dict(svc.get("spec"))
    svc_type = _str(spec.get("type")) or "ClusterIP"
    # Upstream reads clusterIPs[0]; the v1→internal conversion fills clusterIPs from
    # clusterIP, so an object carrying only clusterIP prints the same.
    cluster_ips = [_str(ip) for ip in _list(spec.get("clusterIPs"))]
    internal_ip = (cluster_ips[0] if cluster_ips else _str(spec.get("clusterIP"))) or "<none>"
    ports = _port_string(_list(spec.get("ports"))) or "<none>"
    return [_name(svc), svc_type, internal_ip, _service_external_ip(svc, svc_type, True), ports,
            _age(svc, now), _format_labels(spec.get("selector"))]


def _is_restartable_init(container: Mapping[str, Any] | None) -> bool:
    """A sidecar: an init container with ``restartPolicy: Always``."""
    return container is not None and container.get("restartPolicy") == "Always"


def _condition_true(conditions: Iterable[Any], cond_type: str) -> bool:
    for cond in conditions:
        if _get(cond, "type") == cond_type:
            return bool(_get(cond, "status") == "True")
    return False


class _LastRestart:
    """The latest ``lastState.terminated.finishedAt`` seen, as Go's ``Before`` keeps it."""

    def __init__(self) -> None:
        self.when: datetime | None = None

    def see(self, status: Any) -> None:
        finished = parse_time(_get(status, "lastState", "terminated", "finishedAt"))
        if _get(status, "lastState", "terminated") is None:
            return
        if finished is not None and (self.when is None or self.when < finished):
            self.when = finished


def _terminated_reason(terminated: Mapping[str, Any], prefix: str) -> str:
    reason = _str(terminated.get("reason"))
    if reason:
        return prefix + reason
    signal = _int(terminated.get("signal"))
    if signal != 0:
        return f"{prefix}Signal:{signal}"
    return f"{prefix}ExitCode:{_int(terminated.get('exitCode'))}"


def _pod_status_and_counts(pod: Obj) -> tuple[str, int, int, int, datetime | None]:  # noqa: C901
    """``printPod``'s core: (status reason, ready, total, restarts, last restart time)."""
    spec, status = _dict(pod.get("spec")), _dict(pod.get("status"))
    init_specs = [_dict(c) for c in _list(spec.get("initContainers"))]
    by_name = {_str(c.get("name")): c for c in init_specs}
    conditions = _list(status.get("conditions"))

    total = len(_list(spec.get("containers"))) + sum(
        1 for c in init_specs if _is_restartable_init(c))
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart, last_sidecar_restart = _LastRestart(), _LastRestart()

    phase = _str(status.get("phase"))
    reason = _str(status.get("reason")) or phase
    for cond in conditions:
        if _get(cond, "type") == "PodScheduled" and _get(cond, "reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    for i, cs in enumerate(_dict(c) for c in _list(status.get("initContainerStatuses"))):
        restarts += _int(cs.get("restartCount"))
        last_restart.see(cs)
        sidecar = _is_restartable_init(by_name.get(_str(cs.get("name"))))
        if sidecar:
            sidecar_restarts += _int(cs.get("restartCount"))
            last_sidecar_restart.see(cs)
        terminated = _get(cs, "state", "terminated")
        waiting_reason = _str(_get(cs, "state", "waiting", "reason"))
        if isinstance(terminated, Mapping) and _int(terminated.get("exitCode")) == 0:
            continue
        if sidecar and cs.get("started") is True:
            if cs.get("ready") is True:
                ready += 1
            continue
        if isinstance(terminated, Mapping):
            reason = _terminated_reason(terminated, "Init:")
        elif (_get(cs, "state", "waiting") is not None and waiting_reason
              and waiting_reason != "PodInitializing"):
            reason = "Init:" + waiting_reason
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(conditions, "Initialized"):
        # Once initialised, only sidecar restarts count from the init containers.
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for cs in reversed([_dict(c) for c in _list(status.get("containerStatuses"))]):
            restarts += _int(cs.get("restartCount"))
            last_restart.see(cs)
            waiting_reason = _str(_get(cs, "state", "waiting", "reason"))
            terminated = _get(cs, "state", "terminated")
            if _get(cs, "state", "waiting") is not None and waiting_reason:
                reason = waiting_reason
            elif isinstance(terminated, Mapping):
                reason = _terminated_reason(terminated, "")
            elif cs.get("ready") is True and _get(cs, "state", "running") is not None:
                has_running = True
                ready += 1
        # A pod whose last container completed but another still runs is not "Completed".
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(conditions, "Ready") else "NotReady"

    deleting = _get(pod, "metadata", "deletionTimestamp") is not None
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return reason, ready, total, restarts, last_restart.when


def _print_pod(pod: Obj, now: datetime) -> list[Cell]:
    reason, ready, total, restarts, last_restart = _pod_status_and_counts(pod)
    restarts_text = str(restarts)
    if restarts != 0 and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration(now - last_restart)} ago)"

    spec, status = _dict(pod.get("spec")), _dict(pod.get("status"))
    pod_ips = _list(status.get("podIPs"))
    # podIPs[0] upstream; conversion fills podIPs from podIP for objects that only have that.
    pod_ip = (_str(_get(pod_ips[0], "ip")) if pod_ips else _str(status.get("podIP"))) or "<none>"
    readiness_gates = "<none>"
    gates = _list(spec.get("readinessGates"))
    if gates:
        conditions = _list(status.get("conditions"))
        passed = 0
        for gate in gates:
            for cond in conditions:
                if _get(cond, "type") == _get(gate, "conditionType"):
                    if _get(cond, "status") == "True":
                        passed += 1
                    break
        readiness_gates = f"{passed}/{len(gates)}"
    return [_name(pod), f"{ready}/{total}", reason, restarts_text, _age(pod, now), pod_ip,
            _str(spec.get("nodeName")) or "<none>",
            _str(status.get("nominatedNodeName")) or "<none>", readiness_gates]


_POD_SUCCEEDED = {"type": "Completed", "status": "True", "reason": "Succeeded",
                  "message": "The pod has completed successfully."}
_POD_FAILED = {"type": "Completed", "status": "True", "reason": "Failed",
               "message": "The pod failed."}


def _pod_conditions(pod: Obj) -> list[Obj]:
    """Row conditions: upstream marks finished pods as ``Completed`` rows."""
    phase = _get(pod, "status", "phase")
    if phase == "Succeeded":
        return [dict(_POD_SUCCEEDED)]
    if phase == "Failed":
        return [dict(_POD_FAILED)]
    return []


_NODE_ROLE_PREFIX = "node-role.kubernetes.io/"


def _node_roles(node: Obj) -> list[str]:
    """``findNodeRoles``: ``node-role.kubernetes.io/<role>`` keys and ``kubernetes.io/role``."""
    roles: set[str] = set()
    for key, value in _dict(_get(node, "metadata", "labels")).items():
        if key.startswith(_NODE_ROLE_PREFIX):
            role = key.removeprefix(_NODE_ROLE_PREFIX)
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(_str(value))
    return sorted(roles)


def _node_address(node: Obj, address_type: str) -> str:
    for address in _list(_get(node, "status", "addresses")):
        if _get(address, "type") == address_type:
            return _str(_get(address, "address"))
    return "<none>"


def _print_node(node: Obj, now: datetime) -> list[Cell]:
    states: list[str] = []
    ready = None
    for cond in _list(_get(node, "status", "conditions")):
        if _get(cond, "type") == "Ready":
            ready = cond  # the last one wins, like upstream's condition map
    if ready is not None:
        states.append("Ready" if _get(ready, "status") == "True" else "NotReady")
    else:
        states.append("Unknown")
    if _get(node, "spec", "unschedulable") is True:
        states.append("SchedulingDisabled")
    info = _dict(_get(node, "status", "nodeInfo"))
    return [_name(node), ",".join(states), ",".join(_node_roles(node)) or "<none>",
            _age(node, now), _str(info.get("kubeletVersion")),
            _node_address(node, "InternalIP"), _node_address(node, "ExternalIP"),
            _str(info.get("osImage")) or "<unknown>",
            _str(info.get("kernelVersion")) or "<unknown>",
            _str(info.get("containerRuntimeVersion")) or "<unknown>"]


def _print_namespace(ns: Obj, now: datetime) -> list[Cell]:
    return [_name(ns), _str(_get(ns, "status", "phase")), _age(ns, now)]


def _format_endpoints(endpoints: Obj) -> str:
    """``formatEndpoints``: up to three ``ip:port`` (or bare IPs), then `` + N more...``."""
    subsets = _list(endpoints.get("subsets"))
    if not subsets:
        return "<none>"
    limit, count, more = 3, 0, False
    shown: list[str] = []
    for subset in subsets:
        addresses = [_str(_get(a, "ip")) for a in _list(_get(subset, "addresses"))]
        ports = _list(_get(subset, "ports"))
        # Headless services may have no ports: then the addresses are listed bare.
        targets: list[int | None] = [_int(_get(p, "port")) for p in ports] if ports else [None]
        for port in targets:
            count += len(addresses)
            for ip in addresses:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(ip if port is None else _join_host_port(ip, port))
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if more else text


def _print_endpoints(endpoints: Obj, now: datetime) -> list[Cell]:
    return [_name(endpoints), _format_endpoints(endpoints), _age(endpoints, now)]


def _format_discovery_ports(ports: Sequence[Any]) -> str:
    limit, count, more = 3, 0, False
    shown: list[str] = []
    for port in ports:
        if len(shown) < limit:
            number, name = _get(port, "port"), _get(port, "name")
            shown.append(str(number) if isinstance(number, int)
                         else name if isinstance(name, str) else "*")
        elif len(shown) == limit:
            more = True
        count += 1
    return _list_with_more(shown, more, count, limit)


def _format_discovery_endpoints(endpoints: Sequence[Any]) -> str:
    limit, count, more = 3, 0, False
    shown: list[str] = []
    for endpoint in endpoints:
        for address in _list(_get(endpoint, "addresses")):
            if len(shown) < limit:
                shown.append(_str(address))
            elif len(shown) == limit:
                more = True
            count += 1
    return _list_with_more(shown, more, count, limit)


def _print_endpoint_slice(eps: Obj, now: datetime) -> list[Cell]:
    return [_name(eps), _str(eps.get("addressType")),
            _format_discovery_ports(_list(eps.get("ports"))),
            _format_discovery_endpoints(_list(eps.get("endpoints"))), _age(eps, now)]


def _print_deployment(deploy: Obj, now: datetime) -> list[Cell]:
    spec, status = _dict(deploy.get("spec")), _dict(deploy.get("status"))
    names, images = _containers(deploy)
    selector = _label_selector_string(spec.get("selector"))
    return [_name(deploy),
            f"{_int(status.get('readyReplicas'))}/{_int(spec.get('replicas'), 1)}",
            _int(status.get("updatedReplicas")), _int(status.get("availableReplicas")),
            _age(deploy, now), names, images, "<invalid>" if selector is None else selector]


def _print_replica_set(rs: Obj, now: datetime) -> list[Cell]:
    spec, status = _dict(rs.get("spec")), _dict(rs.get("status"))
    names, images = _containers(rs)
    return [_name(rs), _int(spec.get("replicas"), 1), _int(status.get("replicas")),
            _int(status.get("readyReplicas")), _age(rs, now), names, images,
            _format_label_selector(spec.get("selector"))]


def _print_daemon_set(ds: Obj, now: datetime) -> list[Cell]:
    """printDaemonSet."""
    spec, status = _dict(ds.get("spec")), _dict(ds.get("status"))
    names, images = _containers(ds)
    return [_name(ds), _int(status.get("desiredNumberScheduled")),
            _int(status.get("currentNumberScheduled")), _int(status.get("numberReady")),
            _int(status.get("updatedNumberScheduled")), _int(status.get("numberAvailable")),
            _format_labels(_get(ds, "spec", "template", "spec", "nodeSelector")),
            _age(ds, now), names, images, _format_label_selector(spec.get("selector"))]


def _print_stateful_set(sts: Obj, now: datetime) -> list[Cell]:
    """printStatefulSet."""
    spec, status = _dict(sts.get("spec")), _dict(sts.get("status"))
    names, images = _containers(sts)
    return [_name(sts), f"{_int(status.get('readyReplicas'))}/{_int(spec.get('replicas'), 1)}",
            _age(sts, now), names, images]


def _print_controller_revision(rev: Obj, now: datetime) -> list[Cell]:
    """printControllerRevision: CONTROLLER is the controller reference as
    ``<kind>.<group>/<name>`` in lower case (formatResourceName), or ``<none>``."""
    controller = "<none>"
    for ref in map(_dict, _list(_get(rev, "metadata", "ownerReferences"))):
        if ref.get("controller") is True:
            group = _str(ref.get("apiVersion")).rpartition("/")[0]
            kind = f"{_str(ref.get('kind'))}.{group}" if group else _str(ref.get("kind"))
            controller = f"{kind.lower()}/{_str(ref.get('name'))}"
            break
    revision = rev.get("revision")
    return [_name(rev), controller, revision if isinstance(revision, int) else 0,
            _age(rev, now)]


def _print_replication_controller(rc: Obj, now: datetime) -> list[Cell]:
    """printReplicationController (the selector is a label map)."""
    spec, status = _dict(rc.get("spec")), _dict(rc.get("status"))
    names, images = _containers(rc)
    return [_name(rc), _int(spec.get("replicas"), 1), _int(status.get("replicas")),
            _int(status.get("readyReplicas")), _age(rc, now), names, images,
            _format_labels(spec.get("selector"))]


def _job_status(job: Obj) -> str:
    """printJob's STATUS: the first of Complete, Failed, Terminating, Suspended,
    FailureTarget that applies, else Running."""
    true = {_str(c.get("type")) for c in map(_dict, _list(_get(job, "status", "conditions")))
            if c.get("status") == "True"}
    for ctype in ("Complete", "Failed"):
        if ctype in true:
            return ctype
    if _get(job, "metadata", "deletionTimestamp"):
        return "Terminating"
    for ctype in ("Suspended", "FailureTarget"):
        if ctype in true:
            return ctype
    return "Running"


def _print_job(job: Obj, now: datetime) -> list[Cell]:
    spec, status = _dict(job.get("spec")), _dict(job.get("status"))
    succeeded = _int(status.get("succeeded"))
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{_int(spec.get('completions'))}"
    elif _int(spec.get("parallelism")) > 1:
        completions = f"{succeeded}/1 of {_int(spec.get('parallelism'))}"
    else:
        completions = f"{succeeded}/1"
    start = parse_time(status.get("startTime"))
    end = parse_time(status.get("completionTime"))
    duration = "" if start is None else human_duration((end or now) - start)
    names, images = _containers(job)
    return [_name(job), _job_status(job), completions, duration, _age(job, now), names, images,
            _format_label_selector(spec.get("selector"))]


def _print_cron_job(cj: Obj, now: datetime) -> list[Cell]:
    spec, status = _dict(cj.get("spec")), _dict(cj.get("status"))
    job_spec = _dict(_get(cj, "spec", "jobTemplate", "spec"))
    names, images = _containers({"spec": job_spec})
    suspend = spec.get("suspend")
    last = status.get("lastScheduleTime")
    return [_name(cj), _str(spec.get("schedule")),
            "<none>" if spec.get("timeZone") is None else _str(spec.get("timeZone")),
            "<unset>" if suspend is None else ("True" if suspend else "False"),
            len(_list(status.get("active"))), "<none>" if last is None else since(last, now),
            _age(cj, now), names, images, _format_label_selector(job_spec.get("selector"))]


def _core_event(event: Obj) -> Obj:
    """An ``events.k8s.io/v1`` Event in core ``v1`` field names (upstream converts, then prints
    with the core printer)."""
    return {
        "metadata": event.get("metadata"),
        "involvedObject": event.get("regarding"),
        "reason": event.get("reason"),
        "message": event.get("note"),
        "type": event.get("type"),
        "source": event.get("deprecatedSource"),
        "firstTimestamp": event.get("deprecatedFirstTimestamp"),
        "lastTimestamp": event.get("deprecatedLastTimestamp"),
        "count": event.get("deprecatedCount"),
        "eventTime": event.get("eventTime"),
        "series": event.get("series"),
        "reportingComponent": event.get("reportingController"),
        "reportingInstance": event.get("reportingInstance"),
    }


def _print_event(event: Obj, now: datetime) -> list[Cell]:
    first_seen = (since(event.get("firstTimestamp"), now)
                  if parse_time(event.get("firstTimestamp")) is not None
                  else since(event.get("eventTime"), now))
    last_seen = (since(event.get("lastTimestamp"), now)
                 if parse_time(event.get("lastTimestamp")) is not None else first_seen)
    count = _int(event.get("count"))
    series = event.get("series")
    if isinstance(series, Mapping):
        last_seen = since(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif count == 0:
        count = 1  # singleton events of the new API carry no count
    involved = _dict(event.get("involvedObject"))
    kind, name = _str(involved.get("kind")).lower(), _str(involved.get("name"))
    target = f"{kind}/{name}" if name else kind
    source = _dict(event.get("source"))
    component = _str(source.get("component")) or _str(event.get("reportingComponent"))
    instance = _str(source.get("host")) or _str(event.get("reportingInstance"))
    return [last_seen, _str(event.get("type")), _str(event.get("reason")), target,
            _str(involved.get("fieldPath")),
            f"{component}, {instance}" if instance else component,
            _str(event.get("message")).strip(), first_seen, count, _name(event)]


def _print_events_k8s_io_event(event: Obj, now: datetime) -> list[Cell]:
    return _print_event(_core_event(event), now)


def _print_lease(lease: Obj, now: datetime) -> list[Cell]:
    return [_name(lease), _str(_get(lease, "spec", "holderIdentity")), _age(lease, now)]


def _print_binding(binding: Obj, now: datetime) -> list[Cell]:
    """printRoleBinding / printClusterRoleBinding: subjects split by kind."""
    ref = _get(binding, "roleRef") or {}
    by_kind: dict[str, list[str]] = {"User": [], "Group": [], "ServiceAccount": []}
    for subject in _get(binding, "subjects") or []:
        name = _str(subject.get("name"))
        if subject.get("kind") == "ServiceAccount":
            name = f"{_str(subject.get('namespace'))}/{name}"
        by_kind.setdefault(_str(subject.get("kind")), []).append(name)
    return [_name(binding), f"{_str(ref.get('kind'))}/{_str(ref.get('name'))}",
            _age(binding, now), ", ".join(by_kind["User"]), ", ".join(by_kind["Group"]),
            ", ".join(by_kind["ServiceAccount"])]


def _print_config_map(cm: Obj, now: datetime) -> list[Cell]:
    return [_name(cm), len(_dict(cm.get("data"))) + len(_dict(cm.get("binaryData"))),
            _age(cm, now)]


def _print_secret(secret: Obj, now: datetime) -> list[Cell]:
    return [_name(secret), _str(secret.get("type")), len(_dict(secret.get("data"))),
            _age(secret, now)]


def _print_service_account(sa: Obj, now: datetime) -> list[Cell]:
    return [_name(sa), len(_list(sa.get("secrets"))), _age(sa, now)]


def _print_runtime_class(rc: Obj, now: datetime) -> list[Cell]:
    return [_name(rc), _str(rc.get("handler")), _age(rc, now)]


def _print_priority_class(pc: Obj, now: datetime) -> list[Cell]:
    return [_name(pc), _int(pc.get("value")), pc.get("globalDefault") is True,
            _age(pc, now), _str(pc.get("preemptionPolicy"))]


def _print_webhook_configuration(config: Obj, now: datetime) -> list[Cell]:
    return [_name(config), len(_list(config.get("webhooks"))), _age(config, now)]


def _print_certificate_signing_request(csr: Obj, now: datetime) -> list[Cell]:
    spec = _dict(csr.get("spec"))
    seconds = spec.get("expirationSeconds")
    duration = human_duration(timedelta(seconds=seconds)) if isinstance(seconds, int) \
        and not isinstance(seconds, bool) else "<none>"
    return [_name(csr), _age(csr, now), _str(spec.get("signerName")) or "<none>",
            _str(spec.get("username")), duration, certificates.condition_summary(csr)]


def _print_storage_class(sc: Obj, now: datetime) -> list[Cell]:
    name = _name(sc)
    if is_default_class(sc):
        name += " (default)"
    policy, mode = sc.get("reclaimPolicy"), sc.get("volumeBindingMode")
    return [name, _str(sc.get("provisioner")), "Delete" if policy is None else _str(policy),
            "Immediate" if mode is None else _str(mode),
            sc.get("allowVolumeExpansion") is True, _age(sc, now)]


def _ingress_hosts(rules: list[Any]) -> str:
    """``formatHosts``: the first three rules' hosts, ``+ N more...``, or ``*``."""
    limit, more = 3, False
    hosts: list[str] = []
    for rule in rules:
        if len(hosts) == limit:
            more = True
        host = _str(_get(rule, "host"))
        if not more and host:
            hosts.append(host)
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - limit} more..." if more else text


def _print_ingress(ing: Obj, now: datetime) -> list[Cell]:
    spec = _dict(ing.get("spec"))
    class_name = spec.get("ingressClassName")
    return [_name(ing), class_name if isinstance(class_name, str) else "<none>",
            _ingress_hosts(_list(spec.get("rules"))),
            _load_balancer_status(_get(ing, "status", "loadBalancer"), True),
            "80, 443" if _list(spec.get("tls")) else "80", _age(ing, now)]


def _print_service_cidr(sc: Obj, now: datetime) -> list[Cell]:
    cidrs = ",".join(_str(c) for c in _list(_get(sc, "spec", "cidrs")))
    return [_name(sc), cidrs, _age(sc, now)]


def _print_ip_address(ip: Obj, now: datetime) -> list[Cell]:
    ref = _get(ip, "spec", "parentRef")
    shown = "<none>"
    if isinstance(ref, dict):
        # schema.GroupResource's String(), lower-cased: "services" or "<resource>.<group>".
        shown = _str(ref.get("resource"))
        if _str(ref.get("group")):
            shown += "." + _str(ref.get("group"))
        shown = shown.lower()
        if _str(ref.get("namespace")):
            shown += "/" + _str(ref.get("namespace"))
        shown += "/" + _str(ref.get("name"))
    return [_name(ip), shown]


def _print_ingress_class(ic: Obj, now: datetime) -> list[Cell]:
    params = _get(ic, "spec", "parameters")
    shown = "<none>"
    if isinstance(params, dict):
        shown = _str(params.get("kind"))
        if isinstance(params.get("apiGroup"), str):
            shown += "." + params["apiGroup"]
        shown += "/" + _str(params.get("name"))
    return [_name(ic), _str(_get(ic, "spec", "controller")), shown, _age(ic, now)]


def _quantity_text(value: Any) -> str:
    """A quantity as stored (upstream prints the parsed Quantity's canonical String())."""
    return "<nil>" if value is None else value if isinstance(value, str) else str(value)


def _hpa_metric(spec: Obj, status: Obj | None) -> str:
    """One metric of formatHPAMetrics: ``current/target``, ``<unknown>`` for no current."""
    kind = _str(spec.get("type"))
    if kind in ("External", "Object"):
        src = _dict(spec.get(kind.lower()))
        target = _dict(src.get("target"))
        current = _dict(_get(status, kind.lower(), "current")) if status else {}
        seen = status is not None and isinstance(status.get(kind.lower()), dict)
        if target.get("averageValue") is not None:
            now = (_quantity_text(current["averageValue"])
                   if seen and current.get("averageValue") is not None else "<unknown>")
            return f"{now}/{_quantity_text(target['averageValue'])} (avg)"
        now = _quantity_text(current.get("value")) if seen else "<unknown>"
        return f"{now}/{_quantity_text(target.get('value'))}"
    if kind == "Pods":
        target = _dict(_get(spec, "pods", "target"))
        seen = status is not None and isinstance(status.get("pods"), dict)
        now = (_quantity_text(_get(status, "pods", "current", "averageValue")) if seen
               else "<unknown>")
        return f"{now}/{_quantity_text(target.get('averageValue'))}"
    if kind in ("Resource", "ContainerResource"):
        key = "resource" if kind == "Resource" else "containerResource"
        src = _dict(spec.get(key))
        target = _dict(src.get("target"))
        name = _str(src.get("name"))
        source = _dict(status.get(key)) if status and isinstance(status.get(key), dict) \
            else None
        if target.get("averageValue") is not None:
            now = (_quantity_text(_get(source, "current", "averageValue"))
                   if source is not None else "<unknown>")
            return f"{name}: {now}/{_quantity_text(target['averageValue'])}"
        used = _get(source, "current", "averageUtilization")
        now = f"{used}%" if isinstance(used, int) else "<unknown>"
        goal = target.get("averageUtilization")
        return f"{name}: {now}/{f'{goal}%' if isinstance(goal, int) else '<auto>'}"
    return "<unknown type>"


def format_hpa_metrics(specs: list[Any], statuses: list[Any]) -> str:
    """formatHPAMetrics: each metric (status i goes with spec i), the first two and
    ``+ N more...``; ``<none>`` without metrics."""
    if not specs:
        return "<none>"
    shown = [_hpa_metric(_dict(spec), _dict(statuses[i]) if i < len(statuses) else None)
             for i, spec in enumerate(specs)]
    if len(shown) > 2:
        return f"{', '.join(shown[:2])} + {len(shown) - 2} more..."
    return ", ".join(shown)


def _print_hpa(hpa: Obj, now: datetime) -> list[Cell]:
    """printHorizontalPodAutoscaler (of the autoscaling/v2 form: v1 objects are converted
    first, as upstream prints its internal version)."""
    if hpa.get("apiVersion") == autoscalingv1.API_VERSION:
        hpa = autoscalingv1.to_v2(hpa)
    ref = _dict(_get(hpa, "spec", "scaleTargetRef"))
    min_pods = _get(hpa, "spec", "minReplicas")
    return [_name(hpa), f"{_str(ref.get('kind'))}/{_str(ref.get('name'))}",
            format_hpa_metrics(_list(_get(hpa, "spec", "metrics")),
                               _list(_get(hpa, "status", "currentMetrics"))),
            str(min_pods) if isinstance(min_pods, int) else "<unset>",
            _int(_get(hpa, "spec", "maxReplicas")),
            _int(_get(hpa, "status", "currentReplicas")), _age(hpa, now)]


def _print_pdb(pdb: Obj, now: datetime) -> list[Cell]:
    """printPodDisruptionBudget: the int-or-percent bounds (N/A when unset), the allowance."""
    def bound(key: str) -> str:
        value = _get(pdb, "spec", key)
        return "N/A" if value is None or isinstance(value, bool) else str(value)
    allowed = _get(pdb, "status", "disruptionsAllowed")
    return [_name(pdb), bound("minAvailable"), bound("maxUnavailable"),
            allowed if isinstance(allowed, int) else 0, _age(pdb, now)]


def _print_network_policy(np: Obj, now: datetime) -> list[Cell]:
    """printNetworkPolicy: the pod selector as a selector string (``<none>`` matches all)."""
    return [_name(np), _format_label_selector(_dict(_get(np, "spec", "podSelector"))),
            _age(np, now)]


def _access_modes(modes: Any) -> str:
    """``GetAccessModesAsString``: RWO, ROX, RWX, RWOP in that order, each once."""
    present = set(_list(modes))
    return ",".join(short for mode, short in (
        ("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP")) if mode in present)


def _storage_class(obj: Obj) -> str:
    """``GetPersistentVolume(Claim)Class``: the beta annotation, then storageClassName."""
    annotations = _dict(_get(obj, "metadata", "annotations"))
    if "volume.beta.kubernetes.io/storage-class" in annotations:
        return _str(annotations["volume.beta.kubernetes.io/storage-class"])
    return _str(_get(obj, "spec", "storageClassName"))


def _phase(obj: Obj) -> str:
    if _get(obj, "metadata", "deletionTimestamp") is not None:
        return "Terminating"
    return _str(_get(obj, "status", "phase"))


def _quantity(value: Any) -> str:
    """``Quantity.String()`` of a stored quantity (printed as given; an absent one is 0)."""
    return "0" if value is None else str(value)


def _print_persistent_volume(pv: Obj, now: datetime) -> list[Cell]:
    spec = _dict(pv.get("spec"))
    ref = spec.get("claimRef")
    claim = (f"{_str(_get(ref, 'namespace'))}/{_str(_get(ref, 'name'))}"
             if isinstance(ref, dict) else "")
    vac = spec.get("volumeAttributesClassName")
    mode = spec.get("volumeMode")
    return [_name(pv), _quantity(_dict(spec.get("capacity")).get("storage")),
            _access_modes(spec.get("accessModes")),
            _str(spec.get("persistentVolumeReclaimPolicy")), _phase(pv), claim,
            _storage_class(pv), vac if isinstance(vac, str) else "<unset>",
            _str(_get(pv, "status", "reason")), _age(pv, now),
            mode if isinstance(mode, str) else "<unset>"]


def _print_persistent_volume_claim(pvc: Obj, now: datetime) -> list[Cell]:
    spec = _dict(pvc.get("spec"))
    volume = _str(spec.get("volumeName"))
    capacity = access = ""
    if volume:
        access = _access_modes(_get(pvc, "status", "accessModes"))
        capacity = _quantity(_dict(_get(pvc, "status", "capacity")).get("storage"))
    vac = spec.get("volumeAttributesClassName")
    mode = spec.get("volumeMode")
    return [_name(pvc), _phase(pvc), volume, capacity, access, _storage_class(pvc),
            vac if isinstance(vac, str) else "<unset>", _age(pvc, now),
            mode if isinstance(mode, str) else "<unset>"]


def _print_resource_quota(quota: Obj, now: datetime) -> list[Cell]:
    """``<resource>: <used>/<hard>`` for each hard resource in name order, those named
    ``limits.*`` in the LIMIT column, the rest in REQUEST."""
    status = _dict(quota.get("status"))
    hard, used = _dict(status.get("hard")), _dict(status.get("used"))
    request: list[str] = []
    limit: list[str] = []
    for name in sorted(hard):
        pieces = name.split(".")
        column = limit if len(pieces) > 1 and pieces[0] == "limits" else request
        shown = quantity_string(used[name]) if name in used else "0"
        column.append(f"{name}: {shown}/{quantity_string(hard[name])}")
    return [_name(quota), _age(quota, now), ", ".join(request), ", ".join(limit)]


def _print_default(obj: Obj, now: datetime) -> list[Cell]:
    created = parse_time(_get(obj, "metadata", "creationTimestamp"))
    # Go formats the zero time when unset; seconds precision in UTC, RFC 3339.
    stamp = (created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if created is not None
             else "0001-01-01T00:00:00Z")
    return [_name(obj), stamp]


def _name(obj: Obj) -> str:
    return _str(_get(obj, "metadata", "name"))


def _age(obj: Obj, now: datetime) -> str:
    return since(_get(obj, "metadata", "creationTimestamp"), now)


@dataclass(frozen=True, slots=True)
class _Printer:
    columns: tuple[Column, ...]
    cells: Callable[[Obj, datetime], list[Cell]]
    conditions: Callable[[Obj], list[Obj]] | None = None


_PRINTERS: dict[tuple[str, str], _Printer] = {
    ("", "Service"): _Printer(_SERVICE_COLUMNS, _print_service),
    ("", "Pod"): _Printer(_POD_COLUMNS, _print_pod, _pod_conditions),
    ("", "Node"): _Printer(_NODE_COLUMNS, _print_node),
    ("", "Namespace"): _Printer(_NAMESPACE_COLUMNS, _print_namespace),
    ("", "Endpoints"): _Printer(_ENDPOINTS_COLUMNS, _print_endpoints),
    ("", "Event"): _Printer(_EVENT_COLUMNS, _print_event),
    ("", "ConfigMap"): _Printer(_CONFIG_MAP_COLUMNS, _print_config_map),
    ("", "Secret"): _Printer(_SECRET_COLUMNS, _print_secret),
    ("", "ServiceAccount"): _Printer(_SERVICE_ACCOUNT_COLUMNS, _print_service_account),
    ("", "PersistentVolume"): _Printer(_PERSISTENT_VOLUME_COLUMNS, _print_persistent_volume),
    # printLimitRange prints what the default convertor prints.
    ("", "LimitRange"): _Printer(_DEFAULT_COLUMNS, _print_default),
    ("", "ResourceQuota"): _Printer(_RESOURCE_QUOTA_COLUMNS, _print_resource_quota),
    ("", "PersistentVolumeClaim"): _Printer(_PERSISTENT_VOLUME_CLAIM_COLUMNS,
                                            _print_persistent_volume_claim),
    ("discovery.k8s.io", "EndpointSlice"): _Printer(_ENDPOINT_SLICE_COLUMNS,
                                                    _print_endpoint_slice),
    ("apps", "ControllerRevision"): _Printer(_CONTROLLER_REVISION_COLUMNS,
                                             _print_controller_revision),
    ("apps", "Deployment"): _Printer(_DEPLOYMENT_COLUMNS, _print_deployment),
    ("apps", "ReplicaSet"): _Printer(_REPLICA_SET_COLUMNS, _print_replica_set),
    ("apps", "DaemonSet"): _Printer(_DAEMON_SET_COLUMNS, _print_daemon_set),
    ("apps", "StatefulSet"): _Printer(_STATEFUL_SET_COLUMNS, _print_stateful_set),
    ("", "ReplicationController"): _Printer(_REPLICATION_CONTROLLER_COLUMNS,
                                            _print_replication_controller),
    ("batch", "Job"): _Printer(_JOB_COLUMNS, _print_job),
    ("batch", "CronJob"): _Printer(_CRON_JOB_COLUMNS, _print_cron_job),
    ("events.k8s.io", "Event"): _Printer(_EVENT_COLUMNS, _print_events_k8s_io_event),
    ("coordination.k8s.io", "Lease"): _Printer(_LEASE_COLUMNS, _print_lease),
    ("node.k8s.io", "RuntimeClass"): _Printer(_RUNTIME_CLASS_COLUMNS, _print_runtime_class),
    ("scheduling.k8s.io", "PriorityClass"): _Printer(_PRIORITY_CLASS_COLUMNS,
                                                     _print_priority_class),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): _Printer(
        _WEBHOOK_CONFIGURATION_COLUMNS, _print_webhook_configuration),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): _Printer(
        _WEBHOOK_CONFIGURATION_COLUMNS, _print_webhook_configuration),
    ("storage.k8s.io", "StorageClass"): _Printer(_STORAGE_CLASS_COLUMNS, _print_storage_class),
    ("certificates.k8s.io", "CertificateSigningRequest"): _Printer(
        _CSR_COLUMNS, _print_certificate_signing_request),
    ("networking.k8s.io", "Ingress"): _Printer(_INGRESS_COLUMNS, _print_ingress),
    ("networking.k8s.io", "IngressClass"): _Printer(_INGRESS_CLASS_COLUMNS,
                                                    _print_ingress_class),
    ("networking.k8s.io", "NetworkPolicy"): _Printer(_NETWORK_POLICY_COLUMNS,
                                                     _print_network_policy),
    ("networking.k8s.io", "ServiceCIDR"): _Printer(_SERVICE_CIDR_COLUMNS, _print_service_cidr),
    ("networking.k8s.io", "IPAddress"): _Printer(_IP_ADDRESS_COLUMNS, _print_ip_address),
    ("policy", "PodDisruptionBudget"): _Printer(_PDB_COLUMNS, _print_pdb),
    ("autoscaling", "HorizontalPodAutoscaler"): _Printer(_HPA_COLUMNS, _print_hpa),
    ("rbac.authorization.k8s.io", "RoleBinding"): _Printer(_BINDING_COLUMNS, _print_binding),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _Printer(_BINDING_COLUMNS,
                                                                   _print_binding),
}
_DEFAULT_PRINTER = _Printer(_DEFAULT_COLUMNS, _print_default)


def _printer(api_version: str, kind: str) -> _Printer:
    custom = _CUSTOM_PRINTERS.get((api_version, kind))
    if custom is not None:
        return custom
    group = api_version.rpartition("/")[0]
    return _PRINTERS.get((group, kind), _DEFAULT_PRINTER)


#: The printers of custom resources, by (apiVersion, kind) (:func:`set_custom_columns`).
_CUSTOM_PRINTERS: dict[tuple[str, str], _Printer] = {}
_CUSTOM_AGE: Final = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
                      "description": _AGE.description}


def set_custom_columns(api_version: str, kind: str,
                       columns: Sequence[Mapping[str, Any]] | None) -> None:
    """Print a custom resource version with its CRD's ``additionalPrinterColumns`` (None: no
    longer served), as apiextensions' ``tableconvertor``: NAME, then each column (a CRD that
    declares none gets upstream's default, ``Age`` from ``.metadata.creationTimestamp``);
    a ``date`` cell is printed as an age, a ``string`` one as text, the others as found, and
    a path that finds nothing gives an empty cell."""
    if columns is None:
        _CUSTOM_PRINTERS.pop((api_version, kind), None)
        return
    declared = list(columns) or [_CUSTOM_AGE]
    definitions = (_NAME, *(Column(_str(c.get("name")), type=_str(c.get("type")) or "string",
                                   format=_str(c.get("format")), priority=_int(c.get("priority")),
                                   description=_str(c.get("description")))
                            for c in declared))

    def cells(obj: Obj, now: datetime) -> list[Cell]:
        row: list[Cell] = [_name(obj)]
        for column in declared:
            found = crds.json_path_results(obj, _str(column.get("jsonPath")))
            value = found[0] if found else None
            if value is None:
                row.append(None)
            elif column.get("type") == "date":
                row.append(since(value, now))
            elif column.get("type") == "string":
                row.append(value if isinstance(value, str) else json.dumps(value))
            else:
                row.append(value)
        return row

    _CUSTOM_PRINTERS[(api_version, kind)] = _Printer(definitions, cells)


def columns_for(api_version: str, kind: str) -> tuple[Column, ...]:
    """The Table columns printed for objects of this apiVersion and kind."""
    return _printer(api_version, kind).columns


# ------------------------------------------------------------------------------------ table


def _row_object(obj: Obj, api_version: str, kind: str, include_object: str,
                table_api_version: str) -> Obj | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        full = copy.deepcopy(obj)
        full["apiVersion"] = api_version
        full["kind"] = kind
        return full
    # meta.AsPartialObjectMetadata keeps the whole ObjectMeta (labels, annotations, ...).
    return {"kind": "PartialObjectMetadata", "apiVersion": table_api_version,
            "metadata": copy.deepcopy(_dict(obj.get("metadata")))}


def table_for(objects: Sequence[Obj], *, api_version: str, kind: str,
              include_object: str = "Metadata", now: datetime, resource_version: str,
              with_column_definitions: bool = True, table_version: str = "v1",
              continue_token: str | None = None,
              remaining_item_count: int | None = None) -> Obj:
    """Print ``objects`` (all of ``api_version``/``kind``) as a ``meta.k8s.io`` Table.

    ``include_object`` is the request's ``includeObject``: ``Metadata`` (the default) puts a
    ``PartialObjectMetadata`` in each row, ``Object`` the full object (with apiVersion and
    kind set), ``None`` nothing. ``resource_version`` goes to the Table's metadata: the list's
    resourceVersion for a list, the object's for a single object or a watch event.
    ``with_column_definitions=False`` leaves the columns out (``TableOptions.noHeaders``;
    later events of a watch). ``now`` is the reference time for ages.

    Raises ValueError for an unknown ``include_object`` or ``table_version``.
    """
    if include_object not in INCLUDE_OBJECT_VALUES:
        raise ValueError(f"includeObject must be one of {', '.join(INCLUDE_OBJECT_VALUES)}, "
                         f"not {include_object!r}")
    if table_version not in TABLE_VERSIONS:
        raise ValueError(f"unknown Table version {table_version!r}")
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    table_api_version = f"meta.k8s.io/{table_version}"
    printer = _printer(api_version, kind)
    rows = []
    for obj in objects:
        row: Obj = {"cells": printer.cells(obj, now)}
        if printer.conditions is not None:
            conditions = printer.conditions(obj)
            if conditions:
                row["conditions"] = conditions
        row["object"] = _row_object(obj, api_version, kind, include_object, table_api_version)
        rows.append(row)
    # ListMeta fields are omitempty upstream.
    metadata: Obj = {"resourceVersion": resource_version} if resource_version else {}
    if continue_token:
        metadata["continue"] = continue_token
    if remaining_item_count is not None:
        metadata["remainingItemCount"] = remaining_item_count
    table: Obj = {"kind": "Table", "apiVersion": table_api_version, "metadata": metadata}
    if with_column_definitions:
        table["columnDefinitions"] = [c.definition() for c in printer.columns]
    table["rows"] = rows
    return table


# ------------------------------------------------------------------------------ negotiation


def negotiate_table(accept: str | None) -> str | None:
    """The ``meta.k8s.io`` version of Table the Accept header asks for, or None.

    The first acceptable clause decides, as in the apiserver: kubectl sends
    ``application/json;as=Table;v=v1;g=meta.k8s.io, ...;v=v1beta1..., application/json``
    and gets a v1 Table; a client listing plain ``application/json`` first gets plain JSON.
    Clauses for other ``as=`` kinds (e.g. ``PartialObjectMetadataList``) are skipped.
    """
    for clause in parse_accept(accept):
        if not clause.matches("application", "json"):
            continue
        as_kind, group, version = clause.param("as"), clause.param("g"), clause.param("v")
        if as_kind is None:
            return None
        if as_kind == "Table" and group == "meta.k8s.io" and version in TABLE_VERSIONS:
            return version
    return None


def table_accepted(accept: str | None) -> bool:
    """Whether the Accept header asks for a Table.

    That is ``application/json;as=Table;v=v1;g=meta.k8s.io`` (or ``v=v1beta1``) as the first
    acceptable clause.
    """
    return negotiate_table(accept) is not None
