"""The dashboard's routes: everything but the login form needs a session; a token buys one
through an HttpOnly cookie that never holds the token."""

from __future__ import annotations

import json
from typing import Any, cast

from aiohttp.test_utils import TestClient, TestServer

from svcnet.dashboard.auth import COOKIE, Sessions
from svcnet.dashboard.server import ClusterView, make_app, parse_listen


class StubView:
    version = 1
    view_json = json.dumps({"version": 1, "nodes": [], "services": [], "otherPods": []})

    async def wait_newer(self, version: int, timeout: float) -> None:
        return None

    def explain(self, key: str) -> dict[str, list[str]]:
        return {"node-1": [f"Service {key} on node node-1"]}


async def verify(token: str) -> int:
    return {"good": 200, "no-services": 403}.get(token, 401)


async def client() -> TestClient[Any, Any]:
    app = make_app(cast(ClusterView, StubView()), Sessions(verify))
    c: TestClient[Any, Any] = TestClient(TestServer(app))
    await c.start_server()
    return c


async def test_without_a_session_everything_is_refused() -> None:
    c = await client()
    try:
        r = await c.get("/")
        assert r.status == 401 and 'name="token"' in await r.text()
        for path in ("/api/view", "/events", "/api/explain?service=default/web"):
            assert (await c.get(path)).status == 401, path
        assert (await c.get("/?token=bad")).status == 401
        assert (await c.get("/?token=no-services")).status == 403
        r = await c.post("/login", data={"token": "bad"})
        assert r.status == 401 and "refused" in await r.text()
        c.session.cookie_jar.update_cookies({COOKIE: "forged"})
        assert (await c.get("/api/view")).status == 401
    finally:
        await c.close()


async def test_a_good_token_buys_an_httponly_session() -> None:
    c = await client()
    try:
        r = await c.get("/?token=good", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/"
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "good" not in cookie
        assert (await c.get("/")).status == 200
        assert json.loads(await (await c.get("/api/view")).text())["version"] == 1
        explained = await (await c.get("/api/explain?service=default/web")).json()
        assert explained == {"node-1": ["Service default/web on node node-1"]}
        r = await c.post("/logout", allow_redirects=False)
        assert r.status == 303
        assert (await c.get("/api/view")).status == 401
    finally:
        await c.close()


def test_listen_is_loopback_only() -> None:
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen("[::1]:8086") == ("::1", 8086)
    for bad in ("0.0.0.0:8086", "10.0.0.1:80"):
        try:
            parse_listen(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")


async def test_an_unreachable_api_server_ends_the_start_with_a_reason() -> None:
    from svcnet.client.rest import RESTClient

    async with RESTClient("http://127.0.0.1:1") as rest:
        view = ClusterView(rest)
        try:
            await view.start(sync_timeout=0.5)
        except RuntimeError as e:
            assert "could not list the cluster's objects from http://127.0.0.1:1" in str(e)
        else:
            raise AssertionError("started without an API server")
