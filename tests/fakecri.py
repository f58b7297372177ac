"""A CRI runtime service in memory, behind the real :class:`svcnet.node.cri.CriRuntime`: the
runtime's code runs unchanged, only its gRPC calls (``_call``) are answered here. For the pod
runner's tests on the CRI path, without containerd.

Images are pulled from ``registry`` (name → size); a pull takes ``pull_seconds`` on the
FakeClock. Sandboxes get addresses from 10.244.1.100 up. Containers "run" from StartContainer
until :meth:`FakeCri.exit` or StopContainer; :meth:`FakeCri.exit` reports the exit through
the runtime's relist, as containerd's would be found.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cri_api.v1 import api_pb2 as pb

from svcnet.node.cri import CriError, CriRuntime
from svcnet.node.runtime import ContainerKey
from svcnet.util.clock import FakeClock


@dataclass
class _Container:
    id: str
    sandbox: str
    config: Any
    state: pb.ContainerState.ValueType = pb.CONTAINER_CREATED
    pid: int = 0
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0


@dataclass
class _Sandbox:
    id: str
    uid: str
    ip: str
    ready: bool = True


@dataclass
class FakeCriState:
    registry: dict[str, int] = field(default_factory=dict)
    """Images a pull finds, with their sizes."""
    images: dict[str, int] = field(default_factory=dict)
    """Images present on the node."""
    pull_seconds: float = 0.0
    sandboxes: dict[str, _Sandbox] = field(default_factory=dict)
    containers: dict[str, _Container] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    usage: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per container id: (cumulative CPU in ns, working set in bytes) for ListContainerStats
    (a running container not named here has used nothing)."""


class FakeCri(CriRuntime):
    def __init__(self, clock: FakeClock, state: FakeCriState | None = None) -> None:
        super().__init__("unix:///nonexistent/svcnet-fake-cri.sock", relist_period=3600)
        self.clock = clock
        self.state = state or FakeCriState()
        self._ids = itertools.count(1)
        self._rpcs: dict[str, Callable[[Any], Awaitable[Any]]] = {
            "ImageStatus": self._rpc_image_status,
            "PullImage": self._rpc_pull_image,
            "RunPodSandbox": self._rpc_run_pod_sandbox,
            "PodSandboxStatus": self._rpc_pod_sandbox_status,
            "ListPodSandbox": self._rpc_list_pod_sandbox,
            "StopPodSandbox": self._rpc_stop_pod_sandbox,
            "RemovePodSandbox": self._rpc_remove_pod_sandbox,
            "CreateContainer": self._rpc_create_container,
            "StartContainer": self._rpc_start_container,
            "ContainerStatus": self._rpc_container_status,
            "StopContainer": self._rpc_stop_container,
            "RemoveContainer": self._rpc_remove_container,
            "ListContainers": self._rpc_list_containers,
            "ListContainerStats": self._rpc_list_container_stats,
        }

    def _nanos(self) -> int:
        return int(self.clock.now().timestamp() * 1e9)

    def _id(self) -> str:
        return f"{next(self._ids):064x}"

    async def _call(self, name: str, method: Any, request: Any,
                    timeout: float = 0.0) -> Any:
        self.state.calls.append(name)
        return await self._rpcs[name](request)

    def _find(self, key: ContainerKey) -> _Container:
        for c in self.state.containers.values():
            labels = c.config.labels
            if (labels["io.kubernetes.pod.uid"], labels["io.kubernetes.container.name"]) == (
                    key.pod_uid, key.container) and c.state == pb.CONTAINER_RUNNING:
                return c
        raise KeyError(key)

    def exit(self, key: ContainerKey, code: int) -> None:
        """The container's process ends with ``code`` (found by the next :meth:`relist`)."""
        c = self._find(key)
        c.state, c.exit_code, c.finished_at = pb.CONTAINER_EXITED, code, self._nanos()

    # --- images

    async def _rpc_image_status(self, request: Any) -> Any:
        image = request.image.image
        if image not in self.state.images:
            return pb.ImageStatusResponse()
        return pb.ImageStatusResponse(image=pb.Image(
            id=f"sha256:{image}", size=self.state.images[image],
            repo_digests=[f"{image}@sha256:0"]))

    async def _rpc_pull_image(self, request: Any) -> Any:
        image = request.image.image
        self.clock.advance(self.state.pull_seconds)
        if image not in self.state.registry:
            raise CriError("PullImage", "NOT_FOUND",
                           f'failed to pull and unpack image "{image}": not found')
        self.state.images[image] = self.state.registry[image]
        return pb.PullImageResponse(image_ref=f"sha256:{image}")

    # --- sandboxes

    async def _rpc_run_pod_sandbox(self, request: Any) -> Any:
        sid = self._id()
        ip = f"10.244.1.{100 + len(self.state.sandboxes)}"
        self.state.sandboxes[sid] = _Sandbox(sid, request.config.metadata.uid, ip)
        return pb.RunPodSandboxResponse(pod_sandbox_id=sid)

    async def _rpc_pod_sandbox_status(self, request: Any) -> Any:
        sandbox = self.state.sandboxes[request.pod_sandbox_id]
        return pb.PodSandboxStatusResponse(status=pb.PodSandboxStatus(
            id=sandbox.id, network=pb.PodSandboxNetworkStatus(ip=sandbox.ip)))

    async def _rpc_list_pod_sandbox(self, request: Any) -> Any:
        return pb.ListPodSandboxResponse(items=[
            pb.PodSandbox(id=s.id, metadata=pb.PodSandboxMetadata(uid=s.uid),
                          state=pb.SANDBOX_READY if s.ready else pb.SANDBOX_NOTREADY)
            for s in self.state.sandboxes.values()])

    async def _rpc_stop_pod_sandbox(self, request: Any) -> Any:
        if (sandbox := self.state.sandboxes.get(request.pod_sandbox_id)) is not None:
            sandbox.ready = False
        return pb.StopPodSandboxResponse()

    async def _rpc_remove_pod_sandbox(self, request: Any) -> Any:
        self.state.sandboxes.pop(request.pod_sandbox_id, None)
        return pb.RemovePodSandboxResponse()

    # --- containers

    async def _rpc_create_container(self, request: Any) -> Any:
        cid = self._id()
        self.state.containers[cid] = _Container(cid, request.pod_sandbox_id, request.config)
        return pb.CreateContainerResponse(container_id=cid)

    async def _rpc_start_container(self, request: Any) -> Any:
        c = self.state.containers[request.container_id]
        c.state, c.pid, c.started_at = pb.CONTAINER_RUNNING, 4000 + len(
            self.state.containers), self._nanos()
        return pb.StartContainerResponse()

    async def _rpc_container_status(self, request: Any) -> Any:
        c = self.state.containers.get(request.container_id)
        if c is None:
            raise CriError("ContainerStatus", "NOT_FOUND", "no such container")
        return pb.ContainerStatusResponse(status=pb.ContainerStatus(
            id=c.id, state=c.state, started_at=c.started_at, finished_at=c.finished_at,
            exit_code=c.exit_code), info={"info": json.dumps({"pid": c.pid})})

    async def _rpc_stop_container(self, request: Any) -> Any:
        c = self.state.containers[request.container_id]
        if c.state == pb.CONTAINER_RUNNING:
            c.state, c.exit_code, c.finished_at = pb.CONTAINER_EXITED, 143, self._nanos()
        return pb.StopContainerResponse()

    async def _rpc_remove_container(self, request: Any) -> Any:
        self.state.containers.pop(request.container_id, None)
        return pb.RemoveContainerResponse()

    async def _rpc_list_containers(self, request: Any) -> Any:
        selector = dict(request.filter.label_selector)
        return pb.ListContainersResponse(containers=[
            pb.Container(id=c.id, pod_sandbox_id=c.sandbox, metadata=c.config.metadata,
                         image=c.config.image, state=c.state, labels=c.config.labels,
                         annotations=c.config.annotations)
            for c in self.state.containers.values()
            if all(c.config.labels.get(k) == v for k, v in selector.items())])

    async def _rpc_list_container_stats(self, request: Any) -> Any:
        now = self._nanos()
        return pb.ListContainerStatsResponse(stats=[
            pb.ContainerStats(
                attributes=pb.ContainerAttributes(id=c.id, metadata=c.config.metadata,
                                                  labels=c.config.labels),
                cpu=pb.CpuUsage(timestamp=now, usage_core_nano_seconds=pb.UInt64Value(
                    value=self.state.usage.get(c.id, (0, 0))[0])),
                memory=pb.MemoryUsage(timestamp=now, working_set_bytes=pb.UInt64Value(
                    value=self.state.usage.get(c.id, (0, 0))[1])))
            for c in self.state.containers.values() if c.state == pb.CONTAINER_RUNNING])
