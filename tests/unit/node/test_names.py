"""Kernel-safe names: fixed examples, the 15-character rule, ownership patterns."""

from __future__ import annotations

import pytest

from svcnet.node.names import (
    MAX_NAME_LEN,
    ClusterNames,
    InvalidName,
    check_name,
    cluster_tag,
    pod_host_veth,
    short_hash,
)


@pytest.mark.parametrize(("cluster", "tag"), [
    pytest.param("t4", "t4", id="two-chars-verbatim"),
    pytest.param("a", "a", id="one-char-verbatim"),
    pytest.param("svcnet", "b7", id="default-cluster-hashed"),
    pytest.param("T4", short_hash("cluster:T4", 2), id="uppercase-hashed"),
    pytest.param("a-", short_hash("cluster:a-", 2), id="dash-hashed"),
])
def test_cluster_tag(cluster: str, tag: str) -> None:
    assert cluster_tag(cluster) == tag


def test_cluster_tag_rejects_empty() -> None:
    with pytest.raises(InvalidName):
        cluster_tag("")


@pytest.mark.parametrize(("cluster", "node", "netns"), [
    pytest.param("t4", 1, "svcnet-t4-n1", id="test-cluster"),
    pytest.param("svcnet", 2, "svcnet-b7-n2", id="default-cluster"),
    pytest.param("a", 9999, "svcnet-a-n9999", id="largest-index"),
])
def test_node_netns(cluster: str, node: int, netns: str) -> None:
    names = ClusterNames.for_cluster(cluster)
    assert names.node_netns(node) == netns
    assert names.owns_netns(netns)


@pytest.mark.parametrize("index", [0, -1, 10000])
def test_node_index_out_of_range(index: int) -> None:
    with pytest.raises(InvalidName):
        ClusterNames.for_cluster("t4").node_netns(index)


def test_pod_names_are_stable_and_fit() -> None:
    names = ClusterNames.for_cluster("t4")
    pod = names.pod_network(1, "0f8e3c1a-2b9d-4c8e-9a51-7d2f1e0b6c3a")
    # Fixed values: changing the hash scheme would orphan every running pod netns.
    assert pod.pod_netns == "svcnet-t4-pdk3z"
    assert pod.host_veth == "vethdk3ztyamwgm"
    assert pod.node_netns == "svcnet-t4-n1"
    assert (pod.bridge, pod.pod_veth) == ("svcnet0", "eth0")
    for name in (pod.pod_netns, pod.host_veth, pod.node_netns):
        assert len(name) <= MAX_NAME_LEN
    # The veth shares the netns's hash characters, for reading one against the other.
    assert pod.host_veth[4:8] == pod.pod_netns[-4:]


@pytest.mark.parametrize(("cluster", "id_len"), [("a", 5), ("t4", 4), ("svcnet", 4)])
def test_pod_netns_length(cluster: str, id_len: int) -> None:
    names = ClusterNames.for_cluster(cluster)
    netns = names.pod_netns("some-uid")
    assert len(netns) == MAX_NAME_LEN
    assert names.pod_id_len == id_len
    assert names.owns_netns(netns)


def test_distinct_uids_distinct_names() -> None:
    names = ClusterNames.for_cluster("t4")
    netns = {names.pod_netns(f"uid-{i}") for i in range(200)}
    veths = {pod_host_veth(f"uid-{i}") for i in range(200)}
    assert len(veths) == 200
    assert len(netns) >= 199  # 20 bits: a collision among 200 is possible but rare


@pytest.mark.parametrize("name", [
    pytest.param("svcnet-t4x-n1", id="other-cluster-with-longer-tag"),
    pytest.param("svcnet-t4-n0", id="node-zero"),
    pytest.param("svcnet-t4-n01", id="leading-zero"),
    pytest.param("svcnet-t4-pabc", id="pod-id-too-short"),
    pytest.param("svcnet-t4-pabcd1", id="pod-id-not-base32"),
    pytest.param("svcnet-t4-x1", id="unknown-kind"),
    pytest.param("svcnet-t5-n1", id="other-cluster"),
    pytest.param("svcnet-t4", id="bare-prefix"),
])
def test_owns_netns_rejects(name: str) -> None:
    assert not ClusterNames.for_cluster("t4").owns_netns(name)


@pytest.mark.parametrize("name", [
    pytest.param("", id="empty"),
    pytest.param("a" * 16, id="sixteen-chars"),
    pytest.param("a b", id="space"),
    pytest.param("a/b", id="slash"),
    pytest.param("a:b", id="colon"),
    pytest.param("..", id="dotdot"),
    pytest.param("é" * 8, id="multibyte-over-15-bytes"),
])
def test_check_name_rejects(name: str) -> None:
    with pytest.raises(InvalidName):
        check_name(name)


def test_check_name_accepts_fifteen() -> None:
    assert check_name("a" * 15) == "a" * 15


def test_root_namespace_names() -> None:
    names = ClusterNames.for_cluster("t4")
    assert names.node_bridge == "svcnet-t4"
    assert names.node_uplink_host(3) == "svcnet-t4-n3"
    assert names.prefix == "svcnet-t4-"


@pytest.mark.parametrize("cluster", ["t4", "a", "svcnet", "my-cluster"])
def test_for_prefix_gives_the_same_names(cluster: str) -> None:
    names = ClusterNames.for_cluster(cluster)
    again = ClusterNames.for_prefix(names.prefix)
    assert again.tag == names.tag
    assert again.pod_netns("uid-1") == names.pod_netns("uid-1")
    assert again.node_netns(3) == names.node_netns(3)


@pytest.mark.parametrize("prefix", ["svcnet-t4", "svcnet-abc-", "t4-", "svcnet-T4-", ""])
def test_for_prefix_refuses_other_strings(prefix: str) -> None:
    with pytest.raises(InvalidName):
        ClusterNames.for_prefix(prefix)
