"""Where a local cluster keeps its state, and how its processes are recorded.

``~/.svcnet/<cluster>/`` holds ``network.json`` (the cluster's node and pod networks, recorded
before its bridge exists: networks.py), ``cluster.json`` (what ``up`` built), ``kubeconfig``
(admin), ``server/`` (the API server's data dir), ``nodes/node-<i>/`` (agent state and pod
logs), ``logs/``, ``pids/``, and the supervisor's ``units/`` and ``supervisor.json``. A pid file
records the pid *and* the process's start time, so ``down`` signals only the very process
``up`` (or the supervisor) started, never a later process that reused the pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CLUSTER_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?")


def cluster_dir(name: str) -> Path:
    """The cluster's state directory. The name is checked first: it becomes a directory that
    ``svcnet down`` removes, and the alias of the cluster's bridge."""
    if not _CLUSTER_NAME.fullmatch(name):
        raise ValueError(f"cluster name {name!r} must be 1-40 characters of a-z, 0-9 and '-', "
                         f"starting and ending with a letter or digit")
    return Path(os.environ.get("SVCNET_HOME", Path.home() / ".svcnet")) / name


@dataclass(frozen=True, slots=True)
class Paths:
    root: Path

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def network(self) -> Path:
        """The cluster's networks, recorded by ``up`` before it creates the bridge."""
        return self.root / "network.json"

    @property
    def config(self) -> Path:
        return self.root / "cluster.json"

    @property
    def server(self) -> Path:
        return self.root / "server"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def units(self) -> Path:
        """What the supervisor runs (supervise.py)."""
        return self.root / "units"

    @property
    def supervisor_status(self) -> Path:
        return self.root / "supervisor.json"

    def node(self, name: str) -> Path:
        return self.root / "nodes" / name


def start_time(pid: int) -> str | None:
    """A process's start time (clock ticks since boot), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None  # dead (a zombie nobody reaped yet counts as gone)
    # Field 22 (starttime), counted after the parenthesised command name.
    return fields[19]


def record_pid(paths: Paths, name: str, pid: int) -> None:
    paths.pids.mkdir(parents=True, exist_ok=True)
    (paths.pids / f"{name}.json").write_text(
        json.dumps({"pid": pid, "start": start_time(pid)}))


def live_processes(paths: Paths) -> dict[str, int]:
    """Recorded processes that still run (same pid *and* same start time)."""
    out: dict[str, int] = {}
    if not paths.pids.is_dir():
        return out
    for f in sorted(paths.pids.glob("*.json")):
        try:
            rec: dict[str, Any] = json.loads(f.read_text())
            pid = int(rec["pid"])
        except (OSError, ValueError, KeyError):
            continue
        if rec.get("start") and start_time(pid) == rec["start"]:
            out[f.stem] = pid
    return out


def stop_processes(paths: Paths, *, grace: float = 10.0,
                   names: set[str] | None = None) -> list[str]:
    """SIGTERM the recorded live processes (all, or those in ``names``), SIGKILL what is left
    after ``grace``."""
    def mine() -> dict[str, int]:
        return {k: v for k, v in live_processes(paths).items() if names is None or k in names}

    live = mine()
    for pid in live.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and mine():
        time.sleep(0.05)
    for pid in mine().values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for name in live:
        (paths.pids / f"{name}.json").unlink(missing_ok=True)
    return sorted(live)
