"""The local cluster's supervisor: restart a crashed component with back-off, say why it died.

Theory of operation
-------------------
kind and k3s leave this job to systemd (kind's ``kubelet.service``, k3s's ``k3s.service``);
the rules here are systemd's, from ``src/core/service.c`` and ``systemd.service(5)``:

* **Restart=on-failure.** A component is restarted when it exits with a non-zero code or is
  killed by a signal other than the "clean" ones (SIGHUP, SIGINT, SIGTERM, SIGPIPE). Exit code
  0 or a clean signal is an orderly stop: the component stays down (``exited``).
* **RestartSec, growing.** The first restart waits ``restart_sec`` (systemd's 100 ms); each
  further restart without a stable run in between doubles the wait, up to ``max_delay``
  (systemd 254's ``RestartSteps=``/``RestartMaxDelaySec=``). A run that lasted
  ``reset_after`` seconds or more resets the wait to ``restart_sec``.
* **Start limit.** More than ``start_limit_burst`` starts within ``start_limit_interval``
  seconds (systemd's defaults, 5 in 10 s) put the component in ``failed``: a component that
  cannot stay up is left down with its last exit cause, instead of being restarted forever.

:func:`plan_restart` is that policy as a pure function; :class:`Supervisor` applies it.

The supervisor is a process of its own (``svcnet _supervise``), started by ``svcnet up`` in a
new session and recorded in ``pids/`` like every other process, so it outlives ``up`` in
``--detach`` mode and is the same in the foreground. It runs the *units* in the state
directory (``units/<name>.json``: argv), reading new ones when it starts and on SIGHUP, which
is how ``up`` adds the server, the node agents and the NodePort forwarder in turn. Each
component runs in its own session with stdout and stderr appended to ``logs/<name>.log``; its
pid and start time go to ``pids/<name>.json`` at each start, so ``svcnet down`` finds every
process even after the supervisor died. Exits are seen through a pidfd (readable when the
process ends) and reaped with ``waitpid``; each exit is logged with its cause to
``logs/supervisor.log``, and ``supervisor.json`` is rewritten (atomically) on every change:
what ``svcnet status`` reads.

On SIGTERM or SIGINT the supervisor stops *supervising* and exits; the components keep
running. ``svcnet down`` stops the supervisor first, so it does not restart what ``down``
then stops in its own order (agents, pods, server). Pods (the cluster DNS among them) are
not supervised here: their node agent restarts their containers, as the kubelet does;
``svcnet status`` shows the cluster DNS pod's container beside the supervised processes, from
the API (restarts, last termination) and its agent's container record (the pid).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from svcnet.api.errors import StatusError
from svcnet.apiserver.tables import human_duration
from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.client.rest import PODS, RESTClient, TransportError
from svcnet.cluster.networks import read_network
from svcnet.cluster.state import Paths, cluster_dir, live_processes, record_pid, start_time

log = logging.getLogger(__name__)

CLEAN_SIGNALS = frozenset({signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE})


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    restart_sec: float = 0.1
    max_delay: float = 10.0
    reset_after: float = 10.0
    start_limit_burst: int = 5
    start_limit_interval: float = 10.0


@dataclass(frozen=True, slots=True)
class ExitCause:
    """How a process ended: its exit code, or the signal that killed it."""

    code: int | None = None
    signal: int | None = None

    @classmethod
    def from_returncode(cls, returncode: int) -> ExitCause:
        """From :attr:`subprocess.Popen.returncode` (negative: killed by that signal)."""
        return cls(signal=-returncode) if returncode < 0 else cls(code=returncode)

    @property
    def clean(self) -> bool:
        """An orderly stop in systemd's sense (exit 0 or a clean signal)."""
        if self.signal is not None:
            return self.signal in CLEAN_SIGNALS
        return self.code == 0

    def __str__(self) -> str:
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = "unknown"
            return f"killed by signal {self.signal} ({name})"
        return f"exited with code {self.code}"


@dataclass(frozen=True, slots=True)
class Decision:
    restart: bool
    delay: float
    step: int
    """Restarts since the last stable run, this one included (the back-off exponent + 1)."""
    why: str


def plan_restart(policy: RestartPolicy, cause: ExitCause, *, uptime: float, step: int,
                 starts: Sequence[float], now: float) -> Decision:
    """What to do after a component exited ``cause`` having run ``uptime`` seconds.

    ``step`` counts the restarts since its last stable run, ``starts`` are the monotonic
    times of its recent starts.
    """
    if cause.clean:
        return Decision(False, 0.0, step, "an orderly stop: not restarted")
    step = 0 if uptime >= policy.reset_after else step
    delay = min(policy.max_delay, policy.restart_sec * 2 ** step)
    at = now + delay
    recent = [t for t in starts if at - t < policy.start_limit_interval]
    if len(recent) >= policy.start_limit_burst:
        return Decision(False, 0.0, step,
                        f"start limit hit ({len(recent)} starts within "
                        f"{policy.start_limit_interval:g}s): not restarted")
    return Decision(True, delay, step + 1, f"restarting in {delay:g}s")


# --- units: what to run, written by `svcnet up`


def reload_supervisor(paths: Paths, *, wait: float = 30.0) -> None:
    """Have the running supervisor start the units written since it last read them."""
    deadline = time.monotonic() + wait
    while True:
        # The recorded supervisor (pid and start time: never a stranger that reused the pid),
        # once it has written its status: then its handlers are in place and SIGHUP, whose
        # default action is to terminate, reloads it instead.
        pid = live_processes(paths).get("supervisor")
        if pid is not None and (read_status(paths) or {}).get("pid") == pid:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the supervisor is not running; see {paths.logs}/supervisor.log")
        time.sleep(0.02)
    os.kill(pid, signal.SIGHUP)


def write_unit(paths: Paths, name: str, argv: Sequence[str]) -> None:
    _write_atomic(paths.units / f"{name}.json", {"name": name, "argv": list(argv)})


def read_units(paths: Paths) -> dict[str, list[str]]:
    units: dict[str, list[str]] = {}
    for f in sorted(paths.units.glob("*.json")) if paths.units.is_dir() else []:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            doc = json.loads(f.read_text())
            units[f.stem] = [str(a) for a in doc["argv"]]
    return units


def read_status(paths: Paths) -> dict[str, Any] | None:
    try:
        doc = json.loads(paths.supervisor_status.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _write_atomic(path: Path, doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, path)


# --- the supervisor


@dataclass
class ComponentStatus:
    """One component as ``supervisor.json`` shows it (times are wall-clock seconds)."""

    state: str = "starting"
    """starting, running, restarting (waiting out its back-off), exited or failed."""
    pid: int | None = None
    restarts: int = 0
    started_at: float | None = None
    last_exit: str | None = None
    last_exit_at: float | None = None
    next_start_at: float | None = None


@dataclass
class _Component:
    name: str
    argv: list[str]
    status: ComponentStatus = field(default_factory=ComponentStatus)
    step: int = 0
    starts: list[float] = field(default_factory=list)


async def wait_exit(popen: subprocess.Popen[bytes]) -> int:
    """Wait, without a thread, until a child exits (its pidfd turns readable); reap it."""
    loop = asyncio.get_running_loop()
    pidfd = os.pidfd_open(popen.pid)
    exited = asyncio.Event()
    loop.add_reader(pidfd, exited.set)
    try:
        await exited.wait()
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    return popen.wait()


class Supervisor:
    def __init__(self, paths: Paths, policy: RestartPolicy | None = None, *,
                 wall: Callable[[], float] = time.time) -> None:
        self.paths = paths
        self.policy = policy or RestartPolicy()
        self._wall = wall
        self._components: dict[str, _Component] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._started_at = wall()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Supervise until SIGTERM/SIGINT (or ``stop``); the components keep running."""
        loop = asyncio.get_running_loop()
        stop = stop or asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        log.info("supervisor started (pid %d)", os.getpid())
        self.reload()
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            log.info("supervisor stopping; the components keep running")
            self._save(running=False)

    def reload(self) -> None:
        """Start the units not supervised yet."""
        for name, argv in read_units(self.paths).items():
            if name in self._components:
                continue
            comp = self._components[name] = _Component(name, argv)
            task = asyncio.get_running_loop().create_task(self._keep(comp), name=name)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._save()

    async def _keep(self, comp: _Component) -> None:
        while True:
            now = time.monotonic()
            comp.starts = [t for t in comp.starts
                           if now - t < self.policy.start_limit_interval] + [now]
            popen, cause = self._start(comp)
            if popen is not None:
                cause = ExitCause.from_returncode(await wait_exit(popen))
            assert cause is not None
            uptime = time.monotonic() - now
            decision = plan_restart(self.policy, cause, uptime=uptime, step=comp.step,
                                    starts=comp.starts, now=time.monotonic())
            st = comp.status
            pid = f" (pid {st.pid})" if popen is not None else ""
            log.warning("%s%s %s after %.1fs; %s", comp.name, pid, cause, uptime, decision.why)
            st.last_exit, st.last_exit_at, st.pid = str(cause), self._wall(), None
            comp.step = decision.step
            if not decision.restart:
                st.state = "exited" if cause.clean else "failed"
                st.next_start_at = None
                self._save()
                return
            st.state, st.next_start_at = "restarting", self._wall() + decision.delay
            self._save()
            await asyncio.sleep(decision.delay)
            st.restarts += 1

    def _start(self, comp: _Component) -> tuple[subprocess.Popen[bytes] | None,
                                                ExitCause | None]:
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.paths.logs / f"{comp.name}.log", "ab") as out:
                popen = subprocess.Popen(comp.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=out, start_new_session=True)
        except OSError as e:
            log.warning("%s could not start: %s", comp.name, e)
            return None, ExitCause(code=127)
        record_pid(self.paths, comp.name, popen.pid)
        st = comp.status
        st.state, st.pid, st.started_at, st.next_start_at = (
            "running", popen.pid, self._wall(), None)
        log.info("%s started (pid %d)", comp.name, popen.pid)
        self._save()
        return popen, None

    def _save(self, *, running: bool = True) -> None:
        _write_atomic(self.paths.supervisor_status, {
            "pid": os.getpid() if running else None,
            "started_at": self._started_at,
            "components": {name: asdict(c.status)  # in start order
                           for name, c in self._components.items()},
        })


# --- `svcnet status`


def describe(name: str, status: dict[str, Any] | None, live: dict[str, int], now: float,
             pods: dict[str, dict[str, Any]] | None = None) -> tuple[list[str], str | None]:
    """``svcnet status``'s lines for a cluster, and why it is not (fully) running, if so.

    ``status`` is ``supervisor.json``, ``live`` the recorded processes that still run (what is
    said about a pid is checked against them: a dead supervisor updates nothing). ``pods`` are
    rows for pod containers (see :func:`pod_row`), shown after the supervised processes.
    """
    if status is None and not live:
        return [], f"cluster {name!r} is not running"
    comps: dict[str, Any] = dict((status or {}).get("components") or {})
    for extra in sorted(set(live) - set(comps) - {"supervisor"}):
        comps[extra] = {"state": "running", "pid": live[extra]}
    sup_pid = live.get("supervisor")
    problems: list[str] = []
    if sup_pid is None:
        problems.append("the supervisor is not running (nothing is restarted)")
        head = f"cluster {name!r}: supervisor not running"
    else:
        since = (status or {}).get("started_at")
        up = f", up {human_duration(now - since)}" if since else ""
        head = f"cluster {name!r}: supervisor pid {sup_pid}{up}"
    rows = [("COMPONENT", "STATE", "PID", "RESTARTS", "UPTIME", "LAST EXIT")]
    for comp, st in [*comps.items(), *sorted((pods or {}).items())]:
        state, pid = str(st.get("state", "?")), st.get("pid")
        if comp in comps and pid is not None and live.get(comp) != pid:
            state, pid = "dead", None  # exited while nobody was watching
        elif comp in comps and state == "running" and sup_pid is None:
            state = "unsupervised"
        if state not in ("running", "unsupervised"):
            problems.append(f"{comp} {state}")
        started = st.get("started_at")
        last = st.get("last_exit")
        if last and st.get("last_exit_at"):
            last = f"{last}, {human_duration(now - st['last_exit_at'])} ago"
        rows.append((comp, state, str(pid or "-"), str(st.get("restarts", 0)),
                     human_duration(now - started) if state == "running" and started else "-",
                     last or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [head] + ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  "
                      + r[-1] for r in rows]
    return lines, (f"cluster {name!r} is degraded: {'; '.join(problems)}" if problems
                   else None)


def _epoch(timestamp: Any) -> float | None:
    if not isinstance(timestamp, str):
        return None
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def pod_row(pod: dict[str, Any] | None, pid: int | None) -> dict[str, Any]:
    """A status row for a single-container pod, from its API status (``pid`` found locally).

    running (started and Ready), starting (running, not Ready yet), restarting (waiting, e.g.
    in CrashLoopBackOff), exited, or missing; restarts and the last exit as the node agent
    reported them (``lastState.terminated``).
    """
    if pod is None:
        return {"state": "missing"}
    status = pod.get("status") or {}
    cs = (status.get("containerStatuses") or [{}])[0]
    state, last = cs.get("state") or {}, (cs.get("lastState") or {}).get("terminated")
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or [])
    if "running" in state:
        phase = "running" if ready else "starting"
    else:
        phase = "restarting" if "waiting" in state else "exited"
    row: dict[str, Any] = {
        "state": phase, "pid": pid if "running" in state else None,
        "restarts": cs.get("restartCount", 0),
        "started_at": _epoch((state.get("running") or {}).get("startedAt"))}
    if last:
        cause = (str(ExitCause(signal=last["signal"])) if last.get("signal")
                 else f"exited with code {last.get('exitCode')}")
        reason = last.get("reason")
        # Error and Completed repeat what the code says; StartError, OOMKilled and
        # ContainerStatusUnknown (code unknown: the agent had adopted it) add to it.
        row["last_exit"] = cause if reason in (None, "Error", "Completed") else \
            f"{cause}, {reason}"
        row["last_exit_at"] = _epoch(last.get("finishedAt"))
    return row


def container_pid(paths: Paths, pod: dict[str, Any]) -> int | None:
    """The pid of a pod's (first) container from its node agent's record (``containers/<pod
    uid>/<name>.json``: pid and start ticks), if that process still runs."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    containers = spec.get("containers") or [{}]
    record = paths.node(str(spec.get("nodeName"))) / "containers" / str(meta.get("uid")) / \
        f"{containers[0].get('name')}.json"
    try:
        doc = json.loads(record.read_text())
        pid = int(doc["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if start_time(pid) == str(doc.get("start_ticks")) else None


async def _dns_pod(paths: Paths) -> dict[str, Any] | None:
    client = RESTClient.from_kubeconfig(load_kubeconfig(paths.kubeconfig),
                                        user_agent="svcnet-status", timeout=3.0)
    try:
        return await client.get(PODS, "kube-system", "kube-dns")
    finally:
        await client.close()


def cluster_status(name: str) -> tuple[list[str], str | None]:
    """``svcnet status``: the supervised processes, the DNS pod when the API answers, and the
    cluster's networks as recorded (networks.py)."""
    paths = Paths(cluster_dir(name))
    live = live_processes(paths)
    pods: dict[str, dict[str, Any]] = {}
    if "server" in live and paths.kubeconfig.exists():
        try:
            pod = asyncio.run(_dns_pod(paths))
        except StatusError as e:
            pods["dns"] = (pod_row(None, None) if e.code == 404
                           else {"state": "unknown", "last_exit": e.message})
        except (TransportError, OSError, ValueError) as e:
            pods["dns"] = {"state": "unknown", "last_exit": f"no answer from the API: {e}"}
        else:
            pods["dns"] = pod_row(pod, container_pid(paths, pod) if pod else None)
    lines, problem = describe(name, read_status(paths), live, time.time(), pods)
    network = read_network(paths.network)
    if lines and network is not None:
        lines.append(f"network: {network.describe()}")
    return lines, problem


def run_supervisor(state_dir: Path) -> None:
    """``svcnet _supervise``: log lines go to stderr (``logs/supervisor.log``)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(Supervisor(Paths(state_dir)).run())
