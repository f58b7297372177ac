"""Admission webhooks served by a pod behind a Service on a whole `svcnet up` cluster, with the
real kubectl, as cert-manager's or an operator's webhook is deployed: a pod (the ``process``
runtime: a small HTTPS server on the host's Python) serving a certificate for
``hook.default.svc`` from a CA the test made, a Service in front of it, and a
ValidatingWebhookConfiguration and a MutatingWebhookConfiguration naming that Service with the
CA as ``caBundle``. The API server (in the host namespace, where pod IPs are routed and
ClusterIPs are not) calls it at a ready endpoint.

Needs root (a cluster); cluster name "wh" plus random hex, on the first free node network,
always removed by `svcnet down`.
"""

from __future__ import annotations

import base64
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from svcnet.apiserver.certs import ensure_tls
from tests.e2e.local_clusters import LocalCluster, local_cluster
from tests.waiting import wait_for

pytestmark = pytest.mark.root

#: The webhook: denies what is labelled deny=yes (/validate), annotates what it is sent
#: (/mutate). Python's standard library only.
HOOK = textwrap.dedent('''\
    import base64, http.server, json, ssl, sys
    cert, key, port = sys.argv[1], sys.argv[2], int(sys.argv[3])

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            req = review["request"]
            response = {"uid": req["uid"], "allowed": True}
            labels = (req["object"]["metadata"].get("labels") or {})
            if self.path.startswith("/validate") and labels.get("deny") == "yes":
                response = {"uid": req["uid"], "allowed": False,
                            "status": {"code": 403, "message": "denied by the test webhook"}}
            elif self.path.startswith("/mutate"):
                patch = [{"op": "add", "path": "/metadata/annotations",
                          "value": {"svcnet.test/mutated": "yes"}}]
                response["patchType"] = "JSONPatch"
                response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
            body = json.dumps({"apiVersion": review["apiVersion"], "kind": "AdmissionReview",
                               "response": response}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.HTTPServer(("0.0.0.0", port), Hook)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()
    ''')

SELECTED = {"matchLabels": {"webhook-test": "yes"}}


def configurations(ca: bytes) -> str:
    def hook(name: str, path: str) -> dict[str, object]:
        return {"name": name, "sideEffects": "None", "admissionReviewVersions": ["v1"],
                "objectSelector": SELECTED,
                "clientConfig": {"service": {"namespace": "default", "name": "hook",
                                             "path": path},
                                 "caBundle": base64.b64encode(ca).decode()},
                "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""],
                           "apiVersions": ["v1"], "resources": ["configmaps"]}]}
    docs = [{"apiVersion": "admissionregistration.k8s.io/v1",
             "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "deny"},
             "webhooks": [hook("deny.svcnet.test", "/validate")]},
            {"apiVersion": "admissionregistration.k8s.io/v1",
             "kind": "MutatingWebhookConfiguration", "metadata": {"name": "annotate"},
             "webhooks": [hook("annotate.svcnet.test", "/mutate")]}]
    return "\n---\n".join(json.dumps(d) for d in docs)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path_factory, "wh") as cluster:
        yield cluster


def configmap(name: str, **labels: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": name, "labels": {"webhook-test": "yes", **labels}},
                       "data": {"k": "v"}})


def test_a_webhook_behind_a_service_denies_and_mutates(home: LocalCluster,
                                                       tmp_path: Path) -> None:
    tls = ensure_tls(tmp_path / "hook", ["hook.default.svc"])
    script = tmp_path / "hook.py"
    script.write_text(HOOK)
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "hook", "labels": {"app": "hook"}},
           "spec": {"runtimeClassName": "process", "containers": [{
               "name": "hook", "image": "example/hook",
               "command": [sys.executable, str(script), str(tls.cert), str(tls.key), "8443"],
               "ports": [{"containerPort": 8443, "name": "https"}],
               "readinessProbe": {"tcpSocket": {"port": 8443}, "periodSeconds": 1}}]}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hook"},
               "spec": {"selector": {"app": "hook"},
                        "ports": [{"port": 443, "targetPort": "https"}]}}
    home.kubectl("apply", "-f", "-", stdin=json.dumps(pod) + "\n---\n" + json.dumps(service))
    home.kubectl("wait", "--for=condition=Ready", "pod/hook", "--timeout=60s")
    home.kubectl("apply", "-f", "-", stdin=configurations(tls.ca_pem()))

    # The configurations reach the server's watch-fed view at once, or nearly.
    def annotated() -> bool:
        home.kubectl("apply", "-f", "-", stdin=configmap("allowed"))
        got = json.loads(home.kubectl("get", "configmap", "allowed", "-o", "json"))
        return (got["metadata"].get("annotations") or {}).get("svcnet.test/mutated") == "yes"

    wait_for(annotated, timeout=30, what="the mutating webhook's annotation",
             detail=lambda: home.kubectl("get", "pods,endpointslices", "-o", "wide"))

    r = home.kubectl_run("apply", "-f", "-", stdin=configmap("refused", deny="yes"))
    assert r.returncode == 1, r.stdout
    assert ('admission webhook "deny.svcnet.test" denied the request: denied by the test '
            "webhook") in r.stderr
    assert home.kubectl_run("get", "configmap", "refused").returncode == 1

    # Objects the selectors leave out are not sent at all: without the webhook's label a
    # ConfigMap passes even with deny=yes.
    home.kubectl("create", "configmap", "unselected", "--from-literal=k=v")
    home.kubectl("label", "configmap", "unselected", "deny=yes")

    # With the webhook's pod gone, failurePolicy Fail refuses what it selects.
    home.kubectl("delete", "pod", "hook", "--grace-period=1")
    r = home.kubectl_run("apply", "-f", "-", stdin=configmap("while-down"))
    assert r.returncode == 1
    assert 'failed calling webhook "annotate.svcnet.test"' in r.stderr
    home.kubectl("delete", "validatingwebhookconfiguration", "deny")
    home.kubectl("delete", "mutatingwebhookconfiguration", "annotate")
