"""categorize_endpoints: cluster vs local endpoints, the terminating fallback, has_any.

Endpoints are named by what they are: ``R``eady, ``T``erminating-and-serving, ``X`` (not
serving, terminating), ``N``ot ready; lower case = on another node, upper case = local.
"""

from __future__ import annotations

import pytest

from svcnet.proxy.model import EndpointInfo, ServicePortInfo, ServicePortName
from svcnet.proxy.topology import categorize_endpoints

NODE = "node-1"


def ep(code: str, n: int) -> EndpointInfo:
    kinds = {"r": (True, True, False), "t": (False, True, True), "x": (False, False, True),
             "n": (False, False, False)}
    ready, serving, terminating = kinds[code.lower()]
    return EndpointInfo(f"10.244.{1 if code.isupper() else 2}.{n}", 80, ready, serving,
                        terminating, NODE if code.isupper() else "node-2")


def eps(codes: str) -> tuple[EndpointInfo, ...]:
    return tuple(ep(c, i) for i, c in enumerate(codes, 1))


def svc(*, itp: bool = False, etp: bool = False, external: bool = False) -> ServicePortInfo:
    return ServicePortInfo(ServicePortName("ns", "s", "", "TCP"), "10.96.0.1", 80,
                           node_port=30000 if external else 0, internal_policy_local=itp,
                           external_policy_local=etp)


CASES = [
    # name, service, endpoints, cluster, local, has_any
    ("no endpoints", svc(), "", "", "", False),
    ("ready ones only", svc(), "RrTN", "Rr", "", True),
    ("terminating fallback", svc(), "TtXN", "Tt", "", True),
    ("nothing usable", svc(), "XxNn", "", "", False),
    ("ITP Local: local ready", svc(itp=True), "Rr", "", "R", True),
    ("ITP Local: local terminating fallback", svc(itp=True), "Tr", "", "T", True),
    ("ITP Local: none local", svc(itp=True), "r", "", "", True),
    ("ITP Local: local not serving", svc(itp=True), "Xr", "", "", True),
    ("ETP Local", svc(etp=True, external=True), "Rr", "Rr", "R", True),
    ("ETP Local: local fallback independent of cluster", svc(etp=True, external=True),
     "Tr", "r", "T", True),
    ("ETP Local: no local", svc(etp=True, external=True), "rt", "r", "", True),
    ("ETP Local only matters when reachable", svc(etp=True), "Rr", "Rr", "", True),
    ("both Local, reachable", svc(itp=True, etp=True, external=True), "Rr", "Rr", "R", True),
]


@pytest.mark.parametrize(("service", "endpoints", "cluster", "local", "has_any"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_categorize(service: ServicePortInfo, endpoints: str, cluster: str, local: str,
                    has_any: bool) -> None:
    given = eps(endpoints)
    by_code = dict(zip(given, endpoints, strict=True))
    result = categorize_endpoints(given, service, NODE)
    assert "".join(by_code[e] for e in result.cluster) == cluster
    assert "".join(by_code[e] for e in result.local) == local
    assert result.has_any == has_any
    # all_reachable is the union, without duplicates.
    assert set(result.all_reachable) == set(result.cluster) | set(result.local)
    assert len(result.all_reachable) == len(set(result.all_reachable))


def test_local_means_this_node_by_name() -> None:
    unnamed = EndpointInfo("10.244.1.5", 80, node_name=None)
    result = categorize_endpoints((unnamed,), svc(itp=True), NODE)
    assert result.local == () and result.has_any
    assert categorize_endpoints((unnamed,), svc(itp=True), "").local == ()


# -- zone hints (kube-proxy's canUseTopology) --------------------------------------------------


def hinted(code: str, n: int, *zones: str) -> EndpointInfo:
    base = ep(code, n)
    return EndpointInfo(base.ip, base.port, base.ready, base.serving, base.terminating,
                        base.node_name, zones[0] if zones else None, frozenset(zones))


A1, B2, A3 = hinted("R", 1, "zone-a"), hinted("r", 2, "zone-b"), hinted("r", 3, "zone-a")
B2_NO_HINT = ep("r", 2)
T4_HINT_B = hinted("t", 4, "zone-b")
N5_NO_HINT = ep("n", 5)

TOPOLOGY_CASES = [
    # name, service, endpoints, zone, cluster, local, topology
    ("hints for this zone", svc(), (A1, B2, A3), "zone-a", (A1, A3), (), True),
    ("other zone", svc(), (A1, B2, A3), "zone-b", (B2,), (), True),
    ("node without zone", svc(), (A1, B2), None, (A1, B2), (), False),
    ("no endpoint for this zone", svc(), (A1, B2), "zone-c", (A1, B2), (), False),
    ("a ready endpoint without hint", svc(), (A1, B2_NO_HINT), "zone-a", (A1, B2_NO_HINT), (),
     False),
    ("not-ready endpoints need no hint", svc(), (A1, B2, N5_NO_HINT), "zone-a", (A1,), (),
     True),
    ("terminating fallback ignores hints", svc(), (T4_HINT_B,), "zone-a", (T4_HINT_B,), (),
     False),
    ("ITP Local is not filtered", svc(itp=True), (A1, B2), "zone-b", (), (A1,), False),
    ("ETP Local: cluster filtered, local kept", svc(etp=True, external=True),
     (hinted("R", 1, "zone-b"), A3), "zone-a", (A3,), (hinted("R", 1, "zone-b"),), True),
]


@pytest.mark.parametrize(("service", "endpoints", "zone", "cluster", "local", "topology"),
                         [c[1:] for c in TOPOLOGY_CASES], ids=[c[0] for c in TOPOLOGY_CASES])
def test_topology(service: ServicePortInfo, endpoints: tuple[EndpointInfo, ...],
                  zone: str | None, cluster: tuple[EndpointInfo, ...],
                  local: tuple[EndpointInfo, ...], topology: bool) -> None:
    result = categorize_endpoints(endpoints, service, NODE, zone)
    assert (result.cluster, result.local, result.topology) == (cluster, local, topology)
    # With topology, local endpoints outside the zone are still reachable (ETP Local).
    assert set(result.all_reachable) == set(cluster) | set(local)
    assert result.has_any
