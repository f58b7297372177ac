"""`svcnet up --zones`: which zone each node gets; `--node-labels` parsing."""

from __future__ import annotations

import click
import pytest

from svcnet.cli.main import _node_labels
from svcnet.cluster.up import UpOptions, node_zone


def test_nodes_take_zones_round_robin() -> None:
    opts = UpOptions(nodes=3, zones=("a", "b"))
    assert [node_zone(opts, i) for i in (1, 2, 3)] == ["a", "b", "a"]
    assert node_zone(UpOptions(), 1) is None


def test_node_labels() -> None:
    assert _node_labels("topology.kubernetes.io/zone=a, x=") == {
        "topology.kubernetes.io/zone": "a", "x": ""}
    for bad in ("novalue", "k=bad value", "-k=v"):
        with pytest.raises(click.BadParameter):
            _node_labels(bad)
