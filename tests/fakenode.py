"""A node server (svcnet/node/server.py) over a fake runtime, for tests that need a node agent
to talk to without root: containers "run" in the fake runtime, their logs are files, and
commands run in the test's own namespaces (no netns)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svcnet.node.probes import ProbeContext
from svcnet.node.runtime import ContainerKey, FakeRuntime, ProcessSpec
from svcnet.util.clock import FakeClock

ENV = {"PATH": "/usr/bin:/bin", "GREETING": "hello"}


@dataclass
class FakeHost:
    """What :class:`svcnet.node.server.NodeServer` needs of the pod runner."""

    runtime: FakeRuntime = field(default_factory=lambda: FakeRuntime(FakeClock()))
    logs: dict[tuple[str, str], Path] = field(default_factory=dict)

    async def run(self, uid: str, container: str, log: Path, output: bytes) -> None:
        """A running container whose log holds ``output``."""
        log.write_bytes(output)
        self.logs[(uid, container)] = log
        await self.runtime.start(ContainerKey(uid, container),
                                 ProcessSpec(argv=("app",), env={}, log_path=log))

    def log_files(self, uid: str, container: str) -> list[Path]:
        log = self.logs.get((uid, container))
        return [log] if log is not None else []

    cri: set[str] = field(default_factory=set)
    """Pods whose log files are in the CRI format."""

    def runtime_of(self, uid: str, container: str) -> FakeRuntime:
        return self.runtime

    def cri_logs(self, uid: str) -> bool:
        return uid in self.cri

    def sandbox(self, uid: str) -> None:
        return None  # no CRI runtime: port-forward dials the pod itself

    def exec_context(self, pod: Any, container: Any) -> ProbeContext:
        return ProbeContext("127.0.0.1", None, dict(ENV), None)
