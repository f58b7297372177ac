"""A pod's DNS settings as the kubelet forms them (svcnet/node/dnsconfig.py), as tables."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.node.dnsconfig import PodDNS, merge_options, pod_dns
from svcnet.util.resolvconf import ResolvConf

Obj = dict[str, Any]
HOST = ResolvConf(("192.0.2.53", "192.0.2.54"), ("corp.example", "lab.example"),
                  ("edns0", "timeout:2"))
CLUSTER = ["10.96.0.10"]
SEARCH = ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local")
FORMING = "DNSConfigForming"


def pod(**spec: Any) -> Obj:
    return {"metadata": {"name": "web", "namespace": "shop", "uid": "u-1"},
            "spec": {"containers": [{"name": "c"}], **spec}}


@pytest.mark.parametrize(("spec", "want"), [
    pytest.param({}, PodDNS(("10.96.0.10",), (*SEARCH, "corp.example", "lab.example"),
                            ("ndots:5",)), id="cluster-first-adds-host-search-not-options"),
    pytest.param({"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": True},
                 PodDNS(("10.96.0.10",), (*SEARCH, "corp.example", "lab.example"),
                        ("ndots:5",)), id="cluster-first-with-host-net"),
    pytest.param({"hostNetwork": True}, PodDNS(HOST.nameservers, HOST.searches, HOST.options),
                 id="cluster-first-on-host-network-is-default"),
    pytest.param({"dnsPolicy": "Default"}, PodDNS(HOST.nameservers, HOST.searches,
                                                  HOST.options), id="default-is-the-hosts"),
    pytest.param({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]}},
                 PodDNS(("1.1.1.1",), (), ()), id="none-is-only-dns-config"),
    pytest.param({"dnsPolicy": "Bogus"}, PodDNS(("10.96.0.10",),
                                                (*SEARCH, "corp.example", "lab.example"),
                                                ("ndots:5",)), id="invalid-is-cluster-first"),
    pytest.param({"dnsConfig": {"nameservers": ["10.96.0.10", "9.9.9.9"],
                                "searches": ["corp.example", "extra.example"],
                                "options": [{"name": "ndots", "value": "2"},
                                            {"name": "single-request"},
                                            {"name": "attempts", "value": ""}]}},
                 PodDNS(("10.96.0.10", "9.9.9.9"),
                        (*SEARCH, "corp.example", "lab.example", "extra.example"),
                        ("ndots:2", "single-request", "attempts")),
                 id="dns-config-appended-without-duplicates"),
])
def test_policies(spec: Obj, want: PodDNS) -> None:
    assert pod_dns(pod(**spec), host=HOST, cluster_dns=CLUSTER) == want


def test_without_a_host_file_default_turns_lookups_off() -> None:
    # The kubelet's --resolv-conf="": the local machine's resolver, search ".".
    got = pod_dns(pod(dnsPolicy="Default"), host=None, cluster_dns=CLUSTER)
    assert (got.servers, got.searches, got.options) == (("127.0.0.1",), (".",), ())
    v6 = pod_dns(pod(dnsPolicy="Default"), host=None, cluster_dns=CLUSTER,
                 node_ips=["2001:db8::11"])
    assert v6.servers == ("::1",)
    # ClusterFirst needs no host file: the cluster's search path alone.
    assert pod_dns(pod(), host=None, cluster_dns=CLUSTER).searches == SEARCH


def test_cluster_first_without_cluster_dns_falls_back_with_a_warning() -> None:
    got = pod_dns(pod(), host=HOST, cluster_dns=[])
    assert (got.servers, got.searches) == (HOST.nameservers, HOST.searches)
    assert got.warnings == (("MissingClusterDNS",
                             'pod: "web_shop(u-1)". kubelet does not have ClusterDNS IP '
                             'configured and cannot create Pod using "ClusterFirst" policy. '
                             'Falling back to "Default" policy.'),)


def test_more_than_three_nameservers_are_cut_with_the_kubelets_message() -> None:
    got = pod_dns(pod(dnsConfig={"nameservers": ["1.1.1.1", "8.8.8.8", "9.9.9.9"]}),
                  host=HOST, cluster_dns=CLUSTER)
    assert got.servers == ("10.96.0.10", "1.1.1.1", "8.8.8.8")
    assert got.warnings == ((FORMING, "Nameserver limits were exceeded, some nameservers have "
                                      "been omitted, the applied nameserver line is: "
                                      "10.96.0.10 1.1.1.1 8.8.8.8"),)


def test_search_limits() -> None:
    many = [f"d{i}.example" for i in range(40)]
    got = pod_dns(pod(dnsPolicy="None", dnsConfig={"searches": many}), host=None,
                  cluster_dns=CLUSTER)
    assert got.searches == tuple(many[:32])
    assert got.warnings == ((FORMING, "Search Line limits were exceeded, some search paths "
                                      "have been omitted, the applied search line is: "
                             + " ".join(many[:32])),)
    # A path longer than 253 characters goes, wherever it is.
    long = "a" * 254
    got = pod_dns(pod(dnsPolicy="None", dnsConfig={"searches": ["x.example", long, "y"]}),
                  host=None, cluster_dns=CLUSTER)
    assert got.searches == ("x.example", "y") and got.warnings
    # The line is cut from its end until it fits 2048 characters.
    wide = [f"{i:02d}" + "b" * 198 for i in range(12)]  # 12 x 200 characters
    got = pod_dns(pod(dnsPolicy="None", dnsConfig={"searches": wide}), host=None,
                  cluster_dns=CLUSTER)
    assert got.searches == tuple(wide[:10])  # 10 x 200 + 9 spaces = 2009
    assert len(" ".join(got.searches)) <= 2048 and got.warnings


def test_within_limits_no_warning() -> None:
    assert pod_dns(pod(), host=HOST, cluster_dns=CLUSTER).warnings == ()


def test_merge_options() -> None:
    assert merge_options(["ndots:5", "debug"], []) == ["ndots:5", "debug"]
    assert merge_options(["ndots:5", "debug"], [{"name": "ndots", "value": "3"},
                                                {"name": "debug"}, {"name": "attempts",
                                                                    "value": "3"}]) == [
        "ndots:3", "debug", "attempts:3"]


def test_resolv_conf_text() -> None:
    assert pod_dns(pod(), host=None, cluster_dns=CLUSTER).resolv_conf() == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\noptions ndots:5\n")
    assert pod_dns(pod(dnsPolicy="None"), host=None, cluster_dns=CLUSTER).resolv_conf() == "\n"
