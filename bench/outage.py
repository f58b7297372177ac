"""Store outage recovery: how long after etcd comes back a new Service has its EndpointSlice.

A real `svcnet server` on a real etcd (both started here, on loopback, ports chosen by the
kernel). Each run SIGKILLs etcd by its pid while a client keeps creating Services (all refused
with 503/504), holds the outage for ``--outage`` seconds, restarts etcd on the same data, and
then measures from the moment etcd answers its health check again:

* first write: the first Service create the API server accepts;
* slice: until the EndpointSlice of that Service exists (the in-process controllers' informers
  and work queues must all have recovered by themselves).

Run: .venv/bin/python bench/outage.py [--runs 5] [--outage 8]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests/

from svcnet.api.errors import StatusError
from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.client.rest import ENDPOINTSLICES, SERVICES, RESTClient, TransportError
from tests.e2e.conftest import start_server, stop_server
from tests.etcd_server import EtcdServer

Obj = dict[str, Any]


def service(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}


async def has_slice(client: RESTClient, name: str) -> bool:
    try:
        result = await client.list(ENDPOINTSLICES, "default",
                                   label_selector=f"kubernetes.io/service-name={name}")
    except (StatusError, TransportError):
        return False
    return bool(result.items)


async def one_run(client: RESTClient, etcd: EtcdServer, run: int,
                  outage: float) -> tuple[float, float, dict[int, int]]:
    etcd.kill()
    refused: dict[int, int] = {}
    until = time.monotonic() + outage
    n = 0
    while time.monotonic() < until:
        n += 1
        try:
            await client.create(SERVICES, service(f"during-{run}-{n}"))
        except StatusError as e:
            refused[e.code] = refused.get(e.code, 0) + 1
        await asyncio.sleep(0.2)
    etcd.restart()
    back = time.monotonic()
    name = f"after-{run}"
    while True:
        try:
            await client.create(SERVICES, service(name))
            break
        except StatusError as e:
            if e.code == 409:
                break
            await asyncio.sleep(0.05)
    first_write = time.monotonic() - back
    while not await has_slice(client, name):
        await asyncio.sleep(0.05)
    return first_write, time.monotonic() - back, refused


async def main(runs: int, outage: float) -> None:
    etcd = EtcdServer()
    etcd.start()
    data_dir = Path(tempfile.mkdtemp(prefix="svcnet-ho-bench-"))
    proc = start_server(data_dir, "--store", f"etcd://{etcd.endpoint}/svcnet-ho-bench/")
    client = RESTClient.from_kubeconfig(load_kubeconfig(data_dir / "kubeconfig"), timeout=15)
    writes, slices = [], []
    try:
        await client.create(SERVICES, service("warm-up"))
        while not await has_slice(client, "warm-up"):
            await asyncio.sleep(0.05)
        print(f"{platform.machine()}, {platform.python_implementation()} "
              f"{platform.python_version()}; outage {outage:g} s per run")
        for run in range(1, runs + 1):
            write, slice_, refused = await one_run(client, etcd, run, outage)
            writes.append(write)
            slices.append(slice_)
            print(f"run {run}: first write {write:.2f} s, EndpointSlice {slice_:.2f} s after "
                  f"etcd was back; refused during the outage: {refused}")
        print(f"EndpointSlice after etcd is back: median {statistics.median(slices):.2f} s, "
              f"max {max(slices):.2f} s ({runs} runs); first accepted write: median "
              f"{statistics.median(writes):.2f} s")
    finally:
        await client.close()
        stop_server(proc)
        etcd.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--outage", type=float, default=8.0)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.outage))
