"""Cluster DNS against a real svcnet API server, end to end on loopback.

An in-process :class:`APIServer` (HTTPS on 127.0.0.1, SQLite store in a temp dir) is the source
of truth; :class:`ClusterDNS` watches it through a RESTClient exactly as it would in a cluster,
and dnspython's stub resolver, configured like a pod's resolv.conf, asks the questions. Objects
are written through the API, so they are defaulted, validated and allocated (ClusterIPs) like
any user's.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import dns.asyncresolver
import dns.name
import dns.rdatatype
import dns.resolver
import pytest

from svcnet.apiserver.server import APIServer, ServerConfig
from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.client.rest import ENDPOINTSLICES, SERVICES, RESTClient
from svcnet.dns.server import Address
from svcnet.dns.service import ClusterDNS, kube_dns_endpoint_slice, kube_dns_service, run_dns
from tests.unit.dns.fakeupstream import FakeUpstream
from tests.waiting import eventually

HOST = "127.0.0.1"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[APIServer]:
    server = APIServer(ServerConfig(data_dir=tmp_path, listen=f"{HOST}:0"))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(api: APIServer) -> AsyncIterator[RESTClient]:
    async with RESTClient.from_kubeconfig(load_kubeconfig(api.kubeconfig_path)) as c:
        yield c


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    u = FakeUpstream({"example.com.": ["192.0.2.1"]})
    await u.start()
    yield u
    await u.close()


@pytest.fixture
async def cluster_dns(client: RESTClient, upstream: FakeUpstream) -> AsyncIterator[ClusterDNS]:
    d = ClusterDNS(client, listen=f"{HOST}:0", upstreams=[upstream.address])
    await d.start()
    await asyncio.wait_for(d.service.published.wait(), 10)
    yield d
    await d.stop()


def stub(port: int, namespace: str = "default") -> dns.asyncresolver.Resolver:
    r = dns.asyncresolver.Resolver(configure=False)
    r.nameservers = [HOST]
    r.port = port
    r.search = [dns.name.from_text(d) for d in
                (f"{namespace}.svc.cluster.local", "svc.cluster.local", "cluster.local")]
    r.ndots = 5
    r.use_search_by_default = True
    r.lifetime = 3
    r.cache = None
    return r


async def resolve(port: int, name: str, rdtype: str = "A") -> list[str]:
    """The answer's records as text; [] for NXDOMAIN/NODATA, ["SERVFAIL"] before the first
    zone (or for other names without upstreams)."""
    try:
        answer = await stub(port).resolve(name, rdtype)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.resolver.NoNameservers:
        return ["SERVFAIL"]
    return sorted(rd.to_text() for rd in answer)


async def resolves(port: int, name: str, want: list[str], timeout: float = 10.0) -> float:
    """Until ``name`` resolves to ``want``; the seconds it took."""
    started = time.monotonic()

    async def matches() -> bool:
        return await resolve(port, name) == want

    await eventually(matches, f"{name} to resolve to {want}", timeout=timeout, interval=0.01)
    return time.monotonic() - started


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


async def test_services_and_endpoints_from_the_api(client: RESTClient,
                                                   cluster_dns: ClusterDNS) -> None:
    port = cluster_dns.address[1]
    # Seeded by the API server itself.
    assert await resolve(port, "kubernetes") == ["10.96.0.1"]
    assert await resolve(port, "dns-version.cluster.local.", "TXT") == ['"1.0.1"']

    web = await client.create(SERVICES, service(
        "web", ports=[{"name": "http", "port": 80, "protocol": "TCP"}]))
    ip = web["spec"]["clusterIP"]
    took = await resolves(port, "web", [ip])
    assert took < 5
    assert await resolve(port, "_http._tcp.web", "SRV") == [
        "0 100 80 web.default.svc.cluster.local."]
    ptr = await stub(port).resolve_address(ip)
    assert [rd.to_text() for rd in ptr] == ["web.default.svc.cluster.local."]

    # A selectorless headless Service whose endpoints we write ourselves.
    await client.create(SERVICES, service(
        "db", clusterIP="None", ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]))
    assert await resolve(port, "db") == []  # no ready endpoints yet: NXDOMAIN
    await client.create(ENDPOINTSLICES, {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "db-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "db",
                                "endpointslice.kubernetes.io/managed-by": "test"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.1.5"], "hostname": "db-0",
                       "conditions": {"ready": True}},
                      {"addresses": ["10.244.1.6"], "conditions": {"ready": False}}],
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]})
    await resolves(port, "db", ["10.244.1.5"])
    assert await resolve(port, "db-0.db") == ["10.244.1.5"]
    assert await resolve(port, "_pg._tcp.db", "SRV") == [
        "0 100 5432 db-0.db.default.svc.cluster.local."]

    await client.create(SERVICES, service("ext", type="ExternalName",
                                          externalName="example.com"))
    await resolves(port, "ext", ["192.0.2.1"])

    await client.delete(SERVICES, "default", "web")
    await resolves(port, "web", [])


async def test_run_dns_serves_until_cancelled(api: APIServer, client: RESTClient,
                                              tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("")  # no upstreams: other names get SERVFAIL at once
    ready: asyncio.Future[Address] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_dns(api.kubeconfig_path, f"{HOST}:0",
                                       upstream_resolv_conf=resolv,
                                       ready=ready.set_result))
    try:
        _, port = await asyncio.wait_for(ready, 10)
        await resolves(port, "kubernetes", ["10.96.0.1"])
        with pytest.raises(dns.resolver.NoNameservers):
            await stub(port).resolve("example.com.", "A")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_python_m_svcnet_dns_runs_and_stops_on_sigterm(api: APIServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "svcnet.dns", "--kubeconfig", str(api.kubeconfig_path),
        "--listen", f"{HOST}:{port}", "--resolv-conf", "",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        await resolves(port, "kubernetes", ["10.96.0.1"], timeout=20)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, stderr.decode()[-2000:]


async def test_kube_dns_objects_are_accepted_by_the_api(client: RESTClient,
                                                        cluster_dns: ClusterDNS) -> None:
    port = cluster_dns.address[1]
    svc = await client.create(SERVICES, kube_dns_service())
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    await client.create(ENDPOINTSLICES, kube_dns_endpoint_slice("192.0.2.53",
                                                                node_name="node-1"))
    await resolves(port, "kube-dns.kube-system", ["10.96.0.10"])
    assert await resolve(port, "ns.dns.cluster.local.") == ["10.96.0.10"]
    assert await resolve(port, "_dns._udp.kube-dns.kube-system", "SRV") == [
        "0 100 53 kube-dns.kube-system.svc.cluster.local."]
