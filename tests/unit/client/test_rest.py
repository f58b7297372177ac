"""RESTClient against the in-process fake API: request shapes, error mapping, list paging, watch.

Conventions: objects are Services in namespace ``ns``; the fake starts at revision 100.
"""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from svcnet.api.errors import StatusError
from svcnet.client.rest import (
    ENDPOINTSLICES,
    EVENTS,
    GVR,
    LEASES,
    NODES,
    SERVICES,
    Expired,
    Gone,
    PatchType,
    Preconditions,
    RESTClient,
    TransportError,
    status_error_from,
)
from tests.unit.client.fakeapi import FakeAPI, serve

# -- addressing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gvr", "namespace", "name", "subresource", "path"),
    [
        pytest.param(SERVICES, "", "", "", "/api/v1/services", id="all-namespaces"),
        pytest.param(SERVICES, "ns", "", "", "/api/v1/namespaces/ns/services", id="collection"),
        pytest.param(SERVICES, "ns", "web", "status", "/api/v1/namespaces/ns/services/web/status",
                     id="subresource"),
        pytest.param(NODES, "ignored", "n1", "", "/api/v1/nodes/n1", id="cluster-scoped"),
        pytest.param(ENDPOINTSLICES, "ns", "s", "",
                     "/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices/s", id="grouped"),
        pytest.param(LEASES, "kube-node-lease", "n1", "",
                     "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
                     id="leases"),
        pytest.param(EVENTS, "ns", "", "", "/api/v1/namespaces/ns/events", id="events"),
    ],
)
def test_gvr_path(gvr: GVR, namespace: str, name: str, subresource: str, path: str) -> None:
    assert gvr.path(namespace, name, subresource) == path


def test_gvr_names() -> None:
    assert str(SERVICES) == "services"
    assert str(ENDPOINTSLICES) == "endpointslices.discovery.k8s.io"
    assert ENDPOINTSLICES.api_version == "discovery.k8s.io/v1"
    with pytest.raises(ValueError, match="subresource"):
        SERVICES.path("ns", "", "status")


# -- error mapping --------------------------------------------------------------------------

NOT_FOUND = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": 'services "web" not found', "reason": "NotFound",
             "details": {"name": "web", "kind": "services"}, "code": 404}
CONFLICT = {"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": 'Operation cannot be fulfilled on services "web": the object has been '
                       "modified; please apply your changes to the latest version and try again",
            "reason": "Conflict", "details": {"name": "web", "kind": "services"}, "code": 409}
INVALID = {"kind": "Status", "apiVersion": "v1", "status": "Failure",
           "message": 'Service "web" is invalid: status.loadBalancer.ingress[0].ipMode: '
                      "Required value: must be specified when `ip` is set",
           "reason": "Invalid", "code": 422,
           "details": {"name": "web", "kind": "Service", "causes": [
               {"reason": "FieldValueRequired", "field": "status.loadBalancer.ingress[0].ipMode",
                "message": "Required value: must be specified when `ip` is set"}]}}


@pytest.mark.parametrize(
    ("status", "body", "content_type", "code", "reason", "message", "details"),
    [
        pytest.param(404, NOT_FOUND, "application/json", 404, "NotFound",
                     'services "web" not found', {"name": "web", "kind": "services"},
                     id="status-not-found"),
        pytest.param(409, CONFLICT, "application/json", 409, "Conflict", CONFLICT["message"],
                     CONFLICT["details"], id="status-conflict"),
        pytest.param(422, INVALID, "application/json", 422, "Invalid", INVALID["message"],
                     INVALID["details"], id="status-invalid-with-causes"),
        pytest.param(500, {"kind": "Status", "message": "boom"}, "application/json", 500,
                     "InternalError", "boom", {}, id="status-without-code-or-reason"),
        pytest.param(403, {"kind": "Status", "reason": "Forbidden", "code": 403,
                           "message": 'services is forbidden: User "x" cannot list'},
                     "application/json", 403, "Forbidden",
                     'services is forbidden: User "x" cannot list', {}, id="status-forbidden"),
        pytest.param(502, b"<html>bad gateway</html>", "text/html", 502, "Unknown",
                     "the server responded with the status code 502 but did not return more "
                     "information (<html>bad gateway</html>)", {}, id="html-from-a-proxy"),
        pytest.param(503, b"", "text/plain", 503, "ServiceUnavailable",
                     "the server is currently unable to handle the request", {},
                     id="empty-503"),
        pytest.param(404, {"kind": "NotAStatus"}, "application/json", 404, "NotFound",
                     'the server could not find the requested resource ({"kind": '
                     '"NotAStatus"})', {}, id="json-but-not-status"),
    ],
)
async def test_error_answers_become_status_errors(
        status: int, body: Any, content_type: str, code: int, reason: str, message: str,
        details: dict[str, Any]) -> None:
    fake = FakeAPI()
    fake.put("ns", "web")
    async with serve(fake) as client:
        fake.fail_next(status, body, content_type)
        with pytest.raises(StatusError) as info:
            await client.get(SERVICES, "ns", "web")
    err = info.value
    assert (err.code, err.reason, err.message, err.details) == (code, reason, message, details)
    assert type(err) is StatusError


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"kind": "Status", "code": 410, "reason": "Expired",
                      "message": "too old resource version: 1 (5)"}, id="status-expired"),
        pytest.param(b"gone", id="bare-410"),
    ],
)
async def test_410_is_expired(body: Any) -> None:
    fake = FakeAPI()
    async with serve(fake) as client:
        fake.fail_next(410, body)
        with pytest.raises(Expired) as info:
            await client.list(SERVICES, "ns")
    assert info.value.code == 410
    assert Gone is Expired


def test_status_error_from_decoded_watch_object() -> None:
    err = status_error_from(500, {"kind": "Status", "code": 410, "reason": "Expired",
                                  "message": "too old"})
    assert isinstance(err, Expired) and err.reason == "Expired"


async def test_unreachable_server_is_a_transport_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with RESTClient(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(TransportError, match="GET /api/v1/namespaces/ns/services/web"):
            await client.get(SERVICES, "ns", "web")


async def test_closed_client_refuses_requests() -> None:
    client = RESTClient("http://127.0.0.1:1")
    await client.close()
    with pytest.raises(RuntimeError, match="closed"):
        await client.get(SERVICES, "ns", "web")


# -- request shapes -------------------------------------------------------------------------


async def test_verbs_send_kubernetes_requests() -> None:
    fake = FakeAPI()
    web = fake.put("ns", "web")
    async with serve(fake, token="s3cret") as client:
        got = await client.get(SERVICES, "ns", "web")
        assert got == web
        await client.create(SERVICES, {"metadata": {"name": "new", "namespace": "ns"}},
                            field_manager="me")
        await client.update(SERVICES, web)
        await client.update_status(SERVICES, web, dry_run=True)
        await client.patch(SERVICES, "ns", "web", {"metadata": {"labels": {"a": "b"}}})
        await client.patch(SERVICES, "ns", "web", {"spec": {}}, patch_type=PatchType.APPLY,
                           field_manager="me", force=True)
        await client.delete(SERVICES, "ns", "web",
                            preconditions=Preconditions(uid="uid-web", resource_version="101"))
    assert [(k, p) for k, p, _ in fake.requests] == [
        ("get", "/api/v1/namespaces/ns/services/web"),
        ("post", "/api/v1/namespaces/ns/services"),
        ("put", "/api/v1/namespaces/ns/services/web"),
        ("put", "/api/v1/namespaces/ns/services/web/status"),
        ("patch", "/api/v1/namespaces/ns/services/web"),
        ("patch", "/api/v1/namespaces/ns/services/web"),
        ("delete", "/api/v1/namespaces/ns/services/web"),
    ]
    queries = [q for _, _, q in fake.requests]
    assert queries[1] == {"fieldManager": "me"}
    assert queries[3] == {"dryRun": "All"}
    assert queries[5] == {"fieldManager": "me", "force": "true"}
    assert fake.content_types[4] == "application/merge-patch+json"
    assert fake.content_types[5] == "application/apply-patch+yaml"
    assert fake.bodies[-1] == {"apiVersion": "v1", "kind": "DeleteOptions",
                               "preconditions": {"uid": "uid-web", "resourceVersion": "101"}}
    assert all(h["Authorization"] == "Bearer s3cret" for h in fake.headers)
    assert all(h["Accept"] == "application/json" for h in fake.headers)


async def test_update_needs_a_name() -> None:
    async with RESTClient("http://127.0.0.1:1") as client:
        with pytest.raises(ValueError, match=r"metadata\.name"):
            await client.update(SERVICES, {"metadata": {"namespace": "ns"}})


# -- lists ----------------------------------------------------------------------------------


async def test_list_returns_items_with_type_and_the_list_revision() -> None:
    fake = FakeAPI()
    fake.put("ns", "a")
    fake.put("other", "b")
    async with serve(fake) as client:
        page = await client.list(SERVICES, "ns", label_selector="app=x", field_selector="a=b")
    assert [i["metadata"]["name"] for i in page.items] == ["a"]
    assert page.items[0]["kind"] == "Service" and page.items[0]["apiVersion"] == "v1"
    assert page.resource_version == "102"
    assert fake.requests_of("get")[0] == {"labelSelector": "app=x", "fieldSelector": "a=b"}


async def test_list_all_pages_through_everything() -> None:
    fake = FakeAPI()
    for n in range(5):
        fake.put("ns", f"s{n}")
    async with serve(fake) as client:
        result = await client.list_all(SERVICES, page_size=2)
    assert [i["metadata"]["name"] for i in result.items] == [f"s{n}" for n in range(5)]
    assert result.resource_version == "105"
    assert result.continue_token == ""
    pages = fake.requests_of("get")
    assert [p.get("continue", "") for p in pages] == ["", "105:ns/s1", "105:ns/s3"]
    assert all(p["limit"] == "2" for p in pages)


async def test_list_all_falls_back_to_a_full_list_when_continue_expires() -> None:
    fake = FakeAPI()
    for n in range(3):
        fake.put("ns", f"s{n}")
    fake.expire_continue = True
    async with serve(fake) as client:
        result = await client.list_all(SERVICES, page_size=2)
    assert len(result.items) == 3
    assert [p.get("limit") for p in fake.requests_of("get")] == ["2", "2", None]


# -- watch ----------------------------------------------------------------------------------


async def test_watch_streams_events_and_ends_with_the_server() -> None:
    fake = FakeAPI()
    fake.put("ns", "a")
    seen = []
    async with serve(fake) as client, client.watch(SERVICES, resource_version="100",
                                                   timeout_seconds=60) as w:
        async for etype, obj in w:
            seen.append((etype, obj["metadata"]["resourceVersion"]))
            if etype == "BOOKMARK":
                fake.put("ns", "a", spec={"type": "ClusterIP"})
                fake.remove("ns", "a")
                fake.end_watches()
    assert seen == [("BOOKMARK", "100"), ("ADDED", "101"), ("MODIFIED", "102"),
                    ("DELETED", "103")]
    assert fake.requests_of("watch") == [{"watch": "true", "timeoutSeconds": "60",
                                          "resourceVersion": "100",
                                          "allowWatchBookmarks": "true"}]


async def test_watch_error_event_410_raises_expired() -> None:
    fake = FakeAPI()
    fake.put("ns", "a")
    fake.compact()
    async with serve(fake) as client, client.watch(SERVICES, resource_version="100") as w:
        with pytest.raises(Expired, match="too old resource version"):
            async for _ in w:
                pass


async def test_watch_http_410_raises_expired() -> None:
    fake = FakeAPI()
    fake.put("ns", "a")
    fake.compact()
    fake.expire_with_http = True
    async with serve(fake) as client:
        with pytest.raises(Expired):
            async with client.watch(SERVICES, resource_version="100"):
                pass


async def test_watch_dropped_connection_is_a_transport_error() -> None:
    fake = FakeAPI()
    async with serve(fake) as client, client.watch(SERVICES, resource_version="100") as w:
        with pytest.raises(TransportError):
            async for etype, _ in w:
                if etype == "BOOKMARK":
                    fake.drop_watches()


async def test_injected_session_is_used_and_left_open() -> None:
    fake = FakeAPI()
    fake.put("ns", "web")
    server = TestServer(fake.app())
    await server.start_server()
    session = aiohttp.ClientSession()
    try:
        client = RESTClient(str(server.make_url("")), token="tok", session=session,
                            user_agent="svcnet-test/1")
        assert (await client.get(SERVICES, "ns", "web"))["metadata"]["name"] == "web"
        await client.close()
        assert not session.closed
        assert fake.headers[0]["Authorization"] == "Bearer tok"
        assert fake.headers[0]["User-Agent"] == "svcnet-test/1"
    finally:
        await session.close()
        await server.close()


async def test_a_failed_connection_moves_to_the_next_server() -> None:
    """``fallback_servers`` (svcnet join URL1,URL2): the request that cannot connect fails,
    the next one goes to the next server; answers with a failure status move nothing."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: refused
        fake = FakeAPI()
        fake.put("ns", "web")
        server = TestServer(fake.app())
        await server.start_server()
        live = str(server.make_url("")).rstrip("/")
        client = RESTClient(dead, token="t0ken", fallback_servers=[live, dead])
        try:
            with pytest.raises(TransportError):
                await client.get(SERVICES, "ns", "web")
            assert client.server == live
            assert (await client.get(SERVICES, "ns", "web"))["metadata"]["name"] == "web"
            fake.fail_next(503, {"kind": "Status", "code": 503}, "application/json")
            with pytest.raises(StatusError):
                await client.get(SERVICES, "ns", "web")
            assert client.server == live
        finally:
            await client.close()
            await server.close()
