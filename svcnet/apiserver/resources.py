"""The catalogue of resources this API server serves, described once for every consumer.

Discovery (legacy ``/api/v1`` and aggregated v2), the OpenAPI documents' paths and the
Table printers all read this module, so a resource's names, scope, verbs and subresources cannot
drift apart between them. The facts are those of kube-apiserver 1.33 for the same resources
(``kubectl get --raw /api/v1`` on a real cluster), trimmed to what svcnet serves: for example
``pods/proxy`` and ``services/proxy`` exist upstream but are not listed here, because
advertising a subresource we cannot serve makes clients fail later and more confusingly.

Ordering matters to clients in two places and is preserved by :data:`RESOURCES`:

* group order is the order of ``/apis`` (upstream lists ``apps``, ``events.k8s.io``,
  ``authentication.k8s.io``, ``authorization.k8s.io`` and ``autoscaling`` before
  ``batch``, ``certificates.k8s.io``, ``networking.k8s.io``, ``policy``,
  ``rbac.authorization.k8s.io``, ``storage.k8s.io``, ``admissionregistration.k8s.io``,
  ``apiextensions.k8s.io``, ``scheduling.k8s.io``, ``coordination.k8s.io``, ``node.k8s.io``
  and ``discovery.k8s.io``: kube-apiserver's group priorities), and within a group the
  preferred version first (``autoscaling/v2``, then ``v1``: a version other than the
  storage one names it in ``storage_group_version`` and is served by
  :mod:`svcnet.registry.versions`);
  kubectl resolves an ambiguous short name (``ev`` is both ``events`` and
  ``events.events.k8s.io``) to the first group that has it, and the core group always comes
  first;
* within a group version, resources are listed by name, each followed by its subresources, the
  way the upstream ``APIResourceList`` is sorted.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = [
    "ALL_VERBS",
    "GROUP_ORDER",
    "RESOURCES",
    "Resource",
    "Subresource",
    "by_kind",
    "by_resource",
    "group_order",
    "group_versions",
    "resources_in",
    "scale_subresource",
    "storage_version_hash",
    "version_priority",
]

#: The verbs of a fully served collection, in the (alphabetical) order upstream reports them.
ALL_VERBS: tuple[str, ...] = (
    "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
#: Namespaces cannot be deleted as a collection upstream (that would be cluster-wide deletion).
_NO_COLLECTION_DELETE: tuple[str, ...] = (
    "create", "delete", "get", "list", "patch", "update", "watch")
_STATUS_VERBS: tuple[str, ...] = ("get", "patch", "update")


@dataclass(frozen=True, slots=True)
class Subresource:
    """One ``<resource>/<name>`` endpoint, e.g. ``services/status`` or ``deployments/scale``.

    ``group``/``version``/``kind`` name what the subresource accepts and returns, which is not
    always the parent's kind: ``pods/binding`` takes a ``Binding``, ``pods/eviction`` a
    ``policy/v1 Eviction`` and ``*/scale`` an ``autoscaling/v1 Scale``.
    """

    name: str
    kind: str
    verbs: tuple[str, ...]
    #: None means "the parent's" (true of every subresource except ``*/scale``,
    #: ``pods/eviction`` and ``serviceaccounts/token``).
    group: str | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class Resource:
    """A served resource: one (group, version, resource) with its kind and discovery facts."""

    group: str
    version: str
    kind: str
    resource: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[Subresource, ...] = ()
    #: The group/version objects are stored in, when it is not this one. Upstream stores
    #: ``events.k8s.io/v1`` Events as core ``v1`` Events, which shows in the storage hash.
    storage_group_version: str | None = None
    #: Release the kind was deprecated in and what replaces it (``prerelease-lifecycle-gen``'s
    #: ``deprecated`` and ``replacement`` tags on the type), e.g. ``("1.33",
    #: "discovery.k8s.io/v1 EndpointSlice")`` for v1 Endpoints.
    deprecated: tuple[str, str] | None = None
    #: False for the reviews (TokenReview, SelfSubjectAccessReview...): created, answered and
    #: never stored, so discovery gives them no storage version hash.
    persisted: bool = True
    #: False for ``metrics.k8s.io``: kube-apiserver's OpenAPI does not describe it (behind the
    #: aggregator, metrics-server would publish its own), and the official client, where the
    #: definitions come from (tools/gen_openapi.py), has no models for it.
    in_openapi: bool = True

    @property
    def deprecation_warning(self) -> str | None:
        """The text of the ``Warning`` header on every request for a deprecated resource.

        apiserver's ``deprecation.WarningMessage``: ``<gv> <Kind> is deprecated in v<X.Y>+``
        then ``; use <replacement>``. kube-apiserver's installer adds it to every verb's
        handler, errors included.
        """
        if self.deprecated is None:
            return None
        release, replacement = self.deprecated
        return f"{self.api_version} {self.kind} is deprecated in v{release}+; use {replacement}"

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, ``<group>/<version>`` otherwise (an object's apiVersion)."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def scope(self) -> str:
        """``Namespaced`` or ``Cluster``, as aggregated discovery spells it."""
        return "Namespaced" if self.namespaced else "Cluster"

    @property
    def path_prefix(self) -> str:
        """The URL prefix of the group version: ``/api/v1`` or ``/apis/<group>/<version>``."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def qualified_name(self) -> str:
        """``services`` or ``endpointslices.discovery.k8s.io`` (the name in error messages)."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def storage_version_hash(self) -> str:
        if self.storage_group_version is not None:
            group, _, version = self.storage_group_version.rpartition("/")
        else:
            group, version = self.group, self.version
        return storage_version_hash(group, version, self.kind)

    def subresource_gvk(self, sub: Subresource) -> tuple[str, str, str]:
        """The (group, version, kind) a subresource of this resource accepts and returns."""
        return (self.group if sub.group is None else sub.group,
                self.version if sub.version is None else sub.version, sub.kind)

    def subresource(self, name: str) -> Subresource | None:
        for sub in self.subresources:
            if sub.name == name:
                return sub
        return None


def storage_version_hash(group: str, version: str, kind: str) -> str:
    """Upstream's ``discovery.StorageVersionHash``: base64 of 8 bytes of SHA-256 of ``g/v/k``.

    Clients (the storage version migrator) only compare it for equality; it is reproduced
    exactly so the value matches what a real server would report.
    """
    digest = hashlib.sha256(f"{group}/{version}/{kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _status(kind: str) -> Subresource:
    return Subresource("status", kind, _STATUS_VERBS)


def scale_subresource() -> Subresource:
    return Subresource("scale", "Scale", _STATUS_VERBS, group="autoscaling", version="v1")


#: Every resource svcnet knows (printers, kinds), in discovery order (see the module docstring).
CATALOGUE: tuple[Resource, ...] = (
    # -- core/v1 ------------------------------------------------------------------------------
    Resource("", "v1", "ConfigMap", "configmaps", "configmap", True, short_names=("cm",)),
    Resource("", "v1", "Endpoints", "endpoints", "endpoints", True, short_names=("ep",),
             deprecated=("1.33", "discovery.k8s.io/v1 EndpointSlice")),
    Resource("", "v1", "Event", "events", "event", True, short_names=("ev",)),
    Resource("", "v1", "LimitRange", "limitranges", "limitrange", True,
             short_names=("limits",)),
    Resource("", "v1", "Namespace", "namespaces", "namespace", False, short_names=("ns",),
             verbs=_NO_COLLECTION_DELETE,
             subresources=(Subresource("finalize", "Namespace", ("update",)),
                           _status("Namespace"))),
    Resource("", "v1", "Node", "nodes", "node", False, short_names=("no",),
             subresources=(_status("Node"),)),
    Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims",
             "persistentvolumeclaim", True, short_names=("pvc",),
             subresources=(_status("PersistentVolumeClaim"),)),
    Resource("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", False,
             short_names=("pv",), subresources=(_status("PersistentVolume"),)),
    Resource("", "v1", "Pod", "pods", "pod", True, short_names=("po",), categories=("all",),
             subresources=(Subresource("attach", "PodAttachOptions", ("create", "get")),
                           Subresource("binding", "Binding", ("create",)),
                           Subresource("eviction", "Eviction", ("create",), group="policy",
                                       version="v1"),
                           Subresource("exec", "PodExecOptions", ("create", "get")),
                           Subresource("log", "Pod", ("get",)),
                           Subresource("portforward", "PodPortForwardOptions",
                                       ("create", "get")),
                           _status("Pod"))),
    Resource("", "v1", "ReplicationController", "replicationcontrollers",
             "replicationcontroller", True, short_names=("rc",), categories=("all",),
             subresources=(scale_subresource(), _status("ReplicationController"))),
    Resource("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", True,
             short_names=("quota",), subresources=(_status("ResourceQuota"),)),
    Resource("", "v1", "Secret", "secrets", "secret", True),
    Resource("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True,
             short_names=("sa",),
             subresources=(Subresource("token", "TokenRequest", ("create",),
                                       group="authentication.k8s.io", version="v1"),)),
    Resource("", "v1", "Service", "services", "service", True, short_names=("svc",),
             categories=("all",), subresources=(_status("Service"),)),
    # -- apps/v1 ------------------------------------------------------------------------------
    Resource("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision",
             True),
    Resource("apps", "v1", "DaemonSet", "daemonsets", "daemonset", True,
             short_names=("ds",), categories=("all",), subresources=(_status("DaemonSet"),)),
    Resource("apps", "v1", "Deployment", "deployments", "deployment", True,
             short_names=("deploy",), categories=("all",),
             subresources=(scale_subresource(), _status("Deployment"))),
    Resource("apps", "v1", "ReplicaSet", "replicasets", "replicaset", True,
             short_names=("rs",), categories=("all",),
             subresources=(scale_subresource(), _status("ReplicaSet"))),
    Resource("apps", "v1", "StatefulSet", "statefulsets", "statefulset", True,
             short_names=("sts",), categories=("all",),
             subresources=(scale_subresource(), _status("StatefulSet"))),
    # -- events.k8s.io/v1 ---------------------------------------------------------------------
    Resource("events.k8s.io", "v1", "Event", "events", "event", True, short_names=("ev",),
             storage_group_version="v1"),
    # -- authentication.k8s.io/v1 and authorization.k8s.io/v1 (answered, never stored) --------
    Resource("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews",
             "selfsubjectreview", False, verbs=("create",), persisted=False),
    Resource("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", "tokenreview",
             False, verbs=("create",), persisted=False),
    Resource("authorization.k8s.io", "v1", "LocalSubjectAccessReview",
             "localsubjectaccessreviews", "localsubjectaccessreview", True, verbs=("create",),
             persisted=False),
    Resource("authorization.k8s.io", "v1", "SelfSubjectAccessReview",
             "selfsubjectaccessreviews", "selfsubjectaccessreview", False, verbs=("create",),
             persisted=False),
    Resource("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews",
             "selfsubjectrulesreview", False, verbs=("create",), persisted=False),
    Resource("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews",
             "subjectaccessreview", False, verbs=("create",), persisted=False),
    # -- autoscaling/v2 (the storage version) and autoscaling/v1 -------------------------------
    Resource("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers",
             "horizontalpodautoscaler", True, short_names=("hpa",), categories=("all",),
             subresources=(_status("HorizontalPodAutoscaler"),)),
    Resource("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers",
             "horizontalpodautoscaler", True, short_names=("hpa",), categories=("all",),
             subresources=(_status("HorizontalPodAutoscaler"),),
             storage_group_version="autoscaling/v2"),
    # -- batch/v1 -----------------------------------------------------------------------------
    Resource("batch", "v1", "CronJob", "cronjobs", "cronjob", True, short_names=("cj",),
             categories=("all",), subresources=(_status("CronJob"),)),
    Resource("batch", "v1", "Job", "jobs", "job", True, categories=("all",),
             subresources=(_status("Job"),)),
    # -- certificates.k8s.io/v1 ---------------------------------------------------------------
    Resource("certificates.k8s.io", "v1", "CertificateSigningRequest",
             "certificatesigningrequests", "certificatesigningrequest", False,
             short_names=("csr",),
             subresources=(Subresource("approval", "CertificateSigningRequest", _STATUS_VERBS),
                           _status("CertificateSigningRequest"))),
    # -- networking.k8s.io/v1 -----------------------------------------------------------------
    Resource("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "ingressclass",
             False),
    Resource("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", True,
             short_names=("ing",), subresources=(_status("Ingress"),)),
    Resource("networking.k8s.io", "v1", "IPAddress", "ipaddresses", "ipaddress", False,
             short_names=("ip",)),
    Resource("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy",
             True, short_names=("netpol",)),
    Resource("networking.k8s.io", "v1", "ServiceCIDR", "servicecidrs", "servicecidr", False,
             subresources=(_status("ServiceCIDR"),)),
    # -- policy/v1 ----------------------------------------------------------------------------
    Resource("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets",
             "poddisruptionbudget", True, short_names=("pdb",),
             subresources=(_status("PodDisruptionBudget"),)),
    # -- rbac.authorization.k8s.io/v1 ---------------------------------------------------------
    Resource("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings",
             "clusterrolebinding", False),
    Resource("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole",
             False),
    Resource("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding",
             True),
    Resource("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", True),
    # -- storage.k8s.io/v1 --------------------------------------------------------------------
    Resource("storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", False,
             short_names=("sc",)),
    # -- admissionregistration.k8s.io/v1 ------------------------------------------------------
    Resource("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration",
             "mutatingwebhookconfigurations", "mutatingwebhookconfiguration", False),
    Resource("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
             "validatingwebhookconfigurations", "validatingwebhookconfiguration", False),
    # -- apiextensions.k8s.io/v1 --------------------------------------------------------------
    Resource("apiextensions.k8s.io", "v1", "CustomResourceDefinition",
             "customresourcedefinitions", "customresourcedefinition", False,
             short_names=("crd", "crds"), subresources=(_status("CustomResourceDefinition"),)),
    # -- scheduling.k8s.io/v1 -----------------------------------------------------------------
    Resource("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", "priorityclass",
             False, short_names=("pc",)),
    # -- coordination.k8s.io/v1 ---------------------------------------------------------------
    Resource("coordination.k8s.io", "v1", "Lease", "leases", "lease", True),
    # -- node.k8s.io/v1 -----------------------------------------------------------------------
    Resource("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", "runtimeclass", False),
    # -- discovery.k8s.io/v1 ------------------------------------------------------------------
    Resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", True),
    # -- metrics.k8s.io/v1beta1 (metrics-server's, computed: apiserver/metricsapi.py) ---------
    Resource("metrics.k8s.io", "v1beta1", "NodeMetrics", "nodes", "node", False,
             verbs=("get", "list"), persisted=False, in_openapi=False),
    Resource("metrics.k8s.io", "v1beta1", "PodMetrics", "pods", "pod", True,
             verbs=("get", "list"), persisted=False, in_openapi=False),
)

#: API groups in ``/apis`` order; the core group ("") is served under ``/api`` instead.
#: Resources whose API is not served yet: discovery must not advertise them, or clients such as
#: ``kubectl get all`` fail on the 404. (events.k8s.io/v1 needs conversion from core/v1
#: Events.)
NOT_SERVED_YET: frozenset[tuple[str, str]] = frozenset({("events.k8s.io", "events")})

#: What discovery advertises and the server serves.
RESOURCES: tuple[Resource, ...] = tuple(
    r for r in CATALOGUE if (r.group, r.resource) not in NOT_SERVED_YET)

GROUP_ORDER: tuple[str, ...] = tuple(dict.fromkeys(r.group for r in RESOURCES if r.group))

_BY_RESOURCE: dict[tuple[str, str, str], Resource] = {
    (r.group, r.version, r.resource): r for r in CATALOGUE}
_BY_KIND: dict[tuple[str, str], Resource] = {(r.api_version, r.kind): r for r in CATALOGUE}


def by_resource(group: str, version: str, resource: str) -> Resource | None:
    """The resource served at ``(group, version, resource)``.

    E.g. ``by_resource("apps", "v1", "deployments")``.

    ``resource`` may carry a subresource (``services/status``); the parent is returned, and the
    caller checks :meth:`Resource.subresource`.
    """
    return _BY_RESOURCE.get((group, version, resource.partition("/")[0]))


def by_kind(api_version: str, kind: str) -> Resource | None:
    """The resource whose objects have this ``apiVersion`` and ``kind``.

    E.g. ``by_kind("apps/v1", "Deployment")``.
    """
    return _BY_KIND.get((api_version, kind))


def group_versions(extra: Sequence[Resource] = ()) -> list[tuple[str, str]]:
    """Every served (group, version), core first, then groups in ``/apis`` order; ``extra``
    (custom resources) after the built-in groups, as :func:`group_order` puts them."""
    order = group_order(extra)
    return list(dict.fromkeys((r.group, r.version) for r in sorted(
        (*RESOURCES, *sorted(extra, key=lambda r: version_priority(r.version))),
        key=lambda r: -1 if r.group == "" else order.index(r.group))))


def group_order(extra: Sequence[Resource] = ()) -> tuple[str, ...]:
    """:data:`GROUP_ORDER`, then the groups only ``extra`` has, by name (custom resources'
    groups: upstream gives them all the same priority, then orders by name)."""
    return GROUP_ORDER + tuple(sorted({r.group for r in extra} - set(GROUP_ORDER)))


def resources_in(group: str, version: str, extra: Sequence[Resource] = ()
                 ) -> Iterator[Resource]:
    """The resources of one group version, in discovery order."""
    return (r for r in (*RESOURCES, *sorted(extra, key=lambda r: r.resource))
            if r.group == group and r.version == version)


_KUBE_VERSION = re.compile(r"^v([1-9][0-9]*)(?:(alpha|beta)([1-9][0-9]*))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes' version order (``version.CompareKubeAwareVersionStrings``) as a sort key:
    GA before beta before alpha, higher numbers first, then other names alphabetically."""
    m = _KUBE_VERSION.match(version)
    if m is None:
        return (3, 0, 0, version)
    stage = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0), "")
