"""One containerd per node: its configuration, registry hosts, and the sandbox image.

Theory of operation
-------------------
A Kubernetes node runs a container runtime beside the kubelet; on a kind or k3s node that is
containerd, configured by a ``config.toml`` (version 2) and reached over its CRI socket. A
local svcnet cluster runs one containerd per node, inside the node's network namespace (so
the CNI plugin it calls finds the node's pod bridge, and its streaming server listens on the
node's loopback), with *everything* it owns under the node's state directory::

    STATE/containerd/
      config.toml            rendered by :func:`render_config` (pure, golden-tested)
      root/  state/          containerd's persistent and runtime state (images, snapshots)
      runc/                  runc's state (not ``/run/containerd/runc``, shared by the host)
      certs.d/<host>/hosts.toml   registry hosts and mirrors (:func:`render_hosts_toml`)
      cni/bin/  cni/net.d/   the CNI plugin links and the conflist the agent writes

and its sockets (the CRI endpoint ``containerd.sock``, ``.ttrpc`` beside it) in
``/run/svcnet/<hash of that directory>/`` (a socket's path is limited to 107 bytes), so two
clusters, a system containerd and the tests never share a file, and ``svcnet down`` removes it
all (after unmounting what containerd mounted under it:
:func:`mounts_under`).

Settings that are not containerd's defaults, and why:

* ``restrict_oom_score_adj``: root on these machines lacks CAP_SYS_RESOURCE, and runc fails
  to lower a container's ``oom_score_adj`` below its parent's without it.
* ``disable_hugetlb_controller`` / ``tolerate_missing_hugetlb_controller``: hybrid cgroups.
* ``netns_mounts_under_state_dir``: the pod network namespaces containerd creates are
  mounted under its state directory rather than in the host's ``/run/netns``; the CNI plugin
  gives each the contract name ``svcnet-<tag>-p<id>`` (an alias) for the tools.
* ``sandbox_image``: the "pause" image every pod sandbox runs. The default lives on a public
  registry, which a cluster with no way out can never reach; :func:`sandbox_image_archive`
  builds one locally from the host's static busybox, and ``svcnet up`` imports it.
* ``registry.config_path``: the ``certs.d`` layout (``hosts.toml`` per registry), which is
  how containerd 1.6 takes mirrors, plain-HTTP registries and "no fall-back" rules.
* The ``opt`` plugin (``/opt/containerd``) and the TCP/debug/metrics listeners are off.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from svcnet.node import oci
from svcnet.node.names import short_hash

__all__ = [
    "SANDBOX_IMAGE",
    "ContainerdPaths",
    "MirrorError",
    "mounts_under",
    "parse_mirror",
    "render_config",
    "render_hosts_toml",
    "sandbox_image_archive",
    "write_config",
]

SOCKET_ROOT: Final = Path("/run/svcnet")
"""Where the nodes' containerd sockets live (see :attr:`ContainerdPaths.socket`)."""
SANDBOX_IMAGE: Final = "svcnet.local/pause:1"
"""The pod sandbox ("pause") image: built locally, never pulled."""

_DISABLED_PLUGINS: Final = (
    "io.containerd.internal.v1.opt",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp",
)


@dataclass(frozen=True, slots=True)
class ContainerdPaths:
    """Where one node's containerd keeps everything (see the module docstring)."""

    base: Path

    @property
    def config(self) -> Path:
        return self.base / "config.toml"

    @property
    def socket(self) -> Path:
        """In ``/run/svcnet/<hash of base>/``: a Unix socket's path has at most 107 bytes,
        which a state directory deep in a temporary directory can exceed by itself."""
        return SOCKET_ROOT / short_hash(str(self.base.resolve()), 12) / "containerd.sock"

    @property
    def endpoint(self) -> str:
        """The CRI endpoint, as the kubelet's ``--container-runtime-endpoint`` takes it."""
        return f"unix://{self.socket}"

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def state(self) -> Path:
        return self.base / "state"

    @property
    def runc_root(self) -> Path:
        return self.base / "runc"

    @property
    def certs_d(self) -> Path:
        return self.base / "certs.d"

    @property
    def cni_bin(self) -> Path:
        return self.base / "cni" / "bin"

    @property
    def cni_conf(self) -> Path:
        return self.base / "cni" / "net.d"


def _toml_str(value: str) -> str:
    """A TOML basic string (JSON's escaping is a subset TOML accepts)."""
    return json.dumps(value)


def render_config(paths: ContainerdPaths, *, sandbox_image: str = SANDBOX_IMAGE) -> str:
    """containerd's ``config.toml`` (version 2) for one node."""
    disabled = ", ".join(_toml_str(p) for p in _DISABLED_PLUGINS)
    cri = '[plugins."io.containerd.grpc.v1.cri"]'
    runc = '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]'
    return "\n".join([
        "# Written by svcnet: one containerd per node, everything under this directory.",
        "version = 2",
        f"root = {_toml_str(str(paths.root))}",
        f"state = {_toml_str(str(paths.state))}",
        'plugin_dir = ""',
        f"disabled_plugins = [{disabled}]",
        "",
        "[grpc]",
        f"  address = {_toml_str(str(paths.socket))}",
        "[ttrpc]",
        '  address = ""',
        "[debug]",
        '  address = ""',
        "[metrics]",
        '  address = ""',
        "",
        cri,
        f"  sandbox_image = {_toml_str(sandbox_image)}",
        "  restrict_oom_score_adj = true",
        "  disable_hugetlb_controller = true",
        "  tolerate_missing_hugetlb_controller = true",
        "  netns_mounts_under_state_dir = true",
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        "  disable_apparmor = true",
        "  enable_selinux = false",
        f"{cri[:-1]}.cni]",
        f"  bin_dir = {_toml_str(str(paths.cni_bin))}",
        f"  conf_dir = {_toml_str(str(paths.cni_conf))}",
        "  max_conf_num = 1",
        f"{cri[:-1]}.containerd]",
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        runc,
        '  runtime_type = "io.containerd.runc.v2"',
        f"{runc[:-1]}.options]",
        f"  Root = {_toml_str(str(paths.runc_root))}",
        "  SystemdCgroup = false",
        f"{cri[:-1]}.registry]",
        f"  config_path = {_toml_str(str(paths.certs_d))}",
        "",
    ])


class MirrorError(ValueError):
    """A ``--registry-mirror`` that is not ``REGISTRY=URL``."""


_HOST_RE: Final = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def parse_mirror(text: str) -> tuple[str, str]:
    """``docker.io=http://127.0.0.1:5000`` → (registry host, mirror URL)."""
    registry, sep, url = text.partition("=")
    registry = registry.strip()
    url = url.strip().rstrip("/")
    if not sep or not _HOST_RE.fullmatch(registry):
        raise MirrorError(f"registry mirror {text!r}: want REGISTRY=URL, e.g. "
                          "docker.io=http://127.0.0.1:5000")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise MirrorError(f"registry mirror {text!r}: the URL must be http(s)://HOST[:PORT]")
    return registry, url


def render_hosts_toml(registry: str, mirror: str | None = None) -> str:
    """``certs.d/<registry>/hosts.toml``.

    Without a mirror: the registry itself, over plain HTTP when it is on a loopback address
    (a local test registry) and HTTPS otherwise. With one, the mirror is also the
    ``server``, so a pull it cannot serve fails instead of falling back to the registry
    itself (containerd falls back to ``server`` after trying every ``[host]``).
    """
    if mirror is None:
        local = registry.startswith(("127.", "localhost")) or registry.startswith("[::1]")
        mirror = f"{'http' if local else 'https'}://{registry}"
    lines = [f"server = {_toml_str(mirror)}", "",
             f"[host.{_toml_str(mirror)}]",
             '  capabilities = ["pull", "resolve"]']
    if mirror.startswith("http://"):
        lines.append("  skip_verify = true")
    return "\n".join(lines) + "\n"


def _docker_hub_dir(registry: str) -> str:
    # containerd looks hosts up under the registry's host name; Docker Hub's is docker.io.
    return "docker.io" if registry in ("index.docker.io", "registry-1.docker.io") else registry


def write_config(paths: ContainerdPaths, *, mirrors: Mapping[str, str] = {},
                 insecure: Sequence[str] = (), cni_plugin: str | None = None) -> None:
    """Create the directory tree, ``config.toml``, the ``hosts.toml`` files and the CNI
    plugin links (``svcnet-cni`` and ``loopback``, both the one plugin executable)."""
    for d in (paths.base, paths.root, paths.state, paths.runc_root, paths.certs_d,
              paths.cni_bin, paths.cni_conf, paths.socket.parent):
        d.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.base, 0o700)
    os.chmod(paths.socket.parent, 0o700)
    paths.config.write_text(render_config(paths))
    for registry, url in mirrors.items():
        d = paths.certs_d / _docker_hub_dir(registry)
        d.mkdir(exist_ok=True)
        (d / "hosts.toml").write_text(render_hosts_toml(registry, url))
    for registry in insecure:
        d = paths.certs_d / registry
        d.mkdir(exist_ok=True)
        (d / "hosts.toml").write_text(render_hosts_toml(registry))
    plugin = cni_plugin or _plugin_executable()
    if plugin:
        for name in ("svcnet-cni", "loopback"):
            link = paths.cni_bin / name
            link.unlink(missing_ok=True)
            link.symlink_to(plugin)


def _plugin_executable() -> str | None:
    """``svcnet-cni`` beside this Python (the virtualenv's bin, which need not be on PATH),
    else on PATH."""
    beside = Path(sys.executable).parent / "svcnet-cni"
    return str(beside) if beside.is_file() else shutil.which("svcnet-cni")


def sandbox_image_archive(busybox: Path = Path("/bin/busybox")) -> bytes:
    """The sandbox image as an OCI archive for ``ctr images import``: the static busybox
    sleeping forever as PID 1 (it only holds the pod's namespaces, as ``pause`` does).
    Raises FileNotFoundError without a static busybox (Debian: busybox-static)."""
    if not busybox.is_file():
        raise FileNotFoundError(f"{busybox}: no static busybox (Debian: busybox-static)")
    image = oci.build_image({}, base=(oci.busybox_layer(str(busybox)),),
                            entrypoint=("/bin/sleep", "2147483647"),
                            labels={"io.kubernetes.pod.sandbox": "svcnet"})
    return oci.oci_archive(image, SANDBOX_IMAGE)


def mounts_under(base: Path, mountinfo: str | None = None) -> list[Path]:
    """Mount points at or below ``base``, deepest first: what to unmount before removing a
    containerd's directories (overlay root filesystems, ``/dev/shm`` of sandboxes, netns
    bind mounts)."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    prefix = str(base).rstrip("/") + "/"
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = fields[4].encode().decode("unicode_escape")  # \040 for spaces
        if point == str(base) or point.startswith(prefix):
            found.append(Path(point))
    return sorted(set(found), key=lambda p: (-len(p.parts), str(p)))
