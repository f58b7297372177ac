"""`svcnet server --workers N`: the API request path on more than one core.

Theory of operation
-------------------
A Python process runs its requests on one core at a time (the GIL), so one `svcnet server`
answers 16 busy clients at the pace of one core, whatever the machine has; kube-apiserver, in
Go, spreads its requests over every core by itself. ``--workers N`` starts N-1 *worker*
processes beside the server (the *primary*), each a whole API server of the same cluster, and
all of them accept connections from the primary's listening socket and its loopback socket
(loopback.py), which the workers inherit, the way pre-fork servers (nginx, gunicorn) share
one; :class:`svcnet.apiserver.connections.SharedAcceptor` spreads the connections evenly.

A worker is what a second server of an HA control plane is (docs/HA.md), on the same store
and the same data directory: the same CA, serving certificate and tokens; its writes are
store-arbitrated like any server's (the SQLite store is multi-process safe: writes take its
file lock in turn, and each process's watches see the others' writes through its poll of the
file, within ``poll_interval``). It differs from a second server in what it leaves to the
primary, which keeps doing everything it did alone:

* the data directory's lock, the kubeconfig, the join command and token, and the system
  objects (seeded at start and by the bootstrap loop);
* the controllers (the primary's, whose connections every process serves; a worker never
  stands for the controller-manager Lease) and the ``default/kubernetes`` endpoint lease
  (one address, one lease);
* allocations: a worker's carry their own holder, the server's id with ``-w<k>`` appended
  (:func:`worker_holder_server`), so the repair at a worker's start frees what its previous
  start leaked, and the primary's periodic repair what a dead worker leaked, after the grace
  period, as for any other server.

Lifecycle: the primary starts its workers once it listens, and writes the kubeconfig only
once every worker has said that it serves (:data:`READY_LINE` on its stdout), so the
kubeconfig still means "ready to serve". A worker dies with the primary, even a primary
killed with SIGKILL (``PR_SET_PDEATHSIG``, :func:`die_with_parent`); on SIGTERM the primary
stops its workers first. A worker that exits on its own is logged and started again after a
pause that doubles, up to 30 s, while it keeps failing.

Metrics: whichever process a scrape of ``/metrics`` reaches answers for all of them. The
primary turns on prometheus_client's multiprocess mode (:func:`share_metrics`) before it makes
its metrics and starts its workers, which inherit it: each process keeps its values in files
of its own in a private directory of the data directory (memory-mapped, updated in place), and
a scrape sums every process's (:func:`metrics_text`), those of workers that exited included,
so that counters never go back while the primary lives. Per process: ``--max-connections``
(each process takes that many).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger(__name__)

READY_LINE: Final = b"svcnet-worker-serving\n"
"""What a worker writes on its stdout once it serves."""

START_TIMEOUT: Final = 120.0
"""Seconds a worker may take from spawn to serving (it opens the store and repairs
allocations against every stored Service, as any server does at start)."""

_PR_SET_PDEATHSIG: Final = 1


class WorkerFailed(Exception):
    """An API worker did not start serving."""


def worker_holder_server(server_id: str, index: int) -> str:
    """The allocation holder's server id of worker ``index`` of server ``server_id``."""
    return server_id if index == 0 else f"{server_id}-w{index}"


def die_with_parent(parent: int) -> None:
    """Have the kernel send this process SIGTERM when its parent dies; exit at once if the
    parent (pid ``parent``) is already gone."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:  # the parent died before the prctl
        os._exit(0)


def say_serving() -> None:
    """A worker's signal to its primary that it serves; its stdout is /dev/null from then on
    (nobody reads the pipe any more)."""
    os.write(sys.stdout.fileno(), READY_LINE)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


class Workers:
    """The primary's worker processes: started, waited for, restarted, stopped.

    ``argv(index)`` is the command line of worker ``index`` (1..count); ``fds`` the
    listening sockets' descriptors they inherit.
    """

    def __init__(self, argv: Callable[[int], list[str]], count: int,
                 fds: Sequence[int]) -> None:
        self._argv = argv
        self._count = count
        self._fds = tuple(fds)
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        """Start every worker and return once each serves (WorkerFailed if one does not)."""
        await asyncio.gather(*(self._spawn(i) for i in range(1, self._count)))
        self._tasks = [asyncio.create_task(self._supervise(i)) for i in range(1, self._count)]

    async def _spawn(self, index: int) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._argv(index), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, pass_fds=self._fds)
        except OSError as e:
            raise WorkerFailed(f"cannot start API worker {index}: {e}") from e
        self._procs[index] = proc
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(START_TIMEOUT):
                line = await proc.stdout.readline()
        except TimeoutError:
            line = b""
        if line != READY_LINE:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise WorkerFailed(f"API worker {index} did not start (exit status "
                               f"{proc.returncode}; its errors are in this server's log)")
        log.info("API worker %d (pid %d) serving", index, proc.pid)

    async def _supervise(self, index: int) -> None:
        pause = 1.0
        while True:
            proc = self._procs[index]
            code = await proc.wait()
            if self._stopping:
                return
            log.error("API worker %d (pid %d) exited with status %s; starting it again in "
                      "%.0f s", index, proc.pid, code, pause)
            await asyncio.sleep(pause)
            try:
                await self._spawn(index)
                pause = 1.0
            except WorkerFailed as e:
                log.error("%s", e)
                pause = min(pause * 2, 30.0)

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every worker, SIGKILL those still running after ``timeout`` seconds."""
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        running = [p for p in self._procs.values() if p.returncode is None]
        for p in running:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(p.wait() for p in running))
        except TimeoutError:
            for p in running:
                if p.returncode is None:
                    log.warning("API worker pid %d did not stop in %.0f s; killing it",
                                p.pid, timeout)
                    with contextlib.suppress(ProcessLookupError):
                        p.kill()
            await asyncio.gather(*(p.wait() for p in running))


METRICS_DIR_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
"""Where processes of one server keep their metrics (prometheus_client's multiprocess mode)."""


def share_metrics(data_dir: Path) -> Path:
    """Make the metrics this process creates from now on, and those of the workers it starts
    (which inherit the environment), one set that :func:`metrics_text` sums; the directory
    they live in (left by an earlier run: removed). The primary only, under the data
    directory's lock."""
    for stale in data_dir.glob("metrics-*"):
        shutil.rmtree(stale, ignore_errors=True)
    path = Path(tempfile.mkdtemp(prefix="metrics-", dir=data_dir))
    os.environ[METRICS_DIR_ENV] = str(path)
    # prometheus_client reads the variable when it is first imported, long before a server
    # knows it has workers; this is what that import would have chosen.
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    return path


def unshare_metrics(path: Path) -> None:
    """Undo :func:`share_metrics` once the workers are gone."""
    os.environ.pop(METRICS_DIR_ENV, None)
    values.ValueClass = values.MutexValue
    shutil.rmtree(path, ignore_errors=True)


def metrics_text(registry: CollectorRegistry) -> bytes:
    """What ``/metrics`` answers: ``registry``'s metrics, or, when the server's processes
    share theirs (:func:`share_metrics`), every process's summed."""
    directory = os.environ.get(METRICS_DIR_ENV)
    if not directory:
        return generate_latest(registry)
    merged = CollectorRegistry()
    MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(merged)
