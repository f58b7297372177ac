"""The throwaway registry (tests/registry_server.py) with tests/images.py images, no root: a push
is what a pull gets back (manifest by tag and digest, blobs), tags list, shared blobs are not
uploaded twice, deletion makes an image missing until pushed again, the registry's
Accept-dependent OCI manifests, and basic auth."""

from __future__ import annotations

import json

import pytest

from tests import images
from tests.conftest import require_binary
from tests.registry_server import RegistryClient, RegistryError, RegistryServer


@pytest.fixture(scope="module")
def web() -> tuple[images.Image, images.Image]:
    require_binary("busybox")
    return images.web_image("v1"), images.web_image("v2")


def test_a_push_is_what_a_pull_gets(registry: RegistryServer,
                                    web: tuple[images.Image, images.Image]) -> None:
    v1, v2 = web
    repo = registry.new_repo("web")
    assert registry.client.tags(repo) == []
    digest = registry.push(v1, repo, "1")
    assert digest == v1.digest
    for ref in ("1", digest):
        got = registry.client.manifest(repo, ref)
        assert got.status == 200 and got.body == v1.manifest
        assert got.headers["Content-Type"] == images.DOCKER.manifest
        assert got.headers["Docker-Content-Digest"] == v1.digest
    manifest = json.loads(registry.client.manifest(repo, "1").body)
    for descriptor in [manifest["config"], *manifest["layers"]]:
        blob = registry.client.blob(repo, descriptor["digest"])
        assert len(blob) == descriptor["size"]
        assert blob == v1.blobs()[descriptor["digest"]]
    assert registry.push(v2, repo, "2") == v2.digest
    assert registry.push(v2, repo, "latest") == v2.digest
    assert registry.client.tags(repo) == ["1", "2", "latest"]
    assert registry.ref(repo, "2") == f"{registry.host}/{repo}:2"


def test_blobs_the_repository_has_are_not_uploaded_again(
        registry: RegistryServer, web: tuple[images.Image, images.Image]) -> None:
    v1, v2 = web
    repo = registry.new_repo("web")
    registry.push(v1, repo, "1")
    client = registry.client
    base = images.busybox_layer()
    assert client.push_blob(repo, base.digest, base.data) is False
    uploaded = {digest: client.push_blob(repo, digest, data) for digest, data in v2.blobs().items()}
    # v2 differs from v1 in its config only (the version is in its environment).
    assert uploaded == {v2.config_digest: True, base.digest: False, v2.layers[1].digest: False}


def test_a_deleted_image_is_missing_until_pushed_again(
        registry: RegistryServer, web: tuple[images.Image, images.Image]) -> None:
    v1, v2 = web
    repo = registry.new_repo("web")
    registry.push(v1, repo, "1")
    registry.push(v1, repo, "also-1")
    registry.push(v2, repo, "2")
    registry.delete(repo, "1")
    assert registry.client.manifest(repo, "1").status == 404
    assert registry.client.manifest(repo, "also-1").status == 404, "the manifest is gone"
    assert registry.client.tags(repo) == ["2"]
    with pytest.raises(RegistryError) as missing:
        registry.delete(repo, "1")
    assert missing.value.status == 404
    registry.push(v1, repo, "1")
    assert registry.client.manifest(repo, "1").body == v1.manifest
    registry.delete(repo, v2.digest)  # by digest
    assert registry.client.tags(repo) == ["1"]


def test_oci_manifests_are_served_only_to_clients_asking_for_them(
        registry: RegistryServer) -> None:
    require_binary("busybox")
    image = images.web_image("v1", media_types=images.OCI)
    repo = registry.new_repo("oci")
    assert registry.push(image, repo, "1") == image.digest
    got = registry.client.manifest(repo, "1", accept=images.OCI.manifest)
    assert (got.status, got.headers["Content-Type"]) == (200, images.OCI.manifest)
    assert got.body == image.manifest
    # Why the test images are Docker schema 2 by default: without the OCI type in Accept,
    # distribution 2.8 says the manifest is unknown.
    docker_only = registry.client.manifest(repo, "1", accept=images.DOCKER.manifest)
    assert docker_only.status == 404
    assert json.loads(docker_only.body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_a_wrong_digest_is_refused(registry: RegistryServer) -> None:
    repo = registry.new_repo("bad")
    with pytest.raises(RegistryError) as refused:
        registry.client.push_blob(repo, images.digest_of(b"something else"), b"data")
    assert refused.value.status == 400
    assert json.loads(refused.value.body)["errors"][0]["code"] == "DIGEST_INVALID"


def test_basic_auth(registry_auth: RegistryServer,
                    web: tuple[images.Image, images.Image]) -> None:
    v1, _ = web
    assert registry_auth.auth is not None
    user, password = registry_auth.auth
    anonymous = RegistryClient(registry_auth.host)
    challenge = anonymous.request("GET", "/v2/")
    assert challenge.status == 401
    assert challenge.headers["WWW-Authenticate"] == 'Basic realm="svcnet-test"'
    wrong = RegistryClient(registry_auth.host, (user, password + "x"))
    assert wrong.request("GET", "/v2/").status == 401
    repo = registry_auth.new_repo("private")
    with pytest.raises(RegistryError) as denied:
        anonymous.push(v1, repo, "1")
    assert denied.value.status == 401
    assert registry_auth.push(v1, repo, "1") == v1.digest
    assert registry_auth.client.manifest(repo, "1").body == v1.manifest
    assert anonymous.request("GET", f"/v2/{repo}/manifests/1").status == 401
