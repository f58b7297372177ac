"""A dual-stack `svcnet server` (``--service-cidr IPv4,IPv6`` and ``--cluster-cidr IPv4,IPv6``)
through the real kubectl: Service IP families and both ClusterIPs (get -o wide, describe,
IPAddress objects), the upgrade and downgrade by ``kubectl patch``, a dual pod CIDR per
Node, and the flag refusals of a bad pair.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, Cluster, start_server, stop_server
from tests.waiting import wait_for

Obj = dict[str, Any]
V4, V6 = ipaddress.ip_network("10.96.0.0/16"), ipaddress.ip_network("fd00:10:96::/112")
PODS = "10.244.0.0/16,fd00:10:244::/56"


@pytest.fixture(scope="module")
def dual(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("dual-server")
    proc = start_server(data_dir, "--service-cidr", f"{V4},{V6}", "--cluster-cidr", PODS)
    cache = tmp_path_factory.mktemp("kubecache")
    try:
        yield Cluster(data_dir, data_dir / "kubeconfig", proc, cache)
    finally:
        assert stop_server(proc) == 0


def _service(name: str, **spec: Any) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                       "spec": {"ports": [{"port": 80}], "selector": {"app": name}, **spec}})


def _ipaddresses(cluster: Cluster) -> dict[str, str]:
    return {line.split()[0]: line.split()[1]
            for line in cluster.kubectl("get", "ipaddresses").stdout.splitlines()[1:]}


def test_default_service_cidr_holds_both(dual: Cluster) -> None:
    rows = [line.split() for line in dual.kubectl("get", "servicecidrs").stdout.splitlines()]
    assert rows[1][:2] == ["kubernetes", f"{V4},{V6}"]


def test_dual_stack_service_through_kubectl(dual: Cluster) -> None:
    dual.kubectl("apply", "-f", "-", stdin=_service("web", ipFamilyPolicy="RequireDualStack"))
    spec = dual.get_json("service", "web")["spec"]
    assert spec["ipFamilies"] == ["IPv4", "IPv6"]
    v4, v6 = spec["clusterIPs"]
    assert ipaddress.ip_address(v4) in V4 and ipaddress.ip_address(v6) in V6
    assert spec["clusterIP"] == v4

    # The table's CLUSTER-IP is the primary address (printers.go: clusterIPs[0]).
    wide = dual.kubectl("get", "service", "web", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[:3] == ["NAME", "TYPE", "CLUSTER-IP"]
    assert wide[1].split()[:3] == ["web", "ClusterIP", v4]
    described = dual.kubectl("describe", "service", "web").stdout
    for label, value in (("IP Family Policy:", "RequireDualStack"),
                         ("IP Families:", "IPv4,IPv6"), ("IP:", v4), ("IPs:", f"{v4},{v6}")):
        assert any(line.split(None, len(label.split()))[-1:] == [value]
                   and line.startswith(label) for line in described.splitlines()), label
    assert {v4: "services/default/web", v6: "services/default/web"}.items() <= (
        _ipaddresses(dual).items())

    # Downgrade by patch: the secondary goes, with its IPAddress.
    dual.kubectl("patch", "service", "web", "--type=merge", "-p",
                 json.dumps({"spec": {"ipFamilyPolicy": "SingleStack"}}))
    spec = dual.get_json("service", "web")["spec"]
    assert (spec["clusterIPs"], spec["ipFamilies"]) == ([v4], ["IPv4"])
    wait_for(what="the secondary's IPAddress released", fn=lambda: v6 not in _ipaddresses(dual))

    # Upgrade again: the primary stays, a new secondary comes.
    dual.kubectl("patch", "service", "web", "--type=merge", "-p",
                 json.dumps({"spec": {"ipFamilyPolicy": "PreferDualStack"}}))
    spec = dual.get_json("service", "web")["spec"]
    assert spec["clusterIPs"][0] == v4 and ipaddress.ip_address(spec["clusterIPs"][1]) in V6

    # The primary family cannot change.
    r = dual.kubectl("patch", "service", "web", "--type=merge", "-p",
                     json.dumps({"spec": {"ipFamilies": ["IPv6", "IPv4"]}}), check=False)
    assert r.returncode != 0 and 'The Service "web" is invalid' in r.stderr
    dual.kubectl("delete", "service", "web")
    wait_for(what="both IPAddresses released", fn=lambda: not any(
        ref == "services/default/web" for ref in _ipaddresses(dual).values()))


def test_ipv6_only_service_and_requested_address(dual: Cluster) -> None:
    dual.kubectl("apply", "-f", "-", stdin=_service(
        "six", ipFamilies=["IPv6"], clusterIP="fd00:10:96::53", clusterIPs=["fd00:10:96::53"]))
    row = dual.kubectl("get", "service", "six").stdout.splitlines()[1].split()
    assert row[:3] == ["six", "ClusterIP", "fd00:10:96::53"]
    r = dual.kubectl("apply", "-f", "-", check=False, stdin=_service(
        "seven", ipFamilies=["IPv6"], clusterIP="fd00:10:97::1", clusterIPs=["fd00:10:97::1"]))
    assert r.returncode != 0
    assert ("failed to allocate IP fd00:10:97::1: the provided IP (fd00:10:97::1) is not in "
            f"the valid range. The range of valid IPs is {V6}") in r.stderr


def test_nodes_get_both_pod_cidrs(dual: Cluster) -> None:
    dual.kubectl("apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-x"}}))
    wait_for(what="podCIDRs", fn=lambda: len(dual.get_json("node", "node-x")["spec"].get("podCIDRs") or [])
           == 2)
    v4, v6 = dual.get_json("node", "node-x")["spec"]["podCIDRs"]
    assert ipaddress.ip_network(v4).prefixlen == 24 and ipaddress.ip_network(v6).prefixlen == 64


@pytest.mark.parametrize(("flags", "message"), [
    (["--service-cidr", "10.96.0.0/12,10.200.0.0/16"],
     "--service-cidr[0] and --service-cidr[1] must be of different IP family"),
    (["--service-cidr", "10.96.0.0/12,fd00::/112,fd01::/112"],
     "--service-cidr must not contain more than two entries"),
    (["--service-cidr", "10.96.0.0/12,fd00::/48"],
     "shortest allowed prefix length for service CIDR is 64, got 48"),
    (["--cluster-cidr", "10.244.0.0/16,10.245.0.0/16"],
     "--cluster-cidr[0] and --cluster-cidr[1] must be of different IP family"),
])
def test_bad_cidr_pairs_are_refused(tmp_path: Path, flags: list[str], message: str) -> None:
    r = subprocess.run([sys.executable, "-m", "svcnet.cli.main", "server", "--data-dir",
                        str(tmp_path), "--listen", "127.0.0.1:0", *flags],
                       cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 1
    assert message in r.stderr
