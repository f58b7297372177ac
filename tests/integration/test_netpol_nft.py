"""The NetworkPolicy table in a real kernel: every shape the planner writes loads with nft
1.0.6 in a scratch namespace, replaces the previous table in one transaction, and goes away
when nothing is isolated (svcnet/netpol/plan.py's scripts, not a model of them)."""

from __future__ import annotations

import pytest

from svcnet.netpol.plan import dns_peers, plan_table
from svcnet.proxy.nft.nft import SubprocessNft
from tests.unit.netpol.test_plan import (
    DB,
    DNS_SLICE,
    FRIEND,
    NAMESPACES,
    NODE,
    WEB,
    pod,
    policy,
)
from tests.waiting import run

pytestmark = pytest.mark.root


EVERYTHING = [
    policy("web", {"podSelector": {"matchLabels": {"app": "web"}},
                   "policyTypes": ["Ingress", "Egress"],
                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "ok"}}},
                                         {"ipBlock": {"cidr": "172.20.0.0/24",
                                                      "except": ["172.20.0.1/32",
                                                                 "172.20.0.2/32"]}}],
                                "ports": [{"port": "http", "protocol": "TCP"},
                                          {"port": 9000, "endPort": 9010, "protocol": "UDP"},
                                          {"protocol": "SCTP"}]}],
                   "egress": [{"to": [{"namespaceSelector": {"matchLabels": {
                       "team": "data"}}}], "ports": [{"port": "pg", "protocol": "TCP"}]},
                              {"to": [{"namespaceSelector": {}, "podSelector": {
                                  "matchLabels": {"k8s-app": "kube-dns"}}}]},
                              {"to": [{"ipBlock": {"cidr": "fd00::/8"}}]}]}),
    policy("db", {"podSelector": {}, "ingress": [{}]}, ns="data"),
]


def test_every_shape_loads_and_replaces_the_table(netns: str) -> None:
    nft = SubprocessNft(netns)
    replica = pod("db-2", {"app": "db"}, ["10.244.1.10", "fd00:10:244:1::a"], ns="data",
                  ports=(("pg", "TCP", 5432),))
    script = plan_table(EVERYTHING, [WEB, FRIEND, DB, replica], NAMESPACES, NODE,
                        extra_peers=dns_peers([DNS_SLICE]))
    # Sets of several addresses, and of several (address . protocol . port) triples.
    assert "type ipv4_addr . inet_proto . inet_service" in script
    nft.apply(script)
    listed = nft.list_table("inet", "svcnet-netpol")
    assert "hook forward priority filter" in listed
    # web's chains, and one ingress chain the two db pods share.
    assert listed.count("chain ingress-") == 2 and listed.count("chain egress-") == 1
    assert "10.244.1.9 . tcp . 5432" in listed and "10.244.1.10 . tcp . 5432" in listed
    # Applying again, or a smaller plan, replaces the whole table in one transaction.
    nft.apply(script)
    smaller = plan_table(EVERYTHING[1:], [WEB, FRIEND, DB, replica], NAMESPACES, NODE)
    nft.apply(smaller)
    assert nft.list_table("inet", "svcnet-netpol").count("chain ") == 2  # forward, db's
    # Nothing isolated: no table at all.
    nft.apply(plan_table([], [WEB], NAMESPACES, NODE))
    tables = run(["ip", "netns", "exec", netns, "nft", "list", "tables"]).stdout
    assert "svcnet-netpol" not in tables
    # A first sync on a node that never had the table removes nothing and fails nothing.
    nft.apply(plan_table([], [WEB], NAMESPACES, NODE))
