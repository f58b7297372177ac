"""The container's mounts, made in its private mount namespace just before its command runs.

Theory of operation
-------------------
A container is ``ip netns exec POD_NETNS argv``: iproute2 already gives it a mount namespace of
its own (everything made a slave of the host's, so nothing done here propagates back). When
the container has ``volumeMounts`` the runtime runs, in that place,
``python -I -m svcnet.node.mounter PLAN -- argv``; this module (standard library only, so it
starts fast and a pod's ``PYTHON*`` variables cannot steer it: ``-I``) makes the mounts the
JSON ``PLAN`` lists and then *execs* argv, so the container's main process keeps the pid the
runtime watches. It first unshares a mount namespace again (harmless after ``ip netns
exec``, and what makes it work for a container without a netns).

Per mount (in the plan's order: shallow targets first, as runc does):

1. The source is the volume directory under ``STATE/pods/<uid>/volumes/`` (or, with
   ``subPath``, a path inside it, resolved and checked to stay inside it; a missing one is
   created as a directory, as the kubelet does). All sources are opened (``O_PATH``) before
   anything is mounted and bound from ``/proc/self/fd/N``: looked up later, through an
   overlay made in step 3, a path would reach the overlay's cached view of the host's
   directory, and the atomic writer's later ``..data`` swaps would not show.
2. **The target exists** (a directory for a directory, a file for a file): bind-mount there.
3. **The target does not exist**: nothing may be created on the host's filesystem, so the
   nearest existing ancestor ``A`` of the target is covered, in this namespace only, by an
   overlay whose lower layer is ``A`` and whose upper layer is a tmpfs: the overlay is built
   at a staging directory (``STATE/pods/<uid>/mounts/<container>``, a tmpfs mounted for the
   purpose), every mount below ``A`` (``/proc/self/mountinfo``) is bind-mounted (recursively)
   into it at the same place, so the pod's ``/etc/resolv.conf`` and anything else mounted
   below ``A`` stays visible, and then the overlay is moved onto ``A``. When ``A`` is ``/``
   the overlay becomes the root the ``switch_root`` way: move onto ``/`` and ``chroot .``.
   The missing directories (or the empty file) are then created in the overlay — in tmpfs
   — and the bind mount made. A target whose ancestor is already inside one of our overlays
   needs no second overlay (its directories land in the same tmpfs).
4. ``readOnly`` (always, for configMap/secret/downwardAPI/projected volumes) remounts the
   bind read-only.

Finally the staging tmpfs is detached from the container's view (the overlays keep their own
references to it) and the working directory is entered. Any failure is printed to the
container's log and ends the process with exit code 128, before argv ever runs.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys

TYPE_CHECKING = False  # no typing import at run time: this module's start-up is on every start
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

__all__ = ["command_line", "main"]

CLONE_NEWNS = 0x00020000
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SLAVE = 1 << 19
MNT_DETACH = 2
EXIT_MOUNT_FAILED = 128

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    _check(_libc.mount(source.encode() if source else None, target.encode(),
                       fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                       data.encode() if data else None),
           f"mount {source or fstype} on {target}")


def _unmount_all(path: str) -> None:
    while _libc.umount2(path.encode(), MNT_DETACH) == 0:
        pass


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit() and i + 4 <= len(field):
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [_unescape(line.split()[4]) for line in f if line.strip()]


def _inside(path: str, ancestor: str) -> bool:
    return ancestor in ("/", path) or path.startswith(ancestor.rstrip("/") + "/")


def _top_submounts(ancestor: str, staging: str) -> list[str]:
    """The mount points strictly below ``ancestor`` that no other one below it contains."""
    below = sorted({p for p in _mount_points()
                    if p != ancestor and _inside(p, ancestor) and not _inside(p, staging)})
    top: list[str] = []
    for p in below:
        if not any(_inside(p, t) for t in top):
            top.append(p)
    return top


def _opt_escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")


class _Namespace:
    def __init__(self, staging: str) -> None:
        self.staging = staging
        self.staged = False
        self.overlays: list[int] = []  # st_dev of the overlays we made

    def _stage(self) -> None:
        if not self.staged:
            _mount("tmpfs", self.staging, "tmpfs", 0, "mode=0700")
            self.staged = True

    def _overlay(self, ancestor: str) -> None:
        self._stage()
        base = os.path.join(self.staging, str(len(self.overlays)))
        upper, work, merged = (os.path.join(base, d) for d in ("upper", "work", "merged"))
        for d in (upper, work, merged):
            os.makedirs(d)
        _mount("overlay", merged, "overlay", 0,
               f"lowerdir={_opt_escape(ancestor)},upperdir={_opt_escape(upper)},"
               f"workdir={_opt_escape(work)}")
        for sub in _top_submounts(ancestor, self.staging):
            dest = merged + sub[len(ancestor.rstrip("/")):]
            if os.path.lexists(dest):
                _mount(sub, dest, None, MS_BIND | MS_REC)
        if _inside(self.staging, ancestor):
            # Later overlays need the staging tmpfs at its path inside this one too.
            _mount(self.staging, merged + self.staging[len(ancestor.rstrip("/")):], None,
                   MS_BIND)
        if ancestor == "/":
            os.chdir(merged)
            _mount(".", "/", None, MS_MOVE)
            os.chroot(".")
            os.chdir("/")
        else:
            _mount(merged, ancestor, None, MS_MOVE)
        self.overlays.append(os.stat(ancestor).st_dev)

    def ensure_target(self, target: str, is_dir: bool) -> None:
        if os.path.lexists(target):
            if os.path.isdir(target) != is_dir:
                kind = "a directory" if is_dir else "a file"
                raise OSError(errno.ENOTDIR, f"mount target {target} is not {kind}")
            return
        ancestor = os.path.dirname(target)
        while not os.path.isdir(ancestor):
            ancestor = os.path.dirname(ancestor)
        if os.stat(ancestor).st_dev not in self.overlays:
            self._overlay(ancestor)
        if is_dir:
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))

    def finish(self) -> None:
        if self.staged:
            _unmount_all(self.staging)


def _source(mount: Mapping[str, Any]) -> str:
    source = str(mount["source"])
    root = os.path.realpath(str(mount.get("volume") or source))
    if not os.path.lexists(source):
        os.makedirs(source, mode=0o777, exist_ok=True)
    real = os.path.realpath(source)
    if not _inside(real, root):
        raise OSError(errno.EPERM, f"subPath {source} leaves its volume")
    return real


def apply(plan: Mapping[str, Any]) -> None:
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, MS_REC | MS_SLAVE)
    ns = _Namespace(str(plan["staging"]))
    mounts = plan.get("mounts") or []
    # Every source is opened before any overlay exists: a path looked up through an overlay
    # would see the overlay's (cached) copy of the host's directory, not its later changes.
    sources = [os.open(_source(m), os.O_PATH | os.O_CLOEXEC) for m in mounts]
    for mount, fd in zip(mounts, sources, strict=True):
        target = str(mount["target"])
        ns.ensure_target(target, os.path.isdir(f"/proc/self/fd/{fd}"))
        _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)
        if mount.get("read_only"):
            _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    ns.finish()
    os.chdir(str(plan.get("cwd") or "/"))


def command_line(python: str, plan: Mapping[str, Any], argv: Sequence[str]) -> list[str]:
    """``python -I -S mounter.py STAGING CWD [SOURCE TARGET ro|rw VOLUME]... -- argv``: the
    plan as plain arguments (every path absolute, so none is ``--``), parsed without
    importing json, and the file run without ``site``: a container start pays only for the
    interpreter and ctypes."""
    args = [python, "-I", "-S", __file__, str(plan["staging"]), str(plan.get("cwd") or "/")]
    for m in plan.get("mounts") or ():
        args += [str(m["source"]), str(m["target"]), "ro" if m.get("read_only") else "rw",
                 str(m.get("volume") or m["source"])]
    return [*args, "--", *argv]


def _parse(args: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    end = list(args).index("--")
    head, command = args[:end], list(args[end + 1:])
    if len(head) < 2 or (len(head) - 2) % 4 or not command:
        raise ValueError("usage: mounter.py STAGING CWD [SOURCE TARGET ro|rw VOLUME]... "
                         "-- COMMAND...")
    mounts = [{"source": head[i], "target": head[i + 1], "read_only": head[i + 2] == "ro",
               "volume": head[i + 3]} for i in range(2, len(head), 4)]
    return {"staging": head[0], "cwd": head[1], "mounts": mounts}, command


def main(argv: Sequence[str]) -> int:
    try:
        plan, command = _parse(argv[1:])
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        apply(plan)
    except (OSError, ValueError, KeyError) as exc:
        print(f"svcnet: failed to set up the container's mounts: {exc}", file=sys.stderr)
        return EXIT_MOUNT_FAILED
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f'exec: "{command[0]}": {exc.strerror}', file=sys.stderr)
    return EXIT_MOUNT_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv))
