"""Dual stack on a real cluster: `svcnet up --ip-family dual`, real traffic over both families.

Two backends (one per node) answering on ``[::]:8080`` with their name, a client pod, and
three Services: ``dual`` (LoadBalancer, RequireDualStack), ``peers`` (headless,
RequireDualStack) and ``single`` (ClusterIP, SingleStack). The test reaches ``dual`` over
IPv4 and IPv6 on its ClusterIPs from the pod, on its NodePort at both nodes' addresses of each
family from the pod and from the host, and on its LoadBalancer IPs from the host (the IPv6 one
announced by NDP); the headless Service's name has both backends' AAAA records; and
``single``, updated to PreferDualStack, gets an IPv6 ClusterIP that answers. Needs root; the
cluster is always removed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.local_clusters import LocalCluster, local_cluster, write_manifest
from tests.e2e.traffic import backend, from_host, from_pod, get, internal_ips, pod, run_in_pod, url

pytestmark = pytest.mark.root


def _service(name: str, policy: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": "web"}, "ipFamilyPolicy": policy,
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}], **spec}}


MANIFEST = [
    _service("dual", "RequireDualStack", type="LoadBalancer"),
    _service("peers", "RequireDualStack", clusterIP="None"),
    _service("single", "SingleStack"),
    backend("web-a", "node-1"),
    backend("web-b", "node-2"),
    pod("client", "node-1", ["sleep", "3600"], {}),
]
NAMES = {"web-a", "web-b"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    manifest = write_manifest(tmp_path_factory.mktemp("dual"), MANIFEST)
    with local_cluster(tmp_path_factory, "dn", "--ip-family", "dual", "--container-runtime",
                       "process", "-f", str(manifest)) as cluster:
        yield cluster


def test_dual_stack_services_answer_over_both_families(home: LocalCluster) -> None:
    nodes = internal_ips(home)
    assert all(len(ips) == 2 and ":" in ips[1] for ips in nodes.values()), nodes
    web_a = get(home, "pod", "web-a")["status"]
    assert [":" in p["ip"] for p in web_a["podIPs"]] == [False, True]
    assert web_a["podIP"] == web_a["podIPs"][0]["ip"]

    svc = get(home, "svc", "dual")
    cluster_ips = svc["spec"]["clusterIPs"]
    node_port = svc["spec"]["ports"][0]["nodePort"]
    lb_ips = [i["ip"] for i in svc["status"]["loadBalancer"]["ingress"]]
    assert [":" in ip for ip in cluster_ips] == [False, True]
    assert sorted(":" in ip for ip in lb_ips) == [False, True]

    # From a pod: both ClusterIPs, the NodePort on both nodes' addresses of both families.
    urls = [url(ip, 80) for ip in cluster_ips]
    urls += [url(ip, node_port) for ips in nodes.values() for ip in ips]
    answers = from_pod(home, urls)
    assert set(answers) == set(urls) and set(answers.values()) <= NAMES, answers
    # Pod to pod across nodes, both families: node-1 routes node-2's pod CIDRs as its agent
    # planned them from the Nodes (svcnet/node/nodenet.py; no static route).
    direct = [url(p["ip"], 8080) for p in get(home, "pod", "web-b")["status"]["podIPs"]]
    assert from_pod(home, direct) == dict.fromkeys(direct, "web-b")

    # From the host: the NodePort on every node address, both LoadBalancer IPs.
    for target in [*(url(ip, node_port) for ips in nodes.values() for ip in ips),
                   *(url(ip, 80) for ip in lb_ips)]:
        assert from_host(target) in NAMES, target

    # Headless: the name has each backend's IPv6 address as AAAA (and its IPv4 one as A).
    pod_ips = {p["status"]["podIPs"][1]["ip"] for p in get(home, "pods", "-l",
                                                               "app=web")["items"]}
    code = ("import socket\n"
            "name = 'peers.default.svc.cluster.local'\n"
            "print(sorted({a[4][0] for a in socket.getaddrinfo(name, 80, socket.AF_INET6, "
            "socket.SOCK_STREAM)}))\n")
    out = run_in_pod(home, "client", code)
    assert sorted(json.loads(out.replace("'", '"'))) == sorted(pod_ips)


def test_single_stack_to_prefer_dual_stack_adds_an_ipv6_cluster_ip_that_answers(
        home: LocalCluster) -> None:
    assert len(get(home, "svc", "single")["spec"]["clusterIPs"]) == 1
    home.kubectl("patch", "svc", "single", "-p",
                 '{"spec": {"ipFamilyPolicy": "PreferDualStack"}}')
    spec = get(home, "svc", "single")["spec"]
    assert spec["ipFamilies"] == ["IPv4", "IPv6"] and len(spec["clusterIPs"]) == 2
    target = url(spec["clusterIPs"][1], 80)
    assert from_pod(home, [target])[target] in NAMES
