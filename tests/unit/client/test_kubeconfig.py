"""Kubeconfig resolution (pure) and one real TLS round trip through a kubeconfig."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from svcnet.apiserver.certs import ensure_tls
from svcnet.client.kubeconfig import (
    KubeConfig,
    KubeconfigError,
    default_path,
    load_kubeconfig,
    parse_kubeconfig,
)
from svcnet.client.rest import SERVICES, RESTClient, TransportError

CA = b"-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n"


def doc(**overrides: Any) -> dict[str, Any]:
    """The shape ``svcnet server`` writes, plus a second context."""
    d: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config", "current-context": "svcnet",
        "clusters": [
            {"name": "svcnet", "cluster": {
                "server": "https://127.0.0.1:6443/",
                "certificate-authority-data": base64.b64encode(CA).decode()}},
            {"name": "other", "cluster": {"server": "http://10.0.0.1:8080",
                                          "insecure-skip-tls-verify": True,
                                          "tls-server-name": "kubernetes"}},
        ],
        "users": [{"name": "admin", "user": {"token": "s3cret"}},
                  {"name": "file-user", "user": {"tokenFile": "token.txt"}}],
        "contexts": [
            {"name": "svcnet", "context": {"cluster": "svcnet", "user": "admin",
                                           "namespace": "default"}},
            {"name": "other", "context": {"cluster": "other", "user": "file-user",
                                          "namespace": "kube-system"}},
            {"name": "anonymous", "context": {"cluster": "other"}},
        ],
    }
    d.update(overrides)
    return d


def test_current_context() -> None:
    cfg = parse_kubeconfig(doc())
    assert cfg == KubeConfig(server="https://127.0.0.1:6443", ca_pem=CA, token="s3cret",
                             namespace="default", context="svcnet")
    assert cfg.is_tls


def test_named_context_with_token_file_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "token.txt").write_text("from-file\n")
    cfg = parse_kubeconfig(doc(), base_dir=tmp_path, context="other")
    assert (cfg.server, cfg.token, cfg.namespace) == ("http://10.0.0.1:8080", "from-file",
                                                      "kube-system")
    assert cfg.insecure_skip_tls_verify and cfg.tls_server_name == "kubernetes"
    assert cfg.ca_pem is None and not cfg.is_tls


def test_context_without_user_or_namespace() -> None:
    cfg = parse_kubeconfig(doc(), context="anonymous")
    assert cfg.token is None and cfg.namespace == "default"


def test_certificate_authority_file(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(CA)
    d = doc()
    d["clusters"][0]["cluster"] = {"server": "https://h:1", "certificate-authority": "ca.crt"}
    assert parse_kubeconfig(d, base_dir=tmp_path).ca_pem == CA


def test_repr_hides_the_token() -> None:
    assert "s3cret" not in repr(parse_kubeconfig(doc()))


@pytest.mark.parametrize(
    ("d", "context", "message"),
    [
        pytest.param([], None, "must be a mapping", id="not-a-mapping"),
        pytest.param(doc(**{"current-context": ""}), None, "no current-context",
                     id="no-current-context"),
        pytest.param(doc(), "nope", "context 'nope' not found", id="unknown-context"),
        pytest.param(doc(clusters=[]), None, "cluster 'svcnet' not found",
                     id="unknown-cluster"),
        pytest.param(doc(users=[]), None, "user 'admin' not found", id="unknown-user"),
        pytest.param(doc(clusters=[{"name": "svcnet", "cluster": {}}]), None,
                     "cluster has no 'server'", id="no-server"),
        pytest.param(doc(clusters=[{"name": "svcnet", "cluster": {"server": "10.0.0.1"}}]),
                     None, "not an http", id="server-not-a-url"),
        pytest.param(doc(clusters=[{"name": "svcnet", "cluster": {
            "server": "https://h", "certificate-authority-data": "%%%"}}]), None,
            "not valid base64", id="bad-base64"),
        pytest.param(doc(users=[{"name": "admin", "user": {"exec": {"command": "aws"}}}]),
                     None, "exec/auth-provider plugin", id="exec-plugin"),
        pytest.param(doc(), "other", "cannot read tokenFile", id="missing-token-file"),
    ],
)
def test_errors(d: Any, context: str | None, message: str, tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match=message):
        parse_kubeconfig(d, base_dir=tmp_path, context=context)


def test_load_and_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc()))
    monkeypatch.setenv("KUBECONFIG", f"{path}:/elsewhere")
    assert default_path() == path
    assert load_kubeconfig().token == "s3cret"
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_path() == tmp_path / ".kube" / "config"
    with pytest.raises(KubeconfigError, match="cannot read kubeconfig"):
        load_kubeconfig()
    (tmp_path / "bad").write_text("{")
    with pytest.raises(KubeconfigError, match="not valid YAML"):
        load_kubeconfig(tmp_path / "bad")


def test_insecure_context_disables_verification() -> None:
    ctx = KubeConfig(server="https://h", insecure_skip_tls_verify=True).ssl_context()
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname


# -- TLS end to end -------------------------------------------------------------------------


async def _tls_round_trip(tmp_path: Path, *, ca_pem: bytes, tls_server_name: str = ""
                          ) -> dict[str, Any]:
    tls = ensure_tls(tmp_path / "server", ["127.0.0.1"])
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tls.cert, tls.key)
    seen: dict[str, Any] = {}

    async def get(request: web.Request) -> web.Response:
        seen["auth"] = request.headers.get("Authorization")
        return web.json_response({"kind": "Service", "metadata": {"name": "web"}})

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/default/services/web", get)
    server = TestServer(app)
    await server.start_server(ssl=server_ctx)
    try:
        url = str(server.make_url("")).rstrip("/")
        assert url.startswith("https://")
        d = doc()
        d["clusters"][0]["cluster"] = {
            "server": url, "certificate-authority-data": base64.b64encode(ca_pem).decode(),
            **({"tls-server-name": tls_server_name} if tls_server_name else {})}
        cfg = parse_kubeconfig(d)
        async with RESTClient.from_kubeconfig(cfg) as client:
            seen["obj"] = await client.get(SERVICES, "default", "web")
    finally:
        await server.close()
    return seen


async def test_tls_with_the_kubeconfig_ca_and_token(tmp_path: Path) -> None:
    ca = ensure_tls(tmp_path / "server", ["127.0.0.1"]).ca_pem()
    seen = await _tls_round_trip(tmp_path, ca_pem=ca)
    assert seen == {"auth": "Bearer s3cret", "obj": {"kind": "Service",
                                                      "metadata": {"name": "web"}}}


async def test_tls_server_name_overrides_the_checked_name(tmp_path: Path) -> None:
    ca = ensure_tls(tmp_path / "server", ["127.0.0.1"]).ca_pem()
    seen = await _tls_round_trip(tmp_path, ca_pem=ca, tls_server_name="kubernetes.default")
    assert seen["obj"]["metadata"]["name"] == "web"


async def test_tls_with_the_wrong_ca_fails(tmp_path: Path) -> None:
    other_ca = ensure_tls(tmp_path / "other", ["127.0.0.1"]).ca_pem()
    with pytest.raises(TransportError, match="certificate"):
        await _tls_round_trip(tmp_path, ca_pem=other_ca)
