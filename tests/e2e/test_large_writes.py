"""Large writes against the real server: a pathological body is a clear, bounded 4xx that
stores nothing, and the server keeps answering others while a big but legal write runs.

The timings asserted are generous bounds and ratios of what the test itself observes, so that
a loaded 2-core CI machine passes; what is checked is behaviour: who got answered when.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from svcnet.api.errors import MAX_REPORTED_ERRORS
from svcnet.apiserver.body import MAX_BODY_BYTES
from tests.e2e.conftest import Cluster

NS = "large-writes"
PODS = f"/api/v1/namespaces/{NS}/pods"
SERVICES = f"/api/v1/namespaces/{NS}/services"


def call(cluster: Cluster, method: str, path: str, body: bytes | None = None,
         content_type: str = "application/json", timeout: float = 300,
         ) -> tuple[int, dict[str, Any]]:
    ctx = ssl.create_default_context(cafile=str(cluster.data_dir / "pki" / "ca.crt"))
    req = urllib.request.Request(cluster.url + path, data=body, method=method)
    req.add_header("Content-Type", content_type)
    req.add_header("Authorization", f"Bearer {cluster.token}")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module", autouse=True)
def namespace(cluster: Cluster) -> None:
    call(cluster, "POST", "/api/v1/namespaces",
         json.dumps({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": NS}}).encode())


def pod(name: str, containers: int) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"containers": [{"name": f"c{i}", "image": "busybox"}
                                               for i in range(containers)]}}).encode()


def test_a_3_mib_body_of_nameless_containers_is_a_bounded_422_that_stores_nothing(
        cluster: Cluster) -> None:
    items = b",".join([b'{"name":""}'] * 260_000)
    body = (b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"junk"},"spec":'
            b'{"containers":[' + items + b"]}}")
    assert len(body) <= MAX_BODY_BYTES
    started = time.monotonic()
    code, status = call(cluster, "POST", PODS, body)
    seconds = time.monotonic() - started
    assert (code, status["reason"]) == (422, "Invalid"), status
    causes = status["details"]["causes"]
    assert len(causes) == MAX_REPORTED_ERRORS
    assert causes[0] == {"reason": "FieldValueRequired", "message": "Required value",
                         "field": "spec.containers[0].name"}
    assert status["message"].startswith('Pod "junk" is invalid: [spec.containers[0].name: '
                                        "Required value, spec.containers[0].image: Required "
                                        "value, ")
    # Several errors a container (the name is also a duplicate): the first 1000 reported.
    more = re.fullmatch(r".*\] \(and (\d+) more errors\)", status["message"], re.DOTALL)
    assert more is not None and int(more.group(1)) >= 520_000 - MAX_REPORTED_ERRORS
    assert seconds < 120, f"{seconds:.0f} s"
    assert call(cluster, "GET", f"{PODS}/junk")[0] == 404
    code, created = call(cluster, "POST", PODS, pod("small", 2))
    assert code == 201, created


def test_a_body_over_3_mib_is_413(cluster: Cluster) -> None:
    body = pod("huge", 100_000)
    assert len(body) > MAX_BODY_BYTES
    code, status = call(cluster, "POST", PODS, body)
    assert (code, status["reason"], status["message"]) == (
        413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")


def test_a_pod_too_large_to_store_is_413_and_not_stored(cluster: Cluster) -> None:
    """0.7 MB of containers, defaulted (and given the service account token mount), is more
    than an object may be stored as."""
    code, status = call(cluster, "POST", PODS, pod("wide", 20_000))
    assert (code, status["reason"]) == (413, "RequestEntityTooLarge"), status
    assert status["message"].startswith("Request entity too large: the object would be ")
    assert call(cluster, "GET", f"{PODS}/wide")[0] == 404


def test_others_are_answered_while_a_big_write_runs(cluster: Cluster) -> None:
    """A Service of 10,000 ports takes seconds of CPU (defaulting, validation,
    managedFields). Meanwhile a client keeps GETting /healthz: with the work on the event
    loop none of its requests could finish until the big write was done; now they keep
    being answered throughout."""
    ports = [{"name": f"p{i}", "port": i + 1} for i in range(10_000)]
    body = json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "wide"},
                       "spec": {"selector": {"app": "x"}, "ports": ports}}).encode()
    done = threading.Event()
    answered: list[tuple[float, float]] = []  # (sent, answered), monotonic

    def probe() -> None:
        ctx = ssl.create_default_context(cafile=str(cluster.data_dir / "pki" / "ca.crt"))
        while not done.is_set():
            sent = time.monotonic()
            with urllib.request.urlopen(cluster.url + "/healthz", context=ctx,
                                        timeout=300) as resp:
                assert resp.status == 200
            answered.append((sent, time.monotonic()))
            time.sleep(0.02)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    time.sleep(0.3)
    started = time.monotonic()
    code, created = call(cluster, "POST", SERVICES, body)
    ended = time.monotonic()
    done.set()
    prober.join(300)
    assert code == 201, created
    assert len(created["spec"]["ports"]) == 10_000
    during = [(s, a) for s, a in answered if started < s and a < ended]
    # Blocked, the prober could finish at most the one request in flight when the big write
    # began; answered, it finishes many (tens a second).
    assert len(during) >= 3, (f"{len(during)} probes answered during a write of "
                              f"{ended - started:.1f} s")
    slowest = max(a - s for s, a in during)
    assert slowest < (ended - started) / 2, (slowest, ended - started)
    assert call(cluster, "DELETE", f"{SERVICES}/wide")[0] == 200
