"""Real traffic in the `svcnet up` clusters of the root tests (one home for the dual-stack and
IPv6 tests): backend pods that answer HTTP with their name on ``[::]:8080``, a client pod, and
fetching URLs from that pod (``svcnet exec``) or from the host, with retries while rules and
announcements settle.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from typing import Any

from tests.e2e.local_clusters import LocalCluster

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


def pod(name: str, node: str, command: list[str], labels: dict[str, str]) -> dict[str, Any]:
    """A process-runtime pod pinned to ``node``; with ``labels`` a backend, ready once it
    listens on 8080."""
    container: dict[str, Any] = {"name": "main", "image": "python", "command": command}
    if labels:
        container["readinessProbe"] = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": node, "runtimeClassName": "process",
                     "terminationGracePeriodSeconds": 1, "containers": [container]}}


def backend(name: str, node: str) -> dict[str, Any]:
    """A pod labelled ``app=web`` answering its name on 8080."""
    return pod(name, node, ["python3", "-c", SERVER, name], {"app": "web"})


def url(ip: str, port: int, path: str = "/") -> str:
    return f"http://[{ip}]:{port}{path}" if ":" in ip else f"http://{ip}:{port}{path}"


def run_in_pod(home: LocalCluster, pod_name: str, code: str, *args: str) -> str:
    """The stdout of ``python -c code args`` in the pod (its network namespace)."""
    return home.svcnet("exec", pod_name, "--kubeconfig", str(home.kubeconfig), "--",
                       sys.executable, "-c", code, *args, timeout=90).stdout


def from_pod(home: LocalCluster, urls: list[str], pod_name: str = "client") -> dict[str, str]:
    """URL -> the body fetched from pod ``pod_name`` (``error:<kind>`` when it never answered)."""
    out = run_in_pod(home, pod_name, FETCH, *urls)
    return dict(line.split(" ", 1) for line in out.splitlines())


def from_host(target: str) -> str:
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(target, timeout=2) as response:
                return str(response.read().decode())
        except OSError as e:
            if time.monotonic() > deadline:
                return f"error:{type(e).__name__}"
            time.sleep(0.2)


def get(home: LocalCluster, *args: str) -> Any:
    """``kubectl get ARGS -o json``, decoded."""
    return json.loads(home.kubectl("get", *args, "-o", "json"))


def internal_ips(home: LocalCluster) -> dict[str, list[str]]:
    """Node name -> its InternalIPs, as the Node shows them."""
    return {n["metadata"]["name"]: [a["address"] for a in n["status"]["addresses"]
                                    if a["type"] == "InternalIP"]
            for n in get(home, "nodes")["items"]}
