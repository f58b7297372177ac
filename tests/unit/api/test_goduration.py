"""Go's time.Duration.String, and time.ParseDuration reading it back."""

from __future__ import annotations

import pytest

from svcnet.api.goduration import go_duration, parse_go_duration

MS = 1_000_000
S = 1_000 * MS


@pytest.mark.parametrize(("nanos", "text"), [
    (0, "0s"), (7, "7ns"), (1_500, "1.5µs"), (313 * MS, "313ms"), (1_661 * MS, "1.661s"),
    (10 * S, "10s"), (80 * S, "1m20s"), (300 * S, "5m0s"), (62 * S + 500 * MS, "1m2.5s"),
    (3_600 * S, "1h0m0s"), (3_723 * S + 4 * MS, "1h2m3.004s"), (-2 * S, "-2s"),
])
def test_go_duration(nanos: int, text: str) -> None:
    assert go_duration(nanos) == text
    assert parse_go_duration(text) == nanos


@pytest.mark.parametrize(("text", "nanos"), [
    ("0", 0), ("15s", 15 * S), ("15.002s", 15_002 * MS), ("1.5h", 5_400 * S), ("2us", 2_000),
    ("+3ms", 3 * MS), ("1m0.5s", 60_500 * MS),
])
def test_parse_go_duration(text: str, nanos: int) -> None:
    assert parse_go_duration(text) == nanos


@pytest.mark.parametrize("text", ["", "s", "1", "1x", ".s", "1s2", "-"])
def test_parse_go_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="time: invalid duration"):
        parse_go_duration(text)
