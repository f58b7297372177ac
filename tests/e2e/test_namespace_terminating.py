"""A namespace being deleted refuses new content with NamespaceLifecycle's exact 403, and the
EndpointSlice and Endpoints controllers recognise that answer and stop writing there (instead of
retrying a create that can only fail until the namespace is gone) when the namespace controller
removes their objects."""

from __future__ import annotations

import json
import re
import ssl
import time
import urllib.request
from typing import Any

from svcnet.api.errors import StatusError, is_namespace_terminating, namespace_terminating_error
from tests.e2e.conftest import Cluster
from tests.e2e.test_http_errors import request
from tests.waiting import wait_for

NS = "term-e2e"
HOLD = "example.com/hold"


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


def condition(cluster: Cluster, ctype: str) -> dict[str, Any] | None:
    code, ns = request(cluster, "GET", f"/api/v1/namespaces/{NS}")
    assert code == 200, ns
    return next((c for c in ns["status"].get("conditions") or [] if c["type"] == ctype), None)


def test_controllers_stop_writing_into_a_terminating_namespace(cluster: Cluster) -> None:
    code, _ = request(cluster, "POST", "/api/v1/namespaces", json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}).encode())
    assert code == 201
    # The Service's finalizer holds the namespace in Terminating until the test lets it go.
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "web", "finalizers": [HOLD]},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}
    assert request(cluster, "POST", f"/api/v1/namespaces/{NS}/services",
                   json.dumps(svc).encode())[0] == 201
    slices = f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"
    wait_for(lambda: request(cluster, "GET", slices)[1]["items"], "the Service's EndpointSlice",
             timeout=20)
    wait_for(lambda: request(cluster, "GET", f"/api/v1/namespaces/{NS}/endpoints/web")[0]
             == 200, "the Service's Endpoints", timeout=20)
    before = (metric(cluster, "endpointslices", 403),
              metric(cluster, "endpoints", 403))

    code, ns = request(cluster, "DELETE", f"/api/v1/namespaces/{NS}")
    assert code == 200 and ns["metadata"].get("deletionTimestamp"), ns
    assert ns["status"]["phase"] == "Terminating"
    code, status = request(cluster, "POST", f"/api/v1/namespaces/{NS}/services", json.dumps(
        {**svc, "metadata": {"name": "late"}}).encode())
    assert status == namespace_terminating_error("services", "late", NS).to_status()
    assert code == 403
    assert re.search(r"is being terminated", status["message"])
    err = StatusError(code, status["reason"], status["message"], status["details"])
    assert is_namespace_terminating(err)
    # Server-side apply that would create is refused the same way.
    code, status = request(cluster, "PATCH", f"/api/v1/namespaces/{NS}/services/applied?"
                           "fieldManager=test", json.dumps(
                               {**svc, "metadata": {"name": "applied"}}).encode(),
                           "application/apply-patch+yaml")
    assert (code, status["reason"]) == (403, "Forbidden"), status
    assert request(cluster, "GET", f"/api/v1/namespaces/{NS}/services/applied")[0] == 404

    # Take their objects away before the namespace controller gets to the namespace (it waits
    # 5 s): each controller tries once to put its object back, is told the namespace is
    # terminating, and stops.
    (slice_obj,) = request(cluster, "GET", slices)[1]["items"]
    assert request(cluster, "DELETE", f"{slices}/{slice_obj['metadata']['name']}")[0] == 200
    assert request(cluster, "DELETE", f"/api/v1/namespaces/{NS}/endpoints/web")[0] == 200
    wait_for(lambda: metric(cluster, "endpointslices", 403) > before[0]
             and metric(cluster, "endpoints", 403) > before[1], "both controllers to try once",
             timeout=20)

    # The namespace controller's first pass marks the Service (which the EndpointSlice
    # controller then leaves alone, as upstream's does with a Service being deleted) and says
    # what holds the namespace.
    remaining = wait_for(lambda: (c := condition(cluster, "NamespaceFinalizersRemaining"))
                         and c["status"] == "True" and c, "the namespace controller's pass",
                         timeout=30)
    assert remaining["message"] == ("Some content in the namespace has finalizers remaining: "
                                    f"{HOLD} in 1 resource instances")
    content = condition(cluster, "NamespaceContentRemaining")
    assert content is not None and content["message"] == (
        "Some resources are remaining: services. has 1 resource instances")
    time.sleep(3)
    # A controller that retried would have tried many times by now (its back-off starts at
    # 5 ms); these tried once per event: the deletions above, and for Endpoints the Service's
    # deletionTimestamp.
    tries = (metric(cluster, "endpointslices", 403) - before[0],
             metric(cluster, "endpoints", 403) - before[1])
    assert 1 <= tries[0] <= 2 and 1 <= tries[1] <= 3, tries
    assert request(cluster, "GET", slices)[1]["items"] == []

    # Let the Service go: the namespace follows.
    assert request(cluster, "PATCH", f"/api/v1/namespaces/{NS}/services/web", json.dumps(
        {"metadata": {"finalizers": None}}).encode(), "application/merge-patch+json")[0] == 200
    wait_for(lambda: request(cluster, "GET", f"/api/v1/namespaces/{NS}")[0] == 404,
             "the namespace to be removed", timeout=40)
