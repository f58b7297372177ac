"""Property: whatever a client sends as a Service, the write pipeline answers with a Kubernetes
Status error or a stored object; it never raises anything else, and a refused write leaves
nothing behind (no object, no allocation).

Bodies come from two generators: arbitrary JSON (mostly nonsense), and near-valid Services whose
fields take random, often wrong-typed or out-of-range values.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from svcnet.api.errors import StatusError
from svcnet.api.schema import decode
from svcnet.registry.service_alloc import ServiceAllocators
from svcnet.registry.services import service_registry
from svcnet.storage.memory import MemoryStore

json_scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(
    allow_nan=False, allow_infinity=False) | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)



def mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually ``good``, sometimes any JSON value (usually of the wrong type).

    The "bad" draw is a middle value of a range: Hypothesis favours the ends of ranges.
    """
    return st.integers(0, 15).flatmap(lambda i: json_scalars if i == 7 else good)


names = st.sampled_from(["web", "web", "web", "", "Web", "1abc", "a" * 70, "x-y", "-bad"])
port_numbers = st.sampled_from([80, 443, 8080, 0, 1, 65535, 65536, -1, 30080, 29999])
ip_texts = st.sampled_from(["", "", "None", "10.96.0.10", "10.96.0.0", "10.97.0.1", "1.2.3.4",
                            "fd00::1", "abc", "010.96.0.1", "10.96.0.1"])
types = st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName", "", "Bogus"])

service_ports = st.fixed_dictionaries(
    {},
    optional={
        "name": mostly(st.sampled_from(["http", "", "HTTP", "dns", "a" * 20])),
        "port": mostly(port_numbers),
        "targetPort": mostly(port_numbers | st.sampled_from(["http", "", "x--y", "a" * 16])),
        "nodePort": mostly(port_numbers),
        "protocol": mostly(st.sampled_from(["TCP", "UDP", "SCTP", "tcp", ""])),
        "appProtocol": st.sampled_from(["http", "kubernetes.io/h2c", "bad value"]),
    })
specs = st.fixed_dictionaries(
    {},
    optional={
        "type": mostly(types),
        "ports": mostly(st.lists(service_ports, min_size=1, max_size=4)),
        "selector": st.dictionaries(st.sampled_from(["app", "bad key!", ""]),
                                    mostly(st.sampled_from(["web", "", "bad value!"])),
                                    max_size=2),
        "clusterIP": mostly(ip_texts),
        "clusterIPs": mostly(st.lists(ip_texts, max_size=3)),
        "ipFamilies": st.lists(st.sampled_from(["IPv4", "IPv6", "IPv5"]), max_size=3),
        "ipFamilyPolicy": st.sampled_from(["SingleStack", "PreferDualStack",
                                           "RequireDualStack", "Other"]),
        "externalName": st.sampled_from(["foo.example.com", "", "x" * 300, "a..b"]),
        "externalIPs": st.lists(ip_texts, max_size=2),
        "sessionAffinity": st.sampled_from(["None", "ClientIP", "Sticky", ""]),
        "sessionAffinityConfig": st.sampled_from([{"clientIP": {"timeoutSeconds": 0}},
                                                  {"clientIP": {"timeoutSeconds": 100}}, {}]),
        "externalTrafficPolicy": st.sampled_from(["Cluster", "Local", "Global", ""]),
        "internalTrafficPolicy": st.sampled_from(["Cluster", "Local", "Other"]),
        "healthCheckNodePort": mostly(port_numbers),
        "allocateLoadBalancerNodePorts": mostly(st.booleans()),
        "loadBalancerClass": st.sampled_from(["example.com/lb", "bad class!", ""]),
        "loadBalancerSourceRanges": st.lists(st.sampled_from(["10.0.0.0/8", "1.2.3.4", " x"]),
                                             max_size=2),
        "publishNotReadyAddresses": st.booleans(),
        "unknownField": json_values,
    })
services = st.fixed_dictionaries(
    {"apiVersion": st.just("v1"), "kind": st.just("Service"),
     "metadata": mostly(st.fixed_dictionaries({"name": names}, optional={
            "generateName": names, "namespace": st.just("default"),
            "labels": st.dictionaries(st.sampled_from(["app", "Bad Key"]),
                                      mostly(st.sampled_from(["web", "x y"])), max_size=2),
            "annotations": st.dictionaries(st.text(max_size=5), mostly(st.text(max_size=5)),
                                           max_size=2),
            "resourceVersion": st.sampled_from(["", "", "", "5"]),
        })),
     "spec": mostly(specs)},
    optional={"status": mostly(st.just({}))})


@st.composite
def valid_services(draw: st.DrawFn) -> dict[str, Any]:
    """Services a real cluster accepts: every one of them must be accepted here too."""
    kind = draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName",
                                 "Headless"]))
    n = draw(st.integers(1, 3))
    numbers = draw(st.lists(st.integers(1, 65535), min_size=n, max_size=n, unique=True))
    ports = []
    for i, number in enumerate(numbers):
        port: dict[str, Any] = {"port": number,
                                "protocol": draw(st.sampled_from(["TCP", "UDP", "SCTP"]))}
        if n > 1 or draw(st.booleans()):
            port["name"] = f"p{i}"
        if draw(st.booleans()):
            port["targetPort"] = draw(st.integers(1, 65535) | st.sampled_from(["http", "dns"]))
        if kind in ("NodePort", "LoadBalancer") and draw(st.booleans()):
            port["nodePort"] = 30000 + 7 * i
        ports.append(port)
    spec: dict[str, Any] = {"ports": ports, "selector": {"app": "web"}}
    if kind == "Headless":
        spec["clusterIP"] = "None"
    elif kind == "ExternalName":
        spec["type"] = "ExternalName"
        spec["externalName"] = "db.example.com"
    else:
        spec["type"] = kind
        if draw(st.booleans()):
            spec["clusterIP"] = draw(st.sampled_from(["10.96.0.10", "10.100.1.1"]))
    if kind in ("NodePort", "LoadBalancer"):
        spec["externalTrafficPolicy"] = draw(st.sampled_from(["Cluster", "Local"]))
    if kind != "ExternalName" and draw(st.booleans()):
        spec["sessionAffinity"] = "ClientIP"
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": draw(
            st.integers(1, 86400))}}
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": draw(st.sampled_from(["web", "a", "x-1", "a" * 63])),
                         "labels": {"app": "web"}},
            "spec": spec}


async def attempt(body: Any, *, must_accept: bool = False) -> None:
    store = MemoryStore()
    allocators = ServiceAllocators.build(store, ["10.96.0.0/12"], "30000-32767")
    registry = service_registry(store, allocators)
    try:
        obj = decode(body, api_version="v1", kind="Service").obj
        created = await registry.create("default", obj)
    except StatusError as e:
        assert not must_accept, e.to_status()
        assert 400 <= e.code < 500, e.to_status()
        assert not (await store.list("/registry/")).items, \
            "a refused write leaves no object and no allocation"
        return
    # Accepted: what is stored is exactly what the allocations say it holds.
    spec = created["spec"]
    if spec["type"] != "ExternalName" and spec.get("clusterIP") != "None":
        assert spec["clusterIP"] == spec["clusterIPs"][0]
    await registry.delete("default", created["metadata"]["name"])
    assert not (await store.list("/registry/")).items, "delete releases everything"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_services())
def test_valid_services_are_accepted(body: dict[str, Any]) -> None:
    asyncio.run(attempt(body, must_accept=True))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(services)
def test_near_valid_services_fail_only_with_status_errors(body: dict[str, Any]) -> None:
    asyncio.run(attempt(body))


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_arbitrary_json_fails_only_with_status_errors(body: Any) -> None:
    asyncio.run(attempt(body))
