"""``exec`` and ``attach`` on the node: a process in the pod, its streams over one WebSocket.

Theory of operation
-------------------
Followed: pkg/kubelet/cri/streaming/remotecommand/websocket.go and httpstream.go (options,
channels, the exit status), and the container runtimes' exec (the command runs where the
container runs: in the pod's network namespace, with the container's environment and working
directory).

**exec** starts ``ip netns exec POD_NETNS COMMAND...`` (as the runtime starts containers) with
the container's environment. Without a TTY, stdin/stdout/stderr are pipes, each on its channel.
With ``tty=true`` the command gets a pseudo-terminal as its controlling terminal (``setsid
-c``), stdout carries everything it writes, and resize messages (channel 4) set the
terminal's size (``TIOCSWINSZ``); ``TERM`` is ``xterm`` unless the container sets it. When the
command exits, what it wrote is drained, the exit status goes on the error channel
(:func:`svcnet.api.remotecommand.exit_status` for v4/v5) and the WebSocket closes. v5's close
signal on stdin closes the command's stdin (``kubectl exec -i`` and ``kubectl cp`` rely on
it). A client that goes away takes the command's session with it (SIGKILL).

**attach** cannot reach a container's stdin (the runtime gives containers ``/dev/null``) or
its live stdout (a log file): it streams what the container writes from now on, read from its
log file, until the container exits (its exit code is the status) or restarts. ``stdin=true``
is refused (400) rather than silently dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import logging
import os
import pty
import shutil
import signal
import struct
import termios
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from svcnet.api import remotecommand as rc
from svcnet.api.errors import StatusError, bad_request
from svcnet.node.cri import CriError, CriRuntime
from svcnet.node.cristreams import remote_command
from svcnet.node.probes import in_container
from svcnet.node.runtime import ContainerKey, Exited
from svcnet.node.server import FOLLOW_INTERVAL

if TYPE_CHECKING:
    from svcnet.node.server import NodeServer

log = logging.getLogger(__name__)

_READ = 64 * 1024
_DRAIN_AFTER_EXIT = 2.0
"""Seconds to wait for a command's output after it exited (a background child may hold it)."""


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """``PodExecOptions`` / ``PodAttachOptions``."""

    command: tuple[str, ...]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @classmethod
    def from_request(cls, request: web.Request, *, need_command: bool) -> StreamOptions:
        q = request.query

        def flag(name: str, default: bool = False) -> bool:
            value = q.get(name)
            return default if value is None else value.lower() in ("true", "1")

        command = tuple(q.getall("command", []))
        opts = cls(command, flag("stdin"), flag("stdout", True), flag("stderr", True),
                   flag("tty"))
        if need_command and not command:
            raise bad_request("you must specify at least 1 command")
        if opts.tty and opts.stderr:
            opts = cls(command, opts.stdin, opts.stdout, False, True)  # a TTY merges them
        if not (opts.stdin or opts.stdout or opts.stderr):
            raise bad_request("you must specify at least 1 of stdin, stdout, stderr")
        return opts


class Channels:
    """One accepted WebSocket and its negotiated protocol: typed sends."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.protocol = rc.Protocol(ws.ws_protocol or rc.V1)
        self._lock = asyncio.Lock()

    async def send(self, channel: int, data: bytes) -> None:
        msg = self.protocol.encode(channel, data)
        async with self._lock:
            if isinstance(msg, str):
                await self.ws.send_str(msg)
            else:
                await self.ws.send_bytes(msg)

    async def finish(self, status: dict[str, Any]) -> None:
        payload = rc.error_payload(self.protocol, status)
        with contextlib.suppress(ConnectionError, RuntimeError):
            if payload or self.protocol.status_errors:
                await self.send(rc.ERROR, payload)
            await self.ws.close()


async def accept(request: web.Request, protocols: tuple[str, ...]) -> Channels:
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise bad_request("Upgrade request required")
    ws = web.WebSocketResponse(protocols=protocols, max_msg_size=rc.MAX_MESSAGE_BYTES,
                               heartbeat=None)
    await ws.prepare(request)
    return Channels(ws)


async def refuse(request: web.Request, err: StatusError) -> web.StreamResponse:
    """A request that cannot be served: a WebSocket is still accepted and told why on its
    error channel (kubectl takes a failed upgrade for "no WebSocket support" and retries over
    SPDY, which would hide the reason); anything else gets the Status."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise err
    chans = await accept(request, rc.EXEC_PROTOCOLS)
    await chans.finish(rc.failure_status(err.message, err.reason, err.code))
    return chans.ws


class ExecHandlers:
    def __init__(self, server: NodeServer) -> None:
        self.server = server

    def _target(self, request: web.Request) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        pod = self.server.pod(request.match_info["ns"], request.match_info["pod"])
        container = self.server.container(pod, request.match_info["container"])
        key = ContainerKey(str(pod["metadata"]["uid"]), str(container["name"]))
        proc = self.server.runner.runtime_of(key.pod_uid, key.container).get(key)
        if proc is None or not proc.running:
            raise bad_request(f"container {container['name']} is not running")
        return pod, container

    async def exec(self, request: web.Request) -> web.StreamResponse:
        try:
            opts = StreamOptions.from_request(request, need_command=True)
            pod, container = self._target(request)
            cri = await self._cri_url(pod, container, opts)
        except StatusError as err:
            return await refuse(request, err)
        if cri is not None:
            chans = await accept(request, rc.EXEC_PROTOCOLS)
            await remote_command(chans, opts, cri, _drain_client)
            return chans.ws
        ctx = self.server.runner.exec_context(pod, container)
        env = dict(ctx.env)
        argv, cwd = in_container(ctx, list(opts.command),
                                 nsenter=shutil.which("nsenter") or "nsenter",
                                 ip=shutil.which("ip") or "ip")
        ctx = dataclasses.replace(ctx, working_dir=cwd)
        chans = await accept(request, rc.EXEC_PROTOCOLS)
        try:
            if opts.tty:
                env.setdefault("TERM", "xterm")
                code = await _run_tty(chans, argv, env, ctx.working_dir)
            else:
                code = await _run_pipes(chans, opts, argv, env, ctx.working_dir)
        except OSError as e:
            await chans.finish(rc.failure_status(f"failed to exec in container: {e}"))
            return chans.ws
        await chans.finish(rc.exit_status(code, list(opts.command)))
        return chans.ws

    async def _cri_url(self, pod: Mapping[str, Any], container: Mapping[str, Any],
                       opts: StreamOptions, *, attach: bool = False) -> str | None:
        """The runtime's streaming URL for a CRI container (None: a process-runtime one)."""
        key = ContainerKey(str(pod["metadata"]["uid"]), str(container["name"]))
        runtime = self.server.runner.runtime_of(key.pod_uid, key.container)
        if not isinstance(runtime, CriRuntime):
            return None
        try:
            if attach:
                return await runtime.attach_url(key, tty=opts.tty, stdin=opts.stdin,
                                                stdout=opts.stdout, stderr=opts.stderr)
            return await runtime.exec_url(key, opts.command, tty=opts.tty, stdin=opts.stdin,
                                          stdout=opts.stdout, stderr=opts.stderr)
        except CriError as e:
            what = "attach to" if attach else "exec in"
            raise StatusError(500, "InternalError",
                              f"failed to {what} container {key.container}: {e.details}",
                              ) from None

    async def attach(self, request: web.Request) -> web.StreamResponse:
        try:
            opts = StreamOptions.from_request(request, need_command=False)
            pod, container = self._target(request)
            cri = await self._cri_url(pod, container, opts, attach=True)
            if cri is None and opts.stdin:
                raise bad_request("stdin cannot be attached: containers of the process "
                                  "runtime read /dev/null")
        except StatusError as err:
            return await refuse(request, err)
        if cri is not None:
            chans = await accept(request, rc.EXEC_PROTOCOLS)
            await remote_command(chans, opts, cri, _drain_client)
            return chans.ws
        key = ContainerKey(str(pod["metadata"]["uid"]), str(container["name"]))
        runtime = self.server.runner.runtime_of(key.pod_uid, key.container)
        proc = runtime.get(key)
        assert proc is not None and proc.log_path is not None
        path = proc.log_path
        offset = path.stat().st_size if path.exists() else 0
        chans = await accept(request, rc.EXEC_PROTOCOLS)
        reader = asyncio.create_task(_drain_client(chans, _ignore))
        code = 0
        try:
            while not reader.done():
                chunk = await asyncio.to_thread(_read_at, path, offset)
                if chunk:
                    offset += len(chunk)
                    await chans.send(rc.STDOUT, chunk)
                    continue
                now = runtime.get(key)
                if now is None or isinstance(now.state, Exited) or now.log_path != path:
                    if now is not None and isinstance(now.state, Exited):
                        code = now.state.exit_code or 0
                    break
                await asyncio.wait({reader}, timeout=FOLLOW_INTERVAL)
        finally:
            reader.cancel()
        await chans.finish(rc.exit_status(code, []))
        return chans.ws


async def _ignore(*_: object) -> None:
    return None


def _read_at(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(_READ)
    except FileNotFoundError:
        return b""


async def _drain_client(chans: Channels, on_stdin: Callable[[bytes], Awaitable[None]],
                        on_close_stdin: Callable[[], Awaitable[None]] = _ignore,
                        on_resize: Callable[[int, int], Awaitable[None]] = _ignore) -> None:
    """Read the client's messages until it closes: stdin, close signals, resizes."""
    async for msg in chans.ws:
        if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
            break
        try:
            channel, data = chans.protocol.decode(msg.data)
        except rc.ProtocolError:
            continue
        if channel == rc.STDIN and data:
            await on_stdin(data)
        elif channel == rc.CLOSE and chans.protocol.close_signal and data[:1] == b"\x00":
            await on_close_stdin()
        elif channel == rc.RESIZE:
            size = rc.parse_resize(data)
            if size is not None:
                await on_resize(*size)


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


async def _until_exit(proc: asyncio.subprocess.Process, reader: asyncio.Task[None],
                      pumps: list[asyncio.Task[None]]) -> int:
    """Wait for the command; kill its session if the client leaves first."""
    waiter = asyncio.create_task(proc.wait())
    try:
        await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        code = await waiter
        if pumps:
            await asyncio.wait(pumps, timeout=_DRAIN_AFTER_EXIT)
        return _exit_code(code)
    finally:
        reader.cancel()
        for p in pumps:
            p.cancel()


async def _run_pipes(chans: Channels, opts: StreamOptions, argv: list[str],
                     env: dict[str, str], cwd: str | None) -> int:
    pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=pipe if opts.stdin else null, stdout=pipe if opts.stdout else null,
        stderr=pipe if opts.stderr else null, env=env, cwd=cwd or "/",
        start_new_session=True)

    async def pump(stream: asyncio.StreamReader | None, channel: int) -> None:
        if stream is None:
            return
        while data := await stream.read(_READ):
            await chans.send(channel, data)

    async def to_stdin(data: bytes) -> None:
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.write(data)
            with contextlib.suppress(ConnectionError):
                await proc.stdin.drain()

    async def close_stdin() -> None:
        if proc.stdin is not None:
            proc.stdin.close()

    pumps = [asyncio.create_task(pump(proc.stdout, rc.STDOUT)),
             asyncio.create_task(pump(proc.stderr, rc.STDERR))]
    reader = asyncio.create_task(_drain_client(chans, to_stdin, close_stdin))
    return await _until_exit(proc, reader, pumps)


def set_window_size(fd: int, columns: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


async def _run_tty(chans: Channels, argv: list[str], env: dict[str, str],
                   cwd: str | None) -> int:
    master, slave = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            shutil.which("setsid") or "setsid", "-c", *argv, stdin=slave, stdout=slave,
            stderr=slave, env=env, cwd=cwd or "/")
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    os.set_blocking(master, False)
    loop = asyncio.get_running_loop()
    output: asyncio.Queue[bytes | None] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(master, _READ)
        except BlockingIOError:
            return
        except OSError:  # EIO: every holder of the terminal is gone
            data = b""
        if not data:
            loop.remove_reader(master)
        output.put_nowait(data or None)

    async def pump() -> None:
        while (data := await output.get()) is not None:
            await chans.send(rc.STDOUT, data)

    async def to_stdin(data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(master, view)
            except BlockingIOError:
                await asyncio.sleep(0.01)
                continue
            view = view[n:]

    async def resize(columns: int, rows: int) -> None:
        with contextlib.suppress(OSError):
            set_window_size(master, columns, rows)

    loop.add_reader(master, readable)
    pumps = [asyncio.create_task(pump())]
    reader = asyncio.create_task(_drain_client(chans, to_stdin, on_resize=resize))
    try:
        return await _until_exit(proc, reader, pumps)
    finally:
        loop.remove_reader(master)
        os.close(master)
