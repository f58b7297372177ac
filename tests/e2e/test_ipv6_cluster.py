"""IPv6 single stack on a real cluster: `svcnet up --ip-family ipv6`.

Two backends (one per node) answering on ``[::]:8080`` with their name, a client pod, and a
LoadBalancer Service ``web`` (SingleStack by default, so IPv6) on a NodePort free on the
host's loopback. The test checks that the API sees IPv6 only (Nodes, podCIDRs, pods,
``default/kubernetes`` and its EndpointSlice, ``kube-system/kube-dns``), that a pod reaches
the API server through ``kubernetes`` over IPv6 (TLS verified for the IPv6 ClusterIP), that a pod's
resolv.conf names the IPv6 kube-dns address, resolves ``web``'s name to its IPv6 ClusterIP
(AAAA, no A) and reaches it by name, and that the host reaches the NodePort on every node's
IPv6 address, through the localhost forwarder, and on the IPv6 LoadBalancer IP (announced by
NDP). kubectl talks to the API server at its bracketed IPv6 URL throughout. Needs root; the
cluster is always removed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.local_clusters import LocalCluster, free_node_port, local_cluster, write_manifest
from tests.e2e.traffic import backend, from_host, from_pod, get, internal_ips, pod, run_in_pod, url

pytestmark = pytest.mark.root

NAMES = {"web-a", "web-b"}
WEB = "web.default.svc.cluster.local"
# The pod's nameserver, and what its resolver finds for WEB in each family.
RESOLVE = ("import json, socket\n"
           "def find(family):\n"
           "    try:\n"
           "        return sorted({a[4][0] for a in socket.getaddrinfo(\n"
           f"            '{WEB}', 80, family, socket.SOCK_STREAM)}})\n"
           "    except socket.gaierror:\n"
           "        return []\n"
           "servers = [line.split()[1] for line in open('/etc/resolv.conf')\n"
           "           if line.startswith('nameserver')]\n"
           "print(json.dumps({'servers': servers, 'aaaa': find(socket.AF_INET6),\n"
           "                  'a': find(socket.AF_INET)}))\n")
# A TLS handshake with the API server through the `kubernetes` Service, verified against the
# cluster CA (argv[1]) for the Service's IPv6 ClusterIP and its name.
HANDSHAKE = ("import socket, ssl, sys\n"
             "ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
             "for host in sys.argv[2:]:\n"
             "    with socket.create_connection((host, 443), timeout=5) as s:\n"
             "        with ctx.wrap_socket(s, server_hostname=host) as t:\n"
             "            print(host, t.getpeername()[0])\n")


def _manifest(node_port: int) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                  "ports": [{"name": "http", "port": 80, "targetPort": 8080,
                             "nodePort": node_port}]}},
        backend("web-a", "node-1"),
        backend("web-b", "node-2"),
        pod("client", "node-1", ["sleep", "3600"], {}),
    ]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    manifest = write_manifest(tmp_path_factory.mktemp("ipv6"), _manifest(free_node_port()))
    with local_cluster(tmp_path_factory, "v6", "--ip-family", "ipv6", "--container-runtime",
                       "process", "-f", str(manifest)) as cluster:
        yield cluster


def test_the_api_sees_ipv6_only(home: LocalCluster) -> None:
    nodes = internal_ips(home)
    assert len(nodes) == 2 and all(len(ips) == 1 and ":" in ips[0] for ips in nodes.values())
    for node in get(home, "nodes")["items"]:
        cidrs = node["spec"]["podCIDRs"]
        assert len(cidrs) == 1 and cidrs[0].endswith("/64"), cidrs
    for p in get(home, "pods", "-A")["items"]:
        ips = [i["ip"] for i in p["status"]["podIPs"]]
        assert len(ips) == 1 and ":" in ips[0] and p["status"]["podIP"] == ips[0], p["status"]
    kubernetes = get(home, "svc", "kubernetes")["spec"]
    assert (kubernetes["clusterIPs"], kubernetes["ipFamilies"]) == (["fd00:10:96::1"], ["IPv6"])
    endpoints = get(home, "endpointslice", "kubernetes")
    assert endpoints["addressType"] == "IPv6"
    assert ":" in endpoints["endpoints"][0]["addresses"][0]
    assert get(home, "svc", "kube-dns", "-n", "kube-system")["spec"]["clusterIPs"] == [
        "fd00:10:96::a"]
    assert home.kubectl("config", "view", "--minify", "-o",
                        "jsonpath={.clusters[0].cluster.server}").startswith("https://[fd00:")


def test_a_pod_reaches_the_api_server_over_ipv6(home: LocalCluster, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"  # (process-runtime pods see the host's files)
    ca.write_bytes(base64.b64decode(home.kubectl(
        "config", "view", "--raw", "--minify", "-o",
        "jsonpath={.clusters[0].cluster.certificate-authority-data}")))
    out = run_in_pod(home, "client", HANDSHAKE, str(ca), "fd00:10:96::1",
                     "kubernetes.default.svc.cluster.local")
    assert [line.split()[0] for line in out.splitlines()] == [
        "fd00:10:96::1", "kubernetes.default.svc.cluster.local"], out


def test_a_pod_resolves_and_reaches_a_service_over_ipv6(home: LocalCluster) -> None:
    spec = get(home, "svc", "web")["spec"]
    assert spec["ipFamilies"] == ["IPv6"] and ":" in spec["clusterIP"]
    found = json.loads(run_in_pod(home, "client", RESOLVE))
    assert found == {"servers": ["fd00:10:96::a"], "aaaa": [spec["clusterIP"]], "a": []}
    by_name, by_ip = url(WEB, 80), url(spec["clusterIP"], 80)
    answers = from_pod(home, [by_name, by_ip])
    assert answers[by_name] in NAMES and answers[by_ip] in NAMES, answers
    # Pod to pod across nodes (client on node-1, web-b on node-2) over the route node-1's
    # agent keeps from the Nodes (svcnet/node/nodenet.py).
    web_b = get(home, "pod", "web-b")["status"]["podIP"]
    direct = url(web_b, 8080)
    assert ":" in web_b and from_pod(home, [direct]) == {direct: "web-b"}


def test_the_host_reaches_node_ports_and_the_load_balancer_ip(home: LocalCluster) -> None:
    svc = get(home, "svc", "web")
    node_port = svc["spec"]["ports"][0]["nodePort"]
    lb_ips = [i["ip"] for i in svc["status"]["loadBalancer"]["ingress"]]
    assert len(lb_ips) == 1 and ":" in lb_ips[0], lb_ips
    targets = [*(url(ips[0], node_port) for ips in internal_ips(home).values()),
               url("127.0.0.1", node_port), url(lb_ips[0], 80)]
    answers = {t: from_host(t) for t in targets}
    assert set(answers.values()) <= NAMES, answers
