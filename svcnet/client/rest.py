"""RESTClient: the Kubernetes REST verbs over one aiohttp session.

Theory of operation
-------------------
Every request is addressed by a :class:`GVR` (group, version, resource, plus whether the
resource is namespaced and its kind) and a namespace, name and subresource, exactly the pieces
of a Kubernetes URL::

    /api/v1/namespaces/NS/services/NAME/status
    /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices

Objects are plain JSON dicts, as on the wire. One :class:`aiohttp.ClientSession` is opened lazily
on the first request and reused (HTTP keep-alive, and TCP keep-alive on every socket so a watch
on a dead peer fails instead of hanging). TLS and the bearer token come from a
:class:`~svcnet.client.kubeconfig.KubeConfig`; for tests, point the client at any ``http://``
base URL (an in-process ``aiohttp.test_utils.TestServer``) or inject a session.

Answers:

* 2xx: the decoded JSON body. Lists come back as :class:`ObjectList` (items plus the list's
  resourceVersion, the point to watch from). The server strips ``apiVersion``/``kind`` from list
  items, as Kubernetes does; we put them back from the GVR so every object a caller sees has them.
* anything else: :class:`~svcnet.api.errors.StatusError` built from the ``Status`` body
  (code, reason, message, details), or, when the body is not a Status, from the HTTP code with
  client-go's wording.

``watch`` opens a streaming GET (``?watch=true&resourceVersion=RV&allowWatchBookmarks=true&
timeoutSeconds=N``) and yields :class:`~svcnet.client.watchstream.WatchEvent` values decoded by
the sans-IO :class:`~svcnet.client.watchstream.WatchDecoder`. An ``ERROR`` event ends the
watch by raising its Status as an exception. A watch that receives nothing, not even a
bookmark, for ``watch_idle_timeout`` seconds (with bookmarks; otherwise its timeoutSeconds plus
a slack) fails with TransportError: a silent stream is a dead one.

Several servers (``fallback_servers``, the servers `svcnet join` lists): requests go to one
server, the current one, and stay there (a sticky choice, as k3s's agent load balancer). A
request that cannot connect, or times out, moves the current server to the next one in the
list, once per failed server: the other requests that were waiting on it fail too and do not
move it again. A server whose machine vanished from the network (our packets dropped, not
refused) is noticed as soon as one request times out, rather than each request waiting out its
own timeout:

* connecting is bounded by :data:`CONNECT_TIMEOUT` (a few SYN retransmissions), not by the
  request's timeout;
* a request may carry its own, shorter timeout (``timeout=``: kubelet gives its heartbeat client
  the node status period as timeout, cmd/kubelet/app/server.go), so heartbeats notice a silent
  server within seconds while lists keep :data:`DEFAULT_TIMEOUT`;
* on a move, every request and watch still waiting for an answer fails at once, as if timed
  out (kubelet's connection-rotating dialer closes all its connections after repeated heartbeat
  failures, k8s.io/client-go/util/connrotation): their callers retry them, on the new server,
  instead of each waiting out its own timeout on the silent one;
* sockets carry TCP keep-alive and ``TCP_USER_TIMEOUT`` (:func:`keepalive_socket`), so a
  connection to a silent peer also fails without any of the above, in about 30 s.

Error tree::

    Exception
    ├── StatusError (svcnet.api.errors)   the server answered with a failure Status
    │   └── Expired (alias Gone)          410: resourceVersion/continue too old; relist
    └── TransportError                    no usable answer: connect/TLS failure, reset,
                                          timeout, truncated or undecodable body

A ``TransportError`` on a write means the outcome is unknown: the write may have committed.

Why this module is long: The REST client: one method per verb and the error tree, as client-go's
rest client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, Final

import aiohttp

from svcnet.api.access import meta_of as _meta
from svcnet.api.errors import StatusError
from svcnet.client.kubeconfig import KubeConfig
from svcnet.client.watchstream import WatchDecodeError, WatchDecoder, WatchEvent
from svcnet.util import jsonbytes

__all__ = [
    "CONFIGMAPS",
    "ENDPOINTS",
    "ENDPOINTSLICES",
    "EVENTS",
    "GVR",
    "LEASES",
    "NAMESPACES",
    "NODES",
    "PODS",
    "SECRETS",
    "SERVICEACCOUNTS",
    "SERVICES",
    "Expired",
    "Gone",
    "ObjectList",
    "PatchType",
    "Preconditions",
    "RESTClient",
    "TransportError",
    "Watch",
    "WatchEvent",
    "status_error_from",
]

Obj = dict[str, Any]

log = logging.getLogger(__name__)

DEFAULT_USER_AGENT: Final = "svcnet/0.1.0"
DEFAULT_TIMEOUT: Final = 30.0
CONNECT_TIMEOUT: Final = 4.0
"""Seconds to establish a TCP connection (Linux sends a SYN at 0, 1 and 3 s): a server whose
machine is gone drops our SYNs, and nothing is gained by waiting out the request's timeout."""
DEFAULT_PAGE_SIZE: Final = 500
WATCH_READ_SLACK: Final = 30.0
"""Seconds a watch may stay silent beyond its timeoutSeconds before we call the peer dead."""
WATCH_IDLE_TIMEOUT: Final = 90.0
"""Seconds a watch with bookmarks may stay silent before we call it dead: the server sends a
bookmark after every 60 s without events (svcnet's default, and kube-apiserver's pace), plus a
margin. A dead peer, a connection lost without FIN or a server-side watch that hung are all
noticed this way; the caller (an informer) then re-watches from its last resourceVersion."""


# -- addressing -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GVR:
    """A resource type: where it lives in the URL space and what its objects are called."""

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str = "", name: str = "", subresource: str = "") -> str:
        """The URL path; an empty namespace on a namespaced resource means all namespaces."""
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        parts = [root]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.resource)
        if name:
            parts.append(name)
            if subresource:
                parts.append(subresource)
        elif subresource:
            raise ValueError("a subresource needs a name")
        return "/".join(parts)

    def __str__(self) -> str:
        # The form Kubernetes uses in messages: "services", "endpointslices.discovery.k8s.io".
        return f"{self.resource}.{self.group}" if self.group else self.resource


SERVICES: Final = GVR("", "v1", "services", "Service")
PODS: Final = GVR("", "v1", "pods", "Pod")
NODES: Final = GVR("", "v1", "nodes", "Node", namespaced=False)
NAMESPACES: Final = GVR("", "v1", "namespaces", "Namespace", namespaced=False)
ENDPOINTS: Final = GVR("", "v1", "endpoints", "Endpoints")
EVENTS: Final = GVR("", "v1", "events", "Event")
ENDPOINTSLICES: Final = GVR("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
LEASES: Final = GVR("coordination.k8s.io", "v1", "leases", "Lease")
CONFIGMAPS: Final = GVR("", "v1", "configmaps", "ConfigMap")
SECRETS: Final = GVR("", "v1", "secrets", "Secret")
RESOURCEQUOTAS: Final = GVR("", "v1", "resourcequotas", "ResourceQuota")
LIMITRANGES: Final = GVR("", "v1", "limitranges", "LimitRange")
SERVICEACCOUNTS: Final = GVR("", "v1", "serviceaccounts", "ServiceAccount")
PERSISTENTVOLUMES: Final = GVR("", "v1", "persistentvolumes", "PersistentVolume",
                               namespaced=False)
PERSISTENTVOLUMECLAIMS: Final = GVR("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
STORAGECLASSES: Final = GVR("storage.k8s.io", "v1", "storageclasses", "StorageClass",
                            namespaced=False)
CUSTOMRESOURCEDEFINITIONS: Final = GVR("apiextensions.k8s.io", "v1",
                                       "customresourcedefinitions", "CustomResourceDefinition",
                                       namespaced=False)
CERTIFICATESIGNINGREQUESTS: Final = GVR("certificates.k8s.io", "v1",
                                        "certificatesigningrequests",
                                        "CertificateSigningRequest", namespaced=False)


@dataclass(frozen=True, slots=True)
class ObjectList:
    """One list answer (or all pages of one, from :meth:`RESTClient.list_all`)."""

    items: list[Obj]
    resource_version: str
    """The store revision the list was served at: watch from here to miss nothing."""
    continue_token: str = ""
    """Non-empty if more pages follow."""


@dataclass(frozen=True, slots=True)
class Preconditions:
    """Delete only if the object still has this uid / resourceVersion."""

    uid: str = ""
    resource_version: str = ""


class PatchType(StrEnum):
    JSON = "application/json-patch+json"
    MERGE = "application/merge-patch+json"
    STRATEGIC = "application/strategic-merge-patch+json"
    APPLY = "application/apply-patch+yaml"


# -- errors ---------------------------------------------------------------------------------


class TransportError(Exception):
    """No usable answer from the server; for writes, the outcome is unknown."""


class Expired(StatusError):
    """410: the resourceVersion (or continue token) asked for is gone; list again."""


Gone = Expired

# client-go's wording (k8s.io/apimachinery errors.NewGenericServerResponse) for answers that
# carry no Status body.
_GENERIC: Final[Mapping[int, tuple[str, str]]] = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "the server has asked for the client to provide credentials"),
    403: ("Forbidden", "the server does not allow access to the requested resource"),
    404: ("NotFound", "the server could not find the requested resource"),
    405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
    406: ("NotAcceptable", "the server was unable to respond with a content type that the "
                           "client supports"),
    409: ("Conflict", "the server reported a conflict"),
    410: ("Gone", "the server reported that the requested resource is gone"),
    413: ("RequestEntityTooLarge", "the server has received too large a request entity"),
    415: ("UnsupportedMediaType", "the server was unable to handle the media type requested"),
    422: ("Invalid", "the server rejected our request due to an error in our request"),
    429: ("TooManyRequests", "the server has received too many requests and has asked us to "
                             "try again later"),
    500: ("InternalError", "an error on the server has prevented the request from succeeding"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "the server was unable to return a response in the time allotted, but "
                     "may still be processing the request"),
}


def status_error_from(http_status: int, body: bytes | Obj) -> StatusError:
    """The exception for a failure answer: from its Status body if it has one.

    ``body`` is the raw response body, or an already decoded object (an ``ERROR`` watch event).
    """
    doc: Any = body
    if isinstance(body, bytes):
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            doc = None
    if isinstance(doc, dict) and doc.get("kind") == "Status":
        code = _int(doc.get("code")) or http_status
        default_reason, default_message = _GENERIC.get(code, ("", ""))
        details = doc.get("details")
        err_type = Expired if code == 410 else StatusError
        return err_type(code, str(doc.get("reason") or default_reason or "Unknown"),
                        str(doc.get("message") or default_message or f"error code {code}"),
                        details if isinstance(details, dict) else {})
    reason, message = _GENERIC.get(
        http_status, ("Unknown", f"the server responded with the status code {http_status} "
                                 "but did not return more information"))
    text = body.decode("utf-8", "replace").strip() if isinstance(body, bytes) else ""
    if text:
        # Proxies and load balancers answer with HTML or text; a snippet helps whoever reads it.
        message = f"{message} ({text[:200]})"
    err_type = Expired if http_status == 410 else StatusError
    return err_type(http_status, reason, message, {})


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


# -- the client -----------------------------------------------------------------------------


def keepalive_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """aiohttp socket factory: TCP keep-alive (a probe after 15 s idle, then every 5 s) and a
    30 s ``TCP_USER_TIMEOUT`` (data or probes unacknowledged that long abort the connection),
    so a connection to a peer that went silent fails in about 30 s, idle or not."""
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=type_, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 15), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3),
                          ("TCP_USER_TIMEOUT", 30_000)):
        if hasattr(socket, option):  # Linux names; other platforms keep their defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
    return sock


class _Waits:
    """Every wait of one client on a server's answer (a request, a watch's next chunk), so
    that all can be ended at once, as if they had timed out."""

    def __init__(self) -> None:
        self._open: set[asyncio.Timeout] = set()
        self._why = ""

    @contextlib.asynccontextmanager
    async def abandonable(self) -> AsyncIterator[None]:
        deadline = asyncio.timeout(None)
        try:
            async with deadline:
                self._open.add(deadline)
                try:
                    yield
                finally:
                    self._open.discard(deadline)
        except TimeoutError:
            if not deadline.expired():  # a timeout of the request's own
                raise
            raise TimeoutError(self._why) from None

    def abandon_all(self, why: str) -> None:
        """End every wait now with TimeoutError(``why``)."""
        self._why = why
        now = asyncio.get_running_loop().time()
        for deadline in self._open:
            deadline.reschedule(now)


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful answer: its status (201 says "created"), decoded body, Warning headers."""

    status: int
    body: Any
    warnings: tuple[str, ...] = ()


class RESTClient:
    """Kubernetes verbs over one aiohttp session. Close it (or use ``async with``).

    ``server`` is the base URL (``https://host:port``). ``ssl_context`` is used for https
    (default: the system trust store); ``server_hostname`` overrides the name checked against
    the certificate (kubeconfig ``tls-server-name``). A ``session`` passed in is used as is and
    not closed by :meth:`close` (the test seam, along with plain ``http://`` URLs).
    """

    def __init__(self, server: str, *, token: str | None = None,
                 ssl_context: ssl.SSLContext | None = None, server_hostname: str = "",
                 user_agent: str = DEFAULT_USER_AGENT, timeout: float = DEFAULT_TIMEOUT,
                 session: aiohttp.ClientSession | None = None,
                 watch_idle_timeout: float = WATCH_IDLE_TIMEOUT,
                 fallback_servers: Sequence[str] = ()) -> None:
        self.server = server.rstrip("/")
        self._servers = [self.server, *(s.rstrip("/") for s in fallback_servers
                                        if s.rstrip("/") != self.server)]
        """Where requests go in turn when one cannot be reached (k3s's agent load balancer:
        a failed connection moves the next request to the next server)."""
        self.watch_idle_timeout = watch_idle_timeout
        """Seconds of silence after which a watch with bookmarks counts as dead."""
        self._ssl = ssl_context
        self._server_hostname = server_hostname or None
        self._timeout = timeout
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._waits = _Waits()
        self._headers = {"Accept": "application/json", "User-Agent": user_agent}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def from_kubeconfig(cls, config: KubeConfig, *, user_agent: str = DEFAULT_USER_AGENT,
                        timeout: float = DEFAULT_TIMEOUT,
                        fallback_servers: Sequence[str] = ()) -> RESTClient:
        return cls(config.server, token=config.token,
                   ssl_context=config.ssl_context() if config.is_tls else None,
                   server_hostname=config.tls_server_name, user_agent=user_agent,
                   timeout=timeout, fallback_servers=fallback_servers)

    def __repr__(self) -> str:
        return f"RESTClient({self.server!r})"

    async def __aenter__(self) -> RESTClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("RESTClient is closed")
        if self._session is None:
            # Created lazily: a ClientSession must be born inside the running event loop.
            connector = aiohttp.TCPConnector(
                ssl=self._ssl if self._ssl is not None else True,
                limit=100, keepalive_timeout=60.0, socket_factory=keepalive_socket)
            self._session = aiohttp.ClientSession(connector=connector)
            self._owns_session = True
        return self._session

    def _fail_over(self, error: BaseException, server: str) -> None:
        """After a request to ``server`` could not connect or timed out, send what follows to
        the next server (if any), unless another failure moved on from ``server`` already;
        end every wait on an answer (see the module docstring)."""
        if len(self._servers) < 2 or server != self.server or not isinstance(
                error, (aiohttp.ClientConnectionError, OSError, TimeoutError)):
            return
        i = self._servers.index(self.server) if self.server in self._servers else -1
        self.server = self._servers[(i + 1) % len(self._servers)]
        log.warning("API server unreachable (%s); trying %s", _describe(error), self.server)
        self._waits.abandon_all(f"given up: {server} did not answer, moved on to {self.server}")

    # -- plumbing ---------------------------------------------------------------------------

    async def exchange(self, method: str, path: str, *,
                       params: Mapping[str, str] | None = None, body: Any = None,
                       content_type: str = "application/json",
                       accept: str = "application/json", timeout: float | None = None) -> Answer:
        """One request, as the server answered it: a 2xx's status, decoded JSON and Warning
        headers; a failure raises an exception from the error tree. ``timeout`` replaces the
        client's for this request."""
        session = self._get_session()
        server = self.server
        data = None if body is None else jsonbytes.dumps(body)
        headers = {**self._headers, "Accept": accept}
        if data is not None:
            headers["Content-Type"] = content_type
        try:
            async with self._waits.abandonable(), session.request(
                    method, server + path, params=params, data=data, headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout or self._timeout,
                                                  sock_connect=CONNECT_TIMEOUT),
                    server_hostname=self._server_hostname) as resp:
                raw = await resp.read()
                status = resp.status
                warnings = tuple(resp.headers.getall("Warning", []))
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            self._fail_over(e, server)
            raise TransportError(f"{method} {path}: {_describe(e)}") from e
        if not 200 <= status < 300:
            raise status_error_from(status, raw)
        try:
            doc = jsonbytes.loads(raw) if raw else {}
        except ValueError as e:
            raise TransportError(f"{method} {path}: answer is not JSON: {e}") from None
        return Answer(status, doc, warnings)

    async def request(self, method: str, path: str, *,
                      params: Mapping[str, str] | None = None, body: Any = None,
                      content_type: str = "application/json",
                      timeout: float | None = None) -> Any:
        """One request; the decoded JSON answer, or an exception from the error tree."""
        answer = await self.exchange(method, path, params=params, body=body,
                                     content_type=content_type, timeout=timeout)
        return answer.body

    async def _object(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      body: Any = None, content_type: str = "application/json",
                      timeout: float | None = None) -> Obj:
        answer = await self.request(method, path, params=params, body=body,
                                    content_type=content_type, timeout=timeout)
        if not isinstance(answer, dict):
            raise TransportError(f"{method} {path}: answer is not a JSON object")
        return answer

    @staticmethod
    def _write_params(dry_run: bool, field_manager: str) -> dict[str, str]:
        params: dict[str, str] = {}
        if dry_run:
            params["dryRun"] = "All"
        if field_manager:
            params["fieldManager"] = field_manager
        return params

    # -- reads ------------------------------------------------------------------------------

    async def get(self, gvr: GVR, namespace: str, name: str, *, subresource: str = "",
                  timeout: float | None = None) -> Obj:
        return await self._object("GET", gvr.path(namespace, name, subresource),
                                  timeout=timeout)

    async def list(self, gvr: GVR, namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "", limit: int = 0, continue_token: str = "",
                   resource_version: str = "") -> ObjectList:
        """One page (all items if ``limit`` is 0)."""
        params: dict[str, str] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if limit:
            params["limit"] = str(limit)
        if continue_token:
            params["continue"] = continue_token
        if resource_version:
            params["resourceVersion"] = resource_version
        doc = await self._object("GET", gvr.path(namespace), params=params)
        meta = doc.get("metadata") or {}
        items = doc.get("items") or []
        if not isinstance(items, list):
            raise TransportError(f"list {gvr}: items is not a list")
        for item in items:
            item.setdefault("apiVersion", gvr.api_version)
            item.setdefault("kind", gvr.kind)
        return ObjectList(items, str(meta.get("resourceVersion") or ""),
                          str(meta.get("continue") or ""))

    async def list_all(self, gvr: GVR, namespace: str = "", *, label_selector: str = "",
                       field_selector: str = "", page_size: int = DEFAULT_PAGE_SIZE
                       ) -> ObjectList:
        """Every item, fetched ``page_size`` at a time from one consistent snapshot.

        If the snapshot is compacted away between pages (410 on ``continue``), fall back to one
        unpaged list, as client-go's pager does with FullListIfExpired.
        """
        items: list[Obj] = []
        token = ""
        while True:
            try:
                page = await self.list(gvr, namespace, label_selector=label_selector,
                                       field_selector=field_selector, limit=page_size,
                                       continue_token=token)
            except Expired:
                if not token:
                    raise
                return await self.list(gvr, namespace, label_selector=label_selector,
                                       field_selector=field_selector)
            items.extend(page.items)
            if not page.continue_token:
                return ObjectList(items, page.resource_version)
            token = page.continue_token

    # -- writes -----------------------------------------------------------------------------

    async def create(self, gvr: GVR, obj: Obj, *, namespace: str | None = None,
                     dry_run: bool = False, field_manager: str = "",
                     timeout: float | None = None) -> Obj:
        ns = namespace if namespace is not None else _meta(obj).get("namespace", "")
        return await self._object("POST", gvr.path(ns), body=obj, timeout=timeout,
                                  params=self._write_params(dry_run, field_manager))

    async def update(self, gvr: GVR, obj: Obj, *, subresource: str = "",
                     dry_run: bool = False, field_manager: str = "") -> Obj:
        """PUT the object to its own name; ``metadata.resourceVersion`` makes it conditional."""
        meta = _meta(obj)
        name = str(meta.get("name") or "")
        if not name:
            raise ValueError("update needs metadata.name")
        path = gvr.path(str(meta.get("namespace") or ""), name, subresource)
        return await self._object("PUT", path, body=obj,
                                  params=self._write_params(dry_run, field_manager))

    async def update_status(self, gvr: GVR, obj: Obj, *, dry_run: bool = False,
                            field_manager: str = "") -> Obj:
        return await self.update(gvr, obj, subresource="status", dry_run=dry_run,
                                 field_manager=field_manager)

    async def patch(self, gvr: GVR, namespace: str, name: str, patch: Any, *,
                    patch_type: PatchType = PatchType.MERGE, subresource: str = "",
                    dry_run: bool = False, field_manager: str = "", force: bool = False,
                    timeout: float | None = None) -> Obj:
        params = self._write_params(dry_run, field_manager)
        if force:
            params["force"] = "true"
        return await self._object("PATCH", gvr.path(namespace, name, subresource), body=patch,
                                  params=params, content_type=patch_type.value, timeout=timeout)

    async def delete(self, gvr: GVR, namespace: str, name: str, *,
                     preconditions: Preconditions | None = None,
                     propagation_policy: str = "", dry_run: bool = False,
                     grace_period: int | None = None) -> Obj:
        """Delete; the answer is the deleted object (or a Status for some kinds)."""
        options: Obj = {}
        if grace_period is not None:
            options["gracePeriodSeconds"] = grace_period
        if preconditions is not None:
            pre = {k: v for k, v in (("uid", preconditions.uid),
                                     ("resourceVersion", preconditions.resource_version)) if v}
            if pre:
                options["preconditions"] = pre
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        if dry_run:
            options["dryRun"] = ["All"]
        body = {"apiVersion": "v1", "kind": "DeleteOptions", **options} if options else None
        return await self._object("DELETE", gvr.path(namespace, name), body=body)

    async def delete_collection(self, gvr: GVR, namespace: str = "", *,
                                propagation_policy: str = "", label_selector: str = "",
                                ) -> Obj:
        """``DELETE`` on a collection (``deletecollection``); the answer is the list of what
        was deleted (or marked for deletion)."""
        params = {"labelSelector": label_selector} if label_selector else None
        body = ({"apiVersion": "v1", "kind": "DeleteOptions",
                 "propagationPolicy": propagation_policy} if propagation_policy else None)
        return await self._object("DELETE", gvr.path(namespace), params=params, body=body)

    # -- watch ------------------------------------------------------------------------------

    def watch(self, gvr: GVR, namespace: str = "", *, resource_version: str = "",
              label_selector: str = "", field_selector: str = "",
              timeout_seconds: int = 300, allow_bookmarks: bool = True) -> Watch:
        """A watch from ``resource_version`` (events strictly after it).

        Use as ``async with client.watch(...) as w: async for etype, obj in w: ...``; the
        stream ends cleanly after ``timeout_seconds`` (the server closes it) and raises
        :class:`Expired` if ``resource_version`` is too old, :class:`TransportError` if the
        stream stays silent too long (see the module docstring).
        """
        params = {"watch": "true", "timeoutSeconds": str(int(timeout_seconds))}
        if resource_version:
            params["resourceVersion"] = resource_version
        if allow_bookmarks:
            params["allowWatchBookmarks"] = "true"
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        read_timeout = timeout_seconds + WATCH_READ_SLACK
        if allow_bookmarks:
            read_timeout = min(read_timeout, self.watch_idle_timeout)
        return Watch(self, gvr, gvr.path(namespace), params, read_timeout=read_timeout)

    async def _open_stream(self, path: str, params: Mapping[str, str],
                           read_timeout: float) -> aiohttp.ClientResponse:
        session = self._get_session()
        server = self.server
        try:
            async with self._waits.abandonable():
                resp = await session.get(
                    server + path, params=params, headers=self._headers,
                    server_hostname=self._server_hostname,
                    timeout=aiohttp.ClientTimeout(total=None, connect=self._timeout,
                                                  sock_connect=CONNECT_TIMEOUT,
                                                  sock_read=read_timeout))
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            self._fail_over(e, server)
            raise TransportError(f"GET {path} (watch): {_describe(e)}") from e
        if not 200 <= resp.status < 300:
            try:
                raw = await resp.read()
            except (aiohttp.ClientError, OSError, TimeoutError):
                raw = b""
            finally:
                resp.release()
            raise status_error_from(resp.status, raw)
        return resp


class Watch:
    """One open watch stream: an async iterator of :class:`WatchEvent`, and a context manager
    that closes the connection. The request is sent on ``__aenter__`` or the first ``__anext__``.

    The iterator ends (StopAsyncIteration) when the server ends the stream; it raises
    :class:`Expired` / :class:`StatusError` for an ``ERROR`` event and :class:`TransportError`
    when the connection breaks. Any of those closes the stream.
    """

    def __init__(self, client: RESTClient, gvr: GVR, path: str, params: Mapping[str, str], *,
                 read_timeout: float) -> None:
        self.gvr = gvr
        self._client = client
        self._path = path
        self._params = dict(params)
        self._read_timeout = read_timeout
        self._response: aiohttp.ClientResponse | None = None
        self._decoder = WatchDecoder()
        self._pending: deque[WatchEvent] = deque()
        self._closed = False

    async def __aenter__(self) -> Watch:
        await self._open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[WatchEvent]:
        return self

    async def _open(self) -> aiohttp.ClientResponse:
        if self._closed:
            raise RuntimeError("watch is closed")
        if self._response is None:
            self._response = await self._client._open_stream(
                self._path, self._params, self._read_timeout)
        return self._response

    async def __anext__(self) -> WatchEvent:
        if self._closed and not self._pending:
            raise StopAsyncIteration
        try:
            while not self._pending:
                resp = await self._open()
                try:
                    async with self._client._waits.abandonable():
                        chunk = await resp.content.readany()
                except (aiohttp.ClientError, OSError, TimeoutError) as e:
                    raise TransportError(f"watch {self.gvr}: {_describe(e)}") from e
                if not chunk:  # the server ended the stream (timeoutSeconds or shutdown)
                    self._pending.extend(self._decoder.close())
                    await self.aclose()
                    if not self._pending:
                        raise StopAsyncIteration
                    break
                self._pending.extend(self._decoder.feed(chunk))
        except WatchDecodeError as e:
            await self.aclose()
            raise TransportError(f"watch {self.gvr}: {e}") from None
        except BaseException:
            # Cancelled or broken: never leave a half-read stream on the pool.
            await self.aclose()
            raise
        event = self._pending.popleft()
        if event.type == "ERROR":
            await self.aclose()
            raise status_error_from(500, event.object)
        if event.type != "BOOKMARK":
            event.object.setdefault("apiVersion", self.gvr.api_version)
            event.object.setdefault("kind", self.gvr.kind)
        return event

    async def aclose(self) -> None:
        self._closed = True
        if self._response is not None:
            # close(), not release(): the body is unread, so the connection cannot be reused.
            self._response.close()
            self._response = None




def _describe(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__

