"""Container processes: start inside a pod's netns, watch, stop, and adopt after a restart.

Theory of operation
-------------------
A "container" here is one process tree started with ``ip netns exec POD_NETNS argv...``:
iproute2 enters the namespace, gives the command a private mount namespace with ``/sys``
remounted (so ``/sys/class/net`` shows the pod's interfaces) and ``/etc/netns/POD/*`` bound
over ``/etc`` (the pod's ``resolv.conf``), then *execs* the command, so the pid we spawn is the
container's main process. It runs in a new session (``setsid``), with stdin on ``/dev/null``
and stdout+stderr appended to a log file, in a clean environment (the pod's, not the agent's).

**Exit detection without threads or polling.** Right after spawning, the runtime opens a
pidfd (``pidfd_open``) and lets the event loop watch it: a pidfd becomes readable when its
process exits. For its own children the runtime then reaps with ``waitid(P_PIDFD)``, which
gives the exit status race-free. Exit codes follow the container runtimes: the process's own
code, or 128 + signal when a signal killed it (137 for SIGKILL, 143 for SIGTERM).

**Signals never hit a stranger.** Every signal goes through the pidfd (``pidfd_send_signal``),
which refers to one process for its whole life, never to a later process that reuses the pid.
When the main process ends, what is left of its session (a shell's children, say) is killed,
as the end of a pod's PID 1 would do in Kubernetes; for our own children this happens while
the main process is still an unreaped zombie, so the session id cannot have been reused.

**Agent restarts.** Each container has a record file, ``STATE/containers/<pod uid>/<name>.json``,
written atomically at start and at exit: pid, the process's start time in clock ticks since
boot (field 22 of ``/proc/<pid>/stat``) and the boot id. :meth:`NetnsProcessRuntime.adopt`
reads them back; a process is adopted only if a process with that pid exists *and* has the
same start time on the same boot, then a pidfd is opened and the check repeated, so that a
recycled pid is never adopted, watched or signalled. An adopted process is not our child, so
its exit status cannot be read: it is reported as ``exit_code=None`` (the pod status shows it
the way the kubelet shows a container it lost track of) unless we killed it with SIGKILL.
Records of containers that exited while the agent was down come back as exited, same rule.

**Start failures are states, not exceptions.** A missing executable or working directory, or
a vanished netns, yields an :class:`Exited` with reason ``StartError``, exit code 128 and a
runc-style message (``exec: "foo": executable file not found in $PATH``), just as the
kubelet reports a container its runtime could not start. Nothing a pod spec says can raise
out of :meth:`start`.

Records also remember the attempt number (the restart count, as CRI's ``attempt`` does) and
the previous termination, which is what the pod status needs for ``restartCount`` and
``lastState`` across agent restarts.

Why this module is long: The process runtime: starting, adopting and reaping container processes
share the record format and the reaper.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol

from svcnet.node import mounter
from svcnet.node.files import atomic_write
from svcnet.util.clock import Clock, RealClock
from svcnet.util.nsthread import NETNS_RUN_DIR

__all__ = [
    "REASON_COMPLETED",
    "REASON_ERROR",
    "REASON_START_ERROR",
    "REASON_UNKNOWN",
    "ContainerKey",
    "ContainerProcess",
    "Exited",
    "FakeRuntime",
    "NetnsProcessRuntime",
    "ProcessRuntime",
    "ProcessSpec",
    "ProcessState",
    "Running",
    "RuntimeStateError",
    "read_proc_stat",
]

log = logging.getLogger(__name__)

REASON_COMPLETED: Final = "Completed"
REASON_ERROR: Final = "Error"
REASON_START_ERROR: Final = "StartError"
REASON_UNKNOWN: Final = "Unknown"
START_ERROR_EXIT_CODE: Final = 128
_SIGKILL_WAIT: Final = 10.0
_SAFE_PART: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class RuntimeStateError(Exception):
    """A call that makes no sense in the container's state (start while running, ...)."""


@dataclass(frozen=True, slots=True, order=True)
class ContainerKey:
    pod_uid: str
    container: str

    def __post_init__(self) -> None:
        # Both parts become path components of the record file.
        for part in (self.pod_uid, self.container):
            if not _SAFE_PART.fullmatch(part):
                raise ValueError(f"unsafe container key part {part!r}")

    def __str__(self) -> str:
        return f"{self.pod_uid}/{self.container}"


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """What to run. ``netns=None`` runs in the agent's own namespace (tests, host network)."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    log_path: Path
    netns: str | None = None
    working_dir: str | None = None
    attempt: int = 0
    mount_plan: Mapping[str, Any] | None = None
    """Mounts to make in the container's mount namespace before argv runs (see
    :mod:`svcnet.node.mounter`): ``{"staging": dir, "mounts": [{"source", "target",
    "read_only", "volume"}...]}``."""
    cri: object | None = None
    """For a container runtime (:class:`svcnet.node.cri.CriContainer`): the image, the
    unmerged command and args, the sandbox; the process runtime ignores it."""

    def under_mount(self, path: str) -> bool:
        """Whether ``path`` (absolute) is at or below one of the mount targets: it exists
        only inside the container's mount namespace."""
        for m in (self.mount_plan or {}).get("mounts") or ():
            target = str(m["target"]).rstrip("/") or "/"
            if path == target or path.startswith(target + "/") or target == "/":
                return True
        return False


@dataclass(frozen=True, slots=True)
class Running:
    pid: int
    started_at: datetime


@dataclass(frozen=True, slots=True)
class Exited:
    """A finished process. ``exit_code`` is None when nobody could read it (see module doc)."""

    exit_code: int | None
    finished_at: datetime
    reason: str
    started_at: datetime | None = None
    message: str = ""
    signal: int | None = None


ProcessState = Running | Exited


@dataclass(frozen=True, slots=True)
class ContainerProcess:
    key: ContainerKey
    attempt: int
    state: ProcessState
    previous: Exited | None = None
    log_path: Path | None = None
    ids: Mapping[int, str] = field(default_factory=dict)
    """A container runtime's ids of this run and the previous one, by attempt
    (``containerd://<id>``); without them, the pod status shows svcnet's own."""
    image_id: str = ""
    """The image the runtime ran, as ``imageID`` shows it (``repo@sha256:...``)."""

    @property
    def running(self) -> bool:
        return isinstance(self.state, Running)


ExitCallback = Callable[[ContainerKey], None]


class ProcessRuntime(Protocol):
    on_exit: ExitCallback | None
    """Called (on the event loop) whenever a watched process exits."""

    async def start(self, key: ContainerKey, spec: ProcessSpec) -> ContainerProcess:
        """Start the container's process (never raises for what the spec says; a process
        that could not start comes back :class:`Exited` with reason ``StartError``). The
        container's current state, if any, becomes ``previous``. Raises
        :class:`RuntimeStateError` if it is running."""
        ...

    async def stop(self, key: ContainerKey, grace_seconds: float) -> ContainerProcess | None:
        """SIGTERM, then SIGKILL after ``grace_seconds``; returns once it has exited."""
        ...

    def get(self, key: ContainerKey) -> ContainerProcess | None: ...

    def containers(self) -> list[ContainerProcess]: ...

    async def adopt(self) -> list[ContainerProcess]:
        """Load the records a previous agent left; re-attach to processes still running."""
        ...

    async def remove(self, key: ContainerKey) -> None:
        """Forget a container that is not running (its record file too)."""
        ...

    async def close(self) -> None:
        """Stop watching. Processes keep running, for the next agent to adopt."""
        ...


# --- /proc --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcStat:
    pid: int
    state: str
    ppid: int
    session: int
    start_ticks: int


def read_proc_stat(pid: int, proc: Path = Path("/proc")) -> ProcStat | None:
    """Parse ``/proc/<pid>/stat``; None if there is no such process."""
    try:
        raw = (proc / str(pid) / "stat").read_bytes().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) is in parentheses and may itself hold spaces and ')': split at the last.
    rest = raw[raw.rindex(")") + 2:].split()
    return ProcStat(pid=pid, state=rest[0], ppid=int(rest[1]), session=int(rest[3]),
                    start_ticks=int(rest[19]))


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _netns_inode_of(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


# --- start-time checks (what runc would refuse) ----------------------------------------------


def _start_problem(spec: ProcessSpec, run_dir: Path) -> str | None:
    if not spec.argv or not spec.argv[0]:
        return "no command specified"
    if spec.netns is not None and not (run_dir / spec.netns).exists():
        return f"network namespace {spec.netns!r} does not exist"
    cwd = spec.working_dir or "/"
    if spec.under_mount(cwd):
        return None  # the mounter checks it, once the mounts exist
    if not os.path.isdir(cwd):
        return f'chdir to cwd ("{cwd}") set in config.json failed: no such file or directory'
    exe = spec.argv[0]
    if "/" not in exe:
        path = spec.env.get("PATH", os.defpath)
        if shutil.which(exe, path=path) is None:
            return f'exec: "{exe}": executable file not found in $PATH'
        return None
    full = os.path.join(cwd, exe)
    if spec.under_mount(full):
        return None
    if not os.path.exists(full):
        return f'exec: "{exe}": stat {exe}: no such file or directory'
    if os.path.isdir(full) or not os.access(full, os.X_OK):
        return f'exec: "{exe}": permission denied'
    return None


def _start_error(spec: ProcessSpec, now: datetime, problem: str) -> Exited:
    return Exited(exit_code=START_ERROR_EXIT_CODE, finished_at=now, reason=REASON_START_ERROR,
                  message=f"failed to start container process: {problem}")


def _exit_reason(code: int | None) -> str:
    if code is None:
        return REASON_UNKNOWN
    return REASON_COMPLETED if code == 0 else REASON_ERROR


# --- the real runtime ---------------------------------------------------------------------


@dataclass
class _Live:
    """Book-keeping for a process we watch."""

    pid: int
    pidfd: int
    start_ticks: int
    is_child: bool
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    sigkilled: bool = False


class NetnsProcessRuntime:
    """:class:`ProcessRuntime` over ``ip netns exec``; see the module docstring."""

    def __init__(self, state_dir: Path, *, clock: Clock | None = None,
                 on_exit: ExitCallback | None = None, ip: str = "ip",
                 run_dir: Path = NETNS_RUN_DIR) -> None:
        self._dir = state_dir / "containers"
        self._clock = clock or RealClock()
        self.on_exit = on_exit
        # Resolved now: the child's PATH is the pod's, which need not contain iproute2.
        self._ip = shutil.which(ip) or ip
        self._run_dir = run_dir
        self._boot_id = _boot_id()
        self._containers: dict[ContainerKey, ContainerProcess] = {}
        self._live: dict[ContainerKey, _Live] = {}
        self._netns_inode: dict[ContainerKey, int | None] = {}
        self._closed = False

    # --- queries

    def get(self, key: ContainerKey) -> ContainerProcess | None:
        return self._containers.get(key)

    def containers(self) -> list[ContainerProcess]:
        return [self._containers[k] for k in sorted(self._containers)]

    def live_pids(self) -> dict[ContainerKey, int]:
        return {k: live.pid for k, live in self._live.items()}

    # --- start

    async def start(self, key: ContainerKey, spec: ProcessSpec) -> ContainerProcess:
        self._check_open()
        current = self._containers.get(key)
        if current is not None and current.running:
            raise RuntimeStateError(f"container {key} is running")
        previous = current.state if current is not None else None
        assert previous is None or isinstance(previous, Exited)
        now = self._clock.now()
        problem = _start_problem(spec, self._run_dir)
        if problem is None:
            try:
                live = self._spawn(spec)
            except OSError as exc:
                problem = f"{exc.strerror or exc}: {exc.filename or spec.argv[0]}"
        if problem is not None:
            log.info("container %s could not start: %s", key, problem)
            proc = ContainerProcess(key, spec.attempt, _start_error(spec, now, problem),
                                    previous, spec.log_path)
            self._containers[key] = proc
            self._save(proc, None)
            return proc
        proc = ContainerProcess(key, spec.attempt, Running(live.pid, now), previous,
                                spec.log_path)
        self._containers[key] = proc
        self._live[key] = live
        self._netns_inode[key] = self._netns_inode_for(spec.netns)
        self._save(proc, live)
        self._watch(key, live)
        return proc

    def _netns_inode_for(self, netns: str | None) -> int | None:
        # The bind mount in /run/netns has the namespace's own inode number, the one
        # /proc/<pid>/ns/net shows for every process inside it.
        try:
            return os.stat(self._run_dir / netns if netns else "/proc/self/ns/net").st_ino
        except OSError:
            return None

    def _spawn(self, spec: ProcessSpec) -> _Live:
        argv = list(spec.argv)
        cwd = spec.working_dir or "/"
        if spec.mount_plan is not None:
            # The mounter makes the mounts, enters the working directory, then execs argv.
            argv = mounter.command_line(sys.executable, {**spec.mount_plan, "cwd": cwd}, argv)
            cwd = "/"
        if spec.netns is not None:
            argv = [self._ip, "netns", "exec", spec.netns, *argv]
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(spec.log_path, "ab") as log_file:
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                env=dict(spec.env), cwd=cwd, start_new_session=True)
        pid = popen.pid
        # We reap this child ourselves (waitid on its pidfd). Marking the Popen finished keeps
        # its __del__ from warning about a running child and from queueing it for
        # subprocess._cleanup(), which would reap it behind our back.
        popen.returncode = 0
        pidfd = os.pidfd_open(pid)
        stat = read_proc_stat(pid)
        # An unreaped child cannot vanish from /proc (it stays a zombie), so stat is there.
        assert stat is not None
        return _Live(pid=pid, pidfd=pidfd, start_ticks=stat.start_ticks, is_child=True)

    # --- watching

    def _watch(self, key: ContainerKey, live: _Live) -> None:
        asyncio.get_running_loop().add_reader(live.pidfd, self._on_readable, key, live)

    def _on_readable(self, key: ContainerKey, live: _Live) -> None:
        code: int | None = None
        sig: int | None = None
        if live.is_child:
            # Peek (WNOWAIT) first: kill the rest of the session while the leader is still an
            # unreaped zombie, so its pid, hence the session id, cannot have been reused.
            try:
                info = os.waitid(os.P_PIDFD, live.pidfd, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                info = None
            if info is None:
                return  # spurious wake-up; the reader stays armed
            self._kill_session(key, live)
            with contextlib.suppress(ChildProcessError):
                os.waitid(os.P_PIDFD, live.pidfd, os.WEXITED | os.WNOHANG)
            if info.si_code == os.CLD_EXITED:
                code = info.si_status
            else:
                sig = info.si_status
                code = 128 + sig
        else:
            self._kill_session(key, live)
            if live.sigkilled:
                sig, code = signal.SIGKILL, 128 + signal.SIGKILL
        self._finish(key, live, code, sig)

    def _finish(self, key: ContainerKey, live: _Live, code: int | None, sig: int | None,
                message: str = "") -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(live.pidfd)
        os.close(live.pidfd)
        self._live.pop(key, None)
        proc = self._containers[key]
        started = proc.state.started_at if isinstance(proc.state, Running) else None
        if code is None and not message:
            message = ("the container exited while it was not the node agent's child "
                       "(adopted after an agent restart); its exit code is unknown")
        exited = Exited(exit_code=code, finished_at=self._clock.now(), reason=_exit_reason(code),
                        started_at=started, message=message, signal=sig)
        proc = replace(proc, state=exited)
        self._containers[key] = proc
        self._save(proc, None)
        live.exited.set()
        log.info("container %s (pid %d) exited: %s", key, live.pid,
                 "unknown status" if code is None else f"code {code}")
        if self.on_exit is not None:
            self.on_exit(key)

    def _kill_session(self, key: ContainerKey, live: _Live) -> None:
        """SIGKILL every other process of the container's session (same netns too)."""
        netns_inode = self._netns_inode.get(key)
        for pid in _session_members(live.pid, live.start_ticks):
            if pid == live.pid:
                continue
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                continue
            try:
                # Re-check through the pidfd-pinned pid: still in the session, still younger
                # than the leader, and in the container's netns.
                stat = read_proc_stat(pid)
                if (stat is None or stat.session != live.pid
                        or stat.start_ticks < live.start_ticks
                        or (netns_inode is not None and _netns_inode_of(pid) != netns_inode)):
                    continue
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
            finally:
                os.close(fd)

    # --- stop

    async def stop(self, key: ContainerKey, grace_seconds: float) -> ContainerProcess | None:
        live = self._live.get(key)
        if live is None:
            return self._containers.get(key)
        self._signal(live, signal.SIGTERM)
        if grace_seconds > 0 and not await self._wait_exit(live, grace_seconds):
            log.info("container %s ignored SIGTERM for %ss; killing it", key, grace_seconds)
        if not live.exited.is_set():
            live.sigkilled = True
            self._signal(live, signal.SIGKILL)
            self._kill_session(key, live)
            if not await self._wait_exit(live, _SIGKILL_WAIT):
                raise RuntimeStateError(f"container {key} (pid {live.pid}) survived SIGKILL")
        return self._containers.get(key)

    def _signal(self, live: _Live, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(live.pidfd, sig)

    async def _wait_exit(self, live: _Live, seconds: float) -> bool:
        waiter = asyncio.ensure_future(live.exited.wait())
        timer = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, timer):
                task.cancel()
            await asyncio.gather(waiter, timer, return_exceptions=True)
        return live.exited.is_set()

    # --- restart recovery

    async def adopt(self) -> list[ContainerProcess]:
        self._check_open()
        adopted: list[ContainerProcess] = []
        if not self._dir.is_dir():
            return adopted
        for path in sorted(self._dir.glob("*/*.json")):
            try:
                record: dict[str, Any] = json.loads(path.read_text())
                key = ContainerKey(record["pod_uid"], record["container"])
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable container record %s: %s", path, exc)
                continue
            if key in self._containers:
                continue
            proc = self._adopt_one(key, record)
            self._containers[key] = proc
            adopted.append(proc)
        return adopted

    def _adopt_one(self, key: ContainerKey, record: dict[str, Any]) -> ContainerProcess:
        previous = _exited_from(record.get("previous"))
        log_path = Path(record["log_path"]) if record.get("log_path") else None
        attempt = int(record.get("attempt", 0))
        state = _exited_from(record.get("state"))
        if state is not None:
            return ContainerProcess(key, attempt, state, previous, log_path)
        started_at = datetime.fromisoformat(record["started_at"])
        pid, ticks = int(record["pid"]), int(record["start_ticks"])
        live = self._reattach(pid, ticks, record.get("boot_id", ""))
        if live is None:
            exited = Exited(exit_code=None, finished_at=self._clock.now(), reason=REASON_UNKNOWN,
                            started_at=started_at,
                            message="the container exited while the node agent was not "
                                    "running; its exit code is unknown")
            proc = ContainerProcess(key, attempt, exited, previous, log_path)
            self._save(proc, None)
            return proc
        proc = ContainerProcess(key, attempt, Running(pid, started_at), previous, log_path)
        self._live[key] = live
        self._netns_inode[key] = record.get("netns_inode")
        self._watch(key, live)
        log.info("adopted container %s (pid %d)", key, pid)
        return proc

    def _reattach(self, pid: int, ticks: int, boot_id: str) -> _Live | None:
        if boot_id != self._boot_id:
            return None
        stat = read_proc_stat(pid)
        if stat is None or stat.start_ticks != ticks or stat.state in ("Z", "X"):
            return None
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return None
        # The pidfd pins whatever process has this pid now; check it is still the one we
        # recorded (the pid may have been recycled between the stat read and pidfd_open).
        stat = read_proc_stat(pid)
        if stat is None or stat.start_ticks != ticks:
            os.close(pidfd)
            return None
        return _Live(pid=pid, pidfd=pidfd, start_ticks=ticks, is_child=False)

    # --- forgetting, closing

    async def remove(self, key: ContainerKey) -> None:
        if key in self._live:
            raise RuntimeStateError(f"container {key} is running; stop it first")
        self._containers.pop(key, None)
        self._netns_inode.pop(key, None)
        path = self._record_path(key)
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # only once the pod's last container is gone

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        for live in self._live.values():
            loop.remove_reader(live.pidfd)
            os.close(live.pidfd)
        self._live.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeStateError("runtime is closed")

    # --- records

    def _record_path(self, key: ContainerKey) -> Path:
        return self._dir / key.pod_uid / f"{key.container}.json"

    def _save(self, proc: ContainerProcess, live: _Live | None) -> None:
        record: dict[str, Any] = {
            "pod_uid": proc.key.pod_uid, "container": proc.key.container,
            "attempt": proc.attempt,
            "log_path": str(proc.log_path) if proc.log_path else None,
            "previous": _exited_to(proc.previous),
        }
        if isinstance(proc.state, Running):
            assert live is not None
            record |= {"pid": proc.state.pid, "start_ticks": live.start_ticks,
                       "boot_id": self._boot_id,
                       "started_at": proc.state.started_at.isoformat(),
                       "netns_inode": self._netns_inode.get(proc.key), "state": None}
        else:
            record["state"] = _exited_to(proc.state)
        atomic_write(self._record_path(proc.key), json.dumps(record, sort_keys=True) + "\n")


def _session_members(sid: int, min_start_ticks: int) -> list[int]:
    members: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = read_proc_stat(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
        if stat is not None and stat.session == sid and stat.start_ticks >= min_start_ticks:
            members.append(stat.pid)
    return members


def _exited_to(state: Exited | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {"exit_code": state.exit_code, "finished_at": state.finished_at.isoformat(),
            "reason": state.reason, "message": state.message, "signal": state.signal,
            "started_at": state.started_at.isoformat() if state.started_at else None}


def _exited_from(raw: Any) -> Exited | None:
    if not isinstance(raw, dict):
        return None
    return Exited(
        exit_code=raw["exit_code"], finished_at=datetime.fromisoformat(raw["finished_at"]),
        reason=raw["reason"], message=raw.get("message", ""), signal=raw.get("signal"),
        started_at=datetime.fromisoformat(raw["started_at"]) if raw.get("started_at") else None)


# --- the fake -------------------------------------------------------------------------------


class FakeRuntime:
    """An in-memory :class:`ProcessRuntime` for pod-runner tests.

    Processes "run" until :meth:`exit` says they ended. ``missing_executables`` makes starts
    fail like a missing binary does; keys in ``ignores_sigterm`` survive SIGTERM until the
    grace period passes on the clock. :meth:`restarted` returns a fresh runtime that sees the
    same records, as a restarted agent would (running processes keep their pids).
    """

    def __init__(self, clock: Clock, *, on_exit: ExitCallback | None = None) -> None:
        self.clock = clock
        self.on_exit = on_exit
        self.missing_executables: set[str] = set()
        self.ignores_sigterm: set[ContainerKey] = set()
        self.sigterm_exit_code = 143
        self.specs: dict[ContainerKey, ProcessSpec] = {}
        self.calls: list[tuple[str, ContainerKey]] = []
        self._containers: dict[ContainerKey, ContainerProcess] = {}
        self._records: dict[ContainerKey, ContainerProcess] = {}
        self._exited: dict[ContainerKey, asyncio.Event] = {}
        self._next_pid = 1000

    def get(self, key: ContainerKey) -> ContainerProcess | None:
        return self._containers.get(key)

    def containers(self) -> list[ContainerProcess]:
        return [self._containers[k] for k in sorted(self._containers)]

    async def start(self, key: ContainerKey, spec: ProcessSpec) -> ContainerProcess:
        self.calls.append(("start", key))
        current = self._containers.get(key)
        if current is not None and current.running:
            raise RuntimeStateError(f"container {key} is running")
        previous = current.state if current is not None else None
        assert previous is None or isinstance(previous, Exited)
        self.specs[key] = spec
        now = self.clock.now()
        state: ProcessState
        if not spec.argv:
            state = _start_error(spec, now, "no command specified")
        elif spec.argv[0] in self.missing_executables:
            state = _start_error(
                spec, now, f'exec: "{spec.argv[0]}": executable file not found in $PATH')
        else:
            self._next_pid += 1
            state = Running(self._next_pid, now)
            self._exited[key] = asyncio.Event()
        return self._set(ContainerProcess(key, spec.attempt, state, previous, spec.log_path))

    def _set(self, proc: ContainerProcess) -> ContainerProcess:
        self._containers[proc.key] = proc
        self._records[proc.key] = proc
        return proc

    def exit(self, key: ContainerKey, code: int | None, *, sig: int | None = None) -> None:
        """The process ends on its own with ``code`` (None: unknown, as after adoption)."""
        proc = self._containers[key]
        if not isinstance(proc.state, Running):
            raise RuntimeStateError(f"container {key} is not running")
        self._set(replace(proc, state=Exited(
            exit_code=code, finished_at=self.clock.now(), reason=_exit_reason(code),
            started_at=proc.state.started_at, signal=sig)))
        self._exited.pop(key).set()
        if self.on_exit is not None:
            self.on_exit(key)

    async def stop(self, key: ContainerKey, grace_seconds: float) -> ContainerProcess | None:
        self.calls.append(("stop", key))
        proc = self._containers.get(key)
        if proc is None or not proc.running:
            return proc
        if key in self.ignores_sigterm:
            exited = self._exited[key]
            timer = asyncio.ensure_future(self.clock.sleep(grace_seconds))
            waiter = asyncio.ensure_future(exited.wait())
            await asyncio.wait({timer, waiter}, return_when=asyncio.FIRST_COMPLETED)
            for task in (timer, waiter):
                task.cancel()
            await asyncio.gather(timer, waiter, return_exceptions=True)
            if key in self._exited:
                self.exit(key, 128 + signal.SIGKILL, sig=signal.SIGKILL)
        else:
            self.exit(key, self.sigterm_exit_code,
                      sig=signal.SIGTERM if self.sigterm_exit_code == 143 else None)
        return self._containers[key]

    async def adopt(self) -> list[ContainerProcess]:
        adopted = [p for k, p in sorted(self._records.items()) if k not in self._containers]
        for proc in adopted:
            self._containers[proc.key] = proc
            if proc.running:
                self._exited[proc.key] = asyncio.Event()
        return adopted

    async def remove(self, key: ContainerKey) -> None:
        self.calls.append(("remove", key))
        proc = self._containers.get(key)
        if proc is not None and proc.running:
            raise RuntimeStateError(f"container {key} is running; stop it first")
        self._containers.pop(key, None)
        self._records.pop(key, None)

    async def close(self) -> None:
        pass

    def restarted(self, *, on_exit: ExitCallback | None = None) -> FakeRuntime:
        """A new runtime over the same records, knowing nothing until :meth:`adopt`."""
        twin = FakeRuntime(self.clock, on_exit=on_exit)
        twin._records = self._records
        twin._next_pid = self._next_pid
        twin.missing_executables = self.missing_executables
        return twin
