"""Small OCI images from files, reproducibly: the sandbox image, and the tests' images.

Theory of operation
-------------------
An OCI image is three kinds of content-addressed blobs (image-spec ``manifest.md``,
``config.md``, ``layer.md``): one gzip'd tar per layer, a config (the runtime defaults:
``Entrypoint``, ``Cmd``, ``Env``, ``WorkingDir``, ``User``; ``rootfs.diff_ids``, the
digests of the *uncompressed* layers), and a manifest naming the config and the layers by
digest and size. An *image layout* (``image-layout.md``) puts them under ``blobs/sha256/``
with an ``index.json`` and an ``oci-layout`` marker; as a tar, that is what ``ctr images
import`` reads, taking the image's name from the ``io.containerd.image.name`` annotation.

Everything is deterministic (fixed timestamps, owners and entry order, gzip without a name
or time), so the same files always give the same digests: an image is a pure function of
its inputs. Only single-layer images are built; that is all a busybox-sized image needs.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import platform
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "CONFIG_MEDIA_TYPE",
    "LAYER_MEDIA_TYPE",
    "MANIFEST_MEDIA_TYPE",
    "File",
    "Image",
    "Symlink",
    "archive",
    "build_image",
    "digest",
]

MANIFEST_MEDIA_TYPE: Final = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE: Final = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
_INDEX_MEDIA_TYPE: Final = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True, slots=True)
class File:
    data: bytes
    mode: int = 0o644


@dataclass(frozen=True, slots=True)
class Symlink:
    target: str


@dataclass(frozen=True, slots=True)
class Image:
    """The blobs of one image, by role; ``blobs`` maps each digest to its bytes."""

    manifest: bytes
    config: bytes
    layer: bytes
    blobs: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """The manifest digest: what ``image@sha256:...`` names."""
        return digest(self.manifest)

    @property
    def config_digest(self) -> str:
        """The image ID containerd reports (the config's digest)."""
        return digest(self.config)


def digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _layer_tar(files: Mapping[str, File | Symlink]) -> bytes:
    """A tar of ``files`` with every parent directory, sorted, root-owned, mtime 0."""
    entries: dict[str, File | Symlink | None] = {}
    for path, given in files.items():
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            entries.setdefault("/".join(parts[:i]), None)
        entries["/".join(parts)] = given
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, item in sorted(entries.items()):
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if item is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(item, Symlink):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, item.target, 0o777
                tar.addfile(info)
            else:
                info.size, info.mode = len(item.data), item.mode
                tar.addfile(info, io.BytesIO(item.data))
    return buf.getvalue()


def _json(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def build_image(files: Mapping[str, File | Symlink], *,
                entrypoint: Sequence[str] = (), cmd: Sequence[str] = (),
                env: Sequence[str] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                      "/usr/bin:/sbin:/bin",),
                working_dir: str = "", user: str = "",
                exposed_ports: Sequence[str] = (),
                labels: Mapping[str, str] | None = None) -> Image:
    """One single-layer image holding ``files`` (paths relative to ``/``)."""
    tar = _layer_tar(files)
    layer = gzip.compress(tar, mtime=0)
    config_doc: dict[str, Any] = {"Env": list(env)}
    if entrypoint:
        config_doc["Entrypoint"] = list(entrypoint)
    if cmd:
        config_doc["Cmd"] = list(cmd)
    if working_dir:
        config_doc["WorkingDir"] = working_dir
    if user:
        config_doc["User"] = user
    if exposed_ports:
        config_doc["ExposedPorts"] = {p: {} for p in exposed_ports}
    if labels:
        config_doc["Labels"] = dict(labels)
    config = _json({
        "architecture": _arch(), "os": "linux", "config": config_doc,
        "rootfs": {"type": "layers", "diff_ids": [digest(tar)]},
        "history": [{"created_by": "svcnet.node.oci"}],
    })
    manifest = _json({
        "schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": digest(config),
                   "size": len(config)},
        "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": digest(layer),
                    "size": len(layer)}],
    })
    return Image(manifest, config, layer,
                 {digest(b): b for b in (manifest, config, layer)})


def archive(image: Image, name: str) -> bytes:
    """The image as an OCI image-layout tar named ``name`` (for ``ctr images import``)."""
    index = _json({
        "schemaVersion": 2, "mediaType": _INDEX_MEDIA_TYPE,
        "manifests": [{"mediaType": MANIFEST_MEDIA_TYPE, "digest": image.digest,
                       "size": len(image.manifest),
                       "annotations": {"io.containerd.image.name": name,
                                       "org.opencontainers.image.ref.name":
                                       name.rpartition(":")[2]}}],
    })
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        members = {"oci-layout": _json({"imageLayoutVersion": "1.0.0"}),
                   "index.json": index}
        members.update({f"blobs/sha256/{d.removeprefix('sha256:')}": b
                        for d, b in sorted(image.blobs.items())})
        for path in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(path)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for path, data in members.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
