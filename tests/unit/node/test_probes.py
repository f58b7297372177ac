"""Probes: spec parsing, the pure tracker (tables), the manager on a FakeClock, and the real
executor against servers on loopback (``node_netns=None``: the test's own namespace)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from svcnet.node.probes import (
    USER_AGENT,
    ExecAction,
    HTTPGetAction,
    NetnsProbeExecutor,
    ProbeAction,
    ProbeContext,
    ProbeKind,
    ProbeManager,
    ProbeOutcome,
    ProbeSpec,
    ProbeTiming,
    ProbeTracker,
    TCPSocketAction,
    UnsupportedAction,
    container_probes,
    parse_probe,
)
from svcnet.node.runtime import ContainerKey
from svcnet.util.clock import FakeClock

KEY = ContainerKey("uid-1", "app")
CTX = ProbeContext("127.0.0.1", None, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})


async def settle() -> None:
    for _ in range(30):
        await asyncio.sleep(0)


# --- parsing ----------------------------------------------------------------------------------

CONTAINER: dict[str, Any] = {"name": "app", "ports": [{"name": "http", "containerPort": 8080}]}


@pytest.mark.parametrize(("kind", "probe", "action", "timing"), [
    pytest.param(ProbeKind.READINESS, {"httpGet": {"port": "http", "path": "healthz"}},
                 HTTPGetAction(8080, "/healthz"), ProbeTiming(), id="named-port-defaults"),
    pytest.param(ProbeKind.READINESS,
                 {"httpGet": {"port": 80, "scheme": "HTTPS", "host": "10.0.0.1",
                              "httpHeaders": [{"name": "X-A", "value": "b"}]},
                  "periodSeconds": 2, "timeoutSeconds": 3, "successThreshold": 2,
                  "failureThreshold": 5, "initialDelaySeconds": 7},
                 HTTPGetAction(80, "/", "10.0.0.1", "HTTPS", (("X-A", "b"),)),
                 ProbeTiming(7, 2, 3, 2, 5), id="everything-set"),
    pytest.param(ProbeKind.LIVENESS, {"tcpSocket": {"port": "8080"}, "successThreshold": 3},
                 TCPSocketAction(8080), ProbeTiming(), id="liveness-success-threshold-is-1"),
    pytest.param(ProbeKind.STARTUP, {"exec": {"command": ["cat", "/ready"]}},
                 ExecAction(("cat", "/ready")), ProbeTiming(), id="exec"),
    pytest.param(ProbeKind.READINESS, {"httpGet": {"port": "nope"}},
                 UnsupportedAction("couldn't find port: nope in app"), ProbeTiming(),
                 id="unknown-named-port"),
    pytest.param(ProbeKind.READINESS, {"grpc": {"port": 9000}},
                 UnsupportedAction("gRPC probes are not supported by svcnet"), ProbeTiming(),
                 id="grpc"),
    pytest.param(ProbeKind.READINESS, {"periodSeconds": 0, "exec": {"command": ["x"]}},
                 ExecAction(("x",)), ProbeTiming(period=1), id="period-at-least-1"),
])
def test_parse_probe(kind: ProbeKind, probe: dict[str, Any], action: ProbeAction,
                     timing: ProbeTiming) -> None:
    assert parse_probe(kind, probe, CONTAINER) == ProbeSpec(kind, action, timing)


def test_container_probes_order() -> None:
    c = {**CONTAINER, "livenessProbe": {"tcpSocket": {"port": 1}},
         "readinessProbe": {"tcpSocket": {"port": 2}}, "startupProbe": {"tcpSocket": {"port": 3}}}
    assert [p.kind for p in container_probes(c)] == [ProbeKind.STARTUP, ProbeKind.READINESS,
                                                      ProbeKind.LIVENESS]


# --- the pure tracker -------------------------------------------------------------------------

T0 = 100.0
OK, FAIL = ProbeOutcome(True), ProbeOutcome(False, "nope")


@dataclass(frozen=True)
class Step:
    at: float
    outcome: ProbeOutcome
    result: bool
    changed: bool


@pytest.mark.parametrize(("kind", "timing", "steps", "final_due", "on_hold"), [
    pytest.param(ProbeKind.READINESS, ProbeTiming(), [
        Step(T0, OK, True, True), Step(T0 + 10, OK, True, False)],
        T0 + 20, False, id="readiness-ready-on-first-success"),
    pytest.param(ProbeKind.READINESS, ProbeTiming(success_threshold=2), [
        Step(T0, OK, False, False), Step(T0 + 10, FAIL, False, False),
        Step(T0 + 20, OK, False, False), Step(T0 + 30, OK, True, True)],
        T0 + 40, False, id="readiness-success-threshold-needs-a-run"),
    pytest.param(ProbeKind.READINESS, ProbeTiming(), [
        Step(T0, OK, True, True), Step(T0 + 10, FAIL, True, False),
        Step(T0 + 20, FAIL, True, False), Step(T0 + 30, FAIL, False, True),
        Step(T0 + 40, FAIL, False, False), Step(T0 + 50, OK, True, True)],
        T0 + 60, False, id="readiness-flaps-after-three-failures"),
    pytest.param(ProbeKind.LIVENESS, ProbeTiming(failure_threshold=2), [
        Step(T0, FAIL, True, False), Step(T0 + 10, OK, True, False),
        Step(T0 + 20, FAIL, True, False), Step(T0 + 30, FAIL, False, True)],
        T0 + 40, True, id="liveness-fails-then-holds"),
    pytest.param(ProbeKind.STARTUP, ProbeTiming(period=1), [
        Step(T0, FAIL, False, False), Step(T0 + 1, OK, True, True)],
        T0 + 2, False, id="startup-succeeds-then-stops"),
    pytest.param(ProbeKind.READINESS, ProbeTiming(period=2, timeout=5), [
        Step(T0 + 5, FAIL, False, False), Step(T0 + 10, FAIL, False, False)],
        T0 + 10, False, id="slow-probe-next-one-at-once"),
])
def test_tracker(kind: ProbeKind, timing: ProbeTiming, steps: list[Step], final_due: float,
                 on_hold: bool) -> None:
    tracker = ProbeTracker(ProbeSpec(kind, TCPSocketAction(1), timing), started_at=T0)
    for step in steps:
        assert tracker.is_due(step.at)
        assert tracker.record(step.outcome, step.at) == step.changed
        assert tracker.result == step.result
    assert tracker.next_due == final_due
    assert tracker.on_hold == on_hold


@pytest.mark.parametrize(("kind", "initial"), [
    (ProbeKind.READINESS, False), (ProbeKind.LIVENESS, True), (ProbeKind.STARTUP, False)])
def test_tracker_initial_result_and_delay(kind: ProbeKind, initial: bool) -> None:
    tracker = ProbeTracker(ProbeSpec(kind, TCPSocketAction(1), ProbeTiming(initial_delay=5)),
                           started_at=T0)
    assert tracker.result is initial
    assert not tracker.is_due(T0 + 4.9)
    assert tracker.is_due(T0 + 5)


# --- the manager, on a FakeClock ---------------------------------------------------------------


class ScriptedExecutor:
    """Answers probes from per-port scripts; records (port, clock time) of every probe."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.scripts: dict[int, Callable[[], ProbeOutcome]] = {}
        self.hang: set[int] = set()
        self.calls: list[tuple[int, float]] = []

    async def run(self, action: ProbeAction, ctx: ProbeContext) -> ProbeOutcome:
        assert isinstance(action, TCPSocketAction)
        self.calls.append((action.port, self.clock.monotonic()))
        if action.port in self.hang:
            await asyncio.Event().wait()
        return self.scripts.get(action.port, lambda: OK)()

    async def close(self) -> None:
        pass


def tcp(kind: ProbeKind, port: int, **timing: float) -> ProbeSpec:
    return ProbeSpec(kind, TCPSocketAction(port), ProbeTiming(**timing))  # type: ignore[arg-type]


@pytest.fixture
async def manager() -> AsyncIterator[tuple[ProbeManager, ScriptedExecutor, FakeClock,
                                           list[tuple[ContainerKey, ProbeKind]]]]:
    clock = FakeClock()
    executor = ScriptedExecutor(clock)
    changes: list[tuple[ContainerKey, ProbeKind]] = []
    mgr = ProbeManager(executor, clock, on_change=lambda k, kind: changes.append((k, kind)))
    yield mgr, executor, clock, changes
    await mgr.close()


async def advance(clock: FakeClock, seconds: float, step: float = 0.5) -> None:
    await settle()
    for _ in range(int(seconds / step)):
        clock.advance(step)
        await settle()


async def test_readiness_after_initial_delay(manager: Any) -> None:
    mgr, executor, clock, changes = manager
    mgr.start_container(KEY, [tcp(ProbeKind.READINESS, 80, initial_delay=3, period=5)], CTX,
                        clock.monotonic())
    assert not mgr.status(KEY).ready
    await advance(clock, 2.5)
    assert executor.calls == []
    await advance(clock, 0.5)
    assert mgr.status(KEY).ready
    assert changes == [(KEY, ProbeKind.READINESS)]
    await advance(clock, 10)
    assert [t - 1000 for _, t in executor.calls] == [3, 8, 13]


async def test_liveness_failure_holds_and_reports(manager: Any) -> None:
    mgr, executor, clock, changes = manager
    executor.scripts[81] = lambda: FAIL
    mgr.start_container(KEY, [tcp(ProbeKind.LIVENESS, 81, period=1)], CTX, clock.monotonic())
    await advance(clock, 1.5)
    assert not mgr.status(KEY).liveness_failed  # two failures: below the threshold of 3
    await advance(clock, 1)
    assert mgr.status(KEY).liveness_failed
    assert mgr.status(KEY).message == "nope"
    assert changes == [(KEY, ProbeKind.LIVENESS)]
    await advance(clock, 5)
    assert len(executor.calls) == 3  # on hold: no more probes for this run


async def test_every_failed_probe_is_reported_below_the_threshold_too(manager: Any) -> None:
    mgr, executor, clock, changes = manager
    failures: list[tuple[ContainerKey, ProbeKind, str]] = []
    mgr.on_failure = lambda k, kind, message: failures.append((k, kind, message))
    outcomes = iter([FAIL, OK, FAIL, FAIL])
    executor.scripts[83] = lambda: next(outcomes)
    mgr.start_container(KEY, [tcp(ProbeKind.READINESS, 83, period=1)], CTX, clock.monotonic())
    await advance(clock, 3.5)
    assert len(executor.calls) == 4
    assert failures == [(KEY, ProbeKind.READINESS, "nope")] * 3
    assert changes == [(KEY, ProbeKind.READINESS)]  # ready after the success, and no flip back


async def test_timeout_counts_as_failure(manager: Any) -> None:
    mgr, executor, clock, _ = manager
    executor.hang.add(82)
    mgr.start_container(KEY, [tcp(ProbeKind.READINESS, 82, period=10, timeout=2,
                                  failure_threshold=1)], CTX, clock.monotonic())
    await advance(clock, 2.5)
    tracker = mgr.tracker(KEY, ProbeKind.READINESS)
    assert tracker is not None and tracker.probes == 1
    assert tracker.message == "probe timed out after 2s"


async def test_startup_gates_readiness_and_liveness(manager: Any) -> None:
    mgr, executor, clock, _ = manager
    started = {"ok": False}
    executor.scripts[90] = lambda: ProbeOutcome(started["ok"])
    mgr.start_container(KEY, [tcp(ProbeKind.STARTUP, 90, period=2, failure_threshold=30),
                              tcp(ProbeKind.READINESS, 91, period=10),
                              tcp(ProbeKind.LIVENESS, 92, period=10)], CTX, clock.monotonic())
    await advance(clock, 5)
    assert {p for p, _ in executor.calls} == {90}
    assert not mgr.status(KEY).started
    started["ok"] = True
    await advance(clock, 2)
    status = mgr.status(KEY)
    assert status.started and status.ready
    # Readiness and liveness ran as soon as startup succeeded, not a period later.
    first = dict(reversed(executor.calls))
    assert first[91] == first[92] == 1006.0


async def test_restart_replaces_trackers(manager: Any) -> None:
    mgr, _executor, clock, _ = manager
    mgr.start_container(KEY, [tcp(ProbeKind.READINESS, 80)], CTX, clock.monotonic())
    await advance(clock, 1)
    assert mgr.status(KEY).ready
    mgr.start_container(KEY, [tcp(ProbeKind.READINESS, 80, initial_delay=5)], CTX,
                        clock.monotonic())
    assert not mgr.status(KEY).ready  # a new run starts unready
    mgr.stop_container(KEY)
    assert not mgr.has(KEY)
    assert mgr.status(KEY).ready  # no probes: ready


# --- the real executor on loopback ------------------------------------------------------------


@pytest.fixture
async def http_server() -> AsyncIterator[tuple[int, list[str]]]:
    """/ok 200, /bad 500, /moved 302 → /ok, /away 302 → elsewhere; records request heads."""
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
        except asyncio.IncompleteReadError:  # a TCP probe: connect, then close
            writer.close()
            return
        seen.append(head)
        path = head.split(" ")[1]
        answers = {"/ok": "200 OK", "/bad": "500 Oops", "/moved": "302 Found\r\nLocation: /ok",
                   "/away": "302 Found\r\nLocation: http://192.0.2.1/x"}
        writer.write(f"HTTP/1.1 {answers.get(path, '404 No')}\r\nContent-Length: 0\r\n\r\n"
                     .encode())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, seen
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(("path", "ok", "message"), [
    pytest.param("/ok", True, "", id="200"),
    pytest.param("/bad", False, "HTTP probe failed with statuscode: 500", id="500"),
    pytest.param("/moved", True, "", id="redirect-same-host-followed"),
    pytest.param("/away", True, "Probe terminated redirects", id="redirect-elsewhere-success"),
    pytest.param("/missing", False, "statuscode: 404", id="404"),
])
async def test_http_probe(http_server: tuple[int, list[str]], path: str, ok: bool,
                          message: str) -> None:
    port, seen = http_server
    executor = NetnsProbeExecutor(None)
    outcome = await executor.run(HTTPGetAction(port, path), CTX)
    assert outcome.ok is ok
    assert message in outcome.message
    assert f"Host: 127.0.0.1:{port}\r\n" in seen[0]
    assert f"User-Agent: {USER_AGENT}\r\n" in seen[0]
    await executor.close()


async def test_http_probe_custom_headers(http_server: tuple[int, list[str]]) -> None:
    port, seen = http_server
    outcome = await NetnsProbeExecutor(None).run(
        HTTPGetAction(port, "/ok", headers=(("Host", "example"), ("X-Probe", "1"))), CTX)
    assert outcome.ok
    assert "Host: example\r\n" in seen[0] and f"Host: 127.0.0.1:{port}" not in seen[0]
    assert "X-Probe: 1\r\n" in seen[0]


async def test_tcp_probe(http_server: tuple[int, list[str]]) -> None:
    port, _ = http_server
    executor = NetnsProbeExecutor(None)
    assert (await executor.run(TCPSocketAction(port), CTX)).ok
    # A port nobody listens on (the server's, once closed).
    closed = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    free = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    refused = await executor.run(TCPSocketAction(free), CTX)
    assert not refused.ok
    assert refused.message == f"dial tcp 127.0.0.1:{free}: connect: connection refused"
    http = await executor.run(HTTPGetAction(free, "/"), CTX)
    assert http.message.startswith(f'Get "http://127.0.0.1:{free}/": dial tcp')


@pytest.mark.parametrize(("command", "ok", "message"), [
    pytest.param(("true",), True, "", id="success"),
    pytest.param(("sh", "-c", "echo broken; exit 2"), False,
                 "command ['sh', '-c', 'echo broken; exit 2'] exited with 2: broken",
                 id="failure-with-output"),
    pytest.param(("no-such-binary-xyz",), False,
                 'exec: "no-such-binary-xyz": executable file not found in $PATH',
                 id="missing-binary"),
])
async def test_exec_probe(command: tuple[str, ...], ok: bool, message: str) -> None:
    outcome = await NetnsProbeExecutor(None).run(ExecAction(command), CTX)
    assert outcome.ok is ok
    assert message in outcome.message


async def test_exec_probe_through_the_runtime() -> None:
    """A container runtime's container: the command runs through its ExecSync, not here."""
    calls: list[list[str]] = []

    async def exec_sync(argv: list[str]) -> tuple[int, bytes]:
        calls.append(argv)
        return (0, b"fine\n") if argv[0] == "ok" else (3, b"out\nerr\n")

    ctx = dataclasses.replace(CTX, exec_sync=exec_sync)
    executor = NetnsProbeExecutor(None)
    assert await executor.run(ExecAction(("ok",)), ctx) == ProbeOutcome(True, "fine")
    bad = await executor.run(ExecAction(("bad", "x")), ctx)
    assert bad == ProbeOutcome(False, "command ['bad', 'x'] exited with 3: out\nerr")
    assert calls == [["ok"], ["bad", "x"]]

    async def broken(argv: list[str]) -> tuple[int, bytes]:
        raise RuntimeError("container not running")

    lost = await executor.run(ExecAction(("ok",)), dataclasses.replace(CTX, exec_sync=broken))
    assert not lost.ok and "container not running" in lost.message


async def test_exec_probe_timeout_kills_the_command(tmp_path: Any) -> None:
    clock = FakeClock()
    mgr = ProbeManager(NetnsProbeExecutor(None), clock)
    marker = tmp_path / "pid"
    spec = ProbeSpec(ProbeKind.READINESS,
                     ExecAction(("sh", "-c", f"echo $$ > {marker}; exec sleep 60")),
                     ProbeTiming(timeout=1, failure_threshold=1))
    mgr.start_container(KEY, [spec], CTX, clock.monotonic())
    async with asyncio.timeout(5):
        while not (marker.exists() and marker.read_text().strip()):
            await asyncio.sleep(0.01)
    pid = int(marker.read_text())
    clock.advance(1)
    async with asyncio.timeout(5):
        while (t := mgr.tracker(KEY, ProbeKind.READINESS)) is None or t.probes == 0:
            await asyncio.sleep(0.01)
    assert t.message == "probe timed out after 1s"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped
    await mgr.close()


async def test_unsupported_action_fails() -> None:
    outcome = await NetnsProbeExecutor(None).run(UnsupportedAction("why"), CTX)
    assert outcome == ProbeOutcome(False, "why")
