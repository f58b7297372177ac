"""How the API server reaches a node agent: kube-apiserver's kubelet client.

Theory of operation
-------------------
Followed: pkg/kubelet/client/kubelet_client.go (connection info from the Node object, TLS
with the kubelet client certificate) and pkg/registry/core/pod/strategy.go
(``LogLocation``, ``ExecLocation``, ``AttachLocation``, ``PortForwardLocation``: the pod's node,
its address and port, the kubelet path and query).

The node is found through its Node object: ``status.addresses`` InternalIP and
``status.daemonEndpoints.kubeletEndpoint.Port`` (:func:`svcnet.api.nodes.kubelet_endpoint`).
The connection is HTTPS; the API server presents its kubelet client certificate (signed by the
cluster CA: :func:`svcnet.apiserver.certs.ensure_kubelet_client`) and verifies the node's
serving certificate against the same CA, for the address it dialled (kube-apiserver's
``--kubelet-certificate-authority``).
"""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from svcnet.api.errors import StatusError, bad_request
from svcnet.api.nodes import kubelet_endpoint

Obj = dict[str, Any]


class NodeClient:
    def __init__(self, ca_file: Path, cert_file: Path, key_file: Path) -> None:
        self.ssl = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
        self.ssl.load_cert_chain(cert_file, key_file)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.ssl, limit=0),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @staticmethod
    def url(node: Obj, path: str, *parts: str) -> str:
        """``https://<InternalIP>:<port>/<path>/<parts...>`` for ``node``; a 400 when the node
        does not say where its agent listens (as upstream's "no preferred addresses")."""
        endpoint = kubelet_endpoint(node)
        if endpoint is None:
            name = (node.get("metadata") or {}).get("name", "")
            raise bad_request(f"no preferred addresses found; node {name} does not advertise "
                              "its kubelet endpoint")
        host, port = endpoint
        host = f"[{host}]" if ":" in host else host
        tail = "/".join(quote(p, safe="") for p in parts)
        return f"https://{host}:{port}/{path}/{tail}"


def upstream_failure(status: int, body: bytes) -> StatusError:
    """A node's error answer, as the client should see it (the node speaks Status JSON)."""
    import json

    with contextlib.suppress(ValueError, AttributeError):
        doc = json.loads(body)
        if isinstance(doc, dict) and doc.get("kind", "Status") == "Status" and doc.get(
                "message"):
            return StatusError(status, str(doc.get("reason") or "BadRequest"),
                               str(doc["message"]), doc.get("details") or {})
    text = body.decode("utf-8", "replace").strip() or f"the node answered {status}"
    return StatusError(status if status >= 400 else 502, "InternalError", text)


def unreachable(node_name: str, err: Exception) -> StatusError:
    """A node that cannot be reached (upstream's proxy error, a 502 Bad Gateway)."""
    return StatusError(502, "InternalError",
                       f"error dialing backend: node {node_name}: {err}")
