"""Pod figures on a real node agent: start latency, 100 pods to Ready, slice update latency,
for each runtime.

A `svcnet server` and one `svcnet node` (cluster "bp", no node bridge, no proxy) run as
processes. With the process runtime pods run as real processes in their own network
namespaces; with containerd (``--runtime containerd``: a containerd for the node, as `svcnet
up` starts one, and a registry on loopback holding a busybox web image, pulled once before
measuring: "the image present") each pod is a CRI sandbox with a runc container, its network
from the CNI plugin.

* pod start latency: a pod with a trivial TCP server and no readiness probe (Ready = its
  container runs), created one at a time: create sent -> Ready seen in a watch, p50/p99;
* 100 pods created at once on one node: time until all are Ready, and the agent's memory;
* EndpointSlice update latency: a pod's Ready condition flips (its exec readiness probe starts
  passing) -> the Service's EndpointSlice shows the endpoint ready, both seen in watches.

Needs root (and for containerd: containerd, runc, docker-registry, busybox-static).
Run: .venv/bin/python bench/pods.py [--runtime process|containerd|both] [--single 20]
[--burst 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from stats import pct  # bench/stats.py

from svcnet.client.kubeconfig import load_kubeconfig
from svcnet.client.rest import ENDPOINTSLICES, NODES, PODS, SERVICES, RESTClient

ROOT = Path(__file__).resolve().parent.parent
SVCNET = [sys.executable, "-m", "svcnet.cli.main"]
Obj = dict[str, Any]


def pod(name: str, *, probe_file: str = "", image: str = "") -> Obj:
    """A pod of the process runtime, or with ``image`` (``127.0.0.1:PORT/web:1``) one running
    that image's entrypoint on containerd."""
    container: Obj = {"name": "c", "image": "bench",
                      "command": [sys.executable, "-c",
                                  "import socket,time\n"
                                  "s=socket.socket(); s.bind(('',8080)); s.listen()\n"
                                  "time.sleep(86400)"],
                      "ports": [{"name": "tcp", "containerPort": 8080}]}
    if image:  # the image's own entrypoint: busybox httpd on 8080
        container = {"name": "c", "image": image, "imagePullPolicy": "IfNotPresent",
                     "ports": [{"name": "tcp", "containerPort": 8080}]}
    if probe_file:
        # On containerd the probe runs in the container: its flag file is in a hostPath-less
        # world, so the flag is an HTTP path the test creates instead (see measure()).
        container["readinessProbe"] = ({"exec": {"command": ["test", "-f", probe_file]},
                                        "periodSeconds": 1} if not image else
                                       {"exec": {"command": ["test", "-f", "/tmp/ready"]},
                                        "periodSeconds": 1, "timeoutSeconds": 5})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "bench"}},
            "spec": {"nodeName": "bp-node", "terminationGracePeriodSeconds": 1,
                     "containers": [container]}}


def ready(obj: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


async def wait_ready(client: RESTClient, names: set[str], rv: str) -> dict[str, float]:
    seen: dict[str, float] = {}
    async with client.watch(PODS, "default", resource_version=rv) as events:
        async for ev in events:
            if ev.type == "ERROR":
                raise RuntimeError(f"the pod watch failed: {ev.object}")
            name = ev.object.get("metadata", {}).get("name")
            if name in names and name not in seen and ready(ev.object):
                seen[name] = time.perf_counter()
                if len(seen) == len(names):
                    return seen
    return seen


def rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


def shims_rss_mib(socket: str) -> tuple[int, int]:
    """(count, total RSS) of the containerd shims serving ``socket``."""
    from svcnet.cluster.runtimes import shims

    pids = [pid for pid, _ in shims([Path(socket)])]
    return len(pids), sum(rss_mib(pid) for pid in pids)


async def measure(client: RESTClient, agent_pid: int, single: int, burst: int,
                  tmp: Path, runtime: str, containerd: tuple[int, str] | None,
                  image: str) -> list[str]:
    rows = []
    lat = []
    for i in range(single):
        name = f"single-{i}"
        rv = (await client.list(PODS, "default", limit=1)).resource_version
        waiter = asyncio.create_task(wait_ready(client, {name}, rv))
        t0 = time.perf_counter()
        await client.create(PODS, pod(name, image=image))
        lat.append((await asyncio.wait_for(waiter, 30))[name] - t0)
    rows.append(f"| {runtime}: pod start, create -> Ready ({single} pods, one at a time) | "
                f"p50 {pct(lat, .5) * 1000:.0f} ms, p99 {pct(lat, .99) * 1000:.0f} ms |")
    for i in range(single):
        await client.delete(PODS, "default", f"single-{i}", grace_period=0)
    await node_idle(tmp)

    names = {f"burst-{i}" for i in range(burst)}
    rv = (await client.list(PODS, "default", limit=1)).resource_version
    waiter = asyncio.create_task(wait_ready(client, names, rv))
    t0 = time.perf_counter()
    await asyncio.gather(*(client.create(PODS, pod(n, image=image)) for n in sorted(names)))
    seen = await asyncio.wait_for(waiter, 300)
    memory = f"agent RSS {rss_mib(agent_pid)} MiB"
    if containerd is not None:
        shims, shim_rss = shims_rss_mib(containerd[1])
        memory += (f"; containerd RSS {rss_mib(containerd[0])} MiB; {shims} shims, "
                   f"{shim_rss} MiB together")
    rows.append(f"| {runtime}: {burst} pods created at once on one node -> all Ready | "
                f"{max(seen.values()) - t0:.2f} s; {memory} |")
    for n in sorted(names):
        await client.delete(PODS, "default", n, grace_period=0)
    await node_idle(tmp)

    await client.create(SERVICES, {"apiVersion": "v1", "kind": "Service",
                                   "metadata": {"name": "bench", "namespace": "default"},
                                   "spec": {"selector": {"app": "flip"},
                                            "ports": [{"port": 80, "targetPort": 8080}]}})
    flips = []
    for i in range(10):
        name, flag = f"flip-{i}", tmp / f"ready-{i}"
        obj = pod(name, probe_file=str(flag), image=image)
        obj["metadata"]["labels"] = {"app": "flip"}
        await client.create(PODS, obj)
        await asyncio.sleep(1.5)
        rv = (await client.list(ENDPOINTSLICES, "default", limit=1)).resource_version
        pod_ready = asyncio.create_task(wait_ready(client, {name}, rv))
        slice_ready = asyncio.create_task(slice_shows(client, rv, name))
        if image and containerd is not None:  # in the container, once it runs (the
            # bench's node has no node server for kubectl exec: ask containerd directly)
            for _ in range(100):
                statuses = ((await client.get(PODS, "default", name)).get("status") or {}
                            ).get("containerStatuses") or [{}]
                cid = str(statuses[0].get("containerID", "")).removeprefix("containerd://")
                if cid:
                    proc = await asyncio.create_subprocess_exec(
                        "ctr", "--address", containerd[1], "--namespace", "k8s.io", "tasks",
                        "exec", "--exec-id", f"flip-{i}", cid, "touch", "/tmp/ready",
                        stderr=asyncio.subprocess.PIPE)
                    _, err = await proc.communicate()
                    if proc.returncode != 0:
                        print(f"ctr exec {name}: {err.decode().strip()}", file=sys.stderr)
                    if await proc.wait() == 0:
                        break
                await asyncio.sleep(0.2)
        else:
            flag.write_text("")
        try:
            t_pod = (await asyncio.wait_for(pod_ready, 30))[name]
        except TimeoutError:
            from svcnet.client.rest import EVENTS

            events = [(e.get("reason"), e.get("message"))
                      for e in (await client.list(EVENTS, "default")).items
                      if (e.get("involvedObject") or {}).get("name") == name]
            raise RuntimeError(f"{name} never became Ready; its events: {events}") from None
        t_slice = await asyncio.wait_for(slice_ready, 30)
        flips.append(t_slice - t_pod)
    for i in range(10):
        await client.delete(PODS, "default", f"flip-{i}", grace_period=0)
    await client.delete(SERVICES, "default", "bench")
    rows.append(f"| {runtime}: EndpointSlice update after a readiness change (10 flips) | "
                f"p50 {pct(flips, .5) * 1000:.0f} ms, p99 {pct(flips, .99) * 1000:.0f} ms |")
    return rows


async def node_idle(tmp: Path, timeout: float = 300) -> None:
    """Wait until the node has torn every pod down (its IPAM file holds no address): the
    next phase then measures itself, not the previous one's cleanup."""
    ipam = tmp / "node" / "ipam.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if not json.loads(ipam.read_text()).get("allocations"):
                return
        await asyncio.sleep(0.2)
    raise RuntimeError("the node did not tear its pods down")


async def slice_shows(client: RESTClient, rv: str, pod_name: str) -> float:
    async with client.watch(ENDPOINTSLICES, "default", resource_version=rv) as events:
        async for ev in events:
            for e in ev.object.get("endpoints") or []:
                ref = e.get("targetRef") or {}
                if ref.get("name") == pod_name and (e.get("conditions") or {}).get("ready"):
                    return time.perf_counter()
    raise RuntimeError("watch ended")


async def run_one(args: argparse.Namespace, runtime: str) -> list[str]:
    image = ""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        with open(tmp / "server.log", "wb") as log:
            server = subprocess.Popen([*SVCNET, "server", "--data-dir", str(tmp / "server"),
                                       "--listen", "127.0.0.1:0"], cwd=ROOT, stderr=log)
        agent = containerd = None
        registry: Any = None
        flags: list[str] = []
        try:
            if runtime == "containerd":
                sys.path.insert(0, str(ROOT))
                from svcnet.cluster import runtimes
                from tests.images import web_image
                from tests.registry_server import RegistryServer

                registry = RegistryServer()
                registry.start()
                registry.push(web_image("v1"), "web", "1")
                image = registry.ref("web", "1")
                paths, argv = runtimes.node_containerd(tmp / "nodes" / "bp-node" / "containerd")
                with open(tmp / "containerd.log", "wb") as log:
                    containerd = subprocess.Popen(argv, stdout=log, stderr=log)
                runtimes.wait_for_socket(paths)
                runtimes.import_sandbox_image(paths)
                subprocess.run(["ctr", "--address", str(paths.socket), "--namespace", "k8s.io",
                                "images", "pull", "--plain-http", image], check=True,
                               capture_output=True)
                flags = ["--container-runtime-endpoint", paths.endpoint,
                         "--cni-conf-dir", str(paths.cni_conf)]
            kcfg = tmp / "server" / "kubeconfig"
            while not kcfg.exists():
                await asyncio.sleep(0.05)
            with open(tmp / "agent.log", "wb") as log:
                agent = subprocess.Popen(
                    [*SVCNET, "node", "--kubeconfig", str(kcfg), "--name", "bp-node",
                     "--cluster", "bp", "--node-index", "1", "--node-ip", "172.20.0.11",
                     "--pod-cidr", "10.244.1.0/24", "--state-dir", str(tmp / "node"),
                     "--no-proxy", *flags], cwd=ROOT, stderr=log)
            client = RESTClient.from_kubeconfig(load_kubeconfig(kcfg))
            try:
                for _ in range(200):
                    nodes = (await client.list(NODES)).items
                    if any(ready(n) for n in nodes):
                        break
                    await asyncio.sleep(0.05)
                ctd = (containerd.pid, str(paths.socket)) if containerd is not None else None
                return await measure(client, agent.pid, args.single, args.burst, tmp,
                                     runtime, ctd, image)
            finally:
                await client.close()
        finally:
            for proc in (agent, server):
                if proc is not None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=30)
            if containerd is not None:
                containerd.send_signal(signal.SIGTERM)
                containerd.wait(timeout=30)
                from svcnet.cluster import runtimes
                from svcnet.node.names import ClusterNames

                runtimes.remove_traces(tmp, ClusterNames.for_cluster("bp"))
            if registry is not None:
                registry.stop()
            cleanup_namespaces()


async def main_async(args: argparse.Namespace) -> list[str]:
    rows = []
    for runtime in (("process", "containerd") if args.runtime == "both" else (args.runtime,)):
        print(f"measuring the {runtime} runtime...", file=sys.stderr)
        rows += await run_one(args, runtime)
    return rows


def cleanup_namespaces() -> None:
    from svcnet.node.names import ClusterNames

    names = ClusterNames.for_cluster("bp")
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         check=False).stdout
    for line in out.splitlines():
        ns = line.split()[0] if line.strip() else ""
        if ns and names.owns_netns(ns):
            for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                                      text=True, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], check=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runtime", choices=["process", "containerd", "both"], default="both")
    ap.add_argument("--single", type=int, default=20)
    ap.add_argument("--burst", type=int, default=100)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/pods.py needs root")
    rows = asyncio.run(main_async(args))
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")
    print()
    print("| figure | value |")
    print("|---|---|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
