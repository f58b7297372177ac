"""Admission webhooks, the call: one HTTPS POST of an AdmissionReview, as kube-apiserver's
webhook client makes it.

Theory of operation
-------------------
Followed: k8s.io/apiserver/pkg/util/webhook/client.go (``ClientManager.HookClient``),
k8s.io/apiserver/pkg/util/proxy/proxy.go (``ResolveEndpoint``: endpoint routing) and
client-go's rest client (``Request.Do``/``transformResponse``, apimachinery's
``NewGenericServerResponse``) for what a failed call says.

Where: a ``url`` is dialled as written. A Service (``namespace/name``, ``port``, ``path``) is
addressed as ``https://<name>.<namespace>.svc:<port><path>`` (that is the ``Host`` header, the
TLS server name the certificate must name, and the URL in messages) but dialled at an endpoint:
the injected :data:`ResolveService` gives one. svcnet's API server runs in the host network
namespace, where pod IPs are routed and ClusterIPs are not, so it routes to endpoints as
kube-apiserver does with ``--enable-aggregator-routing``; :func:`pick_endpoint` is that choice
(a ready endpoint of the Service's EndpointSlices whose port has the Service port's name, so
its number is the port's resolved ``targetPort``), and :func:`endpoint_resolver` builds a
resolver from two lookups the server supplies.

TLS: the webhook's ``caBundle`` is trusted, or the system roots when it is empty; the server
name is the URL's host, or ``<name>.<namespace>.svc`` for a Service; HTTP/1.1, as upstream
pins it. The request carries ``?timeout=<N>s`` and is given ``N`` seconds
(``timeoutSeconds``) in all, connecting included.

What a failure says (the ``reason`` of :class:`~svcnet.apiserver.webhooks.CallFailed`, after
``failed to call webhook: ``): Go's ``Post "<url>": <error>`` for transport errors, spelt as
Go spells the common ones (``context deadline exceeded``; ``dial tcp <addr>: connect:
connection refused``; ``tls: failed to verify certificate: x509: certificate signed by unknown
authority``), Python's text otherwise; for a non-2xx answer, the Status it carries or client-go's
generic message (``an error on the server ("...") has prevented the request from
succeeding``); for an undecodable body, the decoder's error. The answer's size is bounded
(:data:`MAX_RESPONSE_BYTES`, svcnet's own limit).
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from svcnet.api.errors import StatusError, go_quote, store_unavailable
from svcnet.apiserver.webhooks import ClientConfig

__all__ = [
    "MAX_RESPONSE_BYTES",
    "ResolveService",
    "TransportError",
    "WebhookClient",
    "endpoint_resolver",
    "pick_endpoint",
    "webhook_url",
]

Obj = dict[str, Any]

ResolveService = Callable[[str, str, int], Awaitable[tuple[str, int]]]
"""``(namespace, name, port)`` → the ``(ip, port)`` to dial for that Service port; raises a
StatusError whose message says why there is none (``no endpoints available for service
"x"``, ``services "x" not found``)."""

MAX_RESPONSE_BYTES: Final = 32 * 1024 * 1024
_SSL_CACHE_SIZE: Final = 200  # upstream's client cache size
USER_AGENT: Final = "kube-apiserver-admission"


class TransportError(Exception):
    """The POST failed: the text after ``failed to call webhook: ``."""


# =============================================================================================
# Endpoint routing


def _unavailable(message: str) -> StatusError:
    """apierrors.NewServiceUnavailable (no Retry-After: not a store outage)."""
    error = store_unavailable(message)
    error.details = {}
    return error


def pick_endpoint(service: Mapping[str, Any], slices: Sequence[Mapping[str, Any]], port: int,
                  rng: random.Random | None = None) -> tuple[str, int]:
    """ResolveEndpoint (pure but for the random pick): the address and port of a ready
    endpoint of ``service``'s ``port``, from its EndpointSlices.

    The slices of the Service's primary IP family come first, each slice from a random
    endpoint on; an endpoint whose ``ready`` is unset counts as ready, as upstream's.
    """
    rng = rng or random.Random()
    name = str((service.get("metadata") or {}).get("name") or "")
    spec = service.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    if kind not in ("ClusterIP", "LoadBalancer", "NodePort"):
        raise _unavailable(f"unsupported service type {go_quote(kind)}")
    port_name = None
    for p in spec.get("ports") or []:
        if p.get("port") == port:
            port_name = p.get("name") or ""
            break
    if port_name is None:
        raise _unavailable(f"no service port {port} found for service {go_quote(name)}")
    families = spec.get("ipFamilies") or []
    ordered = list(slices)
    rng.shuffle(ordered)
    if families:
        ordered.sort(key=lambda s: s.get("addressType") != families[0])
    for s in ordered:
        endpoints = s.get("endpoints") or []
        for sp in s.get("ports") or []:
            if (sp.get("name") or "") != port_name or sp.get("port") is None or not endpoints:
                continue
            offset = rng.randrange(len(endpoints))
            for i in range(len(endpoints)):
                ep = endpoints[(i + offset) % len(endpoints)]
                if (ep.get("conditions") or {}).get("ready") is not False and ep.get(
                        "addresses"):
                    return str(ep["addresses"][0]), int(sp["port"])
    raise _unavailable(f"no endpoints available for service {go_quote(name)}")


def endpoint_resolver(
        get_service: Callable[[str, str], Awaitable[Mapping[str, Any] | None]],
        list_slices: Callable[[str, str], Awaitable[Sequence[Mapping[str, Any]]]],
) -> ResolveService:
    """A :data:`ResolveService` over the server's lookups: the Service (None when there is
    none: ``service "x" not found``, the lister's NotFound) and its EndpointSlices (those
    labelled ``kubernetes.io/service-name=<name>`` in its namespace)."""
    async def resolve(namespace: str, name: str, port: int) -> tuple[str, int]:
        service = await get_service(namespace, name)
        if service is None:
            raise StatusError(404, "NotFound", f"service {go_quote(name)} not found",
                              {"name": name, "kind": "service"})
        return pick_endpoint(service, await list_slices(namespace, name), port)
    return resolve


# =============================================================================================
# The URL


def _go_clean(path: str) -> str:
    """Go's path.Clean of a non-empty path (what path.Join leaves of a webhook's path)."""
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append(part)
            continue
        parts.append(part)
    out = "/".join(parts)
    return ("/" + out) if rooted else (out or ".")


def _service_host(config: ClientConfig) -> str:
    return f"{config.service_name}.{config.service_namespace}.svc"


def _path_and_query(config: ClientConfig, timeout_seconds: int) -> str:
    """The request's path (as Go's path.Join leaves it) and ``?timeout=<N>s``."""
    path = config.service_path if config.is_service else urlsplit(config.url).path
    return (_go_clean(path) if path else "") + f"?timeout={timeout_seconds}s"


def webhook_url(config: ClientConfig, timeout_seconds: int) -> str:
    """The URL upstream names in its messages (and sends as ``Host`` and path):
    ``https://<name>.<namespace>.svc:<port><path>?timeout=<N>s``, or the ``url``'s."""
    if config.is_service:
        base = f"https://{_service_host(config)}:{config.service_port}"
    else:
        u = urlsplit(config.url)
        base = f"{u.scheme}://{u.netloc}"
    return base + _path_and_query(config, timeout_seconds)


# =============================================================================================
# Errors, as Go's client says them


_UNKNOWN_AUTHORITY: Final = frozenset({2, 7, 18, 19, 20, 21})
"""OpenSSL's verify codes for "no trusted issuer": unable to get the issuer (2, 20, 21),
self-signed (18, 19), or a CA of the issuer's name that did not sign it (7)."""


def _transport_reason(url: str, exc: BaseException) -> str:
    return f"Post {go_quote(url)}: {_go_error(exc)}"


def _go_error(exc: BaseException) -> str:
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return "context deadline exceeded"
    if isinstance(exc, StatusError):
        return exc.message
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        if isinstance(cert_error, ssl.SSLCertVerificationError):
            if cert_error.verify_code in _UNKNOWN_AUTHORITY:
                return ("tls: failed to verify certificate: x509: certificate signed by "
                        "unknown authority")
            return f"tls: failed to verify certificate: x509: {cert_error.verify_message}"
        return f"tls: {cert_error}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        target = f"{exc.host}:{exc.port}" if ":" not in exc.host else f"[{exc.host}]:{exc.port}"
        if isinstance(cause, ConnectionRefusedError):
            return f"dial tcp {target}: connect: connection refused"
        return f"dial tcp {target}: {cause.strerror or cause}"
    return str(exc) or type(exc).__name__


_GENERIC_MESSAGES: Final = {
    409: "the server reported a conflict",
    404: "the server could not find the requested resource",
    400: "the server rejected our request for an unknown reason",
    401: "the server has asked for the client to provide credentials",
    405: "the server does not allow this method on the requested resource",
    422: "the server rejected our request due to an error in our request",
    503: "the server is currently unable to handle the request",
    504: "the server was unable to return a response in the time allotted, but may still "
         "be processing the request",
    429: "the server has received too many requests and has asked us to try again later",
}
_SERVER_MESSAGE_CODES: Final = frozenset({403, 406, 415})


def _failed_answer(status: int, content_type: str, body: bytes) -> str:
    """What client-go makes of a non-2xx answer: the Status it carries, else
    NewGenericServerResponse's text."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and doc.get("kind") == "Status" and isinstance(
            doc.get("message", ""), str):
        return str(doc.get("message") or "")
    server_message = "unknown"
    if content_type.startswith("text/"):
        server_message = body.decode("utf-8", "replace").strip()
    if status in _SERVER_MESSAGE_CODES:
        return server_message
    if status in _GENERIC_MESSAGES:
        return _GENERIC_MESSAGES[status]
    if status >= 500:
        return (f"an error on the server ({go_quote(server_message)}) has prevented the "
                "request from succeeding")
    return f"the server responded with the status code {status} but did not return more " \
           "information"


# =============================================================================================
# The client


class WebhookClient:
    """POSTs AdmissionReviews; one connection pool, one TLS context per CA bundle."""

    def __init__(self, resolve_service: ResolveService) -> None:
        self._resolve_service = resolve_service
        self._session: aiohttp.ClientSession | None = None
        self._contexts: OrderedDict[bytes, ssl.SSLContext] = OrderedDict()

    def _tls(self, ca_bundle: bytes) -> ssl.SSLContext:
        ctx = self._contexts.get(ca_bundle)
        if ctx is not None:
            self._contexts.move_to_end(ca_bundle)
            return ctx
        if ca_bundle:
            ctx = ssl.create_default_context(
                cadata=ca_bundle.decode("ascii", "replace"))
        else:
            ctx = ssl.create_default_context()
        ctx.set_alpn_protocols(["http/1.1"])
        self._contexts[ca_bundle] = ctx
        if len(self._contexts) > _SSL_CACHE_SIZE:
            self._contexts.popitem(last=False)
        return ctx

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), auto_decompress=True)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, config: ClientConfig, review: Obj, timeout_seconds: int) -> object:
        """POST ``review``; the decoded JSON answer, or :class:`TransportError` with the text
        upstream puts after ``failed to call webhook: ``. A bad ``caBundle`` (no certificate
        in it) fails as upstream's client construction does."""
        url = webhook_url(config, timeout_seconds)
        try:
            ctx = self._tls(config.ca_bundle)
        except (ssl.SSLError, ValueError) as e:
            raise TransportError(f"Post {go_quote(url)}: unable to load root certificates: "
                                 f"{e}") from e
        headers = {"Content-Type": "application/json", "Accept": "application/json, */*",
                   "User-Agent": USER_AGENT}
        try:
            async with asyncio.timeout(timeout_seconds):
                if config.is_service:
                    ip, port = await self._resolve_service(
                        config.service_namespace, config.service_name, config.service_port)
                    host = f"[{ip}]" if ":" in ip else ip
                    target = f"https://{host}:{port}" + _path_and_query(config,
                                                                         timeout_seconds)
                    headers["Host"] = f"{_service_host(config)}:{config.service_port}"
                    server_hostname = _service_host(config)
                else:
                    target = url
                    server_hostname = urlsplit(url).hostname or ""
                return await self._send(target, review, headers, ctx, server_hostname)
        except TransportError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError, StatusError) as e:
            raise TransportError(_transport_reason(url, e)) from e

    async def _send(self, target: str, review: Obj, headers: Mapping[str, str],
                    ctx: ssl.SSLContext, server_hostname: str) -> object:
        body = json.dumps(review, separators=(",", ":")).encode()
        async with self.session.post(target, data=body, headers=dict(headers), ssl=ctx,
                                     server_hostname=server_hostname,
                                     allow_redirects=False) as resp:
            # The whole body, as it arrives (read(n) returns what one read got), bounded.
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_any():
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise TransportError(f"the webhook's answer is larger than "
                                         f"{MAX_RESPONSE_BYTES} bytes")
                chunks.append(chunk)
            data = b"".join(chunks)
            if not 200 <= resp.status <= 206:
                raise TransportError(_failed_answer(resp.status, resp.content_type, data))
            try:
                return json.loads(data)
            except ValueError as e:
                raise TransportError(f"couldn't get version/kind; json parse error: {e}") from e
