"""`svcnet dashboard`: a loopback web page with a live picture of the cluster's Services.

Theory of operation
-------------------
One process, three loops, all on the kubeconfig's credentials:

* **Watches.** Informers (:mod:`svcnet.client.informer`) over Nodes, Pods, Services and
  EndpointSlices; any event marks the picture dirty. The publisher waits for that, lets
  :data:`SETTLE` seconds of further events collapse into one, builds the view
  (:func:`svcnet.dashboard.model.build_view`, pure) and hands the JSON to every open event
  stream. A Deployment scaled up shows its new pods as soon as the watch delivers them.
* **Traffic.** Every :data:`SAMPLE_EVERY` seconds while a page is open (no page, no sampling),
  each node agent's data-plane counters (``/api/v1/nodes/NAME/proxy/stats/services``);
  :mod:`svcnet.dashboard.traffic` turns two samples into rates per Service and endpoint, which
  go into the next picture. A node that does not answer (counters off, an older agent) simply
  has no rates.
* **Serving** (aiohttp, loopback only): ``/`` the page (static files from the package, no
  build step, nothing fetched from elsewhere), ``/events`` a Server-Sent Events stream of
  pictures, ``/api/view`` the current one, ``/api/explain?service=NS/NAME`` what
  ``svcnet explain`` prints for every node (:func:`svcnet.proxy.explain.explain`, pure, from
  the same caches). Everything but the login form and the static files needs a session from
  :mod:`svcnet.dashboard.auth`: 401 (or 403) without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any, Final

from aiohttp import web

from svcnet.api.errors import StatusError
from svcnet.client.informer import Informer
from svcnet.client.kubeconfig import KubeConfig
from svcnet.client.rest import (
    ENDPOINTSLICES,
    NODES,
    PODS,
    SERVICES,
    RESTClient,
    TransportError,
)
from svcnet.dashboard.auth import COOKIE, Sessions, Verifier, api_verifier
from svcnet.dashboard.model import build_view
from svcnet.dashboard.traffic import (
    RateTracker,
    Sample,
    frontend_owners,
    parse_sample,
    service_rates,
)
from svcnet.proxy.explain import explain
from svcnet.proxy.service import node_info

log = logging.getLogger(__name__)

SETTLE: Final = 0.05
SAMPLE_EVERY: Final = 2.0
STATS_PATH: Final = "stats/services"
STATIC: Final = "static"


def _static(name: str) -> bytes:
    return (resources.files("svcnet.dashboard") / STATIC / name).read_bytes()


class ClusterView:
    """The informers, the traffic sampler and the latest picture."""

    def __init__(self, client: RESTClient, sample_every: float = SAMPLE_EVERY) -> None:
        self.client = client
        self.informers = {gvr.resource: Informer(client, gvr)
                          for gvr in (NODES, PODS, SERVICES, ENDPOINTSLICES)}
        self.sample_every = sample_every
        self.tracker = RateTracker()
        self.rates: dict[str, float] = {}
        self.version = 0
        self.view_json = ""
        self._dirty = asyncio.Event()
        self._changed = asyncio.Condition()
        self._watchers = 0
        self._watched = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        for informer in self.informers.values():
            informer.add_handler(_marker(self._dirty.set))

    def objects(self, resource: str) -> list[dict[str, Any]]:
        return self.informers[resource].list()

    async def start(self, sync_timeout: float = 60.0) -> None:
        for informer in self.informers.values():
            informer.start()
        try:
            await asyncio.wait_for(asyncio.gather(
                *(i.wait_for_sync() for i in self.informers.values())), sync_timeout)
        except TimeoutError:
            await self.stop()
            raise RuntimeError(f"could not list the cluster's objects from {self.client.server} "
                               f"within {sync_timeout:g} s") from None
        self._publish()
        self._tasks = [asyncio.create_task(self._publisher()),
                       asyncio.create_task(self._sampler())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for informer in self.informers.values():
            await informer.stop()

    def build(self) -> dict[str, Any]:
        view = build_view(self.objects("nodes"), self.objects("pods"),
                          self.objects("services"), self.objects("endpointslices"), self.rates)
        view["traffic"] = bool(self.tracker.rates() or self.rates)
        return view

    def _publish(self) -> None:
        self._dirty.clear()
        self.version += 1
        self.view_json = json.dumps({"version": self.version, **self.build()},
                                    separators=(",", ":"))

    async def _publisher(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(SETTLE)
            self._publish()
            async with self._changed:
                self._changed.notify_all()

    async def wait_newer(self, version: int, timeout: float) -> None:
        """Return once the picture is newer than ``version`` (or after ``timeout``)."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.version > version), timeout)

    async def _sample_node(self, name: str) -> None:
        sample = await node_sample(self.client, name)
        if sample is not None:
            self.tracker.update(name, time.monotonic(), sample)

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """An open page: the counters are sampled only while there is one."""
        self._watchers += 1
        self._watched.set()
        try:
            yield
        finally:
            self._watchers -= 1
            if not self._watchers:
                self._watched.clear()

    async def _sampler(self) -> None:
        while True:
            if not self._watched.is_set():
                self.tracker = RateTracker()  # a pause: the next sample is a new baseline
                await self._watched.wait()
            nodes = [str(n["metadata"]["name"]) for n in self.objects("nodes")]
            await asyncio.gather(*(self._sample_node(n) for n in nodes))
            self.tracker.forget(nodes)
            rates = service_rates(self.tracker.rates(),
                                  frontend_owners(self.objects("services"), self.objects("nodes")))
            if rates != self.rates:
                self.rates = rates
                self._dirty.set()
            await asyncio.sleep(self.sample_every)

    def explain(self, key: str) -> dict[str, list[str]]:
        """``svcnet explain``'s lines for the Service ``key`` on every node."""
        services = self.objects("services")
        svc = self.informers["services"].get(key)
        if svc is None:
            return {}
        slices = self.objects("endpointslices")
        return {str(n["metadata"]["name"]): explain(svc, services, slices, node_info(n))
                for n in sorted(self.objects("nodes"), key=lambda n: n["metadata"]["name"])}


async def node_sample(client: RESTClient, node: str) -> Sample | None:
    """The node agent's data-plane counters, None when it has none to give."""
    try:
        doc = await client.request("GET", f"{NODES.path(name=node)}/proxy/{STATS_PATH}")
    except (StatusError, TransportError) as e:
        log.debug("no traffic counters from node %s: %s", node, e)
        return None
    return parse_sample(doc) if isinstance(doc, dict) else None


def _marker(mark: Callable[[], None]) -> Any:
    from svcnet.client.informer import EventHandler

    return EventHandler(on_add=lambda _o: mark(), on_update=lambda _a, _b: mark(),
                        on_delete=lambda _o: mark())


LOGIN_PAGE: Final = "login.html"


def _login_page(status: int, message: str) -> web.Response:
    html = _static(LOGIN_PAGE).decode().replace("{{message}}", message)
    return web.Response(text=html, status=status, content_type="text/html")


def _refusal(code: int) -> str:
    return ("that token was refused by the API server" if code == 401 else
            "that token's user may not list Services" if code == 403 else
            f"the API server could not check the token ({code})")


def _see_other() -> web.Response:
    return web.Response(status=303, headers={"Location": "/"})


class _Handlers:
    """The routes over one :class:`ClusterView` and one :class:`Sessions`."""

    def __init__(self, view: ClusterView, sessions: Sessions, secure_cookie: bool) -> None:
        self.view = view
        self.sessions = sessions
        self.secure_cookie = secure_cookie

    async def _session(self, request: web.Request) -> int:
        return await self.sessions.check(request.cookies.get(COOKIE))

    async def _guard(self, request: web.Request) -> None:
        code = await self._session(request)
        if code == 403:
            raise web.HTTPForbidden(text="forbidden\n")
        if code != 200:
            raise web.HTTPUnauthorized(text="log in first\n")

    async def _login(self, token: str) -> web.StreamResponse:
        code, sid = await self.sessions.login(token)
        if code != 200:
            return _login_page(code if code in (401, 403) else 401, _refusal(code))
        response = _see_other()
        response.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", path="/",
                            secure=self.secure_cookie)
        return response

    async def index(self, request: web.Request) -> web.StreamResponse:
        if "token" in request.query:
            return await self._login(request.query["token"])
        code = await self._session(request)
        if code != 200:
            return _login_page(code if code in (401, 403) else 401, "")
        return web.Response(body=_static("index.html"), content_type="text/html",
                            headers={"Cache-Control": "no-store"})

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        return await self._login(str(form.get("token", "")).strip())

    async def logout(self, request: web.Request) -> web.StreamResponse:
        self.sessions.logout(request.cookies.get(COOKIE))
        response = _see_other()
        response.del_cookie(COOKIE, path="/")
        return response

    async def api_view(self, request: web.Request) -> web.Response:
        await self._guard(request)
        return web.Response(text=self.view.view_json, content_type="application/json")

    async def api_explain(self, request: web.Request) -> web.Response:
        await self._guard(request)
        return web.json_response(self.view.explain(request.query.get("service", "")))

    async def events(self, request: web.Request) -> web.StreamResponse:
        await self._guard(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-store"})
        await response.prepare(request)
        sent = 0
        with self.view.watching(), contextlib.suppress(ConnectionError,
                                                       asyncio.CancelledError):
            while True:
                if self.view.version > sent:
                    sent = self.view.version
                    await response.write(f"data: {self.view.view_json}\n\n".encode())
                else:
                    await response.write(b": keep-alive\n\n")
                    if await self._session(request) != 200:
                        break
                await self.view.wait_newer(sent, 15.0)
        return response

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in ("app.js", "style.css"):
            raise web.HTTPNotFound()
        kind = "application/javascript" if name.endswith(".js") else "text/css"
        return web.Response(body=_static(name), content_type=kind,
                            headers={"Cache-Control": "no-store"})


def make_app(view: ClusterView, sessions: Sessions, *, secure_cookie: bool = False,
             ) -> web.Application:
    h = _Handlers(view, sessions, secure_cookie)
    app = web.Application()
    app.router.add_get("/", h.index)
    app.router.add_post("/login", h.login)
    app.router.add_post("/logout", h.logout)
    app.router.add_get("/events", h.events)
    app.router.add_get("/api/view", h.api_view)
    app.router.add_get("/api/explain", h.api_explain)
    app.router.add_get("/static/{name}", h.static)
    return app


DEFAULT_LISTEN: Final = "127.0.0.1:8086"
LOOPBACK: Final = ("127.0.0.1", "::1", "localhost")


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if host not in LOOPBACK:
        raise ValueError(f"--listen {text}: the dashboard serves on loopback only")
    return host, int(port)


async def serve(config: KubeConfig, host: str, port: int, *,
                announce: Callable[[str], None], verifier: Verifier | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (or forever); ``announce`` gets the URL once serving."""
    client = RESTClient.from_kubeconfig(config, user_agent="svcnet-dashboard")
    # A visitor's token is checked as that visitor: without the dashboard's own certificate.
    verify = verifier or api_verifier(
        config.server, config.ssl_context(client_cert=False) if config.is_tls else None,
        config.tls_server_name)
    view = ClusterView(client)
    try:
        await view.start()
    except RuntimeError:
        await client.close()
        raise
    runner = web.AppRunner(make_app(view, Sessions(verify)), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    where = f"[{host}]" if ":" in host else host
    announce(f"http://{where}:{bound}/")
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()
        await view.stop()
        await client.close()


def token_url(url: str, config: KubeConfig) -> str:
    return f"{url}?token={config.token}" if config.token else url

