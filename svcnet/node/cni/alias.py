"""The pod netns's contract name: ``/run/netns/svcnet-<tag>-p<hash>`` bound to ``CNI_NETNS``.

Theory of operation
-------------------
Our tooling finds a pod's network namespace by name (``svcnet exec``, probes, port-forward,
``svcnet down`` removing a cluster's namespaces by prefix: docs/DESIGN.md), but a CRI runtime
creates the namespace itself, at a path of its own (containerd 1.6: ``/var/run/netns/cni-<uuid>``).
So the plugin gives that namespace a second name, the way ``ip netns add`` makes a name: an
empty file in ``/run/netns`` with the namespace bind-mounted over it. A bind mount of an nsfs
file keeps the namespace alive like any other reference; :func:`detach` unmounts it (lazily,
``MNT_DETACH``, as ``ip netns del`` does) and removes the file.

Done with ``mount(2)``/``umount2(2)`` through ctypes (as :mod:`svcnet.util.nsthread` calls
``setns``), not by running ``mount --bind``: no process per pod start and per pod stop, and
the kernel's errno to act on instead of a message to parse. ``ip netns attach`` is no
alternative, it takes a PID and the namespace has no process yet when ADD runs.

Like ``netns_add`` in iproute2's ``ip/ipnetns.c``, the first bind makes ``/run/netns`` a
shared mount (bind-mounting the directory on itself if it is not a mount point yet): mount
namespaces made later (every ``ip netns exec``) then see the removal of a name too, instead of
keeping a copy of the bind mount that pins the namespace until they end.

The mount is made in the *calling process's* mount namespace. A plugin run under
``ip netns exec`` (which gives its child a private mount namespace, slave to the host's) makes
an alias nobody else sees and that dies with it: run the runtime with
``nsenter --net=/run/netns/<node netns>`` instead, which switches the network namespace only.

Two helpers identify namespace files without entering them: every nsfs file (a bind mount of
one, or ``/proc/<pid>/ns/net``) lives on the one nsfs device, and its inode number is the
namespace's identity (``ip netns identify`` compares the same).
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path
from typing import Final

from svcnet.node.names import check_name
from svcnet.util.nsthread import NETNS_RUN_DIR

__all__ = ["AliasTaken", "alias_path", "attach", "detach", "is_netns", "same_netns"]

_MS_BIND: Final = 0x1000
_MS_REC: Final = 0x4000
_MS_SHARED: Final = 1 << 20
_MNT_DETACH: Final = 2

_libc = ctypes.CDLL(None, use_errno=True)


class AliasTaken(Exception):
    """The name already holds another namespace (a pod UID hash collision, or the pod's
    previous sandbox not torn down yet)."""


def alias_path(name: str, *, run_dir: Path = NETNS_RUN_DIR) -> Path:
    return run_dir / check_name(name)


def _mount(source: str, target: Path, flags: int) -> None:
    if _libc.mount(source.encode(), str(target).encode(), b"none", flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount({source!r}, {str(target)!r}): {os.strerror(err)}")


def _nsfs_dev() -> int:
    return os.stat("/proc/self/ns/net").st_dev


def is_netns(path: str | Path) -> bool:
    """Is ``path`` a network namespace file (not a missing path, not a stale empty file)?"""
    try:
        return os.stat(path).st_dev == _nsfs_dev()
    except OSError:
        return False


def same_netns(a: str | Path, b: str | Path) -> bool:
    """Do ``a`` and ``b`` both name one network namespace?"""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return sa.st_dev == sb.st_dev == _nsfs_dev() and sa.st_ino == sb.st_ino


def _ensure_shared(run_dir: Path) -> None:
    run_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    try:
        _mount("", run_dir, _MS_SHARED | _MS_REC)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: not a mount point yet
            raise
        _mount(str(run_dir), run_dir, _MS_BIND | _MS_REC)
        _mount("", run_dir, _MS_SHARED | _MS_REC)


def attach(netns: str, name: str, *, run_dir: Path = NETNS_RUN_DIR) -> bool:
    """Make ``run_dir/name`` name the namespace at path ``netns``. True if made now, False if
    it named that namespace already (or ``netns`` *is* that file). Raises
    :class:`AliasTaken` if it names another one."""
    target = alias_path(name, run_dir=run_dir)
    if os.path.realpath(netns) == os.path.realpath(target):
        return False
    if os.path.lexists(target):
        if same_netns(target, netns):
            return False
        if is_netns(target):
            raise AliasTaken(f"{target} is another network namespace")
        target.unlink()  # an empty file: a crash between creating it and mounting over it
    _ensure_shared(run_dir)
    try:
        os.close(os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
    except FileExistsError:
        raise AliasTaken(f"{target} was created meanwhile") from None
    try:
        _mount(netns, target, _MS_BIND)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return True


def detach(name: str, *, run_dir: Path = NETNS_RUN_DIR) -> bool:
    """Unmount and remove ``run_dir/name``; False if there was none."""
    target = alias_path(name, run_dir=run_dir)
    if not os.path.lexists(target):
        return False
    if _libc.umount2(str(target).encode(), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):  # EINVAL: not a mount point
            raise OSError(err, f"umount2({str(target)!r}): {os.strerror(err)}")
    target.unlink(missing_ok=True)
    return True
