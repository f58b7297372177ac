"""A throwaway containerd for tests: its own root, state, socket and registry hosts, no systemd.

Theory of operation. ``containerd --config DIR/config.toml`` runs in the foreground as the
test's child, configured as a node's containerd is (:mod:`svcnet.node.containerd`: its
``root``, ``state``, ``runc`` and ``certs.d`` under ``DIR``, a temp dir; its socket in
``/run/svcnet/<hash of DIR>/``), plus ``fifo`` for ``ctr``'s stdio FIFOs.
:meth:`ContainerdServer.trust` writes ``certs.d/<host>/hosts.toml`` saying the registry
``host`` speaks plain HTTP; both ``ctr --hosts-dir`` and the CRI plugin read it.

What cannot be moved off the host in containerd 1.6: the shims' sockets are
``/run/containerd/s/<sha256(socket, namespace, id)>`` (unique per containerd socket, removed
when a shim exits), and containers' cgroups are ``/<namespace>/<id>`` (or the CRI's parent).

:meth:`ContainerdServer.stop` first has containerd kill and delete every task and container
(``ctr tasks rm -f``, ``ctr containers rm``: the shims exit, runc removes the cgroups). Shims
outlive containerd, so for any task bundle still there it then SIGKILLs the bundle's
``init.pid`` and that process's parent, the shim (1.6 writes no shim.pid), if the shim's
command line names our socket, and ``runc delete --force``-s it. Then containerd by its pid;
then it lazily unmounts everything mounted below ``DIR`` (rootfs overlays, sandbox shm) and
removes it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from svcnet.node.containerd import ContainerdPaths, mounts_under, render_hosts_toml, write_config
from tests.conftest import require_binary, require_root

__all__ = ["ContainerdServer", "containerd"]

NAMESPACE = "k8s.io"  # the CRI plugin's namespace: what ctr sees is what the CRI sees


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _proc_field(pid: int, name: str) -> str:
    try:
        if name == "cmdline":
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key == name:
                return value.strip()
    except OSError:
        pass
    return ""


class ContainerdServer:
    """One throwaway containerd; see the module docstring."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir: Path | None = None
        self._ctr = ""

    @property
    def paths(self) -> ContainerdPaths:
        assert self.dir is not None, "containerd is not started"
        return ContainerdPaths(self.dir)

    @property
    def socket(self) -> Path:
        return self.paths.socket

    @property
    def hosts_dir(self) -> Path:
        return self.paths.certs_d

    def start(self) -> None:
        if self.proc is not None:
            assert self.proc.poll() is None, "the test containerd died"
            return
        require_root()
        binary = require_binary("containerd")
        self._ctr = require_binary("ctr")
        require_binary("runc")
        require_binary("containerd-shim-runc-v2")
        self.dir = Path(tempfile.mkdtemp(prefix="svcnet-containerd-"))
        write_config(self.paths)
        (self.dir / "fifo").mkdir()
        config = self.paths.config
        with (self.dir / "containerd.log").open("ab") as log:
            self.proc = subprocess.Popen([binary, "--config", str(config)],
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            if self.socket.exists() and self.ctr("version", check=False).returncode == 0:
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                output = self.log()
                self.stop()
                pytest.fail(f"the test containerd did not start:\n{output[-3000:]}")
            time.sleep(0.05)

    def log(self) -> str:
        assert self.dir is not None
        return (self.dir / "containerd.log").read_text(errors="replace")

    def trust(self, host: str) -> None:
        """Pull from (and push to) the registry at ``host`` (``127.0.0.1:PORT``) over HTTP."""
        directory = self.hosts_dir / host
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "hosts.toml").write_text(render_hosts_toml(host))

    def ctr(self, *args: str, check: bool = True, timeout: float = 60,
            input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        """``ctr -a SOCKET -n k8s.io ARGS``; a failure (with ``check``) shows its output."""
        done = subprocess.run([self._ctr, "-a", str(self.socket), "-n", NAMESPACE, *args],
                              input=input, capture_output=True, timeout=timeout, check=False)
        result = subprocess.CompletedProcess(done.args, done.returncode,
                                             done.stdout.decode(errors="replace"),
                                             done.stderr.decode(errors="replace"))
        if check and result.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}{result.stderr}")
        return result

    def pull(self, ref: str) -> None:
        """``ctr images pull`` with the hosts dir (the registry must be :meth:`trust`-ed)."""
        self.ctr("images", "pull", "--hosts-dir", str(self.hosts_dir), ref, timeout=120)

    def run(self, ref: str, container_id: str, *args: str, env: Mapping[str, str] | None = None,
            options: Sequence[str] = (), timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``ctr run --rm`` of a pulled image in the foreground (stdout captured, not checked):
        runc, no host network, the runc root and FIFOs under our dir."""
        assert self.dir is not None
        env_args = [f"--env={k}={v}" for k, v in (env or {}).items()]
        return self.ctr("run", "--rm", "--runc-root", str(self.dir / "runc"),
                        "--fifo-dir", str(self.dir / "fifo"), *env_args, *options,
                        ref, container_id, *args, check=False, timeout=timeout)

    def _delete_containers(self) -> None:
        """Through containerd: SIGKILL and delete every task, delete every container (the
        shims exit, runc removes the cgroups)."""
        listed = self.ctr("tasks", "ls", "-q", check=False, timeout=15)
        for task in listed.stdout.split() if listed.returncode == 0 else ():
            self.ctr("tasks", "rm", "-f", task, check=False, timeout=30)
        listed = self.ctr("containers", "ls", "-q", check=False, timeout=15)
        for container in listed.stdout.split() if listed.returncode == 0 else ():
            self.ctr("containers", "rm", container, check=False, timeout=30)

    def _kill_leftovers(self) -> None:
        """Without containerd: for each task bundle left, SIGKILL its init process and its shim
        (the init's parent, if that names our socket) and ``runc delete`` it (its cgroups)."""
        assert self.dir is not None
        address = f"-address {self.socket} "
        runc = shutil.which("runc")
        for bundle in sorted((self.dir / "state" / "io.containerd.runtime.v2.task").glob("*/*")):
            init = _read_pid(bundle / "init.pid")
            shim = _proc_field(init, "PPid") if init is not None else ""
            if init is None or not shim.isdigit() or address not in _proc_field(int(shim),
                                                                                "cmdline") + " ":
                continue
            for pid in (init, int(shim)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            root = self.dir / "runc" / bundle.parent.name
            if runc is not None and (root / bundle.name).exists():
                subprocess.run([runc, "--root", str(root), "delete", "--force", bundle.name],
                               capture_output=True, check=False, timeout=30)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            self._delete_containers()
        if self.dir is not None:
            self._kill_leftovers()
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if self.dir is not None:
            for point in mounts_under(self.dir):
                subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)
            shutil.rmtree(self.socket.parent, ignore_errors=True)
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


@pytest.fixture(scope="session")
def containerd() -> Iterator[ContainerdServer]:
    """A containerd shared by the session (root only): use unique image names and container
    ids. Skipped without root or the binaries (a failure with SVCNET_REQUIRE_ROOT_TESTS=1)."""
    server = ContainerdServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
