"""Watch stream framing, sans IO: whatever the chunking, the same events come out."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, strategies as st

from svcnet.client.watchstream import WatchDecodeError, WatchDecoder, WatchEvent


def line(etype: str, rv: str) -> bytes:
    return json.dumps({"type": etype, "object": {"metadata": {"resourceVersion": rv}}}
                      ).encode() + b"\n"


STREAM = line("ADDED", "1") + line("MODIFIED", "2") + b"\n" + line("BOOKMARK", "3") + line(
    "DELETED", "4")
EXPECTED = [WatchEvent(t, {"metadata": {"resourceVersion": rv}})
            for t, rv in (("ADDED", "1"), ("MODIFIED", "2"), ("BOOKMARK", "3"), ("DELETED", "4"))]


def test_one_chunk_with_several_events() -> None:
    assert WatchDecoder().feed(STREAM) == EXPECTED


def test_event_split_across_chunks_waits_for_its_newline() -> None:
    d = WatchDecoder()
    first = line("ADDED", "1")
    assert d.feed(first[:10]) == []
    assert d.buffered == 10
    assert d.feed(first[10:]) == EXPECTED[:1]
    assert d.buffered == 0


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    d = WatchDecoder()
    events = []
    bounds = [0, *sorted(cuts), len(STREAM)]
    for a, b in itertools.pairwise(bounds):
        events.extend(d.feed(STREAM[a:b]))
    events.extend(d.close())
    assert events == EXPECTED


def test_final_event_without_newline_counts_at_close() -> None:
    d = WatchDecoder()
    assert d.feed(line("ADDED", "1").rstrip(b"\n")) == []
    assert d.close() == EXPECTED[:1]
    assert d.close() == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"not json\n", "not JSON", id="garbage"),
        pytest.param(b"[1, 2]\n", "not a JSON object", id="array"),
        pytest.param(b'{"type": "NOPE", "object": {}}\n', "malformed", id="unknown-type"),
        pytest.param(b'{"type": "ADDED", "object": 1}\n', "malformed", id="object-not-a-dict"),
    ],
)
def test_malformed_lines(data: bytes, message: str) -> None:
    with pytest.raises(WatchDecodeError, match=message):
        WatchDecoder().feed(data)


def test_runaway_line_is_refused() -> None:
    d = WatchDecoder(max_event_bytes=16)
    with pytest.raises(WatchDecodeError, match="exceeds 16 bytes"):
        d.feed(b"x" * 17)
