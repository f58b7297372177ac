"""Pods through containerd's CRI: sandboxes, images and containers, as the kubelet drives them.

Theory of operation
-------------------
The kubelet's ``kuberuntime`` package (``pkg/kubelet/kuberuntime/kuberuntime_manager.go``,
``kuberuntime_sandbox.go``, ``kuberuntime_container.go``, ``kuberuntime_image.go``) turns a
pod into CRI v1 calls, and so does this module, over gRPC (``grpc.aio``) with the CRI stubs of
the ``container-runtime-interface-api`` package:

* a **sandbox** per pod (``RunPodSandbox``): the runtime creates the pod's network namespace
  and calls the CNI plugin in it (svcnet's, :mod:`svcnet.node.cni`), which also names it
  ``svcnet-<tag>-p<id>`` for the tools; its IP comes back in ``PodSandboxStatus``.
  ``StopPodSandbox`` runs the plugin's DEL; ``RemovePodSandbox`` forgets it.
* **images** (``ImageStatus``, ``PullImage``), by ``imagePullPolicy``: :func:`should_pull`,
  which the runner asks (it is the kubelet's image manager, and tells the pod's Events).
* **containers** (``CreateContainer`` + ``StartContainer``) in the sandbox, each labelled as
  the kubelet labels them (``io.kubernetes.pod.uid``, ``io.kubernetes.container.name``) and
  annotated with its restart count, so that a restarted agent finds every pod's containers
  again from the runtime alone (:meth:`CriRuntime.adopt`), as the kubelet does: containerd,
  not a file of ours, is the record.
* **exits** are found by relisting the containers every second and comparing states (the
  kubelet's generic PLEG, ``pkg/kubelet/pleg/generic.go``; containerd 1.6 has no event
  stream for CRI). A container that exited is reported through ``on_exit`` with containerd's
  exit code and reason (``Completed``, ``Error``, ``OOMKilled``).

:class:`CriRuntime` is a :class:`~svcnet.node.runtime.ProcessRuntime`, so the pod runner's
plan, back-off, probes and status code are the same for both runtimes; only what "start a
container" means differs (:class:`CriContainer` carries what CRI needs beyond a process).
Container logs go where the process runtime puts its own (``STATE/pods/<uid>/<container>/
<attempt>.log``: the sandbox's ``log_directory`` is the pod directory), in the CRI log
format (:func:`decode_log`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import grpc
import grpc.aio
from cri_api.v1 import api_pb2 as pb, api_pb2_grpc as rpc

from svcnet.node.runtime import (
    REASON_START_ERROR,
    ContainerKey,
    ContainerProcess,
    ExitCallback,
    Exited,
    ProcessSpec,
    Running,
    RuntimeStateError,
)

__all__ = [
    "LABEL_CONTAINER",
    "LABEL_POD_UID",
    "CriContainer",
    "CriError",
    "CriRuntime",
    "PullError",
    "PulledImage",
    "SandboxSpec",
    "decode_log",
    "should_pull",
]

log = logging.getLogger(__name__)

LABEL_POD_UID: Final = "io.kubernetes.pod.uid"
LABEL_POD_NAME: Final = "io.kubernetes.pod.name"
LABEL_POD_NAMESPACE: Final = "io.kubernetes.pod.namespace"
LABEL_CONTAINER: Final = "io.kubernetes.container.name"
_ANNOTATION_RESTARTS: Final = "io.kubernetes.container.restartCount"
RELIST_PERIOD: Final = 1.0
"""Seconds between container relists (the kubelet's PLEG relist period)."""
_RPC_TIMEOUT: Final = 120.0
"""Deadline of a CRI call (pulls of big images take long; the kubelet's is 2 minutes)."""


class CriError(Exception):
    """A CRI call failed; ``code`` is the gRPC status code's name."""

    def __init__(self, call: str, code: str, details: str) -> None:
        super().__init__(f"{call}: {details}" if details else f"{call}: {code}")
        self.call, self.code, self.details = call, code, details


class PullError(Exception):
    """An image could not be pulled (the kubelet's ``ErrImagePull``)."""


def should_pull(policy: str, present: bool) -> bool:
    """``imagePullPolicy`` (defaulted by the API server: Always for ``:latest`` or no tag,
    else IfNotPresent): ``Never`` never pulls, ``IfNotPresent`` only when absent."""
    if policy == "Always":
        return True
    if policy == "Never":
        return False
    return not present


@dataclass(frozen=True, slots=True)
class PulledImage:
    """What :meth:`CriRuntime.pull_image` got: the image's reference and size in bytes."""

    ref: str
    size: int = 0


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    """What :meth:`CriRuntime.run_sandbox` needs of a pod."""

    uid: str
    name: str
    namespace: str
    hostname: str
    log_directory: str
    dns_servers: Sequence[str] = ()
    dns_searches: Sequence[str] = ()
    dns_options: Sequence[str] = ()
    host_network: bool = False
    share_pid: bool = False
    cgroup_parent: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    privileged: bool = False
    """Whether any of the pod's containers is (the runtime refuses a privileged container
    in a sandbox that is not)."""

    def config(self, attempt: int = 0) -> Any:
        node_mode = pb.NODE if self.host_network else pb.POD
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=self.name, uid=self.uid,
                                           namespace=self.namespace, attempt=attempt),
            hostname="" if self.host_network else self.hostname,
            log_directory=self.log_directory,
            dns_config=pb.DNSConfig(servers=list(self.dns_servers),
                                    searches=list(self.dns_searches),
                                    options=list(self.dns_options)),
            labels={**self.labels, LABEL_POD_UID: self.uid, LABEL_POD_NAME: self.name,
                    LABEL_POD_NAMESPACE: self.namespace},
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=self.cgroup_parent,
                security_context=pb.LinuxSandboxSecurityContext(
                    privileged=self.privileged,
                    namespace_options=pb.NamespaceOption(
                        network=node_mode, ipc=pb.NODE if self.host_network else pb.POD,
                        pid=pb.POD if self.share_pid else pb.CONTAINER))))


@dataclass(frozen=True, slots=True)
class CriContainer:
    """What a CRI container needs beyond :class:`ProcessSpec` (which still gives the
    environment, working directory and mounts): the image, Kubernetes' ``command`` and
    ``args`` *unmerged* (the runtime merges them with the image's entrypoint and cmd as
    Kubernetes defines), the sandbox, and the Linux settings."""

    image: str
    sandbox_id: str
    sandbox: SandboxSpec
    command: Sequence[str] = ()
    args: Sequence[str] = ()
    run_as_user: int | None = None
    run_as_group: int | None = None
    memory_limit: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    cpu_shares: int = 0
    tty: bool = False
    stdin: bool = False
    privileged: bool = False
    readonly_rootfs: bool = False
    no_new_privs: bool = False
    add_capabilities: Sequence[str] = ()
    drop_capabilities: Sequence[str] = ()
    supplemental_groups: Sequence[int] = ()


def _ts(nanos: int) -> datetime | None:
    return datetime.fromtimestamp(nanos / 1e9, UTC) if nanos > 0 else None


def _go_code(code: str) -> str:
    """A gRPC status code's name as Go's ``codes.Code`` prints it (``NOT_FOUND`` →
    ``NotFound``): what the kubelet's messages show of a runtime's error."""
    return "Canceled" if code == "CANCELLED" else "".join(
        w.capitalize() for w in code.split("_"))


def _code(exc: grpc.aio.AioRpcError) -> str:
    code = exc.code()
    return code.name if code is not None else "UNKNOWN"


@dataclass(slots=True)
class _Tracked:
    """The runtime's view of one container key: its current CRI container and the
    previous run's termination."""

    key: ContainerKey
    container_id: str
    attempt: int
    state: Running | Exited
    previous: Exited | None = None
    log_path: str = ""
    ids: dict[int, str] = field(default_factory=dict)
    image_id: str = ""


class CriRuntime:
    """A :class:`~svcnet.node.runtime.ProcessRuntime` over a CRI endpoint, plus the pod
    sandboxes and images (see the module docstring)."""

    def __init__(self, endpoint: str, *, relist_period: float = RELIST_PERIOD) -> None:
        self.endpoint = endpoint
        self.on_exit: ExitCallback | None = None
        self._channel = grpc.aio.insecure_channel(endpoint)
        self._rt = rpc.RuntimeServiceStub(self._channel)
        self._img = rpc.ImageServiceStub(self._channel)
        self._tracked: dict[ContainerKey, _Tracked] = {}
        self._relist_period = relist_period
        self._relister: asyncio.Task[None] | None = None
        self._closed = False

    # --- calls

    async def _call(self, name: str, method: Any, request: Any,
                    timeout: float = _RPC_TIMEOUT) -> Any:
        try:
            return await method(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise CriError(name, _code(exc), exc.details() or "") from None

    async def version(self) -> tuple[str, str]:
        """(runtime name, runtime version): ``containerd://1.6.20`` for the Node's
        ``containerRuntimeVersion``."""
        v = await self._call("Version", self._rt.Version, pb.VersionRequest(), 10)
        return str(v.runtime_name), str(v.runtime_version)

    async def ready(self) -> tuple[bool, str]:
        """Whether the runtime and its network are ready, with the reason if not (a runtime
        without a CNI config is not NetworkReady)."""
        st = await self._call("Status", self._rt.Status, pb.StatusRequest(), 10)
        for cond in st.status.conditions:
            if not cond.status:
                return False, f"{cond.type}: {cond.reason} {cond.message}".strip()
        return True, ""

    # --- images

    async def image_ref(self, image: str) -> str | None:
        """The image's ID (config digest) if present, else None."""
        st = await self._call("ImageStatus", self._img.ImageStatus,
                              pb.ImageStatusRequest(image=pb.ImageSpec(image=image)), 30)
        return str(st.image.id) if st.HasField("image") and st.image.id else None

    async def image_user(self, image: str) -> tuple[int | None, str]:
        """The image's user as the kubelet reads it (``getImageUser``): (uid, "") when
        numeric, (None, name) when a name, and root when the image names none."""
        st = await self._call("ImageStatus", self._img.ImageStatus,
                              pb.ImageStatusRequest(image=pb.ImageSpec(image=image)), 30)
        if st.HasField("image"):
            if st.image.HasField("uid"):
                return int(st.image.uid.value), ""
            if st.image.username:
                return None, str(st.image.username)
        return 0, ""

    async def image_id(self, image: str) -> str:
        """What the pod status shows as ``imageID``: the repository digest
        (``registry/repo@sha256:...``) when the runtime knows one, else the image ID."""
        st = await self._call("ImageStatus", self._img.ImageStatus,
                              pb.ImageStatusRequest(image=pb.ImageSpec(image=image)), 30)
        if not st.HasField("image"):
            return ""
        digests = list(st.image.repo_digests)
        return str(digests[0]) if digests else str(st.image.id)

    async def pull_image(self, image: str,
                         auths: Sequence[Mapping[str, str]] = ()) -> PulledImage:
        """``PullImage``, with each of ``auths`` in turn and then anonymously, and the pulled
        image's size (``ImageStatus``, as the kubelet's puller asks it). Raises
        :class:`PullError` (``ErrImagePull``) with the first attempt's error, worded as the
        kubelet shows a runtime's (``rpc error: code = NotFound desc = ...``). Whether to pull
        at all (``imagePullPolicy``, :func:`should_pull`) is the caller's decision: it also
        tells the pod's Events."""
        errors = []
        for auth in [*auths, {}]:
            request = pb.PullImageRequest(image=pb.ImageSpec(image=image))
            if auth:
                request.auth.CopyFrom(pb.AuthConfig(**auth))
            try:
                reply = await self._call("PullImage", self._img.PullImage, request)
            except CriError as exc:
                errors.append(f"rpc error: code = {_go_code(exc.code)} desc = {exc.details}")
                continue
            size = 0
            with contextlib.suppress(CriError):
                st = await self._call("ImageStatus", self._img.ImageStatus,
                                      pb.ImageStatusRequest(image=pb.ImageSpec(image=image)), 30)
                size = int(st.image.size) if st.HasField("image") else 0
            return PulledImage(str(reply.image_ref), size)
        raise PullError(errors[0])

    # --- sandboxes

    async def run_sandbox(self, spec: SandboxSpec, attempt: int = 0) -> str:
        reply = await self._call("RunPodSandbox", self._rt.RunPodSandbox,
                                 pb.RunPodSandboxRequest(config=spec.config(attempt)))
        return str(reply.pod_sandbox_id)

    async def sandbox_ip(self, sandbox_id: str) -> str:
        st = await self._call("PodSandboxStatus", self._rt.PodSandboxStatus,
                              pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id), 30)
        return str(st.status.network.ip)

    async def sandboxes(self) -> list[tuple[str, str, bool]]:
        """(sandbox id, pod uid, ready) of every sandbox this runtime holds."""
        reply = await self._call("ListPodSandbox", self._rt.ListPodSandbox,
                                 pb.ListPodSandboxRequest(), 30)
        return [(str(s.id), str(s.metadata.uid), s.state == pb.SANDBOX_READY)
                for s in reply.items]

    async def remove_sandbox(self, sandbox_id: str) -> None:
        """Stop (the CNI plugin's DEL runs) and remove a sandbox and its containers; a
        sandbox already gone is no error. The containers' last states stay known (a finished
        pod's status shows them) until :meth:`remove`."""
        for name, method, request in (
                ("StopPodSandbox", self._rt.StopPodSandbox,
                 pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id)),
                ("RemovePodSandbox", self._rt.RemovePodSandbox,
                 pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))):
            try:
                await self._call(name, method, request)
            except CriError as exc:
                if exc.code != "NOT_FOUND":
                    raise

    # --- containers (the ProcessRuntime protocol)

    def get(self, key: ContainerKey) -> ContainerProcess | None:
        t = self._tracked.get(key)
        return None if t is None else self._process(t)

    def containers(self) -> list[ContainerProcess]:
        return [self._process(t) for t in self._tracked.values()]

    @staticmethod
    def _process(t: _Tracked) -> ContainerProcess:
        return ContainerProcess(t.key, t.attempt, t.state, t.previous,
                                Path(t.log_path) if t.log_path else None, dict(t.ids),
                                t.image_id)

    async def start(self, key: ContainerKey, spec: ProcessSpec) -> ContainerProcess:
        cri = spec.cri
        if not isinstance(cri, CriContainer):
            raise TypeError("a CRI container needs ProcessSpec.cri")
        old = self._tracked.get(key)
        if old is not None and isinstance(old.state, Running):
            raise RuntimeStateError(f"container {key} is running")
        previous = old.state if old is not None and isinstance(old.state, Exited) else None
        created = datetime.now(UTC)
        config = self._container_config(key, spec, cri)
        try:
            reply = await self._call("CreateContainer", self._rt.CreateContainer,
                                     pb.CreateContainerRequest(
                                         pod_sandbox_id=cri.sandbox_id, config=config,
                                         sandbox_config=cri.sandbox.config()))
            cid = str(reply.container_id)
            await self._call("StartContainer", self._rt.StartContainer,
                             pb.StartContainerRequest(container_id=cid))
        except CriError as exc:
            state: Running | Exited = Exited(128, datetime.now(UTC), REASON_START_ERROR,
                                             started_at=created, message=exc.details)
            t = _Tracked(key, "", spec.attempt, state, previous, str(spec.log_path))
            self._tracked[key] = t
            return self._process(t)
        state = await self._state(cid)
        ids = {a: i for a, i in (old.ids if old is not None else {}).items()
               if a == spec.attempt - 1}
        ids[spec.attempt] = f"containerd://{cid}"
        image_id = ""
        with contextlib.suppress(CriError):
            image_id = await self.image_id(cri.image)
        t = _Tracked(key, cid, spec.attempt, state, previous, str(spec.log_path), ids,
                     image_id)
        self._tracked[key] = t
        if old is not None and old.container_id:
            await self._remove_older(key, keep={cid, old.container_id})
        self._ensure_relister()
        return self._process(t)

    @staticmethod
    def _container_config(key: ContainerKey, spec: ProcessSpec, cri: CriContainer) -> Any:
        security = pb.LinuxContainerSecurityContext(
            privileged=cri.privileged, readonly_rootfs=cri.readonly_rootfs,
            no_new_privs=cri.no_new_privs, supplemental_groups=list(cri.supplemental_groups),
            capabilities=pb.Capability(add_capabilities=list(cri.add_capabilities),
                                       drop_capabilities=list(cri.drop_capabilities)))
        if cri.run_as_user is not None:
            security.run_as_user.value = cri.run_as_user
        if cri.run_as_group is not None:
            security.run_as_group.value = cri.run_as_group
        mounts = [pb.Mount(container_path=str(m["target"]), host_path=str(m["source"]),
                           readonly=bool(m.get("read_only")))
                  for m in (spec.mount_plan or {}).get("mounts") or ()]
        return pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=key.container, attempt=spec.attempt),
            image=pb.ImageSpec(image=cri.image),
            command=list(cri.command), args=list(cri.args),
            working_dir=spec.working_dir or "",
            envs=[pb.KeyValue(key=k, value=v) for k, v in spec.env.items()],
            mounts=mounts,
            labels={LABEL_POD_UID: key.pod_uid, LABEL_CONTAINER: key.container},
            annotations={_ANNOTATION_RESTARTS: str(spec.attempt)},
            log_path=f"{key.container}/{spec.attempt}.log",
            stdin=cri.stdin, tty=cri.tty,
            linux=pb.LinuxContainerConfig(
                resources=pb.LinuxContainerResources(
                    memory_limit_in_bytes=cri.memory_limit, cpu_quota=cri.cpu_quota,
                    cpu_period=cri.cpu_period, cpu_shares=cri.cpu_shares),
                security_context=security))

    async def _state(self, cid: str) -> Running | Exited:
        st = await self._call("ContainerStatus", self._rt.ContainerStatus,
                              pb.ContainerStatusRequest(container_id=cid, verbose=True), 30)
        return _state_of(st.status, st.info)

    async def stop(self, key: ContainerKey, grace_seconds: float) -> ContainerProcess | None:
        t = self._tracked.get(key)
        if t is None:
            return None
        if isinstance(t.state, Running) and t.container_id:
            try:
                await self._call("StopContainer", self._rt.StopContainer,
                                 pb.StopContainerRequest(container_id=t.container_id,
                                                         timeout=max(int(grace_seconds), 0)),
                                 timeout=grace_seconds + _RPC_TIMEOUT)
            except CriError as exc:
                if exc.code != "NOT_FOUND":
                    raise
            with contextlib.suppress(CriError):
                t.state = await self._state(t.container_id)
            if isinstance(t.state, Running):  # NOT_FOUND: it is gone
                t.state = Exited(None, datetime.now(UTC), "Unknown",
                                 started_at=t.state.started_at)
        return self._process(t)

    async def remove(self, key: ContainerKey) -> None:
        t = self._tracked.pop(key, None)
        if t is None:
            return
        await self._remove_older(key, keep=set())

    async def _remove_older(self, key: ContainerKey, keep: set[str]) -> None:
        """Remove the key's CRI containers except ``keep`` (the current and previous run:
        ``kubectl logs --previous`` reads the latter's log file)."""
        for c in await self._list(key.pod_uid):
            cid = str(c.id)
            if c.labels.get(LABEL_CONTAINER) == key.container and cid not in keep:
                with contextlib.suppress(CriError):
                    await self._call("RemoveContainer", self._rt.RemoveContainer,
                                     pb.RemoveContainerRequest(container_id=cid))

    async def _list(self, pod_uid: str | None = None) -> list[Any]:
        selector = {LABEL_POD_UID: pod_uid} if pod_uid else {}
        reply = await self._call("ListContainers", self._rt.ListContainers,
                                 pb.ListContainersRequest(
                                     filter=pb.ContainerFilter(label_selector=selector)), 30)
        return list(reply.containers)

    async def adopt(self) -> list[ContainerProcess]:
        """Find every pod's containers again from the runtime's labels and annotations."""
        by_key: dict[ContainerKey, list[tuple[int, Any]]] = {}
        for c in await self._list():
            uid, name = c.labels.get(LABEL_POD_UID), c.labels.get(LABEL_CONTAINER)
            if not uid or not name:
                continue
            try:
                key = ContainerKey(str(uid), str(name))
            except ValueError:
                continue
            attempt = int(c.annotations.get(_ANNOTATION_RESTARTS, "0") or 0)
            by_key.setdefault(key, []).append((attempt, c))
        for key, runs in by_key.items():
            runs.sort(key=lambda r: (r[0], r[1].created_at))
            attempt, current = runs[-1]
            state = await self._state(str(current.id))
            ids = {attempt: f"containerd://{current.id}"}
            previous = None
            if len(runs) > 1:
                prev = await self._state(str(runs[-2][1].id))
                previous = prev if isinstance(prev, Exited) else None
                ids[runs[-2][0]] = f"containerd://{runs[-2][1].id}"
            image_id = ""
            with contextlib.suppress(CriError):
                image_id = await self.image_id(str(current.image.image))
            self._tracked[key] = _Tracked(key, str(current.id), attempt, state, previous,
                                          "", ids, image_id)
        self._ensure_relister()
        return self.containers()

    async def container_stats(self) -> dict[ContainerKey, tuple[int, int, float]]:
        """Each tracked running container's cumulative CPU (``usage_core_nano_seconds``),
        working set (``working_set_bytes``) and when the CPU was measured (Unix seconds), from
        one ``ListContainerStats`` (the kubelet's CRI stats provider)."""
        reply = await self._call("ListContainerStats", self._rt.ListContainerStats,
                                 pb.ListContainerStatsRequest(), 30)
        keys = {t.container_id: key for key, t in self._tracked.items()
                if isinstance(t.state, Running)}
        out: dict[ContainerKey, tuple[int, int, float]] = {}
        for st in reply.stats:
            key = keys.get(st.attributes.id)
            if key is not None:
                out[key] = (int(st.cpu.usage_core_nano_seconds.value),
                            int(st.memory.working_set_bytes.value), st.cpu.timestamp / 1e9)
        return out

    def set_log_dir(self, key: ContainerKey, path: str) -> None:
        """Tell the runtime where an adopted container's log file is (the runner knows the
        layout)."""
        t = self._tracked.get(key)
        if t is not None:
            t.log_path = path

    async def exec_sync(self, key: ContainerKey, cmd: Sequence[str],
                        timeout: float) -> tuple[int, bytes]:
        """Run ``cmd`` in the container (exec probes): (exit code, stdout then stderr)."""
        t = self._tracked.get(key)
        if t is None or not t.container_id:
            raise CriError("ExecSync", "NOT_FOUND", f"container {key} not found")
        reply = await self._call("ExecSync", self._rt.ExecSync, pb.ExecSyncRequest(
            container_id=t.container_id, cmd=list(cmd), timeout=max(int(timeout), 1)),
            timeout=timeout + 10)
        return int(reply.exit_code), bytes(reply.stdout) + bytes(reply.stderr)

    # --- streaming (kubectl exec, attach, port-forward): one-time URLs on the runtime's
    # streaming server, which svcnet.node.spdyclient then speaks to

    def _container_id(self, key: ContainerKey, call: str) -> str:
        t = self._tracked.get(key)
        if t is None or not t.container_id:
            raise CriError(call, "NOT_FOUND", f"container {key} not found")
        return t.container_id

    async def exec_url(self, key: ContainerKey, cmd: Sequence[str], *, tty: bool,
                       stdin: bool, stdout: bool, stderr: bool) -> str:
        reply = await self._call("Exec", self._rt.Exec, pb.ExecRequest(
            container_id=self._container_id(key, "Exec"), cmd=list(cmd), tty=tty,
            stdin=stdin, stdout=stdout, stderr=stderr))
        return str(reply.url)

    async def attach_url(self, key: ContainerKey, *, tty: bool, stdin: bool, stdout: bool,
                         stderr: bool) -> str:
        reply = await self._call("Attach", self._rt.Attach, pb.AttachRequest(
            container_id=self._container_id(key, "Attach"), tty=tty, stdin=stdin,
            stdout=stdout, stderr=stderr))
        return str(reply.url)

    async def port_forward_url(self, sandbox_id: str, ports: Sequence[int] = ()) -> str:
        reply = await self._call("PortForward", self._rt.PortForward, pb.PortForwardRequest(
            pod_sandbox_id=sandbox_id, port=list(ports)))
        return str(reply.url)

    # --- exits (the relister)

    def _ensure_relister(self) -> None:
        if self._relister is None and not self._closed:
            self._relister = asyncio.create_task(self._relist_loop(), name="cri relist")

    async def _relist_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self._relist_period)
            try:
                await self.relist()
            except CriError as exc:
                log.warning("container relist failed: %s", exc)
            except Exception:
                log.exception("container relist failed")

    async def relist(self) -> list[ContainerKey]:
        """Compare the runtime's container states with what we knew; report exits."""
        running_ids = {str(c.id) for c in await self._list()
                       if c.state == pb.CONTAINER_RUNNING}
        exited = []
        for key, t in list(self._tracked.items()):
            if isinstance(t.state, Running) and t.container_id not in running_ids:
                try:
                    t.state = await self._state(t.container_id)
                except CriError:
                    t.state = Exited(None, datetime.now(UTC), "Unknown",
                                     started_at=t.state.started_at)
                if isinstance(t.state, Exited):
                    exited.append(key)
        for key in exited:
            if self.on_exit is not None:
                self.on_exit(key)
        return exited

    async def close(self) -> None:
        self._closed = True
        if self._relister is not None:
            self._relister.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relister
        await self._channel.close()


def _state_of(status: Any, info: Mapping[str, str]) -> Running | Exited:
    started = _ts(int(status.started_at))
    if status.state == pb.CONTAINER_RUNNING:
        pid = 0
        with contextlib.suppress(ValueError, KeyError, TypeError):
            pid = int(json.loads(info["info"]).get("pid", 0))
        return Running(pid, started or datetime.now(UTC))
    finished = _ts(int(status.finished_at)) or datetime.now(UTC)
    if status.state == pb.CONTAINER_EXITED:
        reason = str(status.reason) or ("Completed" if status.exit_code == 0 else "Error")
        return Exited(int(status.exit_code), finished, reason, started_at=started,
                      message=str(status.message))
    # CREATED (never started) or UNKNOWN: nobody can tell how it ended.
    return Exited(None, finished, "Unknown", started_at=started, message=str(status.message))


_LOG_LINE: Final = re.compile(rb"^(\S+) (stdout|stderr) ([FP]) ?(.*)$", re.DOTALL)


def decode_log(data: bytes, *, timestamps: bool = False, since: datetime | None = None
               ) -> bytes:
    """The container's output from a CRI log file (``TIMESTAMP STREAM TAG MESSAGE`` lines;
    tag ``P`` marks a partial line continued by the next, ``F`` a full one), as the kubelet
    serves it (``pkg/kubelet/kuberuntime/logs``): messages joined, with the RFC 3339
    timestamp first when ``timestamps``; lines written before ``since`` (``sinceSeconds``,
    ``sinceTime``) left out. A malformed line is passed through as it is."""
    out = bytearray()
    at_line_start = True
    skipping = False
    for raw in data.splitlines(keepends=True):
        line = raw.rstrip(b"\n")
        m = _LOG_LINE.match(line)
        if m is None:
            out += raw
            at_line_start = True
            continue
        stamp, _stream, tag, message = m.groups()
        if at_line_start:
            skipping = since is not None and _written_before(stamp, since)
            if timestamps and not skipping:
                out += stamp + b" "
        if not skipping:
            out += message + (b"\n" if tag == b"F" else b"")
        at_line_start = tag == b"F"
    return bytes(out)


def _written_before(stamp: bytes, since: datetime) -> bool:
    try:
        return datetime.fromisoformat(stamp.decode()) < since
    except ValueError:
        return False


def cri_auths(pull_secrets: Iterable[Mapping[str, Any]], image: str) -> list[dict[str, str]]:
    """CRI ``AuthConfig`` s from ``.dockerconfigjson`` documents for ``image`` 's registry
    (the kubelet's ``credentialprovider`` keyring, by registry host match)."""
    host = image.split("/", 1)[0] if "/" in image and (
        "." in image.split("/", 1)[0] or ":" in image.split("/", 1)[0]) else "docker.io"
    found: list[dict[str, str]] = []
    for doc in pull_secrets:
        for server, entry in (doc.get("auths") or {}).items():
            server_host = re.sub(r"^https?://", "", str(server)).split("/", 1)[0]
            if server_host in ("index.docker.io", "registry-1.docker.io"):
                server_host = "docker.io"
            if server_host != host or not isinstance(entry, Mapping):
                continue
            # No server_address: containerd 1.6 parses it as a URL and refuses a bare
            # "host:port"; the credentials are for this one pull anyway.
            auth: dict[str, str] = {}
            for src, dst in (("username", "username"), ("password", "password"),
                             ("auth", "auth"), ("identitytoken", "identity_token"),
                             ("registrytoken", "registry_token")):
                if entry.get(src):
                    auth[dst] = str(entry[src])
            found.append(auth)
    return found
