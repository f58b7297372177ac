"""What the node measures for /metrics/resource (svcnet/node/resourceusage.py): /proc parsed,
a real child process's session measured while it burns CPU, the node's CPU ledger."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from svcnet.node.resourceusage import (
    CLK_TCK,
    PAGE_SIZE,
    CpuLedger,
    ResourceCollector,
    parse_proc_stat_usage,
    session_usage,
)
from svcnet.node.runtime import ContainerKey, ContainerProcess, Running

# proc(5): pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
# utime stime cutime cstime priority nice threads itrealvalue starttime vsize rss ...
STAT = ("4242 (we ird) (name) S 1 4242 4240 0 -1 4194560 100 0 0 0 "
        "30 12 5 3 20 0 1 0 987654 10000000 250 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0")

BURN = ("import os, subprocess, sys, time\n"
        # a second process in the session, idle: its RSS counts, its CPU is ~0
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "end = time.process_time() + 0.4\n"
        "while time.process_time() < end: pass\n"
        "print('burnt', flush=True)\n"
        "time.sleep(60)\n")


def test_proc_stat_fields_are_counted_from_the_last_parenthesis() -> None:
    u = parse_proc_stat_usage(STAT)
    assert (u.session, u.ticks, u.self_ticks, u.rss_pages) == (4240, 50, 42, 250)
    assert u.cpu_ns() == 50 * 1_000_000_000 // CLK_TCK
    assert u.cpu_ns(children=False) == 42 * 1_000_000_000 // CLK_TCK
    assert u.rss_bytes == 250 * PAGE_SIZE


def test_a_burning_child_sessions_cpu_and_memory() -> None:
    with subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE, text=True,
                          start_new_session=True) as child:
        try:
            assert child.stdout is not None and child.stdout.readline() == "burnt\n"
            time.sleep(0.2)  # the idle grandchild is up by now
            usage = session_usage([child.pid, 999_999_999])
            assert set(usage) == {child.pid}  # a session with no process is absent
            cpu, rss = usage[child.pid]
            assert 0.35e9 <= cpu < 5e9, cpu  # 0.4 s burnt, plus start-up
            assert rss > 8 << 20, rss  # two Python interpreters resident
            assert session_usage([]) == {}
        finally:
            subprocess.run(["pkill", "-KILL", "-s", str(child.pid)], check=False)
            child.wait()


def test_the_ledger_keeps_the_cpu_of_containers_that_went() -> None:
    a, b = (ContainerKey("u1", "a"), 1.0), (ContainerKey("u1", "b"), 2.0)
    ledger = CpuLedger()
    assert ledger.total({a: 100, b: 50}) == 150
    assert ledger.total({a: 120}) == 170  # b went: its last 50 stays
    restarted = (ContainerKey("u1", "a"), 9.0)
    assert ledger.total({restarted: 5}) == 175  # a restarted: its 120 stays, the new run adds
    assert ledger.total({}) == 175


def test_the_ledger_carries_a_running_container_it_could_not_read() -> None:
    a, b = (ContainerKey("u1", "a"), 1.0), (ContainerKey("u1", "b"), 2.0)
    ledger = CpuLedger()
    assert ledger.total({a: 100, b: 50}, {a, b}) == 150
    # b runs but its stats are missing from this answer: its 50 is carried, not retired...
    assert ledger.total({a: 110}, {a, b}) == 160
    # ...so reading it again does not count it twice.
    assert ledger.total({a: 120, b: 60}, {a, b}) == 180


class _Runtime:
    def __init__(self, procs: dict[ContainerKey, ContainerProcess]) -> None:
        self.procs = procs

    def get(self, key: ContainerKey) -> ContainerProcess | None:
        return self.procs.get(key)


async def test_the_collector_measures_process_containers_and_the_node(tmp_path: Path) -> None:
    with subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE, text=True,
                          start_new_session=True) as child:
        try:
            assert child.stdout is not None and child.stdout.readline() == "burnt\n"
            key = ContainerKey("uid-1", "main")
            started = datetime.now(UTC)
            runtime: Any = _Runtime({key: ContainerProcess(key, 0, Running(child.pid,
                                                                            started))})
            pod = {"metadata": {"name": "web", "namespace": "default", "uid": "uid-1"},
                   "spec": {"containers": [{"name": "main"}, {"name": "not-running"}]}}
            collector = ResourceCollector(lambda: [pod], lambda uid, name: runtime,
                                          lambda: None, now=lambda: 1234.5)
            sample = await collector.sample()
            [c] = sample.containers
            assert (c.pod.namespace, c.pod.name, c.container) == ("default", "web", "main")
            assert c.usage.cpu_ns >= 0.35e9 and c.usage.timestamp == 1234.5
            assert c.usage.start_time == started.timestamp()
            assert sample.node is not None and not sample.error
            assert sample.node.cpu_ns > c.usage.cpu_ns  # plus this process's own time
            assert sample.node.memory > c.usage.memory
        finally:
            subprocess.run(["pkill", "-KILL", "-s", str(child.pid)], check=False)
            child.wait()
    runtime.procs.clear()  # the runtime saw it exit
    # The container is gone: the node keeps its CPU (a counter never goes back).
    after = await collector.sample()
    assert after.containers == () and after.node is not None
    assert after.node.cpu_ns >= sample.node.cpu_ns
