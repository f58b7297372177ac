"""The NetworkPolicy table of a node (svcnet/netpol/plan.py): which pods are isolated, what
each rule lets through, and the whole script for a typical case, byte for byte."""

from __future__ import annotations

from typing import Any

from svcnet.netpol.plan import dns_peers, plan_table, pod_info

Obj = dict[str, Any]
NODE = "node-1"
EMPTY = "table inet svcnet-netpol\ndelete table inet svcnet-netpol\n"


def pod(name: str, labels: Obj, ips: list[str], *, ns: str = "default", node: str = NODE,
        ports: tuple[tuple[str, str, int], ...] = (), **spec: Any) -> Obj:
    return {"metadata": {"namespace": ns, "name": name, "labels": labels},
            "spec": {"nodeName": node, **spec, "containers": [{"name": "c", "ports": [
                {"name": n, "protocol": p, "containerPort": c} for n, p, c in ports]}]},
            "status": {"phase": "Running", "podIPs": [{"ip": ip} for ip in ips]}}


def policy(name: str, spec: Obj, ns: str = "default") -> Obj:
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec}


WEB = pod("web", {"app": "web"}, ["10.244.1.5"], ports=(("http", "TCP", 8080),))
FRIEND = pod("friend", {"role": "ok"}, ["10.244.2.7"], node="node-2")
DB = pod("db", {"app": "db"}, ["10.244.1.9", "fd00:10:244:1::9"], ns="data",
         ports=(("pg", "TCP", 5432),))
NAMESPACES = {"default": {}, "data": {"team": "data"}}
DNS_SLICE = {"metadata": {"namespace": "kube-system", "name": "kube-dns", "labels": {
    "endpointslice.kubernetes.io/managed-by": "svcnet-dns"}},
    "endpoints": [{"addresses": ["172.20.0.1"]}],
    "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
              {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}


def chain(script: str, prefix: str) -> list[str]:
    """The rules of the first chain whose name starts with ``prefix``."""
    lines = script.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"\tchain {prefix}"))
    end = lines.index("\t}", start)
    return [line.strip() for line in lines[start + 1:end]]


def test_no_isolated_pod_no_table() -> None:
    assert plan_table([], [WEB, FRIEND], NAMESPACES, NODE) == EMPTY
    # A policy whose pods all live on another node leaves this node's table empty.
    only_friend = policy("p", {"podSelector": {"matchLabels": {"role": "ok"}},
                               "policyTypes": ["Ingress"]})
    assert plan_table([only_friend], [WEB, FRIEND], NAMESPACES, NODE) == EMPTY
    assert plan_table([only_friend], [WEB, FRIEND], NAMESPACES, "node-2") != EMPTY


def test_a_typical_ingress_policy_whole() -> None:
    """Two web pods with the same policies and ports share one chain; their peers (two
    friends) are a named set; the ipBlock keeps its except."""
    friend2 = pod("friend-2", {"role": "ok"}, ["10.244.2.8"], node="node-2")
    web2 = pod("web-2", {"app": "web"}, ["10.244.1.6"], ports=(("http", "TCP", 8080),))
    allow = policy("web", {
        "podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "ok"}}},
                              {"ipBlock": {"cidr": "172.20.0.0/24",
                                           "except": ["172.20.0.1/32"]}}],
                     "ports": [{"port": "http", "protocol": "TCP"}]}]})
    assert plan_table([allow], [WEB, web2, FRIEND, friend2, DB], NAMESPACES, NODE) == \
        EMPTY + """\
table inet svcnet-netpol {
\tset peers4-4421bae83184 {
\t\ttype ipv4_addr
\t\telements = { 10.244.2.7, 10.244.2.8 }
\t}
\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tct state established,related accept
\t\tip daddr vmap { 10.244.1.5 : jump ingress-c588aee89982, 10.244.1.6 : jump \
ingress-c588aee89982 }
\t}
\tchain ingress-c588aee89982 {
\t\tip saddr @peers4-4421bae83184 meta l4proto tcp th dport 8080 return
\t\tip saddr 172.20.0.0/24 ip saddr != 172.20.0.1/32 meta l4proto tcp th dport 8080 return
\t\tcounter drop comment "default/web"
\t}
}
"""


def test_deny_all_and_allow_all() -> None:
    deny = policy("deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    script = plan_table([deny], [WEB], NAMESPACES, NODE)
    assert chain(script, "ingress-") == ['counter drop comment "default/deny"']
    assert chain(script, "egress-") == ['counter drop comment "default/deny"']
    assert "ip saddr vmap { 10.244.1.5 : jump egress-" in script
    # An empty rule allows everything (no peers, no ports); the union with deny is allow.
    allow = policy("allow", {"podSelector": {}, "ingress": [{}]})
    assert chain(plan_table([deny, allow], [WEB], NAMESPACES, NODE), "ingress-") == [
        "return", 'counter drop comment "default/allow default/deny"']


def test_policy_types_default_from_the_rules() -> None:
    """Without policyTypes (an object the server did not default), egress rules make the
    policy an egress one too; otherwise it is ingress only."""
    ingress_only = policy("i", {"podSelector": {}})
    script = plan_table([ingress_only], [WEB], NAMESPACES, NODE)
    assert "ingress-" in script and "egress-" not in script
    both = policy("e", {"podSelector": {}, "egress": [{}]})
    script = plan_table([both], [WEB], NAMESPACES, NODE)
    assert "ingress-" in script and "egress-" in script


def test_egress_named_ports_resolve_on_each_peer_and_dns_is_a_peer() -> None:
    egress = policy("out", {
        "podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
        "egress": [
            {"to": [{"namespaceSelector": {"matchLabels": {"team": "data"}}}],
             "ports": [{"port": "pg", "protocol": "TCP"}, {"port": 6379, "protocol": "TCP"}]},
            {"to": [{"namespaceSelector": {}, "podSelector": {
                "matchLabels": {"k8s-app": "kube-dns"}}}],
             "ports": [{"port": "dns", "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
            {"to": [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": "default"}}}],
             "ports": [{"protocol": "UDP"}]},
        ]})
    script = plan_table([egress], [WEB, FRIEND, DB], NAMESPACES, NODE,
                        extra_peers=dns_peers([DNS_SLICE]))
    assert chain(script, "egress-") == [
        "ip daddr . meta l4proto . th dport { 10.244.1.9 . tcp . 5432 } return",
        "ip6 daddr . meta l4proto . th dport { fd00:10:244:1::9 . tcp . 5432 } return",
        "ip daddr 10.244.1.9 meta l4proto tcp th dport 6379 return",
        "ip6 daddr fd00:10:244:1::9 meta l4proto tcp th dport 6379 return",
        "ip daddr . meta l4proto . th dport { 172.20.0.1 . udp . 53 } return",
        "ip daddr 172.20.0.1 meta l4proto tcp th dport 53 return",
        "ip daddr @peers4-17b274dc2648 meta l4proto udp return",
        'counter drop comment "default/out"']
    assert "set peers4-17b274dc2648 {\n\t\ttype ipv4_addr\n\t\telements = { 10.244.1.5, " \
        "10.244.2.7 }\n\t}" in script


def test_ingress_ports_ranges_and_unknown_names() -> None:
    rules = policy("p", {"podSelector": {}, "ingress": [
        {"ports": [{"port": 9000, "endPort": 9010, "protocol": "UDP"},
                   {"port": "http", "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]},
        # A name the pod does not have: the rule matches nothing.
        {"ports": [{"port": "metrics", "protocol": "TCP"}]},
        # A name with the wrong protocol does not resolve either.
        {"ports": [{"port": "http", "protocol": "UDP"}]},
    ]})
    assert chain(plan_table([rules], [WEB], NAMESPACES, NODE), "ingress-") == [
        "meta l4proto tcp th dport { 443, 8080 } return",
        "meta l4proto udp th dport 9000-9010 return",
        'counter drop comment "default/p"']


def test_peers_by_namespace_and_pod_selectors() -> None:
    other = pod("cache", {"role": "ok"}, ["10.244.1.20"], ns="data")
    rules = policy("p", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [
        # podSelector alone: pods of the policy's own namespace only.
        {"from": [{"podSelector": {"matchLabels": {"role": "ok"}}}]},
        # Both: the pods that match in the namespaces that match.
        {"from": [{"namespaceSelector": {"matchLabels": {"team": "data"}},
                   "podSelector": {"matchLabels": {"role": "ok"}}}]},
        # A selector that matches no pod: nothing (not everything).
        {"from": [{"podSelector": {"matchLabels": {"role": "nobody"}}}]},
    ]})
    assert chain(plan_table([rules], [WEB, FRIEND, other, DB], NAMESPACES, NODE),
                 "ingress-") == ["ip saddr 10.244.2.7 return", "ip saddr 10.244.1.20 return",
                                 'counter drop comment "default/p"']


def test_pods_that_take_no_part() -> None:
    host = pod("host", {"app": "web"}, ["172.20.0.11"], hostNetwork=True)
    done = pod("done", {"app": "web"}, ["10.244.1.30"])
    done["status"]["phase"] = "Succeeded"
    pending = pod("pending", {"app": "web"}, [])
    assert [pod_info(p) for p in (host, done, pending)] == [None, None, None]
    deny = policy("deny", {"podSelector": {}})
    script = plan_table([deny], [host, done, pending, WEB], NAMESPACES, NODE)
    assert script.count("chain ingress-") == 1
    # Policies of another namespace do not isolate a pod.
    assert plan_table([policy("deny", {"podSelector": {}}, ns="data")], [WEB], NAMESPACES,
                      NODE) == EMPTY
