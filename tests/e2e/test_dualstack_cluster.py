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
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.local_clusters import LocalCluster, local_cluster

pytestmark = pytest.mark.root

# An IPv6 socket on [::] takes IPv4 connections too (as ::ffff:a.b.c.d).
SERVER = ("import http.server, socket, sys\n"
          "class H(http.server.BaseHTTPRequestHandler):\n"
          "    def do_GET(self):\n"
          "        body = sys.argv[1].encode()\n"
          "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
          "        self.end_headers(); self.wfile.write(body)\n"
          "    def log_message(self, *a): pass\n"
          "class S(http.server.ThreadingHTTPServer):\n"
          "    address_family = socket.AF_INET6\n"
          "S(('::', 8080), H).serve_forever()\n")


def _pod(name: str, node: str, command: list[str], labels: dict[str, str]) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "python", "command": command}
    if labels:
        container["readinessProbe"] = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": node, "runtimeClassName": "process",
                     "terminationGracePeriodSeconds": 1, "containers": [container]}}


def _service(name: str, policy: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": "web"}, "ipFamilyPolicy": policy,
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}], **spec}}


MANIFEST = [
    _service("dual", "RequireDualStack", type="LoadBalancer"),
    _service("peers", "RequireDualStack", clusterIP="None"),
    _service("single", "SingleStack"),
    _pod("web-a", "node-1", ["python3", "-c", SERVER, "web-a"], {"app": "web"}),
    _pod("web-b", "node-2", ["python3", "-c", SERVER, "web-b"], {"app": "web"}),
    _pod("client", "node-1", ["sleep", "3600"], {}),
]
NAMES = {"web-a", "web-b"}

# Fetch each URL (argv) until it answers or 15 s pass; print "url name" or "url error".
FETCH = ("import sys, time, urllib.request\n"
         "for url in sys.argv[1:]:\n"
         "    deadline = time.monotonic() + 15\n"
         "    while True:\n"
         "        try:\n"
         "            body = urllib.request.urlopen(url, timeout=2).read().decode()\n"
         "        except OSError as e:\n"
         "            if time.monotonic() < deadline:\n"
         "                time.sleep(0.2); continue\n"
         "            body = 'error:' + type(e).__name__\n"
         "        print(url, body); break\n")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    manifest = tmp_path_factory.mktemp("dual") / "dual.yaml"
    manifest.write_text("\n---\n".join(json.dumps(doc) for doc in MANIFEST))
    with local_cluster(tmp_path_factory, "dn", "--ip-family", "dual", "--container-runtime",
                       "process", "-f", str(manifest)) as cluster:
        yield cluster


def _url(ip: str, port: int) -> str:
    return f"http://[{ip}]:{port}/" if ":" in ip else f"http://{ip}:{port}/"


def from_pod(home: LocalCluster, urls: list[str]) -> dict[str, str]:
    out = home.svcnet("exec", "client", "--kubeconfig", str(home.kubeconfig), "--",
                      sys.executable, "-c", FETCH, *urls, timeout=90).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def from_host(url: str) -> str:
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return str(response.read().decode())
        except OSError as e:
            if time.monotonic() > deadline:
                return f"error:{type(e).__name__}"
            time.sleep(0.2)


def _get(home: LocalCluster, *args: str) -> Any:
    return json.loads(home.kubectl("get", *args, "-o", "json"))


def test_dual_stack_services_answer_over_both_families(home: LocalCluster) -> None:
    nodes = {n["metadata"]["name"]: [a["address"] for a in n["status"]["addresses"]
                                     if a["type"] == "InternalIP"]
             for n in _get(home, "nodes")["items"]}
    assert all(len(ips) == 2 and ":" in ips[1] for ips in nodes.values()), nodes
    web_a = _get(home, "pod", "web-a")["status"]
    assert [":" in p["ip"] for p in web_a["podIPs"]] == [False, True]
    assert web_a["podIP"] == web_a["podIPs"][0]["ip"]

    svc = _get(home, "svc", "dual")
    cluster_ips = svc["spec"]["clusterIPs"]
    node_port = svc["spec"]["ports"][0]["nodePort"]
    lb_ips = [i["ip"] for i in svc["status"]["loadBalancer"]["ingress"]]
    assert [":" in ip for ip in cluster_ips] == [False, True]
    assert sorted(":" in ip for ip in lb_ips) == [False, True]

    # From a pod: both ClusterIPs, the NodePort on both nodes' addresses of both families.
    urls = [_url(ip, 80) for ip in cluster_ips]
    urls += [_url(ip, node_port) for ips in nodes.values() for ip in ips]
    answers = from_pod(home, urls)
    assert set(answers) == set(urls) and set(answers.values()) <= NAMES, answers

    # From the host: the NodePort on every node address, both LoadBalancer IPs.
    for url in [*(_url(ip, node_port) for ips in nodes.values() for ip in ips),
                *(_url(ip, 80) for ip in lb_ips)]:
        assert from_host(url) in NAMES, url

    # Headless: the name has each backend's IPv6 address as AAAA (and its IPv4 one as A).
    pod_ips = {p["status"]["podIPs"][1]["ip"] for p in _get(home, "pods", "-l",
                                                               "app=web")["items"]}
    code = ("import socket\n"
            "name = 'peers.default.svc.cluster.local'\n"
            "print(sorted({a[4][0] for a in socket.getaddrinfo(name, 80, socket.AF_INET6, "
            "socket.SOCK_STREAM)}))\n")
    out = home.svcnet("exec", "client", "--kubeconfig", str(home.kubeconfig), "--",
                      sys.executable, "-c", code).stdout
    assert sorted(json.loads(out.replace("'", '"'))) == sorted(pod_ips)


def test_single_stack_to_prefer_dual_stack_adds_an_ipv6_cluster_ip_that_answers(
        home: LocalCluster) -> None:
    assert len(_get(home, "svc", "single")["spec"]["clusterIPs"]) == 1
    home.kubectl("patch", "svc", "single", "-p",
                 '{"spec": {"ipFamilyPolicy": "PreferDualStack"}}')
    spec = _get(home, "svc", "single")["spec"]
    assert spec["ipFamilies"] == ["IPv4", "IPv6"] and len(spec["clusterIPs"]) == 2
    url = _url(spec["clusterIPs"][1], 80)
    assert from_pod(home, [url])[url] in NAMES
