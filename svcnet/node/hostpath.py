"""Setting up a volume that is a path of the host: the ``type`` checks of ``hostPath`` and the
directory check of ``local``.

Theory of operation
-------------------
A ``hostPath`` volume, or a claim bound to a ``hostPath`` or ``local`` PersistentVolume
(:func:`~svcnet.node.volumes.host_source`), is a path of the machine the agent runs on: on a
node of ``svcnet up`` (a network namespace on a shared machine) that is the machine's own
file system, the same for every node. Before the pod's containers start, the agent's pod sync
calls :func:`set_up`, which does what the kubelet's plugin does at ``SetUp`` /
``NewMounter``; a failure keeps the containers waiting (``FailedMount``) and is tried again on
the next sync:

* ``hostPath`` (pkg/volume/hostpath/host_path.go, ``SetUp`` and ``checkType``): a path with a
  ``..`` element is refused (``invalid HostPath ...``); type ``""`` checks nothing;
  ``DirectoryOrCreate`` makes a missing directory (and its parents) with mode 0755 and
  ``FileOrCreate`` a missing empty file with mode 0644 (its parent must exist), both under the
  agent's umask as upstream's ``os.MkdirAll``/``os.OpenFile`` are; then ``Directory``,
  ``File``, ``Socket``, ``CharDevice`` and ``BlockDevice`` require the path (followed through
  symlinks, ``os.Stat``) to exist (``hostPath /x doesn't exist``) and be of that type
  (``hostPath type check failed: /x is not a directory, it's a File``, the type as
  hostutil's ``GetFileType`` names it).
* ``local`` (pkg/volume/local/local.go, ``NewMounter``): the path must exist (``path "/x"
  does not exist``) and be a directory (``only directory and block device are supported``;
  a block device, which the kubelet formats and mounts, is not supported by svcnet).

A ``hostPath`` of type ``""`` that does not exist is created (a directory) by the container
runtime when the container starts: containerd's CRI plugin does so (mode 0755), and so does
the process runtime's :mod:`.mounter` for its sources.
"""

from __future__ import annotations

import os
import stat
from pathlib import PurePosixPath
from typing import Final

from svcnet.node.volumes import HOST_PATH, HostSource, VolumeError

__all__ = ["NewMounterError", "file_type", "set_up"]

DIRECTORY_OR_CREATE: Final = "DirectoryOrCreate"
FILE_OR_CREATE: Final = "FileOrCreate"
_CHECKED: Final = {
    "Directory": "directory", "File": "file", "Socket": "socket file",
    "CharDevice": "character device", "BlockDevice": "block device",
}
"""The types checked as they are, and how the kubelet's messages describe them."""


class NewMounterError(VolumeError):
    """The volume's plugin refused it before any set-up (the kubelet's ``MountVolume.NewMounter
    initialization failed``)."""


def _go_error(op: str, path: str, exc: OSError) -> str:
    """Go's ``*PathError`` text (``mkdir /x: permission denied``)."""
    if exc.errno is None:
        return f"{op} {path}: {exc}"
    text = os.strerror(exc.errno)
    return f"{op} {path}: {text[:1].lower()}{text[1:]}"


def file_type(path: str) -> str:
    """hostutil's ``GetFileType``: ``Directory``, ``File``, ``Socket``, ``CharDevice`` or
    ``BlockDevice`` (symlinks followed); OSError or ValueError otherwise."""
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        return "Directory"
    if stat.S_ISSOCK(mode):
        return "Socket"
    if stat.S_ISCHR(mode):
        return "CharDevice"
    if stat.S_ISBLK(mode):
        return "BlockDevice"
    if stat.S_ISREG(mode):
        return "File"
    raise ValueError("only recognise file, directory, socket, block device and character "
                     "device")


def _type_matched(path: str, expected: str) -> None:
    if not os.path.exists(path):
        raise VolumeError(f"hostPath {path} doesn't exist")
    description = _CHECKED[expected]
    try:
        actual = file_type(path)
    except (OSError, ValueError) as exc:
        reason = _go_error("stat", path, exc) if isinstance(exc, OSError) else str(exc)
        raise VolumeError(f"hostPath type check failed, {path} is not a {description}, unable "
                          f"to determine its type: {reason}") from exc
    if actual != expected:
        raise VolumeError(f"hostPath type check failed: {path} is not a {description}, it's "
                          f"a {actual}")


def _make_dir(path: str) -> None:
    try:
        os.makedirs(path, 0o755, exist_ok=True)
    except FileExistsError:
        pass  # a file there: upstream's makeDir ignores IsExist too
    except OSError as exc:
        raise VolumeError(_go_error("mkdir", exc.filename or path, exc)) from exc


def _make_file(path: str) -> None:
    try:
        os.close(os.open(path, os.O_CREAT | os.O_RDONLY | os.O_CLOEXEC, 0o644))
    except FileExistsError:
        pass
    except OSError as exc:
        raise VolumeError(_go_error("open", path, exc)) from exc


def _check_host_path(path: str, kind: str) -> None:
    """checkType."""
    if kind == DIRECTORY_OR_CREATE:
        if not os.path.exists(path):
            _make_dir(path)
            return
        kind = "Directory"
    elif kind == FILE_OR_CREATE:
        if not os.path.exists(path):
            _make_file(path)
            return
        kind = "File"
    if kind not in _CHECKED:
        raise VolumeError(f"{kind} is an invalid volume type")
    _type_matched(path, kind)


def set_up(source: HostSource) -> None:
    """Check (and for the ``...OrCreate`` types, create) the volume's host path, as the
    kubelet's plugin does. Raises :class:`VolumeError` (:class:`NewMounterError` for a
    ``local`` volume's path) with the kubelet's message."""
    path = source.path
    if source.plugin == HOST_PATH:
        if ".." in PurePosixPath(path).parts:
            raise VolumeError(f"invalid HostPath `{path}`: must not contain '..'")
        if not path.startswith("/"):
            raise VolumeError(f"invalid HostPath `{path}`: must be an absolute path")
        if source.type:
            _check_host_path(path, source.type)
        return
    try:
        kind = file_type(path)
    except FileNotFoundError as exc:
        raise NewMounterError(f'path "{path}" does not exist') from exc
    except (OSError, ValueError) as exc:
        raise NewMounterError(_go_error("stat", path, exc) if isinstance(exc, OSError)
                              else str(exc)) from exc
    if kind == "BlockDevice":
        raise NewMounterError(f'path "{path}" is a block device: block device local volumes '
                              "are not supported by svcnet")
    if kind != "Directory":
        raise NewMounterError("only directory and block device are supported")
