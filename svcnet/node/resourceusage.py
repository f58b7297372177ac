"""What the node's containers and the node use, for ``/metrics/resource`` (the kubelet's
resource metrics, :mod:`svcnet.api.resourcemetrics`).

Theory of operation
-------------------
Followed: kubernetes pkg/kubelet/stats (the CRI stats provider: a container's figures are its
runtime's ``ListContainerStats``) and pkg/kubelet/metrics/collectors/resource_metrics.go (what
is exported).

**CRI containers** (containerd): ``usage_core_nano_seconds`` and ``working_set_bytes`` of
``ListContainerStats``, the figures of the container's cgroup (usage minus inactive file
pages), measured when the runtime says (:meth:`svcnet.node.cri.CriRuntime.container_stats`).

**Process-runtime containers** have no cgroup of their own: a container is the session its
first process leads (the runtime starts it with ``setsid``), so its figures are the sums over
the live processes of that session, read from ``/proc/<pid>/stat`` in one pass over ``/proc``:

* CPU: ``utime + stime`` (the process's own time) ``+ cutime + cstime`` (its children's that
  it has reaped, so that a shell's finished commands still count), in clock ticks
  (``SC_CLK_TCK``, 10 ms): the counter moves in 10 ms steps, and a process that has not used
  one tick yet reads 0 (metrics-server then leaves the pod out, as it does any zero point);
* memory: the resident set size (``rss``, field 24, in pages) standing in for the working set.
  It counts shared pages (libraries) once per process, where a cgroup counts them once, and
  leaves out the page cache a cgroup's working set keeps; it is the per-process figure
  closest to it that needs no cgroup.

A process that leaves the session (``setsid`` of its own) is not counted, nor is one reaped by
a process outside the session.

**The node.** A simulated node is a network namespace on a shared machine: the machine's own
CPU and memory would be every node's at once, and svcnet keeps no cgroup per node. The
honest figure is what runs *for* the node: the agent's own process (``utime + stime``, RSS)
plus its containers, live ones as read above plus, for CPU, the last reading of every
container that has gone since the agent started (:class:`CpuLedger`), so that the node's CPU is
a counter that never goes back. Time spent between a container's last reading and its end is
not counted. The working set is the agent's RSS plus its live containers'.

The parsers and the ledger are pure (unit-tested); :class:`ResourceCollector` does the I/O.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from svcnet.api.resourcemetrics import ContainerUsage, PodRef, ResourceSample, Usage
from svcnet.node.cri import CriError, CriRuntime
from svcnet.node.runtime import ContainerKey, ProcessRuntime, Running

__all__ = [
    "CpuLedger",
    "ProcUsage",
    "ResourceCollector",
    "parse_proc_stat_usage",
    "session_usage",
]

CLK_TCK: Final = os.sysconf("SC_CLK_TCK")
PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE")
_NS: Final = 1_000_000_000

Pod = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ProcUsage:
    """One process's figures from ``/proc/<pid>/stat``."""

    session: int
    ticks: int
    """utime + stime + cutime + cstime, in clock ticks."""
    self_ticks: int
    """utime + stime alone."""
    rss_pages: int

    def cpu_ns(self, *, children: bool = True) -> int:
        return (self.ticks if children else self.self_ticks) * _NS // CLK_TCK

    @property
    def rss_bytes(self) -> int:
        return self.rss_pages * PAGE_SIZE


def parse_proc_stat_usage(raw: str) -> ProcUsage:
    """The session, CPU ticks and RSS of one ``/proc/<pid>/stat`` line (proc(5): fields 6,
    14-17 and 24). The command name (field 2) may hold spaces and parentheses: fields are
    counted from the last ``)``. Raises ValueError (or IndexError) on a malformed line."""
    rest = raw[raw.rindex(")") + 2:].split()
    utime, stime, cutime, cstime = (int(v) for v in rest[11:15])
    return ProcUsage(session=int(rest[3]), ticks=utime + stime + cutime + cstime,
                     self_ticks=utime + stime, rss_pages=int(rest[21]))


def session_usage(sessions: Iterable[int], proc: Path = Path("/proc")
                  ) -> dict[int, tuple[int, int]]:
    """(CPU ns, RSS bytes) summed over the live processes of each session, in one pass over
    ``proc``; a session with no process left is absent."""
    wanted = set(sessions)
    sums: dict[int, tuple[int, int]] = {}
    if not wanted:
        return sums
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            usage = parse_proc_stat_usage((proc / entry.name / "stat").read_text(
                errors="replace"))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not a process directory
        if usage.session in wanted:
            cpu, rss = sums.get(usage.session, (0, 0))
            sums[usage.session] = (cpu + usage.cpu_ns(), rss + usage.rss_bytes)
    return sums


class CpuLedger:
    """The node's CPU as a counter: live containers' CPU plus the last reading of those that
    have gone (pure: fed the readings of each sample)."""

    def __init__(self) -> None:
        self.retired = 0
        self._last: dict[tuple[ContainerKey, float | None], int] = {}

    def total(self, live: Mapping[tuple[ContainerKey, float | None], int],
              running: Collection[tuple[ContainerKey, float | None]] = ()) -> int:
        """``live``: CPU ns per (container, start time) read now; ``running``: containers the
        runtime says still run, read now or not (one missing from a stats answer keeps its
        last reading: retiring it would count it twice once it is read again)."""
        kept = dict(live)
        for key, cpu in self._last.items():
            if key in kept:
                continue
            if key in running:
                kept[key] = cpu
            else:
                self.retired += cpu
        self._last = kept
        return self.retired + sum(kept.values())


class ResourceCollector:
    """Samples the node's pods and itself for ``/metrics/resource``."""

    def __init__(self, pods: Callable[[], Iterable[Pod]],
                 runtime_of: Callable[[str, str], ProcessRuntime],
                 cri: Callable[[], CriRuntime | None], *, proc: Path = Path("/proc"),
                 now: Callable[[], float] = time.time) -> None:
        self.pods = pods
        self.runtime_of = runtime_of
        self.cri = cri
        self.proc = proc
        self.now = now
        self.ledger = CpuLedger()
        self._lock = asyncio.Lock()

    async def sample(self) -> ResourceSample:
        async with self._lock:  # the ledger sees one sample at a time
            return await self._sample()

    async def _sample(self) -> ResourceSample:
        running: list[tuple[PodRef, str, ContainerKey, Running, bool]] = []
        for pod in self.pods():
            meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
            ref, uid = PodRef(meta.get("namespace", ""), meta.get("name", "")), meta.get("uid")
            if not uid:
                continue
            for c in spec.get("containers") or ():
                name = c.get("name", "")
                runtime = self.runtime_of(uid, name)
                key = ContainerKey(uid, name)
                proc = runtime.get(key)
                if proc is not None and isinstance(proc.state, Running):
                    running.append((ref, name, key, proc.state,
                                    isinstance(runtime, CriRuntime)))
        cri = self.cri()
        error = False
        cri_stats: dict[ContainerKey, tuple[int, int, float]] = {}
        if cri is not None and any(on_cri for *_, on_cri in running):
            try:
                cri_stats = await cri.container_stats()
            except CriError:
                error = True
        sessions = [state.pid for *_, state, on_cri in running if not on_cri]
        by_session, agent = await asyncio.to_thread(self._read_proc, sessions)
        now = self.now()
        containers: list[ContainerUsage] = []
        live: dict[tuple[ContainerKey, float | None], int] = {}
        for ref, name, key, state, on_cri in running:
            start = state.started_at.timestamp()
            if on_cri:
                if key not in cri_stats:
                    continue
                cpu, memory, when = cri_stats[key]
            elif state.pid in by_session:
                (cpu, memory), when = by_session[state.pid], now
            else:
                continue  # exited since the runtime looked
            live[(key, start)] = cpu
            containers.append(ContainerUsage(ref, name, Usage(cpu, memory, when, start)))
        if agent is None or error:
            return ResourceSample(None, tuple(containers), error=True)
        node_cpu = agent.cpu_ns(children=False) + self.ledger.total(
            live, {(key, state.started_at.timestamp()) for _, _, key, state, _ in running})
        node_memory = agent.rss_bytes + sum(c.usage.memory for c in containers)
        return ResourceSample(Usage(node_cpu, node_memory, now), tuple(containers))

    def _read_proc(self, sessions: list[int]) -> tuple[dict[int, tuple[int, int]],
                                                         ProcUsage | None]:
        try:
            agent: ProcUsage | None = parse_proc_stat_usage(
                (self.proc / str(os.getpid()) / "stat").read_text())
        except (OSError, ValueError, IndexError):
            agent = None
        return session_usage(sessions, self.proc), agent
