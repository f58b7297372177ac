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
