"""Shared test policy: root-only tests skip on a laptop, but fail in CI.

A test marked ``root`` (or calling :func:`require_root`) needs root and network namespaces. On a
machine without them it is skipped, unless ``SVCNET_REQUIRE_ROOT_TESTS=1`` (set by .ci/run), in
which case the missing capability is a failure: in CI such tests must run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

REQUIRE = os.environ.get("SVCNET_REQUIRE_ROOT_TESTS") == "1"


# Fixtures shared by several test packages.
pytest_plugins = ["tests.etcd_server", "tests.registry_server", "tests.containerd_server"]


def require(condition: bool, reason: str) -> None:
    """Skip (laptop) or fail (CI) when a capability a test needs is missing."""
    if condition:
        return
    if REQUIRE:
        pytest.fail(f"SVCNET_REQUIRE_ROOT_TESTS=1 but {reason}")
    pytest.skip(reason)


def require_root() -> None:
    require(os.geteuid() == 0, "this test needs root")


def require_binary(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"{name} is not installed")
    assert path is not None
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` (a loopback address) that was free a moment ago (for servers
    that cannot report the port they bound)."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


# The files of the test modules holding a root test (those may hold clusters: _machine_share).
_ROOT_MODULES = pytest.StashKey[set[str]]()


def _module_file(item: pytest.Item) -> str:
    return item.nodeid.split("::")[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("root") is not None:
            item.add_marker(pytest.mark.usefixtures("_root_required"))
    root_modules = {_module_file(i) for i in items if i.get_closest_marker("root") is not None}
    config.stash[_ROOT_MODULES] = root_modules
    if os.environ.get("PYTEST_XDIST_WORKER") is not None:
        # Handed out to the workers in this order (scripts/check: --no-loadscope-reorder): the
        # root modules (the slow ones), then the machine_exclusive ones, which wait only for
        # the root modules still running, then the rest, which take no lock.
        def rank(item: pytest.Item) -> int:
            if item.get_closest_marker("machine_exclusive") is not None:
                return 1
            return 0 if _module_file(item) in root_modules else 2
        items.sort(key=rank)


@pytest.fixture
def _root_required() -> None:
    require_root()


@contextlib.contextmanager
def _flock(path: Path, operation: int) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, operation)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(scope="module", autouse=True)
def _machine_share(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """With pytest-xdist workers (scripts/check), a module marked ``machine_exclusive`` runs
    while no module holding a root test (which may hold a cluster) runs; those share the
    machine. Modules without root tests take no lock.

    A readers-writer lock over the module's whole life (its module fixtures, e.g. a `svcnet up`
    cluster, included), from ``flock`` on two files in the run's temp dir, which all workers
    share: ``share`` (shared by readers, exclusive for the writer) and ``turn``, which a reader
    passes through before taking ``share`` and the writer holds while it waits and runs, so
    that readers arriving meanwhile queue behind it instead of starving it. One process (no
    xdist) needs no lock."""
    exclusive = request.node.get_closest_marker("machine_exclusive") is not None
    module = request.node.nodeid.split("::")[0]
    if (os.environ.get("PYTEST_XDIST_WORKER") is None
            or not (exclusive or module in request.config.stash[_ROOT_MODULES])):
        yield
        return
    run_dir = tmp_path_factory.getbasetemp().parent
    turn, share = run_dir / "svcnet-machine.turn", run_dir / "svcnet-machine.share"
    if exclusive:
        with _flock(turn, fcntl.LOCK_EX), _flock(share, fcntl.LOCK_EX):
            yield
        return
    with contextlib.ExitStack() as held:
        with _flock(turn, fcntl.LOCK_EX):
            held.enter_context(_flock(share, fcntl.LOCK_SH))
        yield
