"""Readiness, liveness and startup probes with the kubelet's timing and threshold rules.

Theory of operation
-------------------
Three layers, as in the rest of the node package:

1. :func:`parse_probe` turns a container's ``readinessProbe``/``livenessProbe``/``startupProbe``
   into a :class:`ProbeSpec` (an action plus :class:`ProbeTiming`), resolving named ports
   against the container's ``ports`` once, up front.
2. :class:`ProbeTracker` is the pure state machine of one probe of one container *run*
   (the kubelet's ``worker``): when the next probe is due, and what the consecutive results
   make of the reported result. It never sleeps and never does I/O; tests drive it with plain
   numbers.
3. :class:`ProbeManager` runs one task per tracker on an injected :class:`Clock`, performs the
   action through a :class:`ProbeExecutor` under the probe's timeout, calls ``on_failure``
   for every probe that fails (the kubelet's ``Unhealthy`` event, which comes before the
   threshold is reached), and ``on_change`` whenever a reported result flips.
   :class:`NetnsProbeExecutor` is the real executor; tests use a fake one and a ``FakeClock``.

Timing and thresholds (the kubelet's ``prober/worker.go``):

* The first probe runs ``initialDelaySeconds`` after the container started, then one every
  ``periodSeconds``, counted from when the previous probe was *due* (a ticker: a probe slower
  than the period is followed at once by the next one, not by a pile-up).
* Each probe gets ``timeoutSeconds``; running out counts as a failure.
* The reported result changes only after ``successThreshold`` consecutive successes or
  ``failureThreshold`` consecutive failures. Until then it keeps its initial value:
  readiness starts **failed** (not ready), liveness starts **succeeded**, startup starts
  "not yet started".
* While a startup probe has not succeeded, readiness and liveness probes do not run (they
  start at once when it succeeds); a succeeded startup probe stops probing.
* A failed liveness or startup result puts the tracker **on hold**: the container will be
  killed and restarted, and probing resumes only for the new container (the runner calls
  :meth:`ProbeManager.start_container` again, which makes fresh trackers).

Where probes come from. The kubelet probes from the node to the pod IP, and so do we: HTTP
and TCP probes connect from the **node's network namespace**, which routes to the pod over the
node's pod bridge. A per-node :class:`~svcnet.util.nsthread.NetnsThread` creates the sockets
(a socket lives in the netns it was created in), and the event loop does the connecting and
reading. Cost: one thread hop (tens of microseconds) per probe, no process and no per-probe
thread. The alternative, ``ip netns exec NODE python -c ...`` per probe, costs a Python start
(~30 ms of CPU) per probe: 100 pods with 10-second probes would burn a third of a core.
``exec`` probes run the command inside the *pod's* namespace with the container's environment,
via ``ip netns exec`` (a process per probe, as in Kubernetes); for a container with volume
mounts, whose files exist only in its own mount namespace (svcnet/node/mounter.py), via
``nsenter`` into that namespace, root and working directory of its main process.

HTTP probes follow the kubelet: ``GET`` with ``User-Agent: kube-probe/<version>`` and
``Accept: */*``, success for status 200-399, redirects followed (up to 10) only when they stay on
the same host and port; a redirect elsewhere counts as success, as the kubelet's does.
HTTPS does not verify certificates (the kubelet does not either).

Why this module is long: Probes as kubelet's prober: the three probe kinds, the worker timing
and the results share one state.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import shutil
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any, Final, Protocol
from urllib.parse import urljoin, urlsplit

from svcnet.node.runtime import ContainerKey
from svcnet.util.clock import Clock
from svcnet.util.nsthread import NetnsThread

__all__ = [
    "USER_AGENT",
    "ContainerProbeStatus",
    "ExecAction",
    "HTTPGetAction",
    "NetnsProbeExecutor",
    "ProbeAction",
    "ProbeContext",
    "ProbeError",
    "ProbeExecutor",
    "ProbeKind",
    "ProbeManager",
    "ProbeOutcome",
    "ProbeSpec",
    "ProbeTiming",
    "ProbeTracker",
    "TCPSocketAction",
    "UnsupportedAction",
    "container_probes",
    "parse_probe",
]

log = logging.getLogger(__name__)

USER_AGENT: Final = "kube-probe/1.31"
_MAX_REDIRECTS: Final = 10
_MAX_OUTPUT: Final = 10 * 1024


class ProbeKind(enum.StrEnum):
    READINESS = "readiness"
    LIVENESS = "liveness"
    STARTUP = "startup"


# --- spec ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeTiming:
    """The Kubernetes defaults are the field defaults."""

    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True, slots=True)
class HTTPGetAction:
    port: int
    path: str = "/"
    host: str | None = None  # None: the pod IP
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class TCPSocketAction:
    port: int
    host: str | None = None


@dataclass(frozen=True, slots=True)
class ExecAction:
    command: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UnsupportedAction:
    """A probe we cannot run (gRPC, a named port that does not exist): it always fails."""

    reason: str


ProbeAction = HTTPGetAction | TCPSocketAction | ExecAction | UnsupportedAction


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    kind: ProbeKind
    action: ProbeAction
    timing: ProbeTiming = ProbeTiming()


def _num(probe: Mapping[str, Any], key: str, default: float, minimum: float) -> float:
    value = probe.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return default
    return max(float(value), minimum)


def _resolve_port(port: Any, container: Mapping[str, Any]) -> int | str:
    """An int port, or an error message (the kubelet's wording)."""
    if isinstance(port, int) and not isinstance(port, bool):
        return port
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        for p in container.get("ports") or []:
            if p.get("name") == port and isinstance(p.get("containerPort"), int):
                return int(p["containerPort"])
        return f"couldn't find port: {port} in {container.get('name', '')}"
    return f"invalid port {port!r}"


def parse_probe(kind: ProbeKind, probe: Mapping[str, Any],
                container: Mapping[str, Any]) -> ProbeSpec:
    timing = ProbeTiming(
        initial_delay=_num(probe, "initialDelaySeconds", 0, 0),
        period=_num(probe, "periodSeconds", 10, 1),
        timeout=_num(probe, "timeoutSeconds", 1, 1),
        success_threshold=int(_num(probe, "successThreshold", 1, 1)),
        failure_threshold=int(_num(probe, "failureThreshold", 3, 1)),
    )
    if kind is not ProbeKind.READINESS:
        timing = ProbeTiming(timing.initial_delay, timing.period, timing.timeout, 1,
                             timing.failure_threshold)
    action: ProbeAction
    if (http := probe.get("httpGet")) is not None:
        port = _resolve_port(http.get("port"), container)
        if isinstance(port, str):
            action = UnsupportedAction(port)
        else:
            path = http.get("path") or "/"
            action = HTTPGetAction(
                port=port, path=path if path.startswith("/") else f"/{path}",
                host=http.get("host") or None, scheme=(http.get("scheme") or "HTTP").upper(),
                headers=tuple((h["name"], h.get("value", ""))
                              for h in http.get("httpHeaders") or [] if h.get("name")))
    elif (tcp := probe.get("tcpSocket")) is not None:
        port = _resolve_port(tcp.get("port"), container)
        action = (UnsupportedAction(port) if isinstance(port, str)
                  else TCPSocketAction(port=port, host=tcp.get("host") or None))
    elif (exec_ := probe.get("exec")) is not None:
        command = tuple(str(c) for c in exec_.get("command") or [])
        action = ExecAction(command) if command else UnsupportedAction("exec probe without a "
                                                                        "command")
    elif probe.get("grpc") is not None:
        action = UnsupportedAction("gRPC probes are not supported by svcnet")
    else:
        action = UnsupportedAction("probe has no handler")
    return ProbeSpec(kind, action, timing)


def container_probes(container: Mapping[str, Any]) -> tuple[ProbeSpec, ...]:
    """The container's probes, startup first."""
    out = []
    for kind, key in ((ProbeKind.STARTUP, "startupProbe"), (ProbeKind.READINESS,
                      "readinessProbe"), (ProbeKind.LIVENESS, "livenessProbe")):
        if isinstance(probe := container.get(key), Mapping):
            out.append(parse_probe(kind, probe, container))
    return tuple(out)


# --- the pure state machine ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    ok: bool
    message: str = ""


_INITIAL: Final = {ProbeKind.READINESS: False, ProbeKind.LIVENESS: True,
                   ProbeKind.STARTUP: False}


@dataclass(slots=True)
class ProbeTracker:
    """One probe of one container run: schedule plus threshold logic (no I/O, no clock)."""

    spec: ProbeSpec
    started_at: float
    """Monotonic time the container started."""
    result: bool = False
    next_due: float = 0.0
    last_ok: bool | None = None
    run: int = 0
    on_hold: bool = False
    done: bool = False
    probes: int = 0
    message: str = ""

    def __post_init__(self) -> None:
        self.result = _INITIAL[self.spec.kind]
        self.next_due = self.started_at + self.spec.timing.initial_delay

    @property
    def active(self) -> bool:
        return not (self.on_hold or self.done)

    def is_due(self, now: float) -> bool:
        return self.active and now >= self.next_due

    def record(self, outcome: ProbeOutcome, now: float) -> bool:
        """Fold in the outcome of the probe that was due at ``next_due`` and finished at
        ``now``; returns True if the reported :attr:`result` changed."""
        timing = self.spec.timing
        self.probes += 1
        self.message = outcome.message
        self.next_due = max(self.next_due + timing.period, now)
        if outcome.ok == self.last_ok:
            self.run += 1
        else:
            self.last_ok, self.run = outcome.ok, 1
        threshold = timing.success_threshold if outcome.ok else timing.failure_threshold
        if self.run < threshold:
            return False
        changed = outcome.ok != self.result
        self.result = outcome.ok
        if not outcome.ok and self.spec.kind in (ProbeKind.LIVENESS, ProbeKind.STARTUP):
            # The container is going to be killed; stop probing it (the kubelet's onHold).
            self.on_hold, self.run = True, 0
        if outcome.ok and self.spec.kind is ProbeKind.STARTUP:
            self.done = True
        return changed


@dataclass(frozen=True, slots=True)
class ContainerProbeStatus:
    """What the pod status needs from the probes of one running container."""

    ready: bool
    started: bool
    liveness_failed: bool = False
    startup_failed: bool = False
    message: str = ""


# --- execution ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeContext:
    """Where a container's probes go: its pod IP (HTTP/TCP default host), its netns,
    environment and working directory (exec probes run "in the container")."""

    pod_ip: str
    pod_netns: str | None
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    container_pid: int | None = None
    """Set for a container with volume mounts: exec probes enter its mount namespace (and
    root, and working directory) with ``nsenter``, since its volumes exist only there."""
    exec_sync: ExecSync | None = None
    """Set for a container runtime's container: exec probes go through it (CRI
    ``ExecSync``), as the kubelet's do."""


def in_container(ctx: ProbeContext, argv: list[str], *, nsenter: str = "nsenter",
                 ip: str = "ip") -> tuple[list[str], str]:
    """How a command runs "in" a container (exec probes, ``kubectl exec``): (argv, cwd).
    With the container's main process known, inside its mount namespace (its image's or
    volumes' files), root and working directory, and its network; else in the pod's
    network namespace on the host's files."""
    if ctx.container_pid is not None:
        return [nsenter, f"--target={ctx.container_pid}", "--mount", "--uts", "--ipc",
                "--net", "--root", "--wd", "--", *argv], "/"
    if ctx.pod_netns is not None:
        return [ip, "netns", "exec", ctx.pod_netns, *argv], ctx.working_dir or "/"
    return argv, ctx.working_dir or "/"


ExecSync = Callable[[list[str]], Awaitable[tuple[int, bytes]]]
"""Runs a command in a container: (exit code, output)."""


class ProbeError(Exception):
    pass


class ProbeExecutor(Protocol):
    async def run(self, action: ProbeAction, ctx: ProbeContext) -> ProbeOutcome:
        """Perform one probe. May be cancelled (timeout): must then clean up and re-raise."""
        ...

    async def close(self) -> None: ...


class NetnsProbeExecutor:
    """Probes from a node's netns (HTTP/TCP) and inside the pod's netns (exec)."""

    def __init__(self, node_netns: str | None, *, ip: str = "ip",
                 nsenter: str = "nsenter") -> None:
        self._thread = NetnsThread(node_netns) if node_netns is not None else None
        self._ip = ip
        self._nsenter = shutil.which(nsenter) or nsenter

    async def close(self) -> None:
        if self._thread is not None:
            self._thread.close()

    async def _socket(self, host: str) -> socket.socket:
        family = socket.AF_INET6 if ip_address(host).version == 6 else socket.AF_INET
        if self._thread is None:
            sock = socket.socket(family, socket.SOCK_STREAM)
        else:
            sock = await self._thread.call(lambda: socket.socket(family, socket.SOCK_STREAM),
                                           discard=socket.socket.close)
        sock.setblocking(False)
        return sock

    async def _connect(self, host: str, port: int) -> socket.socket:
        sock = await self._socket(host)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        return sock

    async def run(self, action: ProbeAction, ctx: ProbeContext) -> ProbeOutcome:
        try:
            if isinstance(action, UnsupportedAction):
                return ProbeOutcome(False, action.reason)
            if isinstance(action, TCPSocketAction):
                host = action.host or ctx.pod_ip
                sock = await self._connect(host, action.port)
                sock.close()
                return ProbeOutcome(True)
            if isinstance(action, HTTPGetAction):
                return await self._http(action, ctx)
            return await self._exec(action, ctx)
        except (OSError, ProbeError, ValueError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError) as exc:
            return ProbeOutcome(False, _describe(exc, action, ctx))

    async def _http(self, action: HTTPGetAction, ctx: ProbeContext) -> ProbeOutcome:
        host = action.host or ctx.pod_ip
        port, path, scheme = action.port, action.path, action.scheme
        for _ in range(_MAX_REDIRECTS + 1):
            status, location = await self._get(host, port, path, scheme, action.headers)
            if not 300 <= status < 400 or location is None:
                ok = 200 <= status < 400
                return ProbeOutcome(ok, "" if ok else f"HTTP probe failed with statuscode: "
                                                      f"{status}")
            base = f"{scheme.lower()}://{_hostport(host, port)}{path}"
            target = urlsplit(urljoin(base, location))
            new_port = target.port or (443 if target.scheme == "https" else 80)
            if (target.hostname, new_port) != (host, port) or target.scheme not in ("http",
                                                                                    "https"):
                return ProbeOutcome(True, f"Probe terminated redirects, Response body: "
                                          f"redirect to {location}")
            scheme = target.scheme.upper()
            path = target.path or "/"
            if target.query:
                path += f"?{target.query}"
        return ProbeOutcome(False, "stopped after 10 redirects")

    async def _get(self, host: str, port: int, path: str, scheme: str,
                   headers: Sequence[tuple[str, str]]) -> tuple[int, str | None]:
        sock = await self._connect(host, port)
        ctx: ssl.SSLContext | None = None
        if scheme == "HTTPS":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        try:
            reader, writer = await asyncio.open_connection(
                sock=sock, ssl=ctx, server_hostname=host if ctx else None)
        except BaseException:
            sock.close()
            raise
        try:
            names = {name.lower() for name, _ in headers}
            lines = [f"GET {path} HTTP/1.1"]
            if "host" not in names:
                lines.append(f"Host: {_hostport(host, port)}")
            if "user-agent" not in names:
                lines.append(f"User-Agent: {USER_AGENT}")
            if "accept" not in names:
                lines.append("Accept: */*")
            lines += [f"{name}: {value}" for name, value in headers]
            lines.append("Connection: close")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ProbeError(f"malformed HTTP status line {status_line!r}")
        location = None
        for line in header_lines:
            name, _, value = line.partition(":")
            if name.strip().lower() == "location":
                location = value.strip()
        return int(parts[1]), location

    async def _exec(self, action: ExecAction, ctx: ProbeContext) -> ProbeOutcome:
        if ctx.exec_sync is not None:
            try:
                code, out = await ctx.exec_sync(list(action.command))
            except Exception as exc:  # the runtime's error, as the kubelet reports it
                return ProbeOutcome(False, f"command {list(action.command)} failed: {exc}")
            text = out[:_MAX_OUTPUT].decode(errors="replace").strip()
            if code == 0:
                return ProbeOutcome(True, text)
            return ProbeOutcome(False, f"command {list(action.command)} exited with "
                                       f"{code}: {text}".rstrip(": "))
        argv, cwd = in_container(ctx, list(action.command), nsenter=self._nsenter, ip=self._ip)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, env=dict(ctx.env), start_new_session=True,
                cwd=cwd)
        except FileNotFoundError as exc:
            if ctx.working_dir and exc.filename == ctx.working_dir:
                return ProbeOutcome(False, f"chdir to cwd ({ctx.working_dir!r}) failed")
            return ProbeOutcome(False, f'exec: "{argv[0]}": executable file not found in $PATH')
        try:
            out, _ = await proc.communicate()
        except BaseException:
            # Timed out (cancelled): the kubelet kills a probe command that overruns.
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        text = out[:_MAX_OUTPUT].decode(errors="replace").strip()
        if proc.returncode == 0:
            return ProbeOutcome(True, text)
        return ProbeOutcome(False, f"command {list(action.command)} exited with "
                                   f"{proc.returncode}: {text}".rstrip(": "))


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _describe(exc: BaseException, action: ProbeAction | None = None,
              ctx: ProbeContext | None = None) -> str:
    """The error as the kubelet words it, e.g. ``Get "http://10.244.1.5:80/": dial tcp
    10.244.1.5:80: connect: connection refused``."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.errno:
        # Not exc.strerror: asyncio's sock_connect puts its own sentence there.
        text = os.strerror(exc.errno).lower()
    if ctx is None or not isinstance(action, HTTPGetAction | TCPSocketAction):
        return text
    target = _hostport(action.host or ctx.pod_ip, action.port)
    if isinstance(exc, OSError):
        text = f"dial tcp {target}: connect: {text}"
    if isinstance(action, HTTPGetAction):
        return f'Get "{action.scheme.lower()}://{target}{action.path}": {text}'
    return text


# --- the driver -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Container:
    key: ContainerKey
    ctx: ProbeContext
    trackers: dict[ProbeKind, ProbeTracker]
    started: asyncio.Event
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


ChangeCallback = Callable[[ContainerKey, ProbeKind], None]
FailureCallback = Callable[[ContainerKey, ProbeKind, str], None]
"""Called with the failure's message for every failed probe."""


class ProbeManager:
    """Runs the probes of running containers; see the module docstring."""

    def __init__(self, executor: ProbeExecutor, clock: Clock, *,
                 on_change: ChangeCallback | None = None,
                 on_failure: FailureCallback | None = None) -> None:
        self._executor = executor
        self._clock = clock
        self.on_change = on_change
        self.on_failure = on_failure
        self._containers: dict[ContainerKey, _Container] = {}

    def start_container(self, key: ContainerKey, probes: Sequence[ProbeSpec],
                        ctx: ProbeContext, started_at: float) -> None:
        """Begin probing a container run that started at monotonic time ``started_at``
        (replaces the trackers of a previous run)."""
        self.stop_container(key)
        trackers = {p.kind: ProbeTracker(p, started_at) for p in probes}
        started = asyncio.Event()
        if ProbeKind.STARTUP not in trackers:
            started.set()
        c = _Container(key, ctx, trackers, started)
        self._containers[key] = c
        for tracker in trackers.values():
            c.tasks.append(asyncio.create_task(self._loop(c, tracker),
                                               name=f"probe {key} {tracker.spec.kind}"))

    def stop_container(self, key: ContainerKey) -> None:
        c = self._containers.pop(key, None)
        if c is not None:
            for task in c.tasks:
                task.cancel()

    def has(self, key: ContainerKey) -> bool:
        return key in self._containers

    def status(self, key: ContainerKey) -> ContainerProbeStatus:
        """Probe verdicts for a running container (no probes: ready and started)."""
        c = self._containers.get(key)
        if c is None:
            return ContainerProbeStatus(ready=True, started=True)
        startup = c.trackers.get(ProbeKind.STARTUP)
        readiness = c.trackers.get(ProbeKind.READINESS)
        liveness = c.trackers.get(ProbeKind.LIVENESS)
        started = startup is None or startup.result
        messages = [t.message for t in c.trackers.values() if t.message and not t.result]
        return ContainerProbeStatus(
            ready=started and (readiness is None or readiness.result),
            started=started,
            liveness_failed=liveness is not None and not liveness.result,
            startup_failed=startup is not None and startup.on_hold,
            message="; ".join(messages),
        )

    def tracker(self, key: ContainerKey, kind: ProbeKind) -> ProbeTracker | None:
        c = self._containers.get(key)
        return None if c is None else c.trackers.get(kind)

    async def close(self) -> None:
        """Stop every probe, then close the executor."""
        tasks = [t for c in self._containers.values() for t in c.tasks]
        self._containers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._executor.close()

    async def _loop(self, c: _Container, tracker: ProbeTracker) -> None:
        gated = tracker.spec.kind is not ProbeKind.STARTUP
        while tracker.active:
            if gated and not c.started.is_set():
                await c.started.wait()
                # Startup just succeeded: probe at once (the kubelet's manual trigger).
                tracker.next_due = min(tracker.next_due,
                                       max(self._clock.monotonic(), tracker.started_at
                                           + tracker.spec.timing.initial_delay))
            delay = tracker.next_due - self._clock.monotonic()
            if delay > 0:
                await self._clock.sleep(delay)
                continue
            outcome = await self._probe(tracker.spec, c.ctx)
            if not outcome.ok and self.on_failure is not None:
                self.on_failure(c.key, tracker.spec.kind, outcome.message)
            changed = tracker.record(outcome, self._clock.monotonic())
            if tracker.spec.kind is ProbeKind.STARTUP and tracker.result:
                c.started.set()
            if changed:
                log.info("%s probe of %s: %s %s", tracker.spec.kind, c.key,
                         "success" if tracker.result else "failure", outcome.message)
                if self.on_change is not None:
                    self.on_change(c.key, tracker.spec.kind)

    async def _probe(self, spec: ProbeSpec, ctx: ProbeContext) -> ProbeOutcome:
        """Run the action, bounded by ``timeoutSeconds`` on the injected clock."""
        work = asyncio.ensure_future(self._executor.run(spec.action, ctx))
        timer = asyncio.ensure_future(self._clock.sleep(spec.timing.timeout))
        try:
            await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not work.done():
                work.cancel()
            await asyncio.gather(work, timer, return_exceptions=True)
        if work.cancelled():
            return ProbeOutcome(False, f"probe timed out after {spec.timing.timeout:g}s")
        if (exc := work.exception()) is not None:
            return ProbeOutcome(False, _describe(exc))
        return work.result()
