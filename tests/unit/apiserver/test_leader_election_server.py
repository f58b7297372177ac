"""Leader election against real API servers, in process: the Lease as served, and two servers
on one store of which only the leader runs the controllers."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import replace
from pathlib import Path

from svcnet.apiserver.server import CONTROLLER_LEASE, APIServer, ServerConfig
from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.client.leaderelection import LeaderElector, LeaseLock
from svcnet.client.rest import LEASES, RESTClient
from svcnet.storage.memory import MemoryStore

MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


async def test_lease_lock_on_a_real_server(tmp_path: Path) -> None:
    server = APIServer(ServerConfig(data_dir=tmp_path, listen="127.0.0.1:0"),
                       store=MemoryStore())
    await server.start()
    client = RESTClient.from_kubeconfig(load_kubeconfig(server.kubeconfig_path))
    try:
        # The server elected itself during start(): its controllers run.
        assert server.controller_manager is not None
        lease = await client.get(LEASES, "kube-system", CONTROLLER_LEASE)
        spec = lease["spec"]
        assert spec["holderIdentity"].endswith("_" + server.holder.server)
        assert spec["leaseDurationSeconds"] == 15 and spec["leaseTransitions"] == 0
        assert MICRO_TIME.match(spec["renewTime"]) and MICRO_TIME.match(spec["acquireTime"])

        # Another candidate cannot take the server's lease.
        other = LeaderElector(LeaseLock(client, "kube-system", CONTROLLER_LEASE), "other")
        assert not await other.try_acquire_or_renew()
        assert other.leader == spec["holderIdentity"]

        # A lease of our own: taken, released on cancel, taken by the next one at once.
        first = LeaderElector(LeaseLock(client, "default", "test-lock"), "first")
        leading = asyncio.Event()

        async def lead() -> None:
            leading.set()
            await asyncio.Event().wait()

        run = asyncio.create_task(first.run(lead))
        await asyncio.wait_for(leading.wait(), 5)
        second = LeaderElector(LeaseLock(client, "default", "test-lock"), "second")
        assert not await second.try_acquire_or_renew()
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        released = (await client.get(LEASES, "default", "test-lock"))["spec"]
        assert "holderIdentity" not in released and released["leaseDurationSeconds"] == 1
        assert await second.try_acquire_or_renew()
        taken = (await client.get(LEASES, "default", "test-lock"))["spec"]
        assert taken["holderIdentity"] == "second" and taken["leaseTransitions"] == 1
    finally:
        await client.close()
        await server.stop()


async def test_only_the_leader_runs_controllers_and_a_standby_takes_over(
        tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'shared.db'}"  # each server opens and closes its own
    first = APIServer(ServerConfig(data_dir=tmp_path / "a", listen="127.0.0.1:0",
                                   store_url=store))
    second = APIServer(ServerConfig(data_dir=tmp_path / "b", listen="127.0.0.1:0",
                                    store_url=store))
    await first.start()
    try:
        await second.start()
        assert first.controller_manager is not None
        assert second.controller_manager is None
        assert second.elector is not None and not second.elector.is_leader
        # One cluster: the first server's kubeconfig (CA, admin token) works on the second,
        # whose serving certificate is its own.
        config = load_kubeconfig(first.kubeconfig_path)
        assert config.token == load_kubeconfig(second.kubeconfig_path).token
        async with RESTClient.from_kubeconfig(replace(config, server=second.url)) as client:
            lease = await client.get(LEASES, "kube-system", CONTROLLER_LEASE)
            assert lease["spec"]["holderIdentity"] == first.elector.leader  # type: ignore[union-attr]
        assert ((tmp_path / "a" / "pki" / "apiserver.crt").read_bytes()
                != (tmp_path / "b" / "pki" / "apiserver.crt").read_bytes())
        # A clean stop releases the lease: the standby takes over on its next try, within
        # a retry period and its jitter (2 s * 2.2).
        await first.stop()
        stopped = time.monotonic()
        while second.controller_manager is None:
            assert time.monotonic() - stopped < 6, "the standby did not take over"
            await asyncio.sleep(0.1)
        assert second.elector.is_leader
    finally:
        await first.stop()
        await second.stop()
