"""The process runtime: real processes in the test's own netns (``netns=None``), the
``/proc`` parser, and the fake.

Every process a test starts is registered with the ``reaper`` fixture, which SIGKILLs and
reaps what is left, by pid, even when the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from svcnet.node.runtime import (
    REASON_START_ERROR,
    ContainerKey,
    Exited,
    FakeRuntime,
    NetnsProcessRuntime,
    ProcessSpec,
    Running,
    RuntimeStateError,
    read_proc_stat,
)
from svcnet.util.clock import FakeClock
from tests.waiting import eventually

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
KEY = ContainerKey("uid-1", "app")


class Reaper:
    def __init__(self) -> None:
        self.pids: set[int] = set()

    def add(self, pid: int) -> int:
        self.pids.add(pid)
        return pid

    def cleanup(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


@pytest.fixture
def reaper() -> Iterator[Reaper]:
    r = Reaper()
    try:
        yield r
    finally:
        r.cleanup()


def spec(tmp_path: Path, *argv: str, **kw: object) -> ProcessSpec:
    return ProcessSpec(argv=argv, env=ENV, log_path=tmp_path / "logs" / "0.log", **kw)  # type: ignore[arg-type]


async def settle() -> None:
    """Let every ready task run until it blocks (before moving a FakeClock)."""
    for _ in range(20):
        await asyncio.sleep(0)


def pid_of(rt: NetnsProcessRuntime, key: ContainerKey, reaper: Reaper) -> int:
    proc = rt.get(key)
    assert proc is not None and isinstance(proc.state, Running)
    return reaper.add(proc.state.pid)


async def test_exit_code_and_log(tmp_path: Path, reaper: Reaper) -> None:
    exits: list[ContainerKey] = []
    rt = NetnsProcessRuntime(tmp_path / "state", on_exit=exits.append)
    try:
        proc = await rt.start(KEY, spec(tmp_path, "sh", "-c", "echo out; echo err >&2; exit 3",
                                        attempt=2))
        assert isinstance(proc.state, Running)
        reaper.add(proc.state.pid)
        await eventually(lambda: exits)
        done = rt.get(KEY)
        assert done is not None and isinstance(done.state, Exited)
        assert (done.state.exit_code, done.state.reason, done.attempt) == (3, "Error", 2)
        assert (tmp_path / "logs" / "0.log").read_text() == "out\nerr\n"
        record = json.loads((tmp_path / "state/containers/uid-1/app.json").read_text())
        assert record["state"]["exit_code"] == 3
    finally:
        await rt.close()


async def test_clean_environment_and_working_dir(tmp_path: Path, reaper: Reaper) -> None:
    exits: list[ContainerKey] = []
    rt = NetnsProcessRuntime(tmp_path / "state", on_exit=exits.append)
    os.environ["SVCNET_TEST_SECRET"] = "agent-only"
    try:
        proc = await rt.start(KEY, ProcessSpec(
            argv=("sh", "-c", "pwd; echo ${SVCNET_TEST_SECRET:-none} $GREETING"),
            env={**ENV, "GREETING": "hi"}, log_path=tmp_path / "0.log",
            working_dir=str(tmp_path)))
        assert isinstance(proc.state, Running)
        reaper.add(proc.state.pid)
        await eventually(lambda: exits)
        assert (tmp_path / "0.log").read_text() == f"{tmp_path}\nnone hi\n"
    finally:
        del os.environ["SVCNET_TEST_SECRET"]
        await rt.close()


@pytest.mark.parametrize(("argv", "working_dir", "message"), [
    pytest.param(("no-such-binary-xyz",), None,
                 'exec: "no-such-binary-xyz": executable file not found in $PATH',
                 id="not-in-path"),
    pytest.param(("/nonexistent/bin",), None,
                 'exec: "/nonexistent/bin": stat /nonexistent/bin: no such file or directory',
                 id="absolute-missing"),
    pytest.param(("./plain.txt",), "TMP", 'exec: "./plain.txt": permission denied',
                 id="not-executable"),
    pytest.param(("true",), "/nonexistent-dir",
                 'chdir to cwd ("/nonexistent-dir") set in config.json failed',
                 id="missing-working-dir"),
    pytest.param((), None, "no command specified", id="empty-command"),
])
async def test_start_errors_are_states(tmp_path: Path, argv: tuple[str, ...],
                                       working_dir: str | None, message: str) -> None:
    rt = NetnsProcessRuntime(tmp_path / "state")
    (tmp_path / "plain.txt").write_text("not a program")
    if working_dir == "TMP":
        working_dir = str(tmp_path)
    try:
        proc = await rt.start(KEY, spec(tmp_path, *argv, working_dir=working_dir))
        assert isinstance(proc.state, Exited)
        assert (proc.state.exit_code, proc.state.reason) == (128, REASON_START_ERROR)
        assert message in proc.state.message
    finally:
        await rt.close()


async def test_missing_netns_is_a_start_error(tmp_path: Path) -> None:
    rt = NetnsProcessRuntime(tmp_path / "state", run_dir=tmp_path)
    try:
        proc = await rt.start(KEY, spec(tmp_path, "true", netns="svcnet-t4-pzzzz"))
        assert isinstance(proc.state, Exited)
        assert "network namespace 'svcnet-t4-pzzzz' does not exist" in proc.state.message
    finally:
        await rt.close()


async def test_stop_sigterm(tmp_path: Path, reaper: Reaper) -> None:
    rt = NetnsProcessRuntime(tmp_path / "state")
    try:
        await rt.start(KEY, spec(tmp_path, "sleep", "60"))
        pid_of(rt, KEY, reaper)
        with pytest.raises(RuntimeStateError):
            await rt.start(KEY, spec(tmp_path, "sleep", "60"))
        stopped = await rt.stop(KEY, 5)
        assert stopped is not None and isinstance(stopped.state, Exited)
        assert (stopped.state.exit_code, stopped.state.signal) == (143, signal.SIGTERM)
    finally:
        await rt.close()


async def test_stop_escalates_to_sigkill_and_kills_the_session(tmp_path: Path,
                                                               reaper: Reaper) -> None:
    rt = NetnsProcessRuntime(tmp_path / "state")
    script = "trap '' TERM; sleep 60 & echo $! > child; wait"
    try:
        await rt.start(KEY, ProcessSpec(("sh", "-c", script), ENV, tmp_path / "0.log",
                                        working_dir=str(tmp_path)))
        pid_of(rt, KEY, reaper)
        await eventually(lambda: (tmp_path / "child").exists()
                       and (tmp_path / "child").read_text().strip() != "")
        child = reaper.add(int((tmp_path / "child").read_text()))
        stopped = await rt.stop(KEY, 0.3)
        assert stopped is not None and isinstance(stopped.state, Exited)
        assert stopped.state.exit_code == 137
        # The leader's background child went with it, as with the end of a pod's PID 1.
        await eventually(lambda: (s := read_proc_stat(child)) is None or s.state == "Z")
    finally:
        await rt.close()


async def test_restart_keeps_previous_termination(tmp_path: Path, reaper: Reaper) -> None:
    exits: list[ContainerKey] = []
    rt = NetnsProcessRuntime(tmp_path / "state", on_exit=exits.append)
    try:
        first = await rt.start(KEY, spec(tmp_path, "sh", "-c", "exit 1"))
        assert isinstance(first.state, Running)
        reaper.add(first.state.pid)
        await eventually(lambda: exits)
        second = await rt.start(KEY, spec(tmp_path, "sleep", "60", attempt=1))
        reaper.add(pid_of(rt, KEY, reaper))
        assert second.previous is not None and second.previous.exit_code == 1
        assert second.attempt == 1
    finally:
        await rt.close()


async def test_adopt_after_restart(tmp_path: Path, reaper: Reaper) -> None:
    state = tmp_path / "state"
    rt = NetnsProcessRuntime(state)
    await rt.start(KEY, spec(tmp_path, "sleep", "60", attempt=4))
    pid = pid_of(rt, KEY, reaper)
    done = ContainerKey("uid-1", "done")
    await rt.start(done, spec(tmp_path, "sh", "-c", "exit 0"))
    pid_of(rt, done, reaper)
    await eventually(lambda: not rt.get(done).running)  # type: ignore[union-attr]
    await rt.close()

    exits: list[ContainerKey] = []
    again = NetnsProcessRuntime(state, on_exit=exits.append)
    try:
        adopted = {p.key: p for p in await again.adopt()}
        running, finished = adopted[KEY].state, adopted[done].state
        assert isinstance(running, Running) and running.pid == pid
        assert adopted[KEY].attempt == 4
        assert isinstance(finished, Exited) and finished.exit_code == 0
        assert await again.adopt() == []  # nothing twice
        assert again.live_pids() == {KEY: pid}
        # Not our child any more (in a real restart): its exit code cannot be read...
        os.kill(pid, signal.SIGUSR1)
        await eventually(lambda: exits)
        gone = again.get(KEY)
        assert gone is not None and isinstance(gone.state, Exited)
        assert (gone.state.exit_code, gone.state.reason) == (None, "Unknown")
    finally:
        await again.close()


async def test_adopt_never_takes_a_recycled_pid(tmp_path: Path, reaper: Reaper) -> None:
    state = tmp_path / "state"
    rt = NetnsProcessRuntime(state)
    await rt.start(KEY, spec(tmp_path, "sleep", "60"))
    pid = pid_of(rt, KEY, reaper)
    await rt.close()
    # Make the record describe an older process that had the same pid.
    path = state / "containers" / "uid-1" / "app.json"
    record = json.loads(path.read_text())
    record["start_ticks"] -= 1
    path.write_text(json.dumps(record))
    again = NetnsProcessRuntime(state)
    try:
        (adopted,) = await again.adopt()
        assert isinstance(adopted.state, Exited) and adopted.state.exit_code is None
        assert again.live_pids() == {}
        assert read_proc_stat(pid) is not None  # and the stranger was left alone
        with pytest.raises(RuntimeStateError):
            await rt.start(KEY, spec(tmp_path, "true"))  # the closed runtime refuses work
    finally:
        await again.close()


async def test_adopt_ignores_other_boots_and_bad_records(tmp_path: Path, reaper: Reaper) -> None:
    state = tmp_path / "state"
    rt = NetnsProcessRuntime(state)
    await rt.start(KEY, spec(tmp_path, "sleep", "60"))
    pid_of(rt, KEY, reaper)
    await rt.close()
    path = state / "containers" / "uid-1" / "app.json"
    record = json.loads(path.read_text())
    record["boot_id"] = "another-boot"
    path.write_text(json.dumps(record))
    (state / "containers" / "uid-1" / "junk.json").write_text("{")
    again = NetnsProcessRuntime(state)
    try:
        (adopted,) = await again.adopt()
        assert not adopted.running
    finally:
        await again.close()


async def test_remove(tmp_path: Path, reaper: Reaper) -> None:
    rt = NetnsProcessRuntime(tmp_path / "state")
    try:
        await rt.start(KEY, spec(tmp_path, "sleep", "60"))
        pid_of(rt, KEY, reaper)
        with pytest.raises(RuntimeStateError):
            await rt.remove(KEY)
        await rt.stop(KEY, 1)
        await rt.remove(KEY)
        assert rt.get(KEY) is None
        assert not (tmp_path / "state" / "containers" / "uid-1").exists()
    finally:
        await rt.close()


def test_container_key_refuses_path_tricks() -> None:
    for bad in ("..", "a/b", "", ".hidden"):
        with pytest.raises(ValueError):
            ContainerKey(bad, "app")


def test_read_proc_stat_handles_odd_comm(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    fields = ["S", "1", "42", "40"] + ["0"] * 15 + ["123456"] + ["0"] * 30
    (tmp_path / "42" / "stat").write_text("42 (we) ird (name) " + " ".join(fields) + "\n")
    stat = read_proc_stat(42, tmp_path)
    assert stat is not None
    assert (stat.state, stat.ppid, stat.session, stat.start_ticks) == ("S", 1, 40, 123456)
    assert read_proc_stat(43, tmp_path) is None
    assert read_proc_stat(os.getpid()) is not None


# --- the fake ---------------------------------------------------------------------------------


async def test_fake_runtime_lifecycle(tmp_path: Path) -> None:
    clock = FakeClock()
    exits: list[ContainerKey] = []
    rt = FakeRuntime(clock, on_exit=exits.append)
    rt.missing_executables.add("nope")
    failed = await rt.start(ContainerKey("u", "bad"), spec(tmp_path, "nope"))
    assert isinstance(failed.state, Exited) and failed.state.reason == REASON_START_ERROR
    proc = await rt.start(KEY, spec(tmp_path, "server"))
    assert isinstance(proc.state, Running)
    rt.exit(KEY, 2)
    assert exits == [KEY]
    again = await rt.start(KEY, spec(tmp_path, "server", attempt=1))
    assert again.previous is not None and again.previous.exit_code == 2

    twin = rt.restarted()
    assert twin.get(KEY) is None
    assert {p.key for p in await twin.adopt()} == {KEY, ContainerKey("u", "bad")}
    assert twin.get(KEY) == again  # same pid: adopted, not restarted


async def test_fake_runtime_grace_period() -> None:
    clock = FakeClock()
    rt = FakeRuntime(clock)
    rt.ignores_sigterm.add(KEY)
    await rt.start(KEY, ProcessSpec(("server",), {}, Path("/dev/null")))
    stopping = asyncio.create_task(rt.stop(KEY, 30))
    await settle()
    clock.advance(29)
    await settle()
    assert not stopping.done()
    clock.advance(1)
    stopped = await stopping
    assert stopped is not None and isinstance(stopped.state, Exited)
    assert stopped.state.exit_code == 137


if sys.platform != "linux":  # pragma: no cover
    pytest.skip("Linux only (pidfd)", allow_module_level=True)
