"""Fixtures shared by the controller tests that run against the real API server in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from svcnet.apiserver.server import APIServer, ServerConfig
from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.client.rest import RESTClient
from svcnet.storage.memory import MemoryStore


@pytest.fixture
async def quiet_server(tmp_path: Path) -> AsyncIterator[APIServer]:
    """A server on an in-memory store whose own controllers are stopped, so each controller
    pass is the test's call."""
    server = APIServer(ServerConfig(data_dir=tmp_path, listen="127.0.0.1:0"),
                       store=MemoryStore())
    await server.start()
    try:
        assert server.controller_manager is not None
        await server.controller_manager.stop()
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def rest(quiet_server: APIServer) -> AsyncIterator[RESTClient]:
    """An admin client of :func:`quiet_server`."""
    client = RESTClient.from_kubeconfig(load_kubeconfig(quiet_server.kubeconfig_path))
    try:
        yield client
    finally:
        await client.close()
