"""Kubernetes' own Service validation cases that need IPv6, through the whole write pipeline
of a dual-stack cluster.

The tables are the ports of ``TestValidateServiceCreate`` / ``TestValidateServiceUpdate`` in
tests/unit/api/test_service_validation.py, which call the validator alone. Here every case
whose objects name IPv6 (a family, an address, or a dual-stack policy) — the ones a
single-stack cluster refuses with "not configured on this cluster" — is sent through the
registry instead: defaulting, clusterIP normalisation, IP-family defaulting, allocation (one
IPAddress per address) and validation, as kube-apiserver runs them. Each must end with the
validator's own answer (the same multiset of field/type pairs), except where upstream's
pipeline answers differently before or around validation; those cases are listed in
``PIPELINE`` with the reason, taken from pkg/registry/core/service/storage/alloc.go.

Cluster: service CIDRs 1.2.3.0/24, 8.6.7.0/24 and 10.0.0.0/24 (IPv4, primary: several
ServiceCIDRs of one family, as the MultiCIDR allocator serves them) and 2001::/112 (IPv6), so
that every address the tables request is in range.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from svcnet.api.errors import StatusError
from svcnet.registry.service_alloc import ServiceAllocators
from svcnet.registry.services import service_registry
from svcnet.storage.memory import MemoryStore
from tests.unit.api.test_service_validation import (
    CREATE_CASES,
    UPDATE_CASES,
    Mut,
    make_valid_service,
)

Obj = dict[str, Any]
Pairs = list[tuple[str, str]]
DUAL_CIDRS = ("1.2.3.0/24", "8.6.7.0/24", "10.0.0.0/24", "2001::/112")
SINGLE_CIDRS = ("1.2.3.0/24", "8.6.7.0/24", "10.0.0.0/24")
INV = "FieldValueInvalid"


def needs_ipv6(*objs: Obj) -> bool:
    text = json.dumps(objs)
    return any(s in text for s in ("IPv6", "DualStack", "2001::", "2002::"))


#: Where the pipeline's answer is not the validator's, and why (upstream does the same).
PIPELINE: dict[str, tuple[Pairs | str, str]] = {
    "IPFamilyPolicy(singleStack) is set for two families": (
        [("spec.ipFamilyPolicy", INV)],
        "initIPFamilyFields refuses SingleStack with two families before validation"),
    "multi ip, dualstack not set (request for downgrade)": (
        [("spec.ipFamilyPolicy", INV), ("spec.ipFamilyPolicy", INV)],
        "initIPFamilyFields: SingleStack with two clusterIPs and with two families"),
    "setting ipfamily from nil to v6": (
        [("spec.clusterIPs[0]", INV)],
        "patchAllocatedValues copies the stored IPv4 clusterIP, which the loose pre-validation "
        "then finds against ipFamilies[0] IPv6"),
    "change primary ServiceIPFamily": (
        [("spec.clusterIPs[0]", INV)],
        "initIPFamilyFields' loose pre-validation answers alone, before ValidateServiceUpdate"),
    "valid: upgrade to dual stack with requiredDualStack": (
        [("spec.ipFamilyPolicy", INV), ("spec.ipFamilyPolicy", INV)],
        "a RequireDualStack Service is stored with both families on a dual-stack cluster, so "
        "the new single-family object (policy adopted from the old) releases the secondary "
        "without SingleStack"),
    "invalid flip families": (
        "old", "the old object (clusterIP unlike clusterIPs[0]) cannot be stored"),
}


def _cases(table: list[Any], arity: int) -> list[Any]:
    out = []
    for p in table:
        objs = [make_valid_service(*muts) for muts in p.values[:arity]]
        if needs_ipv6(*objs):
            out.append(pytest.param(*p.values, id=p.id))
    return out


DUAL_CREATE = _cases(CREATE_CASES, 1)
DUAL_UPDATE = _cases(UPDATE_CASES, 2)


def test_the_dual_stack_cases_are_all_here() -> None:
    assert (len(DUAL_CREATE), len(DUAL_UPDATE)) == (37, 20)
    ids = {p.id for p in DUAL_CREATE + DUAL_UPDATE}
    assert set(PIPELINE) <= ids


def registry(cidrs: tuple[str, ...] = DUAL_CIDRS) -> Any:
    store = MemoryStore()
    return service_registry(store, ServiceAllocators.build(store, cidrs, "30000-30099")), store


def submitted(muts: list[Mut]) -> Obj:
    """The case's object as a client sends it (no resourceVersion on create)."""
    svc = copy.deepcopy(make_valid_service(*muts))
    svc["metadata"].pop("resourceVersion", None)
    return svc


def causes(e: StatusError) -> Pairs:
    return sorted((str(c.get("field")), str(c.get("reason")))
                  for c in (e.details or {}).get("causes") or [])


def expected(case_id: str, want: list[tuple[str, Any]]) -> Pairs | str:
    if case_id in PIPELINE:
        return PIPELINE[case_id][0]
    return sorted((f, t.value) for f, t in want)


async def ip_addresses(store: MemoryStore) -> list[str]:
    return sorted(kv.key.rsplit("/", 1)[-1] for kv in (await store.list(
        "/registry/networking.k8s.io/ipaddresses/")).items)


@pytest.mark.parametrize(("muts", "want"), DUAL_CREATE)
async def test_create_case_on_a_dual_stack_cluster(request: pytest.FixtureRequest,
                                                   muts: list[Mut], want: Any) -> None:
    reg, store = registry()
    case_id = request.node.callspec.id
    try:
        created = await reg.create("valid", submitted(muts))
    except StatusError as e:
        assert e.code == 422
        assert causes(e) == expected(case_id, want)
        assert await ip_addresses(store) == [], "nothing stays allocated"
        return
    assert expected(case_id, want) == []
    held = [ip for ip in created["spec"].get("clusterIPs") or [] if ip != "None"]
    assert await ip_addresses(store) == sorted(held)


@pytest.mark.parametrize(("old_muts", "new_muts", "want"), DUAL_UPDATE)
async def test_update_case_on_a_dual_stack_cluster(request: pytest.FixtureRequest,
                                                   old_muts: list[Mut], new_muts: list[Mut],
                                                   want: Any) -> None:
    reg, store = registry()
    case_id = request.node.callspec.id
    try:
        old = await reg.create("valid", submitted(old_muts))
    except StatusError:
        assert expected(case_id, want) == "old"
        return
    before = await ip_addresses(store)
    new = submitted(new_muts)
    new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
    try:
        updated = await reg.update("valid", "valid", new)
    except StatusError as e:
        assert e.code == 422
        assert causes(e) == expected(case_id, want)
        assert await ip_addresses(store) == before, "a refused update keeps what it held"
        return
    assert expected(case_id, want) == []
    held = [ip for ip in updated["spec"].get("clusterIPs") or [] if ip != "None"]
    assert await ip_addresses(store) == sorted(held)


@pytest.mark.parametrize(("muts", "want"), [p for p in DUAL_CREATE
                                             if not p.values[1] and p.id not in PIPELINE])
async def test_valid_dual_cases_are_refused_on_a_single_stack_cluster(
        muts: list[Mut], want: Any) -> None:
    """What these cases meant before: an IPv4-only cluster refuses what needs IPv6 (except
    the headless selectorless Service, which may name families the cluster lacks, and the
    PreferDualStack ones that fit in IPv4)."""
    reg, _ = registry(SINGLE_CIDRS)
    svc = submitted(muts)
    spec = svc["spec"]
    fits = (spec.get("ipFamilyPolicy") == "PreferDualStack"
            and "IPv6" not in (spec.get("ipFamilies") or [])
            and not any(":" in ip for ip in spec.get("clusterIPs") or [])
            ) or (spec.get("clusterIP") == "None" and not spec.get("selector"))
    if fits:
        await reg.create("valid", svc)
        return
    with pytest.raises(StatusError) as e:
        await reg.create("valid", svc)
    assert "not configured" in e.value.message
