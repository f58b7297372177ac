"""default/kubernetes lists every live API server: the pure plan, and two real servers on one
store (in process), one of which stops, plus the lease of a dead one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from svcnet.apiserver.endpointreconciler import (
    ADDRESS_ANNOTATION,
    LEASE_LABEL,
    Endpoint,
    live_endpoints,
    parse_endpoint,
    plan,
)
from svcnet.apiserver.server import APIServer, ServerConfig
from svcnet.client.leaderelection import micro_time

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def lease(address: str, renewed: datetime, seconds: int = 15) -> dict[str, Any]:
    return {"metadata": {"annotations": {ADDRESS_ANNOTATION: address}},
            "spec": {"renewTime": micro_time(renewed), "leaseDurationSeconds": seconds}}


def test_only_unexpired_leases_count() -> None:
    leases = [lease("192.0.2.2:6443", NOW - timedelta(seconds=14)),
              lease("192.0.2.1:6443", NOW),
              lease("192.0.2.3:6443", NOW - timedelta(seconds=15)),  # just expired
              lease("127.0.0.1:6443", NOW),  # loopback: never an endpoint
              lease("garbage", NOW),
              lease("192.0.2.1:6443", NOW)]
    assert live_endpoints(leases, NOW) == [Endpoint(6443, "192.0.2.1"),
                                           Endpoint(6443, "192.0.2.2")]


def test_plan_groups_by_port_and_family() -> None:
    wanted = plan([Endpoint(6443, "192.0.2.2"), Endpoint(6443, "192.0.2.1"),
                   Endpoint(7443, "192.0.2.3"), Endpoint(6443, "2001:db8::1")])
    assert wanted.endpoints["subsets"] == [
        {"addresses": [{"ip": "192.0.2.1"}, {"ip": "192.0.2.2"}, {"ip": "2001:db8::1"}],
         "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]},
        {"addresses": [{"ip": "192.0.2.3"}],
         "ports": [{"name": "https", "port": 7443, "protocol": "TCP"}]}]
    assert sorted(wanted.slices) == ["kubernetes", "kubernetes-ipv4-7443",
                                     "kubernetes-ipv6-6443"]
    main = wanted.slices["kubernetes"]
    assert main["addressType"] == "IPv4"
    assert [e["addresses"] for e in main["endpoints"]] == [["192.0.2.1"], ["192.0.2.2"]]
    assert plan([]).slices == {} and plan([]).endpoints["subsets"] == []
    assert parse_endpoint("[2001:db8::1]:443") == Endpoint(443, "2001:db8::1")


async def endpoint_ips(server: APIServer) -> list[str]:
    obj = await server.registries["endpoints"].get("default", "kubernetes")
    return sorted(a["ip"] for s in obj.get("subsets") or [] for a in s["addresses"])


async def test_every_live_server_is_an_endpoint(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'shared.db'}"
    servers = [APIServer(ServerConfig(data_dir=tmp_path / str(n), listen="127.0.0.1:0",
                                      store_url=store, advertise_address=f"192.0.2.{n}"))
               for n in (1, 2)]
    try:
        for server in servers:
            await server.start()
        first, second = servers
        # The second server reconciled last, seeing both leases.
        assert await endpoint_ips(first) == ["192.0.2.1", "192.0.2.2"]
        # Each on its own port (the kernel chose them): a slice per port.
        slices = (await first.registries["endpointslices.discovery.k8s.io"].list(
            "default")).items
        assert sorted(e["addresses"][0] for s in slices for e in s["endpoints"]) == [
            "192.0.2.1", "192.0.2.2"]
        assert {s["ports"][0]["port"] for s in slices} == {
            int(server.url.rsplit(":", 1)[1]) for server in servers}
        # A stale slice of ours is deleted; other Services' slices are not ours to touch.
        slice_reg = first.registries["endpointslices.discovery.k8s.io"]
        for name, service in (("kubernetes-ipv4-1", "kubernetes"), ("backend-x1", "backend")):
            await slice_reg.create("default", {
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": name, "namespace": "default",
                             "labels": {"kubernetes.io/service-name": service}},
                "addressType": "IPv4", "endpoints": []})
        assert first.endpoint_reconciler is not None
        await first.endpoint_reconciler.reconcile()
        names = {s["metadata"]["name"] for s in (await slice_reg.list("default")).items}
        assert "kubernetes-ipv4-1" not in names and "backend-x1" in names
        assert {s["metadata"]["name"] for s in (await slice_reg.list(
            "default", name_prefix="backend-")).items} == {"backend-x1"}

        # Reconciling again changes nothing (no write when nothing differs).
        before = (await first.registries["endpoints"].get(
            "default", "kubernetes"))["metadata"]["resourceVersion"]
        assert first.endpoint_reconciler is not None
        await first.endpoint_reconciler.reconcile()
        after = (await first.registries["endpoints"].get(
            "default", "kubernetes"))["metadata"]["resourceVersion"]
        assert before == after

        # A dead server's lease: listed while unexpired, dropped once expired.
        leases = first.registries["leases.coordination.k8s.io"]
        dead: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "apiserver-dead", "namespace": "kube-system",
                         "labels": {LEASE_LABEL: "true"},
                         "annotations": {ADDRESS_ANNOTATION: "192.0.2.9:443"}},
            "spec": {"leaseDurationSeconds": 15,
                     "renewTime": micro_time(datetime.now(UTC) - timedelta(seconds=10))}}
        await leases.create("kube-system", dead)
        await first.endpoint_reconciler.reconcile()
        assert "192.0.2.9" in await endpoint_ips(first)
        dead = await leases.get("kube-system", "apiserver-dead")
        dead["spec"]["renewTime"] = micro_time(datetime.now(UTC) - timedelta(seconds=20))
        await leases.update("kube-system", "apiserver-dead", dead)
        await first.endpoint_reconciler.reconcile()
        assert "192.0.2.9" not in await endpoint_ips(first)

        # A server that stops cleanly drops out at once.
        await second.stop()
        assert await endpoint_ips(first) == ["192.0.2.1"]
    finally:
        for server in servers:
            await server.stop()
