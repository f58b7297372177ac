"""Reading the data plane's connection counters (``ProxyConfig.traffic_counters``).

Theory of operation
-------------------
The ruleset (:mod:`svcnet.proxy.ruleset`, "Traffic counters") declares ``@backends`` and
``@local-backends`` with ``counter``: each element — ``frontend address . protocol . port .
slot : endpoint address . port`` — counts the lookups that found it, one per new connection,
since the nat hook only sees a connection's first packet. Reading them is one ``nft -j list
map`` per map, made only when someone asks (the node server's ``/stats/services``, cached
for :data:`FRESH` seconds), so no cost at all when nobody looks and none per packet ever.

:func:`parse_map_counters` is pure: the JSON listing to rows ``[frontend address, protocol,
frontend port, endpoint address, endpoint port, connections]`` (slots folded together), the
wire form :mod:`svcnet.dashboard.traffic` reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

from svcnet.proxy.ruleset import BACKENDS, LOCAL_BACKENDS

FRESH: Final = 1.0
COUNTED_MAPS: Final = (BACKENDS, LOCAL_BACKENDS)

Row = list[Any]


def _parts(value: Any) -> list[str] | None:
    if isinstance(value, dict) and isinstance(value.get("concat"), list):
        return [str(v) for v in value["concat"]]
    return None


def parse_map_counters(listing_json: str) -> dict[tuple[str, ...], int]:
    """(frontend address, protocol, port, endpoint address, port) -> connections, from
    ``nft -j list map`` output; elements without a counter are skipped."""
    out: dict[tuple[str, ...], int] = {}
    for obj in json.loads(listing_json).get("nftables", []):
        body = obj.get("map") if isinstance(obj, dict) else None
        if not isinstance(body, dict):
            continue
        for raw in body.get("elem") or []:
            if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], dict)):
                continue
            elem = raw[0].get("elem") or {}
            counter = elem.get("counter")
            key, value = _parts(elem.get("val")), _parts(raw[1])
            if not isinstance(counter, dict) or key is None or value is None \
                    or len(key) != 4 or len(value) != 2:
                continue
            row = (key[0], key[1], key[2], value[0], value[1])
            out[row] = out.get(row, 0) + int(counter.get("packets", 0))
    return out


def counter_rows(listings: Iterable[str]) -> list[Row]:
    """The wire rows of several map listings, summed and sorted."""
    total: dict[tuple[str, ...], int] = {}
    for listing in listings:
        for key, n in parse_map_counters(listing).items():
            total[key] = total.get(key, 0) + n
    return [[*key, n] for key, n in sorted(total.items())]
