"""NodePorts at ``127.0.0.1:<nodePort>`` on the host, by a small userspace TCP forwarder.

kube-proxy's nftables mode does not serve NodePorts on loopback (the kernel will not route a
packet from 127.0.0.1 out of the host), so ``svcnet up`` runs this: it follows Services through
an informer and, for every TCP NodePort, listens on 127.0.0.1 and relays each connection to the
same port on a node's address, where the node's nftables rules take over. The relay is an
asyncio Protocol pair with flow control (pause/resume reading), measured at haproxy's
throughput on keep-alive traffic (docs/MEASURED.md §5); it runs on vanilla asyncio (uvloop
aborted under half-close churn there). UDP NodePorts are not forwarded.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from svcnet.client.informer import EventHandler, Informer
from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.client.rest import ENDPOINTSLICES, NODES, SERVICES, RESTClient
from svcnet.util.aio import wait_event

log = logging.getLogger(__name__)

Obj = dict[str, Any]
_HIGH_WATER = 1 << 20


class _Relay(asyncio.Protocol):
    """One side of a connection pair; writes what it reads to its peer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Relay | None = None
        self._pending: list[bytes] = []
        self._eof = False
        self._lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self._pending.append(data)
            return
        peer.transport.write(data)

    def flush_to(self, peer: _Relay) -> None:
        """What arrived before the peer was connected; the peer is closed if this side went
        away meanwhile (a client that connected and left at once must not leave an idle
        connection open to the endpoint)."""
        assert peer.transport is not None
        for chunk in self._pending:
            peer.transport.write(chunk)
        self._pending.clear()
        if self._lost:
            peer.transport.close()
        elif self._eof and peer.transport.can_write_eof():
            peer.transport.write_eof()

    def eof_received(self) -> bool:
        self._eof = True
        peer = self.peer
        if peer is None or peer.transport is None:
            return True  # flush_to passes the EOF on
        if peer._eof:
            # Both directions are done: close both (what is buffered is sent first), or the
            # two half-closed sockets would stay open for good.
            peer.transport.close()
            return False
        if peer.transport.can_write_eof():
            peer.transport.write_eof()
        return True  # keep our side open for the reply

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


class NodePortForwarder:
    def __init__(self, target: str, *, host: str = "127.0.0.1") -> None:
        self.target = target
        self.host = host
        self.listeners: dict[int, asyncio.Server] = {}
        self.targets: dict[int, str] = {}
        """Per-port node address (externalTrafficPolicy Local: a node with an endpoint)."""

    async def _serve(self, port: int) -> asyncio.Server:
        loop = asyncio.get_running_loop()

        def factory() -> _Relay:
            target = self.targets.get(port, self.target)
            client = _Relay()

            async def connect() -> None:
                try:
                    _, upstream = await loop.create_connection(_Relay, target, port)
                except OSError:
                    if client.transport is not None:
                        client.transport.close()
                    return
                upstream.peer, client.peer = client, upstream
                client.flush_to(upstream)

            task = loop.create_task(connect())
            task.add_done_callback(lambda _t: None)
            return client

        return await loop.create_server(factory, self.host, port, reuse_address=True)

    async def set_ports(self, ports: set[int]) -> None:
        for port in sorted(set(self.listeners) - ports):
            server = self.listeners.pop(port)
            server.close()
        for port in sorted(ports - set(self.listeners)):
            try:
                self.listeners[port] = await self._serve(port)
            except OSError as e:
                log.warning("cannot listen on %s:%d: %s", self.host, port, e)

    async def close(self) -> None:
        await self.set_ports(set())


def tcp_node_ports(services: list[Obj]) -> set[int]:
    return {int(p["nodePort"]) for s in services for p in (s.get("spec") or {}).get("ports") or []
            if p.get("nodePort") and p.get("protocol", "TCP") == "TCP"}


def local_targets(services: list[Obj], slices: list[Obj], nodes: list[Obj]) -> dict[int, str]:
    """For externalTrafficPolicy Local NodePorts: the address of a node with a ready endpoint
    (any other node drops the traffic, as Kubernetes does)."""
    node_ip = {str(n["metadata"]["name"]): a["address"] for n in nodes
               for a in (n.get("status") or {}).get("addresses") or []
               if a.get("type") == "InternalIP"}
    out: dict[int, str] = {}
    for svc in services:
        spec = svc.get("spec") or {}
        if spec.get("externalTrafficPolicy") != "Local":
            continue
        meta = svc["metadata"]
        hosts = sorted(node_ip[e["nodeName"]] for s in slices
                       if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name")
                       == meta["name"] and s["metadata"].get("namespace") == meta["namespace"]
                       for e in s.get("endpoints") or []
                       if (e.get("conditions") or {}).get("ready") is not False
                       and e.get("nodeName") in node_ip)
        for p in spec.get("ports") or []:
            if p.get("nodePort") and hosts:
                out[int(p["nodePort"])] = hosts[0]
    return out


async def run_forwarder(kubeconfig: str, target: str) -> None:
    import signal

    client = RESTClient.from_kubeconfig(load_kubeconfig(kubeconfig),
                                        user_agent="svcnet-nodeport-forwarder")
    forwarder = NodePortForwarder(target)
    services = Informer(client, SERVICES, name="services")
    slices = Informer(client, ENDPOINTSLICES, name="endpointslices")
    nodes = Informer(client, NODES, name="nodes")
    changed = asyncio.Event()
    for inf in (services, slices, nodes):
        inf.add_handler(EventHandler(on_add=lambda _o: changed.set(),
                                     on_update=lambda _o, _n: changed.set(),
                                     on_delete=lambda _o: changed.set()))
        inf.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set():
            if all(i.has_synced() for i in (services, slices, nodes)):
                forwarder.targets = local_targets(services.list(), slices.list(), nodes.list())
                await forwarder.set_ports(tcp_node_ports(services.list()))
            changed.clear()
            await wait_event(changed, 1.0)
    finally:
        await forwarder.close()
        for inf in (services, slices, nodes):
            await inf.stop()
        await client.close()
