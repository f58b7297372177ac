"""The Service write pipeline over the in-memory store: allocation around the write.

Test ranges: service CIDR 10.96.0.0/24 (static band .1-.16), NodePorts 30000-30099 (static
band 30000-30015), LoadBalancer pool 172.20.0.200-172.20.0.202.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.registry.generic import Registry
from svcnet.registry.lb_ipam import LoadBalancerIPAM
from svcnet.registry.service_alloc import ServiceAllocators
from svcnet.registry.services import service_registry
from svcnet.storage.interface import Unavailable
from svcnet.storage.memory import MemoryStore

Obj = dict[str, Any]


def make_service(name: str = "web", **spec: Any) -> Obj:
    base: Obj = {"selector": {"app": name},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"}, "spec": base}


class Env:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.allocators = ServiceAllocators.build(self.store, ["10.96.0.0/24"], "30000-30099")
        self.lb = LoadBalancerIPAM(self.store, ["lan=172.20.0.200-172.20.0.202"])
        self.registry: Registry = service_registry(self.store, self.allocators, self.lb)

    async def allocations(self) -> dict[str, str]:
        out = {}
        for kv in (await self.store.list("/registry/allocations/")).items:
            kind, item = kv.key.split("/")[-2:]
            out[f"{kind}/{item}"] = json.loads(kv.value)["owner"]["name"]
        # ClusterIPs are IPAddress objects (allocators/ipaddresses.py).
        for kv in (await self.store.list("/registry/networking.k8s.io/ipaddresses/")).items:
            ref = json.loads(kv.value)["spec"]["parentRef"]
            out[f"clusterip/{kv.key.split('/')[-1]}"] = ref["name"]
        return out


@pytest.fixture
def env() -> Env:
    return Env()


async def test_create_allocates_and_delete_releases(env: Env) -> None:
    svc = await env.registry.create("default", make_service(
        type="LoadBalancer", externalTrafficPolicy="Local"))
    spec = svc["spec"]
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert 30016 <= spec["ports"][0]["nodePort"] <= 30099, "dynamic band first"
    assert spec["healthCheckNodePort"] not in (0, spec["ports"][0]["nodePort"])
    assert set(await env.allocations()) == {
        f"clusterip/{spec['clusterIP']}", f"nodeport/{spec['ports'][0]['nodePort']}",
        f"nodeport/{spec['healthCheckNodePort']}"}
    await env.registry.delete("default", "web")
    assert await env.allocations() == {}


async def test_kubernetes_service_gets_first_ip(env: Env) -> None:
    svc = await env.registry.create("default", {
        **make_service("kubernetes"), "spec": {"clusterIP": "10.96.0.1",
                                               "ports": [{"name": "https", "port": 443}]}})
    assert svc["spec"]["clusterIP"] == "10.96.0.1"


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        pytest.param({"clusterIP": "10.97.0.5"}, "spec.clusterIPs",
                     'Invalid value: []string{"10.97.0.5"}: failed to allocate IP 10.97.0.5: '
                     "the provided IP (10.97.0.5) is not in the valid range. The range of "
                     "valid IPs is 10.96.0.0/24", id="clusterip-out-of-range"),
        pytest.param({"clusterIP": "10.96.0.7"}, "spec.clusterIPs",
                     'Invalid value: []string{"10.96.0.7"}: failed to allocate IP 10.96.0.7: '
                     "provided IP is already allocated", id="clusterip-taken"),
        pytest.param({"type": "NodePort",
                      "ports": [{"port": 80, "nodePort": 29999}]}, "spec.ports[0].nodePort",
                     "Invalid value: 29999: provided port is not in the valid range. The "
                     "range of valid ports is 30000-30099", id="nodeport-out-of-range"),
        pytest.param({"type": "NodePort",
                      "ports": [{"port": 80, "nodePort": 30007}]}, "spec.ports[0].nodePort",
                     "Invalid value: 30007: provided port is already allocated",
                     id="nodeport-taken"),
    ],
)
async def test_allocation_refusals_are_422_and_leave_nothing(env: Env, spec: Obj, field: str,
                                                             message: str) -> None:
    await env.registry.create("default", make_service(
        "holder", type="NodePort", clusterIP="10.96.0.7",
        ports=[{"port": 80, "nodePort": 30007}]))
    before = await env.allocations()
    with pytest.raises(StatusError) as e:
        await env.registry.create("default", make_service("web", **spec))
    assert e.value.code == 422
    assert e.value.details["causes"] == [
        {"reason": "FieldValueInvalid", "message": message, "field": field}]
    assert await env.allocations() == before


async def test_validation_failure_rolls_back_allocations(env: Env) -> None:
    with pytest.raises(StatusError) as e:
        await env.registry.create("default", make_service(
            type="NodePort", sessionAffinity="Sticky"))
    assert e.value.code == 422
    assert await env.allocations() == {}
    assert not (await env.store.list("/registry/services/")).items


async def test_already_exists_rolls_back(env: Env) -> None:
    await env.registry.create("default", make_service(type="NodePort"))
    before = await env.allocations()
    with pytest.raises(StatusError) as e:
        await env.registry.create("default", make_service(type="NodePort"))
    assert (e.value.code, e.value.reason) == (409, "AlreadyExists")
    assert e.value.message == 'services "web" already exists'
    assert await env.allocations() == before


async def test_dry_run_allocates_nothing(env: Env) -> None:
    svc = await env.registry.create("default", make_service(type="NodePort"), dry_run=True)
    assert svc["spec"]["clusterIP"] and svc["spec"]["ports"][0]["nodePort"]
    assert await env.allocations() == {}
    assert not (await env.store.list("/registry/services/")).items


async def test_dry_run_writes_nothing_even_for_a_moment(env: Env) -> None:
    """Upstream's dry-run allocator: no record (an IPAddress object) appears and goes, so no
    concurrent request can see a dry run holding an address; a taken one is still refused."""
    taken = await env.registry.create("default", make_service("first"))
    writes: list[str] = []
    real_create = env.store.create

    async def counting_create(key: str, value: bytes, *args: Any, **kwargs: Any) -> Any:
        writes.append(key)
        return await real_create(key, value, *args, **kwargs)

    env.store.create = counting_create  # type: ignore[method-assign]
    svc = await env.registry.create("default", make_service(type="NodePort"), dry_run=True)
    assert svc["spec"]["clusterIP"] != taken["spec"]["clusterIP"]
    with pytest.raises(StatusError) as e:
        await env.registry.create("default", make_service(
            "second", clusterIP=taken["spec"]["clusterIP"]), dry_run=True)
    assert e.value.code == 422 and "already allocated" in e.value.message
    assert writes == []


async def test_update_without_allocated_fields_keeps_them(env: Env) -> None:
    created = await env.registry.create("default", make_service(type="NodePort"))
    replacement = make_service(type="NodePort", ports=[
        {"name": "http", "port": 80, "targetPort": 9090}])
    replacement["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    updated = await env.registry.update("default", "web", replacement)
    assert updated["spec"]["clusterIP"] == created["spec"]["clusterIP"]
    assert updated["spec"]["ports"][0]["nodePort"] == created["spec"]["ports"][0]["nodePort"]
    assert updated["spec"]["ports"][0]["targetPort"] == 9090
    assert len(await env.allocations()) == 2


async def test_noop_update_keeps_resource_version(env: Env) -> None:
    created = await env.registry.create("default", make_service())
    again = await env.registry.update("default", "web", copy.deepcopy(created))
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_stale_update_conflicts(env: Env) -> None:
    created = await env.registry.create("default", make_service())
    first = copy.deepcopy(created)
    first["metadata"]["labels"] = {"a": "1"}
    await env.registry.update("default", "web", first)
    stale = copy.deepcopy(created)
    stale["metadata"]["labels"] = {"a": "2"}
    with pytest.raises(StatusError) as e:
        await env.registry.update("default", "web", stale)
    assert (e.value.code, e.value.reason) == (409, "Conflict")


@pytest.mark.parametrize(
    ("start", "change", "kept"),
    [
        pytest.param({"type": "NodePort"}, {"type": "ClusterIP"}, {"clusterip"},
                     id="nodeport-to-clusterip-releases-ports"),
        pytest.param({"type": "LoadBalancer", "externalTrafficPolicy": "Local"},
                     {"externalTrafficPolicy": "Cluster"}, {"clusterip", "nodeport"},
                     id="etp-local-to-cluster-releases-health-check-port"),
        pytest.param({"type": "ClusterIP"}, {"type": "ExternalName",
                                             "externalName": "db.example.com"}, set(),
                     id="to-externalname-releases-ip"),
        pytest.param({"type": "ClusterIP"}, {"type": "NodePort"}, {"clusterip", "nodeport"},
                     id="clusterip-to-nodeport-allocates"),
        pytest.param({"type": "ExternalName", "externalName": "db.example.com"},
                     {"type": "ClusterIP"}, {"clusterip"},
                     id="externalname-to-clusterip-allocates"),
    ],
)
async def test_type_changes(env: Env, start: Obj, change: Obj, kept: set[str]) -> None:
    created = await env.registry.create("default", make_service(**start))
    new = copy.deepcopy(created)
    new["spec"].update(change)
    # Switching to ExternalName leaves clusterIP(s) as they were: the strategy drops them
    # (dropTypeDependentFields) and the allocation is released after the write.
    updated = await env.registry.update("default", "web", new)
    kinds = {k.split("/")[0] for k in await env.allocations()}
    assert kinds == kept
    held_ports = {p.get("nodePort") for p in updated["spec"].get("ports", [])} - {None, 0}
    if updated["spec"].get("healthCheckNodePort"):
        held_ports.add(updated["spec"]["healthCheckNodePort"])
    assert {k for k in await env.allocations() if k.startswith("nodeport/")} == {
        f"nodeport/{p}" for p in held_ports}


async def test_failed_update_keeps_old_allocations(env: Env) -> None:
    created = await env.registry.create("default", make_service(type="NodePort"))
    before = await env.allocations()
    new = copy.deepcopy(created)
    new["spec"]["type"] = "ClusterIP"
    new["spec"]["sessionAffinity"] = "Sticky"
    with pytest.raises(StatusError):
        await env.registry.update("default", "web", new)
    assert await env.allocations() == before


async def test_lb_status_release_after_status_write(env: Env) -> None:
    svc = await env.registry.create("default", make_service(type="LoadBalancer"))
    ips = await env.lb.assign(svc)
    assert ips == ["172.20.0.200"], "lowest free address first"
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": ips[0], "ipMode": "VIP"}]}}
    svc = await env.registry.update("default", "web", svc, status_only=True)
    assert "lbip/172.20.0.200" in await env.allocations()
    svc["status"] = {"loadBalancer": {}}
    await env.registry.update("default", "web", svc, status_only=True)
    assert "lbip/172.20.0.200" not in await env.allocations()


@pytest.mark.parametrize(
    ("annotations", "spec", "expected", "error"),
    [
        pytest.param({"metallb.io/loadBalancerIPs": "172.20.0.202"}, {}, ["172.20.0.202"],
                     None, id="annotation"),
        pytest.param({}, {"loadBalancerIP": "172.20.0.201"}, ["172.20.0.201"], None,
                     id="spec-loadBalancerIP"),
        pytest.param({"metallb.io/loadBalancerIPs": "10.0.0.1"}, {}, None,
                     "requested IP 10.0.0.1 is not in any pool this service may use",
                     id="not-in-pool"),
        pytest.param({"metallb.io/address-pool": "other"}, {}, None, 'unknown pool "other"',
                     id="unknown-pool"),
    ],
)
async def test_lb_requests(env: Env, annotations: dict[str, str], spec: Obj,
                           expected: list[str] | None, error: str | None) -> None:
    svc = make_service(type="LoadBalancer", **spec)
    svc["metadata"]["annotations"] = annotations
    created = await env.registry.create("default", svc)
    if error is None:
        assert await env.lb.assign(created) == expected
    else:
        from svcnet.api.lbips import AssignmentError

        with pytest.raises(AssignmentError, match=error):
            await env.lb.assign(created)


async def test_lb_pool_exhaustion_names_the_pool(env: Env) -> None:
    from svcnet.api.lbips import AssignmentError

    for i in range(3):
        svc = await env.registry.create("default", make_service(f"s{i}", type="LoadBalancer"))
        await env.lb.assign(svc)
    svc = await env.registry.create("default", make_service("s3", type="LoadBalancer"))
    with pytest.raises(AssignmentError) as e:
        await env.lb.assign(svc)
    assert e.value.reason == "AllocationFailed"
    assert str(e.value) == "no available IPv4 address in pool(s) lan"


class TimingOutStore(MemoryStore):
    """Applies the next Service write, then fails as etcd does when its deadline passed (or,
    with ``error`` set, as when the connection went away after the request was sent)."""

    armed = False
    error: Exception = Unavailable("etcdserver: request timed out", timeout=True)

    async def create(self, key: str, value: bytes) -> Any:
        result = await super().create(key, value)
        if self.armed and key.startswith("/registry/services/"):
            self.armed = False
            raise self.error
        return result

    async def update(self, key: str, value: bytes, expected_revision: int) -> Any:
        result = await super().update(key, value, expected_revision)
        if self.armed and key.startswith("/registry/services/"):
            self.armed = False
            raise self.error
        return result


@pytest.mark.parametrize("error", [
    Unavailable("etcdserver: request timed out", timeout=True),
    Unavailable("etcd watch failed: CANCELLED: the connection went away"),
    ConnectionResetError("reset by peer"),
], ids=["timeout", "unavailable-after-sending", "connection-reset"])
async def test_a_write_that_timed_out_keeps_every_allocation(error: Exception) -> None:
    """Stored or not, nobody knows: releasing its addresses could hand them out twice."""
    env = Env()
    store = TimingOutStore()
    store.error = error
    env.store = store
    env.allocators = ServiceAllocators.build(store, ["10.96.0.0/24"], "30000-30099")
    env.registry = service_registry(store, env.allocators, env.lb)
    store.armed = True
    with pytest.raises(type(error)):
        await env.registry.create("default", make_service("web", type="NodePort"))
    stored = await env.registry.get("default", "web")
    held = await env.allocations()
    assert held[f"clusterip/{stored['spec']['clusterIP']}"] == "web"
    assert held[f"nodeport/{stored['spec']['ports'][0]['nodePort']}"] == "web"
    # An update that drops the NodePort and times out keeps the old port reserved too.
    update = copy.deepcopy(stored)
    update["spec"]["type"] = "ClusterIP"
    update["spec"]["ports"][0].pop("nodePort")
    store.armed = True
    with pytest.raises(type(error)):
        await env.registry.update("default", "web", update)
    assert f"nodeport/{stored['spec']['ports'][0]['nodePort']}" in await env.allocations()
    # A second Service never gets the first one's addresses.
    other = await env.registry.create("default", make_service("other", type="NodePort"))
    assert other["spec"]["clusterIP"] != stored["spec"]["clusterIP"]
    assert other["spec"]["ports"][0]["nodePort"] != stored["spec"]["ports"][0]["nodePort"]


@pytest.mark.parametrize("port", [80, 30005])
async def test_an_unavailable_health_check_node_port_is_a_422_on_its_field(
        env: Env, port: int) -> None:
    """Out of range, or already held: the client's value, so 422 (Kubernetes says 500)."""
    if port == 30005:
        await env.registry.create("default", make_service(
            "holder", type="NodePort",
            ports=[{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30005}]))
    with pytest.raises(StatusError) as ei:
        await env.registry.create("default", make_service(
            "lb", type="LoadBalancer", externalTrafficPolicy="Local",
            loadBalancerClass="example.com/lb", healthCheckNodePort=port))
    assert (ei.value.code, ei.value.reason) == (422, "Invalid")
    assert ei.value.details["causes"][0]["field"] == "spec.healthCheckNodePort"
    assert "lb" not in [s["metadata"]["name"] for s in (await env.registry.list("default")).items]
