"""ClusterIPs as IPAddress objects, several ServiceCIDRs, and the ServiceCIDR controller, over
the in-memory store (the Service registry, the IPAddress and ServiceCIDR registries)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from svcnet.allocators.allocator import Owner
from svcnet.api.errors import StatusError
from svcnet.api.servicecidrs import SERVICE_CIDR_FINALIZER, service_cidr_object
from svcnet.registry.generic import Registry
from svcnet.registry.lb_ipam import LoadBalancerIPAM
from svcnet.registry.networking import IPAddressStrategy, ServiceCIDRStrategy
from svcnet.registry.repair import repair
from svcnet.registry.service_alloc import ServiceAllocators
from svcnet.registry.servicecidrs import (
    TERMINATING_MESSAGE,
    ServiceCIDRController,
    can_delete,
    ensure_default_service_cidr,
    plan_service_cidrs,
)
from svcnet.registry.services import service_registry
from svcnet.storage.memory import MemoryStore
from svcnet.util.clock import FakeClock, parse_time, rfc3339
from tests.registry.test_service_registry import make_service

Obj = dict[str, Any]


class Env:
    def __init__(self, default: str = "10.96.0.0/29") -> None:
        self.clock = FakeClock()
        self.store = MemoryStore()
        self.allocators = ServiceAllocators.build(self.store, [default], "30000-30099",
                                                  clock=self.clock)
        self.services = service_registry(self.store, self.allocators,
                                         LoadBalancerIPAM(self.store, []))
        self.cidrs = Registry(self.store, ServiceCIDRStrategy(), clock=self.clock)
        self.ips = Registry(self.store, IPAddressStrategy(), clock=self.clock)
        self.controller = ServiceCIDRController(self.cidrs, self.ips, self.allocators,
                                                self.clock, grace=timedelta(seconds=10))

    async def add_cidr(self, name: str, *cidrs: str) -> None:
        await self.cidrs.create("", service_cidr_object(name, cidrs))
        await self.controller.reconcile()

    async def ip_names(self) -> list[str]:
        return sorted(o["metadata"]["name"] for o in (await self.ips.list("")).items)

    async def create(self, name: str, **spec: Any) -> str:
        svc = await self.services.create("default", make_service(name, **spec))
        return str(svc["spec"]["clusterIP"])


@pytest.fixture
async def env() -> Env:
    e = Env()
    await e.add_cidr("kubernetes", "10.96.0.0/29")
    return e


async def test_each_cluster_ip_is_an_ipaddress_object(env: Env) -> None:
    ip = await env.create("web")
    obj = await env.ips.get("", ip)
    assert obj["spec"]["parentRef"] == {"group": "", "resource": "services",
                                        "namespace": "default", "name": "web"}
    assert obj["metadata"]["labels"] == {"ipaddress.kubernetes.io/ip-family": "IPv4",
                                         "ipaddress.kubernetes.io/managed-by":
                                         "ipallocator.k8s.io"}
    assert obj["metadata"]["uid"] and obj["metadata"]["creationTimestamp"]
    # A failed write leaves no IPAddress behind: the same name again is a 409 after allocating.
    with pytest.raises(StatusError) as e:
        await env.create("web")
    assert e.value.code == 409
    assert await env.ip_names() == [ip]
    await env.services.delete("default", "web")
    assert await env.ip_names() == []


async def test_an_ipaddress_made_through_the_api_takes_the_address(env: Env) -> None:
    await env.ips.create("", {"apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
                              "metadata": {"name": "10.96.0.3"},
                              "spec": {"parentRef": {"resource": "gateways", "name": "gw"}}})
    with pytest.raises(StatusError) as e:
        await env.create("wants", clusterIP="10.96.0.3")
    assert e.value.code == 422 and "provided IP is already allocated" in str(e.value.message)
    # The other five addresses of the /29 go to Services; the sixth create finds none.
    got = {await env.create(f"s{i}") for i in range(5)}
    assert "10.96.0.3" not in got and len(got) == 5
    with pytest.raises(StatusError) as e:
        await env.create("late")
    assert e.value.code == 500 and "range is full" in str(e.value.message)


async def test_new_cidrs_serve_once_the_default_is_full_in_address_order(env: Env) -> None:
    await env.add_cidr("high", "10.98.0.0/29")
    await env.add_cidr("low", "10.97.0.0/29")
    ips = [await env.create(f"s{i}") for i in range(18)]
    assert [ip.rsplit(".", 2)[0] for ip in ips] == ["10.96"] * 6 + ["10.97"] * 6 + ["10.98"] * 6


async def test_a_cidr_inside_another_serves_through_the_larger_one() -> None:
    env = Env("10.96.0.0/24")
    await env.add_cidr("kubernetes", "10.96.0.0/24")
    await env.add_cidr("inner", "10.96.0.0/29")
    assert [a.range.describe() for a in env.allocators.cluster_ips["IPv4"]] == [
        "10.96.0.0/24", "10.96.0.0/29"]
    alloc = env.allocators.ip_allocator_for("10.96.0.2")
    assert alloc is not None and alloc.range.describe() == "10.96.0.0/24"


async def test_terminating_cidr_takes_no_new_addresses(env: Env) -> None:
    await env.add_cidr("extra", "10.97.0.0/29")
    for i in range(6):
        await env.create(f"d{i}")
    held = await env.create("in-extra")
    assert held.startswith("10.97.")
    await env.cidrs.delete("", "extra")
    plan = await env.controller.reconcile()
    assert plan.blocked
    extra = await env.cidrs.get("", "extra")
    ready = extra["status"]["conditions"][0]
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False", "Terminating", TERMINATING_MESSAGE)
    assert extra["metadata"]["finalizers"] == [SERVICE_CIDR_FINALIZER]
    with pytest.raises(StatusError) as e:
        await env.create("next")
    assert e.value.code == 500 and "range is full" in str(e.value.message)
    with pytest.raises(StatusError) as e:
        await env.create("asks", clusterIP="10.97.0.5")
    assert "failed to allocate IP 10.97.0.5: allocator not ready" in str(e.value.message)

    await env.services.delete("default", "in-extra")
    plan = await env.controller.reconcile()
    assert plan.wake_at is not None, "free now, but the finalizer waits out the grace period"
    assert (await env.cidrs.get("", "extra"))["metadata"]["finalizers"]
    env.clock.advance(11)
    await env.controller.reconcile()
    with pytest.raises(StatusError) as e:
        await env.cidrs.get("", "extra")
    assert e.value.code == 404
    assert [a.range.describe() for a in env.allocators.cluster_ips["IPv4"]] == ["10.96.0.0/29"]


def _cidr_obj(name: str, *cidrs: str, deleting: bool = False) -> Obj:
    obj = service_cidr_object(name, cidrs)
    obj["metadata"]["finalizers"] = [SERVICE_CIDR_FINALIZER]
    if deleting:
        obj["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return obj


def test_can_delete_when_a_larger_cidr_covers_it_or_no_address_is_left_alone() -> None:
    small = _cidr_obj("small", "10.96.0.0/28", deleting=True)
    big = _cidr_obj("big", "10.96.0.0/24")
    assert can_delete(small, [small, big], ["10.96.0.5"])
    assert not can_delete(small, [small], ["10.96.0.5"])
    assert can_delete(small, [small], ["10.97.0.5"])


def test_plan_adds_finalizer_and_ready_and_waits_out_the_grace() -> None:
    now = parse_time("2025-01-01T00:00:05Z")
    assert now is not None
    fresh = service_cidr_object("new", ["10.1.0.0/24"])
    plan = plan_service_cidrs([fresh], None, now=now)
    assert [(a.name, a.action, a.status) for a in plan.actions] == [
        ("new", "add_finalizer", ""), ("new", "condition", "True")]
    gone = _cidr_obj("gone", "10.2.0.0/24", deleting=True)
    plan = plan_service_cidrs([gone], [], now=now)
    assert plan.actions == [] and plan.wake_at is not None
    assert rfc3339(plan.wake_at) == "2025-01-01T00:00:10Z"
    plan = plan_service_cidrs([gone], [], now=now + timedelta(seconds=6))
    assert [a.action for a in plan.actions] == ["remove_finalizer"]


async def test_repair_removes_orphans_restores_missing_and_spares_users(env: Env) -> None:
    ip = await env.create("web")
    users = "10.96.0.6" if ip != "10.96.0.6" else "10.96.0.5"  # the Service's is random
    await env.ips.create("", {"apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
                              "metadata": {"name": users},
                              "spec": {"parentRef": {"resource": "gateways", "name": "gw"}}})
    await env.ips.delete("", ip)  # a Service's IPAddress lost
    # An orphan: allocated for a Service that was never written.
    orphan = await env.allocators.cluster_ips["IPv4"][0].allocate_next(Owner("default", "ghost"))
    result = await repair(env.store, env.allocators, clock=env.clock,
                          leak_grace=timedelta(0))
    assert result.created == [f"clusterip/{ip}"]
    assert result.released == [f"clusterip/{orphan}"]
    assert await env.ip_names() == sorted([ip, users])


async def test_default_service_cidr_created_then_upgraded_to_dual_stack() -> None:
    """A server restarted with an IPv4,IPv6 pair whose primary is the stored single CIDR makes
    the default dual-stack; the allocators then serve both families."""
    store = MemoryStore()
    clock = FakeClock()
    cidrs = Registry(store, ServiceCIDRStrategy(), clock=clock)
    await ensure_default_service_cidr(cidrs, ["10.96.0.0/29"])
    assert (await cidrs.get("", "kubernetes"))["spec"]["cidrs"] == ["10.96.0.0/29"]
    await ensure_default_service_cidr(cidrs, ["10.96.0.0/29", "fd00::/120"])
    assert (await cidrs.get("", "kubernetes"))["spec"]["cidrs"] == ["10.96.0.0/29", "fd00::/120"]

    allocators = ServiceAllocators.build(store, ["10.96.0.0/29", "fd00::/120"], "30000-30099",
                                         clock=clock)
    controller = ServiceCIDRController(cidrs, Registry(store, IPAddressStrategy(), clock=clock),
                                       allocators, clock)
    await controller.reconcile()
    assert [a.range.describe() for a in allocators.cluster_ips["IPv6"]] == ["fd00::/120"]
    services = service_registry(store, allocators)
    svc = await services.create("default", make_service("web", ipFamilyPolicy="RequireDualStack"))
    assert svc["spec"]["ipFamilies"] == ["IPv4", "IPv6"]


@pytest.mark.parametrize("flags", [
    pytest.param(["10.97.0.0/29", "fd00::/120"], id="other-primary"),
    pytest.param(["fd00::/120", "10.96.0.0/29"], id="flipped"),
])
async def test_default_service_cidr_other_changes_left_alone(flags: list[str]) -> None:
    cidrs = Registry(MemoryStore(), ServiceCIDRStrategy(), clock=FakeClock())
    await ensure_default_service_cidr(cidrs, ["10.96.0.0/29"])
    await ensure_default_service_cidr(cidrs, flags)
    assert (await cidrs.get("", "kubernetes"))["spec"]["cidrs"] == ["10.96.0.0/29"]


async def test_run_ends_when_cancelled_as_it_is_woken(env: Env) -> None:
    """A cancellation that arrives together with a wake-up ends the loop. With
    ``asyncio.wait_for`` (Python 3.11) the wake-up won and the loop went on, so a server's
    SIGTERM waited for it forever."""
    task = asyncio.create_task(env.controller.run())
    for _ in range(20):  # into its wait for a wake-up
        await asyncio.sleep(0)
    env.controller._wake.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert task in done and task.cancelled()
