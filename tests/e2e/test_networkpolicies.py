"""NetworkPolicies (networking.k8s.io/v1) through a real `svcnet server`, the real kubectl and
the official Python client: apply of a chart-style policy, the defaults, the Table columns,
``kubectl describe``, upstream's 422s with their field paths, and the default roles (edit
writes policies, view reads them). svcnet stores and validates them; nothing enforces them.

The session cluster is shared: each test makes its own namespace (a random name) and deletes
it before it ends.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from svcnet.apiserver.auth import TokenFile, User
from tests.e2e.conftest import Cluster
from tests.e2e.test_http_errors import request
from tests.waiting import wait_for

NETWORKING = "/apis/networking.k8s.io/v1"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _namespace(cluster: Cluster) -> str:
    name = _name("netpol")
    cluster.kubectl("create", "namespace", name)
    return name


def _policy(name: str, db_port: int = 5432) -> str:
    """What a chart carries: the database takes traffic from its app and one network, and
    talks to DNS only (no protocols, no policyTypes: the server defaults them)."""
    return (f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}}}\n"
            "spec:\n"
            "  podSelector: {matchLabels: {app.kubernetes.io/name: db}}\n"
            "  ingress:\n"
            "  - from:\n"
            "    - podSelector: {matchLabels: {role: frontend}}\n"
            "    - namespaceSelector: {matchLabels: {team: ops}}\n"
            "      podSelector: {matchLabels: {role: backup}}\n"
            f"    ports: [{{port: {db_port}}}]\n"
            "  - from:\n"
            "    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}\n"
            "  egress:\n"
            "  - ports: [{port: 53, protocol: UDP}, {port: 30000, endPort: 32767}]\n")


@pytest.fixture(scope="module")
def networking_api(cluster: Cluster) -> Iterator[client.NetworkingV1Api]:
    api = config.new_client_from_config(str(cluster.kubeconfig))
    try:
        yield client.NetworkingV1Api(api)
    finally:
        api.close()


def test_apply_get_describe_a_policy(cluster: Cluster) -> None:
    ns, name = _namespace(cluster), _name("db")
    deny = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-all}\n"
    out = cluster.kubectl("apply", "-n", ns, "-f", "-",
                          stdin=_policy(name) + "---\n" + deny + "spec: {podSelector: {}}\n")
    assert out.stdout.splitlines() == [f"networkpolicy.networking.k8s.io/{name} created",
                                       "networkpolicy.networking.k8s.io/deny-all created"]
    lines = cluster.kubectl("get", "netpol", "-n", ns).stdout.splitlines()
    assert lines[0].split() == ["NAME", "POD-SELECTOR", "AGE"]
    rows = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert rows == {name: "app.kubernetes.io/name=db", "deny-all": "<none>"}

    obj = cluster.get_json("networkpolicy", "-n", ns, name)
    spec = obj["spec"]
    assert obj["metadata"]["generation"] == 1 and "status" not in obj
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"][0]["ports"] == [{"port": 5432, "protocol": "TCP"}]
    assert spec["egress"][0]["ports"] == [{"port": 53, "protocol": "UDP"},
                                          {"endPort": 32767, "port": 30000, "protocol": "TCP"}]
    assert cluster.get_json("netpol", "-n", ns, "deny-all")["spec"] == {
        "podSelector": {}, "policyTypes": ["Ingress"]}

    desc = cluster.kubectl("describe", "netpol", "-n", ns, name).stdout.splitlines()
    assert desc[:2] == [f"Name:         {name}", f"Namespace:    {ns}"]
    assert desc[desc.index("Spec:"):] == [
        "Spec:",
        "  PodSelector:     app.kubernetes.io/name=db",
        "  Allowing ingress traffic:",
        "    To Port: 5432/TCP",
        "    From:",
        "      PodSelector: role=frontend",
        "    From:",
        "      NamespaceSelector: team=ops",
        "      PodSelector: role=backup",
        "    ----------",
        "    To Port: <any> (traffic allowed to all ports)",
        "    From:",
        "      IPBlock:",
        "        CIDR: 10.0.0.0/8",
        "        Except: 10.1.0.0/16",
        "  Allowing egress traffic:",
        "    To Port: 53/UDP",
        "    To Port Range: 30000-32767/TCP",
        "    To: <any> (traffic not restricted by destination)",
        "  Policy Types: Ingress, Egress"]

    # Applying it again changes nothing. kubectl says "configured" all the same, against
    # kube-apiserver too: its three-way patch replaces the (atomic) rule lists, whose ports
    # the server defaulted. Spelled out with the defaults, the manifest is "unchanged".
    again = cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=_policy(name)).stdout
    assert again.strip() == f"networkpolicy.networking.k8s.io/{name} configured"
    assert cluster.get_json("netpol", "-n", ns, name)["metadata"]["generation"] == 1
    explicit = _policy(name).replace("{port: 5432}", "{port: 5432, protocol: TCP}").replace(
        "endPort: 32767}", "endPort: 32767, protocol: TCP}")
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=explicit)
    again = cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=explicit).stdout
    assert again.strip() == f"networkpolicy.networking.k8s.io/{name} unchanged"
    assert cluster.get_json("netpol", "-n", ns, name)["metadata"]["generation"] == 1
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=_policy(name, 5433))
    changed = cluster.get_json("netpol", "-n", ns, name)
    assert changed["metadata"]["generation"] == 2
    assert changed["spec"]["ingress"][0]["ports"] == [{"port": 5433, "protocol": "TCP"}]
    cluster.kubectl("label", "netpol", "-n", ns, name, "tier=data")
    assert cluster.get_json("netpol", "-n", ns, name)["metadata"]["generation"] == 2
    cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_an_invalid_policy_is_a_422_with_upstreams_fields(cluster: Cluster) -> None:
    ns, name = _namespace(cluster), _name("bad")
    bad = _policy(name).replace("{port: 53, protocol: UDP}", "{port: 53, protocol: ICMP}")
    bad = bad.replace("except: [10.1.0.0/16]", "except: [10.0.0.0/8]")
    r = cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=bad, check=False)
    assert r.returncode != 0
    assert r.stderr.strip() == (
        f'The NetworkPolicy "{name}" is invalid: \n'
        '* spec.ingress[1].from[0].ipBlock.except[0]: Invalid value: "10.0.0.0/8": must be a '
        "strict subset of `cidr`\n"
        '* spec.egress[0].ports[0].protocol: Unsupported value: "ICMP": supported values: '
        '"TCP", "UDP", "SCTP"')
    both = ("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
            f"metadata: {{name: {name}}}\nspec:\n  podSelector: {{}}\n  ingress:\n"
            "  - from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]\n")
    r = cluster.kubectl("create", "-n", ns, "-f", "-", stdin=both, check=False)
    assert r.stderr.strip() == (
        f'The NetworkPolicy "{name}" is invalid: spec.ingress[0].from[0]: Forbidden: may not '
        "specify both ipBlock and another peer")
    assert cluster.kubectl("get", "netpol", "-n", ns, name, check=False).returncode != 0
    cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_python_client_networking_v1_api(cluster: Cluster,
                                         networking_api: client.NetworkingV1Api) -> None:
    ns, name = _namespace(cluster), _name("web")
    body = client.V1NetworkPolicy(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1NetworkPolicySpec(
            pod_selector=client.V1LabelSelector(match_labels={"app": "web"}),
            ingress=[client.V1NetworkPolicyIngressRule(
                _from=[client.V1NetworkPolicyPeer(ip_block=client.V1IPBlock(
                    cidr="192.0.2.0/24"))],
                ports=[client.V1NetworkPolicyPort(port="http")])]))
    made = networking_api.create_namespaced_network_policy(ns, body)
    assert made.metadata.generation == 1
    assert made.spec.policy_types == ["Ingress"]
    read = networking_api.read_namespaced_network_policy(name, ns)
    assert read.spec.ingress[0]._from[0].ip_block.cidr == "192.0.2.0/24"
    assert read.spec.ingress[0].ports[0].port == "http"
    assert read.spec.ingress[0].ports[0].protocol == "TCP"
    listed = networking_api.list_namespaced_network_policy(ns).items
    assert [p.metadata.name for p in listed] == [name]

    with pytest.raises(ApiException) as err:
        networking_api.create_namespaced_network_policy(ns, {
            "metadata": {"name": "ports"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress", "Both"],
                     "egress": [{"ports": [{"port": 8080, "endPort": 80}]}]}})
    assert err.value.status == 422
    status = json.loads(err.value.body)
    assert status["reason"] == "Invalid"
    assert status["details"] == {"name": "ports", "group": "networking.k8s.io",
                                 "kind": "NetworkPolicy", "causes": [
        {"reason": "FieldValueInvalid",
         "message": "Invalid value: 8080: must be greater than or equal to `port`",
         "field": "spec.egress[0].ports[0].endPort"},
        {"reason": "FieldValueInvalid",
         "message": 'Invalid value: []networking.PolicyType{"Ingress", "Egress", "Both"}: may '
                    "not specify more than two policyTypes",
         "field": "spec.policyTypes"}]}
    networking_api.delete_namespaced_network_policy(name, ns)
    assert networking_api.list_namespaced_network_policy(ns).items == []
    cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_edit_writes_policies_and_view_reads_them(cluster: Cluster) -> None:
    ns = _namespace(cluster)
    editor, viewer = secrets.token_hex(16), secrets.token_hex(16)
    tokens = TokenFile(cluster.data_dir / "tokens.csv")
    tokens.add(editor, User("np-editor", "np-editor-1"))
    tokens.add(viewer, User("np-viewer", "np-viewer-1"))
    for user, role in (("np-editor", "edit"), ("np-viewer", "view")):
        cluster.kubectl("create", "rolebinding", "-n", ns, user, f"--clusterrole={role}",
                        f"--user={user}")
    path = f"{NETWORKING}/namespaces/{ns}/networkpolicies"
    policy = json.dumps({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                         "metadata": {"name": "deny"}, "spec": {"podSelector": {}}}).encode()
    # The aggregated roles fill in asynchronously: wait until edit carries the rule.
    code, made = wait_for(lambda: (r := request(cluster, "POST", path, policy,
                                                token=editor))[0] == 201 and r,
                          what="edit may create networkpolicies")
    assert made["metadata"]["name"] == "deny"
    code, listed = request(cluster, "GET", path, token=viewer)
    assert code == 200 and [i["metadata"]["name"] for i in listed["items"]] == ["deny"]
    code, body = request(cluster, "DELETE", f"{path}/deny", token=viewer)
    assert code == 403, body
    code, body = request(cluster, "DELETE", f"{path}/deny", token=editor)
    assert code == 200, body
    cluster.kubectl("delete", "namespace", ns, "--wait=false")
