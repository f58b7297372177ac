"""The node agent's HTTPS server (the kubelet's port 10250): container logs, exec, attach and
port-forward, for the API server alone.

Theory of operation
-------------------
Followed: pkg/kubelet/server/server.go (routes and parameters) and
pkg/kubelet/server/auth.go (who may call it).

The API server reaches a node as kube-apiserver reaches a kubelet: it dials the address the
Node reports (``status.addresses`` InternalIP) on the port it advertises
(``status.daemonEndpoints.kubeletEndpoint.Port``). The listening socket is created inside the
node's network namespace when the node's address lives there (a local cluster's nodes), so the
agent, which runs in the host's namespace, answers on the node's own address.

**Both ends authenticate.** The server presents a serving certificate for the node's address
signed by the cluster CA (``svcnet up`` issues it; the API server verifies it against that
CA). Clients must present a certificate signed by the same CA (the CA in the agent's
kubeconfig: kubelet's ``--client-ca-file``); a request without one is 401, and one from any
identity but the API server's kubelet client (``kube-apiserver-kubelet-client``, group
``system:masters``) is 403. Upstream the kubelet asks the API server (SubjectAccessReview)
whether the caller may use ``nodes/proxy``; svcnet's only caller with a certificate is the API
server, so the rule is that identity.

Routes (kubelet's): ``GET /containerLogs/{ns}/{pod}/{container}`` (``follow``, ``tailLines``,
``previous``, ``limitBytes``), ``GET|POST /exec/{ns}/{pod}/{container}``,
``GET|POST /attach/{ns}/{pod}/{container}`` (WebSocket, :mod:`svcnet.node.exec`),
``GET|POST /portForward/{ns}/{pod}`` (:mod:`svcnet.node.portforward`), ``GET /healthz``, and
svcnet's own ``GET /stats/services``: the proxy's connection counters
(:mod:`svcnet.proxy.counters`; 404 when they are off), as kubelet serves ``/stats/summary``,
and ``GET /metrics/resource``: the kubelet's resource metrics, the node's and its containers'
CPU and working set in the Prometheus text format (:mod:`svcnet.node.resourceusage` measures,
:mod:`svcnet.api.resourcemetrics` writes), which the API server scrapes for
``metrics.k8s.io``.
Failures are ``metav1.Status`` JSON, which the API server passes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

from aiohttp import web

from svcnet.api.errors import StatusError, bad_request
from svcnet.api.gojson import go_dumps
from svcnet.api.nodes import KUBELET_CLIENT_CN, KUBELET_CLIENT_GROUP
from svcnet.api.resourcemetrics import CONTENT_TYPE, ResourceSample, format_resource_metrics
from svcnet.node.cri import CriRuntime, decode_log
from svcnet.node.probes import ProbeContext
from svcnet.node.runtime import ContainerKey, Exited, ProcessRuntime
from svcnet.util.clock import parse_time
from svcnet.util.nsthread import run_in_netns

log = logging.getLogger(__name__)

Pod = Mapping[str, Any]
DEFAULT_PORT: Final = 10250
FOLLOW_INTERVAL: Final = 0.1


@dataclass(frozen=True, slots=True)
class ServingConfig:
    cert_file: Path
    key_file: Path
    client_ca_pem: str
    host: str
    port: int = DEFAULT_PORT
    netns: str | None = None
    """Create the listening socket in this network namespace (the node's)."""


def server_ssl_context(cfg: ServingConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=cfg.client_ca_pem)
    ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    # Optional at the TLS layer so that a caller without a certificate gets a 401 it can read
    # rather than a failed handshake; one that does not verify still fails the handshake.
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def caller_identity(peercert: Mapping[str, Any] | None) -> tuple[str, tuple[str, ...]] | None:
    """(common name, organizations) of a verified client certificate (Python's ``getpeercert``
    form), or None without one."""
    if not peercert:
        return None
    cn, orgs = "", []
    for rdn in peercert.get("subject") or ():
        for key, value in rdn:
            if key == "commonName":
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    return cn, tuple(orgs)


def check_caller(peercert: Mapping[str, Any] | None) -> None:
    """401 without a client certificate, 403 for any caller but the API server."""
    who = caller_identity(peercert)
    if who is None:
        raise StatusError(401, "Unauthorized", "Unauthorized")
    cn, orgs = who
    if cn != KUBELET_CLIENT_CN or KUBELET_CLIENT_GROUP not in orgs:
        raise StatusError(403, "Forbidden",
                          f'User "{cn}" cannot use the node API (only the API server may)')


def status_json(err: StatusError) -> web.Response:
    return web.Response(body=(go_dumps(err.to_status()) + "\n").encode(), status=err.code,
                        content_type="application/json")


@web.middleware
async def _errors(request: web.Request,
                  handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    try:
        if request.path != "/healthz":
            check_caller(request.transport.get_extra_info("peercert")
                         if request.transport else None)
        response: web.StreamResponse = await handler(request)
        return response
    except StatusError as err:
        return status_json(err)


class PodHost(Protocol):
    """What the server needs of the node's pod runner (:class:`svcnet.node.runner.PodRunner`):
    container processes, their log files, and where a command runs "in" a container."""

    @property
    def runtime(self) -> ProcessRuntime: ...

    def log_files(self, uid: str, container: str) -> list[Path]: ...

    def runtime_of(self, uid: str, container: str) -> ProcessRuntime: ...

    def sandbox(self, uid: str) -> tuple[CriRuntime, str] | None: ...

    def cri_logs(self, uid: str) -> bool:
        """Whether the pod's log files are in the CRI format (containerd writes them)."""
        ...

    def exec_context(self, pod: Pod, container: Mapping[str, Any]) -> ProbeContext: ...


async def listening_socket(host: str, port: int, netns: str | None) -> socket.socket:
    """A non-blocking TCP socket listening on ``host:port``, created in ``netns`` (None: here);
    it stays in that namespace whichever thread serves it (nsthread.py)."""
    def listen() -> socket.socket:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                             socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
        return sock

    return await run_in_netns(netns, listen) if netns else listen()


class NodeServer:
    """The routes, over the pod runner and a lookup of this node's pods by name."""

    def __init__(self, runner: PodHost, lookup: Callable[[str, str], Pod | None],
                 traffic: Callable[[], Awaitable[list[list[Any]] | None]] | None = None,
                 resources: Callable[[], Awaitable[ResourceSample]] | None = None,
                 ) -> None:
        self.runner = runner
        self.lookup = lookup
        self.traffic = traffic
        """The proxy's connection counters (svcnet.proxy.counters), for /stats/services."""
        self.resources = resources
        """The node's and its containers' usage (svcnet.node.resourceusage), for
        /metrics/resource."""
        self._app_runner: web.AppRunner | None = None

    def pod(self, namespace: str, name: str) -> Pod:
        pod = self.lookup(namespace, name)
        if pod is None:
            raise StatusError(404, "NotFound", f'pods "{name}" not found',
                              {"name": name, "kind": "pods"})
        return pod

    def container(self, pod: Pod, name: str) -> Mapping[str, Any]:
        spec = pod.get("spec") or {}
        for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
            if c.get("name") == name:
                return dict(c)
        raise bad_request(f"container {name} is not valid for pod "
                          f"{(pod.get('metadata') or {}).get('name', '')}")

    def app(self) -> web.Application:
        from svcnet.node.exec import ExecHandlers
        from svcnet.node.portforward import serve_port_forward

        app = web.Application(middlewares=[_errors])
        exec_handlers = ExecHandlers(self)

        async def healthz(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        async def port_forward(request: web.Request) -> web.StreamResponse:
            return await serve_port_forward(self, request)

        async def services_stats(_: web.Request) -> web.Response:
            rows = await self.traffic() if self.traffic is not None else None
            if rows is None:
                raise StatusError(404, "NotFound", "this node does not count connections")
            return web.json_response({"kind": "ServiceConnections", "connections": rows})

        async def resource_metrics(_: web.Request) -> web.Response:
            if self.resources is None:
                raise StatusError(404, "NotFound", "this node does not measure its usage")
            text = format_resource_metrics(await self.resources())
            return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE})

        app.router.add_get("/healthz", healthz)
        app.router.add_get("/stats/services", services_stats)
        app.router.add_get("/metrics/resource", resource_metrics)
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self.container_logs)
        for method in ("GET", "POST"):
            app.router.add_route(method, "/exec/{ns}/{pod}/{container}", exec_handlers.exec)
            app.router.add_route(method, "/attach/{ns}/{pod}/{container}",
                                 exec_handlers.attach)
            app.router.add_route(method, "/portForward/{ns}/{pod}", port_forward)
        return app

    async def start(self, cfg: ServingConfig) -> int:
        """Listen; the port (the kernel's choice when ``cfg.port`` is 0)."""

        sock = await listening_socket(cfg.host, cfg.port, cfg.netns)
        self._app_runner = web.AppRunner(self.app(), handler_cancellation=True,
                                         access_log=None, shutdown_timeout=1.0)
        await self._app_runner.setup()
        await web.SockSite(self._app_runner, sock, ssl_context=server_ssl_context(cfg)).start()
        port = int(sock.getsockname()[1])
        log.info("node server listening on %s:%d", cfg.host, port)
        return port

    async def stop(self) -> None:
        if self._app_runner is not None:
            await self._app_runner.cleanup()
            self._app_runner = None

    # -- logs ------------------------------------------------------------------------------

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        opts = LogOptions.from_query(request.query)
        name, container = request.match_info["pod"], request.match_info["container"]
        pod = self.pod(request.match_info["ns"], name)
        self.container(pod, container)
        uid = str(pod["metadata"]["uid"])
        files = self.runner.log_files(uid, container)
        if opts.previous:
            files = files[:-1]
        if not files:
            what = "previous terminated container" if opts.previous else "container"
            raise bad_request(f'{what} "{container}" in pod "{name}" is waiting to start: '
                              "no logs yet")
        path = files[-1]
        raw = await asyncio.to_thread(path.read_bytes)
        decode = _decoder(opts) if self.runner.cri_logs(uid) else None
        if decode is not None:
            raw = raw[:raw.rfind(b"\n") + 1]  # a line still being written comes next
        offset = len(raw)
        data = opts.cut(decode(raw) if decode else raw)
        if not opts.follow or opts.previous:
            return web.Response(body=data, content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        sent = len(data)
        with contextlib.suppress(ConnectionResetError):
            await response.write(data)
            await self._follow(response, path, offset, uid, container,
                               None if opts.limit_bytes is None else opts.limit_bytes - sent,
                               decode)
            await response.write_eof()
        return response

    async def _follow(self, response: web.StreamResponse, path: Path, offset: int, uid: str,
                      container: str, budget: int | None,
                      decode: Callable[[bytes], bytes] | None = None) -> None:
        """Stream what the container appends until it exits or restarts, the pod goes, or
        ``budget`` bytes were sent (as ``kubectl logs -f`` ends). CRI log files are decoded
        whole lines at a time."""
        key = ContainerKey(uid, container)
        while budget is None or budget > 0:
            proc = self.runner.runtime_of(uid, container).get(key)
            finished = proc is None or isinstance(proc.state, Exited) or (
                proc.log_path is not None and proc.log_path != path)
            chunk = await asyncio.to_thread(_read_from, path, offset)
            if chunk is None:
                return  # the file is gone (the pod was removed)
            if chunk and decode is not None:
                consumed = chunk[:chunk.rfind(b"\n") + 1] or (chunk if finished else b"")
                if not consumed:
                    await asyncio.sleep(FOLLOW_INTERVAL)
                    continue
                offset += len(consumed)
                chunk = decode(consumed)
            elif chunk:
                offset += len(chunk)
            if chunk:
                if budget is not None:
                    chunk, budget = chunk[:budget], budget - len(chunk)
                await response.write(chunk)
                continue
            if finished:
                return
            await asyncio.sleep(FOLLOW_INTERVAL)


def _decoder(opts: LogOptions) -> Callable[[bytes], bytes]:
    def decode(data: bytes) -> bytes:
        return decode_log(data, timestamps=opts.timestamps, since=opts.since)
    return decode


def _read_from(path: Path, offset: int) -> bytes | None:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(1 << 20)
    except FileNotFoundError:
        return None


@dataclass(frozen=True, slots=True)
class LogOptions:
    """``PodLogOptions`` as the node reads them (the API server validated them)."""

    follow: bool = False
    previous: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    timestamps: bool = False
    """Prefix each line with its RFC 3339 time (CRI logs only: the process runtime's logs
    carry no times)."""
    since: datetime | None = None
    """Leave out lines written before this (``sinceSeconds`` before now, or ``sinceTime``;
    CRI logs only, for the same reason)."""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> LogOptions:
        def flag(name: str) -> bool:
            return query.get(name, "").lower() in ("true", "1")

        def number(name: str) -> int | None:
            value = query.get(name)
            if value is None or value == "":
                return None
            try:
                n = int(value)
            except ValueError:
                raise bad_request(f"{name}: invalid value {value!r}") from None
            if n < 0:
                raise bad_request(f"{name}: must be greater than or equal to 0")
            return n

        since = None
        if (seconds := number("sinceSeconds")) is not None:
            since = datetime.now(UTC) - timedelta(seconds=seconds)
        elif (when := query.get("sinceTime")) and (since := parse_time(when)) is None:
            raise bad_request(f"sinceTime: invalid value {when!r}")
        return cls(flag("follow"), flag("previous"), number("tailLines"), number("limitBytes"),
                   flag("timestamps"), since)

    def cut(self, data: bytes) -> bytes:
        if self.tail_lines is not None:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-self.tail_lines:]) if self.tail_lines else b""
        if self.limit_bytes is not None:
            data = data[:self.limit_bytes]
        return data
