"""svcnet.node.mounter as the runtime runs it, without a netns: the mounts exist for the command
only, missing targets are made in an overlay and never on the host, read-only holds, atomic
``..data`` swaps show through (also after the root was overlaid), and a subPath that leaves its
volume is refused before the command runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from svcnet.node.mounter import command_line
from tests.conftest import require_root

pytestmark = pytest.mark.root


def volume(root: Path, name: str, content: str) -> Path:
    """A volume directory in the atomic writer's layout: ..v1/f, ..data -> ..v1, f -> ..data/f."""
    vol = root / name
    (vol / "..v1").mkdir(parents=True)
    (vol / "..v1" / "f").write_text(content)
    os.symlink("..v1", vol / "..data")
    os.symlink("..data/f", vol / "f")
    return vol


def swap(vol: Path, content: str) -> None:
    (vol / "..v2").mkdir()
    (vol / "..v2" / "f").write_text(content)
    os.symlink("..v2", vol / "..tmp")
    os.rename(vol / "..tmp", vol / "..data")


def mounter(plan: Mapping[str, object], script: str) -> subprocess.Popen[str]:
    return subprocess.Popen(command_line(sys.executable, plan, ["sh", "-c", script]),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_mounts_exist_for_the_command_only_and_follow_updates(tmp_path: Path) -> None:
    require_root()
    a, b = volume(tmp_path, "a", "a1"), volume(tmp_path, "b", "b1")
    (tmp_path / "stage").mkdir()
    m = {"read_only": True}
    plan = {"staging": str(tmp_path / "stage"), "cwd": "/svcnet-e4-mnt/a", "mounts": [
        {**m, "source": str(a), "volume": str(a), "target": "/etc/svcnet-e4-a"},
        {**m, "source": str(a), "volume": str(a), "target": "/svcnet-e4-mnt/a"},
        {**m, "source": str(b), "volume": str(b), "target": "/etc/svcnet-e4-b"},
        {"source": str(b / "..v1" / "f"), "volume": str(b), "target": "/etc/svcnet-e4-file",
         "read_only": False}]}
    proc = mounter(plan, "pwd; touch /etc/svcnet-e4-a/x 2>/dev/null || echo read-only; "
                         "ls /etc/hostname >/dev/null && echo host-etc; "
                         "cat /etc/svcnet-e4-file; echo; sleep 1; "
                         "cat /etc/svcnet-e4-a/f /svcnet-e4-mnt/a/f /etc/svcnet-e4-b/f")
    time.sleep(0.5)
    swap(a, "a2")
    swap(b, "b2")
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert out.split() == ["/svcnet-e4-mnt/a", "read-only", "host-etc", "b1", "a2a2b2"]
    for path in ("/etc/svcnet-e4-a", "/svcnet-e4-mnt", "/etc/svcnet-e4-b",
                 "/etc/svcnet-e4-file"):
        assert not os.path.lexists(path), f"{path} was made on the host"
    assert os.listdir(tmp_path / "stage") == []


def test_a_sub_path_leaving_its_volume_is_refused(tmp_path: Path) -> None:
    require_root()
    vol = tmp_path / "vol"
    vol.mkdir()
    os.symlink("/etc", vol / "escape")
    (tmp_path / "stage").mkdir()
    plan = {"staging": str(tmp_path / "stage"), "mounts": [
        {"source": str(vol / "escape"), "volume": str(vol), "target": "/svcnet-e4-x",
         "read_only": False}]}
    proc = mounter(plan, "echo ran")
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 128
    assert "leaves its volume" in out and "ran" not in out
