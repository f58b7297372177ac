"""Container images for the tests, built here from local files: no registry on the internet.

The builder is svcnet's own (:mod:`svcnet.node.oci`: reproducible Docker schema 2 / OCI images,
the static-busybox base layer); here are the standard test images on that base.
"""

from __future__ import annotations

from svcnet.node.oci import (
    DOCKER,
    OCI,
    Dir,
    Entry,
    File,
    Image,
    Layer,
    MediaTypes,
    Symlink,
    build_image,
    build_layer,
    build_tar,
    busybox_layer,
    digest_of,
    machine_architecture,
    oci_archive,
    write_oci_layout,
)

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
    "crash_image",
    "digest_of",
    "hog_image",
    "machine_architecture",
    "oci_archive",
    "user_image",
    "web_image",
    "write_oci_layout",
]

WEB_PORT = 8080


def _shell_image(name: str, script: str, *, user: str = "",
                 media_types: MediaTypes = DOCKER) -> Image:
    """The busybox base running ``sh -c script``, no layer of its own."""
    return build_image({}, base=(busybox_layer(),), entrypoint=("/bin/sh", "-c"),
                       cmd=(script,), user=user, labels={"svcnet.test/image": name},
                       media_types=media_types)


WEB_CGI = """#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
echo "$(hostname) $VERSION"
"""


def web_image(version: str = "v1", *, media_types: MediaTypes = DOCKER) -> Image:
    """busybox httpd in the foreground on port 8080 (``$PORT`` overrides it). ``GET /``
    answers ``"<hostname> <version>\\n"`` (the pod's name: count hits per backend), computed
    per request by a CGI script, so it works with a read-only root and any user;
    ``GET /healthz`` answers ``ok``."""
    files: dict[str, Entry] = {
        "www/cgi-bin/index.cgi": File(WEB_CGI.encode(), mode=0o755),
        "www/healthz": b"ok\n",
    }
    return build_image(
        files, base=(busybox_layer(),), entrypoint=("/bin/sh", "-c"),
        cmd=('exec httpd -f -p "${PORT:-8080}" -h /www',), env={"VERSION": version},
        exposed_ports=(WEB_PORT,), labels={"svcnet.test/image": "web", "version": version},
        media_types=media_types, created_by=f"tests/images.py web {version}")


def crash_image(*, exit_code: int = 3, media_types: MediaTypes = DOCKER) -> Image:
    """Prints ``crashing`` to stdout and exits ``exit_code`` after 0.5 s."""
    return _shell_image("crash", f"echo crashing; sleep 0.5; exit {exit_code}",
                        media_types=media_types)


def hog_image(*, step_mib: int = 16, max_mib: int = 2048,
              media_types: MediaTypes = DOCKER) -> Image:
    """Prints ``hogging``, then the container's main process (``tail``, pid 1, buffering the
    newline-free zeros a background loop feeds it through a FIFO) grows by ``step_mib`` about
    every 0.1 s (~70 MiB/s measured) until killed, e.g. by the OOM killer at a cgroup memory
    limit: being pid 1, its death ends the container (exit 137). Without a limit it stops at
    ``max_mib`` and holds it (the feeder then sleeps, tail never sees EOF). Needs a writable
    /tmp."""
    steps = max(1, max_mib // step_mib)
    chunk = step_mib * 1024 * 1024
    feed = (f"i=0; while [ $i -lt {steps} ]; do head -c {chunk} /dev/zero; i=$((i+1));"
            " sleep 0.1; done; while :; do sleep 3600; done")
    script = f"echo hogging; mkfifo /tmp/hog.fifo; {{ {feed}; }} > /tmp/hog.fifo & exec tail /tmp/hog.fifo"
    return _shell_image("hog", script, media_types=media_types)


def user_image(*, user: str = "1000:1000", media_types: MediaTypes = DOCKER) -> Image:
    """The config's User is ``user`` (not root); prints ``id -u`` and exits 0."""
    return _shell_image("user", "id -u", user=user, media_types=media_types)
