"""The collector settings of long-running daemons (util/gcpause.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from svcnet.cli import main as cli_main
from svcnet.util.gcpause import (
    LARGE_HEAP_THRESHOLDS,
    PauseWatch,
    gc_paused,
    tune_for_large_heaps,
)


@pytest.fixture(autouse=True)
def restore_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_tuning_raises_the_thresholds_and_keeps_the_collector_on() -> None:
    tune_for_large_heaps()
    assert gc.get_threshold() == LARGE_HEAP_THRESHOLDS
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_svcnet_server_runs_with_the_large_heap_thresholds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, ...]] = []

    async def fake_run_server(config: Any) -> None:
        seen.append(gc.get_threshold())

    monkeypatch.setattr("svcnet.apiserver.server.run_server", fake_run_server)
    gc.set_threshold(700, 10, 10)
    result = CliRunner().invoke(cli_main.cli, ["server", "--data-dir", str(tmp_path),
                                               "--listen", "127.0.0.1:0"])
    assert result.exit_code == 0, result.output
    assert seen == [LARGE_HEAP_THRESHOLDS]


def test_pause_watch_reports_each_collection_until_stopped() -> None:
    seen: list[tuple[int, float]] = []
    watch = PauseWatch(lambda generation, seconds: seen.append((generation, seconds)))
    watch.start()
    watch.start()  # once only
    try:
        with gc_paused():  # no automatic collection in between: only these two
            gc.collect(1)
            gc.collect()
    finally:
        watch.stop()
    assert seen == [], "reported only when drained (never from the collector's callback)"
    watch.drain()
    assert [generation for generation, _ in seen] == [1, 2]
    assert all(seconds >= 0 for _, seconds in seen)
    gc.collect()
    watch.drain()
    assert len(seen) == 2
