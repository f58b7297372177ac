"""A real HTTPS admission webhook backend for tests: an aiohttp server on 127.0.0.1 (port 0)
with a serving certificate from a CA made for the test, answering each path with a behaviour
(``allow``, a denial, a patch...) and recording every AdmissionReview it receives; and the
webhook configurations (defaulted, as the registry stores them) that point at it."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from svcnet.apiserver.certs import TLSFiles, ensure_tls

Obj = dict[str, Any]
Behaviour = Callable[[Obj], Awaitable[tuple[int, Any]]]

SERVICE_HOST = "hook.webhooks.svc"


@dataclass
class WebhookServer:
    """The webhook backend: behaviours by path, and what it was sent."""

    port: int = 0
    ca_pem: bytes = b""
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    received: list[tuple[str, Obj]] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def calls(self, path: str) -> list[Obj]:
        return [review for p, review in self.received if p == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        review = await request.json()
        self.received.append((request.path, review))
        self.hosts.append(request.headers.get("Host", ""))
        self.queries.append(request.query_string)
        status, body = await self.behaviours[request.path](review)
        if isinstance(body, (bytes, str)):
            return web.Response(status=status, body=body, content_type="text/plain")
        return web.json_response(body, status=status)


def reply(review: Obj, **response: Any) -> Obj:
    response.setdefault("uid", review["request"]["uid"])
    return {"apiVersion": review["apiVersion"], "kind": "AdmissionReview",
            "response": response}


def patch_of(*ops: Obj) -> str:
    return base64.b64encode(json.dumps(list(ops)).encode()).decode()


async def allow(review: Obj) -> tuple[int, Any]:
    return 200, reply(review, allowed=True)


@contextlib.asynccontextmanager
async def serving_webhooks(tmp_path: Path) -> AsyncIterator[WebhookServer]:
    """A webhook backend on 127.0.0.1 (port 0) with a serving certificate, for 127.0.0.1 and
    :data:`SERVICE_HOST`, from a CA made in ``tmp_path``."""
    files: TLSFiles = ensure_tls(tmp_path, ["127.0.0.1", SERVICE_HOST])
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(files.cert, files.key)
    backend = WebhookServer(ca_pem=files.ca_pem())
    app = web.Application()
    app.router.add_post("/{tail:.*}", backend.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    backend.port = sock.getsockname()[1]
    await web.SockSite(runner, sock, ssl_context=ctx).start()
    try:
        yield backend
    finally:
        await runner.cleanup()
        sock.close()


def webhook(name: str, client: Obj, **fields: Any) -> Obj:
    """A defaulted webhook: every pod write, Fail, timeout 10 s, review v1."""
    out: Obj = {"name": name, "clientConfig": client,
                "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""],
                           "apiVersions": ["v1"], "resources": ["pods"], "scope": "*"}],
                "failurePolicy": "Fail", "matchPolicy": "Equivalent",
                "namespaceSelector": {}, "objectSelector": {}, "sideEffects": "None",
                "timeoutSeconds": 10, "admissionReviewVersions": ["v1"]}
    out.update(fields)
    return out


def url_client(server: WebhookServer, path: str, ca: bytes | None = None) -> Obj:
    return {"url": server.url(path),
            "caBundle": base64.b64encode(server.ca_pem if ca is None else ca).decode()}


def configuration(name: str, *hooks: Obj, kind: str = "") -> Obj:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
            "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "1"},
            "webhooks": list(hooks)}
