"""tests/images.py: layers are normalized tars (sorted, parents present, no times or owner
names), builds are reproducible, config and manifest describe the blobs, and the standard test
images are busybox-static with applets on a shared base layer."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from svcnet.node import oci
from tests import images
from tests.conftest import require_binary
from tests.images import DOCKER, OCI, Dir, File, Symlink, build_image, build_layer


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def members(layer: images.Layer) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer.data))) as tar:
        return tar.getmembers()


def contents(layer: images.Layer) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer.data))) as tar:
        for member in tar.getmembers():
            if member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                out[member.name] = extracted.read()
    return out


FILES: dict[str, images.Entry] = {
    "/srv/app/run.sh": File(b"#!/bin/sh\necho hi\n", mode=0o755),
    "etc/motd": b"hello\n",
    "bin/sh": Symlink("/bin/busybox"),
    "/var/empty": Dir(0o700, uid=1000, gid=1000),
    "srv/data": File(b"x", uid=1000, gid=2000),
}


def sample(**kwargs: Any) -> images.Image:
    return build_image(FILES, entrypoint=["/srv/app/run.sh"], cmd=["--flag"],
                       env={"A": "1"}, workdir="/srv", user="1000:1000",
                       exposed_ports=[8080, "53/udp"], labels={"k": "v"}, **kwargs)


def test_same_inputs_give_the_same_bytes_and_digests() -> None:
    first, second = sample(), sample()
    assert (first.manifest, first.config) == (second.manifest, second.config)
    assert [layer.data for layer in first.layers] == [layer.data for layer in second.layers]
    assert first.digest == second.digest == sha256(first.manifest)
    # The order the files are given in does not matter.
    reordered = dict(reversed(list(FILES.items())))
    assert build_layer(reordered).digest == build_layer(FILES).digest
    # Any change does.
    assert build_layer({**FILES, "etc/motd": b"bye\n"}).digest != build_layer(FILES).digest
    assert sample(architecture="arm64").digest != first.digest


def test_the_layer_is_a_normalized_tar_with_its_parents() -> None:
    layer = build_layer(FILES)
    assert layer.data[4:8] == b"\0\0\0\0", "gzip mtime"
    assert layer.diff_id == sha256(gzip.decompress(layer.data))
    assert layer.digest == sha256(layer.data)
    got = members(layer)
    names = [m.name for m in got]
    assert names == ["bin", "bin/sh", "etc", "etc/motd", "srv", "srv/app", "srv/app/run.sh",
                     "srv/data", "var", "var/empty"]
    assert all(m.mtime == 0 and m.uname == "" and m.gname == "" for m in got)
    by_name = {m.name: m for m in got}
    assert by_name["bin"].isdir() and by_name["bin"].mode == 0o755
    assert by_name["bin/sh"].issym() and by_name["bin/sh"].linkname == "/bin/busybox"
    assert (by_name["srv/app/run.sh"].mode, by_name["etc/motd"].mode) == (0o755, 0o644)
    assert (by_name["srv/data"].uid, by_name["srv/data"].gid) == (1000, 2000)
    assert (by_name["var/empty"].mode, by_name["var/empty"].uid) == (0o700, 1000)
    assert contents(layer) == {"etc/motd": b"hello\n", "srv/app/run.sh": b"#!/bin/sh\necho hi\n",
                               "srv/data": b"x"}


@pytest.mark.parametrize("bad", [{"../x": b""}, {"/": b""}, {"a": b"", "/a": b""}])
def test_bad_paths_are_refused(bad: dict[str, images.Entry]) -> None:
    with pytest.raises(ValueError):
        build_layer(bad)


def test_config_and_manifest_describe_the_blobs() -> None:
    image = sample()
    config = json.loads(image.config)
    assert config["architecture"] == images.machine_architecture() in ("amd64", "arm64")
    assert config["os"] == "linux"
    assert config["config"] == {
        "Entrypoint": ["/srv/app/run.sh"], "Cmd": ["--flag"],
        "Env": [f"PATH={oci.DEFAULT_PATH}", "A=1"], "WorkingDir": "/srv",
        "User": "1000:1000", "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
        "Labels": {"k": "v"}}
    assert config["rootfs"] == {"type": "layers", "diff_ids": [image.layers[0].diff_id]}
    assert len(config["history"]) == 1
    manifest = json.loads(image.manifest)
    assert manifest == {
        "schemaVersion": 2, "mediaType": DOCKER.manifest,
        "config": {"mediaType": DOCKER.config, "digest": sha256(image.config),
                   "size": len(image.config)},
        "layers": [{"mediaType": DOCKER.layer, "digest": image.layers[0].digest,
                    "size": len(image.layers[0].data)}]}
    assert image.config_digest == sha256(image.config)
    assert image.blobs() == {sha256(image.config): image.config,
                             image.layers[0].digest: image.layers[0].data}
    # OCI: the same blobs, other media types in the manifest.
    as_oci = sample(media_types=OCI)
    assert (as_oci.config, as_oci.layers) == (image.config, image.layers)
    oci_manifest = json.loads(as_oci.manifest)
    assert (oci_manifest["mediaType"], oci_manifest["config"]["mediaType"],
            oci_manifest["layers"][0]["mediaType"]) == (OCI.manifest, OCI.config, OCI.layer)
    assert as_oci.digest != image.digest


def test_base_layers_come_first_and_are_shared() -> None:
    base = build_layer({"bin/tool": b"t"}, created_by="base")
    one = build_image({"app": b"1"}, base=[base])
    two = build_image({"app": b"2"}, base=[base])
    assert one.layers[0] is two.layers[0] is base
    assert one.layers[1].digest != two.layers[1].digest
    history = json.loads(one.config)["history"]
    assert [h["created_by"] for h in history] == ["base", "svcnet"]
    only_base = build_image({}, base=[base], cmd=["/bin/tool"])
    assert only_base.layers == (base,)


def test_oci_layout_and_archive(tmp_path: Path) -> None:
    image = sample()
    images.write_oci_layout(image, tmp_path, "127.0.0.1:5000/app:v1")
    assert json.loads((tmp_path / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((tmp_path / "index.json").read_text())
    [descriptor] = index["manifests"]
    assert descriptor["digest"] == image.digest
    assert descriptor["annotations"] == {"org.opencontainers.image.ref.name": "v1",
                                         "io.containerd.image.name": "127.0.0.1:5000/app:v1"}
    blobs = {f"sha256:{p.name}": p.read_bytes() for p in (tmp_path / "blobs/sha256").iterdir()}
    assert blobs == {image.digest: image.manifest, **image.blobs()}
    assert all(sha256(data) == digest for digest, data in blobs.items())
    with tarfile.open(fileobj=io.BytesIO(images.oci_archive(image, "x/app:v1"))) as tar:
        names = set(tar.getnames())
    assert {"oci-layout", "index.json", "blobs/sha256/" + image.digest[7:]} <= names


def test_the_standard_images_share_a_busybox_base() -> None:
    require_binary("busybox")
    v1, v2 = images.web_image("v1"), images.web_image("v2")
    base = images.busybox_layer()
    assert v1.layers[0] is v2.layers[0] is base and v1.digest != v2.digest
    for image in (images.crash_image(), images.hog_image(), images.user_image()):
        assert image.layers == (base,)
        assert image.size < 1_500_000, "busybox-static images are about 1 MB"
    got = {m.name: m for m in members(base)}
    assert got["bin/busybox"].isfile() and got["bin/busybox"].mode == 0o755
    assert oci._is_static_elf(contents(base)["bin/busybox"])
    assert got["bin/sh"].linkname == got["usr/bin/id"].linkname == "/bin/busybox"
    assert got["tmp"].mode == 0o1777 and got["etc/passwd"].isfile()
    web = {m.name: m for m in members(v1.layers[1])}
    assert web["www/cgi-bin/index.cgi"].mode == 0o755
    assert json.loads(v1.config)["config"]["Env"][-1] == "VERSION=v1"
    assert json.loads(images.user_image().config)["config"]["User"] == "1000:1000"
    # Reproducible across processes: a fresh build of the base layer is the same.
    images.busybox_layer.cache_clear()
    assert images.busybox_layer().digest == base.digest
    assert images.web_image("v1").digest == v1.digest
