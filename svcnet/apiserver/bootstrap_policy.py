"""The default ClusterRoles and ClusterRoleBindings every cluster starts with.

Theory of operation
-------------------
plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go, reduced to the roles a user meets:
``cluster-admin`` (bound to ``system:masters``), the user-facing ``admin``, ``edit`` and
``view`` (empty shells filled by aggregation from the ``system:aggregate-to-*`` roles and any
ClusterRole a user labels ``rbac.authorization.k8s.io/aggregate-to-<role>: "true"``), and the
roles every authenticated user holds (``system:basic-user``, ``system:discovery``,
``system:public-info-viewer``), metrics-server's ``system:aggregated-metrics-reader``
(``metrics.k8s.io`` read, aggregated into ``admin``, ``edit`` and ``view``), the
``system:certificates.k8s.io:*-approver`` roles (``approve`` on one signer each) and the roles
of the controllers svcnet runs (``system:controller:<name>``, bound to their kube-system
ServiceAccounts). The rules are upstream's for the resources they name, including resources
svcnet does not serve (a role is only data; this keeps the roles identical to a real
cluster's).

The server creates what is missing at start and in its bootstrap loop, as kube-apiserver's
``rbac/bootstrap-roles`` post-start hook does; a role a user changed is left alone (upstream
reconciles roles annotated ``rbac.authorization.kubernetes.io/autoupdate: "true"`` by adding
missing rules, which svcnet does not yet do).
"""

from __future__ import annotations

from typing import Any

from svcnet.api.rbac import GROUP

__all__ = ["CLUSTER_ROLES", "CLUSTER_ROLE_BINDINGS"]

Obj = dict[str, Any]
READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
READ_WRITE = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
AGGREGATE = f"{GROUP}/aggregate-to-"
CERTIFICATES = "certificates.k8s.io"


def _rule(verbs: list[str], groups: list[str], resources: list[str]) -> Obj:
    return {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}


def _named_rule(verbs: list[str], groups: list[str], resources: list[str],
                names: list[str]) -> Obj:
    return {**_rule(verbs, groups, resources), "resourceNames": list(names)}


def _meta(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {"name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults", **(labels or {})},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}}


def _cluster_role(name: str, rules: list[Obj], labels: dict[str, str] | None = None) -> Obj:
    return {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRole",
            "metadata": _meta(name, labels), "rules": rules}


def _aggregated(name: str, into: str | None) -> Obj:
    role = _cluster_role(name, [], {f"{AGGREGATE}{into}": "true"} if into else None)
    role["aggregationRule"] = {"clusterRoleSelectors": [
        {"matchLabels": {f"{AGGREGATE}{name}": "true"}}]}
    return role


_VIEW = [
    _rule(READ, [""], ["pods", "replicationcontrollers", "replicationcontrollers/scale",
                       "serviceaccounts", "services", "services/status", "endpoints",
                       "persistentvolumeclaims", "persistentvolumeclaims/status",
                       "configmaps"]),
    _rule(READ, [""], ["limitranges", "resourcequotas", "bindings", "events", "pods/status",
                       "resourcequotas/status", "namespaces/status",
                       "replicationcontrollers/status", "pods/log"]),
    _rule(READ, [""], ["namespaces"]),
    _rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
    _rule(READ, ["apps"], ["controllerrevisions", "statefulsets", "statefulsets/status",
                           "statefulsets/scale", "daemonsets", "daemonsets/status",
                           "deployments", "deployments/status", "deployments/scale",
                           "replicasets", "replicasets/status", "replicasets/scale"]),
    _rule(READ, ["autoscaling"], ["horizontalpodautoscalers",
                                  "horizontalpodautoscalers/status"]),
    _rule(READ, ["batch"], ["jobs", "jobs/status", "cronjobs", "cronjobs/status"]),
    _rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
    _rule(READ, ["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"]),
]

_EDIT = [
    _rule(READ, [""], ["pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets",
                       "services/proxy"]),
    _rule(["impersonate"], [""], ["serviceaccounts"]),
    _rule(WRITE, [""], ["pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"]),
    _rule(["create"], [""], ["pods/eviction"]),
    _rule(WRITE, [""], ["replicationcontrollers", "replicationcontrollers/scale",
                        "serviceaccounts", "services", "services/proxy",
                        "persistentvolumeclaims", "configmaps", "secrets", "events"]),
    _rule(["create"], [""], ["serviceaccounts/token"]),
    _rule(WRITE, ["apps"], ["statefulsets", "statefulsets/scale", "daemonsets", "deployments",
                            "deployments/scale", "deployments/rollback", "replicasets",
                            "replicasets/scale"]),
    _rule(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
    _rule(WRITE, ["batch"], ["jobs", "cronjobs"]),
    _rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
    _rule(WRITE, ["networking.k8s.io"], ["ingresses", "networkpolicies"]),
    _rule(READ_WRITE, ["coordination.k8s.io"], ["leases"]),
]

_ADMIN = [
    _rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
    _rule(READ_WRITE, [GROUP], ["roles", "rolebindings"]),
]

BASIC_USER = [
    _rule(["create"], ["authorization.k8s.io"],
          ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
    _rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
]

CLUSTER_ROLES: tuple[Obj, ...] = (
    _cluster_role("cluster-admin", [_rule(["*"], ["*"], ["*"]),
                                    {"verbs": ["*"], "nonResourceURLs": ["*"]}]),
    _aggregated("admin", None),
    _aggregated("edit", "admin"),
    _aggregated("view", "edit"),
    _cluster_role("system:aggregate-to-admin", _ADMIN, {f"{AGGREGATE}admin": "true"}),
    _cluster_role("system:aggregate-to-edit", _EDIT, {f"{AGGREGATE}edit": "true"}),
    _cluster_role("system:aggregate-to-view", _VIEW, {f"{AGGREGATE}view": "true"}),
    _cluster_role("system:basic-user", BASIC_USER),
    _cluster_role("system:discovery", [{"verbs": ["get"], "nonResourceURLs": [
        "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
        "/readyz", "/version", "/version/"]}]),
    _cluster_role("system:public-info-viewer", [{"verbs": ["get"], "nonResourceURLs": [
        "/healthz", "/livez", "/readyz", "/version", "/version/"]}]),
    # metrics-server's manifest (components.yaml): whoever may view may read the resource
    # metrics, which svcnet serves itself (apiserver/metricsapi.py).
    _cluster_role("system:aggregated-metrics-reader",
                  [_rule(READ, ["metrics.k8s.io"], ["pods", "nodes"])],
                  {f"{AGGREGATE}{role}": "true" for role in ("admin", "edit", "view")}),
    # policy.go's approver roles: whoever is bound to one may approve requests for its
    # signer (the CertificateApproval admission checks ``approve`` on ``signers``).
    *(_cluster_role(f"system:certificates.k8s.io:{name}-approver", [
        _named_rule(["approve"], [CERTIFICATES], ["signers"], [f"kubernetes.io/{name}"])])
      for name in ("kube-apiserver-client", "kube-apiserver-client-kubelet",
                   "kubelet-serving", "legacy-unknown")),
    # controller_policy.go's role of the certificate controller (the signer and cleaner of
    # svcnet/controllers/certificates.py, which run as the controller manager's identity: the
    # role is there for parity, as the servicecidrs one below).
    _cluster_role("system:controller:certificate-controller", [
        _rule(["get", "list", "watch", "delete"], [CERTIFICATES],
              ["certificatesigningrequests"]),
        _rule(["update"], [CERTIFICATES],
              ["certificatesigningrequests/status", "certificatesigningrequests/approval"]),
        _named_rule(["approve"], [CERTIFICATES], ["signers"],
                    ["kubernetes.io/kube-apiserver-client-kubelet"]),
        _named_rule(["sign"], [CERTIFICATES], ["signers"], [
            "kubernetes.io/legacy-unknown", "kubernetes.io/kube-apiserver-client",
            "kubernetes.io/kube-apiserver-client-kubelet", "kubernetes.io/kubelet-serving"]),
        _rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
        _rule(["create", "update", "patch"], ["", "events.k8s.io"], ["events"]),
    ]),
    # controller_policy.go's role of the servicecidrs controller (MultiCIDRServiceAllocator).
    # svcnet runs that controller inside the API server; the role is there for parity.
    _cluster_role("system:controller:service-cidrs-controller", [
        _rule(["get", "list", "watch", "patch", "update"], ["networking.k8s.io"],
              ["servicecidrs"]),
        _rule(["patch", "update"], ["networking.k8s.io"], ["servicecidrs/finalizers"]),
        _rule(["patch", "update"], ["networking.k8s.io"], ["servicecidrs/status"]),
        _rule(READ, ["networking.k8s.io"], ["ipaddresses"]),
        _rule(["create", "update", "patch"], ["", "events.k8s.io"], ["events"]),
    ]),
)


def _binding(name: str, role: str, groups: list[str]) -> Obj:
    return {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRoleBinding",
            "metadata": _meta(name),
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": g} for g in groups]}


def _controller_binding(name: str) -> Obj:
    """A controller role's binding to its kube-system ServiceAccount (addControllerRole)."""
    return {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRoleBinding",
            "metadata": _meta(f"system:controller:{name}"),
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole",
                        "name": f"system:controller:{name}"},
            "subjects": [{"kind": "ServiceAccount", "name": name,
                          "namespace": "kube-system"}]}


CLUSTER_ROLE_BINDINGS: tuple[Obj, ...] = (
    _binding("cluster-admin", "cluster-admin", ["system:masters"]),
    _binding("system:basic-user", "system:basic-user", ["system:authenticated"]),
    _binding("system:discovery", "system:discovery", ["system:authenticated"]),
    _binding("system:public-info-viewer", "system:public-info-viewer",
             ["system:authenticated", "system:unauthenticated"]),
    _controller_binding("certificate-controller"),
    _controller_binding("service-cidrs-controller"),
)
