"""Ingresses and IngressClasses (networking.k8s.io/v1) through a real `svcnet server` and the
real kubectl: apply, the Table columns, upstream's 422s, the default class admission,
``kubectl explain``, and ``kubectl apply --prune``.

The session cluster is shared: each test makes its own namespace and classes (random names),
and a test that makes a default class deletes it before it ends.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.e2e.conftest import Cluster

Obj = dict[str, Any]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _namespace(cluster: Cluster) -> str:
    name = _name("ing")
    cluster.kubectl("create", "namespace", name)
    return name


def _class(name: str, default: bool = False) -> str:
    annotations = ('  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}\n'
                   if default else "")
    return (f"apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n"
            f"  name: {name}\n{annotations}spec:\n  controller: example.com/ingress\n"
            "  parameters: {apiGroup: k8s.example.com, kind: IngressParameters, name: lb}\n")


def _ingress(name: str, ingress_class: str | None, path_type: str = "Prefix") -> str:
    class_line = f"  ingressClassName: {ingress_class}\n" if ingress_class else ""
    return (f"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\n"
            f"spec:\n{class_line}"
            "  tls: [{hosts: [shop.example.com], secretName: shop-tls}]\n"
            "  rules:\n"
            "  - host: shop.example.com\n"
            "    http:\n"
            "      paths:\n"
            f"      - {{path: /, pathType: {path_type},\n"
            "         backend: {service: {name: shop, port: {number: 80}}}}\n"
            "  - host: api.example.com\n"
            "    http:\n"
            "      paths:\n"
            "      - {path: /v1, pathType: Exact,\n"
            "         backend: {service: {name: api, port: {name: http}}}}\n")


def _get(cluster: Cluster, *what: str) -> Obj:
    obj: Obj = json.loads(cluster.kubectl("get", *what, "-o", "json").stdout)
    return obj


def test_apply_ingress_and_class_and_get_their_columns(cluster: Cluster) -> None:
    ns, cls, ing = _namespace(cluster), _name("web"), _name("shop")
    out = cluster.kubectl("apply", "-n", ns, "-f", "-",
                          stdin=_class(cls) + "---\n" + _ingress(ing, cls)).stdout
    assert out.splitlines() == [f"ingressclass.networking.k8s.io/{cls} created",
                                f"ingress.networking.k8s.io/{ing} created"]
    lines = cluster.kubectl("get", "ingress", "-n", ns).stdout.splitlines()
    assert lines[0].split() == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    assert lines[1].split()[:-1] == [ing, cls, "shop.example.com,api.example.com", "80,",
                                     "443"]
    lines = cluster.kubectl("get", "ingressclass", cls).stdout.splitlines()
    assert lines[0].split() == ["NAME", "CONTROLLER", "PARAMETERS", "AGE"]
    assert lines[1].split()[:-1] == [cls, "example.com/ingress",
                                     "IngressParameters.k8s.example.com/lb"]
    obj = _get(cluster, "ing", "-n", ns, ing)
    assert obj["metadata"]["generation"] == 1 and obj["status"] == {"loadBalancer": {}}
    # Applying it again is a no-op; a changed spec bumps the generation.
    again = cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=_ingress(ing, cls)).stdout
    assert again.strip() == f"ingress.networking.k8s.io/{ing} unchanged"
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=_ingress(ing, cls, "Exact"))
    assert _get(cluster, "ing", "-n", ns, ing)["metadata"]["generation"] == 2
    # An Ingress controller reports its address through /status; the Table shows it.
    cluster.kubectl("patch", "ingress", "-n", ns, ing, "--subresource=status", "--type=merge",
                    "-p", '{"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}}')
    row = cluster.kubectl("get", "ingress", "-n", ns, ing, "--no-headers").stdout.split()
    assert row[3] == "192.0.2.10"
    cluster.kubectl("delete", "namespace", ns, "--wait=false")
    cluster.kubectl("delete", "ingressclass", cls)


def test_a_bad_path_type_is_a_422_with_upstreams_message(cluster: Cluster) -> None:
    ns, ing = _namespace(cluster), _name("bad")
    r = cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=_ingress(ing, None, "Regex"),
                        check=False)
    assert r.returncode != 0
    assert r.stderr.strip() == (
        f'The Ingress "{ing}" is invalid: spec.rules[0].http.paths[0].pathType: Unsupported '
        'value: "Regex": supported values: "Exact", "ImplementationSpecific", "Prefix"')
    missing = _ingress(ing, None).replace("pathType: Prefix", "pathType: null")
    r = cluster.kubectl("create", "-n", ns, "-f", "-", stdin=missing, check=False)
    assert r.stderr.strip() == (
        f'The Ingress "{ing}" is invalid: spec.rules[0].http.paths[0].pathType: Required '
        "value: pathType must be specified")
    cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_the_default_class_is_given_to_new_ingresses(cluster: Cluster) -> None:
    ns, cls = _namespace(cluster), _name("default")
    cluster.kubectl("apply", "-f", "-", stdin=_class(cls, default=True))
    try:
        cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=_ingress("plain", None))
        assert _get(cluster, "ing", "-n", ns, "plain")["spec"]["ingressClassName"] == cls
        annotated = _ingress("legacy", None).replace(
            "metadata: {name: legacy}",
            "metadata: {name: legacy, annotations: {kubernetes.io/ingress.class: nginx}}")
        cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=annotated)
        assert "ingressClassName" not in _get(cluster, "ing", "-n", ns, "legacy")["spec"]
    finally:
        cluster.kubectl("delete", "ingressclass", cls)
        cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_explain_ingress_rules(cluster: Cluster) -> None:
    out = cluster.kubectl("explain", "ingress.spec.rules").stdout
    assert "GROUP:      networking.k8s.io" in out and "KIND:       Ingress" in out
    assert "FIELD: rules <[]IngressRule>" in out
    assert "host\t<string>" in out and "http\t<HTTPIngressRuleValue>" in out


def test_prune_removes_a_dropped_ingress(cluster: Cluster) -> None:
    # kubectl's default allowlist also names kinds other branches serve (ReplicationController,
    # Job, CronJob, DaemonSet, StatefulSet): until they are all served, name Ingress.
    ns, a, b = _namespace(cluster), _name("a"), _name("b")
    both = _ingress(a, None) + "---\n" + _ingress(b, None)
    cluster.kubectl("apply", "-n", ns, "-l", "app=shop", "--prune",
                    "--prune-allowlist=networking.k8s.io/v1/Ingress", "-f", "-",
                    stdin=both.replace("metadata: {name: ", "metadata: {labels: {app: shop}, "
                                                            "name: "))
    only_a = _ingress(a, None).replace("metadata: {name: ",
                                       "metadata: {labels: {app: shop}, name: ")
    out = cluster.kubectl("apply", "-n", ns, "-l", "app=shop", "--prune",
                    "--prune-allowlist=networking.k8s.io/v1/Ingress", "-f", "-",
                          stdin=only_a).stdout
    assert f"ingress.networking.k8s.io/{b} pruned" in out
    names = [i["metadata"]["name"] for i in _get(cluster, "ingress", "-n", ns)["items"]]
    assert names == [a]
    cluster.kubectl("delete", "namespace", ns, "--wait=false")
