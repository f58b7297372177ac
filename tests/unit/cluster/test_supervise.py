"""The local cluster's supervisor: the restart policy as data, then the real ``svcnet
_supervise`` process running real (small) processes, ``svcnet status`` and ``svcnet down``.

Nothing here needs root or a network namespace: the units are ``sleep``-like Python and shell
processes, each carrying a per-run marker so the test can find (and end) exactly its own.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from svcnet.cluster.down import down
from svcnet.cluster.state import Paths, live_processes, record_pid
from svcnet.cluster.supervise import (
    Decision,
    ExitCause,
    RestartPolicy,
    describe,
    plan_restart,
    pod_row,
    read_status,
    reload_supervisor,
    write_unit,
)

SVCNET = [sys.executable, "-m", "svcnet.cli.main"]
POLICY = RestartPolicy()
KILLED = ExitCause(signal=signal.SIGKILL)


def plan(cause: ExitCause = KILLED, *, uptime: float = 1.0, step: int = 0,
         starts: tuple[float, ...] = (99.0,), now: float = 100.0) -> Decision:
    return plan_restart(POLICY, cause, uptime=uptime, step=step, starts=starts, now=now)


# --- the policy


def test_exit_causes_read_like_systemd_says_them() -> None:
    assert str(ExitCause.from_returncode(-9)) == "killed by signal 9 (SIGKILL)"
    assert str(ExitCause.from_returncode(3)) == "exited with code 3"
    assert ExitCause.from_returncode(0).clean
    assert ExitCause.from_returncode(-signal.SIGTERM).clean
    assert not ExitCause.from_returncode(1).clean
    assert not ExitCause.from_returncode(-signal.SIGSEGV).clean


def test_a_crash_restarts_after_restart_sec() -> None:
    d = plan()
    assert (d.restart, d.delay, d.step, d.why) == (True, 0.1, 1, "restarting in 0.1s")


@pytest.mark.parametrize("cause", [ExitCause(code=0), ExitCause(signal=signal.SIGTERM),
                                   ExitCause(signal=signal.SIGINT)])
def test_an_orderly_stop_is_not_restarted(cause: ExitCause) -> None:
    d = plan(cause)
    assert not d.restart and d.why == "an orderly stop: not restarted"


def test_quick_failures_double_the_wait_up_to_the_cap() -> None:
    delays = []
    step = 0
    for i in range(10):
        d = plan(ExitCause(code=1), uptime=0.5, step=step, starts=(), now=100.0 * i)
        delays.append(d.delay)
        step = d.step
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0, 10.0]


def test_a_stable_run_resets_the_wait() -> None:
    assert plan(uptime=POLICY.reset_after - 0.1, step=6).delay == 6.4
    d = plan(uptime=POLICY.reset_after, step=6)
    assert (d.delay, d.step) == (0.1, 1)


def test_the_start_limit_leaves_a_crash_loop_failed() -> None:
    starts = (95.0, 96.0, 97.0, 98.0, 99.0)
    d = plan(ExitCause(code=1), starts=starts, now=99.5)
    assert not d.restart
    assert d.why == "start limit hit (5 starts within 10s): not restarted"
    # Starts older than the interval (counted from the planned start) no longer count.
    assert plan(ExitCause(code=1), starts=(89.0, *starts[1:]), now=99.5).restart


def test_describe_trusts_only_live_pids() -> None:
    status: dict[str, Any] = {"pid": 10, "started_at": 1000.0, "components": {
        "server": {"state": "running", "pid": 11, "restarts": 0, "started_at": 1000.0,
                   "last_exit": None, "last_exit_at": None},
        "node-1": {"state": "running", "pid": 12, "restarts": 2, "started_at": 1090.0,
                   "last_exit": "killed by signal 9 (SIGKILL)", "last_exit_at": 1089.9},
    }}
    lines, problem = describe("c", status, {"supervisor": 10, "server": 11, "node-1": 12},
                              1100.0)
    assert problem is None
    assert lines[0] == "cluster 'c': supervisor pid 10, up 100s"
    assert lines[1].split() == ["COMPONENT", "STATE", "PID", "RESTARTS", "UPTIME", "LAST",
                                "EXIT"]
    assert lines[2].split() == ["server", "running", "11", "0", "100s", "-"]
    assert lines[3].split() == ["node-1", "running", "12", "2", "10s", "killed", "by",
                                "signal", "9", "(SIGKILL),", "10s", "ago"]
    # The supervisor and node-1 died: nobody updated the file, the pids tell.
    lines, problem = describe("c", status, {"server": 11}, 1100.0)
    assert lines[0] == "cluster 'c': supervisor not running"
    assert lines[2].split()[:2] == ["server", "unsupervised"]
    assert lines[3].split()[:3] == ["node-1", "dead", "-"]
    assert problem == ("cluster 'c' is degraded: the supervisor is not running (nothing is "
                       "restarted); node-1 dead")
    assert describe("c", None, {}, 1100.0) == ([], "cluster 'c' is not running")


def dns_pod(state: dict[str, Any], *, ready: bool = True,
            last: dict[str, Any] | None = None, restarts: int = 0) -> dict[str, Any]:
    cs: dict[str, Any] = {"name": "dns", "state": state, "restartCount": restarts,
                          "lastState": {"terminated": last} if last else {}}
    return {"metadata": {"name": "kube-dns", "uid": "u1"}, "spec": {"nodeName": "node-1"},
            "status": {"conditions": [{"type": "Ready", "status": str(ready)}],
                       "containerStatuses": [cs]}}


def test_pod_rows_come_from_the_pod_status() -> None:
    running = {"running": {"startedAt": "2026-12-06T10:00:00Z"}}
    row = pod_row(dns_pod(running, restarts=1, last={
        "exitCode": 137, "signal": 9, "reason": "Error",
        "finishedAt": "2026-12-06T09:59:59Z"}), 4242)
    assert row == {"state": "running", "pid": 4242, "restarts": 1,
                   "started_at": 1796551200.0,
                   "last_exit": "killed by signal 9 (SIGKILL)",
                   "last_exit_at": 1796551199.0}
    # Killed while adopted after an agent restart: the code is unknown, the API says so.
    row = pod_row(dns_pod(running, ready=False, last={
        "exitCode": 137, "reason": "ContainerStatusUnknown"}), 4242)
    assert (row["state"], row["last_exit"]) == (
        "starting", "exited with code 137, ContainerStatusUnknown")
    row = pod_row(dns_pod({"waiting": {"reason": "CrashLoopBackOff"}}, ready=False), 4242)
    assert (row["state"], row["pid"]) == ("restarting", None)
    assert pod_row(None, None) == {"state": "missing"}
    lines, problem = describe("c", {"pid": 10, "components": {}}, {"supervisor": 10},
                              1796551210.0, {"dns": row})
    assert lines[2].split() == ["dns", "restarting", "-", "0", "-", "-"]
    assert problem == "cluster 'c' is degraded: dns restarting"


# --- the real supervisor process


@dataclass
class Cluster:
    name: str
    home: Path
    paths: Paths
    marker: str
    supervisor: subprocess.Popen[bytes]

    def env(self) -> dict[str, str]:
        return dict(os.environ, SVCNET_HOME=str(self.home))

    def unit(self, name: str, code: str) -> None:
        write_unit(self.paths, name, [sys.executable, "-c", code, self.marker])

    def status(self) -> dict[str, Any]:
        doc = read_status(self.paths)
        assert doc is not None
        comps: dict[str, Any] = doc["components"]
        return comps

    def log(self) -> str:
        return (self.paths.logs / "supervisor.log").read_text()

    def svcnet(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*SVCNET, *args], capture_output=True, text=True,
                              env=self.env(), timeout=60, check=False)

    def wait(self, what: str, cond: Callable[[], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, (f"{what}; status {read_status(self.paths)}; "
                                                 f"supervisor.log:\n{self.log()}")
            time.sleep(0.05)

    def marked_pids(self) -> list[int]:
        """Processes that carry this run's marker (ours only), still running."""
        out = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if self.marker.encode() in (proc / "cmdline").read_bytes().split(b"\0") and \
                        (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    out.append(int(proc.name))
            except OSError:
                continue
        return out


SLEEP = "import time; time.sleep(600)"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    name = f"hs{secrets.token_hex(4)}"
    paths = Paths(tmp_path / name)
    marker = f"svcnet-test-{name}"
    for unit in ("alpha", "beta"):
        write_unit(paths, unit, [sys.executable, "-c", SLEEP, marker])
    paths.logs.mkdir(parents=True)
    with open(paths.logs / "supervisor.log", "ab") as log:
        supervisor = subprocess.Popen(
            [*SVCNET, "_supervise", "--state-dir", str(paths.root)], stdout=log, stderr=log,
            start_new_session=True)
    c = Cluster(name, tmp_path, paths, marker, supervisor)
    record_pid(paths, "supervisor", c.supervisor.pid)
    try:
        c.wait("both units running", lambda: all(
            (read_status(paths) or {}).get("components", {}).get(u, {}).get("state")
            == "running" for u in ("alpha", "beta")))
        yield c
    finally:
        if c.supervisor.poll() is None:
            c.supervisor.kill()
        c.supervisor.wait()
        for pid in c.marked_pids():
            os.kill(pid, signal.SIGKILL)


def test_a_killed_component_comes_back_and_its_cause_is_logged(cluster: Cluster) -> None:
    old = cluster.status()["alpha"]["pid"]
    os.kill(old, signal.SIGKILL)
    cluster.wait("alpha restarted", lambda: cluster.status()["alpha"]["restarts"] == 1
                 and cluster.status()["alpha"]["state"] == "running")
    alpha = cluster.status()["alpha"]
    assert alpha["pid"] != old and alpha["last_exit"] == "killed by signal 9 (SIGKILL)"
    assert live_processes(cluster.paths)["alpha"] == alpha["pid"]
    assert f"alpha (pid {old}) killed by signal 9 (SIGKILL) after " in cluster.log()
    assert "restarting in 0.1s" in cluster.log()
    assert cluster.status()["beta"]["restarts"] == 0
    r = cluster.svcnet("status", "--name", cluster.name)
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[2:]}
    assert rows["alpha"][:4] == ["alpha", "running", str(alpha["pid"]), "1"]
    assert " ".join(rows["alpha"][5:]).startswith("killed by signal 9 (SIGKILL), ")
    assert rows["beta"][:4] == ["beta", "running", str(cluster.status()["beta"]["pid"]), "0"]


def test_units_added_later_start_on_sighup(cluster: Cluster) -> None:
    cluster.unit("gamma", SLEEP)
    reload_supervisor(cluster.paths)
    cluster.wait("gamma running", lambda: cluster.status().get("gamma", {}).get("state")
                 == "running")
    assert cluster.supervisor.poll() is None


def test_a_crash_loop_ends_failed_and_status_says_so(cluster: Cluster) -> None:
    write_unit(cluster.paths, "crash", ["sh", "-c", "echo boom >&2; exit 3", cluster.marker])
    reload_supervisor(cluster.paths)
    cluster.wait("crash failed", lambda: cluster.status().get("crash", {}).get("state")
                 == "failed")
    crash = cluster.status()["crash"]
    assert crash["restarts"] == 4 and crash["last_exit"] == "exited with code 3"
    log = cluster.log()
    assert log.count("exited with code 3 after") == 5
    assert "start limit hit (5 starts within 10s): not restarted" in log
    for delay in ("0.1", "0.2", "0.4", "0.8"):
        assert f"restarting in {delay}s" in log
    assert (cluster.paths.logs / "crash.log").read_text() == "boom\n" * 5
    r = cluster.svcnet("status", "--name", cluster.name)
    assert r.returncode == 1
    assert r.stderr == f"error: cluster {cluster.name!r} is degraded: crash failed\n"


def test_an_orderly_exit_is_not_restarted(cluster: Cluster) -> None:
    cluster.unit("once", "pass")
    reload_supervisor(cluster.paths)
    cluster.wait("once exited", lambda: cluster.status().get("once", {}).get("state")
                 == "exited")
    time.sleep(0.5)
    assert cluster.status()["once"]["restarts"] == 0
    assert "once" not in live_processes(cluster.paths)


def test_stopping_the_supervisor_leaves_the_components_running(cluster: Cluster) -> None:
    pids = {u: cluster.status()[u]["pid"] for u in ("alpha", "beta")}
    cluster.supervisor.terminate()
    assert cluster.supervisor.wait(timeout=10) == 0
    live = live_processes(cluster.paths)
    assert {u: live.get(u) for u in pids} == pids
    assert "supervisor stopping; the components keep running" in cluster.log()
    r = cluster.svcnet("status", "--name", cluster.name)
    assert r.returncode == 1
    assert r.stdout.splitlines()[0] == f"cluster {cluster.name!r}: supervisor not running"
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[2:]}
    assert rows["alpha"][:3] == ["alpha", "unsupervised", str(pids["alpha"])]
    assert r.stderr.startswith(f"error: cluster {cluster.name!r} is degraded: the supervisor "
                               "is not running")


@pytest.mark.parametrize("crash_supervisor_first", [False, True])
def test_down_leaves_nothing_running(cluster: Cluster, monkeypatch: pytest.MonkeyPatch,
                                     crash_supervisor_first: bool) -> None:
    # A component that ignores SIGTERM is SIGKILLed by down: a supervisor still running
    # would restart it (not an orderly stop). Down stops the supervisor first.
    cluster.unit("stubborn", "import signal, time\n"
                             "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                             "time.sleep(600)")
    reload_supervisor(cluster.paths)
    cluster.wait("stubborn running", lambda: cluster.status().get("stubborn", {}).get("state")
                 == "running")
    if crash_supervisor_first:
        os.kill(cluster.supervisor.pid, signal.SIGKILL)
        cluster.supervisor.wait()
    monkeypatch.setenv("SVCNET_HOME", str(cluster.home))
    import svcnet.cluster.state as state

    real_stop = state.stop_processes
    monkeypatch.setattr("svcnet.cluster.down.stop_processes",
                        lambda paths, **kw: real_stop(paths, **{**kw, "grace": 1.0}))
    report = down(cluster.name)
    expected = ["alpha", "beta", "stubborn"] + ([] if crash_supervisor_first
                                                else ["supervisor"])
    assert sorted(report.processes) == expected
    assert report.state_removed and not cluster.paths.root.exists()
    time.sleep(0.5)
    assert cluster.marked_pids() == []
    assert cluster.supervisor.wait(timeout=5) is not None


def test_status_of_a_cluster_that_is_not_there(tmp_path: Path) -> None:
    name = f"hs{secrets.token_hex(4)}"
    r = subprocess.run([*SVCNET, "status", "--name", name], capture_output=True, text=True,
                       env=dict(os.environ, SVCNET_HOME=str(tmp_path)), timeout=60,
                       check=False)
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == f"error: cluster {name!r} is not running\n"
