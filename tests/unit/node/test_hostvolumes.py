"""hostPath and persistentVolumeClaim volumes: the host path computed from pod + claim +
volume with the kubelet's messages (pure), the mounts they give a container, and the
``type`` checks of svcnet/node/hostpath.py over a temporary directory."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest

from svcnet.node import hostpath
from svcnet.node.hostpath import NewMounterError, set_up
from svcnet.node.podenv import ObjectUnavailable
from svcnet.node.volumes import (
    ClaimError,
    HostSource,
    Mount,
    VolumeError,
    container_mounts,
    host_source,
)

Obj = dict[str, Any]


def claim(phase: str = "Bound", volume: str = "pv1", **meta: Any) -> Obj:
    return {"metadata": {"name": "data", "namespace": "ns", "uid": "claim-uid", **meta},
            "spec": {"volumeName": volume}, "status": {"phase": phase}}


def pv(source: Obj | None = None, uid: str = "claim-uid", **spec: Any) -> Obj:
    out: Obj = {"metadata": {"name": "pv1"}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
        "volumeMode": "Filesystem",
        "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "ns", "name": "data",
                     "uid": uid},
        **(source if source is not None else {"hostPath": {"path": "/srv/pv1",
                                                           "type": "DirectoryOrCreate"}}),
        **spec}}
    return out


def pod(*volumes: Obj, mounts: list[Obj] | None = None) -> Obj:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "u-1"}, "spec": {
        "volumes": list(volumes),
        "containers": [{"name": "app", "volumeMounts": mounts or []}]}}


CLAIM_VOLUME: Obj = {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}


def lookup_of(objects: dict[tuple[str, str, str], Obj | None]) -> Any:
    def lookup(kind: str, namespace: str, name: str) -> Obj | None:
        value = objects.get((kind, namespace, name))
        if isinstance(value, Exception):
            raise value
        return value
    return lookup


def bound(claim_obj: Obj | None = None, pv_obj: Obj | None = None) -> Any:
    return lookup_of({("PersistentVolumeClaim", "ns", "data"): claim_obj or claim(),
                      ("PersistentVolume", "", "pv1"): pv_obj or pv()})


def test_host_path_volume_source() -> None:
    vol = {"name": "logs", "hostPath": {"path": "/var/log", "type": "Directory"}}
    assert host_source(pod(vol), vol, lookup_of({})) == HostSource(
        "/var/log", "hostPath", "Directory", False, "logs")
    assert host_source(pod(), {"name": "e", "emptyDir": {}}, lookup_of({})) is None


def test_a_bound_claim_mounts_its_volumes_host_path() -> None:
    p = pod(CLAIM_VOLUME)
    assert host_source(p, CLAIM_VOLUME, bound()) == HostSource(
        "/srv/pv1", "hostPath", "DirectoryOrCreate", False, "pv1")
    local = pv({"local": {"path": "/mnt/disk"}, "nodeAffinity": {"required": {}}})
    ro = {"name": "data", "persistentVolumeClaim": {"claimName": "data", "readOnly": True}}
    assert host_source(p, ro, bound(pv_obj=local)) == HostSource(
        "/mnt/disk", "local", "", True, "pv1")


@pytest.mark.parametrize(("claim_obj", "pv_obj", "message"), [
    (None, pv(), 'failed to fetch PVC from API server: persistentvolumeclaims "data" not '
                 "found"),
    (ObjectUnavailable("persistentvolumeclaim ns/data is not known to the node yet"), pv(),
     "failed to fetch PVC from API server: persistentvolumeclaim ns/data is not known to "
     "the node yet"),
    (claim("Pending", ""), pv(), "PVC is not bound"),
    (claim("Bound", ""), pv(), "PVC has empty pvc.Spec.VolumeName"),
    (claim(deletionTimestamp="2026-01-01T00:00:00Z"), pv(), "PVC is being deleted"),
    (claim(), None, 'failed to fetch PV pv1 from API server: persistentvolumes "pv1" not '
                    "found"),
    (claim(), {"metadata": {"name": "pv1"}, "spec": {"hostPath": {"path": "/x"}}},
     'found PV object pv1 but it has a nil pv.Spec.ClaimRef indicating it is not yet bound '
     "to the claim"),
    (claim(), pv(uid="other"), "found PV object pv1 but its pv.Spec.ClaimRef.UID other does "
                               "not point to claim.UID claim-uid"),
    (claim(), pv({"nfs": {"server": "n", "path": "/e"}}),
     'PersistentVolume "pv1": nfs volumes are not supported by svcnet (only hostPath and '
     "local)"),
    (claim(), pv({"csi": {"driver": "d", "volumeHandle": "h"}}),
     'PersistentVolume "pv1": csi volumes are not supported by svcnet (only hostPath and '
     "local)"),
    (claim(), pv(volumeMode="Block"), "volume data has volumeMode Block, but is specified in "
                                      "volumeMounts"),
])
def test_claims_that_cannot_be_mounted_say_why_as_the_kubelet_does(
        claim_obj: Any, pv_obj: Obj | None, message: str) -> None:
    p = pod(CLAIM_VOLUME, mounts=[{"name": "data", "mountPath": "/data"}])
    with pytest.raises(ClaimError) as err:
        host_source(p, CLAIM_VOLUME, lookup_of({("PersistentVolumeClaim", "ns", "data"):
                                                claim_obj, ("PersistentVolume", "", "pv1"):
                                                pv_obj}))
    assert str(err.value) == f"error processing PVC ns/data: {message}"


def test_container_mounts_of_host_paths_and_claims() -> None:
    logs = {"name": "logs", "hostPath": {"path": "/var/log/app"}}
    ro_claim = {"name": "ro", "persistentVolumeClaim": {"claimName": "data", "readOnly": True}}
    p = pod(logs, CLAIM_VOLUME, ro_claim)
    container = {"name": "app", "volumeMounts": [
        {"name": "logs", "mountPath": "/logs", "readOnly": True},
        {"name": "data", "mountPath": "/data"},
        {"name": "data", "mountPath": "/data/sub", "subPath": "a/b"},
        {"name": "ro", "mountPath": "/ro"}]}
    mounts = container_mounts(p, container, Path("/s/pods/u-1"), {}, bound())
    assert mounts == [
        Mount("/var/log/app", "/logs", True, "/var/log/app"),
        Mount("/srv/pv1", "/data", False, "/srv/pv1"),
        Mount("/srv/pv1", "/ro", True, "/srv/pv1"),  # the source's readOnly
        Mount("/srv/pv1/a/b", "/data/sub", False, "/srv/pv1"),
    ]
    # What was set up wins over the lookup: a running pod keeps its volume.
    kept = {"data": HostSource("/kept", "hostPath", "", False, "pv1")}
    mounts = container_mounts(p, {"name": "app", "volumeMounts": [
        {"name": "data", "mountPath": "/data"}]}, Path("/p"), {}, lookup_of({}), kept)
    assert mounts == [Mount("/kept", "/data", False, "/kept")]
    with pytest.raises(ClaimError, match="persistentvolumeclaims \"data\" not found"):
        container_mounts(p, {"name": "app", "volumeMounts": [
            {"name": "data", "mountPath": "/data"}]}, Path("/p"), {}, lookup_of({}))


# --- the set-up: type checks on the host --------------------------------------------------


def source(path: Path | str, kind: str = "", plugin: str = "hostPath") -> HostSource:
    return HostSource(str(path), plugin, kind, False, "v")


def test_directory_or_create_and_file_or_create(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        made = tmp_path / "a" / "b"
        set_up(source(made, "DirectoryOrCreate"))
        assert made.is_dir() and made.stat().st_mode & 0o777 == 0o755
        assert (tmp_path / "a").stat().st_mode & 0o777 == 0o755
        set_up(source(made, "DirectoryOrCreate"))  # exists: checked, fine

        f = made / "f"
        set_up(source(f, "FileOrCreate"))
        assert f.is_file() and f.stat().st_size == 0 and f.stat().st_mode & 0o777 == 0o644
        f.write_text("kept")
        set_up(source(f, "FileOrCreate"))
        assert f.read_text() == "kept"
    finally:
        os.umask(umask)
    with pytest.raises(VolumeError) as err:  # the parent must exist
        set_up(source(tmp_path / "none" / "f", "FileOrCreate"))
    assert str(err.value) == f"open {tmp_path}/none/f: no such file or directory"
    with pytest.raises(VolumeError) as err:
        set_up(source(f, "DirectoryOrCreate"))
    assert str(err.value) == (f"hostPath type check failed: {f} is not a directory, it's a "
                              "File")
    with pytest.raises(VolumeError) as err:
        set_up(source(made, "FileOrCreate"))
    assert str(err.value) == f"hostPath type check failed: {made} is not a file, it's a Directory"


def test_type_checks_as_upstreams_check_type(tmp_path: Path) -> None:
    d, f, missing = tmp_path / "d", tmp_path / "f", tmp_path / "missing"
    d.mkdir()
    f.write_text("x")
    sock = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock))
        for path, kind in ((d, "Directory"), (f, "File"), (sock, "Socket"),
                           ("/dev/null", "CharDevice"), (missing, "")):
            set_up(source(path, kind))
        assert not missing.exists(), "no type: nothing checked, nothing made"
        for path, kind, message in (
                (missing, "Directory", f"hostPath {missing} doesn't exist"),
                (f, "Directory", f"hostPath type check failed: {f} is not a directory, it's a "
                                 "File"),
                (d, "File", f"hostPath type check failed: {d} is not a file, it's a Directory"),
                (f, "Socket", f"hostPath type check failed: {f} is not a socket file, it's a "
                              "File"),
                (sock, "CharDevice", f"hostPath type check failed: {sock} is not a character "
                                     "device, it's a Socket"),
                ("/dev/null", "BlockDevice", "hostPath type check failed: /dev/null is not a "
                                             "block device, it's a CharDevice"),
                (d, "Weird", "Weird is an invalid volume type"),
                ("/a/../b", "", "invalid HostPath `/a/../b`: must not contain '..'"),
                ("rel", "", "invalid HostPath `rel`: must be an absolute path")):
            with pytest.raises(VolumeError) as err:
                set_up(source(path, kind))
            assert str(err.value) == message, (path, kind)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(VolumeError, match="unable to determine its type: only recognise file"):
        set_up(source(fifo, "File"))
    assert hostpath.file_type(str(d)) == "Directory"


def test_a_local_volume_must_be_a_directory(tmp_path: Path) -> None:
    set_up(source(tmp_path, plugin="local"))
    for path, message in ((tmp_path / "none", f'path "{tmp_path}/none" does not exist'),
                          ("/dev/null", "only directory and block device are supported")):
        with pytest.raises(NewMounterError) as err:
            set_up(source(path, plugin="local"))
        assert str(err.value) == message
