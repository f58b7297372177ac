"""A namespace being deleted refuses new content with NamespaceLifecycle's exact 403, and the
EndpointSlice and Endpoints controllers recognise that answer and stop writing there (instead of
retrying a create that can only fail until the namespace is gone)."""

from __future__ import annotations

import json
import re
import ssl
import time
import urllib.request

from svcnet.api.errors import StatusError, is_namespace_terminating, namespace_terminating_error
from tests.e2e.conftest import Cluster
from tests.e2e.test_http_errors import request
from tests.waiting import wait_for

NS = "term-e2e"


def metric(cluster: Cluster, resource: str, code: int) -> float:
    """Requests for ``resource`` answered ``code``, by the server's own request counter."""
    ctx = ssl.create_default_context(cafile=str(cluster.data_dir / "pki" / "ca.crt"))
    req = urllib.request.Request(cluster.url + "/metrics",
                                 headers={"Authorization": f"Bearer {cluster.token}"})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{") and \
                f'resource="{resource}"' in line and f'code="{code}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_controllers_stop_writing_into_a_terminating_namespace(cluster: Cluster) -> None:
    code, _ = request(cluster, "POST", "/api/v1/namespaces", json.dumps(
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": NS, "finalizers": ["example.com/hold"]}}).encode())
    assert code == 201
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}
    assert request(cluster, "POST", f"/api/v1/namespaces/{NS}/services",
                   json.dumps(svc).encode())[0] == 201
    slices = f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"
    (slice_obj,) = wait_for(lambda: request(cluster, "GET", slices)[1]["items"],
                            "the Service's EndpointSlice", timeout=20)
    wait_for(lambda: request(cluster, "GET", f"/api/v1/namespaces/{NS}/endpoints/web")[0]
             == 200, "the Service's Endpoints", timeout=20)

    code, ns = request(cluster, "DELETE", f"/api/v1/namespaces/{NS}")
    assert code == 200 and ns["metadata"].get("deletionTimestamp"), ns
    code, status = request(cluster, "POST", f"/api/v1/namespaces/{NS}/services", json.dumps(
        {**svc, "metadata": {"name": "late"}}).encode())
    assert status == namespace_terminating_error("services", "late", NS).to_status()
    assert code == 403
    err = StatusError(code, status["reason"], status["message"], status["details"])
    assert is_namespace_terminating(err)
    # Server-side apply that would create is refused the same way.
    code, status = request(cluster, "PATCH", f"/api/v1/namespaces/{NS}/services/applied?"
                           "fieldManager=test", json.dumps(
                               {**svc, "metadata": {"name": "applied"}}).encode(),
                           "application/apply-patch+yaml")
    assert (code, status["reason"]) == (403, "Forbidden"), status
    assert request(cluster, "GET", f"/api/v1/namespaces/{NS}/services/applied")[0] == 404

    # Take their objects away: each controller tries to put its object back once, is told
    # the namespace is terminating, and stops.
    before = (metric(cluster, "endpointslices", 403),
              metric(cluster, "endpoints", 403))
    assert request(cluster, "DELETE", f"{slices}/{slice_obj['metadata']['name']}")[0] == 200
    assert request(cluster, "DELETE", f"/api/v1/namespaces/{NS}/endpoints/web")[0] == 200
    wait_for(lambda: metric(cluster, "endpointslices", 403) > before[0]
             and metric(cluster, "endpoints", 403) > before[1], "both controllers to try once",
             timeout=20)
    time.sleep(1)
    settled = (metric(cluster, "endpointslices", 403),
               metric(cluster, "endpoints", 403))
    time.sleep(4)  # a controller that retried would have tried several times by now
    assert (metric(cluster, "endpointslices", 403),
            metric(cluster, "endpoints", 403)) == settled
    assert re.search(r"is being terminated", status["message"])
