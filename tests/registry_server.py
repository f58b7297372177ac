"""A throwaway image registry on loopback for tests, and a client pushing tests/images.py images.

Theory of operation. Tests must never reach a registry on the internet, so images come from
tests/images.py and are served by Debian's ``docker-registry`` (the CNCF distribution registry
2.8) on 127.0.0.1 and a free port, storing blobs under a temp dir (``storage.filesystem``) with
deletion enabled. The config is written as JSON (a subset of YAML). :class:`RegistryServer`
starts it, waits until ``GET /v2/`` answers (200, or 401 with basic auth) and :meth:`stop`
kills exactly that pid and removes the dir.

:class:`RegistryClient` speaks the registry HTTP API V2 as distribution's docs/spec/api.md
describes it (and the OCI distribution-spec's push): for every blob ``HEAD
/v2/<repo>/blobs/<digest>`` (200: the registry has it), else ``POST /v2/<repo>/blobs/uploads/``
(202, a ``Location``) then a monolithic ``PUT <Location>&digest=<digest>`` (201); then ``PUT
/v2/<repo>/manifests/<tag>`` with the manifest's media type as Content-Type (201, the digest in
``Docker-Content-Digest``). The registry deletes manifests by digest only (202), so
:meth:`RegistryClient.delete` resolves a tag first; deleting a manifest untags every tag on it.

With ``auth=(user, password)`` the registry checks HTTP basic auth against an htpasswd file
(bcrypt, the only hash distribution accepts), for image pull secret tests.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, require_binary
from tests.images import DOCKER, OCI, Image

__all__ = ["RegistryClient", "RegistryError", "RegistryServer", "registry", "registry_auth"]

# What a client that understands both formats asks for (containerd 1.6 sends these and more).
ACCEPT_MANIFESTS = f"{DOCKER.manifest}, {OCI.manifest}"


class RegistryError(Exception):
    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]!r}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Response:
    status: int
    headers: http.client.HTTPMessage  # case-insensitive: Go writes "Www-Authenticate"
    body: bytes


class RegistryClient:
    """The registry HTTP API V2 over plain HTTP, one connection per request."""

    def __init__(self, host: str, auth: tuple[str, str] | None = None) -> None:
        self.host = host  # "127.0.0.1:PORT"
        self.auth = auth

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None) -> Response:
        """One request; ``path`` is absolute (``/v2/...``) or a full URL the registry gave."""
        parts = urllib.parse.urlsplit(path)
        target = urllib.parse.urlunsplit(("", "", parts.path, parts.query, ""))
        all_headers = dict(headers or {})
        if self.auth is not None:
            token = base64.b64encode(":".join(self.auth).encode()).decode()
            all_headers["Authorization"] = f"Basic {token}"
        conn = http.client.HTTPConnection(parts.netloc or self.host, timeout=30)
        try:
            conn.request(method, target, body=body, headers=all_headers)
            response = conn.getresponse()
            data = response.read()
            return Response(response.status, response.headers, data)
        finally:
            conn.close()

    def _expect(self, status: int | tuple[int, ...], method: str, path: str,
                body: bytes | None = None, headers: Mapping[str, str] | None = None) -> Response:
        response = self.request(method, path, body, headers)
        if response.status not in (status if isinstance(status, tuple) else (status,)):
            raise RegistryError(method, path, response.status, response.body)
        return response

    def push_blob(self, repo: str, digest: str, data: bytes) -> bool:
        """Upload one blob unless the repository has it; True when it was uploaded."""
        if self.request("HEAD", f"/v2/{repo}/blobs/{digest}").status == 200:
            return False
        started = self._expect(202, "POST", f"/v2/{repo}/blobs/uploads/")
        location = started.headers["Location"]
        separator = "&" if "?" in location else "?"
        self._expect(201, "PUT", f"{location}{separator}digest={digest}", data,
                     {"Content-Type": "application/octet-stream"})
        return True

    def push(self, image: Image, repo: str, tag: str) -> str:
        """Push the blobs and the manifest of ``image`` as ``repo:tag``; return the manifest
        digest the registry reports (``sha256:...``)."""
        for digest, data in image.blobs().items():
            self.push_blob(repo, digest, data)
        response = self._expect(201, "PUT", f"/v2/{repo}/manifests/{tag}", image.manifest,
                                {"Content-Type": image.media_types.manifest})
        return response.headers["Docker-Content-Digest"]

    def manifest(self, repo: str, ref: str, accept: str = ACCEPT_MANIFESTS) -> Response:
        """``GET`` a manifest by tag or digest (404 is returned, not raised)."""
        return self._expect((200, 404), "GET", f"/v2/{repo}/manifests/{ref}",
                            headers={"Accept": accept})

    def blob(self, repo: str, digest: str) -> bytes:
        return self._expect(200, "GET", f"/v2/{repo}/blobs/{digest}").body

    def tags(self, repo: str) -> list[str]:
        """The repository's tags (none when it has none or does not exist)."""
        response = self._expect((200, 404), "GET", f"/v2/{repo}/tags/list")
        if response.status == 404:
            return []
        tags: list[str] | None = json.loads(response.body).get("tags")
        return sorted(tags or [])

    def delete(self, repo: str, ref: str) -> None:
        """Delete the manifest ``ref`` (a tag or a digest) and so every tag on it; the blobs
        stay (the registry's garbage collection is offline)."""
        digest = ref
        if not ref.startswith("sha256:"):
            head = self._expect(200, "HEAD", f"/v2/{repo}/manifests/{ref}",
                                headers={"Accept": ACCEPT_MANIFESTS})
            digest = head.headers["Docker-Content-Digest"]
        self._expect(202, "DELETE", f"/v2/{repo}/manifests/{digest}")


class RegistryServer:
    """One throwaway ``docker-registry serve`` on 127.0.0.1, see the module docstring."""

    def __init__(self, auth: tuple[str, str] | None = None) -> None:
        self.auth = auth
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir: Path | None = None
        self.host = ""  # "127.0.0.1:PORT" once started
        self._repos = itertools.count()

    @property
    def client(self) -> RegistryClient:
        """A client with the server's credentials (if it has any)."""
        assert self.host, "the registry is not started"
        return RegistryClient(self.host, self.auth)

    def _config(self, port: int) -> dict[str, object]:
        assert self.dir is not None
        config: dict[str, object] = {
            "version": "0.1",
            "log": {"level": "info", "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.dir / "data")},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
        }
        if self.auth is not None:
            import bcrypt

            user, password = self.auth
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
            (self.dir / "htpasswd").write_text(f"{user}:{hashed}\n")
            config["auth"] = {"htpasswd": {"realm": "svcnet-test",
                                           "path": str(self.dir / "htpasswd")}}
        return config

    def start(self) -> str:
        """Start the registry (a no-op when it runs); return ``127.0.0.1:PORT``."""
        if self.proc is not None:
            assert self.proc.poll() is None, "the test registry died"
            return self.host
        binary = require_binary("docker-registry")
        self.dir = Path(tempfile.mkdtemp(prefix="svcnet-registry-"))
        for _attempt in range(3):  # the free port may be taken before the registry binds it
            if self._start_once(binary):
                return self.host
        output = (self.dir / "registry.log").read_text(errors="replace")
        self.stop()
        pytest.fail(f"the test registry did not start:\n{output[-3000:]}")

    def _start_once(self, binary: str) -> bool:
        assert self.dir is not None
        port = free_port()
        config = self.dir / "config.yml"
        config.write_text(json.dumps(self._config(port), indent=1))
        with (self.dir / "registry.log").open("ab") as log:
            self.proc = subprocess.Popen([binary, "serve", str(config)], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        probe = RegistryClient(f"127.0.0.1:{port}")
        deadline = time.monotonic() + 15
        while self.proc.poll() is None and time.monotonic() < deadline:
            try:
                if probe.request("GET", "/v2/").status in (200, 401):
                    self.host = probe.host
                    return True
            except OSError:
                pass
            time.sleep(0.02)
        self._kill()
        return False

    def _kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop(self) -> None:
        self._kill()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        self.host = ""

    def new_repo(self, name: str = "test") -> str:
        """A repository name no other test of this session uses."""
        return f"{name}-{next(self._repos)}"

    def ref(self, repo: str, tag: str) -> str:
        """The image reference containerd pulls: ``127.0.0.1:PORT/repo:tag``."""
        return f"{self.host}/{repo}:{tag}"

    def push(self, image: Image, repo: str, tag: str) -> str:
        """Push ``image`` as ``repo:tag``; the manifest digest the registry reports."""
        return self.client.push(image, repo, tag)

    def delete(self, repo: str, ref: str) -> None:
        """Delete the manifest ``repo:ref`` (tag or digest): pulls of it fail until a push."""
        self.client.delete(repo, ref)


@pytest.fixture(scope="session")
def registry() -> Iterator[RegistryServer]:
    """A registry without auth shared by the session; take repositories from ``new_repo``.
    Skipped (or, with SVCNET_REQUIRE_ROOT_TESTS=1, failed) without docker-registry."""
    server = RegistryServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def registry_auth() -> Iterator[RegistryServer]:
    """A registry requiring basic auth (a random user and password, in ``.auth``)."""
    server = RegistryServer(auth=(f"svcnet-{secrets.token_hex(4)}", secrets.token_urlsafe(12)))
    server.start()
    try:
        yield server
    finally:
        server.stop()
