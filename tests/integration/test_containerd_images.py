"""The test images on a throwaway containerd (tests/containerd_server.py), pulled from the
throwaway registry over plain HTTP (certs.d hosts.toml): ``ctr`` pulls Docker schema 2 and OCI
images and runs them with runc, each behaving as tests/images.py says (web answers with its
hostname and version, crash exits 3, hog is OOM-killed at its memory limit, user runs as 1000);
an image missing from the registry fails to pull until pushed; the CRI image service pulls
through ``registry.config_path``, with pull-secret credentials for a registry with basic auth;
an OCI archive imports without a registry."""

from __future__ import annotations

import itertools
import subprocess
import time
from collections.abc import Iterator

import grpc
import pytest
from cri_api.v1 import api_pb2, api_pb2_grpc

from tests import images
from tests.containerd_server import ContainerdServer
from tests.registry_server import RegistryServer

pytestmark = pytest.mark.root

_ids = itertools.count()


def container_id(name: str) -> str:
    return f"svcnet-test-{name}-{next(_ids)}-{time.monotonic_ns() % 10**6}"


@pytest.fixture(scope="module")
def ctd(containerd: ContainerdServer, registry: RegistryServer) -> ContainerdServer:
    containerd.trust(registry.host)
    return containerd


def exec_in(ctd: ContainerdServer, cid: str, *argv: str) -> subprocess.CompletedProcess[str]:
    assert ctd.dir is not None
    return ctd.ctr("tasks", "exec", "--exec-id", f"probe-{next(_ids)}",
                   "--fifo-dir", str(ctd.dir / "fifo"), cid, *argv, check=False)


@pytest.mark.parametrize("media_types", [images.DOCKER, images.OCI], ids=["docker", "oci"])
def test_web_serves_its_hostname_and_version(ctd: ContainerdServer, registry: RegistryServer,
                                             media_types: images.MediaTypes) -> None:
    repo = registry.new_repo("web")
    image = images.web_image("v7", media_types=media_types)
    registry.push(image, repo, "1")
    ctd.pull(registry.ref(repo, "1"))
    listed = ctd.ctr("images", "ls").stdout
    assert f"{registry.ref(repo, '1')} {media_types.manifest} {image.digest}" in " ".join(
        listed.split())
    cid = container_id("web")
    assert ctd.dir is not None
    ctd.ctr("run", "-d", "--runc-root", str(ctd.dir / "runc"), "--fifo-dir",
            str(ctd.dir / "fifo"), registry.ref(repo, "1"), cid)
    try:
        def get(path: str) -> str:
            done = exec_in(ctd, cid, "wget", "-qO-", f"http://127.0.0.1:8080{path}")
            return done.stdout if done.returncode == 0 else ""

        deadline = time.monotonic() + 10
        while not (page := get("/")) and time.monotonic() < deadline:
            time.sleep(0.05)
        hostname = exec_in(ctd, cid, "hostname").stdout.strip()
        assert hostname and page == f"{hostname} v7\n"
        assert get("/healthz") == "ok\n"
        assert exec_in(ctd, cid, "id", "-u").stdout == "0\n"
    finally:
        ctd.ctr("tasks", "rm", "-f", cid, check=False)
        ctd.ctr("containers", "rm", cid, check=False)


def pulled(ctd: ContainerdServer, registry: RegistryServer, image: images.Image,
           name: str) -> str:
    repo = registry.new_repo(name)
    registry.push(image, repo, "1")
    ref = registry.ref(repo, "1")
    ctd.pull(ref)
    return ref


def test_crash_prints_and_exits_3(ctd: ContainerdServer, registry: RegistryServer) -> None:
    ref = pulled(ctd, registry, images.crash_image(), "crash")
    started = time.monotonic()
    done = ctd.run(ref, container_id("crash"))
    assert (done.returncode, done.stdout) == (3, "crashing\n")
    assert time.monotonic() - started >= 0.5


def test_user_runs_as_its_configured_user(ctd: ContainerdServer,
                                          registry: RegistryServer) -> None:
    ref = pulled(ctd, registry, images.user_image(), "user")
    done = ctd.run(ref, container_id("user"))
    assert (done.returncode, done.stdout) == (0, "1000\n")


def test_hog_is_oom_killed_at_its_memory_limit(ctd: ContainerdServer,
                                               registry: RegistryServer) -> None:
    ref = pulled(ctd, registry, images.hog_image(), "hog")
    done = ctd.run(ref, container_id("hog"), options=("--memory-limit", str(48 << 20)),
                   timeout=60)
    assert (done.returncode, done.stdout) == (137, "hogging\n")


def test_hog_grows_without_a_limit_up_to_its_cap(ctd: ContainerdServer,
                                                 registry: RegistryServer) -> None:
    ref = pulled(ctd, registry, images.hog_image(step_mib=8, max_mib=96), "hog")
    cid = container_id("hog")
    assert ctd.dir is not None
    ctd.ctr("run", "-d", "--runc-root", str(ctd.dir / "runc"), "--fifo-dir",
            str(ctd.dir / "fifo"), ref, cid)
    try:
        pid = int(ctd.ctr("tasks", "ls").stdout.split(cid)[1].split()[0])

        def rss_mib() -> int:
            with open(f"/proc/{pid}/status") as status:
                rss = [line.split()[1] for line in status if line.startswith("VmRSS:")]
            return int(rss[0]) // 1024

        seen = [rss_mib()]
        deadline = time.monotonic() + 20
        while seen[-1] < 96 and time.monotonic() < deadline:
            time.sleep(0.1)
            seen.append(rss_mib())
        assert seen[0] < 48 <= max(seen) and seen[-1] >= 96, seen
        time.sleep(0.5)
        assert rss_mib() < 96 + 48, "it stops at its cap"
    finally:
        ctd.ctr("tasks", "rm", "-f", cid, check=False)
        ctd.ctr("containers", "rm", cid, check=False)


def test_a_missing_image_pulls_once_pushed(ctd: ContainerdServer,
                                           registry: RegistryServer) -> None:
    repo = registry.new_repo("later")
    ref = registry.ref(repo, "1")
    failed = ctd.ctr("images", "pull", "--hosts-dir", str(ctd.hosts_dir), ref, check=False)
    assert failed.returncode != 0 and "not found" in failed.stderr
    registry.push(images.user_image(), repo, "1")
    ctd.pull(ref)
    registry.delete(repo, "1")  # gone from the registry, still in containerd
    assert ctd.run(ref, container_id("later")).stdout == "1000\n"


def test_an_oci_archive_imports_without_a_registry(ctd: ContainerdServer) -> None:
    name = f"svcnet.test/{container_id('imported')}:1"
    image = images.crash_image(exit_code=5)
    ctd.ctr("images", "import", "-", input=images.oci_archive(image, name))
    assert image.digest in ctd.ctr("images", "ls", "-q").stdout + ctd.ctr(
        "images", "ls").stdout
    done = ctd.run(name, container_id("imported"))
    assert (done.returncode, done.stdout) == (5, "crashing\n")


@pytest.fixture
def cri(ctd: ContainerdServer) -> Iterator[api_pb2_grpc.ImageServiceStub]:
    channel = grpc.insecure_channel(f"unix://{ctd.socket}")
    try:
        yield api_pb2_grpc.ImageServiceStub(channel)
    finally:
        channel.close()


def test_the_cri_pulls_through_the_hosts_dir(cri: api_pb2_grpc.ImageServiceStub,
                                             registry: RegistryServer) -> None:
    repo = registry.new_repo("cri")
    image = images.user_image()
    registry.push(image, repo, "1")
    ref = registry.ref(repo, "1")
    pulled_ref = cri.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=ref)),
                               timeout=60).image_ref
    assert pulled_ref == image.config_digest
    status = cri.ImageStatus(api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=ref)),
                             timeout=10).image
    assert status.id == image.config_digest
    # The image (its id is the config's digest) has every name it was pulled as.
    assert ref in status.repo_tags
    assert f"{registry.host}/{repo}@{image.digest}" in status.repo_digests
    assert status.uid.value == 1000, "what runAsNonRoot checks"
    assert status.size == image.size


def test_the_cri_pulls_with_pull_secret_credentials(
        ctd: ContainerdServer, cri: api_pb2_grpc.ImageServiceStub,
        registry_auth: RegistryServer) -> None:
    ctd.trust(registry_auth.host)
    assert registry_auth.auth is not None
    user, password = registry_auth.auth
    repo = registry_auth.new_repo("private")
    registry_auth.push(images.crash_image(), repo, "1")
    spec = api_pb2.ImageSpec(image=registry_auth.ref(repo, "1"))
    with pytest.raises(grpc.RpcError) as anonymous:
        cri.PullImage(api_pb2.PullImageRequest(image=spec), timeout=60)
    assert "401 Unauthorized" in str(anonymous.value.details())
    auth = api_pb2.AuthConfig(username=user, password=password)
    pulled_ref = cri.PullImage(api_pb2.PullImageRequest(image=spec, auth=auth),
                               timeout=60).image_ref
    assert pulled_ref == images.crash_image().config_digest
