"""The Service write pipeline on a dual-stack cluster: IP families, allocation, release.

Test ranges: service CIDRs 10.96.0.0/24 (primary, static band .1-.16) and fd00:10:96::/112
(static band ::1-::100), NodePorts 30000-30099. Every ClusterIP is an IPAddress object.
"""

from __future__ import annotations

import copy
import ipaddress
import json
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.registry.generic import Registry
from svcnet.registry.service_alloc import ServiceAllocators
from svcnet.registry.services import service_registry
from svcnet.storage.memory import MemoryStore

Obj = dict[str, Any]
V4, V6 = "10.96.0.0/24", "fd00:10:96::/112"


def make_service(name: str = "web", **spec: Any) -> Obj:
    base: Obj = {"selector": {"app": name},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"}, "spec": base}


def family(ip: str) -> str:
    return "IPv4" if ipaddress.ip_address(ip).version == 4 else "IPv6"


class Env:
    def __init__(self, cidrs: tuple[str, ...] = (V4, V6)) -> None:
        self.store = MemoryStore()
        self.allocators = ServiceAllocators.build(self.store, cidrs, "30000-30099")
        self.registry: Registry = service_registry(self.store, self.allocators)

    async def ip_addresses(self) -> dict[str, str]:
        """IPAddress name -> the Service its parentRef names."""
        return {kv.key.rsplit("/", 1)[-1]: json.loads(kv.value)["spec"]["parentRef"]["name"]
                for kv in (await self.store.list(
                    "/registry/networking.k8s.io/ipaddresses/")).items}

    async def create(self, name: str = "web", **spec: Any) -> Obj:
        return await self.registry.create("default", make_service(name, **spec))

    async def update(self, name: str, **spec: Any) -> Obj:
        obj = await self.registry.get("default", name)
        obj["spec"].update(spec)
        for key in [k for k, v in spec.items() if v is None]:
            obj["spec"].pop(key)
        return await self.registry.update("default", name, obj)


@pytest.fixture
def env() -> Env:
    return Env()


def shape(svc: Obj) -> tuple[list[str], str, list[str]]:
    spec = svc["spec"]
    return spec.get("ipFamilies"), spec.get("ipFamilyPolicy"), [
        family(ip) if ip != "None" else ip for ip in spec.get("clusterIPs") or []]


@pytest.mark.parametrize(("spec", "want"), [
    pytest.param({}, (["IPv4"], "SingleStack", ["IPv4"]), id="default-primary"),
    pytest.param({"ipFamilies": ["IPv6"]}, (["IPv6"], "SingleStack", ["IPv6"]), id="v6-only"),
    pytest.param({"ipFamilyPolicy": "PreferDualStack"},
                 (["IPv4", "IPv6"], "PreferDualStack", ["IPv4", "IPv6"]), id="prefer"),
    pytest.param({"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv6"]},
                 (["IPv6", "IPv4"], "RequireDualStack", ["IPv6", "IPv4"]), id="require-v6-first"),
    pytest.param({"ipFamilyPolicy": "RequireDualStack", "clusterIP": "fd00:10:96::10",
                  "clusterIPs": ["fd00:10:96::10", "10.96.0.10"]},
                 (["IPv6", "IPv4"], "RequireDualStack", ["IPv6", "IPv4"]),
                 id="families-inferred-from-ips"),
    pytest.param({"clusterIP": "None"}, (["IPv4"], "SingleStack", ["None"]),
                 id="headless-with-selector"),
    pytest.param({"clusterIP": "None", "selector": None},
                 (["IPv4", "IPv6"], "RequireDualStack", ["None"]), id="headless-selectorless"),
    pytest.param({"type": "ExternalName", "externalName": "example.com"},
                 (None, None, []), id="external-name"),
])
async def test_create_defaults_families_and_allocates_per_family(
        env: Env, spec: Obj, want: tuple[Any, ...]) -> None:
    svc = await env.create(**spec)
    assert shape(svc) == want
    held = [ip for ip in svc["spec"].get("clusterIPs") or [] if ip != "None"]
    assert await env.ip_addresses() == dict.fromkeys(held, "web")
    if held:
        assert svc["spec"]["clusterIP"] == held[0]
        for ip in held:
            net = V4 if family(ip) == "IPv4" else V6
            assert ipaddress.ip_address(ip) in ipaddress.ip_network(net)


@pytest.mark.parametrize(("spec", "field", "message"), [
    pytest.param({"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4", "IPv6"]},
                 "spec.ipFamilyPolicy", "when multiple IP families are specified",
                 id="single-stack-two-families"),
    pytest.param({"ipFamilies": ["IPv4", "IPv6"]}, "spec.ipFamilyPolicy",
                 "when multiple IP families are specified", id="defaulted-single-two-families"),
    pytest.param({"ipFamilyPolicy": "RequireDualStack", "clusterIP": "10.96.0.10",
                  "clusterIPs": ["10.96.0.10", "fd00:10:97::1"]}, "spec.clusterIPs",
                 "failed to allocate IP fd00:10:97::1: the provided IP (fd00:10:97::1) is not in "
                 "the valid range. The range of valid IPs is fd00:10:96::/112",
                 id="secondary-out-of-range"),
])
async def test_create_refusals_leave_nothing_allocated(env: Env, spec: Obj, field: str,
                                                       message: str) -> None:
    with pytest.raises(StatusError) as e:
        await env.create(**spec)
    assert e.value.code == 422
    assert [c["field"] for c in e.value.details["causes"]] == [field]
    assert message in e.value.message
    assert await env.ip_addresses() == {}, "the primary taken first is rolled back"
    assert not (await env.store.list("/registry/services/")).items


async def test_single_stack_cluster_refuses_what_needs_ipv6() -> None:
    env = Env((V4,))
    for spec, field, message in (
            ({"ipFamilyPolicy": "RequireDualStack"}, "spec.ipFamilyPolicy",
             "this cluster is not configured for dual-stack services"),
            ({"ipFamilies": ["IPv6"]}, "spec.ipFamilies[0]", "not configured on this cluster"),
            ({"clusterIP": "fd00::1", "clusterIPs": ["fd00::1"]}, "spec.clusterIPs[0]",
             "IPv6 is not configured on this cluster")):
        with pytest.raises(StatusError) as e:
            await env.create(**spec)
        assert [c["field"] for c in e.value.details["causes"]] == [field]
        assert message in e.value.message
    # PreferDualStack stays single there; headless selectorless gets both families anyway.
    assert shape(await env.create("p", ipFamilyPolicy="PreferDualStack")) == (
        ["IPv4"], "PreferDualStack", ["IPv4"])
    assert shape(await env.create("h", clusterIP="None", selector=None)) == (
        ["IPv4", "IPv6"], "RequireDualStack", ["None"])


async def test_validation_failure_after_dual_allocation_rolls_back_both(env: Env) -> None:
    with pytest.raises(StatusError) as e:
        await env.create(ipFamilyPolicy="RequireDualStack", sessionAffinity="Sticky")
    assert e.value.code == 422
    assert await env.ip_addresses() == {}


async def test_dry_run_dual_stack_writes_nothing(env: Env) -> None:
    svc = await env.registry.create("default", make_service(ipFamilyPolicy="RequireDualStack"),
                                    dry_run=True)
    assert shape(svc) == (["IPv4", "IPv6"], "RequireDualStack", ["IPv4", "IPv6"])
    created = await env.create("real", ipFamilyPolicy="SingleStack")
    upgraded = copy.deepcopy(created)
    upgraded["spec"]["ipFamilyPolicy"] = "PreferDualStack"
    out = await env.registry.update("default", "real", upgraded, dry_run=True)
    assert shape(out) == (["IPv4", "IPv6"], "PreferDualStack", ["IPv4", "IPv6"])
    assert await env.ip_addresses() == {created["spec"]["clusterIP"]: "real"}
    stored = await env.registry.get("default", "real")
    assert shape(stored) == (["IPv4"], "SingleStack", ["IPv4"])


async def test_upgrade_keeps_the_primary_and_downgrade_releases_the_secondary(env: Env) -> None:
    created = await env.create()
    primary = created["spec"]["clusterIP"]
    up = await env.update("web", ipFamilyPolicy="RequireDualStack")
    assert shape(up) == (["IPv4", "IPv6"], "RequireDualStack", ["IPv4", "IPv6"])
    assert up["spec"]["clusterIPs"][0] == primary == up["spec"]["clusterIP"]
    secondary = up["spec"]["clusterIPs"][1]
    assert await env.ip_addresses() == {primary: "web", secondary: "web"}

    # Dropping the secondary needs SingleStack.
    with pytest.raises(StatusError) as e:
        await env.update("web", clusterIPs=[primary], ipFamilies=["IPv4"])
    assert {c["field"] for c in e.value.details["causes"]} == {"spec.ipFamilyPolicy"}
    assert await env.ip_addresses() == {primary: "web", secondary: "web"}

    down = await env.update("web", ipFamilyPolicy="SingleStack")
    assert shape(down) == (["IPv4"], "SingleStack", ["IPv4"])
    assert down["spec"]["clusterIPs"] == [primary]
    assert await env.ip_addresses() == {primary: "web"}


async def test_upgrade_with_a_requested_secondary(env: Env) -> None:
    await env.create(ipFamilies=["IPv6"])
    svc = await env.registry.get("default", "web")
    primary = svc["spec"]["clusterIP"]
    svc["spec"].update(ipFamilyPolicy="PreferDualStack", clusterIPs=[primary, "10.96.0.7"])
    out = await env.registry.update("default", "web", svc)
    assert out["spec"]["clusterIPs"] == [primary, "10.96.0.7"]
    assert out["spec"]["ipFamilies"] == ["IPv6", "IPv4"]
    assert await env.ip_addresses() == {primary: "web", "10.96.0.7": "web"}


async def test_prefer_dual_stack_unchanged_is_left_alone() -> None:
    """A PreferDualStack Service made on a single-stack cluster is not upgraded by an
    unrelated update once the cluster is dual-stack (isMatchingPreferDualStack...)."""
    single = Env((V4,))
    svc = await single.create(ipFamilyPolicy="PreferDualStack")
    dual = ServiceAllocators.build(single.store, (V4, V6), "30000-30099")
    registry = service_registry(single.store, dual)
    svc["metadata"]["labels"] = {"touched": "yes"}
    out = await registry.update("default", "web", svc)
    assert shape(out) == (["IPv4"], "PreferDualStack", ["IPv4"])
    out["spec"]["ipFamilyPolicy"] = "RequireDualStack"
    upgraded = await registry.update("default", "web", out)
    assert shape(upgraded) == (["IPv4", "IPv6"], "RequireDualStack", ["IPv4", "IPv6"])


async def test_changed_address_is_refused_by_validation_not_allocated(env: Env) -> None:
    created = await env.create(ipFamilyPolicy="RequireDualStack")
    held = await env.ip_addresses()
    svc = copy.deepcopy(created)
    svc["spec"]["clusterIPs"] = [created["spec"]["clusterIPs"][0], "fd00:10:96::99"]
    with pytest.raises(StatusError) as e:
        await env.registry.update("default", "web", svc)
    assert [(c["field"], c["message"].rsplit(": ", 1)[-1])
            for c in e.value.details["causes"]] == [("spec.clusterIPs[1]", "may not change once set")]
    assert await env.ip_addresses() == held


async def test_type_changes_release_and_allocate_both_families(env: Env) -> None:
    await env.create(ipFamilyPolicy="PreferDualStack")
    ext = await env.update("web", type="ExternalName", externalName="example.com")
    assert "clusterIPs" not in ext["spec"] and "ipFamilies" not in ext["spec"]
    assert await env.ip_addresses() == {}
    back = await env.update("web", type="ClusterIP", externalName=None,
                            ipFamilyPolicy="RequireDualStack")
    assert shape(back) == (["IPv4", "IPv6"], "RequireDualStack", ["IPv4", "IPv6"])
    assert set(await env.ip_addresses()) == set(back["spec"]["clusterIPs"])
    await env.registry.delete("default", "web")
    assert await env.ip_addresses() == {}


async def test_headless_may_change_families(env: Env) -> None:
    await env.create(clusterIP="None", selector=None)
    out = await env.update("web", ipFamilies=["IPv6", "IPv4"])
    assert shape(out) == (["IPv6", "IPv4"], "RequireDualStack", ["None"])
    assert await env.ip_addresses() == {}
