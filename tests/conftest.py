"""Shared test policy: root-only tests skip on a laptop, but fail in CI.

A test marked ``root`` (or calling :func:`require_root`) needs root and network namespaces. On a
machine without them it is skipped, unless ``SVCNET_REQUIRE_ROOT_TESTS=1`` (set by .ci/run), in
which case the missing capability is a failure: in CI such tests must run.
"""

from __future__ import annotations

import os
import shutil
import socket

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for servers that cannot report the
    port they bound)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("root") is not None:
            item.add_marker(pytest.mark.usefixtures("_root_required"))


@pytest.fixture
def _root_required() -> None:
    require_root()
