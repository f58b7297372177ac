"""The kubelet's atomic writer: a volume's files replaced all at once, never half-written.

Theory of operation (pkg/volume/util/atomic_writer.go)
-------------------------------------------------------
A volume directory holds::

    ..2026_12_06_18_30_01.123456789/   the payload, one timestamped directory per version
    ..data -> ..2026_12_06_18_30_01.123456789
    key -> ..data/key                  one user-visible symlink per top-level path

:func:`write_payload` compares the payload with what ``..data`` holds (content and mode); if
nothing changed it only makes sure the user-visible symlinks exist. Otherwise it writes the
payload into a fresh timestamped directory, points a new symlink ``..data_tmp`` at it and
renames that over ``..data`` (one atomic ``rename(2)``: a reader sees the old version or the
new one, never a mix), adds the symlinks of new top-level paths, removes those of paths that
are gone, and finally removes the old timestamped directory. A container sees the volume
through a bind mount of the volume directory, so the swap shows up there at once.

Payload paths are checked as the writer does (relative, no ``..`` element, not starting with
``..``); a bad one fails the whole write with ``VolumeError``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Final

from svcnet.node.volumes import FileProjection, VolumeError

__all__ = ["DATA_DIR", "read_payload", "write_payload"]

DATA_DIR: Final = "..data"
_DATA_TMP: Final = "..data_tmp"


def _validate(path: str) -> None:
    p = PurePosixPath(path)
    if not path:
        raise VolumeError("invalid path: must not be empty")
    if p.is_absolute():
        raise VolumeError(f"invalid path: must be relative path: {path}")
    if ".." in p.parts:
        raise VolumeError(f"invalid path: must not contain '..': {path}")
    if path.startswith(".."):
        raise VolumeError(f"invalid path: must not start with '..': {path}")


def read_payload(target: Path) -> dict[str, FileProjection] | None:
    """What ``..data`` holds now (None: nothing written yet)."""
    data = target / DATA_DIR
    if not data.is_symlink():
        return None
    root = target / os.readlink(data)
    out: dict[str, FileProjection] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            full = Path(dirpath) / name
            out[str(full.relative_to(root))] = FileProjection(
                full.read_bytes(), full.stat().st_mode & 0o7777)
    return out


def _timestamped_dir(target: Path) -> Path:
    prefix = datetime.now(UTC).strftime("..%Y_%m_%d_%H_%M_%S.")
    return Path(tempfile.mkdtemp(prefix=prefix, dir=target))


def write_payload(target: Path, payload: Mapping[str, FileProjection]) -> bool:
    """Make ``target`` hold exactly ``payload``; returns whether anything was written."""
    for path in payload:
        _validate(path)
    target.mkdir(parents=True, exist_ok=True)
    current = read_payload(target)
    old_dir = os.readlink(target / DATA_DIR) if current is not None else None
    changed = current != dict(payload)
    if changed:
        ts_dir = _timestamped_dir(target)
        ts_dir.chmod(0o755)
        for path, projection in payload.items():
            full = ts_dir / path
            full.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(projection.data)
            os.chmod(full, projection.mode)
        tmp_link = target / _DATA_TMP
        tmp_link.unlink(missing_ok=True)
        os.symlink(ts_dir.name, tmp_link)
        os.rename(tmp_link, target / DATA_DIR)
    visible = {PurePosixPath(p).parts[0] for p in payload}
    for name in sorted(visible):
        link = target / name
        if not link.is_symlink():
            os.symlink(f"{DATA_DIR}/{name}", link)
    for entry in os.scandir(target):
        if not entry.name.startswith("..") and entry.name not in visible and \
                entry.is_symlink():
            os.unlink(entry.path)
    if changed and old_dir is not None and old_dir != DATA_DIR:
        with contextlib.suppress(OSError):
            shutil.rmtree(target / old_dir)
    return changed
