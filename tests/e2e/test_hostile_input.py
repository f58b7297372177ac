"""Hostile and unlucky input against the real server: slow and split bodies, deep nesting,
forged continue tokens, out-of-range integers, invalid Unicode, verbs a subresource lacks.

Every answer is a Kubernetes Status with a 4xx code (never a 5xx), and what is stored is exactly
what was acknowledged: a body that arrives slowly or in pieces is stored whole, byte for byte,
or refused whole.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import itertools
import json
import ssl
import time
import urllib.parse
import uuid
from collections.abc import Iterable
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from svcnet.apiserver.body import MAX_BODY_BYTES
from tests.e2e.conftest import Cluster
from tests.e2e.test_http_errors import request

NS = "hostile"
SERVICES = f"/api/v1/namespaces/{NS}/services"


@pytest.fixture(scope="module", autouse=True)
def namespace(cluster: Cluster) -> None:
    request(cluster, "POST", "/api/v1/namespaces",
            json.dumps({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": NS}}).encode())


def send_slowly(cluster: Cluster, method: str, path: str, pieces: Iterable[bytes], *,
                content_type: str = "application/json", length: int | None = None,
                pause: float = 0.0) -> tuple[int, dict[str, Any]]:
    """Send the body in ``pieces`` with ``pause`` between them: with Content-Length when
    ``length`` is given, else chunked (each piece one chunk)."""
    url = urllib.parse.urlsplit(cluster.url)
    ctx = ssl.create_default_context(cafile=str(cluster.data_dir / "pki" / "ca.crt"))
    conn = http.client.HTTPSConnection(url.hostname or "", url.port, context=ctx, timeout=60)
    try:
        conn.putrequest(method, path)
        conn.putheader("Authorization", f"Bearer {cluster.token}")
        conn.putheader("Content-Type", content_type)
        if length is None:
            conn.putheader("Transfer-Encoding", "chunked")
        else:
            conn.putheader("Content-Length", str(length))
        conn.endheaders()
        for piece in pieces:
            try:
                if length is None:
                    conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                else:
                    conn.send(piece)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered early (413) and closed: read its answer
            if pause:
                time.sleep(pause)
        if length is None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def big_service(name: str, count: int = 2_000, size: int = 100) -> dict[str, Any]:
    """A Service whose annotations hold ``count`` values of ``size`` bytes (non-ASCII too)."""
    annotations = {f"example.com/a{i:05d}": (f"é{i}-" + "x" * size)[:size] for i in range(count)}
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"ports": [{"port": 80}]}}


def stored(cluster: Cluster, name: str) -> dict[str, Any] | None:
    code, obj = request(cluster, "GET", f"{SERVICES}/{name}")
    return obj if code == 200 else None


@pytest.mark.parametrize("encoding", ["json", "yaml"])
def test_a_slow_body_is_stored_byte_for_byte(cluster: Cluster, encoding: str) -> None:
    # ~230 KB (annotations may hold 256 KiB in all) at 50 KB/s: about five seconds of arrival.
    svc = big_service(f"slow-{encoding}")
    if encoding == "json":
        body, ctype = json.dumps(svc).encode(), "application/json"
    else:
        body, ctype = yaml.safe_dump(svc, allow_unicode=True).encode(), "application/yaml"
    code, created = send_slowly(cluster, "POST", SERVICES, split(body, 8192),
                                content_type=ctype, length=len(body), pause=8192 / 50_000)
    assert code == 201, created
    got = stored(cluster, svc["metadata"]["name"])
    assert got is not None
    assert got["metadata"]["annotations"] == svc["metadata"]["annotations"]


def test_a_chunked_body_over_the_limit_is_refused_whole(cluster: Cluster) -> None:
    svc = big_service("too-big", count=1)
    svc["metadata"]["annotations"]["example.com/pad"] = "y" * (MAX_BODY_BYTES + 10)
    body = json.dumps(svc).encode()
    code, status = send_slowly(cluster, "POST", SERVICES, split(body, 256 * 1024))
    assert (code, status["reason"]) == (413, "RequestEntityTooLarge"), status
    assert stored(cluster, "too-big") is None


# -- bodies split at every kind of boundary (hypothesis) --------------------------------------

@settings(max_examples=25, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(min_value=1, max_value=4000), min_size=0, max_size=12),
       chunked=st.booleans(), as_yaml=st.booleans(),
       text=st.text(min_size=0, max_size=40), depth=st.integers(min_value=0, max_value=400))
def test_split_bodies_are_stored_whole_or_refused_whole(
        cluster: Cluster, cuts: list[int], chunked: bool, as_yaml: bool, text: str,
        depth: int) -> None:
    name = f"split-{uuid.uuid4().hex[:12]}"  # a replayed example must not meet its last run
    svc = big_service(name, count=30, size=60)
    svc["metadata"]["annotations"]["example.com/text"] = text
    nested: Any = "leaf"
    for _ in range(depth):
        nested = {"n": [nested]}
    svc["metadata"]["labels"] = {"x": "y"}
    svc["spec"]["unknownDeep"] = nested  # an unknown field: dropped when it is shallow enough
    # JSON is YAML: behind a comment line the server reads it with its YAML decoder.
    body = (b"# yaml\n" if as_yaml else b"") + json.dumps(svc).encode()
    ctype = "application/yaml" if as_yaml else "application/json"
    bounds = sorted({c % len(body) for c in cuts} | {0, len(body)})
    pieces = [body[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    code, answer = send_slowly(cluster, "POST", SERVICES, pieces, content_type=ctype,
                               length=None if chunked else len(body))
    assert code < 500, answer
    got = stored(cluster, name)
    if code == 201:
        assert got is not None
        assert got["metadata"]["annotations"] == svc["metadata"]["annotations"]
    else:
        assert answer["kind"] == "Status" and answer["code"] == code
        assert got is None, f"a refused body ({code}: {answer}) left an object behind"
    if got is not None:
        request(cluster, "DELETE", f"{SERVICES}/{name}")


# -- malformed input that once answered 500 -----------------------------------------------------

def deep(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


def token(doc: dict[str, Any] | bytes) -> str:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return base64.urlsafe_b64encode(raw).decode()


SVC = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "m"},
       "spec": {"ports": [{"port": 80}]}}


@pytest.mark.parametrize(("method", "path", "body", "ctype", "code"), [
    pytest.param("POST", SERVICES, b'{"apiVersion":"v1","kind":"Service","metadata":'
                 b'{"name":"d"},"spec":' + deep(600) + b"}", "application/json", 400,
                 id="create nested 600 deep"),
    pytest.param("POST", SERVICES, b"[" * 100_000 + b"]" * 100_000, "application/json", 400,
                 id="create nested 100k deep"),
    pytest.param("POST", SERVICES, b"a:\n" + b"".join(b"  " * i + b"- b:\n" for i in range(1, 600)),
                 "application/yaml", 400, id="yaml nested 600 deep"),
    pytest.param("POST", SERVICES, b"a: &a [x,x,x,x,x,x,x,x,x]\n" + b"".join(
        b"%c: &%c [%s]\n" % (98 + i, 98 + i, b",".join([b"*%c" % (97 + i)] * 9))
        for i in range(9)), "application/yaml", 400, id="yaml billion laughs"),
    pytest.param("POST", SERVICES, b'{"apiVersion":"v1","kind":"Service","metadata":{"name":'
                 b'"n"},"spec":{"ports":[{"port":NaN}]}}', "application/json", 400, id="NaN"),
    pytest.param("POST", SERVICES, b"apiVersion: v1\nkind: Service\nmetadata: {name: i}\n"
                 b"spec: {ports: [{port: .inf}]}\n", "application/yaml", 400, id="yaml inf"),
    pytest.param("PATCH", f"{SERVICES}/victim", deep(600), "application/merge-patch+json", 400,
                 id="merge patch 600 deep"),
    pytest.param("PATCH", f"{SERVICES}/victim", deep(600),
                 "application/strategic-merge-patch+json", 400, id="strategic patch 600 deep"),
    pytest.param("PATCH", f"{SERVICES}/victim",
                 b'[{"op":"add","path":"/metadata/labels/x","value":' + deep(600) + b"}]",
                 "application/json-patch+json", 400, id="json patch 600 deep"),
    pytest.param("GET", f"{SERVICES}?limit=99999999999999999999999", None, None, 400,
                 id="limit beyond int64"),
    pytest.param("GET", f"{SERVICES}?limit=%EF%BC%95", None, None, 400,
                 id="limit in fullwidth digits"),
    pytest.param("GET", f"{SERVICES}?limit=1&continue=" + token(
        b'{"v":"meta.k8s.io/v1","rv":1e999,"start":"x"}'), None, None, 400,
        id="continue rv 1e999"),
    pytest.param("GET", f"{SERVICES}?limit=1&continue=" + token(
        {"v": "meta.k8s.io/v1", "rv": "12", "start": "x"}), None, None, 400,
        id="continue rv a string"),
    pytest.param("GET", f"{SERVICES}?limit=1&continue=" + token(
        {"v": "meta.k8s.io/v1", "rv": 0, "start": "x"}), None, None, 400, id="continue rv 0"),
    pytest.param("GET", f"{SERVICES}?limit=1&continue=" + token(
        {"v": "meta.k8s.io/v1", "rv": 5, "start": "../../secrets/x"}), None, None, 400,
        id="continue key escapes its prefix"),
    pytest.param("GET", f"{SERVICES}?limit=1&continue=" + token(
        {"v": "meta.k8s.io/v2", "rv": 5, "start": "x"}), None, None, 400,
        id="continue unknown version"),
    pytest.param("GET", f"{SERVICES}?limit=1&continue=!!!", None, None, 400,
                 id="continue not base64"),
    pytest.param("DELETE", f"{SERVICES}/victim?gracePeriodSeconds=1e3", None, None, 400,
                 id="grace not an integer"),
    pytest.param("DELETE", f"{SERVICES}/victim", b'{"gracePeriodSeconds":1e300}',
                 "application/json", 400, id="grace in body beyond int64"),
    pytest.param("DELETE", f"{SERVICES}/victim/status", None, None, 405,
                 id="delete of a status subresource"),
    pytest.param("POST", f"{SERVICES}/victim/status", json.dumps(SVC).encode(),
                 "application/json", 405, id="post to a status subresource"),
    pytest.param("GET", f"/api/v1/namespaces/{NS}/pods/p/binding", None, None, 405,
                 id="get of pods/binding"),
    pytest.param("DELETE", "/apis/apps/v1/namespaces/hostile/deployments/d/scale", None, None,
                 405, id="delete of a scale subresource"),
])
def test_malformed_requests_get_a_4xx_status(cluster: Cluster, method: str, path: str,
                                             body: bytes | None, ctype: str | None,
                                             code: int) -> None:
    victim = {**SVC, "metadata": {"name": "victim"}}
    request(cluster, "POST", SERVICES, json.dumps(victim).encode())
    before = stored(cluster, "victim")
    assert before is not None
    got, status = request(cluster, method, path, body, ctype or "application/json")
    assert (got, status.get("kind"), status.get("code")) == (code, "Status", code), status
    after = stored(cluster, "victim")
    assert after is not None, "the Service must survive a refused request"
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_a_continue_token_cannot_list_outside_its_prefix(cluster: Cluster) -> None:
    code, page = request(cluster, "GET", f"{SERVICES}?limit=1")
    assert code == 200
    for name in ("a", "b"):
        request(cluster, "POST", SERVICES, json.dumps(
            {**SVC, "metadata": {"name": f"page-{name}"}}).encode())
    code, page = request(cluster, "GET", f"{SERVICES}?limit=1")
    assert code == 200 and page["metadata"].get("continue")
    code, rest = request(cluster, "GET", f"{SERVICES}?limit=500&continue="
                         + page["metadata"]["continue"])
    assert code == 200
    names = [i["metadata"]["name"] for i in page["items"] + rest["items"]]
    assert names == sorted(set(names)), "pages overlap or repeat"
    assert all(i["metadata"]["namespace"] == NS for i in rest["items"])


def test_a_negative_continue_revision_lists_the_latest(cluster: Cluster) -> None:
    request(cluster, "POST", SERVICES, json.dumps(
        {**SVC, "metadata": {"name": "neg-a"}}).encode())
    code, page = request(cluster, "GET", f"{SERVICES}?limit=1&continue=" + token(
        {"v": "meta.k8s.io/v1", "rv": -1, "start": "a"}))
    assert code == 200, page
    assert "neg-a" in [i["metadata"]["name"] for i in page["items"]]
    # The token it hands out continues at the revision it listed (not a revision of 0).
    assert int(page["metadata"]["resourceVersion"]) > 0
    if page["metadata"].get("continue"):
        code, rest = request(cluster, "GET", f"{SERVICES}?limit=1&continue="
                             + page["metadata"]["continue"])
        assert code == 200, rest


def test_lone_surrogates_are_stored_as_replacement_characters(cluster: Cluster) -> None:
    body = (b'{"apiVersion":"v1","kind":"Service","metadata":{"name":"sur","annotations":'
            b'{"a":"x\\ud800y","b":"\\ud83d\\ude00"}},"spec":{"ports":[{"port":80}]}}')
    code, created = request(cluster, "POST", SERVICES, body)
    assert code == 201, created
    got = stored(cluster, "sur")
    assert got is not None
    assert got["metadata"]["annotations"] == {"a": "x\ufffdy", "b": "\U0001F600"}


def test_yaml_timestamps_stay_strings(cluster: Cluster) -> None:
    body = (b"apiVersion: v1\nkind: Service\nmetadata:\n  name: when\n  annotations:\n"
            b"    at: 2024-01-01T00:00:00Z\nspec:\n  ports: [{port: 80}]\n")
    code, created = request(cluster, "POST", SERVICES, body, "application/yaml")
    assert code == 201, created
    got = stored(cluster, "when")
    assert got is not None and got["metadata"]["annotations"] == {"at": "2024-01-01T00:00:00Z"}


def test_a_huge_grace_period_is_accepted(cluster: Cluster) -> None:
    request(cluster, "POST", SERVICES, json.dumps(
        {**SVC, "metadata": {"name": "grace"}}).encode())
    code, status = request(cluster, "DELETE",
                           f"{SERVICES}/grace?gracePeriodSeconds=9223372036854775807")
    assert code == 200, status
    assert stored(cluster, "grace") is None
