"""The cluster's IP families: what the API sees, primary first."""

from __future__ import annotations

import pytest

from svcnet.util.ipfamily import IP_FAMILIES, IPFamilies, version_of

GIVEN = ["172.20.0.11", "", "fd00:172:20::11", "10.244.1.0/24", "fd00:10:244:1::/64"]


def test_pick_filters_and_orders_by_family() -> None:
    assert IPFamilies("ipv4").pick(GIVEN) == ["172.20.0.11", "10.244.1.0/24"]
    assert IPFamilies("dual").pick(GIVEN) == [
        "172.20.0.11", "10.244.1.0/24", "fd00:172:20::11", "fd00:10:244:1::/64"]
    assert IPFamilies("ipv6").pick(GIVEN) == ["fd00:172:20::11", "fd00:10:244:1::/64"]
    # The primary family first whatever the order given; nothing of another family.
    assert IPFamilies("ipv6").pick(["10.96.0.0/12", "fd00:10:96::/112"]) == ["fd00:10:96::/112"]
    assert IPFamilies("ipv6").pick(["10.0.0.1"]) == []


def test_primary_and_unknown_family() -> None:
    assert [IPFamilies(f).primary for f in IP_FAMILIES] == [4, 4, 6]
    assert [IPFamilies(f).ipv6_primary for f in IP_FAMILIES] == [False, False, True]
    assert (version_of("fd00::1-fd00::9"), version_of("10.0.0.1-10.0.0.9")) == (6, 4)
    with pytest.raises(ValueError, match="expected one of ipv4, dual, ipv6"):
        IPFamilies("ipv7")
