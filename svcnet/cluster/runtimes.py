"""The local cluster's container runtimes: one containerd per node, started and removed here.

Theory of operation
-------------------
A kind or k3s node runs containerd beside the kubelet; a local svcnet node does too, as a
unit of the cluster's supervisor (``containerd-<node>``), with its own configuration and
directories (:mod:`svcnet.node.containerd`). Each containerd runs in the machine's root
network namespace, where a real node's containerd runs: that is where its image pulls go
out, so a registry or mirror on the host's loopback (``http://127.0.0.1:5000``) is reachable.
Nothing of the pods' network happens there: the CNI configuration the node agent writes
names the node's namespace (``nodeNetns``), where the plugin puts each pod veth's host end,
on the node's bridge, exactly as for the process runtime.

Containerd is used when ``--container-runtime`` says so, or (``auto``, the default) when
``containerd``, ``runc``, ``ctr`` and a static busybox (for the sandbox image,
:func:`svcnet.node.containerd.sandbox_image_archive`) are all installed.

Cleanup (:func:`remove_traces`, called by ``svcnet down`` after the processes are stopped)
does not trust that containerd shut down cleanly: it kills the shims of the cluster's
containerds (found by the socket path in their command line, which holds the cluster's own
directory) and every process in the cluster's cgroups (``/svcnet-<tag>-n<i>/...`` in each
controller), removes those cgroups, and unmounts whatever containerd mounted under the
cluster directory (root filesystems, sandbox ``/dev/shm``, netns files).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from svcnet.node.containerd import (
    ContainerdPaths,
    mounts_under,
    sandbox_image_archive,
    write_config,
)
from svcnet.node.names import ClusterNames

__all__ = [
    "CGROUP_ROOT",
    "containerd_available",
    "import_sandbox_image",
    "node_containerd",
    "remove_traces",
    "shims",
    "wait_for_socket",
]

CGROUP_ROOT = Path("/sys/fs/cgroup")
_BUSYBOX = Path("/bin/busybox")


def containerd_available() -> str | None:
    """None when containerd can run pods here, else what is missing."""
    for tool in ("containerd", "runc", "ctr", "nsenter"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian: containerd, runc)"
    if not _BUSYBOX.is_file():
        return "no static busybox for the sandbox image (Debian: busybox-static)"
    return None


def node_containerd(base: Path, *,
                    mirrors: Mapping[str, str] = {}) -> tuple[ContainerdPaths, list[str]]:
    """Write one node's containerd configuration; returns its paths and the unit's argv."""
    paths = ContainerdPaths(base)
    write_config(paths, mirrors=mirrors)
    containerd = shutil.which("containerd") or "containerd"
    return paths, [containerd, "--config", str(paths.config)]


def wait_for_socket(paths: ContainerdPaths, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not paths.socket.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"containerd did not create {paths.socket}")
        time.sleep(0.05)


def import_sandbox_image(paths: ContainerdPaths) -> None:
    """Put the sandbox image into the node's containerd (``ctr images import``)."""
    r = subprocess.run(
        ["ctr", "--address", str(paths.socket), "--namespace", "k8s.io", "images", "import",
         "--no-unpack", "-"],
        input=sandbox_image_archive(_BUSYBOX), capture_output=True, check=False)
    if r.returncode != 0:
        raise RuntimeError("importing the sandbox image failed: "
                           f"{r.stderr.decode(errors='replace').strip()}")


def _cgroup_dirs(names: ClusterNames, root: Path = CGROUP_ROOT) -> list[Path]:
    """The cluster's cgroups (``svcnet-<tag>-n<i>`` and below), deepest first."""
    found: list[Path] = []
    candidates = [root, *(p for p in root.iterdir() if p.is_dir())] if root.is_dir() else []
    for controller in candidates:
        with contextlib.suppress(OSError):
            for top in controller.iterdir():
                if top.is_dir() and names.owns_netns(top.name):
                    found += [Path(d) for d, _, _ in os.walk(top)]
    return sorted(set(found), key=lambda p: (-len(p.parts), str(p)))


_SHIM_SOCKETS = Path("/run/containerd/s")
"""Where containerd 1.6's shims listen, whatever containerd's own state directory."""


def shim_socket(address: str, namespace: str, container_id: str) -> Path:
    """A shim's socket, as containerd 1.6 names it (``runtime/v2/shim``'s SocketAddress: the
    sha256 of ``<containerd address>/<namespace>/<id>``): a shim killed by force leaves it."""
    digest = hashlib.sha256(f"{address}/{namespace}/{container_id}".encode()).hexdigest()
    return _SHIM_SOCKETS / digest


def _shim_args(argv: Sequence[bytes]) -> dict[str, str]:
    out, args = {}, [a.decode(errors="replace") for a in argv[1:]]
    for flag, value in itertools.pairwise(args):
        if flag in ("-namespace", "-id", "-address"):
            out[flag[1:]] = value
    return out


def shims(sockets: Sequence[Path]) -> list[tuple[int, Path | None]]:
    """containerd shims serving one of these containerds (their argv names the socket), with
    their own sockets."""
    wanted = {str(s) for s in sockets}
    shims = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"containerd-shim" in argv[0] and any(
                a.decode(errors="replace") in wanted for a in argv):
            args = _shim_args(argv)
            socket = (shim_socket(args["address"], args["namespace"], args["id"])
                      if {"address", "namespace", "id"} <= args.keys() else None)
            shims.append((int(proc.name), socket))
    return shims


def remove_traces(cluster_root: Path, names: ClusterNames | None) -> list[str]:
    """Kill what the cluster's containerds left running, remove their cgroups (found by the
    names' patterns; None: the names belong to another cluster, see down.py) and unmount
    everything under ``cluster_root``. Returns what was done, for the report."""
    done: list[str] = []
    sockets = [ContainerdPaths(p / "containerd").socket
               for p in (cluster_root / "nodes").glob("*")] if cluster_root.is_dir() else []
    for pid, socket in shims(sockets):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            done.append(f"containerd-shim {pid}")
        if socket is not None:
            socket.unlink(missing_ok=True)
    dirs = _cgroup_dirs(names) if names is not None else []
    for d in dirs:
        with contextlib.suppress(OSError, ValueError):
            for member in (d / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(member), signal.SIGKILL)
    for d in dirs:
        for _ in range(50):  # a killed process leaves its cgroup a moment later
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)
    if dirs:
        done.append(f"{len(dirs)} cgroup(s)")
    for node in (cluster_root / "nodes").glob("*") if cluster_root.is_dir() else []:
        sockets_dir = ContainerdPaths(node / "containerd").socket.parent
        if sockets_dir.is_dir():
            shutil.rmtree(sockets_dir, ignore_errors=True)
            done.append(f"removed {sockets_dir}")
    for point in mounts_under(cluster_root):
        r = subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)
        if r.returncode == 0:
            done.append(f"unmounted {point}")
    return done
