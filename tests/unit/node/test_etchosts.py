"""The kubelet-managed /etc/hosts of a pod (svcnet/node/etchosts.py), to the byte."""

from __future__ import annotations

from typing import Any

from svcnet.node.etchosts import managed_hosts, pod_domain, pod_hostname

FIXED = ("# Kubernetes-managed hosts file.\n"
         "127.0.0.1\tlocalhost\n"
         "::1\tlocalhost ip6-localhost ip6-loopback\n"
         "fe00::0\tip6-localnet\n"
         "fe00::0\tip6-mcastprefix\n"
         "fe00::1\tip6-allnodes\n"
         "fe00::2\tip6-allrouters\n")


def pod(name: str = "web-0", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "shop"}, "spec": spec}


def test_a_plain_pod_names_itself_at_each_of_its_ips() -> None:
    assert managed_hosts(pod(), ["10.244.1.5"], "cluster.local") == (
        FIXED + "10.244.1.5\tweb-0\n")
    assert managed_hosts(pod(), ["10.244.1.5", "fd00:10:244:1::5"], "cluster.local") == (
        FIXED + "10.244.1.5\tweb-0\nfd00:10:244:1::5\tweb-0\n")


def test_hostname_and_subdomain_give_the_fully_qualified_name_first() -> None:
    p = pod(hostname="db", subdomain="backends")
    assert pod_domain(p, "corp.internal") == "backends.shop.svc.corp.internal"
    assert managed_hosts(p, ["10.244.2.9"], "corp.internal") == (
        FIXED + "10.244.2.9\tdb.backends.shop.svc.corp.internal\tdb\n")
    # A subdomain without a hostname qualifies the pod's name.
    assert managed_hosts(pod(subdomain="s"), ["10.0.0.1"], "cluster.local") == (
        FIXED + "10.0.0.1\tweb-0.s.shop.svc.cluster.local\tweb-0\n")


def test_host_aliases_follow_one_line_per_ip() -> None:
    p = pod(hostAliases=[{"ip": "192.0.2.7", "hostnames": ["foo.local", "bar"]},
                         {"ip": "2001:db8::1", "hostnames": ["six"]}])
    assert managed_hosts(p, ["10.244.1.5"], "cluster.local") == (
        FIXED + "10.244.1.5\tweb-0\n"
        "\n# Entries added by HostAliases.\n"
        "192.0.2.7\tfoo.local\tbar\n"
        "2001:db8::1\tsix\n")


def test_a_long_name_is_cut_to_63_without_a_trailing_dash_or_dot() -> None:
    assert pod_hostname(pod("a" * 63)) == "a" * 63
    assert pod_hostname(pod("a" * 61 + "-.b")) == "a" * 61
    assert pod_hostname(pod("x", hostname="given")) == "given"
    assert pod_domain(pod(), "cluster.local") == ""
