"""The controllers' private socket (apiserver/loopback.py): the same API, minus TLS."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from svcnet.apiserver.server import APIServer, ServerConfig
from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.client.rest import NAMESPACES
from svcnet.storage.memory import MemoryStore


async def test_controllers_use_the_private_socket_which_still_authenticates(
        tmp_path: Path) -> None:
    server = APIServer(ServerConfig(data_dir=tmp_path, listen="127.0.0.1:0"),
                       store=MemoryStore())
    await server.start()
    try:
        path = server.loopback.path
        assert path.startswith("\0svcnet-apiserver-") and len(path) > 40
        assert server.controller_manager is not None
        assert server.controller_manager.client.server == "http://svcnet-apiserver"

        connector = aiohttp.UnixConnector(path=path)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get("http://x/api/v1/namespaces") as resp:
                assert resp.status == 401  # no token: refused, as on the TLS port
            async with session.get("http://x/api/v1/namespaces", headers={
                    "Authorization": "Bearer not-a-token"}) as resp:
                assert resp.status == 401

        token = load_kubeconfig(server.kubeconfig_path).token
        assert token
        client = server.loopback.client(token, user_agent="test")
        names = {ns["metadata"]["name"] for ns in (await client.list(NAMESPACES)).items}
        assert {"default", "kube-system"} <= names
    finally:
        await server.stop()
