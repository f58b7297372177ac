"""The pure parts of the container path: containerd's configuration and registry hosts, the
OCI image writer, the pod → CRI translation, pull policies, pull secrets and CRI log files."""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from svcnet.node import crispec
from svcnet.node.containerd import (
    ContainerdPaths,
    MirrorError,
    mounts_under,
    parse_mirror,
    render_config,
    render_hosts_toml,
    sandbox_image_archive,
    write_config,
)
from svcnet.node.cri import cri_auths, decode_log, should_pull
from svcnet.node.dnsconfig import PodDNS, pod_dns
from svcnet.util.resolvconf import ResolvConf

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("SVCNET_UPDATE_GOLDEN") == "1"


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text()


# --- containerd -----------------------------------------------------------------------------


def test_config_golden_and_valid_toml() -> None:
    text = render_config(ContainerdPaths(Path("/state/nodes/node-1/containerd")))
    golden("containerd_config.toml", text)
    doc = tomllib.loads(text)
    cri = doc["plugins"]["io.containerd.grpc.v1.cri"]
    assert doc["version"] == 2
    assert cri["restrict_oom_score_adj"] is True
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["sandbox_image"] == "svcnet.local/pause:1"
    assert cri["containerd"]["runtimes"]["runc"]["options"]["Root"] == \
        "/state/nodes/node-1/containerd/runc"
    assert cri["registry"]["config_path"] == "/state/nodes/node-1/containerd/certs.d"
    # Nothing outside the node's directory but its sockets (short paths: 107 bytes at
    # most), and no TCP listeners but the stream server's.
    assert doc["grpc"]["address"].startswith("/run/svcnet/")
    assert len(doc["grpc"]["address"]) + len(".ttrpc") < 108
    assert doc["debug"]["address"] == doc["metrics"]["address"] == ""


def test_paths_escape_in_toml() -> None:
    doc = tomllib.loads(render_config(ContainerdPaths(Path('/odd "dir"/x'))))
    assert doc["root"] == '/odd "dir"/x/root'


@pytest.mark.parametrize(("text", "want"), [
    ("docker.io=http://127.0.0.1:5000", ("docker.io", "http://127.0.0.1:5000")),
    ("quay.io=https://mirror.example:8443/", ("quay.io", "https://mirror.example:8443")),
    ("127.0.0.1:5001=http://127.0.0.1:5000", ("127.0.0.1:5001", "http://127.0.0.1:5000")),
])
def test_parse_mirror(text: str, want: tuple[str, str]) -> None:
    assert parse_mirror(text) == want


@pytest.mark.parametrize("text", ["docker.io", "=http://x", "docker.io=ftp://x",
                                  "docker.io=http://x/v2", "a b=http://x", "docker.io=x:5000"])
def test_parse_mirror_refuses(text: str) -> None:
    with pytest.raises(MirrorError):
        parse_mirror(text)


def test_hosts_toml_mirror_is_also_the_server() -> None:
    doc = tomllib.loads(render_hosts_toml("docker.io", "http://127.0.0.1:5000"))
    # The mirror is the fall-back too: a pull the mirror cannot serve fails.
    assert doc["server"] == "http://127.0.0.1:5000"
    assert doc["host"]["http://127.0.0.1:5000"]["capabilities"] == ["pull", "resolve"]


def test_hosts_toml_plain_http_only_for_loopback() -> None:
    assert tomllib.loads(render_hosts_toml("127.0.0.1:5000"))["server"] == \
        "http://127.0.0.1:5000"
    assert tomllib.loads(render_hosts_toml("registry.example"))["server"] == \
        "https://registry.example"


def test_write_config_tree(tmp_path: Path) -> None:
    paths = ContainerdPaths(tmp_path / "c")
    plugin = tmp_path / "plugin"
    plugin.write_text("#!/bin/sh\n")
    write_config(paths, mirrors={"index.docker.io": "http://127.0.0.1:5000"},
                 insecure=["127.0.0.1:5001"], cni_plugin=str(plugin))
    assert (paths.certs_d / "docker.io" / "hosts.toml").is_file()
    assert (paths.certs_d / "127.0.0.1:5001" / "hosts.toml").is_file()
    for name in ("svcnet-cni", "loopback"):
        assert (paths.cni_bin / name).resolve() == plugin
    assert paths.config.read_text() == render_config(paths)
    assert paths.endpoint == f"unix://{paths.socket}"
    assert paths.socket.parent.is_dir() and paths.socket.parent.stat().st_mode & 0o777 == 0o700
    paths.socket.parent.rmdir()


def test_mounts_under_deepest_first() -> None:
    info = "\n".join([
        "22 1 0:21 / /proc rw - proc proc rw",
        "90 1 0:50 / /s/c/state/x rw - tmpfs shm rw",
        "91 90 0:51 / /s/c/state/x/rootfs rw - overlay overlay rw",
        "92 1 0:52 / /s/c2 rw - tmpfs t rw",
        "93 1 0:53 / /s/c/with\\040space rw - tmpfs t rw",
    ])
    assert mounts_under(Path("/s/c"), info) == [
        Path("/s/c/state/x/rootfs"), Path("/s/c/state/x"), Path("/s/c/with space")]


# --- the sandbox image -----------------------------------------------------------------------


def test_sandbox_image_archive_is_importable_layout() -> None:
    busybox = Path("/bin/busybox")
    if not busybox.is_file():
        pytest.skip("no static busybox (Debian: busybox-static)")
    data = sandbox_image_archive(busybox)
    assert data == sandbox_image_archive(busybox)  # reproducible
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        manifest_name = "blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]
        manifest = json.loads(tar.extractfile(manifest_name).read())  # type: ignore[union-attr]
        config_name = "blobs/sha256/" + manifest["config"]["digest"].split(":")[1]
        config = json.loads(tar.extractfile(config_name).read())  # type: ignore[union-attr]
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == \
        "svcnet.local/pause:1"
    assert config["config"]["Entrypoint"] == ["/bin/sleep", "2147483647"]


# --- pod → CRI ------------------------------------------------------------------------------


NO_DNS = PodDNS((), (), ())
POD: dict[str, Any] = {"metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1",
                    "labels": {"app": "web"}},
       "spec": {"securityContext": {"runAsUser": 1000, "runAsGroup": 3000},
                "containers": [{"name": "c", "image": "reg.local/web:1"}]}}


def test_sandbox_spec() -> None:
    spec = crispec.sandbox_spec(POD, log_directory="/s/pods/u-1", cgroup_root="/svcnet-t4-n1",
                                dns=pod_dns(POD, host=None, cluster_dns=["10.96.0.10"]))
    assert (spec.name, spec.namespace, spec.uid, spec.hostname) == ("web-1", "shop", "u-1",
                                                                    "web-1")
    assert spec.dns_servers == ["10.96.0.10"]
    assert spec.dns_searches == ["shop.svc.cluster.local", "svc.cluster.local",
                                 "cluster.local"]
    assert spec.dns_options == ["ndots:5"]
    assert spec.cgroup_parent == "/svcnet-t4-n1/podu-1"
    config = spec.config()
    assert config.labels["io.kubernetes.pod.uid"] == "u-1"
    assert config.labels["app"] == "web"
    assert config.log_directory == "/s/pods/u-1"


def test_sandbox_spec_dns_default_and_host_network() -> None:
    pod = {**POD, "spec": {**POD["spec"], "hostNetwork": True}}
    host = ResolvConf(("192.0.2.53",), ("corp.example",), ("edns0",))
    spec = crispec.sandbox_spec(pod, log_directory="/x", cgroup_root="/r",
                                dns=pod_dns(pod, host=host, cluster_dns=["10.96.0.10"]))
    # ClusterFirst on the host network falls back to Default: the node's settings.
    assert spec.host_network and spec.dns_servers == ["192.0.2.53"]
    assert (spec.dns_searches, spec.dns_options) == (["corp.example"], ["edns0"])
    assert spec.config().hostname == ""


@pytest.mark.parametrize(("container", "want"), [
    ({"image": "web"}, "Always"),
    ({"image": "web:latest"}, "Always"),
    ({"image": "reg.local:5000/web"}, "Always"),
    ({"image": "reg.local:5000/web:1"}, "IfNotPresent"),
    ({"image": "web@sha256:" + "a" * 64}, "IfNotPresent"),
    ({"image": "web", "imagePullPolicy": "Never"}, "Never"),
])
def test_image_pull_policy_defaults(container: dict[str, str], want: str) -> None:
    assert crispec.image_pull_policy(container) == want


@pytest.mark.parametrize("image", [
    "web", "web:1", "library/web:latest", "127.0.0.1:5000/a/b:v1.2", "reg.local/web-app_x:1",
    "web@sha256:" + "a" * 64, "localhost/w:1@sha256:" + "0" * 64, "[::1]:5000/web:1"])
def test_valid_image_references(image: str) -> None:
    assert crispec.image_reference_problem(image) is None


@pytest.mark.parametrize(("image", "why"), [
    ("Web:1", "repository name must be lowercase"),
    ("reg.local/App", "repository name must be lowercase"),
    ("web:", "invalid reference format"),
    ("web::1", "invalid reference format"),
    ("-web", "invalid reference format"),
    ("web@sha256:abc", "invalid reference format"),
    ("a/" * 130 + "b", "must not be more than 255 characters"),
])
def test_invalid_image_references(image: str, why: str) -> None:
    problem = crispec.image_reference_problem(image)
    assert problem is not None and problem.endswith(why)
    assert problem.startswith(f'Failed to apply default image tag "{image}": couldn')


@pytest.mark.parametrize(("policy", "present", "pull"), [
    ("Always", True, True), ("IfNotPresent", True, False), ("IfNotPresent", False, True),
    ("Never", False, False), ("Never", True, False)])
def test_should_pull(policy: str, present: bool, pull: bool) -> None:
    assert should_pull(policy, present) is pull


@pytest.mark.parametrize(("resources", "want"), [
    ({}, (0, 0, 0)),
    ({"limits": {"cpu": "500m"}}, (50_000, 100_000, 512)),
    ({"limits": {"cpu": "2"}, "requests": {"cpu": "100m"}}, (200_000, 100_000, 102)),
    ({"limits": {"cpu": "1m"}}, (1_000, 100_000, 2)),
    ({"requests": {"cpu": "250m"}}, (0, 0, 256)),
])
def test_cpu_limits(resources: dict[str, dict[str, str]], want: tuple[int, int, int]) -> None:
    assert crispec.cpu_limits({"resources": resources}) == want


def test_container_spec() -> None:
    sandbox = crispec.sandbox_spec(POD, log_directory="/x", cgroup_root="/r", dns=NO_DNS)
    container = {"name": "c", "image": "reg.local/web:1", "command": ["/bin/sh", "-c"],
                 "args": ["echo $(GREETING) $(MISSING)"],
                 "securityContext": {"runAsUser": 0},
                 "resources": {"limits": {"memory": "64Mi"}}}
    spec = crispec.container_spec(POD, container, {"GREETING": "hi"}, sandbox_id="s1",
                                  sandbox=sandbox)
    assert spec.command == ["/bin/sh", "-c"] and spec.args == ["echo hi $(MISSING)"]
    # The container's securityContext wins over the pod's, field by field.
    assert (spec.run_as_user, spec.run_as_group) == (0, 3000)
    assert spec.memory_limit == 64 << 20
    assert spec.image == "reg.local/web:1" and spec.sandbox_id == "s1"


def test_security_settings_as_the_kubelet_passes_them() -> None:
    pod = {**POD, "spec": {"securityContext": {"fsGroup": 5, "supplementalGroups": [7, 8]},
                           "initContainers": [{"name": "i", "image": "x",
                                               "securityContext": {"privileged": True}}],
                           "containers": [{"name": "c", "image": "x"}]}}
    sandbox = crispec.sandbox_spec(pod, log_directory="/x", cgroup_root="/r", dns=NO_DNS)
    assert sandbox.privileged  # one privileged container makes the sandbox privileged
    assert sandbox.config().linux.security_context.privileged
    locked = {"name": "c", "image": "x", "securityContext": {
        "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
        "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}}}
    spec = crispec.container_spec(pod, locked, {}, sandbox_id="s", sandbox=sandbox)
    assert (spec.readonly_rootfs, spec.no_new_privs, spec.privileged) == (True, True, False)
    assert (spec.add_capabilities, spec.drop_capabilities) == (["NET_BIND_SERVICE"], ["ALL"])
    assert spec.supplemental_groups == [5, 7, 8]  # fsGroup first, as the kubelet orders them
    plain = crispec.container_spec(POD, {"name": "c", "image": "x",
                                         "securityContext": {"allowPrivilegeEscalation": True}},
                                   {}, sandbox_id="s", sandbox=sandbox)
    assert (plain.no_new_privs, plain.readonly_rootfs, plain.supplemental_groups) == (
        False, False, [])
    assert not crispec.sandbox_spec(POD, log_directory="/x", cgroup_root="/r",
                                    dns=NO_DNS).privileged


@pytest.mark.parametrize(("pod_ctx", "own", "image_user", "want"), [
    ({}, {}, (0, ""), None),
    ({"runAsNonRoot": True}, {}, (1000, ""), None),
    ({"runAsNonRoot": True}, {}, (0, ""), "container has runAsNonRoot and image will run as "
                                          'root (pod: "web-1_shop(u-1)", container: c)'),
    ({"runAsNonRoot": True}, {"runAsNonRoot": False}, (0, ""), None),
    ({}, {"runAsNonRoot": True, "runAsUser": 0}, (1000, ""),
     'container\'s runAsUser breaks non-root policy (pod: "web-1_shop(u-1)", container: c)'),
    ({"runAsNonRoot": True, "runAsUser": 1000}, {}, (0, ""), None),
    ({"runAsNonRoot": True}, {}, (None, "nobody"),
     "container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user "
     'is non-root (pod: "web-1_shop(u-1)", container: c)'),
])
def test_run_as_non_root(pod_ctx: dict[str, Any], own: dict[str, Any],
                         image_user: tuple[int | None, str], want: str | None) -> None:
    pod = {**POD, "spec": {"securityContext": pod_ctx}}
    container = {"name": "c", "image": "x", "securityContext": own}
    assert crispec.run_as_non_root_problem(pod, container, image_user) == want


# --- pull secrets and logs ------------------------------------------------------------------


def test_cri_auths_match_the_registry() -> None:
    docs = [{"auths": {"reg.local:5000": {"username": "u", "password": "p"},
                       "https://index.docker.io/v1/": {
                           "auth": base64.b64encode(b"d:h").decode()}}}]
    assert cri_auths(docs, "reg.local:5000/app:1") == [{"username": "u", "password": "p"}]
    assert cri_auths(docs, "nginx") == [{"auth": base64.b64encode(b"d:h").decode()}]
    assert cri_auths(docs, "other.example/app") == []


def test_decode_log_joins_partials_and_keeps_streams_in_order() -> None:
    raw = (b"2026-12-06T20:58:39.1Z stdout P hel\n"
           b"2026-12-06T20:58:39.2Z stdout F lo\n"
           b"2026-12-06T20:58:39.3Z stderr F err\n"
           b"2026-12-06T20:58:39.4Z stdout F \n")
    assert decode_log(raw) == b"hello\nerr\n\n"
    assert decode_log(raw, timestamps=True) == (
        b"2026-12-06T20:58:39.1Z hello\n2026-12-06T20:58:39.3Z err\n"
        b"2026-12-06T20:58:39.4Z \n")


def test_decode_log_leaves_out_lines_written_before_since() -> None:
    raw = (b"2026-12-06T20:58:39.1Z stdout P old-\n"
           b"2026-12-06T20:58:40.2Z stdout F line\n"  # the rest of a line begun before
           b"2026-12-06T20:58:40.3Z stderr F new\n"
           b"2026-12-06T20:58:41.123456789Z stdout F newer\n")
    since = datetime(2026, 12, 6, 20, 58, 40, tzinfo=UTC)
    assert decode_log(raw, since=since) == b"new\nnewer\n"
    assert decode_log(raw, since=since, timestamps=True) == (
        b"2026-12-06T20:58:40.3Z new\n2026-12-06T20:58:41.123456789Z newer\n")
    assert decode_log(raw, since=since + timedelta(seconds=5)) == b""


def test_decode_log_passes_malformed_lines_through() -> None:
    assert decode_log(b"not a cri line\n") == b"not a cri line\n"
