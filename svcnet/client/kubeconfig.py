"""Load a kubeconfig file into the few facts a client needs.

A kubeconfig names *clusters* (server URL, CA), *users* (credentials) and *contexts* (a cluster,
a user, a default namespace); ``current-context`` picks one context. We resolve that chain once,
into a frozen :class:`KubeConfig`, and read nothing else later. Supported, because that is what
``svcnet server`` writes and what kubectl users hand us:

* cluster: ``server``, ``certificate-authority-data`` (base64 PEM) or ``certificate-authority``
  (a file, relative to the kubeconfig's directory as kubectl resolves it),
  ``insecure-skip-tls-verify``, ``tls-server-name``;
* user: ``token`` or ``tokenFile`` (a bearer token); ``client-certificate(-data)`` and
  ``client-key(-data)`` for mutual TLS;
* context: ``cluster``, ``user``, ``namespace`` (default ``"default"``).

Exec and auth-provider plugins are not supported: a user entry with only those is an error rather
than a silently anonymous client.

Lookup order is kubectl's, reduced to one file: an explicit path, else the first entry of
``$KUBECONFIG``, else ``~/.kube/config``.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["KubeConfig", "KubeconfigError", "default_path", "load_kubeconfig", "parse_kubeconfig"]


class KubeconfigError(ValueError):
    """The kubeconfig is missing, malformed, or names something it does not define."""


@dataclass(frozen=True, slots=True)
class KubeConfig:
    """One resolved context: where the server is, how to trust it, who we are."""

    server: str
    ca_pem: bytes | None = None
    token: str | None = None
    namespace: str = "default"
    insecure_skip_tls_verify: bool = False
    tls_server_name: str = ""
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    context: str = ""

    def __repr__(self) -> str:
        # Never print the token or key: configs end up in logs and tracebacks.
        return (f"KubeConfig(server={self.server!r}, context={self.context!r}, "
                f"namespace={self.namespace!r}, token={'<set>' if self.token else None})")

    @property
    def is_tls(self) -> bool:
        return self.server.startswith("https://")

    def ssl_context(self, *, client_cert: bool = True) -> ssl.SSLContext:
        """A client context that trusts the configured CA (or the system store if none),
        presenting the kubeconfig's client certificate unless ``client_cert`` is False (a
        request made with someone else's token must not authenticate as this user: the
        server tries a client certificate before the bearer token)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if self.ca_pem is not None:
            # cadata replaces nothing: the system roots stay, as with kubectl's CA bundle.
            ctx.load_verify_locations(cadata=self.ca_pem.decode("ascii"))
        if self.insecure_skip_tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if client_cert and self.client_cert_pem is not None and self.client_key_pem is not None:
            _load_client_pair(ctx, self.client_cert_pem, self.client_key_pem)
        return ctx


def _load_client_pair(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    # ssl only loads certificate chains from files; a private temporary directory keeps the
    # key readable by us alone for the instant it exists.
    with tempfile.TemporaryDirectory(prefix="svcnet-kubeconfig-") as tmp:
        cert, key = Path(tmp) / "client.crt", Path(tmp) / "client.key"
        for path, data in ((cert, cert_pem), (key, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(cert, key)


def default_path() -> Path:
    """``$KUBECONFIG`` (its first entry) or ``~/.kube/config``."""
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return Path(first) if first else Path.home() / ".kube" / "config"


def load_kubeconfig(path: str | os.PathLike[str] | None = None, *,
                    context: str | None = None) -> KubeConfig:
    """Read ``path`` (default: :func:`default_path`) and resolve ``context`` (default: current)."""
    file = Path(path) if path is not None else default_path()
    try:
        text = file.read_text()
    except OSError as e:
        raise KubeconfigError(f"cannot read kubeconfig {file}: {e.strerror or e}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise KubeconfigError(f"kubeconfig {file} is not valid YAML: {e}") from None
    return parse_kubeconfig(doc, base_dir=file.parent, context=context)


def parse_kubeconfig(doc: Any, *, base_dir: Path | None = None,
                     context: str | None = None) -> KubeConfig:
    """Resolve an already parsed kubeconfig document; file references are relative to
    ``base_dir``."""
    if not isinstance(doc, Mapping):
        raise KubeconfigError("kubeconfig must be a mapping")
    base = base_dir or Path.cwd()
    name = context or str(doc.get("current-context") or "")
    if not name:
        raise KubeconfigError("kubeconfig has no current-context and none was given")
    ctx = _named(doc, "contexts", "context", name)
    cluster = _named(doc, "clusters", "cluster", _str(ctx, "cluster", f"context {name!r}"))
    user_name = str(ctx.get("user") or "")
    user: Mapping[str, Any] = _named(doc, "users", "user", user_name) if user_name else {}

    server = _str(cluster, "server", "cluster").rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise KubeconfigError(f"cluster server {server!r} is not an http(s) URL")
    token = str(user.get("token") or "") or None
    if token is None and user.get("tokenFile"):
        token = _read(base, str(user["tokenFile"]), "tokenFile").decode().strip() or None
    cert = _data_or_file(user, "client-certificate", base)
    key = _data_or_file(user, "client-key", base)
    if token is None and cert is None and (user.get("exec") or user.get("auth-provider")):
        raise KubeconfigError(f"user {user_name!r} uses an exec/auth-provider plugin, which is "
                              "not supported; use a token or a client certificate")
    return KubeConfig(
        server=server,
        ca_pem=_data_or_file(cluster, "certificate-authority", base),
        token=token,
        namespace=str(ctx.get("namespace") or "default"),
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
        tls_server_name=str(cluster.get("tls-server-name") or ""),
        client_cert_pem=cert,
        client_key_pem=key,
        context=name,
    )


def _named(doc: Mapping[str, Any], section: str, inner: str, name: str) -> Mapping[str, Any]:
    for entry in doc.get(section) or []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            body = entry.get(inner)
            if not isinstance(body, Mapping):
                raise KubeconfigError(f"{inner} {name!r} has no {inner!r} body")
            return body
    raise KubeconfigError(f"{inner} {name!r} not found in kubeconfig {section}")


def _str(m: Mapping[str, Any], key: str, what: str) -> str:
    value = m.get(key)
    if not isinstance(value, str) or not value:
        raise KubeconfigError(f"{what} has no {key!r}")
    return value


def _read(base: Path, name: str, what: str) -> bytes:
    path = Path(name).expanduser()
    if not path.is_absolute():
        path = base / path
    try:
        return path.read_bytes()
    except OSError as e:
        raise KubeconfigError(f"cannot read {what} {path}: {e.strerror or e}") from None


def _data_or_file(m: Mapping[str, Any], field: str, base: Path) -> bytes | None:
    """``FIELD-data`` (base64, wins as in client-go) or the file named by ``FIELD``."""
    data = m.get(f"{field}-data")
    if data:
        try:
            return base64.b64decode(str(data), validate=True)
        except (binascii.Error, ValueError):
            raise KubeconfigError(f"{field}-data is not valid base64") from None
    if m.get(field):
        return _read(base, str(m[field]), field)
    return None
