"""Joining machines: the join token, bootstrap and node tokens, /svcnet/join (svcnet/apiserver/
join.py) and the joining side's CA pinning (svcnet/node/join.py), against a real server."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from svcnet.api.jointokens import (
    TokenFormatError,
    ca_hash,
    new_bootstrap_token,
    parse_join_token,
    parse_node_token,
)
from svcnet.apiserver.auth import authorize
from svcnet.apiserver.join import BOOTSTRAPPERS_GROUP, JOIN_GROUP, bootstrap_secret, bootstrap_user
from svcnet.apiserver.server import APIServer, ServerConfig
from svcnet.storage.memory import MemoryStore


def test_join_token_round_trip_and_errors() -> None:
    token = new_bootstrap_token(b"-----BEGIN CERTIFICATE-----\n")
    text = str(token)
    assert text.startswith("K10") and "::" in text
    assert parse_join_token(text + "\n") == token
    for bad in ("abcdef.0123456789abcdef", f"K10{'0' * 63}::abcdef.0123456789abcdef",
                f"K10{'0' * 64}::server:secret", f"K10{'0' * 64}::ABCDEF.0123456789abcdef"):
        with pytest.raises(TokenFormatError):
            parse_join_token(bad)
    assert parse_node_token("node:m1.example:" + "a" * 32) is not None
    assert parse_node_token("node:m1:short") is None
    assert parse_node_token("abcdef.0123456789abcdef") is None


def test_bootstrap_authentication_follows_the_secret() -> None:
    token = new_bootstrap_token("ca")
    secret = bootstrap_secret(token)
    now = datetime.now(UTC)
    user = bootstrap_user(secret, token.token_id, token.secret, now)
    assert user is not None and user.name == f"system:bootstrap:{token.token_id}"
    assert user.groups == (BOOTSTRAPPERS_GROUP, JOIN_GROUP)
    assert bootstrap_user(secret, token.token_id, "x" * 16, now) is None
    expired = {**secret, "data": {**secret["data"], "expiration": base64.b64encode(
        (now - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ").encode()).decode()}}
    assert bootstrap_user(expired, token.token_id, token.secret, now) is None
    unusable = {**secret, "data": {**secret["data"], "usage-bootstrap-authentication": ""}}
    assert bootstrap_user(unusable, token.token_id, token.secret, now) is None
    deleting = {**secret, "metadata": {**secret["metadata"], "deletionTimestamp": "x"}}
    assert bootstrap_user(deleting, token.token_id, token.secret, now) is None
    # A bootstrapper can do nothing through the resource API.
    for verb, resource in (("list", "pods"), ("create", "nodes"), ("get", "secrets")):
        assert not authorize(user, verb, group="", resource=resource, namespace="", name="",
                             subresource="")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[APIServer]:
    srv = APIServer(ServerConfig(data_dir=tmp_path / "server", listen="127.0.0.1:0"),
                    store=MemoryStore())
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def _body(name: str, password: str = "p" * 20) -> bytes:
    return f'{{"nodeName": "{name}", "password": "{password}", "addresses": ["10.9.0.2"]}}' \
        .encode()


async def test_server_writes_a_token_pinning_its_ca(server: APIServer) -> None:
    text = (server.config.data_dir / "join-token").read_text()
    token = parse_join_token(text)
    ca = (server.config.data_dir / "pki" / "ca.crt").read_bytes()
    assert token.ca_hash == ca_hash(ca)
    assert (server.config.data_dir / "join-token").stat().st_mode & 0o777 == 0o600
    assert await server.join.lookup(token.bootstrap) is not None


async def test_join_issues_a_node_token_bound_to_the_machine(server: APIServer) -> None:
    from svcnet.api.errors import StatusError

    token = parse_join_token((server.config.data_dir / "join-token").read_text())
    with pytest.raises(StatusError) as e:
        await server.join.join("Bearer abcdef.0123456789abcdef", _body("m1"))
    assert e.value.code == 401
    answer = await server.join.join(f"Bearer {token.bootstrap}", _body("m1"))
    user = await server.join.lookup(answer["token"])
    assert user is not None and user.name == "system:node:m1"
    assert user.groups == ("system:nodes",)
    # Another machine (another password) cannot take the name; the same one rotates its token.
    with pytest.raises(StatusError) as e:
        await server.join.join(f"Bearer {token.bootstrap}", _body("m1", "q" * 20))
    assert e.value.code == 403
    again = await server.join.join(f"Bearer {token.bootstrap}", _body("m1"))
    assert await server.join.lookup(again["token"]) is not None
    assert await server.join.lookup(answer["token"]) is None
    # A node token is not a join token.
    with pytest.raises(StatusError) as e:
        await server.join.join(f"Bearer {again['token']}", _body("m2"))
    assert e.value.code == 401
    with pytest.raises(StatusError) as e:
        await server.join.join(f"Bearer {token.bootstrap}", _body("Not_A_Name"))
    assert e.value.code == 422


async def test_a_second_server_on_the_store_adopts_the_token(tmp_path: Path) -> None:
    store = MemoryStore()
    first = APIServer(ServerConfig(data_dir=tmp_path / "a", listen="127.0.0.1:0"), store=store)
    await first.start()
    second = APIServer(ServerConfig(data_dir=tmp_path / "b", listen="127.0.0.1:0"), store=store)
    try:
        await second.start()
        a = parse_join_token((tmp_path / "a" / "join-token").read_text())
        b = parse_join_token((tmp_path / "b" / "join-token").read_text())
        assert a.bootstrap == b.bootstrap
    finally:
        await second.stop()
        await first.stop()


async def test_joining_machine_pins_the_ca(server: APIServer, tmp_path: Path) -> None:
    """The client side over HTTPS: the token's hash must be the CA's, then the node's files."""
    import yaml

    from svcnet.node.join import JoinError, join_cluster, node_password

    token = parse_join_token((server.config.data_dir / "join-token").read_text())
    state = tmp_path / "node"
    files = await join_cluster([server.url], token, "m1", ["10.9.0.2"], state)
    cfg = yaml.safe_load(files.kubeconfig.read_text())
    assert cfg["clusters"][0]["cluster"]["server"] == server.url
    node_token = cfg["users"][0]["user"]["token"]
    assert (await server.join.lookup(node_token)) is not None
    assert files.key.stat().st_mode & 0o777 == 0o600
    assert node_password(state) == node_password(state)
    wrong = replace(token, ca_hash="0" * 64)
    with pytest.raises(JoinError, match="hash"):
        await join_cluster([server.url], wrong, "m1", ["10.9.0.2"], tmp_path / "other")
    # An unreachable first server: the next one answers.
    files = await join_cluster(["https://127.0.0.1:1", server.url], token, "m1", ["10.9.0.2"],
                               state)
    assert files.server == server.url


async def test_no_server_answering_leaves_the_last_credentials(server: APIServer,
                                                               tmp_path: Path) -> None:
    from svcnet.node.join import NoServerAnswered, cached_files, join_cluster

    token = parse_join_token((server.config.data_dir / "join-token").read_text())
    state = tmp_path / "node"
    assert cached_files(state) is None
    with pytest.raises(NoServerAnswered):
        await join_cluster(["https://127.0.0.1:1"], token, "m1", ["10.9.0.2"], state)
    files = await join_cluster([server.url], token, "m1", ["10.9.0.2"], state)
    assert cached_files(state) == files
