"""The real `svcnet server` through store outages: clients get 503/504 (never 500) while the
store is gone, nothing half-written is stored, and every controller converges by itself once
the store is back (a Service created right after the outage, or acknowledged during it, gets its
EndpointSlice within seconds).

* etcd: the etcd process is SIGKILLed by its pid for ~8 s while a client keeps writing, then
  restarted on the same ports and data; and frozen (SIGSTOP) so that a write runs out of time
  (504 Timeout).
* SQLite: the database lives on a tiny tmpfs (root only: mounting needs it) that the test fills
  with a ballast file, then frees.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from svcnet.api.errors import StatusError
from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.client.rest import ENDPOINTSLICES, SERVICES, RESTClient, TransportError
from tests.e2e.conftest import start_server, stop_server
from tests.etcd_server import EtcdServer

OUTAGE_SECONDS = 8.0
CONVERGE_SECONDS = 30.0
"""How long a Service may wait for its EndpointSlice after the store is back (it takes a few
seconds: the controllers' informers and work queues back off during the outage)."""

Obj = dict[str, Any]


def service(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}


@contextlib.asynccontextmanager
async def api(data_dir: Path) -> AsyncIterator[RESTClient]:
    client = RESTClient.from_kubeconfig(load_kubeconfig(data_dir / "kubeconfig"), timeout=15)
    try:
        yield client
    finally:
        await client.close()


async def raw_create(data_dir: Path, obj: Obj) -> tuple[int, dict[str, str], Obj]:
    """POST ``obj`` without the client's error mapping: (status, headers, decoded body)."""
    config = load_kubeconfig(data_dir / "kubeconfig")
    async with aiohttp.ClientSession() as session, session.post(
            config.server + SERVICES.path("default"), json=obj,
            headers={"Authorization": f"Bearer {config.token}"},
            ssl=config.ssl_context(), server_hostname=config.tls_server_name or None) as resp:
        return resp.status, dict(resp.headers), await resp.json()


async def slices_of(client: RESTClient, name: str) -> list[Obj]:
    result = await client.list(ENDPOINTSLICES, "default",
                               label_selector=f"kubernetes.io/service-name={name}")
    return result.items


async def wait_for_slices(client: RESTClient, names: list[str], timeout: float,
                          log: Path) -> float:
    """Seconds until every Service in ``names`` has an EndpointSlice; fails with the server's
    log after ``timeout``."""
    started = time.monotonic()
    missing = list(names)
    while missing:
        with contextlib.suppress(StatusError, TransportError):
            missing = [n for n in missing if not await slices_of(client, n)]
        if not missing:
            break
        if time.monotonic() - started > timeout:
            pytest.fail(f"no EndpointSlice for {missing} {timeout:g} s after the outage; "
                        f"server log:\n{log.read_text(errors='replace')[-4000:]}")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def write_through_outage(client: RESTClient, prefix: str, until: float,
                               codes: list[int]) -> list[str]:
    """Create Services until ``until`` (monotonic); returns the names the server acknowledged,
    and records the HTTP code of every refused write in ``codes``."""
    acknowledged: list[str] = []
    n = 0
    while time.monotonic() < until:
        n += 1
        name = f"{prefix}-{n}"
        try:
            await client.create(SERVICES, service(name))
            acknowledged.append(name)
        except StatusError as e:
            codes.append(e.code)
            if e.code == 504:
                acknowledged.append(name)  # may have been applied: it must converge too
            assert e.code != 500, f"a store outage answered 500: {e}"
        await asyncio.sleep(0.2)
    return acknowledged


async def create_with_retry(client: RESTClient, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await client.create(SERVICES, service(name))
            return
        except StatusError as e:
            if e.code == 409:
                return  # a 504'd attempt had been applied after all
            assert e.code in (503, 504), f"unexpected answer: {e.code} {e}"
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


# -- etcd -----------------------------------------------------------------------------------


async def test_etcd_killed_under_writes_503_then_everything_converges(
        tmp_path: Path, etcd: EtcdServer) -> None:
    proc = start_server(tmp_path, "--store", f"etcd://{etcd.endpoint}/svcnet-ho/?timeout=3", "-v")
    log = tmp_path / "server.log"
    try:
        async with api(tmp_path) as client:
            await client.create(SERVICES, service("before"))
            await wait_for_slices(client, ["before"], CONVERGE_SECONDS, log)

            etcd.kill()
            codes: list[int] = []
            acknowledged = await write_through_outage(
                client, "during", time.monotonic() + OUTAGE_SECONDS, codes)
            assert codes and set(codes) <= {503, 504}, codes
            # A refusal is a Kubernetes Status with Retry-After, as kube-apiserver sends it.
            code, headers, status = await raw_create(tmp_path, service("refused"))
            assert code in (503, 504) and headers.get("Retry-After") == "1", (code, status)
            assert status["kind"] == "Status" and status["code"] == code
            assert status["reason"] == {503: "ServiceUnavailable", 504: "Timeout"}[code]
            etcd.restart()

            await create_with_retry(client, "after", CONVERGE_SECONDS)
            took = await wait_for_slices(client, ["after", *acknowledged], CONVERGE_SECONDS,
                                         log)
            print(f"EndpointSlices present {took:.1f} s after the first write after the outage")
            # Nothing half-written: every Service that exists is whole (it has its ClusterIP).
            for svc in (await client.list(SERVICES, "default")).items:
                assert svc["spec"].get("clusterIP"), svc
    finally:
        assert stop_server(proc) == 0, log.read_text(errors="replace")[-4000:]


async def test_etcd_frozen_write_is_504_timeout_then_works(tmp_path: Path,
                                                           etcd: EtcdServer) -> None:
    """etcd that accepts connections but never answers (SIGSTOP): the write's deadline passes
    and the answer is 504 Timeout (its outcome is unknown), not a hang and not a 500."""
    proc = start_server(tmp_path, "--store", f"etcd://{etcd.endpoint}/svcnet-ho/?timeout=1")
    log = tmp_path / "server.log"
    assert etcd.proc is not None
    try:
        etcd.freeze()
        try:
            code, headers, status = await asyncio.wait_for(
                raw_create(tmp_path, service("frozen")), 30)
        finally:
            etcd.thaw()
        assert (code, status["reason"], headers.get("Retry-After")) == (504, "Timeout", "1"), \
            status
        assert status["message"].startswith("Timeout: ")
        async with api(tmp_path) as client:
            await create_with_retry(client, "thawed", CONVERGE_SECONDS)
            await wait_for_slices(client, ["thawed"], CONVERGE_SECONDS, log)
    finally:
        assert stop_server(proc) == 0, log.read_text(errors="replace")[-4000:]


# -- SQLite on a full file system -----------------------------------------------------------


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 12 MiB tmpfs of this test's own, unmounted in teardown even after a failure."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "svcnet-ho-fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "svcnet-ho", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"mount tmpfs failed: {done.stderr}")
    try:
        yield mount
    finally:
        done = subprocess.run(["umount", "-l", str(mount)], capture_output=True, text=True,
                              check=False)
        assert done.returncode == 0, f"umount failed: {done.stderr}"


def fill(directory: Path) -> Path:
    """Fill the file system holding ``directory`` with one ballast file; returns it."""
    ballast = directory / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 16, 4096, 512, 1):  # down to the last byte
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return ballast


@pytest.mark.root
async def test_sqlite_disk_full_503_nothing_half_written_then_converges(
        tmp_path: Path, tiny_fs: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    proc = start_server(data_dir, "--store", f"sqlite:///{tiny_fs / 'state.db'}")
    log = data_dir / "server.log"
    try:
        async with api(data_dir) as client:
            await client.create(SERVICES, service("before"))
            await wait_for_slices(client, ["before"], CONVERGE_SECONDS, log)
            ballast = fill(tiny_fs)

            # Small objects (a large body is not the point here): the WAL grows until it
            # cannot, then every write that needs new space is refused whole.
            acknowledged, refused = [], []
            for n in range(300):
                obj = service(f"full-{n}")
                obj["metadata"]["annotations"] = {"ballast": "x" * 6000}
                try:
                    await client.create(SERVICES, obj)
                    acknowledged.append(f"full-{n}")
                except StatusError as e:
                    assert e.code == 503, f"a full disk answered {e.code}: {e}"
                    refused.append(f"full-{n}")
                    if len(refused) >= 5:
                        break
            assert refused, "the full file system took every write"
            names = {s["metadata"]["name"]
                     for s in (await client.list(SERVICES, "default")).items}
            assert not names & set(refused), "a refused write was stored"
            assert set(acknowledged) <= names, "an acknowledged write was lost"

            ballast.unlink()
            shutil.rmtree(tiny_fs / "lost+found", ignore_errors=True)
            await create_with_retry(client, "after", CONVERGE_SECONDS)
            stored = [s["metadata"]["name"]
                      for s in (await client.list(SERVICES, "default")).items
                      if s["spec"].get("selector")]  # (not default/kubernetes)
            took = await wait_for_slices(client, stored, CONVERGE_SECONDS, log)
            print(f"EndpointSlices present {took:.1f} s after space came back")
    finally:
        assert stop_server(proc) == 0, log.read_text(errors="replace")[-4000:]
