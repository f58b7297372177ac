"""Container images from files, reproducibly: the sandbox image, and the tests' images.

Theory of operation
-------------------
An image is what a registry stores and containerd pulls: a *manifest* (JSON) naming a *config*
blob (JSON: architecture, os, the process to run, ``rootfs.diff_ids``) and *layer* blobs
(gzip-compressed tar files of the root file system), each named by the sha256 digest of its
bytes. This module builds those bytes with the standard library only, following the OCI image
spec (image-spec's manifest.md, config.md, layer.md; Docker's "Image Manifest Version 2,
Schema 2" is the same structure with other media types):

- a layer is a tar of the files, entries sorted (parents first), every parent directory
  present, fixed mtimes (0), owners and no user/group names, then gzip with mtime 0 and no
  file name; its *diff_id* is the sha256 of the uncompressed tar, its digest that of the gzip;
- the config and manifest are JSON with sorted keys and no whitespace.

So the same inputs give the same bytes and digests; the gzip bytes depend on the zlib build,
the diff_ids do not. An *image layout* (image-layout.md) as one tar is what ``ctr images
import`` reads (:func:`oci_archive`), naming the image from the ``io.containerd.image.name``
annotation: how a node's containerd gets the sandbox image without any registry.

:func:`busybox_layer` is the base of the sandbox image and of the tests' images: Debian's
statically linked ``busybox`` with a symlink for every applet (``busybox --list-full``), a
root-only ``/etc/passwd`` and ``/etc/group``, and ``/tmp``; about 1 MB.

Media types: Docker schema 2 by default (:data:`DOCKER`). The CNCF registry (distribution 2.8)
serves a Docker schema 2 manifest to any client, but an OCI one only to clients whose Accept
header names the OCI manifest type; containerd 1.6 asks for both and unpacks both the same way.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import platform
import shutil
import struct
import subprocess
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

__all__ = [
    "DOCKER",
    "OCI",
    "Dir",
    "Entry",
    "File",
    "Image",
    "Layer",
    "MediaTypes",
    "Symlink",
    "build_image",
    "build_layer",
    "build_tar",
    "busybox_layer",
    "digest_of",
    "machine_architecture",
    "oci_archive",
    "write_oci_layout",
]

EPOCH = "1970-01-01T00:00:00Z"  # "created" of every config and history entry (reproducible)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class MediaTypes:
    manifest: str
    config: str
    layer: str


DOCKER = MediaTypes(
    manifest="application/vnd.docker.distribution.manifest.v2+json",
    config="application/vnd.docker.container.image.v1+json",
    layer="application/vnd.docker.image.rootfs.diff.tar.gzip",
)
OCI = MediaTypes(
    manifest="application/vnd.oci.image.manifest.v1+json",
    config="application/vnd.oci.image.config.v1+json",
    layer="application/vnd.oci.image.layer.v1.tar+gzip",
)


@dataclass(frozen=True)
class File:
    """A regular file; plain ``bytes`` in a file mapping mean ``File(data)`` (0644, root)."""

    data: bytes
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Symlink:
    target: str


@dataclass(frozen=True)
class Dir:
    """A directory with other than the default mode 0755, or an empty one."""

    mode: int = 0o755
    uid: int = 0
    gid: int = 0


Entry = bytes | File | Symlink | Dir


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Layer:
    """A layer blob (tar.gz) with its diff_id (sha256 of the tar) and history line."""

    data: bytes
    diff_id: str
    created_by: str

    @functools.cached_property
    def digest(self) -> str:
        return digest_of(self.data)


@dataclass(frozen=True)
class Image:
    """The blobs of one image. ``manifest`` is pushed with Content-Type ``media_types.manifest``."""

    manifest: bytes
    config: bytes
    layers: tuple[Layer, ...]
    media_types: MediaTypes = field(default=DOCKER)

    @functools.cached_property
    def digest(self) -> str:
        """The manifest digest: what a registry reports as Docker-Content-Digest."""
        return digest_of(self.manifest)

    @functools.cached_property
    def config_digest(self) -> str:
        """The image ID as containerd and the CRI report it."""
        return digest_of(self.config)

    def blobs(self) -> dict[str, bytes]:
        """Every blob the manifest refers to, by digest (config first)."""
        blobs = {self.config_digest: self.config}
        blobs.update((layer.digest, layer.data) for layer in self.layers)
        return blobs

    @property
    def size(self) -> int:
        """Bytes of manifest, config and (compressed) layers: the CRI's image size."""
        return len(self.manifest) + len(self.config) + sum(len(x.data) for x in self.layers)


def _normalize(path: str) -> PurePosixPath:
    pure = PurePosixPath("/", path).relative_to("/")
    if not pure.parts or ".." in pure.parts:
        raise ValueError(f"bad path in an image: {path!r}")
    return pure


def _tarinfo(name: str, entry: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uname = info.gname = ""
    if isinstance(entry, Symlink):
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.target, 0o777
    elif isinstance(entry, Dir):
        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, entry.mode, entry.uid, entry.gid
    else:
        file = entry if isinstance(entry, File) else File(entry)
        info.size, info.mode, info.uid, info.gid = len(file.data), file.mode, file.uid, file.gid
    return info


def build_tar(files: Mapping[str, Entry]) -> bytes:
    """A reproducible tar of ``files`` (absolute or relative paths), parent directories added."""
    entries: dict[PurePosixPath, Entry] = {}
    for path, entry in files.items():
        pure = _normalize(path)
        if pure in entries:
            raise ValueError(f"{path!r} is in the layer twice")
        entries[pure] = entry
    for pure in list(entries):
        for parent in pure.parents[:-1]:  # without "."
            entries.setdefault(parent, Dir())
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for pure in sorted(entries, key=lambda p: p.parts):
            entry = entries[pure]
            data = entry if isinstance(entry, bytes) else getattr(entry, "data", None)
            tar.addfile(_tarinfo(str(pure), entry), io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


def build_layer(files: Mapping[str, Entry], *, created_by: str = "svcnet") -> Layer:
    """One reproducible tar.gz layer of ``files`` (absolute or relative paths in the image)."""
    tar_bytes = build_tar(files)
    return Layer(data=gzip.compress(tar_bytes, compresslevel=9, mtime=0),
                 diff_id=digest_of(tar_bytes), created_by=created_by)


def machine_architecture() -> str:
    """The OCI/GOARCH name of this machine's architecture (what containerd pulls for)."""
    machine = platform.machine().lower()
    names = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
    if machine not in names:
        raise RuntimeError(f"no test images for machine {machine!r}")
    return names[machine]


def build_image(
    files: Mapping[str, Entry],
    *,
    base: Sequence[Layer] = (),
    entrypoint: Sequence[str] = (),
    cmd: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    workdir: str = "",
    user: str = "",
    exposed_ports: Iterable[int | str] = (),
    labels: Mapping[str, str] | None = None,
    media_types: MediaTypes = DOCKER,
    architecture: str | None = None,
    created_by: str = "svcnet",
) -> Image:
    """An image of the ``base`` layers and one layer of ``files`` (none when ``files`` is
    empty), running ``entrypoint`` + ``cmd``. ``env`` is added to PATH (which it may override);
    ports are ``8080`` (tcp) or ``"53/udp"``. Pure: same arguments, same digests."""
    layers = (*base, build_layer(files, created_by=created_by)) if files else tuple(base)
    process: dict[str, object] = {
        "Env": [f"{k}={v}" for k, v in {"PATH": DEFAULT_PATH, **(env or {})}.items()]}
    if entrypoint:
        process["Entrypoint"] = list(entrypoint)
    if cmd:
        process["Cmd"] = list(cmd)
    if workdir:
        process["WorkingDir"] = workdir
    if user:
        process["User"] = user
    ports: dict[str, object] = {p if isinstance(p, str) else f"{p}/tcp": {} for p in exposed_ports}
    if ports:
        process["ExposedPorts"] = ports
    if labels:
        process["Labels"] = dict(labels)
    config = _json({
        "architecture": architecture or machine_architecture(),
        "os": "linux",
        "created": EPOCH,
        "config": process,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": EPOCH, "created_by": layer.created_by} for layer in layers],
    })
    manifest = _json({
        "schemaVersion": 2,
        "mediaType": media_types.manifest,
        "config": {"mediaType": media_types.config, "size": len(config),
                   "digest": digest_of(config)},
        "layers": [{"mediaType": media_types.layer, "size": len(layer.data),
                    "digest": layer.digest} for layer in layers],
    })
    return Image(manifest=manifest, config=config, layers=layers, media_types=media_types)


# -- OCI image layout (for `ctr images import`, no registry) -----------------------------------


def _layout_files(image: Image, name: str) -> dict[str, bytes]:
    annotations = {"org.opencontainers.image.ref.name": name.rpartition(":")[2],
                   "io.containerd.image.name": name} if name else {}
    descriptor: dict[str, object] = {"mediaType": image.media_types.manifest,
                                     "digest": image.digest, "size": len(image.manifest)}
    if annotations:
        descriptor["annotations"] = annotations
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [descriptor]}
    files = {"oci-layout": _json({"imageLayoutVersion": "1.0.0"}), "index.json": _json(index)}
    for digest, data in {image.digest: image.manifest, **image.blobs()}.items():
        files["blobs/sha256/" + digest.removeprefix("sha256:")] = data
    return files


def write_oci_layout(image: Image, directory: Path, name: str = "") -> None:
    """Write ``image`` as an OCI image layout (image-spec's image-layout.md) in ``directory``;
    ``name`` (``host/repo:tag``) goes into index.json's annotations."""
    for rel, data in _layout_files(image, name).items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def oci_archive(image: Image, name: str) -> bytes:
    """The OCI layout of ``image`` as one tar, as ``ctr images import`` takes it; the image is
    then named ``name`` (from the io.containerd.image.name annotation)."""
    return build_tar(_layout_files(image, name))


def _is_static_elf(data: bytes) -> bool:
    """True for a 64-bit little-endian ELF without a PT_INTERP program header (no loader)."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return False
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != 3  # PT_INTERP
               for i in range(phnum))


@functools.cache
def busybox_layer(path: str | None = None) -> Layer:
    """The shared base layer: static busybox, its applet symlinks, /etc/passwd, /tmp. Raises
    FileNotFoundError without busybox, RuntimeError if it is not statically linked."""
    found = path or shutil.which("busybox")
    if found is None:
        raise FileNotFoundError("busybox is not installed (Debian: busybox-static)")
    binary = Path(found).resolve()
    data = binary.read_bytes()
    if not _is_static_elf(data):
        raise RuntimeError(f"{binary} is not statically linked; install busybox-static")
    listing = subprocess.run([binary, "--list-full"], check=True, capture_output=True,
                             text=True).stdout.split()
    files: dict[str, Entry] = {"bin/busybox": File(data, mode=0o755)}
    files.update((path, Symlink("/bin/busybox")) for path in listing
                 if "/" in path and path != "bin/busybox")
    files.update({
        "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n"
                      b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        "etc/group": b"root:x:0:\nnogroup:x:65534:\n",
        "root": Dir(0o700),
        "tmp": Dir(0o1777),
    })
    return build_layer(files, created_by="busybox (static) with its applets")
