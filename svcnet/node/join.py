"""`svcnet join`: this machine becomes a node of a running cluster.

Theory of operation
-------------------
As a k3s agent starts (k3s pkg/agent/config, pkg/clientaccess), in this order:

1. **Trust the server, by the token.** ``GET /cacerts`` from the first server that answers,
   over a connection that verifies nothing yet; the CA is used only if its SHA-256 is the
   hash in the join token (svcnet/api/jointokens.py). Every later connection verifies the
   server against that CA.
2. **Get this node's credentials.** ``POST /svcnet/join`` with the bootstrap token: the node
   token (user ``system:node:<name>``) and the node server's certificate come back
   (svcnet/apiserver/join.py). The machine proves it is the same machine on a later join with
   its node password, made once and kept in ``STATE/node-password`` (k3s keeps
   ``/etc/rancher/node/password``).
3. **Write** ``STATE/kubeconfig`` and ``STATE/pki/node.{crt,key}`` (0600). When no server
   answers but an earlier join left these, the agent starts with them (as a k3s agent
   restarts on its cached credentials) and reaches a server once one is back.
4. **This network namespace is the node.** The agent addresses its node by the netns name
   ``svcnet-<tag>-n<index>``; here that name is bound to the namespace ``svcnet join`` runs in
   (``ip netns attach``), so the pod bridge, the pods' veths, the nftables data plane and the
   routes to other nodes land in this machine's own stack, beside its real interface.
5. **Run the agent** (svcnet/node/agent.py) with the pod network across machines on
   (svcnet/node/nodenet.py) and the other servers to fail over to.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml

from svcnet.api.jointokens import JoinToken, ca_hash
from svcnet.util.nsthread import NETNS_RUN_DIR

__all__ = ["JoinError", "NoServerAnswered", "NodeFiles", "cached_files", "join_cluster",
           "name_own_netns", "parse_servers", "route_source"]


class JoinError(Exception):
    """A one-line reason why this machine cannot join."""


class NoServerAnswered(JoinError):
    """No server could be reached (as opposed to one refusing the join)."""


@dataclass(frozen=True, slots=True)
class NodeFiles:
    kubeconfig: Path
    cert: Path
    key: Path
    server: str
    """The server that answered the join (the kubeconfig's)."""


def parse_servers(text: str) -> list[str]:
    """``URL[,URL...]``: https URLs, in the order to try them."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        url = urlsplit(part)
        if url.scheme != "https" or not url.hostname or url.path not in ("", "/"):
            raise JoinError(f"{part!r}: expected https://HOST:PORT")
        out.append(part.rstrip("/"))
    if not out:
        raise JoinError("no server URL given")
    return out


def _write_private(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data)


def node_password(state_dir: Path) -> str:
    """This machine's node password, made on the first join and kept."""
    path = state_dir / "node-password"
    if path.exists() and len(text := path.read_text().strip()) >= 16:
        return text
    password = secrets.token_hex(16)
    _write_private(path, password + "\n")
    return password


async def _fetch_ca(session: aiohttp.ClientSession, server: str, token: JoinToken) -> str:
    blind = ssl.create_default_context()
    blind.check_hostname = False
    blind.verify_mode = ssl.CERT_NONE
    async with session.get(f"{server}/cacerts", ssl=blind) as resp:
        if resp.status != 200:
            raise JoinError(f"{server}/cacerts answered {resp.status}")
        pem = await resp.text()
    if ca_hash(pem) != token.ca_hash:
        raise JoinError(f"{server}: the cluster CA's hash is not the join token's (another "
                        f"server, or someone in between): not trusting it")
    return pem


async def _request(session: aiohttp.ClientSession, server: str, ca_pem: str,
                   token: JoinToken, body: dict[str, Any]) -> dict[str, Any]:
    ctx = ssl.create_default_context(cadata=ca_pem)
    async with session.post(f"{server}/svcnet/join", json=body, ssl=ctx,
                            headers={"Authorization": f"Bearer {token.bootstrap}"}) as resp:
        raw = await resp.read()
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = {}
        if resp.status != 200:
            raise JoinError(f"{server} refused the join ({resp.status}): "
                            f"{doc.get('message') or raw[:200]!r}")
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str) for k in (
            "token", "servingCertificate", "servingKey")):
        raise JoinError(f"{server}: the join answer lacks the node's credentials")
    return doc


async def join_cluster(servers: Sequence[str], token: JoinToken, node_name: str,
                       addresses: Sequence[str], state_dir: Path,
                       timeout: float = 10.0) -> NodeFiles:
    """Steps 1-3 of the module docstring, trying each server in turn."""
    body = {"nodeName": node_name, "password": node_password(state_dir),
            "addresses": list(addresses)}
    errors = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        for server in servers:
            try:
                ca = await _fetch_ca(session, server, token)
                answer = await _request(session, server, ca, token, body)
            except (aiohttp.ClientError, OSError, TimeoutError, ssl.SSLError) as e:
                errors.append(f"{server}: {e or type(e).__name__}")
                continue
            return _write_files(state_dir, server, ca, answer, node_name)
    raise NoServerAnswered("no server answered: " + "; ".join(errors))


def _write_files(state_dir: Path, server: str, ca: str, answer: dict[str, Any],
                 node_name: str) -> NodeFiles:
    import base64

    user = f"system:node:{node_name}"
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "svcnet",
           "clusters": [{"name": "svcnet", "cluster": {
               "server": server,
               "certificate-authority-data": base64.b64encode(ca.encode()).decode()}}],
           "users": [{"name": user, "user": {"token": answer["token"]}}],
           "contexts": [{"name": "svcnet", "context": {"cluster": "svcnet", "user": user}}]}
    kubeconfig = state_dir / "kubeconfig"
    _write_private(kubeconfig, yaml.safe_dump(doc, sort_keys=False))
    cert, key = state_dir / "pki" / "node.crt", state_dir / "pki" / "node.key"
    _write_private(key, answer["servingKey"])
    _write_private(cert, answer["servingCertificate"])
    return NodeFiles(kubeconfig, cert, key, server)


def cached_files(state_dir: Path) -> NodeFiles | None:
    """The credentials an earlier join wrote, if all are there."""
    kubeconfig = state_dir / "kubeconfig"
    cert, key = state_dir / "pki" / "node.crt", state_dir / "pki" / "node.key"
    if not (kubeconfig.exists() and cert.exists() and key.exists()):
        return None
    try:
        server = str(yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
    except (yaml.YAMLError, LookupError, TypeError):
        return None
    return NodeFiles(kubeconfig, cert, key, server)


def route_source(server: str) -> str:
    """The address this machine sends from to reach ``server`` (the default node IP)."""
    host = urlsplit(server).hostname or ""
    try:
        ip_address(host)
    except ValueError as e:
        raise JoinError(f"give --node-ip: {host!r} is not an IP address to route to") from e
    proc = subprocess.run(["ip", "-j", "route", "get", host], capture_output=True, text=True,
                          check=False)
    try:
        return str(json.loads(proc.stdout)[0]["prefsrc"])
    except (ValueError, LookupError, TypeError):
        raise JoinError(f"give --node-ip: no route to {host} "
                        f"({proc.stderr.strip() or 'no source address'})") from None


def name_own_netns(name: str, run_dir: Path = NETNS_RUN_DIR) -> None:
    """Bind ``name`` to this process's network namespace (``ip netns attach``), unless it
    is bound to it already; another namespace of that name is an error."""
    own = os.stat("/proc/self/ns/net")
    path = run_dir / name
    try:
        bound = os.stat(path)
    except FileNotFoundError:
        bound = None
    if bound is not None and (bound.st_dev, bound.st_ino) == (own.st_dev, own.st_ino):
        return
    if bound is not None and bound.st_dev == own.st_dev:  # a live namespace, not ours
        raise JoinError(f"network namespace name {name} belongs to another namespace; "
                        f"choose another --cluster or --node-index")
    if bound is not None:  # a name left by a namespace that is gone
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
    proc = subprocess.run(["ip", "netns", "attach", name, str(os.getpid())],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise JoinError(f"ip netns attach {name}: {proc.stderr.strip()}")
