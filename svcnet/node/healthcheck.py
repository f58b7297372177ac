"""healthCheckNodePort servers: what a load balancer asks each node about an ETP=Local Service.

For every ``type: LoadBalancer`` Service with ``externalTrafficPolicy: Local``, kube-proxy serves
HTTP on ``<node address>:<healthCheckNodePort>``: 200 when this node has at least one ready
local endpoint for it (so the load balancer should send traffic here), 503 otherwise, with the
body ``{"service": {"namespace": ..., "name": ...}, "localEndpoints": N,
"serviceProxyHealthy": true}``.

The desired set of listeners is the pure :func:`health_checks`; :class:`HealthCheckServers`
opens and closes listeners to match it. The listening sockets are created inside the node's
network namespace (on a thread that entered it), so they answer on the node's address while the
agent itself runs in the host's namespace.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from svcnet.util.nsthread import NetnsThread

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class HealthCheck:
    namespace: str
    name: str
    port: int
    local_endpoints: int

    def response(self) -> tuple[int, bytes]:
        body = json.dumps({"service": {"namespace": self.namespace, "name": self.name},
                           "localEndpoints": self.local_endpoints,
                           "serviceProxyHealthy": True}).encode()
        return (200 if self.local_endpoints else 503), body


def health_checks(node_name: str, services: Iterable[Obj],
                  slices: Iterable[Obj]) -> dict[int, HealthCheck]:
    """healthCheckNodePort → what it should answer on this node. Pure."""
    local: dict[tuple[str, str], set[str]] = {}
    for s in slices:
        meta = s.get("metadata") or {}
        svc = (meta.get("labels") or {}).get("kubernetes.io/service-name")
        if not svc:
            continue
        for e in s.get("endpoints") or []:
            if e.get("nodeName") == node_name and (e.get("conditions") or {}).get(
                    "ready") is not False:
                local.setdefault((str(meta.get("namespace")), svc), set()).update(
                    e.get("addresses") or [])
    out: dict[int, HealthCheck] = {}
    for svc in services:
        spec = svc.get("spec") or {}
        port = spec.get("healthCheckNodePort")
        if spec.get("type") != "LoadBalancer" or spec.get(
                "externalTrafficPolicy") != "Local" or not port:
            continue
        meta = svc["metadata"]
        key = (str(meta.get("namespace")), str(meta["name"]))
        out[int(port)] = HealthCheck(key[0], key[1], int(port), len(local.get(key, set())))
    return out


class HealthCheckServers:
    def __init__(self, netns: str) -> None:
        self._thread = NetnsThread(netns)
        self.current: dict[int, HealthCheck] = {}
        self._servers: dict[int, asyncio.Server] = {}

    def _listen(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        sock.listen(64)
        sock.setblocking(False)
        return sock

    async def sync(self, wanted: Mapping[int, HealthCheck]) -> None:
        self.current = dict(wanted)
        for port in sorted(set(self._servers) - set(wanted)):
            self._servers.pop(port).close()
        for port in sorted(set(wanted) - set(self._servers)):
            sock = await self._thread.call(functools.partial(self._listen, port),
                                           discard=socket.socket.close)
            self._servers[port] = await asyncio.start_server(
                functools.partial(self._answer, port), sock=sock)

    async def _answer(self, port: int, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.close()
            return
        check = self.current.get(port)
        status, body = check.response() if check else (503, b"{}")
        reason = "OK" if status == 200 else "Service Unavailable"
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                     + body)
        try:
            await writer.drain()
        finally:
            writer.close()

    def close(self) -> None:
        for server in self._servers.values():
            server.close()
        self._servers.clear()
        self._thread.close()
